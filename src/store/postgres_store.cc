#include "garde/store/postgres_store.h"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "garde/base/encoding.h"
#include "garde/base/log.h"
#include "garde/base/thread_name.h"

namespace garde {

// Ordered migrations; version N is kPgMigrations[N-1]. Never edit one that has shipped.
// "TEXT" is written as TEXT_C and becomes TEXT COLLATE "C" (see the header).
static const char* const kPgMigrations[] = {
    // 1: everything SQLite's vault (21 migrations) and audit database (3) hold today, in one
    // database. Sequence-like counters that must not leave gaps live in `counters`, updated
    // under the write lock.
    R"sql(
CREATE TABLE counters(name TEXT_C PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO counters(name, value) VALUES ('vault_changes', 0), ('audit_pending', 0);

CREATE TABLE subjects(
  id TEXT_C PRIMARY KEY,
  kind TEXT_C NOT NULL,
  status TEXT_C NOT NULL,
  source TEXT_C NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  last_interaction_at BIGINT NOT NULL,
  root_key_version BIGINT NOT NULL,
  dek_version BIGINT NOT NULL,
  wrapped_dek BYTEA NOT NULL
);
CREATE INDEX subjects_by_root_key ON subjects(root_key_version);
CREATE TABLE subject_fields(
  subject_id TEXT_C NOT NULL,
  field TEXT_C NOT NULL,
  box BYTEA NOT NULL,
  PRIMARY KEY(subject_id, field)
);
CREATE TABLE blind_index(
  field TEXT_C NOT NULL,
  digest BYTEA NOT NULL,
  subject_id TEXT_C NOT NULL,
  master BIGINT NOT NULL,
  PRIMARY KEY(field, digest, subject_id)
);
CREATE INDEX blind_index_by_subject ON blind_index(subject_id, field);
CREATE TABLE api_keys(
  id TEXT_C PRIMARY KEY,
  name TEXT_C NOT NULL,
  role TEXT_C NOT NULL,
  activities TEXT_C NOT NULL,
  key_hash BYTEA NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT NOT NULL DEFAULT 0,
  hash_master BIGINT NOT NULL
);
CREATE TABLE consent_events(
  rowid BIGSERIAL NOT NULL,
  id TEXT_C PRIMARY KEY,
  subject_id TEXT_C NOT NULL,
  purpose TEXT_C NOT NULL,
  channel TEXT_C NOT NULL,
  event TEXT_C NOT NULL,
  legal_basis TEXT_C NOT NULL,
  notice_version TEXT_C NOT NULL,
  method TEXT_C NOT NULL,
  actor TEXT_C NOT NULL,
  at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  receipt TEXT_C NOT NULL
);
CREATE INDEX consent_facts_by_subject ON consent_events(subject_id, at, rowid)
  INCLUDE (purpose, channel, event, expires_at);
CREATE TABLE suppressions(
  kind TEXT_C NOT NULL,
  digest BYTEA NOT NULL,
  reason TEXT_C NOT NULL,
  at BIGINT NOT NULL,
  PRIMARY KEY(kind, digest)
);
CREATE TABLE requests(
  id TEXT_C PRIMARY KEY,
  type TEXT_C NOT NULL,
  subject_id TEXT_C NOT NULL,
  status TEXT_C NOT NULL,
  jurisdiction TEXT_C NOT NULL,
  opened_by TEXT_C NOT NULL,
  verification TEXT_C NOT NULL,
  received_at BIGINT NOT NULL,
  verified_at BIGINT NOT NULL,
  due_at BIGINT NOT NULL,
  completed_at BIGINT NOT NULL,
  extended BIGINT NOT NULL,
  sealed BYTEA NOT NULL,
  package BYTEA NOT NULL,
  result TEXT_C NOT NULL
);
CREATE INDEX requests_by_due ON requests(due_at, id);
CREATE INDEX requests_by_subject ON requests(subject_id);
CREATE TABLE tombstones(
  subject_id TEXT_C PRIMARY KEY,
  request_id TEXT_C NOT NULL,
  at BIGINT NOT NULL,
  kept TEXT_C NOT NULL DEFAULT ''
);
CREATE TABLE outbox(
  seq BIGSERIAL PRIMARY KEY,
  id TEXT_C NOT NULL UNIQUE,
  topic TEXT_C NOT NULL,
  payload TEXT_C NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE policy_versions(
  seq BIGSERIAL PRIMARY KEY,
  content_hash TEXT_C NOT NULL,
  loaded_at BIGINT NOT NULL,
  source TEXT_C NOT NULL,
  summary TEXT_C NOT NULL
);
CREATE TABLE audit_pending(
  id BIGINT PRIMARY KEY,
  at_ns BIGINT NOT NULL,
  subject TEXT_C,
  tail TEXT_C NOT NULL
);

-- The vault change log (SQLite vault migration 7): written by triggers in the transaction
-- of the change, numbered from `counters` without gaps, its last 65 536 changes kept.
CREATE TABLE vault_changes(seq BIGINT PRIMARY KEY, subject_id TEXT_C NOT NULL);
CREATE FUNCTION garde_log_change(subject TEXT) RETURNS void AS $$
DECLARE n BIGINT;
BEGIN
  UPDATE counters SET value = value + 1 WHERE name = 'vault_changes' RETURNING value INTO n;
  INSERT INTO vault_changes(seq, subject_id) VALUES (n, subject);
  DELETE FROM vault_changes WHERE seq <= n - 65536;
  -- Sent at commit, once per transaction: every node's views ask the log again.
  PERFORM pg_notify('garde_changes', '');
END $$ LANGUAGE plpgsql;
CREATE FUNCTION garde_subject_changed() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN PERFORM garde_log_change(OLD.id);
  ELSE PERFORM garde_log_change(NEW.id);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER subjects_changed
  AFTER INSERT OR DELETE OR UPDATE OF status, source, updated_at, last_interaction_at
  ON subjects FOR EACH ROW EXECUTE FUNCTION garde_subject_changed();
CREATE FUNCTION garde_consent_changed() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN PERFORM garde_log_change(OLD.subject_id);
  ELSE PERFORM garde_log_change(NEW.subject_id);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER consent_changed AFTER INSERT OR DELETE ON consent_events
  FOR EACH ROW EXECUTE FUNCTION garde_consent_changed();
CREATE FUNCTION garde_suppression_added() RETURNS trigger AS $$
BEGIN
  PERFORM garde_log_change(b.subject_id) FROM (
    SELECT subject_id FROM blind_index WHERE field = '~' || NEW.kind AND digest = NEW.digest
    ORDER BY subject_id) b;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER suppression_added AFTER INSERT ON suppressions
  FOR EACH ROW EXECUTE FUNCTION garde_suppression_added();

-- Keys of encrypted snapshots, dropped whenever personal data is destroyed (SQLite vault
-- migration 9). An upsert of a field (rectification) is no removal.
CREATE TABLE snapshot_keys(
  name TEXT_C PRIMARY KEY,
  key_id TEXT_C NOT NULL,
  root_key_version BIGINT NOT NULL,
  wrapped_key BYTEA NOT NULL
);
CREATE TABLE shreds(id INTEGER PRIMARY KEY CHECK (id = 0), count BIGINT NOT NULL);
INSERT INTO shreds(id, count) VALUES (0, 0);
CREATE FUNCTION garde_shred() RETURNS trigger AS $$
BEGIN
  DELETE FROM snapshot_keys;
  UPDATE shreds SET count = count + 1 WHERE id = 0;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER shred_field_removed AFTER DELETE ON subject_fields
  FOR EACH ROW EXECUTE FUNCTION garde_shred();
CREATE TRIGGER shred_subject_erased AFTER UPDATE OF status ON subjects
  FOR EACH ROW WHEN (NEW.status = 'erased' AND OLD.status <> 'erased')
  EXECUTE FUNCTION garde_shred();
CREATE TRIGGER shred_subject_deleted AFTER DELETE ON subjects
  FOR EACH ROW EXECUTE FUNCTION garde_shred();

CREATE TABLE retention_runs(
  seq BIGSERIAL PRIMARY KEY,
  id TEXT_C NOT NULL UNIQUE,
  started_at BIGINT NOT NULL,
  at BIGINT NOT NULL,
  finished_at BIGINT NOT NULL DEFAULT 0,
  dry_run BIGINT NOT NULL,
  cursor TEXT_C NOT NULL DEFAULT '',
  report TEXT_C NOT NULL DEFAULT '{}'
);
CREATE TABLE webhook_marks(endpoint TEXT_C PRIMARY KEY, outbox_seq BIGINT NOT NULL);
CREATE TABLE webhook_deliveries(
  id BIGSERIAL PRIMARY KEY,
  endpoint TEXT_C NOT NULL,
  event_id TEXT_C NOT NULL,
  topic TEXT_C NOT NULL,
  subject TEXT_C NOT NULL,
  payload TEXT_C NOT NULL,
  created_at BIGINT NOT NULL,
  status TEXT_C NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  next_at BIGINT NOT NULL,
  last_error TEXT_C NOT NULL DEFAULT '',
  delivered_at BIGINT NOT NULL DEFAULT 0,
  UNIQUE(endpoint, event_id)
);
CREATE INDEX webhook_pending ON webhook_deliveries(status, id);
CREATE INDEX webhook_by_subject ON webhook_deliveries(endpoint, subject, status, id);
CREATE TABLE interactions(
  seq BIGSERIAL PRIMARY KEY,
  subject_id TEXT_C NOT NULL,
  kind TEXT_C NOT NULL,
  at BIGINT NOT NULL,
  sealed_amount BYTEA
);
CREATE INDEX interactions_by_subject ON interactions(subject_id, at);
CREATE INDEX purchases_by_time ON interactions(at, subject_id) WHERE kind = 'purchase';
CREATE TABLE consent_confirmations(
  id TEXT_C PRIMARY KEY,
  subject_id TEXT_C NOT NULL,
  purpose TEXT_C NOT NULL,
  channel TEXT_C NOT NULL,
  notice_version TEXT_C NOT NULL,
  method TEXT_C NOT NULL,
  actor TEXT_C NOT NULL,
  status TEXT_C NOT NULL,
  requested_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  confirmed_at BIGINT NOT NULL,
  event_id TEXT_C NOT NULL
);
CREATE INDEX consent_confirmations_by_subject ON consent_confirmations(subject_id, status);
CREATE TABLE incidents(
  id TEXT_C PRIMARY KEY,
  status TEXT_C NOT NULL,
  detected_at BIGINT NOT NULL,
  aware_at BIGINT NOT NULL,
  authority_due_at BIGINT NOT NULL,
  authority_notified_at BIGINT NOT NULL,
  subjects_notified_at BIGINT NOT NULL,
  closed_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  sealed BYTEA NOT NULL
);
CREATE TABLE import_rows(
  import_id TEXT_C NOT NULL,
  row BIGINT NOT NULL,
  subject_id TEXT_C NOT NULL,
  PRIMARY KEY(import_id, row)
);
CREATE TABLE segments(
  name TEXT_C PRIMARY KEY,
  definition TEXT_C NOT NULL,
  created_by TEXT_C NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE contact_links(
  organisation_id TEXT_C NOT NULL,
  person_id TEXT_C NOT NULL,
  role TEXT_C NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY(organisation_id, person_id)
);
CREATE INDEX contact_links_by_person ON contact_links(person_id);
CREATE TABLE merges(
  rowid BIGSERIAL NOT NULL,
  id TEXT_C PRIMARY KEY,
  merged_id TEXT_C NOT NULL,
  into_id TEXT_C NOT NULL,
  state TEXT_C NOT NULL,
  actor TEXT_C NOT NULL,
  created_at BIGINT NOT NULL,
  finished_at BIGINT NOT NULL,
  record TEXT_C NOT NULL,
  sealed BYTEA NOT NULL
);
CREATE INDEX merges_by_merged ON merges(merged_id);
CREATE INDEX merges_by_into ON merges(into_id);

-- The audit log. One B-tree on (subject, seq) serves the officer's question here: the
-- sorted runs SQLite's file needs (docs/audit.md) are PostgreSQL's own index maintenance.
CREATE TABLE audit_log(
  seq BIGINT PRIMARY KEY,
  entry TEXT_C NOT NULL,
  leaf_hash BYTEA NOT NULL,
  subject TEXT_C
);
CREATE INDEX audit_by_subject ON audit_log(subject, seq) WHERE subject IS NOT NULL;
CREATE TABLE audit_nodes(
  level BIGINT NOT NULL,
  idx BIGINT NOT NULL,
  hash BYTEA NOT NULL,
  PRIMARY KEY(level, idx)
);
CREATE TABLE audit_checkpoints(
  size BIGINT PRIMARY KEY,
  root BYTEA NOT NULL,
  time BIGINT NOT NULL,
  note TEXT_C NOT NULL
);
CREATE TABLE audit_intake(id INTEGER PRIMARY KEY CHECK (id = 0), last_pending BIGINT NOT NULL);
INSERT INTO audit_intake(id, last_pending) VALUES (0, 0);
CREATE TABLE audit_journals(name TEXT_C PRIMARY KEY, imported_to BIGINT NOT NULL);
)sql",
    // 2: a subject re-keyed is a change the views follow, and a shred (SQLite vault 22).
    R"sql(
CREATE FUNCTION garde_data_key_replaced() RETURNS trigger AS $$
BEGIN
  PERFORM garde_log_change(NEW.id);
  DELETE FROM snapshot_keys;
  UPDATE shreds SET count = count + 1 WHERE id = 0;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER subjects_rekeyed AFTER UPDATE OF dek_version ON subjects
  FOR EACH ROW WHEN (NEW.dek_version <> OLD.dek_version)
  EXECUTE FUNCTION garde_data_key_replaced();
)sql",
    // 3: the actor index and each checkpoint's entry count per actor (SQLite audit 4).
    R"sql(
CREATE TABLE audit_by_actor(actor TEXT_C NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY(actor, seq));
INSERT INTO audit_by_actor(actor, seq)
  SELECT entry::jsonb ->> 'actor', seq FROM audit_log WHERE entry::jsonb ->> 'actor' IS NOT NULL;
ALTER TABLE audit_checkpoints ADD COLUMN actors TEXT_C NOT NULL DEFAULT '';
)sql",
    // 4: the change log drops the one change that falls out of its window by its number. The
    // range (`seq <= n - 65536`) walked every index entry deleted since the last vacuum from
    // the left of the index on each change: creates fell from 4 000/s to 1 100/s within a
    // minute of sustained writes.
    R"sql(
CREATE OR REPLACE FUNCTION garde_log_change(subject TEXT) RETURNS void AS $$
DECLARE n BIGINT;
BEGIN
  UPDATE counters SET value = value + 1 WHERE name = 'vault_changes' RETURNING value INTO n;
  INSERT INTO vault_changes(seq, subject_id) VALUES (n, subject);
  DELETE FROM vault_changes WHERE seq = n - 65536;
  -- Sent at commit, once per transaction: every node's views ask the log again.
  PERFORM pg_notify('garde_changes', '');
END $$ LANGUAGE plpgsql;
)sql",
    // 5: console sign-ins, known to every node (SQLite vault 23).
    R"sql(
CREATE TABLE console_sessions(
  cookie_hash BYTEA PRIMARY KEY,
  key_id TEXT_C NOT NULL,
  role TEXT_C NOT NULL,
  activities TEXT_C NOT NULL,
  client TEXT_C NOT NULL,
  csrf TEXT_C NOT NULL,
  lang TEXT_C NOT NULL,
  signed_in_at BIGINT NOT NULL,
  last_seen BIGINT NOT NULL
);
)sql",
    // 6: the change log keeps its last 262 144 changes (SQLite vault 24). The rows older
    // than 65 536 are gone already, so dropping the one that falls out by its number still
    // leaves none behind.
    R"sql(
CREATE OR REPLACE FUNCTION garde_log_change(subject TEXT) RETURNS void AS $$
DECLARE n BIGINT;
BEGIN
  UPDATE counters SET value = value + 1 WHERE name = 'vault_changes' RETURNING value INTO n;
  INSERT INTO vault_changes(seq, subject_id) VALUES (n, subject);
  DELETE FROM vault_changes WHERE seq = n - 262144;
  -- Sent at commit, once per transaction: every node's views ask the log again.
  PERFORM pg_notify('garde_changes', '');
END $$ LANGUAGE plpgsql;
)sql",
    // 7: a uniqueness look-up that fails its statement when another subject holds one of the
    // digests, so that it can be sent in a write's pipeline without being waited for.
    R"sql(
CREATE FUNCTION garde_index_free(f TEXT, digests BYTEA[], self TEXT) RETURNS void AS $$
BEGIN
  IF EXISTS(SELECT 1 FROM blind_index WHERE field = f COLLATE "C" AND digest = ANY(digests)
            AND subject_id <> self COLLATE "C") THEN
    RAISE EXCEPTION 'a look-up digest is held by another subject' USING ERRCODE = 'GU001';
  END IF;
END $$ LANGUAGE plpgsql;
)sql",
    // 8: the uniqueness look-up asks for each digest by the whole key. With
    // `digest = ANY(digests)`, the plan a connection keeps from its first calls, made while
    // the table was nearly empty, probed the key by field alone and filtered every entry of
    // the field: a create into a growing vault cost 1-2 ms, until an ANALYZE made the
    // connection plan again.
    R"sql(
CREATE FUNCTION garde_index_held(f TEXT, digests BYTEA[], self TEXT) RETURNS boolean AS $$
DECLARE d BYTEA;
BEGIN
  FOREACH d IN ARRAY digests LOOP
    IF EXISTS(SELECT 1 FROM blind_index WHERE field = f COLLATE "C" AND digest = d
              AND subject_id <> self COLLATE "C") THEN
      RETURN true;
    END IF;
  END LOOP;
  RETURN false;
END $$ LANGUAGE plpgsql STABLE;
CREATE OR REPLACE FUNCTION garde_index_free(f TEXT, digests BYTEA[], self TEXT) RETURNS void AS $$
BEGIN
  IF garde_index_held(f, digests, self) THEN
    RAISE EXCEPTION 'a look-up digest is held by another subject' USING ERRCODE = 'GU001';
  END IF;
END $$ LANGUAGE plpgsql;
)sql",
    // 9: how far each tombstones.log has been applied (SQLite vault 25).
    R"sql(
CREATE TABLE tombstone_log_marks(
  log TEXT_C PRIMARY KEY,
  applied_to BIGINT NOT NULL,
  digest BYTEA NOT NULL
);
)sql",
};

// The SQLSTATE garde_index_free fails with.
constexpr const char* kIndexHeldState = "GU001";

// Migrations take this one, so that nodes starting together migrate once.
constexpr const char* kMigrationLock = "SELECT pg_advisory_lock(7254002)";
constexpr const char* kMigrationUnlock = "SELECT pg_advisory_unlock(7254002)";

std::string WithCollation(const char* sql) {
  std::string out = sql;
  for (size_t at = 0; (at = out.find("TEXT_C", at)) != std::string::npos;) {
    out.replace(at, 6, "TEXT COLLATE \"C\"");
    at += 16;
  }
  return out;
}

std::string PgErrorText(const PGconn* conn, const PGresult* result) {
  const char* primary =
      result == nullptr ? nullptr : PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  std::string text = primary != nullptr ? primary : PQerrorMessage(conn);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty()) text = "no reason given by the server or libpq";
  return text;
}

class PgConnection {
 public:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;
  ~PgConnection() { PQfinish(conn_); }

  PGconn* get() const { return conn_; }

  // Rows a transaction holds back to send in one statement (PgTx's audit rows): `flush` sends
  // them, and runs before any other statement goes out on this connection — so every later
  // statement, read or end of a write, comes after them. nullptr: none.
  void HoldRows(std::function<Status()> flush) { held_ = std::move(flush); }
  Status SendHeld() {
    if (!held_ || sending_held_) return Status::Ok();
    sending_held_ = true;
    Status s = held_();
    sending_held_ = false;
    return s;
  }
  bool healthy() const {
    return PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE &&
           PQpipelineStatus(conn_) == PQ_PIPELINE_OFF;
  }

  // The name of a prepared statement for `sql`, preparing it on first use (in a pipeline,
  // sent ahead of the statement that uses it).
  Result<std::string> Prepared(const std::string& sql) {
    auto it = prepared_.find(sql);
    if (it != prepared_.end()) return it->second;
    std::string name = "g" + std::to_string(prepared_.size() + 1);
    if (pipelined()) {
      if (PQsendPrepare(conn_, name.c_str(), sql.c_str(), 0, nullptr) == 0) {
        return ErrorOf(nullptr, "prepare");
      }
      pending_.push_back({Check::kPrepare, nullptr, sql, write_});
    } else {
      PGresult* res = PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr);
      const bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
      Status error = ok ? Status::Ok() : ErrorOf(res, "prepare");
      PQclear(res);
      if (!ok) return error;
    }
    prepared_.emplace(sql, name);
    return name;
  }

  // Runs a statement without parameters or results (BEGIN, SAVEPOINT, DDL...); in a pipeline,
  // sends it, its result checked with the next one waited for.
  Status Exec(const std::string& sql) {
    GARDE_RETURN_IF_ERROR(SendHeld());
    if (pipelined()) {
      if (!pipeline_error_.ok()) return pipeline_error_;
      if (PQsendQueryParams(conn_, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) == 0) {
        return ErrorOf(nullptr, "exec");
      }
      pending_.push_back({Check::kStatus, nullptr, {}, write_});
      return Status::Ok();
    }
    PGresult* res = PQexec(conn_, sql.c_str());
    const ExecStatusType st = PQresultStatus(res);
    Status s =
        st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? Status::Ok() : ErrorOf(res, "exec");
    PQclear(res);
    return s;
  }

  // A failed result as a Status: unique violations are conflicts, lost connections and
  // serialisation failures are kUnavailable (retry), anything else internal. An error with no
  // SQLSTATE is libpq's own, not the server's: the connection lost ("server closed the
  // connection unexpectedly", as a crashed server's clients read it before libpq marks the
  // connection bad).
  Status ErrorOf(const PGresult* res, const char* what) const {
    const char* state = res == nullptr ? nullptr : PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const std::string code = state == nullptr ? "" : state;
    const std::string message = PgErrorText(conn_, res);
    if (code == "23505") return Conflict(std::string("constraint violated: ") + what);
    if (PQstatus(conn_) != CONNECTION_OK || code.empty() || code.rfind("08", 0) == 0 ||
        code == "40001" || code == "40P01" || code == "57P01" || code == "57P02" ||
        code == "57P03" || code.rfind("53", 0) == 0) {
      return Unavailable(std::string("database unavailable: ") + what + ": " + message);
    }
    return Internal(std::string("postgresql: ") + what + ": " + message);
  }

  // ---- Pipeline mode (a group commit's writes) ----
  //
  // Statements whose result nobody reads at once are sent without waiting (Defer); the next
  // statement that is waited for (Await), or the end of a write (Sync), reads every result
  // sent before it, in order. The first failure among them is the pipeline's error: PostgreSQL
  // skips what follows it until the sync point, and every later call reports it.

  // What is checked of a deferred result. Every check is the server's own (an error aborts
  // the transaction, and PostgreSQL skips what follows until the sync point), so that a failure
  // read late still leaves the failed write's savepoint the latest one (RunPipelined).
  enum class Check { kStatus, kPrepare, kKeep };

  // The write of a batch whose statements are being sent: a failure is charged to the write
  // that sent what failed (failed_write, after the Sync that read it).
  void set_write(size_t i) { write_ = i; }
  struct Failure {
    size_t write;
    bool held_index;  // garde_index_free's: a look-up digest held by another subject
  };
  // The first failure the last Sync read, if any.
  const std::optional<Failure>& failed() const { return failed_; }

  bool pipelined() const { return PQpipelineStatus(conn_) != PQ_PIPELINE_OFF; }

  Status EnterPipeline() {
    if (PQenterPipelineMode(conn_) == 0) return ErrorOf(nullptr, "pipeline");
    pipeline_error_ = Status::Ok();
    failing_.reset();
    failed_.reset();
    write_ = 0;
    return Status::Ok();
  }

  // Reads what is outstanding and leaves pipeline mode; the pipeline's error, if any.
  Status ExitPipeline() {
    Status s = Sync();
    if (PQexitPipelineMode(conn_) == 0 && s.ok()) s = ErrorOf(nullptr, "pipeline");
    return s;
  }

  // Sends a prepared statement; its result is checked as `check` says when read.
  Status Defer(const std::string& name, const std::vector<const char*>& values,
               const std::vector<int>& lengths, const std::vector<int>& formats, Check check,
               PGresult** keep) {
    GARDE_RETURN_IF_ERROR(SendHeld());
    if (!pipeline_error_.ok()) return pipeline_error_;
    if (PQsendQueryPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(),
                            lengths.data(), formats.data(), 1) == 0) {
      return ErrorOf(nullptr, "query");
    }
    pending_.push_back({check, keep, {}, write_});
    // Bounded, so that neither side's buffers fill while the other is not reading.
    if (pending_.size() >= kMaxPending && check != Check::kKeep) return Await();
    return Status::Ok();
  }

  // Asks the server for the results so far and reads them all (the last one kept where its
  // Defer said); the pipeline's error, if any.
  Status Await() {
    if (Status s = SendHeld(); !s.ok()) Fail(std::move(s));
    if (PQsendFlushRequest(conn_) == 0 || PQflush(conn_) != 0) Fail(ErrorOf(nullptr, "flush"));
    return ReadPending();
  }

  // A sync point: reads every result, and the pipeline's error since the last one (cleared:
  // what follows runs again, in a transaction that may need rolling back to a savepoint).
  Status Sync() {
    if (Status s = SendHeld(); !s.ok()) Fail(std::move(s));
    if (PQpipelineSync(conn_) == 0) Fail(ErrorOf(nullptr, "sync"));
    Status s = ReadPending();
    while (PGresult* res = PQgetResult(conn_)) {
      const ExecStatusType st = PQresultStatus(res);
      PQclear(res);
      if (st == PGRES_PIPELINE_SYNC) break;
    }
    if (PQstatus(conn_) != CONNECTION_OK) Fail(ErrorOf(nullptr, "sync"));
    if (s.ok()) s = pipeline_error_;
    pipeline_error_ = Status::Ok();
    failed_ = std::exchange(failing_, std::nullopt);
    return s;
  }

 private:
  static constexpr size_t kMaxPending = 256;

  struct Pending {
    Check check;
    PGresult** keep;
    std::string sql;   // of a kPrepare: forgotten if the prepare failed
    size_t write = 0;  // set_write's when it was sent
  };

  // Keeps the first failure since the last sync point, and the write it is charged to.
  void Fail(Status s, std::optional<size_t> write = std::nullopt, bool held = false) {
    if (!pipeline_error_.ok()) return;
    pipeline_error_ = std::move(s);
    failing_ = Failure{write.value_or(write_), held};
  }

  Status ReadPending() {
    while (!pending_.empty()) {
      const Pending p = std::move(pending_.front());
      pending_.pop_front();
      PGresult* res = PQgetResult(conn_);
      if (res == nullptr) {  // the connection is gone
        Fail(ErrorOf(nullptr, "pipeline"), p.write);
        continue;
      }
      const ExecStatusType st = PQresultStatus(res);
      if (st == PGRES_PIPELINE_ABORTED) {
        Fail(Internal("postgresql: a pipelined statement was skipped"), p.write);
        // A statement first used after a failure: its preparation was skipped too.
        if (p.check == Check::kPrepare) prepared_.erase(p.sql);
      } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        Fail(ErrorOf(res, p.check == Check::kPrepare ? "prepare" : "query"), p.write,
             state != nullptr && std::strcmp(state, kIndexHeldState) == 0);
        if (p.check == Check::kPrepare) prepared_.erase(p.sql);
      }
      if (p.keep != nullptr) {
        *p.keep = res;
      } else {
        PQclear(res);
      }
      while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);  // the NULL ending it
    }
    return pipeline_error_;
  }

  PGconn* conn_;
  std::unordered_map<std::string, std::string> prepared_;
  std::deque<Pending> pending_;
  Status pipeline_error_;
  size_t write_ = 0;
  std::optional<Failure> failing_, failed_;
  std::function<Status()> held_;
  bool sending_held_ = false;
};

namespace {

// One row of a binary-format result.
class PgRow {
 public:
  PgRow(const PGresult* res, int row) : res_(res), row_(row) {}
  bool IsNull(int i) const { return PQgetisnull(res_, row_, i) != 0; }
  std::string Text(int i) const {
    return std::string(PQgetvalue(res_, row_, i), static_cast<size_t>(PQgetlength(res_, row_, i)));
  }
  std::string_view View(int i) const {
    return std::string_view(PQgetvalue(res_, row_, i),
                            static_cast<size_t>(PQgetlength(res_, row_, i)));
  }
  Bytes Blob(int i) const {
    const auto* p = reinterpret_cast<const uint8_t*>(PQgetvalue(res_, row_, i));
    return Bytes(p, p + PQgetlength(res_, row_, i));
  }
  // BIGINT, INTEGER, SMALLINT or BOOLEAN, in network byte order.
  int64_t Int(int i) const {
    if (IsNull(i)) return 0;
    const auto* p = reinterpret_cast<const uint8_t*>(PQgetvalue(res_, row_, i));
    const int n = PQgetlength(res_, row_, i);
    uint64_t v = 0;
    for (int k = 0; k < n; ++k) v = (v << 8) | p[k];
    if (n < 8 && n > 0 && (p[0] & 0x80) != 0) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }

 private:
  const PGresult* res_;
  int row_;
};

// Binds parameters by position ($1, $2 ...) and runs a prepared statement: text parameters in
// text format, byte strings in binary; results in binary format.
class PgQuery {
 public:
  PgQuery(PgConnection& conn, std::string sql) : conn_(conn), sql_(std::move(sql)) {}
  ~PgQuery() {
    if (res_ != nullptr) PQclear(res_);
  }
  PgQuery(const PgQuery&) = delete;
  PgQuery& operator=(const PgQuery&) = delete;

  // Text PostgreSQL cannot hold (not UTF-8, or with a NUL) matches nothing stored: a look-up
  // by it finds no row, a DELETE removes none, and a write that may store it is refused
  // (SQLite would compare and store the bytes; no valid id, name or key contains them).
  PgQuery& Text(const std::string& v) {
    if (!IsValidUtf8(v) || v.find('\0') != std::string::npos) unmatchable_ = true;
    return Add(v, 0, false);
  }
  PgQuery& Blob(const Bytes& v) { return Add(std::string(v.begin(), v.end()), 1, false); }
  // A value already in the binary format of the statement's type for it (a PgArray's).
  PgQuery& Binary(std::string v) { return Add(std::move(v), 1, false); }
  PgQuery& Int(int64_t v) { return Add(std::to_string(v), 0, false); }
  PgQuery& Null() { return Add("", 0, true); }

  // Runs the statement; Ok for a command or a result set.
  Status Run() {
    if (unmatchable_) {
      // A write that may store it (an INSERT, also behind a WITH, or an UPDATE) is refused; a
      // look-up or a DELETE by it matches no row.
      if (sql_.find("INSERT ") != std::string::npos || sql_.rfind("UPDATE ", 0) == 0) {
        return Unprocessable("text that is not UTF-8");
      }
      return Status::Ok();
    }
    if (conn_.pipelined()) {
      // Waits for this result, and with it for everything sent before.
      GARDE_RETURN_IF_ERROR(Dispatch(PgConnection::Check::kKeep, &res_));
      return conn_.Await();
    }
    GARDE_RETURN_IF_ERROR(conn_.SendHeld());
    GARDE_ASSIGN_OR_RETURN(auto name, conn_.Prepared(sql_));
    const Bound b = Bind();
    res_ = PQexecPrepared(conn_.get(), name.c_str(), static_cast<int>(params_.size()),
                          b.values.data(), b.lengths.data(), formats_.data(), 1);
    const ExecStatusType st = PQresultStatus(res_);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Status::Ok();
    return conn_.ErrorOf(res_, "query");
  }

  // A write whose result the caller only needs to succeed: in a group commit's pipeline, sent
  // without waiting (its failure fails the write when its savepoint ends); otherwise run at
  // once. An INSERT of a row that must be new is a plain one: an existing row is the server's
  // unique violation, a conflict (ON CONFLICT DO NOTHING with a count of the rows changed
  // would be a failure only this side knows of, and costs the server a speculative insertion).
  Status Send() {
    if (!conn_.pipelined() || unmatchable_) return Run();
    return Dispatch(PgConnection::Check::kStatus, nullptr);
  }

  int rows() const { return res_ == nullptr ? 0 : PQntuples(res_); }
  PgRow row(int i) const { return PgRow(res_, i); }
  // Rows a write changed.
  int64_t affected() const {
    const char* n = res_ == nullptr ? "" : PQcmdTuples(res_);
    return *n == '\0' ? 0 : std::strtoll(n, nullptr, 10);
  }

  // Every row, each made by `make(row)`.
  template <typename T, typename Fn>
  Result<std::vector<T>> Rows(Fn make) {
    GARDE_RETURN_IF_ERROR(Run());
    std::vector<T> out;
    out.reserve(static_cast<size_t>(rows()));
    for (int i = 0; i < rows(); ++i) out.push_back(make(row(i)));
    return out;
  }
  Result<std::vector<std::string>> Texts() {
    return Rows<std::string>([](const PgRow& r) { return r.Text(0); });
  }
  // The first row made by `make`, if any.
  template <typename T, typename Fn>
  Result<std::optional<T>> First(Fn make) {
    GARDE_RETURN_IF_ERROR(Run());
    if (rows() == 0) return std::optional<T>();
    return std::optional<T>(make(row(0)));
  }
  // The first column of the first row, or `if_none`.
  Result<int64_t> FirstInt(int64_t if_none) {
    GARDE_RETURN_IF_ERROR(Run());
    return rows() == 0 ? if_none : row(0).Int(0);
  }

 private:
  struct Bound {
    std::vector<const char*> values;
    std::vector<int> lengths;
  };
  Bound Bind() const {
    Bound b{std::vector<const char*>(params_.size()), std::vector<int>(params_.size())};
    for (size_t i = 0; i < params_.size(); ++i) {
      b.values[i] = nulls_[i] ? nullptr : params_[i].data();
      b.lengths[i] = static_cast<int>(params_[i].size());
    }
    return b;
  }

  // Sends the statement into the connection's pipeline.
  Status Dispatch(PgConnection::Check check, PGresult** keep) {
    GARDE_ASSIGN_OR_RETURN(auto name, conn_.Prepared(sql_));
    const Bound b = Bind();
    return conn_.Defer(name, b.values, b.lengths, formats_, check, keep);
  }

  PgQuery& Add(std::string v, int format, bool null) {
    params_.push_back(std::move(v));
    formats_.push_back(format);
    nulls_.push_back(null);
    return *this;
  }

  PgConnection& conn_;
  std::string sql_;
  std::vector<std::string> params_;
  std::vector<int> formats_;
  std::vector<bool> nulls_;
  PGresult* res_ = nullptr;
  bool unmatchable_ = false;
};

// A one-dimensional PostgreSQL array in the binary format array_recv reads, built an element
// at a time: many rows go in one statement as INSERT ... SELECT * FROM unnest($1::bigint[] ...).
// Binary rather than an array literal: the server takes each element as sent, where the literal
// cost it a parse of the array, of each number and of each byte string's hex (the audit import
// sends every entry this way).
class PgArray {
 public:
  // The element types' OIDs (catalog/pg_type.dat).
  static constexpr uint32_t kBigint = 20;
  static constexpr uint32_t kText = 25;
  static constexpr uint32_t kBytea = 17;

  explicit PgArray(uint32_t element_type) : element_type_(element_type) {}

  void Int(int64_t v) {  // kBigint
    Length(8);
    Put(out_, static_cast<uint64_t>(v), 8);
  }
  void Text(std::string_view v) {  // kText
    Length(static_cast<int64_t>(v.size()));
    out_.append(v);
  }
  void Blob(const Bytes& v) {  // kBytea
    Length(static_cast<int64_t>(v.size()));
    out_.append(v.begin(), v.end());
  }
  void Null() {
    Length(-1);
    has_null_ = true;
  }
  size_t size() const { return size_; }
  // The array as sent, and the array emptied.
  std::string Take() {
    std::string bytes;
    bytes.reserve(20 + out_.size());
    Put(bytes, 1, 4);                  // dimensions
    Put(bytes, has_null_ ? 1 : 0, 4);  // flags: has nulls
    Put(bytes, element_type_, 4);
    Put(bytes, size_, 4);  // the dimension's length
    Put(bytes, 1, 4);      // and its lower bound
    bytes += out_;
    out_.clear();
    size_ = 0;
    has_null_ = false;
    return bytes;
  }

 private:
  void Length(int64_t n) {  // each element's length comes before it; -1 is NULL
    ++size_;
    Put(out_, static_cast<uint64_t>(n), 4);
  }
  // Appends the low `bytes` bytes of v to `to`, in network byte order.
  static void Put(std::string& to, uint64_t v, int bytes) {
    for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
      to += static_cast<char>((v >> shift) & 0xff);
    }
  }
  uint32_t element_type_;
  std::string out_;
  size_t size_ = 0;
  bool has_null_ = false;
};

constexpr const char* kSubjectColumns =
    "id, kind, status, source, created_at, updated_at, last_interaction_at, root_key_version, "
    "dek_version, wrapped_dek";

SubjectRow SubjectFrom(const PgRow& r) {
  return {r.Text(0),
          r.Text(1),
          r.Text(2),
          r.Text(3),
          r.Int(4),
          r.Int(5),
          r.Int(6),
          static_cast<uint32_t>(r.Int(7)),
          static_cast<uint32_t>(r.Int(8)),
          r.Blob(9)};
}

constexpr const char* kApiKeyColumns =
    "id, name, role, activities, key_hash, created_at, revoked_at, hash_master";

ApiKeyRow ApiKeyFrom(const PgRow& r) {
  return {r.Text(0), r.Text(1), r.Text(2), SplitList(r.Text(3), ' '),
          r.Blob(4), r.Int(5),  r.Int(6),  static_cast<uint32_t>(r.Int(7))};
}

constexpr const char* kRequestColumns =
    "id, type, subject_id, status, jurisdiction, opened_by, verification, received_at, "
    "verified_at, due_at, completed_at, extended, sealed, package, result";

RequestRow RequestFrom(const PgRow& r) {
  RequestRow q;
  q.id = r.Text(0);
  q.type = r.Text(1);
  q.subject_id = r.Text(2);
  q.status = r.Text(3);
  q.jurisdiction = r.Text(4);
  q.opened_by = r.Text(5);
  q.verification = r.Text(6);
  q.received_at = r.Int(7);
  q.verified_at = r.Int(8);
  q.due_at = r.Int(9);
  q.completed_at = r.Int(10);
  q.extended = r.Int(11) != 0;
  q.sealed = r.Blob(12);
  q.package = r.Blob(13);
  q.result = r.Text(14);
  q.package_bytes = r.Int(15);
  return q;
}

// Lists leave the packages (megabytes each) in the database: only their size is read.
std::string RequestSelect(bool with_package) {
  std::string columns = kRequestColumns;
  if (!with_package) columns.replace(columns.find(", package,"), 10, ", ''::bytea,");
  return "SELECT " + columns + ", octet_length(package)::bigint FROM requests";
}

constexpr const char* kDeliveryColumns =
    "id, endpoint, event_id, topic, subject, payload, created_at, status, attempts, next_at, "
    "last_error, delivered_at";

DeliveryRow DeliveryFrom(const PgRow& r) {
  return {r.Int(0),  r.Text(1),  r.Text(2),
          r.Text(3), r.Text(4),  r.Text(5),
          r.Int(6),  r.Text(7),  static_cast<int>(r.Int(8)),
          r.Int(9),  r.Text(10), r.Int(11)};
}

constexpr const char* kRunColumns = "seq, id, started_at, at, finished_at, dry_run, cursor, report";

RetentionRunRow RunFrom(const PgRow& r) {
  return {r.Int(0), r.Text(1), r.Int(2), r.Int(3), r.Int(4), r.Int(5) != 0, r.Text(6), r.Text(7)};
}

constexpr const char* kConfirmationColumns =
    "id, subject_id, purpose, channel, notice_version, method, actor, status, requested_at, "
    "expires_at, confirmed_at, event_id";

ConsentConfirmationRow ConfirmationFrom(const PgRow& r) {
  return {r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Text(4), r.Text(5),
          r.Text(6), r.Text(7), r.Int(8),  r.Int(9),  r.Int(10), r.Text(11)};
}

constexpr const char* kIncidentColumns =
    "id, status, detected_at, aware_at, authority_due_at, authority_notified_at, "
    "subjects_notified_at, closed_at, created_at, updated_at, sealed";

IncidentRow IncidentFrom(const PgRow& r) {
  return {r.Text(0), r.Text(1), r.Int(2), r.Int(3), r.Int(4),  r.Int(5),
          r.Int(6),  r.Int(7),  r.Int(8), r.Int(9), r.Blob(10)};
}

constexpr const char* kMergeSelect =
    "SELECT id, merged_id, into_id, state, actor, created_at, finished_at, record, sealed "
    "FROM merges ";

MergeRow MergeFrom(const PgRow& r) {
  return {r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Text(4),
          r.Int(5),  r.Int(6),  r.Text(7), r.Blob(8)};
}

SegmentRow SegmentFrom(const PgRow& r) {
  return {r.Text(0), r.Text(1), r.Text(2), r.Int(3), r.Int(4)};
}

// kConflict when an INSERT ... ON CONFLICT DO NOTHING inserted nothing: the answer SQLite's
// constraint error gives, without aborting the transaction (PostgreSQL would, SQLite does not).
Status InsertedOrConflict(PgQuery& q) {
  GARDE_RETURN_IF_ERROR(q.Run());
  return q.affected() == 0 ? Conflict("constraint violated: write") : Status::Ok();
}

// The last of `rows` for each field, in the order of their first: what putting them one by one
// would leave.
template <typename Row>
std::vector<Row> LastPerField(const std::vector<Row>& rows) {
  std::vector<Row> out;
  out.reserve(rows.size());
  for (const Row& r : rows) {
    auto same =
        std::find_if(out.begin(), out.end(), [&](const Row& o) { return o.field == r.field; });
    if (same == out.end()) {
      out.push_back(r);
    } else {
      *same = r;
    }
  }
  return out;
}

class PgTx final : public GroupCommitTx {
 public:
  explicit PgTx(PgConnection& conn) : c_(conn) {
    c_.HoldRows([this] { return SendAuditRows(); });
  }
  ~PgTx() override { c_.HoldRows(nullptr); }
  PgTx(const PgTx&) = delete;
  PgTx& operator=(const PgTx&) = delete;

  // The audit rows held back, dropped (their write is rolled back).
  void DropHeld() { audit_ = {}; }

  PgQuery Q(std::string sql) { return PgQuery(c_, std::move(sql)); }

  // ---- Vault ----

  Result<std::optional<SubjectRow>> GetSubject(const std::string& id) override {
    PgQuery q(c_, std::string("SELECT ") + kSubjectColumns + " FROM subjects WHERE id = $1");
    q.Text(id);
    return q.First<SubjectRow>(SubjectFrom);
  }

  Result<std::vector<SealedField>> GetFields(const std::string& id) override {
    PgQuery q(c_, "SELECT field, box FROM subject_fields WHERE subject_id = $1 ORDER BY field");
    q.Text(id);
    return q.Rows<SealedField>([](const PgRow& r) { return SealedField{r.Text(0), r.Blob(1)}; });
  }

  Status ScanFields(const std::string& first_id, const std::string& last_id,
                    const SealedVisitor& fn) override {
    PgQuery q(c_,
              "SELECT subject_id, field, box FROM subject_fields WHERE subject_id >= $1 AND "
              "subject_id <= $2 ORDER BY subject_id, field");
    q.Text(first_id).Text(last_id);
    GARDE_RETURN_IF_ERROR(q.Run());
    for (int i = 0; i < q.rows(); ++i) {
      const PgRow r = q.row(i);
      const std::string_view box = r.View(2);
      fn(r.View(0), r.View(1), reinterpret_cast<const uint8_t*>(box.data()), box.size());
    }
    return Status::Ok();
  }

  Result<std::vector<std::string>> FindByIndex(const std::string& field,
                                               const Bytes& digest) override {
    PgQuery q(c_,
              "SELECT subject_id FROM blind_index WHERE field = $1 AND digest = $2 "
              "ORDER BY subject_id LIMIT 1000");
    q.Text(field).Blob(digest);
    return q.Texts();
  }

  // In a rerunnable write of a batch, sent without waiting: garde_index_free fails the write
  // when the answer is yes, and the batch runs it again with the look-up waited for.
  Result<bool> IndexHeldByOthers(const std::string& field, const std::vector<Bytes>& digests,
                                 const std::string& self) override {
    PgArray array(PgArray::kBytea);
    for (const Bytes& d : digests) array.Blob(d);
    if (held_index_deferred_ && c_.pipelined()) {
      PgQuery q(c_, "SELECT garde_index_free($1, $2::bytea[], $3)");
      q.Text(field).Binary(array.Take()).Text(self);
      GARDE_RETURN_IF_ERROR(q.Send());
      return false;
    }
    PgQuery q(c_, "SELECT garde_index_held($1, $2::bytea[], $3)::int");  // by key (migration 8)
    q.Text(field).Binary(array.Take()).Text(self);
    GARDE_ASSIGN_OR_RETURN(auto held, q.FirstInt(0));
    return held != 0;
  }
  // Whether IndexHeldByOthers may answer later (RunPipelined).
  void set_held_index_deferred(bool deferred) { held_index_deferred_ = deferred; }

  Result<std::vector<std::string>> SubjectsWithStaleIndexes(uint32_t master,
                                                            const std::string& after_id,
                                                            size_t limit) override {
    PgQuery q(c_,
              "SELECT DISTINCT subject_id FROM blind_index WHERE subject_id > $1 AND master <> 0 "
              "AND master <> $2 ORDER BY subject_id LIMIT $3");
    q.Text(after_id).Int(master).Int(static_cast<int64_t>(limit));
    return q.Texts();
  }

  Result<std::vector<std::string>> StaleIndexesOf(const std::string& subject_id,
                                                  uint32_t master) override {
    PgQuery q(c_,
              "SELECT field FROM blind_index WHERE subject_id = $1 AND master <> 0 AND "
              "master <> $2 ORDER BY field");
    q.Text(subject_id).Int(master);
    return q.Texts();
  }

  Result<int64_t> CountStaleIndexes(uint32_t master) override {
    PgQuery q(c_, "SELECT COUNT(*) FROM blind_index WHERE master <> 0 AND master <> $1");
    q.Int(master);
    return q.FirstInt(0);
  }

  Result<std::vector<DuplicatePair>> SharedMatchKeys(const std::string& after_first,
                                                     const std::string& after_second,
                                                     size_t limit) override {
    PgQuery q(c_,
              "SELECT a.subject_id, b.subject_id, "
              "string_agg(substr(a.field, 2), '|' ORDER BY a.field) "
              "FROM blind_index a JOIN blind_index b ON b.field = a.field AND b.digest = a.digest "
              "AND b.subject_id > a.subject_id "
              "WHERE a.field >= '=' AND a.field < '>' AND (a.subject_id, b.subject_id) > ($1, $2) "
              "GROUP BY a.subject_id, b.subject_id ORDER BY a.subject_id, b.subject_id LIMIT $3");
    q.Text(after_first).Text(after_second).Int(static_cast<int64_t>(limit));
    return q.Rows<DuplicatePair>([](const PgRow& r) {
      return DuplicatePair{r.Text(0), r.Text(1), SplitList(r.Text(2), '|')};
    });
  }

  Result<std::vector<SubjectRow>> SubjectsNotWrappedBy(uint32_t version, size_t limit) override {
    PgQuery q(c_, std::string("SELECT ") + kSubjectColumns +
                      " FROM subjects WHERE root_key_version <> $1 ORDER BY id LIMIT $2");
    q.Int(version).Int(static_cast<int64_t>(limit));
    return q.Rows<SubjectRow>(SubjectFrom);
  }

  Result<std::map<uint32_t, int64_t>> CountByRootKeyVersion() override {
    PgQuery q(c_, "SELECT root_key_version, COUNT(*) FROM subjects GROUP BY root_key_version");
    GARDE_ASSIGN_OR_RETURN(auto rows, q.Rows<std::pair<uint32_t, int64_t>>([](const PgRow& r) {
      return std::make_pair(static_cast<uint32_t>(r.Int(0)), r.Int(1));
    }));
    return std::map<uint32_t, int64_t>(rows.begin(), rows.end());
  }

  Result<int64_t> CountSubjects() override {
    PgQuery q(c_, "SELECT COUNT(*) FROM subjects");
    return q.FirstInt(0);
  }

  Result<std::vector<SubjectRow>> ScanSubjects(const std::string& after_id, size_t limit) override {
    PgQuery q(c_, std::string("SELECT ") + kSubjectColumns +
                      " FROM subjects WHERE id > $1 ORDER BY id LIMIT $2");
    q.Text(after_id).Int(static_cast<int64_t>(limit));
    return q.Rows<SubjectRow>(SubjectFrom);
  }

  Result<std::vector<Bytes>> IndexDigestsOf(const std::string& subject_id,
                                            const std::string& field) override {
    PgQuery q(c_, "SELECT digest FROM blind_index WHERE subject_id = $1 AND field = $2");
    q.Text(subject_id).Text(field);
    return q.Rows<Bytes>([](const PgRow& r) { return r.Blob(0); });
  }

  Result<ChangeTail> ChangesAfter(int64_t after_seq, size_t limit) override {
    ChangeTail tail;
    {
      PgQuery q(c_, "SELECT value FROM counters WHERE name = 'vault_changes'");
      GARDE_ASSIGN_OR_RETURN(auto last, q.FirstInt(0));
      tail.last_seq = last;
    }
    if (tail.last_seq <= after_seq) return tail;
    if (static_cast<uint64_t>(tail.last_seq - after_seq) > limit) {
      tail.complete = false;
      return tail;
    }
    PgQuery q(c_, "SELECT seq, subject_id FROM vault_changes WHERE seq > $1 ORDER BY seq");
    q.Int(after_seq);
    GARDE_ASSIGN_OR_RETURN(auto changes,
                           q.Rows<std::pair<int64_t, std::string>>(
                               [](const PgRow& r) { return std::make_pair(r.Int(0), r.Text(1)); }));
    tail.changes = std::move(changes);
    tail.complete = !tail.changes.empty() && tail.changes.front().first == after_seq + 1 &&
                    tail.changes.back().first == tail.last_seq;
    return tail;
  }

  Result<int64_t> ShredCount() override {
    PgQuery q(c_, "SELECT count FROM shreds WHERE id = 0");
    return q.FirstInt(0);
  }

  Result<std::optional<SnapshotKeyRow>> GetSnapshotKey(const std::string& name) override {
    PgQuery q(c_,
              "SELECT name, key_id, root_key_version, wrapped_key FROM snapshot_keys "
              "WHERE name = $1");
    q.Text(name);
    return q.First<SnapshotKeyRow>([](const PgRow& r) {
      return SnapshotKeyRow{r.Text(0), r.Text(1), static_cast<uint32_t>(r.Int(2)), r.Blob(3)};
    });
  }

  Result<std::vector<InteractionRow>> InteractionsOf(const std::string& subject_id,
                                                     int64_t since) override {
    PgQuery q(c_,
              "SELECT subject_id, kind, at, sealed_amount, seq FROM interactions "
              "WHERE subject_id = $1 AND at >= $2 ORDER BY at, seq");
    q.Text(subject_id).Int(since);
    return q.Rows<InteractionRow>([](const PgRow& r) {
      return InteractionRow{r.Text(0), r.Text(1), r.Int(2), r.IsNull(3) ? Bytes() : r.Blob(3),
                            r.Int(4)};
    });
  }

  Result<std::vector<std::string>> PurchasersBetween(int64_t since, int64_t until,
                                                     const std::string& after_id,
                                                     size_t limit) override {
    PgQuery q(c_,
              "SELECT DISTINCT subject_id FROM interactions WHERE kind = 'purchase' AND at >= $1 "
              "AND at < $2 AND subject_id > $3 ORDER BY subject_id LIMIT $4");
    q.Int(since).Int(until).Text(after_id).Int(static_cast<int64_t>(limit));
    return q.Texts();
  }

  Result<std::vector<ContactLinkRow>> LinksOf(const std::string& subject_id) override {
    PgQuery q(c_,
              "SELECT organisation_id, person_id, role, created_at FROM contact_links "
              "WHERE organisation_id = $1 OR person_id = $1 ORDER BY created_at, person_id");
    q.Text(subject_id);
    return q.Rows<ContactLinkRow>([](const PgRow& r) {
      return ContactLinkRow{r.Text(0), r.Text(1), r.Text(2), r.Int(3)};
    });
  }

  Result<std::map<int64_t, std::string>> ImportedRows(const std::string& import_id) override {
    PgQuery q(c_, "SELECT row, subject_id FROM import_rows WHERE import_id = $1");
    q.Text(import_id);
    GARDE_ASSIGN_OR_RETURN(auto rows, q.Rows<std::pair<int64_t, std::string>>([](const PgRow& r) {
      return std::make_pair(r.Int(0), r.Text(1));
    }));
    return std::map<int64_t, std::string>(rows.begin(), rows.end());
  }

  Status InsertSubject(const SubjectRow& r) override {
    PgQuery q(c_, std::string("INSERT INTO subjects(") + kSubjectColumns +
                      ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)");
    q.Text(r.id)
        .Text(r.kind)
        .Text(r.status)
        .Text(r.source)
        .Int(r.created_at)
        .Int(r.updated_at)
        .Int(r.last_interaction_at)
        .Int(r.root_key_version)
        .Int(r.dek_version)
        .Blob(r.wrapped_dek);
    return q.Send();
  }

  Status UpdateSubject(const SubjectRow& r) override {
    PgQuery q(c_,
              "UPDATE subjects SET status = $1, source = $2, updated_at = $3, "
              "last_interaction_at = $4 WHERE id = $5");
    q.Text(r.status).Text(r.source).Int(r.updated_at).Int(r.last_interaction_at).Text(r.id);
    return q.Send();
  }

  Status PutField(const std::string& id, const SealedField& f) override {
    PgQuery q(c_,
              "INSERT INTO subject_fields(subject_id, field, box) VALUES($1,$2,$3) "
              "ON CONFLICT(subject_id, field) DO UPDATE SET box = excluded.box");
    q.Text(id).Text(f.field).Blob(f.box);
    return q.Send();
  }

  Status DeleteField(const std::string& id, const std::string& field) override {
    PgQuery q(c_, "DELETE FROM subject_fields WHERE subject_id = $1 AND field = $2");
    q.Text(id).Text(field);
    return q.Send();
  }

  // The subject's entry for the field replaced in one statement (a create's three indexes: three
  // statements, not six). The insert reads the delete's count, so that the delete runs first:
  // a data-modifying WITH nobody reads runs after the main statement, whose insert of the same
  // key would then collide with the row still there.
  Status PutIndex(const std::string& id, const IndexEntry& e) override {
    PgQuery q(c_,
              "WITH gone AS (DELETE FROM blind_index WHERE subject_id = $3 AND field = $1 "
              "RETURNING 1) INSERT INTO blind_index(field, digest, subject_id, master) "
              "SELECT $1, $2, $3, $4 FROM (SELECT COUNT(*) FROM gone) AS deleted");
    q.Text(e.field).Blob(e.digest).Text(id).Int(e.master);
    return q.Send();
  }

  // A subject just inserted has no fields nor entries yet: plain inserts, one statement per
  // table (a create: two instead of six, and no speculative insertion nor delete per row).
  Status PutNewSubjectRows(const std::string& id, const std::vector<SealedField>& fields,
                           const std::vector<IndexEntry>& entries) override {
    PgArray names(PgArray::kText), boxes(PgArray::kBytea);
    for (const SealedField& f : LastPerField(fields)) {
      names.Text(f.field);
      boxes.Blob(f.box);
    }
    if (names.size() > 0) {
      PgQuery q(c_,
                "INSERT INTO subject_fields(subject_id, field, box) "
                "SELECT $1, * FROM unnest($2::text[], $3::bytea[])");
      q.Text(id).Binary(names.Take()).Binary(boxes.Take());
      GARDE_RETURN_IF_ERROR(q.Send());
    }
    PgArray digests(PgArray::kBytea), masters(PgArray::kBigint);
    for (const IndexEntry& e : LastPerField(entries)) {
      names.Text(e.field);
      digests.Blob(e.digest);
      masters.Int(e.master);
    }
    if (names.size() == 0) return Status::Ok();
    PgQuery q(c_,
              "INSERT INTO blind_index(field, digest, subject_id, master) "
              "SELECT f, d, $1, m "
              "FROM unnest($2::text[], $3::bytea[], $4::bigint[]) AS t(f, d, m)");
    q.Text(id).Binary(names.Take()).Binary(digests.Take()).Binary(masters.Take());
    return q.Send();
  }

  Status DeleteIndex(const std::string& id, const std::string& field) override {
    PgQuery q(c_, "DELETE FROM blind_index WHERE subject_id = $1 AND field = $2");
    q.Text(id).Text(field);
    return q.Send();
  }

  Status DeleteIndexesOf(const std::string& subject_id) override {
    PgQuery q(c_, "DELETE FROM blind_index WHERE subject_id = $1");
    q.Text(subject_id);
    return q.Send();
  }

  Result<bool> PutSnapshotKey(const SnapshotKeyRow& key, int64_t shreds) override {
    GARDE_ASSIGN_OR_RETURN(auto now, ShredCount());
    if (now != shreds) return false;
    PgQuery q(c_,
              "INSERT INTO snapshot_keys(name, key_id, root_key_version, wrapped_key) "
              "VALUES($1,$2,$3,$4) ON CONFLICT(name) DO UPDATE SET key_id = excluded.key_id, "
              "root_key_version = excluded.root_key_version, wrapped_key = excluded.wrapped_key");
    q.Text(key.name).Text(key.key_id).Int(key.root_key_version).Blob(key.wrapped_key);
    GARDE_RETURN_IF_ERROR(q.Run());
    return true;
  }

  Status ShredDataKey(const std::string& subject_id) override {
    PgQuery q(c_, "UPDATE subjects SET wrapped_dek = ''::bytea WHERE id = $1");
    q.Text(subject_id);
    return q.Run();
  }

  Result<bool> RewrapDataKey(const std::string& id, uint32_t from, uint32_t to,
                             const Bytes& wrapped) override {
    PgQuery q(c_,
              "UPDATE subjects SET root_key_version = $1, wrapped_dek = $2 "
              "WHERE id = $3 AND root_key_version = $4");
    q.Int(to).Blob(wrapped).Text(id).Int(from);
    GARDE_RETURN_IF_ERROR(q.Run());
    return q.affected() == 1;
  }

  Result<bool> ReplaceDataKey(const std::string& id, uint32_t from_dek, uint32_t root, uint32_t dek,
                              const Bytes& wrapped) override {
    PgQuery q(c_,
              "UPDATE subjects SET root_key_version = $1, dek_version = $2, wrapped_dek = $3 "
              "WHERE id = $4 AND dek_version = $5");
    q.Int(root).Int(dek).Blob(wrapped).Text(id).Int(from_dek);
    GARDE_RETURN_IF_ERROR(q.Run());
    return q.affected() == 1;
  }

  Status ResealInteraction(int64_t seq, const Bytes& sealed_amount) override {
    PgQuery q(c_, "UPDATE interactions SET sealed_amount = $1 WHERE seq = $2");
    q.Blob(sealed_amount).Int(seq);
    return q.Run();
  }

  Result<int64_t> InsertInteraction(const InteractionRow& r) override {
    PgQuery q(c_,
              "INSERT INTO interactions(subject_id, kind, at, sealed_amount) VALUES($1,$2,$3,$4) "
              "RETURNING seq");
    q.Text(r.subject_id).Text(r.kind).Int(r.at);
    if (r.sealed_amount.empty()) {
      q.Null();
    } else {
      q.Blob(r.sealed_amount);
    }
    return q.FirstInt(0);
  }

  Status DeleteInteraction(int64_t seq) override {
    PgQuery q(c_, "DELETE FROM interactions WHERE seq = $1");
    q.Int(seq);
    return q.Run();
  }

  Status DeleteInteractionsOf(const std::string& subject_id) override {
    PgQuery q(c_, "DELETE FROM interactions WHERE subject_id = $1");
    q.Text(subject_id);
    return q.Run();
  }

  Status PutLink(const ContactLinkRow& r) override {
    PgQuery q(c_,
              "INSERT INTO contact_links(organisation_id, person_id, role, created_at) "
              "VALUES($1,$2,$3,$4) ON CONFLICT(organisation_id, person_id) DO UPDATE SET "
              "role = excluded.role");
    q.Text(r.organisation_id).Text(r.person_id).Text(r.role).Int(r.created_at);
    return q.Run();
  }

  Result<bool> DeleteLink(const std::string& organisation_id,
                          const std::string& person_id) override {
    PgQuery q(c_, "DELETE FROM contact_links WHERE organisation_id = $1 AND person_id = $2");
    q.Text(organisation_id).Text(person_id);
    GARDE_RETURN_IF_ERROR(q.Run());
    return q.affected() > 0;
  }

  Status DeleteLinksOf(const std::string& subject_id) override {
    PgQuery q(c_, "DELETE FROM contact_links WHERE organisation_id = $1 OR person_id = $1");
    q.Text(subject_id);
    return q.Run();
  }

  Status InsertImportRow(const std::string& import_id, int64_t row,
                         const std::string& subject_id) override {
    PgQuery q(c_, "INSERT INTO import_rows(import_id, row, subject_id) VALUES($1,$2,$3)");
    q.Text(import_id).Int(row).Text(subject_id);
    return q.Send();
  }

  // ---- API keys ----

  Result<std::optional<ApiKeyRow>> FindApiKeyByHash(const Bytes& hash) override {
    PgQuery q(c_, std::string("SELECT ") + kApiKeyColumns + " FROM api_keys WHERE key_hash = $1");
    q.Blob(hash);
    return q.First<ApiKeyRow>(ApiKeyFrom);
  }

  Result<std::optional<ConsoleSessionRow>> GetConsoleSession(const Bytes& cookie_hash) override {
    PgQuery q(c_,
              "SELECT key_id, role, activities, client, csrf, lang, signed_in_at, last_seen "
              "FROM console_sessions WHERE cookie_hash = $1");
    q.Blob(cookie_hash);
    return q.First<ConsoleSessionRow>([&](const PgRow& r) {
      return ConsoleSessionRow{cookie_hash, r.Text(0), r.Text(1), r.Text(2), r.Text(3),
                               r.Text(4),   r.Text(5), r.Int(6),  r.Int(7)};
    });
  }

  Result<std::vector<ApiKeyRow>> ListApiKeys() override {
    PgQuery q(c_,
              std::string("SELECT ") + kApiKeyColumns + " FROM api_keys ORDER BY created_at, id");
    return q.Rows<ApiKeyRow>(ApiKeyFrom);
  }

  Status InsertApiKey(const ApiKeyRow& r) override {
    PgQuery q(c_, std::string("INSERT INTO api_keys(") + kApiKeyColumns +
                      ") VALUES($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING");
    q.Text(r.id)
        .Text(r.name)
        .Text(r.role)
        .Text(JoinList(r.activities, ' '))
        .Blob(r.key_hash)
        .Int(r.created_at)
        .Int(r.revoked_at)
        .Int(r.hash_master);
    return InsertedOrConflict(q);
  }

  Result<int64_t> CountConsoleSessions() override {
    PgQuery q(c_, "SELECT COUNT(*) FROM console_sessions");
    return q.FirstInt(0);
  }

  Status PutConsoleSession(const ConsoleSessionRow& r) override {
    PgQuery q(c_,
              "INSERT INTO console_sessions(cookie_hash, key_id, role, activities, client, csrf, "
              "lang, signed_in_at, last_seen) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9) "
              "ON CONFLICT(cookie_hash) DO UPDATE SET key_id = excluded.key_id, "
              "role = excluded.role, activities = excluded.activities, client = excluded.client, "
              "csrf = excluded.csrf, lang = excluded.lang, signed_in_at = excluded.signed_in_at, "
              "last_seen = excluded.last_seen");
    q.Blob(r.cookie_hash)
        .Text(r.key_id)
        .Text(r.role)
        .Text(r.activities)
        .Text(r.client)
        .Text(r.csrf)
        .Text(r.lang)
        .Int(r.signed_in_at)
        .Int(r.last_seen);
    return q.Send();
  }

  Status DeleteConsoleSession(const Bytes& cookie_hash) override {
    PgQuery q(c_, "DELETE FROM console_sessions WHERE cookie_hash = $1");
    q.Blob(cookie_hash);
    return q.Send();
  }

  Status DeleteExpiredConsoleSessions(int64_t idle_before, int64_t signed_in_before) override {
    PgQuery q(c_, "DELETE FROM console_sessions WHERE last_seen < $1 OR signed_in_at < $2");
    q.Int(idle_before).Int(signed_in_before);
    return q.Send();
  }

  Status RevokeApiKey(const std::string& id, int64_t at) override {
    PgQuery q(c_, "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at = 0");
    q.Int(at).Text(id);
    GARDE_RETURN_IF_ERROR(q.Run());
    if (q.affected() == 0) return NotFound("no active API key " + id);
    // Every node forgets the keys it verified (KeysEpoch): a counter for strict reads, a
    // notification for the others.
    PgQuery counted(c_,
                    "INSERT INTO counters(name, value) VALUES ('api_key_revocations', 1) "
                    "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1");
    GARDE_RETURN_IF_ERROR(counted.Run());
    PgQuery told(c_, "SELECT pg_notify('garde_keys', '')");
    return told.Run();
  }

  Result<bool> RehashApiKey(const std::string& id, const Bytes& from, const Bytes& to,
                            uint32_t master) override {
    PgQuery q(c_,
              "UPDATE api_keys SET key_hash = $1, hash_master = $2 WHERE id = $3 AND "
              "key_hash = $4");
    q.Blob(to).Int(master).Text(id).Blob(from);
    GARDE_RETURN_IF_ERROR(q.Run());
    return q.affected() > 0;
  }

  // ---- Consent and suppression ----

  Result<std::vector<ConsentEventRow>> ConsentEventsOf(const std::string& subject_id) override {
    PgQuery q(c_,
              "SELECT id, subject_id, purpose, channel, event, legal_basis, notice_version, "
              "method, actor, at, expires_at, receipt FROM consent_events WHERE subject_id = $1 "
              "ORDER BY at, rowid");
    q.Text(subject_id);
    return q.Rows<ConsentEventRow>([](const PgRow& r) {
      return ConsentEventRow{r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Text(4), r.Text(5),
                             r.Text(6), r.Text(7), r.Text(8), r.Int(9),  r.Int(10), r.Text(11)};
    });
  }

  Status ScanConsentFacts(const std::string& first_id, const std::string& last_id,
                          const FactVisitor& fn) override {
    PgQuery q(c_,
              "SELECT subject_id, purpose, channel, event, at, expires_at FROM consent_events "
              "WHERE subject_id >= $1 AND subject_id <= $2 ORDER BY subject_id, at, rowid");
    q.Text(first_id).Text(last_id);
    GARDE_RETURN_IF_ERROR(q.Run());
    for (int i = 0; i < q.rows(); ++i) {
      const PgRow r = q.row(i);
      fn(r.View(0), ConsentFactRow{r.Text(1), r.Text(2), r.Text(3), r.Int(4), r.Int(5)});
    }
    return Status::Ok();
  }

  Result<std::optional<ConsentConfirmationRow>> GetConsentConfirmation(
      const std::string& id) override {
    PgQuery q(c_, std::string("SELECT ") + kConfirmationColumns +
                      " FROM consent_confirmations WHERE id = $1");
    q.Text(id);
    return q.First<ConsentConfirmationRow>(ConfirmationFrom);
  }

  Result<std::vector<ConsentConfirmationRow>> PendingConfirmationsOf(
      const std::string& subject_id) override {
    PgQuery q(c_, std::string("SELECT ") + kConfirmationColumns +
                      " FROM consent_confirmations WHERE subject_id = $1 AND status = 'pending' "
                      "ORDER BY requested_at, id");
    q.Text(subject_id);
    return q.Rows<ConsentConfirmationRow>(ConfirmationFrom);
  }

  Result<std::vector<std::string>> ObjectedPurposesOf(const std::string& subject_id) override {
    PgQuery q(c_,
              "SELECT DISTINCT purpose FROM consent_events WHERE subject_id = $1 AND "
              "event = 'objected' ORDER BY purpose");
    q.Text(subject_id);
    return q.Texts();
  }

  Result<bool> IsSuppressed(const std::string& kind, const Bytes& digest) override {
    PgQuery q(c_, "SELECT 1 FROM suppressions WHERE kind = $1 AND digest = $2");
    q.Text(kind).Blob(digest);
    GARDE_RETURN_IF_ERROR(q.Run());
    return q.rows() > 0;
  }

  Result<std::vector<std::string>> SuppressedContactsOf(const std::string& subject_id) override {
    PgQuery q(c_,
              "SELECT DISTINCT s.kind FROM blind_index b JOIN suppressions s "
              "ON s.kind = substr(b.field, 2) AND s.digest = b.digest "
              "WHERE b.subject_id = $1 AND b.field >= '~' AND b.field < chr(127) ORDER BY s.kind");
    q.Text(subject_id);
    return q.Texts();
  }

  Result<std::vector<std::pair<std::string, std::string>>> SuppressedContactsIn(
      const std::string& from_id, const std::string& before_id) override {
    PgQuery q(c_,
              "SELECT DISTINCT b.subject_id, s.kind FROM suppressions s JOIN blind_index b "
              "ON b.field = '~' || s.kind AND b.digest = s.digest "
              "WHERE b.subject_id >= $1 AND ($2::text = '' OR b.subject_id < $2) "
              "ORDER BY b.subject_id, s.kind");
    q.Text(from_id).Text(before_id);
    return q.Rows<std::pair<std::string, std::string>>(
        [](const PgRow& r) { return std::make_pair(r.Text(0), r.Text(1)); });
  }

  Status InsertConsentEvent(const ConsentEventRow& r) override {
    PgQuery q(c_,
              "INSERT INTO consent_events(id, subject_id, purpose, channel, event, legal_basis, "
              "notice_version, method, actor, at, expires_at, receipt) "
              "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)");
    q.Text(r.id)
        .Text(r.subject_id)
        .Text(r.purpose)
        .Text(r.channel)
        .Text(r.event)
        .Text(r.legal_basis)
        .Text(r.notice_version)
        .Text(r.method)
        .Text(r.actor)
        .Int(r.at)
        .Int(r.expires_at)
        .Text(r.receipt);
    return q.Send();
  }

  Status PutConsentConfirmation(const ConsentConfirmationRow& r) override {
    PgQuery q(c_, std::string("INSERT INTO consent_confirmations(") + kConfirmationColumns +
                      ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT(id) DO UPDATE "
                      "SET subject_id = excluded.subject_id, purpose = excluded.purpose, "
                      "channel = excluded.channel, notice_version = excluded.notice_version, "
                      "method = excluded.method, actor = excluded.actor, "
                      "status = excluded.status, requested_at = excluded.requested_at, "
                      "expires_at = excluded.expires_at, confirmed_at = excluded.confirmed_at, "
                      "event_id = excluded.event_id");
    q.Text(r.id)
        .Text(r.subject_id)
        .Text(r.purpose)
        .Text(r.channel)
        .Text(r.notice_version)
        .Text(r.method)
        .Text(r.actor)
        .Text(r.status)
        .Int(r.requested_at)
        .Int(r.expires_at)
        .Int(r.confirmed_at)
        .Text(r.event_id);
    return q.Run();
  }

  Status PutSuppression(const std::string& kind, const Bytes& digest, const std::string& reason,
                        int64_t at) override {
    PgQuery q(c_,
              "INSERT INTO suppressions(kind, digest, reason, at) VALUES($1,$2,$3,$4) "
              "ON CONFLICT DO NOTHING");
    q.Text(kind).Blob(digest).Text(reason).Int(at);
    return q.Run();
  }

  Status DeleteConsentEventsOf(const std::string& subject_id) override {
    {
      PgQuery q(c_, "DELETE FROM consent_events WHERE subject_id = $1");
      q.Text(subject_id);
      GARDE_RETURN_IF_ERROR(q.Run());
    }
    PgQuery q(c_, "DELETE FROM consent_confirmations WHERE subject_id = $1");
    q.Text(subject_id);
    return q.Run();
  }

  // ---- Requests, tombstones, merges, records ----

  Result<std::optional<RequestRow>> GetRequest(const std::string& id) override {
    PgQuery q(c_, RequestSelect(true) + " WHERE id = $1");
    q.Text(id);
    return q.First<RequestRow>(RequestFrom);
  }

  Result<std::vector<RequestRow>> QueryRequests(const RequestQuery& rq) override {
    std::string sql = RequestSelect(false) + " WHERE true";
    int n = 0;
    auto param = [&] { return "$" + std::to_string(++n); };
    if (!rq.statuses.empty()) {
      sql += " AND status IN (";
      for (size_t i = 0; i < rq.statuses.size(); ++i) sql += (i == 0 ? "" : ",") + param();
      sql += ")";
    }
    if (!rq.type.empty()) sql += " AND type = " + param();
    if (!rq.subject.empty()) sql += " AND subject_id = " + param();
    if (rq.due_before != 0) sql += " AND due_at < " + param();
    if (rq.after) {
      const std::string due = param();
      sql += " AND (due_at, id) > (" + due + ", " + param() + ")";
    }
    sql += " ORDER BY due_at, id LIMIT " + param();
    PgQuery q(c_, sql);
    for (const auto& s : rq.statuses) q.Text(s);
    if (!rq.type.empty()) q.Text(rq.type);
    if (!rq.subject.empty()) q.Text(rq.subject);
    if (rq.due_before != 0) q.Int(rq.due_before);
    if (rq.after) q.Int(rq.after->first).Text(rq.after->second);
    q.Int(static_cast<int64_t>(rq.limit));
    return q.Rows<RequestRow>(RequestFrom);
  }

  Result<std::pair<int64_t, int64_t>> CountOpenRequests(int64_t now) override {
    PgQuery q(c_,
              "SELECT COUNT(*), COUNT(*) FILTER (WHERE due_at < $1) FROM requests "
              "WHERE status NOT IN ('completed', 'rejected')");
    q.Int(now);
    GARDE_RETURN_IF_ERROR(q.Run());
    return std::make_pair(q.row(0).Int(0), q.row(0).Int(1));
  }

  Status InsertRequest(const RequestRow& r) override {
    PgQuery q(c_, std::string("INSERT INTO requests(") + kRequestColumns +
                      ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) "
                      "ON CONFLICT DO NOTHING");
    q.Text(r.id)
        .Text(r.type)
        .Text(r.subject_id)
        .Text(r.status)
        .Text(r.jurisdiction)
        .Text(r.opened_by)
        .Text(r.verification)
        .Int(r.received_at)
        .Int(r.verified_at)
        .Int(r.due_at)
        .Int(r.completed_at)
        .Int(r.extended ? 1 : 0)
        .Blob(r.sealed)
        .Blob(r.package)
        .Text(r.result);
    return InsertedOrConflict(q);
  }

  Status UpdateRequest(const RequestRow& r) override {
    PgQuery q(c_,
              "UPDATE requests SET status = $1, jurisdiction = $2, opened_by = $3, "
              "verification = $4, verified_at = $5, due_at = $6, completed_at = $7, "
              "extended = $8, sealed = $9, package = $10, result = $11 WHERE id = $12");
    q.Text(r.status)
        .Text(r.jurisdiction)
        .Text(r.opened_by)
        .Text(r.verification)
        .Int(r.verified_at)
        .Int(r.due_at)
        .Int(r.completed_at)
        .Int(r.extended ? 1 : 0)
        .Blob(r.sealed)
        .Blob(r.package)
        .Text(r.result)
        .Text(r.id);
    GARDE_RETURN_IF_ERROR(q.Run());
    if (q.affected() == 0) return NotFound("no request " + r.id);
    return Status::Ok();
  }

  Status ReassignRequest(const std::string& id, const std::string& subject_id, const Bytes& sealed,
                         const Bytes& package) override {
    PgQuery q(c_, "UPDATE requests SET subject_id = $1, sealed = $2, package = $3 WHERE id = $4");
    q.Text(subject_id).Blob(sealed).Blob(package).Text(id);
    GARDE_RETURN_IF_ERROR(q.Run());
    if (q.affected() == 0) return NotFound("no request " + id);
    return Status::Ok();
  }

  Result<std::vector<TombstoneRow>> ListTombstones(int64_t since) override {
    PgQuery q(c_,
              "SELECT subject_id, request_id, at, kept FROM tombstones WHERE at >= $1 "
              "ORDER BY at, subject_id");
    q.Int(since);
    return q.Rows<TombstoneRow>([](const PgRow& r) {
      return TombstoneRow{r.Text(0), r.Text(1), r.Int(2), SplitList(r.Text(3), ',')};
    });
  }

  Result<std::optional<TombstoneLogMark>> GetTombstoneLogMark(const std::string& log) override {
    PgQuery q(c_, "SELECT applied_to, digest FROM tombstone_log_marks WHERE log = $1");
    q.Text(log);
    GARDE_ASSIGN_OR_RETURN(auto rows, q.Rows<TombstoneLogMark>([&](const PgRow& r) {
      return TombstoneLogMark{log, r.Int(0), r.Blob(1)};
    }));
    if (rows.empty()) return std::optional<TombstoneLogMark>();
    return std::optional<TombstoneLogMark>(std::move(rows.front()));
  }

  Status InsertTombstone(const TombstoneRow& r) override {
    PgQuery q(c_,
              "INSERT INTO tombstones(subject_id, request_id, at, kept) VALUES($1,$2,$3,$4) "
              "ON CONFLICT(subject_id) DO UPDATE SET request_id = excluded.request_id, "
              "at = excluded.at, kept = excluded.kept");
    q.Text(r.subject_id).Text(r.request_id).Int(r.at).Text(JoinList(r.kept, ','));
    return q.Send();
  }

  Status PutTombstoneLogMark(const TombstoneLogMark& m) override {
    PgQuery q(c_,
              "INSERT INTO tombstone_log_marks(log, applied_to, digest) VALUES($1,$2,$3) "
              "ON CONFLICT(log) DO UPDATE SET applied_to = excluded.applied_to, "
              "digest = excluded.digest");
    q.Text(m.log).Int(m.applied_to).Blob(m.digest);
    return q.Run();
  }

  Result<std::optional<MergeRow>> GetMerge(const std::string& id) override {
    PgQuery q(c_, std::string(kMergeSelect) + "WHERE id = $1");
    q.Text(id);
    return q.First<MergeRow>(MergeFrom);
  }

  Result<std::vector<MergeRow>> MergesOf(const std::string& merged_id) override {
    PgQuery q(c_, std::string(kMergeSelect) +
                      "WHERE merged_id = $1 ORDER BY created_at DESC, rowid DESC");
    q.Text(merged_id);
    return q.Rows<MergeRow>(MergeFrom);
  }

  Result<std::vector<MergeRow>> MergesInto(const std::string& into_id) override {
    PgQuery q(c_, std::string(kMergeSelect) + "WHERE into_id = $1 ORDER BY created_at, rowid");
    q.Text(into_id);
    return q.Rows<MergeRow>(MergeFrom);
  }

  Result<std::vector<MergeRow>> OpenMergesBefore(int64_t before, size_t limit) override {
    PgQuery q(c_, std::string(kMergeSelect) +
                      "WHERE state = 'merged' AND created_at < $1 ORDER BY created_at, rowid "
                      "LIMIT $2");
    q.Int(before).Int(static_cast<int64_t>(limit));
    return q.Rows<MergeRow>(MergeFrom);
  }

  Status PutMerge(const MergeRow& r) override {
    PgQuery q(c_,
              "INSERT INTO merges(id, merged_id, into_id, state, actor, created_at, finished_at, "
              "record, sealed) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT(id) DO UPDATE SET "
              "state = excluded.state, finished_at = excluded.finished_at, "
              "record = excluded.record, sealed = excluded.sealed");
    q.Text(r.id)
        .Text(r.merged_id)
        .Text(r.into_id)
        .Text(r.state)
        .Text(r.actor)
        .Int(r.created_at)
        .Int(r.finished_at)
        .Text(r.record)
        .Blob(r.sealed);
    return q.Run();
  }

  Result<std::optional<IncidentRow>> GetIncident(const std::string& id) override {
    PgQuery q(c_, std::string("SELECT ") + kIncidentColumns + " FROM incidents WHERE id = $1");
    q.Text(id);
    return q.First<IncidentRow>(IncidentFrom);
  }

  Result<std::vector<IncidentRow>> ListIncidents() override {
    PgQuery q(c_, std::string("SELECT ") + kIncidentColumns +
                      " FROM incidents ORDER BY authority_due_at, id");
    return q.Rows<IncidentRow>(IncidentFrom);
  }

  Status PutIncident(const IncidentRow& r) override {
    PgQuery q(c_, std::string("INSERT INTO incidents(") + kIncidentColumns +
                      ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT(id) DO UPDATE SET "
                      "status = excluded.status, detected_at = excluded.detected_at, "
                      "aware_at = excluded.aware_at, authority_due_at = excluded.authority_due_at, "
                      "authority_notified_at = excluded.authority_notified_at, "
                      "subjects_notified_at = excluded.subjects_notified_at, "
                      "closed_at = excluded.closed_at, created_at = excluded.created_at, "
                      "updated_at = excluded.updated_at, sealed = excluded.sealed");
    q.Text(r.id)
        .Text(r.status)
        .Int(r.detected_at)
        .Int(r.aware_at)
        .Int(r.authority_due_at)
        .Int(r.authority_notified_at)
        .Int(r.subjects_notified_at)
        .Int(r.closed_at)
        .Int(r.created_at)
        .Int(r.updated_at)
        .Blob(r.sealed);
    return q.Run();
  }

  Result<std::optional<SegmentRow>> GetSegment(const std::string& name) override {
    PgQuery q(c_,
              "SELECT name, definition, created_by, created_at, updated_at FROM segments "
              "WHERE name = $1");
    q.Text(name);
    return q.First<SegmentRow>(SegmentFrom);
  }

  Result<std::vector<SegmentRow>> ListSegments() override {
    PgQuery q(c_,
              "SELECT name, definition, created_by, created_at, updated_at FROM segments "
              "ORDER BY name");
    return q.Rows<SegmentRow>(SegmentFrom);
  }

  Status PutSegment(const SegmentRow& r) override {
    PgQuery q(c_,
              "INSERT INTO segments(name, definition, created_by, created_at, updated_at) "
              "VALUES($1,$2,$3,$4,$5) ON CONFLICT(name) DO UPDATE SET "
              "definition = excluded.definition, updated_at = excluded.updated_at");
    q.Text(r.name).Text(r.definition).Text(r.created_by).Int(r.created_at).Int(r.updated_at);
    return q.Run();
  }

  Result<bool> DeleteSegment(const std::string& name) override {
    PgQuery q(c_, "DELETE FROM segments WHERE name = $1");
    q.Text(name);
    GARDE_RETURN_IF_ERROR(q.Run());
    return q.affected() > 0;
  }

  Result<std::vector<PolicyVersionRow>> ListPolicyVersions(size_t limit) override {
    PgQuery q(c_,
              "SELECT seq, content_hash, loaded_at, source, summary FROM policy_versions "
              "ORDER BY seq DESC LIMIT $1");
    q.Int(static_cast<int64_t>(limit));
    return q.Rows<PolicyVersionRow>([](const PgRow& r) {
      return PolicyVersionRow{r.Int(0), r.Text(1), r.Int(2), r.Text(3), r.Text(4)};
    });
  }

  Status InsertPolicyVersion(const PolicyVersionRow& r) override {
    PgQuery q(c_,
              "INSERT INTO policy_versions(content_hash, loaded_at, source, summary) "
              "VALUES($1,$2,$3,$4)");
    q.Text(r.content_hash).Int(r.loaded_at).Text(r.source).Text(r.summary);
    return q.Run();
  }

  Result<std::vector<RetentionRunRow>> ListRetentionRuns(int64_t before_seq,
                                                         size_t limit) override {
    PgQuery q(c_, std::string("SELECT ") + kRunColumns +
                      " FROM retention_runs WHERE $1::bigint = 0 OR seq < $1 "
                      "ORDER BY seq DESC LIMIT $2");
    q.Int(before_seq).Int(static_cast<int64_t>(limit));
    return q.Rows<RetentionRunRow>(RunFrom);
  }

  Result<std::optional<RetentionRunRow>> GetRetentionRun(const std::string& id) override {
    PgQuery q(c_, std::string("SELECT ") + kRunColumns + " FROM retention_runs WHERE id = $1");
    q.Text(id);
    return q.First<RetentionRunRow>(RunFrom);
  }

  Status PutRetentionRun(const RetentionRunRow& r) override {
    PgQuery q(c_,
              "INSERT INTO retention_runs(id, started_at, at, finished_at, dry_run, cursor, "
              "report) VALUES($1,$2,$3,$4,$5,$6,$7) ON CONFLICT(id) DO UPDATE SET "
              "finished_at = excluded.finished_at, cursor = excluded.cursor, "
              "report = excluded.report");
    q.Text(r.id)
        .Int(r.started_at)
        .Int(r.at)
        .Int(r.finished_at)
        .Int(r.dry_run ? 1 : 0)
        .Text(r.cursor)
        .Text(r.report);
    return q.Run();
  }

  // ---- Outbox and webhooks ----

  Result<std::vector<OutboxRow>> ListOutbox(int64_t after_seq, size_t limit) override {
    PgQuery q(c_,
              "SELECT id, topic, payload, created_at, seq FROM outbox WHERE seq > $1 "
              "ORDER BY seq LIMIT $2");
    q.Int(after_seq).Int(static_cast<int64_t>(limit));
    return q.Rows<OutboxRow>([](const PgRow& r) {
      return OutboxRow{r.Text(0), r.Text(1), r.Text(2), r.Int(3), r.Int(4)};
    });
  }

  Status InsertOutbox(const OutboxRow& r) override {
    PgQuery q(c_, "INSERT INTO outbox(id, topic, payload, created_at) VALUES($1,$2,$3,$4)");
    q.Text(r.id).Text(r.topic).Text(r.payload).Int(r.created_at);
    return q.Send();
  }

  Result<int64_t> WebhookMark(const std::string& endpoint) override {
    PgQuery q(c_, "SELECT outbox_seq FROM webhook_marks WHERE endpoint = $1");
    q.Text(endpoint);
    return q.FirstInt(0);
  }

  Status SetWebhookMark(const std::string& endpoint, int64_t seq) override {
    PgQuery q(c_,
              "INSERT INTO webhook_marks(endpoint, outbox_seq) VALUES($1,$2) "
              "ON CONFLICT(endpoint) DO UPDATE SET outbox_seq = excluded.outbox_seq");
    q.Text(endpoint).Int(seq);
    return q.Run();
  }

  Result<std::vector<DeliveryRow>> DueDeliveries(int64_t now, size_t limit) override {
    PgQuery q(c_, std::string("SELECT ") + kDeliveryColumns +
                      " FROM webhook_deliveries d WHERE status = 'pending' AND next_at <= $1 AND "
                      "(subject = '' OR NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE "
                      "e.endpoint = d.endpoint AND e.subject = d.subject AND e.status = 'pending' "
                      "AND e.id < d.id)) ORDER BY id LIMIT $2");
    q.Int(now).Int(static_cast<int64_t>(limit));
    return q.Rows<DeliveryRow>(DeliveryFrom);
  }

  Result<std::vector<DeliveryRow>> QueryDeliveries(const DeliveryQuery& dq) override {
    PgQuery q(c_, std::string("SELECT ") + kDeliveryColumns +
                      " FROM webhook_deliveries WHERE ($1::text = '' OR status = $1) AND "
                      "($2::text = '' OR endpoint = $2) AND id > $3 ORDER BY id LIMIT $4");
    q.Text(dq.status).Text(dq.endpoint).Int(dq.after_id).Int(static_cast<int64_t>(dq.limit));
    return q.Rows<DeliveryRow>(DeliveryFrom);
  }

  Result<std::optional<DeliveryRow>> GetDelivery(int64_t id) override {
    PgQuery q(c_,
              std::string("SELECT ") + kDeliveryColumns + " FROM webhook_deliveries WHERE id = $1");
    q.Int(id);
    return q.First<DeliveryRow>(DeliveryFrom);
  }

  Result<std::map<std::string, int64_t>> CountDeliveries() override {
    PgQuery q(c_, "SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status");
    GARDE_ASSIGN_OR_RETURN(auto rows, q.Rows<std::pair<std::string, int64_t>>([](const PgRow& r) {
      return std::make_pair(r.Text(0), r.Int(1));
    }));
    return std::map<std::string, int64_t>(rows.begin(), rows.end());
  }

  Status InsertDelivery(const DeliveryRow& r) override {
    PgQuery q(c_,
              "INSERT INTO webhook_deliveries(endpoint, event_id, topic, subject, payload, "
              "created_at, status, attempts, next_at) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9) "
              "ON CONFLICT DO NOTHING");
    q.Text(r.endpoint)
        .Text(r.event_id)
        .Text(r.topic)
        .Text(r.subject)
        .Text(r.payload)
        .Int(r.created_at)
        .Text(r.status)
        .Int(r.attempts)
        .Int(r.next_at);
    return q.Run();
  }

  Status UpdateDelivery(const DeliveryRow& r) override {
    PgQuery q(c_,
              "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_at = $3, "
              "last_error = $4, delivered_at = $5, created_at = $6 WHERE id = $7");
    q.Text(r.status)
        .Int(r.attempts)
        .Int(r.next_at)
        .Text(r.last_error)
        .Int(r.delivered_at)
        .Int(r.created_at)
        .Int(r.id);
    return q.Run();
  }

  // ---- Audit ----

  Result<uint64_t> AuditSize() override {
    PgQuery q(c_, "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_log");
    GARDE_ASSIGN_OR_RETURN(auto n, q.FirstInt(0));
    return static_cast<uint64_t>(n);
  }

  Result<Bytes> AuditNode(unsigned level, uint64_t index) override {
    PgQuery q(c_, level == 0 ? "SELECT leaf_hash FROM audit_log WHERE seq = $1"
                             : "SELECT hash FROM audit_nodes WHERE idx = $1 AND level = $2");
    q.Int(static_cast<int64_t>(index));
    if (level != 0) q.Int(level);
    GARDE_RETURN_IF_ERROR(q.Run());
    if (q.rows() == 0) {
      return NotFound("no audit tree node " + std::to_string(level) + "/" + std::to_string(index));
    }
    return q.row(0).Blob(0);
  }

  Result<std::vector<AuditRow>> QueryAudit(const AuditQuery& aq) override {
    std::string sql = "SELECT seq, entry, leaf_hash FROM audit_log WHERE true";
    std::vector<std::string> params;
    auto filter = [&](const std::string& value, const std::string& clause) {
      if (value.empty()) return;
      params.push_back(value);
      sql += clause + "$" + std::to_string(params.size());
    };
    filter(aq.subject, " AND subject = ");
    filter(aq.actor, " AND entry::jsonb ->> 'actor' = ");
    filter(aq.action, " AND entry::jsonb ->> 'action' = ");
    filter(aq.activity, " AND entry::jsonb ->> 'activity' = ");
    filter(aq.since, " AND entry::jsonb ->> 'time' >= ");
    filter(aq.until, " AND entry::jsonb ->> 'time' <= ");
    size_t n = params.size();
    if (aq.after_seq) sql += " AND seq > $" + std::to_string(++n);
    sql += " ORDER BY seq LIMIT $" + std::to_string(++n);
    PgQuery q(c_, sql);
    for (const auto& p : params) q.Text(p);
    if (aq.after_seq) q.Int(static_cast<int64_t>(*aq.after_seq));
    q.Int(static_cast<int64_t>(aq.limit));
    return q.Rows<AuditRow>([](const PgRow& r) {
      return AuditRow{static_cast<uint64_t>(r.Int(0)), r.Text(1), r.Blob(2), ""};
    });
  }

  Status ScanAudit(uint64_t from_seq, uint64_t to_seq,
                   const std::function<bool(const AuditRow&)>& fn) override {
    // In pages, so that a verification of millions of entries holds one page at a time.
    constexpr int64_t kPage = 4096;
    const auto end = static_cast<int64_t>(std::min<uint64_t>(to_seq, INT64_MAX));
    auto next = static_cast<int64_t>(std::min<uint64_t>(from_seq, INT64_MAX));
    AuditRow row;
    while (next < end) {
      PgQuery q(c_,
                "SELECT seq, entry, leaf_hash, subject FROM audit_log WHERE seq >= $1 AND "
                "seq < $2 ORDER BY seq LIMIT $3");
      q.Int(next).Int(end).Int(kPage);
      GARDE_RETURN_IF_ERROR(q.Run());
      for (int i = 0; i < q.rows(); ++i) {
        const PgRow r = q.row(i);
        row.seq = static_cast<uint64_t>(r.Int(0));
        row.entry = r.Text(1);
        row.leaf_hash = r.Blob(2);
        row.subject = r.IsNull(3) ? "" : r.Text(3);
        if (!fn(row)) return Status::Ok();
        next = static_cast<int64_t>(row.seq) + 1;
      }
      if (q.rows() < kPage) break;
    }
    return Status::Ok();
  }

  Result<std::vector<CheckpointRow>> ListCheckpoints() override {
    PgQuery q(c_, "SELECT size, root, time, note, actors FROM audit_checkpoints ORDER BY size");
    return q.Rows<CheckpointRow>(CheckpointFrom);
  }

  Result<std::vector<uint64_t>> AuditSeqsOfActor(const std::string& actor,
                                                 uint64_t below) override {
    PgQuery q(c_, "SELECT seq FROM audit_by_actor WHERE actor = $1 AND seq < $2 ORDER BY seq");
    q.Text(actor).Int(static_cast<int64_t>(std::min<uint64_t>(below, INT64_MAX)));
    return q.Rows<uint64_t>([](const PgRow& r) { return static_cast<uint64_t>(r.Int(0)); });
  }

  Result<std::optional<CheckpointRow>> LatestCheckpoint() override {
    PgQuery q(c_,
              "SELECT size, root, time, note, actors FROM audit_checkpoints "
              "ORDER BY size DESC LIMIT 1");
    return q.First<CheckpointRow>(CheckpointFrom);
  }

  // Audit rows come by the thousand (an import pass): they are held and sent as one
  // statement per table before the next statement of the transaction (PgConnection::HoldRows),
  // each statement a row cost PostgreSQL more than the row. Every row must be new: an existing
  // one is a unique violation, a conflict, as a row at a time. (Plain INSERTs: with ON CONFLICT
  // DO NOTHING each row was a speculative insertion, an index probe before it and a
  // confirmation after, a sixth of what PostgreSQL spent on an audited consent check.)
  Status InsertAuditEntry(const AuditRow& r) override {
    audit_.seq.Int(static_cast<int64_t>(r.seq));
    audit_.entry.Text(r.entry);
    audit_.leaf_hash.Blob(r.leaf_hash);
    if (r.subject.empty()) {
      audit_.subject.Null();
    } else {
      audit_.subject.Text(r.subject);
    }
    return HeldEnough();
  }

  Status InsertAuditNode(unsigned level, uint64_t index, const Bytes& hash) override {
    audit_.node_level.Int(level);
    audit_.node_index.Int(static_cast<int64_t>(index));
    audit_.node_hash.Blob(hash);
    return HeldEnough();
  }

  Status InsertAuditActor(const std::string& actor, uint64_t seq) override {
    audit_.actor.Text(actor);
    audit_.actor_seq.Int(static_cast<int64_t>(seq));
    return HeldEnough();
  }

  // The subject column of audit_log, indexed, is the subject index here.
  Status AppendAuditSubjectRun(std::vector<std::pair<std::string, uint64_t>>) override {
    return Status::Ok();
  }
  Result<bool> MergeAuditSubjectRuns() override { return false; }

  Status InsertCheckpoint(const CheckpointRow& r) override {
    PgQuery q(c_,
              "INSERT INTO audit_checkpoints(size, root, time, note, actors) "
              "VALUES($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING");
    q.Int(static_cast<int64_t>(r.size)).Blob(r.root).Int(r.time).Text(r.note).Text(r.actors);
    return q.Run();
  }

  Result<int64_t> CountPendingAudit() override {
    PgQuery q(c_, "SELECT COUNT(*) FROM audit_pending");
    return q.FirstInt(0);
  }

  Result<std::vector<PendingAuditRow>> ListPendingAudit(int64_t after_id, size_t limit) override {
    PgQuery q(c_,
              "SELECT id, at_ns, subject, tail FROM audit_pending WHERE id > $1 ORDER BY id "
              "LIMIT $2");
    q.Int(after_id).Int(static_cast<int64_t>(limit));
    return q.Rows<PendingAuditRow>([](const PgRow& r) {
      return PendingAuditRow{r.Int(0), r.Int(1), r.IsNull(2) ? "" : r.Text(2), r.Text(3)};
    });
  }

  Status InsertPendingAudit(const PendingAuditRow& r) override {
    PgQuery q(c_,
              "WITH n AS (UPDATE counters SET value = value + 1 WHERE name = 'audit_pending' "
              "RETURNING value) INSERT INTO audit_pending(id, at_ns, subject, tail) "
              "SELECT value, $1, $2, $3 FROM n");
    q.Int(r.at_ns);
    if (r.subject.empty()) {
      q.Null();
    } else {
      q.Text(r.subject);
    }
    q.Text(r.tail);
    return q.Send();
  }

  Status DeletePendingAudit(int64_t up_to_id) override {
    PgQuery q(c_, "DELETE FROM audit_pending WHERE id <= $1");
    q.Int(up_to_id);
    return q.Send();
  }

  Status ReservePendingAuditIds(int64_t id) override {
    PgQuery q(c_,
              "UPDATE counters SET value = GREATEST(value, $1::bigint) "
              "WHERE name = 'audit_pending'");
    q.Int(id);
    return q.Run();
  }

  Result<int64_t> AuditIntakeMark() override {
    PgQuery q(c_, "SELECT last_pending FROM audit_intake WHERE id = 0");
    return q.FirstInt(0);
  }

  Status SetAuditIntakeMark(int64_t id) override {
    PgQuery q(c_, "UPDATE audit_intake SET last_pending = $1 WHERE id = 0");
    q.Int(id);
    return q.Send();
  }

  Result<int64_t> JournalImportedTo(const std::string& name) override {
    PgQuery q(c_, "SELECT imported_to FROM audit_journals WHERE name = $1");
    q.Text(name);
    return q.FirstInt(0);
  }

  Status SetJournalImported(const std::string& name, int64_t offset) override {
    PgQuery q(c_,
              "INSERT INTO audit_journals(name, imported_to) VALUES($1,$2) "
              "ON CONFLICT(name) DO UPDATE SET imported_to = excluded.imported_to");
    q.Text(name).Int(offset);
    return q.Run();
  }

  Status ForgetJournal(const std::string& name) override {
    PgQuery q(c_, "DELETE FROM audit_journals WHERE name = $1");
    q.Text(name);
    return q.Run();
  }

 private:
  bool held_index_deferred_ = false;
  static CheckpointRow CheckpointFrom(const PgRow& r) {
    return {static_cast<uint64_t>(r.Int(0)), r.Blob(1), r.Int(2), r.Text(3), r.Text(4)};
  }

  struct HeldAuditRows {
    // audit_log
    PgArray seq{PgArray::kBigint}, entry{PgArray::kText}, leaf_hash{PgArray::kBytea},
        subject{PgArray::kText};
    // audit_nodes
    PgArray node_level{PgArray::kBigint}, node_index{PgArray::kBigint}, node_hash{PgArray::kBytea};
    // audit_by_actor
    PgArray actor{PgArray::kText}, actor_seq{PgArray::kBigint};
  };
  static constexpr size_t kMaxHeldRows = 2048;  // bounds the arrays' size

  Status HeldEnough() {
    const size_t held = audit_.seq.size() + audit_.node_level.size() + audit_.actor.size();
    return held >= kMaxHeldRows ? SendAuditRows() : Status::Ok();
  }

  Status SendAuditRows() {
    GARDE_RETURN_IF_ERROR(
        SendMany("INSERT INTO audit_log(seq, entry, leaf_hash, subject) SELECT * FROM "
                 "unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[])",
                 {&audit_.seq, &audit_.entry, &audit_.leaf_hash, &audit_.subject}));
    GARDE_RETURN_IF_ERROR(
        SendMany("INSERT INTO audit_nodes(level, idx, hash) SELECT * FROM "
                 "unnest($1::bigint[], $2::bigint[], $3::bytea[])",
                 {&audit_.node_level, &audit_.node_index, &audit_.node_hash}));
    return SendMany(
        "INSERT INTO audit_by_actor(actor, seq) SELECT * FROM "
        "unnest($1::text[], $2::bigint[])",
        {&audit_.actor, &audit_.actor_seq});
  }

  // Inserts the rows held in `columns` (one array per column, as many elements each) with
  // `sql`, every one a new row; the arrays are emptied.
  Status SendMany(const char* sql, std::initializer_list<PgArray*> columns) {
    if ((*columns.begin())->size() == 0) return Status::Ok();
    PgQuery q(c_, sql);
    for (PgArray* column : columns) q.Binary(column->Take());
    return q.Send();
  }

  HeldAuditRows audit_;
  PgConnection& c_;
};

Result<std::unique_ptr<PgConnection>> Connect(const PostgresOptions& o) {
  auto conn = std::make_unique<PgConnection>(PQconnectdb(o.conninfo.c_str()));
  if (PQstatus(conn->get()) != CONNECTION_OK) {
    return Unavailable("cannot connect to PostgreSQL: " + PgErrorText(conn->get(), nullptr));
  }
  // Quiet notices (e.g. "relation already exists, skipping"): nothing for the log to say.
  PQsetNoticeProcessor(
      conn->get(), [](void*, const char*) {}, nullptr);
  GARDE_RETURN_IF_ERROR(conn->Exec("SET client_min_messages = warning"));
  GARDE_RETURN_IF_ERROR(
      conn->Exec(o.synchronous ? "SET synchronous_commit = on" : "SET synchronous_commit = off"));
  return conn;
}

// Runs the writes of a batch on `c`'s pipeline, each in its own savepoint, collecting each
// one's hooks. A write ends with a sync point (every answer read: a failure is its own and
// is rolled back to its savepoint alone) unless the write after it is rerunnable: then its
// answers are read with that write's first read, a round trip fewer. Should they hold a
// failure, PostgreSQL skipped everything sent after it: the failed write is rolled back to its
// savepoint, which is still the latest, and the writes after it run again. A rerunnable
// write's uniqueness look-ups are not waited for either (PgTx::IndexHeldByOthers): when one
// finds its digest held, that write runs again with them waited for, and decides itself. Ok,
// or what makes the whole batch unsure (the connection lost): nothing of it may then be kept.
Status RunPipelined(const std::vector<PendingWrite*>& batch, PgTx& tx, PgConnection& c) {
  constexpr size_t kNone = static_cast<size_t>(-1);
  size_t waited_look_ups = kNone;  // the write to run again with its look-ups waited for
  size_t i = 0;
  while (i < batch.size()) {
    PendingWrite* w = batch[i];
    c.set_write(i);
    tx.set_held_index_deferred(w->rerunnable && i != waited_look_ups);
    Status s = c.Exec("SAVEPOINT garde_write");
    if (s.ok()) {
      s = RunWrite(*w, tx, [&](PendingWrite* write) { tx.set_write(write); });
    }
    if (s.ok()) s = c.Exec("RELEASE SAVEPOINT garde_write");  // its held rows go first
    const bool synced = s.ok() && (i + 1 == batch.size() || !batch[i + 1]->rerunnable);
    if (synced) s = c.Sync();
    if (s.ok()) {
      w->result = Status::Ok();
      ++i;
      continue;
    }
    // A failure: of this write, or of one before it whose answers had not been read.
    tx.DropHeld();
    Status failure = synced ? s : c.Sync();
    const size_t failed = c.failed() ? std::min(c.failed()->write, i) : i;
    if (failure.ok() || failed == i) failure = s;
    const bool held = c.failed() && c.failed()->held_index;
    GARDE_RETURN_IF_ERROR(c.Exec("ROLLBACK TO SAVEPOINT garde_write"));
    GARDE_RETURN_IF_ERROR(c.Exec("RELEASE SAVEPOINT garde_write"));
    GARDE_RETURN_IF_ERROR(c.Sync());
    if (held && failed != waited_look_ups) {
      waited_look_ups = i = failed;  // it, then the writes after it, again
      continue;
    }
    batch[failed]->result = std::move(failure);
    batch[failed]->Reset();
    i = failed + 1;  // the writes after it (every one rerunnable: none waited) run again
  }
  return Status::Ok();
}

}  // namespace

PostgresStore::PostgresStore(PostgresOptions options)
    : options_(std::move(options)),
      node_id_(RandomId("node_")),
      stop_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

PostgresStore::~PostgresStore() {
  // Both threads are woken rather than left to notice at their next time-out: a closing store
  // (every `garde` command, a stopping node) would otherwise wait for it.
  stopping_.store(true);
  const uint64_t one = 1;
  if (stop_fd_ >= 0) ::write(stop_fd_, &one, sizeof one);
  {
    MutexLock lock(&peers_mu_);
    peers_cv_.notify_all();
  }
  {
    MutexLock lock(&check_mu_);
    check_work_cv_.notify_all();
  }
  if (listener_.joinable()) listener_.join();
  if (peer_worker_.joinable()) peer_worker_.join();
  if (checker_.joinable()) checker_.join();
  if (stop_fd_ >= 0) ::close(stop_fd_);
  MutexLock lock(&lead_mu_);
  if (lead_conn_ != nullptr) PQfinish(lead_conn_);  // frees whatever this node led
  if (check_conn_ != nullptr) PQfinish(check_conn_);
}

namespace {

constexpr int64_t kLeadLockBase = 7254100;  // + the job's number

}  // namespace

bool PostgresStore::Lead(Job job) {
  MutexLock lock(&lead_mu_);
  auto query = [](PGconn* conn, const std::string& sql) -> std::optional<std::string> {
    PGresult* res = PQexec(conn, sql.c_str());
    std::optional<std::string> value;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
      value = PQgetvalue(res, 0, 0);
    }
    PQclear(res);
    return value;
  };
  if (lead_conn_ != nullptr && !led_.empty() && !query(lead_conn_, "SELECT 1")) {
    PQfinish(lead_conn_);  // the session is gone, and with it every lock it held
    lead_conn_ = nullptr;
  }
  if (lead_conn_ == nullptr || PQstatus(lead_conn_) != CONNECTION_OK) {
    if (lead_conn_ != nullptr) PQfinish(lead_conn_);
    led_.clear();
    lead_conn_ = PQconnectdb(options_.conninfo.c_str());
    if (PQstatus(lead_conn_) != CONNECTION_OK) return false;
  }
  if (std::find(led_.begin(), led_.end(), job) != led_.end()) return true;
  const int64_t key = kLeadLockBase + static_cast<int64_t>(job);
  if (query(lead_conn_, "SELECT pg_try_advisory_lock(" + std::to_string(key) + ")") == "t") {
    led_.push_back(job);
    return true;
  }
  return false;
}

namespace {

const char* PeerEventName(PeerEvent event) {
  return event == PeerEvent::kPoliciesReloaded ? "policies_reloaded" : "audit_flush";
}

// The event a peer asks for; nullopt for a name this node does not know (a newer node's ask
// goes unanswered: the asker's wait runs out rather than hearing "done" for work not done).
std::optional<PeerEvent> PeerEventNamed(std::string_view name) {
  for (PeerEvent e : {PeerEvent::kPoliciesReloaded, PeerEvent::kAuditFlush}) {
    if (name == PeerEventName(e)) return e;
  }
  return std::nullopt;
}

// Tells every node listening on garde_peers (AskPeers, PeerLoop).
Status NotifyPeers(PgConnection& conn, const std::string& message) {
  PgQuery notify(conn, "SELECT pg_notify('garde_peers', $1)");
  notify.Text(message);
  return notify.Run();
}

}  // namespace

Status PostgresStore::AskPeers(PeerEvent event, std::chrono::milliseconds limit) {
  if (!options_.follow_changes) return Status::Ok();  // no listener: no answers to hear
  const std::string token = RandomId("ask_");
  std::set<std::string> others;
  {
    GARDE_ASSIGN_OR_RETURN(auto conn, Acquire());
    PgQuery nodes(*conn,
                  "SELECT substr(application_name, 12) FROM pg_stat_activity "
                  "WHERE datname = current_database() AND application_name LIKE 'garde-node %'");
    auto names = nodes.Texts();
    Status s = names.status();
    if (s.ok()) others.insert(names.value().begin(), names.value().end());
    others.erase(node_id_);
    if (s.ok() && !others.empty()) {
      {
        MutexLock lock(&peers_mu_);
        awaiting_[token] = others;  // before asking: an answer may come at once
      }
      s = NotifyPeers(*conn, node_id_ + " ask " + PeerEventName(event) + " " + token);
    }
    Release(std::move(conn));
    if (!s.ok() || others.empty()) {
      MutexLock lock(&peers_mu_);
      awaiting_.erase(token);
      return s;
    }
  }
  MutexLock lock(&peers_mu_);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!awaiting_[token].empty() &&
         peers_cv_.wait_until(lock.native(), deadline) != std::cv_status::timeout) {
  }
  const size_t silent = awaiting_[token].size();
  awaiting_.erase(token);
  if (silent == 0) return Status::Ok();
  return Unavailable(std::to_string(silent) + " of " + std::to_string(others.size()) +
                     " other nodes did not answer in time");
}

void PostgresStore::OnPeerAsk(std::function<void(PeerEvent)> handler) {
  MutexLock lock(&handler_mu_);
  handler_ = std::move(handler);
}

void PostgresStore::Heard(std::string_view message) {
  // "<from> ask <event> <token>" or "<from> done <token>"
  const std::vector<std::string> words = SplitList(message, ' ');
  if (words.size() < 3 || words[0] == node_id_) return;
  MutexLock lock(&peers_mu_);
  if (words[1] == "ask" && words.size() == 4) {
    if (auto event = PeerEventNamed(words[2])) asked_.push_back({words[0], words[3], *event});
  } else if (words[1] == "done" && words.size() == 3) {
    auto it = awaiting_.find(words[2]);
    if (it != awaiting_.end()) it->second.erase(words[0]);
  }
  peers_cv_.notify_all();
}

void PostgresStore::PeerLoop() {
  for (;;) {
    Asked asked;
    {
      MutexLock lock(&peers_mu_);
      while (asked_.empty() && !stopping_.load()) {
        peers_cv_.wait_for(lock.native(), std::chrono::milliseconds(200));
      }
      if (stopping_.load()) return;
      asked = asked_.front();
      asked_.pop_front();
    }
    {
      MutexLock lock(&handler_mu_);
      if (handler_) handler_(asked.event);
    }
    auto conn = Acquire();
    if (!conn.ok()) continue;  // the asker gives up waiting in time
    NotifyPeers(*conn.value(), node_id_ + " done " + asked.token).IgnoreError();
    Release(std::move(conn).value());
  }
}

void PostgresStore::ListenLoop() {
  while (!stopping_.load()) {
    // Named, so that other nodes know this one is there to be asked (AskPeers).
    const std::string name = "garde-node " + node_id_;
    const char* keys[] = {"dbname", "application_name", nullptr};
    const char* values[] = {options_.conninfo.c_str(), name.c_str(), nullptr};
    PGconn* c = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    if (PQstatus(c) == CONNECTION_OK) {
      PGresult* res = PQexec(c, "LISTEN garde_changes; LISTEN garde_peers; LISTEN garde_keys");
      if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        listening_.store(true);
        epoch_.fetch_add(1);  // whatever committed before LISTEN counts as a change
        keys_epoch_.fetch_add(1);
      }
      PQclear(res);
    }
    while (listening_.load() && !stopping_.load()) {
      pollfd fds[] = {{PQsocket(c), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      ::poll(fds, std::size(fds), 1000);
      if (stopping_.load()) break;
      if (PQconsumeInput(c) == 0 || PQstatus(c) != CONNECTION_OK) break;
      bool changed = false;
      while (PGnotify* n = PQnotifies(c)) {
        if (std::strcmp(n->relname, "garde_keys") == 0) {
          keys_epoch_.fetch_add(1);
        } else if (std::strcmp(n->relname, "garde_peers") != 0) {
          changed = true;
        } else {
          Heard(n->extra);
        }
        PQfreemem(n);
      }
      if (changed) epoch_.fetch_add(1);
    }
    // Not listening: every ChangeEpoch answers a new number until LISTEN holds again.
    listening_.store(false);
    PQfinish(c);
    if (stopping_.load()) return;
    pollfd stop{stop_fd_, POLLIN, 0};
    ::poll(&stop, 1, 500);  // before connecting again
  }
}

Result<std::unique_ptr<PostgresStore>> PostgresStore::Open(const PostgresOptions& options) {
  std::unique_ptr<PostgresStore> store(new PostgresStore(options));  // private constructor
  GARDE_ASSIGN_OR_RETURN(auto conn, Connect(options));
  PgConnection& c = *conn;
  GARDE_RETURN_IF_ERROR(c.Exec(kMigrationLock));
  Status s = [&]() -> Status {
    GARDE_RETURN_IF_ERROR(
        c.Exec("CREATE TABLE IF NOT EXISTS garde_schema_migrations(version BIGINT PRIMARY KEY, "
               "applied_at BIGINT NOT NULL)"));
    PgQuery current_q(c, "SELECT COALESCE(MAX(version), 0) FROM garde_schema_migrations");
    GARDE_ASSIGN_OR_RETURN(auto current, current_q.FirstInt(0));
    const auto known = static_cast<int64_t>(std::size(kPgMigrations));
    if (current > known) {
      return Unavailable("database schema version " + std::to_string(current) +
                         " is newer than this garde (" + std::to_string(known) + ")");
    }
    for (int64_t v = current + 1; v <= known; ++v) {
      GARDE_RETURN_IF_ERROR(c.Exec("BEGIN"));
      Status m = c.Exec(WithCollation(kPgMigrations[v - 1]));
      if (m.ok()) {
        PgQuery q(c,
                  "INSERT INTO garde_schema_migrations(version, applied_at) "
                  "VALUES($1, extract(epoch FROM now())::bigint)");
        q.Int(v);
        m = q.Run();
      }
      if (!m.ok()) {
        c.Exec("ROLLBACK").IgnoreError();
        return m;
      }
      GARDE_RETURN_IF_ERROR(c.Exec("COMMIT"));
    }
    store->schema_version_ = static_cast<int>(known);
    return Status::Ok();
  }();
  c.Exec(kMigrationUnlock).IgnoreError();
  if (!s.ok()) return s;
  {
    MutexLock lock(&store->mu_);  // no other thread has the store yet
    store->open_connections_ = 1;
  }
  if (options.synchronous && options.visible_before_durable) {
    // Needs pg_logical_emit_message, which a server may not grant to this role.
    store->flush_after_hand_over_ = FlushWal(c).ok();
    if (!store->flush_after_hand_over_) {
      LogLine(spdlog::level::info,
              "pg_logical_emit_message is not allowed: each durable batch waits for its flush "
              "before the next one starts");
    }
  }
  store->Release(std::move(conn));
  if (options.follow_changes) {
    PostgresStore* self = store.get();
    store->listener_ = std::thread([self] {
      NameThisThread("garde-pg-listen");
      self->ListenLoop();
    });
    store->peer_worker_ = std::thread([self] {
      NameThisThread("garde-pg-peers");
      self->PeerLoop();
    });
  }
  return store;
}

Result<std::unique_ptr<PgConnection>> PostgresStore::Acquire() {
  {
    MutexLock lock(&mu_);
    while (idle_.empty() && open_connections_ >= std::max(1, options_.max_connections)) {
      pool_cv_.wait(lock.native());
    }
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    ++open_connections_;
  }
  auto opened = Connect(options_);
  if (!opened.ok()) {
    MutexLock lock(&mu_);
    --open_connections_;
    pool_cv_.notify_one();
  }
  return opened;
}

void PostgresStore::Release(std::unique_ptr<PgConnection> conn) {
  MutexLock lock(&mu_);
  if (conn->healthy()) {
    idle_.push_back(std::move(conn));
  } else {
    --open_connections_;  // a lost connection is dropped; the next Acquire opens another
  }
  pool_cv_.notify_one();
}

Status PostgresStore::Read(const std::function<Status(ReadTx&)>& fn) {
  GARDE_ASSIGN_OR_RETURN(auto conn, Acquire());
  PgConnection& c = *conn;
  Status s = c.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
  if (s.ok()) {
    PgTx tx(c);
    try {
      s = fn(tx);
    } catch (const std::exception& e) {
      s = Internal(std::string("read failed: ") + e.what());
    }
    c.Exec("COMMIT").IgnoreError();  // read-only: nothing to lose
  }
  Release(std::move(conn));
  return s;
}

Status PostgresStore::Write(const std::function<Status(WriteTx&)>& fn, Durability durability) {
  return Submit(fn, durability, /*rerunnable=*/false);
}

Status PostgresStore::WriteRerunnable(const std::function<Status(WriteTx&)>& fn,
                                      Durability durability) {
  return Submit(fn, durability, /*rerunnable=*/true);
}

Status PostgresStore::Submit(const std::function<Status(WriteTx&)>& fn, Durability durability,
                             bool rerunnable) {
  return writes_.Submit(fn, durability, rerunnable);
}

Status PostgresStore::FlushWal(PgConnection& c) {
  // A transactional message gives the transaction an xid and a WAL record, so that its
  // synchronous commit flushes the WAL up to its own commit record: past every commit this
  // connection made before it. No table is written.
  return c.Exec("SELECT pg_logical_emit_message(true, 'garde_flush', '')");
}

void PostgresStore::CommitBatch(const std::vector<PendingWrite*>& batch,
                                const std::function<void()>& hand_over) {
  auto conn = Acquire();
  if (!conn.ok()) {
    for (PendingWrite* w : batch) w->result = conn.status();
    return;
  }
  PgConnection& c = *conn.value();
  Status begun = c.Exec("BEGIN");
  if (begun.ok()) {
    begun = c.Exec("SELECT pg_advisory_xact_lock(" + std::to_string(options_.write_lock) + ")");
  }
  if (!begun.ok()) {
    c.Exec("ROLLBACK").IgnoreError();
    for (PendingWrite* w : batch) w->result = begun;
    Release(std::move(conn).value());
    return;
  }
  const bool immediate =
      options_.synchronous && std::any_of(batch.begin(), batch.end(), [](const PendingWrite* w) {
        return w->durability == Durability::kImmediate;
      });
  // The writes' statements go in a pipeline (RunPipelined): those whose results nobody reads
  // at once are sent without waiting, so that a batch waits for the server only where a write
  // reads something, and at sync points. The transaction object goes before the connection is
  // released: Release closes a connection that is not healthy, and the object lets go of the
  // connection as it is destroyed.
  std::optional<PgTx> tx(std::in_place, c);
  Status piped = c.EnterPipeline();
  if (piped.ok()) {
    piped = RunPipelined(batch, *tx, c);
    Status exited = c.ExitPipeline();
    if (piped.ok()) piped = std::move(exited);
  }
  tx.reset();
  // The lines that must be durable before the batch commits (WriteTx::WriteAhead): should
  // they fail, nothing of the batch is kept.
  if (piped.ok()) piped = WriteAheadOf(AheadLines(batch));
  if (!piped.ok()) {
    // What was sent cannot be vouched for, or what had to go before it could not be written:
    // nothing of the batch is kept (a connection still in pipeline mode is not healthy, so
    // Release closes it and the server rolls back).
    c.Exec("ROLLBACK").IgnoreError();
    Release(std::move(conn).value());
    FinishBatch(batch, piped);
    return;
  }
  // Deferred writes alone commit without waiting for the WAL flush (PostgreSQL's own
  // asynchronous commit, flushed by its WAL writer within wal_writer_delay). A durable batch
  // of the vault commits the same way, releases the write lock and lets the next batch in, and
  // is answered after FlushWal: the next batch's statements run during the flush. Readers (and
  // other nodes) may see the batch during it; a crash then can lose only writes nobody was
  // told succeeded, as with SQLite's vault (docs/architecture.md).
  const bool flush_after = immediate && flush_after_hand_over_;
  if (options_.synchronous && (!immediate || flush_after)) {
    c.Exec("SET LOCAL synchronous_commit = off").IgnoreError();
  }
  Status committed = c.Exec("COMMIT");
  if (committed.ok()) {
    epoch_.fetch_add(1);
  } else {
    c.Exec("ROLLBACK").IgnoreError();
  }
  hand_over();
  if (committed.ok() && flush_after) {
    Status flushed = FlushWal(c);
    if (!flushed.ok()) {
      // Committed, perhaps not durable: the writers are told it failed (as when a connection
      // is lost during a COMMIT), so that none relies on it.
      LogLine(spdlog::level::err, "a committed batch could not be flushed")
          .Str("error", flushed.message());
      committed = Unavailable("the write could not be made durable");
    }
  }
  Release(std::move(conn).value());
  FinishBatch(batch, committed);
}

Status PostgresStore::Ping() {
  return Read([](ReadTx& tx) { return tx.GetSubject("sub_readiness_probe").status(); });
}

uint64_t PostgresStore::ChangeEpoch() {
  if (options_.strict_reads) return CheckCounters().changes;
  if (!listening_.load()) return epoch_.fetch_add(1) + 1;
  return epoch_.load();
}

uint64_t PostgresStore::KeysEpoch() {
  if (options_.strict_reads) return CheckCounters().keys;
  if (!listening_.load()) return keys_epoch_.fetch_add(1) + 1;
  return keys_epoch_.load();
}

// Scope ids count per thread: what is remembered of a scope below is per thread too.
thread_local uint64_t ReadScope::current_ = 0;
thread_local uint64_t ReadScope::next_ = 0;
thread_local const Store* ReadScope::confirmed_store_ = nullptr;
thread_local uint64_t ReadScope::confirmed_ticket_ = 0;

namespace {

// This thread's last confirmed counters and the scope they were asked in.
thread_local uint64_t checked_scope = 0;
thread_local const void* checked_store = nullptr;
thread_local uint64_t checked_changes = 0, checked_keys = 0;

}  // namespace

PostgresStore::Counters PostgresStore::CheckCounters() {
  const uint64_t scope = ReadScope::Current();
  if (scope != 0 && checked_scope == scope && checked_store == this) {
    return {checked_changes, checked_keys};  // asked already in this request
  }
  Counters got;
  const uint64_t ticket = ReadScope::ConfirmedTicket(this);
  bool confirmed = false;
  if (ticket != 0) {
    // Called back by WhenFresh: a query begun after the request has answered (these
    // counters, or a later query's).
    MutexLock lock(&check_mu_);
    confirmed = check_covered_ >= ticket;
    got = checked_;
  }
  if (!confirmed) got = AskCounters();
  if (scope != 0) {
    checked_scope = scope;
    checked_store = this;
    checked_changes = got.changes;
    checked_keys = got.keys;
  }
  return got;
}

PostgresStore::Counters PostgresStore::AskCounters() {
  MutexLock lock(&check_mu_);
  const uint64_t ticket = ++check_requested_;
  while (check_covered_ < ticket) {
    if (check_running_) {
      check_cv_.wait(lock.native());
      continue;
    }
    RunCheck();  // this thread asks for every call so far; the others wait for it
  }
  return checked_;
}

uint64_t PostgresStore::WhenFresh(std::function<void()> ready) {
  if (!options_.strict_reads) return 0;
  MutexLock lock(&check_mu_);
  if (!checker_.joinable()) {
    checker_ = std::thread([this] {
      NameThisThread("garde-pg-check");
      CheckLoop();
    });
  }
  const uint64_t ticket = ++check_requested_;
  fresh_waiters_.push_back({ticket, std::move(ready)});
  // A query running now began before this call: the checker asks again once it is done.
  if (!check_running_) check_work_cv_.notify_one();
  return ticket;
}

void PostgresStore::CheckLoop() {
  MutexLock lock(&check_mu_);
  for (;;) {
    if (!fresh_waiters_.empty() && !check_running_) {
      RunCheck();
    } else if (stopping_.load()) {
      break;
    } else {
      check_work_cv_.wait(lock.native());
    }
  }
}

void PostgresStore::RunCheck() {
  check_running_ = true;
  const uint64_t covers = check_requested_;
  check_mu_.Unlock();
  // A closing store asks nothing more: its last waiters read with numbers that send them to
  // the database (and fail there, or answer from it).
  const Counters got = stopping_.load() ? Unconfirmed() : QueryCounters();
  check_mu_.Lock();
  check_running_ = false;
  check_covered_ = covers;
  checked_ = got;
  check_cv_.notify_all();
  std::vector<std::function<void()>> ready;
  while (!fresh_waiters_.empty() && fresh_waiters_.front().ticket <= covers) {
    ready.push_back(std::move(fresh_waiters_.front().ready));
    fresh_waiters_.pop_front();
  }
  if (!fresh_waiters_.empty()) check_work_cv_.notify_one();  // arrived during the query
  if (ready.empty()) return;
  check_mu_.Unlock();
  for (auto& r : ready) r();
  check_mu_.Lock();
}

PostgresStore::Counters PostgresStore::QueryCounters() {
  Counters got;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (check_conn_ == nullptr || PQstatus(check_conn_) != CONNECTION_OK) {
      if (check_conn_ != nullptr) PQfinish(check_conn_);
      check_conn_ = PQconnectdb(options_.conninfo.c_str());
      // Prepared once per connection: planned once, not at every check.
      PQclear(PQprepare(check_conn_, "counters",
                        "SELECT (SELECT value FROM counters WHERE name = 'vault_changes'), "
                        "COALESCE((SELECT value FROM counters "
                        "WHERE name = 'api_key_revocations'), 0)",
                        0, nullptr));
    }
    PGresult* res = PQexecPrepared(check_conn_, "counters", 0, nullptr, nullptr, nullptr, 0);
    const bool answered = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (answered) {
      got.changes = std::strtoull(PQgetvalue(res, 0, 0), nullptr, 10);
      got.keys = std::strtoull(PQgetvalue(res, 0, 1), nullptr, 10);
    }
    PQclear(res);
    if (answered) return got;
    PQfinish(check_conn_);  // opened again at the next attempt, its statement prepared again
    check_conn_ = nullptr;
  }
  return Unconfirmed();  // the database is away: readers go to it (and fail)
}

PostgresStore::Counters PostgresStore::Unconfirmed() {
  const uint64_t fresh = (uint64_t{1} << 63) | epoch_.fetch_add(1);
  return {fresh, fresh};
}

Status PostgresStore::CopyTo(const std::string& path) {
  return Unavailable(
      "a PostgreSQL deployment is backed up with PostgreSQL's tools (pg_dump, "
      "base backups), not to " +
      path);
}

}  // namespace garde

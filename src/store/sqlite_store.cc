#include "garde/store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <unordered_map>

#include "garde/base/log.h"
#include "garde/base/thread_name.h"
#include "garde/store/sqlite_wal_vfs.h"

namespace garde {

// The audit log's tables: in the vault database up to version 5, in audit.db since.
static const char kAuditLogTables[] = R"sql(
CREATE TABLE audit_log(
  seq INTEGER PRIMARY KEY,
  entry TEXT NOT NULL,
  leaf_hash BLOB NOT NULL,
  subject TEXT
);
CREATE INDEX audit_by_subject ON audit_log(subject) WHERE subject IS NOT NULL;
CREATE TABLE audit_nodes(
  level INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  hash BLOB NOT NULL,
  PRIMARY KEY(level, idx)
) WITHOUT ROWID;
CREATE TABLE audit_checkpoints(
  size INTEGER PRIMARY KEY,
  root BLOB NOT NULL,
  time INTEGER NOT NULL,
  note TEXT NOT NULL
);
)sql";

// Ordered migrations; version N is migrations[N-1]. Never edit one that has shipped.
static const char* const kMigrations[] = {
    // 1: subjects, sealed fields, blind indexes, API keys.
    R"sql(
CREATE TABLE subjects(
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  source TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_interaction_at INTEGER NOT NULL,
  root_key_version INTEGER NOT NULL,
  dek_version INTEGER NOT NULL,
  wrapped_dek BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX subjects_by_root_key ON subjects(root_key_version);
CREATE TABLE subject_fields(
  subject_id TEXT NOT NULL,
  field TEXT NOT NULL,
  box BLOB NOT NULL,
  PRIMARY KEY(subject_id, field)
) WITHOUT ROWID;
CREATE TABLE blind_index(
  field TEXT NOT NULL,
  digest BLOB NOT NULL,
  subject_id TEXT NOT NULL,
  PRIMARY KEY(field, digest, subject_id)
) WITHOUT ROWID;
CREATE INDEX blind_index_by_subject ON blind_index(subject_id, field);
CREATE TABLE api_keys(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  activities TEXT NOT NULL,
  key_hash BLOB NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER NOT NULL DEFAULT 0
);
)sql",
    // 2: the audit log (RFC 6962 leaves), its perfect-subtree hashes, signed checkpoints.
    // `subject` repeats the entry's member for the officer's main question (who accessed
    // this customer); `garde audit verify` checks that it agrees with the entry. Other
    // filters scan in sequence order: every index costs each append, and every read appends.
    kAuditLogTables,
    // 3: consent ledger (append-only) and the suppression list (keyed hashes only).
    R"sql(
CREATE TABLE consent_events(
  id TEXT PRIMARY KEY,
  subject_id TEXT NOT NULL,
  purpose TEXT NOT NULL,
  channel TEXT NOT NULL,
  event TEXT NOT NULL,
  legal_basis TEXT NOT NULL,
  notice_version TEXT NOT NULL,
  method TEXT NOT NULL,
  actor TEXT NOT NULL,
  at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  receipt TEXT NOT NULL
);
CREATE INDEX consent_by_subject ON consent_events(subject_id, at);
CREATE TABLE suppressions(
  kind TEXT NOT NULL,
  digest BLOB NOT NULL,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY(kind, digest)
) WITHOUT ROWID;
)sql",
    // 4: data-subject requests, erasure tombstones, the outbox for downstream systems.
    R"sql(
CREATE TABLE requests(
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  subject_id TEXT NOT NULL,
  status TEXT NOT NULL,
  jurisdiction TEXT NOT NULL,
  opened_by TEXT NOT NULL,
  verification TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  verified_at INTEGER NOT NULL,
  due_at INTEGER NOT NULL,
  completed_at INTEGER NOT NULL,
  extended INTEGER NOT NULL,
  sealed BLOB NOT NULL,
  package BLOB NOT NULL,
  result TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX requests_by_due ON requests(due_at, id);
CREATE INDEX requests_by_subject ON requests(subject_id);
CREATE TABLE tombstones(
  subject_id TEXT PRIMARY KEY,
  request_id TEXT NOT NULL,
  at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE outbox(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  topic TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  delivered_at INTEGER NOT NULL DEFAULT 0
);
)sql",
    // 5: the policy versions the service has run with.
    R"sql(
CREATE TABLE policy_versions(
  seq INTEGER PRIMARY KEY,
  content_hash TEXT NOT NULL,
  loaded_at INTEGER NOT NULL,
  source TEXT NOT NULL,
  summary TEXT NOT NULL
);
)sql",
    // 6: the audit log moves to its own database file (audit.db); entries recorded with a
    // change wait here, in the change's transaction, until the appender has logged them.
    // AUTOINCREMENT: ids are never reused, the audit database remembers the last one logged.
    // The tables of migration 2 stay for the one-time import and are emptied by it.
    R"sql(
CREATE TABLE audit_pending(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ns INTEGER NOT NULL,
  subject TEXT,
  tail TEXT NOT NULL
);
)sql",
    // 7: the change log that keeps in-memory views (consent facts, audience filters) current
    // across connections and processes. Triggers write it in the transaction of the change,
    // so no write path can forget it. Every change to a subject's fields or contacts also
    // updates its subjects row (updated_at); a key re-wrap does not, and is not logged.
    // AUTOINCREMENT: sequence numbers are never reused, and without gaps (a rolled-back
    // change rolls its numbers back too), so a reader can tell whether it missed some. The
    // log keeps its last 65 536 changes (262 144 since 24); a reader further behind starts
    // over.
    R"sql(
CREATE TABLE vault_changes(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  subject_id TEXT NOT NULL
);
CREATE TRIGGER vault_changes_trim AFTER INSERT ON vault_changes BEGIN
  DELETE FROM vault_changes WHERE seq <= NEW.seq - 65536;
END;
CREATE TRIGGER subjects_inserted AFTER INSERT ON subjects BEGIN
  INSERT INTO vault_changes(subject_id) VALUES(NEW.id);
END;
CREATE TRIGGER subjects_updated AFTER UPDATE OF status, source, updated_at, last_interaction_at
ON subjects BEGIN
  INSERT INTO vault_changes(subject_id) VALUES(NEW.id);
END;
CREATE TRIGGER subjects_deleted AFTER DELETE ON subjects BEGIN
  INSERT INTO vault_changes(subject_id) VALUES(OLD.id);
END;
CREATE TRIGGER consent_recorded AFTER INSERT ON consent_events BEGIN
  INSERT INTO vault_changes(subject_id) VALUES(NEW.subject_id);
END;
CREATE TRIGGER consent_deleted AFTER DELETE ON consent_events BEGIN
  INSERT INTO vault_changes(subject_id) VALUES(OLD.subject_id);
END;
CREATE TRIGGER suppression_added AFTER INSERT ON suppressions BEGIN
  INSERT INTO vault_changes(subject_id)
    SELECT subject_id FROM blind_index WHERE field = '~' || NEW.kind AND digest = NEW.digest;
END;
)sql",
    // 8: what consent decisions need of an event, in the index by subject, so that loading
    // a subject's facts reads that index alone and not the events with their receipts.
    R"sql(
CREATE INDEX consent_facts_by_subject
  ON consent_events(subject_id, at, purpose, channel, event, expires_at);
DROP INDEX consent_by_subject;
)sql",
    // 9: keys of encrypted snapshots of in-memory views (the audience index holds decrypted
    // filter values). Destroying personal data destroys every snapshot key in the same
    // transaction, by trigger so that no write path can forget it, and counts the event so
    // that a snapshot whose content was read before it is never given a key afterwards.
    // REPLACE of a field (rectification) fires no delete trigger: only removals count.
    R"sql(
CREATE TABLE snapshot_keys(
  name TEXT PRIMARY KEY,
  key_id TEXT NOT NULL,
  root_key_version INTEGER NOT NULL,
  wrapped_key BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE shreds(
  id INTEGER PRIMARY KEY CHECK (id = 0),
  count INTEGER NOT NULL
);
INSERT INTO shreds(id, count) VALUES(0, 0);
CREATE TRIGGER shred_field_removed AFTER DELETE ON subject_fields BEGIN
  DELETE FROM snapshot_keys;
  UPDATE shreds SET count = count + 1 WHERE id = 0;
END;
CREATE TRIGGER shred_subject_erased AFTER UPDATE OF status ON subjects
WHEN NEW.status = 'erased' AND OLD.status <> 'erased' BEGIN
  DELETE FROM snapshot_keys;
  UPDATE shreds SET count = count + 1 WHERE id = 0;
END;
CREATE TRIGGER shred_subject_deleted AFTER DELETE ON subjects BEGIN
  DELETE FROM snapshot_keys;
  UPDATE shreds SET count = count + 1 WHERE id = 0;
END;
)sql",
    // 10: a tombstone of an erasure that kept fields under a legal hold names them (field
    // names, comma-separated; empty for a full erasure), so that a restore re-applies it too.
    R"sql(
ALTER TABLE tombstones ADD COLUMN kept TEXT NOT NULL DEFAULT '';
)sql",
    // 11: runs of the retention sweep, with the cursor a run resumes from after a crash.
    R"sql(
CREATE TABLE retention_runs(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  started_at INTEGER NOT NULL,
  at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0,
  dry_run INTEGER NOT NULL,
  cursor TEXT NOT NULL DEFAULT '',
  report TEXT NOT NULL DEFAULT '{}'
);
)sql",
    // 12: webhook deliveries, fanned out from the outbox per endpoint (each endpoint's mark
    // moves in the transaction that inserts its deliveries), retried until delivered or dead.
    R"sql(
CREATE TABLE webhook_marks(
  endpoint TEXT PRIMARY KEY,
  outbox_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE webhook_deliveries(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  endpoint TEXT NOT NULL,
  event_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  subject TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  delivered_at INTEGER NOT NULL DEFAULT 0,
  UNIQUE(endpoint, event_id)
);
CREATE INDEX webhook_due ON webhook_deliveries(status, next_at, id);
CREATE INDEX webhook_by_subject ON webhook_deliveries(endpoint, subject, status, id);
)sql",
    // 13: purchases and contacts; the amount sealed under the subject's data key.
    R"sql(
CREATE TABLE interactions(
  seq INTEGER PRIMARY KEY,
  subject_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  at INTEGER NOT NULL,
  sealed_amount BLOB
);
CREATE INDEX interactions_by_subject ON interactions(subject_id, at);
CREATE INDEX purchases_by_time ON interactions(at, subject_id) WHERE kind = 'purchase';
)sql",
    // 14: due deliveries are taken oldest first: walk pending ones in id order and stop at the
    // batch's size, instead of sorting every due one (a backlog of 1M made each batch sort 1M).
    R"sql(
DROP INDEX webhook_due;
CREATE INDEX webhook_pending ON webhook_deliveries(status, id);
)sql",
    // 15: double opt-in: grants waiting for the customer's click.
    R"sql(
CREATE TABLE consent_confirmations(
  id TEXT PRIMARY KEY,
  subject_id TEXT NOT NULL,
  purpose TEXT NOT NULL,
  channel TEXT NOT NULL,
  notice_version TEXT NOT NULL,
  method TEXT NOT NULL,
  actor TEXT NOT NULL,
  status TEXT NOT NULL,
  requested_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  confirmed_at INTEGER NOT NULL,
  event_id TEXT NOT NULL
);
CREATE INDEX consent_confirmations_by_subject ON consent_confirmations(subject_id, status);
)sql",
    // 16: the breach register (Art. 33(5)).
    R"sql(
CREATE TABLE incidents(
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  detected_at INTEGER NOT NULL,
  aware_at INTEGER NOT NULL,
  authority_due_at INTEGER NOT NULL,
  authority_notified_at INTEGER NOT NULL,
  subjects_notified_at INTEGER NOT NULL,
  closed_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  sealed BLOB NOT NULL
);
)sql",
    // 17: rows of spreadsheet imports that created a subject, written in the creating
    // transaction, so an interrupted import resumes without creating anyone twice.
    R"sql(
CREATE TABLE import_rows(
  import_id TEXT NOT NULL,
  row INTEGER NOT NULL,
  subject_id TEXT NOT NULL,
  PRIMARY KEY(import_id, row)
) WITHOUT ROWID;
)sql",
    // 18: saved segments (audience definitions; members are never stored).
    R"sql(
CREATE TABLE segments(
  name TEXT PRIMARY KEY,
  definition TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
)sql",
    // 19: contacts of organisations (a person linked to an organisation with a role).
    R"sql(
CREATE TABLE contact_links(
  organisation_id TEXT NOT NULL,
  person_id TEXT NOT NULL,
  role TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY(organisation_id, person_id)
) WITHOUT ROWID;
CREATE INDEX contact_links_by_person ON contact_links(person_id);
)sql",
    // 20: the master-key version each look-up digest and API-key hash was computed under, so
    // that a master rotation finds what is left to compute again. Suppression digests
    // ('~field') are under a key that rotations keep: 0.
    R"sql(
ALTER TABLE blind_index ADD COLUMN master INTEGER NOT NULL DEFAULT 1;
UPDATE blind_index SET master = 0 WHERE field LIKE '~%';
ALTER TABLE api_keys ADD COLUMN hash_master INTEGER NOT NULL DEFAULT 1;
)sql",
    // 21: merges of likely duplicates, kept after completion as the merged id's redirect.
    R"sql(
CREATE TABLE merges(
  id TEXT PRIMARY KEY,
  merged_id TEXT NOT NULL,
  into_id TEXT NOT NULL,
  state TEXT NOT NULL,
  actor TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  record TEXT NOT NULL,
  sealed BLOB NOT NULL
);
CREATE INDEX merges_by_merged ON merges(merged_id);
CREATE INDEX merges_by_into ON merges(into_id);
)sql",
    // 22: a subject re-keyed (a fresh data key, every box sealed again) is a change the
    // in-memory views follow, and a shred: the old key, and what snapshots hold of it, go.
    R"sql(
CREATE TRIGGER subjects_rekeyed AFTER UPDATE OF dek_version ON subjects
WHEN NEW.dek_version <> OLD.dek_version BEGIN
  INSERT INTO vault_changes(subject_id) VALUES(NEW.id);
  DELETE FROM snapshot_keys;
  UPDATE shreds SET count = count + 1 WHERE id = 0;
END;
)sql",
    // 23: console sign-ins, kept with the data so that every process serving it knows them.
    R"sql(
CREATE TABLE console_sessions(
  cookie_hash BLOB PRIMARY KEY,
  key_id TEXT NOT NULL,
  role TEXT NOT NULL,
  activities TEXT NOT NULL,
  client TEXT NOT NULL,
  csrf TEXT NOT NULL,
  lang TEXT NOT NULL,
  signed_in_at INTEGER NOT NULL,
  last_seen INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
    // 24: the change log keeps its last 262 144 changes (was 65 536), so that the audience
    // index follows a minute of heavy writes to a million subjects (~80 000 changes) rather
    // than rebuilding; about 12 MB.
    R"sql(
DROP TRIGGER vault_changes_trim;
CREATE TRIGGER vault_changes_trim AFTER INSERT ON vault_changes BEGIN
  DELETE FROM vault_changes WHERE seq <= NEW.seq - 262144;
END;
)sql",
    // 25: how far each tombstones.log has been applied to this database, so that a start
    // re-checks only the lines added since (a restored backup, its own older mark onwards).
    R"sql(
CREATE TABLE tombstone_log_marks(
  log TEXT PRIMARY KEY,
  applied_to INTEGER NOT NULL,
  digest BLOB NOT NULL
) WITHOUT ROWID;
)sql",
};

// The audit log's subject index: a level merges once it holds kAuditRunFanIn runs; a run of
// kAuditTopRunEntries or more is never merged again, so that no merge handles more than
// about two million entries (under a second; imports wait for it). A subject search seeks a
// few runs per level and one per such top run (about a thousand per billion entries).
constexpr int64_t kAuditRunFanIn = 8;
constexpr int64_t kAuditTopLevel = 1000;
constexpr int64_t kAuditTopRunEntries = int64_t{1} << 18;

// Levels go by size: level 0 below 1024 entries, then one level per factor of 8. A large
// import pass (a backlog caught up at once) starts at its size's level instead of being
// merged again and again with small runs.
int64_t AuditRunLevel(int64_t entries) {
  if (entries >= kAuditTopRunEntries) return kAuditTopLevel;
  int64_t level = 0;
  for (int64_t bound = 1024; entries >= bound; bound *= kAuditRunFanIn) ++level;
  return level;
}

// The audit database (audit.db), migrated on its own. Appends to it never touch the vault
// file, so they leave the vault connections' page caches valid.
static const char* const kAuditMigrations[] = {
    // 1: the RFC 6962 log, as vault migration 2 had it.
    kAuditLogTables,
    // 2: the intake mark (the last pending vault entry logged) and how far each read journal
    // file is logged, both committed with the append so that no entry is logged twice.
    R"sql(
CREATE TABLE audit_intake(
  id INTEGER PRIMARY KEY CHECK (id = 0),
  last_pending INTEGER NOT NULL
);
INSERT INTO audit_intake(id, last_pending) VALUES(0, 0);
CREATE TABLE audit_journals(
  name TEXT PRIMARY KEY,
  imported_to INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
    // 3: the subject index as sorted runs keyed by run first, so that every append and every
    // merge writes after the keys already stored instead of into random pages of one large
    // index. What the old index held becomes one run that is never merged again.
    R"sql(
CREATE TABLE audit_runs(
  run INTEGER PRIMARY KEY,
  level INTEGER NOT NULL,
  entries INTEGER NOT NULL
);
CREATE INDEX audit_runs_by_level ON audit_runs(level);
CREATE TABLE audit_subject_runs(
  run INTEGER NOT NULL,
  subject TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY(run, subject, seq)
) WITHOUT ROWID;
INSERT INTO audit_runs(run, level, entries)  -- level 1000: kAuditTopLevel
  SELECT 1, 1000, COUNT(*) FROM audit_log WHERE subject IS NOT NULL HAVING COUNT(*) > 0;
INSERT INTO audit_subject_runs(run, subject, seq)
  SELECT 1, subject, seq FROM audit_log WHERE subject IS NOT NULL ORDER BY subject, seq;
DROP INDEX IF EXISTS audit_by_subject;
)sql",
    // 4: the actor index (each entry's position under its actor) and the entry count per
    // actor that each checkpoint signs (docs/audit.md, "Scoping by actor"). Checkpoints signed
    // before have none; the next one counts the whole log.
    R"sql(
CREATE TABLE audit_by_actor(
  actor TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY(actor, seq)
) WITHOUT ROWID;
INSERT INTO audit_by_actor(actor, seq)
  SELECT json_extract(entry, '$.actor'), seq FROM audit_log
  WHERE json_valid(entry) AND json_extract(entry, '$.actor') IS NOT NULL ORDER BY 1, 2;
ALTER TABLE audit_checkpoints ADD COLUMN actors TEXT NOT NULL DEFAULT '';
)sql",
};

class SqliteConnection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;
  ~SqliteConnection() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  sqlite3* db() const { return db_; }
  // What its page cache holds, and what CountCache last counted of it.
  int64_t CacheUsed() const {
    int now = 0, peak = 0;
    sqlite3_db_status(db_, SQLITE_DBSTATUS_CACHE_USED, &now, &peak, 0);
    return now;
  }
  int64_t counted_cache = 0;

  // A cached prepared statement, reset and with bindings cleared.
  sqlite3_stmt* Prepare(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) {
      sqlite3_reset(it->second);
      sqlite3_clear_bindings(it->second);
      return it->second;
    }
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
        SQLITE_OK) {
      return nullptr;
    }
    cache_.emplace(sql, stmt);
    return stmt;
  }

  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err != nullptr ? err : "unknown error";
      sqlite3_free(err);
      return ErrorStatus(msg);
    }
    return Status::Ok();
  }

  // Runs a parameterless statement through the prepared-statement cache (BEGIN, COMMIT,
  // SAVEPOINT...): sqlite3_exec would compile it again on every transaction.
  Status Run(const std::string& sql) {
    sqlite3_stmt* stmt = Prepare(sql);
    if (stmt == nullptr) return ErrorStatus(sql);
    const int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? Status::Ok() : ErrorStatus(sql);
  }

  Status ErrorStatus(const std::string& what) const {
    const int code = sqlite3_errcode(db_);
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
      return Unavailable("database busy: " + what);
    }
    if (code == SQLITE_CONSTRAINT) return Conflict("constraint violated: " + what);
    return Internal("sqlite: " + what + ": " + sqlite3_errmsg(db_));
  }

 private:
  sqlite3* db_;
  // Keyed by SQL text; dynamic queries come from a small fixed set of shapes.
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

namespace {

// Binds parameters by position and steps a cached statement.
class Query {
 public:
  Query(SqliteConnection& conn, const std::string& sql) : conn_(conn), stmt_(conn.Prepare(sql)) {}
  ~Query() {
    if (stmt_ != nullptr) sqlite3_reset(stmt_);
  }
  bool ok() const { return stmt_ != nullptr; }

  Query& Text(const std::string& v) {
    sqlite3_bind_text(stmt_, ++n_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Query& Blob(const Bytes& v) {
    if (v.empty()) {  // a null pointer would bind NULL, not an empty blob
      sqlite3_bind_zeroblob(stmt_, ++n_, 0);
      return *this;
    }
    sqlite3_bind_blob(stmt_, ++n_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Query& Null() {
    sqlite3_bind_null(stmt_, ++n_);
    return *this;
  }
  Query& Int(int64_t v) {
    sqlite3_bind_int64(stmt_, ++n_, v);
    return *this;
  }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return stmt_ == nullptr ? SQLITE_ERROR : sqlite3_step(stmt_); }
  Status Run() {
    const int rc = Step();
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? Status::Ok() : conn_.ErrorStatus("write");
  }
  Status Error() const { return conn_.ErrorStatus(stmt_ == nullptr ? "prepare" : "read"); }
  // Every row, each made by `row()` from the current row's columns.
  template <typename T, typename Fn>
  Result<std::vector<T>> Rows(Fn row) {
    std::vector<T> out;
    int rc;
    while ((rc = Step()) == SQLITE_ROW) out.push_back(row());
    if (rc != SQLITE_DONE) return Error();
    return out;
  }
  // The first column of every row, as text.
  Result<std::vector<std::string>> Texts() {
    return Rows<std::string>([this] { return ColText(0); });
  }
  // The first column of the first row, or `if_none` when there is no row.
  Result<int64_t> FirstInt(int64_t if_none) {
    const int rc = Step();
    if (rc == SQLITE_DONE) return if_none;
    if (rc != SQLITE_ROW) return Error();
    return ColInt(0);
  }

  std::string ColText(int i) const {
    const auto* p = sqlite3_column_text(stmt_, i);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }
  Bytes ColBlob(int i) const {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, i));
    return p == nullptr ? Bytes() : Bytes(p, p + sqlite3_column_bytes(stmt_, i));
  }
  int64_t ColInt(int i) const { return sqlite3_column_int64(stmt_, i); }
  // Views into the current row, valid until the next step.
  std::string_view ColView(int i) const {
    const auto* p = sqlite3_column_text(stmt_, i);
    return p == nullptr ? std::string_view()
                        : std::string_view(reinterpret_cast<const char*>(p), ColSize(i));
  }
  const uint8_t* ColBlobData(int i) const {
    return static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, i));
  }
  size_t ColSize(int i) const { return static_cast<size_t>(sqlite3_column_bytes(stmt_, i)); }

 private:
  SqliteConnection& conn_;
  sqlite3_stmt* stmt_;
  int n_ = 0;
};

constexpr const char* kSubjectColumns =
    "id, kind, status, source, created_at, updated_at, last_interaction_at, root_key_version, "
    "dek_version, wrapped_dek";

SubjectRow ReadSubject(const Query& q) {
  SubjectRow r;
  r.id = q.ColText(0);
  r.kind = q.ColText(1);
  r.status = q.ColText(2);
  r.source = q.ColText(3);
  r.created_at = q.ColInt(4);
  r.updated_at = q.ColInt(5);
  r.last_interaction_at = q.ColInt(6);
  r.root_key_version = static_cast<uint32_t>(q.ColInt(7));
  r.dek_version = static_cast<uint32_t>(q.ColInt(8));
  r.wrapped_dek = q.ColBlob(9);
  return r;
}

constexpr const char* kDeliveryColumns =
    "id, endpoint, event_id, topic, subject, payload, created_at, status, attempts, next_at, "
    "last_error, delivered_at";

DeliveryRow DeliveryFrom(const Query& q) {
  DeliveryRow r;
  r.id = q.ColInt(0);
  r.endpoint = q.ColText(1);
  r.event_id = q.ColText(2);
  r.topic = q.ColText(3);
  r.subject = q.ColText(4);
  r.payload = q.ColText(5);
  r.created_at = q.ColInt(6);
  r.status = q.ColText(7);
  r.attempts = static_cast<int>(q.ColInt(8));
  r.next_at = q.ColInt(9);
  r.last_error = q.ColText(10);
  r.delivered_at = q.ColInt(11);
  return r;
}

RetentionRunRow RunFrom(const Query& q) {
  RetentionRunRow r;
  r.seq = q.ColInt(0);
  r.id = q.ColText(1);
  r.started_at = q.ColInt(2);
  r.at = q.ColInt(3);
  r.finished_at = q.ColInt(4);
  r.dry_run = q.ColInt(5) != 0;
  r.cursor = q.ColText(6);
  r.report = q.ColText(7);
  return r;
}

constexpr const char* kRequestColumns =
    "id, type, subject_id, status, jurisdiction, opened_by, verification, received_at, "
    "verified_at, due_at, completed_at, extended, sealed, package, result";

RequestRow ReadRequest(const Query& q) {
  RequestRow r;
  r.id = q.ColText(0);
  r.type = q.ColText(1);
  r.subject_id = q.ColText(2);
  r.status = q.ColText(3);
  r.jurisdiction = q.ColText(4);
  r.opened_by = q.ColText(5);
  r.verification = q.ColText(6);
  r.received_at = q.ColInt(7);
  r.verified_at = q.ColInt(8);
  r.due_at = q.ColInt(9);
  r.completed_at = q.ColInt(10);
  r.extended = q.ColInt(11) != 0;
  r.sealed = q.ColBlob(12);
  r.package = q.ColBlob(13);
  r.result = q.ColText(14);
  r.package_bytes = q.ColInt(15);
  return r;
}

// Lists leave the packages (megabytes each) in the database: only their size is read.
std::string RequestSelect(bool with_package) {
  std::string columns = kRequestColumns;
  if (!with_package) columns.replace(columns.find(", package,"), 10, ", x'',");
  return "SELECT " + columns + ", length(package) FROM requests";
}

ApiKeyRow ReadApiKey(const Query& q) {
  ApiKeyRow r;
  r.id = q.ColText(0);
  r.name = q.ColText(1);
  r.role = q.ColText(2);
  r.activities = SplitList(q.ColText(3), ' ');
  r.key_hash = q.ColBlob(4);
  r.created_at = q.ColInt(5);
  r.revoked_at = q.ColInt(6);
  r.hash_master = static_cast<uint32_t>(q.ColInt(7));
  return r;
}

class SqliteTx final : public GroupCommitTx {
 public:
  explicit SqliteTx(SqliteConnection& conn) : c_(conn) {}

  Result<std::optional<SubjectRow>> GetSubject(const std::string& id) override {
    static const std::string sql =
        std::string("SELECT ") + kSubjectColumns + " FROM subjects WHERE id = ?";
    Query q(c_, sql);
    q.Text(id);
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<SubjectRow>();
    if (rc != SQLITE_ROW) return q.Error();
    return std::optional<SubjectRow>(ReadSubject(q));
  }

  Result<std::vector<SealedField>> GetFields(const std::string& id) override {
    Query q(c_, "SELECT field, box FROM subject_fields WHERE subject_id = ?");
    q.Text(id);
    return q.Rows<SealedField>([&] { return SealedField{q.ColText(0), q.ColBlob(1)}; });
  }

  Status ScanFields(const std::string& first_id, const std::string& last_id,
                    const SealedVisitor& fn) override {
    Query q(c_,
            "SELECT subject_id, field, box FROM subject_fields WHERE subject_id >= ? AND "
            "subject_id <= ? ORDER BY subject_id, field");
    q.Text(first_id).Text(last_id);
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      fn(q.ColView(0), q.ColView(1), q.ColBlobData(2), q.ColSize(2));
    }
    return rc == SQLITE_DONE ? Status::Ok() : q.Error();
  }

  Result<std::vector<std::string>> FindByIndex(const std::string& field,
                                               const Bytes& digest) override {
    Query q(c_, "SELECT subject_id FROM blind_index WHERE field = ? AND digest = ? LIMIT 1000");
    q.Text(field).Blob(digest);
    return q.Texts();
  }

  Result<std::optional<ApiKeyRow>> FindApiKeyByHash(const Bytes& hash) override {
    Query q(c_,
            "SELECT id, name, role, activities, key_hash, created_at, revoked_at, hash_master "
            "FROM api_keys "
            "WHERE key_hash = ?");
    q.Blob(hash);
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<ApiKeyRow>();
    if (rc != SQLITE_ROW) return q.Error();
    return std::optional<ApiKeyRow>(ReadApiKey(q));
  }

  Result<std::optional<ConsoleSessionRow>> GetConsoleSession(const Bytes& cookie_hash) override {
    Query q(c_,
            "SELECT key_id, role, activities, client, csrf, lang, signed_in_at, last_seen "
            "FROM console_sessions WHERE cookie_hash = ?");
    q.Blob(cookie_hash);
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<ConsoleSessionRow>();
    if (rc != SQLITE_ROW) return q.Error();
    return std::optional<ConsoleSessionRow>(
        ConsoleSessionRow{cookie_hash, q.ColText(0), q.ColText(1), q.ColText(2), q.ColText(3),
                          q.ColText(4), q.ColText(5), q.ColInt(6), q.ColInt(7)});
  }

  Result<std::vector<ApiKeyRow>> ListApiKeys() override {
    Query q(c_,
            "SELECT id, name, role, activities, key_hash, created_at, revoked_at, hash_master "
            "FROM api_keys "
            "ORDER BY created_at, id");
    return q.Rows<ApiKeyRow>([&] { return ReadApiKey(q); });
  }

  Result<std::vector<std::string>> SubjectsWithStaleIndexes(uint32_t master,
                                                            const std::string& after_id,
                                                            size_t limit) override {
    // Walks blind_index_by_subject in id order: a whole sweep reads each row once.
    Query q(c_,
            "SELECT DISTINCT subject_id FROM blind_index WHERE subject_id > ? AND master <> 0 "
            "AND master <> ? ORDER BY subject_id LIMIT ?");
    q.Text(after_id).Int(master).Int(static_cast<int64_t>(limit));
    return q.Texts();
  }

  Result<std::vector<std::string>> StaleIndexesOf(const std::string& subject_id,
                                                  uint32_t master) override {
    Query q(c_,
            "SELECT field FROM blind_index WHERE subject_id = ? AND master <> 0 AND master <> ? "
            "ORDER BY field");
    q.Text(subject_id).Int(master);
    return q.Texts();
  }

  Result<std::vector<DuplicatePair>> SharedMatchKeys(const std::string& after_first,
                                                     const std::string& after_second,
                                                     size_t limit) override {
    // Match-key rows are named "=<rule>": the range ['=', '>') holds them all.
    Query q(c_,
            "SELECT a.subject_id, b.subject_id, group_concat(substr(a.field, 2), '|') "
            "FROM blind_index a JOIN blind_index b ON b.field = a.field AND b.digest = a.digest "
            "AND b.subject_id > a.subject_id "
            "WHERE a.field >= '=' AND a.field < '>' AND (a.subject_id, b.subject_id) > (?, ?) "
            "GROUP BY a.subject_id, b.subject_id ORDER BY a.subject_id, b.subject_id LIMIT ?");
    q.Text(after_first).Text(after_second).Int(static_cast<int64_t>(limit));
    return q.Rows<DuplicatePair>([&] {
      std::vector<std::string> rules = SplitList(q.ColText(2), '|');
      std::sort(rules.begin(), rules.end());
      return DuplicatePair{q.ColText(0), q.ColText(1), std::move(rules)};
    });
  }

  Result<int64_t> CountStaleIndexes(uint32_t master) override {
    Query q(c_, "SELECT COUNT(*) FROM blind_index WHERE master <> 0 AND master <> ?");
    q.Int(master);
    return q.FirstInt(0);
  }

  Result<std::pair<int64_t, int64_t>> CountOpenRequests(int64_t now) override {
    Query q(c_,
            "SELECT COUNT(*), COALESCE(SUM(due_at < ?), 0) FROM requests "
            "WHERE status NOT IN ('completed', 'rejected')");
    q.Int(now);
    if (q.Step() != SQLITE_ROW) return q.Error();
    return std::make_pair(q.ColInt(0), q.ColInt(1));
  }

  Result<std::map<std::string, int64_t>> CountDeliveries() override {
    Query q(c_, "SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status");
    std::map<std::string, int64_t> out;
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) out[q.ColText(0)] = q.ColInt(1);
    if (rc != SQLITE_DONE) return q.Error();
    return out;
  }

  Result<int64_t> CountPendingAudit() override {
    Query q(c_, "SELECT COUNT(*) FROM audit_pending");
    return q.FirstInt(0);
  }

  Result<std::vector<SubjectRow>> SubjectsNotWrappedBy(uint32_t version, size_t limit) override {
    static const std::string sql = std::string("SELECT ") + kSubjectColumns +
                                   " FROM subjects WHERE root_key_version <> ? LIMIT ?";
    Query q(c_, sql);
    q.Int(version).Int(static_cast<int64_t>(limit));
    return q.Rows<SubjectRow>([&] { return ReadSubject(q); });
  }

  Result<std::map<uint32_t, int64_t>> CountByRootKeyVersion() override {
    Query q(c_, "SELECT root_key_version, COUNT(*) FROM subjects GROUP BY root_key_version");
    std::map<uint32_t, int64_t> out;
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) out[static_cast<uint32_t>(q.ColInt(0))] = q.ColInt(1);
    if (rc != SQLITE_DONE) return q.Error();
    return out;
  }

  Result<std::vector<SubjectRow>> ScanSubjects(const std::string& after_id, size_t limit) override {
    static const std::string sql = std::string("SELECT ") + kSubjectColumns +
                                   " FROM subjects WHERE id > ? ORDER BY id LIMIT ?";
    Query q(c_, sql);
    q.Text(after_id).Int(static_cast<int64_t>(limit));
    return q.Rows<SubjectRow>([&] { return ReadSubject(q); });
  }

  Result<int64_t> CountSubjects() override {
    Query q(c_, "SELECT COUNT(*) FROM subjects");
    if (q.Step() != SQLITE_ROW) return q.Error();
    return q.ColInt(0);
  }

  Result<uint64_t> AuditSize() override {
    Query q(c_, "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_log");
    if (q.Step() != SQLITE_ROW) return q.Error();
    return static_cast<uint64_t>(q.ColInt(0));
  }

  Result<Bytes> AuditNode(unsigned level, uint64_t index) override {
    Query q(c_, level == 0 ? "SELECT leaf_hash FROM audit_log WHERE seq = ?"
                           : "SELECT hash FROM audit_nodes WHERE idx = ? AND level = ?");
    q.Int(static_cast<int64_t>(index));
    if (level != 0) q.Int(level);
    const int rc = q.Step();
    if (rc == SQLITE_DONE) {
      return NotFound("no audit tree node " + std::to_string(level) + "/" + std::to_string(index));
    }
    if (rc != SQLITE_ROW) return q.Error();
    return q.ColBlob(0);
  }

  Result<std::vector<AuditRow>> QueryAudit(const AuditQuery& aq) override {
    std::string sql = "SELECT seq, entry, leaf_hash FROM audit_log WHERE 1=1";
    std::vector<std::string> params;
    auto filter = [&](const std::string& value, const char* clause) {
      if (value.empty()) return;
      sql += clause;
      params.push_back(value);
    };
    // Each run is sorted by subject: one seek per run (docs/audit.md).
    filter(aq.subject,
           " AND seq IN (SELECT seq FROM audit_subject_runs WHERE run IN "
           "(SELECT run FROM audit_runs) AND subject = ?)");
    filter(aq.actor, " AND json_extract(entry, '$.actor') = ?");
    filter(aq.action, " AND json_extract(entry, '$.action') = ?");
    filter(aq.activity, " AND json_extract(entry, '$.activity') = ?");
    filter(aq.since, " AND json_extract(entry, '$.time') >= ?");
    filter(aq.until, " AND json_extract(entry, '$.time') <= ?");
    if (aq.after_seq) sql += " AND seq > ?";
    sql += " ORDER BY seq LIMIT ?";
    Query q(c_, sql);
    for (const auto& p : params) q.Text(p);
    if (aq.after_seq) q.Int(static_cast<int64_t>(*aq.after_seq));
    q.Int(static_cast<int64_t>(aq.limit));
    return q.Rows<AuditRow>([&] {
      return AuditRow{static_cast<uint64_t>(q.ColInt(0)), q.ColText(1), q.ColBlob(2), ""};
    });
  }

  Status ScanAudit(uint64_t from_seq, uint64_t to_seq,
                   const std::function<bool(const AuditRow&)>& fn) override {
    Query q(c_,
            "SELECT seq, entry, leaf_hash, subject FROM audit_log WHERE seq >= ? AND seq < ? "
            "ORDER BY seq");
    q.Int(static_cast<int64_t>(from_seq))
        .Int(static_cast<int64_t>(std::min<uint64_t>(to_seq, static_cast<uint64_t>(INT64_MAX))));
    int rc;
    AuditRow row;
    while ((rc = q.Step()) == SQLITE_ROW) {
      row.seq = static_cast<uint64_t>(q.ColInt(0));
      row.entry = q.ColText(1);
      row.leaf_hash = q.ColBlob(2);
      row.subject = q.ColText(3);
      if (!fn(row)) return Status::Ok();
    }
    if (rc != SQLITE_DONE) return q.Error();
    return Status::Ok();
  }

  Result<std::vector<CheckpointRow>> ListCheckpoints() override {
    Query q(c_, "SELECT size, root, time, note, actors FROM audit_checkpoints ORDER BY size");
    return q.Rows<CheckpointRow>([&] {
      return CheckpointRow{static_cast<uint64_t>(q.ColInt(0)), q.ColBlob(1), q.ColInt(2),
                           q.ColText(3), q.ColText(4)};
    });
  }

  Result<std::vector<uint64_t>> AuditSeqsOfActor(const std::string& actor,
                                                 uint64_t below) override {
    Query q(c_, "SELECT seq FROM audit_by_actor WHERE actor = ? AND seq < ? ORDER BY seq");
    q.Text(actor).Int(static_cast<int64_t>(std::min<uint64_t>(below, INT64_MAX)));
    return q.Rows<uint64_t>([&] { return static_cast<uint64_t>(q.ColInt(0)); });
  }

  Result<std::vector<std::string>> ObjectedPurposesOf(const std::string& subject_id) override {
    Query q(c_,
            "SELECT DISTINCT purpose FROM consent_events WHERE subject_id = ? AND event = "
            "'objected'");
    q.Text(subject_id);
    return q.Texts();
  }

  static constexpr const char* kConfirmationColumns =
      "id, subject_id, purpose, channel, notice_version, method, actor, status, requested_at, "
      "expires_at, confirmed_at, event_id";
  static ConsentConfirmationRow ConfirmationFrom(Query& q) {
    ConsentConfirmationRow r;
    r.id = q.ColText(0);
    r.subject_id = q.ColText(1);
    r.purpose = q.ColText(2);
    r.channel = q.ColText(3);
    r.notice_version = q.ColText(4);
    r.method = q.ColText(5);
    r.actor = q.ColText(6);
    r.status = q.ColText(7);
    r.requested_at = q.ColInt(8);
    r.expires_at = q.ColInt(9);
    r.confirmed_at = q.ColInt(10);
    r.event_id = q.ColText(11);
    return r;
  }

  Result<std::optional<ConsentConfirmationRow>> GetConsentConfirmation(
      const std::string& id) override {
    Query q(c_, std::string("SELECT ") + kConfirmationColumns +
                    " FROM consent_confirmations WHERE id = ?");
    q.Text(id);
    GARDE_ASSIGN_OR_RETURN(auto rows,
                           q.Rows<ConsentConfirmationRow>([&] { return ConfirmationFrom(q); }));
    if (rows.empty()) return std::optional<ConsentConfirmationRow>();
    return std::optional<ConsentConfirmationRow>(std::move(rows.front()));
  }

  Result<std::vector<ConsentConfirmationRow>> PendingConfirmationsOf(
      const std::string& subject_id) override {
    Query q(c_, std::string("SELECT ") + kConfirmationColumns +
                    " FROM consent_confirmations WHERE subject_id = ? AND status = 'pending' "
                    "ORDER BY requested_at, id");
    q.Text(subject_id);
    return q.Rows<ConsentConfirmationRow>([&] { return ConfirmationFrom(q); });
  }

  Result<std::vector<ConsentEventRow>> ConsentEventsOf(const std::string& subject_id) override {
    Query q(c_,
            "SELECT id, subject_id, purpose, channel, event, legal_basis, notice_version, "
            "method, actor, at, expires_at, receipt FROM consent_events WHERE subject_id = ? "
            "ORDER BY at, rowid");
    q.Text(subject_id);
    std::vector<ConsentEventRow> out;
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      ConsentEventRow r;
      r.id = q.ColText(0);
      r.subject_id = q.ColText(1);
      r.purpose = q.ColText(2);
      r.channel = q.ColText(3);
      r.event = q.ColText(4);
      r.legal_basis = q.ColText(5);
      r.notice_version = q.ColText(6);
      r.method = q.ColText(7);
      r.actor = q.ColText(8);
      r.at = q.ColInt(9);
      r.expires_at = q.ColInt(10);
      r.receipt = q.ColText(11);
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return q.Error();
    return out;
  }

  Result<bool> IsSuppressed(const std::string& kind, const Bytes& digest) override {
    Query q(c_, "SELECT 1 FROM suppressions WHERE kind = ? AND digest = ?");
    q.Text(kind).Blob(digest);
    const int rc = q.Step();
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return q.Error();
  }

  Result<std::vector<Bytes>> IndexDigestsOf(const std::string& subject_id,
                                            const std::string& field) override {
    Query q(c_, "SELECT digest FROM blind_index WHERE subject_id = ? AND field = ?");
    q.Text(subject_id).Text(field);
    return q.Rows<Bytes>([&] { return q.ColBlob(0); });
  }

  Status ScanConsentFacts(const std::string& first_id, const std::string& last_id,
                          const FactVisitor& fn) override {
    Query q(c_,
            "SELECT subject_id, purpose, channel, event, at, expires_at FROM consent_events "
            "INDEXED BY consent_facts_by_subject WHERE subject_id >= ? AND subject_id <= ? "
            "ORDER BY subject_id, at, rowid");
    q.Text(first_id).Text(last_id);
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      fn(q.ColView(0),
         ConsentFactRow{q.ColText(1), q.ColText(2), q.ColText(3), q.ColInt(4), q.ColInt(5)});
    }
    return rc == SQLITE_DONE ? Status::Ok() : q.Error();
  }

  Result<std::vector<std::pair<std::string, std::string>>> SuppressedContactsIn(
      const std::string& from_id, const std::string& before_id) override {
    // Walks the suppression list (short next to the population) and looks each digest up.
    Query q(c_,
            "SELECT DISTINCT b.subject_id, s.kind FROM suppressions s JOIN blind_index b "
            "ON b.field = '~' || s.kind AND b.digest = s.digest "
            "WHERE b.subject_id >= ?1 AND (?2 = '' OR b.subject_id < ?2) "
            "ORDER BY b.subject_id, s.kind");
    q.Text(from_id).Text(before_id);
    return q.Rows<std::pair<std::string, std::string>>(
        [&] { return std::make_pair(q.ColText(0), q.ColText(1)); });
  }

  Result<std::vector<std::string>> SuppressedContactsOf(const std::string& subject_id) override {
    Query q(c_,
            "SELECT DISTINCT s.kind FROM blind_index b JOIN suppressions s "
            "ON s.kind = substr(b.field, 2) AND s.digest = b.digest "
            "WHERE b.subject_id = ? AND b.field >= '~' AND b.field < '\x7f'");
    q.Text(subject_id);
    return q.Texts();
  }

  Result<ChangeTail> ChangesAfter(int64_t after_seq, size_t limit) override {
    ChangeTail tail;
    {
      Query q(c_, "SELECT seq FROM sqlite_sequence WHERE name = 'vault_changes'");
      GARDE_ASSIGN_OR_RETURN(auto last, q.FirstInt(0));
      tail.last_seq = last;
    }
    if (tail.last_seq <= after_seq) return tail;
    if (static_cast<uint64_t>(tail.last_seq - after_seq) > limit) {
      tail.complete = false;
      return tail;
    }
    Query q(c_, "SELECT seq, subject_id FROM vault_changes WHERE seq > ? ORDER BY seq");
    q.Int(after_seq);
    GARDE_ASSIGN_OR_RETURN(auto changes, q.Rows<std::pair<int64_t, std::string>>([&] {
      return std::make_pair(q.ColInt(0), q.ColText(1));
    }));
    tail.changes = std::move(changes);
    // Numbers have no gaps: a missing first one was trimmed before this reader saw it.
    tail.complete = !tail.changes.empty() && tail.changes.front().first == after_seq + 1 &&
                    tail.changes.back().first == tail.last_seq;
    return tail;
  }

  Result<int64_t> ShredCount() override {
    Query q(c_, "SELECT count FROM shreds WHERE id = 0");
    return q.FirstInt(0);
  }

  Result<std::optional<SnapshotKeyRow>> GetSnapshotKey(const std::string& name) override {
    Query q(c_, "SELECT key_id, root_key_version, wrapped_key FROM snapshot_keys WHERE name = ?");
    q.Text(name);
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<SnapshotKeyRow>();
    if (rc != SQLITE_ROW) return q.Error();
    return std::optional<SnapshotKeyRow>(
        SnapshotKeyRow{name, q.ColText(0), static_cast<uint32_t>(q.ColInt(1)), q.ColBlob(2)});
  }

  Result<std::optional<RequestRow>> GetRequest(const std::string& id) override {
    static const std::string sql = RequestSelect(true) + " WHERE id = ?";
    Query q(c_, sql);
    q.Text(id);
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<RequestRow>();
    if (rc != SQLITE_ROW) return q.Error();
    return std::optional<RequestRow>(ReadRequest(q));
  }

  Result<std::vector<RequestRow>> QueryRequests(const RequestQuery& rq) override {
    std::string sql = RequestSelect(false) + " WHERE 1=1";
    if (!rq.statuses.empty()) {
      sql += " AND status IN (";
      for (size_t i = 0; i < rq.statuses.size(); ++i) sql += i == 0 ? "?" : ",?";
      sql += ")";
    }
    if (!rq.type.empty()) sql += " AND type = ?";
    if (!rq.subject.empty()) sql += " AND subject_id = ?";
    if (rq.due_before != 0) sql += " AND due_at < ?";
    if (rq.after) sql += " AND (due_at, id) > (?, ?)";
    sql += " ORDER BY due_at, id LIMIT ?";
    Query q(c_, sql);
    for (const auto& s : rq.statuses) q.Text(s);
    if (!rq.type.empty()) q.Text(rq.type);
    if (!rq.subject.empty()) q.Text(rq.subject);
    if (rq.due_before != 0) q.Int(rq.due_before);
    if (rq.after) q.Int(rq.after->first).Text(rq.after->second);
    q.Int(static_cast<int64_t>(rq.limit));
    return q.Rows<RequestRow>([&] { return ReadRequest(q); });
  }

  Result<std::vector<TombstoneRow>> ListTombstones(int64_t since) override {
    Query q(c_,
            "SELECT subject_id, request_id, at, kept FROM tombstones WHERE at >= ? ORDER BY at");
    q.Int(since);
    return q.Rows<TombstoneRow>([&] {
      return TombstoneRow{q.ColText(0), q.ColText(1), q.ColInt(2), SplitList(q.ColText(3), ',')};
    });
  }

  Result<std::optional<TombstoneLogMark>> GetTombstoneLogMark(const std::string& log) override {
    Query q(c_, "SELECT applied_to, digest FROM tombstone_log_marks WHERE log = ?");
    q.Text(log);
    GARDE_ASSIGN_OR_RETURN(auto rows, q.Rows<TombstoneLogMark>([&] {
      return TombstoneLogMark{log, q.ColInt(0), q.ColBlob(1)};
    }));
    if (rows.empty()) return std::optional<TombstoneLogMark>();
    return std::optional<TombstoneLogMark>(std::move(rows.front()));
  }

  Result<std::vector<PolicyVersionRow>> ListPolicyVersions(size_t limit) override {
    Query q(c_,
            "SELECT seq, content_hash, loaded_at, source, summary FROM policy_versions "
            "ORDER BY seq DESC LIMIT ?");
    q.Int(static_cast<int64_t>(limit));
    return q.Rows<PolicyVersionRow>([&] {
      return PolicyVersionRow{q.ColInt(0), q.ColText(1), q.ColInt(2), q.ColText(3), q.ColText(4)};
    });
  }

  Result<std::vector<RetentionRunRow>> ListRetentionRuns(int64_t before_seq,
                                                         size_t limit) override {
    Query q(c_,
            "SELECT seq, id, started_at, at, finished_at, dry_run, cursor, report "
            "FROM retention_runs WHERE ? = 0 OR seq < ? ORDER BY seq DESC LIMIT ?");
    q.Int(before_seq).Int(before_seq).Int(static_cast<int64_t>(limit));
    return q.Rows<RetentionRunRow>([&] { return RunFrom(q); });
  }

  Result<std::optional<RetentionRunRow>> GetRetentionRun(const std::string& id) override {
    Query q(c_,
            "SELECT seq, id, started_at, at, finished_at, dry_run, cursor, report "
            "FROM retention_runs WHERE id = ?");
    q.Text(id);
    GARDE_ASSIGN_OR_RETURN(auto rows, q.Rows<RetentionRunRow>([&] { return RunFrom(q); }));
    if (rows.empty()) return std::optional<RetentionRunRow>();
    return std::optional<RetentionRunRow>(std::move(rows.front()));
  }

  Result<std::vector<PendingAuditRow>> ListPendingAudit(int64_t after_id, size_t limit) override {
    Query q(c_,
            "SELECT id, at_ns, subject, tail FROM audit_pending WHERE id > ? ORDER BY id LIMIT ?");
    q.Int(after_id).Int(static_cast<int64_t>(limit));
    return q.Rows<PendingAuditRow>([&] {
      return PendingAuditRow{q.ColInt(0), q.ColInt(1), q.ColText(2), q.ColText(3)};
    });
  }

  Result<int64_t> AuditIntakeMark() override {
    Query q(c_, "SELECT last_pending FROM audit_intake WHERE id = 0");
    return q.FirstInt(0);
  }

  Result<int64_t> JournalImportedTo(const std::string& name) override {
    Query q(c_, "SELECT imported_to FROM audit_journals WHERE name = ?");
    q.Text(name);
    return q.FirstInt(0);
  }

  Result<std::vector<OutboxRow>> ListOutbox(int64_t after_seq, size_t limit) override {
    Query q(c_,
            "SELECT id, topic, payload, created_at, seq FROM outbox WHERE seq > ? ORDER BY seq "
            "LIMIT ?");
    q.Int(after_seq).Int(static_cast<int64_t>(limit));
    return q.Rows<OutboxRow>([&] {
      return OutboxRow{q.ColText(0), q.ColText(1), q.ColText(2), q.ColInt(3), q.ColInt(4)};
    });
  }

  Result<std::vector<InteractionRow>> InteractionsOf(const std::string& subject_id,
                                                     int64_t since) override {
    Query q(
        c_,
        "SELECT subject_id, kind, at, sealed_amount, seq FROM interactions WHERE subject_id = ? "
        "AND at >= ? ORDER BY at, seq");
    q.Text(subject_id).Int(since);
    return q.Rows<InteractionRow>([&] {
      return InteractionRow{q.ColText(0), q.ColText(1), q.ColInt(2), q.ColBlob(3), q.ColInt(4)};
    });
  }

  Result<std::vector<std::string>> PurchasersBetween(int64_t since, int64_t until,
                                                     const std::string& after_id,
                                                     size_t limit) override {
    Query q(c_,
            "SELECT DISTINCT subject_id FROM interactions WHERE kind = 'purchase' AND at >= ? "
            "AND at < ? AND subject_id > ? ORDER BY subject_id LIMIT ?");
    q.Int(since).Int(until).Text(after_id).Int(static_cast<int64_t>(limit));
    return q.Rows<std::string>([&] { return q.ColText(0); });
  }

  Result<int64_t> WebhookMark(const std::string& endpoint) override {
    Query q(c_, "SELECT outbox_seq FROM webhook_marks WHERE endpoint = ?");
    q.Text(endpoint);
    GARDE_ASSIGN_OR_RETURN(auto rows, q.Rows<int64_t>([&] { return q.ColInt(0); }));
    return rows.empty() ? int64_t{0} : rows.front();
  }

  Result<std::vector<DeliveryRow>> DueDeliveries(int64_t now, size_t limit) override {
    Query q(c_, std::string("SELECT ") + kDeliveryColumns +
                    " FROM webhook_deliveries d WHERE status = 'pending' AND next_at <= ? AND "
                    "(subject = '' OR NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE "
                    "e.endpoint = d.endpoint AND e.subject = d.subject AND e.status = 'pending' "
                    "AND e.id < d.id)) ORDER BY id LIMIT ?");
    q.Int(now).Int(static_cast<int64_t>(limit));
    return q.Rows<DeliveryRow>([&] { return DeliveryFrom(q); });
  }

  Result<std::vector<DeliveryRow>> QueryDeliveries(const DeliveryQuery& dq) override {
    Query q(c_, std::string("SELECT ") + kDeliveryColumns +
                    " FROM webhook_deliveries WHERE (? = '' OR status = ?) AND (? = '' OR "
                    "endpoint = ?) AND id > ? ORDER BY id LIMIT ?");
    q.Text(dq.status)
        .Text(dq.status)
        .Text(dq.endpoint)
        .Text(dq.endpoint)
        .Int(dq.after_id)
        .Int(static_cast<int64_t>(dq.limit));
    return q.Rows<DeliveryRow>([&] { return DeliveryFrom(q); });
  }

  Result<std::optional<DeliveryRow>> GetDelivery(int64_t id) override {
    Query q(c_,
            std::string("SELECT ") + kDeliveryColumns + " FROM webhook_deliveries WHERE id = ?");
    q.Int(id);
    GARDE_ASSIGN_OR_RETURN(auto rows, q.Rows<DeliveryRow>([&] { return DeliveryFrom(q); }));
    if (rows.empty()) return std::optional<DeliveryRow>();
    return std::optional<DeliveryRow>(std::move(rows.front()));
  }

  static constexpr const char* kIncidentColumns =
      "id, status, detected_at, aware_at, authority_due_at, authority_notified_at, "
      "subjects_notified_at, closed_at, created_at, updated_at, sealed";
  static IncidentRow IncidentFrom(Query& q) {
    IncidentRow r;
    r.id = q.ColText(0);
    r.status = q.ColText(1);
    r.detected_at = q.ColInt(2);
    r.aware_at = q.ColInt(3);
    r.authority_due_at = q.ColInt(4);
    r.authority_notified_at = q.ColInt(5);
    r.subjects_notified_at = q.ColInt(6);
    r.closed_at = q.ColInt(7);
    r.created_at = q.ColInt(8);
    r.updated_at = q.ColInt(9);
    r.sealed = q.ColBlob(10);
    return r;
  }

  Result<std::optional<IncidentRow>> GetIncident(const std::string& id) override {
    Query q(c_, std::string("SELECT ") + kIncidentColumns + " FROM incidents WHERE id = ?");
    q.Text(id);
    GARDE_ASSIGN_OR_RETURN(auto rows, q.Rows<IncidentRow>([&] { return IncidentFrom(q); }));
    if (rows.empty()) return std::optional<IncidentRow>();
    return std::optional<IncidentRow>(std::move(rows.front()));
  }

  Result<std::vector<IncidentRow>> ListIncidents() override {
    Query q(c_, std::string("SELECT ") + kIncidentColumns +
                    " FROM incidents ORDER BY authority_due_at, id");
    return q.Rows<IncidentRow>([&] { return IncidentFrom(q); });
  }

  Result<std::vector<ContactLinkRow>> LinksOf(const std::string& subject_id) override {
    Query q(c_,
            "SELECT organisation_id, person_id, role, created_at FROM contact_links "
            "WHERE organisation_id = ?1 OR person_id = ?1 ORDER BY created_at, person_id");
    q.Text(subject_id);
    return q.Rows<ContactLinkRow>([&] {
      return ContactLinkRow{q.ColText(0), q.ColText(1), q.ColText(2), q.ColInt(3)};
    });
  }

  Status PutLink(const ContactLinkRow& r) override {
    Query q(c_,
            "INSERT INTO contact_links(organisation_id, person_id, role, created_at) "
            "VALUES(?,?,?,?) ON CONFLICT(organisation_id, person_id) DO UPDATE SET "
            "role = excluded.role");
    q.Text(r.organisation_id).Text(r.person_id).Text(r.role).Int(r.created_at);
    return q.Run();
  }

  Result<bool> DeleteLink(const std::string& organisation_id,
                          const std::string& person_id) override {
    Query q(c_, "DELETE FROM contact_links WHERE organisation_id = ? AND person_id = ?");
    q.Text(organisation_id).Text(person_id);
    GARDE_RETURN_IF_ERROR(q.Run());
    return sqlite3_changes(c_.db()) > 0;
  }

  Status DeleteLinksOf(const std::string& subject_id) override {
    Query q(c_, "DELETE FROM contact_links WHERE organisation_id = ?1 OR person_id = ?1");
    q.Text(subject_id);
    return q.Run();
  }

  static SegmentRow SegmentFrom(Query& q) {
    return {q.ColText(0), q.ColText(1), q.ColText(2), q.ColInt(3), q.ColInt(4)};
  }

  Result<std::optional<SegmentRow>> GetSegment(const std::string& name) override {
    Query q(c_,
            "SELECT name, definition, created_by, created_at, updated_at FROM segments "
            "WHERE name = ?");
    q.Text(name);
    GARDE_ASSIGN_OR_RETURN(auto rows, q.Rows<SegmentRow>([&] { return SegmentFrom(q); }));
    if (rows.empty()) return std::optional<SegmentRow>();
    return std::optional<SegmentRow>(std::move(rows.front()));
  }

  Result<std::vector<SegmentRow>> ListSegments() override {
    Query q(c_,
            "SELECT name, definition, created_by, created_at, updated_at FROM segments "
            "ORDER BY name");
    return q.Rows<SegmentRow>([&] { return SegmentFrom(q); });
  }

  Status PutSegment(const SegmentRow& r) override {
    Query q(c_,
            "INSERT INTO segments(name, definition, created_by, created_at, updated_at) "
            "VALUES(?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET definition = excluded.definition, "
            "updated_at = excluded.updated_at");
    q.Text(r.name).Text(r.definition).Text(r.created_by).Int(r.created_at).Int(r.updated_at);
    return q.Run();
  }

  Result<bool> DeleteSegment(const std::string& name) override {
    Query q(c_, "DELETE FROM segments WHERE name = ?");
    q.Text(name);
    GARDE_RETURN_IF_ERROR(q.Run());
    return sqlite3_changes(c_.db()) > 0;
  }

  static constexpr const char* kMergeSelect =
      "SELECT id, merged_id, into_id, state, actor, created_at, finished_at, record, sealed "
      "FROM merges ";
  static MergeRow MergeFrom(Query& q) {
    return {q.ColText(0), q.ColText(1), q.ColText(2), q.ColText(3), q.ColText(4),
            q.ColInt(5),  q.ColInt(6),  q.ColText(7), q.ColBlob(8)};
  }

  Result<std::optional<MergeRow>> GetMerge(const std::string& id) override {
    Query q(c_, std::string(kMergeSelect) + "WHERE id = ?");
    q.Text(id);
    GARDE_ASSIGN_OR_RETURN(auto rows, q.Rows<MergeRow>([&] { return MergeFrom(q); }));
    if (rows.empty()) return std::optional<MergeRow>();
    return std::optional<MergeRow>(std::move(rows.front()));
  }

  Result<std::vector<MergeRow>> MergesOf(const std::string& merged_id) override {
    Query q(c_,
            std::string(kMergeSelect) + "WHERE merged_id = ? ORDER BY created_at DESC, rowid DESC");
    q.Text(merged_id);
    return q.Rows<MergeRow>([&] { return MergeFrom(q); });
  }

  Result<std::vector<MergeRow>> MergesInto(const std::string& into_id) override {
    Query q(c_, std::string(kMergeSelect) + "WHERE into_id = ? ORDER BY created_at, rowid");
    q.Text(into_id);
    return q.Rows<MergeRow>([&] { return MergeFrom(q); });
  }

  Result<std::vector<MergeRow>> OpenMergesBefore(int64_t before, size_t limit) override {
    Query q(c_, std::string(kMergeSelect) +
                    "WHERE state = 'merged' AND created_at < ? ORDER BY created_at, rowid LIMIT ?");
    q.Int(before).Int(static_cast<int64_t>(limit));
    return q.Rows<MergeRow>([&] { return MergeFrom(q); });
  }

  Status PutMerge(const MergeRow& r) override {
    Query q(c_,
            "INSERT INTO merges(id, merged_id, into_id, state, actor, created_at, finished_at, "
            "record, sealed) VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
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

  Status ReassignRequest(const std::string& id, const std::string& subject_id, const Bytes& sealed,
                         const Bytes& package) override {
    Query q(c_, "UPDATE requests SET subject_id = ?, sealed = ?, package = ? WHERE id = ?");
    q.Text(subject_id).Blob(sealed).Blob(package).Text(id);
    GARDE_RETURN_IF_ERROR(q.Run());
    if (sqlite3_changes(c_.db()) == 0) return NotFound("no request " + id);
    return Status::Ok();
  }

  Result<std::map<int64_t, std::string>> ImportedRows(const std::string& import_id) override {
    Query q(c_, "SELECT row, subject_id FROM import_rows WHERE import_id = ?");
    q.Text(import_id);
    std::map<int64_t, std::string> out;
    auto rows = q.Rows<int>([&] {
      out[q.ColInt(0)] = q.ColText(1);
      return 0;
    });
    if (!rows.ok()) return rows.status();
    return out;
  }

  Status InsertImportRow(const std::string& import_id, int64_t row,
                         const std::string& subject_id) override {
    Query q(c_, "INSERT INTO import_rows(import_id, row, subject_id) VALUES(?,?,?)");
    q.Text(import_id).Int(row).Text(subject_id);
    return q.Run();
  }

  Status PutIncident(const IncidentRow& r) override {
    Query q(c_, std::string("INSERT OR REPLACE INTO incidents(") + kIncidentColumns +
                    ") VALUES(?,?,?,?,?,?,?,?,?,?,?)");
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

  Status InsertRequest(const RequestRow& r) override {
    static const std::string sql = std::string("INSERT INTO requests(") + kRequestColumns +
                                   ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    Query q(c_, sql);
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
    return q.Run();
  }

  Status UpdateRequest(const RequestRow& r) override {
    Query q(c_,
            "UPDATE requests SET status = ?, jurisdiction = ?, opened_by = ?, verification = ?, "
            "verified_at = ?, due_at = ?, completed_at = ?, extended = ?, sealed = ?, "
            "package = ?, result = ? WHERE id = ?");
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
    if (sqlite3_changes(c_.db()) == 0) return NotFound("no request " + r.id);
    return Status::Ok();
  }

  Status InsertTombstone(const TombstoneRow& r) override {
    Query q(c_,
            "INSERT OR REPLACE INTO tombstones(subject_id, request_id, at, kept) VALUES(?,?,?,?)");
    q.Text(r.subject_id).Text(r.request_id).Int(r.at).Text(JoinList(r.kept, ','));
    return q.Run();
  }

  Status PutTombstoneLogMark(const TombstoneLogMark& m) override {
    Query q(c_,
            "INSERT OR REPLACE INTO tombstone_log_marks(log, applied_to, digest) VALUES(?,?,?)");
    q.Text(m.log).Int(m.applied_to).Blob(m.digest);
    return q.Run();
  }

  Status PutRetentionRun(const RetentionRunRow& r) override {
    Query q(
        c_,
        "INSERT INTO retention_runs(id, started_at, at, finished_at, dry_run, cursor, report) "
        "VALUES(?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET finished_at = excluded.finished_at, "
        "cursor = excluded.cursor, report = excluded.report");
    q.Text(r.id)
        .Int(r.started_at)
        .Int(r.at)
        .Int(r.finished_at)
        .Int(r.dry_run ? 1 : 0)
        .Text(r.cursor)
        .Text(r.report);
    return q.Run();
  }

  Status InsertPolicyVersion(const PolicyVersionRow& r) override {
    Query q(c_,
            "INSERT INTO policy_versions(content_hash, loaded_at, source, summary) "
            "VALUES(?,?,?,?)");
    q.Text(r.content_hash).Int(r.loaded_at).Text(r.source).Text(r.summary);
    return q.Run();
  }

  Status InsertPendingAudit(const PendingAuditRow& r) override {
    Query q(c_, "INSERT INTO audit_pending(at_ns, subject, tail) VALUES(?,?,?)");
    q.Int(r.at_ns);
    if (r.subject.empty()) {
      q.Null();
    } else {
      q.Text(r.subject);
    }
    q.Text(r.tail);
    return q.Run();
  }

  Status DeletePendingAudit(int64_t up_to_id) override {
    Query q(c_, "DELETE FROM audit_pending WHERE id <= ?");
    q.Int(up_to_id);
    return q.Run();
  }

  Status ReservePendingAuditIds(int64_t id) override {
    // sqlite_sequence holds the row once the first pending entry was written.
    Query up(c_, "UPDATE sqlite_sequence SET seq = ? WHERE name = 'audit_pending' AND seq < ?");
    up.Int(id).Int(id);
    GARDE_RETURN_IF_ERROR(up.Run());
    Query ins(c_,
              "INSERT INTO sqlite_sequence(name, seq) SELECT 'audit_pending', ? WHERE NOT EXISTS "
              "(SELECT 1 FROM sqlite_sequence WHERE name = 'audit_pending')");
    ins.Int(id);
    return ins.Run();
  }

  Status SetAuditIntakeMark(int64_t id) override {
    Query q(c_, "UPDATE audit_intake SET last_pending = ? WHERE id = 0");
    q.Int(id);
    return q.Run();
  }

  Status SetJournalImported(const std::string& name, int64_t offset) override {
    Query q(c_,
            "INSERT INTO audit_journals(name, imported_to) VALUES(?, ?) "
            "ON CONFLICT(name) DO UPDATE SET imported_to = excluded.imported_to");
    q.Text(name).Int(offset);
    return q.Run();
  }

  Status ForgetJournal(const std::string& name) override {
    Query q(c_, "DELETE FROM audit_journals WHERE name = ?");
    q.Text(name);
    return q.Run();
  }

  Status InsertOutbox(const OutboxRow& r) override {
    Query q(c_, "INSERT INTO outbox(id, topic, payload, created_at) VALUES(?,?,?,?)");
    q.Text(r.id).Text(r.topic).Text(r.payload).Int(r.created_at);
    return q.Run();
  }

  Result<int64_t> InsertInteraction(const InteractionRow& r) override {
    Query q(c_, "INSERT INTO interactions(subject_id, kind, at, sealed_amount) VALUES(?,?,?,?)");
    q.Text(r.subject_id).Text(r.kind).Int(r.at);
    if (r.sealed_amount.empty()) {
      q.Null();
    } else {
      q.Blob(r.sealed_amount);
    }
    GARDE_RETURN_IF_ERROR(q.Run());
    return static_cast<int64_t>(sqlite3_last_insert_rowid(c_.db()));
  }

  Status ResealInteraction(int64_t seq, const Bytes& sealed_amount) override {
    Query q(c_, "UPDATE interactions SET sealed_amount = ? WHERE seq = ?");
    q.Blob(sealed_amount).Int(seq);
    return q.Run();
  }

  Status DeleteInteraction(int64_t seq) override {
    Query q(c_, "DELETE FROM interactions WHERE seq = ?");
    q.Int(seq);
    return q.Run();
  }

  Status DeleteInteractionsOf(const std::string& subject_id) override {
    Query q(c_, "DELETE FROM interactions WHERE subject_id = ?");
    q.Text(subject_id);
    return q.Run();
  }

  Status SetWebhookMark(const std::string& endpoint, int64_t seq) override {
    Query q(c_,
            "INSERT INTO webhook_marks(endpoint, outbox_seq) VALUES(?, ?) ON CONFLICT(endpoint) "
            "DO UPDATE SET outbox_seq = excluded.outbox_seq");
    q.Text(endpoint).Int(seq);
    return q.Run();
  }

  Status InsertDelivery(const DeliveryRow& r) override {
    Query q(c_,
            "INSERT OR IGNORE INTO webhook_deliveries(endpoint, event_id, topic, subject, payload, "
            "created_at, status, attempts, next_at) VALUES(?,?,?,?,?,?,?,?,?)");
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
    Query q(c_,
            "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_at = ?, last_error = ?, "
            "delivered_at = ?, created_at = ? WHERE id = ?");
    q.Text(r.status)
        .Int(r.attempts)
        .Int(r.next_at)
        .Text(r.last_error)
        .Int(r.delivered_at)
        .Int(r.created_at)
        .Int(r.id);
    return q.Run();
  }

  Status DeleteIndexesOf(const std::string& subject_id) override {
    Query q(c_, "DELETE FROM blind_index WHERE subject_id = ?");
    q.Text(subject_id);
    return q.Run();
  }

  Status DeleteConsentEventsOf(const std::string& subject_id) override {
    Query q(c_, "DELETE FROM consent_events WHERE subject_id = ?");
    q.Text(subject_id);
    GARDE_RETURN_IF_ERROR(q.Run());
    Query pending(c_, "DELETE FROM consent_confirmations WHERE subject_id = ?");
    pending.Text(subject_id);
    return pending.Run();
  }

  Status PutConsentConfirmation(const ConsentConfirmationRow& r) override {
    Query q(c_, std::string("INSERT OR REPLACE INTO consent_confirmations(") +
                    kConfirmationColumns + ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
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

  Result<bool> PutSnapshotKey(const SnapshotKeyRow& key, int64_t shreds) override {
    GARDE_ASSIGN_OR_RETURN(auto now, ShredCount());
    if (now != shreds) return false;
    Query q(c_,
            "INSERT OR REPLACE INTO snapshot_keys(name, key_id, root_key_version, wrapped_key) "
            "VALUES(?, ?, ?, ?)");
    q.Text(key.name).Text(key.key_id).Int(key.root_key_version).Blob(key.wrapped_key);
    GARDE_RETURN_IF_ERROR(q.Run());
    return true;
  }

  Status ShredDataKey(const std::string& subject_id) override {
    Query q(c_, "UPDATE subjects SET wrapped_dek = x'' WHERE id = ?");
    q.Text(subject_id);
    return q.Run();
  }

  Status InsertConsentEvent(const ConsentEventRow& r) override {
    Query q(
        c_,
        "INSERT INTO consent_events(id, subject_id, purpose, channel, event, legal_basis, "
        "notice_version, method, actor, at, expires_at, receipt) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
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
    return q.Run();
  }

  Status PutSuppression(const std::string& kind, const Bytes& digest, const std::string& reason,
                        int64_t at) override {
    Query q(c_, "INSERT OR IGNORE INTO suppressions(kind, digest, reason, at) VALUES(?,?,?,?)");
    q.Text(kind).Blob(digest).Text(reason).Int(at);
    return q.Run();
  }

  Result<std::optional<CheckpointRow>> LatestCheckpoint() override {
    Query q(c_,
            "SELECT size, root, time, note, actors FROM audit_checkpoints "
            "ORDER BY size DESC LIMIT 1");
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<CheckpointRow>();
    if (rc != SQLITE_ROW) return q.Error();
    return std::optional<CheckpointRow>(CheckpointRow{
        static_cast<uint64_t>(q.ColInt(0)), q.ColBlob(1), q.ColInt(2), q.ColText(3), q.ColText(4)});
  }

  Status InsertAuditEntry(const AuditRow& r) override {
    Query q(c_, "INSERT INTO audit_log(seq, entry, leaf_hash, subject) VALUES(?,?,?,?)");
    q.Int(static_cast<int64_t>(r.seq)).Text(r.entry).Blob(r.leaf_hash);
    if (r.subject.empty()) {
      q.Null();
    } else {
      q.Text(r.subject);
    }
    return q.Run();
  }

  Status InsertAuditActor(const std::string& actor, uint64_t seq) override {
    Query q(c_, "INSERT INTO audit_by_actor(actor, seq) VALUES(?,?)");
    q.Text(actor).Int(static_cast<int64_t>(seq));
    return q.Run();
  }

  Status AppendAuditSubjectRun(std::vector<std::pair<std::string, uint64_t>> postings) override {
    if (postings.empty()) return Status::Ok();
    std::sort(postings.begin(), postings.end());
    GARDE_ASSIGN_OR_RETURN(auto run, NextAuditRun());
    const auto entries = static_cast<int64_t>(postings.size());
    GARDE_RETURN_IF_ERROR(InsertRun(run, AuditRunLevel(entries), entries));
    for (const auto& [subject, seq] : postings) {
      GARDE_RETURN_IF_ERROR(InsertPosting(run, subject, static_cast<int64_t>(seq)));
    }
    return Status::Ok();
  }

  Result<bool> MergeAuditSubjectRuns() override {
    // The lowest level holding kAuditRunFanIn runs, if any.
    int64_t level = -1;
    {
      Query q(c_,
              "SELECT level FROM audit_runs WHERE level < ? GROUP BY level "
              "HAVING COUNT(*) >= ? ORDER BY level LIMIT 1");
      q.Int(kAuditTopLevel).Int(kAuditRunFanIn);
      const int rc = q.Step();
      if (rc == SQLITE_DONE) return false;
      if (rc != SQLITE_ROW) return q.Error();
      level = q.ColInt(0);
    }
    std::vector<int64_t> runs;
    int64_t entries = 0;
    {
      Query q(c_, "SELECT run, entries FROM audit_runs WHERE level = ? ORDER BY run");
      q.Int(level);
      int rc;
      while ((rc = q.Step()) == SQLITE_ROW) {
        runs.push_back(q.ColInt(0));
        entries += q.ColInt(1);
      }
      if (rc != SQLITE_DONE) return q.Error();
    }
    auto run = NextAuditRun();
    if (!run.ok()) return run.status();
    GARDE_RETURN_IF_ERROR(WriteMergedRun(runs, run.value()));
    {
      Query q(c_,
              "DELETE FROM audit_subject_runs "
              "WHERE run IN (SELECT run FROM audit_runs WHERE level = ?)");
      q.Int(level);
      GARDE_RETURN_IF_ERROR(q.Run());
    }
    {
      Query q(c_, "DELETE FROM audit_runs WHERE level = ?");
      q.Int(level);
      GARDE_RETURN_IF_ERROR(q.Run());
    }
    // Never below the merged level, so the merge always empties it.
    GARDE_RETURN_IF_ERROR(InsertRun(run.value(), std::max(level, AuditRunLevel(entries)), entries));
    return true;
  }

  Status InsertAuditNode(unsigned level, uint64_t index, const Bytes& hash) override {
    Query q(c_, "INSERT INTO audit_nodes(level, idx, hash) VALUES(?,?,?)");
    q.Int(level).Int(static_cast<int64_t>(index)).Blob(hash);
    return q.Run();
  }

  // Writes the union of `runs` as run `into`: a k-way merge of runs already sorted,
  // streamed in key order, so no sort and no temporary file whatever their size.
  Status WriteMergedRun(const std::vector<int64_t>& runs, int64_t into) {
    struct Cursor {
      sqlite3_stmt* stmt = nullptr;
      std::string subject;
      int64_t seq = 0;
    };
    std::vector<Cursor> cursors(runs.size());
    auto finalize = [&] {
      for (auto& c : cursors) sqlite3_finalize(c.stmt);
    };
    // Moves a cursor to its next row; false at its end.
    auto advance = [&](Cursor& c) -> Result<bool> {
      const int rc = sqlite3_step(c.stmt);
      if (rc == SQLITE_DONE) return false;
      if (rc != SQLITE_ROW) return c_.ErrorStatus("merge read");
      c.subject.assign(reinterpret_cast<const char*>(sqlite3_column_text(c.stmt, 0)),
                       static_cast<size_t>(sqlite3_column_bytes(c.stmt, 0)));
      c.seq = sqlite3_column_int64(c.stmt, 1);
      return true;
    };
    auto later = [&](size_t a, size_t b) {  // heap order: the smallest key on top
      const Cursor& x = cursors[a];
      const Cursor& y = cursors[b];
      const int cmp = x.subject.compare(y.subject);
      return cmp != 0 ? cmp > 0 : x.seq > y.seq;
    };
    std::vector<size_t> heap;
    Status status = Status::Ok();
    for (size_t i = 0; i < runs.size() && status.ok(); ++i) {
      // Not the statement cache: the k cursors must be open at once.
      if (sqlite3_prepare_v2(c_.db(),
                             "SELECT subject, seq FROM audit_subject_runs WHERE run = ? "
                             "ORDER BY subject, seq",
                             -1, &cursors[i].stmt, nullptr) != SQLITE_OK) {
        status = c_.ErrorStatus("prepare");
        break;
      }
      sqlite3_bind_int64(cursors[i].stmt, 1, runs[i]);
      auto more = advance(cursors[i]);
      if (!more.ok())
        status = more.status();
      else if (more.value())
        heap.push_back(i);
    }
    std::make_heap(heap.begin(), heap.end(), later);
    while (status.ok() && !heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      Cursor& c = cursors[heap.back()];
      status = InsertPosting(into, c.subject, c.seq);
      if (!status.ok()) break;
      auto more = advance(c);
      if (!more.ok()) {
        status = more.status();
      } else if (more.value()) {
        std::push_heap(heap.begin(), heap.end(), later);
      } else {
        heap.pop_back();
      }
    }
    finalize();
    return status;
  }

  Result<int64_t> NextAuditRun() {
    Query q(c_, "SELECT COALESCE(MAX(run), 0) + 1 FROM audit_runs");
    if (q.Step() != SQLITE_ROW) return q.Error();
    return q.ColInt(0);
  }

  Status InsertPosting(int64_t run, const std::string& subject, int64_t seq) {
    Query q(c_, "INSERT INTO audit_subject_runs(run, subject, seq) VALUES(?,?,?)");
    q.Int(run).Text(subject).Int(seq);
    return q.Run();
  }

  Status InsertRun(int64_t run, int64_t level, int64_t entries) {
    Query q(c_, "INSERT INTO audit_runs(run, level, entries) VALUES(?,?,?)");
    q.Int(run).Int(level).Int(entries);
    return q.Run();
  }

  Status InsertCheckpoint(const CheckpointRow& r) override {
    Query q(c_,
            "INSERT OR IGNORE INTO audit_checkpoints(size, root, time, note, actors) "
            "VALUES(?,?,?,?,?)");
    q.Int(static_cast<int64_t>(r.size)).Blob(r.root).Int(r.time).Text(r.note).Text(r.actors);
    return q.Run();
  }

  Status InsertSubject(const SubjectRow& r) override {
    static const std::string sql =
        std::string("INSERT INTO subjects(") + kSubjectColumns + ") VALUES(?,?,?,?,?,?,?,?,?,?)";
    Query q(c_, sql);
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
    return q.Run();
  }

  Status UpdateSubject(const SubjectRow& r) override {
    Query q(c_,
            "UPDATE subjects SET status = ?, source = ?, updated_at = ?, last_interaction_at = ? "
            "WHERE id = ?");
    q.Text(r.status).Text(r.source).Int(r.updated_at).Int(r.last_interaction_at).Text(r.id);
    return q.Run();
  }

  Status PutField(const std::string& id, const SealedField& f) override {
    Query q(c_, "INSERT OR REPLACE INTO subject_fields(subject_id, field, box) VALUES(?,?,?)");
    q.Text(id).Text(f.field).Blob(f.box);
    return q.Run();
  }

  Status DeleteField(const std::string& id, const std::string& field) override {
    Query q(c_, "DELETE FROM subject_fields WHERE subject_id = ? AND field = ?");
    q.Text(id).Text(field);
    return q.Run();
  }

  Status PutIndex(const std::string& id, const IndexEntry& e) override {
    GARDE_RETURN_IF_ERROR(DeleteIndex(id, e.field));
    Query q(c_, "INSERT INTO blind_index(field, digest, subject_id, master) VALUES(?,?,?,?)");
    q.Text(e.field).Blob(e.digest).Text(id).Int(e.master);
    return q.Run();
  }

  Status DeleteIndex(const std::string& id, const std::string& field) override {
    Query q(c_, "DELETE FROM blind_index WHERE subject_id = ? AND field = ?");
    q.Text(id).Text(field);
    return q.Run();
  }

  Status InsertApiKey(const ApiKeyRow& r) override {
    Query q(c_,
            "INSERT INTO api_keys(id, name, role, activities, key_hash, created_at, revoked_at, "
            "hash_master) VALUES(?,?,?,?,?,?,?,?)");
    q.Text(r.id)
        .Text(r.name)
        .Text(r.role)
        .Text(JoinList(r.activities, ' '))
        .Blob(r.key_hash)
        .Int(r.created_at)
        .Int(r.revoked_at)
        .Int(r.hash_master);
    return q.Run();
  }

  Result<bool> RehashApiKey(const std::string& id, const Bytes& from, const Bytes& to,
                            uint32_t master) override {
    Query q(c_, "UPDATE api_keys SET key_hash = ?, hash_master = ? WHERE id = ? AND key_hash = ?");
    q.Blob(to).Int(master).Text(id).Blob(from);
    GARDE_RETURN_IF_ERROR(q.Run());
    return sqlite3_changes(c_.db()) > 0;
  }

  Result<int64_t> CountConsoleSessions() override {
    Query q(c_, "SELECT COUNT(*) FROM console_sessions");
    if (q.Step() != SQLITE_ROW) return q.Error();
    return q.ColInt(0);
  }

  Status PutConsoleSession(const ConsoleSessionRow& r) override {
    Query q(c_,
            "INSERT OR REPLACE INTO console_sessions(cookie_hash, key_id, role, activities, "
            "client, csrf, lang, signed_in_at, last_seen) VALUES(?,?,?,?,?,?,?,?,?)");
    q.Blob(r.cookie_hash)
        .Text(r.key_id)
        .Text(r.role)
        .Text(r.activities)
        .Text(r.client)
        .Text(r.csrf)
        .Text(r.lang)
        .Int(r.signed_in_at)
        .Int(r.last_seen);
    return q.Run();
  }

  Status DeleteConsoleSession(const Bytes& cookie_hash) override {
    Query q(c_, "DELETE FROM console_sessions WHERE cookie_hash = ?");
    q.Blob(cookie_hash);
    return q.Run();
  }

  Status DeleteExpiredConsoleSessions(int64_t idle_before, int64_t signed_in_before) override {
    Query q(c_, "DELETE FROM console_sessions WHERE last_seen < ? OR signed_in_at < ?");
    q.Int(idle_before).Int(signed_in_before);
    return q.Run();
  }

  Status RevokeApiKey(const std::string& id, int64_t at) override {
    Query q(c_, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0");
    q.Int(at).Text(id);
    GARDE_RETURN_IF_ERROR(q.Run());
    if (sqlite3_changes(c_.db()) == 0) return NotFound("no active API key " + id);
    return Status::Ok();
  }

  Result<bool> RewrapDataKey(const std::string& id, uint32_t from, uint32_t to,
                             const Bytes& wrapped) override {
    Query q(c_,
            "UPDATE subjects SET root_key_version = ?, wrapped_dek = ? "
            "WHERE id = ? AND root_key_version = ?");
    q.Int(to).Blob(wrapped).Text(id).Int(from);
    GARDE_RETURN_IF_ERROR(q.Run());
    return sqlite3_changes(c_.db()) == 1;
  }

  Result<bool> ReplaceDataKey(const std::string& id, uint32_t from_dek, uint32_t root, uint32_t dek,
                              const Bytes& wrapped) override {
    Query q(c_,
            "UPDATE subjects SET root_key_version = ?, dek_version = ?, wrapped_dek = ? "
            "WHERE id = ? AND dek_version = ?");
    q.Int(root).Int(dek).Blob(wrapped).Text(id).Int(from_dek);
    GARDE_RETURN_IF_ERROR(q.Run());
    return sqlite3_changes(c_.db()) == 1;
  }

 private:
  SqliteConnection& c_;
};

Result<std::unique_ptr<SqliteConnection>> OpenConnection(const SqliteOptions& o) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(o.path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 CoalescingWalVfs());
  auto conn = std::make_unique<SqliteConnection>(db);
  if (rc != SQLITE_OK) return Unavailable("cannot open database " + o.path);
  sqlite3_busy_timeout(db, o.busy_timeout_ms);
  GARDE_RETURN_IF_ERROR(conn->Exec("PRAGMA journal_mode=WAL"));
  GARDE_RETURN_IF_ERROR(
      conn->Exec(o.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"));
  GARDE_RETURN_IF_ERROR(conn->Exec("PRAGMA foreign_keys=ON"));
  GARDE_RETURN_IF_ERROR(conn->Exec(("PRAGMA mmap_size=" + std::to_string(o.mmap_bytes)).c_str()));
  GARDE_RETURN_IF_ERROR(
      conn->Exec(("PRAGMA cache_size=-" + std::to_string(o.cache_bytes >> 10)).c_str()));
  // Deleted content is overwritten where that costs no extra I/O (FAST): b-tree pages are
  // purged; whole pages freed by a delete may keep old bytes, which for subject data is
  // ciphertext under a key that erasure destroys (docs/security.md).
  GARDE_RETURN_IF_ERROR(conn->Exec("PRAGMA secure_delete=FAST"));
  return conn;
}

}  // namespace

SqliteStore::SqliteStore(SqliteOptions options) : options_(std::move(options)) {}
SqliteStore::~SqliteStore() {
  writes_.Stop();  // posted writes commit on the connections below
  std::thread flusher, checkpointer;
  {
    MutexLock lock(&flush_mu_);
    stopping_ = true;
    flusher = std::move(flusher_);
    checkpointer = std::move(checkpointer_);
  }
  flush_cv_.notify_all();
  if (flusher.joinable()) flusher.join();
  if (checkpointer.joinable()) checkpointer.join();
  SyncDeferred();  // nothing committed is left only in the page cache
}

Result<std::unique_ptr<SqliteConnection>> SqliteStore::Connect() {
  auto conn = OpenConnection(options_);
  if (conn.ok() && options_.checkpoint_frames > 0) {
    sqlite3_wal_hook(conn.value()->db(), &SqliteStore::OnWalCommit, this);
  }
  return conn;
}

// After each commit, with the WAL lock released (sqlite.org/c3ref/wal_hook.html). Copying the
// log into the database costs its writes and an fsync of the file: SQLite's own checkpoint
// does it in the committer every 1 000 frames, and every writer queued behind that commit
// waits for it. Here a thread of its own copies the bulk while writers go on. The log can
// only start over once a checkpoint has copied all of it with no writer in between, so the
// committer that finds little left after the thread's pass copies that little itself (no
// other writer of this process runs meanwhile, and the thread is idle: two checkpoints at
// once would find each other busy) and the next write starts the log over.
int SqliteStore::OnWalCommit(void* store, sqlite3* db, const char* schema, int frames) {
  auto* self = static_cast<SqliteStore*>(store);
  const int threshold = self->options_.checkpoint_frames;
  if (frames < threshold) return SQLITE_OK;
  bool copy_here = false;
  {
    MutexLock lock(&self->flush_mu_);
    if (self->stopping_ || self->checkpoint_ == Checkpoint::kRunning) return SQLITE_OK;
    const bool little_left = self->checkpoint_ == Checkpoint::kCopied &&
                             frames >= self->checkpointed_log_ &&
                             frames - self->checkpointed_frames_ <= threshold / 16;
    if (little_left || frames >= 4 * threshold) {  // or the thread cannot keep up
      self->checkpoint_ = Checkpoint::kIdle;
      copy_here = true;
    } else {
      self->checkpoint_ = Checkpoint::kRunning;
      if (!self->checkpointer_.joinable()) {
        self->checkpointer_ = std::thread([self] {
          NameThisThread("garde-wal-ckpt");
          self->CheckpointerLoop();
        });
      }
    }
  }
  if (copy_here) {
    sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else {
    self->flush_cv_.notify_all();
  }
  return SQLITE_OK;
}

// The thread's pass seldom reaches the end of a log that writers keep adding to, and SQLite
// syncs the database only after a pass that does: the committer's last pass. Left to it, that
// fsync would write out every page the thread copied — 17-23 ms measured at 7 000 creates/s,
// with every commit queued behind it. The thread starts writing out what it copied itself,
// without waiting for it or for the device's cache: an fsync of its own, measured, cost creates
// a tenth of their rate, its flushes of the device's cache meeting the log's.
void SqliteStore::CheckpointerLoop() {
  auto conn = OpenConnection(options_);  // no hook: it commits nothing
  std::unique_ptr<FileSystem::File> database;
  if (options_.synchronous_full) {
    FileSystem& fs = options_.file_system ? *options_.file_system : PosixFileSystem();
    auto opened = fs.Open(options_.path, FileSystem::Mode::kRead);
    if (opened.ok()) database = std::move(opened.value());
  }
  MutexLock lock(&flush_mu_);
  while (!stopping_) {
    while (!stopping_ && checkpoint_ != Checkpoint::kRunning) flush_cv_.wait(lock.native());
    if (stopping_) break;
    lock.Unlock();
    int log = -1, copied = -1;
    int rc = conn.ok() ? sqlite3_wal_checkpoint_v2(conn.value()->db(), "main",
                                                   SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
                       : SQLITE_ERROR;
    if (rc == SQLITE_OK && copied > 0 && database != nullptr) {
      Status started = database->StartWriteback();
      if (!started.ok()) {
        // What the kernel could not write is reported once: no later fsync may be trusted.
        wal_failed_.store(true, std::memory_order_release);
        LogLine(spdlog::level::critical, "the database could not be written out; writes refused")
            .Str("error", started.message());
        rc = SQLITE_IOERR;
      }
    }
    lock.Relock();
    checkpoint_ = rc == SQLITE_OK ? Checkpoint::kCopied : Checkpoint::kIdle;
    checkpointed_log_ = log;
    checkpointed_frames_ = copied;
  }
}

Status SqliteStore::SyncWal() {
  if (wal_failed_.load(std::memory_order_acquire)) {
    return Unavailable("an earlier write could not be made durable; restart the service");
  }
  if (wal_ == nullptr) return Status::Ok();  // synchronous_full off: nothing is fsynced
  Status s = wal_->Sync();
  if (!s.ok()) {
    wal_failed_.store(true, std::memory_order_release);
    LogLine(spdlog::level::critical, "the database log could not be made durable; writes refused")
        .Str("error", s.message());
    return Unavailable("the write could not be made durable");
  }
  return s;
}

void SqliteStore::WalSyncBegins() {
  MutexLock lock(&flush_mu_);
  ++wal_syncs_;
}

void SqliteStore::WalSyncEnded() {
  {
    MutexLock lock(&flush_mu_);
    --wal_syncs_;
  }
  wal_synced_.notify_all();
}

void SqliteStore::SyncDeferred() {
  {
    MutexLock lock(&flush_mu_);
    if (!deferred_pending_) return;
    deferred_pending_ = false;
    ++wal_syncs_;
  }
  SyncWal().IgnoreError();  // logged; immediate writes report it
  WalSyncEnded();
}

void SqliteStore::FlusherLoop() {
  MutexLock lock(&flush_mu_);
  while (!stopping_) {
    while (!stopping_ && !deferred_pending_) flush_cv_.wait(lock.native());
    if (stopping_) break;
    // Let more deferred commits join this sync.
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.deferred_sync_ms);
    while (!stopping_ && flush_cv_.wait_until(lock.native(), until) != std::cv_status::timeout) {
    }
    lock.Unlock();
    SyncDeferred();
    lock.Relock();
  }
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const SqliteOptions& options) {
  // SQLite's allocation statistics take one process-wide mutex on every allocation, which
  // serialises connections working on different cores; nothing here reads them. Must come
  // before the library initialises (the first open); later calls are refused, harmlessly.
  static std::once_flag configured;
  std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  std::unique_ptr<SqliteStore> store(new SqliteStore(options));  // private constructor
  GARDE_ASSIGN_OR_RETURN(auto conn, store->Connect());
  SqliteConnection& c = *conn;
  GARDE_RETURN_IF_ERROR(c.Exec("BEGIN IMMEDIATE"));
  GARDE_RETURN_IF_ERROR(
      c.Exec("CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, "
             "applied_at INTEGER NOT NULL)"));
  int current = 0;
  {
    Query q(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (q.Step() != SQLITE_ROW) return q.Error();
    current = static_cast<int>(q.ColInt(0));
  }
  const bool audit = options.schema == SqliteSchema::kAudit;
  const char* const* migrations = audit ? kAuditMigrations : kMigrations;
  const int known = static_cast<int>(audit ? std::size(kAuditMigrations) : std::size(kMigrations));
  if (current > known) {
    c.Exec("ROLLBACK").IgnoreError();
    return Unavailable("database schema version " + std::to_string(current) +
                       " is newer than this garde (" + std::to_string(known) + ")");
  }
  for (int v = current + 1; v <= known; ++v) {
    Status s = c.Exec(migrations[v - 1]);
    if (s.ok()) {
      Query q(c, "INSERT INTO schema_migrations(version, applied_at) VALUES(?, unixepoch())");
      q.Int(v);
      s = q.Run();
    }
    if (!s.ok()) {
      c.Exec("ROLLBACK").IgnoreError();
      return s;
    }
  }
  GARDE_RETURN_IF_ERROR(c.Exec("COMMIT"));
  store->MapWalIndex(c);
  if (options.synchronous_full) {
    // Batches commit without SQLite's own sync and then fsync the WAL here. SQLite syncs the
    // directory of a WAL it created with its first sync, which it no longer does: this does.
    FileSystem& fs = options.file_system ? *options.file_system : PosixFileSystem();
    GARDE_ASSIGN_OR_RETURN(auto wal, fs.Open(options.path + "-wal", FileSystem::Mode::kRead));
    store->wal_ = std::move(wal);
    GARDE_RETURN_IF_ERROR(SyncDirectoryOf(options.path));
  }
  store->schema_version_ = known;
  {
    MutexLock lock(&store->mu_);  // no other thread has the store yet
    store->open_connections_ = 1;
  }
  store->Release(std::move(conn));
  return store;
}

Status SqliteStore::ImportLegacyAudit(const std::string& vault_path) {
  if (options_.schema != SqliteSchema::kAudit) return Internal("not an audit database");
  GARDE_ASSIGN_OR_RETURN(auto conn, Acquire());
  SqliteConnection& c = *conn;
  auto run = [&]() -> Status {
    {
      // Not COUNT(*): that reads the whole log, at every start.
      Query q(c, "SELECT EXISTS(SELECT 1 FROM audit_log)");
      if (q.Step() != SQLITE_ROW) return q.Error();
      if (q.ColInt(0) != 0) return Status::Ok();  // imported before, or in use
    }
    {
      Query q(c, "ATTACH DATABASE ? AS legacy");
      q.Text(vault_path);
      GARDE_RETURN_IF_ERROR(q.Run());
    }
    Status s = [&]() -> Status {
      {
        Query q(c, "SELECT COUNT(*) FROM legacy.sqlite_master WHERE name = 'audit_log'");
        if (q.Step() != SQLITE_ROW) return q.Error();
        if (q.ColInt(0) == 0) return Status::Ok();
      }
      // Each file commits atomically on its own: copy first, then empty the old tables.
      // Interrupted between the two, the next start finds audit.db filled and leaves the
      // old copy alone (it is never read again).
      // The copied entries' subject index is one top-level run, as migration 3 makes it.
      const std::string copy =
          "BEGIN IMMEDIATE;"
          "INSERT INTO main.audit_log SELECT seq, entry, leaf_hash, subject FROM legacy.audit_log;"
          "INSERT INTO main.audit_runs(run, level, entries) SELECT 1, " +
          std::to_string(kAuditTopLevel) +
          ", COUNT(*) FROM main.audit_log WHERE subject IS NOT NULL HAVING COUNT(*) > 0;"
          "INSERT INTO main.audit_subject_runs(run, subject, seq) SELECT 1, subject, seq "
          "  FROM main.audit_log WHERE subject IS NOT NULL ORDER BY subject, seq;"
          "INSERT INTO main.audit_by_actor(actor, seq) SELECT json_extract(entry, '$.actor'), "
          "  seq FROM main.audit_log WHERE json_valid(entry) AND "
          "  json_extract(entry, '$.actor') IS NOT NULL ORDER BY 1, 2;"
          "INSERT INTO main.audit_nodes SELECT level, idx, hash FROM legacy.audit_nodes;"
          "INSERT OR IGNORE INTO main.audit_checkpoints(size, root, time, note) "
          "  SELECT size, root, time, note FROM legacy.audit_checkpoints;"
          "COMMIT;";
      GARDE_RETURN_IF_ERROR(c.Exec(copy.c_str()));
      return c.Exec(
          "BEGIN IMMEDIATE; DELETE FROM legacy.audit_log; DELETE FROM legacy.audit_nodes;"
          "DELETE FROM legacy.audit_checkpoints; COMMIT;");
    }();
    if (!s.ok()) c.Exec("ROLLBACK").IgnoreError();
    c.Exec("DETACH DATABASE legacy").IgnoreError();
    return s;
  };
  Status s = run();
  Release(std::move(conn));
  return s;
}

Result<std::unique_ptr<SqliteConnection>> SqliteStore::Acquire() {
  {
    MutexLock lock(&mu_);
    if (!idle_.empty() && waiters_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    if (open_connections_ >= std::max(1, options_.max_connections)) {
      Waiter me;
      waiters_.push_back(&me);
      while (me.conn == nullptr) me.cv.wait(lock.native());
      return std::move(me.conn);
    }
    ++open_connections_;
  }
  auto opened = Connect();
  if (!opened.ok()) {
    MutexLock lock(&mu_);
    --open_connections_;
  }
  return opened;
}

void SqliteStore::CountCache(SqliteConnection& c) {
  const int64_t now = c.CacheUsed();
  cache_bytes_.fetch_add(now - c.counted_cache, std::memory_order_relaxed);
  c.counted_cache = now;
}

void SqliteStore::Release(std::unique_ptr<SqliteConnection> conn) {
  CountCache(*conn);
  MutexLock lock(&mu_);
  if (!waiters_.empty()) {
    Waiter* next = waiters_.front();
    waiters_.pop_front();
    next->conn = std::move(conn);
    next->cv.notify_one();
    return;
  }
  idle_.push_back(std::move(conn));
}

Status SqliteStore::Read(const std::function<Status(ReadTx&)>& fn) {
  GARDE_ASSIGN_OR_RETURN(auto conn, Acquire());
  SqliteConnection& c = *conn;
  Status s = c.Run("BEGIN");
  if (s.ok()) {
    SqliteTx tx(c);
    s = fn(tx);
    c.Run("COMMIT").IgnoreError();  // read-only: nothing to lose
  }
  Release(std::move(conn));
  return s;
}

Status SqliteStore::Write(const std::function<Status(WriteTx&)>& fn, Durability durability) {
  return writes_.Submit(fn, durability);
}

void SqliteStore::WriteThen(std::function<Status(WriteTx&)> fn, Durability durability,
                            bool rerunnable, std::function<void(Status)> done) {
  writes_.Post(std::move(fn), durability, rerunnable, std::move(done));
}

void SqliteStore::CommitBatch(const std::vector<PendingWrite*>& batch,
                              const std::function<void()>& hand_over) {
  if (wal_failed_.load(std::memory_order_acquire)) {
    FinishBatch(batch, SyncWal());
    return;
  }
  if (writer_ == nullptr) {
    auto conn = Connect();
    // Its commits write the WAL without waiting for the disk; SyncWal below does, for a batch
    // that asks (checkpoints still sync the log before copying it and the file after). audit.db
    // chooses per batch, below.
    Status s = conn.ok() ? conn.value()->Exec("PRAGMA synchronous=NORMAL") : conn.status();
    // A transaction's changed pages stay in memory up to 64 MiB (16 384 pages) before SQLite
    // writes them to the WAL early: spilled pages are written again when changed again, and
    // under a savepoint copied to a statement journal first. A 2 048-row import window changes
    // ~28 000 pages of a large vault; the shared cache_size (16 MB) alone spilled after 4 000.
    // 100 000 rows: 39.5 s -> 33.6 s, peak RSS 136 -> 246 MiB (docs/benchmarks.md).
    if (s.ok() && options_.writer_spill_pages > 0) {
      s = conn.value()->Exec(
          ("PRAGMA cache_spill=" + std::to_string(options_.writer_spill_pages)).c_str());
    }
    const int64_t cache =
        options_.writer_cache_bytes > 0 ? options_.writer_cache_bytes : int64_t{16} << 20;
    if (s.ok()) {
      s = conn.value()->Exec(("PRAGMA cache_size=-" + std::to_string(cache >> 10)).c_str());
    }
    // Statement journals (and any temporary table a write needs) in memory: past 64 KiB
    // SQLite spilled a savepoint's undo pages (ciphertext, digests) to an unlinked file in the
    // temporary directory, written with two pwrite calls a page beside the WAL's own. A journal
    // lasts one write: its savepoint's release empties it. Creates: 3 788 -> 4 364 req/s.
    if (s.ok()) s = conn.value()->Exec("PRAGMA temp_store=MEMORY");
    if (!s.ok()) {
      for (PendingWrite* w : batch) w->result = s;
      return;
    }
    writer_ = std::move(conn).value();
  }
  SqliteConnection& c = *writer_;
  Status begun = c.Run("BEGIN IMMEDIATE");
  if (!begun.ok()) {
    for (PendingWrite* w : batch) w->result = begun;
    return;
  }
  SqliteTx tx(c);
  const bool immediate = std::any_of(batch.begin(), batch.end(), [](const PendingWrite* w) {
    return w->durability == Durability::kImmediate;
  });
  // A write alone in its batch runs without a savepoint: the transaction is its own, and
  // rolls back whole if it fails. Under a savepoint SQLite copies every page the write
  // changes to a statement journal first (spilled to temporary files past 64 KiB): for an
  // import window of 2 048 rows that was a third of all the bytes written.
  const bool alone = batch.size() == 1;
  const auto none = [] { return Status::Ok(); };
  const SavepointSql savepoints =
      alone ? SavepointSql{none, none, none}
            : SavepointSql{[&] { return c.Run("SAVEPOINT garde_write"); },
                           [&] { return c.Run("ROLLBACK TO garde_write"); },
                           [&] { return c.Run("RELEASE garde_write"); }};
  RunInSavepoints(batch, tx, savepoints, [&](PendingWrite* w) { tx.set_write(w); });
  if (alone && !batch.front()->result.ok()) {
    c.Run("ROLLBACK").IgnoreError();  // (already rolled back if SQLite did it itself)
    hand_over();
    FinishBatch(batch, Status::Ok());
    return;
  }
  // The lines that must be durable before the batch commits (WriteTx::WriteAhead), written
  // while the batch before may still be syncing the WAL. Should they fail, nothing of the
  // batch is kept.
  if (Status ahead = WriteAheadOf(AheadLines(batch)); !ahead.ok()) {
    c.Run("ROLLBACK").IgnoreError();
    hand_over();
    FinishBatch(batch, ahead);
    return;
  }
  // The commit writes the batch's frames to the WAL and lets the next batch in; this batch's
  // writers are answered after the WAL's fsync, which covers every commit written before it.
  // Readers may see the batch during that fsync (a crash of the process alone loses nothing
  // in the page cache); a failed fsync fails the batch and every write after it. A batch of
  // deferred writes only is synced by the flusher within deferred_sync_ms.
  // The next batch's statements run during the fsync, but its commit waits for the fsync to
  // return: writing the log while it is being synced gave no more throughput and raised the
  // p99 of creates from 27-30 ms to 36-41 (docs/benchmarks.md).
  // audit.db keeps SQLite's own fsync inside the commit, before readers can see the batch: a
  // signed tree head may be served as soon as it is committed, and one served over entries a
  // power loss then took would fork the log.
  const bool durable_before_visible = options_.schema == SqliteSchema::kAudit;
  if (options_.synchronous_full && durable_before_visible) {
    c.Run(immediate ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL").IgnoreError();
  }
  {
    MutexLock lock(&flush_mu_);
    while (wal_syncs_ > 0) wal_synced_.wait(lock.native());
  }
  Status committed = c.Run("COMMIT");
  if (!committed.ok()) c.Run("ROLLBACK").IgnoreError();
  CountCache(c);
  const bool sync =
      committed.ok() && options_.synchronous_full && immediate && !durable_before_visible;
  if (sync) WalSyncBegins();  // before the hand-over: the next commit must see it
  hand_over();
  if (committed.ok() && options_.synchronous_full) {
    if (sync) {
      committed = SyncWal();
      WalSyncEnded();
    } else if (!immediate) {
      {
        MutexLock lock(&flush_mu_);
        deferred_pending_ = true;
        if (!flusher_.joinable() && !stopping_) {
          flusher_ = std::thread([this] {
            NameThisThread("garde-commits");
            FlusherLoop();
          });
        }
      }
      flush_cv_.notify_all();
    }
  }
  FinishBatch(batch, committed);
}

void SqliteStore::MapWalIndex(SqliteConnection& c) {
  // SQLite's own mapping of the first wal-index region, through the VFS of an open
  // connection: valid while any connection of this process has the file open (this
  // store's stay open until it is destroyed). Opening the -shm file ourselves would not do:
  // closing that descriptor would drop the process's POSIX locks on it, SQLite's included.
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(c.db(), "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
      file == nullptr || file->pMethods == nullptr || file->pMethods->iVersion < 2 ||
      file->pMethods->xShmMap == nullptr) {
    return;
  }
  constexpr int kRegionBytes = 32768;  // SQLite's wal-index region size
  volatile void* region = nullptr;
  if (file->pMethods->xShmMap(file, 0, kRegionBytes, 0, &region) == SQLITE_OK &&
      region != nullptr) {
    wal_index_ = static_cast<const unsigned char*>(const_cast<void*>(region));
  }
}

uint64_t SqliteStore::ChangeEpoch() {
  if (wal_index_ == nullptr) return no_epoch_.fetch_add(1, std::memory_order_relaxed) + 1;
  // The first copy of the header, which a committing writer updates last: iChange (offset
  // 8, +1 per write transaction), mxFrame (16) and the first salt (32, new at each WAL
  // reset). Native byte order; a torn read only makes the number differ.
  auto word = [&](size_t offset) {
    return static_cast<uint64_t>(
        __atomic_load_n(reinterpret_cast<const uint32_t*>(wal_index_ + offset), __ATOMIC_ACQUIRE));
  };
  const uint64_t change = word(8), frame = word(16), salt = word(32);
  return (change << 32) ^ (frame << 1) ^ (salt << 17);
}

Status SqliteStore::CopyTo(const std::string& path) {
  GARDE_ASSIGN_OR_RETURN(auto conn, Acquire());
  sqlite3_stmt* stmt = nullptr;
  Status s = Status::Ok();
  if (sqlite3_prepare_v2(conn->db(), "VACUUM INTO ?", -1, &stmt, nullptr) != SQLITE_OK) {
    s = Unavailable(std::string("cannot copy the database: ") + sqlite3_errmsg(conn->db()));
  } else {
    sqlite3_bind_text(stmt, 1, path.c_str(), static_cast<int>(path.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      s = Unavailable(std::string("cannot copy the database: ") + sqlite3_errmsg(conn->db()));
    }
    sqlite3_finalize(stmt);
  }
  Release(std::move(conn));
  return s;
}

Status SqliteStore::Ping() {
  return Read([](ReadTx& tx) { return tx.GetSubject("sub_readiness_probe").status(); });
}

}  // namespace garde

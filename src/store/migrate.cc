#include "garde/store/migrate.h"

#include <libpq-fe.h>
#include <sodium.h>
#include <sqlite3.h>

#include <memory>

#include "garde/base/encoding.h"
#include "garde/crypto/secret.h"
#include "garde/store/postgres_store.h"

namespace garde {
namespace {

struct TableSpec {
  const char* name;
  const char* columns;
  const char* order;  // the same rows' order on both sides
};

// Every table both backends hold, with the columns they share. SQLite-only tables (its
// subject-index runs, its migrations) are not copied; PostgreSQL's counters are set after.
constexpr TableSpec kVaultTables[] = {
    {"subjects",
     "id, kind, status, source, created_at, updated_at, last_interaction_at, "
     "root_key_version, dek_version, wrapped_dek",
     "id"},
    {"subject_fields", "subject_id, field, box", "subject_id, field"},
    {"blind_index", "field, digest, subject_id, master", "field, digest, subject_id"},
    {"api_keys", "id, name, role, activities, key_hash, created_at, revoked_at, hash_master", "id"},
    {"consent_events",
     "id, subject_id, purpose, channel, event, legal_basis, notice_version, "
     "method, actor, at, expires_at, receipt",
     "rowid"},
    {"consent_confirmations",
     "id, subject_id, purpose, channel, notice_version, method, actor, "
     "status, requested_at, expires_at, confirmed_at, event_id",
     "id"},
    {"suppressions", "kind, digest, reason, at", "kind, digest"},
    {"requests",
     "id, type, subject_id, status, jurisdiction, opened_by, verification, "
     "received_at, verified_at, due_at, completed_at, extended, sealed, package, "
     "result",
     "id"},
    {"tombstones", "subject_id, request_id, at, kept", "subject_id"},
    {"tombstone_log_marks", "log, applied_to, digest", "log"},
    {"merges", "id, merged_id, into_id, state, actor, created_at, finished_at, record, sealed",
     "rowid"},
    {"outbox", "seq, id, topic, payload, created_at", "seq"},
    {"webhook_marks", "endpoint, outbox_seq", "endpoint"},
    {"webhook_deliveries",
     "id, endpoint, event_id, topic, subject, payload, created_at, status, "
     "attempts, next_at, last_error, delivered_at",
     "id"},
    {"policy_versions", "seq, content_hash, loaded_at, source, summary", "seq"},
    {"retention_runs", "seq, id, started_at, at, finished_at, dry_run, cursor, report", "seq"},
    {"interactions", "seq, subject_id, kind, at, sealed_amount", "seq"},
    {"incidents",
     "id, status, detected_at, aware_at, authority_due_at, authority_notified_at, "
     "subjects_notified_at, closed_at, created_at, updated_at, sealed",
     "id"},
    {"import_rows", "import_id, row, subject_id", "import_id, row"},
    {"segments", "name, definition, created_by, created_at, updated_at", "name"},
    {"contact_links", "organisation_id, person_id, role, created_at", "organisation_id, person_id"},
    {"snapshot_keys", "name, key_id, root_key_version, wrapped_key", "name"},
    {"audit_pending", "id, at_ns, subject, tail", "id"},
};
constexpr TableSpec kAuditTables[] = {
    {"audit_log", "seq, entry, leaf_hash, subject", "seq"},
    {"audit_nodes", "level, idx, hash", "level, idx"},
    {"audit_by_actor", "actor, seq", "actor, seq"},
    {"audit_checkpoints", "size, root, time, note, actors", "size"},
    {"audit_journals", "name, imported_to", "name"},
};
// Serial columns to move past the copied rows.
constexpr std::pair<const char*, const char*> kSerials[] = {
    {"outbox", "seq"},         {"policy_versions", "seq"},
    {"retention_runs", "seq"}, {"webhook_deliveries", "id"},
    {"interactions", "seq"},   {"consent_events", "rowid"},
    {"merges", "rowid"},
};

// One value as both digests see it: a type tag, then the bytes (integers in decimal).
void Feed(crypto_generichash_state* h, char tag, const void* data, size_t size) {
  const uint64_t n = size;
  crypto_generichash_update(h, reinterpret_cast<const uint8_t*>(&tag), 1);
  crypto_generichash_update(h, reinterpret_cast<const uint8_t*>(&n), sizeof n);
  crypto_generichash_update(h, static_cast<const uint8_t*>(data), size);
}

std::string Finish(crypto_generichash_state* h) {
  uint8_t out[32];
  crypto_generichash_final(h, out, sizeof out);
  return HexEncode(out, sizeof out);
}

int64_t ColumnCount(const char* columns) {
  int64_t n = 1;
  for (const char* c = columns; *c != '\0'; ++c) n += *c == ',' ? 1 : 0;
  return n;
}

struct Pg {
  PGconn* c = nullptr;
  ~Pg() { PQfinish(c); }
  Status Exec(const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    const ExecStatusType st = PQresultStatus(r);
    Status s = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
                   ? Status::Ok()
                   : Unavailable(std::string("postgresql: ") + Why(r));
    PQclear(r);
    return s;
  }
  // A failed result's reason: the server's primary message, or libpq's own (a lost connection
  // has no server message; the field is then null).
  std::string Why(const PGresult* r) const { return PgErrorText(c, r); }
  // Ends a pipeline's stretch of `sent` inserts: reads their results and the sync point's;
  // the first failure, naming `table`.
  Status Sync(int sent, const char* table) {
    if (PQpipelineSync(c) == 0) return Unavailable("postgresql: sync");
    std::string why;
    for (int i = 0; i < sent; ++i) {
      PGresult* r = PQgetResult(c);
      if (r == nullptr) return Unavailable("postgresql: the connection was lost");
      if (PQresultStatus(r) != PGRES_COMMAND_OK && why.empty()) why = Why(r);
      PQclear(r);
      PQclear(PQgetResult(c));  // the NULL ending each statement's results
    }
    PGresult* sync = PQgetResult(c);
    const bool synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    if (!why.empty()) return Unavailable(std::string("postgresql: copying ") + table + ": " + why);
    if (!synced) return Unavailable("postgresql: sync");
    return Status::Ok();
  }
  Result<int64_t> Count(const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      PQclear(r);
      return Unavailable("postgresql: " + sql);
    }
    const int64_t n = std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
    PQclear(r);
    return n;
  }
};

struct Sqlite {
  sqlite3* db = nullptr;
  ~Sqlite() { sqlite3_close_v2(db); }
};

constexpr int kRowsPerSync = 1000;

// Copies one table from `src` (inside its read transaction) into `pg`; the source's digest.
Result<TableCopy> CopyTable(sqlite3* src, Pg& pg, const TableSpec& t,
                            const std::function<void(const std::string&, int64_t)>& progress) {
  const int64_t n = ColumnCount(t.columns);
  std::string insert = std::string("INSERT INTO ") + t.name + "(" + t.columns + ") VALUES(";
  for (int64_t i = 1; i <= n; ++i) insert += (i == 1 ? "$" : ", $") + std::to_string(i);
  insert += ")";
  PGresult* prepared = PQprepare(pg.c, t.name, insert.c_str(), static_cast<int>(n), nullptr);
  const bool ok = PQresultStatus(prepared) == PGRES_COMMAND_OK;
  PQclear(prepared);
  if (!ok) return Unavailable(std::string("postgresql: cannot prepare the copy of ") + t.name);

  const std::string select =
      std::string("SELECT ") + t.columns + " FROM " + t.name + " ORDER BY " + t.order;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(src, select.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    return Unavailable(std::string("sqlite: ") + sqlite3_errmsg(src));
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(stmt, sqlite3_finalize);
  crypto_generichash_state h;
  crypto_generichash_init(&h, nullptr, 0, 32);
  TableCopy copy{t.name, 0, ""};
  std::vector<std::string> values(static_cast<size_t>(n));
  std::vector<const char*> pointers(static_cast<size_t>(n));
  std::vector<int> lengths(static_cast<size_t>(n)), formats(static_cast<size_t>(n));
  // The inserts go in a pipeline, read back at a sync point every kRowsPerSync rows: a round
  // trip per thousand rows instead of one per row.
  if (PQenterPipelineMode(pg.c) == 0) return Unavailable("postgresql: entering pipeline mode");
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    for (int i = 0; i < static_cast<int>(n); ++i) {
      const auto k = static_cast<size_t>(i);
      switch (sqlite3_column_type(stmt, i)) {
        case SQLITE_NULL:
          pointers[k] = nullptr;
          lengths[k] = 0;
          formats[k] = 0;
          Feed(&h, 'n', "", 0);
          continue;
        case SQLITE_INTEGER:
          values[k] = std::to_string(sqlite3_column_int64(stmt, i));
          formats[k] = 0;
          Feed(&h, 'i', values[k].data(), values[k].size());
          break;
        case SQLITE_BLOB: {
          const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt, i));
          values[k].assign(p == nullptr ? "" : p,
                           static_cast<size_t>(sqlite3_column_bytes(stmt, i)));
          formats[k] = 1;
          Feed(&h, 'b', values[k].data(), values[k].size());
          break;
        }
        default: {
          const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
          values[k].assign(p == nullptr ? "" : p,
                           static_cast<size_t>(sqlite3_column_bytes(stmt, i)));
          formats[k] = 0;
          Feed(&h, 't', values[k].data(), values[k].size());
        }
      }
      pointers[k] = values[k].data();
      lengths[k] = static_cast<int>(values[k].size());
    }
    if (PQsendQueryPrepared(pg.c, t.name, static_cast<int>(n), pointers.data(), lengths.data(),
                            formats.data(), 0) == 0) {
      return Unavailable(std::string("postgresql: copying ") + t.name + ": " + pg.Why(nullptr));
    }
    if (++copy.rows % kRowsPerSync == 0) {
      GARDE_RETURN_IF_ERROR(pg.Sync(kRowsPerSync, t.name));
      if (copy.rows % 10000 == 0 && progress) progress(t.name, copy.rows);
    }
  }
  GARDE_RETURN_IF_ERROR(pg.Sync(static_cast<int>(copy.rows % kRowsPerSync), t.name));
  if (PQexitPipelineMode(pg.c) == 0) return Unavailable("postgresql: leaving pipeline mode");
  if (rc != SQLITE_DONE) return Unavailable(std::string("sqlite: ") + sqlite3_errmsg(src));
  copy.digest = Finish(&h);
  if (progress) progress(t.name, copy.rows);
  return copy;
}

// The digest of a table as PostgreSQL holds it (same order, same encoding as the source's),
// read a row at a time (libpq's single-row mode): a table is never held whole in memory.
Result<std::string> DigestOnPostgres(Pg& pg, const TableSpec& t, int64_t* rows) {
  const std::string select =
      std::string("SELECT ") + t.columns + " FROM " + t.name + " ORDER BY " + t.order;
  if (PQsendQueryParams(pg.c, select.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 1) == 0 ||
      PQsetSingleRowMode(pg.c) == 0) {
    return Unavailable(std::string("postgresql: reading back ") + t.name);
  }
  crypto_generichash_state h;
  crypto_generichash_init(&h, nullptr, 0, 32);
  *rows = 0;
  bool failed = false;
  while (PGresult* r = PQgetResult(pg.c)) {
    const ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_SINGLE_TUPLE) {
      failed = failed || st != PGRES_TUPLES_OK;  // the empty result ending the rows
      PQclear(r);
      continue;
    }
    ++*rows;
    for (int i = 0; i < PQnfields(r); ++i) {
      if (PQgetisnull(r, 0, i)) {
        Feed(&h, 'n', "", 0);
        continue;
      }
      const char* p = PQgetvalue(r, 0, i);
      const auto len = static_cast<size_t>(PQgetlength(r, 0, i));
      const Oid type = PQftype(r, i);
      if (type == 20 || type == 23 || type == 21) {  // int8, int4, int2: big-endian
        uint64_t v = 0;
        for (size_t k = 0; k < len; ++k) v = (v << 8) | static_cast<uint8_t>(p[k]);
        if (len < 8 && (static_cast<uint8_t>(p[0]) & 0x80) != 0) v |= ~uint64_t{0} << (8 * len);
        const std::string text = std::to_string(static_cast<int64_t>(v));
        Feed(&h, 'i', text.data(), text.size());
      } else {
        Feed(&h, type == 17 ? 'b' : 't', p, len);  // bytea, else text
      }
    }
    PQclear(r);
  }
  if (failed) return Unavailable(std::string("postgresql: reading back ") + t.name);
  return Finish(&h);
}

}  // namespace

Result<std::vector<TableCopy>> CopySqliteToPostgres(
    const std::string& vault_path, const std::string& audit_path, const std::string& conninfo,
    const std::function<void(const std::string& table, int64_t rows)>& progress) {
  if (!InitSodium()) return Unavailable("libsodium cannot be initialised");
  // The schema, created or migrated as a node would.
  GARDE_ASSIGN_OR_RETURN(
      auto schema,
      PostgresStore::Open({conninfo, true, 1, PostgresOptions::kVaultWriteLock, false}));
  schema.reset();

  Sqlite vault, audit;
  for (auto [path, db] : {std::pair{vault_path, &vault}, std::pair{audit_path, &audit}}) {
    if (sqlite3_open_v2(path.c_str(), &db->db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      return Unavailable("cannot open " + path);
    }
    sqlite3_busy_timeout(db->db, 10000);
    // One snapshot of each file for the whole copy: the service may go on writing.
    if (sqlite3_exec(db->db, "BEGIN; SELECT 1 FROM sqlite_master LIMIT 1", nullptr, nullptr,
                     nullptr) != SQLITE_OK) {
      return Unavailable("cannot read " + path);
    }
  }
  Pg pg;
  pg.c = PQconnectdb(conninfo.c_str());
  if (PQstatus(pg.c) != CONNECTION_OK) return Unavailable("cannot connect to PostgreSQL");
  GARDE_RETURN_IF_ERROR(pg.Exec("BEGIN"));
  // Both stores' write locks: no node writes while the copy runs.
  GARDE_RETURN_IF_ERROR(pg.Exec("SELECT pg_advisory_xact_lock(" +
                                std::to_string(PostgresOptions::kVaultWriteLock) + ")"));
  GARDE_RETURN_IF_ERROR(pg.Exec("SELECT pg_advisory_xact_lock(" +
                                std::to_string(PostgresOptions::kAuditWriteLock) + ")"));
  GARDE_ASSIGN_OR_RETURN(
      auto used,
      pg.Count("SELECT (SELECT COUNT(*) FROM subjects) + (SELECT COUNT(*) FROM api_keys) + "
               "(SELECT COUNT(*) FROM audit_log)"));
  if (used != 0) {
    return Conflict(
        "the PostgreSQL database already holds a deployment: migrate into an "
        "empty one");
  }

  // The change log's triggers are off for the copy, on again before it commits: the log tells
  // running nodes what changed, and none runs on this database yet. Left on, every copied
  // subject added a change and updated the log's one counter row once more inside this one
  // transaction, a version chain PostgreSQL walks again at each update (100 000 subjects:
  // 89 s for that table alone).
  constexpr std::pair<const char*, const char*> kChangeTriggers[] = {
      {"subjects", "subjects_changed"},
      {"consent_events", "consent_changed"},
      {"suppressions", "suppression_added"}};
  auto triggers = [&](const char* how) -> Status {
    for (const auto& [table, trigger] : kChangeTriggers) {
      GARDE_RETURN_IF_ERROR(
          pg.Exec(std::string("ALTER TABLE ") + table + " " + how + " TRIGGER " + trigger));
    }
    return Status::Ok();
  };
  GARDE_RETURN_IF_ERROR(triggers("DISABLE"));

  std::vector<TableCopy> copies;
  std::vector<const TableSpec*> specs;
  auto copy_all = [&](sqlite3* src, const auto& tables) -> Status {
    for (const TableSpec& t : tables) {
      GARDE_ASSIGN_OR_RETURN(auto c, CopyTable(src, pg, t, progress));
      copies.push_back(std::move(c));
      specs.push_back(&t);
    }
    return Status::Ok();
  };
  GARDE_RETURN_IF_ERROR(copy_all(vault.db, kVaultTables));
  GARDE_RETURN_IF_ERROR(copy_all(audit.db, kAuditTables));

  // What single rows and counters hold.
  auto single = [&](sqlite3* src, const char* sql, int64_t* out) -> Status {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(src, sql, -1, &s, nullptr) != SQLITE_OK) return Unavailable(sql);
    *out = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return Status::Ok();
  };
  int64_t shreds = 0, intake = 0, pending = 0;
  GARDE_RETURN_IF_ERROR(single(vault.db, "SELECT count FROM shreds WHERE id = 0", &shreds));
  GARDE_RETURN_IF_ERROR(
      single(audit.db, "SELECT last_pending FROM audit_intake WHERE id = 0", &intake));
  GARDE_RETURN_IF_ERROR(
      single(vault.db,
             "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_pending'), 0)",
             &pending));
  GARDE_RETURN_IF_ERROR(pg.Exec("UPDATE shreds SET count = " + std::to_string(shreds)));
  GARDE_RETURN_IF_ERROR(
      pg.Exec("UPDATE audit_intake SET last_pending = " + std::to_string(intake)));
  GARDE_RETURN_IF_ERROR(
      pg.Exec("UPDATE counters SET value = " + std::to_string(std::max(pending, intake)) +
              " WHERE name = 'audit_pending'"));
  for (const auto& [table, column] : kSerials) {
    GARDE_RETURN_IF_ERROR(pg.Exec(std::string("SELECT setval(pg_get_serial_sequence('") + table +
                                  "', '" + column + "'), COALESCE(MAX(" + column +
                                  "), 0) + 1, false) FROM " + table));
  }

  // Every table read back, before anything is committed.
  for (size_t i = 0; i < copies.size(); ++i) {
    int64_t rows = 0;
    GARDE_ASSIGN_OR_RETURN(auto digest, DigestOnPostgres(pg, *specs[i], &rows));
    if (rows != copies[i].rows || digest != copies[i].digest) {
      return Internal(copies[i].table + " reads back differently from PostgreSQL (" +
                      std::to_string(rows) + " rows for " + std::to_string(copies[i].rows) +
                      "); nothing was committed");
    }
  }
  GARDE_RETURN_IF_ERROR(triggers("ENABLE"));
  GARDE_RETURN_IF_ERROR(pg.Exec("COMMIT"));
  return copies;
}

}  // namespace garde

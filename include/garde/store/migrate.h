// Copies a SQLite deployment (garde.db and audit.db of a data directory) into an empty
// PostgreSQL database, table by table, from one read snapshot of each file (the service may
// keep serving while it runs), then reads every table back and compares row counts and a
// BLAKE2b digest of every row with the source's. `garde migrate` runs it, then verifies the
// audit tree on PostgreSQL (docs/scaling.md, Moving a deployment).
//
//   auto report = CopySqliteToPostgres(dir + "/garde.db", dir + "/audit.db", uri, progress);
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "garde/base/status.h"

namespace garde {

struct TableCopy {
  std::string table;
  int64_t rows = 0;
  std::string digest;  // hex BLAKE2b of the rows in key order, equal on both sides
};

// Fails without writing anything when the target already holds subjects, keys or audit
// entries; fails (rolled back) when any table reads back differently.
Result<std::vector<TableCopy>> CopySqliteToPostgres(
    const std::string& vault_path, const std::string& audit_path, const std::string& conninfo,
    const std::function<void(const std::string& table, int64_t rows)>& progress);

}  // namespace garde

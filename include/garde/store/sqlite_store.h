// SQLite implementation of Store: one file in WAL mode, a pool of connections each with its
// own prepared-statement cache, BEGIN IMMEDIATE for writes, versioned migrations.
//
//   auto store = SqliteStore::Open({.path = dir + "/garde.db"});
//   if (!store.ok()) Fail(store.status());
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "garde/store/store.h"

namespace garde {

struct SqliteOptions {
  std::string path;
  // FULL: every commit is fsynced (durable). NORMAL: WAL commits survive a process crash but
  // the last transactions may be lost on power failure.
  bool synchronous_full = true;
  int busy_timeout_ms = 10000;
};

class SqliteConnection;

class SqliteStore final : public Store {
 public:
  // Opens (creating if needed) and migrates the database.
  static Result<std::unique_ptr<SqliteStore>> Open(const SqliteOptions& options);
  ~SqliteStore() override;

  Status Read(const std::function<Status(ReadTx&)>& fn) override;
  Status Write(const std::function<Status(WriteTx&)>& fn) override;
  Status Ping() override;
  // Schema version after migrations.
  int schema_version() const { return schema_version_; }

 private:
  explicit SqliteStore(SqliteOptions options);
  Result<std::unique_ptr<SqliteConnection>> Acquire();
  void Release(std::unique_ptr<SqliteConnection> conn);

  SqliteOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<SqliteConnection>> idle_;
  int schema_version_ = 0;
};

}  // namespace garde

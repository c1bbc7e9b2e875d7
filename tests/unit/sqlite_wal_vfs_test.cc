// The VFS that gathers a transaction's WAL writes (sqlite_wal_vfs.h): what a committed
// transaction wrote is in the file when the commit returns — read by another connection at
// once, and found by SQLite's recovery in a copy of the files taken then — checked against a
// map of what was committed, over random transactions that spill pages before their commit,
// overwrite spilled frames in place and roll back; and the writes are in fact gathered.
#include "garde/store/sqlite_wal_vfs.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "test_dir.h"

namespace garde {
namespace {

namespace fs = std::filesystem;

class Db {
 public:
  Db(const std::string& path, const char* vfs) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
              SQLITE_OK);
  }
  ~Db() { sqlite3_close_v2(db_); }
  void Exec(const std::string& sql) {
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << sql << ": " << (error != nullptr ? error : "");
  }
  void Put(int key, const std::string& value) {
    sqlite3_stmt* s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO t VALUES (?, ?)", -1, &s, nullptr),
              SQLITE_OK);
    sqlite3_bind_int(s, 1, key);
    sqlite3_bind_blob(s, 2, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
  }
  std::map<int, std::string> All() {
    std::map<int, std::string> rows;
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, "SELECT k, v FROM t", -1, &s, nullptr), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
      rows[sqlite3_column_int(s, 0)] =
          std::string(static_cast<const char*>(sqlite3_column_blob(s, 1)),
                      static_cast<size_t>(sqlite3_column_bytes(s, 1)));
    }
    sqlite3_finalize(s);
    return rows;
  }
  std::string IntegrityCheck() {
    sqlite3_stmt* s = nullptr;
    std::string out;
    EXPECT_EQ(sqlite3_prepare_v2(db_, "PRAGMA integrity_check", -1, &s, nullptr), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
      out += reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteWalVfs : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("garde-walvfs-");
    fs::create_directories(dir_);
    ASSERT_NE(CoalescingWalVfs(), nullptr);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(SqliteWalVfs, WhatEachCommitWroteIsInTheFileWhenItReturns) {
  const std::string path = (dir_ / "t.db").string();
  Db writer(path, CoalescingWalVfs());
  // A page cache of 16 pages: transactions spill frames before their commit, and SQLite
  // overwrites a spilled frame in place (then rewrites the checksums) when the page changes
  // again in the same transaction.
  writer.Exec("PRAGMA journal_mode=WAL");
  writer.Exec("PRAGMA synchronous=NORMAL");
  writer.Exec("PRAGMA cache_size=16");
  writer.Exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
  Db reader(path, CoalescingWalVfs());
  Db plain_reader(path, nullptr);

  std::mt19937 rng(20261205);
  std::map<int, std::string> committed;
  for (int round = 0; round < 160; ++round) {
    std::map<int, std::string> pending = committed;
    writer.Exec("BEGIN");
    const int writes = std::uniform_int_distribution<int>(1, 120)(rng);
    for (int i = 0; i < writes; ++i) {
      const int key = std::uniform_int_distribution<int>(0, 400)(rng);
      std::string value(std::uniform_int_distribution<size_t>(1, 3000)(rng), '\0');
      for (char& c : value) c = static_cast<char>(rng());
      writer.Put(key, value);
      pending[key] = value;
    }
    if (std::uniform_int_distribution<int>(0, 4)(rng) == 0) {
      writer.Exec("ROLLBACK");
    } else {
      writer.Exec("COMMIT");
      committed = pending;
    }
    ASSERT_TRUE(reader.All() == committed) << "round " << round;
    ASSERT_TRUE(plain_reader.All() == committed) << "round " << round;
    if (round % 5 == 4) {
      // What a crash of the process would leave: the database and its log as they are now,
      // opened elsewhere; SQLite's recovery keeps every frame whose checksums hold.
      const fs::path copy = dir_ / ("copy" + std::to_string(round));
      fs::create_directories(copy);
      fs::copy_file(path, copy / "t.db");
      if (fs::exists(path + "-wal")) fs::copy_file(path + "-wal", copy / "t.db-wal");
      Db recovered((copy / "t.db").string(), nullptr);
      ASSERT_TRUE(recovered.All() == committed) << "round " << round;
      EXPECT_EQ(recovered.IntegrityCheck(), "ok");
    }
  }
  EXPECT_EQ(writer.IntegrityCheck(), "ok");
}

TEST_F(SqliteWalVfs, AFramesHeaderAndPageAndTheFramesAfterGoOutTogether) {
  Db writer((dir_ / "t.db").string(), CoalescingWalVfs());
  writer.Exec("PRAGMA journal_mode=WAL");
  writer.Exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
  const WalWriteCounts before = CoalescingWalWriteCounts();
  writer.Exec("BEGIN");
  for (int k = 0; k < 300; ++k) writer.Put(k, std::string(2000, static_cast<char>('a' + k % 26)));
  writer.Exec("COMMIT");
  const WalWriteCounts after = CoalescingWalWriteCounts();
  const uint64_t asked = after.asked - before.asked, made = after.made - before.made;
  // About 150 pages: 300 writes asked (a header and a page each), 31 frames a call made.
  EXPECT_GE(asked, 300u);
  EXPECT_LE(made * 10, asked) << asked << " writes asked, " << made << " made";
  EXPECT_EQ(writer.All().size(), 300u);
}

}  // namespace
}  // namespace garde

// SQLite implementation of Store: one file in WAL mode, a pool of connections each with its
// own prepared-statement cache, versioned migrations, and group commit: writers that arrive
// while a commit is in flight are run together in the next transaction, each inside its own
// SAVEPOINT (so one failing write rolls back alone), and share one fsync.
//
//   auto store = SqliteStore::Open({.path = dir + "/garde.db"});
//   if (!store.ok()) Fail(store.status());
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "garde/base/file_system.h"
#include "garde/base/mutex.h"
#include "garde/store/group_commit.h"
#include "garde/store/store.h"

struct sqlite3;

namespace garde {

// Which set of tables (and migrations) a file holds.
enum class SqliteSchema {
  kVault,  // garde.db: subjects, consent, requests, API keys, pending audit entries
  kAudit,  // audit.db: the audit log, its tree and checkpoints
};

struct SqliteOptions {
  std::string path;
  SqliteSchema schema = SqliteSchema::kVault;
  // FULL: every commit is fsynced (durable). NORMAL: WAL commits survive a process crash but
  // the last transactions may be lost on power failure.
  bool synchronous_full = true;
  int busy_timeout_ms = 10000;
  // Deferred-durability commits are fsynced within this many milliseconds.
  int deferred_sync_ms = 50;
  // Open connections at most; callers wait for a free one. Each maps the file (mmap) and keeps
  // a small page cache, so a few connections serve many worker threads.
  int max_connections = 8;  // readers; every batch is written on one more (the writer)
  // Bytes of the file each connection memory-maps (0: read through its page cache).
  int64_t mmap_bytes = 0;
  // Bytes of pages each reading connection keeps in its page cache. Reads of a large vault
  // land all over the file; the system's page cache holds it once for every connection, where
  // 16 MiB each held the same pages eight times over (docs/benchmarks.md).
  int64_t cache_bytes = int64_t{2} << 20;
  // Bytes of pages the writing connection keeps (0: 16 MiB). An import's window touches index
  // pages all over a large vault: 256 MiB of them made `garde import` 1.2x faster
  // (docs/benchmarks.md); a serving node keeps the small cache.
  int64_t writer_cache_bytes = 0;
  // Changed pages a write transaction keeps in memory, beyond its cache, before it writes
  // them to the WAL early (0: no more than the cache holds): 16 384 pages (64 MiB) keep a
  // vault's import window from writing pages twice; the audit log's appends and its subject
  // index's merges, written in order, gain nothing from it.
  int writer_spill_pages = 16384;
  // WAL frames (pages) after which a checkpoint copies the log into the database, on a thread
  // of its own while writers go on; the last few are copied by the next committer, so that
  // the log starts over. 0: SQLite's own, by the committer, every 1 000 frames.
  int checkpoint_frames = 4096;
  // The WAL's fsync goes through it (tests inject slow or failing syncs); null: the machine's.
  FileSystem* file_system = nullptr;
};

class SqliteConnection;

class SqliteStore final : public Store {
 public:
  // Opens (creating if needed) and migrates the database.
  static Result<std::unique_ptr<SqliteStore>> Open(const SqliteOptions& options);
  ~SqliteStore() override;

  Status Read(const std::function<Status(ReadTx&)>& fn) override;
  Status Write(const std::function<Status(WriteTx&)>& fn,
               Durability durability = Durability::kImmediate) override;
  void WriteThen(std::function<Status(WriteTx&)> fn, Durability durability, bool rerunnable,
                 std::function<void(Status)> done) override;
  bool PostsWrites() const override { return true; }
  Status Ping() override;
  // Read from the WAL-index header SQLite keeps in "<file>-shm", shared by every
  // connection of every process: its change counter and last frame move with each commit
  // (sqlite.org/walformat.html, "The WAL-Index Header").
  uint64_t ChangeEpoch() override;
  size_t CacheBytes() const override {
    return static_cast<size_t>(std::max<int64_t>(0, cache_bytes_.load(std::memory_order_relaxed)));
  }
  // VACUUM INTO: one read transaction's snapshot, compacted; writers are not blocked (WAL).
  Status CopyTo(const std::string& path) override;
  // Audit databases only: copies the audit log a vault database kept before audit.db
  // existed (vault migration 2), once, when this log is still empty.
  Status ImportLegacyAudit(const std::string& vault_path);
  // Schema version after migrations.
  int schema_version() const { return schema_version_; }

 private:
  explicit SqliteStore(SqliteOptions options);
  Result<std::unique_ptr<SqliteConnection>> Acquire();
  void Release(std::unique_ptr<SqliteConnection> conn);
  // Counts what c's page cache holds now into CacheBytes (by its owner, after a use).
  void CountCache(SqliteConnection& c);
  // Runs a batch of queued writes in one transaction (the group-commit leader's job), hands
  // the lead over once committed, then makes the batch durable (the WAL's fsync) if it asks.
  void CommitBatch(const std::vector<PendingWrite*>& batch, const std::function<void()>& hand_over);
  // fsyncs the WAL: everything committed before the call is durable when it returns Ok. After
  // one failure every later call fails too: the kernel reports a lost write once, and what a
  // later fsync would vouch for can no longer be known (PostgreSQL's rule since 2018).
  Status SyncWal();
  // The WAL fsyncs in flight: a batch's commit waits until none is (below).
  void WalSyncBegins();
  void WalSyncEnded();
  // fsyncs the WAL when deferred commits are pending; the flusher thread's loop.
  void SyncDeferred();
  void FlusherLoop();
  void MapWalIndex(SqliteConnection& c);  // at open, once the WAL exists
  // Checkpoints: every connection reports its commits' WAL size (sqlite3_wal_hook, which
  // takes the place of SQLite's automatic checkpoint); the checkpointer copies the bulk of the
  // log, the committer that finds only a little left copies the rest.
  Result<std::unique_ptr<SqliteConnection>> Connect();
  static int OnWalCommit(void* store, sqlite3* db, const char* schema, int frames);
  void CheckpointerLoop();

  SqliteOptions options_;
  Mutex mu_;  // the connection pool
  // Threads waiting for a connection, served first come first served: a released connection
  // is handed to the oldest waiter, so nobody starves behind newcomers.
  struct Waiter {
    std::condition_variable cv;
    std::unique_ptr<SqliteConnection> conn;
  };
  std::deque<Waiter*> waiters_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<SqliteConnection>> idle_ GUARDED_BY(mu_);
  int open_connections_ GUARDED_BY(mu_) = 0;
  int schema_version_ = 0;

  Mutex flush_mu_;
  std::condition_variable flush_cv_;
  bool deferred_pending_ GUARDED_BY(flush_mu_) = false;
  bool stopping_ GUARDED_BY(flush_mu_) = false;
  std::thread flusher_ GUARDED_BY(flush_mu_);  // started by the first deferred commit
  // kRunning: the checkpointer is copying; kCopied: it has, and the log held
  // checkpointed_log_ frames of which it copied checkpointed_frames_.
  enum class Checkpoint { kIdle, kRunning, kCopied };
  Checkpoint checkpoint_ GUARDED_BY(flush_mu_) = Checkpoint::kIdle;
  int checkpointed_log_ GUARDED_BY(flush_mu_) = 0;
  int checkpointed_frames_ GUARDED_BY(flush_mu_) = 0;
  std::thread checkpointer_ GUARDED_BY(flush_mu_);  // started by the first large log

  // The WAL, held open from Open on (with synchronous_full): an fsync failure is reported to
  // every descriptor open when it happened, so this one hears of it.
  std::unique_ptr<FileSystem::File> wal_;
  std::atomic<bool> wal_failed_{false};
  std::atomic<int64_t> cache_bytes_{0};
  int wal_syncs_ GUARDED_BY(flush_mu_) = 0;
  std::condition_variable wal_synced_;

  // The wal-index header: SQLite's own mapping, valid while this store's connections are
  // open (null: unavailable; ChangeEpoch then answers a new number each time).
  const unsigned char* wal_index_ = nullptr;
  std::atomic<uint64_t> no_epoch_{0};

  GroupCommitQueue writes_{
      [this](const std::vector<PendingWrite*>& batch, const std::function<void()>& hand_over) {
        CommitBatch(batch, hand_over);
      }};
  // The connection every batch is written on, used by one leader at a time (the queue hands
  // the lead over after the commit): its page cache stays valid from one batch to the next,
  // where a pooled connection finds it discarded after another connection's commit.
  std::unique_ptr<SqliteConnection> writer_;
};

}  // namespace garde

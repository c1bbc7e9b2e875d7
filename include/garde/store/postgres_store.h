// PostgreSQL implementation of Store, through libpq: a pool of connections each with its own
// prepared statements, versioned migrations run at open (under an advisory lock, so several
// nodes starting at once migrate once), and group commit as SqliteStore does it: writers that
// arrive while a commit is in flight run together in the next transaction, each inside its own
// SAVEPOINT, and share one WAL flush.
//
//   auto store = PostgresStore::Open({.conninfo = "postgresql:///garde?host=/run/postgresql"});
//
// Every write transaction first takes a transaction-level advisory lock (one per store: the
// vault's, the audit log's), so writes are serialised across all nodes sharing the database, as
// SQLite serialises them: the domain's read-check-write steps (uniqueness, compare-and-set) and the
// audit log's sequence numbers stay correct with several nodes, and counters (the vault change log,
// pending audit ids) are gapless. Reads run in REPEATABLE READ snapshots alongside.
//
// Text columns collate "C" (byte order, as SQLite's BINARY): ids and cursors page the same way
// on both backends whatever the database's locale.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "garde/base/mutex.h"
#include "garde/store/group_commit.h"
#include "garde/store/store.h"

struct pg_conn;    // libpq's PGconn
struct pg_result;  // libpq's PGresult

namespace garde {

struct PostgresOptions {
  std::string conninfo;     // a libpq URI or key=value string
  bool synchronous = true;  // false: commits do not wait for the WAL flush
  int max_connections = 8;
  // The advisory lock every write transaction takes first: one per store sharing the database
  // (the vault's and the audit log's, as SQLite's two files each have their own write lock).
  int64_t write_lock = kVaultWriteLock;
  static constexpr int64_t kVaultWriteLock = 7254001;
  static constexpr int64_t kAuditWriteLock = 7254003;
  // Listen for other nodes' changes (ChangeEpoch); off for a store whose epoch is not read.
  bool follow_changes = true;
  // ChangeEpoch and KeysEpoch ask the database (one query, shared by every call that arrives
  // while it runs): a change committed through any node shows at the next read anywhere. Off,
  // they follow the notifications (another node's change shows within milliseconds).
  bool strict_reads = false;
  // Whether a durable batch may be seen before it is flushed. Off (the audit log's store: a tree
  // head served over entries a crash then took would fork the log), a batch commits
  // synchronously. On (the vault), it commits without waiting for the flush, lets the next batch
  // in, and is answered once a small synchronous transaction after it has flushed the WAL past
  // its commit (kept off, with a note in the log, where the server does not allow it).
  bool visible_before_durable = false;
};

class PgConnection;

class PostgresStore final : public Store {
 public:
  // Connects, and creates or migrates the schema.
  static Result<std::unique_ptr<PostgresStore>> Open(const PostgresOptions& options);
  ~PostgresStore() override;

  Status Read(const std::function<Status(ReadTx&)>& fn) override;
  Status Write(const std::function<Status(WriteTx&)>& fn,
               Durability durability = Durability::kImmediate) override;
  // The write before it in a batch ends without waiting for its answers (they come with this
  // write's first read); this one runs again if they hold a failure.
  Status WriteRerunnable(const std::function<Status(WriteTx&)>& fn,
                         Durability durability = Durability::kImmediate) override;
  Status Ping() override;
  // Moves with this process's commits and with every other node's: the vault change log's
  // trigger sends NOTIFY garde_changes at commit, which a connection of this store LISTENs
  // to. Another node's commit is seen once its notification arrives (milliseconds); while the
  // listening connection is down, every call answers a new number (readers ask the log).
  uint64_t ChangeEpoch() override;
  // Moves when a key is revoked anywhere (a counter in strict mode, NOTIFY garde_keys else).
  uint64_t KeysEpoch() override;
  // strict_reads: `ready` is called once a counters query begun after this call has
  // answered (on the thread that ran it); the answer's ReadScope, opened with the ticket, then
  // reads those counters without asking again. Without strict reads: 0.
  uint64_t WhenFresh(std::function<void()> ready) override;
  // Backups of a PostgreSQL deployment are PostgreSQL's (pg_dump, base backups): kUnavailable.
  Status CopyTo(const std::string& path) override;
  // Session-level advisory locks, one per job, held on a connection of their own: the node
  // whose session holds one leads that job until the session ends.
  bool Lead(Job job) override;
  // Messages on NOTIFY garde_peers ("<node> ask <event> <token>", "<node> done <token>"); the
  // nodes asked are the sessions named "garde-node <id>" in pg_stat_activity (each store's
  // listening connection), so a node that died is not waited for.
  Status AskPeers(PeerEvent event, std::chrono::milliseconds limit) override;
  void OnPeerAsk(std::function<void(PeerEvent)> handler) override;
  int schema_version() const { return schema_version_; }
  // Durable batches are flushed after the hand-over (visible_before_durable, and allowed).
  bool flushes_after_hand_over() const { return flush_after_hand_over_; }

 private:
  explicit PostgresStore(PostgresOptions options);
  Result<std::unique_ptr<PgConnection>> Acquire();
  void Release(std::unique_ptr<PgConnection> conn);
  Status Submit(const std::function<Status(WriteTx&)>& fn, Durability durability, bool rerunnable);
  void CommitBatch(const std::vector<PendingWrite*>& batch, const std::function<void()>& hand_over);
  // Flushes the WAL past everything this connection committed (see visible_before_durable).
  static Status FlushWal(PgConnection& c);
  void ListenLoop();                     // the listener thread
  void PeerLoop();                       // runs what other nodes ask
  void Heard(std::string_view message);  // a garde_peers message, from the listener
  // strict_reads: the counters as of a query begun after this call (AskCounters), or after
  // the start of the thread's ReadScope (one query per request).
  struct Counters {
    uint64_t changes = 0, keys = 0;
  };
  Counters CheckCounters();
  Counters AskCounters();
  // With no query running: asks for every call arrived so far, then calls back the waiters
  // it covered (check_mu_ is let go meanwhile, and held again when it returns).
  void RunCheck() REQUIRES(check_mu_);
  Counters QueryCounters();  // on check_conn_, by the thread running the check
  // Numbers no answer had, so that readers go to the database (when it cannot be asked).
  Counters Unconfirmed();
  void CheckLoop();  // runs the queries WhenFresh callers wait for

  PostgresOptions options_;
  int schema_version_ = 0;
  bool flush_after_hand_over_ = false;  // visible_before_durable, and the server allows it

  Mutex mu_;  // the connection pool
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<PgConnection>> idle_ GUARDED_BY(mu_);
  int open_connections_ GUARDED_BY(mu_) = 0;

  std::atomic<uint64_t> epoch_{0};
  std::atomic<bool> listening_{false};
  std::atomic<bool> stopping_{false};
  std::thread listener_;
  const std::string node_id_;  // random, told apart from other nodes' in garde_peers
  const int stop_fd_;          // an eventfd, written once when the store closes: wakes the listener
  std::atomic<uint64_t> keys_epoch_{0};

  // strict_reads: one query at a time, covering every call that arrived before it began.
  Mutex check_mu_;
  std::condition_variable check_cv_;
  uint64_t check_requested_ GUARDED_BY(check_mu_) = 0;
  uint64_t check_covered_ GUARDED_BY(check_mu_) = 0;
  bool check_running_ GUARDED_BY(check_mu_) = false;
  Counters checked_ GUARDED_BY(check_mu_);
  ::pg_conn* check_conn_ = nullptr;  // used only by the thread that set check_running_
  struct FreshWaiter {
    uint64_t ticket;
    std::function<void()> ready;
  };
  std::deque<FreshWaiter> fresh_waiters_ GUARDED_BY(check_mu_);  // in ticket order
  std::condition_variable check_work_cv_;  // wakes the checker: waiters no query covers
  std::thread checker_;                    // started by the first WhenFresh

  struct Asked {
    std::string from, token;
    PeerEvent event;
  };
  Mutex peers_mu_;
  std::condition_variable peers_cv_;
  std::deque<Asked> asked_ GUARDED_BY(peers_mu_);
  std::map<std::string, std::set<std::string>> awaiting_ GUARDED_BY(peers_mu_);  // token -> nodes
  std::thread peer_worker_;
  Mutex handler_mu_;  // held while the handler runs, so that replacing it waits
  std::function<void(PeerEvent)> handler_ GUARDED_BY(handler_mu_);

  Mutex lead_mu_;  // the leader connection
  ::pg_conn* lead_conn_ GUARDED_BY(lead_mu_) = nullptr;
  std::vector<Job> led_ GUARDED_BY(lead_mu_);

  GroupCommitQueue writes_{
      [this](const std::vector<PendingWrite*>& batch, const std::function<void()>& hand_over) {
        CommitBatch(batch, hand_over);
      }};
};

// A failed libpq call's reason on one line: the server's primary message (without its DETAIL,
// which may quote key values), or libpq's own when the server sent none (a lost connection,
// a refused connect: `result` null).
std::string PgErrorText(const pg_conn* conn, const pg_result* result);

}  // namespace garde

// Group commit, shared by the stores on disk: writers that arrive while a batch is committing
// wait, and the first of them leads the next batch with everyone queued by then, so that many
// writes share one transaction and one flush. Each write runs in its own savepoint: a failing
// one rolls back alone. A store whose flush can follow its commit (SQLite: the WAL's fsync)
// hands the lead over before it, so that the next batch is written during the flush.
//
//   GroupCommitQueue writes_{[this](const std::vector<PendingWrite*>& batch,
//                                   const std::function<void()>& hand_over) {
//     CommitBatch(batch, hand_over); }};
//   Status Write(fn, durability) { return writes_.Submit(fn, durability); }
//   void WriteThen(fn, durability, rerunnable, done) {
//     writes_.Post(std::move(fn), durability, rerunnable, std::move(done)); }
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "garde/base/batch_queue.h"
#include "garde/store/store.h"

namespace garde {

struct PendingWrite {
  const std::function<Status(WriteTx&)>* fn = nullptr;
  Durability durability = Durability::kImmediate;
  bool rerunnable = false;  // Store::WriteRerunnable
  Status result;
  std::vector<std::function<void()>> after_commit;
  std::string ahead;  // WriteTx::WriteAhead's lines
  // Forgets what a run that failed, or will run again, collected.
  void Reset() {
    after_commit.clear();
    ahead.clear();
  }
};

// The lines of a batch's writes that succeeded, in order (WriteTx::WriteAhead).
std::string AheadLines(const std::vector<PendingWrite*>& batch);

// What a group-committing store's transaction keeps for the write it runs: its after-commit
// hooks and its lines to write ahead go into that write (set by the batch's leader; nothing is
// kept while none is set).
class GroupCommitTx : public WriteTx {
 public:
  void AfterCommit(std::function<void()> fn) final {
    if (write_ != nullptr) write_->after_commit.push_back(std::move(fn));
  }
  void WriteAhead(std::string lines) final {
    if (write_ != nullptr) write_->ahead += lines;
  }
  void set_write(PendingWrite* w) { write_ = w; }

 private:
  PendingWrite* write_ = nullptr;
};

class GroupCommitQueue {
 public:
  // Writes and commits `batch`, setting each write's result. May call `hand_over` once, when
  // the batch no longer needs the store's write lock (committed, not yet durable): the next
  // batch starts then. Submit hands over on its return otherwise.
  using CommitFn = BatchQueue<PendingWrite>::RunFn;
  explicit GroupCommitQueue(CommitFn commit) : queue_(kMaxBatch, std::move(commit)) {}
  // Commits every posted write, then stops: the store calls it first as it closes.
  void Stop() { queue_.Stop(); }

  // Queues the write; runs batches (as their leader) until it is done; its result.
  Status Submit(const std::function<Status(WriteTx&)>& fn, Durability durability,
                bool rerunnable = false) {
    PendingWrite me;
    me.fn = &fn;
    me.durability = durability;
    me.rerunnable = rerunnable;
    queue_.Run(&me);
    return me.result;
  }

  // Queues the write and returns: `done` gets its result once it is committed (and as durable
  // as asked), on the thread that led its batch.
  void Post(std::function<Status(WriteTx&)> fn, Durability durability, bool rerunnable,
            std::function<void(Status)> done) {
    struct Posted {
      std::function<Status(WriteTx&)> fn;
      std::function<void(Status)> done;
      PendingWrite write;
    };
    auto* p = new Posted{std::move(fn), std::move(done), {}};
    p->write.fn = &p->fn;
    p->write.durability = durability;
    p->write.rerunnable = rerunnable;
    queue_.Post(&p->write, [p] {
      std::unique_ptr<Posted> owned(p);
      owned->done(owned->write.result);
    });
  }

 private:
  static constexpr size_t kMaxBatch = 256;
  BatchQueue<PendingWrite> queue_;
};

// Runs w's function on tx, its after-commit hooks and lines to write ahead collected into w
// (`set_write` points tx at it, then at nothing); a throw is a failure. (The savepoint around it is
// the caller's.)
Status RunWrite(PendingWrite& w, WriteTx& tx, const std::function<void(PendingWrite*)>& set_write);

// The statements a batch needs around each write (each store's SQL for them). `release` ends a
// write that succeeded; after a failure, `rollback` then `release`.
struct SavepointSql {
  std::function<Status()> begin, rollback, release;
};

// Runs every write of `batch` on `tx` inside its own savepoint, collecting its after-commit hooks
// and lines to write ahead (`set_write`); a write that fails (or throws) is rolled back to its
// savepoint alone.
void RunInSavepoints(const std::vector<PendingWrite*>& batch, WriteTx& tx, const SavepointSql& sql,
                     const std::function<void(PendingWrite*)>& set_write);

// After the batch's COMMIT (Ok) or its failure: every write's result, and its hooks run once
// committed.
void FinishBatch(const std::vector<PendingWrite*>& batch, const Status& committed);

}  // namespace garde

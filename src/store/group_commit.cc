#include "garde/store/group_commit.h"

namespace garde {

Status GroupCommitQueue::Submit(const std::function<Status(WriteTx&)>& fn, Durability durability,
                                const CommitFn& commit) {
  PendingWrite me{&fn, durability, Status::Ok(), false, {}};
  MutexLock lock(&mu_);
  queue_.push_back(&me);
  while (!me.done) {
    if (leader_active_) {
      cv_.wait(lock.native());
      continue;
    }
    // Become the leader: take everything queued so far (ourselves included) as one batch.
    leader_active_ = true;
    constexpr size_t kMaxBatch = 256;
    std::vector<PendingWrite*> batch;
    while (!queue_.empty() && batch.size() < kMaxBatch) {
      batch.push_back(queue_.front());
      queue_.pop_front();
    }
    lock.Unlock();
    commit(batch);
    lock.Relock();
    for (PendingWrite* w : batch) w->done = true;
    leader_active_ = false;
    cv_.notify_all();
  }
  return me.result;
}

void RunInSavepoints(const std::vector<PendingWrite*>& batch, WriteTx& tx,
                     const SavepointSql& sql,
                     const std::function<void(std::vector<std::function<void()>>*)>& set_hooks) {
  for (PendingWrite* w : batch) {
    Status s = sql.begin();
    if (s.ok()) {
      set_hooks(&w->after_commit);
      try {
        s = (*w->fn)(tx);
      } catch (const std::exception& e) {
        s = Internal(std::string("write failed: ") + e.what());
      }
      set_hooks(nullptr);
      // Releasing reports what the write's statements did when they were not waited for
      // (PostgreSQL's pipeline): a failure there fails the write as its own would.
      if (s.ok()) s = sql.release();
      if (!s.ok()) {
        sql.rollback().IgnoreError();
        sql.release().IgnoreError();
        w->after_commit.clear();
      }
    }
    w->result = s;
  }
}

void FinishBatch(const std::vector<PendingWrite*>& batch, const Status& committed) {
  for (PendingWrite* w : batch) {
    if (!committed.ok() && w->result.ok()) w->result = committed;
    if (committed.ok()) {
      for (auto& fn : w->after_commit) fn();
    }
    w->after_commit.clear();
  }
}

}  // namespace garde

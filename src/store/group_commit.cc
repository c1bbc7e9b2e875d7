#include "garde/store/group_commit.h"

namespace garde {

Status GroupCommitQueue::Submit(const std::function<Status(WriteTx&)>& fn, Durability durability,
                                const CommitFn& commit) {
  PendingWrite me;
  me.fn = &fn;
  me.durability = durability;
  MutexLock lock(&mu_);
  queue_.push_back(&me);
  for (;;) {
    while (!me.done && (me.taken || leader_active_)) me.wake.wait(lock.native());
    if (me.done) return me.result;
    // Lead the next batch: everything queued so far, ourselves included.
    leader_active_ = true;
    constexpr size_t kMaxBatch = 256;
    std::vector<PendingWrite*> batch;
    while (!queue_.empty() && batch.size() < kMaxBatch) {
      batch.push_back(queue_.front());
      queue_.pop_front();
      batch.back()->taken = true;
    }
    lock.Unlock();
    bool handed_over = false;
    commit(batch, [&] {
      MutexLock relock(&mu_);
      if (!handed_over) HandOver();
      handed_over = true;
    });
    lock.Relock();
    if (!handed_over) HandOver();
    for (PendingWrite* w : batch) {
      w->done = true;
      if (w != &me) w->wake.notify_one();
    }
  }
}

void GroupCommitQueue::HandOver() {
  leader_active_ = false;
  if (!queue_.empty()) queue_.front()->wake.notify_one();
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

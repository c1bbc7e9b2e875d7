// Leader/follower batching, as group commit does it. A caller either waits for its item (Run)
// or leaves it and is called back once it has run (Post). Whenever no batch runs, someone
// leads the next one — every item queued by then, at most `max_batch` — runs it outside the
// lock and answers each: a caller waiting in Run, or, for posted items nobody waits beside, one
// of the queue's own threads (at most kHelpers, started when first needed). Every waiter has
// its own condition variable and is woken alone: when its item has run, or when it is to lead.
//
//   BatchQueue<Pending> queue(256, [](const std::vector<Pending*>& batch,
//                                     const std::function<void()>& hand_over) {
//     WriteAll(batch);
//     hand_over();   // optional: the next batch may start while this one is finished
//     SyncAll(batch);
//   });
//   queue.Run(&me);                        // returns once the batch holding `me` has run
//   queue.Post(item, [item] { Answer(item); });   // returns at once
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "garde/base/mutex.h"
#include "garde/base/thread_name.h"

namespace garde {

template <typename Item>
class BatchQueue {
 public:
  // Runs `batch`. May call `hand_over` once, when the next batch may start (this one's callers
  // are still not answered); the next batch starts when it returns otherwise.
  using RunFn =
      std::function<void(const std::vector<Item*>& batch, const std::function<void()>& hand_over)>;

  // Threads of the queue's own that lead batches of posted items: one writing a batch while
  // another finishes the one before (its flush) and a third answers its callers.
  static constexpr size_t kHelpers = 3;

  BatchQueue(size_t max_batch, RunFn run) : max_batch_(max_batch), run_(std::move(run)) {}

  ~BatchQueue() { Stop(); }
  BatchQueue(const BatchQueue&) = delete;
  BatchQueue& operator=(const BatchQueue&) = delete;

  // Lets every posted item run, then stops the queue's threads; nothing may be queued after.
  void Stop() EXCLUDES(mu_) {
    std::vector<std::thread> helpers;
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      helpers.swap(helpers_);
    }
    helper_wake_.notify_all();
    for (auto& t : helpers) t.join();
  }

  // Queues `item`; returns once a batch holding it has run, led by this thread or another.
  void Run(Item* item) EXCLUDES(mu_) {
    Waiter me;
    me.item = item;
    MutexLock lock(&mu_);
    queue_.push_back(&me);
    for (;;) {
      while (!me.done && (me.taken || leading_)) me.wake.wait(lock.native());
      if (me.done) return;
      Lead();
    }
  }

  // Queues `item` and returns: `done` is called once, when a batch holding it has run, on the
  // thread that led it (outside the queue's lock). `item` stays the caller's, untouched by
  // the queue after `done`.
  void Post(Item* item, std::function<void()> done) EXCLUDES(mu_) {
    auto w = std::make_unique<Waiter>();
    w->item = item;
    w->posted = std::move(done);
    MutexLock lock(&mu_);
    queue_.push_back(w.release());
    if (!leading_) WakeALeader();
  }

 private:
  struct Waiter {
    Item* item = nullptr;
    bool taken = false;  // in a batch
    bool done = false;   // its batch has run
    std::condition_variable wake;
    std::function<void()> posted;  // set: nobody waits; called once its batch has run
  };

  // Leads one batch: what is queued, at most max_batch_, run outside the lock; then answers
  // it. Called and returns with mu_ held (let go meanwhile).
  void Lead() REQUIRES(mu_) {
    leading_ = true;
    std::vector<Waiter*> waiters;
    std::vector<Item*> batch;
    while (!queue_.empty() && batch.size() < max_batch_) {
      waiters.push_back(queue_.front());
      queue_.pop_front();
      waiters.back()->taken = true;
      batch.push_back(waiters.back()->item);
    }
    mu_.Unlock();
    bool handed_over = false;
    run_(batch, [&] {
      MutexLock relock(&mu_);
      if (!handed_over) HandOver();
      handed_over = true;
    });
    mu_.Lock();
    if (!handed_over) HandOver();
    // A waiting caller's Waiter is gone once it is told (it returns): the posted ones first.
    std::vector<std::unique_ptr<Waiter>> posted;
    for (Waiter* w : waiters) {
      if (w->posted) {
        posted.emplace_back(w);
        continue;
      }
      w->done = true;
      w->wake.notify_one();  // (the leader's own is not waiting: harmless)
    }
    if (posted.empty()) return;
    mu_.Unlock();
    for (auto& w : posted) w->posted();
    posted.clear();  // what the callbacks held, let go outside the lock
    mu_.Lock();
  }

  void HandOver() REQUIRES(mu_) {
    leading_ = false;
    WakeALeader();
    if (stopping_) helper_wake_.notify_all();  // each idle helper sees whether it may stop
  }

  // With no batch running and items queued: a caller waiting at the front leads (as without
  // posted items), else an idle helper, else a new one, else any caller waiting further back.
  // With none of them, a helper busy finishing its batch leads once it is done.
  void WakeALeader() REQUIRES(mu_) {
    if (queue_.empty()) return;
    if (!queue_.front()->posted) {
      queue_.front()->wake.notify_one();
      return;
    }
    if (idle_helpers_ > 0) {
      helper_wake_.notify_one();
      return;
    }
    if (!stopping_ && helpers_.size() < kHelpers) {
      try {
        helpers_.emplace_back([this] { Help(); });
        return;
      } catch (const std::system_error&) {
        // (no thread now: a caller waiting, or the next helper free, leads)
      }
    }
    for (Waiter* w : queue_) {
      if (!w->posted) {
        w->wake.notify_one();
        return;
      }
    }
  }

  // A helper: leads whenever no batch runs and items are queued; stops once the queue is
  // stopping and empty.
  void Help() EXCLUDES(mu_) {
    NameThisThread("garde-batches");
    MutexLock lock(&mu_);
    for (;;) {
      while (!(stopping_ && queue_.empty()) && (leading_ || queue_.empty())) {
        ++idle_helpers_;
        helper_wake_.wait(lock.native());
        --idle_helpers_;
      }
      if (queue_.empty()) return;
      Lead();
    }
  }

  const size_t max_batch_;
  const RunFn run_;
  Mutex mu_;
  std::deque<Waiter*> queue_ GUARDED_BY(mu_);
  bool leading_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  size_t idle_helpers_ GUARDED_BY(mu_) = 0;
  std::condition_variable helper_wake_;
  std::vector<std::thread> helpers_ GUARDED_BY(mu_);
};

}  // namespace garde

// Leader/follower batching, as group commit does it: callers queue an item and wait; the first
// of them while no batch runs leads the next one — every item queued by then, at most
// `max_batch` — runs it outside the lock and answers each. Every waiter has its own condition
// variable and is woken alone: when its item has run, or when it is to lead the next batch.
//
//   BatchQueue<Pending> queue;
//   Pending me{...};
//   queue.Run(&me, [](const std::vector<Pending*>& batch, const std::function<void()>& hand_over) {
//     WriteAll(batch);
//     hand_over();   // optional: the next batch may start while this one is finished
//     SyncAll(batch);
//   });              // returns once the batch holding `me` has run
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <limits>
#include <vector>

#include "garde/base/mutex.h"

namespace garde {

template <typename Item>
class BatchQueue {
 public:
  // Runs `batch`. May call `hand_over` once, when the next batch may start (this one's callers
  // are still not answered); the next batch starts when it returns otherwise.
  using RunFn =
      std::function<void(const std::vector<Item*>& batch, const std::function<void()>& hand_over)>;

  explicit BatchQueue(size_t max_batch = std::numeric_limits<size_t>::max())
      : max_batch_(max_batch) {}

  // Queues `item`; returns once a batch holding it has run, led by this thread or another.
  void Run(Item* item, const RunFn& run) EXCLUDES(mu_) {
    Waiter me;
    me.item = item;
    MutexLock lock(&mu_);
    queue_.push_back(&me);
    for (;;) {
      while (!me.done && (me.taken || leading_)) me.wake.wait(lock.native());
      if (me.done) return;
      leading_ = true;
      std::vector<Waiter*> waiters;
      std::vector<Item*> batch;
      while (!queue_.empty() && batch.size() < max_batch_) {
        waiters.push_back(queue_.front());
        queue_.pop_front();
        waiters.back()->taken = true;
        batch.push_back(waiters.back()->item);
      }
      lock.Unlock();
      bool handed_over = false;
      run(batch, [&] {
        MutexLock relock(&mu_);
        if (!handed_over) HandOver();
        handed_over = true;
      });
      lock.Relock();
      if (!handed_over) HandOver();
      for (Waiter* w : waiters) {
        w->done = true;
        if (w != &me) w->wake.notify_one();
      }
    }
  }

 private:
  struct Waiter {
    Item* item = nullptr;
    bool taken = false;  // in a batch
    bool done = false;   // its batch has run
    std::condition_variable wake;
  };

  void HandOver() REQUIRES(mu_) {
    leading_ = false;
    if (!queue_.empty()) queue_.front()->wake.notify_one();
  }

  const size_t max_batch_;
  Mutex mu_;
  std::deque<Waiter*> queue_ GUARDED_BY(mu_);
  bool leading_ GUARDED_BY(mu_) = false;
};

}  // namespace garde

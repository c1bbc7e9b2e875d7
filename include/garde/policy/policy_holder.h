// The policy set in force, swapped whole on reload; readers keep the set they started with.
//
//   PolicyHolder holder(set);
//   std::shared_ptr<const PolicySet> p = holder.Current();
//   holder.Replace(new_set);
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "garde/base/mutex.h"
#include "garde/policy/policy_set.h"

namespace garde {

class PolicyHolder {
 public:
  explicit PolicyHolder(std::shared_ptr<const PolicySet> set)
      : set_(std::move(set)), generation_(NextGeneration()) {}

  // Read on every request and every audit entry: each thread keeps the set it saw last and
  // takes the lock only when a reload has happened since (one atomic load otherwise).
  std::shared_ptr<const PolicySet> Current() const EXCLUDES(mu_) {
    thread_local uint64_t seen = 0;
    thread_local std::shared_ptr<const PolicySet> kept;
    const uint64_t now = generation_.load(std::memory_order_acquire);
    if (seen != now || !kept) {
      MutexLock lock(&mu_);
      kept = set_;
      seen = generation_.load(std::memory_order_relaxed);
    }
    return kept;
  }
  void Replace(std::shared_ptr<const PolicySet> set) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    set_ = std::move(set);
    generation_.store(NextGeneration(), std::memory_order_release);
  }

 private:
  // Unique across every holder of the process, so that a thread's kept set can never be
  // mistaken for another holder's.
  static uint64_t NextGeneration() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }
  mutable Mutex mu_;
  std::shared_ptr<const PolicySet> set_ GUARDED_BY(mu_);
  std::atomic<uint64_t> generation_;
};

}  // namespace garde

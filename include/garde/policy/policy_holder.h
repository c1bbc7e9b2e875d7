// The policy set in force, swapped whole on reload; readers keep the set they started with.
//
//   PolicyHolder holder(set);
//   std::shared_ptr<const PolicySet> p = holder.Current();
//   holder.Replace(new_set);
#pragma once

#include <atomic>
#include <memory>

#include "garde/policy/policy_set.h"

namespace garde {

class PolicyHolder {
 public:
  explicit PolicyHolder(std::shared_ptr<const PolicySet> set) : set_(std::move(set)) {}
  // Read on every request (and every audit entry): an atomic load, no lock to contend for.
  std::shared_ptr<const PolicySet> Current() const { return set_.load(std::memory_order_acquire); }
  void Replace(std::shared_ptr<const PolicySet> set) {
    set_.store(std::move(set), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const PolicySet>> set_;
};

}  // namespace garde

// The policy set in force, swapped whole on reload; readers keep the set they started with.
//
//   PolicyHolder holder(set);
//   std::shared_ptr<const PolicySet> p = holder.Current();
//   holder.Replace(new_set);
#pragma once

#include <memory>
#include <mutex>

#include "garde/policy/policy_set.h"

namespace garde {

class PolicyHolder {
 public:
  explicit PolicyHolder(std::shared_ptr<const PolicySet> set) : set_(std::move(set)) {}
  std::shared_ptr<const PolicySet> Current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return set_;
  }
  void Replace(std::shared_ptr<const PolicySet> set) {
    std::lock_guard<std::mutex> lock(mu_);
    set_ = std::move(set);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const PolicySet> set_;
};

}  // namespace garde

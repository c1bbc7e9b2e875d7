#include "garde/domain/subject_cache.h"

#include <mutex>

namespace garde {
namespace {

// More changes than this since the last sync: start over rather than read them all.
constexpr size_t kMaxTail = 8192;
constexpr size_t kRingSize = 16384;

}  // namespace

Result<int64_t> ChangeFollowingCache::Sync(ReadTx& tx) {
  int64_t from;
  {
    std::shared_lock lock(mu_);
    from = applied_;
  }
  auto tail = tx.ChangesAfter(from, kMaxTail);
  if (!tail.ok()) return tail.status();
  if (tail->last_seq <= from) return tail->last_seq;  // nothing new in this snapshot
  std::unique_lock lock(mu_);
  if (tail->last_seq <= applied_) return tail->last_seq;  // another reader was quicker
  if (!tail->complete) {
    Reset(tail->last_seq);
    return tail->last_seq;
  }
  for (const auto& change : tail->changes) {
    if (change.first <= applied_) continue;
    values_.erase(change.second);
    ring_.push_back(change);
  }
  while (ring_.size() > kRingSize) {
    ring_floor_ = ring_.front().first;
    ring_.pop_front();
  }
  applied_ = tail->last_seq;
  return tail->last_seq;
}

std::shared_ptr<const void> ChangeFollowingCache::Find(const std::string& id) const {
  std::shared_lock lock(mu_);
  auto it = values_.find(id);
  return it == values_.end() ? nullptr : it->second;
}

void ChangeFollowingCache::Keep(int64_t position, const std::string& id,
                                std::shared_ptr<const void> value) {
  if (capacity_ == 0) return;
  std::unique_lock lock(mu_);
  if (!UnchangedSince(position, id)) return;
  if (values_.size() >= capacity_ && values_.count(id) == 0) {
    values_.erase(values_.begin());  // full: make room (hash order, no recency kept)
  }
  values_[id] = std::move(value);
}

bool ChangeFollowingCache::UnchangedSince(int64_t position, const std::string& id) const {
  if (position >= applied_) return true;
  if (position < ring_floor_) return false;  // cannot tell any more
  for (auto it = ring_.rbegin(); it != ring_.rend() && it->first > position; ++it) {
    if (it->second == id) return false;
  }
  return true;
}

void ChangeFollowingCache::Reset(int64_t position) {
  values_.clear();
  ring_.clear();
  applied_ = ring_floor_ = position;
}

size_t ChangeFollowingCache::size() const {
  std::shared_lock lock(mu_);
  return values_.size();
}

}  // namespace garde

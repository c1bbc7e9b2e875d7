#include "garde/domain/subject_cache.h"

#include <algorithm>
#include <chrono>
#include <mutex>

namespace garde {
namespace {

// More changes than this since the last sync: start over rather than read them all.
constexpr size_t kMaxTail = 8192;
constexpr size_t kRingSize = 16384;
// How long an unmoved change epoch is trusted without a sync.
constexpr int64_t kTrustEpochNs = 1'000'000'000;

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool SubjectCache::CurrentAt(uint64_t epoch) const {
  const int64_t at = synced_at_ns_.load(std::memory_order_acquire);
  return at != 0 && synced_epoch_.load(std::memory_order_acquire) == epoch &&
         SteadyNs() - at < kTrustEpochNs;
}

Result<int64_t> SubjectCache::Sync(ReadTx& tx, std::optional<uint64_t> epoch) {
  // Everything committed before `epoch` was read is in this transaction's snapshot; once
  // applied, the epoch vouches for the kept values. (Two syncs racing may leave the older
  // epoch recorded: the next use then syncs again, never the reverse.)
  auto vouch = [&] {
    if (!epoch) return;
    synced_epoch_.store(*epoch, std::memory_order_release);
    synced_at_ns_.store(SteadyNs(), std::memory_order_release);
  };
  int64_t from;
  {
    std::shared_lock lock(mu_);
    from = applied_;
  }
  GARDE_ASSIGN_OR_RETURN(auto tail, tx.ChangesAfter(from, kMaxTail));
  if (tail.last_seq <= from) {  // nothing new in this snapshot
    vouch();
    return tail.last_seq;
  }
  std::unique_lock lock(mu_);
  if (tail.last_seq <= applied_) {  // another reader was quicker
    vouch();
    return tail.last_seq;
  }
  if (!tail.complete) {
    Reset(tail.last_seq);
    vouch();
    return tail.last_seq;
  }
  for (const auto& change : tail.changes) {
    if (change.first <= applied_) continue;
    values_.Erase(change.second);
    ring_.push_back(change);
  }
  while (ring_.size() > kRingSize) {
    ring_floor_ = ring_.front().first;
    ring_.pop_front();
  }
  applied_ = tail.last_seq;
  vouch();
  return tail.last_seq;
}

void SubjectCache::Keep(int64_t position, const std::string& id, std::string_view bytes) {
  if (capacity_ == 0) return;
  std::unique_lock lock(mu_);
  if (!UnchangedSince(position, id)) return;
  if (values_.size() >= limit_ && !values_.Find(id)) {
    // Every kept subject is current (a change drops its bytes): this one is one more.
    if (limit_ > outgrown_) Outgrown();
    if (limit_ == 0) return;
    if (values_.size() >= limit_) values_.EraseAny();
  }
  values_.Put(id, bytes);
}

void SubjectCache::Outgrown() {
  // Starts again empty: the table's slots go with the entries, and what the traffic reads
  // next is the likelier to be read again than what was loaded or read before.
  values_.Clear();
  limit_ = outgrown_;
}

size_t SubjectCache::limit() const {
  std::shared_lock lock(mu_);
  return limit_;
}

bool SubjectCache::UnchangedSince(int64_t position, const std::string& id) const {
  if (position >= applied_) return true;
  if (position < ring_floor_) return false;  // cannot tell any more
  for (auto it = ring_.rbegin(); it != ring_.rend() && it->first > position; ++it) {
    if (it->second == id) return false;
  }
  return true;
}

void SubjectCache::Reset(int64_t position) {
  values_.Clear();
  ring_.clear();
  applied_ = ring_floor_ = position;
}

size_t SubjectCache::size() const {
  std::shared_lock lock(mu_);
  return values_.size();
}

size_t SubjectCache::bytes() const {
  std::shared_lock lock(mu_);
  return values_.bytes();
}

Result<size_t> SubjectCache::Fill(Store& store, const PageLoader& load_page, int64_t read_at) {
  constexpr size_t kPage = 1000;
  int64_t subjects = 0;
  GARDE_RETURN_IF_ERROR(store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto n, tx.CountSubjects());
    subjects = n;
    return Status::Ok();
  }));
  if (static_cast<size_t>(subjects) > capacity_) {
    std::unique_lock lock(mu_);
    if (limit_ > outgrown_) Outgrown();
    return size_t{0};
  }
  size_t loaded = 0;
  std::string after;
  bool more = true;
  while (more) {
    GARDE_RETURN_IF_ERROR(store.Read([&](ReadTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto position, Sync(tx));
      GARDE_ASSIGN_OR_RETURN(auto page, tx.ScanSubjects(after, kPage));
      more = page.size() == kPage;
      if (page.empty()) return Status::Ok();
      GARDE_ASSIGN_OR_RETURN(auto values, load_page(tx, page));
      for (size_t i = 0; i < page.size(); ++i) {
        if (values[i]) Keep(std::min(position, read_at), page[i].id, *values[i]);
      }
      after = page.back().id;
      loaded += page.size();
      return Status::Ok();
    }));
  }
  return loaded;
}

}  // namespace garde

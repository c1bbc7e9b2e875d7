// An in-memory view of per-subject data derived from the vault (consent facts, sealed
// subject records), kept current by following the vault's change log: before each use, a
// read transaction applies the changes committed since the last one, whichever connection
// or process made them. A kept value is never older than the newest change applied.
// When the store's change epoch has not moved since the last sync, nothing was committed
// in between and a kept value is current without any transaction.
//
//   const uint64_t epoch = store.ChangeEpoch();
//   auto use = [&](std::string_view kept) { return Decode(kept, &out); };
//   if (cache.CurrentAt(epoch) && cache.Find(id, use)) return out;
//   store.Read([&](ReadTx& tx) {
//     auto at = cache.Sync(tx, epoch);
//     if (!cache.Find(id, use)) { out = Load(tx, id); cache.Keep(at.value(), id, Encode(out)); }
//   });
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "garde/base/bytes_by_id.h"
#include "garde/store/store.h"

namespace garde {

// Byte strings by subject id (one allocation each, in a BytesById), at most `capacity` of them.
// `outgrown`: the most it keeps once the vault has shown more subjects than `capacity` (Fill
// counted them, or a subject not kept arrived while it was full). Evicting at random, a cache
// holding a tenth of a vault read evenly serves a tenth of the reads and costs as much memory
// as one holding them all; past that point it keeps only a few, for subjects read again soon.
class SubjectCache {
 public:
  explicit SubjectCache(size_t capacity) : SubjectCache(capacity, capacity) {}
  SubjectCache(size_t capacity, size_t outgrown)
      : capacity_(capacity), outgrown_(std::min(outgrown, capacity)), limit_(capacity) {}
  SubjectCache(const SubjectCache&) = delete;
  SubjectCache& operator=(const SubjectCache&) = delete;

  // Forgets what the changes committed up to tx's snapshot made stale; returns the
  // snapshot's position in the change log. `epoch`: Store::ChangeEpoch() read before the
  // transaction began, after which CurrentAt(epoch) holds until the next commit.
  Result<int64_t> Sync(ReadTx& tx, std::optional<uint64_t> epoch = std::nullopt);
  // True when every kept value is current at `epoch` (Store::ChangeEpoch() read just now):
  // a Sync saw that epoch, less than a second ago (the bound covers a change counter that
  // came back to an earlier value, which SQLite's does only after a crash recovery).
  bool CurrentAt(uint64_t epoch) const;
  // Calls `use` with the kept bytes of `id` (valid during the call, which holds the cache's
  // shared lock: keep it short) and returns what it returns; false when nothing is kept.
  // What is kept is current as of the last Sync or later.
  template <typename Use>
  bool Find(const std::string& id, Use&& use) const {
    std::shared_lock lock(mu_);
    auto kept = values_.Find(id);
    return kept && use(*kept);
  }
  // Keeps bytes read in the transaction whose Sync returned `position`, unless a change
  // applied since then concerns `id`; when full, drops another subject's (no recency kept).
  void Keep(int64_t position, const std::string& id, std::string_view bytes);
  size_t size() const;
  size_t bytes() const;  // what the kept values and their table take
  size_t capacity() const { return capacity_; }
  // What it keeps at most now: capacity(), or `outgrown` once the vault has outgrown it.
  size_t limit() const;

  // Keeps every subject's bytes when they all fit (else none: an arbitrary part would only
  // push out, one miss at a time, what the traffic itself keeps), a page per read
  // transaction (a few milliseconds each, so that writers and readers are not held back).
  // `load_page` returns the bytes of a page's rows (nullopt: not kept), read in that
  // transaction and from anything the caller read at `read_at` (a Sync position) or later.
  // What changes meanwhile is applied as for any other value. Returns the subjects loaded.
  using PageLoader = std::function<Result<std::vector<std::optional<std::string>>>(
      ReadTx& tx, const std::vector<SubjectRow>& page)>;
  Result<size_t> Fill(Store& store, const PageLoader& load_page,
                      int64_t read_at = std::numeric_limits<int64_t>::max());

 private:
  bool UnchangedSince(int64_t position, const std::string& id) const;  // mu_ held
  void Reset(int64_t position);                                        // mu_ held
  void Outgrown();                                                     // mu_ held

  const size_t capacity_;
  const size_t outgrown_;
  size_t limit_;  // mu_
  mutable std::shared_mutex mu_;
  BytesById values_;
  int64_t applied_ = 0;  // every change up to here has been applied
  // The changes applied last, oldest first; those after ring_floor_ are all here.
  std::deque<std::pair<int64_t, std::string>> ring_;
  int64_t ring_floor_ = 0;
  std::atomic<uint64_t> synced_epoch_{0};
  std::atomic<int64_t> synced_at_ns_{0};  // steady clock; 0: never
};

}  // namespace garde

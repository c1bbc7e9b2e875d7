// An in-memory view of per-subject data derived from the vault (consent facts, sealed
// subject records), kept current by following the vault's change log: before each use, a
// read transaction applies the changes committed since the last one, whichever connection
// or process made them. A kept value is never older than the newest change applied.
// When the store's change epoch has not moved since the last sync, nothing was committed
// in between and a kept value is current without any transaction.
//
//   const uint64_t epoch = store.ChangeEpoch();
//   if (cache.CurrentAt(epoch)) { if (auto f = cache.Find(id)) return Use(*f); }
//   store.Read([&](ReadTx& tx) {
//     auto at = cache.Sync(tx, epoch);
//     auto f = cache.Get(at.value(), id, [&] { return Load(tx, id); });
//   });
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "garde/base/bytes_by_id.h"
#include "garde/store/store.h"

namespace garde {

// What a ChangeFollowingCache keeps, by subject id. Called with the cache's lock held.
class KeptValues {
 public:
  virtual ~KeptValues() = default;
  virtual void Erase(const std::string& id) = 0;
  virtual void Clear() = 0;
  virtual bool Contains(const std::string& id) const = 0;
  virtual void EraseAny() = 0;  // makes room when full (no recency kept)
  virtual size_t Size() const = 0;
};

// The value-free core of SubjectCache<T> and SubjectBytesCache: the lock, and which kept
// values the changes committed since have made stale.
class ChangeFollowingCache {
 public:
  ChangeFollowingCache(size_t capacity, KeptValues& values)
      : capacity_(capacity), values_(values) {}
  ChangeFollowingCache(const ChangeFollowingCache&) = delete;
  ChangeFollowingCache& operator=(const ChangeFollowingCache&) = delete;

  // Forgets what the changes committed up to tx's snapshot made stale; returns the
  // snapshot's position in the change log. `epoch`: Store::ChangeEpoch() read before the
  // transaction began, after which CurrentAt(epoch) holds until the next commit.
  Result<int64_t> Sync(ReadTx& tx, std::optional<uint64_t> epoch = std::nullopt);
  // True when every kept value is current at `epoch` (Store::ChangeEpoch() read just now):
  // a Sync saw that epoch, less than a second ago (the bound covers a change counter that
  // came back to an earlier value, which SQLite's does only after a crash recovery).
  bool CurrentAt(uint64_t epoch) const;
  // Runs `read` under the shared lock: the kept values do not change meanwhile.
  template <typename Read>
  auto Reading(Read&& read) const {
    std::shared_lock lock(mu_);
    return read();
  }
  // Runs `put` (which keeps a value read at `position` for `id`) under the exclusive lock,
  // unless a change applied since then concerns `id`; makes room first when full.
  template <typename Put>
  void Keep(int64_t position, const std::string& id, Put&& put) {
    if (capacity_ == 0) return;
    std::unique_lock lock(mu_);
    if (!UnchangedSince(position, id)) return;
    if (values_.Size() >= capacity_ && !values_.Contains(id)) values_.EraseAny();
    put();
  }
  size_t size() const;
  size_t capacity() const { return capacity_; }

  // Keeps every subject's value when they all fit (else none: an arbitrary part would only
  // push out, one miss at a time, what the traffic itself keeps), a page per read
  // transaction (a few milliseconds each, so that writers and readers are not held back).
  // `keep_page` keeps the values of a page's rows, read in that transaction and from
  // anything the caller read at `read_at` (a Sync position) or later, as of the position it
  // is given. What changes meanwhile is applied as for any other value. Returns the subjects
  // loaded.
  using PageKeeper =
      std::function<Status(ReadTx& tx, int64_t position, const std::vector<SubjectRow>& page)>;
  Result<size_t> Fill(Store& store, const PageKeeper& keep_page, int64_t read_at);

 private:
  bool UnchangedSince(int64_t position, const std::string& id) const;  // mu_ held
  void Reset(int64_t position);                                        // mu_ held

  const size_t capacity_;
  KeptValues& values_;
  mutable std::shared_mutex mu_;
  int64_t applied_ = 0;  // every change up to here has been applied
  // The changes applied last, oldest first; those after ring_floor_ are all here.
  std::deque<std::pair<int64_t, std::string>> ring_;
  int64_t ring_floor_ = 0;
  std::atomic<uint64_t> synced_epoch_{0};
  std::atomic<int64_t> synced_at_ns_{0};  // steady clock; 0: never
};

template <typename T>
class SubjectCache {
 public:
  using Ptr = std::shared_ptr<const T>;
  explicit SubjectCache(size_t capacity) : core_(capacity, values_) {}

  Result<int64_t> Sync(ReadTx& tx, std::optional<uint64_t> epoch = std::nullopt) {
    return core_.Sync(tx, epoch);
  }
  bool CurrentAt(uint64_t epoch) const { return core_.CurrentAt(epoch); }
  // The subject's value as of `position` (from Sync in the same transaction) or later:
  // kept, or loaded by `load` (reading in that transaction) and kept. A null value is
  // answered, not kept.
  Result<Ptr> Get(int64_t position, const std::string& id,
                  const std::function<Result<Ptr>()>& load) {
    if (auto kept = Find(id)) return kept;
    auto loaded = load();
    if (loaded.ok() && loaded.value() != nullptr) Keep(position, id, loaded.value());
    return loaded;
  }
  // The kept value, valid as of the last Sync or later; null if none.
  Ptr Find(const std::string& id) const {
    return core_.Reading([&]() -> Ptr {
      auto it = values_.map.find(id);
      return it == values_.map.end() ? nullptr : it->second;
    });
  }
  // Keeps a value read in the transaction whose Sync returned `position`.
  void Keep(int64_t position, const std::string& id, Ptr value) {
    core_.Keep(position, id, [&] { values_.map[id] = std::move(value); });
  }
  size_t size() const { return core_.size(); }

  // Loads every subject's value when they all fit, as ChangeFollowingCache::Fill says.
  // `load_page` returns the values of a page's rows (null: not kept).
  using PageLoader =
      std::function<Result<std::vector<Ptr>>(ReadTx& tx, const std::vector<SubjectRow>& page)>;
  Result<size_t> Fill(Store& store, const PageLoader& load_page,
                      int64_t read_at = std::numeric_limits<int64_t>::max()) {
    return core_.Fill(
        store,
        [&](ReadTx& tx, int64_t position, const std::vector<SubjectRow>& page) -> Status {
          GARDE_ASSIGN_OR_RETURN(auto values, load_page(tx, page));
          for (size_t i = 0; i < page.size(); ++i) {
            if (values[i] != nullptr) Keep(position, page[i].id, values[i]);
          }
          return Status::Ok();
        },
        read_at);
  }

 private:
  struct Values final : KeptValues {
    void Erase(const std::string& id) override { map.erase(id); }
    void Clear() override { map.clear(); }
    bool Contains(const std::string& id) const override { return map.count(id) != 0; }
    void EraseAny() override { map.erase(map.begin()); }
    size_t Size() const override { return map.size(); }
    std::unordered_map<std::string, Ptr> map;
  };
  Values values_;
  ChangeFollowingCache core_;
};

// A SubjectCache of byte strings, kept in a BytesById: for values kept for every subject
// (consent facts), where a map of shared strings would cost more than the values.
class SubjectBytesCache {
 public:
  explicit SubjectBytesCache(size_t capacity) : core_(capacity, values_) {}

  Result<int64_t> Sync(ReadTx& tx, std::optional<uint64_t> epoch = std::nullopt) {
    return core_.Sync(tx, epoch);
  }
  bool CurrentAt(uint64_t epoch) const { return core_.CurrentAt(epoch); }
  // Calls `use` with the kept bytes of `id` (valid during the call, which holds the cache's
  // shared lock: keep it short) and returns what it returns; false when nothing is kept.
  template <typename Use>
  bool Find(const std::string& id, Use&& use) const {
    return core_.Reading([&]() -> bool {
      auto kept = values_.table.Find(id);
      return kept && use(*kept);
    });
  }
  // Keeps bytes read in the transaction whose Sync returned `position`.
  void Keep(int64_t position, const std::string& id, std::string_view bytes) {
    core_.Keep(position, id, [&] { values_.table.Put(id, bytes); });
  }
  size_t size() const { return core_.size(); }
  size_t bytes() const {
    return core_.Reading([&] { return values_.table.bytes(); });
  }

  // Loads every subject's bytes when they all fit, as ChangeFollowingCache::Fill says.
  // `load_page` returns the bytes of a page's rows (nullopt: not kept).
  using PageLoader = std::function<Result<std::vector<std::optional<std::string>>>(
      ReadTx& tx, const std::vector<SubjectRow>& page)>;
  Result<size_t> Fill(Store& store, const PageLoader& load_page,
                      int64_t read_at = std::numeric_limits<int64_t>::max());

 private:
  struct Values final : KeptValues {
    void Erase(const std::string& id) override { table.Erase(id); }
    void Clear() override { table.Clear(); }
    bool Contains(const std::string& id) const override { return table.Find(id).has_value(); }
    void EraseAny() override { table.EraseAny(); }
    size_t Size() const override { return table.size(); }
    BytesById table;
  };
  Values values_;
  ChangeFollowingCache core_;
};

}  // namespace garde

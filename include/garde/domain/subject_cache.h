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
#include <unordered_map>
#include <utility>
#include <vector>

#include "garde/store/store.h"

namespace garde {

// The type-free core of SubjectCache<T>.
class ChangeFollowingCache {
 public:
  explicit ChangeFollowingCache(size_t capacity) : capacity_(capacity) {}
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
  std::shared_ptr<const void> Find(const std::string& id) const;
  // Keeps a value read at `position` unless a change applied since then concerns it.
  void Keep(int64_t position, const std::string& id, std::shared_ptr<const void> value);
  size_t size() const;
  size_t capacity() const { return capacity_; }

 private:
  bool UnchangedSince(int64_t position, const std::string& id) const;  // mu_ held
  void Reset(int64_t position);                                        // mu_ held

  const size_t capacity_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const void>> values_;
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
  explicit SubjectCache(size_t capacity) : core_(capacity) {}

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
    return std::static_pointer_cast<const T>(core_.Find(id));
  }
  // Keeps a value read in the transaction whose Sync returned `position`.
  void Keep(int64_t position, const std::string& id, Ptr value) {
    core_.Keep(position, id, std::move(value));
  }
  size_t size() const { return core_.size(); }

  // Loads every subject's value when they all fit (else none: an arbitrary part would only
  // push out, one miss at a time, what the traffic itself keeps), a page per read
  // transaction (a few milliseconds each, so that writers and readers are not held back).
  // `load_page` returns the values of a page's rows (null: not kept), read in that
  // transaction and from anything the caller read at `read_at` (a Sync position) or later.
  // What changes meanwhile is applied as for any other value. Returns the subjects loaded.
  using PageLoader =
      std::function<Result<std::vector<Ptr>>(ReadTx& tx, const std::vector<SubjectRow>& page)>;
  Result<size_t> Fill(Store& store, const PageLoader& load_page,
                      int64_t read_at = std::numeric_limits<int64_t>::max()) {
    constexpr size_t kPage = 1000;
    int64_t subjects = 0;
    GARDE_RETURN_IF_ERROR(store.Read([&](ReadTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto n, tx.CountSubjects());
      subjects = n;
      return Status::Ok();
    }));
    if (static_cast<size_t>(subjects) > core_.capacity()) return size_t{0};
    size_t loaded = 0;
    std::string after;
    bool more = true;
    while (more) {
      GARDE_RETURN_IF_ERROR(store.Read([&](ReadTx& tx) -> Status {
        GARDE_ASSIGN_OR_RETURN(auto position, Sync(tx));
        GARDE_ASSIGN_OR_RETURN(auto rows, tx.ScanSubjects(after, kPage));
        const auto& page = rows;
        more = page.size() == kPage;
        if (page.empty()) return Status::Ok();
        GARDE_ASSIGN_OR_RETURN(auto values, load_page(tx, page));
        for (size_t i = 0; i < page.size(); ++i) {
          if (values[i] == nullptr) continue;
          Keep(std::min(position, read_at), page[i].id, values[i]);
        }
        after = page.back().id;
        loaded += page.size();
        return Status::Ok();
      }));
    }
    return loaded;
  }

 private:
  ChangeFollowingCache core_;
};

}  // namespace garde

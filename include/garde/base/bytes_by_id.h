// Byte strings keyed by short ids, for caches holding a value for each of a million subjects.
// Each entry is one allocation (the id, packed into 18 bytes when it is a minted subject id,
// the value's length and the value) and an 8-byte slot of an open-addressing table with linear
// probing: about 60 bytes for a subject id and 27 bytes of value, where
// std::unordered_map<std::string, std::shared_ptr<const std::string>> takes four allocations
// and about 190.
//
// Not thread-safe: the caller locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace garde {

class BytesById {
 public:
  static constexpr size_t kMaxIdSize = 254;

  BytesById() = default;
  BytesById(const BytesById&) = delete;
  BytesById& operator=(const BytesById&) = delete;
  ~BytesById() { Clear(); }

  // The value kept for `id`, valid until the next call that changes the table.
  std::optional<std::string_view> Find(std::string_view id) const;
  // Keeps `value` for `id`, replacing what was kept. False (nothing kept, any earlier value
  // dropped) for an id longer than kMaxIdSize.
  bool Put(std::string_view id, std::string_view value);
  bool Erase(std::string_view id);
  // Drops one entry, from a random place in the table; nothing when empty.
  void EraseAny();
  void Clear();
  size_t size() const { return size_; }
  // The table's slots and the entries' bytes as allocated (malloc_usable_size: the size class).
  size_t bytes() const { return slots_.capacity() * sizeof(Slot) + entry_bytes_; }
  // The longest run of occupied slots: the most a probe or a deletion's shift may walk.
  size_t LongestRun() const;

 private:
  // An entry's address in the low 48 bits, 16 bits of its id's hash above them; 0 is empty.
  using Slot = uint64_t;

  static uint64_t Hash(std::string_view stored);  // of an id's stored form
  size_t Home(uint64_t hash) const;               // the slot an id's probe starts from
  size_t Next(size_t i) const { return i + 1 == slots_.size() ? 0 : i + 1; }
  // The slot holding the id stored as `stored`, or the empty slot where its probe ended.
  size_t Probe(std::string_view stored, uint64_t hash) const;
  void RemoveAt(size_t i);  // backward-shift deletion: no tombstones
  void Grow();

  std::vector<Slot> slots_;
  size_t size_ = 0;
  size_t entry_bytes_ = 0;
  uint64_t random_ = 0x9e3779b97f4a7c15;  // EraseAny's xorshift state
};

}  // namespace garde

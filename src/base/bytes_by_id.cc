#include "garde/base/bytes_by_id.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>

namespace garde {
namespace {

constexpr uint64_t kAddressBits = 48;
constexpr uint64_t kAddressMask = (uint64_t{1} << kAddressBits) - 1;
constexpr size_t kFirstSize = 16;

// An entry: the id's length (one byte), the id, the value's length (four bytes), the value.
char* EntryOf(uint64_t slot) { return reinterpret_cast<char*>(slot & kAddressMask); }
uint16_t TagOf(uint64_t slot) { return static_cast<uint16_t>(slot >> kAddressBits); }

std::string_view IdOf(const char* entry) {
  return {entry + 1, static_cast<unsigned char>(entry[0])};
}

std::string_view ValueOf(const char* entry) {
  const size_t id_size = static_cast<unsigned char>(entry[0]);
  uint32_t size;
  std::memcpy(&size, entry + 1 + id_size, sizeof size);
  return {entry + 1 + id_size + sizeof size, size};
}

size_t EntrySize(const char* entry) {
  return 1 + IdOf(entry).size() + sizeof(uint32_t) + ValueOf(entry).size();
}

uint16_t TagOfHash(uint64_t hash) { return static_cast<uint16_t>(hash); }

}  // namespace

uint64_t BytesById::Hash(std::string_view id) { return std::hash<std::string_view>{}(id); }

size_t BytesById::Home(uint64_t hash) const {
  // The hash's high bits scaled to the table's size, which need not be a power of two.
  return static_cast<size_t>((static_cast<unsigned __int128>(hash) * slots_.size()) >> 64);
}

size_t BytesById::Probe(std::string_view id, uint64_t hash) const {
  const uint16_t tag = TagOfHash(hash);
  for (size_t i = Home(hash);; i = Next(i)) {
    const Slot s = slots_[i];
    if (s == 0 || (TagOf(s) == tag && IdOf(EntryOf(s)) == id)) return i;
  }
}

std::optional<std::string_view> BytesById::Find(std::string_view id) const {
  if (size_ == 0) return std::nullopt;
  const Slot s = slots_[Probe(id, Hash(id))];
  if (s == 0) return std::nullopt;
  return ValueOf(EntryOf(s));
}

bool BytesById::Put(std::string_view id, std::string_view value) {
  if (id.size() > kMaxIdSize || value.size() > UINT32_MAX) {
    Erase(id);
    return false;
  }
  const size_t size = 1 + id.size() + sizeof(uint32_t) + value.size();
  auto* entry = static_cast<char*>(std::malloc(size));
  if (entry == nullptr) throw std::bad_alloc();
  const auto address = reinterpret_cast<uintptr_t>(entry);
  if ((address & ~kAddressMask) != 0) {  // an address the slot cannot hold: keep nothing
    std::free(entry);
    Erase(id);
    return false;
  }
  entry[0] = static_cast<char>(id.size());
  std::memcpy(entry + 1, id.data(), id.size());
  const auto value_size = static_cast<uint32_t>(value.size());
  std::memcpy(entry + 1 + id.size(), &value_size, sizeof value_size);
  if (!value.empty())
    std::memcpy(entry + 1 + id.size() + sizeof value_size, value.data(), value.size());

  if ((size_ + 1) * 5 > slots_.size() * 4) Grow();  // at most 80 % full
  const uint64_t hash = Hash(id);
  const size_t i = Probe(id, hash);
  if (slots_[i] != 0) {
    char* old = EntryOf(slots_[i]);
    entry_bytes_ -= EntrySize(old);
    std::free(old);
  } else {
    ++size_;
  }
  slots_[i] = address | (uint64_t{TagOfHash(hash)} << kAddressBits);
  entry_bytes_ += size;
  return true;
}

bool BytesById::Erase(std::string_view id) {
  if (size_ == 0) return false;
  const size_t i = Probe(id, Hash(id));
  if (slots_[i] == 0) return false;
  RemoveAt(i);
  return true;
}

void BytesById::EraseAny() {
  if (size_ == 0) return;
  // A slot drawn at random until one is taken: every entry as likely to go, so that the
  // entries left are as spread out as random puts leave them. (A sweep packs the slots just
  // ahead of it solid, filled for a whole lap; taking the first entry after a random slot
  // favours the first of each run, and the runs grow.) A sparse table stops drawing and
  // takes the next entry.
  size_t i = 0;
  for (int draw = 0; draw < 64; ++draw) {
    random_ ^= random_ << 13;
    random_ ^= random_ >> 7;
    random_ ^= random_ << 17;
    i = Home(random_);
    if (slots_[i] != 0) break;
  }
  while (slots_[i] == 0) i = Next(i);
  RemoveAt(i);
}

size_t BytesById::LongestRun() const {
  size_t longest = 0, run = 0;
  for (size_t pass = 0; pass < 2; ++pass) {  // twice round: a run may wrap past the end
    for (const Slot s : slots_) {
      run = s == 0 ? 0 : run + 1;
      longest = std::max(longest, std::min(run, slots_.size()));
    }
  }
  return longest;
}

void BytesById::RemoveAt(size_t i) {
  char* entry = EntryOf(slots_[i]);
  entry_bytes_ -= EntrySize(entry);
  std::free(entry);
  --size_;
  // Every entry after the hole up to the next empty slot moves back into it unless its
  // probe starts after the hole (cyclically), so that no probe meets an empty slot early.
  for (size_t j = Next(i);; j = Next(j)) {
    const Slot s = slots_[j];
    if (s == 0) break;
    const size_t home = Home(Hash(IdOf(EntryOf(s))));
    const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    slots_[i] = s;
    i = j;
  }
  slots_[i] = 0;
}

void BytesById::Grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? kFirstSize : old.size() + old.size() / 2, 0);
  for (const Slot s : old) {
    if (s == 0) continue;
    size_t i = Home(Hash(IdOf(EntryOf(s))));
    while (slots_[i] != 0) i = Next(i);
    slots_[i] = s;
  }
}

void BytesById::Clear() {
  for (Slot& s : slots_) {
    if (s != 0) std::free(EntryOf(s));
    s = 0;
  }
  slots_.clear();
  slots_.shrink_to_fit();
  size_ = 0;
  entry_bytes_ = 0;
}

}  // namespace garde

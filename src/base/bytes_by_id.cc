#include "garde/base/bytes_by_id.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>

#include "garde/base/byte_codec.h"
#include "garde/base/encoding.h"
#include "garde/base/sanitizers.h"

#ifdef GARDE_ADDRESS_SANITIZER
#include <sanitizer/lsan_interface.h>
#endif

namespace garde {
namespace {

constexpr uint64_t kAddressBits = 48;
constexpr uint64_t kAddressMask = (uint64_t{1} << kAddressBits) - 1;
constexpr size_t kFirstSize = 16;

// An entry: the id as stored (below), then the value as ByteWriter::VStr writes it (its
// length in a varint, PutVar's, read back with GetVar).
//
// A subject id as minted ("sub_" and 26 characters of lower-case Crockford base32) is stored
// as a marker byte and its 130 bits in 17 bytes; any other id as its length (at most
// kMaxIdSize, below the marker) and its bytes. Each id has one stored form, so stored forms
// compare as the ids do; nothing reads an id back. A million subjects' consent facts: 18
// bytes an id where 31 took a size class of jemalloc's more (an e-mail grant's entry 51
// bytes, the 64-byte class, where it took 67 and the 80; a subject without events 32 for 48).
constexpr unsigned char kPackedId = 0xff;
constexpr size_t kPackedBytes = kRandomIdBytes;
constexpr std::string_view kPackedPrefix = "sub_";
constexpr size_t kMaxStoredId = 1 + BytesById::kMaxIdSize;
static_assert(BytesById::kMaxIdSize < kPackedId);

// Writes id's stored form at out (room for kMaxStoredId bytes); its size.
size_t StoreId(std::string_view id, char* out) {
  if (RandomIdBits(id, kPackedPrefix, reinterpret_cast<uint8_t*>(out + 1))) {
    out[0] = static_cast<char>(kPackedId);
    return 1 + kPackedBytes;
  }
  out[0] = static_cast<char>(id.size());
  std::memcpy(out + 1, id.data(), id.size());
  return 1 + id.size();
}

char* EntryOf(uint64_t slot) { return reinterpret_cast<char*>(slot & kAddressMask); }
uint16_t TagOf(uint64_t slot) { return static_cast<uint16_t>(slot >> kAddressBits); }

std::string_view StoredIdOf(const char* entry) {
  const auto first = static_cast<unsigned char>(entry[0]);
  return {entry, 1 + (first == kPackedId ? kPackedBytes : first)};
}

std::string_view ValueOf(const char* entry) {
  const char* at = entry + StoredIdOf(entry).size();
  uint64_t size = 0;
  at += GetVar(at, &size);
  return {at, size};
}

uint16_t TagOfHash(uint64_t hash) { return static_cast<uint16_t>(hash); }

}  // namespace

uint64_t BytesById::Hash(std::string_view stored) { return std::hash<std::string_view>{}(stored); }

size_t BytesById::Home(uint64_t hash) const {
  // The hash's high bits scaled to the table's size, which need not be a power of two.
  return static_cast<size_t>((static_cast<unsigned __int128>(hash) * slots_.size()) >> 64);
}

size_t BytesById::Probe(std::string_view stored, uint64_t hash) const {
  const uint16_t tag = TagOfHash(hash);
  for (size_t i = Home(hash);; i = Next(i)) {
    const Slot s = slots_[i];
    if (s == 0 || (TagOf(s) == tag && StoredIdOf(EntryOf(s)) == stored)) return i;
  }
}

std::optional<std::string_view> BytesById::Find(std::string_view id) const {
  if (size_ == 0 || id.size() > kMaxIdSize) return std::nullopt;
  char buffer[kMaxStoredId];
  const std::string_view stored(buffer, StoreId(id, buffer));
  const Slot s = slots_[Probe(stored, Hash(stored))];
  if (s == 0) return std::nullopt;
  return ValueOf(EntryOf(s));
}

bool BytesById::Put(std::string_view id, std::string_view value) {
  if (id.size() > kMaxIdSize || value.size() > UINT32_MAX) {
    Erase(id);
    return false;
  }
  char buffer[kMaxStoredId + kMaxVarBytes];  // the entry's head: the stored id, the length
  const std::string_view stored(buffer, StoreId(id, buffer));
  const size_t head = stored.size() + PutVar(value.size(), buffer + stored.size());
  auto* entry = static_cast<char*>(std::malloc(head + value.size()));
  if (entry == nullptr) throw std::bad_alloc();
  const auto address = reinterpret_cast<uintptr_t>(entry);
  if ((address & ~kAddressMask) != 0) {  // an address the slot cannot hold: keep nothing
    std::free(entry);
    Erase(id);
    return false;
  }
#ifdef GARDE_ADDRESS_SANITIZER
  // The slot keeps the address with a tag in its top bits, which LeakSanitizer does not take
  // for a pointer: the entry is the table's, freed by it (Erase, a replacement, Clear).
  __lsan_ignore_object(entry);
#endif
  std::memcpy(entry, buffer, head);
  if (!value.empty()) std::memcpy(entry + head, value.data(), value.size());

  if ((size_ + 1) * 5 > slots_.size() * 4) Grow();  // at most 80 % full
  const uint64_t hash = Hash(stored);
  const size_t i = Probe(stored, hash);
  if (slots_[i] != 0) {
    char* old = EntryOf(slots_[i]);
    entry_bytes_ -= malloc_usable_size(old);
    std::free(old);
  } else {
    ++size_;
  }
  slots_[i] = address | (uint64_t{TagOfHash(hash)} << kAddressBits);
  entry_bytes_ += malloc_usable_size(entry);
  return true;
}

bool BytesById::Erase(std::string_view id) {
  if (size_ == 0 || id.size() > kMaxIdSize) return false;
  char buffer[kMaxStoredId];
  const std::string_view stored(buffer, StoreId(id, buffer));
  const size_t i = Probe(stored, Hash(stored));
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
  entry_bytes_ -= malloc_usable_size(entry);
  std::free(entry);
  --size_;
  // Every entry after the hole up to the next empty slot moves back into it unless its
  // probe starts after the hole (cyclically), so that no probe meets an empty slot early.
  for (size_t j = Next(i);; j = Next(j)) {
    const Slot s = slots_[j];
    if (s == 0) break;
    const size_t home = Home(Hash(StoredIdOf(EntryOf(s))));
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
    size_t i = Home(Hash(StoredIdOf(EntryOf(s))));
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

#include "garde/domain/audit_journal.h"

#include <cstring>

#include "garde/base/encoding.h"

namespace garde {
namespace {

constexpr uint64_t kMagic = 0x47414A31;  // "GAJ1"
constexpr int64_t kHeader = 8;

int64_t Padded(int64_t n) { return (n + 7) & ~int64_t{7}; }

uint64_t LoadHeader(const char* at) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(at), __ATOMIC_ACQUIRE);
}

// The text length of a record header, or -1 when `header` is not one.
int64_t RecordLength(uint64_t header, int64_t room) {
  if ((header >> 32) != kMagic) return -1;
  const auto len = static_cast<int64_t>(header & 0xffffffffu);
  return kHeader + Padded(len) <= room ? len : -1;
}

}  // namespace

Result<std::unique_ptr<AuditJournal>> AuditJournal::Create(FileSystem& fs, const std::string& dir,
                                                           int64_t capacity, bool populate) {
  const std::string name = "audit-journal-" + RandomId("") + ".log";
  const std::string path = dir + "/" + name;
  auto region = fs.CreateRegion(path, Padded(capacity), populate);
  if (!region.ok()) return Unavailable("audit journal: " + region.status().message());
  return std::unique_ptr<AuditJournal>(new AuditJournal(fs, path, name, std::move(region).value()));
}

bool AuditJournal::Append(std::string_view text) {
  const int64_t size = kHeader + Padded(static_cast<int64_t>(text.size()));
  const int64_t at = reserved_.fetch_add(size, std::memory_order_relaxed);
  if (at + size > capacity_) return false;
  std::memcpy(base_ + at + kHeader, text.data(), text.size());
  __atomic_store_n(reinterpret_cast<uint64_t*>(base_ + at), (kMagic << 32) | text.size(),
                   __ATOMIC_RELEASE);
  return true;
}

int64_t AuditJournal::Read(int64_t from, const std::function<void(std::string_view)>& fn) const {
  int64_t at = Padded(from);
  while (at + kHeader <= capacity_) {
    const int64_t len = RecordLength(LoadHeader(base_ + at), capacity_ - at);
    if (len < 0) break;  // not written yet
    fn(std::string_view(base_ + at + kHeader, static_cast<size_t>(len)));
    at += kHeader + Padded(len);
  }
  return at;
}

bool AuditJournal::HasRecordAt(int64_t at) const {
  at = Padded(at);
  return at + kHeader <= capacity_ && RecordLength(LoadHeader(base_ + at), capacity_ - at) >= 0;
}

void AuditJournal::Remove() { fs_.Remove(path_).IgnoreError(); }

bool AuditJournal::IsJournalName(const std::string& n) {
  return n.rfind("audit-journal-", 0) == 0 && n.size() > 18 &&
         n.compare(n.size() - 4, 4, ".log") == 0;
}

Result<int64_t> ReadOrphanJournal(FileSystem& fs, const std::string& path, int64_t from,
                                  const std::function<void(std::string_view)>& fn) {
  GARDE_ASSIGN_OR_RETURN(auto read, fs.ReadUnlocked(path));
  const std::string& content = read;
  // Records a crash interrupted have no header: step over them, 8 bytes at a time, to the
  // next complete one.
  const auto size = static_cast<int64_t>(content.size());
  for (int64_t at = Padded(from); at + kHeader <= size;) {
    uint64_t header;
    std::memcpy(&header, content.data() + at, sizeof(header));
    const int64_t len = RecordLength(header, size - at);
    if (len < 0) {
      at += 8;
      continue;
    }
    fn(std::string_view(content.data() + at + kHeader, static_cast<size_t>(len)));
    at += kHeader + Padded(len);
  }
  return size;
}

}  // namespace garde

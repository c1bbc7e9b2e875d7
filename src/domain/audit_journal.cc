#include "garde/domain/audit_journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

#ifdef MADV_POPULATE_WRITE
constexpr int kPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kPopulateWrite = 23;  // Linux 5.14+
#endif

}  // namespace

Result<std::unique_ptr<AuditJournal>> AuditJournal::Create(const std::string& dir,
                                                           int64_t capacity, bool populate) {
  capacity = Padded(capacity);
  const std::string name = "audit-journal-" + RandomId("") + ".log";
  const std::string path = dir + "/" + name;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot create the audit journal in " + dir);
  auto fail = [&](const std::string& what) {
    ::close(fd);
    ::unlink(path.c_str());
    return Unavailable("audit journal: " + what);
  };
  // Held while this process lives: another process's recovery leaves it alone.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) return fail("cannot lock it");
  if (::posix_fallocate(fd, 0, capacity) != 0) return fail("no space for it");
  void* base = ::mmap(nullptr, static_cast<size_t>(capacity), PROT_READ | PROT_WRITE,
                      MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return fail("cannot map it");
  // Best effort: before Linux 5.14 the pages fault in as they are written.
  if (populate) ::madvise(base, static_cast<size_t>(capacity), kPopulateWrite);
  return std::unique_ptr<AuditJournal>(
      new AuditJournal(path, name, fd, static_cast<char*>(base), capacity));
}

AuditJournal::~AuditJournal() {
  ::munmap(base_, static_cast<size_t>(capacity_));
  ::close(fd_);
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

int64_t AuditJournal::Read(int64_t from,
                           const std::function<void(std::string_view)>& fn) const {
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

void AuditJournal::Remove() { ::unlink(path_.c_str()); }

bool AuditJournal::IsJournalName(const std::string& n) {
  return n.rfind("audit-journal-", 0) == 0 && n.size() > 18 &&
         n.compare(n.size() - 4, 4, ".log") == 0;
}

Result<int64_t> ReadOrphanJournal(const std::string& path, int64_t from,
                                  const std::function<void(std::string_view)>& fn) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("cannot open " + path);
  struct stat st {};
  // flock locks belong to the open file: this process's own journals are refused too.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0 || ::fstat(fd, &st) != 0) {
    ::close(fd);
    return Conflict("journal in use");
  }
  std::string content(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < content.size()) {
    const ssize_t n = ::read(fd, content.data() + got, content.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  content.resize(got);
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

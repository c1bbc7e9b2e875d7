// A read journal: the file where this process puts the audit entries of reads and refusals
// before they answer, until the importer moves them into the audit database.
//
//   auto j = AuditJournal::Create(dir, 32 << 20);
//   if (!j.value()->Append(text)) { /* full: rotate to a new journal */ }
//   int64_t end = j.value()->Read(from, [&](std::string_view text) { ... });
//
// The file is created at its full size (space allocated up front, so writing never meets a
// full disk) and memory-mapped shared: Append reserves its place with one atomic add and
// copies the record in, with no system call and no lock, so many threads append at once.
// What is copied in is in the kernel's page cache at once: a crash of the process loses
// nothing. Each record is an 8-byte header (magic and length) followed by the text, padded
// to 8 bytes; the header is stored last, so a record with a header is complete. The file is
// locked (flock) while its process lives.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "garde/base/status.h"

namespace garde {

class AuditJournal {
 public:
  // Creates "audit-journal-<random>.log" in `dir`. With `populate`, every page's write
  // fault is taken now (milliseconds for 8 MiB on a virtual machine) rather than one per
  // page by the appends; without, the journal is ready at once.
  static Result<std::unique_ptr<AuditJournal>> Create(const std::string& dir, int64_t capacity,
                                                      bool populate = true);
  ~AuditJournal();  // unmaps and closes; the file stays until Remove
  AuditJournal(const AuditJournal&) = delete;
  AuditJournal& operator=(const AuditJournal&) = delete;

  // Appends one record; false when it does not fit (the journal is full: every later call
  // fails too). Thread-safe.
  bool Append(std::string_view text);
  // Calls fn for each record from byte `from` up to the first one not complete yet (still
  // being copied, or none); returns the position after the last one read.
  int64_t Read(int64_t from, const std::function<void(std::string_view)>& fn) const;
  // True when a complete record starts at `at` (a position Read returned).
  bool HasRecordAt(int64_t at) const;
  // Deletes the file (call once every record is imported).
  void Remove();

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  static bool IsJournalName(const std::string& file_name);

 private:
  AuditJournal(std::string path, std::string name, int fd, char* base, int64_t capacity)
      : path_(std::move(path)), name_(std::move(name)), fd_(fd), base_(base),
        capacity_(capacity) {}

  std::string path_, name_;
  int fd_;
  char* base_;
  int64_t capacity_;
  std::atomic<int64_t> reserved_{0};
};

// Reads the journal file a dead process left at `path`: every complete record from `from`
// on, skipping records whose copy the crash interrupted. Fails when the file is locked (its
// process is alive). Returns the file's size.
Result<int64_t> ReadOrphanJournal(const std::string& path, int64_t from,
                                  const std::function<void(std::string_view)>& fn);

}  // namespace garde

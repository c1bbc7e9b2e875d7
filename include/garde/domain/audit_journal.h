// A read journal: the file where this process puts the audit entries of reads and refusals
// before they answer, until the importer moves them into the audit database.
//
//   auto j = AuditJournal::Create(PosixFileSystem(), dir, 32 << 20);
//   if (!j.value()->Append(text)) { /* full: rotate to a new journal */ }
//   int64_t end = j.value()->Read(from, [&](std::string_view text) { ... });
//
// The file is a FileSystem::Region: created at its full size, memory-mapped, locked while its
// process lives. Append reserves its place with one atomic add and copies the record in,
// with no system call and no lock, so many threads append at once; what is copied in is in
// the kernel's page cache at once, so a crash of the process loses nothing. Each record is an
// 8-byte header (magic and length) followed by the text, padded to 8 bytes; the header is
// stored last, so a record with a header is complete.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "garde/base/file_system.h"
#include "garde/base/status.h"

namespace garde {

class AuditJournal {
 public:
  // Creates "audit-journal-<random>.log" in `dir`. With `populate`, every page's write
  // fault is taken now (milliseconds for 8 MiB on a virtual machine) rather than one per
  // page by the appends; without, the journal is ready at once.
  static Result<std::unique_ptr<AuditJournal>> Create(FileSystem& fs, const std::string& dir,
                                                      int64_t capacity, bool populate = true);
  ~AuditJournal() = default;  // unmaps and unlocks; the file stays until Remove
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
  // Gives back the pages of a journal written to no more (full and retired): a backlog of
  // journals waiting for the importer then costs the page cache, not the process's memory.
  // Reading it afterwards reads them back from the file.
  void Evict() { region_->Evict(); }
  // Deletes the file (call once every record is imported).
  void Remove();

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  static bool IsJournalName(const std::string& file_name);

 private:
  AuditJournal(FileSystem& fs, std::string path, std::string name,
               std::unique_ptr<FileSystem::Region> region)
      : fs_(fs),
        path_(std::move(path)),
        name_(std::move(name)),
        region_(std::move(region)),
        base_(region_->data()),
        capacity_(region_->size()) {}

  FileSystem& fs_;
  std::string path_, name_;
  std::unique_ptr<FileSystem::Region> region_;
  char* base_;
  int64_t capacity_;
  std::atomic<int64_t> reserved_{0};
};

// Reads the journal file a dead process left at `path`: every complete record from `from`
// on, skipping records whose copy the crash interrupted. kConflict when the file is locked
// (its process is alive). Returns the file's size.
Result<int64_t> ReadOrphanJournal(FileSystem& fs, const std::string& path, int64_t from,
                                  const std::function<void(std::string_view)>& fn);

}  // namespace garde

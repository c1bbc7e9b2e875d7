// The files the domain keeps beside the databases (the tombstone log, the sealed audience
// snapshot, the audit journals) go through this interface, narrow enough for an in-memory one
// in unit tests, as leveldb's Env has memenv.
//
//   FileSystem& fs = PosixFileSystem();
//   auto f = fs.Open(path, FileSystem::Mode::kAppend);   // created 0600
//   f.value()->Append(line); f.value()->Sync();
//   Result<std::string> all = fs.ReadAll(path);            // kNotFound when absent
//   auto r = fs.CreateRegion(path, 8 << 20, true);  // mapped, locked: an audit journal
//   std::unique_ptr<FileSystem> mem = NewMemoryFileSystem();  // tests
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "garde/base/status.h"

namespace garde {

class FileSystem {
 public:
  class File {
   public:
    virtual ~File() = default;
    // Writes `data` at `offset` (the file grows as needed); not for files opened kAppend.
    virtual Status WriteAt(uint64_t offset, std::string_view data) = 0;
    // Writes `data` at the end; opened kAppend, at the end even while another process
    // appends to the same file.
    virtual Status Append(std::string_view data) = 0;
    // Exactly `n` bytes from `offset` into `out`; kDamaged when the file is shorter. Safe
    // from several threads at once.
    virtual Status ReadAt(uint64_t offset, size_t n, void* out) const = 0;
    // What was written reaches stable storage before this returns.
    virtual Status Sync() = 0;
    // Starts writing what was written out to the device and returns without waiting for it or
    // for the device's cache (Linux: sync_file_range): a later Sync then has less to write.
    // Vouches for nothing.
    virtual Status StartWriteback() { return Status::Ok(); }
  };
  // A file mapped into memory for writing, created at its full size with the space
  // allocated (writing it never meets a full disk) and locked against other processes while
  // the region lives. What is written is in the kernel's page cache at once: a crash of the
  // process loses nothing. Unmapped on destruction; the file stays until Remove.
  class Region {
   public:
    virtual ~Region() = default;
    virtual char* data() = 0;
    virtual int64_t size() const = 0;
    // Gives back this process's pages of the region: the bytes stay in the file (and the
    // kernel's page cache), and touching the region again reads them back. For a region
    // written to no more whose reader is behind: its pages are no longer the process's memory.
    virtual void Evict() {}
  };
  enum class Mode {
    kRead,    // an existing file (kNotFound when absent)
    kCreate,  // created empty, or emptied
    kAppend,  // created when absent, kept otherwise
  };

  virtual ~FileSystem() = default;
  virtual Result<std::unique_ptr<File>> Open(const std::string& path, Mode mode) = 0;
  // The whole file; kNotFound when absent.
  virtual Result<std::string> ReadAll(const std::string& path) = 0;
  // Replaces `to` with `from` in one step.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Ok when the file is already absent.
  virtual Status Remove(const std::string& path) = 0;
  // Creates `path` (which must not exist) as a region of `size` bytes. With `populate`,
  // every page's write fault is taken now rather than by the first write to it.
  virtual Result<std::unique_ptr<Region>> CreateRegion(const std::string& path, int64_t size,
                                                       bool populate) = 0;
  // The whole file, unless a region of it is alive in some process, this one included
  // (kConflict); kNotFound when absent.
  virtual Result<std::string> ReadUnlocked(const std::string& path) = 0;
  // The names of the files in `dir`, in no order.
  virtual Result<std::vector<std::string>> List(const std::string& dir) = 0;
};

// The machine's files: created with mode 0600, synced with fdatasync.
FileSystem& PosixFileSystem();

// fsyncs the directory `dir` ("" is the current one): the names created, renamed or removed
// in it survive a power failure.
Status SyncDirectory(const std::string& dir);
// The same for the directory holding the file `path`.
Status SyncDirectoryOf(const std::string& path);

// Files in memory, for unit tests: what Sync promises holds while the object lives.
std::unique_ptr<FileSystem> NewMemoryFileSystem();

}  // namespace garde

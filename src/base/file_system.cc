#include "garde/base/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>

#include "garde/base/mutex.h"

namespace garde {
namespace {

Status Failed(const std::string& what, const std::string& path) {
  return Unavailable("cannot " + what + " " + path + ": " + std::strerror(errno));
}

// Writes all of `data`: at `at`, or (nullopt) at the end of a file opened O_APPEND.
Status WriteFully(int fd, std::string_view data, std::optional<off_t> at, const std::string& path) {
  while (!data.empty()) {
    const ssize_t w =
        at ? ::pwrite(fd, data.data(), data.size(), *at) : ::write(fd, data.data(), data.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Failed("write", path);
    data.remove_prefix(static_cast<size_t>(w));
    if (at) *at += w;
  }
  return Status::Ok();
}

class PosixFile final : public FileSystem::File {
 public:
  PosixFile(int fd, std::string path, bool appends)
      : fd_(fd), path_(std::move(path)), appends_(appends) {}
  ~PosixFile() override { ::close(fd_); }
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  Status WriteAt(uint64_t offset, std::string_view data) override {
    return WriteFully(fd_, data, static_cast<off_t>(offset), path_);
  }

  Status Append(std::string_view data) override {
    // O_APPEND: each write lands at the end even with another process appending too.
    if (appends_) return WriteFully(fd_, data, std::nullopt, path_);
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return Failed("read the size of", path_);
    return WriteFully(fd_, data, st.st_size, path_);
  }

  Status ReadAt(uint64_t offset, size_t n, void* out) const override {
    char* p = static_cast<char*>(out);
    auto at = static_cast<off_t>(offset);
    while (n > 0) {
      const ssize_t r = ::pread(fd_, p, n, at);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Failed("read", path_);
      if (r == 0) return Damaged(path_ + " is shorter than expected");
      p += r;
      n -= static_cast<size_t>(r);
      at += r;
    }
    return Status::Ok();
  }

  // fdatasync: the bytes and the size a read needs, not the times (one journal commit less).
  Status Sync() override { return ::fdatasync(fd_) == 0 ? Status::Ok() : Failed("sync", path_); }
  Status StartWriteback() override {
    if (::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE) == 0) return Status::Ok();
    // A file system without it (EINVAL, ENOSYS, ESPIPE) leaves the write-out to Sync; an
    // error of the write itself (EIO, ENOSPC) is the file's.
    if (errno == EINVAL || errno == ENOSYS || errno == ESPIPE) return Status::Ok();
    return Failed("write back", path_);
  }

  // Everything from the current position to the end.
  Result<std::string> ReadToEnd() {
    // Read in place into room for the whole file (a file that grows meanwhile gets more):
    // each page is touched once, where copying out of a buffer into a doubling string
    // touched three times as many (tombstones.log at a start: 20 MB took 170 ms, now 90).
    struct stat st {};
    const off_t at = ::lseek(fd_, 0, SEEK_CUR);
    std::string all;
    size_t used = 0;
    all.resize(::fstat(fd_, &st) == 0 && at >= 0 && st.st_size > at
                   ? static_cast<size_t>(st.st_size - at) + 1
                   : 65536);
    for (;;) {
      if (used == all.size()) all.resize(all.size() * 2);
      const ssize_t r = ::read(fd_, all.data() + used, all.size() - used);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Failed("read", path_);
      if (r == 0) break;
      used += static_cast<size_t>(r);
    }
    all.resize(used);
    return all;
  }

  int fd() const { return fd_; }

 private:
  const int fd_;
  const std::string path_;
  const bool appends_;  // opened O_APPEND (Mode::kAppend)
};

#ifdef MADV_POPULATE_WRITE
constexpr int kPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kPopulateWrite = 23;  // Linux 5.14+
#endif

class PosixRegion final : public FileSystem::Region {
 public:
  PosixRegion(int fd, char* base, int64_t size) : fd_(fd), base_(base), size_(size) {}
  ~PosixRegion() override {
    ::munmap(base_, static_cast<size_t>(size_));
    ::close(fd_);  // and with it the lock
  }
  PosixRegion(const PosixRegion&) = delete;
  PosixRegion& operator=(const PosixRegion&) = delete;
  char* data() override { return base_; }
  int64_t size() const override { return size_; }
  // A shared mapping of a file: the pages are the page cache's, and dropping them from this
  // process loses nothing (a dirty page stays dirty there, and is written back).
  void Evict() override { ::madvise(base_, static_cast<size_t>(size_), MADV_DONTNEED); }

 private:
  const int fd_;
  char* const base_;
  const int64_t size_;
};

class Posix final : public FileSystem {
 public:
  Result<std::unique_ptr<File>> Open(const std::string& path, Mode mode) override {
    GARDE_ASSIGN_OR_RETURN(auto file, OpenPosix(path, mode));
    return std::unique_ptr<File>(std::move(file));
  }

  Result<std::string> ReadAll(const std::string& path) override {
    GARDE_ASSIGN_OR_RETURN(auto file, OpenPosix(path, Mode::kRead));
    return file->ReadToEnd();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    return ::rename(from.c_str(), to.c_str()) == 0 ? Status::Ok() : Failed("rename", from);
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) == 0 || errno == ENOENT) return Status::Ok();
    return Failed("remove", path);
  }

  Result<std::unique_ptr<Region>> CreateRegion(const std::string& path, int64_t size,
                                               bool populate) override {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return Failed("create", path);
    auto fail = [&](const std::string& what) {
      Status s = Failed(what, path);
      ::close(fd);
      ::unlink(path.c_str());
      return s;
    };
    // flock locks belong to the open file: held until the region is destroyed.
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) return fail("lock");
    if (const int e = ::posix_fallocate(fd, 0, size); e != 0) {
      errno = e;
      return fail("allocate space for");
    }
    void* base =
        ::mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return fail("map");
    // Best effort: before Linux 5.14 the pages fault in as they are written.
    if (populate) ::madvise(base, static_cast<size_t>(size), kPopulateWrite);
    return std::unique_ptr<Region>(
        std::make_unique<PosixRegion>(fd, static_cast<char*>(base), size));
  }

  Result<std::string> ReadUnlocked(const std::string& path) override {
    auto file = OpenPosix(path, Mode::kRead);
    if (!file.ok()) return file.status();
    // Refused while any open file holds the lock, this process's own regions included.
    if (::flock(file.value()->fd(), LOCK_EX | LOCK_NB) != 0) return Conflict(path + " in use");
    return file.value()->ReadToEnd();
  }

  Result<std::vector<std::string>> List(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return Failed("list", dir);
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(d);
    return names;
  }

 private:
  static Result<std::unique_ptr<PosixFile>> OpenPosix(const std::string& path, Mode mode) {
    int flags = O_CLOEXEC;
    if (mode == Mode::kRead) flags |= O_RDONLY;
    if (mode == Mode::kCreate) flags |= O_RDWR | O_CREAT | O_TRUNC;
    if (mode == Mode::kAppend) flags |= O_RDWR | O_CREAT | O_APPEND;
    const int fd = ::open(path.c_str(), flags, 0600);
    if (fd < 0) {
      if (errno == ENOENT && mode == Mode::kRead) return NotFound("no file " + path);
      return Failed("open", path);
    }
    return std::make_unique<PosixFile>(fd, path, mode == Mode::kAppend);
  }
};

// One file's bytes, shared by the handles opened on it and by the name that holds it.
class MemoryBytes {
 public:
  void WriteAt(uint64_t offset, std::string_view data) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    if (data_.size() < offset + data.size()) data_.resize(offset + data.size());
    data_.replace(offset, data.size(), data);
  }
  void Append(std::string_view data) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    data_.append(data);
  }
  bool ReadAt(uint64_t offset, size_t n, void* out) const EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    if (offset > data_.size() || data_.size() - offset < n) return false;
    std::memcpy(out, data_.data() + offset, n);
    return true;
  }
  std::string All() const EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    return data_;
  }
  // A region of the file is alive (the lock a mapped POSIX file holds).
  void SetRegion(bool alive) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    region_ = alive;
  }
  bool HasRegion() const EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    return region_;
  }

 private:
  mutable Mutex mu_;
  std::string data_ GUARDED_BY(mu_);
  bool region_ GUARDED_BY(mu_) = false;
};

// Its own buffer, written into the file's bytes when it ends (as the page cache keeps what a
// process wrote to a mapping after the process is gone).
class MemoryRegion final : public FileSystem::Region {
 public:
  MemoryRegion(std::shared_ptr<MemoryBytes> bytes, int64_t size)
      : bytes_(std::move(bytes)), buffer_(static_cast<size_t>(size), '\0') {
    bytes_->SetRegion(true);
  }
  ~MemoryRegion() override {
    bytes_->WriteAt(0, buffer_);
    bytes_->SetRegion(false);
  }
  MemoryRegion(const MemoryRegion&) = delete;
  MemoryRegion& operator=(const MemoryRegion&) = delete;
  char* data() override { return buffer_.data(); }
  int64_t size() const override { return static_cast<int64_t>(buffer_.size()); }

 private:
  std::shared_ptr<MemoryBytes> bytes_;
  std::string buffer_;
};

class MemoryFile final : public FileSystem::File {
 public:
  explicit MemoryFile(std::shared_ptr<MemoryBytes> bytes) : bytes_(std::move(bytes)) {}

  Status WriteAt(uint64_t offset, std::string_view data) override {
    bytes_->WriteAt(offset, data);
    return Status::Ok();
  }
  Status Append(std::string_view data) override {
    bytes_->Append(data);
    return Status::Ok();
  }
  Status ReadAt(uint64_t offset, size_t n, void* out) const override {
    return bytes_->ReadAt(offset, n, out) ? Status::Ok() : Damaged("the file is shorter");
  }
  Status Sync() override { return Status::Ok(); }

 private:
  std::shared_ptr<MemoryBytes> bytes_;
};

class Memory final : public FileSystem {
 public:
  Result<std::unique_ptr<File>> Open(const std::string& path, Mode mode) override {
    MutexLock lock(&mu_);
    auto it = files_.find(path);
    if (it == files_.end()) {
      if (mode == Mode::kRead) return NotFound("no file " + path);
      it = files_.emplace(path, std::make_shared<MemoryBytes>()).first;
    } else if (mode == Mode::kCreate) {
      it->second = std::make_shared<MemoryBytes>();  // handles still open keep the old bytes
    }
    return std::unique_ptr<File>(std::make_unique<MemoryFile>(it->second));
  }
  Result<std::string> ReadAll(const std::string& path) override {
    GARDE_ASSIGN_OR_RETURN(auto bytes, Bytes(path));
    return bytes->All();
  }
  Status Rename(const std::string& from, const std::string& to) override {
    MutexLock lock(&mu_);
    auto it = files_.find(from);
    if (it == files_.end()) return Unavailable("cannot rename " + from + ": no such file");
    files_[to] = it->second;
    files_.erase(from);
    return Status::Ok();
  }
  Status Remove(const std::string& path) override {
    MutexLock lock(&mu_);
    files_.erase(path);
    return Status::Ok();
  }
  Result<std::unique_ptr<Region>> CreateRegion(const std::string& path, int64_t size,
                                               bool) override {
    MutexLock lock(&mu_);
    if (files_.count(path) != 0) return Unavailable("cannot create " + path + ": it exists");
    auto bytes = std::make_shared<MemoryBytes>();
    bytes->WriteAt(0, std::string(static_cast<size_t>(size), '\0'));
    files_.emplace(path, bytes);
    return std::unique_ptr<Region>(std::make_unique<MemoryRegion>(std::move(bytes), size));
  }
  Result<std::string> ReadUnlocked(const std::string& path) override {
    GARDE_ASSIGN_OR_RETURN(auto bytes, Bytes(path));
    if (bytes->HasRegion()) return Conflict(path + " in use");
    return bytes->All();
  }
  Result<std::vector<std::string>> List(const std::string& dir) override {
    MutexLock lock(&mu_);
    const std::string prefix = dir + "/";
    std::vector<std::string> names;
    for (auto it = files_.lower_bound(prefix);
         it != files_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      const std::string name = it->first.substr(prefix.size());
      if (name.find('/') == std::string::npos) names.push_back(name);
    }
    return names;
  }

 private:
  Result<std::shared_ptr<MemoryBytes>> Bytes(const std::string& path) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return NotFound("no file " + path);
    return it->second;
  }

  Mutex mu_;
  std::map<std::string, std::shared_ptr<MemoryBytes>> files_ GUARDED_BY(mu_);
};

}  // namespace

FileSystem& PosixFileSystem() {
  static Posix fs;
  return fs;
}

Status SyncDirectory(const std::string& dir) {
  const std::string name = dir.empty() ? "." : dir;
  const int fd = ::open(name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Failed("open the directory", name);
  const bool synced = ::fsync(fd) == 0;
  Status s = synced ? Status::Ok() : Failed("sync the directory", name);
  ::close(fd);
  return s;
}

Status SyncDirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return SyncDirectory(slash == std::string::npos ? "" : path.substr(0, slash + 1));
}

std::unique_ptr<FileSystem> NewMemoryFileSystem() { return std::make_unique<Memory>(); }

}  // namespace garde

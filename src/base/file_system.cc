#include "garde/base/file_system.h"

#include <fcntl.h>
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
Status WriteFully(int fd, std::string_view data, std::optional<off_t> at,
                  const std::string& path) {
  while (!data.empty()) {
    const ssize_t w = at ? ::pwrite(fd, data.data(), data.size(), *at)
                         : ::write(fd, data.data(), data.size());
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

  Status Sync() override { return ::fsync(fd_) == 0 ? Status::Ok() : Failed("sync", path_); }

  // Everything from the current position to the end.
  Result<std::string> ReadToEnd() {
    std::string all;
    char buf[65536];
    for (;;) {
      const ssize_t r = ::read(fd_, buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Failed("read", path_);
      if (r == 0) return all;
      all.append(buf, static_cast<size_t>(r));
    }
  }

 private:
  const int fd_;
  const std::string path_;
  const bool appends_;  // opened O_APPEND (Mode::kAppend)
};

class Posix final : public FileSystem {
 public:
  Result<std::unique_ptr<File>> Open(const std::string& path, Mode mode) override {
    auto file = OpenPosix(path, mode);
    if (!file.ok()) return file.status();
    return std::unique_ptr<File>(std::move(file).value());
  }

  Result<std::string> ReadAll(const std::string& path) override {
    auto file = OpenPosix(path, Mode::kRead);
    if (!file.ok()) return file.status();
    return file.value()->ReadToEnd();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    return ::rename(from.c_str(), to.c_str()) == 0 ? Status::Ok() : Failed("rename", from);
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) == 0 || errno == ENOENT) return Status::Ok();
    return Failed("remove", path);
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

 private:
  mutable Mutex mu_;
  std::string data_ GUARDED_BY(mu_);
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
    std::shared_ptr<MemoryBytes> bytes;
    {
      MutexLock lock(&mu_);
      auto it = files_.find(path);
      if (it == files_.end()) return NotFound("no file " + path);
      bytes = it->second;
    }
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

 private:
  Mutex mu_;
  std::map<std::string, std::shared_ptr<MemoryBytes>> files_ GUARDED_BY(mu_);
};

}  // namespace

FileSystem& PosixFileSystem() {
  static Posix fs;
  return fs;
}

std::unique_ptr<FileSystem> NewMemoryFileSystem() { return std::make_unique<Memory>(); }

}  // namespace garde

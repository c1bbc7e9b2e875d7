// A FileSystem for tests: the machine's files, with the fsync and the write-back of chosen files
// held (fsync only), failed or counted (what a test needs to see who waits for a sync, and what a
// failed one does), and an append to them lost (a crash before the process wrote it).
//
//   GatedFileSystem fs("-wal");
//   fs.Hold();  ...  fs.syncs_begun() ...  fs.Let();
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "garde/base/file_system.h"

namespace garde {

// The machine's files, except that the fsync of those whose name ends in `suffix` can be held,
// made to fail, and counted.
class GatedFileSystem final : public FileSystem {
 public:
  explicit GatedFileSystem(std::string suffix) : suffix_(std::move(suffix)) {}
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void Let() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }
  void FailNext() { fail_next_ = true; }
  // The next append writes nothing and fails.
  void LoseNextAppend() { lose_append_ = true; }
  int syncs_begun() const { return syncs_begun_.load(); }
  int writebacks_begun() const { return writebacks_begun_.load(); }

  Result<std::unique_ptr<File>> Open(const std::string& path, Mode mode) override {
    auto file = PosixFileSystem().Open(path, mode);
    if (!file.ok() || path.size() < suffix_.size() ||
        path.compare(path.size() - suffix_.size(), suffix_.size(), suffix_) != 0) {
      return file;
    }
    return std::unique_ptr<File>(new GatedFile(*this, std::move(file).value()));
  }
  Result<std::string> ReadAll(const std::string& p) override {
    return PosixFileSystem().ReadAll(p);
  }
  Status Rename(const std::string& from, const std::string& to) override {
    return PosixFileSystem().Rename(from, to);
  }
  Status Remove(const std::string& p) override { return PosixFileSystem().Remove(p); }
  Result<std::unique_ptr<Region>> CreateRegion(const std::string& p, int64_t size,
                                               bool populate) override {
    return PosixFileSystem().CreateRegion(p, size, populate);
  }
  Result<std::string> ReadUnlocked(const std::string& p) override {
    return PosixFileSystem().ReadUnlocked(p);
  }
  Result<std::vector<std::string>> List(const std::string& dir) override {
    return PosixFileSystem().List(dir);
  }

 private:
  class GatedFile final : public File {
   public:
    GatedFile(GatedFileSystem& fs, std::unique_ptr<File> file) : fs_(fs), file_(std::move(file)) {}
    Status WriteAt(uint64_t offset, std::string_view data) override {
      return file_->WriteAt(offset, data);
    }
    Status Append(std::string_view data) override {
      if (fs_.lose_append_.exchange(false)) return Unavailable("input/output error (injected)");
      return file_->Append(data);
    }
    Status ReadAt(uint64_t offset, size_t n, void* out) const override {
      return file_->ReadAt(offset, n, out);
    }
    Status Sync() override {
      fs_.syncs_begun_.fetch_add(1);
      {
        std::unique_lock<std::mutex> lock(fs_.mu_);
        fs_.cv_.wait(lock, [&] { return !fs_.held_; });
      }
      if (fs_.fail_next_.exchange(false)) return Unavailable("input/output error (injected)");
      return file_->Sync();
    }
    Status StartWriteback() override {
      fs_.writebacks_begun_.fetch_add(1);
      if (fs_.fail_next_.exchange(false)) return Unavailable("input/output error (injected)");
      return file_->StartWriteback();
    }

   private:
    GatedFileSystem& fs_;
    std::unique_ptr<File> file_;
  };

  const std::string suffix_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  std::atomic<bool> fail_next_{false};
  std::atomic<bool> lose_append_{false};
  std::atomic<int> syncs_begun_{0};
  std::atomic<int> writebacks_begun_{0};
};

}  // namespace garde

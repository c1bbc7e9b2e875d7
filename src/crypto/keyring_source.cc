#include "garde/crypto/keyring_source.h"

#include <sys/stat.h>

namespace garde {

Status KeyringSource::Load() {
  struct stat st;
  const bool have_stat = ::stat(path_.c_str(), &st) == 0;
  GARDE_ASSIGN_OR_RETURN(auto ring, Keyring::Load(path_));
  {
    std::lock_guard<std::mutex> lock(mu_);
    ring_ = ring;
    if (have_stat) {
      mtime_ = st.st_mtim;
      size_ = static_cast<long>(st.st_size);
    }
  }
  if (on_load_) on_load_(*ring);
  return Status::Ok();
}

std::shared_ptr<const Keyring> KeyringSource::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ring_;
}

bool KeyringSource::RefreshIfChanged() {
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (st.st_mtim.tv_sec == mtime_.tv_sec && st.st_mtim.tv_nsec == mtime_.tv_nsec &&
        static_cast<long>(st.st_size) == size_) {
      return false;
    }
  }
  // A failed reload (e.g. permissions loosened) keeps the keys in memory.
  return Load().ok();
}

}  // namespace garde

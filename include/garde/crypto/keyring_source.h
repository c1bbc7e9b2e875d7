// The live keyring of a running process: loaded from its file, reloaded when the file
// changes (after `garde keys rotate`), shared by readers without locks on the hot path.
//
//   KeyringSource keys(path);
//   GARDE_RETURN_IF_ERROR(keys.Load());
//   std::shared_ptr<const Keyring> ring = keys.Current();
//   keys.RefreshIfChanged();   // from a watcher thread, or after an unknown key version
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "garde/base/status.h"
#include "garde/crypto/keyring.h"

namespace garde {

class KeyringSource {
 public:
  explicit KeyringSource(std::string path) : path_(std::move(path)) {}

  Status Load();
  std::shared_ptr<const Keyring> Current() const;
  // Reloads when the file's modification time or size changed; true when reloaded.
  bool RefreshIfChanged();
  // Called with every keyring loaded from now on, on the loading thread (set it before
  // other threads use this source).
  void OnLoad(std::function<void(const Keyring&)> fn) { on_load_ = std::move(fn); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  mutable std::mutex mu_;
  std::shared_ptr<const Keyring> ring_;
  struct timespec mtime_ {};
  long size_ = -1;
  std::function<void(const Keyring&)> on_load_;
};

}  // namespace garde

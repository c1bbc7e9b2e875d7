// Root-key rotation: re-wraps subjects' data keys under the current root version. No field
// is re-encrypted. Each batch is its own transaction and each re-wrap a compare-and-set, so
// the sweep can be stopped and resumed, and runs while the service reads and writes.
//
//   KeyRotation rotation(store, keys);
//   Result<int64_t> n = rotation.RewrapAll(500, [](int64_t done) { ... });
//   Result<std::map<uint32_t, int64_t>> use = rotation.Usage();   // version -> subjects
#pragma once

#include <cstdint>
#include <functional>
#include <map>

#include "garde/base/status.h"
#include "garde/crypto/keyring_source.h"
#include "garde/store/store.h"

namespace garde {

class KeyRotation {
 public:
  KeyRotation(Store& store, KeyringSource& keys) : store_(store), keys_(keys) {}

  // Re-wraps every DEK not under the current version; returns how many were re-wrapped.
  Result<int64_t> RewrapAll(size_t batch, const std::function<void(int64_t)>& progress);
  // Number of subjects per root-key version.
  Result<std::map<uint32_t, int64_t>> Usage();

 private:
  Store& store_;
  KeyringSource& keys_;
};

}  // namespace garde

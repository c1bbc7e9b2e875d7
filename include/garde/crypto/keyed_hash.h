// Keyed BLAKE2b digests: blind indexes for equality look-ups, API-key hashes, suppression
// hashes. Plaintext never needs to be stored to find a record again.
//
//   BlindIndex index(ring.Derive(KeyContext::kBlindIndex));
//   Bytes d = index.Digest("email", "ana@example.org", 16);   // per-field key, 16 bytes
//   KeyedHash api(ring.Derive(KeyContext::kApiKeyHash));
//   Bytes h = api.Digest(token);                                // 32 bytes
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "garde/base/encoding.h"
#include "garde/crypto/secret.h"

namespace garde {

class KeyedHash {
 public:
  explicit KeyedHash(SecretKey key) : key_(std::move(key)) {}
  // BLAKE2b keyed with this hasher's key; out_len from 16 to 64.
  Bytes Digest(std::string_view message, size_t out_len = 32) const;

 private:
  SecretKey key_;
};

class BlindIndex {
 public:
  explicit BlindIndex(SecretKey master) : master_(std::move(master)) {}
  // Digest of a normalised value under the field's own key, truncated to `bytes` (4..32).
  Bytes Digest(std::string_view field, std::string_view normalised, size_t bytes) const;

 private:
  const SecretKey& FieldKey(std::string_view field) const;
  SecretKey master_;
  mutable std::mutex mu_;
  mutable std::map<std::string, SecretKey, std::less<>> field_keys_;
};

}  // namespace garde

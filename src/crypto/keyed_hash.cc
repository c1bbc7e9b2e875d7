#include "garde/crypto/keyed_hash.h"

#include <sodium.h>

#include <algorithm>

namespace garde {

Bytes KeyedHash::Digest(std::string_view message, size_t out_len) const {
  Bytes out(
      std::clamp<size_t>(out_len, crypto_generichash_BYTES_MIN, crypto_generichash_BYTES_MAX));
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const uint8_t*>(message.data()),
                     message.size(), key_.data(), kKeyBytes);
  return out;
}

const SecretKey& BlindIndex::FieldKey(std::string_view field) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = field_keys_.find(field);
  if (it != field_keys_.end()) return it->second;
  // Field key = BLAKE2b(master, "garde.blind-index.v1\0" || field).
  std::string label = "garde.blind-index.v1";
  label += '\0';
  label += field;
  ScopedKey k;
  crypto_generichash(k.data(), kKeyBytes, reinterpret_cast<const uint8_t*>(label.data()),
                     label.size(), master_.data(), kKeyBytes);
  return field_keys_.emplace(std::string(field), SecretKey::FromBytes(k.data())).first->second;
}

Bytes BlindIndex::Digest(std::string_view field, std::string_view normalised, size_t bytes) const {
  const SecretKey& key = FieldKey(field);
  uint8_t full[crypto_generichash_BYTES];
  crypto_generichash(full, sizeof full, reinterpret_cast<const uint8_t*>(normalised.data()),
                     normalised.size(), key.data(), kKeyBytes);
  const size_t n = std::clamp<size_t>(bytes, 4, sizeof full);
  Bytes out(full, full + n);
  sodium_memzero(full, sizeof full);
  return out;
}

}  // namespace garde

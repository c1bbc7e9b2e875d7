// Root keys held in a PKCS#11 token (an HSM; SoftHSM2 in tests): AES-256 keys generated on the
// token as sensitive and not extractable, which seal and open small secrets (subjects' data
// keys, the master key) with AES-GCM inside the token. Only a key's label leaves it.
//
//   auto token = Pkcs11Token::Open({"softhsm2", "garde"}, pin);   // p11-kit name or a path
//   GARDE_RETURN_IF_ERROR(token.value()->Generate("garde-root-2"));
//   Result<Bytes> box = token.value()->Seal("garde-root-2", aad, secret);   // iv | ct | tag
//   Status s = token.value()->Open("garde-root-2", aad, box, out, 32);
//
// A token that stops answering (a network HSM gone, a p11-kit server stopped) turns every call
// into kUnavailable; the next call after a second tries to reconnect, so service returns by
// itself. Open() keeps opened data keys in a bounded, time-limited cache in secret memory,
// wiped whenever the token is found gone.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "garde/base/encoding.h"
#include "garde/base/status.h"
#include "garde/crypto/secret.h"

namespace garde {

struct Pkcs11Settings {
  std::string module;  // a p11-kit module name ("softhsm2"), or a module's file path
  std::string token;   // the token's label
  size_t cache_entries = 65536;
  std::chrono::seconds cache_ttl{300};
};

class Pkcs11Token {
 public:
  // Loads the module, finds the token by label, logs in with the user PIN.
  static Result<std::shared_ptr<Pkcs11Token>> Connect(const Pkcs11Settings& settings,
                                                      std::string_view pin);
  ~Pkcs11Token();
  Pkcs11Token(const Pkcs11Token&) = delete;
  Pkcs11Token& operator=(const Pkcs11Token&) = delete;

  // Generates an AES-256 key on the token under `label` (kConflict if one exists).
  Status Generate(const std::string& label);
  // Destroys the key (nothing to do if there is none).
  Status Destroy(const std::string& label);

  // AES-GCM inside the token, under a random 96-bit IV: iv (12) | ciphertext | tag (16).
  Result<Bytes> Seal(const std::string& label, std::string_view aad,
                     std::span<const uint8_t> plain);
  // Opens a box of exactly `out_len` secret bytes; kDamaged when it fails authentication,
  // kUnavailable when the token is gone. Served from the cache when it was opened recently.
  Status Open(const std::string& label, std::string_view aad, std::span<const uint8_t> box,
              uint8_t* out, size_t out_len);

  // Asks the token now (at most once a second) whether it still holds the key `label`;
  // kUnavailable when it does not answer or lost the key (the cache is then wiped).
  Status Probe(const std::string& label);
  const Pkcs11Settings& settings() const { return settings_; }

 private:
  struct Impl;
  explicit Pkcs11Token(Pkcs11Settings settings);
  Pkcs11Settings settings_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace garde

// Signed tree heads in the C2SP tlog-checkpoint / signed-note format, with Ed25519.
//
//   CheckpointSigner signer(ring.Derive(KeyContext::kSigning), "garde.local/audit");
//   std::string note = signer.Sign({size, root, time});
//   Result<SignedHead> head = ParseCheckpoint(note, signer.public_key(), signer.origin());
//
// Note layout (each line ends in \n):
//   <origin>
//   <tree size, decimal>
//   <root hash, base64>
//   time <RFC 3339 UTC>
//   actors <base64 SHA-256 of the log's entry count per actor at this size>  (optional)
//   <empty line>
//   — <origin> <base64(key id (4 bytes) ‖ Ed25519 signature (64 bytes))>
// The signature covers every line before the empty one, newlines included. The actors line
// (AuditLog::Checkpoint) lets a scope by actor be shown complete without rereading the log.
// The key id is the first four bytes of SHA-256(origin ‖ "\n" ‖ 0x01 ‖ public key).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "garde/base/status.h"
#include "garde/crypto/merkle.h"
#include "garde/crypto/secret.h"

namespace garde {

using PublicKey = std::array<uint8_t, 32>;

struct SignedHead {
  uint64_t size = 0;
  Hash root{};
  int64_t time = 0;
  std::optional<Hash> actors{};  // digest of the actor counts (docs/audit.md); absent on old heads
};

class CheckpointSigner {
 public:
  // seed: 32 bytes from the keyring (context "gdsignkp"). An empty origin derives one from the
  // public key ("garde/<first 8 hex of its key id>").
  CheckpointSigner(const SecretKey& seed, std::string origin);

  std::string Sign(const SignedHead& head) const;
  // Signs arbitrary bytes (receipts use the same key).
  std::array<uint8_t, 64> SignBytes(std::string_view message) const;
  const PublicKey& public_key() const { return public_key_; }
  const std::string& origin() const { return origin_; }
  // The 4-byte key id, hex.
  std::string key_id_hex() const;
  // "<origin>+<key id hex>+<base64(0x01 ‖ public key)>" (signed-note verifier key).
  std::string verifier_key() const;

 private:
  // libsodium's signing key (the seed, then the public key), expanded once: deriving it again
  // for each signature cost as much as the signature itself (a receipt per consent event).
  SecretBuffer secret_key_;
  PublicKey public_key_{};
  std::string origin_;
};

std::array<uint8_t, 4> CheckpointKeyId(const std::string& origin, const PublicKey& key);
// Parses a checkpoint note and checks its signature by `key` under `origin`.
Result<SignedHead> ParseCheckpoint(const std::string& note, const PublicKey& key,
                                   const std::string& origin);

}  // namespace garde

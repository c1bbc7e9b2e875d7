// Envelope encryption: a subject's data key (DEK) wrapped by a root-key version, and each field
// value sealed under the DEK with XChaCha20-Poly1305 (IETF).
//
//   ScopedKey dek; dek.Randomize();
//   Bytes wrapped = WrapDataKey(ring, version, subject_id, dek).value();
//   Bytes box = SealField(dek, {subject_id, "email", 1}, plaintext);
//   Result<std::string> back = OpenField(dek, {subject_id, "email", 1}, box);
//
// Layout of a sealed value: 1 format byte (0x01) | 24-byte random nonce | ciphertext+tag.
// The associated data binds the box to format, subject, field and DEK version, so a box
// copied to another subject or field fails authentication.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "garde/base/encoding.h"
#include "garde/base/status.h"
#include "garde/crypto/keyring.h"
#include "garde/crypto/secret.h"

namespace garde {

struct FieldBinding {
  std::string_view subject_id;
  std::string_view field;
  uint32_t dek_version = 1;
};

Bytes SealField(const ScopedKey& dek, const FieldBinding& binding, std::string_view plaintext);
// Fails with kDamaged when the box was altered, moved or sealed under another key.
Result<std::string> OpenField(const ScopedKey& dek, const FieldBinding& binding,
                              std::span<const uint8_t> box);
// As OpenField, into *out, whose memory is reused: no allocation once it is large enough.
Status OpenFieldInto(const ScopedKey& dek, const FieldBinding& binding,
                     std::span<const uint8_t> box, std::string* out);

// Wraps a DEK under the wrapping key derived from root `version`.
Result<Bytes> WrapDataKey(const Keyring& ring, uint32_t version, std::string_view subject_id,
                          const ScopedKey& dek);
// Unwraps into `dek`; kUnavailable when the version is unknown or retired, kDamaged on a
// failed authentication.
Status UnwrapDataKey(const Keyring& ring, uint32_t version, std::string_view subject_id,
                     const Bytes& wrapped, ScopedKey* dek);

}  // namespace garde

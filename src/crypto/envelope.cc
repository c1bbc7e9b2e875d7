#include "garde/crypto/envelope.h"

#include <sodium.h>

#include <cstring>

namespace garde {
namespace {

constexpr uint8_t kFieldFormat = 0x01;
constexpr uint8_t kWrapFormat = 0x01;
constexpr uint8_t kTokenWrapFormat = 0x02;  // AES-256-GCM inside a PKCS#11 token
constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;

std::string FieldAd(const FieldBinding& b) {
  std::string ad = "garde.field.v1";
  ad += '\0';
  ad += b.subject_id;
  ad += '\0';
  ad += b.field;
  ad += '\0';
  ad += std::to_string(b.dek_version);
  return ad;
}

std::string WrapAd(std::string_view subject_id, uint32_t version) {
  std::string ad = "garde.dek.v1";
  ad += '\0';
  ad += subject_id;
  ad += '\0';
  ad += std::to_string(version);
  return ad;
}

// A fresh random nonce. Drawn from a buffer of this thread's, refilled by libsodium's
// generator 4 KiB (170 nonces) at a time: that generator calls getpid() at every draw to
// notice a fork, a system call that costs a microsecond or more in a virtual machine, and a
// create seals ten boxes, an audience index rebuild two per subject. Nonces are public, so
// the buffer holds nothing secret; each is handed out once. The service never forks.
void DrawNonce(uint8_t* out) {
  constexpr size_t kPool = 170 * kNonce;
  thread_local uint8_t pool[kPool];
  thread_local size_t used = kPool;
  if (used == kPool) {
    randombytes_buf(pool, kPool);
    used = 0;
  }
  std::memcpy(out, pool + used, kNonce);
  used += kNonce;
}

Bytes Seal(const uint8_t* key, uint8_t format, const std::string& ad, const uint8_t* msg,
           size_t len) {
  Bytes out(1 + kNonce + len + kTag);
  out[0] = format;
  DrawNonce(out.data() + 1);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + 1 + kNonce, &clen, msg, len,
                                             reinterpret_cast<const uint8_t*>(ad.data()), ad.size(),
                                             nullptr, out.data() + 1, key);
  return out;
}

bool Open(const uint8_t* key, uint8_t format, const std::string& ad, std::span<const uint8_t> box,
          uint8_t* out, size_t* out_len) {
  if (box.size() < 1 + kNonce + kTag || box[0] != format) return false;
  unsigned long long mlen = 0;
  const int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
      out, &mlen, nullptr, box.data() + 1 + kNonce, box.size() - 1 - kNonce,
      reinterpret_cast<const uint8_t*>(ad.data()), ad.size(), box.data() + 1, key);
  *out_len = static_cast<size_t>(mlen);
  return rc == 0;
}

}  // namespace

Bytes SealField(const ScopedKey& dek, const FieldBinding& b, std::string_view plaintext) {
  return Seal(dek.data(), kFieldFormat, FieldAd(b),
              reinterpret_cast<const uint8_t*>(plaintext.data()), plaintext.size());
}

Result<std::string> OpenField(const ScopedKey& dek, const FieldBinding& b,
                              std::span<const uint8_t> box) {
  std::string out;
  GARDE_RETURN_IF_ERROR(OpenFieldInto(dek, b, box, &out));
  return out;
}

Status OpenFieldInto(const ScopedKey& dek, const FieldBinding& b, std::span<const uint8_t> box,
                     std::string* out) {
  if (box.size() < 1 + kNonce + kTag) return Damaged("field " + std::string(b.field));
  out->resize(box.size() - 1 - kNonce - kTag);
  size_t n = 0;
  if (!Open(dek.data(), kFieldFormat, FieldAd(b), box, reinterpret_cast<uint8_t*>(out->data()),
            &n)) {
    sodium_memzero(out->data(), out->size());
    out->clear();
    return Damaged("field " + std::string(b.field) + " fails authentication");
  }
  out->resize(n);
  return Status::Ok();
}

Result<Bytes> WrapDataKey(const Keyring& ring, uint32_t version, std::string_view subject_id,
                          const ScopedKey& dek) {
  if (const std::string* label = ring.TokenKey(version)) {
    GARDE_ASSIGN_OR_RETURN(
        auto box, ring.token()->Seal(*label, WrapAd(subject_id, version), {dek.data(), kKeyBytes}));
    Bytes out;
    out.reserve(1 + box.size());
    out.push_back(kTokenWrapFormat);
    out.insert(out.end(), box.begin(), box.end());
    return out;
  }
  ScopedKey kek;
  if (!ring.DeriveWrappingKey(version, kek.data())) {
    return Unavailable("root key version " + std::to_string(version) + " is not available");
  }
  return Seal(kek.data(), kWrapFormat, WrapAd(subject_id, version), dek.data(), kKeyBytes);
}

Status UnwrapDataKey(const Keyring& ring, uint32_t version, std::string_view subject_id,
                     const Bytes& wrapped, ScopedKey* dek) {
  if (const std::string* label = ring.TokenKey(version)) {
    if (wrapped.empty() || wrapped[0] != kTokenWrapFormat) return Damaged("data key");
    Status s =
        ring.token()->Open(*label, WrapAd(subject_id, version),
                           std::span<const uint8_t>(wrapped).subspan(1), dek->data(), kKeyBytes);
    if (s.code() == Code::kDamaged) return Damaged("data key fails authentication");
    return s;
  }
  ScopedKey kek;
  if (!ring.DeriveWrappingKey(version, kek.data())) {
    return Unavailable("root key version " + std::to_string(version) + " is not available");
  }
  if (wrapped.size() != 1 + kNonce + kKeyBytes + kTag) return Damaged("data key");
  size_t n = 0;
  if (!Open(kek.data(), kWrapFormat, WrapAd(subject_id, version), wrapped, dek->data(), &n) ||
      n != kKeyBytes) {
    return Damaged("data key fails authentication");
  }
  return Status::Ok();
}

}  // namespace garde

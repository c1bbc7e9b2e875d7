#include "garde/crypto/secret.h"

#include <new>

namespace garde {

bool InitSodium() {
  static const bool ok = [] {
    // libsodium's own fast-key-erasure generator (ChaCha20, a key per thread seeded once
    // from getrandom and replaced after every call) instead of a getrandom() system call for
    // each nonce, key and id: a create drew six, an import row ten or more. The process
    // never forks (libsodium aborts in a child that draws from its parent's state).
    randombytes_set_implementation(&randombytes_internal_implementation);
    return sodium_init() >= 0;
  }();
  return ok;
}

SecretKey SecretKey::FromBytes(const uint8_t* bytes) {
  auto* p = static_cast<uint8_t*>(sodium_malloc(kKeyBytes));
  if (p == nullptr) throw std::bad_alloc();
  std::memcpy(p, bytes, kKeyBytes);
  sodium_mprotect_readonly(p);
  return SecretKey(p);
}

SecretKey SecretKey::Random() {
  auto* p = static_cast<uint8_t*>(sodium_malloc(kKeyBytes));
  if (p == nullptr) throw std::bad_alloc();
  randombytes_buf(p, kKeyBytes);
  sodium_mprotect_readonly(p);
  return SecretKey(p);
}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    if (p_ != nullptr) sodium_free(p_);
    p_ = other.p_;
    other.p_ = nullptr;
  }
  return *this;
}

SecretBuffer::SecretBuffer(size_t size) : n_(size) {
  InitSodium();  // sodium_malloc needs the library initialised (page size, canary)
  p_ = static_cast<uint8_t*>(sodium_malloc(size == 0 ? 1 : size));
  if (p_ == nullptr) throw std::bad_alloc();
  sodium_memzero(p_, size == 0 ? 1 : size);
}

SecretBuffer::~SecretBuffer() {
  if (p_ != nullptr) sodium_free(p_);
}

SecretKey::~SecretKey() {
  if (p_ != nullptr) sodium_free(p_);  // sodium_free lifts the protection and wipes
}

}  // namespace garde

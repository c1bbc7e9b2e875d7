// Key material that never sits in ordinary heap memory.
//
//   SecretKey root = SecretKey::Random();       // sodium_malloc'd, guard pages, read-only
//   Use(root.data());                           // 32 bytes
//   ScopedKey dek;                              // short-lived, wiped when it goes out of scope
//
// SecretKey is for long-lived keys (root versions, derived sub-keys): sodium_malloc places it
// between guard pages and it is made read-only (mprotect) once filled. ScopedKey is for a
// subject's data key, which lives for the microseconds of one request: it stays on the stack
// and is wiped with sodium_memzero on every exit path. See docs/security.md.
#pragma once

#include <sodium.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace garde {

inline constexpr size_t kKeyBytes = 32;

class SecretKey {
 public:
  // Copies 32 bytes in and seals the buffer read-only.
  static SecretKey FromBytes(const uint8_t* bytes);
  static SecretKey Random();

  SecretKey(SecretKey&& other) noexcept : p_(other.p_) { other.p_ = nullptr; }
  SecretKey& operator=(SecretKey&& other) noexcept;
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;
  ~SecretKey();

  const uint8_t* data() const { return p_; }

 private:
  explicit SecretKey(uint8_t* p) : p_(p) {}
  uint8_t* p_;  // owned; sodium_free wipes it
};

class ScopedKey {
 public:
  ScopedKey() { bytes_.fill(0); }
  ScopedKey(const ScopedKey&) = delete;
  ScopedKey& operator=(const ScopedKey&) = delete;
  ~ScopedKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

  uint8_t* data() { return bytes_.data(); }
  const uint8_t* data() const { return bytes_.data(); }
  void Randomize() { randombytes_buf(bytes_.data(), bytes_.size()); }

 private:
  std::array<uint8_t, kKeyBytes> bytes_;
};

// Initialises libsodium once; false if the library cannot be used.
bool InitSodium();

}  // namespace garde

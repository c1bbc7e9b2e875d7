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
#include <string_view>

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

// Secret bytes of any length in sodium_malloc'd memory (guard pages, wiped when freed): a
// keyring file's text on its way in or out, so that no key passes through ordinary heap.
//
//   SecretBuffer text(size);          // zeroed
//   read(fd, text.data(), text.size());
class SecretBuffer {
 public:
  explicit SecretBuffer(size_t size);
  SecretBuffer(SecretBuffer&& other) noexcept : p_(other.p_), n_(other.n_) {
    other.p_ = nullptr;
    other.n_ = 0;
  }
  SecretBuffer& operator=(SecretBuffer&&) = delete;
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  ~SecretBuffer();

  uint8_t* data() { return p_; }
  const uint8_t* data() const { return p_; }
  size_t size() const { return n_; }
  std::string_view view() const { return {reinterpret_cast<const char*>(p_), n_}; }

 private:
  uint8_t* p_;  // owned; sodium_free wipes it
  size_t n_;
};

// Initialises libsodium once; false if the library cannot be used.
bool InitSodium();

}  // namespace garde

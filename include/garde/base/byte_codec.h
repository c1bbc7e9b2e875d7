// A compact binary form for files the service writes for itself (little-endian integers,
// length-prefixed strings). The reader checks every length against what is left, so a
// damaged input ends in failed() and never reads past the end.
//
//   ByteWriter w; w.U32(7).Str("sub_…");        // w.data() holds the bytes
//   ByteReader r(w.data()); uint32_t n = r.U32(); std::string_view id = r.Str();
//   if (r.failed()) { /* damaged */ }
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace garde {

// The most bytes PutVar writes.
constexpr size_t kMaxVarBytes = 10;
// v in groups of seven bits, the lowest first (LEB128), at out (room for kMaxVarBytes); the
// bytes written. ByteWriter::Var's form, for callers that write into memory of their own.
inline size_t PutVar(uint64_t v, char* out) {
  size_t n = 0;
  for (; v >= 0x80; v >>= 7) out[n++] = static_cast<char>((v & 0x7f) | 0x80);
  out[n++] = static_cast<char>(v);
  return n;
}
// PutVar's integer read back from memory the caller wrote with it, into *v; the bytes read.
// Nothing is checked: input that may be damaged goes through ByteReader::Var.
inline size_t GetVar(const char* in, uint64_t* v) {
  uint64_t out = 0;
  size_t n = 0;
  for (int shift = 0;; shift += 7) {
    const auto b = static_cast<unsigned char>(in[n++]);
    out |= uint64_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) break;
  }
  *v = out;
  return n;
}

class ByteWriter {
 public:
  ByteWriter& U8(uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  ByteWriter& U32(uint32_t v) { return Fixed(v); }
  ByteWriter& I64(int64_t v) { return Fixed(static_cast<uint64_t>(v)); }
  ByteWriter& F64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return Fixed(bits);
  }
  ByteWriter& Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
    return *this;
  }
  // An unsigned integer in groups of seven bits, the lowest first (LEB128): one byte below
  // 128, five for a time in seconds.
  ByteWriter& Var(uint64_t v) {
    char bytes[kMaxVarBytes];
    out_.append(bytes, PutVar(v, bytes));
    return *this;
  }
  // A signed integer, zigzag-mapped (0, -1, 1, -2 … to 0, 1, 2, 3 …) so that small ones of
  // either sign stay short.
  ByteWriter& SVar(int64_t v) {
    return Var((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  // A string after its length as a Var: one byte of length below 128 bytes.
  ByteWriter& VStr(std::string_view s) { return Var(s.size()).Bytes(s); }
  // The bytes alone, for a reader that knows their number from what came before.
  ByteWriter& Bytes(std::string_view s) {
    out_.append(s);
    return *this;
  }
  std::string& data() { return out_; }

 private:
  template <typename T>
  ByteWriter& Fixed(T v) {
    for (size_t i = 0; i < sizeof(T); ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  std::string out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}

  uint8_t U8() { return Take(1) ? static_cast<uint8_t>(in_[at_ - 1]) : 0; }
  uint32_t U32() { return Fixed<uint32_t>(); }
  int64_t I64() { return static_cast<int64_t>(Fixed<uint64_t>()); }
  double F64() {
    const uint64_t bits = Fixed<uint64_t>();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  // A view into the input: valid while the input is.
  std::string_view Str() {
    const uint32_t n = U32();
    if (!Take(n)) return {};
    return in_.substr(at_ - n, n);
  }
  uint64_t Var() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!Take(1)) return 0;
      const auto b = static_cast<uint8_t>(in_[at_ - 1]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    failed_ = true;  // more than ten bytes: not one of ours
    return 0;
  }
  int64_t SVar() {
    const uint64_t u = Var();
    return static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
  }
  std::string_view VStr() { return Bytes(Var()); }
  // The next n bytes, as a view into the input (empty, and failed, past its end).
  std::string_view Bytes(uint64_t n) {
    if (failed_ || n > in_.size() - at_) {
      failed_ = true;
      return {};
    }
    at_ += n;
    return in_.substr(at_ - n, n);
  }
  bool failed() const { return failed_; }
  bool done() const { return at_ == in_.size(); }
  size_t at() const { return at_; }
  std::string_view input() const { return in_; }

 private:
  bool Take(size_t n) {
    if (failed_ || in_.size() - at_ < n) {
      failed_ = true;
      return false;
    }
    at_ += n;
    return true;
  }
  template <typename T>
  T Fixed() {
    if (!Take(sizeof(T))) return 0;
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      v |= static_cast<T>(static_cast<uint8_t>(in_[at_ - sizeof(T) + i])) << (8 * i);
    }
    return v;
  }
  std::string_view in_;
  size_t at_ = 0;
  bool failed_ = false;
};

}  // namespace garde

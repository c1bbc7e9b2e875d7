// Byte <-> text encodings used on the wire and in files, plus UTF-8 checks.
//
//   std::string t = Base64UrlEncode(bytes);
//   std::optional<Bytes> b = Base64UrlDecode(t);
//   std::string id = RandomId("sub_");   // "sub_" + 26 base32 chars, 130 random bits
//   RandomIdRuns ids("sub_", 1024);       // the same shape, 115 random bits + a run's 15
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "garde/base/mutex.h"

namespace garde {

using Bytes = std::vector<uint8_t>;

std::string HexEncode(const uint8_t* data, size_t n);
inline std::string HexEncode(const Bytes& b) { return HexEncode(b.data(), b.size()); }
std::optional<Bytes> HexDecode(std::string_view text);

// Standard alphabet with padding (RFC 4648 §4), as in keyring files.
std::string Base64Encode(const uint8_t* data, size_t n);
inline std::string Base64Encode(const Bytes& b) { return Base64Encode(b.data(), b.size()); }
std::optional<Bytes> Base64Decode(std::string_view text);
// URL-safe alphabet, no padding (RFC 4648 §5), as in tokens.
std::string Base64UrlEncode(const uint8_t* data, size_t n);
inline std::string Base64UrlEncode(const Bytes& b) { return Base64UrlEncode(b.data(), b.size()); }
std::optional<Bytes> Base64UrlDecode(std::string_view text);

// prefix + 26 characters of lower-case Crockford base32 drawn from the OS CSPRNG.
std::string RandomId(std::string_view prefix);
// True when text is prefix + 26 Crockford base32 characters.
bool IsRandomId(std::string_view text, std::string_view prefix);
// The 130 bits of such an id's 26 characters, big-endian in 17 bytes (the top six bits zero);
// false, and nothing written, when text is not one.
constexpr size_t kRandomIdBytes = 17;
bool RandomIdBits(std::string_view text, std::string_view prefix, uint8_t out[kRandomIdBytes]);

// Random ids minted in runs, for rows written many at a time (subjects, events): the
// first three characters after the prefix (15 bits) are drawn once for a run of `run_length`
// ids, the other 23 (115 bits) for every id. Rows keyed by the ids of one run sit side by
// side in a B-tree, so a batch of new rows dirties a few pages instead of one page each; the
// ids carry no time, order or content, and keep RandomId's shape.
//
//   RandomIdRuns subject_ids("sub_", 1024);
//   std::string id = subject_ids.Next();
class RandomIdRuns {
 public:
  RandomIdRuns(std::string prefix, int run_length);
  std::string Next() EXCLUDES(mu_);

 private:
  const std::string prefix_;
  const int run_length_;
  Mutex mu_;
  char run_[3] GUARDED_BY(mu_) = {};
  int left_ GUARDED_BY(mu_) = 0;  // ids still to mint with run_
};
// A run long enough for a batch of creates or an import window to fall in one or two runs.
inline constexpr int kIdRunLength = 1024;

// `text` with A-Z turned into a-z and every other byte kept (header names, tokens).
std::string AsciiLower(std::string_view text);

// The non-empty pieces of `text` between `separator`s ("a,,b" -> {"a", "b"}).
std::vector<std::string> SplitList(std::string_view text, char separator);
// The pieces joined by `separator`, no separator before the first ({"a", "b"} -> "a,b").
std::string JoinList(const std::vector<std::string>& list, char separator);

// `s` safe as HTML text and attribute values: & < > " ' escaped.
std::string HtmlEscape(std::string_view s);

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view text);

inline std::string_view AsStringView(const Bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes AsBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

}  // namespace garde

#include "garde/base/encoding.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <utility>

namespace garde {
namespace {

constexpr char kCrockford[] = "0123456789abcdefghjkmnpqrstvwxyz";

// libsodium's codecs run in constant time for a given length: what they encode or decode may
// be key material (keyring files, tokens), and a table lookup indexed by secret bytes is not.
std::string B64Encode(const uint8_t* d, size_t n, int variant) {
  if (n == 0) return "";  // libsodium's codecs take no null pointers, even for no bytes
  std::string out(sodium_base64_encoded_len(n, variant), '\0');
  sodium_bin2base64(out.data(), out.size(), d, n, variant);
  out.pop_back();  // the terminating NUL
  return out;
}

// Strict: the whole text, canonical (unused bits zero), padded exactly as the variant says.
std::optional<Bytes> B64Decode(std::string_view s, int variant) {
  if (s.empty()) return Bytes{};
  Bytes out(s.size() * 3 / 4 + 1);
  size_t len = 0;
  if (sodium_base642bin(out.data(), out.size(), s.data(), s.size(), nullptr, &len, nullptr,
                        variant) != 0) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

}  // namespace

std::string HexEncode(const uint8_t* d, size_t n) {
  if (n == 0) return "";
  std::string out(n * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), d, n);
  out.pop_back();
  return out;
}

std::optional<Bytes> HexDecode(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  if (s.empty()) return Bytes{};
  Bytes out(s.size() / 2);
  size_t len = 0;
  if (sodium_hex2bin(out.data(), out.size(), s.data(), s.size(), nullptr, &len, nullptr) != 0 ||
      len != out.size()) {
    return std::nullopt;
  }
  return out;
}

std::string Base64Encode(const uint8_t* d, size_t n) {
  return B64Encode(d, n, sodium_base64_VARIANT_ORIGINAL);
}
std::optional<Bytes> Base64Decode(std::string_view s) {
  return B64Decode(s, sodium_base64_VARIANT_ORIGINAL);
}
std::string Base64UrlEncode(const uint8_t* d, size_t n) {
  return B64Encode(d, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
std::optional<Bytes> Base64UrlDecode(std::string_view s) {
  return B64Decode(s, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

std::string RandomId(std::string_view prefix) {
  uint8_t raw[17];
  randombytes_buf(raw, sizeof raw);
  std::string out(prefix);
  // 26 characters x 5 bits = 130 bits taken from 136 random bits.
  uint64_t acc = 0;
  int bits = 0;
  size_t next = 0;
  for (int i = 0; i < 26; ++i) {
    if (bits < 5) {
      acc = (acc << 8) | raw[next++];
      bits += 8;
    }
    bits -= 5;
    out += kCrockford[(acc >> bits) & 31];
  }
  sodium_memzero(raw, sizeof raw);
  return out;
}

RandomIdRuns::RandomIdRuns(std::string prefix, int run_length)
    : prefix_(std::move(prefix)), run_length_(std::max(1, run_length)) {}

std::string RandomIdRuns::Next() {
  std::string id = RandomId(prefix_);
  MutexLock lock(&mu_);
  if (left_ == 0) {
    uint16_t bits = 0;
    randombytes_buf(&bits, sizeof bits);
    for (int i = 0; i < 3; ++i) run_[i] = kCrockford[(bits >> (5 * i)) & 31];
    left_ = run_length_;
  }
  --left_;
  id.replace(prefix_.size(), 3, run_, 3);
  return id;
}

namespace {

// Each character's value in kCrockford, -1 for the others: one table lookup per character.
const std::array<int8_t, 256>& CrockfordDigits() {
  static const auto kDigits = [] {
    std::array<int8_t, 256> table;
    table.fill(-1);
    for (int8_t v = 0; v < 32; ++v) table[static_cast<unsigned char>(kCrockford[v])] = v;
    return table;
  }();
  return kDigits;
}

}  // namespace

bool IsRandomId(std::string_view s, std::string_view prefix) {
  // Checked for every audit entry.
  if (s.size() != prefix.size() + 26 || s.substr(0, prefix.size()) != prefix) return false;
  const auto& digits = CrockfordDigits();
  for (char c : s.substr(prefix.size())) {
    if (digits[static_cast<unsigned char>(c)] < 0) return false;
  }
  return true;
}

bool RandomIdBits(std::string_view s, std::string_view prefix, uint8_t out[kRandomIdBytes]) {
  if (!IsRandomId(s, prefix)) return false;
  const auto& digits = CrockfordDigits();
  unsigned __int128 bits = 0;  // the low 128 of the 130 bits; the top two in `high`
  uint8_t high = 0;
  for (char c : s.substr(prefix.size())) {
    high = static_cast<uint8_t>((high << 5 | static_cast<uint8_t>(bits >> 123)) & 3);
    bits = bits << 5 | static_cast<uint8_t>(digits[static_cast<unsigned char>(c)]);
  }
  out[0] = high;
  for (size_t i = 0; i < 16; ++i) out[1 + i] = static_cast<uint8_t>(bits >> (8 * (15 - i)));
  return true;
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string AsciiLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
  }
  return out;
}

std::string JoinList(const std::vector<std::string>& list, char separator) {
  std::string out;
  for (const auto& piece : list) {
    if (!out.empty()) out += separator;
    out += piece;
  }
  return out;
}

std::vector<std::string> SplitList(std::string_view text, char separator) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(separator, start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace garde

#include "garde/base/encoding.h"

#include <sodium.h>

#include <array>

namespace garde {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char kCrockford[] = "0123456789abcdefghjkmnpqrstvwxyz";
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string B64Encode(const uint8_t* d, size_t n, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    const uint32_t v = (uint32_t{d[i]} << 16) | (uint32_t{d[i + 1]} << 8) | d[i + 2];
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i < n) {
    uint32_t v = uint32_t{d[i]} << 16;
    if (i + 1 < n) v |= uint32_t{d[i + 1]} << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (i + 1 < n) {
      out += alphabet[(v >> 6) & 63];
    } else if (pad) {
      out += '=';
    }
    if (pad) out += '=';
  }
  return out;
}

std::optional<Bytes> B64Decode(std::string_view s, const char* alphabet, bool pad) {
  std::array<int, 256> map;
  map.fill(-1);
  for (int i = 0; i < 64; ++i) map[static_cast<unsigned char>(alphabet[i])] = i;
  if (pad) {
    if (s.size() % 4 != 0) return std::nullopt;
    while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  }
  if (s.size() % 4 == 1) return std::nullopt;
  Bytes out;
  out.reserve(s.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    const int v = map[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((acc >> bits) & 0xff));
    }
  }
  // Canonical encodings only: leftover bits must be zero.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string HexEncode(const uint8_t* d, size_t n) {
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[d[i] >> 4];
    out[2 * i + 1] = kHex[d[i] & 15];
  }
  return out;
}

std::optional<Bytes> HexDecode(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(s[2 * i]);
    const int lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string Base64Encode(const uint8_t* d, size_t n) { return B64Encode(d, n, kB64, true); }
std::optional<Bytes> Base64Decode(std::string_view s) { return B64Decode(s, kB64, true); }
std::string Base64UrlEncode(const uint8_t* d, size_t n) { return B64Encode(d, n, kB64Url, false); }
std::optional<Bytes> Base64UrlDecode(std::string_view s) { return B64Decode(s, kB64Url, false); }

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

bool IsRandomId(std::string_view s, std::string_view prefix) {
  if (s.size() != prefix.size() + 26 || s.substr(0, prefix.size()) != prefix) return false;
  for (char c : s.substr(prefix.size())) {
    bool found = false;
    for (const char* p = kCrockford; *p; ++p) found |= (*p == c);
    if (!found) return false;
  }
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

}  // namespace garde

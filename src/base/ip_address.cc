#include "garde/base/ip_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "garde/base/encoding.h"

namespace garde {
namespace {

constexpr unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool Trusted(const std::vector<std::string>& trusted, const std::string& address) {
  return std::find(trusted.begin(), trusted.end(), address) != trusted.end();
}

}  // namespace

std::string AddressText(std::string_view bytes) {
  char text[INET6_ADDRSTRLEN] = {};
  if (bytes.size() == 16 && std::memcmp(bytes.data(), kMappedPrefix, sizeof kMappedPrefix) == 0) {
    bytes.remove_prefix(sizeof kMappedPrefix);
  }
  if (bytes.size() == 4) {
    return ::inet_ntop(AF_INET, bytes.data(), text, sizeof text) ? text : "";
  }
  if (bytes.size() == 16) {
    return ::inet_ntop(AF_INET6, bytes.data(), text, sizeof text) ? text : "";
  }
  return "";
}

std::optional<std::string> CanonicalAddress(std::string_view text) {
  text = Trim(text);
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  const std::string z(text);
  unsigned char bytes[16];
  if (::inet_pton(AF_INET, z.c_str(), bytes) == 1) {
    return AddressText(std::string_view(reinterpret_cast<const char*>(bytes), 4));
  }
  if (::inet_pton(AF_INET6, z.c_str(), bytes) == 1) {
    return AddressText(std::string_view(reinterpret_cast<const char*>(bytes), 16));
  }
  return std::nullopt;
}

std::string ClientAddress(const std::vector<std::string>& trusted_proxies, std::string_view peer,
                          std::string_view forwarded_for) {
  std::string client = AddressText(peer);
  if (client.empty() || !Trusted(trusted_proxies, client)) return client;
  // Right to left: each entry was appended by the hop to its right.
  const std::vector<std::string> hops = SplitList(forwarded_for, ',');
  for (auto hop = hops.rbegin(); hop != hops.rend(); ++hop) {
    if (Trim(*hop).empty()) continue;  // an empty list element is no entry (RFC 9110 §5.6.1)
    auto address = CanonicalAddress(*hop);
    if (!address) break;  // not an address: the hop that forwarded it is the client we know
    client = *address;
    if (!Trusted(trusted_proxies, client)) break;
  }
  return client;
}

}  // namespace garde

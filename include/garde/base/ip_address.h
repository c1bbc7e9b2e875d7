// Client addresses as the service records them: one canonical text per address, and the
// address behind trusted proxies.
//
//   CanonicalAddress("2001:DB8:0::1")   -> "2001:db8::1";  CanonicalAddress("host") -> nullopt
//   AddressText(peer_bytes)             -> "203.0.113.7"   (4 or 16 bytes, as accept() gave)
//   ClientAddress({"127.0.0.1"}, peer, "198.51.100.7, 127.0.0.1") -> "198.51.100.7"
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace garde {

// The canonical text of an IPv4 or IPv6 address (an IPv4-mapped IPv6 address as IPv4), or
// nullopt when `text` is not one.
std::optional<std::string> CanonicalAddress(std::string_view text);

// The canonical text of an address given as 4 or 16 bytes ("" for anything else).
std::string AddressText(std::string_view bytes);

// The client a request came from. `peer` is the connection's address (4 or 16 bytes). When it
// is one of `trusted_proxies` (canonical texts), X-Forwarded-For is read from the right: the
// first address that is not a trusted proxy is the client; an entry that is not an address
// stops the walk at the hop that forwarded it (what a client wrote itself is never taken).
std::string ClientAddress(const std::vector<std::string>& trusted_proxies, std::string_view peer,
                          std::string_view forwarded_for);

}  // namespace garde

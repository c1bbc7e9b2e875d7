#include "garde/http/exchange.h"

#include <sodium.h>

#include <string>

namespace garde {

void Exchange::WipeCredentials() {
  auto it = headers.find("authorization");
  if (it != headers.end()) sodium_memzero(it->second.data(), it->second.size());
}

size_t PageLimit(const Exchange& x, Status* invalid) {
  auto it = x.query.find("limit");
  if (it == x.query.end() || it->second.empty()) return kDefaultPage;
  const std::string& v = it->second;
  size_t limit = 0;
  for (char c : v) {
    if (c < '0' || c > '9' || limit > kMaxPage) {
      limit = 0;
      break;
    }
    limit = limit * 10 + static_cast<size_t>(c - '0');
  }
  if (limit == 0 || limit > kMaxPage) {
    invalid->AddError("limit", "must be a whole number from 1 to " + std::to_string(kMaxPage));
    return kDefaultPage;
  }
  return limit;
}

}  // namespace garde

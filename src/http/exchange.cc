#include "garde/http/exchange.h"

#include <sodium.h>

namespace garde {

void Exchange::WipeCredentials() {
  auto it = headers.find("authorization");
  if (it != headers.end()) sodium_memzero(it->second.data(), it->second.size());
}

}  // namespace garde

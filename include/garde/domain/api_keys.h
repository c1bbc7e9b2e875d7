// API keys: created with a role and bound activities, shown once, stored only as a keyed
// BLAKE2b hash, looked up by that hash on every request. During a master-key rotation a key
// is found under the previous master's hash too, and hashed again under the new one.
//
//   ApiKeys keys(store, lookup, clock);
//   Result<NewApiKey> k = keys.Create(policies, "crm", "operator", {"customer_management"});
//   std::cout << k->token;                       // "gk_..." — never stored
//   Result<Caller> who = keys.Authenticate(token);
#pragma once

#include <sodium.h>

#include <array>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "garde/base/clock.h"
#include "garde/base/status.h"
#include "garde/crypto/lookup_keys.h"
#include "garde/domain/access_gate.h"
#include "garde/policy/policy_set.h"
#include "garde/store/store.h"

namespace garde {

struct NewApiKey {
  ApiKeyRow row;
  std::string token;  // shown once
};

class ApiKeys {
 public:
  // cache_seconds: how long a successful authentication is remembered in memory (0: never).
  // A key revoked from another process stops working within that time.
  ApiKeys(Store& store, const LookupKeys& lookup, const Clock& clock, int cache_seconds = 0)
      : store_(store), lookup_(lookup), clock_(clock), cache_seconds_(cache_seconds) {}

  // Validates the role and activities against the policies, then stores the key's hash.
  Result<NewApiKey> Create(const PolicySet& policies, const std::string& name,
                           const std::string& role, const std::vector<std::string>& activities);
  // 401 for an unknown, malformed or revoked token.
  Result<Caller> Authenticate(const std::string& token) const;
  Result<std::vector<ApiKeyRow>> List() const;
  Status Revoke(const std::string& id);

 private:
  struct CachedCaller {
    Caller caller;
    std::chrono::steady_clock::time_point expires;
    uint64_t keys_epoch;  // Store::KeysEpoch() when verified: a revocation elsewhere ends it
  };
  // The keyed hash of a token, as the cache's key: overwritten when the entry goes.
  struct TokenHash {
    std::array<uint8_t, 32> bytes{};
    TokenHash() = default;
    TokenHash(const TokenHash&) = default;
    TokenHash& operator=(const TokenHash&) = default;
    ~TokenHash() { sodium_memzero(bytes.data(), bytes.size()); }
    bool operator==(const TokenHash& other) const { return bytes == other.bytes; }
  };
  struct TokenHashHasher {
    size_t operator()(const TokenHash& h) const {
      size_t v;
      std::memcpy(&v, h.bytes.data(), sizeof v);  // already uniformly distributed
      return v;
    }
  };
  Store& store_;
  const LookupKeys& lookup_;
  const Clock& clock_;
  int cache_seconds_;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<TokenHash, CachedCaller, TokenHashHasher> cache_;  // hash -> caller
};

}  // namespace garde

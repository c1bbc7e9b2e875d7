#include "garde/domain/api_keys.h"

#include <sodium.h>

namespace garde {
namespace {
constexpr std::string_view kTokenPrefix = "gk_";
constexpr size_t kTokenChars = 43;  // base64url of 32 random bytes
}  // namespace

Result<NewApiKey> ApiKeys::Create(const PolicySet& policies, const std::string& name,
                                  const std::string& role,
                                  const std::vector<std::string>& activities) {
  Status invalid(Code::kUnprocessable, "API key not created");
  if (name.empty() || name.size() > 100 || !IsValidUtf8(name)) {
    invalid.AddError("name", "must be 1 to 100 characters");
  }
  if (policies.FindRole(role) == nullptr) {
    std::string known;
    for (const auto& [r, _] : policies.roles()) known += (known.empty() ? "" : ", ") + r;
    invalid.AddError("role", "unknown role '" + role + "' (one of: " + known + ")");
  }
  for (const auto& a : activities) {
    if (policies.FindActivity(a) == nullptr) {
      invalid.AddError("activity", "'" + a + "' is not an activity of the register");
    }
  }
  if (!invalid.errors().empty()) return invalid;

  uint8_t secret[32];
  randombytes_buf(secret, sizeof secret);
  NewApiKey key;
  key.token = std::string(kTokenPrefix) + Base64UrlEncode(secret, sizeof secret);
  sodium_memzero(secret, sizeof secret);
  key.row.id = RandomId("key_");
  key.row.name = name;
  key.row.role = role;
  key.row.activities = activities;
  const auto keys = lookup_.Current();
  key.row.key_hash = keys->api_key_hash.Digest(key.token);
  key.row.hash_master = keys->master;
  key.row.created_at = clock_.Now();
  GARDE_RETURN_IF_ERROR(store_.Write([&](WriteTx& tx) { return tx.InsertApiKey(key.row); }));
  return key;
}

Result<Caller> ApiKeys::Authenticate(const std::string& token) const {
  if (token.size() != kTokenPrefix.size() + kTokenChars ||
      token.compare(0, kTokenPrefix.size(), kTokenPrefix) != 0) {
    return Unauthenticated("the API key is not valid");
  }
  const auto keys = lookup_.Current();
  Bytes hash = keys->api_key_hash.Digest(token, 32);
  TokenHash cache_key;
  std::memcpy(cache_key.bytes.data(), hash.data(), cache_key.bytes.size());
  const auto now = std::chrono::steady_clock::now();
  const uint64_t keys_epoch = cache_seconds_ > 0 ? store_.KeysEpoch() : 0;
  if (cache_seconds_ > 0) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(cache_key);
    if (it != cache_.end() && it->second.expires > now && it->second.keys_epoch == keys_epoch) {
      return it->second.caller;
    }
  }
  std::optional<ApiKeyRow> row;
  Status read = store_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto r, tx.FindApiKeyByHash(hash));
    row = std::move(r);
    return Status::Ok();
  });
  GARDE_RETURN_IF_ERROR(read);
  if (!row && keys->previous_api_key_hash) {
    // A master rotation is under way: a key still hashed under the previous master is found
    // by that hash, and hashed again under the current one on this first use.
    Bytes old = keys->previous_api_key_hash->Digest(token, 32);
    Status s = store_.Write([&](WriteTx& tx) -> Status {
      auto r = tx.FindApiKeyByHash(old);
      if (r.ok() && !r.value()) r = tx.FindApiKeyByHash(hash);  // hashed again meanwhile
      if (!r.ok()) return r.status();
      row = std::move(r.value());
      if (!row || row->revoked_at != 0 || row->hash_master == keys->master) return Status::Ok();
      return tx.RehashApiKey(row->id, old, hash, keys->master).status();
    });
    sodium_memzero(old.data(), old.size());
    GARDE_RETURN_IF_ERROR(s);
  }
  sodium_memzero(hash.data(), hash.size());
  if (!row || row->revoked_at != 0) return Unauthenticated("the API key is not valid");
  Caller caller;
  caller.key_id = row->id;
  caller.role = row->role;
  caller.activities.insert(row->activities.begin(), row->activities.end());
  if (cache_seconds_ > 0) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() > 10000) cache_.clear();  // bounded; only valid keys are cached
    cache_[cache_key] = {caller, now + std::chrono::seconds(cache_seconds_), keys_epoch};
  }
  return caller;
}

Result<std::vector<ApiKeyRow>> ApiKeys::List() const {
  std::vector<ApiKeyRow> out;
  GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto r, tx.ListApiKeys());
    out = std::move(r);
    return Status::Ok();
  }));
  return out;
}

Status ApiKeys::Revoke(const std::string& id) {
  GARDE_RETURN_IF_ERROR(
      store_.Write([&](WriteTx& tx) { return tx.RevokeApiKey(id, clock_.Now()); }));
  std::lock_guard<std::mutex> lock(cache_mu_);
  cache_.clear();
  return Status::Ok();
}

}  // namespace garde

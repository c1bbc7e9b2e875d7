#include "garde/crypto/lookup_keys.h"

#include "garde/base/clock.h"

namespace garde {

std::vector<Bytes> LookupKeys::Set::Digests(std::string_view field, std::string_view normalised,
                                            size_t bytes) const {
  std::vector<Bytes> out{index.Digest(field, normalised, bytes)};
  if (previous_index) out.push_back(previous_index->Digest(field, normalised, bytes));
  return out;
}

void LookupKeys::Apply(const Keyring& ring) {
  std::vector<KeyedHash> accepted;
  if (auto previous = ring.DerivePrevious(KeyContext::kSubjectToken)) {
    accepted.emplace_back(std::move(*previous));
  }
  if (const SecretKey* links = ring.RetiredLinkKey(SystemClock().Now())) {
    accepted.emplace_back(SecretKey::FromBytes(links->data()));
  }
  auto set = std::make_shared<Set>(
      ring.master_version(), ring.Derive(KeyContext::kBlindIndex),
      ring.Derive(KeyContext::kApiKeyHash),
      SubjectTokens(ring.Derive(KeyContext::kSubjectToken), std::move(accepted)));
  set->previous_master = ring.previous_master_version();
  if (auto previous = ring.DerivePrevious(KeyContext::kBlindIndex)) {
    set->previous_index = std::make_unique<BlindIndex>(std::move(*previous));
  }
  if (auto previous = ring.DerivePrevious(KeyContext::kApiKeyHash)) {
    set->previous_api_key_hash = std::make_unique<KeyedHash>(std::move(*previous));
  }
  MutexLock lock(&mu_);
  set_ = std::move(set);
}

std::shared_ptr<const LookupKeys::Set> LookupKeys::Current() const {
  MutexLock lock(&mu_);
  return set_;
}

}  // namespace garde

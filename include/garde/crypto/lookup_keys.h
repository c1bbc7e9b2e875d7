// The keys Garde finds things again with, all derived from the master key: blind indexes,
// API-key hashes and link tokens. While a master-key rotation runs, the previous master's are
// there too, so that look-ups read both while rows are computed again under the new one; after
// it, links MACed under the old master are still accepted until they expire.
//
//   LookupKeys lookup(*ring);
//   std::shared_ptr<const LookupKeys::Set> keys = lookup.Current();  // one set per operation
//   Bytes d = keys->index.Digest("email", "ana@example.org", 16);    // written under keys->master
//   std::vector<Bytes> all = keys->Digests("email", "ana@example.org", 16);  // read under each
//   lookup.Apply(*ring);   // after the keyring file changed (KeyringSource::OnReload)
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "garde/base/mutex.h"
#include "garde/crypto/keyed_hash.h"
#include "garde/crypto/keyring.h"
#include "garde/crypto/subject_token.h"

namespace garde {

class LookupKeys {
 public:
  struct Set {
    Set(uint32_t master_version, SecretKey index_key, SecretKey api_key, SubjectTokens links)
        : master(master_version),
          index(std::move(index_key)),
          api_key_hash(std::move(api_key)),
          tokens(std::move(links)) {}

    uint32_t master = 0;  // the master version new rows are written under
    BlindIndex index;
    KeyedHash api_key_hash;
    SubjectTokens tokens;  // mints under the current master
    // The master being replaced (0 and null when no rotation runs).
    uint32_t previous_master = 0;
    std::unique_ptr<BlindIndex> previous_index;
    std::unique_ptr<KeyedHash> previous_api_key_hash;

    // The digests to read under: the current index's, then the previous one's. Values, not
    // the indexes themselves: a set may be replaced (Apply) as soon as its holder lets go.
    std::vector<Bytes> Digests(std::string_view field, std::string_view normalised,
                               size_t bytes) const;
  };

  explicit LookupKeys(const Keyring& ring) { Apply(ring); }
  // Derives the set of `ring`; operations already holding the old set finish with it.
  void Apply(const Keyring& ring);
  std::shared_ptr<const Set> Current() const;

 private:
  mutable Mutex mu_;
  std::shared_ptr<const Set> set_ GUARDED_BY(mu_);
};

}  // namespace garde

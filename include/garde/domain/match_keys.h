// Likely duplicates on encrypted data (docs/duplicates.md). A person's names are folded —
// case, accents, punctuation, and given-name variants from policies/matching.yaml (Rob, Bob →
// robert; J.-P. → jeanpierre) — and, for the "sounds-like" rules, reduced to a phonetic
// skeleton (Catherine and Katherine → ktrn). Each rule combines the names with a postal code,
// a phone number or a street into a match key; the vault stores only keyed digests of match
// keys, as blind-index rows named "=<rule>". Two subjects sharing one are a candidate pair.
//
//   std::vector<MatchKey> keys = MatchKeysOf(policies.matching(), values);
//   for (const auto& k : keys) {
//     tx.PutIndex(id, {"=" + k.rule, index.Digest("=" + k.rule, k.key, 16)});
//   }
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "garde/domain/field_value.h"
#include "garde/policy/matching.h"

namespace garde {

struct MatchKey {
  std::string rule;  // "name+postal_code", "sounds-like name+phone", ...
  std::string key;   // plaintext: digested before it is stored, never kept
};

// A given name folded, initials of a compound name joined (J.-P. → jp), then its group's
// canonical name when the policy lists it as a variant.
std::string FoldGivenName(const MatchingPolicy& policy, std::string_view name);
// A street folded word by word, common words dropped and kinds of way abbreviated
// ("12, Avenue de la République" → "12avrepublique").
std::string FoldStreet(std::string_view street);
// The phonetic skeleton of a folded name: consonant sounds, first letter kept.
std::string Skeleton(std::string_view folded);

// The match keys of a subject's values (normalised, as stored); none without both names.
std::vector<MatchKey> MatchKeysOf(const MatchingPolicy& policy, const FieldMap& values);
// Every rule's name, as the rows are named after them ("=" + rule).
const std::vector<std::string>& MatchRules();

}  // namespace garde

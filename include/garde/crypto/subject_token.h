// Subject tokens: short-lived, signed links scoped to one subject and one use (preference
// centre, one-click unsubscribe, DSR verification), minted for operators to put in emails.
//
//   SubjectTokens tokens(ring.Derive(KeyContext::kSubjectToken));
//   std::string t = tokens.Mint({"sub_...", "unsubscribe", "marketing.email", expires});
//   Result<SubjectTokenClaims> c = tokens.Verify(t, now);    // 404-style failure on any fault
//
// Format: base64url(claims) "." base64url(BLAKE2b-256 MAC keyed with the token key). Claims
// are "v1|subject|use|scope|expires". No personal data is in a token.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "garde/base/status.h"
#include "garde/crypto/keyed_hash.h"

namespace garde {

struct SubjectTokenClaims {
  std::string subject;
  std::string use;    // preferences | unsubscribe | dsr
  std::string scope;  // a purpose id, or "*" for every marketing purpose
  int64_t expires = 0;
};

// The longest a link may live (POST /v1/subjects/{id}/links, ttl_days): after a master-key
// rotation, links MACed under the old master are accepted this long.
constexpr int64_t kLongestLinkSeconds = 400 * 86400;

class SubjectTokens {
 public:
  // Mints under `key`; verifies under it and under each of `also_accepted` (the keys of
  // masters being or lately replaced), minting none with them.
  explicit SubjectTokens(SecretKey key, std::vector<KeyedHash> also_accepted = {})
      : mac_(std::move(key)), accepted_(std::move(also_accepted)) {}
  std::string Mint(const SubjectTokenClaims& claims) const;
  // Fails (kNotFound, saying nothing about why) when malformed, tampered or expired.
  Result<SubjectTokenClaims> Verify(const std::string& token, int64_t now) const;

 private:
  KeyedHash mac_;
  std::vector<KeyedHash> accepted_;
};

}  // namespace garde

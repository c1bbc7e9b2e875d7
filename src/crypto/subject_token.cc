#include "garde/crypto/subject_token.h"

#include <sodium.h>

#include <vector>

#include "garde/base/encoding.h"

namespace garde {

std::string SubjectTokens::Mint(const SubjectTokenClaims& c) const {
  const std::string claims =
      "v1|" + c.subject + "|" + c.use + "|" + c.scope + "|" + std::to_string(c.expires);
  const Bytes mac = mac_.Digest(claims, 32);
  return Base64UrlEncode(AsBytes(claims)) + "." + Base64UrlEncode(mac);
}

Result<SubjectTokenClaims> SubjectTokens::Verify(const std::string& token, int64_t now) const {
  const Status invalid = NotFound("this link is not valid or has expired");
  if (token.size() > 512) return invalid;
  const size_t dot = token.find('.');
  if (dot == std::string::npos) return invalid;
  auto claims = Base64UrlDecode(token.substr(0, dot));
  auto mac = Base64UrlDecode(token.substr(dot + 1));
  if (!claims || !mac || mac->size() != 32) return invalid;
  auto matches = [&](const KeyedHash& key) {
    const Bytes expected = key.Digest(AsStringView(*claims), 32);
    return sodium_memcmp(expected.data(), mac->data(), 32) == 0;
  };
  bool valid = matches(mac_);
  for (size_t i = 0; !valid && i < accepted_.size(); ++i) valid = matches(accepted_[i]);
  if (!valid) return invalid;
  std::vector<std::string> parts;
  std::string text(AsStringView(*claims));
  size_t start = 0;
  for (size_t bar; (bar = text.find('|', start)) != std::string::npos; start = bar + 1) {
    parts.push_back(text.substr(start, bar - start));
  }
  parts.push_back(text.substr(start));
  if (parts.size() != 5 || parts[0] != "v1") return invalid;
  SubjectTokenClaims c{parts[1], parts[2], parts[3], 0};
  try {
    c.expires = std::stoll(parts[4]);
  } catch (...) {
    return invalid;
  }
  if (c.expires <= now) return invalid;
  return c;
}

}  // namespace garde

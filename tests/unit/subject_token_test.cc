#include "garde/crypto/subject_token.h"

#include <gtest/gtest.h>

#include "garde/base/encoding.h"

namespace garde {
namespace {

SecretKey Key(uint8_t fill) {
  uint8_t k[32];
  std::fill(std::begin(k), std::end(k), fill);
  return SecretKey::FromBytes(k);
}

TEST(SubjectTokens, VerifiesOnlyUntamperedUnexpiredTokensOfItsKey) {
  InitSodium();
  SubjectTokens tokens(Key(1));
  const std::string t = tokens.Mint({"sub_a", "unsubscribe", "marketing.email", 1000});
  auto c = tokens.Verify(t, 999);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->subject, "sub_a");
  EXPECT_EQ(c->use, "unsubscribe");
  EXPECT_EQ(c->scope, "marketing.email");
  EXPECT_EQ(tokens.Verify(t, 1000).status().code(), Code::kNotFound);  // expired
  SubjectTokens other(Key(2));
  EXPECT_FALSE(other.Verify(t, 1).ok());  // another deployment's key
  // Claims rewritten to another subject, with the original MAC.
  const std::string forged =
      Base64UrlEncode(AsBytes("v1|sub_b|unsubscribe|marketing.email|1000")) + t.substr(t.find('.'));
  EXPECT_FALSE(tokens.Verify(forged, 1).ok());
  for (const std::string& bad :
       {std::string(""), std::string("."), std::string("abc"), t + "x", std::string(600, 'a')}) {
    EXPECT_FALSE(tokens.Verify(bad, 1).ok()) << bad;
  }
}

TEST(SubjectTokens, AcceptsTheOldMastersTokensButMintsUnderTheNewOne) {
  InitSodium();
  SubjectTokens before(Key(1));
  std::vector<KeyedHash> accepted;
  accepted.emplace_back(Key(1));
  SubjectTokens after(Key(2), std::move(accepted));
  const SubjectTokenClaims claims{"sub_a", "preferences", "*", 1000};
  const std::string old_link = before.Mint(claims);
  ASSERT_TRUE(after.Verify(old_link, 1).ok());
  EXPECT_EQ(after.Verify(old_link, 1000).status().code(), Code::kNotFound);  // still expires
  const std::string new_link = after.Mint(claims);
  EXPECT_NE(new_link, old_link);
  EXPECT_TRUE(SubjectTokens(Key(2)).Verify(new_link, 1).ok());
  EXPECT_FALSE(before.Verify(new_link, 1).ok());
  EXPECT_FALSE(SubjectTokens(Key(3)).Verify(old_link, 1).ok());
}

}  // namespace
}  // namespace garde

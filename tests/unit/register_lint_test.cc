#include "garde/policy/register_lint.h"

#include <gtest/gtest.h>

namespace garde {
namespace {

TEST(RegisterLint, DefaultPoliciesHaveNoFindings) {
  auto set = LoadPolicies(GARDE_TEST_FIXTURES "/../../policies");
  ASSERT_TRUE(set.ok());
  const auto findings = LintRegister(*set.value());
  for (const auto& f : findings) ADD_FAILURE() << f.location << " " << f.rule << ": " << f.message;
}

TEST(RegisterLint, EveryRuleFiresWithItsLocation) {
  auto set = LoadPolicies(GARDE_TEST_FIXTURES "/lint_policies");
  ASSERT_TRUE(set.ok()) << set.status().message();
  const auto findings = LintRegister(*set.value());
  auto has = [&](const std::string& rule, const std::string& location, const std::string& severity) {
    for (const auto& f : findings) {
      if (f.rule == rule && f.location == location && f.severity == severity && !f.hint.empty()) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(has("field-not-covered", "schema.yaml:16", "error"));          // shoe_size
  EXPECT_TRUE(has("blind-index-low-cardinality", "schema.yaml:8", "warning"));  // gender
  EXPECT_TRUE(has("purpose-unused", "purposes.yaml:8", "error"));            // orders
  EXPECT_TRUE(has("consent-without-notice", "purposes.yaml:3", "error"));    // newsletter
  EXPECT_TRUE(has("activity-without-retention", "register.yaml:5", "error"));
  EXPECT_TRUE(has("activity-without-legal-basis", "register.yaml:5", "error"));
  EXPECT_TRUE(has("special-category-without-art9", "register.yaml:5", "error"));
  EXPECT_TRUE(has("transfer-without-safeguard", "register.yaml:5", "error"));
  EXPECT_EQ(findings.size(), 8u);
}

}  // namespace
}  // namespace garde

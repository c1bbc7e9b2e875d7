#include "garde/policy/policy_set.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace garde {
namespace {

TEST(PolicySet, DefaultPoliciesLoadAndCrossCheck) {
  auto set = LoadPolicies(GARDE_TEST_FIXTURES "/../../policies");
  ASSERT_TRUE(set.ok()) << set.status().message();
  const PolicySet& p = *set.value();
  for (const char* f : {"first_name",     "last_name",
                        "email",          "phone",
                        "birth_date",     "gender",
                        "street",         "postal_code",
                        "city",           "country",
                        "household_size", "occupation",
                        "legal_name",     "sector",
                        "legal_form",     "turnover",
                        "headcount",      "contact_person",
                        "total_spend",    "spend_30d",
                        "last_purchase",  "preferred_products"}) {
    EXPECT_NE(p.schema().Find(f), nullptr) << f;
  }
  EXPECT_TRUE(p.schema().Find("email")->unique);
  EXPECT_GT(p.schema().Find("email")->blind_index_bytes, 0u);
  const Activity* email = p.FindActivity("marketing_email");
  ASSERT_NE(email, nullptr);
  EXPECT_EQ(email->fields.count("email"), 1u);
  EXPECT_EQ(email->fields.count("birth_date"), 0u);  // minimisation is declared
  for (const char* role : {"admin", "officer", "operator", "marketing", "auditor"}) {
    EXPECT_NE(p.FindRole(role), nullptr) << role;
  }
  EXPECT_EQ(p.content_hash().size(), 64u);
}

TEST(PolicySet, ErrorsNameFileLineAndProblem) {
  auto set = LoadPolicies(GARDE_TEST_FIXTURES "/broken_policies");
  ASSERT_FALSE(set.ok());
  const auto& errors = set.status().errors();
  auto has = [&](const std::string& where, const std::string& what) {
    for (const auto& e : errors) {
      if (e.field == where && e.message.find(what) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("schema.yaml:3", "unknown type 'emial'"));
  EXPECT_TRUE(has("schema.yaml:6", "unknown data category 'animals'"));
  EXPECT_TRUE(has("schema.yaml:9", "unknown key 'colour'"));
  EXPECT_TRUE(has("schema.yaml:10", "unique field needs a blind_index"));
  EXPECT_TRUE(has("register.yaml:8", "unknown purpose 'no.such.purpose'"));
  EXPECT_TRUE(has("register.yaml:10", "unknown schema field 'shoe_size'"));
  for (const auto& e : errors) std::cerr << e.field << ": " << e.message << "\n";
}

TEST(PolicySet, MissingDirectoryIsAnError) {
  auto set = LoadPolicies("/nonexistent/policies");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().errors().front().field, "schema.yaml:0");
}

TEST(PolicySet, ContentHashChangesWithContent) {
  auto a = LoadPolicies(GARDE_TEST_FIXTURES "/../../policies");
  auto b = LoadPolicies(GARDE_TEST_FIXTURES "/../../policies");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a.value()->content_hash(), b.value()->content_hash());
}

// Found by the policy-files fuzzer: a register.yaml whose root is not a mapping made yaml-cpp
// throw out of LoadPolicies (a crash of `garde serve` or `garde lint`).
TEST(PolicySet, AFileOfTheWrongShapeIsAProblemNotACrash) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("garde-policy-shape-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::copy(GARDE_TEST_FIXTURES "/../../policies", dir,
                        std::filesystem::copy_options::recursive);
  for (const char* text : {"# only a comment\njust a scalar\n", "- a\n- list\n", "[1, 2]\n",
                           "organisation: [1]\nactivities: []\n"}) {
    std::ofstream(dir / "register.yaml", std::ios::trunc) << text;
    Result<std::shared_ptr<const PolicySet>> set = Status::Ok();
    ASSERT_NO_THROW(set = LoadPolicies(dir.string())) << text;
    EXPECT_FALSE(set.ok()) << text;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace garde

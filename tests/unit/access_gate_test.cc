#include "garde/domain/access_gate.h"

#include <gtest/gtest.h>

namespace garde {
namespace {

std::shared_ptr<const PolicySet> Policies() {
  static auto set = LoadPolicies(GARDE_TEST_FIXTURES "/../../policies");
  return set.value();
}

struct BindCase {
  const char* role;
  std::set<std::string> bound;
  const char* activity;
  bool allowed;
};

TEST(AccessGate, PurposeBindingTable) {
  const BindCase cases[] = {
      {"operator", {"customer_management"}, "customer_management", true},
      {"operator", {"customer_management"}, "marketing_email", false},  // not bound
      {"operator", {"customer_management"}, "", false},                 // no X-Purpose
      {"operator", {"gone_activity"}, "gone_activity", false},          // not in register
      {"marketing", {"marketing_email"}, "marketing_email", true},
      {"admin", {}, "customer_management", false},  // no data by default
      {"admin", {"customer_management"}, "customer_management", true},
      {"officer", {"customer_management"}, "customer_management", false},
      {"auditor", {"customer_management"}, "customer_management", false},
      {"stranger", {"customer_management"}, "customer_management", false},
  };
  for (const auto& c : cases) {
    Caller caller{"key_x", c.role, c.bound, "req", ""};
    auto r = AccessGate::BindPurpose(*Policies(), caller, c.activity);
    EXPECT_EQ(r.ok(), c.allowed) << c.role << " / " << c.activity;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
    } else {
      EXPECT_EQ(r.value()->id, c.activity);
    }
  }
}

TEST(AccessGate, RolesGrantOnlyTheirCapabilities) {
  const std::pair<const char*, const char*> allowed[] = {
      {"operator", "subjects.write"}, {"operator", "subjects.read"}, {"marketing", "subjects.read"},
      {"officer", "register.read"},   {"auditor", "audit.read"},     {"admin", "apikeys.manage"}};
  const std::pair<const char*, const char*> denied[] = {{"marketing", "subjects.write"},
                                                        {"auditor", "subjects.read"},
                                                        {"officer", "subjects.write"},
                                                        {"admin", "subjects.write"},
                                                        {"operator", "audit.read"}};
  for (auto [role, cap] : allowed) {
    EXPECT_TRUE(AccessGate::Require(*Policies(), {"k", role, {}, "r", ""}, cap).ok())
        << role << " " << cap;
  }
  for (auto [role, cap] : denied) {
    EXPECT_EQ(AccessGate::Require(*Policies(), {"k", role, {}, "r", ""}, cap).code(),
              Code::kPermissionDenied)
        << role << " " << cap;
  }
}

}  // namespace
}  // namespace garde

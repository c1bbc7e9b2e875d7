#include "garde/domain/consent_decision.h"

#include <gtest/gtest.h>

namespace garde {
namespace {

std::shared_ptr<const PolicySet> Policies() {
  static auto set = LoadPolicies(GARDE_TEST_FIXTURES "/../../policies");
  return set.value();
}

ConsentFact Ev(const char* purpose, const char* channel, ConsentEventType t, int64_t at,
               int64_t expires = 0) {
  ConsentFact e;
  e.purpose = purpose;
  e.channel = channel;
  e.type = t;
  e.at = at;
  e.expires_at = expires;
  return e;
}

using T = ConsentEventType;
constexpr int64_t kNow = 1000000;

struct Case {
  const char* name;
  std::string status;
  bool suppressed;
  std::vector<ConsentFact> events;
  const char* purpose;
  const char* channel;
  bool allowed;
  const char* reason;
};

TEST(ConsentDecision, DecisionTable) {
  // One case in three lines: name, status, suppressed; the events; purpose, channel, answer.
  // clang-format off
  const Case cases[] = {
      {"no event, consent basis", "active", false,
       {},
       "marketing.email", "email", false, "no_consent"},
      {"granted", "active", false,
       {Ev("marketing.email", "", T::kGranted, 10)},
       "marketing.email", "email", true, "consent_granted"},
      {"granted on the channel", "active", false,
       {Ev("marketing.email", "email", T::kGranted, 10)},
       "marketing.email", "email", true, "consent_granted"},
      {"granted then withdrawn", "active", false,
       {Ev("marketing.email", "", T::kGranted, 10), Ev("marketing.email", "", T::kWithdrawn, 20)},
       "marketing.email", "email", false, "consent_withdrawn"},
      {"withdrawn then granted again", "active", false,
       {Ev("marketing.email", "", T::kWithdrawn, 10), Ev("marketing.email", "", T::kGranted, 20)},
       "marketing.email", "email", true, "consent_granted"},
      {"channel withdrawal beats older all-channel grant", "active", false,
       {Ev("partners.sharing", "", T::kGranted, 10),
        Ev("partners.sharing", "post", T::kWithdrawn, 20)},
       "partners.sharing", "post", false, "consent_withdrawn"},
      {"withdrawal on another channel does not count", "active", false,
       {Ev("partners.sharing", "", T::kGranted, 10),
        Ev("partners.sharing", "post", T::kWithdrawn, 20)},
       "partners.sharing", "email", true, "consent_granted"},
      {"refused", "active", false,
       {Ev("marketing.sms", "", T::kRefused, 10)},
       "marketing.sms", "sms", false, "consent_refused"},
      {"expired", "active", false,
       {Ev("marketing.email", "", T::kGranted, 10, kNow - 1)},
       "marketing.email", "email", false, "consent_expired"},
      {"not yet expired", "active", false,
       {Ev("marketing.email", "", T::kGranted, 10, kNow + 1)},
       "marketing.email", "email", true, "consent_granted"},
      {"other purpose's consent does not count", "active", false,
       {Ev("marketing.sms", "", T::kGranted, 10)},
       "marketing.email", "email", false, "no_consent"},
      {"restricted", "restricted", false,
       {Ev("marketing.email", "", T::kGranted, 10)},
       "marketing.email", "email", false, "restricted"},
      {"erased", "erased", false,
       {Ev("marketing.email", "", T::kGranted, 10)},
       "marketing.email", "email", false, "erased"},
      {"suppressed", "active", true,
       {Ev("marketing.email", "", T::kGranted, 10)},
       "marketing.email", "email", false, "suppressed"},
      {"suppression does not stop the contract", "active", true,
       {},
       "service.orders", "email", true, "contract"},
      {"same-second withdrawal after grant wins", "active", false,
       {Ev("marketing.email", "", T::kGranted, 10), Ev("marketing.email", "", T::kWithdrawn, 10)},
       "marketing.email", "email", false, "consent_withdrawn"},
      {"objection to any marketing is absolute", "active", false,
       {Ev("marketing.post", "", T::kObjected, 5), Ev("marketing.email", "", T::kGranted, 10)},
       "marketing.email", "email", false, "objected"},
      {"objection does not stop the contract", "active", false,
       {Ev("marketing.post", "", T::kObjected, 5)},
       "service.orders", "email", true, "contract"},
      {"legitimate interest, no event", "active", false,
       {},
       "marketing.post", "post", true, "legitimate_interest"},
      {"legitimate interest, withdrawn", "active", false,
       {Ev("marketing.post", "", T::kWithdrawn, 10)},
       "marketing.post", "post", false, "consent_withdrawn"},
      {"legitimate interest, objected", "active", false,
       {Ev("marketing.phone", "", T::kObjected, 10)},
       "marketing.phone", "phone", false, "objected"},
      {"contract while active", "active", false, {}, "service.orders", "email", true, "contract"},
      {"contract, restricted", "restricted", false,
       {},
       "service.orders", "email", false, "restricted"},
      {"legal obligation", "active", false, {}, "service.invoicing", "", true, "legal_obligation"},
  };
  // clang-format on
  for (const auto& c : cases) {
    const Purpose* p = Policies()->FindPurpose(c.purpose);
    ASSERT_NE(p, nullptr) << c.purpose;
    ConsentDecision d = Decide(c.status, c.suppressed, c.events, *Policies(), *p, c.channel, kNow);
    EXPECT_EQ(d.allowed, c.allowed) << c.name;
    EXPECT_EQ(d.reason, c.reason) << c.name;
    EXPECT_EQ(d.basis, LegalBasisName(p->legal_basis)) << c.name;
  }
}

TEST(ConsentDecision, AnswerSaysSinceAndExpiry) {
  const Purpose* p = Policies()->FindPurpose("marketing.email");
  ConsentDecision d =
      Decide("active", false, {Ev("marketing.email", "", T::kGranted, 42, 99999999)}, *Policies(),
             *p, "email", kNow);
  EXPECT_EQ(d.since, 42);
  EXPECT_EQ(d.expires_at, 99999999);
}

}  // namespace
}  // namespace garde

#include "garde/domain/consent_decision.h"

#include <gtest/gtest.h>

#include <random>

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

bool SameFacts(const ConsentFacts& a, const ConsentFacts& b) {
  if (a.status != b.status || a.suppressed_contacts != b.suppressed_contacts ||
      a.events.size() != b.events.size()) {
    return false;
  }
  for (size_t k = 0; k < a.events.size(); ++k) {
    const ConsentFact &x = a.events[k], &y = b.events[k];
    if (x.purpose != y.purpose || x.channel != y.channel || x.type != y.type || x.at != y.at ||
        x.expires_at != y.expires_at) {
      return false;
    }
  }
  return true;
}

// The compact form the facts are kept in: random facts (any status, contacts, up to 40
// events with times of any sign and size) read back as written, into one reused object as
// the checks do (fewer events after more, shorter strings after longer); every cut of the
// bytes is refused, never read past.
TEST(ConsentFactsBytes, RandomFactsReadBackAsWrittenAndACutNeverReads) {
  std::mt19937_64 rng(20261206);
  auto text = [&rng](size_t most) {
    std::string s(rng() % (most + 1), 'x');
    for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
    return s;
  };
  const char* statuses[] = {"active", "restricted", "erased", "pending_merge", ""};
  const int64_t times[] = {0, 1, -1, 1764979200, INT64_MAX, INT64_MIN, 127, 128, -64, -65};
  ConsentFacts into;  // reused, as a thread's scratch is
  for (int round = 0; round < 2000; ++round) {
    ConsentFacts f;
    f.status = statuses[rng() % std::size(statuses)];
    // Words of the usual policies (written as one byte) as often as any other text.
    auto word = [&](size_t most) {
      static const char* const kUsual[] = {"email", "phone", "marketing.email", "profiling", ""};
      return rng() % 2 == 0 ? std::string(kUsual[rng() % std::size(kUsual)]) : text(most);
    };
    for (size_t n = rng() % 3; n > 0; --n) f.suppressed_contacts.push_back(word(8));
    for (size_t n = rng() % (round % 10 == 0 ? 41 : 4); n > 0; --n) {
      ConsentFact e;
      e.purpose = word(rng() % 4 == 0 ? 200 : 20);
      e.channel = word(6);
      e.type = static_cast<ConsentEventType>(rng() % 4);
      e.at = rng() % 3 == 0 ? times[rng() % std::size(times)] : static_cast<int64_t>(rng());
      e.expires_at = rng() % 2 == 0 ? 0 : times[rng() % std::size(times)];
      f.events.push_back(e);
    }
    ByteWriter w;
    WriteConsentFacts(w, f);
    const std::string bytes = w.data();
    ByteReader r(bytes);
    ASSERT_TRUE(ReadConsentFacts(r, &into)) << "round " << round;
    ASSERT_TRUE(r.done());
    ASSERT_TRUE(SameFacts(f, into)) << "round " << round;
    ByteReader skip(bytes);
    ASSERT_TRUE(ReadConsentFacts(skip, nullptr) && skip.done());
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
      ConsentFacts scratch;
      ByteReader part(std::string_view(bytes).substr(0, cut));
      ASSERT_FALSE(ReadConsentFacts(part, &scratch) && part.done()) << cut;
    }
  }
  // One event of a usual purpose on a usual channel takes 12 bytes (the purpose and the
  // channel one byte each), where the structure takes two blocks of 96.
  ConsentFacts one{
      "active", {}, {Ev("marketing.email", "email", ConsentEventType::kGranted, 1764979200)}};
  ByteWriter w;
  WriteConsentFacts(w, one);
  EXPECT_LE(w.data().size(), 12u);
  // A purpose of a deployment's own is written out, and read back as written.
  ConsentFacts own{
      "active", {"email"}, {Ev("newsletter.weekly", "", ConsentEventType::kWithdrawn, 1)}};
  ByteWriter ow;
  WriteConsentFacts(ow, own);
  ConsentFacts back;
  ByteReader r(ow.data());
  ASSERT_TRUE(ReadConsentFacts(r, &back) && r.done());
  EXPECT_TRUE(SameFacts(own, back));
}

TEST(ConsentFactsBytes, AWordBeyondTheKnownOnesIsRefused) {
  ByteWriter w;
  w.U8(0).Var(0).Var(1);  // "active", no contacts, one event
  w.Var(2 * 200 + 1);     // purpose: the 200th known word (there are far fewer)
  w.Var(0).U8(0).SVar(1).SVar(0);
  ConsentFacts out;
  ByteReader r(w.data());
  EXPECT_FALSE(ReadConsentFacts(r, &out));
}

TEST(ConsentFactsBytes, ACountBeyondTheBytesLeftIsRefusedBeforeAnythingIsMade) {
  ByteWriter w;
  w.U8(0).Var(0).Var(uint64_t{1} << 40);  // "active", no contacts, 2^40 events
  ConsentFacts out;
  ByteReader r(w.data());
  EXPECT_FALSE(ReadConsentFacts(r, &out));
  EXPECT_TRUE(out.events.empty());
}

}  // namespace
}  // namespace garde

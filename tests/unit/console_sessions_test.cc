// Console sessions: idle and absolute expiry, sign-out, what the store keeps of a cookie, and
// sign-ins shared by every node on one store.
#include <gtest/gtest.h>

#include "garde/http/console.h"
#include "garde/store/memory_store.h"

namespace garde {
namespace {

class StepClock final : public Clock {
 public:
  int64_t Now() const override { return now; }
  int64_t now = 1'800'000'000;
};

Caller Officer() { return Caller{"key_officer", "officer", {}, "req_1", "", "", ""}; }

TEST(ConsoleSessions, IdleTimeEndsASessionAndEachPageRestartsIt) {
  StepClock clock;
  MemoryStore store;
  ConsoleSessions sessions(store, clock, /*idle_seconds=*/60, /*absolute_seconds=*/3600);
  const std::string cookie = sessions.Open(Officer(), "fr").value();
  auto s = sessions.Touch(cookie);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->caller.key_id, "key_officer");
  EXPECT_EQ(s->lang, "fr");
  EXPECT_EQ(s->caller.request_id, "") << "a session does not keep the sign-in's request id";
  EXPECT_EQ(s->csrf.size(), 43u);
  clock.now += 59;
  ASSERT_TRUE(sessions.Touch(cookie)) << "59 s idle";
  clock.now += 59;
  ASSERT_TRUE(sessions.Touch(cookie)) << "the previous page restarted the idle time";
  clock.now += 60;
  EXPECT_FALSE(sessions.Touch(cookie)) << "60 s idle";
  EXPECT_EQ(sessions.size(), 0) << "an expired session is forgotten";
}

TEST(ConsoleSessions, AbsoluteLifetimeEndsEvenABusySession) {
  StepClock clock;
  MemoryStore store;
  ConsoleSessions sessions(store, clock, 60, 300);
  const std::string cookie = sessions.Open(Officer(), "en").value();
  for (int i = 0; i < 5; ++i) {
    clock.now += 59;
    ASSERT_TRUE(sessions.Touch(cookie)) << i;
  }
  clock.now += 5;  // 300 s after sign-in
  EXPECT_FALSE(sessions.Touch(cookie));
}

TEST(ConsoleSessions, SignOutAndUnknownCookies) {
  StepClock clock;
  MemoryStore store;
  ConsoleSessions sessions(store, clock);
  const std::string a = sessions.Open(Officer(), "en").value();
  const std::string b = sessions.Open(Officer(), "en").value();
  EXPECT_NE(a, b);
  EXPECT_NE(sessions.Touch(a)->csrf, sessions.Touch(b)->csrf);
  sessions.Close(a);
  EXPECT_FALSE(sessions.Touch(a));
  EXPECT_TRUE(sessions.Touch(b));
  EXPECT_FALSE(sessions.Touch(""));
  EXPECT_FALSE(sessions.Touch(b.substr(1)));
  std::string flipped = b;
  flipped[0] = flipped[0] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(sessions.Touch(flipped));
}

TEST(ConsoleSessions, ExpiredSessionsAreSweptAtTheNextSignIn) {
  StepClock clock;
  MemoryStore store;
  ConsoleSessions sessions(store, clock, 60, 3600);
  for (int i = 0; i < 10; ++i) sessions.Open(Officer(), "en").value();
  EXPECT_EQ(sessions.size(), 10);
  clock.now += 61;
  sessions.Open(Officer(), "en").value();
  EXPECT_EQ(sessions.size(), 1);
}

TEST(ConsoleSessions, LanguageFollowsTheSession) {
  StepClock clock;
  MemoryStore store;
  ConsoleSessions sessions(store, clock);
  const std::string cookie = sessions.Open(Officer(), "en").value();
  sessions.SetLanguage(cookie, "fr");
  EXPECT_EQ(sessions.Touch(cookie)->lang, "fr");
}

// Two nodes of a deployment: each its own ConsoleSessions on the one store.
TEST(ConsoleSessions, ASignInOnOneNodeHoldsOnTheOtherAndSignOutEndsItOnBoth) {
  StepClock clock;
  MemoryStore store;
  ConsoleSessions a(store, clock, 60, 3600), b(store, clock, 60, 3600);
  Caller officer = Officer();
  officer.activities = {"breach_response", "compliance"};
  officer.client = "digest_of_client";
  const std::string cookie = a.Open(officer, "fr").value();
  auto on_b = b.Touch(cookie);
  ASSERT_TRUE(on_b);
  EXPECT_EQ(on_b->caller.key_id, "key_officer");
  EXPECT_EQ(on_b->caller.role, "officer");
  EXPECT_EQ(on_b->caller.activities, officer.activities);
  EXPECT_EQ(on_b->caller.client, "digest_of_client");
  EXPECT_EQ(on_b->csrf, a.Touch(cookie)->csrf);
  b.SetLanguage(cookie, "en");
  EXPECT_EQ(a.Touch(cookie)->lang, "en");
  clock.now += 50;
  ASSERT_TRUE(b.Touch(cookie));  // a page on b restarts the idle time a sees
  clock.now += 50;
  ASSERT_TRUE(a.Touch(cookie)) << "100 s after sign-in, 50 s after b's page";
  b.Close(cookie);
  EXPECT_FALSE(a.Touch(cookie));
  EXPECT_EQ(a.size(), 0);
}

}  // namespace
}  // namespace garde

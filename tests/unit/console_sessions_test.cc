// Console sessions: idle and absolute expiry, sign-out, and what the map keeps of a cookie.
#include <gtest/gtest.h>

#include "garde/http/console.h"

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
  ConsoleSessions sessions(clock, /*idle_seconds=*/60, /*absolute_seconds=*/3600);
  const std::string cookie = sessions.Open(Officer(), "fr");
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
  EXPECT_EQ(sessions.size(), 0u) << "an expired session is forgotten";
}

TEST(ConsoleSessions, AbsoluteLifetimeEndsEvenABusySession) {
  StepClock clock;
  ConsoleSessions sessions(clock, 60, 300);
  const std::string cookie = sessions.Open(Officer(), "en");
  for (int i = 0; i < 5; ++i) {
    clock.now += 59;
    ASSERT_TRUE(sessions.Touch(cookie)) << i;
  }
  clock.now += 5;  // 300 s after sign-in
  EXPECT_FALSE(sessions.Touch(cookie));
}

TEST(ConsoleSessions, SignOutAndUnknownCookies) {
  StepClock clock;
  ConsoleSessions sessions(clock);
  const std::string a = sessions.Open(Officer(), "en");
  const std::string b = sessions.Open(Officer(), "en");
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
  ConsoleSessions sessions(clock, 60, 3600);
  for (int i = 0; i < 10; ++i) sessions.Open(Officer(), "en");
  EXPECT_EQ(sessions.size(), 10u);
  clock.now += 61;
  sessions.Open(Officer(), "en");
  EXPECT_EQ(sessions.size(), 1u);
}

TEST(ConsoleSessions, LanguageFollowsTheSession) {
  StepClock clock;
  ConsoleSessions sessions(clock);
  const std::string cookie = sessions.Open(Officer(), "en");
  sessions.SetLanguage(cookie, "fr");
  EXPECT_EQ(sessions.Touch(cookie)->lang, "fr");
}

}  // namespace
}  // namespace garde

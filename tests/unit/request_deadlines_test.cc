// Deadline arithmetic of data-subject requests: calendar months, leap years, CCPA days, and
// the one extension allowed before the first deadline.
#include <gtest/gtest.h>

#include "garde/base/clock.h"
#include "garde/domain/subject_requests.h"

namespace garde {
namespace {

int64_t At(const char* rfc3339) { return ParseRfc3339(rfc3339).value(); }

const Jurisdiction kGdpr{"gdpr", "P1M", "P2M"};
const Jurisdiction kCcpa{"ccpa", "P45D", "P45D"};

TEST(RequestDeadlines, OneCalendarMonthClampsToTheLastDayOfShortMonths) {
  const std::pair<const char*, const char*> table[] = {
      {"2027-01-31T10:00:00Z", "2027-02-28T10:00:00Z"},  // common year
      {"2028-01-31T10:00:00Z", "2028-02-29T10:00:00Z"},  // leap year
      {"2028-01-30T23:59:59Z", "2028-02-29T23:59:59Z"},
      {"2028-02-29T08:00:00Z", "2028-03-29T08:00:00Z"},  // from a leap day
      {"2100-01-31T00:00:00Z", "2100-02-28T00:00:00Z"},  // century, not a leap year
      {"2000-01-31T00:00:00Z", "2000-02-29T00:00:00Z"},  // 400-year rule: a leap year
      {"2026-03-31T12:00:00Z", "2026-04-30T12:00:00Z"},
      {"2026-08-31T12:00:00Z", "2026-09-30T12:00:00Z"},
      {"2026-12-31T12:00:00Z", "2027-01-31T12:00:00Z"},  // across the year
      {"2026-11-22T10:00:00Z", "2026-12-22T10:00:00Z"},
  };
  for (const auto& [received, due] : table) {
    auto d = DueAt(At(received), kGdpr);
    ASSERT_TRUE(d.has_value()) << received;
    EXPECT_EQ(FormatRfc3339(*d), due) << received;
  }
}

TEST(RequestDeadlines, CcpaCountsFortyFiveDays) {
  EXPECT_EQ(FormatRfc3339(*DueAt(At("2026-01-01T00:00:00Z"), kCcpa)), "2026-02-15T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(*DueAt(At("2028-02-01T00:00:00Z"), kCcpa)), "2028-03-17T00:00:00Z");
}

RequestRow Open(const char* received, const Jurisdiction& j) {
  RequestRow r;
  r.status = "verified";
  r.jurisdiction = j.name;
  r.received_at = At(received);
  r.due_at = *DueAt(r.received_at, j);
  return r;
}

TEST(RequestDeadlines, ExtensionCountsFromTheFirstDeadlineAndOnlyBeforeIt) {
  RequestRow r = Open("2027-01-31T10:00:00Z", kGdpr);  // due 2027-02-28
  // Before the deadline: up to two more months from it.
  auto two = ExtendedDue(r, kGdpr, "P2M", At("2027-02-27T10:00:00Z"));
  ASSERT_TRUE(two.ok()) << two.status().message();
  EXPECT_EQ(FormatRfc3339(two.value()), "2027-04-28T10:00:00Z");
  auto one = ExtendedDue(r, kGdpr, "P1M", At("2027-02-01T00:00:00Z"));
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(FormatRfc3339(one.value()), "2027-03-28T10:00:00Z");
  // At or after the deadline: too late.
  EXPECT_EQ(ExtendedDue(r, kGdpr, "P2M", At("2027-02-28T10:00:00Z")).status().code(),
            Code::kConflict);
  EXPECT_EQ(ExtendedDue(r, kGdpr, "P2M", At("2027-03-05T00:00:00Z")).status().code(),
            Code::kConflict);
}

TEST(RequestDeadlines, OnlyOneExtensionOfAtMostTheJurisdictionsLimit) {
  RequestRow r = Open("2026-11-22T10:00:00Z", kGdpr);
  const int64_t now = At("2026-11-25T00:00:00Z");
  EXPECT_EQ(ExtendedDue(r, kGdpr, "P3M", now).status().code(), Code::kUnprocessable);
  EXPECT_EQ(ExtendedDue(r, kGdpr, "P2M1D", now).status().code(), Code::kUnprocessable);
  EXPECT_EQ(ExtendedDue(r, kGdpr, "soon", now).status().code(), Code::kUnprocessable);
  EXPECT_EQ(ExtendedDue(r, kGdpr, "P0D", now).status().code(), Code::kUnprocessable);
  EXPECT_TRUE(ExtendedDue(r, kGdpr, "P60D", now).ok());  // within two months of Dec 22
  r.extended = true;
  EXPECT_EQ(ExtendedDue(r, kGdpr, "P1M", now).status().code(), Code::kConflict);
  RequestRow ccpa = Open("2026-01-01T00:00:00Z", kCcpa);
  auto c = ExtendedDue(ccpa, kCcpa, "P45D", At("2026-02-01T00:00:00Z"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(FormatRfc3339(c.value()), "2026-04-01T00:00:00Z");
  EXPECT_EQ(ExtendedDue(ccpa, kCcpa, "P46D", At("2026-02-01T00:00:00Z")).status().code(),
            Code::kUnprocessable);
}

TEST(RequestDeadlines, ClosedRequestsCannotBeExtended) {
  for (const char* status : {"completed", "rejected"}) {
    RequestRow r = Open("2026-11-22T10:00:00Z", kGdpr);
    r.status = status;
    EXPECT_EQ(ExtendedDue(r, kGdpr, "P1M", At("2026-11-23T00:00:00Z")).status().code(),
              Code::kConflict)
        << status;
  }
}

TEST(RequestDeadlines, JurisdictionSpecParsesAndRefusesNonsense) {
  auto ok = ParseJurisdictions("gdpr=P1M+P2M,ccpa=P45D+P45D");
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ(ok.value()[1].name, "ccpa");
  EXPECT_EQ(ok.value()[1].deadline, "P45D");
  for (const char* bad : {"", "gdpr", "gdpr=P1M", "=P1M+P2M", "gdpr=month+P2M", "gdpr=P1M+x"}) {
    EXPECT_FALSE(ParseJurisdictions(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace garde

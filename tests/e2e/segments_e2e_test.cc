// Saved segments and the 20/80 report, against an oracle over a generated population: the
// seed's "women who spent more than 500 in the last 30 days" saved and counted (only those
// who may be e-mailed), and the revenue concentration of the profiled customers computed
// independently here; no group of fewer than five customers is ever reported.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <random>

#include "garde/base/clock.h"
#include "garde_process.h"

namespace garde::testing {
namespace {

struct Customer {
  std::string id;
  std::string gender;
  int spend_30d = 0;
  double total_spend = 0;
  bool email_ok = false;  // granted marketing.email
  bool profiled = false;  // granted profiling
  int birth_year = 0;
  int visit_months_ago = -1;  // the inactivity test's visit; -1: none after the creation
};

class SegmentsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    op_ = g_.CreateKey("crm", "operator", {"customer_management"});
    mkt_ = g_.CreateKey("campaigns", "marketing", {"marketing_email", "profiling_segmentation"});
    g_.Start();
    std::mt19937 rng(20261202);
    const char* genders[] = {"F", "M", "X"};
    for (int i = 0; i < 120; ++i) {
      Customer c;
      c.gender = genders[rng() % 3];
      c.spend_30d = static_cast<int>(rng() % 1000);
      // A long tail: a few customers bring most of the revenue.
      c.total_spend =
          i % 10 == 0 ? 5000 + static_cast<double>(rng() % 5000) : static_cast<double>(rng() % 300);
      c.email_ok = rng() % 3 != 0;
      c.profiled = rng() % 4 != 0;
      c.birth_year = 1940 + static_cast<int>(rng() % 66);
      if (rng() % 3 != 0) c.visit_months_ago = static_cast<int>(rng() % 38);
      char spend[32];
      std::snprintf(spend, sizeof spend, "%.0f", c.total_spend);
      HttpReply r =
          g_.Post("/v1/subjects",
                  R"({"kind":"person","fields":{"email":"seg)" + std::to_string(i) +
                      R"(@example.org","gender":")" + c.gender + R"(","spend_30d":)" +
                      std::to_string(c.spend_30d) + R"(,"total_spend":)" + spend +
                      R"(,"birth_date":")" + std::to_string(c.birth_year) + R"(-06-15"}})",
                  op_);
      ASSERT_EQ(r.status, 201) << r.body;
      c.id = JsonString(r.body, "id");
      auto grant = [&](const std::string& purpose) {
        ASSERT_EQ(
            g_.Post("/v1/subjects/" + c.id + "/consents",
                    R"({"purpose":")" + purpose +
                        R"(","event":"granted","method":"web_form","notice_version":"2026-01"})",
                    op_)
                .status,
            201);
      };
      if (c.email_ok) grant("marketing.email");
      if (c.profiled) grant("profiling");
      people_.push_back(c);
    }
  }

  HttpReply Put(const std::string& name, const std::string& body, const std::string& key) {
    return g_.Request("PUT", "/v1/segments/" + name, body, {{"Authorization", "Bearer " + key}});
  }

  GardeProcess g_;
  std::string op_, mkt_;
  std::vector<Customer> people_;
};

TEST_F(SegmentsE2E, TheSeedsSegmentIsSavedCountedListedUpdatedAndDeleted) {
  const std::string women =
      R"({"activity":"marketing_email","purpose":"marketing.email","channel":"email",)"
      R"("description":"women who spent more than 500 in the last 30 days",)"
      R"("where":{"all":[{"field":"gender","eq":"F"},{"field":"spend_30d","gt":500}]}})";
  int64_t want = 0;
  for (const auto& c : people_) want += c.gender == "F" && c.spend_30d > 500 && c.email_ok;
  ASSERT_GT(want, 0);
  HttpReply saved = Put("women-500", women, mkt_);
  ASSERT_EQ(saved.status, 201) << saved.body;
  auto seg = ParseObject(saved.body);
  EXPECT_EQ(seg->getValue<int64_t>("count"), want);
  EXPECT_EQ(seg->getObject("definition")->getValue<std::string>("activity"), "marketing_email");

  // Counted again when read: a withdrawal drops a member at once.
  const auto member = std::find_if(people_.begin(), people_.end(), [](const Customer& c) {
    return c.gender == "F" && c.spend_30d > 500 && c.email_ok;
  });
  ASSERT_EQ(g_.Post("/v1/subjects/" + member->id + "/consents",
                    R"({"purpose":"marketing.email","event":"withdrawn","method":"web_form"})", op_)
                .status,
            201);
  HttpReply read = g_.Get("/v1/segments/women-500", mkt_);
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_EQ(ParseObject(read.body)->getValue<int64_t>("count"), want - 1);

  HttpReply list = g_.Get("/v1/segments?counts=true", mkt_);
  ASSERT_EQ(list.status, 200) << list.body;
  auto items = ParseObject(list.body)->getArray("items");
  ASSERT_EQ(items->size(), 1u);
  EXPECT_EQ(items->getObject(0)->getValue<int64_t>("count"), want - 1);

  // Saving it again updates it (200); the narrower definition counts fewer.
  HttpReply updated =
      Put("women-500",
          R"({"activity":"marketing_email","purpose":"marketing.email","channel":"email",)"
          R"("where":{"all":[{"field":"gender","eq":"F"},{"field":"spend_30d","gt":900}]}})",
          mkt_);
  ASSERT_EQ(updated.status, 200) << updated.body;
  int64_t narrower = 0;
  for (const auto& c : people_) {
    narrower += c.gender == "F" && c.spend_30d > 900 && c.email_ok && c.id != member->id;
  }
  EXPECT_EQ(ParseObject(updated.body)->getValue<int64_t>("count"), narrower);

  const std::map<std::string, std::string> auth = {{"Authorization", "Bearer " + mkt_}};
  EXPECT_EQ(g_.Request("DELETE", "/v1/segments/women-500", "", auth).status, 204);
  EXPECT_EQ(g_.Get("/v1/segments/women-500", mkt_).status, 404);
  EXPECT_EQ(g_.Request("DELETE", "/v1/segments/women-500", "", auth).status, 404);

  // Bad definitions change nothing and answer 4xx problems.
  for (
      const auto& [name, body, status] : std::vector<std::tuple<std::string, std::string, int>>{
          {"Bad-Name", women, 422},
          {"x", R"({"activity":"marketing_email"})", 422},
          {"x",
           R"({"activity":"marketing_email","purpose":"marketing.email","channel":"email","where":{"field":"nosuch","eq":1}})",
           422},
          {"x", R"({"activity":"orders_invoicing","purpose":"service.invoicing","channel":""})",
           403},
          {"x", R"({"activity":"marketing_email","purpose":"marketing.email","colour":"red"})",
           422},
          {"x", "not json", 400},
      }) {
    HttpReply r = Put(name, body, mkt_);
    EXPECT_EQ(r.status, status) << name << " " << body << " " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  EXPECT_EQ(Put("women-500", women, op_).status, 403);  // operators do not build audiences
  HttpReply none = g_.Get("/v1/segments", mkt_);
  EXPECT_EQ(ParseObject(none.body)->getArray("items")->size(), 0u);
}

TEST_F(SegmentsE2E, TheTwentyEightyReportMatchesAnIndependentComputationAndHidesSmallGroups) {
  HttpReply saved =
      Put("profiled", R"({"activity":"profiling_segmentation","purpose":"profiling","channel":""})",
          mkt_);
  ASSERT_EQ(saved.status, 201) << saved.body;
  std::vector<double> amounts;
  for (const auto& c : people_) {
    if (c.profiled) amounts.push_back(c.total_spend);
  }
  std::sort(amounts.rbegin(), amounts.rend());
  double total = 0;
  for (double a : amounts) total += a;
  HttpReply report = g_.Get("/v1/segments/profiled/report?measure=total_spend", mkt_);
  ASSERT_EQ(report.status, 200) << report.body;
  auto r = ParseObject(report.body);
  EXPECT_EQ(r->getValue<int64_t>("customers"), static_cast<int64_t>(amounts.size()));
  EXPECT_NEAR(r->getValue<double>("revenue"), total, 0.5);
  auto steps = r->getArray("steps");
  ASSERT_EQ(steps->size(), 20u);
  for (size_t i = 0; i < steps->size(); ++i) {
    auto step = steps->getObject(static_cast<unsigned>(i));
    const int percent = step->getValue<int>("top_percent");
    const double n = static_cast<double>(amounts.size());
    const auto top = static_cast<size_t>(std::ceil(n * percent / 100.0 - 1e-9));
    EXPECT_EQ(step->getValue<size_t>("customers"), top);
    if (top < 5) {
      EXPECT_TRUE(step->isNull("revenue_share")) << percent;
      continue;
    }
    double sum = 0;
    for (size_t k = 0; k < top; ++k) sum += amounts[k];
    EXPECT_NEAR(step->getValue<double>("revenue_share"), sum / total, 1e-9) << percent;
  }
  double running = 0;
  size_t needed = 0;
  while (running < 0.8 * total) running += amounts[needed++];
  EXPECT_NEAR(r->getValue<double>("customers_for_80_percent"),
              100.0 * static_cast<double>(needed) / static_cast<double>(amounts.size()), 1e-9);

  HttpReply svg = g_.Get("/v1/segments/profiled/report?format=svg", mkt_);
  ASSERT_EQ(svg.status, 200);
  EXPECT_EQ(svg.content_type, "image/svg+xml");
  EXPECT_EQ(svg.body.rfind("<svg ", 0), 0u);
  EXPECT_NE(svg.body.find("<title"), std::string::npos);
  HttpReply csv = g_.Get("/v1/segments/profiled/report?format=csv", mkt_);
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(csv.body.rfind("top_percent,customers,revenue_share\r\n", 0), 0u);
  EXPECT_EQ(csv.body.find("sub_"), std::string::npos);  // aggregates only
  EXPECT_EQ(report.body.find("sub_"), std::string::npos);

  // A segment of fewer than five customers (the three who spent most) gives no report.
  char threshold[32];
  std::snprintf(threshold, sizeof threshold, "%.0f", amounts[2]);
  ASSERT_EQ(Put("few",
                R"({"activity":"profiling_segmentation","purpose":"profiling","channel":"",)"
                R"("where":{"field":"total_spend","gte":)" +
                    std::string(threshold) + "}}",
                mkt_)
                .status,
            201);
  HttpReply small = g_.Get("/v1/segments/few/report", mkt_);
  EXPECT_EQ(small.status, 422) << small.body;
  EXPECT_EQ(ParseObject(g_.Get("/v1/segments/few", mkt_).body)->getValue<int>("count"), 3);
  EXPECT_EQ(g_.Get("/v1/segments/profiled/report?measure=gender", mkt_).status, 422);
  EXPECT_EQ(g_.Get("/v1/segments/profiled/report?format=pdf", mkt_).status, 422);
  EXPECT_EQ(g_.Get("/v1/segments/nosuch/report", mkt_).status, 404);
}

// Inactive customers by age band: each cell against the population as generated here.
TEST_F(SegmentsE2E, TheInactivityReportCountsEachBandAndWithholdsCellsOfFewerThanFive) {
  // Forty 30-day months later, some customers came back (a visit: it moves the last
  // interaction, not the spending); the others last came when they were created.
  g_.Stop();
  constexpr int64_t kLater = 40 * 30 * 86400LL;
  g_.Start({"--test-clock-offset", std::to_string(kLater)});
  const int64_t now = std::time(nullptr) + kLater;
  for (const auto& c : people_) {
    if (c.profiled) {  // consent to profiling lasts 24 months: asked again
      ASSERT_EQ(
          g_.Post(
                "/v1/subjects/" + c.id + "/consents",
                R"({"purpose":"profiling","event":"granted","method":"web_form","notice_version":"2026-01"})",
                op_)
              .status,
          201);
    }
    if (c.visit_months_ago < 0) continue;
    // Half a month past a whole number of months (a month: a twelfth of 365 days).
    const std::string at = FormatRfc3339(now - c.visit_months_ago * 2628000LL - 1314000);
    ASSERT_EQ(g_.Post("/v1/subjects/" + c.id + "/interactions",
                      R"({"kind":"visit","occurred_at":")" + at + "\"}", op_)
                  .status,
              201);
  }
  ASSERT_EQ(Put("profiled", R"({"activity":"profiling_segmentation","purpose":"profiling"})", mkt_)
                .status,
            201);
  const char* inactivity[] = {"under 6 months", "6-12 months", "1-2 years", "2-3 years",
                              "3 years or more"};
  const char* ages[] = {"under 25", "25-34", "35-44", "45-54", "55-64", "65 and over", "unknown"};
  std::map<std::pair<int, int>, int> expected;
  int total = 0;
  for (const auto& c : people_) {
    if (!c.profiled) continue;
    const int months = c.visit_months_ago < 0 ? 40 : c.visit_months_ago;
    const int band = months < 6 ? 0 : months < 12 ? 1 : months < 24 ? 2 : months < 36 ? 3 : 4;
    // Born on 15 June: the age has or has not gone up this year yet.
    const std::time_t then = static_cast<std::time_t>(now);
    std::tm utc{};
    gmtime_r(&then, &utc);
    const bool had_birthday = utc.tm_mon > 5 || (utc.tm_mon == 5 && utc.tm_mday >= 15);
    const int age = 1900 + utc.tm_year - c.birth_year - (had_birthday ? 0 : 1);
    const int age_band = age < 25   ? 0
                         : age < 35 ? 1
                         : age < 45 ? 2
                         : age < 55 ? 3
                         : age < 65 ? 4
                                    : 5;
    ++expected[{band, age_band}];
    ++total;
  }
  HttpReply report = g_.Get("/v1/segments/profiled/report?report=inactivity", mkt_);
  ASSERT_EQ(report.status, 200) << report.body;
  EXPECT_EQ(report.body.find("sub_"), std::string::npos);
  auto r = ParseObject(report.body);
  EXPECT_EQ(r->getValue<int>("customers"), total);
  EXPECT_TRUE(r->getValue<bool>("by_age"));
  auto bands = r->getArray("bands");
  ASSERT_EQ(bands->size(), 5u);
  int withheld = 0;
  for (unsigned b = 0; b < 5; ++b) {
    auto band = bands->getObject(b);
    EXPECT_EQ(band->getValue<std::string>("inactive_for"), inactivity[b]);
    auto cells = band->getObject("ages");
    int row = 0;
    for (int a = 0; a < 7; ++a) {
      const int want = expected[{static_cast<int>(b), a}];
      row += want;
      if (want < 5) {
        EXPECT_TRUE(cells->isNull(ages[a])) << inactivity[b] << " / " << ages[a];
        withheld += want > 0;
      } else {
        EXPECT_EQ(cells->getValue<int>(ages[a]), want) << inactivity[b] << " / " << ages[a];
      }
    }
    if (row < 5) {
      EXPECT_TRUE(band->isNull("customers"));
    } else {
      EXPECT_EQ(band->getValue<int>("customers"), row) << inactivity[b];
    }
  }
  EXPECT_GT(withheld, 0) << "the population should have some small cells to withhold";
  HttpReply csv = g_.Get("/v1/segments/profiled/report?report=inactivity&format=csv", mkt_);
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(csv.body.rfind("inactive_for,age_band,customers\r\n", 0), 0u);
  EXPECT_EQ(std::count(csv.body.begin(), csv.body.end(), '\n'), 1 + 5 * 7);
  HttpReply svg = g_.Get("/v1/segments/profiled/report?report=inactivity&format=svg", mkt_);
  ASSERT_EQ(svg.status, 200);
  EXPECT_EQ(svg.body.rfind("<svg ", 0), 0u);
  EXPECT_NE(svg.body.find("<desc"), std::string::npos);
  EXPECT_EQ(g_.Get("/v1/segments/profiled/report?report=pie", mkt_).status, 422);
}

// Consent rates over time, against the events recorded here: the service restarted 75 days
// later (its clock moved), some customers withdraw, and each month's end is told apart.
TEST_F(SegmentsE2E, ConsentRatesOverTimeFollowTheEventsAndHideEmptyMonths) {
  const int64_t created = std::time(nullptr);
  g_.Stop();
  constexpr int64_t kLater = 75 * 86400;
  const std::string officer = g_.CreateKey("dpo", "officer", {});
  g_.Start({"--test-clock-offset", std::to_string(kLater)});
  int granted = 0, withdrawn = 0;
  for (size_t i = 0; i < people_.size(); ++i) {
    const auto& c = people_[i];
    if (!c.email_ok) continue;
    ++granted;
    if (i % 4 == 0) {
      ASSERT_EQ(
          g_.Post("/v1/subjects/" + c.id + "/consents",
                  R"({"purpose":"marketing.email","event":"withdrawn","method":"web_form"})", op_)
              .status,
          201);
      ++withdrawn;
    }
  }
  HttpReply report =
      g_.Get("/v1/reports/consent-rates?purpose=marketing.email&channel=email&months=4", officer);
  ASSERT_EQ(report.status, 200) << report.body;
  auto points = ParseObject(report.body)->getArray("points");
  ASSERT_EQ(points->size(), 4u);
  for (unsigned i = 0; i < 4; ++i) {
    auto p = points->getObject(i);
    const int64_t at = static_cast<int64_t>(*ParseRfc3339(p->getValue<std::string>("at")));
    if (i + 1 < 4) {
      EXPECT_LT(at, created + kLater - 60);
    }
    if (at < created - 5) {  // before anyone was on file
      EXPECT_EQ(p->getValue<int>("customers"), 0);
      EXPECT_TRUE(p->isNull("rate"));
      continue;
    }
    if (at < created + 5) continue;  // the second they were created: either answer is right
    EXPECT_EQ(p->getValue<int>("customers"), static_cast<int>(people_.size()));
    const int allowed = i + 1 == 4 ? granted - withdrawn : granted;
    EXPECT_EQ(p->getValue<int>("allowed"), allowed) << i;
    EXPECT_NEAR(p->getValue<double>("rate"),
                static_cast<double>(allowed) / static_cast<double>(people_.size()), 1e-9);
  }
  EXPECT_EQ(g_.Get("/v1/reports/consent-rates?purpose=marketing.email", mkt_).status, 200);
  EXPECT_EQ(g_.Get("/v1/reports/consent-rates?purpose=marketing.email", op_).status, 403);
  EXPECT_EQ(g_.Get("/v1/reports/consent-rates", officer).status, 422);
  EXPECT_EQ(g_.Get("/v1/reports/consent-rates?purpose=nope", officer).status, 422);
  EXPECT_EQ(g_.Get("/v1/reports/consent-rates?purpose=marketing.email&channel=fax", officer).status,
            422);
  EXPECT_EQ(g_.Get("/v1/reports/consent-rates?purpose=marketing.email&months=0", officer).status,
            422);
  HttpReply csv = g_.Get("/v1/reports/consent-rates?purpose=marketing.email&format=csv", officer);
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(csv.body.rfind("at,customers,allowed,rate\r\n", 0), 0u);
  EXPECT_EQ(std::count(csv.body.begin(), csv.body.end(), '\n'), 13);
  HttpReply svg = g_.Get("/v1/reports/consent-rates?purpose=marketing.email&format=svg", officer);
  ASSERT_EQ(svg.status, 200);
  EXPECT_EQ(svg.body.rfind("<svg ", 0), 0u);
}

}  // namespace
}  // namespace garde::testing

// Retention through the real binary, with time moved by the test-only clock offset: the
// register's periods are applied to the day, held fields go when their hold ends, a sweep
// killed midway resumes without doing anything twice, and officers read the runs.
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <random>
#include <sstream>
#include <thread>

#include "garde/base/clock.h"
#include "garde_process.h"

namespace garde::testing {
namespace {

class RetentionE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management", "orders_invoicing"});
    officer_key_ = g_.CreateKey("dpo", "officer", {});
    g_.Start();
  }
  std::string CreateSubject(const std::string& fields) {
    HttpReply r =
        g_.Post("/v1/subjects", R"({"kind":"person","fields":)" + fields + "}", operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonString(r.body, "id");
  }
  int64_t Created(const std::string& id) {
    return std::stoll(g_.Sql("SELECT created_at FROM subjects WHERE id='" + id + "'")[0][0]);
  }
  std::string Status(const std::string& id) {
    return g_.Sql("SELECT status FROM subjects WHERE id='" + id + "'")[0][0];
  }
  // `garde retention run` with the service's clock at `when`.
  Poco::JSON::Object::Ptr RunAt(int64_t when, bool dry_run = false) {
    std::vector<std::string> args = {"retention",  "run",         "--data-dir", g_.data_dir(),
                                     "--policies", g_.policies(), "--json"};
    if (dry_run) args.push_back("--dry-run");
    RunResult r =
        RunGarde(args, {{"GARDE_TEST_CLOCK_OFFSET", std::to_string(when - SystemClock().Now())}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ParseObject(r.LastLine());
  }
  GardeProcess g_;
  std::string operator_key_, officer_key_;
};

TEST_F(RetentionE2E, AProspectThreeYearsAndADayWithoutContactIsErasedOneTwoDaysYoungerIsNot) {
  const std::string older =
      CreateSubject(R"({"email":"older.prospect@example.org","first_name":"Olga"})");
  ASSERT_EQ(g_.Stop(), 0);
  g_.Start({"--test-clock-offset", std::to_string(2 * 86400)});  // two days later
  const std::string younger =
      CreateSubject(R"({"email":"younger.prospect@example.org","first_name":"Yann"})");
  ASSERT_EQ(g_.Stop(), 0);
  ASSERT_EQ(Created(younger) - Created(older) >= 2 * 86400, true);
  // Three years and a day after the older one's last contact: two days short for the other.
  const int64_t when = *AddIsoDuration(Created(older), "P3Y") + 86400;

  auto dry = RunAt(when, /*dry_run=*/true);
  EXPECT_EQ(dry->getObject("report")->getValue<int>("subjects_erased"), 1)
      << dry->getObject("report");
  EXPECT_EQ(Status(older), "active");  // a dry run changes nothing

  auto run = RunAt(when);
  auto report = run->getObject("report");
  EXPECT_EQ(report->getValue<int>("subjects_erased"), 1);
  EXPECT_EQ(report->getValue<int>("subjects_scanned"), 2);
  EXPECT_EQ(Status(older), "erased");
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM subject_fields WHERE subject_id='" + older + "'")[0][0],
            "0");
  EXPECT_EQ(g_.Sql("SELECT length(wrapped_dek) FROM subjects WHERE id='" + older + "'")[0][0], "0");
  EXPECT_EQ(Status(younger), "active");
  // By activity and rule, counts only: no id, no value.
  std::ostringstream json;
  report->stringify(json);
  EXPECT_NE(json.str().find("P3Y after last_interaction"), std::string::npos) << json.str();
  EXPECT_EQ(json.str().find("sub_"), std::string::npos);
  EXPECT_EQ(json.str().find("older.prospect"), std::string::npos);
  // Told downstream, kept from any restore, audited; the log still verifies.
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM outbox WHERE topic='subject.erased' AND payload LIKE '%" +
                   older + "%retention%'")[0][0],
            "1");
  EXPECT_NE(ReadFile(g_.data_dir() + "/tombstones.log").find(older + " ret_"), std::string::npos);
  g_.Start();
  HttpReply audit = g_.Get("/v1/audit?subject=" + older + "&action=retention.erase", officer_key_);
  EXPECT_NE(audit.body.find("retention.erase"), std::string::npos) << audit.body;
  // Two days later the younger one goes too; the older one is not erased twice.
  ASSERT_EQ(g_.Stop(), 0);
  auto later = RunAt(when + 2 * 86400 + 3600)->getObject("report");
  EXPECT_EQ(later->getValue<int>("subjects_erased"), 1);
  EXPECT_EQ(Status(younger), "erased");
  EXPECT_EQ(RunGarde({"audit", "verify", "--data-dir", g_.data_dir(), "--policies", g_.policies()})
                .exit_code,
            0);
}

TEST_F(RetentionE2E, HeldInvoicingFieldsAreDestroyedTheDayTheirTenYearHoldEnds) {
  const std::string purchase = FormatRfc3339(SystemClock().Now() - 40 * 86400).substr(0, 10);
  const std::string id = CreateSubject(
      R"({"email":"held.invoice@example.org","first_name":"Hana","customer_number":"C-9001",)"
      R"("last_purchase":")" +
      purchase + R"("})");
  HttpReply opened =
      g_.Post("/v1/requests", R"({"type":"erasure","subject":")" + id + R"("})", operator_key_);
  ASSERT_EQ(opened.status, 201) << opened.body;
  const std::string rid = JsonString(opened.body, "id");
  ASSERT_EQ(g_.Post("/v1/requests/" + rid + ":verify", R"({"note":"letter"})", officer_key_).status,
            200);
  ASSERT_EQ(g_.Post("/v1/requests/" + rid + ":complete", "{}", officer_key_).status, 200);
  ASSERT_EQ(Status(id), "restricted");
  const std::string held =
      g_.Sql("SELECT COUNT(*) FROM subject_fields WHERE subject_id='" + id + "'")[0][0];
  ASSERT_NE(held, "0");
  ASSERT_EQ(g_.Stop(), 0);
  const int64_t ends = *AddIsoDuration(DaysFromCivil(*ParseIsoDate(purchase)) * 86400, "P10Y");

  auto before = RunAt(ends - 86400)->getObject("report");  // the day before
  EXPECT_EQ(before->getValue<int>("holds_released"), 0);
  EXPECT_EQ(Status(id), "restricted");
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM subject_fields WHERE subject_id='" + id + "'")[0][0],
            held);

  auto on_the_day = RunAt(ends + 3600)->getObject("report");
  EXPECT_EQ(on_the_day->getValue<int>("holds_released"), 1);
  EXPECT_EQ(on_the_day->getObject("by_activity")
                ->getObject("orders_invoicing")
                ->getValue<int>("holds_released"),
            1);
  EXPECT_EQ(Status(id), "erased");
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM subject_fields WHERE subject_id='" + id + "'")[0][0], "0");
  EXPECT_EQ(g_.Sql("SELECT length(wrapped_dek) FROM subjects WHERE id='" + id + "'")[0][0], "0");
  // The tombstone log now says "nothing kept": a restore destroys the held fields too.
  const std::string log = ReadFile(g_.data_dir() + "/tombstones.log");
  const size_t last = log.rfind(id + " ");
  ASSERT_NE(last, std::string::npos);
  EXPECT_EQ(log.substr(last, log.find('\n', last) - last).find(','), std::string::npos) << log;
}

TEST_F(RetentionE2E, AKilledSweepResumesAndErasesEachSubjectOnce) {
  for (int b = 0; b < 3; ++b) {
    std::string rows = "[";
    for (int i = 0; i < 1000; ++i) {
      rows += std::string(i ? "," : "") + R"({"kind":"person","fields":{"email":"sweep)" +
              std::to_string(b * 1000 + i) + R"(@example.org","first_name":"Sam"}})";
    }
    ASSERT_EQ(g_.Post("/v1/subjects:batch", rows + "]", operator_key_).status, 200);
  }
  ASSERT_EQ(g_.Stop(), 0);
  const int64_t when = SystemClock().Now() + 4 * 366 * 86400;
  const std::string offset = std::to_string(when - SystemClock().Now());
  const std::string logs = g_.data_dir() + "-logs";
  std::mt19937 rng(5);
  // Killed as soon as a run has committed another page (plus up to 20 ms): the kill lands
  // between pages, or inside one, on any machine speed (sanitizer builds included).
  auto erased_so_far = [&] {
    const auto state = g_.Sql(
        "SELECT json_extract(report, '$.subjects_erased'), finished_at FROM retention_runs "
        "WHERE dry_run = 0 ORDER BY seq DESC LIMIT 1");
    return state.empty() || state[0][1] != "0" ? -1 : std::stoi(state[0][0]);
  };
  int cut_midway = 0;
  int seen = 0;
  for (int i = 0; i < 4; ++i) {
    // posix_spawn has no per-child environment in the harness: set it for this process.
    ::setenv("GARDE_TEST_CLOCK_OFFSET", offset.c_str(), 1);
    const int pid =
        SpawnGarde({"retention", "run", "--data-dir", g_.data_dir(), "--policies", g_.policies()},
                   logs + "/ret.out", logs + "/ret.err");
    ::unsetenv("GARDE_TEST_CLOCK_OFFSET");
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (erased_so_far() <= seen && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 20)(rng)));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    const int now_erased = erased_so_far();
    if (now_erased > 0 && now_erased < 3000) ++cut_midway;
    if (now_erased < 0 || now_erased >= 3000) break;  // the run finished before the kill
    seen = now_erased;
  }
  EXPECT_GT(cut_midway, 0);
  auto report = RunAt(when)->getObject("report");
  const int erased_in_runs = std::stoi(g_.Sql(
      "SELECT COALESCE(SUM(json_extract(report, '$.subjects_erased')), 0) FROM retention_runs "
      "WHERE dry_run = 0")[0][0]);
  EXPECT_EQ(erased_in_runs, 3000) << report;
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM subjects WHERE status='erased'")[0][0], "3000");
  g_.Start();
  ASSERT_EQ(g_.Stop(), 0);
  EXPECT_EQ(
      g_.AuditSql("SELECT COUNT(*) FROM audit_log WHERE entry LIKE '%\"retention.erase\"%'")[0][0],
      "3000");
}

TEST_F(RetentionE2E, OfficersReadRunsOthersCannotAndBadInputIs4xx) {
  const std::string marketing = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
  HttpReply started = g_.Post("/v1/retention/runs", R"({"dry_run":true})", officer_key_);
  ASSERT_EQ(started.status, 201) << started.body;
  auto run = ParseObject(started.body);
  EXPECT_TRUE(run->getValue<bool>("dry_run"));
  EXPECT_EQ(run->getValue<std::string>("status"), "completed");
  HttpReply one = g_.Get("/v1/retention/runs/" + run->getValue<std::string>("id"), officer_key_);
  ASSERT_EQ(one.status, 200) << one.body;
  HttpReply list = g_.Get("/v1/retention/runs", officer_key_);
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_GE(ParseObject(list.body)->getArray("items")->size(), 1u);
  EXPECT_EQ(g_.Get("/v1/retention/runs", marketing).status, 403);
  EXPECT_EQ(g_.Post("/v1/retention/runs", "{}", marketing).status, 403);
  EXPECT_EQ(g_.Get("/v1/retention/runs/ret_nope", officer_key_).status, 404);
  EXPECT_EQ(g_.Get("/v1/retention/runs?cursor=x", officer_key_).status, 422);
  EXPECT_EQ(g_.Post("/v1/retention/runs", R"({"dry_run":"yes"})", officer_key_).status, 422);
  EXPECT_EQ(g_.Post("/v1/retention/runs", R"({"at":"2030-01-01"})", officer_key_).status, 422);
  EXPECT_EQ(g_.Post("/v1/retention/runs", "{", officer_key_).status, 400);
  // The CLI refuses a real run ahead of the clock.
  RunResult ahead = RunGarde({"retention", "run", "--data-dir", g_.data_dir(), "--policies",
                              g_.policies(), "--at", "2099-01-01"});
  EXPECT_EQ(ahead.exit_code, 1);
  EXPECT_NE(ahead.err.find("--dry-run"), std::string::npos) << ahead.err;
}

}  // namespace
}  // namespace garde::testing

namespace garde::testing {
namespace {

// Purchases and contacts move last_interaction_at (the anchor of most periods) and the
// aggregates the seeds segment on; the amounts are sealed; the sweep keeps spend_30d current.
TEST_F(RetentionE2E, InteractionsMoveTheAnchorAndTheAggregates) {
  const std::string marketing = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
  const std::string id = CreateSubject(R"({"email":"buyer@example.org","first_name":"Bea"})");
  ASSERT_EQ(
      g_.Post(
            "/v1/subjects/" + id + "/consents",
            R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})",
            operator_key_)
          .status,
      201);
  const int64_t now = SystemClock().Now();
  const std::string body =
      R"({"interactions":[{"kind":"purchase","amount":120.5,"occurred_at":")" +
      FormatRfc3339(now - 40 * 86400) + R"("},{"kind":"purchase","amount":80,"occurred_at":")" +
      FormatRfc3339(now - 10 * 86400) + R"("},{"kind":"contact","occurred_at":")" +
      FormatRfc3339(now - 2 * 86400) + R"("}]})";
  HttpReply recorded = g_.Post("/v1/subjects/" + id + "/interactions", body, operator_key_);
  ASSERT_EQ(recorded.status, 201) << recorded.body;
  HttpReply read = g_.Get("/v1/subjects/" + id, marketing, "marketing_email");
  ASSERT_EQ(read.status, 200) << read.body;
  auto fields = ParseObject(read.body)->getObject("fields");
  EXPECT_EQ(fields->getValue<double>("spend_30d"), 80.0) << read.body;
  EXPECT_EQ(fields->getValue<std::string>("last_purchase"),
            FormatRfc3339(now - 10 * 86400).substr(0, 10));
  HttpReply invoicing = g_.Get("/v1/subjects/" + id, operator_key_, "orders_invoicing");
  EXPECT_EQ(ParseObject(invoicing.body)->getObject("fields")->getValue<double>("total_spend"),
            200.5);
  // Interactions older than the last one known never move it back.
  EXPECT_EQ(ParseObject(read.body)->getValue<std::string>("last_interaction_at"),
            FormatRfc3339(Created(id)));
  // The access package gives them back (Art. 15), amounts included.
  HttpReply access =
      g_.Post("/v1/requests", R"({"type":"access","subject":")" + id + R"("})", operator_key_);
  ASSERT_EQ(access.status, 201) << access.body;
  const std::string aid = JsonString(access.body, "id");
  ASSERT_EQ(
      g_.Post("/v1/requests/" + aid + ":verify", R"({"note":"in person"})", officer_key_).status,
      200);
  ASSERT_EQ(g_.Post("/v1/requests/" + aid + ":complete", "{}", officer_key_).status, 200);
  HttpReply package = g_.Get("/v1/requests/" + aid + "/package", officer_key_);
  ASSERT_EQ(package.status, 200) << package.body;
  auto listed = ParseObject(package.body)->getArray("interactions");
  ASSERT_EQ(listed->size(), 3u) << package.body;
  EXPECT_EQ(listed->getObject(0)->getValue<double>("amount"), 120.5);
  EXPECT_EQ(listed->getObject(2)->getValue<std::string>("kind"), "contact");
  // Bad input changes nothing.
  const std::string before = g_.Sql("SELECT COUNT(*) FROM interactions")[0][0];
  for (const char* bad :
       {R"({"kind":"gift"})", R"({"kind":"contact","amount":3})",
        R"({"kind":"purchase","amount":-1})", R"({"kind":"visit","where":"shop"})",
        R"({"kind":"visit","occurred_at":"2099-01-01T00:00:00Z"})", R"({"interactions":[]})",
        R"([1])"}) {
    HttpReply r = g_.Post("/v1/subjects/" + id + "/interactions", bad, operator_key_);
    EXPECT_EQ(r.status, 422) << bad << " " << r.body;
  }
  EXPECT_EQ(
      g_.Post("/v1/subjects/" + id + "/interactions", R"({"kind":"visit"})", marketing).status,
      403);
  EXPECT_EQ(
      g_.Post("/v1/subjects/sub_nope/interactions", R"({"kind":"visit"})", operator_key_).status,
      404);
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM interactions")[0][0], before);
  // The batch API records them too.
  HttpReply batch =
      g_.Post("/v1/subjects:batch", R"([{"id":")" + id + R"(","interactions":[{"kind":"visit"}]}])",
              operator_key_);
  ASSERT_EQ(batch.status, 200);
  EXPECT_NE(batch.body.find(R"("status":200)"), std::string::npos) << batch.body;
  ASSERT_EQ(g_.Stop(), 0);
  // Amounts are sealed: not in the database file in clear.
  const std::string db = ReadFile(g_.db_path()) + ReadFile(g_.db_path() + "-wal");
  EXPECT_EQ(db.find("120.50"), std::string::npos);
  EXPECT_EQ(db.find("200.5"), std::string::npos);

  // Twenty-five days on, the purchase of ten days ago has left the window: the sweep says so.
  auto report = RunAt(now + 25 * 86400)->getObject("report");
  EXPECT_GE(report->getValue<int>("spend_refreshed"), 1);
  g_.Start();
  read = g_.Get("/v1/subjects/" + id, marketing, "marketing_email");
  EXPECT_EQ(ParseObject(read.body)->getObject("fields")->getValue<double>("spend_30d"), 0.0)
      << read.body;
  ASSERT_EQ(g_.Stop(), 0);

  // A contact two years on moves the anchor: three years and a day after creation, the
  // customer is kept.
  g_.Start({"--test-clock-offset", std::to_string(2 * 365 * 86400)});
  ASSERT_EQ(g_.Post("/v1/subjects/" + id + "/interactions", R"({"kind":"contact"})", operator_key_)
                .status,
            201);
  ASSERT_EQ(g_.Stop(), 0);
  RunAt(*AddIsoDuration(Created(id), "P3Y") + 86400);
  EXPECT_EQ(Status(id), "active");
  // Erasure takes the interactions with it.
  g_.Start();
  HttpReply opened =
      g_.Post("/v1/requests", R"({"type":"erasure","subject":")" + id + R"("})", operator_key_);
  const std::string rid = JsonString(opened.body, "id");
  ASSERT_EQ(g_.Post("/v1/requests/" + rid + ":verify", R"({"note":"letter"})", officer_key_).status,
            200);
  ASSERT_EQ(g_.Post("/v1/requests/" + rid + ":complete", "{}", officer_key_).status, 200);
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM interactions WHERE subject_id='" + id + "'")[0][0], "0");
}

}  // namespace
}  // namespace garde::testing

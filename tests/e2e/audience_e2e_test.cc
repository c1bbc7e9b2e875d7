// Campaign audiences against a brute-force oracle over a generated population.
#include <gtest/gtest.h>
#include <sodium.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "garde/base/clock.h"
#include "garde_process.h"

namespace garde::testing {
namespace {

struct Person {
  std::string id;
  std::string gender;
  std::string postal_code;
  int spend_30d = 0;
  int days_since_purchase = 0;
  int consent = 0;  // 0 none, 1 granted, 2 granted then withdrawn, 3 objected to marketing
};

std::set<std::string> Ids(const std::string& ndjson) {
  std::set<std::string> out;
  std::istringstream lines(ndjson);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty()) out.insert(JsonString(line, "id"));
  }
  return out;
}

TEST(AudienceE2E, WomenIn75WhoSpentOver500LastMonthAndMayBeEmailedMatchTheOracle) {
  GardeProcess g;
  const std::string op = g.CreateKey("crm", "operator", {"customer_management"});
  const std::string mkt = g.CreateKey("campaigns", "marketing", {"marketing_email"});
  const std::string officer = g.CreateKey("dpo", "officer", {});
  g.Start();

  std::mt19937 rng(20261122);
  const char* genders[] = {"F", "M", "X"};
  const char* codes[] = {"75001", "75011", "75020", "69003", "13008", "92100"};
  const int64_t today = SystemClock().Now() / 86400;
  std::vector<Person> people;
  for (int i = 0; i < 240; ++i) {
    Person p;
    p.gender = genders[rng() % 3];
    p.postal_code = codes[rng() % 6];
    p.spend_30d = static_cast<int>(rng() % 1000);
    p.days_since_purchase = static_cast<int>(rng() % 60);
    const int draw = static_cast<int>(rng() % 6);  // none, granted x3, withdrawn, objected
    p.consent = draw == 0 ? 0 : draw <= 3 ? 1 : draw - 2;
    const std::string body =
        R"({"kind":"person","fields":{"email":"pop)" + std::to_string(i) +
        R"(@example.org","first_name":"P)" + std::to_string(i) + R"(","gender":")" + p.gender +
        R"(","postal_code":")" + p.postal_code + R"(","spend_30d":)" + std::to_string(p.spend_30d) +
        R"(,"last_purchase":")" + FormatIsoDate(CivilFromDays(today - p.days_since_purchase)) +
        R"(","birth_date":"1980-01-01"}})";
    HttpReply r = g.Post("/v1/subjects", body, op);
    ASSERT_EQ(r.status, 201) << r.body;
    p.id = JsonString(r.body, "id");
    auto record = [&](const std::string& purpose, const std::string& event) {
      std::string c =
          R"({"purpose":")" + purpose + R"(","event":")" + event + R"(","method":"web_form")";
      if (event == "granted") c += R"(,"notice_version":"2026-01")";
      c += "}";
      ASSERT_EQ(g.Post("/v1/subjects/" + p.id + "/consents", c, op).status, 201);
    };
    if (p.consent >= 1) record("marketing.email", "granted");
    if (p.consent == 2) record("marketing.email", "withdrawn");
    if (p.consent == 3) record("marketing.post", "objected");
    people.push_back(p);
  }

  auto erase = [&](const std::string& id) {
    HttpReply e = g.Post("/v1/requests", R"({"type":"erasure","subject":")" + id + R"("})", op);
    ASSERT_EQ(e.status, 201) << e.body;
    const std::string erasure = JsonString(e.body, "id");
    for (const char* step : {"verify", "start", "complete"}) {
      ASSERT_EQ(g.Post("/v1/requests/" + erasure + ":" + step, "{}", officer).status, 200) << step;
    }
  };
  // A customer who objected is erased, and the CRM imports their address again with
  // consent: the new record matches, but the address stays on the suppression list.
  const Person* objector = nullptr;
  for (const auto& p : people) {
    if (p.consent == 3) objector = &p;
  }
  ASSERT_NE(objector, nullptr) << "the generated population should hold an objection";
  const size_t objector_at = static_cast<size_t>(objector - people.data());
  erase(objector->id);
  HttpReply twin = g.Post(
      "/v1/subjects",
      R"({"kind":"person","fields":{"email":"pop)" + std::to_string(objector_at) +
          R"(@example.org","gender":"F","postal_code":"75002","spend_30d":900,"last_purchase":")" +
          FormatIsoDate(CivilFromDays(today - 1)) + R"("}})",
      op);
  ASSERT_EQ(twin.status, 201) << twin.body;
  const std::string twin_id = JsonString(twin.body, "id");
  ASSERT_EQ(
      g.Post(
           "/v1/subjects/" + twin_id + "/consents",
           R"({"purpose":"marketing.email","event":"granted","method":"web_form","notice_version":"2026-01"})",
           op)
          .status,
      201);
  HttpReply twin_check =
      g.Get("/v1/consent/check?subject=" + twin_id + "&purpose=marketing.email&channel=email", mkt);
  EXPECT_NE(twin_check.body.find("\"suppressed\""), std::string::npos) << twin_check.body;

  const std::string request =
      R"({"activity":"marketing_email","purpose":"marketing.email","channel":"email",
          "where":{"all":[{"field":"gender","eq":"f"},{"field":"postal_code","prefix":"75"},
                          {"field":"spend_30d","gt":500},{"field":"last_purchase","within":"P30D"}]},
          "fields":["first_name","email"]})";
  HttpReply r = g.Post("/v1/audiences", request, mkt);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/x-ndjson");
  std::set<std::string> expected;
  for (const auto& p : people) {
    if (p.gender == "F" && p.postal_code.rfind("75", 0) == 0 && p.spend_30d > 500 &&
        p.days_since_purchase <= 30 && p.consent == 1) {
      expected.insert(p.id);
    }
  }
  ASSERT_GE(expected.size(), 1u) << "the generated population should hold some matches";
  EXPECT_EQ(Ids(r.body), expected);
  EXPECT_EQ(Ids(r.body).count(twin_id), 0u);
  EXPECT_EQ(r.headers["x-audience-count"], std::to_string(expected.size()));
  // Only the requested (declared) fields: no birth date, no gender, no spend.
  EXPECT_EQ(r.body.find("birth_date"), std::string::npos);
  EXPECT_EQ(r.body.find("spend_30d"), std::string::npos);
  EXPECT_NE(r.body.find("\"email\":\"pop"), std::string::npos);

  // The list's hash: SHA-256 of the sorted ids, one a line.
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  for (const auto& id : expected) {  // a set: sorted
    const std::string line = id + "\n";
    crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(line.data()),
                              line.size());
  }
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, digest);
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  EXPECT_EQ(r.headers["x-audience-sha256"], hex);
  // The campaign is audited with its size and list hash.
  HttpReply audit = g.Get("/v1/audit?action=audience.build", officer);
  EXPECT_NE(audit.body.find("list_sha256:" + r.headers["x-audience-sha256"]), std::string::npos)
      << audit.body;

  // A member unsubscribes in one click from the mail client and leaves the next audience.
  const std::string leaving = *expected.begin();
  HttpReply links = g.Post("/v1/subjects/" + leaving + "/links",
                           R"({"uses":["unsubscribe"],"purpose":"marketing.email"})", op);
  const size_t at = links.body.find("/u/");
  const std::string path = links.body.substr(at, links.body.find('"', at) - at);
  ASSERT_EQ(
      g.Request("POST", path, "List-Unsubscribe=One-Click", {}, "application/x-www-form-urlencoded")
          .status,
      200);
  r = g.Post("/v1/audiences", request, mkt);
  expected.erase(leaving);
  EXPECT_EQ(Ids(r.body), expected);

  // Filter values kept in memory since the first audience follow rectifications: a member
  // who moves away leaves, a consenting customer who moves to Paris joins.
  ASSERT_GE(expected.size(), 2u);
  const std::string moving_away = *expected.rbegin();
  ASSERT_EQ(
      g.Patch("/v1/subjects/" + moving_away, R"({"fields":{"postal_code":"69003"}})", op).status,
      200);
  expected.erase(moving_away);
  const Person* moving_in = nullptr;
  for (const auto& p : people) {
    if (p.gender == "F" && p.postal_code.rfind("75", 0) != 0 && p.spend_30d > 500 &&
        p.days_since_purchase <= 30 && p.consent == 1) {
      moving_in = &p;
    }
  }
  ASSERT_NE(moving_in, nullptr) << "the generated population should hold one to move in";
  ASSERT_EQ(
      g.Patch("/v1/subjects/" + moving_in->id, R"({"fields":{"postal_code":"75 011"}})", op).status,
      200);
  expected.insert(moving_in->id);
  r = g.Post("/v1/audiences", request, mkt);
  EXPECT_EQ(Ids(r.body), expected);

  // A new customer joins the next audience; an erased member leaves it.
  r = g.Post("/v1/subjects",
             R"({"kind":"person","fields":{"email":"newcomer@example.org","first_name":"N",
                 "gender":"F","postal_code":"75002","spend_30d":900,"last_purchase":")" +
                 FormatIsoDate(CivilFromDays(today)) + R"("}})",
             op);
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string newcomer = JsonString(r.body, "id");
  ASSERT_EQ(
      g.Post(
           "/v1/subjects/" + newcomer + "/consents",
           R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})",
           op)
          .status,
      201);
  expected.insert(newcomer);
  const std::string erased = moving_in->id;
  erase(erased);
  expected.erase(erased);
  r = g.Post("/v1/audiences", request, mkt);
  EXPECT_EQ(Ids(r.body), expected);

  // An empty `where` filters nothing, as leaving it out does; under `not`, it keeps nobody.
  const std::set<std::string> all_consenting = Ids(
      g.Post("/v1/audiences", R"({"activity":"marketing_email","purpose":"marketing.email"})", mkt)
          .body);
  ASSERT_GT(all_consenting.size(), expected.size());  // more than the filtered audience
  HttpReply empty_where =
      g.Post("/v1/audiences",
             R"({"activity":"marketing_email","purpose":"marketing.email","where":{}})", mkt);
  ASSERT_EQ(empty_where.status, 200) << empty_where.body;
  EXPECT_EQ(Ids(empty_where.body), all_consenting);
  HttpReply nobody = g.Post(
      "/v1/audiences",
      R"({"activity":"marketing_email","purpose":"marketing.email","where":{"not":{}}})", mkt);
  ASSERT_EQ(nobody.status, 200) << nobody.body;
  EXPECT_TRUE(Ids(nobody.body).empty());

  // CSV for spreadsheets.
  HttpReply csv =
      g.Post("/v1/audiences",
             R"({"activity":"marketing_email","purpose":"marketing.email","format":"csv",
                             "where":{"any":[{"field":"postal_code","in":["69003"]},{"not":{"field":"gender","in":["F","M","X"]}}]},
                             "fields":["first_name","postal_code"]})",
             mkt);
  ASSERT_EQ(csv.status, 200) << csv.body;
  EXPECT_EQ(csv.body.rfind("id,first_name,postal_code\r\n", 0), 0u) << csv.body;
}

// The index of the first audience is kept between runs as a sealed snapshot: a restart
// starts from it and applies what changed since, and any erasure makes it unreadable.
TEST(AudienceE2E, ARestartStartsFromTheSealedSnapshotAndAnErasureShredsIt) {
  GardeProcess g;
  const std::string op = g.CreateKey("crm", "operator", {"customer_management"});
  const std::string mkt = g.CreateKey("campaigns", "marketing", {"marketing_email"});
  const std::string officer = g.CreateKey("dpo", "officer", {});
  g.Start();
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) {
    HttpReply r =
        g.Post("/v1/subjects",
               R"({"kind":"person","fields":{"email":"snapshot-planted-)" + std::to_string(i) +
                   R"(@example.org","first_name":"Zephyrine)" + std::to_string(i) +
                   R"(","gender":"F","postal_code":")" + (i % 3 == 0 ? "69003" : "75011") +
                   R"(","spend_30d":)" + std::to_string(400 + 10 * i) + "}}",
               op);
    ASSERT_EQ(r.status, 201) << r.body;
    ids.push_back(JsonString(r.body, "id"));
    ASSERT_EQ(
        g.Post(
             "/v1/subjects/" + ids.back() + "/consents",
             R"({"purpose":"marketing.email","event":"granted","method":"web_form","notice_version":"2026-01"})",
             op)
            .status,
        201);
  }
  const std::string request =
      R"({"activity":"marketing_email","purpose":"marketing.email","channel":"email",
          "where":{"all":[{"field":"postal_code","prefix":"75"},{"field":"spend_30d","gt":500}]},
          "fields":["email"]})";
  std::set<std::string> expected;
  for (int i = 0; i < 30; ++i) {
    if (i % 3 != 0 && 400 + 10 * i > 500) expected.insert(ids[static_cast<size_t>(i)]);
  }
  HttpReply r = g.Post("/v1/audiences", request, mkt);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Ids(r.body), expected);
  ASSERT_TRUE(g.WaitForLog("audience snapshot written", 1)) << g.Logs();
  const std::string snapshot_path = g.data_dir() + "/audience.snapshot";
  const std::string file = ReadFile(snapshot_path);
  ASSERT_FALSE(file.empty());
  EXPECT_EQ(file.find("Zephyrine"), std::string::npos);
  EXPECT_EQ(file.find("snapshot-planted"), std::string::npos);
  EXPECT_EQ(file.find("75011"), std::string::npos);
  EXPECT_EQ(g.CountRows("snapshot_keys"), 1);

  // A restart reads the snapshot back as it starts, before any audience asks for it.
  g.Stop();
  g.Start();
  EXPECT_TRUE(g.WaitForLog("audience snapshot read", 1)) << g.Logs();
  r = g.Post("/v1/audiences", request, mkt);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Ids(r.body), expected);
  EXPECT_EQ(g.LogCount("audience snapshot read"), 1u) << g.Logs();

  // What changes after it is applied on top of it, after the next restart too: a member
  // moves away (written at the stop, the index having moved on).
  const std::string moving = *expected.begin();
  ASSERT_EQ(g.Patch("/v1/subjects/" + moving, R"({"fields":{"postal_code":"69003"}})", op).status,
            200);
  expected.erase(moving);
  EXPECT_EQ(Ids(g.Post("/v1/audiences", request, mkt).body), expected);
  g.Stop();
  EXPECT_EQ(g.LogCount("audience snapshot written"), 2u) << g.Logs();
  g.Start();
  EXPECT_EQ(Ids(g.Post("/v1/audiences", request, mkt).body), expected);
  EXPECT_EQ(g.LogCount("audience snapshot read"), 2u) << g.Logs();

  // An erasure destroys the snapshot's key in its own transaction: the next run cannot
  // read the snapshot, and rebuilds from the vault without the erased member.
  auto erase = [&](const std::string& id) {
    HttpReply e = g.Post("/v1/requests", R"({"type":"erasure","subject":")" + id + R"("})", op);
    ASSERT_EQ(e.status, 201) << e.body;
    for (const char* step : {"verify", "start", "complete"}) {
      ASSERT_EQ(
          g.Post("/v1/requests/" + JsonString(e.body, "id") + ":" + step, "{}", officer).status,
          200);
    }
  };
  const std::string erased = *expected.begin();
  erase(erased);
  expected.erase(erased);
  EXPECT_EQ(g.CountRows("snapshot_keys"), 0);
  ::kill(g.pid(), SIGKILL);  // no chance to write a new one
  g.Stop();
  EXPECT_EQ(g.CountRows("snapshot_keys"), 0);
  g.Start();
  EXPECT_EQ(Ids(g.Post("/v1/audiences", request, mkt).body), expected);
  EXPECT_EQ(g.LogCount("audience snapshot read"), 2u) << g.Logs();
  ASSERT_TRUE(g.WaitForLog("audience snapshot written", 3)) << g.Logs();

  // A stop first applies what changed since the last audience, erasures included, and
  // writes an index that saw them with a fresh key.
  const std::string erased_too = *expected.rbegin();
  erase(erased_too);
  expected.erase(erased_too);
  g.Stop();
  EXPECT_EQ(g.LogCount("audience snapshot written"), 4u) << g.Logs();
  EXPECT_EQ(g.CountRows("snapshot_keys"), 1);
  g.Start();
  EXPECT_EQ(Ids(g.Post("/v1/audiences", request, mkt).body), expected);
  EXPECT_EQ(g.LogCount("audience snapshot read"), 3u) << g.Logs();
}

TEST(AudienceE2E, RequestsBeyondTheActivityAreRefused) {
  GardeProcess g;
  const std::string mkt = g.CreateKey("campaigns", "marketing", {"marketing_email"});
  const std::string op = g.CreateKey("crm", "operator", {"customer_management"});
  g.Start();
  struct Case {
    std::string body;
    int status;
  } cases[] = {
      {R"({"activity":"customer_management","purpose":"service.orders"})", 403},  // not bound
      {R"({"activity":"marketing_email","purpose":"marketing.sms"})", 422},       // not its purpose
      {R"({"activity":"marketing_email","purpose":"marketing.email","fields":["birth_date"]})",
       422},
      {R"({"activity":"marketing_email","purpose":"marketing.email","where":{"field":"birth_date","eq":"1980-01-01"}})",
       422},
      {R"({"activity":"marketing_email","purpose":"marketing.email","where":{"field":"gender"}})",
       422},
      {R"({"activity":"marketing_email","purpose":"marketing.email","where":{"field":"spend_30d","gt":"lots"}})",
       422},
      {R"({"activity":"marketing_email","purpose":"marketing.email","where":{"field":"last_purchase","within":"soon"}})",
       422},
      {R"({"activity":"marketing_email","purpose":"marketing.email","where":{"all":"x"}})", 422},
      {R"({"activity":"marketing_email","purpose":"marketing.email","format":"xml"})", 422},
      {R"({"activity":"marketing_email")", 400},
  };
  for (const auto& c : cases) {
    HttpReply r = g.Post("/v1/audiences", c.body, mkt);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  EXPECT_EQ(
      g.Post("/v1/audiences", R"({"activity":"marketing_email","purpose":"marketing.email"})", op)
          .status,
      403);
}

}  // namespace
}  // namespace garde::testing

// The customer vault as a CRM and a marketer use it, through the real binary over HTTP.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "garde_process.h"

namespace garde::testing {
namespace {

class SubjectsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management"});
    marketing_key_ = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
    g_.Start();
  }
  std::string CreateAna() {
    HttpReply r = g_.Post("/v1/subjects",
                          R"({"kind":"person","source":"web_form","fields":{
                               "email":"Ana.Lopez@Example.org","first_name":"Ana",
                               "birth_date":"1990-01-31","phone":"06 12 34 56 78"}})",
                          operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonString(r.body, "id");
  }
  void Consent(const std::string& id, const std::string& purpose, const std::string& channel,
               const std::string& event) {
    const std::string channel_member = channel.empty() ? "" : R"(,"channel":")" + channel + "\"";
    HttpReply r =
        g_.Post("/v1/subjects/" + id + "/consents",
                R"({"purpose":")" + purpose + R"(","event":")" + event + "\"" + channel_member +
                    R"(,"notice_version":"2026-01","method":"web_form"})",
                operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
  }
  HttpReply Search(const std::string& email) {
    return g_.Post("/v1/subjects:search", R"({"email":")" + email + "\"}", marketing_key_,
                   "marketing_email");
  }
  GardeProcess g_;
  std::string operator_key_;
  std::string marketing_key_;
};

// SPEC §3.4: a consent-based activity reads only subjects whose consent allows it; Art. 21(3):
// an objection to direct marketing is absolute. Refusals are 403 problems with no personal data.
TEST_F(SubjectsE2E, AConsentBasedActivityReadsOnlySubjectsWhoseConsentAllowsIt) {
  const std::string id = CreateAna();
  auto expect_refused = [&](const char* why) {
    HttpReply r = g_.Get("/v1/subjects/" + id, marketing_key_, "marketing_email");
    EXPECT_EQ(r.status, 403) << why << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json") << why;
    EXPECT_EQ(r.body.find("ana"), std::string::npos) << why;
    HttpReply s = Search("ana.lopez@example.org");
    EXPECT_EQ(s.status, 200) << why << ": " << s.body;
    EXPECT_EQ(s.body.find("ana"), std::string::npos) << why << ": " << s.body;
    EXPECT_EQ(s.body.find(id), std::string::npos) << why;
  };
  auto expect_allowed = [&](const char* why) {
    HttpReply r = g_.Get("/v1/subjects/" + id, marketing_key_, "marketing_email");
    EXPECT_EQ(r.status, 200) << why << ": " << r.body;
    HttpReply s = Search("ana.lopez@example.org");
    EXPECT_NE(s.body.find(id), std::string::npos) << why << ": " << s.body;
  };
  expect_refused("never consented");
  Consent(id, "marketing.email", "email", "granted");
  expect_allowed("granted on the e-mail channel");
  Consent(id, "marketing.email", "", "withdrawn");
  expect_refused("withdrawn for the whole purpose after a channel grant");
  Consent(id, "marketing.email", "", "granted");
  expect_allowed("granted again");
  Consent(id, "marketing.sms", "", "objected");
  expect_refused("objected to direct marketing");
  // The customer-management activity (contract) still reads the record.
  EXPECT_EQ(g_.Get("/v1/subjects/" + id, operator_key_, "customer_management").status, 200);
}

TEST_F(SubjectsE2E, NewUserStoresACustomerAndReadsItBackForABoundActivity) {
  const std::string id = CreateAna();
  ASSERT_EQ(id.rfind("sub_", 0), 0u);
  EXPECT_EQ(id.size(), 30u);
  HttpReply r = g_.Get("/v1/subjects/" + id, operator_key_, "customer_management");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"("email":"ana.lopez@example.org")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("phone":"+33612345678")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("kind":"person")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("status":"active")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("created_at":"20)"), std::string::npos);
  EXPECT_EQ(r.headers["cache-control"], "no-store");
}

TEST_F(SubjectsE2E, ReadForAnUnboundActivityIsRefused) {
  const std::string id = CreateAna();
  HttpReply r = g_.Get("/v1/subjects/" + id, operator_key_, "marketing_email");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_EQ(r.body.find("ana"), std::string::npos);
  r = g_.Get("/v1/subjects/" + id, operator_key_);  // no X-Purpose
  EXPECT_EQ(r.status, 403);
}

TEST_F(SubjectsE2E, MarketingSeesOnlyItsActivityFields) {
  const std::string id = CreateAna();
  Consent(id, "marketing.email", "email", "granted");
  HttpReply r = g_.Get("/v1/subjects/" + id, marketing_key_, "marketing_email");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"email\""), std::string::npos);
  EXPECT_NE(r.body.find("\"first_name\""), std::string::npos);
  EXPECT_EQ(r.body.find("birth_date"), std::string::npos);  // not declared by the activity
  EXPECT_EQ(r.body.find("phone"), std::string::npos);
}

TEST_F(SubjectsE2E, DuplicateEmailAnswers409WithTheExistingId) {
  const std::string id = CreateAna();
  HttpReply r =
      g_.Post("/v1/subjects", R"({"kind":"person","fields":{"email":" ANA.LOPEZ@example.org"}})",
              operator_key_);
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(JsonString(r.body, "existing_id"), id);
  EXPECT_EQ(g_.CountRows("subjects"), 1);
}

TEST_F(SubjectsE2E, PatchRectifiesAndNullRemoves) {
  const std::string id = CreateAna();
  HttpReply r = g_.Patch(
      "/v1/subjects/" + id,
      R"({"fields":{"first_name":null,"city":"Paris","email":"ana@new.example"}})", operator_key_);
  ASSERT_EQ(r.status, 200) << r.body;
  r = g_.Get("/v1/subjects/" + id, operator_key_, "customer_management");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find("first_name"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("city":"Paris")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("email":"ana@new.example")"), std::string::npos);
  r = g_.Patch("/v1/subjects/sub_0000000000000000000000000a", R"({"fields":{"city":"Lyon"}})",
               operator_key_);
  EXPECT_EQ(r.status, 404);
}

// Reads are answered from the kept sealed record while nothing has been committed since:
// every change, through the API or by another program on the file, shows at the next read.
TEST_F(SubjectsE2E, RepeatedReadsSeeEveryChangeAtOnce) {
  const std::string id = CreateAna();
  auto read = [&] { return g_.Get("/v1/subjects/" + id, operator_key_, "customer_management"); };
  for (int i = 0; i < 3; ++i) ASSERT_EQ(read().status, 200);
  ASSERT_EQ(g_.Patch("/v1/subjects/" + id, R"({"fields":{"city":"Lyon"}})", operator_key_).status,
            200);
  HttpReply r = read();
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(R"("city":"Lyon")"), std::string::npos) << r.body;
  EXPECT_EQ(read().body, r.body);  // kept again: the same answer
  // A change made outside the service: at the next read on SQLite (the WAL index moved); on
  // PostgreSQL once the commit's NOTIFY reached the node, within a second (docs/scaling.md).
  auto next_read = [&](int expected) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    HttpReply answer = read();
    while (g_.postgres() && answer.status != expected &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      answer = read();
    }
    return answer;
  };
  g_.Sql("UPDATE subjects SET status = 'restricted' WHERE id = '" + id + "'");
  r = next_read(403);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("restricted"), std::string::npos) << r.body;
  g_.Sql("UPDATE subjects SET status = 'active' WHERE id = '" + id + "'");
  EXPECT_EQ(next_read(200).status, 200);
}

TEST_F(SubjectsE2E, SearchByEmailTravelsInTheBody) {
  const std::string id = CreateAna();
  HttpReply r = g_.Post("/v1/subjects:search", R"({"email":"ana.lopez@EXAMPLE.org"})",
                        operator_key_, "customer_management");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(id), std::string::npos);
  EXPECT_NE(r.body.find(R"("count":1)"), std::string::npos);
  r = g_.Post("/v1/subjects:search", R"({"email":"nobody@example.org"})", operator_key_,
              "customer_management");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(R"("count":0)"), std::string::npos);
  r = g_.Post("/v1/subjects:search", R"({"first_name":"Ana"})", operator_key_,
              "customer_management");
  EXPECT_EQ(r.status, 422);  // not blind-indexed
}

TEST_F(SubjectsE2E, BatchTakesJsonArrayAndNdjsonWithPerRowResults) {
  HttpReply r = g_.Post("/v1/subjects:batch",
                        R"([{"kind":"person","fields":{"email":"one@example.org"}},
                            {"kind":"person","fields":{"email":"bad"}},
                            {"kind":"person","fields":{"email":"one@example.org"}}])",
                        operator_key_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"({"index":0,"status":201,"id":"sub_)"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"({"index":1,"status":422)"), std::string::npos);
  EXPECT_NE(r.body.find(R"({"index":2,"status":409)"), std::string::npos);
  EXPECT_EQ(g_.CountRows("subjects"), 1);

  const std::string ndjson =
      "{\"kind\":\"person\",\"fields\":{\"email\":\"two@example.org\"}}\n"
      "{\"kind\":\"organization\",\"fields\":{\"legal_name\":\"ACME SAS\"}}\n";
  r = g_.Request("POST", "/v1/subjects:batch", ndjson,
                 {{"Authorization", "Bearer " + operator_key_}}, "application/x-ndjson");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"({"index":1,"status":201)"), std::string::npos) << r.body;
  EXPECT_EQ(g_.CountRows("subjects"), 3);

  // An update row names the subject.
  const std::string id = g_.Sql("SELECT id FROM subjects LIMIT 1")[0][0];
  r = g_.Post("/v1/subjects:batch", R"([{"id":")" + id + R"(","fields":{"city":"Nantes"}}])",
              operator_key_);
  EXPECT_NE(r.body.find(R"({"index":0,"status":200,"id":")" + id), std::string::npos) << r.body;

  std::string many = "[";
  for (int i = 0; i < 1001; ++i) many += std::string(i ? "," : "") + R"({"kind":"person"})";
  many += "]";
  r = g_.Post("/v1/subjects:batch", many, operator_key_);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(g_.CountRows("subjects"), 3);
}

TEST_F(SubjectsE2E, RequestIdIsEchoedOrGenerated) {
  HttpReply r = g_.Request("GET", "/healthz", "", {{"X-Request-Id", "trace-42"}}, "");
  EXPECT_EQ(r.headers["x-request-id"], "trace-42");
  r = g_.Request("GET", "/healthz", "", {}, "");
  EXPECT_EQ(r.headers["x-request-id"].rfind("req_", 0), 0u);
  // Server time, for clients and benchmarks: "app;dur=<ms>".
  const std::string timing = r.headers["server-timing"];
  ASSERT_EQ(timing.rfind("app;dur=", 0), 0u) << timing;
  EXPECT_GE(std::stod(timing.substr(8)), 0.0);
}

TEST_F(SubjectsE2E, HealthReadinessAndOpenApi) {
  EXPECT_EQ(g_.Get("/healthz", "").status, 200);
  HttpReply r = g_.Get("/readyz", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"ready\""), std::string::npos);
  r = g_.Get("/openapi.json", "");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"openapi\": \"3.1.0\""), std::string::npos);
  // clang-format off
  for (const char* path : {"/v1/subjects", "/v1/subjects:batch", "/v1/subjects/{id}",
                           "/v1/subjects:search", "/healthz", "/readyz", "/v1/audit",
                           "/v1/audit/entries", "/v1/audit/checkpoint",
                           "/v1/audit/proof/inclusion", "/v1/audit/proof/consistency",
                           "/v1/keys/public", "/v1/purposes", "/v1/subjects/{id}/consents",
                           "/v1/consent/check", "/v1/suppressions:check", "/v1/audiences",
                           "/v1/subjects/{id}/links", "/u/{token}", "/.well-known/gpc.json",
                           "/p/{token}", "/v1/register", "/v1/register/{id}",
                           "/v1/register/lint", "/v1/requests", "/v1/requests/{id}",
                           "/v1/requests/{id}:verify", "/v1/requests/{id}:extend",
                           "/v1/requests/{id}:complete", "/v1/requests/{id}:reject",
                           "/v1/requests/{id}/package", "/r/{token}"}) {
    // clang-format on
    EXPECT_NE(r.body.find(std::string("\"") + path + "\""), std::string::npos) << path;
  }
}

// Regression: a SIGTERM arriving right after start-up (before the service waited for it)
// killed the process instead of stopping it.
TEST_F(SubjectsE2E, SigtermStopsGracefully) {
  EXPECT_EQ(g_.Stop(), 0);
  EXPECT_NE(g_.Logs().find("\"msg\":\"stopped\""), std::string::npos);
}

}  // namespace
}  // namespace garde::testing

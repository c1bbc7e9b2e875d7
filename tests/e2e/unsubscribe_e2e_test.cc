// One-click unsubscribe as a mail client does it (RFC 8058), and subject links.
#include <gtest/gtest.h>

#include "garde_process.h"

namespace garde::testing {
namespace {

class UnsubscribeE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management"});
    marketing_key_ = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
    g_.Start();
  }
  std::string CreateConsenting(const std::string& email) {
    HttpReply r =
        g_.Post("/v1/subjects", R"({"kind":"person","fields":{"email":")" + email + R"("}})",
                operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    const std::string id = JsonString(r.body, "id");
    for (const char* purpose : {"marketing.email", "marketing.sms"}) {
      EXPECT_EQ(
          g_.Post("/v1/subjects/" + id + "/consents",
                  std::string(R"({"purpose":")") + purpose +
                      R"(","event":"granted","notice_version":"2026-01","method":"web_form"})",
                  operator_key_)
              .status,
          201);
    }
    return id;
  }
  std::string UnsubscribePath(const std::string& id, const std::string& purpose) {
    HttpReply r =
        g_.Post("/v1/subjects/" + id + "/links",
                R"({"uses":["unsubscribe"],"purpose":")" + purpose + R"("})", operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    EXPECT_NE(r.body.find(R"("List-Unsubscribe-Post":"List-Unsubscribe=One-Click")"),
              std::string::npos)
        << r.body;
    const size_t at = r.body.find("/u/");
    return r.body.substr(at, r.body.find('"', at) - at);
  }
  bool Allowed(const std::string& id, const std::string& purpose) {
    HttpReply r = g_.Get("/v1/consent/check?subject=" + id + "&purpose=" + purpose, marketing_key_);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body.find(R"("allowed":true)") != std::string::npos;
  }
  GardeProcess g_;
  std::string operator_key_, marketing_key_;
};

TEST_F(UnsubscribeE2E, GetOnlyConfirmsAndUrlencodedPostWithdrawsWithoutRedirect) {
  const std::string id = CreateConsenting("u1@example.org");
  const std::string path = UnsubscribePath(id, "marketing.email");
  HttpReply page = g_.Request("GET", path, "", {}, "");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.content_type.find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("name=\"List-Unsubscribe\" value=\"One-Click\""), std::string::npos);
  EXPECT_TRUE(Allowed(id, "marketing.email"));  // a GET (link scanner) changes nothing

  HttpReply r = g_.Request("POST", path, "List-Unsubscribe=One-Click", {},
                           "application/x-www-form-urlencoded");
  EXPECT_EQ(r.status, 200) << r.body;  // 2xx, no redirect, no credentials needed
  EXPECT_EQ(r.headers.count("location"), 0u);
  EXPECT_FALSE(Allowed(id, "marketing.email"));
  EXPECT_TRUE(Allowed(id, "marketing.sms"));  // only the link's purpose
  // A second POST is harmless.
  EXPECT_EQ(g_.Request("POST", path, "List-Unsubscribe=One-Click", {},
                       "application/x-www-form-urlencoded")
                .status,
            200);
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM consent_events WHERE subject_id = '" + id +
                   "' AND method = 'one_click_unsubscribe'")[0][0],
            "1");
  HttpReply audit = g_.Request("GET", "/v1/audit?subject=" + id, "", {}, "");
  EXPECT_EQ(audit.status, 401);
}

TEST_F(UnsubscribeE2E, MultipartPostWithdrawsEveryMarketingPurposeForAnAllScopeLink) {
  const std::string id = CreateConsenting("u2@example.org");
  const std::string path = UnsubscribePath(id, "*");
  const std::string body =
      "--XyZ\r\nContent-Disposition: form-data; "
      "name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
  HttpReply r = g_.Request("POST", path, body, {}, "multipart/form-data; boundary=XyZ");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(Allowed(id, "marketing.email"));
  EXPECT_FALSE(Allowed(id, "marketing.sms"));
}

TEST_F(UnsubscribeE2E, TamperedForeignOrMalformedTokensAreRefusedWithoutDetail) {
  const std::string a = CreateConsenting("u3@example.org");
  const std::string path = UnsubscribePath(a, "marketing.email");
  std::string tampered = path;
  tampered[5] = tampered[5] == 'A' ? 'B' : 'A';
  GardeProcess other;  // another deployment's key
  other.Start();
  for (const std::string& p : {tampered, std::string("/u/not-a-token"), std::string("/u/x.y")}) {
    HttpReply r = g_.Request("POST", p, "List-Unsubscribe=One-Click", {},
                             "application/x-www-form-urlencoded");
    EXPECT_EQ(r.status, 404) << p;
    EXPECT_EQ(r.body.find(a), std::string::npos);
    EXPECT_NE(r.body.find("not valid or has expired"), std::string::npos);
    EXPECT_EQ(g_.Request("GET", p, "", {}, "").status, 404);
  }
  HttpReply r = other.Request("POST", path, "List-Unsubscribe=One-Click", {},
                              "application/x-www-form-urlencoded");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(Allowed(a, "marketing.email"));
  // The right token without the RFC 8058 body does nothing.
  EXPECT_EQ(g_.Request("POST", path, "please", {}, "text/plain").status, 422);
  EXPECT_TRUE(Allowed(a, "marketing.email"));
}

TEST_F(UnsubscribeE2E, PreferenceCentreRefusesBadFormsAndForeignTokens) {
  const std::string id = CreateConsenting("p1@example.org");
  HttpReply links =
      g_.Post("/v1/subjects/" + id + "/links", R"({"uses":["preferences"]})", operator_key_);
  const size_t at = links.body.find("/p/");
  const std::string path = links.body.substr(at, links.body.find('"', at) - at);
  EXPECT_EQ(g_.Request("POST", path, "{}", {}, "application/json").status, 415);
  EXPECT_EQ(
      g_.Request("POST", path, "form=teleport", {}, "application/x-www-form-urlencoded").status,
      422);
  EXPECT_EQ(g_.Request("POST", path, "form=preferences&purpose=service.orders", {},
                       "application/x-www-form-urlencoded")
                .status,
            422);
  EXPECT_TRUE(Allowed(id, "marketing.email"));  // none of that changed anything
  // An unsubscribe token is not a preference-centre token, and vice versa.
  const std::string unsub = UnsubscribePath(id, "marketing.email");
  EXPECT_EQ(g_.Request("GET", "/p/" + unsub.substr(3), "", {}, "").status, 404);
  EXPECT_EQ(g_.Request("POST", "/u/" + path.substr(3), "List-Unsubscribe=One-Click", {},
                       "application/x-www-form-urlencoded")
                .status,
            404);
  // Unchecking everything through the real form withdraws.
  HttpReply saved =
      g_.Request("POST", path, "form=preferences", {}, "application/x-www-form-urlencoded");
  EXPECT_EQ(saved.status, 200);
  EXPECT_NE(saved.body.find("role=\"status\""), std::string::npos);
  EXPECT_FALSE(Allowed(id, "marketing.email"));
}

TEST_F(UnsubscribeE2E, LinksNeedAnOperatorAndAValidRequest) {
  const std::string id = CreateConsenting("u4@example.org");
  EXPECT_EQ(g_.Post("/v1/subjects/" + id + "/links", "{}", marketing_key_).status, 403);
  EXPECT_EQ(
      g_.Post("/v1/subjects/" + id + "/links", R"({"uses":["teleport"]})", operator_key_).status,
      422);
  EXPECT_EQ(
      g_.Post("/v1/subjects/" + id + "/links", R"({"purpose":"service.orders"})", operator_key_)
          .status,
      422);
  EXPECT_EQ(g_.Post("/v1/subjects/" + id + "/links", R"({"ttl_days":0})", operator_key_).status,
            422);
  EXPECT_EQ(
      g_.Post("/v1/subjects/sub_0000000000000000000000000a/links", "{}", operator_key_).status,
      404);
  HttpReply r = g_.Post("/v1/subjects/" + id + "/links", "{}", operator_key_);
  EXPECT_EQ(r.status, 201);
  EXPECT_NE(r.body.find(R"("use":"preferences")"), std::string::npos);
  EXPECT_EQ(r.body.find("u4@"), std::string::npos);  // no personal data in links
  // Regression: with --listen host:0 the links named port 0 instead of the bound port.
  EXPECT_NE(r.body.find("\"url\":\"http://127.0.0.1:" + std::to_string(g_.port()) + "/p/"),
            std::string::npos)
      << r.body;
  HttpReply gpc = g_.Get("/.well-known/gpc.json", "");
  EXPECT_EQ(gpc.status, 200);
  EXPECT_NE(gpc.body.find(R"("gpc":true)"), std::string::npos);
}

}  // namespace
}  // namespace garde::testing

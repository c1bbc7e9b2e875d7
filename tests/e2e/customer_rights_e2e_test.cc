// The customer's side of their rights, through the links they receive: six rights offered,
// every request confirmed through a fresh link sent to the contact on file (a forwarded
// newsletter link opens nothing), and the answer told with its reasons and remedies.
#include <gtest/gtest.h>

#include "garde_process.h"
#include "smtp_capture.h"

namespace garde::testing {
namespace {

class CustomerRights : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management"});
    officer_key_ = g_.CreateKey("dpo", "officer", {});
    g_.Start(smtp_.GardeFlags());
    HttpReply r = g_.Post("/v1/subjects",
                          R"({"kind":"person","fields":{"email":"cust@example.org",)"
                          R"("first_name":"Camille","city":"Lyon"}})",
                          operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    id_ = JsonString(r.body, "id");
    HttpReply links =
        g_.Post("/v1/subjects/" + id_ + "/links", R"({"uses":["preferences"]})", operator_key_);
    EXPECT_EQ(links.status, 201) << links.body;
    const size_t at = links.body.find("/p/");
    preference_path_ = links.body.substr(at, links.body.find('"', at) - at);
  }
  HttpReply PostForm(const std::string& path, const std::string& body) {
    return g_.Request("POST", path, body, {}, "application/x-www-form-urlencoded");
  }
  // The newest customer notice in the outbox: {notice, request, ...}.
  std::string LatestNotice() {
    auto rows = g_.Sql(
        "SELECT id, payload FROM outbox WHERE topic = 'subject.notice' ORDER BY "
        "seq DESC LIMIT 1");
    if (rows.empty()) return "";
    event_of_[rows[0][1]] = rows[0][0];
    return rows[0][1];
  }
  // The page its message links to, as mailed to the contact on file (/r/{token}).
  std::string PathOf(const std::string& notice) {
    const std::string path = smtp_.WaitForEvent(event_of_[notice]).LinkPath();
    return path.substr(0, path.find('?'));
  }
  std::string Status(const std::string& request) {
    return JsonString(g_.Get("/v1/requests/" + request, officer_key_).body, "status");
  }
  SmtpCapture smtp_;
  GardeProcess g_;
  std::map<std::string, std::string> event_of_;  // notice payload -> outbox event id
  std::string operator_key_, officer_key_, id_, preference_path_;
};

TEST_F(CustomerRights, ThePageOffersAllSixRightsInBothLanguages) {
  for (const char* lang : {"en", "fr"}) {
    HttpReply page = g_.Request("GET", preference_path_ + "?lang=" + lang, "", {}, "");
    ASSERT_EQ(page.status, 200) << page.body;
    for (const char* right :
         {"access", "portability", "rectification", "erasure", "restriction", "objection"}) {
      EXPECT_NE(page.body.find(std::string("data-right=\"") + right + "\""), std::string::npos)
          << lang << ": " << right;
    }
  }
}

// A preference link travels in every newsletter and is easily forwarded: opening a request
// from it proves nothing, and it never opens a package.
TEST_F(CustomerRights, AForwardedPreferenceLinkCannotReadTheCustomersFile) {
  HttpReply opened = PostForm(preference_path_, "form=request&type=access");
  ASSERT_EQ(opened.status, 200) << opened.body;
  EXPECT_NE(opened.body.find("one hour"), std::string::npos) << opened.body;
  const std::string notice = LatestNotice();
  ASSERT_EQ(JsonString(notice, "notice"), "verify_request") << notice;
  const std::string request = JsonString(notice, "request");
  EXPECT_EQ(Status(request), "received");
  // The officer cannot complete it unconfirmed.
  EXPECT_EQ(g_.Post("/v1/requests/" + request + ":complete", "{}", officer_key_).status, 409);
  // The one-hour link sent to the contact on file confirms it, once.
  const std::string confirm = PathOf(notice);
  ASSERT_NE(confirm, "");
  EXPECT_EQ(PostForm(confirm, "form=confirm").status, 200);
  EXPECT_EQ(Status(request), "verified");
  EXPECT_EQ(PostForm(confirm, "form=confirm").status, 409);
  ASSERT_EQ(g_.Post("/v1/requests/" + request + ":complete", "{}", officer_key_).status, 200);

  // Whoever holds the preference link cannot download the package, by any path.
  const std::string token = preference_path_.substr(3);
  HttpReply api = g_.Request("GET", "/v1/requests/" + request + "/package", "",
                             {{"Authorization", "Bearer " + token}}, "");
  EXPECT_EQ(api.status, 403) << api.body;
  EXPECT_EQ(api.body.find("cust@example.org"), std::string::npos);
  EXPECT_EQ(
      g_.Request("GET", preference_path_ + "/requests/" + request + "/package", "", {}, "").status,
      404);
  EXPECT_EQ(
      g_.Request("GET", "/r/" + token + "/requests/" + request + "/package", "", {}, "").status,
      404);
  HttpReply page = g_.Request("GET", preference_path_, "", {}, "");
  EXPECT_EQ(page.body.find("/package"), std::string::npos) << "the page links no package";
  // The link sent with the answer does.
  const std::string answered = LatestNotice();
  ASSERT_EQ(JsonString(answered, "notice"), "request_completed") << answered;
  HttpReply pkg = g_.Request(
      "GET", PathOf(answered) + "/requests/" + request + "/package?format=json", "", {}, "");
  ASSERT_EQ(pkg.status, 200) << pkg.body;
  EXPECT_NE(pkg.body.find("cust@example.org"), std::string::npos);

  // Opened through the API with the preference link as bearer: no confirmation link in the
  // answer either (it goes to the contact on file only).
  const std::string token_for_api = preference_path_.substr(3);
  HttpReply via_api = g_.Request("POST", "/v1/requests", R"({"type":"erasure"})",
                                 {{"Authorization", "Bearer " + token_for_api}});
  ASSERT_EQ(via_api.status, 201) << via_api.body;
  EXPECT_EQ(via_api.body.find("verification_url"), std::string::npos) << via_api.body;
  EXPECT_EQ(via_api.body.find("/r/"), std::string::npos) << via_api.body;
  EXPECT_EQ(JsonString(via_api.body, "status"), "received");
}

// Art. 12(3) and (4): the customer is told why an answer takes longer or is refused, and that
// they may complain to the supervisory authority and seek a judicial remedy.
TEST_F(CustomerRights, TheCustomerIsToldExtensionAndRejectionReasonsAndTheirRemedies) {
  auto open = [&](const std::string& type) {
    HttpReply r = g_.Post("/v1/requests", R"({"type":")" + type + R"(","subject":")" + id_ + "\"}",
                          operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    const std::string rid = JsonString(r.body, "id");
    EXPECT_EQ(
        g_.Post("/v1/requests/" + rid + ":verify", R"({"note":"id card"})", officer_key_).status,
        200);
    return rid;
  };
  const std::string slow = open("access");
  ASSERT_EQ(g_.Post("/v1/requests/" + slow + ":extend",
                    R"({"reason":"Your file spans three archived systems."})", officer_key_)
                .status,
            200);
  std::string notice = LatestNotice();
  EXPECT_EQ(JsonString(notice, "notice"), "request_extended");
  EXPECT_EQ(notice.find("archived"), std::string::npos) << "reasons stay sealed, off the outbox";
  HttpReply page = g_.Request("GET", PathOf(notice) + "?lang=en", "", {}, "");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("Your file spans three archived systems."), std::string::npos);
  EXPECT_NE(page.body.find("data-extended"), std::string::npos);

  const std::string refused = open("erasure");
  ASSERT_EQ(g_.Post("/v1/requests/" + refused + ":reject",
                    R"({"reason":"An unpaid invoice is in dispute."})", officer_key_)
                .status,
            200);
  notice = LatestNotice();
  EXPECT_EQ(JsonString(notice, "notice"), "request_rejected");
  for (const char* lang : {"en", "fr"}) {
    page = g_.Request("GET", PathOf(notice) + "?lang=" + lang, "", {}, "");
    ASSERT_EQ(page.status, 200) << page.body;
    EXPECT_NE(page.body.find("An unpaid invoice is in dispute."), std::string::npos) << lang;
    EXPECT_NE(page.body.find("data-remedies"), std::string::npos) << lang;
    EXPECT_NE(page.body.find("CNIL"), std::string::npos) << lang;
    EXPECT_NE(
        page.body.find(std::string(lang) == "fr" ? "recours juridictionnel" : "judicial remedy"),
        std::string::npos)
        << lang;
  }
}

// Rectification, restriction and objection from the page, each confirmed by the link sent.
TEST_F(CustomerRights, TheCustomerCorrectsRestrictsAndObjectsFromThePage) {
  auto ask_and_confirm = [&](const std::string& form) {
    HttpReply r = PostForm(preference_path_, form);
    EXPECT_EQ(r.status, 200) << form << ": " << r.body;
    const std::string notice = LatestNotice();
    EXPECT_EQ(JsonString(notice, "notice"), "verify_request") << notice;
    EXPECT_EQ(PostForm(PathOf(notice), "form=confirm").status, 200);
    const std::string rid = JsonString(notice, "request");
    HttpReply done = g_.Post("/v1/requests/" + rid + ":complete", "{}", officer_key_);
    EXPECT_EQ(done.status, 200) << done.body;
    return done.body;
  };
  ask_and_confirm("form=request&type=rectification&field.city=Marseille&field.first_name=");
  HttpReply read = g_.Get("/v1/subjects/" + id_, operator_key_, "customer_management");
  EXPECT_NE(read.body.find("\"city\":\"Marseille\""), std::string::npos) << read.body;
  EXPECT_NE(read.body.find("\"first_name\":\"Camille\""), std::string::npos) << read.body;

  const std::string objected =
      ask_and_confirm("form=request&type=objection&purpose=marketing.post");
  EXPECT_NE(objected.find("marketing.post"), std::string::npos) << objected;
  HttpReply check =
      g_.Get("/v1/consent/check?subject=" + id_ + "&purpose=marketing.post", operator_key_);
  EXPECT_NE(check.body.find("\"reason\":\"objected\""), std::string::npos) << check.body;

  ask_and_confirm("form=request&type=restriction&ground=accuracy");
  EXPECT_EQ(g_.Get("/v1/subjects/" + id_, operator_key_, "customer_management").status, 403);

  // Incomplete forms are refused and open nothing.
  const int64_t before = g_.CountRows("requests");
  EXPECT_EQ(PostForm(preference_path_, "form=request&type=rectification").status, 422);
  EXPECT_EQ(PostForm(preference_path_, "form=request&type=restriction&ground=whim").status, 422);
  EXPECT_EQ(
      PostForm(preference_path_, "form=request&type=rectification&field.email=not-an-email").status,
      422);
  EXPECT_EQ(g_.CountRows("requests"), before);
}

}  // namespace
}  // namespace garde::testing

namespace garde::testing {
namespace {

// A customer who follows a link that no longer works sees a page in their language naming
// the controller to write to; an API client still gets problem+json.
TEST(CustomerLinks, ABrokenLinkInABrowserIsAPageInTheCustomersLanguage) {
  GardeProcess g;
  g.Start();
  for (const char* path : {"/p/v1.bogus", "/u/v1.bogus", "/r/v1.bogus", "/c/v1.bogus"}) {
    HttpReply browser = g.Request("GET", path, "",
                                  {{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"},
                                   {"Accept-Language", "fr-FR,fr;q=0.9"}},
                                  "");
    EXPECT_EQ(browser.status, 404) << path;
    EXPECT_EQ(browser.content_type.rfind("text/html", 0), 0u) << path;
    EXPECT_NE(browser.body.find("Ce lien ne fonctionne plus"), std::string::npos) << path;
    EXPECT_NE(browser.body.find("Maison Exemple SAS"), std::string::npos) << path;
    EXPECT_NE(browser.body.find("lang=\"fr\""), std::string::npos) << path;
    HttpReply api = g.Request("GET", path, "", {}, "");
    EXPECT_EQ(api.status, 404) << path;
    EXPECT_EQ(api.content_type, "application/problem+json") << path;
  }
}

}  // namespace
}  // namespace garde::testing

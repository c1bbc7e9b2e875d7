// Organisations and their people (the B2B file): contacts linked with a role, listed from
// either side, shown in the person's access package; a person's erasure removes their link
// and leaves the organisation and its other contacts alone; consent stays per person.
#include <gtest/gtest.h>

#include <algorithm>

#include "garde_process.h"

namespace garde::testing {
namespace {

class ContactsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    op_ = g_.CreateKey("crm", "operator", {"customer_management", "b2b_accounts"});
    officer_ = g_.CreateKey("dpo", "officer", {});
    g_.Start();
    org_ = Create(R"({"kind":"organization","fields":{"legal_name":"Tissages du Nord SAS"}})");
    buyer_ = Create(
        R"({"kind":"person","fields":{"email":"buyer@tissages.example","first_name":"Ana"}})");
    accountant_ = Create(
        R"({"kind":"person","fields":{"email":"compta@tissages.example","first_name":"Luc"}})");
  }
  std::string Create(const std::string& body) {
    HttpReply r = g_.Post("/v1/subjects", body, op_);
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonString(r.body, "id");
  }
  HttpReply Link(const std::string& org, const std::string& person, const std::string& body) {
    return g_.Request("PUT", "/v1/subjects/" + org + "/contacts/" + person, body,
                      {{"Authorization", "Bearer " + op_}});
  }
  std::vector<std::pair<std::string, std::string>> Contacts(const std::string& id) {
    HttpReply r = g_.Get("/v1/subjects/" + id + "/contacts", op_);
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::pair<std::string, std::string>> out;
    auto items = ParseObject(r.body)->getArray("items");
    for (size_t i = 0; i < items->size(); ++i) {
      auto item = items->getObject(static_cast<unsigned>(i));
      EXPECT_EQ(item->getValue<std::string>("organisation"), org_);
      out.emplace_back(item->getValue<std::string>("person"), item->getValue<std::string>("role"));
    }
    std::sort(out.begin(), out.end());  // links made in the same second come in id order
    return out;
  }

  GardeProcess g_;
  std::string op_, officer_, org_, buyer_, accountant_;
};

TEST_F(ContactsE2E, PeopleAreLinkedWithARoleAndAnErasureRemovesOnlyTheirLink) {
  ASSERT_EQ(Link(org_, buyer_, R"({"role":"buyer"})").status, 200);
  ASSERT_EQ(Link(org_, accountant_, R"({"role":"purchasing"})").status, 200);
  ASSERT_EQ(Link(org_, accountant_, R"({"role":"accounting"})").status, 200);  // role changed
  auto both = std::vector<std::pair<std::string, std::string>>{{buyer_, "buyer"},
                                                               {accountant_, "accounting"}};
  std::sort(both.begin(), both.end());
  EXPECT_EQ(Contacts(org_), both);
  EXPECT_EQ(Contacts(buyer_),
            (std::vector<std::pair<std::string, std::string>>{{buyer_, "buyer"}}));

  // Consent is the person's own: the buyer's grant says nothing of the accountant.
  ASSERT_EQ(
      g_.Post(
            "/v1/subjects/" + buyer_ + "/consents",
            R"({"purpose":"marketing.email","event":"granted","method":"web_form","notice_version":"2026-01"})",
            op_)
          .status,
      201);
  const std::string mkt = g_.CreateKey("mk", "marketing", {"marketing_email"});
  auto allowed = [&](const std::string& id) {
    HttpReply c =
        g_.Get("/v1/consent/check?subject=" + id + "&purpose=marketing.email&channel=email", mkt);
    EXPECT_EQ(c.status, 200) << c.body;
    return c.body.find("\"allowed\":true") != std::string::npos;
  };
  EXPECT_TRUE(allowed(buyer_));
  EXPECT_FALSE(allowed(accountant_));

  // The buyer's access package shows the link.
  HttpReply access =
      g_.Post("/v1/requests", R"({"type":"access","subject":")" + buyer_ + R"("})", op_);
  ASSERT_EQ(access.status, 201) << access.body;
  const std::string request = JsonString(access.body, "id");
  for (const char* step : {"verify", "start", "complete"}) {
    ASSERT_EQ(g_.Post("/v1/requests/" + request + ":" + step, "{}", officer_).status, 200) << step;
  }
  HttpReply package = g_.Get("/v1/requests/" + request + "/package", officer_);
  ASSERT_EQ(package.status, 200) << package.body;
  auto links = ParseObject(package.body)->getArray("contact_links");
  ASSERT_EQ(links->size(), 1u);
  EXPECT_EQ(links->getObject(0)->getValue<std::string>("organisation"), org_);
  EXPECT_EQ(links->getObject(0)->getValue<std::string>("role"), "buyer");

  // The buyer is erased: the link goes, the organisation and the accountant's link stay.
  HttpReply erasure =
      g_.Post("/v1/requests", R"({"type":"erasure","subject":")" + buyer_ + R"("})", op_);
  ASSERT_EQ(erasure.status, 201) << erasure.body;
  const std::string erase_id = JsonString(erasure.body, "id");
  for (const char* step : {"verify", "start", "complete"}) {
    ASSERT_EQ(g_.Post("/v1/requests/" + erase_id + ":" + step, "{}", officer_).status, 200) << step;
  }
  EXPECT_EQ(Contacts(org_),
            (std::vector<std::pair<std::string, std::string>>{{accountant_, "accounting"}}));
  EXPECT_EQ(g_.Get("/v1/subjects/" + org_, op_, "b2b_accounts").status, 200);
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM contact_links WHERE person_id = '" + buyer_ + "'")[0][0],
            "0");
  EXPECT_EQ(Link(org_, buyer_, R"({"role":"buyer"})").status, 409);  // erased: nothing new

  // Unlinking, and what is refused.
  const std::map<std::string, std::string> auth = {{"Authorization", "Bearer " + op_}};
  EXPECT_EQ(
      g_.Request("DELETE", "/v1/subjects/" + org_ + "/contacts/" + accountant_, "", auth).status,
      204);
  EXPECT_EQ(
      g_.Request("DELETE", "/v1/subjects/" + org_ + "/contacts/" + accountant_, "", auth).status,
      404);
  EXPECT_TRUE(Contacts(org_).empty());
  for (const auto& [org, person, body, status] :
       std::vector<std::tuple<std::string, std::string, std::string, int>>{
           {accountant_, org_, R"({"role":"buyer"})", 422},  // kinds swapped
           {org_, accountant_, R"({"role":"Head Buyer!"})", 422},
           {org_, accountant_, R"({})", 422},
           {org_, accountant_, R"({"role":"buyer","since":"x"})", 422},
           {org_, "sub_0000000000000000000000000a", R"({"role":"buyer"})", 404},
           {org_, accountant_, "not json", 400},
       }) {
    HttpReply r = Link(org, person, body);
    EXPECT_EQ(r.status, status) << body << " " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  EXPECT_EQ(g_.Request("PUT", "/v1/subjects/" + org_ + "/contacts/" + accountant_,
                       R"({"role":"buyer"})", {{"Authorization", "Bearer " + mkt}})
                .status,
            403);
  EXPECT_TRUE(Contacts(org_).empty());  // nothing refused was stored
}

}  // namespace
}  // namespace garde::testing

// The register as an officer reads and exports it.
#include <gtest/gtest.h>

#include "garde_process.h"

namespace garde::testing {
namespace {

TEST(RegisterE2E, OfficerReadsExportsAndLintsTheRegister) {
  GardeProcess g;
  const std::string officer = g.CreateKey("dpo", "officer", {});
  const std::string mkt = g.CreateKey("campaigns", "marketing", {"marketing_email"});
  const std::string admin = g.admin_key();
  g.Start();
  HttpReply r = g.Get("/v1/register", officer);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"("id":"marketing_email")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("name":"Maison Exemple SAS")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("content_hash":")"), std::string::npos);

  HttpReply csv = g.Get("/v1/register?format=csv", officer);
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(csv.body.rfind("\xEF\xBB\xBFid,reference,name,", 0), 0u);  // BOM + header
  size_t rows = 0;
  for (char c : csv.body) rows += c == '\n' ? 1 : 0;
  EXPECT_EQ(rows, 11u);  // header + 10 activities

  HttpReply md = g.Get("/v1/register?format=md", officer);
  ASSERT_EQ(md.status, 200);
  EXPECT_NE(md.body.find("| REG-003 | Email marketing campaigns (`marketing_email`) |"),
            std::string::npos) << md.body;

  HttpReply one = g.Get("/v1/register/orders_invoicing", officer);
  ASSERT_EQ(one.status, 200);
  EXPECT_NE(one.body.find(R"("retention":"P10Y after last_purchase")"), std::string::npos);
  EXPECT_EQ(g.Get("/v1/register/nope", officer).status, 404);
  EXPECT_EQ(g.Get("/v1/register?format=pdf", officer).status, 422);

  HttpReply lint = g.Get("/v1/register/lint", admin);
  ASSERT_EQ(lint.status, 200) << lint.body;
  EXPECT_NE(lint.body.find(R"("findings":[],"ok":true)"), std::string::npos) << lint.body;
  EXPECT_EQ(g.Get("/v1/register/lint", officer).status, 200);

  EXPECT_EQ(g.Get("/v1/register", mkt).status, 403);
  EXPECT_EQ(g.Get("/v1/register", "").status, 401);
}

}  // namespace
}  // namespace garde::testing

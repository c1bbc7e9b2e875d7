// The register as an officer reads and exports it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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
  HttpReply html = g.Get("/v1/register?format=html", officer);
  ASSERT_EQ(html.status, 200);
  EXPECT_NE(html.content_type.find("text/html"), std::string::npos);
  EXPECT_NE(html.body.find("@page{size:A4"), std::string::npos);

  HttpReply lint = g.Get("/v1/register/lint", admin);
  ASSERT_EQ(lint.status, 200) << lint.body;
  EXPECT_NE(lint.body.find(R"("findings":[],"ok":true)"), std::string::npos) << lint.body;
  EXPECT_EQ(g.Get("/v1/register/lint", officer).status, 200);

  EXPECT_EQ(g.Get("/v1/register", mkt).status, 403);
  EXPECT_EQ(g.Get("/v1/register", "").status, 401);
}

// One command hands the authority the register: each export parsed back by independent
// parsers (Python's csv, html.parser and json), consistent with each other.
TEST(RegisterE2E, ExportCommandWritesDocumentsThatParseBack) {
  GardeProcess g;
  const std::string dir = g.data_dir();
  for (const char* format : {"json", "csv", "html", "md"}) {
    RunResult r = RunGarde({"register", "export", "--policies", g.policies(), "--format", format,
                            "--out", dir + "/register." + format});
    ASSERT_EQ(r.exit_code, 0) << format << r.err;
  }
  RunResult check = RunProgram({"/usr/bin/python3", GARDE_EXPORT_CHECKER, dir + "/register.json",
                                dir + "/register.csv", dir + "/register.html"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_NE(ReadFile(dir + "/register.md").find("| REG-001 |"), std::string::npos);
  RunResult bad = RunGarde({"register", "export", "--policies", g.policies(), "--format", "pdf"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("json, csv, md or html"), std::string::npos) << bad.err;
  // A broken register is not exported.
  const std::string broken = dir + "/broken-policies";
  std::filesystem::create_directories(broken);
  for (const char* f : {"schema.yaml", "purposes.yaml", "roles.yaml", "register.yaml"}) {
    std::filesystem::copy_file(g.policies() + "/" + f, broken + "/" + f);
  }
  std::string reg = ReadFile(broken + "/register.yaml");
  reg.replace(reg.find("legal_basis: contract"), 21, "legal_basis: whim");
  std::ofstream(broken + "/register.yaml", std::ios::trunc) << reg;
  RunResult refused = RunGarde({"register", "export", "--policies", broken});
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_TRUE(refused.out.empty());
}

}  // namespace
}  // namespace garde::testing

// The register as an officer reads and exports it.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

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
  EXPECT_EQ(rows, 12u);  // header + 11 activities

  HttpReply md = g.Get("/v1/register?format=md", officer);
  ASSERT_EQ(md.status, 200);
  EXPECT_NE(md.body.find("| REG-003 | Email marketing campaigns (`marketing_email`) |"),
            std::string::npos)
      << md.body;

  HttpReply one = g.Get("/v1/register/orders_invoicing", officer);
  ASSERT_EQ(one.status, 200);
  EXPECT_NE(one.body.find(R"("retention":"P10Y after last_purchase")"), std::string::npos);
  EXPECT_EQ(g.Get("/v1/register/nope", officer).status, 404);
  EXPECT_EQ(g.Get("/v1/register?format=pdf", officer).status, 422);
  // The JSON export matches the Register schema the service publishes; CSV, Markdown and HTML
  // parse back and carry every Art. 30(1) element the JSON holds, activity by activity, in
  // English and in French.
  const std::string out = g.data_dir();
  std::ofstream(out + "/openapi.json") << g.Get("/openapi.json", "").body;
  std::ofstream(out + "/register.json") << r.body;
  for (const std::string lang : {"en", "fr"}) {
    for (const std::string format : {"csv", "md", "html"}) {
      HttpReply doc = g.Get("/v1/register?format=" + format + "&lang=" + lang, officer);
      ASSERT_EQ(doc.status, 200) << doc.body;
      std::ofstream(out + "/register-" + lang + "." + format, std::ios::binary) << doc.body;
    }
    const std::string base = out + "/register-" + lang;
    RunResult parsed =
        RunProgram({"/usr/bin/python3", GARDE_EXPORT_CHECKER, out + "/register.json", base + ".csv",
                    base + ".md", base + ".html", out + "/openapi.json", "--lang=" + lang});
    EXPECT_EQ(parsed.exit_code, 0) << lang << ": " << parsed.out << parsed.err;
  }
  HttpReply french = g.Get("/v1/register?format=html&lang=fr", officer);
  EXPECT_NE(french.body.find("Fiche de registre"), std::string::npos);
  EXPECT_NE(french.body.find("Obligation légale"), std::string::npos);
  EXPECT_NE(french.body.find("Responsables conjoints"), std::string::npos);  // loyalty programme
  EXPECT_NE(french.body.find("Sous-finalités"), std::string::npos);
  EXPECT_EQ(french.body.find("legal_obligation"), std::string::npos) << "human labels, not keys";
  EXPECT_EQ(french.body.find("Représentant"), std::string::npos) << "no empty heading";
  EXPECT_EQ(g.Get("/v1/register?format=html&lang=de", officer).status, 422);
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
  RunResult check =
      RunProgram({"/usr/bin/python3", GARDE_EXPORT_CHECKER, dir + "/register.json",
                  dir + "/register.csv", dir + "/register.md", dir + "/register.html"});
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

namespace garde::testing {
namespace {

// A copy of the repository's policies the test may edit.
std::string CopyPolicies(const std::string& from, const std::string& to) {
  std::filesystem::create_directories(to);
  std::filesystem::copy(
      from, to,
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
  return to;
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

TEST(RegisterE2E, ReloadIsLintedAuditedAndRevokesRemovedActivitiesAtOnce) {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("garde-reload-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const std::string policies = CopyPolicies(GARDE_POLICIES_DIR, dir);
  const std::string original = ReadFile(policies + "/register.yaml");
  GardeProcess g(policies);
  const std::string officer = g.CreateKey("dpo", "officer", {});
  const std::string operator_key = g.CreateKey("crm", "operator", {"customer_management"});
  const std::string marketing = g.CreateKey("campaigns", "marketing", {"marketing_email"});
  g.Start();
  HttpReply created = g.Post(
      "/v1/subjects", R"({"kind":"person","fields":{"email":"rl@example.org"}})", operator_key);
  ASSERT_EQ(created.status, 201);
  const std::string id = JsonString(created.body, "id");
  ASSERT_EQ(
      g.Post(
           "/v1/subjects/" + id + "/consents",
           R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})",
           operator_key)
          .status,
      201);
  ASSERT_EQ(g.Get("/v1/subjects/" + id, marketing, "marketing_email").status, 200);
  const std::string hash = JsonString(g.Get("/v1/register", officer).body, "content_hash");

  // A broken register is refused with its location; the running one stays.
  std::string broken = original;
  broken.replace(broken.find("legal_basis: consent"), 20, "legal_basis: whim");
  Write(policies + "/register.yaml", broken);
  HttpReply refused = g.Post("/v1/admin/reload", "", g.admin_key());
  EXPECT_EQ(refused.status, 422) << refused.body;
  EXPECT_NE(refused.body.find("register.yaml:"), std::string::npos) << refused.body;
  EXPECT_EQ(g.Get("/v1/subjects/" + id, marketing, "marketing_email").status, 200);
  EXPECT_EQ(JsonString(g.Get("/v1/register", officer).body, "content_hash"), hash);
  EXPECT_EQ(g.Post("/v1/admin/reload", "", officer).status, 403);

  // Removing an activity (here: replaced by a new one) revokes reads bound to it at once.
  std::string without = original;
  without.replace(without.find("  - id: marketing_email"), 23, "  - id: newsletter_2027");
  Write(policies + "/register.yaml", without);
  HttpReply ok = g.Post("/v1/admin/reload", "", g.admin_key());
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_NE(
      ok.body.find(R"("activities":{"added":["newsletter_2027"],"removed":["marketing_email"])"),
      std::string::npos)
      << ok.body;
  EXPECT_NE(ok.body.find(R"("before":")" + hash), std::string::npos);
  EXPECT_EQ(g.Get("/v1/subjects/" + id, marketing, "marketing_email").status, 403);
  EXPECT_EQ(g.Get("/v1/register/marketing_email", officer).status, 404);
  HttpReply audit = g.Get("/v1/audit?action=policies.reload", officer);
  EXPECT_NE(audit.body.find("-activities:marketing_email"), std::string::npos) << audit.body;
  EXPECT_NE(audit.body.find("\"outcome\":\"refused\""), std::string::npos) << audit.body;

  // SIGHUP does the same; the history lists every version the service ran with.
  Write(policies + "/register.yaml", original);
  ASSERT_EQ(::kill(g.pid(), SIGHUP), 0);
  for (int i = 0; i < 50; ++i) {
    if (g.Get("/v1/subjects/" + id, marketing, "marketing_email").status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(g.Get("/v1/subjects/" + id, marketing, "marketing_email").status, 200);
  HttpReply history = g.Get("/v1/register/history", officer);
  ASSERT_EQ(history.status, 200) << history.body;
  for (const char* source : {R"("source":"start")", R"("source":"api")", R"("source":"sighup")"}) {
    EXPECT_NE(history.body.find(source), std::string::npos) << source << history.body;
  }
  EXPECT_EQ(g.Stop(), 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace garde::testing

// Backups through the real binary: made while the service serves, sealed, listed, verified,
// pruned, and restored without bringing back any erasure, withdrawal or objection made since
// — with the audit log kept when it extends the backup's and an explicit fork otherwise.
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "garde/base/clock.h"
#include "garde_process.h"

namespace garde::testing {
namespace {

namespace fs = std::filesystem;

class BackupE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management", "orders_invoicing"});
    officer_key_ = g_.CreateKey("dpo", "officer", {});
    marketing_key_ = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
    g_.Start();
  }
  std::vector<std::string> Dirs() const {
    return {"--data-dir", g_.data_dir(), "--policies", g_.policies()};
  }
  RunResult Garde(std::vector<std::string> words, const std::vector<std::string>& more = {}) {
    for (const auto& d : Dirs()) words.push_back(d);
    for (const auto& m : more) words.push_back(m);
    return RunGarde(words);
  }
  std::string CreateSubject(const std::string& fields) {
    HttpReply r =
        g_.Post("/v1/subjects", R"({"kind":"person","fields":)" + fields + "}", operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonString(r.body, "id");
  }
  void Consent(const std::string& id, const std::string& event) {
    EXPECT_EQ(g_.Post("/v1/subjects/" + id + "/consents",
                      R"({"purpose":"marketing.email","event":")" + event +
                          R"(","notice_version":"2026-01","method":"web_form"})",
                      operator_key_)
                  .status,
              201);
  }
  void Complete(const std::string& type, const std::string& id) {
    HttpReply r = g_.Post("/v1/requests", R"({"type":")" + type + R"(","subject":")" + id + R"("})",
                          operator_key_);
    ASSERT_EQ(r.status, 201) << r.body;
    const std::string rid = JsonString(r.body, "id");
    ASSERT_EQ(
        g_.Post("/v1/requests/" + rid + ":verify", R"({"note":"letter"})", officer_key_).status,
        200);
    HttpReply done = g_.Post("/v1/requests/" + rid + ":complete", "{}", officer_key_);
    ASSERT_EQ(done.status, 200) << done.body;
  }
  std::string Decision(const std::string& id) {
    HttpReply r =
        g_.Get("/v1/consent/check?subject=" + id + "&purpose=marketing.email", marketing_key_);
    EXPECT_EQ(r.status, 200) << r.body;
    return JsonString(r.body, "reason");
  }
  bool Suppressed(const std::string& email) {
    HttpReply r =
        g_.Post("/v1/suppressions:check", R"({"emails":[")" + email + R"("]})", marketing_key_);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body.find("\"suppressed\":true") != std::string::npos;
  }
  std::string Status(const std::string& id) {
    auto rows = g_.Sql("SELECT status FROM subjects WHERE id='" + id + "'");
    return rows.empty() ? "absent" : rows[0][0];
  }
  std::string MakeBackup() {
    RunResult made = Garde({"backup"});
    EXPECT_EQ(made.exit_code, 0) << made.err;
    EXPECT_TRUE(fs::exists(made.LastLine())) << made.out;
    return made.LastLine();
  }

  GardeProcess g_;
  std::string operator_key_, officer_key_, marketing_key_;
};

// The drill of the issue: backup -> erase (full and held), object, withdraw, unsubscribe,
// rectify, create -> restore. Nothing said "no" to comes back; everything else is the backup's.
TEST_F(BackupE2E, RestoreDrillBringsBackTheBackupAndNoErasureOrWithdrawalMadeSince) {
  const std::string last_purchase = FormatRfc3339(SystemClock().Now() - 40 * 86400).substr(0, 10);
  const std::string erased =
      CreateSubject(R"({"email":"erased.later@example.org","first_name":"Eve"})");
  const std::string held = CreateSubject(
      R"({"email":"held.later@example.org","customer_number":"C-7001","last_purchase":")" +
      last_purchase + R"("})");
  const std::string objecting = CreateSubject(R"({"email":"objects.later@example.org"})");
  const std::string withdrawing = CreateSubject(R"({"email":"withdraws.later@example.org"})");
  const std::string unsubscribing = CreateSubject(R"({"email":"unsubscribes.later@example.org"})");
  const std::string kept = CreateSubject(R"({"email":"kept@example.org","city":"Lyon"})");
  for (const auto& id : {objecting, withdrawing, unsubscribing, kept}) Consent(id, "granted");
  HttpReply link = g_.Post("/v1/subjects/" + unsubscribing + "/links",
                           R"({"uses":["unsubscribe"]})", operator_key_);
  ASSERT_EQ(link.status, 201) << link.body;
  const std::string token =
      ParseObject(link.body)->getArray("links")->getObject(0)->getValue<std::string>("token");

  // Online: the service keeps serving while the backup is made.
  const std::string backup = MakeBackup();
  RunResult listed = Garde({"backup", "list"}, {"--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("\"subjects\":6"), std::string::npos) << listed.out;
  EXPECT_EQ(Garde({"backup", "verify"}).exit_code, 0);

  Complete("erasure", erased);
  Complete("erasure", held);
  Complete("objection", objecting);
  Consent(withdrawing, "withdrawn");
  ASSERT_EQ(g_.Request("POST", "/u/" + token, "List-Unsubscribe=One-Click", {},
                       "application/x-www-form-urlencoded")
                .status,
            200);
  ASSERT_EQ(
      g_.Patch("/v1/subjects/" + kept, R"({"fields":{"city":"Paris"}})", operator_key_).status,
      200);
  const std::string later = CreateSubject(R"({"email":"created.after@example.org"})");
  const auto held_fields =
      g_.Sql("SELECT field FROM subject_fields WHERE subject_id='" + held + "' ORDER BY field");
  ASSERT_EQ(g_.Stop(), 0);

  // Sealed: neither the planted values nor even the database format show in the file.
  const std::string sealed = ReadFile(backup);
  for (const char* planted : {"kept@example.org", "Lyon", "C-7001", "SQLite format 3"}) {
    EXPECT_EQ(sealed.find(planted), std::string::npos) << planted;
  }

  RunResult restored = Garde({"restore"}, {"--from", backup, "--json"});
  ASSERT_EQ(restored.exit_code, 0) << restored.err << restored.out;
  auto report = ParseObject(restored.LastLine());
  EXPECT_EQ(report->getValue<std::string>("audit"), "consistent");
  EXPECT_GE(report->getValue<int>("reapplied"), 5);
  g_.Start();

  // Erased stays erased; the held erasure keeps only its held fields.
  EXPECT_EQ(Status(erased), "erased");
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM subject_fields WHERE subject_id='" + erased + "'")[0][0],
            "0");
  EXPECT_EQ(Status(held), "restricted");
  EXPECT_EQ(
      g_.Sql("SELECT field FROM subject_fields WHERE subject_id='" + held + "' ORDER BY field"),
      held_fields);
  // Every "no" stands: the objection (and its suppression), the withdrawal, the unsubscribe.
  EXPECT_EQ(Decision(objecting), "objected");
  EXPECT_TRUE(Suppressed("objects.later@example.org"));
  EXPECT_EQ(Decision(withdrawing), "consent_withdrawn");
  EXPECT_EQ(Decision(unsubscribing), "consent_withdrawn");
  // Everything else is the backup's: the earlier city, no subject created since.
  EXPECT_EQ(Decision(kept), "consent_granted");
  HttpReply read = g_.Get("/v1/subjects/" + kept, operator_key_, "customer_management");
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_NE(read.body.find("\"city\":\"Lyon\""), std::string::npos) << read.body;
  EXPECT_EQ(g_.Get("/v1/subjects/" + later, operator_key_, "customer_management").status, 404);
  // The restore is in the log, which still verifies.
  HttpReply audit = g_.Get("/v1/audit?action=backup.restore", officer_key_);
  EXPECT_NE(audit.body.find("consistent"), std::string::npos) << audit.body;
  ASSERT_EQ(g_.Stop(), 0);
  RunResult verified = Garde({"audit", "verify"});
  EXPECT_EQ(verified.exit_code, 0) << verified.out;
}

// Without the live audit log (a lost disk), the restore continues from the backup's log and
// says so; a live log that does not extend the backup's is never replaced without a reason.
TEST_F(BackupE2E, ALostOrDivergentAuditLogIsAnExplicitFork) {
  const std::string id = CreateSubject(R"({"email":"fork@example.org"})");
  const std::string first = MakeBackup();
  Complete("erasure", id);
  ASSERT_EQ(g_.Stop(), 0);
  auto lose_the_log = [&] {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(g_.audit_db_path() + suffix);
  };
  lose_the_log();
  RunResult lost = Garde({"restore"}, {"--from", first, "--json"});
  ASSERT_EQ(lost.exit_code, 0) << lost.err;
  EXPECT_EQ(ParseObject(lost.LastLine())->getValue<std::string>("audit"), "forked");
  EXPECT_NE(ReadFile(g_.data_dir() + "/restores.log").find("no live audit log"), std::string::npos);
  g_.Start();
  EXPECT_EQ(Status(id), "erased");  // from tombstones.log, kept beside the keyring
  HttpReply audit = g_.Get("/v1/audit?action=backup.restore", officer_key_);
  EXPECT_NE(audit.body.find("forked"), std::string::npos) << audit.body;
  // A second history grows from there, and is backed up.
  CreateSubject(R"({"email":"second.history@example.org"})");
  const std::string second = MakeBackup();
  ASSERT_EQ(g_.Stop(), 0);
  // Back to the first backup's log, then a third history: the live log no longer extends the
  // second backup's.
  lose_the_log();
  ASSERT_EQ(Garde({"restore"}, {"--from", first}).exit_code, 0);
  g_.Start();
  CreateSubject(R"({"email":"third.history@example.org"})");
  ASSERT_EQ(g_.Stop(), 0);
  RunResult no_reason = Garde({"restore"}, {"--from", second});
  EXPECT_EQ(no_reason.exit_code, 1);
  EXPECT_NE(no_reason.err.find("--reason"), std::string::npos) << no_reason.err;
  RunResult with_reason = Garde({"restore"}, {"--from", second, "--reason", "drill", "--json"});
  ASSERT_EQ(with_reason.exit_code, 0) << with_reason.err;
  auto report = ParseObject(with_reason.LastLine());
  EXPECT_EQ(report->getValue<std::string>("audit"), "forked");
  EXPECT_TRUE(fs::exists(report->getValue<std::string>("forked_log")));
  EXPECT_NE(ReadFile(g_.data_dir() + "/restores.log").find("\"reason\":\"drill\""),
            std::string::npos);
  EXPECT_EQ(Garde({"audit", "verify"}).exit_code, 0);
  // The live log extends the backup it came from: restoring that one again keeps it.
  RunResult consistent = Garde({"restore"}, {"--from", second, "--json"});
  ASSERT_EQ(consistent.exit_code, 0) << consistent.err;
  EXPECT_EQ(ParseObject(consistent.LastLine())->getValue<std::string>("audit"), "consistent");
}

// A restore refuses a data directory that a running service has open.
TEST_F(BackupE2E, RestoreRefusesWhileTheServiceRuns) {
  const std::string backup = MakeBackup();
  RunResult r = Garde({"restore"}, {"--from", backup});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("stop it first"), std::string::npos) << r.err;
  EXPECT_EQ(g_.Get("/healthz", "").status, 200);
}

// A backup altered by one byte, cut short, or opened with another keyring is refused.
TEST_F(BackupE2E, AlteredTruncatedOrForeignBackupsFailVerification) {
  CreateSubject(R"({"email":"verify@example.org"})");
  const std::string backup = MakeBackup();
  const std::string bytes = ReadFile(backup);
  const std::string dir = fs::path(backup).parent_path().string();
  {
    std::string flipped = bytes;
    flipped[bytes.size() / 2] ^= 0x01;
    std::ofstream(dir + "/flipped.gbak", std::ios::binary) << flipped;
    std::ofstream(dir + "/cut.gbak", std::ios::binary) << bytes.substr(0, bytes.size() - 40);
  }
  for (const char* name : {"flipped.gbak", "cut.gbak"}) {
    RunResult r = Garde({"backup", "verify"}, {"--from", dir + "/" + name});
    EXPECT_EQ(r.exit_code, 1) << name << ": " << r.out;
  }
  GardeProcess other;  // another deployment, another keyring
  RunResult foreign = RunGarde({"backup", "verify", "--data-dir", other.data_dir(), "--policies",
                                other.policies(), "--from", backup});
  EXPECT_EQ(foreign.exit_code, 1);
  EXPECT_NE(foreign.out.find("does not open with this keyring"), std::string::npos) << foreign.out;
  // Restoring them changes nothing.
  ASSERT_EQ(g_.Stop(), 0);
  const auto before = g_.Sql("SELECT id FROM subjects ORDER BY id");
  EXPECT_EQ(Garde({"restore"}, {"--from", dir + "/flipped.gbak"}).exit_code, 1);
  EXPECT_EQ(g_.Sql("SELECT id FROM subjects ORDER BY id"), before);
}

// kill -9 at any moment of a backup never leaves a file listed as a backup that is not
// whole: the file is written under a hidden name and renamed once synced.
TEST_F(BackupE2E, ABackupKilledMidwayIsNeverListed) {
  for (int b = 0; b < 5; ++b) {
    std::string rows = "[";
    for (int i = 0; i < 1000; ++i) {
      rows += std::string(i ? "," : "") + R"({"kind":"person","fields":{"email":"bulk)" +
              std::to_string(b * 1000 + i) +
              R"(@example.org","first_name":"Bulk","city":"Nantes"}})";
    }
    ASSERT_EQ(g_.Post("/v1/subjects:batch", rows + "]", operator_key_).status, 200);
  }
  std::mt19937 rng(7);
  const std::string logs = g_.data_dir() + "-logs";
  for (int i = 0; i < 8; ++i) {
    std::vector<std::string> args = {"backup"};
    for (const auto& d : Dirs()) args.push_back(d);
    const int pid = SpawnGarde(args, logs + "/bk.out", logs + "/bk.err");
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 120)(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  RunResult listed = Garde({"backup", "list"}, {"--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  Poco::JSON::Parser p;
  auto all = p.parse(listed.LastLine()).extract<Poco::JSON::Array::Ptr>();
  for (size_t i = 0; i < all->size(); ++i) {
    const std::string id = all->getObject(static_cast<unsigned>(i))->getValue<std::string>("id");
    RunResult v = Garde({"backup", "verify"}, {"--from", id});
    EXPECT_EQ(v.exit_code, 0) << id << ": " << v.out;
  }
  // And one made to the end is whole.
  EXPECT_EQ(Garde({"backup", "verify"}, {"--from", MakeBackup()}).exit_code, 0);
}

// Scheduled in serve: a backup once the newest is backup_interval old, pruned to the policy.
TEST_F(BackupE2E, ServeMakesBackupsOnItsScheduleAndPrunes) {
  ASSERT_EQ(g_.Stop(), 0);
  for (int i = 0; i < 3; ++i) MakeBackup();
  const std::vector<std::string> schedule = {
      "--backup-interval",    "PT1M", "--backup-keep-last",    "2", "--backup-keep-daily", "1",
      "--backup-keep-weekly", "0",    "--backup-keep-monthly", "0"};
  // The newest is seconds old: nothing is due.
  g_.Start(schedule);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(g_.LogCount("backup made"), 0u) << g_.Logs();
  ASSERT_EQ(g_.Stop(), 0);
  // Two minutes later (the test clock), one is made, and the oldest are pruned.
  auto later = schedule;
  later.insert(later.end(), {"--test-clock-offset", "120"});
  g_.Start(later);
  ASSERT_TRUE(g_.WaitForLog("backup made", 1)) << g_.Logs();
  ASSERT_EQ(g_.Stop(), 0);
  RunResult listed = Garde({"backup", "list"}, {"--json"});
  Poco::JSON::Parser p;
  auto all = p.parse(listed.LastLine()).extract<Poco::JSON::Array::Ptr>();
  EXPECT_EQ(all->size(), 2u) << listed.out;
}

}  // namespace
}  // namespace garde::testing

// The command line as scripts drive it (SPEC §1).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "garde_process.h"

namespace garde::testing {
namespace {

TEST(CliE2E, HelpDescribesEveryCommand) {
  for (std::vector<std::string> words : {std::vector<std::string>{"--help"},
                                         {"init", "--help"},
                                         {"serve", "--help"},
                                         {"apikey", "create", "--help"},
                                         {"apikey", "list", "--help"},
                                         {"apikey", "revoke", "--help"},
                                         {"keys", "rotate", "--help"},
                                         {"keys", "status", "--help"},
                                         {"lint", "--help"},
                                         {"audit", "verify", "--help"},
                                         {"audit", "export", "--help"},
                                         {"audit", "checkpoint", "--help"},
                                         {"receipt", "verify", "--help"}}) {
    RunResult r = RunGarde(words);
    EXPECT_EQ(r.exit_code, 0) << words[0];
    EXPECT_NE(r.out.find("Usage: garde"), std::string::npos) << words[0];
    EXPECT_NE(r.out.find("GARDE_DATA_DIR"), std::string::npos) << words[0];
  }
  EXPECT_EQ(RunGarde({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(RunGarde({}).exit_code, 2);
}

TEST(CliE2E, InitPrintsTheAdminKeyAloneOnTheLastLine) {
  GardeProcess g;
  EXPECT_EQ(g.admin_key().rfind("gk_", 0), 0u);
  EXPECT_EQ(g.admin_key().size(), 46u);
  struct stat st;
  ASSERT_EQ(::stat((g.data_dir() + "/keyring.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(g.db_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u);
  // A second init refuses to overwrite the keyring.
  RunResult again = RunGarde({"init", "--data-dir", g.data_dir(), "--policies", g.policies()});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("already exists"), std::string::npos);
}

TEST(CliE2E, ApiKeysAreCreatedListedAndRevoked) {
  GardeProcess g;
  const std::string key = g.CreateKey("crm", "operator", {"customer_management"});
  EXPECT_EQ(key.rfind("gk_", 0), 0u);
  RunResult list = RunGarde(
      {"apikey", "list", "--data-dir", g.data_dir(), "--policies", g.policies(), "--json"});
  ASSERT_EQ(list.exit_code, 0);
  EXPECT_NE(list.out.find(R"("role":"operator","activities":["customer_management"])"),
            std::string::npos)
      << list.out;
  EXPECT_EQ(list.out.find(key), std::string::npos);  // the key itself is never shown again
  // Stored only as a keyed hash.
  EXPECT_EQ(ReadFile(g.db_path()).find(key), std::string::npos);
  EXPECT_EQ(ReadFile(g.db_path() + "-wal").find(key), std::string::npos);

  g.Start();
  const std::string body = R"({"kind":"person","fields":{"email":"k@example.org"}})";
  EXPECT_EQ(g.Post("/v1/subjects", body, key).status, 201);
  const std::string id = g.Sql("SELECT id FROM api_keys WHERE role = 'operator'")[0][0];
  RunResult revoke = RunGarde(
      {"apikey", "revoke", "--data-dir", g.data_dir(), "--policies", g.policies(), "--id", id});
  EXPECT_EQ(revoke.exit_code, 0) << revoke.err;
  // The service remembers a verified key for api_key_cache_seconds (default 2).
  std::this_thread::sleep_for(std::chrono::milliseconds(2300));
  EXPECT_EQ(g.Post("/v1/subjects", body, key).status, 401);
}

TEST(CliE2E, ApiKeyCreateRefusesUnknownRoleOrActivity) {
  GardeProcess g;
  RunResult r = RunGarde({"apikey", "create", "--data-dir", g.data_dir(), "--policies",
                          g.policies(), "--name", "x", "--role", "wizard"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown role 'wizard'"), std::string::npos) << r.err;
  r = RunGarde({"apikey", "create", "--data-dir", g.data_dir(), "--policies", g.policies(),
                "--name", "x", "--role", "operator", "--activity", "no_such_activity"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no_such_activity"), std::string::npos);
}

TEST(CliE2E, ServeRefusesAKeyringReadableByOthers) {
  GardeProcess g;
  ::chmod((g.data_dir() + "/keyring.json").c_str(), 0644);
  RunResult r = RunGarde(
      {"serve", "--data-dir", g.data_dir(), "--policies", g.policies(), "--listen", "127.0.0.1:0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("readable by group or others"), std::string::npos) << r.err;
}

TEST(CliE2E, ServeRefusesBadSettingsNamingThem) {
  GardeProcess g;
  RunResult r = RunGarde({"serve", "--data-dir", g.data_dir(), "--listen", "not-an-address"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("listen"), std::string::npos) << r.err;
  r = RunGarde({"serve", "--data-dir", g.data_dir(), "--policies", g.policies()},
               {{"GARDE_MAX_THREADS", "zero"}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("max_threads"), std::string::npos) << r.err;
  const std::string cfg = g.data_dir() + "/bad.yaml";
  std::ofstream(cfg) << "data_dir: " << g.data_dir() << "\nthreads: 4\n";
  r = RunGarde({"serve", "--config", cfg});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown option 'threads'"), std::string::npos) << r.err;
  r = RunGarde(
      {"serve", "--data-dir", g.data_dir(), "--policies", GARDE_TEST_FIXTURES "/broken_policies"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("schema.yaml:3"), std::string::npos) << r.err;
}

TEST(CliE2E, ServeRefusesAPortAnotherServiceListensOn) {
  GardeProcess g;
  g.Start();
  RunResult r = RunGarde({"serve", "--data-dir", g.data_dir(), "--policies", g.policies(),
                          "--listen", "127.0.0.1:" + std::to_string(g.port())});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot listen"), std::string::npos) << r.err;
  EXPECT_EQ(g.Get("/healthz", "").status, 200);  // the first one still answers
}

TEST(CliE2E, EnvironmentAndConfigFileConfigureServe) {
  GardeProcess g;
  const std::string cfg = g.data_dir() + "/garde.yaml";
  std::ofstream(cfg) << "policies: " << g.policies() << "\nlisten: 127.0.0.1:0\n";
  RunResult r = RunGarde({"apikey", "list", "--config", cfg}, {{"GARDE_DATA_DIR", g.data_dir()}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("admin"), std::string::npos);
}

TEST(CliE2E, LintReportsProblemsWithFileAndLine) {
  RunResult ok = RunGarde({"lint", "--policies", GARDE_POLICIES_DIR});
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  RunResult bad =
      RunGarde({"lint", "--policies", GARDE_TEST_FIXTURES "/broken_policies", "--json"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find(R"("location":"schema.yaml:3")"), std::string::npos) << bad.out;
}

// Long commands draw a bar on stderr for a terminal or with --progress; in a pipe (as here,
// and in logs) only the summary comes out, on stdout.
TEST(CliE2E, LongCommandsShowProgressOnlyWhenAsked) {
  GardeProcess g;
  const std::string key = g.CreateKey("crm", "operator", {"customer_management"});
  g.Start();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(g.Post("/v1/subjects",
                     R"({"kind":"person","fields":{"email":"p)" + std::to_string(i) +
                         R"(@example.org"}})",
                     key)
                  .status,
              201);
  }
  g.Stop();
  const std::vector<std::string> dir = {"--data-dir", g.data_dir(), "--policies", g.policies()};
  auto run = [&](std::vector<std::string> args, bool progress) {
    args.insert(args.end(), dir.begin(), dir.end());
    if (progress) args.push_back("--progress");
    return RunGarde(args);
  };
  struct Case {
    std::vector<std::string> args;
    std::string whole;  // the bar's end: done/total and the unit
  };
  const Case cases[] = {
      {{"audit", "verify"}, " entries"},
      {{"backup"}, " KiB sealed"},
      {{"retention", "run", "--dry-run"}, "3/3 subjects"},
  };
  for (const Case& c : cases) {
    const RunResult quiet = run(c.args, false);
    ASSERT_EQ(quiet.exit_code, 0) << c.args[0] << quiet.err;
    EXPECT_EQ(quiet.err.find('['), std::string::npos) << c.args[0] << ": " << quiet.err;
    const RunResult shown = run(c.args, true);
    ASSERT_EQ(shown.exit_code, 0) << c.args[0] << shown.err;
    EXPECT_NE(shown.err.find("] "), std::string::npos) << c.args[0] << ": " << shown.err;
    EXPECT_NE(shown.err.find("[########################################]"), std::string::npos)
        << c.args[0] << " ends full: " << shown.err;
    EXPECT_NE(shown.err.find(c.whole), std::string::npos) << c.args[0] << ": " << shown.err;
    EXPECT_EQ(shown.out.find('\r'), std::string::npos) << "nothing of the bar on stdout";
  }
}

}  // namespace
}  // namespace garde::testing

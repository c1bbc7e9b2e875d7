// Root keys that do not sit beside the data: the keyring sealed under a passphrase given by a
// systemd credential or a file descriptor. A stolen copy of the data directory (everything but
// the passphrase) decrypts nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "garde_process.h"

namespace garde::testing {
namespace {

namespace fs = std::filesystem;

// A systemd credentials directory ($CREDENTIALS_DIRECTORY) holding the passphrase, apart
// from the data directory.
class Credentials {
 public:
  explicit Credentials(const std::string& passphrase)
      : dir_(fs::temp_directory_path() / ("garde-creds-" + std::to_string(::getpid()))) {
    fs::create_directories(dir_);
    std::ofstream(dir_ / "garde-keyring-passphrase") << passphrase << "\n";
  }
  ~Credentials() { fs::remove_all(dir_); }
  std::map<std::string, std::string> Env() const {
    return {{"CREDENTIALS_DIRECTORY", dir_.string()}};
  }
  std::string passphrase_file() const { return (dir_ / "garde-keyring-passphrase").string(); }

 private:
  fs::path dir_;
};

TEST(KeySources, ASealedKeyringServesRotatesRestartsAndAStolenCopyDecryptsNothing) {
  Credentials creds("correct horse battery staple");
  GardeProcess g("", creds.Env());
  const std::string keyring = ReadFile(g.data_dir() + "/keyring.json");
  ASSERT_EQ(keyring.rfind("garde-keyring-sealed/1\nargon2id13 ", 0), 0u) << keyring.substr(0, 40);
  EXPECT_EQ(keyring.find("master"), std::string::npos);
  const std::string op = g.CreateKey("crm", "operator", {"customer_management"});
  g.Start();
  EXPECT_EQ(g.LogCount("KEYRING IS IN CLEAR"), 0u);  // logged before listening, if at all
  const std::string canary = "zqxsealed.canary@example.org";
  HttpReply created = g.Post(
      "/v1/subjects",
      R"({"kind":"person","fields":{"email":")" + canary + R"(","first_name":"Zqxsealedfirst"}})",
      op);
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = JsonString(created.body, "id");
  ASSERT_EQ(g.Get("/v1/subjects/" + id, op, "customer_management").status, 200);
  // Rotation beside the running service, through the same credential.
  RunResult rotated = RunGarde(
      {"keys", "rotate", "--data-dir", g.data_dir(), "--policies", g.policies()}, creds.Env());
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  EXPECT_EQ(ReadFile(g.data_dir() + "/keyring.json").rfind("garde-keyring-sealed/1", 0), 0u);
  ASSERT_EQ(g.Stop(), 0);
  g.Start();
  HttpReply read = g.Get("/v1/subjects/" + id, op, "customer_management");
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_NE(read.body.find(canary), std::string::npos);
  ASSERT_EQ(g.Stop(), 0);

  // The stolen copy: the whole data directory, without the credential.
  const fs::path copy = fs::temp_directory_path() / ("garde-stolen-" + std::to_string(::getpid()));
  fs::remove_all(copy);
  fs::copy(g.data_dir(), copy, fs::copy_options::recursive);
  const std::string everything = EverythingUnder(copy.string());
  for (const char* planted : {"zqxsealed.canary@example.org", "Zqxsealedfirst"}) {
    EXPECT_EQ(everything.find(planted), std::string::npos) << planted;
  }
  RunResult without =
      RunGarde({"keys", "status", "--data-dir", copy.string(), "--policies", g.policies()});
  EXPECT_NE(without.exit_code, 0);
  EXPECT_NE(without.err.find("sealed under a passphrase"), std::string::npos) << without.err;
  const std::string wrong = copy.string() + "-wrong";
  std::ofstream(wrong) << "Tr0ub4dor&3\n";
  RunResult guessed =
      RunProgram({"/bin/sh", "-c",
                  std::string(GARDE_BINARY) + " backup --data-dir " + copy.string() +
                      " --policies " + g.policies() + " --passphrase-fd 3 3<" + wrong});
  EXPECT_NE(guessed.exit_code, 0);
  EXPECT_NE(guessed.err.find("wrong passphrase"), std::string::npos) << guessed.err;
  // The right passphrase, from a file descriptor, opens it.
  RunResult right = RunProgram({"/bin/sh", "-c",
                                std::string(GARDE_BINARY) + " keys status --data-dir " +
                                    copy.string() + " --policies " + g.policies() +
                                    " --passphrase-fd 3 3<" + creds.passphrase_file()});
  EXPECT_EQ(right.exit_code, 0) << right.err;
  EXPECT_NE(right.out.find("version 2 (current)"), std::string::npos) << right.out;
  fs::remove_all(copy);
  fs::remove(wrong);
}

// `garde keys migrate` moves a deployment from the development keyring to a sealed one and
// back, beside a running service; serve warns loudly while the keys are in clear.
TEST(KeySources, MigratingBetweenTheClearAndTheSealedKeyring) {
  Credentials creds("a long passphrase for the keyring");
  GardeProcess g;  // the development keyring, in clear
  const std::string op = g.CreateKey("crm", "operator", {"customer_management"});
  g.Start();
  EXPECT_TRUE(g.WaitForLog("KEYRING IS IN CLEAR", 1));
  HttpReply created =
      g.Post("/v1/subjects", R"({"kind":"person","fields":{"email":"mig@example.org"}})", op);
  ASSERT_EQ(created.status, 201);
  const std::string id = JsonString(created.body, "id");
  RunResult sealed = RunGarde({"keys", "migrate", "--to", "passphrase", "--data-dir", g.data_dir(),
                               "--policies", g.policies()},
                              creds.Env());
  ASSERT_EQ(sealed.exit_code, 0) << sealed.err;
  EXPECT_EQ(ReadFile(g.data_dir() + "/keyring.json").rfind("garde-keyring-sealed/1", 0), 0u);
  // The running service keeps its keys; restarted with the credential it opens the new form.
  EXPECT_EQ(g.Get("/v1/subjects/" + id, op, "customer_management").status, 200);
  ASSERT_EQ(g.Stop(), 0);
  RunResult refused =
      RunGarde({"keys", "status", "--data-dir", g.data_dir(), "--policies", g.policies()});
  EXPECT_NE(refused.exit_code, 0);
  RunResult back = RunGarde(
      {"keys", "migrate", "--to", "file", "--data-dir", g.data_dir(), "--policies", g.policies()},
      creds.Env());
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(ReadFile(g.data_dir() + "/keyring.json").rfind("{\"format\":\"garde-keyring/1\"", 0),
            0u);
  g.Start();
  EXPECT_EQ(g.Get("/v1/subjects/" + id, op, "customer_management").status, 200);
  RunResult bad = RunGarde(
      {"keys", "migrate", "--to", "hsm", "--data-dir", g.data_dir(), "--policies", g.policies()});
  EXPECT_NE(bad.exit_code, 0);
}

}  // namespace
}  // namespace garde::testing

// Root keys on a PKCS#11 token (SoftHSM2, Debian's package, set up here with softhsm2-util):
// init, serve, read, rotate beside the running service, restart; the keys are checked on the
// token through the raw PKCS#11 API, not Garde's code; a stolen copy of the data directory
// (everything but the token) decrypts nothing; a token that goes away fails readiness and
// reads until it comes back; migration from the development keyring and back.
#include <gtest/gtest.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "garde_process.h"

namespace garde::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSoftHsm = "/usr/lib/softhsm/libsofthsm2.so";

// A SoftHSM2 token of its own (tokens directory, config, PIN file with mode 0600) and the
// environment that points garde at it. The PIN travels in a file, never in the environment.
class SoftHsm {
 public:
  explicit SoftHsm(const std::string& label = "garde-test")
      : dir_(fs::temp_directory_path() /
             ("garde-hsm-" + std::to_string(::getpid()) + "-" + std::to_string(++count_))),
        label_(label) {
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tokens");
    std::ofstream(dir_ / "softhsm2.conf") << "directories.tokendir = " << (dir_ / "tokens").string()
                                          << "\nobjectstore.backend = file\nlog.level = ERROR\n";
    std::ofstream(dir_ / "pin") << "246813\n";
    ::chmod((dir_ / "pin").c_str(), 0600);
    RunResult init =
        RunProgram({"/usr/bin/env", "SOFTHSM2_CONF=" + conf(), "softhsm2-util", "--init-token",
                    "--free", "--label", label_, "--pin", "246813", "--so-pin", "97531864"});
    EXPECT_EQ(init.exit_code, 0) << init.err << init.out;
  }
  ~SoftHsm() { fs::remove_all(dir_); }

  std::string conf() const { return (dir_ / "softhsm2.conf").string(); }
  std::string tokens() const { return (dir_ / "tokens").string(); }
  // p11-kit finds the module by its registered name.
  std::map<std::string, std::string> Env() const {
    return {{"SOFTHSM2_CONF", conf()},
            {"GARDE_PKCS11_MODULE", "softhsm2"},
            {"GARDE_PKCS11_TOKEN", label_},
            {"GARDE_PKCS11_PIN_FILE", (dir_ / "pin").string()}};
  }
  std::map<std::string, std::string> EnvWith(std::map<std::string, std::string> more) const {
    auto env = Env();
    env.insert(more.begin(), more.end());
    return env;
  }

  struct KeyFacts {
    bool sensitive = false;
    bool extractable = true;
    bool value_refused = false;  // CKA_VALUE cannot be read
  };
  // The token's secret keys by label, read with the raw PKCS#11 API (logged in as the user).
  std::map<std::string, KeyFacts> SecretKeys() const {
    std::map<std::string, KeyFacts> out;
    ::setenv("SOFTHSM2_CONF", conf().c_str(), 1);
    CK_FUNCTION_LIST* fn = p11_kit_module_load(kSoftHsm, 0);
    if (fn == nullptr || p11_kit_module_initialize(fn) != CKR_OK) {
      ADD_FAILURE() << "cannot load SoftHSM2";
      return out;
    }
    CK_SLOT_ID slots[8];
    CK_ULONG n = 8;
    CK_SESSION_HANDLE s = 0;
    bool ok = fn->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK;
    for (CK_ULONG i = 0; ok && i < n; ++i) {
      CK_TOKEN_INFO info;
      fn->C_GetTokenInfo(slots[i], &info);
      std::string l(reinterpret_cast<char*>(info.label), sizeof info.label);
      l.erase(l.find_last_not_of(' ') + 1);
      if (l != label_) continue;
      ok = fn->C_OpenSession(slots[i], CKF_SERIAL_SESSION, nullptr, nullptr, &s) == CKR_OK &&
           fn->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>("246813")),
                       6) == CKR_OK;
      CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
      CK_ATTRIBUTE find[] = {{CKA_CLASS, &cls, sizeof cls}};
      CK_OBJECT_HANDLE objs[32];
      CK_ULONG found = 0;
      ok = ok && fn->C_FindObjectsInit(s, find, 1) == CKR_OK &&
           fn->C_FindObjects(s, objs, 32, &found) == CKR_OK;
      fn->C_FindObjectsFinal(s);
      for (CK_ULONG k = 0; ok && k < found; ++k) {
        char name[128] = {0};
        CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE;
        CK_ATTRIBUTE attrs[] = {{CKA_LABEL, name, sizeof name - 1},
                                {CKA_SENSITIVE, &sensitive, sizeof sensitive},
                                {CKA_EXTRACTABLE, &extractable, sizeof extractable}};
        fn->C_GetAttributeValue(s, objs[k], attrs, 3);
        uint8_t value[64];
        CK_ATTRIBUTE want_value[] = {{CKA_VALUE, value, sizeof value}};
        const CK_RV rv = fn->C_GetAttributeValue(s, objs[k], want_value, 1);
        out[std::string(name, attrs[0].ulValueLen)] = {sensitive == CK_TRUE, extractable == CK_TRUE,
                                                       rv == CKR_ATTRIBUTE_SENSITIVE};
      }
    }
    if (s != 0) fn->C_CloseSession(s);
    p11_kit_module_finalize(fn);
    p11_kit_module_release(fn);
    EXPECT_TRUE(ok) << "reading the token failed";
    return out;
  }

 private:
  static inline int count_ = 0;
  fs::path dir_;
  std::string label_;
};

bool WaitForStatus(GardeProcess& g, const std::string& path, int status,
                   const std::string& key = "", const std::string& purpose = "") {
  for (int i = 0; i < 100; ++i) {
    if (g.Get(path, key, purpose).status == status) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

TEST(Pkcs11, RootKeysStayOnTheTokenThroughServeRotateAndRestart) {
  SoftHsm hsm;
  GardeProcess g("", hsm.Env());
  const std::string keyring = ReadFile(g.data_dir() + "/keyring.json");
  EXPECT_EQ(keyring.find("\"master\":\""), std::string::npos) << keyring;
  EXPECT_EQ(keyring.find("\"key\":\""), std::string::npos) << keyring;
  EXPECT_NE(keyring.find("\"master_sealed\":\""), std::string::npos) << keyring;
  auto keys = hsm.SecretKeys();
  ASSERT_EQ(keys.size(), 1u);
  const std::string first = keys.begin()->first;
  EXPECT_EQ(first.rfind("garde-root-1-", 0), 0u) << first;
  EXPECT_TRUE(keys.begin()->second.sensitive);
  EXPECT_FALSE(keys.begin()->second.extractable);
  EXPECT_TRUE(keys.begin()->second.value_refused);

  const std::string op = g.CreateKey("crm", "operator", {"customer_management"});
  g.Start();
  EXPECT_EQ(g.LogCount("KEYRING IS IN CLEAR"), 0u);
  EXPECT_EQ(g.Get("/readyz", "").status, 200);
  const std::string canary = "zqxtoken.canary@example.org";
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    HttpReply created = g.Post("/v1/subjects",
                               R"({"kind":"person","fields":{"email":"t)" + std::to_string(i) +
                                   canary + R"(","first_name":"Zqxtokenfirst"}})",
                               op);
    ASSERT_EQ(created.status, 201) << created.body;
    ids.push_back(JsonString(created.body, "id"));
  }
  ASSERT_EQ(g.Get("/v1/subjects/" + ids[0], op, "customer_management").status, 200);

  // Rotation beside the running service: a new key generated on the token, every data key
  // re-wrapped through it, the old key destroyed on the token.
  RunResult rotated = RunGarde({"keys", "rotate", "--data-dir", g.data_dir(), "--policies",
                                g.policies(), "--keyring-watch-seconds", "1"},
                               hsm.Env());
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  EXPECT_NE(rotated.out.find("Retired version 1 (destroyed on the token)"), std::string::npos)
      << rotated.out;
  keys = hsm.SecretKeys();
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys.count(first), 0u);
  EXPECT_EQ(keys.begin()->first.rfind("garde-root-2-", 0), 0u) << keys.begin()->first;
  EXPECT_FALSE(keys.begin()->second.extractable);
  for (const auto& id : ids) {
    HttpReply read = g.Get("/v1/subjects/" + id, op, "customer_management");
    ASSERT_EQ(read.status, 200) << read.body;
  }

  // Master rotation: the new master, the kept sub-keys and the retired master's link key are
  // all sealed by the token key; none is in the file in clear.
  const std::vector<std::string> rotate_master = {
      "keys",       "rotate-master",           "--data-dir", g.data_dir(), "--policies",
      g.policies(), "--keyring-watch-seconds", "1"};
  RunResult master = RunGarde(rotate_master, hsm.Env());
  ASSERT_EQ(master.exit_code, 0) << master.err << master.out;
  EXPECT_NE(master.out.find("Not retired"), std::string::npos) << master.out;
  // Each API key is hashed again when next used; then the old master can go.
  EXPECT_EQ(g.Get("/v1/subjects/" + ids[1], op, "customer_management").status, 200);
  EXPECT_EQ(g.Get("/v1/purposes", g.admin_key()).status, 200);
  EXPECT_NE(ReadFile(g.data_dir() + "/keyring.json").find("\"previous_master_sealed\":\""),
            std::string::npos);
  master = RunGarde(rotate_master, hsm.Env());
  ASSERT_EQ(master.exit_code, 0) << master.err << master.out;
  EXPECT_NE(master.out.find("Retired master-key version 1"), std::string::npos) << master.out;
  const std::string rotated_ring = ReadFile(g.data_dir() + "/keyring.json");
  for (const char* member :
       {"\"master\":\"", "\"kept\":\"", "\"link_key\":\"", "previous_master"}) {
    EXPECT_EQ(rotated_ring.find(member), std::string::npos) << member << rotated_ring;
  }
  for (const char* member :
       {"\"kept_sealed\":\"", "\"link_key_sealed\":\"", "\"master_version\":2"}) {
    EXPECT_NE(rotated_ring.find(member), std::string::npos) << member << rotated_ring;
  }
  ASSERT_EQ(g.Stop(), 0);
  g.Start();
  HttpReply read = g.Get("/v1/subjects/" + ids[7], op, "customer_management");
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_NE(read.body.find("t7" + std::string(canary)), std::string::npos);
  HttpReply found = g.Post("/v1/subjects:search", R"({"email":"t3)" + std::string(canary) + R"("})",
                           op, "customer_management");
  EXPECT_NE(found.body.find(ids[3]), std::string::npos) << found.body;
  ASSERT_EQ(g.Stop(), 0);

  // The stolen copy: the data directory without the token decrypts nothing, and neither
  // does another token with the same label and PIN.
  const fs::path copy =
      fs::temp_directory_path() / ("garde-stolen-hsm-" + std::to_string(::getpid()));
  fs::remove_all(copy);
  fs::copy(g.data_dir(), copy, fs::copy_options::recursive);
  const std::string everything = EverythingUnder(copy.string());
  for (const char* planted : {"zqxtoken.canary@example.org", "Zqxtokenfirst"}) {
    EXPECT_EQ(everything.find(planted), std::string::npos) << planted;
  }
  RunResult without =
      RunGarde({"keys", "status", "--data-dir", copy.string(), "--policies", g.policies()});
  EXPECT_NE(without.exit_code, 0);
  EXPECT_NE(without.err.find("PKCS#11 token"), std::string::npos) << without.err;
  SoftHsm other;  // the thief's own token, same label and PIN
  RunResult elsewhere = RunGarde(
      {"keys", "status", "--data-dir", copy.string(), "--policies", g.policies()}, other.Env());
  EXPECT_NE(elsewhere.exit_code, 0);
  EXPECT_NE(elsewhere.err.find("holds no key"), std::string::npos) << elsewhere.err;
  fs::remove_all(copy);
}

TEST(Pkcs11, ATokenThatGoesAwayFailsReadinessAndReadsUntilItComesBack) {
  SoftHsm hsm;
  GardeProcess g("", hsm.Env());
  const std::string op = g.CreateKey("crm", "operator", {"customer_management"});
  g.Start({"--keyring-watch-seconds", "1"});
  HttpReply created =
      g.Post("/v1/subjects", R"({"kind":"person","fields":{"email":"gone@example.org"}})", op);
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string path = "/v1/subjects/" + JsonString(created.body, "id");
  ASSERT_EQ(g.Get(path, op, "customer_management").status, 200);  // its data key now cached

  // The token's store goes away (a network HSM unreachable, a token pulled out).
  const std::string away = hsm.tokens() + ".away";
  fs::rename(hsm.tokens(), away);
  EXPECT_TRUE(WaitForStatus(g, "/readyz", 503));
  HttpReply refused = g.Get(path, op, "customer_management");
  EXPECT_EQ(refused.status, 503) << refused.body;  // the cached key went with the token
  EXPECT_EQ(refused.content_type, "application/problem+json");
  // The watcher's own line (failed requests name the token too): it has seen the outage,
  // so it has a return to log below.
  EXPECT_TRUE(g.WaitForLog("the PKCS#11 token is unavailable: reads answer 503", 1));
  // Writes that need a data key are refused as well; consent checks need none and go on.
  EXPECT_EQ(
      g.Post("/v1/subjects", R"({"kind":"person","fields":{"email":"during@example.org"}})", op)
          .status,
      503);
  HttpReply check = g.Get("/v1/consent/check?subject=" + JsonString(created.body, "id") +
                              "&purpose=marketing.email&channel=email",
                          op);
  EXPECT_EQ(check.status, 200) << check.body;

  fs::rename(away, hsm.tokens());
  EXPECT_TRUE(WaitForStatus(g, "/readyz", 200));
  EXPECT_EQ(g.Get(path, op, "customer_management").status, 200);
  EXPECT_TRUE(g.WaitForLog("the PKCS#11 token answers again", 1));
  EXPECT_EQ(
      g.Post("/v1/subjects", R"({"kind":"person","fields":{"email":"after@example.org"}})", op)
          .status,
      201);
}

TEST(Pkcs11, MigratingFromTheDevelopmentKeyringToTheTokenAndBack) {
  SoftHsm hsm;
  GardeProcess g;  // the development keyring, in clear
  const std::string op = g.CreateKey("crm", "operator", {"customer_management"});
  g.Start();
  HttpReply created =
      g.Post("/v1/subjects", R"({"kind":"person","fields":{"email":"mig@example.org"}})", op);
  ASSERT_EQ(created.status, 201);
  const std::string path = "/v1/subjects/" + JsonString(created.body, "id");

  RunResult moved = RunGarde({"keys", "migrate", "--to", "pkcs11", "--data-dir", g.data_dir(),
                              "--policies", g.policies(), "--keyring-watch-seconds", "1"},
                             hsm.Env());
  ASSERT_EQ(moved.exit_code, 0) << moved.err;
  const std::string keyring = ReadFile(g.data_dir() + "/keyring.json");
  EXPECT_EQ(keyring.find("\"master\":\""), std::string::npos) << keyring;
  EXPECT_EQ(keyring.find("\"key\":\""), std::string::npos) << keyring;
  EXPECT_EQ(hsm.SecretKeys().size(), 1u);
  ASSERT_EQ(g.Stop(), 0);
  // The service needs the token now; with it, the subject reads as before.
  RunResult refused =
      RunGarde({"keys", "status", "--data-dir", g.data_dir(), "--policies", g.policies()});
  EXPECT_NE(refused.exit_code, 0);
  const size_t warned = g.LogCount("KEYRING IS IN CLEAR");
  EXPECT_EQ(warned, 1u);  // the development keyring's start
  g.SetEnv(hsm.Env());
  g.Start();
  EXPECT_EQ(g.LogCount("KEYRING IS IN CLEAR"), warned);
  HttpReply read = g.Get(path, op, "customer_management");
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_NE(read.body.find("mig@example.org"), std::string::npos);

  RunResult back = RunGarde({"keys", "migrate", "--to", "file", "--data-dir", g.data_dir(),
                             "--policies", g.policies(), "--keyring-watch-seconds", "1"},
                            hsm.Env());
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_TRUE(hsm.SecretKeys().empty());  // the token's key destroyed once unused
  ASSERT_EQ(g.Stop(), 0);
  g.SetEnv({});
  g.Start();
  EXPECT_EQ(g.Get(path, op, "customer_management").status, 200);
}

}  // namespace
}  // namespace garde::testing

#include "garde/crypto/keyring.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "garde/base/clock.h"
#include "garde/crypto/keyed_hash.h"

namespace garde {
namespace {

// A keyring path in a directory of its own, removed with it.
struct TempKeyring {
  explicit TempKeyring(const char* name)
      : dir(std::filesystem::temp_directory_path() /
            ("garde-keyring-" + std::to_string(::getpid()) + "-" + name)) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    path = (dir / "keyring.json").string();
  }
  ~TempKeyring() { std::filesystem::remove_all(dir); }
  std::filesystem::path dir;
  std::string path;
};

TEST(Keyring, CreatedFileIsOwnerOnly) {
  const TempKeyring temp("mode");
  const std::string& path = temp.path;
  ASSERT_TRUE(Keyring::Create(path).ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(Keyring, RefusesToOverwrite) {
  const TempKeyring temp("overwrite");
  const std::string& path = temp.path;
  ASSERT_TRUE(Keyring::Create(path).ok());
  EXPECT_EQ(Keyring::Create(path).code(), Code::kConflict);
}

TEST(Keyring, RefusesAKeyringReadableByGroupOrOthers) {
  const TempKeyring temp("loose");
  const std::string& path = temp.path;
  ASSERT_TRUE(Keyring::Create(path).ok());
  for (mode_t mode : {0640u, 0604u, 0644u, 0660u}) {
    ::chmod(path.c_str(), mode);
    auto ring = Keyring::Load(path);
    ASSERT_FALSE(ring.ok()) << std::oct << mode;
    EXPECT_NE(ring.status().message().find("chmod 600"), std::string::npos);
  }
  ::chmod(path.c_str(), 0600);
  EXPECT_TRUE(Keyring::Load(path).ok());
}

TEST(Keyring, RefusesAFileThatIsNotAKeyring) {
  const TempKeyring temp("garbage");
  const std::string& path = temp.path;
  std::ofstream(path) << "{\"format\":\"something-else\"}";
  ::chmod(path.c_str(), 0600);
  EXPECT_FALSE(Keyring::Load(path).ok());
}

// The keyring is read in place from secret memory by a strict reader of its own format: a
// hand-edited (pretty-printed) file still reads, and anything off the format is refused whole.
TEST(Keyring, ReadsItsFormatStrictlyWhateverTheLayout) {
  const TempKeyring temp("layout");
  ASSERT_TRUE(Keyring::Create(temp.path).ok());
  ASSERT_TRUE(Keyring::AddVersion(temp.path).ok());
  ASSERT_TRUE(Keyring::Retire(temp.path, 1).ok());
  std::ifstream in(temp.path);
  const std::string compact((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto original = Keyring::Load(temp.path);
  ASSERT_TRUE(original.ok()) << original.status().message();
  const Bytes before = KeyedHash(original.value()->Derive(KeyContext::kApiKeyHash)).Digest("x");
  auto write = [&](const std::string& text) {
    std::ofstream(temp.path, std::ios::trunc) << text;
    ::chmod(temp.path.c_str(), 0600);
  };
  // Pretty-printed: white space around every token.
  std::string pretty;
  bool in_string = false;
  for (char c : compact) {
    pretty += c;
    if (c == '"') in_string = !in_string;
    if (!in_string && (c == ',' || c == '{' || c == '[' || c == ':')) pretty += "\n  ";
  }
  write(pretty);
  auto loaded = Keyring::Load(temp.path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message() << "\n" << pretty;
  EXPECT_EQ(KeyedHash(loaded.value()->Derive(KeyContext::kApiKeyHash)).Digest("x"), before);
  EXPECT_EQ(loaded.value()->Root(1), nullptr);  // retired
  EXPECT_NE(loaded.value()->Root(2), nullptr);
  const std::string master = compact.substr(compact.find("\"master\":\"") + 10, 44);
  for (const std::string& broken : {
           compact + "x",                                                       // trailing bytes
           compact.substr(0, compact.size() / 2),                               // truncated
           std::string(compact).replace(compact.find(master), 1, "\\u0041"),    // an escape
           std::string(compact).replace(compact.find(master) + 40, 4, "AAB="),  // non-canonical
           std::string(compact).replace(compact.find("\"current\":2"), 11, "\"current\":1"),
           std::string(compact).replace(compact.find("\"format\""), 8, "\"Format\""),
       }) {
    write(broken);
    EXPECT_FALSE(Keyring::Load(temp.path).ok()) << broken;
  }
}

TEST(Keyring, EachUseGetsItsOwnSubKey) {
  const TempKeyring temp("derive");
  const std::string& path = temp.path;
  ASSERT_TRUE(Keyring::Create(path).ok());
  auto ring = Keyring::Load(path);
  ASSERT_TRUE(ring.ok());
  const KeyContext contexts[] = {KeyContext::kBlindIndex, KeyContext::kSuppression,
                                 KeyContext::kSubjectToken, KeyContext::kApiKeyHash,
                                 KeyContext::kSigning};
  std::vector<Bytes> keys;
  for (auto c : contexts) {
    SecretKey k = ring.value()->Derive(c);
    keys.emplace_back(k.data(), k.data() + kKeyBytes);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    for (size_t j = i + 1; j < keys.size(); ++j) EXPECT_NE(keys[i], keys[j]);
  }
  // Deterministic: the same keyring derives the same key again.
  SecretKey again = ring.value()->Derive(KeyContext::kBlindIndex);
  EXPECT_EQ(Bytes(again.data(), again.data() + kKeyBytes), keys[0]);
}

TEST(BlindIndex, PerFieldKeysAndTruncation) {
  const TempKeyring temp("blind");
  const std::string& path = temp.path;
  ASSERT_TRUE(Keyring::Create(path).ok());
  auto ring = Keyring::Load(path);
  ASSERT_TRUE(ring.ok());
  BlindIndex index(ring.value()->Derive(KeyContext::kBlindIndex));
  const Bytes a = index.Digest("email", "ana@example.org", 16);
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a, index.Digest("email", "ana@example.org", 16));
  EXPECT_NE(a, index.Digest("email", "ana@example.com", 16));
  // The same value under another field has an unrelated digest.
  EXPECT_NE(a, index.Digest("customer_number", "ana@example.org", 16));
  const Bytes short_digest = index.Digest("email", "ana@example.org", 8);
  EXPECT_EQ(short_digest.size(), 8u);
  EXPECT_TRUE(std::equal(short_digest.begin(), short_digest.end(), a.begin()));
}

Bytes KeyBytes(const SecretKey& k) { return Bytes(k.data(), k.data() + kKeyBytes); }

std::string FileText(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The master key as the clear keyring file spells it (base64).
std::string MasterText(const std::string& path) {
  const std::string text = FileText(path);
  const size_t at = text.find("\"master\":\"") + 10;
  return text.substr(at, text.find('"', at) - at);
}

TEST(Keyring, AMasterRotationRenewsLookUpKeysAndKeepsWhatCannotBeComputedAgain) {
  const TempKeyring temp("master");
  ASSERT_TRUE(Keyring::Create(temp.path).ok());
  auto before = Keyring::Load(temp.path);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before.value()->master_version(), 1u);
  EXPECT_EQ(before.value()->previous_master_version(), 0u);
  EXPECT_FALSE(before.value()->DerivePrevious(KeyContext::kBlindIndex).has_value());
  const std::string first_master = MasterText(temp.path);

  auto added = Keyring::AddMaster(temp.path);
  ASSERT_TRUE(added.ok()) << added.status().message();
  EXPECT_EQ(added.value(), 2u);
  EXPECT_EQ(Keyring::AddMaster(temp.path).status().code(), Code::kConflict);
  auto during = Keyring::Load(temp.path);
  ASSERT_TRUE(during.ok());
  EXPECT_EQ(during.value()->master_version(), 2u);
  EXPECT_EQ(during.value()->previous_master_version(), 1u);
  const KeyContext lookups[] = {KeyContext::kBlindIndex, KeyContext::kApiKeyHash,
                                KeyContext::kSubjectToken};
  const KeyContext kept[] = {KeyContext::kSuppression, KeyContext::kSigning,
                             KeyContext::kAuditDigest, KeyContext::kBackup, KeyContext::kIncident};
  for (KeyContext c : lookups) {
    EXPECT_NE(KeyBytes(during.value()->Derive(c)), KeyBytes(before.value()->Derive(c)));
    auto previous = during.value()->DerivePrevious(c);
    ASSERT_TRUE(previous.has_value());
    EXPECT_EQ(KeyBytes(*previous), KeyBytes(before.value()->Derive(c)));
  }
  for (KeyContext c : kept) {
    EXPECT_EQ(KeyBytes(during.value()->Derive(c)), KeyBytes(before.value()->Derive(c)));
    EXPECT_FALSE(during.value()->DerivePrevious(c).has_value());
  }
  EXPECT_EQ(during.value()->RetiredLinkKey(0), nullptr);

  const int64_t now = SystemClock().Now();
  ASSERT_TRUE(Keyring::RetireMaster(temp.path, now + 3600).ok());
  auto after = Keyring::Load(temp.path);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after.value()->master_version(), 2u);
  EXPECT_EQ(after.value()->previous_master_version(), 0u);
  EXPECT_EQ(FileText(temp.path).find(first_master), std::string::npos) << "old master kept";
  for (KeyContext c : lookups) {
    EXPECT_EQ(KeyBytes(after.value()->Derive(c)), KeyBytes(during.value()->Derive(c)));
    EXPECT_FALSE(after.value()->DerivePrevious(c).has_value());
  }
  for (KeyContext c : kept) {
    EXPECT_EQ(KeyBytes(after.value()->Derive(c)), KeyBytes(before.value()->Derive(c)));
  }
  // Links MACed under the old master keep working until the last of them expires.
  const SecretKey* links = after.value()->RetiredLinkKey(now);
  ASSERT_NE(links, nullptr);
  EXPECT_EQ(KeyBytes(*links), KeyBytes(before.value()->Derive(KeyContext::kSubjectToken)));
  EXPECT_EQ(after.value()->RetiredLinkKey(now + 3600), nullptr);

  // A second rotation: the kept keys are still the first master's.
  ASSERT_TRUE(Keyring::AddMaster(temp.path).ok());
  ASSERT_TRUE(Keyring::RetireMaster(temp.path, now + 3600).ok());
  auto third = Keyring::Load(temp.path);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third.value()->master_version(), 3u);
  for (KeyContext c : kept) {
    EXPECT_EQ(KeyBytes(third.value()->Derive(c)), KeyBytes(before.value()->Derive(c)));
  }
  // Root rotation beside it leaves the master alone.
  ASSERT_TRUE(Keyring::AddVersion(temp.path).ok());
  auto rooted = Keyring::Load(temp.path);
  ASSERT_TRUE(rooted.ok());
  EXPECT_EQ(rooted.value()->master_version(), 3u);
  EXPECT_EQ(KeyBytes(rooted.value()->Derive(KeyContext::kBlindIndex)),
            KeyBytes(third.value()->Derive(KeyContext::kBlindIndex)));
}

TEST(Keyring, RefusesInconsistentMasterRotationMembers) {
  const TempKeyring temp("master-strict");
  ASSERT_TRUE(Keyring::Create(temp.path).ok());
  ASSERT_TRUE(Keyring::AddMaster(temp.path).ok());
  const std::string good = FileText(temp.path);
  ASSERT_TRUE(Keyring::Load(temp.path).ok());
  auto write = [&](const std::string& text) {
    std::ofstream(temp.path, std::ios::trunc) << text;
    ::chmod(temp.path.c_str(), 0600);
  };
  auto without = [&](const std::string& member) {
    std::string text = good;
    const size_t at = text.find("\"" + member + "\":");
    const size_t end = text.find(',', at);
    return text.erase(at, end - at + 1);
  };
  // A previous master without its version, a version without its key, a kept block cut short.
  for (const std::string& broken :
       {without("previous_master"), without("previous_master_version"),
        std::string(good).replace(good.find("\"master_version\":2"), 18, "\"master_version\":1"),
        std::string(good).replace(good.find("\"kept\":\"") + 8, 4, "")}) {
    write(broken);
    EXPECT_FALSE(Keyring::Load(temp.path).ok()) << broken;
  }
  write(good);
  EXPECT_TRUE(Keyring::Load(temp.path).ok());
}

}  // namespace
}  // namespace garde

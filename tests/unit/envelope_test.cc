#include "garde/crypto/envelope.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "garde/crypto/keyring.h"
#include "garde/crypto/secret.h"
#include "test_dir.h"

namespace garde {
namespace {

class EnvelopeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("garde-envelope-");
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "keyring.json").string();
    ASSERT_TRUE(Keyring::Create(path_).ok());
    auto ring = Keyring::Load(path_);
    ASSERT_TRUE(ring.ok());
    ring_ = ring.value();
    dek_.Randomize();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string path_;
  std::shared_ptr<const Keyring> ring_;
  ScopedKey dek_;
};

TEST_F(EnvelopeTest, SealedFieldOpensUnderItsOwnBinding) {
  Bytes box = SealField(dek_, {"sub_a", "email", 1}, "s:ana@example.org");
  auto plain = OpenField(dek_, {"sub_a", "email", 1}, box);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain.value(), "s:ana@example.org");
}

TEST_F(EnvelopeTest, CiphertextDoesNotContainThePlaintext) {
  const std::string secret = "s:canary-ZQX-plaintext";
  Bytes box = SealField(dek_, {"sub_a", "email", 1}, secret);
  EXPECT_EQ(AsStringView(box).find("canary"), std::string_view::npos);
}

TEST_F(EnvelopeTest, SameValueSealsDifferentlyEachTime) {
  EXPECT_NE(SealField(dek_, {"sub_a", "email", 1}, "s:x"),
            SealField(dek_, {"sub_a", "email", 1}, "s:x"));
}

struct BindingCase {
  const char* name;
  FieldBinding binding;
};

TEST_F(EnvelopeTest, BoxMovedToAnotherSubjectFieldOrVersionFailsAsDamaged) {
  Bytes box = SealField(dek_, {"sub_a", "email", 1}, "s:ana@example.org");
  const BindingCase cases[] = {
      {"other subject", {"sub_b", "email", 1}},
      {"other field", {"sub_a", "phone", 1}},
      {"other dek version", {"sub_a", "email", 2}},
  };
  for (const auto& c : cases) {
    auto plain = OpenField(dek_, c.binding, box);
    ASSERT_FALSE(plain.ok()) << c.name;
    EXPECT_EQ(plain.status().code(), Code::kDamaged) << c.name;
  }
}

TEST_F(EnvelopeTest, AnyFlippedByteIsDetected) {
  const Bytes box = SealField(dek_, {"sub_a", "email", 1}, "s:ana@example.org");
  for (size_t i = 0; i < box.size(); ++i) {
    Bytes bad = box;
    bad[i] ^= 0x01;
    EXPECT_FALSE(OpenField(dek_, {"sub_a", "email", 1}, bad).ok()) << "byte " << i;
  }
  EXPECT_FALSE(OpenField(dek_, {"sub_a", "email", 1}, Bytes{1, 2, 3}).ok());
}

TEST_F(EnvelopeTest, DataKeyWrapsAndUnwrapsOnlyForItsSubjectAndVersion) {
  auto wrapped = WrapDataKey(*ring_, 1, "sub_a", dek_);
  ASSERT_TRUE(wrapped.ok());
  ScopedKey back;
  ASSERT_TRUE(UnwrapDataKey(*ring_, 1, "sub_a", wrapped.value(), &back).ok());
  EXPECT_EQ(0, std::memcmp(back.data(), dek_.data(), kKeyBytes));
  ScopedKey other;
  EXPECT_EQ(UnwrapDataKey(*ring_, 1, "sub_b", wrapped.value(), &other).code(), Code::kDamaged);
  EXPECT_EQ(UnwrapDataKey(*ring_, 7, "sub_a", wrapped.value(), &other).code(), Code::kUnavailable);
}

TEST_F(EnvelopeTest, RotatedKeyringStillUnwrapsOldVersionUntilRetired) {
  auto wrapped = WrapDataKey(*ring_, 1, "sub_a", dek_);
  ASSERT_TRUE(wrapped.ok());
  auto v2 = Keyring::AddVersion(path_);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2.value(), 2u);
  auto ring2 = Keyring::Load(path_);
  ASSERT_TRUE(ring2.ok());
  EXPECT_EQ(ring2.value()->current_version(), 2u);
  ScopedKey back;
  EXPECT_TRUE(UnwrapDataKey(*ring2.value(), 1, "sub_a", wrapped.value(), &back).ok());
  ASSERT_TRUE(Keyring::Retire(path_, 1).ok());
  auto ring3 = Keyring::Load(path_);
  ASSERT_TRUE(ring3.ok());
  EXPECT_EQ(ring3.value()->Root(1), nullptr);
  EXPECT_EQ(UnwrapDataKey(*ring3.value(), 1, "sub_a", wrapped.value(), &back).code(),
            Code::kUnavailable);
  EXPECT_EQ(Keyring::Retire(path_, 2).code(), Code::kConflict);  // current cannot be retired
}

}  // namespace
}  // namespace garde

namespace garde {
namespace {

// Nonces, keys and ids come from libsodium's per-thread generator (docs/security.md,
// Randomness): selected once initialised, and no two threads drawing at once get the same
// bytes, as they would from one state shared without a lock.
TEST(Randomness, EachThreadDrawsItsOwnStreamFromLibsodiumsGenerator) {
  ASSERT_TRUE(InitSodium());
  EXPECT_STREQ(randombytes_implementation_name(), "internal");
  constexpr size_t kThreads = 4, kDraws = 5000;
  std::vector<std::vector<std::string>> drawn(kThreads);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&drawn, t] {
      for (size_t i = 0; i < kDraws; ++i) {
        std::string nonce(24, '\0');
        randombytes_buf(nonce.data(), nonce.size());
        drawn[t].push_back(std::move(nonce));
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (const auto& d : drawn) all.insert(d.begin(), d.end());
  EXPECT_EQ(all.size(), kThreads * kDraws);
}

}  // namespace
}  // namespace garde

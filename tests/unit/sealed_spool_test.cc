// An upload kept on disk while it arrives (SealedSpool): read back whole, in any read sizes
// and again after a rewind; the file holds no plaintext and has no name; a changed, cut or
// reordered file reads as damaged, never as other bytes.
#include "garde/crypto/sealed_spool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "test_dir.h"

namespace garde {
namespace {

std::string ReadBack(ByteSource& source, std::mt19937_64& rng) {
  std::string out;
  char buf[100000];
  for (;;) {
    auto n = source.Read(buf, 1 + rng() % sizeof buf);
    EXPECT_TRUE(n.ok()) << n.status().message();
    if (!n.ok() || n.value() == 0) return out;
    out.append(buf, n.value());
  }
}

std::string FileBytes(int fd) {
  std::string out;
  char buf[65536];
  off_t at = 0;
  for (ssize_t n; (n = ::pread(fd, buf, sizeof buf, at)) > 0; at += n) {
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

class SealedSpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("garde-spool-");
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(SealedSpoolTest, ReadsBackWhatWasAppendedAndLeavesNoPlaintextNorName) {
  std::mt19937_64 rng(7);
  for (size_t size :
       {size_t{0}, size_t{1}, size_t{65535}, size_t{65536}, size_t{65537}, size_t{300000}}) {
    std::string body;
    while (body.size() < size) body += "Marguerite.Duras@example.org;";
    body.resize(size);
    auto spool = SealedSpool::Create(dir_.string());
    ASSERT_TRUE(spool.ok()) << spool.status().message();
    for (size_t at = 0; at < body.size();) {
      const size_t n = std::min(body.size() - at, 1 + static_cast<size_t>(rng() % 20000));
      ASSERT_TRUE(spool.value()->Append(std::string_view(body).substr(at, n)).ok());
      at += n;
    }
    ASSERT_TRUE(spool.value()->Finish().ok());
    EXPECT_EQ(spool.value()->size(), static_cast<int64_t>(size));
    EXPECT_EQ(ReadBack(*spool.value(), rng), body) << size;
    ASSERT_TRUE(spool.value()->Rewind().ok());
    EXPECT_EQ(ReadBack(*spool.value(), rng), body) << size;
    const std::string on_disk = FileBytes(spool.value()->fd());
    EXPECT_GE(on_disk.size(), size);
    if (size > 0) {
      EXPECT_EQ(on_disk.find("Duras@example"), std::string::npos);
    }
    EXPECT_TRUE(std::filesystem::is_empty(dir_)) << "the spool has a name";
  }
}

TEST_F(SealedSpoolTest, AChangedCutOrReorderedFileIsDamaged) {
  std::string body(200000, 'a');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  auto make = [&] {
    auto spool = SealedSpool::Create(dir_.string());
    EXPECT_TRUE(spool.ok());
    EXPECT_TRUE(spool.value()->Append(body).ok());
    EXPECT_TRUE(spool.value()->Finish().ok());
    return std::move(spool).value();
  };
  auto read_all = [](SealedSpool& s) -> Status {
    char buf[4096];
    for (;;) {
      auto n = s.Read(buf, sizeof buf);
      if (!n.ok()) return n.status();
      if (n.value() == 0) return Status::Ok();
    }
  };
  {  // one byte changed
    auto s = make();
    // Flip a bit of the byte found there: writing a fixed byte would leave the file as it
    // was whenever the ciphertext already held that byte (one run in 256).
    char byte = 0;
    ASSERT_EQ(::pread(s->fd(), &byte, 1, 70000), 1);
    byte = static_cast<char>(byte ^ 0x01);
    ASSERT_EQ(::pwrite(s->fd(), &byte, 1, 70000), 1);
    EXPECT_EQ(read_all(*s).code(), Code::kDamaged);
    // Read as CSV (as an import reads it), damage is a read failure, not a CSV problem.
    ASSERT_TRUE(s->Rewind().ok());
    CsvStream csv(*s);
    std::vector<std::string> cells;
    while (csv.Next(&cells)) {
    }
    EXPECT_EQ(csv.read_status().code(), Code::kDamaged);
  }
  {  // cut short
    auto s = make();
    ASSERT_EQ(::ftruncate(s->fd(), 100000), 0);
    EXPECT_EQ(read_all(*s).code(), Code::kDamaged);
  }
  {  // the first two chunks swapped
    auto s = make();
    const std::string file = FileBytes(s->fd());
    const size_t chunk = 4 + 65536 + crypto_secretstream_xchacha20poly1305_ABYTES;
    const std::string swapped =
        file.substr(chunk, chunk) + file.substr(0, chunk) + file.substr(2 * chunk);
    ASSERT_EQ(::pwrite(s->fd(), swapped.data(), swapped.size(), 0),
              static_cast<ssize_t>(swapped.size()));
    EXPECT_EQ(read_all(*s).code(), Code::kDamaged);
  }
  {  // not readable before it is finished
    auto spool = SealedSpool::Create(dir_.string());
    ASSERT_TRUE(spool.ok());
    char buf[8];
    EXPECT_FALSE(spool.value()->Read(buf, sizeof buf).ok());
  }
}

}  // namespace
}  // namespace garde

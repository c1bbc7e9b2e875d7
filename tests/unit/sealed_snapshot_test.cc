// The audience index's snapshot: sealed in chunks under a key of its own, unreadable once
// any personal data is destroyed, and never given a key for content read before that.
#include "garde/domain/sealed_snapshot.h"

#include <fstream>
#include <iterator>

#include "deployment_fixture.h"

namespace garde {
namespace {

class SealedSnapshotTest : public DeploymentFixture {
 protected:
  std::string path() const { return (dir_ / "test.snapshot").string(); }
  SealedSnapshot Snapshot() { return SealedSnapshot(d_->store(), d_->keys(), path(), "test"); }
  int64_t Shreds() {
    int64_t n = -1;
    EXPECT_TRUE(d_->store()
                    .Read([&](ReadTx& tx) -> Status {
                      auto c = tx.ShredCount();
                      if (!c.ok()) return c.status();
                      n = c.value();
                      return Status::Ok();
                    })
                    .ok());
    return n;
  }
  std::string FileText() {
    std::ifstream in(path(), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // A subject with one field, so that erasing something is possible.
  void AddSubjectWithField(const std::string& id) {
    ASSERT_TRUE(d_->store()
                    .Write([&](WriteTx& tx) -> Status {
                      GARDE_RETURN_IF_ERROR(tx.InsertSubject(StandInRow(id)));
                      return tx.PutField(id, {"email", Bytes(40, 2)});
                    })
                    .ok());
  }
  Status Delete(const std::string& id, const std::string& field) {
    return d_->store().Write([&](WriteTx& tx) { return tx.DeleteField(id, field); });
  }
};

const std::vector<std::string> kChunks = {"head: three chunks", "first entries: Ana Lopez",
                                          "last entries: 75011 Paris"};

TEST_F(SealedSnapshotTest, ChunksComeBackAndThePlaintextIsNotInTheFile) {
  SealedSnapshot snap = Snapshot();
  auto kept = snap.Save(
      kChunks.size(), [](size_t i) { return kChunks[i]; }, Shreds());
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_TRUE(kept.value());
  const std::string file = FileText();
  EXPECT_EQ(file.find("Ana Lopez"), std::string::npos);
  EXPECT_EQ(file.find("75011"), std::string::npos);

  auto reader = snap.Open();
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  ASSERT_EQ(reader.value()->count(), kChunks.size());
  Bytes box;
  std::string plain;
  for (size_t i = 0; i < kChunks.size(); ++i) {
    ASSERT_TRUE(reader.value()->Chunk(i, &box, &plain).ok());
    EXPECT_EQ(plain, kChunks[i]);
  }
}

TEST_F(SealedSnapshotTest, AnAlteredChunkFailsAuthentication) {
  SealedSnapshot snap = Snapshot();
  ASSERT_TRUE(snap.Save(
                      kChunks.size(), [](size_t i) { return kChunks[i]; }, Shreds())
                  .ok());
  std::string file = FileText();
  file[file.size() - 5] ^= 0x01;  // inside the last chunk
  std::ofstream(path(), std::ios::binary | std::ios::trunc) << file;
  auto reader = snap.Open();
  ASSERT_TRUE(reader.ok());
  Bytes box;
  std::string plain;
  EXPECT_TRUE(reader.value()->Chunk(0, &box, &plain).ok());
  EXPECT_EQ(reader.value()->Chunk(2, &box, &plain).code(), Code::kDamaged);
}

TEST_F(SealedSnapshotTest, RemovingAFieldDestroysTheKeyAndTheFileCannotBeOpened) {
  AddSubjectWithField("sub_a");
  SealedSnapshot snap = Snapshot();
  ASSERT_TRUE(snap.Save(
                      kChunks.size(), [](size_t i) { return kChunks[i]; }, Shreds())
                  .value());
  ASSERT_TRUE(Delete("sub_a", "email").ok());
  EXPECT_EQ(d_->store()
                .Read([](ReadTx& tx) -> Status {
                  auto key = tx.GetSnapshotKey("test");
                  if (!key.ok()) return key.status();
                  return key.value() ? Status::Ok() : NotFound("gone");
                })
                .code(),
            Code::kNotFound);
  auto reader = snap.Open();
  EXPECT_EQ(reader.status().code(), Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(path())) << "a file without its key is removed";
}

TEST_F(SealedSnapshotTest, ContentReadBeforeAnErasureIsNeverGivenAKey) {
  AddSubjectWithField("sub_b");
  const int64_t before = Shreds();             // the content is read now...
  ASSERT_TRUE(Delete("sub_b", "email").ok());  // ...data is destroyed meanwhile...
  SealedSnapshot snap = Snapshot();
  auto kept = snap.Save(
      kChunks.size(), [](size_t i) { return kChunks[i]; }, before);
  ASSERT_TRUE(kept.ok());
  EXPECT_FALSE(kept.value());  // ...so the snapshot is not kept
  EXPECT_FALSE(std::filesystem::exists(path()));
  EXPECT_EQ(snap.Open().status().code(), Code::kNotFound);
  // Content read after the erasure may be kept.
  EXPECT_TRUE(snap.Save(
                      kChunks.size(), [](size_t i) { return kChunks[i]; }, Shreds())
                  .value());
}

TEST_F(SealedSnapshotTest, AFileSealedUnderAnotherKeyIsIgnored) {
  SealedSnapshot snap = Snapshot();
  ASSERT_TRUE(snap.Save(
                      kChunks.size(), [](size_t i) { return kChunks[i]; }, Shreds())
                  .value());
  const std::string first = FileText();
  ASSERT_TRUE(snap.Save(
                      kChunks.size(), [](size_t i) { return kChunks[i]; }, Shreds())
                  .value());
  std::ofstream(path(), std::ios::binary | std::ios::trunc) << first;  // an older file back
  EXPECT_EQ(snap.Open().status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace garde

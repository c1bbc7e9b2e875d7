// The file-system interface the domain writes its own files through: the machine's files and
// the in-memory ones of unit tests behave alike (one suite, both), and the tombstone log and
// the sealed snapshot run on either.
#include "garde/base/file_system.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "deployment_fixture.h"
#include "garde/domain/audit_journal.h"
#include "garde/domain/sealed_snapshot.h"
#include "garde/domain/tombstone_log.h"
#include "gated_file_system.h"
#include "test_dir.h"

namespace garde {
namespace {

class FileSystemConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = TestDir("garde-fs-");
    std::filesystem::create_directories(dir_);
    if (GetParam() == "memory") memory_ = NewMemoryFileSystem();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  FileSystem& fs() { return memory_ ? *memory_ : PosixFileSystem(); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::string Read(const std::string& path) {
    auto all = fs().ReadAll(path);
    EXPECT_TRUE(all.ok()) << all.status().message();
    return all.ok() ? all.value() : "";
  }

  std::filesystem::path dir_;
  std::unique_ptr<FileSystem> memory_;
};

TEST_P(FileSystemConformance, WritesAtOffsetsAppendsAndReadsBack) {
  auto f = fs().Open(Path("a"), FileSystem::Mode::kCreate);
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_TRUE(f.value()->WriteAt(4, "body").ok());  // past the end: the gap is zeros
  ASSERT_TRUE(f.value()->WriteAt(0, "head").ok());
  ASSERT_TRUE(f.value()->Append("tail").ok());
  ASSERT_TRUE(f.value()->StartWriteback().ok());
  ASSERT_TRUE(f.value()->Sync().ok());
  char got[4];
  ASSERT_TRUE(f.value()->ReadAt(4, 4, got).ok());
  EXPECT_EQ(std::string(got, 4), "body");
  EXPECT_EQ(f.value()->ReadAt(10, 4, got).code(), Code::kDamaged);  // 2 bytes left
  EXPECT_EQ(Read(Path("a")), "headbodytail");
}

// A file whose file system cannot start a write-out (here a FIFO: ESPIPE) leaves it to Sync: no
// failure, which would refuse every write after it (the checkpointer's write-out).
TEST(PosixFiles, AWriteBackTheFileSystemCannotStartIsNoFailure) {
  const auto dir = TestDir("garde-fs-fifo-");
  std::filesystem::create_directories(dir);
  const std::string fifo = (dir / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int writer = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC);  // opening to read then waits not
  ASSERT_GE(writer, 0);
  auto f = PosixFileSystem().Open(fifo, FileSystem::Mode::kRead);
  ASSERT_TRUE(f.ok()) << f.status().message();
  Status started = f.value()->StartWriteback();
  EXPECT_TRUE(started.ok()) << started.message();
  ::close(writer);
  std::filesystem::remove_all(dir);
}

TEST_P(FileSystemConformance, AppendKeepsCreateEmptiesReadNeedsTheFile) {
  EXPECT_EQ(fs().Open(Path("none"), FileSystem::Mode::kRead).status().code(), Code::kNotFound);
  EXPECT_EQ(fs().ReadAll(Path("none")).status().code(), Code::kNotFound);
  for (const char* line : {"one\n", "two\n"}) {
    auto f = fs().Open(Path("log"), FileSystem::Mode::kAppend);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f.value()->Append(line).ok());
  }
  EXPECT_EQ(Read(Path("log")), "one\ntwo\n");
  ASSERT_TRUE(fs().Open(Path("log"), FileSystem::Mode::kCreate).ok());
  EXPECT_EQ(Read(Path("log")), "");
}

TEST_P(FileSystemConformance, RenameReplacesAndRemoveForgets) {
  for (const auto& [name, text] : {std::pair{"new", "fresh"}, std::pair{"old", "stale"}}) {
    auto f = fs().Open(Path(name), FileSystem::Mode::kCreate);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f.value()->Append(text).ok());
  }
  ASSERT_TRUE(fs().Rename(Path("new"), Path("old")).ok());
  EXPECT_EQ(Read(Path("old")), "fresh");
  EXPECT_EQ(fs().ReadAll(Path("new")).status().code(), Code::kNotFound);
  EXPECT_FALSE(fs().Rename(Path("new"), Path("old")).ok());
  ASSERT_TRUE(fs().Remove(Path("old")).ok());
  EXPECT_TRUE(fs().Remove(Path("old")).ok());  // already gone
  EXPECT_EQ(fs().ReadAll(Path("old")).status().code(), Code::kNotFound);
}

// The tombstone log on either: what it appended comes back; a line a crash cut short is
// skipped; a log never written reads as empty.
TEST_P(FileSystemConformance, TheTombstoneLogRunsOnIt) {
  TombstoneLog log(Path("tombstones.log"), fs());
  auto empty = log.Read();
  ASSERT_TRUE(empty.ok()) << empty.status().message();
  EXPECT_TRUE(empty->erasures.empty());
  TombstoneEntries entries;
  TombstoneRow erased;
  erased.subject_id = RandomId("sub_");
  erased.request_id = RandomId("req_");
  erased.at = 1795341600;
  erased.kept = {"invoices"};
  entries.erasures.push_back(erased);
  ASSERT_TRUE(log.Append(entries).ok());
  auto cut = fs().Open(Path("tombstones.log"), FileSystem::Mode::kAppend);
  ASSERT_TRUE(cut.ok());
  ASSERT_TRUE(cut.value()->Append("consent cev_x").ok());  // no newline, words missing
  auto back = log.Read();
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->erasures.size(), 1u);
  EXPECT_EQ(back->erasures[0].subject_id, erased.subject_id);
  EXPECT_EQ(back->erasures[0].kept, erased.kept);
  EXPECT_TRUE(back->consents.empty());
}

// Appends that arrive while one is being synced share the next write and fsync, and each is
// answered only once its own lines are synced: eight appends during a held fsync take two.
TEST(TombstoneLogAppends, ThoseThatArriveDuringASyncShareTheNextOne) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("garde-tombstones-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  GatedFileSystem fs("tombstones.log");
  TombstoneLog log((dir / "tombstones.log").string(), fs);
  std::vector<std::string> subjects;
  for (int i = 0; i < 9; ++i) subjects.push_back(RandomId("sub_"));
  auto entry = [&](int i) {
    TombstoneEntries e;
    TombstoneRow erased;
    erased.subject_id = subjects[static_cast<size_t>(i)];
    erased.request_id = RandomId("req_");
    erased.at = 1795341600 + i;
    e.erasures.push_back(erased);
    return e;
  };
  fs.Hold();
  std::atomic<int> answered{0};
  std::vector<std::thread> appends;
  appends.emplace_back([&] {
    EXPECT_TRUE(log.Append(entry(0)).ok());
    answered.fetch_add(1);
  });
  while (fs.syncs_begun() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (int i = 1; i < 8; ++i) {
    appends.emplace_back([&, i] {
      EXPECT_TRUE(log.Append(entry(i)).ok());
      answered.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // all seven queue behind it
  EXPECT_EQ(answered.load(), 0);                               // nobody is answered before the sync
  fs.Let();
  for (auto& t : appends) t.join();
  EXPECT_EQ(fs.syncs_begun(), 2);
  auto back = log.Read();
  ASSERT_TRUE(back.ok()) << back.status().message();
  std::vector<std::string> ids;
  for (const auto& t : back->erasures) ids.push_back(t.subject_id);
  std::vector<std::string> expected(subjects.begin(), subjects.begin() + 8);
  std::sort(ids.begin(), ids.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ids, expected);
  // A failed fsync fails every append it was to make durable.
  fs.FailNext();
  EXPECT_EQ(log.Append(entry(8)).code(), Code::kUnavailable);
  std::filesystem::remove_all(dir);
}

TEST_P(FileSystemConformance, ARegionIsLockedWhileItLivesAndKeepsWhatWasWritten) {
  auto region = fs().CreateRegion(Path("r.log"), 4096, true);
  ASSERT_TRUE(region.ok()) << region.status().message();
  ASSERT_EQ(region.value()->size(), 4096);
  EXPECT_EQ(region.value()->data()[4095], '\0');  // allocated, zero
  std::memcpy(region.value()->data() + 10, "written", 7);
  EXPECT_FALSE(fs().CreateRegion(Path("r.log"), 4096, false).ok());  // exists
  EXPECT_EQ(fs().ReadUnlocked(Path("r.log")).status().code(), Code::kConflict);
  auto names = fs().List(dir_.string());
  ASSERT_TRUE(names.ok()) << names.status().message();
  EXPECT_EQ(names.value(), std::vector<std::string>{"r.log"});
  region.value()->Evict();  // its pages given back: read again from the file
  EXPECT_EQ(std::string_view(region.value()->data() + 10, 7), "written");
  region.value().reset();  // the process that held it is gone
  auto left = fs().ReadUnlocked(Path("r.log"));
  ASSERT_TRUE(left.ok()) << left.status().message();
  ASSERT_EQ(left->size(), 4096u);
  EXPECT_EQ(left->substr(10, 7), "written");
  EXPECT_EQ(fs().ReadUnlocked(Path("none")).status().code(), Code::kNotFound);
}

// The audit journals on it: appended records are read back live, and as a dead process's
// journal once the region is gone (a record whose copy was interrupted is stepped over).
TEST_P(FileSystemConformance, TheAuditJournalRunsOnIt) {
  auto journal = AuditJournal::Create(fs(), dir_.string(), 1024);
  ASSERT_TRUE(journal.ok()) << journal.status().message();
  const std::string path = journal.value()->path();
  ASSERT_TRUE(journal.value()->Append("one"));
  ASSERT_TRUE(journal.value()->Append("two"));
  std::vector<std::string> live;
  journal.value()->Read(0, [&](std::string_view t) { live.emplace_back(t); });
  EXPECT_EQ(live, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(ReadOrphanJournal(fs(), path, 0, [](std::string_view) {}).status().code(),
            Code::kConflict);  // its process (this one) is alive
  journal.value().reset();
  std::vector<std::string> orphan;
  auto end = ReadOrphanJournal(fs(), path, 0, [&](std::string_view t) { orphan.emplace_back(t); });
  ASSERT_TRUE(end.ok()) << end.status().message();
  EXPECT_EQ(orphan, live);
  EXPECT_EQ(end.value(), 1024);
  ASSERT_TRUE(fs().Remove(path).ok());
  EXPECT_TRUE(fs().List(dir_.string()).value().empty());
}

INSTANTIATE_TEST_SUITE_P(Both, FileSystemConformance, ::testing::Values("posix", "memory"),
                         [](const auto& param_info) { return std::string(param_info.param); });

// The sealed snapshot on the in-memory files: nothing reaches the disk.
class SnapshotInMemory : public DeploymentFixture {};

TEST_F(SnapshotInMemory, ChunksComeBackAndNoFileIsWritten) {
  auto fs = NewMemoryFileSystem();
  const std::string path = (dir_ / "memory.snapshot").string();
  SealedSnapshot snap(d_->store(), d_->keys(), path, "memory", *fs);
  auto kept = snap.Save(
      2, [](size_t i) { return "chunk " + std::to_string(i); }, 0);
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_TRUE(kept.value());
  EXPECT_FALSE(std::filesystem::exists(path));
  auto reader = snap.Open();
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  Bytes box;
  std::string plain;
  ASSERT_TRUE(reader.value()->Chunk(1, &box, &plain).ok());
  EXPECT_EQ(plain, "chunk 1");
}

}  // namespace
}  // namespace garde

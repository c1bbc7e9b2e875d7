#include "garde/domain/subject_cache.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <limits>
#include <set>

#include "deployment_fixture.h"
#include "garde/store/sqlite_store.h"

namespace garde {
namespace {

// The bytes kept for `id`, or nullopt.
std::optional<std::string> Kept(const SubjectCache& cache, const std::string& id) {
  std::optional<std::string> out;
  cache.Find(id, [&](std::string_view kept) {
    out = std::string(kept);
    return true;
  });
  return out;
}

// As a reader uses the cache: the kept bytes, else those `load` reads (nullopt: no such
// subject), kept as of `position`.
std::optional<std::string> Get(SubjectCache& cache, int64_t position, const std::string& id,
                               const std::function<std::optional<std::string>()>& load) {
  if (auto kept = Kept(cache, id)) return kept;
  auto loaded = load();
  if (loaded) cache.Keep(position, id, *loaded);
  return loaded;
}

// Two stores on one real file stand for two processes (or two connections) sharing a vault.
class SubjectCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("garde-cache-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db");
    std::filesystem::remove(path_);
    SqliteOptions o;
    o.path = path_.string();
    o.synchronous_full = false;
    mine_ = std::move(SqliteStore::Open(o).value());
    other_ = std::move(SqliteStore::Open(o).value());
    for (const char* id : {"sub_a", "sub_b"}) Insert(*other_, id);
  }
  void TearDown() override {
    mine_.reset();
    other_.reset();
    for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(path_.string() + ext);
  }

  static ConsentEventRow Grant(const std::string& id, const std::string& subject) {
    ConsentEventRow e;
    e.id = id;
    e.subject_id = subject;
    e.purpose = "marketing.email";
    e.event = "granted";
    return e;
  }
  static void Insert(Store& store, const std::string& id) {
    ASSERT_TRUE(store.Write([&](WriteTx& tx) { return tx.InsertSubject(StandInRow(id)); }).ok());
  }
  static void SetStatus(Store& store, const std::string& id, const std::string& status) {
    ASSERT_TRUE(store
                    .Write([&](WriteTx& tx) -> Status {
                      auto row = tx.GetSubject(id);
                      if (!row.ok()) return row.status();
                      SubjectRow r = *row.value();
                      r.status = status;
                      return tx.UpdateSubject(r);
                    })
                    .ok());
  }

  // The status as the cache answers it, counting loads.
  std::string StatusOf(const std::string& id) {
    std::string out;
    EXPECT_TRUE(mine_
                    ->Read([&](ReadTx& tx) -> Status {
                      auto at = cache_.Sync(tx);
                      if (!at.ok()) return at.status();
                      auto v = Get(cache_, at.value(), id, [&]() -> std::optional<std::string> {
                        ++loads_;
                        auto row = tx.GetSubject(id);
                        if (!row.ok() || !row.value()) return std::nullopt;
                        return row.value()->status;
                      });
                      out = v.value_or("absent");
                      return Status::Ok();
                    })
                    .ok());
    return out;
  }

  std::filesystem::path path_;
  std::unique_ptr<SqliteStore> mine_, other_;
  SubjectCache cache_{1000};
  int loads_ = 0;
};

TEST_F(SubjectCacheTest, KeepsAValueUntilAnotherWriterChangesThatSubject) {
  EXPECT_EQ(StatusOf("sub_a"), "active");
  EXPECT_EQ(StatusOf("sub_b"), "active");
  EXPECT_EQ(StatusOf("sub_a"), "active");
  EXPECT_EQ(loads_, 2);
  SetStatus(*other_, "sub_a", "restricted");
  EXPECT_EQ(StatusOf("sub_a"), "restricted");  // seen at once, though written elsewhere
  EXPECT_EQ(StatusOf("sub_b"), "active");
  EXPECT_EQ(loads_, 3);  // sub_b stayed kept
}

TEST_F(SubjectCacheTest, ConsentEventsAndSuppressionsOfAContactAreChanges) {
  EXPECT_EQ(StatusOf("sub_a"), "active");
  ASSERT_TRUE(
      other_->Write([](WriteTx& tx) { return tx.InsertConsentEvent(Grant("cev_1", "sub_a")); })
          .ok());
  EXPECT_EQ(StatusOf("sub_a"), "active");
  EXPECT_EQ(loads_, 2);
  const Bytes digest(16, 7);
  ASSERT_TRUE(other_->Write([&](WriteTx& tx) {
                      return tx.PutIndex("sub_b", {"~email", digest});
                    })
                  .ok());
  EXPECT_EQ(StatusOf("sub_b"), "active");
  EXPECT_EQ(loads_, 3);
  ASSERT_TRUE(
      other_->Write([&](WriteTx& tx) { return tx.PutSuppression("email", digest, "test", 1); })
          .ok());
  EXPECT_EQ(StatusOf("sub_b"), "active");
  EXPECT_EQ(StatusOf("sub_a"), "active");
  EXPECT_EQ(loads_, 4);  // the suppression reached sub_b (through its digest), not sub_a
}

TEST_F(SubjectCacheTest, AKeyRewrapIsNoChange) {
  EXPECT_EQ(StatusOf("sub_a"), "active");
  ASSERT_TRUE(other_
                  ->Write([](WriteTx& tx) -> Status {
                    auto done = tx.RewrapDataKey("sub_a", 0, 2, Bytes(40, 2));
                    return done.ok() ? Status::Ok() : done.status();
                  })
                  .ok());
  EXPECT_EQ(StatusOf("sub_a"), "active");
  EXPECT_EQ(loads_, 1);
}

TEST_F(SubjectCacheTest, AValueReadBeforeAChangeItMissedIsNotKept) {
  // A reader loads sub_a in an old snapshot while another reader has already applied a
  // later change to it: the old value answers its own request and is not kept.
  ASSERT_TRUE(mine_
                  ->Read([&](ReadTx& old_tx) -> Status {
                    auto at = cache_.Sync(old_tx);
                    if (!at.ok()) return at.status();
                    auto stale = old_tx.GetSubject("sub_a");  // pins the old snapshot
                    SetStatus(*other_, "sub_a", "restricted");
                    EXPECT_EQ(StatusOf("sub_a"),
                              "restricted");  // a newer reader applies the change
                    int old_loads = 0;
                    auto v = Get(cache_, at.value(), "sub_a", [&]() -> std::optional<std::string> {
                      ++old_loads;
                      return "active";
                    });
                    EXPECT_EQ(old_loads, 0);  // the newer value was kept and is newer still: use it
                    EXPECT_EQ(v.value(), "restricted");
                    return Status::Ok();
                  })
                  .ok());
  // Now the race the other way round: the old reader loads first.
  SubjectCache cache(10);
  ASSERT_TRUE(
      mine_
          ->Read([&](ReadTx& old_tx) -> Status {
            auto at = cache.Sync(old_tx);
            if (!at.ok()) return at.status();
            auto pin = old_tx.GetSubject("sub_b");
            SetStatus(*other_, "sub_b", "erased");
            EXPECT_TRUE(
                mine_->Read([&](ReadTx& new_tx) { return cache.Sync(new_tx).status(); }).ok());
            auto v = Get(cache, at.value(), "sub_b", [&]() -> std::optional<std::string> {
              return pin.value().value().status;
            });
            EXPECT_EQ(v.value(), "active");  // answers its own request
            return Status::Ok();
          })
          .ok());
  EXPECT_EQ(cache.size(), 0u);  // the stale "active" was not kept
}

TEST_F(SubjectCacheTest, AReaderTooFarBehindStartsOver) {
  EXPECT_EQ(StatusOf("sub_a"), "active");
  ASSERT_TRUE(other_
                  ->Write([](WriteTx& tx) -> Status {
                    for (int i = 0; i < 9000; ++i) {
                      GARDE_RETURN_IF_ERROR(
                          tx.InsertSubject(StandInRow("sub_n" + std::to_string(i))));
                    }
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(StatusOf("sub_a"), "active");
  EXPECT_EQ(loads_, 2);  // more changes than it reads at once: everything kept was dropped
}

TEST_F(SubjectCacheTest, TheChangeLogKeepsItsNewestChangesOnly) {
  ASSERT_TRUE(other_
                  ->Write([](WriteTx& tx) -> Status {
                    for (int64_t i = 0; i < kChangeLogKeep + 4000; ++i) {
                      GARDE_RETURN_IF_ERROR(
                          tx.InsertConsentEvent(Grant("cev_" + std::to_string(i), "sub_a")));
                    }
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_TRUE(
      mine_
          ->Read([](ReadTx& tx) -> Status {
            auto all = tx.ChangesAfter(0, 1000000);
            EXPECT_TRUE(all.ok());
            EXPECT_FALSE(all->complete);  // its oldest changes were trimmed
            EXPECT_FALSE(tx.ChangesAfter(all->last_seq - kChangeLogKeep - 1, 1000000)->complete);
            EXPECT_TRUE(tx.ChangesAfter(all->last_seq - kChangeLogKeep + 1, 1000000)->complete);
            auto recent = tx.ChangesAfter(all->last_seq - 100, 1000);
            EXPECT_TRUE(recent->complete);
            EXPECT_EQ(recent->changes.size(), 100u);
            EXPECT_EQ(recent->changes.back().second, "sub_a");
            return Status::Ok();
          })
          .ok());
}

TEST_F(SubjectCacheTest, TheChangeEpochMovesWithEveryCommitWhoeverMakesIt) {
  const uint64_t before = mine_->ChangeEpoch();
  EXPECT_EQ(mine_->ChangeEpoch(), before);
  EXPECT_EQ(StatusOf("sub_a"), "active");  // a read transaction is no change
  EXPECT_EQ(mine_->ChangeEpoch(), before);
  std::set<uint64_t> seen{before};
  for (int i = 0; i < 200; ++i) {  // by another store: every commit gives a new number
    Insert(*other_, "sub_e" + std::to_string(i));
    EXPECT_TRUE(seen.insert(mine_->ChangeEpoch()).second) << "commit " << i;
  }
  EXPECT_EQ(other_->ChangeEpoch(), mine_->ChangeEpoch());  // one file, one header
  // A plain SQLite connection, as another program would write.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.string().c_str(), &db), SQLITE_OK);
  const uint64_t last = mine_->ChangeEpoch();
  ASSERT_EQ(sqlite3_exec(db, "UPDATE subjects SET source = 'elsewhere' WHERE id = 'sub_b'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  EXPECT_NE(mine_->ChangeEpoch(), last);
}

TEST_F(SubjectCacheTest, KeptValuesAreCurrentWithoutATransactionUntilTheNextCommit) {
  auto sync = [&] {
    const uint64_t epoch = mine_->ChangeEpoch();
    ASSERT_TRUE(mine_->Read([&](ReadTx& tx) { return cache_.Sync(tx, epoch).status(); }).ok());
  };
  EXPECT_FALSE(cache_.CurrentAt(mine_->ChangeEpoch()));  // never synced
  EXPECT_EQ(StatusOf("sub_a"), "active");
  EXPECT_FALSE(cache_.CurrentAt(mine_->ChangeEpoch()));  // a sync without an epoch vouches for none
  sync();
  EXPECT_TRUE(cache_.CurrentAt(mine_->ChangeEpoch()));
  ASSERT_TRUE(Kept(cache_, "sub_a"));
  SetStatus(*other_, "sub_a", "restricted");
  EXPECT_FALSE(cache_.CurrentAt(mine_->ChangeEpoch()));  // a commit elsewhere: sync first
  ASSERT_TRUE(Kept(cache_, "sub_a"));                    // (still kept until then)
  sync();
  EXPECT_TRUE(cache_.CurrentAt(mine_->ChangeEpoch()));
  EXPECT_FALSE(Kept(cache_, "sub_a"));  // the sync dropped the changed subject
}

// The statuses of a page of rows, as a Fill loader reads them.
Result<std::vector<std::optional<std::string>>> Statuses(ReadTx&,
                                                         const std::vector<SubjectRow>& page) {
  std::vector<std::optional<std::string>> out;
  for (const auto& row : page) out.emplace_back(row.status);
  return out;
}

TEST_F(SubjectCacheTest, FillingLoadsEverySubjectPageByPage) {
  for (int i = 0; i < 2498; ++i) Insert(*other_, "sub_f" + std::to_string(10000 + i));
  SubjectCache big(5000);
  int pages = 0;
  auto filled = big.Fill(*mine_, [&](ReadTx& tx, const std::vector<SubjectRow>& page) {
    ++pages;
    return Statuses(tx, page);
  });
  ASSERT_TRUE(filled.ok()) << filled.status().message();
  EXPECT_EQ(filled.value(), 2500u);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(big.size(), 2500u);
  ASSERT_TRUE(Kept(big, "sub_f12497"));
  EXPECT_EQ(Kept(big, "sub_a"), "active");
}

TEST_F(SubjectCacheTest, FillingLoadsNothingWhenNotEverySubjectFits) {
  Insert(*other_, "sub_c");
  SubjectCache small(2);
  auto filled = small.Fill(*mine_, Statuses);
  ASSERT_TRUE(filled.ok());
  EXPECT_EQ(filled.value(), 0u);
  EXPECT_EQ(small.size(), 0u);
}

// A vault with more subjects than the cache may keep: at most `outgrown` are kept from then
// on, whether Fill counted them at start or a subject not kept arrived while it was full.
TEST_F(SubjectCacheTest, AVaultLargerThanTheCacheIsKeptOnlyInPart) {
  for (int i = 0; i < 8; ++i) Insert(*other_, "sub_o" + std::to_string(i));  // 10 subjects
  SubjectCache counted(9, 3);
  auto filled = counted.Fill(*mine_, Statuses);
  ASSERT_TRUE(filled.ok());
  EXPECT_EQ(filled.value(), 0u);
  EXPECT_EQ(counted.limit(), 3u);
  for (int i = 0; i < 8; ++i) counted.Keep(0, "sub_o" + std::to_string(i), "active");
  EXPECT_EQ(counted.size(), 3u);

  SubjectCache filled_up(10, 4);
  ASSERT_TRUE(filled_up.Fill(*mine_, Statuses).ok());
  const int64_t now = std::numeric_limits<int64_t>::max();  // read after every change
  EXPECT_EQ(filled_up.size(), 10u);                         // all fit: all kept
  EXPECT_EQ(filled_up.limit(), 10u);
  filled_up.Keep(now, "sub_o3", "restricted");  // one already kept: no new subject
  EXPECT_EQ(filled_up.size(), 10u);
  EXPECT_EQ(Kept(filled_up, "sub_o3"), "restricted");
  filled_up.Keep(now, "sub_new", "active");  // an eleventh subject
  EXPECT_EQ(filled_up.limit(), 4u);
  EXPECT_EQ(Kept(filled_up, "sub_new"), "active");
  for (int i = 0; i < 8; ++i) filled_up.Keep(now, "sub_o" + std::to_string(i), "active");
  EXPECT_EQ(filled_up.size(), 4u);

  SubjectCache unbounded(2);  // `outgrown` left out: keeps `capacity` at random, as before
  for (int i = 0; i < 8; ++i) unbounded.Keep(0, "sub_o" + std::to_string(i), "active");
  EXPECT_EQ(unbounded.size(), 2u);
  EXPECT_EQ(unbounded.limit(), 2u);
}

TEST_F(SubjectCacheTest, FillingKeepsNothingThatChangedAfterWhatTheLoaderReadEarlier) {
  // The loader combines the page with something read at `read_at` (as the consent facts do
  // with the suppression list): a subject changed since then is not kept from that read.
  int64_t read_at = 0;
  ASSERT_TRUE(mine_
                  ->Read([&](ReadTx& tx) -> Status {
                    auto at = cache_.Sync(tx);
                    read_at = at.value();
                    return at.status();
                  })
                  .ok());
  SetStatus(*other_, "sub_b", "restricted");
  auto filled = cache_.Fill(*mine_, Statuses, read_at);
  ASSERT_TRUE(filled.ok());
  EXPECT_TRUE(Kept(cache_, "sub_a"));
  EXPECT_FALSE(Kept(cache_, "sub_b"));
  EXPECT_EQ(StatusOf("sub_b"), "restricted");
}

// A `use` that refuses the kept bytes (they do not decode) makes Find answer false, and a
// page loader's nullopt keeps nothing for that row.
TEST_F(SubjectCacheTest, UnusableBytesAreNotFoundAndNullPagesAreNotKept) {
  EXPECT_EQ(StatusOf("sub_a"), "active");
  EXPECT_TRUE(cache_.Find("sub_a", [](std::string_view) { return true; }));
  EXPECT_FALSE(cache_.Find("sub_a", [](std::string_view) { return false; }));
  EXPECT_GT(cache_.bytes(), 0u);
  SubjectCache all(10);
  auto filled = all.Fill(*mine_, [](ReadTx&, const std::vector<SubjectRow>& page) {
    std::vector<std::optional<std::string>> out;
    for (const auto& row : page) {
      out.emplace_back(row.id == "sub_b" ? std::nullopt : std::optional(row.status + row.id));
    }
    return Result<std::vector<std::optional<std::string>>>(std::move(out));
  });
  ASSERT_TRUE(filled.ok()) << filled.status().message();
  EXPECT_EQ(filled.value(), 2u);
  EXPECT_EQ(Kept(all, "sub_a"), "activesub_a");
  EXPECT_FALSE(Kept(all, "sub_b"));
}

}  // namespace
}  // namespace garde

#include "garde/domain/subject_cache.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "deployment_fixture.h"
#include "garde/store/sqlite_store.h"

namespace garde {
namespace {

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
                      auto v = cache_.Get(
                          at.value(), id, [&]() -> Result<SubjectCache<std::string>::Ptr> {
                            ++loads_;
                            auto row = tx.GetSubject(id);
                            if (!row.ok()) return row.status();
                            if (!row.value()) return SubjectCache<std::string>::Ptr();
                            return std::make_shared<const std::string>(row.value()->status);
                          });
                      if (!v.ok()) return v.status();
                      out = v.value() ? *v.value() : "absent";
                      return Status::Ok();
                    })
                    .ok());
    return out;
  }

  std::filesystem::path path_;
  std::unique_ptr<SqliteStore> mine_, other_;
  SubjectCache<std::string> cache_{1000};
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
  ASSERT_TRUE(
      mine_
          ->Read([&](ReadTx& old_tx) -> Status {
            auto at = cache_.Sync(old_tx);
            if (!at.ok()) return at.status();
            auto stale = old_tx.GetSubject("sub_a");  // pins the old snapshot
            SetStatus(*other_, "sub_a", "restricted");
            EXPECT_EQ(StatusOf("sub_a"), "restricted");  // a newer reader applies the change
            int old_loads = 0;
            auto v =
                cache_.Get(at.value(), "sub_a", [&]() -> Result<SubjectCache<std::string>::Ptr> {
                  ++old_loads;
                  return std::make_shared<const std::string>("active");
                });
            EXPECT_EQ(old_loads, 0);  // the newer value was kept and is newer still: use it
            EXPECT_EQ(*v.value(), "restricted");
            return Status::Ok();
          })
          .ok());
  // Now the race the other way round: the old reader loads first.
  SubjectCache<std::string> cache(10);
  ASSERT_TRUE(
      mine_
          ->Read([&](ReadTx& old_tx) -> Status {
            auto at = cache.Sync(old_tx);
            if (!at.ok()) return at.status();
            auto pin = old_tx.GetSubject("sub_b");
            SetStatus(*other_, "sub_b", "erased");
            EXPECT_TRUE(
                mine_->Read([&](ReadTx& new_tx) { return cache.Sync(new_tx).status(); }).ok());
            auto v =
                cache.Get(at.value(), "sub_b", [&]() -> Result<SubjectCache<std::string>::Ptr> {
                  return std::make_shared<const std::string>(pin.value().value().status);
                });
            EXPECT_EQ(*v.value(), "active");  // answers its own request
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
  ASSERT_NE(cache_.Find("sub_a"), nullptr);
  SetStatus(*other_, "sub_a", "restricted");
  EXPECT_FALSE(cache_.CurrentAt(mine_->ChangeEpoch()));  // a commit elsewhere: sync first
  ASSERT_NE(cache_.Find("sub_a"), nullptr);              // (still kept until then)
  sync();
  EXPECT_TRUE(cache_.CurrentAt(mine_->ChangeEpoch()));
  EXPECT_EQ(cache_.Find("sub_a"), nullptr);  // the sync dropped the changed subject
}

// The statuses of a page of rows, as a Fill loader reads them.
Result<std::vector<SubjectCache<std::string>::Ptr>> Statuses(ReadTx&,
                                                             const std::vector<SubjectRow>& page) {
  std::vector<SubjectCache<std::string>::Ptr> out;
  for (const auto& row : page) out.push_back(std::make_shared<const std::string>(row.status));
  return out;
}

TEST_F(SubjectCacheTest, FillingLoadsEverySubjectPageByPage) {
  for (int i = 0; i < 2498; ++i) Insert(*other_, "sub_f" + std::to_string(10000 + i));
  SubjectCache<std::string> big(5000);
  int pages = 0;
  auto filled = big.Fill(*mine_, [&](ReadTx& tx, const std::vector<SubjectRow>& page) {
    ++pages;
    return Statuses(tx, page);
  });
  ASSERT_TRUE(filled.ok()) << filled.status().message();
  EXPECT_EQ(filled.value(), 2500u);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(big.size(), 2500u);
  ASSERT_NE(big.Find("sub_f12497"), nullptr);
  EXPECT_EQ(*big.Find("sub_a"), "active");
}

TEST_F(SubjectCacheTest, FillingLoadsNothingWhenNotEverySubjectFits) {
  Insert(*other_, "sub_c");
  SubjectCache<std::string> small(2);
  auto filled = small.Fill(*mine_, Statuses);
  ASSERT_TRUE(filled.ok());
  EXPECT_EQ(filled.value(), 0u);
  EXPECT_EQ(small.size(), 0u);
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
  EXPECT_NE(cache_.Find("sub_a"), nullptr);
  EXPECT_EQ(cache_.Find("sub_b"), nullptr);
  EXPECT_EQ(StatusOf("sub_b"), "restricted");
}

// The byte cache the consent facts use shares the core: the same changes make its values
// stale, it keeps what a read found, and it fills the same way.
TEST_F(SubjectCacheTest, TheByteCacheFollowsChangesAndFillsLikeTheOther) {
  SubjectBytesCache bytes(1000);
  int loads = 0;
  auto status_of = [&](const std::string& id) {
    std::string out;
    EXPECT_TRUE(mine_
                    ->Read([&](ReadTx& tx) -> Status {
                      auto at = bytes.Sync(tx);
                      if (!at.ok()) return at.status();
                      if (bytes.Find(id, [&](std::string_view kept) {
                            out = std::string(kept);
                            return true;
                          })) {
                        return Status::Ok();
                      }
                      ++loads;
                      auto row = tx.GetSubject(id);
                      if (!row.ok()) return row.status();
                      out = row.value() ? row.value()->status : "absent";
                      if (row.value()) bytes.Keep(at.value(), id, out);
                      return Status::Ok();
                    })
                    .ok());
    return out;
  };
  EXPECT_EQ(status_of("sub_a"), "active");
  EXPECT_EQ(status_of("sub_a"), "active");
  EXPECT_EQ(loads, 1);
  SetStatus(*other_, "sub_a", "restricted");
  EXPECT_EQ(status_of("sub_a"), "restricted");
  EXPECT_EQ(loads, 2);
  EXPECT_EQ(status_of("nobody"), "absent");
  EXPECT_EQ(bytes.size(), 1u);
  // A `use` that refuses the kept bytes makes Find answer false.
  EXPECT_FALSE(bytes.Find("sub_a", [](std::string_view) { return false; }));

  for (int i = 0; i < 1200; ++i) Insert(*other_, "sub_f" + std::to_string(10000 + i));
  SubjectBytesCache all(5000);
  auto filled = all.Fill(*mine_, [](ReadTx&, const std::vector<SubjectRow>& page) {
    std::vector<std::optional<std::string>> out;
    for (const auto& row : page) {
      if (row.id == "sub_b") {
        out.emplace_back();  // not kept
      } else {
        out.emplace_back(row.status + ":" + row.id);
      }
    }
    return Result<std::vector<std::optional<std::string>>>(std::move(out));
  });
  ASSERT_TRUE(filled.ok()) << filled.status().message();
  EXPECT_EQ(filled.value(), 1202u);
  EXPECT_EQ(all.size(), 1201u);
  std::string seen;
  EXPECT_TRUE(all.Find("sub_f11199", [&](std::string_view kept) {
    seen = kept;
    return true;
  }));
  EXPECT_EQ(seen, "active:sub_f11199");
  EXPECT_FALSE(all.Find("sub_b", [](std::string_view) { return true; }));
  EXPECT_GT(all.bytes(), 1201u * 20);
  SubjectBytesCache two(2);
  ASSERT_TRUE(two.Fill(*mine_,
                       [](ReadTx&, const std::vector<SubjectRow>& page) {
                         return Result<std::vector<std::optional<std::string>>>(
                             std::vector<std::optional<std::string>>(page.size(), "x"));
                       })
                  .ok());
  EXPECT_EQ(two.size(), 0u);  // not every subject fits: none kept
}

}  // namespace
}  // namespace garde

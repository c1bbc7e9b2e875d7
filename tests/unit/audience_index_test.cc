// The audience index's snapshot round trip, with the vault changing while one is written.
#include "garde/domain/audience_index.h"

#include <map>
#include <random>
#include <set>

#include "deployment_fixture.h"

namespace garde {
namespace {

class AudienceIndexTest : public DeploymentFixture {
 protected:
  std::string Create(const std::string& postal_code) {
    auto r = d_->vault().Create(op_, {"person",
                                      "web_form",
                                      std::nullopt,
                                      {{"email", FieldValue::String(postal_code + "@example.org")},
                                       {"postal_code", FieldValue::String(postal_code)}}});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->id : "";
  }
  AudienceIndex NewIndex(size_t capacity = 1000, size_t block_bytes = AudienceIndex::kBlockBytes) {
    SubjectVault& vault = d_->vault();
    return AudienceIndex(
        d_->store(),
        [&vault](const SubjectRow& row, const std::vector<SealedField>& sealed,
                 const std::set<std::string>& fields) {
          return vault.OpenFields(row, sealed, fields);
        },
        capacity, block_bytes);
  }
  // The postal code the index holds for `id` ("" when none).
  static std::string PostalCode(const AudienceIndex& index, const std::string& id) {
    for (size_t i = 0; i < index.size(); ++i) {
      if (index.id(i) == id) return std::string((*index.Column("postal_code"))[i].text());
    }
    return "";
  }
  SealedSnapshot Snapshot() {
    return SealedSnapshot(d_->store(), d_->keys(), (dir_ / "audience.snapshot").string(),
                          "audience");
  }
  Caller op_{"key_op", "operator", {"customer_management"}, "req_t", ""};
};

TEST_F(AudienceIndexTest, ASnapshotWrittenWhileTheVaultChangesReadsBackAndCatchesUp) {
  const std::string moving = Create("75011");
  const std::string staying = Create("69003");
  AudienceIndex index = NewIndex();
  ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
  ASSERT_EQ(PostalCode(index, moving), "75011");

  auto capture = index.TakeCapture();
  ASSERT_TRUE(capture.ok() && capture.value().has_value());
  // While the capture is written, a subject moves and the index follows: its old record is
  // replaced, and must stay readable for the write.
  ASSERT_TRUE(
      d_->vault()
          .Rectify(op_, moving, {{{"postal_code", FieldValue::String("13008")}}, std::nullopt})
          .ok());
  ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
  EXPECT_EQ(PostalCode(index, moving), "13008");
  SealedSnapshot snapshot = Snapshot();
  auto written = AudienceIndex::Write(*capture.value(), snapshot);
  ASSERT_TRUE(written.ok()) << written.status().message();
  EXPECT_TRUE(written.value());
  index.Release(*capture.value(), true);

  // The next run reads the capture as it was, then applies the move.
  AudienceIndex next = NewIndex();
  auto loaded = next.LoadFrom(snapshot);
  ASSERT_TRUE(loaded.ok());
  ASSERT_TRUE(loaded.value());
  EXPECT_EQ(PostalCode(next, moving), "75011");
  EXPECT_EQ(PostalCode(next, staying), "69003");
  ASSERT_TRUE(next.Refresh({"postal_code"}, {"email"}).ok());
  EXPECT_EQ(PostalCode(next, moving), "13008");
  auto email = next.OpenKept(0, {"email"});
  ASSERT_TRUE(email.ok()) << email.status().message();
  EXPECT_NE(email->at("email").text.find("@example.org"), std::string::npos);
}

TEST_F(AudienceIndexTest, NothingToWriteWhenUnchangedSinceTheLastSnapshot) {
  Create("75011");
  AudienceIndex index = NewIndex();
  ASSERT_TRUE(index.Refresh({"postal_code"}, {}).ok());
  SealedSnapshot snapshot = Snapshot();
  auto first = index.TakeCapture();
  ASSERT_TRUE(first.ok() && first.value().has_value());
  ASSERT_TRUE(AudienceIndex::Write(*first.value(), snapshot).value());
  index.Release(*first.value(), true);
  auto second = index.TakeCapture();
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second.value().has_value());
}

// Random creates and moves, a refresh after every few (after thousands, once), against a
// model of the vault: the index follows each, and once the records it replaced outweigh a quarter
// of the live ones it copies the live ones together. A capture taken before any of it still writes
// what it took, from the blocks the copies left.
TEST_F(AudienceIndexTest, FollowsRandomChangesAndPacksTheLiveRecordsTogether) {
  std::mt19937 rng(20261204);
  auto postal = [&rng] { return std::to_string(10000 + rng() % 90000); };
  std::map<std::string, std::string> model;  // id → postal code (the e-mail: code@example.org)
  std::vector<std::string> ids;
  std::set<std::string> created_with;  // a code at creation makes the e-mail: each once
  auto create = [&] {
    std::string code = postal();
    while (!created_with.insert(code).second) code = postal();
    const std::string id = Create(code);
    model[id] = code;
    ids.push_back(id);
  };
  for (int i = 0; i < 40; ++i) create();
  AudienceIndex index = NewIndex();
  ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
  const auto at_capture = model;
  auto early = index.TakeCapture();
  ASSERT_TRUE(early.ok() && early.value().has_value());
  std::map<std::string, std::string> email;  // as created; a move keeps it
  for (const auto& [id, code] : model) email[id] = code + "@example.org";

  for (int step = 0; step < 150 && !HasFailure(); ++step) {
    // The first refresh applies more changes than one read transaction reads.
    for (int n = step == 0 ? 2100 : 2 + static_cast<int>(rng() % 8); n > 0; --n) {
      if (rng() % 5 == 0) {
        create();
        email[ids.back()] = model[ids.back()] + "@example.org";
        continue;
      }
      const std::string& id = ids[rng() % ids.size()];
      model[id] = postal();
      ASSERT_TRUE(
          d_->vault()
              .Rectify(op_, id, {{{"postal_code", FieldValue::String(model[id])}}, std::nullopt})
              .ok());
    }
    ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
    ASSERT_EQ(index.size(), model.size());
    for (size_t i = 0; i < index.size(); ++i) {
      const std::string id(index.id(i));
      ASSERT_EQ(model.count(id), 1u) << id;
      ASSERT_EQ((*index.Column("postal_code"))[i].text(), model[id]) << "step " << step;
    }
    const size_t i = rng() % index.size();
    auto opened = index.OpenKept(i, {"email"});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    EXPECT_EQ(opened->at("email").text, email[std::string(index.id(i))]);
  }
  EXPECT_GT(index.compactions(), 0u);

  SealedSnapshot snapshot = Snapshot();
  auto written = AudienceIndex::Write(*early.value(), snapshot);
  ASSERT_TRUE(written.ok() && written.value());
  index.Release(*early.value(), true);
  AudienceIndex next = NewIndex();
  auto loaded = next.LoadFrom(snapshot);
  ASSERT_TRUE(loaded.ok() && loaded.value());
  ASSERT_EQ(next.size(), at_capture.size());
  for (const auto& [id, code] : at_capture) EXPECT_EQ(PostalCode(next, id), code);
  // The output fields open under the key the snapshot brought.
  for (size_t i = 0; i < next.size(); ++i) {
    auto opened = next.OpenKept(i, {"email"});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    EXPECT_EQ(opened->at("email").text, email[std::string(next.id(i))]);
  }
}

// A record keeps the output fields sealed under the index's own key: no copy of the vault's
// boxes nor of the subject's wrapped data key (75 bytes a subject, once the largest part of
// the index after the boxes), and no plaintext of them.
TEST_F(AudienceIndexTest, ARecordHoldsItsOutputSealedByTheIndexNotTheVaultsBoxesAndWrappedKey) {
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(Create(std::to_string(30000 + i)));
  AudienceIndex index = NewIndex();
  ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
  auto capture = index.TakeCapture();
  ASSERT_TRUE(capture.ok() && capture.value().has_value());
  ASSERT_EQ(capture.value()->records.size(), ids.size());
  std::map<std::string, std::string_view> record_of;
  for (auto record : capture.value()->records) {
    for (const auto& id : ids) {
      if (record.find(id) != std::string_view::npos) record_of[id] = record;
    }
  }
  ASSERT_EQ(record_of.size(), ids.size());
  ASSERT_TRUE(d_->store()
                  .Read([&](ReadTx& tx) -> Status {
                    for (const auto& id : ids) {
                      auto row = tx.GetSubject(id);
                      auto fields = tx.GetFields(id);
                      if (!row.ok() || !row.value() || !fields.ok()) return Internal("unread");
                      const std::string_view record = record_of[id];
                      const std::string wrapped(row.value()->wrapped_dek.begin(),
                                                row.value()->wrapped_dek.end());
                      EXPECT_EQ(record.find(wrapped), std::string_view::npos) << id;
                      for (const auto& f : fields.value()) {
                        const std::string box(f.box.begin(), f.box.end());
                        EXPECT_EQ(record.find(box), std::string_view::npos) << id << " " << f.field;
                      }
                      EXPECT_EQ(record.find("@example.org"), std::string_view::npos) << id;
                    }
                    return Status::Ok();
                  })
                  .ok());
  index.Release(*capture.value(), false);
  for (size_t i = 0; i < index.size(); ++i) {
    auto opened = index.OpenKept(i, {"email"});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    EXPECT_EQ(opened->at("email").text,
              std::string(PostalCode(index, std::string(index.id(i)))) + "@example.org");
  }
}

// A subject's output fields share one box under the index's key: another output field costs
// its value and a few bytes of framing, not another nonce and tag (40 bytes each, the larger
// part of a short value's box). Both indexes read the same vault.
TEST_F(AudienceIndexTest, ASubjectsOutputFieldsShareOneBox) {
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(Create(std::to_string(40000 + i)));
  auto record_bytes = [&](AudienceIndex& index) {
    size_t n = 0;
    auto capture = index.TakeCapture();
    EXPECT_TRUE(capture.ok() && capture.value().has_value());
    if (!capture.ok() || !capture.value()) return n;
    for (auto record : capture.value()->records) n += record.size();
    index.Release(*capture.value(), false);
    return n;
  };
  AudienceIndex one = NewIndex();
  ASSERT_TRUE(one.Refresh({"postal_code"}, {"email"}).ok());
  AudienceIndex two = NewIndex();
  ASSERT_TRUE(two.Refresh({"postal_code"}, {"email", "postal_code"}).ok());
  const size_t more = record_bytes(two) - record_bytes(one);
  EXPECT_LT(more, ids.size() * (24 + 16)) << more / ids.size() << " bytes a subject";
  for (size_t i = 0; i < two.size(); ++i) {
    auto opened = two.OpenKept(i, {"email", "postal_code"});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    const std::string postal_code(PostalCode(two, std::string(two.id(i))));
    EXPECT_EQ(opened->at("postal_code").text, postal_code);
    EXPECT_EQ(opened->at("email").text, postal_code + "@example.org");
    auto email = two.OpenKept(i, {"email"});
    ASSERT_TRUE(email.ok());
    EXPECT_EQ(email->size(), 1u);  // what was asked, not all the box holds
  }
}

// Subjects added by applying changes go into the columns where they are, while the 2 % of room
// left by a rebuild lasts: building merged columns beside them doubled the columns (tens of
// megabytes at a million subjects) at every refresh that added a subject.
TEST_F(AudienceIndexTest, AddedSubjectsGoIntoTheColumnsInPlaceWhileThereIsRoom) {
  std::map<std::string, std::string> model;
  for (int i = 0; i < 500; ++i) {
    const std::string code = std::to_string(50000 + i * 7);
    model[Create(code)] = code;
  }
  AudienceIndex index = NewIndex();
  ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
  for (int i = 0; i < 20; ++i) {
    const std::string code = std::to_string(60000 + i * 11);
    model[Create(code)] = code;
  }
  ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
  ASSERT_EQ(index.size(), model.size());
  EXPECT_EQ(index.column_growths(), 0u);
  for (size_t i = 0; i < index.size(); ++i) {
    ASSERT_EQ(PostalCode(index, std::string(index.id(i))), model[std::string(index.id(i))]);
  }
  // Past the room: they grow once, with room again.
  for (int i = 0; i < 20; ++i) {
    const std::string code = std::to_string(70000 + i * 13);
    model[Create(code)] = code;
  }
  ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
  EXPECT_EQ(index.column_growths(), 1u);
  ASSERT_EQ(index.size(), model.size());
  for (size_t i = 0; i < index.size(); ++i) {
    ASSERT_EQ(PostalCode(index, std::string(index.id(i))), model[std::string(index.id(i))]);
  }
}

// A compaction copies the live records one old block at a time and lets each block go once its
// records are out: while it runs, the blocks hold at most what they held before it, plus the
// block being filled. (Copying everything before letting anything go held the index twice.)
TEST_F(AudienceIndexTest, ACompactionHoldsOneBlockMoreThanTheIndexHeld) {
  std::mt19937 rng(20261207);
  std::map<std::string, std::string> model;  // id → postal code
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    const std::string code = std::to_string(10000 + i);
    ids.push_back(Create(code));
    model[ids.back()] = code;
  }
  constexpr size_t kBlock = 4096;  // records of ~150 bytes: a few dozen blocks
  AudienceIndex index = NewIndex(1000, kBlock);
  ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
  for (int step = 0; step < 120 && !HasFailure(); ++step) {
    const size_t held_before = index.block_bytes();
    const size_t peak_before = index.peak_block_bytes();
    const int changes = 1 + static_cast<int>(rng() % 8);
    for (int n = 0; n < changes; ++n) {
      const std::string& id = ids[rng() % ids.size()];
      model[id] = std::to_string(10000 + rng() % 90000);
      ASSERT_TRUE(
          d_->vault()
              .Rectify(op_, id, {{{"postal_code", FieldValue::String(model[id])}}, std::nullopt})
              .ok());
    }
    const uint64_t compactions = index.compactions();
    ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
    // The changed records went into blocks of their own (a sixteenth of a block, 256 bytes here:
    // a record or two each), then the compaction, if any, added one block at a time.
    const size_t bound = held_before + static_cast<size_t>(changes) * 512 + kBlock;
    if (index.compactions() > compactions) {
      EXPECT_LE(index.peak_block_bytes(), std::max(peak_before, bound)) << "step " << step;
    }
    for (size_t i = 0; i < index.size(); ++i) {
      ASSERT_EQ((*index.Column("postal_code"))[i].text(), model[std::string(index.id(i))]);
    }
    const size_t i = rng() % index.size();
    auto opened = index.OpenKept(i, {"email"});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
  }
  EXPECT_GE(index.compactions(), 2u);
}

// What every subject costs in columns, whatever its record holds: the value of each field held
// open (a view into the record) and the entry's bookkeeping (its record and eligibility: 33
// bytes with one field; the block an entry's record lives in is the part's, not the entry's).
// Columns that grew by an entry at a time while changes were merged in once held a million and
// fifty thousand entries in room for two million, at 193 bytes each.
TEST_F(AudienceIndexTest, ColumnsCostAFewDozenBytesAnEntryAfterChangesAreMergedIn) {
  for (int i = 0; i < 200; ++i) Create(std::to_string(10000 + i));
  AudienceIndex index = NewIndex(100000);
  ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
  EXPECT_LE(index.column_bytes(), 40u);
  // The records' blocks are sized to the vault: 200 records of ~150 bytes (ids minted in one run:
  // one id range) in a block of 64 KiB, not of 4 MiB.
  EXPECT_LE(index.block_bytes(), size_t{16} * (64 << 10));
  // More subjects than were held, added by applying the changes (not rebuilt).
  std::string last;
  for (int i = 0; i < 2100; ++i) last = Create(std::to_string(20000 + i));
  ASSERT_TRUE(index.Refresh({"postal_code"}, {"email"}).ok());
  ASSERT_EQ(index.size(), 2300u);
  EXPECT_EQ(index.compactions(), 0u);
  EXPECT_LE(index.column_bytes(), 40u);
  EXPECT_EQ(PostalCode(index, last), "22099");
  // The records' blocks are counted while they live.
  EXPECT_GT(index.bytes(), index.size() * index.column_bytes());
  index.Trim();
  EXPECT_EQ(index.size(), 2300u);  // within its capacity: kept
}

}  // namespace
}  // namespace garde

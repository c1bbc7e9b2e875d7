// The store conformance suite: every aggregate of store.h held to the same answers on each
// backend (a SQLite file pair as `garde serve` opens it, the in-memory store, and PostgreSQL
// when the tests run beside a server: ctest store_conformance_postgresql), then a differential
// run of random operations on two backends at once, compared after every step.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "eventually.h"
#include "garde/store/memory_store.h"
#include "garde/store/postgres_store.h"
#include "garde/store/sqlite_store.h"
#include "gated_file_system.h"
#include "test_database.h"
#include "test_dir.h"

namespace garde {
namespace {

using testing::Eventually;

// The two databases of a deployment: the vault's tables and the audit log's.
struct StorePair {
  std::unique_ptr<Store> vault, audit;
  std::string uri;  // PostgreSQL: the database both are on
};

std::filesystem::path FreshDir(const std::string& tag) {
  auto dir = TestDir("garde-store-" + tag + "-");
  std::filesystem::create_directories(dir);
  return dir;
}

StorePair OpenPair(const std::string& backend, const std::filesystem::path& dir) {
  StorePair p;
  if (backend == "postgresql") {
    // Both stores on one fresh database, as a deployment opens them.
    std::string error;
    const std::string uri = testing::CreateTestDatabase(&error);
    EXPECT_FALSE(uri.empty()) << error;
    auto v = PostgresStore::Open({uri, false, 4});
    auto a = PostgresStore::Open({uri, false, 2, PostgresOptions::kAuditWriteLock, false});
    EXPECT_TRUE(v.ok()) << v.status().message();
    if (v.ok() && a.ok()) {
      p.vault = std::move(v).value();
      p.audit = std::move(a).value();
    }
    p.uri = uri;
    return p;
  }
  if (backend == "memory") {
    p.vault = std::make_unique<MemoryStore>();
    p.audit = std::make_unique<MemoryStore>();
    return p;
  }
  SqliteOptions vault;
  vault.path = (dir / "garde.db").string();
  vault.synchronous_full = false;
  SqliteOptions audit = vault;
  audit.path = (dir / "audit.db").string();
  audit.schema = SqliteSchema::kAudit;
  auto v = SqliteStore::Open(vault);
  auto a = SqliteStore::Open(audit);
  EXPECT_TRUE(v.ok() && a.ok());
  if (v.ok()) p.vault = std::move(v).value();
  if (a.ok()) p.audit = std::move(a).value();
  return p;
}

SubjectRow Subject(const std::string& id, uint32_t root = 1) {
  SubjectRow r;
  r.id = id;
  r.kind = "person";
  r.status = "active";
  r.source = "test";
  r.created_at = r.updated_at = 100;
  r.root_key_version = root;
  r.wrapped_dek = Bytes(40, static_cast<uint8_t>(id.back()));
  return r;
}

ConsentEventRow Event(const std::string& id, const std::string& subject, const std::string& event,
                      int64_t at, const std::string& purpose = "marketing.email") {
  ConsentEventRow e;
  e.id = id;
  e.subject_id = subject;
  e.purpose = purpose;
  e.channel = "email";
  e.event = event;
  e.legal_basis = "consent";
  e.notice_version = "1";
  e.method = "api";
  e.actor = "key_a";
  e.at = at;
  e.receipt = "{}";
  return e;
}

RequestRow Request(const std::string& id, const std::string& subject, int64_t due,
                   const std::string& status = "received") {
  RequestRow r;
  r.id = id;
  r.type = "access";
  r.subject_id = subject;
  r.status = status;
  r.jurisdiction = "gdpr";
  r.opened_by = "key_a";
  r.verification = "";
  r.received_at = 1;
  r.due_at = due;
  r.sealed = Bytes{1, 2, 3};
  r.result = "{}";
  return r;
}

DeliveryRow Delivery(const std::string& endpoint, const std::string& event,
                     const std::string& subject, int64_t next_at) {
  DeliveryRow d;
  d.endpoint = endpoint;
  d.event_id = event;
  d.topic = "consent.changed";
  d.subject = subject;
  d.payload = "{}";
  d.created_at = 5;
  d.status = "pending";
  d.next_at = next_at;
  return d;
}

void Write(Store& store, const std::function<Status(WriteTx&)>& fn) {
  Status s = store.Write(fn);
  ASSERT_TRUE(s.ok()) << s.message();
}

// The value a read gives, failing the test on an error.
template <typename T>
T Get(Store& store, const std::function<Result<T>(ReadTx&)>& fn) {
  T out{};
  Status s = store.Read([&](ReadTx& tx) -> Status {
    auto r = fn(tx);
    if (!r.ok()) return r.status();
    out = std::move(r).value();
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

class StoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = FreshDir(GetParam());
    stores_ = OpenPair(GetParam(), dir_);
    ASSERT_TRUE(stores_.vault && stores_.audit);
  }
  void TearDown() override {
    stores_ = {};
    std::filesystem::remove_all(dir_);
  }
  Store& vault() { return *stores_.vault; }
  Store& audit() { return *stores_.audit; }

  std::filesystem::path dir_;
  StorePair stores_;
};

std::vector<std::string> Backends() {
  std::vector<std::string> out = {"sqlite", "memory"};
  if (!testing::TestPostgresHost().empty()) out.push_back("postgresql");
  return out;
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance, ::testing::ValuesIn(Backends()),
                         [](const auto& param_info) { return param_info.param; });

TEST_P(StoreConformance, SubjectsAreKeptScannedAndCountedByRootKey) {
  Write(vault(), [](WriteTx& tx) -> Status {
    for (const char* id : {"sub_c", "sub_a", "sub_b"})
      GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(id)));
    return tx.InsertSubject(Subject("sub_d", 2));
  });
  EXPECT_EQ(vault().Write([](WriteTx& tx) { return tx.InsertSubject(Subject("sub_a")); }).code(),
            Code::kConflict);
  auto a =
      Get<std::optional<SubjectRow>>(vault(), [](ReadTx& tx) { return tx.GetSubject("sub_a"); });
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, Subject("sub_a"));
  EXPECT_FALSE(
      Get<std::optional<SubjectRow>>(vault(), [](ReadTx& tx) { return tx.GetSubject("sub_x"); }));
  auto page =
      Get<std::vector<SubjectRow>>(vault(), [](ReadTx& tx) { return tx.ScanSubjects("sub_a", 2); });
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, "sub_b");
  EXPECT_EQ(page[1].id, "sub_c");
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountSubjects(); }), 4);
  auto by_root = Get<std::map<uint32_t, int64_t>>(
      vault(), [](ReadTx& tx) { return tx.CountByRootKeyVersion(); });
  EXPECT_EQ(by_root, (std::map<uint32_t, int64_t>{{1, 3}, {2, 1}}));
  auto old = Get<std::vector<SubjectRow>>(
      vault(), [](ReadTx& tx) { return tx.SubjectsNotWrappedBy(2, 10); });
  EXPECT_EQ(old.size(), 3u);

  // Re-wrap is compare-and-set on the root version; shredding empties the wrapped key.
  EXPECT_FALSE(Get<bool>(vault(), [](ReadTx&) -> Result<bool> { return false; }));
  bool rewrapped = true, stale = true;
  Write(vault(), [&](WriteTx& tx) -> Status {
    auto r = tx.RewrapDataKey("sub_a", 1, 2, Bytes{9});
    if (!r.ok()) return r.status();
    rewrapped = r.value();
    auto again = tx.RewrapDataKey("sub_a", 1, 3, Bytes{8});
    if (!again.ok()) return again.status();
    stale = again.value();
    return tx.ShredDataKey("sub_b");
  });
  EXPECT_TRUE(rewrapped);
  EXPECT_FALSE(stale);
  a = Get<std::optional<SubjectRow>>(vault(), [](ReadTx& tx) { return tx.GetSubject("sub_a"); });
  EXPECT_EQ(a->root_key_version, 2u);
  EXPECT_EQ(a->wrapped_dek, Bytes{9});
  auto b =
      Get<std::optional<SubjectRow>>(vault(), [](ReadTx& tx) { return tx.GetSubject("sub_b"); });
  EXPECT_TRUE(b->wrapped_dek.empty());

  SubjectRow changed = Subject("sub_c");
  changed.status = "restricted";
  changed.source = "crm";
  changed.updated_at = 7;
  changed.last_interaction_at = 8;
  changed.kind = "organisation";  // not updated
  Write(vault(), [&](WriteTx& tx) { return tx.UpdateSubject(changed); });
  auto c =
      Get<std::optional<SubjectRow>>(vault(), [](ReadTx& tx) { return tx.GetSubject("sub_c"); });
  EXPECT_EQ(c->status, "restricted");
  EXPECT_EQ(c->source, "crm");
  EXPECT_EQ(c->last_interaction_at, 8);
  EXPECT_EQ(c->kind, "person");
}

// A hostile id (bytes that are not UTF-8, which PostgreSQL cannot hold as text) finds nothing
// and fails nothing: the HTTP layer answers 404, never 500.
TEST_P(StoreConformance, LookUpsByBytesThatAreNotUtf8FindNothing) {
  const std::string bad = std::string("sub_\xff\xfe") + '\0' + "x";
  Write(vault(), [](WriteTx& tx) { return tx.InsertSubject(Subject("sub_a")); });
  EXPECT_FALSE(
      Get<std::optional<SubjectRow>>(vault(), [&](ReadTx& tx) { return tx.GetSubject(bad); }));
  EXPECT_TRUE(Get<std::vector<std::string>>(vault(), [&](ReadTx& tx) {
                return tx.FindByIndex(bad, Bytes{1});
              }).empty());
  EXPECT_TRUE(Get<std::vector<ConsentEventRow>>(vault(), [&](ReadTx& tx) {
                return tx.ConsentEventsOf(bad);
              }).empty());
  EXPECT_FALSE(
      Get<std::optional<RequestRow>>(vault(), [&](ReadTx& tx) { return tx.GetRequest(bad); }));
  RequestQuery q;
  q.subject = bad;
  EXPECT_TRUE(Get<std::vector<RequestRow>>(vault(), [&](ReadTx& tx) {
                return tx.QueryRequests(q);
              }).empty());
  Write(vault(), [&](WriteTx& tx) { return tx.DeleteIndexesOf(bad); });
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountSubjects(); }), 1);
}

TEST_P(StoreConformance, FieldsAndBlindIndexes) {
  Write(vault(), [](WriteTx& tx) -> Status {
    for (const char* id : {"sub_a", "sub_b", "sub_c"}) {
      GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(id)));
      GARDE_RETURN_IF_ERROR(tx.PutField(id, {"name", Bytes{1}}));
      GARDE_RETURN_IF_ERROR(tx.PutField(id, {"email", Bytes{2}}));
    }
    GARDE_RETURN_IF_ERROR(tx.PutField("sub_a", {"name", Bytes{3}}));  // replaces
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_a", {"email", Bytes{7}, 1}));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_b", {"email", Bytes{7}, 2}));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_c", {"email", Bytes{6}, 1}));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_c", {"email", Bytes{7}, 2}));  // replaces 6
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_b", {"email", Bytes{7}, 2}));  // replaces itself
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_a", {"~email", Bytes{5}, 0}));
    return tx.PutIndex("sub_a", {"phone", Bytes{4}, 1});
  });
  auto fields =
      Get<std::vector<SealedField>>(vault(), [](ReadTx& tx) { return tx.GetFields("sub_a"); });
  EXPECT_EQ(fields, (std::vector<SealedField>{{"email", Bytes{2}}, {"name", Bytes{3}}}));
  std::vector<std::string> scanned;
  ASSERT_TRUE(vault()
                  .Read([&](ReadTx& tx) {
                    return tx.ScanFields(
                        "sub_b", "sub_c",
                        [&](std::string_view s, std::string_view f, const uint8_t* box, size_t n) {
                          scanned.push_back(std::string(s) + "/" + std::string(f) + "/" +
                                            std::to_string(n) + std::to_string(box[0]));
                        });
                  })
                  .ok());
  EXPECT_EQ(scanned, (std::vector<std::string>{"sub_b/email/12", "sub_b/name/11", "sub_c/email/12",
                                               "sub_c/name/11"}));
  auto found = Get<std::vector<std::string>>(
      vault(), [](ReadTx& tx) { return tx.FindByIndex("email", Bytes{7}); });
  EXPECT_EQ(found, (std::vector<std::string>{"sub_a", "sub_b", "sub_c"}));
  EXPECT_TRUE(Get<std::vector<std::string>>(vault(), [](ReadTx& tx) {
                return tx.FindByIndex("email", Bytes{6});
              }).empty());
  EXPECT_EQ(Get<std::vector<Bytes>>(vault(),
                                    [](ReadTx& tx) { return tx.IndexDigestsOf("sub_c", "email"); }),
            std::vector<Bytes>{Bytes{7}});

  // Master rotation to 2: the digests under 1 are stale, the suppression digest (0) never.
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountStaleIndexes(2); }), 2);
  EXPECT_EQ(Get<std::vector<std::string>>(
                vault(), [](ReadTx& tx) { return tx.SubjectsWithStaleIndexes(2, "", 10); }),
            std::vector<std::string>{"sub_a"});
  EXPECT_TRUE(Get<std::vector<std::string>>(vault(), [](ReadTx& tx) {
                return tx.SubjectsWithStaleIndexes(2, "sub_a", 10);
              }).empty());
  EXPECT_EQ(Get<std::vector<std::string>>(vault(),
                                          [](ReadTx& tx) { return tx.StaleIndexesOf("sub_a", 2); }),
            (std::vector<std::string>{"email", "phone"}));

  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.DeleteIndex("sub_b", "email"));
    GARDE_RETURN_IF_ERROR(tx.DeleteIndexesOf("sub_a"));
    return tx.DeleteField("sub_a", "name");
  });
  EXPECT_EQ(Get<std::vector<std::string>>(
                vault(), [](ReadTx& tx) { return tx.FindByIndex("email", Bytes{7}); }),
            std::vector<std::string>{"sub_c"});
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountStaleIndexes(2); }), 0);
  EXPECT_EQ(Get<std::vector<SealedField>>(vault(), [](ReadTx& tx) { return tx.GetFields("sub_a"); })
                .size(),
            1u);
}

// A new subject's rows put at once are what PutField and PutIndex leave one by one (the
// reference): random fields and entries, names repeated (the last wins), digests shared.
TEST_P(StoreConformance, ANewSubjectsRowsPutAtOnceAreThoseLeftOneByOne) {
  std::mt19937 rng(20261205);
  const std::vector<std::string> names = {"email", "phone", "~email", "=name_postal", "name"};
  for (int round = 0; round < 40; ++round) {
    const std::string at_once = "sub_once" + std::to_string(round);
    const std::string one_by_one = "sub_each" + std::to_string(round);
    std::vector<SealedField> fields;
    std::vector<IndexEntry> entries;
    for (size_t n = rng() % 6; n > 0; --n) {
      fields.push_back(
          {names[rng() % names.size()], Bytes(1 + rng() % 40, static_cast<uint8_t>(rng()))});
    }
    for (size_t n = rng() % 6; n > 0; --n) {
      entries.push_back({names[rng() % names.size()], Bytes{static_cast<uint8_t>(rng() % 4)},
                         static_cast<uint32_t>(rng() % 3)});
    }
    Write(vault(), [&](WriteTx& tx) -> Status {
      GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(at_once)));
      GARDE_RETURN_IF_ERROR(tx.PutNewSubjectRows(at_once, fields, entries));
      GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(one_by_one)));
      for (const auto& f : fields) GARDE_RETURN_IF_ERROR(tx.PutField(one_by_one, f));
      for (const auto& e : entries) GARDE_RETURN_IF_ERROR(tx.PutIndex(one_by_one, e));
      return Status::Ok();
    });
    SCOPED_TRACE(round);
    const auto fields_of = [&](const std::string& id) {
      return Get<std::vector<SealedField>>(vault(), [&](ReadTx& tx) { return tx.GetFields(id); });
    };
    const auto digests_of = [&](const std::string& id, const std::string& field) {
      return Get<std::vector<Bytes>>(vault(),
                                     [&](ReadTx& tx) { return tx.IndexDigestsOf(id, field); });
    };
    const auto stale_of = [&](const std::string& id, uint32_t master) {
      return Get<std::vector<std::string>>(
          vault(), [&](ReadTx& tx) { return tx.StaleIndexesOf(id, master); });
    };
    EXPECT_EQ(fields_of(at_once), fields_of(one_by_one));
    for (const auto& name : names) {
      EXPECT_EQ(digests_of(at_once, name), digests_of(one_by_one, name)) << name;
    }
    for (uint32_t master = 0; master < 3; ++master) {
      EXPECT_EQ(stale_of(at_once, master), stale_of(one_by_one, master)) << master;
    }
  }
}

TEST_P(StoreConformance, SharedMatchKeysPairSubjectsWithTheirRulesInOrder) {
  Write(vault(), [](WriteTx& tx) -> Status {
    for (const char* id : {"sub_a", "sub_b", "sub_c", "sub_d"})
      GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(id)));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_a", {"=name_postcode", Bytes{1}, 1}));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_b", {"=name_postcode", Bytes{1}, 1}));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_c", {"=name_postcode", Bytes{1}, 1}));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_a", {"=name_phone", Bytes{2}, 1}));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_b", {"=name_phone", Bytes{2}, 1}));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_d", {"=name_phone", Bytes{3}, 1}));
    return tx.PutIndex("sub_d", {"email", Bytes{1}, 1});  // not a match key
  });
  auto pairs = Get<std::vector<DuplicatePair>>(
      vault(), [](ReadTx& tx) { return tx.SharedMatchKeys("", "", 10); });
  EXPECT_EQ(pairs, (std::vector<DuplicatePair>{{"sub_a", "sub_b", {"name_phone", "name_postcode"}},
                                               {"sub_a", "sub_c", {"name_postcode"}},
                                               {"sub_b", "sub_c", {"name_postcode"}}}));
  auto next = Get<std::vector<DuplicatePair>>(
      vault(), [](ReadTx& tx) { return tx.SharedMatchKeys("sub_a", "sub_b", 1); });
  EXPECT_EQ(next, (std::vector<DuplicatePair>{{"sub_a", "sub_c", {"name_postcode"}}}));
}

TEST_P(StoreConformance, TheChangeLogNamesEveryChangedSubjectWithoutGaps) {
  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_a")));  // 1
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_b")));  // 2
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_b", {"~email", Bytes{5}, 0}));
    return tx.InsertConsentEvent(Event("con_1", "sub_a", "granted", 10));  // 3
  });
  // A failed write takes its numbers back with it.
  EXPECT_FALSE(vault()
                   .Write([](WriteTx& tx) -> Status {
                     GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_z")));
                     return Conflict("changed my mind");
                   })
                   .ok());
  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.PutSuppression("email", Bytes{5}, "complaint", 11));  // 4: sub_b
    GARDE_RETURN_IF_ERROR(tx.PutSuppression("email", Bytes{5}, "again", 12));      // ignored
    SubjectRow a = Subject("sub_a");
    a.updated_at = 20;
    GARDE_RETURN_IF_ERROR(tx.UpdateSubject(a));                                 // 5
    GARDE_RETURN_IF_ERROR(tx.RewrapDataKey("sub_a", 1, 2, Bytes{1}).status());  // not logged
    return tx.DeleteConsentEventsOf("sub_a");                                   // 6
  });
  auto tail = Get<ChangeTail>(vault(), [](ReadTx& tx) { return tx.ChangesAfter(0, 100); });
  EXPECT_TRUE(tail.complete);
  EXPECT_EQ(tail.last_seq, 6);
  EXPECT_EQ(
      tail.changes,
      (std::vector<std::pair<int64_t, std::string>>{
          {1, "sub_a"}, {2, "sub_b"}, {3, "sub_a"}, {4, "sub_b"}, {5, "sub_a"}, {6, "sub_a"}}));
  auto after = Get<ChangeTail>(vault(), [](ReadTx& tx) { return tx.ChangesAfter(4, 100); });
  EXPECT_EQ(after.changes.size(), 2u);
  EXPECT_TRUE(after.complete);
  auto too_many = Get<ChangeTail>(vault(), [](ReadTx& tx) { return tx.ChangesAfter(0, 3); });
  EXPECT_FALSE(too_many.complete);
  EXPECT_EQ(too_many.last_seq, 6);
  auto none = Get<ChangeTail>(vault(), [](ReadTx& tx) { return tx.ChangesAfter(6, 3); });
  EXPECT_TRUE(none.complete);
  EXPECT_TRUE(none.changes.empty());
}

TEST_P(StoreConformance, DestroyingDataCountsAShredAndDropsSnapshotKeys) {
  const SnapshotKeyRow key{"audience", "k1", 1, Bytes{1, 2}};
  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_a")));
    return tx.PutField("sub_a", {"name", Bytes{1}});
  });
  bool kept = false;
  Write(vault(), [&](WriteTx& tx) -> Status {
    auto r = tx.PutSnapshotKey(key, 0);
    if (r.ok()) kept = r.value();
    return r.status();
  });
  EXPECT_TRUE(kept);
  EXPECT_EQ(Get<std::optional<SnapshotKeyRow>>(
                vault(), [](ReadTx& tx) { return tx.GetSnapshotKey("audience"); }),
            key);
  Write(vault(), [](WriteTx& tx) {
    return tx.PutField("sub_a", {"name", Bytes{2}});
  });  // a rectification
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.ShredCount(); }), 0);
  Write(vault(), [](WriteTx& tx) { return tx.DeleteField("sub_a", "name"); });
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.ShredCount(); }), 1);
  EXPECT_FALSE(Get<std::optional<SnapshotKeyRow>>(
      vault(), [](ReadTx& tx) { return tx.GetSnapshotKey("audience"); }));
  // A key offered under an older count is refused.
  Write(vault(), [&](WriteTx& tx) -> Status {
    auto r = tx.PutSnapshotKey(key, 0);
    if (r.ok()) kept = r.value();
    return r.status();
  });
  EXPECT_FALSE(kept);
  SubjectRow erased = Subject("sub_a");
  erased.status = "erased";
  Write(vault(), [&](WriteTx& tx) { return tx.UpdateSubject(erased); });
  Write(vault(), [&](WriteTx& tx) { return tx.UpdateSubject(erased); });  // already erased
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.ShredCount(); }), 2);
}

// A re-key replaces the data key itself, compare-and-set on its version: the subject is a
// change the views follow, and the old key's boxes count as destroyed (a shred); an
// interaction's amount sealed again keeps its seq.
TEST_P(StoreConformance, ReplacingADataKeyIsLoggedAndCountedAsAShred) {
  int64_t seq = 0;
  Write(vault(), [&](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_a")));
    auto s = tx.InsertInteraction({"sub_a", "purchase", 5, Bytes{1, 2}, 0});
    if (!s.ok()) return s.status();
    seq = s.value();
    auto kept = tx.PutSnapshotKey({"audience", "k1", 1, Bytes{1}}, 0);
    return kept.status();
  });
  auto tail = [this] {
    return Get<ChangeTail>(vault(), [](ReadTx& tx) { return tx.ChangesAfter(0, 100); });
  };
  const ChangeTail before = tail();
  bool replaced = false, stale = true, same = false;
  Write(vault(), [&](WriteTx& tx) -> Status {
    auto r = tx.ReplaceDataKey("sub_a", 1, 3, 2, Bytes{7, 7});
    if (!r.ok()) return r.status();
    replaced = r.value();
    auto again = tx.ReplaceDataKey("sub_a", 1, 3, 2, Bytes{8});
    if (!again.ok()) return again.status();
    stale = again.value();
    auto none = tx.ReplaceDataKey("sub_x", 1, 3, 2, Bytes{8});
    if (!none.ok()) return none.status();
    same = none.value();
    return tx.ResealInteraction(seq, Bytes{9, 9, 9});
  });
  EXPECT_TRUE(replaced);
  EXPECT_FALSE(stale);
  EXPECT_FALSE(same);
  auto a =
      Get<std::optional<SubjectRow>>(vault(), [](ReadTx& tx) { return tx.GetSubject("sub_a"); });
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->root_key_version, 3u);
  EXPECT_EQ(a->dek_version, 2u);
  EXPECT_EQ(a->wrapped_dek, (Bytes{7, 7}));
  const ChangeTail after = tail();
  ASSERT_EQ(after.changes.size(), before.changes.size() + 1);
  EXPECT_EQ(after.changes.back().second, "sub_a");
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.ShredCount(); }), 1);
  EXPECT_FALSE(Get<std::optional<SnapshotKeyRow>>(
      vault(), [](ReadTx& tx) { return tx.GetSnapshotKey("audience"); }));
  auto of = Get<std::vector<InteractionRow>>(
      vault(), [](ReadTx& tx) { return tx.InteractionsOf("sub_a", 0); });
  ASSERT_EQ(of.size(), 1u);
  EXPECT_EQ(of[0].seq, seq);
  EXPECT_EQ(of[0].sealed_amount, (Bytes{9, 9, 9}));
}

TEST_P(StoreConformance, AFailedWriteLeavesNothingAndRunsNoHooks) {
  int hooks = 0;
  Status s = vault().Write([&](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_a")));
    GARDE_RETURN_IF_ERROR(tx.InsertApiKey({"key_a", "n", "admin", {}, Bytes{1}, 1, 0, 1}));
    GARDE_RETURN_IF_ERROR(tx.InsertOutbox({"evt_1", "t", "{}", 1}));
    GARDE_RETURN_IF_ERROR(tx.InsertPendingAudit({0, 1, "sub_a", "x"}));
    tx.AfterCommit([&] { ++hooks; });
    return tx.InsertSubject(Subject("sub_a"));  // conflict
  });
  EXPECT_EQ(s.code(), Code::kConflict);
  EXPECT_EQ(hooks, 0);
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountSubjects(); }), 0);
  EXPECT_TRUE(
      Get<std::vector<ApiKeyRow>>(vault(), [](ReadTx& tx) { return tx.ListApiKeys(); }).empty());
  EXPECT_TRUE(Get<std::vector<OutboxRow>>(vault(), [](ReadTx& tx) {
                return tx.ListOutbox(0, 10);
              }).empty());
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountPendingAudit(); }), 0);
  const uint64_t epoch = vault().ChangeEpoch();
  Write(vault(), [&](WriteTx& tx) {
    tx.AfterCommit([&] { ++hooks; });
    return tx.InsertSubject(Subject("sub_a"));
  });
  EXPECT_EQ(hooks, 1);
  EXPECT_NE(vault().ChangeEpoch(), epoch);
  // An exception in a write is an error, and rolls back too.
  s = vault().Write([](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_b")));
    throw std::runtime_error("boom");
  });
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountSubjects(); }), 1);
}

// Lines a write hands to WriteAhead go to the store's function once, before its commit, and
// only if the write succeeds (a rerun write's last run's); when the function fails, the write
// fails with its error, leaves nothing and runs no hooks.
TEST_P(StoreConformance, LinesWrittenAheadGoOutOnceBeforeTheCommitOrFailTheWrite) {
  std::vector<std::string> out;
  Status answer = Status::Ok();
  vault().SetWriteAhead([&](const std::string& lines) {
    out.push_back(lines);
    return answer;
  });
  Status s = vault().Write([](WriteTx& tx) -> Status {
    tx.WriteAhead("a\n");
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_a")));
    return tx.InsertSubject(Subject("sub_a"));  // conflict
  });
  EXPECT_EQ(s.code(), Code::kConflict);
  EXPECT_TRUE(out.empty());
  int runs = 0;
  s = vault().WriteRerunnable([&](WriteTx& tx) -> Status {
    tx.WriteAhead("b" + std::to_string(++runs) + "\n");
    tx.WriteAhead("b\n");
    return tx.InsertSubject(Subject("sub_b"));
  });
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(out, std::vector<std::string>{"b" + std::to_string(runs) + "\nb\n"});
  Write(vault(), [](WriteTx& tx) { return tx.InsertSubject(Subject("sub_none")); });
  EXPECT_EQ(out.size(), 1u);  // no lines, no call
  answer = Unavailable("the log's disk is gone");
  int hooks = 0;
  s = vault().Write([&](WriteTx& tx) -> Status {
    tx.WriteAhead("c\n");
    tx.AfterCommit([&] { ++hooks; });
    return tx.InsertSubject(Subject("sub_c"));
  });
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(out.back(), "c\n");
  EXPECT_EQ(hooks, 0);
  EXPECT_FALSE(Get<std::optional<SubjectRow>>(vault(), [](ReadTx& tx) {
                 return tx.GetSubject("sub_c");
               }).has_value());
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountSubjects(); }), 2);
  vault().SetWriteAhead(nullptr);
}

TEST_P(StoreConformance, ApiKeysAreFoundByHashRevokedOnceAndRehashedByCompareAndSet) {
  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(
        tx.InsertApiKey({"key_b", "crm", "operator", {"a", "b"}, Bytes{2}, 5, 0, 1}));
    return tx.InsertApiKey({"key_a", "officer", "officer", {}, Bytes{1}, 5, 0, 1});
  });
  EXPECT_EQ(vault()
                .Write([](WriteTx& tx) {
                  return tx.InsertApiKey({"key_c", "dup", "admin", {}, Bytes{1}, 6, 0, 1});
                })
                .code(),
            Code::kConflict);
  auto list = Get<std::vector<ApiKeyRow>>(vault(), [](ReadTx& tx) { return tx.ListApiKeys(); });
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, "key_a");
  EXPECT_EQ(list[1].activities, (std::vector<std::string>{"a", "b"}));
  auto found = Get<std::optional<ApiKeyRow>>(
      vault(), [](ReadTx& tx) { return tx.FindApiKeyByHash(Bytes{2}); });
  ASSERT_TRUE(found);
  EXPECT_EQ(found->name, "crm");
  Write(vault(), [](WriteTx& tx) { return tx.RevokeApiKey("key_b", 9); });
  EXPECT_EQ(vault().Write([](WriteTx& tx) { return tx.RevokeApiKey("key_b", 10); }).code(),
            Code::kNotFound);
  EXPECT_EQ(vault().Write([](WriteTx& tx) { return tx.RevokeApiKey("key_x", 10); }).code(),
            Code::kNotFound);
  std::vector<bool> swapped;
  Write(vault(), [&](WriteTx& tx) -> Status {
    for (const Bytes& from : {Bytes{1}, Bytes{1}}) {
      auto r = tx.RehashApiKey("key_a", from, Bytes{3}, 2);
      if (!r.ok()) return r.status();
      swapped.push_back(r.value());
    }
    return Status::Ok();
  });
  EXPECT_EQ(swapped, (std::vector<bool>{true, false}));
  found = Get<std::optional<ApiKeyRow>>(vault(),
                                        [](ReadTx& tx) { return tx.FindApiKeyByHash(Bytes{3}); });
  ASSERT_TRUE(found);
  EXPECT_EQ(found->hash_master, 2u);
  EXPECT_EQ(Get<std::optional<ApiKeyRow>>(vault(),
                                          [](ReadTx& tx) { return tx.FindApiKeyByHash(Bytes{2}); })
                ->revoked_at,
            9);
}

TEST_P(StoreConformance, ConsoleSessionsAreKeptByCookieHashReplacedAndExpired) {
  const ConsoleSessionRow a{
      Bytes(32, 1), "key_a", "officer", "compliance marketing", "c1", "csrf_a", "fr", 100, 150};
  ConsoleSessionRow b{Bytes(32, 2), "key_b", "admin", "", "", "csrf_b", "en", 120, 125};
  Write(vault(), [&](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.PutConsoleSession(a));
    return tx.PutConsoleSession(b);
  });
  auto get = [&](const Bytes& hash) {
    return Get<std::optional<ConsoleSessionRow>>(
        vault(), [&](ReadTx& tx) { return tx.GetConsoleSession(hash); });
  };
  EXPECT_EQ(get(a.cookie_hash), a);
  EXPECT_EQ(get(b.cookie_hash), b);
  EXPECT_FALSE(get(Bytes(32, 3)).has_value());
  b.last_seen = 200;
  b.lang = "fr";
  Write(vault(), [&](WriteTx& tx) { return tx.PutConsoleSession(b); });  // replaces
  EXPECT_EQ(get(b.cookie_hash), b);
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountConsoleSessions(); }), 2);
  // Idle since before 151 (a, last seen at 150), or signed in before 100 (none).
  Write(vault(), [](WriteTx& tx) { return tx.DeleteExpiredConsoleSessions(151, 100); });
  EXPECT_FALSE(get(a.cookie_hash).has_value());
  EXPECT_EQ(get(b.cookie_hash), b);
  // Signed in before 121 (b, at 120).
  Write(vault(), [](WriteTx& tx) { return tx.DeleteExpiredConsoleSessions(0, 121); });
  EXPECT_FALSE(get(b.cookie_hash).has_value());
  Write(vault(), [&](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.PutConsoleSession(a));
    GARDE_RETURN_IF_ERROR(tx.DeleteConsoleSession(a.cookie_hash));
    return tx.DeleteConsoleSession(Bytes(32, 9));  // none: not an error
  });
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountConsoleSessions(); }), 0);
}

TEST_P(StoreConformance, ConsentEventsKeepTheirOrderAndSuppressionFindsContacts) {
  Write(vault(), [](WriteTx& tx) -> Status {
    for (const char* id : {"sub_a", "sub_b", "sub_c"})
      GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(id)));
    GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(Event("con_3", "sub_a", "withdrawn", 20)));
    GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(Event("con_1", "sub_a", "granted", 10)));
    GARDE_RETURN_IF_ERROR(
        tx.InsertConsentEvent(Event("con_2", "sub_a", "objected", 20, "analytics")));
    GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(Event("con_4", "sub_b", "granted", 5)));
    GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(Event("con_5", "sub_c", "granted", 5)));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_a", {"~email", Bytes{1}, 0}));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_a", {"~phone", Bytes{2}, 0}));
    GARDE_RETURN_IF_ERROR(tx.PutIndex("sub_c", {"~email", Bytes{1}, 0}));
    return tx.PutSuppression("email", Bytes{1}, "unsubscribed", 30);
  });
  EXPECT_EQ(vault()
                .Write([](WriteTx& tx) {
                  return tx.InsertConsentEvent(Event("con_1", "sub_b", "granted", 1));
                })
                .code(),
            Code::kConflict);
  auto events = Get<std::vector<ConsentEventRow>>(
      vault(), [](ReadTx& tx) { return tx.ConsentEventsOf("sub_a"); });
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].id, "con_1");
  EXPECT_EQ(events[1].id, "con_3");  // same time: in the order recorded
  EXPECT_EQ(events[2].id, "con_2");
  EXPECT_EQ(events[0], Event("con_1", "sub_a", "granted", 10));
  auto facts = Get<std::vector<ConsentFactRow>>(
      vault(), [](ReadTx& tx) { return tx.ConsentFactsOf("sub_a"); });
  EXPECT_EQ(facts, (std::vector<ConsentFactRow>{{"marketing.email", "email", "granted", 10, 0},
                                                {"marketing.email", "email", "withdrawn", 20, 0},
                                                {"analytics", "email", "objected", 20, 0}}));
  std::vector<std::string> scanned;
  ASSERT_TRUE(vault()
                  .Read([&](ReadTx& tx) {
                    return tx.ScanConsentFacts("sub_a", "sub_b",
                                               [&](std::string_view s, ConsentFactRow&& f) {
                                                 scanned.push_back(std::string(s) + ":" + f.event);
                                               });
                  })
                  .ok());
  EXPECT_EQ(scanned, (std::vector<std::string>{"sub_a:granted", "sub_a:withdrawn", "sub_a:objected",
                                               "sub_b:granted"}));
  EXPECT_EQ(Get<std::vector<std::string>>(
                vault(), [](ReadTx& tx) { return tx.ObjectedPurposesOf("sub_a"); }),
            std::vector<std::string>{"analytics"});
  EXPECT_TRUE(Get<bool>(vault(), [](ReadTx& tx) { return tx.IsSuppressed("email", Bytes{1}); }));
  EXPECT_FALSE(Get<bool>(vault(), [](ReadTx& tx) { return tx.IsSuppressed("phone", Bytes{2}); }));
  EXPECT_EQ(Get<std::vector<std::string>>(
                vault(), [](ReadTx& tx) { return tx.SuppressedContactsOf("sub_a"); }),
            std::vector<std::string>{"email"});
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(Get<Pairs>(vault(), [](ReadTx& tx) { return tx.SuppressedContactsIn("", ""); }),
            (Pairs{{"sub_a", "email"}, {"sub_c", "email"}}));
  EXPECT_EQ(
      Get<Pairs>(vault(), [](ReadTx& tx) { return tx.SuppressedContactsIn("sub_b", "sub_c"); }),
      Pairs{});

  ConsentConfirmationRow pending;
  pending.id = "cnf_2";
  pending.subject_id = "sub_a";
  pending.status = "pending";
  pending.requested_at = 9;
  ConsentConfirmationRow earlier = pending;
  earlier.id = "cnf_1";
  earlier.requested_at = 8;
  Write(vault(), [&](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.PutConsentConfirmation(pending));
    return tx.PutConsentConfirmation(earlier);
  });
  auto waiting = Get<std::vector<ConsentConfirmationRow>>(
      vault(), [](ReadTx& tx) { return tx.PendingConfirmationsOf("sub_a"); });
  ASSERT_EQ(waiting.size(), 2u);
  EXPECT_EQ(waiting[0].id, "cnf_1");
  earlier.status = "confirmed";
  Write(vault(), [&](WriteTx& tx) { return tx.PutConsentConfirmation(earlier); });
  EXPECT_EQ(Get<std::vector<ConsentConfirmationRow>>(
                vault(), [](ReadTx& tx) { return tx.PendingConfirmationsOf("sub_a"); })
                .size(),
            1u);
  EXPECT_EQ(Get<std::optional<ConsentConfirmationRow>>(
                vault(), [](ReadTx& tx) { return tx.GetConsentConfirmation("cnf_1"); }),
            earlier);
  Write(vault(), [](WriteTx& tx) { return tx.DeleteConsentEventsOf("sub_a"); });
  EXPECT_TRUE(Get<std::vector<ConsentEventRow>>(vault(), [](ReadTx& tx) {
                return tx.ConsentEventsOf("sub_a");
              }).empty());
  EXPECT_FALSE(Get<std::optional<ConsentConfirmationRow>>(
      vault(), [](ReadTx& tx) { return tx.GetConsentConfirmation("cnf_1"); }));
  // Its event ids are free again.
  Write(vault(),
        [](WriteTx& tx) { return tx.InsertConsentEvent(Event("con_1", "sub_b", "granted", 1)); });
}

TEST_P(StoreConformance, RequestsAreQueuedByDueDateAndPagedWithoutTheirPackages) {
  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertRequest(Request("req_c", "sub_a", 30)));
    GARDE_RETURN_IF_ERROR(tx.InsertRequest(Request("req_b", "sub_a", 10)));
    GARDE_RETURN_IF_ERROR(tx.InsertRequest(Request("req_a", "sub_b", 30, "completed")));
    RequestRow erasure = Request("req_d", "sub_b", 20);
    erasure.type = "erasure";
    return tx.InsertRequest(erasure);
  });
  EXPECT_EQ(vault()
                .Write([](WriteTx& tx) { return tx.InsertRequest(Request("req_a", "sub_c", 1)); })
                .code(),
            Code::kConflict);
  RequestRow done = Request("req_b", "sub_a", 10, "completed");
  done.package = Bytes(100, 7);
  done.result = R"({"fields":2})";
  done.extended = true;
  done.subject_id = "sub_zz";  // not updated
  Write(vault(), [&](WriteTx& tx) { return tx.UpdateRequest(done); });
  EXPECT_EQ(
      vault().Write([](WriteTx& tx) { return tx.UpdateRequest(Request("req_x", "s", 1)); }).code(),
      Code::kNotFound);
  auto got =
      Get<std::optional<RequestRow>>(vault(), [](ReadTx& tx) { return tx.GetRequest("req_b"); });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->package, Bytes(100, 7));
  EXPECT_EQ(got->package_bytes, 100);
  EXPECT_EQ(got->subject_id, "sub_a");
  EXPECT_TRUE(got->extended);

  auto ids = [](const std::vector<RequestRow>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.id);
    return out;
  };
  auto all = Get<std::vector<RequestRow>>(vault(), [](ReadTx& tx) { return tx.QueryRequests({}); });
  EXPECT_EQ(ids(all), (std::vector<std::string>{"req_b", "req_d", "req_a", "req_c"}));
  EXPECT_TRUE(all[0].package.empty());
  EXPECT_EQ(all[0].package_bytes, 100);
  RequestQuery open;
  open.statuses = {"received"};
  EXPECT_EQ(ids(Get<std::vector<RequestRow>>(vault(),
                                             [&](ReadTx& tx) { return tx.QueryRequests(open); })),
            (std::vector<std::string>{"req_d", "req_c"}));
  RequestQuery page;
  page.after = std::make_pair(int64_t{30}, std::string("req_a"));
  EXPECT_EQ(ids(Get<std::vector<RequestRow>>(vault(),
                                             [&](ReadTx& tx) { return tx.QueryRequests(page); })),
            std::vector<std::string>{"req_c"});
  RequestQuery narrow;
  narrow.subject = "sub_b";
  narrow.type = "erasure";
  narrow.due_before = 21;
  narrow.limit = 5;
  EXPECT_EQ(ids(Get<std::vector<RequestRow>>(vault(),
                                             [&](ReadTx& tx) { return tx.QueryRequests(narrow); })),
            std::vector<std::string>{"req_d"});
  auto counts = Get<std::pair<int64_t, int64_t>>(
      vault(), [](ReadTx& tx) { return tx.CountOpenRequests(25); });
  EXPECT_EQ(counts, std::make_pair(int64_t{2}, int64_t{1}));

  Write(vault(),
        [](WriteTx& tx) { return tx.ReassignRequest("req_c", "sub_b", Bytes{4}, Bytes{5}); });
  EXPECT_EQ(
      vault().Write([](WriteTx& tx) { return tx.ReassignRequest("req_x", "s", {}, {}); }).code(),
      Code::kNotFound);
  got = Get<std::optional<RequestRow>>(vault(), [](ReadTx& tx) { return tx.GetRequest("req_c"); });
  EXPECT_EQ(got->subject_id, "sub_b");
  EXPECT_EQ(got->sealed, Bytes{4});

  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertTombstone({"sub_b", "req_x", 50, {}}));
    GARDE_RETURN_IF_ERROR(tx.InsertTombstone({"sub_a", "req_y", 40, {"invoice", "name"}}));
    return tx.InsertTombstone({"sub_b", "req_z", 60, {}});  // replaces
  });
  auto stones =
      Get<std::vector<TombstoneRow>>(vault(), [](ReadTx& tx) { return tx.ListTombstones(0); });
  EXPECT_EQ(stones, (std::vector<TombstoneRow>{{"sub_a", "req_y", 40, {"invoice", "name"}},
                                               {"sub_b", "req_z", 60, {}}}));
  EXPECT_EQ(
      Get<std::vector<TombstoneRow>>(vault(), [](ReadTx& tx) { return tx.ListTombstones(45); })
          .size(),
      1u);

  // How far each node's tombstones.log is applied: one mark per log, replaced in place.
  auto mark_of = [&](const std::string& log) {
    return Get<std::optional<TombstoneLogMark>>(
        vault(), [&](ReadTx& tx) { return tx.GetTombstoneLogMark(log); });
  };
  EXPECT_EQ(mark_of("log_a"), std::nullopt);
  const TombstoneLogMark a{"log_a", 120, Bytes(32, 7)}, b{"log_b", 40, Bytes(32, 0)};
  Write(vault(), [&](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.PutTombstoneLogMark({"log_a", 60, Bytes(32, 1)}));
    GARDE_RETURN_IF_ERROR(tx.PutTombstoneLogMark(b));
    return tx.PutTombstoneLogMark(a);  // replaces
  });
  EXPECT_EQ(mark_of("log_a"), a);
  EXPECT_EQ(mark_of("log_b"), b);
  EXPECT_EQ(mark_of("log_c"), std::nullopt);
}

TEST_P(StoreConformance, MergesLinksSegmentsIncidentsImportsPoliciesRuns) {
  MergeRow m1{"mrg_1", "sub_b", "sub_a", "merged", "key_a", 10, 0, "{}", Bytes{1}};
  MergeRow m2{"mrg_2", "sub_b", "sub_c", "merged", "key_a", 20, 0, "{}", Bytes{2}};
  Write(vault(), [&](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.PutMerge(m1));
    GARDE_RETURN_IF_ERROR(tx.PutMerge(m2));
    MergeRow done = m1;
    done.state = "reverted";
    done.finished_at = 15;
    done.into_id = "sub_q";  // not updated
    return tx.PutMerge(done);
  });
  auto of = Get<std::vector<MergeRow>>(vault(), [](ReadTx& tx) { return tx.MergesOf("sub_b"); });
  ASSERT_EQ(of.size(), 2u);
  EXPECT_EQ(of[0].id, "mrg_2");
  EXPECT_EQ(of[1].state, "reverted");
  EXPECT_EQ(of[1].into_id, "sub_a");
  EXPECT_EQ(
      Get<std::vector<MergeRow>>(vault(), [](ReadTx& tx) { return tx.MergesInto("sub_c"); }).size(),
      1u);
  auto open =
      Get<std::vector<MergeRow>>(vault(), [](ReadTx& tx) { return tx.OpenMergesBefore(21, 10); });
  EXPECT_EQ(open, std::vector<MergeRow>{m2});
  EXPECT_TRUE(Get<std::vector<MergeRow>>(vault(), [](ReadTx& tx) {
                return tx.OpenMergesBefore(20, 10);
              }).empty());

  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.PutLink({"sub_org", "sub_p2", "buyer", 5}));
    GARDE_RETURN_IF_ERROR(tx.PutLink({"sub_org", "sub_p1", "accounting", 5}));
    GARDE_RETURN_IF_ERROR(tx.PutLink({"sub_org", "sub_p1", "buyer", 9}));  // role only
    return tx.PutLink({"sub_other", "sub_p1", "buyer", 3});
  });
  auto links =
      Get<std::vector<ContactLinkRow>>(vault(), [](ReadTx& tx) { return tx.LinksOf("sub_p1"); });
  EXPECT_EQ(links, (std::vector<ContactLinkRow>{{"sub_other", "sub_p1", "buyer", 3},
                                                {"sub_org", "sub_p1", "buyer", 5}}));
  bool deleted = false, again = true;
  Write(vault(), [&](WriteTx& tx) -> Status {
    deleted = tx.DeleteLink("sub_org", "sub_p2").value();
    again = tx.DeleteLink("sub_org", "sub_p2").value();
    return tx.DeleteLinksOf("sub_p1");
  });
  EXPECT_TRUE(deleted);
  EXPECT_FALSE(again);
  EXPECT_TRUE(Get<std::vector<ContactLinkRow>>(vault(), [](ReadTx& tx) {
                return tx.LinksOf("sub_org");
              }).empty());

  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.PutSegment({"women", "{}", "key_a", 1, 1}));
    GARDE_RETURN_IF_ERROR(tx.PutSegment({"big", "{}", "key_a", 2, 2}));
    return tx.PutSegment({"women", R"({"x":1})", "key_b", 3, 3});
  });
  auto segments =
      Get<std::vector<SegmentRow>>(vault(), [](ReadTx& tx) { return tx.ListSegments(); });
  EXPECT_EQ(segments, (std::vector<SegmentRow>{{"big", "{}", "key_a", 2, 2},
                                               {"women", R"({"x":1})", "key_a", 1, 3}}));

  IncidentRow late, early;
  late.id = "inc_a";
  late.status = "open";
  late.authority_due_at = 90;
  early = late;
  early.id = "inc_b";
  early.authority_due_at = 80;
  Write(vault(), [&](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.PutIncident(late));
    return tx.PutIncident(early);
  });
  auto incidents =
      Get<std::vector<IncidentRow>>(vault(), [](ReadTx& tx) { return tx.ListIncidents(); });
  EXPECT_EQ(incidents, (std::vector<IncidentRow>{early, late}));

  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertImportRow("imp_1", 2, "sub_a"));
    return tx.InsertImportRow("imp_1", 1, "sub_b");
  });
  EXPECT_EQ(
      vault().Write([](WriteTx& tx) { return tx.InsertImportRow("imp_1", 2, "sub_c"); }).code(),
      Code::kConflict);
  using Rows = std::map<int64_t, std::string>;
  EXPECT_EQ(Get<Rows>(vault(), [](ReadTx& tx) { return tx.ImportedRows("imp_1"); }),
            (Rows{{1, "sub_b"}, {2, "sub_a"}}));

  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertPolicyVersion({0, "h1", 1, "start", "{}"}));
    return tx.InsertPolicyVersion({0, "h2", 2, "api", "{}"});
  });
  auto versions = Get<std::vector<PolicyVersionRow>>(
      vault(), [](ReadTx& tx) { return tx.ListPolicyVersions(1); });
  EXPECT_EQ(versions, (std::vector<PolicyVersionRow>{{2, "h2", 2, "api", "{}"}}));

  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.PutRetentionRun({0, "ret_1", 1, 1, 0, true, "", "{}"}));
    GARDE_RETURN_IF_ERROR(tx.PutRetentionRun({0, "ret_2", 2, 2, 0, false, "", "{}"}));
    return tx.PutRetentionRun({0, "ret_1", 99, 99, 5, false, "sub_k", R"({"n":1})"});
  });
  auto runs = Get<std::vector<RetentionRunRow>>(
      vault(), [](ReadTx& tx) { return tx.ListRetentionRuns(0, 10); });
  EXPECT_EQ(runs,
            (std::vector<RetentionRunRow>{{2, "ret_2", 2, 2, 0, false, "", "{}"},
                                          {1, "ret_1", 1, 1, 5, true, "sub_k", R"({"n":1})"}}));
  EXPECT_EQ(Get<std::vector<RetentionRunRow>>(
                vault(), [](ReadTx& tx) { return tx.ListRetentionRuns(2, 10); })
                .size(),
            1u);
  EXPECT_EQ(Get<std::optional<RetentionRunRow>>(
                vault(), [](ReadTx& tx) { return tx.GetRetentionRun("ret_2"); })
                ->seq,
            2);
}

TEST_P(StoreConformance, InteractionsAndPurchasers) {
  std::vector<int64_t> seqs;
  Write(vault(), [&](WriteTx& tx) -> Status {
    for (const InteractionRow& r : {InteractionRow{"sub_b", "purchase", 20, Bytes{1}, 0},
                                    InteractionRow{"sub_a", "purchase", 10, Bytes{2}, 0},
                                    InteractionRow{"sub_a", "contact", 5, Bytes{}, 0},
                                    InteractionRow{"sub_c", "purchase", 40, Bytes{3}, 0}}) {
      auto seq = tx.InsertInteraction(r);
      if (!seq.ok()) return seq.status();
      seqs.push_back(seq.value());
    }
    return Status::Ok();
  });
  EXPECT_EQ(seqs, (std::vector<int64_t>{1, 2, 3, 4}));
  auto of = Get<std::vector<InteractionRow>>(
      vault(), [](ReadTx& tx) { return tx.InteractionsOf("sub_a", 0); });
  EXPECT_EQ(of, (std::vector<InteractionRow>{{"sub_a", "contact", 5, Bytes{}, 3},
                                             {"sub_a", "purchase", 10, Bytes{2}, 2}}));
  EXPECT_EQ(Get<std::vector<std::string>>(
                vault(), [](ReadTx& tx) { return tx.PurchasersBetween(10, 40, "", 10); }),
            (std::vector<std::string>{"sub_a", "sub_b"}));
  EXPECT_EQ(Get<std::vector<std::string>>(
                vault(), [](ReadTx& tx) { return tx.PurchasersBetween(0, 100, "sub_a", 1); }),
            std::vector<std::string>{"sub_b"});
  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.DeleteInteraction(2));
    return tx.DeleteInteractionsOf("sub_c");
  });
  EXPECT_EQ(Get<std::vector<InteractionRow>>(
                vault(), [](ReadTx& tx) { return tx.InteractionsOf("sub_a", 0); })
                .size(),
            1u);
  EXPECT_EQ(Get<std::vector<std::string>>(
                vault(), [](ReadTx& tx) { return tx.PurchasersBetween(0, 100, "", 10); }),
            std::vector<std::string>{"sub_b"});
}

TEST_P(StoreConformance, OutboxAndDeliveriesInOrderPerSubject) {
  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertOutbox({"evt_1", "a", "{}", 1}));
    return tx.InsertOutbox({"evt_2", "b", "{}", 2});
  });
  EXPECT_EQ(vault()
                .Write([](WriteTx& tx) {
                  return tx.InsertOutbox({"evt_1", "a", "{}", 3});
                })
                .code(),
            Code::kConflict);
  auto events =
      Get<std::vector<OutboxRow>>(vault(), [](ReadTx& tx) { return tx.ListOutbox(1, 10); });
  EXPECT_EQ(events, (std::vector<OutboxRow>{{"evt_2", "b", "{}", 2, 2}}));
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.WebhookMark("crm"); }), 0);
  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.SetWebhookMark("crm", 2));
    GARDE_RETURN_IF_ERROR(tx.InsertDelivery(Delivery("crm", "evt_1", "sub_a", 100)));  // 1
    GARDE_RETURN_IF_ERROR(
        tx.InsertDelivery(Delivery("crm", "evt_2", "sub_a", 0)));  // 2: waits for 1
    GARDE_RETURN_IF_ERROR(tx.InsertDelivery(Delivery("crm", "evt_3", "sub_b", 0)));   // 3
    GARDE_RETURN_IF_ERROR(tx.InsertDelivery(Delivery("crm", "evt_4", "", 0)));        // 4
    GARDE_RETURN_IF_ERROR(tx.InsertDelivery(Delivery("mail", "evt_2", "sub_a", 0)));  // 5
    return tx.InsertDelivery(Delivery("crm", "evt_3", "sub_b", 0));                   // ignored
  });
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.WebhookMark("crm"); }), 2);
  auto ids = [](const std::vector<DeliveryRow>& rows) {
    std::vector<int64_t> out;
    for (const auto& r : rows) out.push_back(r.id);
    return out;
  };
  EXPECT_EQ(ids(Get<std::vector<DeliveryRow>>(vault(),
                                              [](ReadTx& tx) { return tx.DueDeliveries(50, 10); })),
            (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(ids(Get<std::vector<DeliveryRow>>(vault(),
                                              [](ReadTx& tx) { return tx.DueDeliveries(100, 2); })),
            (std::vector<int64_t>{1, 3}));
  auto first =
      Get<std::optional<DeliveryRow>>(vault(), [](ReadTx& tx) { return tx.GetDelivery(1); });
  ASSERT_TRUE(first);
  DeliveryRow expected = Delivery("crm", "evt_1", "sub_a", 100);
  expected.id = 1;
  EXPECT_EQ(*first, expected);
  first->status = "delivered";
  first->attempts = 1;
  first->delivered_at = 60;
  first->last_error = "";
  Write(vault(), [&](WriteTx& tx) { return tx.UpdateDelivery(*first); });
  EXPECT_EQ(ids(Get<std::vector<DeliveryRow>>(vault(),
                                              [](ReadTx& tx) { return tx.DueDeliveries(50, 10); })),
            (std::vector<int64_t>{2, 3, 4, 5}));
  DeliveryQuery q;
  q.endpoint = "crm";
  q.status = "pending";
  q.after_id = 2;
  EXPECT_EQ(ids(Get<std::vector<DeliveryRow>>(vault(),
                                              [&](ReadTx& tx) { return tx.QueryDeliveries(q); })),
            (std::vector<int64_t>{3, 4}));
  using Counts = std::map<std::string, int64_t>;
  EXPECT_EQ(Get<Counts>(vault(), [](ReadTx& tx) { return tx.CountDeliveries(); }),
            (Counts{{"delivered", 1}, {"pending", 4}}));
}

TEST_P(StoreConformance, PendingAuditEntriesWaitInTheVault) {
  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertPendingAudit({0, 5, "sub_a", "a"}));
    GARDE_RETURN_IF_ERROR(tx.InsertPendingAudit({0, 6, "", "b"}));
    return tx.InsertPendingAudit({0, 7, "sub_b", "c"});
  });
  auto rows = Get<std::vector<PendingAuditRow>>(
      vault(), [](ReadTx& tx) { return tx.ListPendingAudit(1, 10); });
  EXPECT_EQ(rows, (std::vector<PendingAuditRow>{{2, 6, "", "b"}, {3, 7, "sub_b", "c"}}));
  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.DeletePendingAudit(2));
    // After a restore of an older vault, new ids stay above the last one logged.
    return tx.ReservePendingAuditIds(10);
  });
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountPendingAudit(); }), 1);
  Write(vault(), [](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.ReservePendingAuditIds(4));  // never backwards
    return tx.InsertPendingAudit({0, 8, "", "d"});
  });
  rows = Get<std::vector<PendingAuditRow>>(vault(),
                                           [](ReadTx& tx) { return tx.ListPendingAudit(0, 10); });
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].id, 11);
}

TEST_P(StoreConformance, TheAuditLogItsTreeAndCheckpoints) {
  auto entry = [](uint64_t seq, const std::string& actor, const std::string& action,
                  const std::string& time, const std::string& subject) {
    std::string subject_json = subject.empty() ? "null" : "\"" + subject + "\"";
    return AuditRow{seq,
                    R"({"v":1,"seq":)" + std::to_string(seq) + R"(,"time":")" + time +
                        R"(","actor":")" + actor + R"(","action":")" + action +
                        R"(","activity":"crm","subject":)" + subject_json + "}",
                    Bytes(32, static_cast<uint8_t>(seq)), subject};
  };
  const std::vector<AuditRow> rows = {
      entry(0, "key_a", "subject.read", "2026-01-01T00:00:00Z", "sub_a"),
      entry(1, "key_b", "subject.read", "2026-01-02T00:00:00Z", "sub_b"),
      entry(2, "key_a", "consent.check", "2026-01-03T00:00:00Z", ""),
      entry(3, "key_a", "subject.read", "2026-01-04T00:00:00Z", "sub_a")};
  Write(audit(), [&](WriteTx& tx) -> Status {
    for (const auto& r : rows) GARDE_RETURN_IF_ERROR(tx.InsertAuditEntry(r));
    GARDE_RETURN_IF_ERROR(tx.AppendAuditSubjectRun({{"sub_a", 0}, {"sub_b", 1}}));
    GARDE_RETURN_IF_ERROR(tx.AppendAuditSubjectRun({{"sub_a", 3}}));
    GARDE_RETURN_IF_ERROR(tx.InsertAuditNode(1, 0, Bytes(32, 0xaa)));
    GARDE_RETURN_IF_ERROR(tx.InsertCheckpoint({2, Bytes{1}, 10, "two"}));
    GARDE_RETURN_IF_ERROR(tx.InsertCheckpoint({4, Bytes{2}, 20, "four"}));
    GARDE_RETURN_IF_ERROR(tx.InsertCheckpoint({2, Bytes{9}, 30, "ignored"}));
    GARDE_RETURN_IF_ERROR(tx.SetAuditIntakeMark(42));
    GARDE_RETURN_IF_ERROR(tx.SetJournalImported("reads-1.log", 100));
    GARDE_RETURN_IF_ERROR(tx.SetJournalImported("reads-2.log", 5));
    return tx.ForgetJournal("reads-2.log");
  });
  EXPECT_EQ(audit().Write([&](WriteTx& tx) { return tx.InsertAuditEntry(rows[0]); }).code(),
            Code::kConflict);
  EXPECT_EQ(Get<uint64_t>(audit(), [](ReadTx& tx) { return tx.AuditSize(); }), 4u);
  EXPECT_EQ(Get<Bytes>(audit(), [](ReadTx& tx) { return tx.AuditNode(0, 2); }), Bytes(32, 2));
  EXPECT_EQ(Get<Bytes>(audit(), [](ReadTx& tx) { return tx.AuditNode(1, 0); }), Bytes(32, 0xaa));
  Status missing = audit().Read([](ReadTx& tx) { return tx.AuditNode(1, 1).status(); });
  EXPECT_EQ(missing.code(), Code::kNotFound);

  auto seqs = [&](const AuditQuery& q) {
    std::vector<uint64_t> out;
    for (const auto& r :
         Get<std::vector<AuditRow>>(audit(), [&](ReadTx& tx) { return tx.QueryAudit(q); })) {
      out.push_back(r.seq);
    }
    return out;
  };
  AuditQuery by_subject;
  by_subject.subject = "sub_a";
  EXPECT_EQ(seqs(by_subject), (std::vector<uint64_t>{0, 3}));
  by_subject.after_seq = 0;
  EXPECT_EQ(seqs(by_subject), std::vector<uint64_t>{3});
  AuditQuery by_actor;
  by_actor.actor = "key_a";
  by_actor.action = "subject.read";
  EXPECT_EQ(seqs(by_actor), (std::vector<uint64_t>{0, 3}));
  AuditQuery window;
  window.since = "2026-01-02T00:00:00Z";
  window.until = "2026-01-03T00:00:00Z";
  window.activity = "crm";
  EXPECT_EQ(seqs(window), (std::vector<uint64_t>{1, 2}));
  AuditQuery first_two;
  first_two.limit = 2;
  EXPECT_EQ(seqs(first_two), (std::vector<uint64_t>{0, 1}));
  std::vector<AuditRow> scanned;
  ASSERT_TRUE(audit()
                  .Read([&](ReadTx& tx) {
                    return tx.ScanAudit(1, UINT64_MAX, [&](const AuditRow& r) {
                      scanned.push_back(r);
                      return r.seq < 2;
                    });
                  })
                  .ok());
  EXPECT_EQ(scanned, (std::vector<AuditRow>{rows[1], rows[2]}));

  auto checkpoints =
      Get<std::vector<CheckpointRow>>(audit(), [](ReadTx& tx) { return tx.ListCheckpoints(); });
  EXPECT_EQ(checkpoints,
            (std::vector<CheckpointRow>{{2, Bytes{1}, 10, "two"}, {4, Bytes{2}, 20, "four"}}));
  EXPECT_EQ(
      Get<std::optional<CheckpointRow>>(audit(), [](ReadTx& tx) { return tx.LatestCheckpoint(); })
          ->note,
      "four");
  EXPECT_EQ(Get<int64_t>(audit(), [](ReadTx& tx) { return tx.AuditIntakeMark(); }), 42);
  EXPECT_EQ(Get<int64_t>(audit(), [](ReadTx& tx) { return tx.JournalImportedTo("reads-1.log"); }),
            100);
  EXPECT_EQ(Get<int64_t>(audit(), [](ReadTx& tx) { return tx.JournalImportedTo("reads-2.log"); }),
            0);
}

// An import pass writes thousands of audit rows in one transaction (PostgreSQL sends them as
// binary arrays, several statements' worth): every byte of every entry, hash, subject, node
// and actor comes back as written, and nothing is lost where one statement's rows end.
TEST_P(StoreConformance, AnImportPassOfThousandsOfAuditRowsKeepsEveryByte) {
  constexpr uint64_t kRows = 5000;  // more than one statement's worth on PostgreSQL
  std::vector<AuditRow> rows;
  for (uint64_t seq = 0; seq < kRows; ++seq) {
    AuditRow r;
    r.seq = seq;
    // Quotes, backslashes, braces, commas, non-ASCII text and an empty-looking "NULL".
    r.entry = R"({"seq":)" + std::to_string(seq) + R"(,"note":"a \"q\" \\ {x,y} NULL é 東"})";
    for (uint64_t i = 0; i < 32; ++i) {
      r.leaf_hash.push_back(static_cast<uint8_t>((seq * 7 + i) % 256));
    }
    if (seq % 3 != 0) r.subject = "sub_" + std::to_string(seq % 17);
    rows.push_back(std::move(r));
  }
  Write(audit(), [&](WriteTx& tx) -> Status {
    for (const auto& r : rows) {
      GARDE_RETURN_IF_ERROR(tx.InsertAuditEntry(r));
      const bool even = r.seq % 2 == 0;
      GARDE_RETURN_IF_ERROR(tx.InsertAuditActor(even ? "key \"even\"" : "key_odd", r.seq));
      if (!even) {
        const Bytes node(32, static_cast<uint8_t>(r.seq));
        GARDE_RETURN_IF_ERROR(tx.InsertAuditNode(1, r.seq / 2, node));
      }
    }
    return Status::Ok();
  });
  std::vector<AuditRow> scanned;
  ASSERT_TRUE(audit()
                  .Read([&](ReadTx& tx) {
                    return tx.ScanAudit(0, UINT64_MAX, [&](const AuditRow& r) {
                      scanned.push_back(r);
                      return true;
                    });
                  })
                  .ok());
  EXPECT_EQ(scanned, rows);
  EXPECT_EQ(Get<Bytes>(audit(), [](ReadTx& tx) { return tx.AuditNode(1, 2499); }),
            Bytes(32, static_cast<uint8_t>(4999)));
  const auto odd = Get<std::vector<uint64_t>>(
      audit(), [](ReadTx& tx) { return tx.AuditSeqsOfActor("key_odd", UINT64_MAX); });
  ASSERT_EQ(odd.size(), kRows / 2);
  EXPECT_EQ(odd.back(), kRows - 1);
  EXPECT_EQ(Get<std::vector<uint64_t>>(
                audit(), [](ReadTx& tx) { return tx.AuditSeqsOfActor("key \"even\"", 5); }),
            (std::vector<uint64_t>{0, 2, 4}));
}

// ---- Two processes (or nodes) on one database ----

// Another vault store on the database of `pair`, as a second process or node opens it.
std::unique_ptr<Store> OpenAnother(const std::string& backend, const std::filesystem::path& dir,
                                   const StorePair& pair, bool strict_reads = false) {
  if (backend == "postgresql") {
    PostgresOptions options{pair.uri, false, 2};
    options.strict_reads = strict_reads;
    auto v = PostgresStore::Open(options);
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() ? std::unique_ptr<Store>(std::move(v).value()) : nullptr;
  }
  SqliteOptions o;
  o.path = (dir / "garde.db").string();
  o.synchronous_full = false;
  auto v = SqliteStore::Open(o);
  EXPECT_TRUE(v.ok());
  return v.ok() ? std::unique_ptr<Store>(std::move(v).value()) : nullptr;
}

class SharedDatabase : public StoreConformance {};

std::vector<std::string> SharedBackends() {
  std::vector<std::string> out = {"sqlite"};
  if (!testing::TestPostgresHost().empty()) out.push_back("postgresql");
  return out;
}

INSTANTIATE_TEST_SUITE_P(Backends, SharedDatabase, ::testing::ValuesIn(SharedBackends()),
                         [](const auto& param_info) { return param_info.param; });

// What keeps another node's in-memory views current: its ChangeEpoch moves within a second of a
// commit made elsewhere, and the change log names the subject.
TEST_P(SharedDatabase, AnotherNodeSeesACommitWithinASecond) {
  auto other = OpenAnother(GetParam(), dir_, stores_);
  ASSERT_TRUE(other);
  Write(vault(), [](WriteTx& tx) { return tx.InsertSubject(Subject("sub_a")); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its listener is connected
  const uint64_t before = other->ChangeEpoch();
  const int64_t seen =
      Get<ChangeTail>(*other, [](ReadTx& tx) { return tx.ChangesAfter(0, 100); }).last_seq;
  Write(vault(),
        [](WriteTx& tx) { return tx.InsertConsentEvent(Event("con_1", "sub_a", "withdrawn", 5)); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  uint64_t now = other->ChangeEpoch();
  while (now == before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    now = other->ChangeEpoch();
  }
  EXPECT_NE(now, before) << "the other node never heard of the commit";
  auto tail = Get<ChangeTail>(*other, [&](ReadTx& tx) { return tx.ChangesAfter(seen, 100); });
  EXPECT_TRUE(tail.complete);
  EXPECT_EQ(tail.changes, (std::vector<std::pair<int64_t, std::string>>{{seen + 1, "sub_a"}}));
  // Nothing committed: the epoch stays (a node does not re-read its views for nothing).
  if (GetParam() == "postgresql") {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const uint64_t quiet = other->ChangeEpoch();
    EXPECT_EQ(other->ChangeEpoch(), quiet);
  }
}

// Strict reads (read_consistency = strict, PostgreSQL's default): the epoch moves at the very
// next call after another node's commit, and so does the key epoch after a revocation — no
// waiting for a notification. (SQLite's shared WAL index gives the same.)
TEST_P(SharedDatabase, WithStrictReadsAnotherNodesCommitShowsAtOnce) {
  auto other = OpenAnother(GetParam(), dir_, stores_, /*strict_reads=*/true);
  ASSERT_TRUE(other);
  Write(vault(), [](WriteTx& tx) { return tx.InsertSubject(Subject("sub_a")); });
  Write(vault(), [](WriteTx& tx) {
    return tx.InsertApiKey({"key_a", "n", "admin", {}, Bytes{1}, 1, 0, 1});
  });
  for (int i = 0; i < 20; ++i) {
    const uint64_t before = other->ChangeEpoch();
    EXPECT_EQ(other->ChangeEpoch(), before);  // nothing committed: it stays
    Write(vault(), [&](WriteTx& tx) {
      return tx.InsertConsentEvent(Event("con_" + std::to_string(i), "sub_a", "granted", i));
    });
    EXPECT_NE(other->ChangeEpoch(), before) << "step " << i;
  }
  if (GetParam() == "postgresql") {
    const uint64_t keys = other->KeysEpoch();
    EXPECT_EQ(other->KeysEpoch(), keys);
    Write(vault(), [](WriteTx& tx) { return tx.RevokeApiKey("key_a", 9); });
    EXPECT_NE(other->KeysEpoch(), keys) << "a revocation elsewhere went unseen";
  }
}

// Strict reads under concurrency: many callers share each query for the counters, and every
// one of them still sees each commit that ended before it asked (a caller that arrives while
// a query runs waits for the next). PostgreSQL's epoch is the change log's counter, one step
// per change (SQLite's moves without counting: this suite is PostgreSQL's alone).
class StrictCounters : public SharedDatabase {
 protected:
  // A second store with strict reads, and a subject whose changes the tests count.
  void OpenStrict() {
    other_ = OpenAnother(GetParam(), dir_, stores_, /*strict_reads=*/true);
    ASSERT_TRUE(other_);
    Write(vault(), [](WriteTx& tx) { return tx.InsertSubject(Subject("sub_a")); });
    base_ = other_->ChangeEpoch();
  }
  // Commits 1 000 changes to sub_a, counting them in committed_ as each ends, while `readers`
  // run; then tells them it is done_ and waits for them.
  void CommitWhileReading(std::vector<std::thread>& readers) {
    for (int i = 0; i < 1000; ++i) {
      Write(vault(), [&](WriteTx& tx) {
        return tx.InsertConsentEvent(Event("con_" + std::to_string(i), "sub_a", "granted", i));
      });
      committed_.store(static_cast<uint64_t>(i) + 1);
    }
    done_.store(true);
    for (auto& t : readers) t.join();
  }

  std::unique_ptr<Store> other_;
  uint64_t base_ = 0;
  std::atomic<uint64_t> committed_{0};
  std::atomic<bool> done_{false};
};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StrictCounters);  // without a PostgreSQL server

std::vector<std::string> CountingBackends() {
  std::vector<std::string> out = SharedBackends();
  out.erase(std::remove(out.begin(), out.end(), "sqlite"), out.end());
  return out;
}

INSTANTIATE_TEST_SUITE_P(Backends, StrictCounters, ::testing::ValuesIn(CountingBackends()),
                         [](const auto& param_info) { return param_info.param; });

TEST_P(StrictCounters, EveryConcurrentCallerSeesEveryEarlierCommit) {
  ASSERT_NO_FATAL_FAILURE(OpenStrict());
  std::atomic<int> stale{0}, asked{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 16; ++r) {
    readers.emplace_back([&] {
      while (!done_.load()) {
        const uint64_t before = committed_.load();
        if (other_->ChangeEpoch() < base_ + before) ++stale;
        ++asked;
      }
    });
  }
  CommitWhileReading(readers);
  EXPECT_EQ(stale.load(), 0) << "of " << asked.load() << " calls";
  EXPECT_GT(asked.load(), 1000);
  EXPECT_EQ(other_->ChangeEpoch(), base_ + 1000);
}

// The same without a thread waiting: each WhenFresh calls back once a query begun after it has
// answered, and a read scope opened with its ticket sees every commit that ended before the
// call — without asking again (many callers outstanding at once, from few threads).
TEST_P(StrictCounters, EveryCallBackSeesEveryEarlierCommit) {
  ASSERT_NO_FATAL_FAILURE(OpenStrict());
  std::atomic<int> stale{0}, called{0}, asked{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&] {
      while (!done_.load()) {
        // Eight calls outstanding at once, then each answered in its own scope.
        struct Call {
          uint64_t before, ticket;
          std::future<void> back;
        };
        std::vector<Call> calls;
        for (int k = 0; k < 8; ++k) {
          const uint64_t before = committed_.load();
          auto answered = std::make_shared<std::promise<void>>();
          std::future<void> back = answered->get_future();
          const uint64_t ticket = other_->WhenFresh([answered, &called] {
            ++called;
            answered->set_value();
          });
          ++asked;
          calls.push_back({before, ticket, std::move(back)});
        }
        for (Call& call : calls) {
          if (call.ticket == 0 ||
              call.back.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
            ++stale;  // no ticket, or never called back
            continue;
          }
          const ReadScope scope(other_.get(), call.ticket);
          if (other_->ChangeEpoch() < base_ + call.before) ++stale;
        }
      }
    });
  }
  CommitWhileReading(readers);
  EXPECT_EQ(stale.load(), 0) << "of " << asked.load() << " calls";
  EXPECT_EQ(called.load(), asked.load());
  EXPECT_GT(asked.load(), 1000);
  // A store that closes calls back whoever still waits (their reads then go to the database).
  std::atomic<int> last{0};
  for (int k = 0; k < 100; ++k) EXPECT_NE(other_->WhenFresh([&last] { ++last; }), 0u);
  other_.reset();
  EXPECT_EQ(last.load(), 100);
}

// Reads that never wait say so: nothing is called back.
TEST_P(SharedDatabase, WithoutStrictReadsNothingWaitsForFreshness) {
  bool called = false;
  EXPECT_EQ(vault().WhenFresh([&called] { called = true; }), 0u);
  auto eventual = OpenAnother(GetParam(), dir_, stores_, /*strict_reads=*/false);
  ASSERT_TRUE(eventual);
  EXPECT_EQ(eventual->WhenFresh([&called] { called = true; }), 0u);
  EXPECT_FALSE(called);
}

// AskPeers: every other open store's handler has run when it returns; a store that was
// closed is not waited for. One process alone (SQLite) has no one to ask.
TEST_P(SharedDatabase, AskPeersReturnsOnceEveryOtherNodeHasAnswered) {
  auto b = OpenAnother(GetParam(), dir_, stores_);
  auto c = OpenAnother(GetParam(), dir_, stores_);
  ASSERT_TRUE(b && c);
  std::atomic<int> b_flushed{0}, c_reloaded{0};
  b->OnPeerAsk([&](PeerEvent e) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a slow answer is waited for
    if (e == PeerEvent::kAuditFlush) ++b_flushed;
  });
  c->OnPeerAsk([&](PeerEvent e) {
    if (e == PeerEvent::kPoliciesReloaded) ++c_reloaded;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // their listeners are connected
  EXPECT_TRUE(vault().AskPeers(PeerEvent::kAuditFlush, std::chrono::seconds(5)).ok());
  EXPECT_TRUE(vault().AskPeers(PeerEvent::kPoliciesReloaded, std::chrono::seconds(5)).ok());
  const int expected = GetParam() == "postgresql" ? 1 : 0;
  EXPECT_EQ(b_flushed.load(), expected);
  EXPECT_EQ(c_reloaded.load(), expected);
  // A node gone (its session ended) is not asked.
  c.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(vault().AskPeers(PeerEvent::kAuditFlush, std::chrono::seconds(5)).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(b_flushed.load(), 2 * expected);
  b->OnPeerAsk(nullptr);
}

// ---- Group commit: many writes in one transaction, each failing alone ----

// Makes the database itself refuse a sealed field named "poison" (a trigger), the kind of
// failure only the server can report: on PostgreSQL it aborts the statements pipelined after it.
void PlantRefusal(const std::string& backend, const std::filesystem::path& dir,
                  const std::string& uri) {
  if (backend == "postgresql") {
    PGconn* c = PQconnectdb(uri.c_str());
    PGresult* res =
        PQexec(c,
               "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS "
               "$$ BEGIN RAISE EXCEPTION 'refused'; END $$; "
               "CREATE TRIGGER refuse_poison BEFORE INSERT ON subject_fields FOR EACH ROW "
               "WHEN (NEW.field = 'poison') EXECUTE FUNCTION refuse_poison()");
    EXPECT_EQ(PQresultStatus(res), PGRES_COMMAND_OK) << PQerrorMessage(c);
    PQclear(res);
    PQfinish(c);
    return;
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "garde.db").c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db,
                         "CREATE TRIGGER refuse_poison BEFORE INSERT ON subject_fields "
                         "WHEN NEW.field = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
}

class GroupCommit : public StoreConformance {
 protected:
  static Bytes Digest(int round, int i) {
    return Bytes{9, static_cast<uint8_t>(round), static_cast<uint8_t>(i)};
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, GroupCommit, ::testing::ValuesIn(SharedBackends()),
                         [](const auto& param_info) { return param_info.param; });

// Writes from many threads at once share transactions (and, on PostgreSQL, a pipeline whose
// statements are not waited for one by one). Whatever way a write fails — the database refusing
// a statement, with reads after it or none; a row that already exists, with reads after it or
// none — it fails alone, leaves nothing, runs no hooks and writes no line ahead, and every other
// write of its batch keeps all it wrote, reads its own writes and has its line written once.
TEST_P(GroupCommit, EachWriteOfABatchSucceedsOrFailsAlone) {
  PlantRefusal(GetParam(), dir_, stores_.uri);
  std::mutex ahead_mu;
  std::multiset<std::string> ahead;  // the lines handed over, one per write that succeeded
  vault().SetWriteAhead([&](const std::string& lines) {
    std::lock_guard<std::mutex> lock(ahead_mu);
    for (size_t at = 0; at < lines.size();) {
      const size_t end = lines.find('\n', at);
      ahead.insert(lines.substr(at, end - at));
      at = end + 1;
    }
    return Status::Ok();
  });
  Write(vault(), [](WriteTx& tx) { return tx.InsertSubject(Subject("sub_taken")); });
  constexpr int kRounds = 6, kWriters = 36;
  int expected_pending = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<Status> results(kWriters);
    std::vector<int> hooks(kWriters, 0);
    std::vector<std::thread> threads;
    std::atomic<int> ready{0};
    for (int i = 0; i < kWriters; ++i) {
      threads.emplace_back([&, i] {
        const std::string id = "sub_" + std::to_string(round) + "_" + std::to_string(i);
        ready.fetch_add(1);
        while (ready.load() < kWriters) std::this_thread::yield();
        results[static_cast<size_t>(i)] = vault().Write([&, i](WriteTx& tx) -> Status {
          const int kind = i % 6;
          tx.WriteAhead(id + "\n");
          GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(id)));
          GARDE_RETURN_IF_ERROR(tx.PutField(id, {"email", Bytes{1, 2}}));
          if (kind == 0 || kind == 1) {
            GARDE_RETURN_IF_ERROR(tx.PutField(id, {"poison", Bytes{3}}));
          }
          if (kind == 2 || kind == 3) GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_taken")));
          if (kind == 1 || kind == 2) return Status::Ok();  // the failure is the last statement
          auto own = tx.GetSubject(id);  // reads its own write, and what was sent before it
          if (!own.ok()) return own.status();
          if (!own.value()) return Internal("a write does not see its own subject");
          GARDE_RETURN_IF_ERROR(tx.PutIndex(id, {"email", Digest(round, i), 1}));
          GARDE_RETURN_IF_ERROR(tx.InsertPendingAudit({0, 1, id, "x"}));
          tx.AfterCommit([&hooks, i] { ++hooks[static_cast<size_t>(i)]; });
          return Status::Ok();
        });
      });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < kWriters; ++i) {
      const std::string id = "sub_" + std::to_string(round) + "_" + std::to_string(i);
      const int kind = i % 6;
      const Status& s = results[static_cast<size_t>(i)];
      SCOPED_TRACE(id);
      auto subject =
          Get<std::optional<SubjectRow>>(vault(), [&](ReadTx& tx) { return tx.GetSubject(id); });
      auto fields =
          Get<std::vector<SealedField>>(vault(), [&](ReadTx& tx) { return tx.GetFields(id); });
      if (kind < 4) {
        EXPECT_FALSE(s.ok());
        if (kind >= 2) {
          EXPECT_EQ(s.code(), Code::kConflict) << s.message();
        }
        EXPECT_FALSE(subject.has_value());
        EXPECT_TRUE(fields.empty());
        EXPECT_EQ(hooks[static_cast<size_t>(i)], 0);
        EXPECT_EQ(ahead.count(id), 0u);
      } else {
        EXPECT_TRUE(s.ok()) << s.message();
        EXPECT_TRUE(subject.has_value());
        ASSERT_EQ(fields.size(), 1u);
        EXPECT_EQ(fields[0].field, "email");
        EXPECT_EQ(
            Get<std::vector<std::string>>(
                vault(), [&](ReadTx& tx) { return tx.FindByIndex("email", Digest(round, i)); }),
            std::vector<std::string>{id});
        EXPECT_EQ(hooks[static_cast<size_t>(i)], 1);
        EXPECT_EQ(ahead.count(id), 1u);
        ++expected_pending;
      }
    }
  }
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountPendingAudit(); }),
            expected_pending);
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountSubjects(); }),
            1 + expected_pending);
  vault().SetWriteAhead(nullptr);
}

// Rerunnable writes mixed with plain ones, failing or not at random, from many threads at once:
// on PostgreSQL a write before a rerunnable one ends without waiting for its answers, and when
// they hold its failure the writes sent after it run again. Against what each write was drawn
// to do: a failing write leaves nothing and runs no hooks, every other one keeps exactly what
// its last run wrote (a rerun's first run leaves nothing twice) and runs its hooks once; a
// plain write runs once. On PostgreSQL the rounds must have rerun some write, or the path
// under test was not taken.
TEST_P(GroupCommit, RerunnableWritesAfterAFailureRunAgainAndKeepOnlyTheirLastRun) {
  PlantRefusal(GetParam(), dir_, stores_.uri);
  Write(vault(), [](WriteTx& tx) {
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_taken")));
    return tx.PutIndex("sub_taken", {"email", Digest(0, 0), 1});
  });
  std::mt19937 rng(20261205);
  constexpr int kRounds = 8, kWriters = 40;
  int expected_subjects = 1, reruns = 0;
  for (int round = 0; round < kRounds; ++round) {
    struct Drawn {
      bool rerunnable;
      // 0 none; 1 refused statement; 2 existing row; 3 its own error, after writes; 4 a
      // look-up digest another subject holds (IndexHeldByOthers), as a duplicate create's
      int failure;
      bool reads;  // a read before its writes
    };
    std::vector<Drawn> drawn(kWriters);
    for (auto& d : drawn) {
      d.rerunnable = rng() % 2 == 0;
      d.failure = rng() % 3 == 0 ? 1 + static_cast<int>(rng() % 4) : 0;
      d.reads = rng() % 2 == 0;
    }
    std::vector<Status> results(kWriters);
    std::vector<int> hooks(kWriters, 0), runs(kWriters, 0);
    std::vector<std::thread> threads;
    std::atomic<int> ready{0};
    for (int i = 0; i < kWriters; ++i) {
      threads.emplace_back([&, i] {
        const auto k = static_cast<size_t>(i);
        const std::string id = "sub_r" + std::to_string(round) + "_" + std::to_string(i);
        const std::function<Status(WriteTx&)> fn = [&, k, id](WriteTx& tx) -> Status {
          ++runs[k];
          const Drawn& d = drawn[k];
          if (d.reads) {
            auto taken = tx.GetSubject("sub_taken");
            if (!taken.ok()) return taken.status();
            if (!taken.value()) return Internal("a committed subject is not seen");
          }
          auto held = tx.IndexHeldByOthers(
              "email", {d.failure == 4 ? Digest(0, 0) : Digest(round + 100, i)}, id);
          if (!held.ok()) return held.status();
          if (held.value()) return Conflict("the e-mail is another subject's");
          GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(id)));
          GARDE_RETURN_IF_ERROR(tx.PutField(id, {"email", Bytes{1, 2}}));
          if (d.failure == 1) GARDE_RETURN_IF_ERROR(tx.PutField(id, {"poison", Bytes{3}}));
          if (d.failure == 2) GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_taken")));
          GARDE_RETURN_IF_ERROR(tx.PutIndex(id, {"email", Digest(round + 100, i), 1}));
          if (d.failure == 3) return Unprocessable("drawn to fail");
          tx.AfterCommit([&hooks, k] { ++hooks[k]; });
          return Status::Ok();
        };
        ready.fetch_add(1);
        while (ready.load() < kWriters) std::this_thread::yield();
        results[k] = drawn[k].rerunnable ? vault().WriteRerunnable(fn) : vault().Write(fn);
      });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < kWriters; ++i) {
      const auto k = static_cast<size_t>(i);
      const std::string id = "sub_r" + std::to_string(round) + "_" + std::to_string(i);
      SCOPED_TRACE(id);
      const Drawn& d = drawn[k];
      auto subject =
          Get<std::optional<SubjectRow>>(vault(), [&](ReadTx& tx) { return tx.GetSubject(id); });
      auto fields =
          Get<std::vector<SealedField>>(vault(), [&](ReadTx& tx) { return tx.GetFields(id); });
      auto indexed = Get<std::vector<std::string>>(
          vault(), [&](ReadTx& tx) { return tx.FindByIndex("email", Digest(round + 100, i)); });
      if (d.rerunnable) {
        EXPECT_GE(runs[k], 1);
        reruns += runs[k] - 1;
      } else {
        EXPECT_EQ(runs[k], 1);
      }
      if (d.failure != 0) {
        EXPECT_FALSE(results[k].ok());
        if (d.failure == 2 || d.failure == 4) {
          EXPECT_EQ(results[k].code(), Code::kConflict) << results[k].message();
        }
        if (d.failure == 3) {
          EXPECT_EQ(results[k].code(), Code::kUnprocessable);
        }
        EXPECT_FALSE(subject.has_value());
        EXPECT_TRUE(fields.empty());
        EXPECT_TRUE(indexed.empty());
        EXPECT_EQ(hooks[k], 0);
      } else {
        EXPECT_TRUE(results[k].ok()) << results[k].message();
        EXPECT_TRUE(subject.has_value());
        ASSERT_EQ(fields.size(), 1u);
        EXPECT_EQ(indexed, std::vector<std::string>{id});
        EXPECT_EQ(hooks[k], 1);
        ++expected_subjects;
      }
    }
  }
  EXPECT_EQ(Get<int64_t>(vault(), [](ReadTx& tx) { return tx.CountSubjects(); }),
            expected_subjects);
  if (GetParam() == "postgresql") {
    EXPECT_GT(reruns, 0);
  } else {
    EXPECT_EQ(reruns, 0);
  }
}

// IndexHeldByOthers answers whether a subject other than the one asking holds one of the
// digests; in a rerunnable write PostgreSQL answers "no" at once and runs the write again, the
// question then waited for, when the answer was yes. Either way the write's last run decides
// on the true answer.
TEST_P(GroupCommit, AHeldLookUpDigestIsAnsweredTrulyByTheWritesLastRun) {
  Write(vault(), [](WriteTx& tx) {
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_a")));
    return tx.PutIndex("sub_a", {"email", Digest(1, 1), 1});
  });
  const Bytes held = Digest(1, 1), free = Digest(1, 2);
  Write(vault(), [&](WriteTx& tx) -> Status {
    EXPECT_FALSE(tx.IndexHeldByOthers("email", {held}, "sub_a").value());  // its own
    EXPECT_TRUE(tx.IndexHeldByOthers("email", {held}, "sub_b").value());
    EXPECT_TRUE(tx.IndexHeldByOthers("email", {free, held}, "sub_b").value());
    EXPECT_FALSE(tx.IndexHeldByOthers("email", {free}, "sub_b").value());
    EXPECT_FALSE(tx.IndexHeldByOthers("phone", {held}, "sub_b").value());
    return Status::Ok();
  });
  for (const bool duplicate : {true, false}) {
    SCOPED_TRACE(duplicate ? "held" : "free");
    std::vector<bool> answers;
    const Status s = vault().WriteRerunnable([&](WriteTx& tx) -> Status {
      auto answer = tx.IndexHeldByOthers("email", {duplicate ? held : free}, "sub_b");
      if (!answer.ok()) return answer.status();
      answers.push_back(answer.value());
      if (answer.value()) return Conflict("held");
      GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_b")));
      return tx.PutIndex("sub_b", {"email", free, 1});
    });
    ASSERT_FALSE(answers.empty());
    EXPECT_EQ(answers.back(), duplicate);
    if (GetParam() == "postgresql" && duplicate) {
      EXPECT_EQ(answers, (std::vector<bool>{false, true}));  // not waited for, then waited for
    }
    EXPECT_EQ(s.ok(), !duplicate) << s.message();
    EXPECT_EQ(
        Get<std::optional<SubjectRow>>(vault(), [](ReadTx& tx) { return tx.GetSubject("sub_b"); })
            .has_value(),
        !duplicate);
  }
}

// A uniqueness look-up (and a search's) probes the key for each digest, however the field's
// entries grew after the connection first asked: on PostgreSQL a plan kept from the first
// calls, made while the table was nearly empty, must not scan the field's every entry (that
// made creates into a growing vault cost milliseconds each) nor the table. Judged by the
// server's own counts of the index's entries read and of the table's whole scans.
TEST_P(GroupCommit, ALookUpReadsTheDigestsEntriesNotTheFieldsWhateverItsSizeWhenFirstAsked) {
  Write(vault(), [](WriteTx& tx) {
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_a")));
    return tx.PutIndex("sub_a", {"email", Digest(1, 1), 1});
  });
  int asked = 0;
  auto ask = [&](int round, int n) {
    for (int i = 0; i < n; ++i) {  // waited for, then sent in a pipeline (PostgreSQL)
      Write(vault(), [&](WriteTx& tx) -> Status {
        auto held = tx.IndexHeldByOthers("email", {Digest(round, i), Digest(1, 1)}, "sub_b");
        if (!held.ok()) return held.status();
        EXPECT_TRUE(held.value());
        return Status::Ok();
      });
      const Status free = vault().WriteRerunnable([&](WriteTx& tx) -> Status {
        auto held = tx.IndexHeldByOthers("email", {Digest(round, i)}, "sub_b");
        if (!held.ok()) return held.status();
        return held.value() ? Conflict("held") : Status::Ok();
      });
      EXPECT_TRUE(free.ok()) << free.message();
      const auto found = Get<std::vector<std::string>>(
          vault(), [&](ReadTx& tx) { return tx.FindByIndex("email", Digest(1, 1)); });
      EXPECT_EQ(found, std::vector<std::string>{"sub_a"});
      asked += 3;
    }
  };
  ask(2, 10);  // the table nearly empty: past the plans made for the first calls
  Write(vault(), [](WriteTx& tx) -> Status {
    for (int i = 0; i < 4000; ++i) {
      const std::string id = "sub_many" + std::to_string(i);
      GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(id)));
      GARDE_RETURN_IF_ERROR(tx.PutIndex(id, {"email", Digest(3 + i / 256, i % 256), 1}));
    }
    return Status::Ok();
  });
  if (GetParam() != "postgresql") {
    ask(40, 10);
    return;  // SQLite plans each statement once, by its key; no count to read here
  }
  // The index's counters, as the server reports them once the writing connection has flushed
  // its own: at its first transaction a second after the last flush (a write is sent every
  // 1.2 s meanwhile), or ten seconds after it went idle.
  const std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(stores_.uri.c_str()),
                                                          &PQfinish);
  PGconn* stats = conn.get();
  ASSERT_EQ(PQstatus(stats), CONNECTION_OK);
  auto counts = [&] {
    PQclear(PQexec(stats, "SELECT pg_stat_clear_snapshot()"));
    PGresult* r =
        PQexec(stats,
               "SELECT i.idx_scan, i.idx_tup_read, t.seq_scan FROM pg_stat_user_indexes i "
               "JOIN pg_stat_user_tables t USING (relid) "
               "WHERE i.indexrelname = 'blind_index_pkey'");
    std::tuple<int64_t, int64_t, int64_t> got{-1, -1, -1};
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
      got = {std::atoll(PQgetvalue(r, 0, 0)), std::atoll(PQgetvalue(r, 0, 1)),
             std::atoll(PQgetvalue(r, 0, 2))};
    }
    PQclear(r);
    return got;
  };
  auto wait_for_scans = [&](int64_t scans) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (int i = 1; std::get<0>(counts()) < scans && std::chrono::steady_clock::now() < until;
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (i % 12 == 0) Write(vault(), [](WriteTx& tx) { return tx.GetSubject("sub_a").status(); });
    }
    return counts();
  };
  const auto before = wait_for_scans(asked);
  ASSERT_GE(std::get<0>(before), asked);
  ask(40, 10);  // 30 look-ups of 1 or 2 digests each
  const auto after = wait_for_scans(std::get<0>(before) + 30);
  ASSERT_GE(std::get<0>(after), std::get<0>(before) + 30);
  // A probe by key reads the one entry held (Digest(1, 1)) or none: 20 entries in all, where
  // filtering the field's entries reads 4 001 a look-up.
  EXPECT_LE(std::get<1>(after) - std::get<1>(before), 100) << "entries read by 30 look-ups";
  EXPECT_EQ(std::get<2>(after), std::get<2>(before)) << "scans of the whole table";
}

// The in-memory store runs a rerunnable write twice, the first run undone: what stays is the
// last run's, its hooks run once, and a failing last run leaves nothing.
TEST(MemoryStoreRerun, ARerunnableWriteRunsTwiceAndKeepsItsLastRunOnly) {
  MemoryStore store;
  int runs = 0, hooks = 0;
  ASSERT_TRUE(store
                  .WriteRerunnable([&](WriteTx& tx) -> Status {
                    ++runs;
                    GARDE_RETURN_IF_ERROR(
                        tx.InsertSubject(Subject("sub_run" + std::to_string(runs))));
                    tx.AfterCommit([&] { ++hooks; });
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(hooks, 1);
  EXPECT_FALSE(Get<std::optional<SubjectRow>>(store, [](ReadTx& tx) {
                 return tx.GetSubject("sub_run1");
               }).has_value());
  EXPECT_TRUE(Get<std::optional<SubjectRow>>(store, [](ReadTx& tx) {
                return tx.GetSubject("sub_run2");
              }).has_value());
  runs = 0;
  const Status failed = store.WriteRerunnable([&](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject("sub_fail")));
    return ++runs == 2 ? Unprocessable("the last run fails") : Status::Ok();
  });
  EXPECT_EQ(failed.code(), Code::kUnprocessable);
  EXPECT_FALSE(Get<std::optional<SubjectRow>>(store, [](ReadTx& tx) {
                 return tx.GetSubject("sub_fail");
               }).has_value());
  EXPECT_EQ(Get<int64_t>(store, [](ReadTx& tx) { return tx.CountSubjects(); }), 1);
}

// A statement a connection first uses after a failure in the same write is skipped with the
// rest of that write — its preparation too (PostgreSQL's pipeline): the next write that uses
// it must not find it missing.
TEST_P(GroupCommit, AStatementFirstUsedAfterAFailureServesTheNextWrite) {
  PlantRefusal(GetParam(), dir_, stores_.uri);
  auto other = OpenAnother(GetParam(), dir_, stores_);  // its connection has prepared nothing
  ASSERT_TRUE(other);
  Write(*other, [](WriteTx& tx) { return tx.InsertSubject(Subject("sub_a")); });
  const Status refused = other->Write([](WriteTx& tx) {
    GARDE_RETURN_IF_ERROR(tx.PutField("sub_a", {"poison", Bytes{3}}));  // refused, not awaited
    return tx.PutIndex("sub_a", {"email", Digest(0, 0), 1});  // first use, after the failure
  });
  EXPECT_FALSE(refused.ok());
  const Status later = other->Write([](WriteTx& tx) {
    return tx.PutIndex("sub_a", {"email", Digest(0, 0), 1});
  });
  EXPECT_TRUE(later.ok()) << later.message();
  EXPECT_EQ(Get<std::vector<std::string>>(
                *other, [](ReadTx& tx) { return tx.FindByIndex("email", Digest(0, 0)); }),
            std::vector<std::string>{"sub_a"});
}

// The SQLite log is copied into the database as writes go on, and starts over: under writes
// from many threads without a pause, the -wal file stays within a few checkpoints' worth of
// frames (without them it holds every page written), and everything written is there when the
// file is opened again.
TEST(SqliteCheckpoints, TheLogIsCopiedAndStartsOverUnderSustainedWrites) {
  const auto dir = FreshDir("checkpoints");
  SqliteOptions o;
  o.path = (dir / "garde.db").string();
  o.synchronous_full = false;
  o.checkpoint_frames = 64;
  constexpr int kThreads = 8, kWrites = 1000;
  uintmax_t largest_log = 0;
  {
    auto opened = SqliteStore::Open(o);
    ASSERT_TRUE(opened.ok());
    SqliteStore& store = *opened.value();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&store, t] {
        for (int i = 0; i < kWrites; ++i) {
          const std::string id = "sub_" + std::to_string(t) + "_" + std::to_string(i);
          Status s = store.Write([&](WriteTx& tx) -> Status {
            GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(id)));
            GARDE_RETURN_IF_ERROR(tx.PutField(id, {"email", Bytes(200, 7)}));
            return tx.PutIndex(id, {"email",
                                    Bytes{static_cast<uint8_t>(t), static_cast<uint8_t>(i >> 8),
                                          static_cast<uint8_t>(i)},
                                    1});
          });
          EXPECT_TRUE(s.ok()) << s.message();
        }
      });
    }
    // The log's size while the writers run.
    std::atomic<bool> done{false};
    std::thread watch([&] {
      while (!done.load()) {
        std::error_code ec;
        const auto size = std::filesystem::file_size(o.path + "-wal", ec);
        if (!ec) largest_log = std::max(largest_log, size);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
    for (auto& t : threads) t.join();
    done.store(true);
    watch.join();
  }
  // Without checkpoints these writes leave a log of about 260 MB; with them it stays near four
  // thresholds' worth (the most a committer lets it reach before copying it itself, unless the
  // checkpointer is still at work), measured at 3.5-5.6 MB. Bounded at 96 MB for slow runs: in
  // one CI rehearsal of sixteen, beside a test writing and syncing much, it reached 64.5 MB
  // (the log restarts only once a checkpoint's own fsync of the database has returned).
  EXPECT_LT(largest_log, uintmax_t{96} << 20);
  {
    auto reopened = SqliteStore::Open(o);
    ASSERT_TRUE(reopened.ok());
    Store& store = *reopened.value();
    EXPECT_EQ(Get<int64_t>(store, [](ReadTx& tx) { return tx.CountSubjects(); }),
              kThreads * kWrites);
    EXPECT_EQ(
        Get<std::vector<SealedField>>(store, [](ReadTx& tx) { return tx.GetFields("sub_7_399"); })
            .size(),
        1u);
  }
  std::filesystem::remove_all(dir);
}

// The checkpointer's pass over a log that writers keep adding to does not reach its end, and
// SQLite syncs the database only after a pass that does: the committer's last one, with every
// commit queued behind it. The thread starts writing out the pages it copied itself (once at
// least in this run), and a failure to do so refuses writes from then on, as a failed sync of
// the log does.
class SqliteCheckpointWriteBack : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir("checkpoint-writeback");
    SqliteOptions o;
    o.path = (dir_ / "garde.db").string();
    o.synchronous_full = true;
    o.checkpoint_frames = 64;
    o.file_system = &fs_;
    auto opened = SqliteStore::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(opened).value();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Writes from four threads until `enough` says so or 4 000 are written; the failures seen.
  int WriteUntil(const std::function<bool()>& enough) {
    std::atomic<int> written{0}, failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 1000 && !enough(); ++i) {
          const std::string id = "sub_" + std::to_string(t) + "_" + std::to_string(i);
          Status s = store_->Write([&](WriteTx& tx) -> Status {
            GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(id)));
            return tx.PutField(id, {"email", Bytes(900, static_cast<uint8_t>(i))});
          });
          (s.ok() ? written : failed).fetch_add(1);
        }
      });
    }
    for (auto& t : threads) t.join();
    return failed.load();
  }

  std::filesystem::path dir_;
  GatedFileSystem fs_{"garde.db"};  // the database file; not its -wal
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteCheckpointWriteBack, TheCheckpointerWritesOutTheDatabaseItCopiedInto) {
  EXPECT_EQ(WriteUntil([&] { return fs_.writebacks_begun() > 0; }), 0);
  EXPECT_GT(fs_.writebacks_begun(), 0);
}

TEST_F(SqliteCheckpointWriteBack, AFailedWriteBackOfTheDatabaseRefusesWritesAfterIt) {
  fs_.FailNext();
  WriteUntil([&] { return fs_.writebacks_begun() > 0; });
  ASSERT_GT(fs_.writebacks_begun(), 0);
  // The store learns of the failure as the call returns: a write may still pass meanwhile.
  auto insert = [&](const std::string& id) {
    return store_->Write([&](WriteTx& tx) { return tx.InsertSubject(Subject(id)); });
  };
  Status refused;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (int i = 0; refused.ok() && std::chrono::steady_clock::now() < deadline; ++i) {
    refused = insert("sub_after_" + std::to_string(i));
    if (refused.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(refused.code(), Code::kUnavailable) << refused.message();
  // And every write after it.
  EXPECT_EQ(insert("sub_later").code(), Code::kUnavailable);
}

// ---- SQLite: a durable write is answered after the WAL's fsync, run after the hand-over ----

// Files this process holds open in the system's temporary directories: SQLite's unlinked
// temporary files ("etilqs_…"), such as a statement journal spilled out of memory.
int OpenTemporaryFiles() {
  int found = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(entry.path(), ec);
    if (!ec && target.filename().string().rfind("etilqs_", 0) == 0) ++found;
  }
  return found;
}

// The page images SQLite keeps to undo a write (a statement journal: ciphertext and digests)
// stay in memory and are not written to the temporary directory, where they outlive nothing
// but are bytes on a disk Garde does not own; nor are they written twice. A lone write, as an
// import window is, takes no savepoint, and one that changes more pages than the page cache
// holds keeps them until the commit instead of spilling them.
TEST(SqliteStatementJournal, ALargeWriteLeavesNoPageImagesInTheTemporaryDirectory) {
  const auto dir = FreshDir("statement-journal");
  SqliteOptions o;
  o.path = (dir / "garde.db").string();
  o.synchronous_full = false;
  auto opened = SqliteStore::Open(o);
  ASSERT_TRUE(opened.ok());
  SqliteStore& store = *opened.value();
  std::mt19937_64 random(7);
  int temporary = -1;
  std::vector<std::string> ids;
  for (int i = 0; i < 30000; ++i) ids.push_back("sub_" + std::to_string(random()));
  // ~24 000 pages: more than the 16 MB page cache and the writer's spill threshold; written,
  // then written over (the pages a write changes that were there before it are the ones
  // an undo needs).
  for (int round = 0; round < 2; ++round) {
    Status s = store.Write([&](WriteTx& tx) -> Status {
      for (int i = 0; i < 30000; ++i) {
        const std::string& id = ids[static_cast<size_t>(i)];
        if (round == 0) GARDE_RETURN_IF_ERROR(tx.InsertSubject(Subject(id)));
        GARDE_RETURN_IF_ERROR(
            tx.PutField(id, {"notes", Bytes(3000, static_cast<uint8_t>(i + round))}));
      }
      temporary = OpenTemporaryFiles();
      return Status::Ok();
    });
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(temporary, 0) << "round " << round;
  }
  EXPECT_EQ(Get<int64_t>(store, [](ReadTx& tx) { return tx.CountSubjects(); }), 30000);
  // Batches of writes, each in its own savepoint, each changing more than 64 KiB of pages
  // that were there before it (the statement journal's default size in memory).
  std::vector<std::thread> threads;
  std::atomic<int> seen{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 pick(static_cast<uint64_t>(t));
      for (int i = 0; i < 20; ++i) {
        Status w = store.Write([&](WriteTx& tx) -> Status {
          for (int f = 0; f < 40; ++f) {
            const std::string& id = ids[pick() % ids.size()];
            GARDE_RETURN_IF_ERROR(tx.PutField(id, {"notes", Bytes(3000, static_cast<uint8_t>(f))}));
          }
          seen.fetch_add(OpenTemporaryFiles());
          return Status::Ok();
        });
        EXPECT_TRUE(w.ok()) << w.message();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(seen.load(), 0);
  std::filesystem::remove_all(dir);  // 140 MB of pages
}

class SqliteDurability : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir("durability");
    SqliteOptions o;
    o.path = (dir_ / "garde.db").string();
    o.synchronous_full = true;
    o.deferred_sync_ms = 20;
    o.file_system = &fs_;
    auto opened = SqliteStore::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(opened).value();
  }
  void TearDown() override {
    fs_.Let();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  Status Insert(const std::string& id, Durability d = Durability::kImmediate) {
    return store_->Write([&](WriteTx& tx) { return tx.InsertSubject(Subject(id)); }, d);
  }
  bool Has(const std::string& id) {
    bool found = false;
    EXPECT_TRUE(store_
                    ->Read([&](ReadTx& tx) -> Status {
                      auto row = tx.GetSubject(id);
                      if (!row.ok()) return row.status();
                      found = row.value().has_value();
                      return Status::Ok();
                    })
                    .ok());
    return found;
  }

  std::filesystem::path dir_;
  GatedFileSystem fs_{"-wal"};
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteDurability, AWriteIsAnsweredOnlyOnceTheLogIsSyncedAndTheNextIsWrittenMeanwhile) {
  fs_.Hold();
  const int before = fs_.syncs_begun();
  auto first = std::async(std::launch::async, [&] { return Insert("sub_first"); });
  ASSERT_TRUE(Eventually([&] { return fs_.syncs_begun() > before; }))
      << "the durable write never asked for the WAL's fsync";
  EXPECT_EQ(first.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "answered before its fsync returned";
  EXPECT_TRUE(Has("sub_first"));  // committed; its durability is what the writer waits for
  // The next batch is written (its statements run) while the first one's fsync is held.
  std::atomic<bool> second_ran{false};
  auto second = std::async(std::launch::async, [&] {
    return store_->Write([&](WriteTx& tx) {
      second_ran = true;
      return tx.InsertSubject(Subject("sub_second"));
    });
  });
  EXPECT_TRUE(Eventually([&] { return second_ran.load(); }));
  EXPECT_EQ(second.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  fs_.Let();
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE(second.get().ok());
  EXPECT_TRUE(Has("sub_second"));
}

// audit.db: a batch is on disk before anyone can read it (SQLite's fsync inside the commit, not
// one after the hand-over): a signed tree head served the moment it is committed must never
// cover entries a power loss could take. Its writes need no fsync of the held kind.
TEST_F(SqliteDurability, AnAuditBatchIsDurableBeforeItIsVisible) {
  GatedFileSystem audit_fs("-wal");
  SqliteOptions o;
  o.path = (dir_ / "audit.db").string();
  o.schema = SqliteSchema::kAudit;
  o.synchronous_full = true;
  o.file_system = &audit_fs;
  auto opened = SqliteStore::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  audit_fs.Hold();
  auto written = std::async(std::launch::async, [&] {
    return opened.value()->Write([](WriteTx& tx) {
      return tx.InsertCheckpoint({1, Bytes(32, 1), 100, "note", ""});
    });
  });
  EXPECT_EQ(written.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "waited for an fsync after the commit: readers saw the batch before it was durable";
  audit_fs.Let();
  EXPECT_TRUE(written.get().ok());
  EXPECT_EQ(audit_fs.syncs_begun(), 0);
}

// A posted write (Store::WriteThen, how a request is answered once its write is durable without
// holding a thread): the poster returns at once, and the answer comes only after the log's
// fsync has returned, as for a writer that waits.
TEST_F(SqliteDurability, APostedWriteReturnsAtOnceAndIsAnsweredOnlyOnceTheLogIsSynced) {
  fs_.Hold();
  const int before = fs_.syncs_begun();
  auto answered = std::make_shared<std::promise<Status>>();
  auto answer = answered->get_future();
  auto posted = std::async(std::launch::async, [&] {
    store_->WriteThen([](WriteTx& tx) { return tx.InsertSubject(Subject("sub_posted")); },
                      Durability::kImmediate, /*rerunnable=*/false,
                      [answered](Status s) { answered->set_value(s); });
  });
  ASSERT_EQ(posted.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "the poster waited for its write";
  ASSERT_TRUE(Eventually([&] { return fs_.syncs_begun() > before; }))
      << "the posted write never asked for the WAL's fsync";
  EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "answered before its fsync returned";
  EXPECT_TRUE(Has("sub_posted"));  // committed; its durability is what the answer waits for
  fs_.Let();
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(answer.get().ok());
}

// Writes posted from many threads, and writers waiting beside them, in the same batches: each
// is answered once, with its own result (a failing one alone), and a store closed right after
// commits every posted write before it closes.
TEST_F(SqliteDurability, PostedAndWaitingWritesShareBatchesAndEachGetsItsOwnAnswer) {
  constexpr size_t kThreads = 6, kEach = 40;
  ASSERT_TRUE(Insert("sub_taken").ok());
  std::vector<std::vector<std::atomic<int>>> answers(kThreads);
  std::vector<std::vector<Status>> results(kThreads, std::vector<Status>(kEach));
  for (auto& a : answers) a = std::vector<std::atomic<int>>(kEach);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < kEach; ++i) {
        const std::string id = "sub_" + std::to_string(t) + "_" + std::to_string(i);
        // Every seventh write fails (a duplicate id): alone.
        const std::string insert = i % 7 == 3 ? "sub_taken" : id;
        auto fn = [insert](WriteTx& tx) { return tx.InsertSubject(Subject(insert)); };
        if (i % 3 == 0) {
          results[t][i] = store_->Write(fn);
          ++answers[t][i];
        } else {
          store_->WriteThen(fn, Durability::kImmediate, false, [&, t, i](Status s) {
            results[t][i] = s;
            ++answers[t][i];
          });
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  store_.reset();  // closing: every posted write is committed and answered first
  size_t once = 0, failed = 0;
  for (size_t t = 0; t < kThreads; ++t) {
    for (size_t i = 0; i < kEach; ++i) {
      once += answers[t][i].load() == 1 ? 1u : 0u;
      const bool should_fail = i % 7 == 3;
      EXPECT_EQ(results[t][i].ok(), !should_fail)
          << t << "/" << i << ": " << results[t][i].message();
      failed += results[t][i].ok() ? 0u : 1u;
    }
  }
  EXPECT_EQ(once, kThreads * kEach);
  EXPECT_GT(failed, 0u);
  SqliteOptions o;
  o.path = (dir_ / "garde.db").string();
  auto reopened = SqliteStore::Open(o);
  ASSERT_TRUE(reopened.ok()) << reopened.status().message();
  store_ = std::move(reopened).value();
  for (size_t t = 0; t < kThreads; ++t) {
    for (size_t i = 0; i < kEach; ++i) {
      if (i % 7 == 3) continue;
      EXPECT_TRUE(Has("sub_" + std::to_string(t) + "_" + std::to_string(i))) << t << "/" << i;
    }
  }
}

TEST_F(SqliteDurability, AFailedSyncFailsAPostedWriteToo) {
  ASSERT_TRUE(Insert("sub_before").ok());
  fs_.FailNext();
  auto answered = std::make_shared<std::promise<Status>>();
  auto answer = answered->get_future();
  store_->WriteThen([](WriteTx& tx) { return tx.InsertSubject(Subject("sub_lost")); },
                    Durability::kImmediate, false,
                    [answered](Status s) { answered->set_value(s); });
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(answer.get().code(), Code::kUnavailable);
}

TEST_F(SqliteDurability, AFailedSyncFailsTheWriteAndEveryWriteAfterIt) {
  ASSERT_TRUE(Insert("sub_before").ok());
  fs_.FailNext();
  Status failed = Insert("sub_lost");
  EXPECT_EQ(failed.code(), Code::kUnavailable) << failed.message();
  // The kernel reports a lost write once; what a later fsync vouches for is unknown, so the
  // store refuses writes from then on, deferred ones too. Reads go on.
  Status later = Insert("sub_later");
  EXPECT_EQ(later.code(), Code::kUnavailable) << later.message();
  EXPECT_EQ(Insert("sub_deferred", Durability::kDeferred).code(), Code::kUnavailable);
  EXPECT_FALSE(Has("sub_later"));
  EXPECT_TRUE(Has("sub_before"));
}

TEST_F(SqliteDurability, ADeferredWriteIsAnsweredAtOnceAndSyncedWithinItsWindow) {
  fs_.Hold();
  const int before = fs_.syncs_begun();
  // Answered while every fsync is held: it waits for none.
  auto deferred =
      std::async(std::launch::async, [&] { return Insert("sub_deferred", Durability::kDeferred); });
  ASSERT_EQ(deferred.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(deferred.get().ok());
  // The flusher's fsync follows within the window (20 ms here).
  EXPECT_TRUE(Eventually([&] { return fs_.syncs_begun() > before; }));
  fs_.Let();
}

// ---- PostgreSQL: a crash loses nothing a writer was told succeeded ----

class PostgresCrash : public SharedDatabase {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PostgresCrash);  // without a PostgreSQL server
INSTANTIATE_TEST_SUITE_P(Backends, PostgresCrash, ::testing::ValuesIn(CountingBackends()),
                         [](const auto& param_info) { return param_info.param; });

// Durable writes from many threads, the server crashed under them (an immediate stop: the WAL
// not yet written is lost) and started again: every write that was answered Ok is there. Both
// ways of committing: the vault's (committed without waiting, flushed after the hand-over) and
// the audit log's (flushed inside its commit).
TEST_P(PostgresCrash, EveryAnsweredWriteOutlivesACrash) {
  for (const bool visible_before_durable : {true, false}) {
    SCOPED_TRACE(visible_before_durable ? "visible before durable" : "durable before visible");
    PostgresOptions options{stores_.uri, /*synchronous=*/true, 8};
    options.follow_changes = false;
    options.visible_before_durable = visible_before_durable;
    const std::string tag = visible_before_durable ? "v" : "d";
    std::vector<std::string> answered;
    {
      auto store = PostgresStore::Open(options);
      ASSERT_TRUE(store.ok()) << store.status().message();
      // The path under test is taken (the server allows the flush's message).
      EXPECT_EQ(store.value()->flushes_after_hand_over(), visible_before_durable);
      std::mutex mu;
      std::atomic<bool> stop{false};
      std::atomic<int> refused{0};
      std::vector<std::thread> writers;
      for (int t = 0; t < 16; ++t) {
        writers.emplace_back([&, t] {
          for (int i = 0; !stop.load(); ++i) {
            const std::string id = "sub_" + tag + std::to_string(t) + "_" + std::to_string(i);
            Status s =
                store.value()->Write([&](WriteTx& tx) { return tx.InsertSubject(Subject(id)); });
            if (s.ok()) {
              std::lock_guard<std::mutex> lock(mu);
              answered.push_back(id);
            } else {
              ++refused;
              std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
          }
        });
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      const bool crashed = testing::ControlTestPostgres("crash");
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      stop.store(true);
      for (auto& w : writers) w.join();
      ASSERT_TRUE(crashed);
      EXPECT_GT(refused.load(), 0) << "the crash went unnoticed";
      ASSERT_GT(answered.size(), 100u);
    }
    ASSERT_TRUE(testing::ControlTestPostgres("start"));
    auto reopened = PostgresStore::Open(options);
    ASSERT_TRUE(reopened.ok()) << reopened.status().message();
    size_t lost = 0;
    ASSERT_TRUE(reopened.value()
                    ->Read([&](ReadTx& tx) {
                      for (const auto& id : answered) {
                        auto got = tx.GetSubject(id);
                        if (!got.ok()) return got.status();
                        if (!got.value().has_value()) ++lost;
                      }
                      return Status::Ok();
                    })
                    .ok());
    EXPECT_EQ(lost, 0u) << "of " << answered.size() << " answered writes";
  }
}

// ---- Differential: random operations on both backends, every answer compared ----

// A read's value, by value (a range-for over a temporary's value() would dangle); a failed read
// fails the test and reads as empty.
template <typename T>
T V(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(r).value() : T{};
}

// One random step: a write on both stores, then reads whose answers must agree.
class Differential {
 public:
  Differential(Store& a, Store& b, uint32_t seed) : a_(a), b_(b), rng_(seed) {}

  void Step() {
    const std::string s = Pick(subjects_);
    switch (Uniform(0, 13)) {
      case 0: {
        const auto root = static_cast<uint32_t>(Uniform(1, 2));
        Both([&](WriteTx& tx) { return tx.InsertSubject(Subject(s, root)); });
        break;
      }
      case 1: {
        SubjectRow r = Subject(s);
        r.status = Pick({"active", "restricted", "erased"});
        r.updated_at = Uniform(0, 99);
        Both([&](WriteTx& tx) { return tx.UpdateSubject(r); });
        break;
      }
      case 2: {
        const std::string field = Pick({"name", "email", "phone"});
        const Bytes box{static_cast<uint8_t>(Uniform(0, 9))};
        if (Uniform(0, 2) == 0) {
          Both([&](WriteTx& tx) { return tx.DeleteField(s, field); });
        } else {
          Both([&](WriteTx& tx) { return tx.PutField(s, {field, box}); });
        }
        break;
      }
      case 3: {
        const std::string field = Pick({"email", "~email", "=name_postcode", "=name_phone"});
        const IndexEntry e{field, Bytes{static_cast<uint8_t>(Uniform(0, 3))},
                           field[0] == '~' ? 0u : static_cast<uint32_t>(Uniform(1, 2))};
        Both([&](WriteTx& tx) { return tx.PutIndex(s, e); });
        break;
      }
      case 4: {
        const std::string id = "con_" + std::to_string(Uniform(0, 60));
        const auto e = Event(id, s, Pick({"granted", "withdrawn", "objected"}), Uniform(0, 5),
                             Pick({"marketing.email", "analytics"}));
        Both([&](WriteTx& tx) { return tx.InsertConsentEvent(e); });
        break;
      }
      case 5: {
        const Bytes digest{static_cast<uint8_t>(Uniform(0, 3))};
        Both([&](WriteTx& tx) { return tx.PutSuppression("email", digest, "r", 1); });
        break;
      }
      case 6: Both([&](WriteTx& tx) { return tx.DeleteConsentEventsOf(s); }); break;
      case 7: {
        const std::string id = "req_" + std::to_string(Uniform(0, 8));
        const auto r = Request(id, s, Uniform(0, 4), Pick({"received", "completed", "verified"}));
        if (Uniform(0, 1) == 0) {
          Both([&](WriteTx& tx) { return tx.InsertRequest(r); });
        } else {
          Both([&](WriteTx& tx) { return tx.UpdateRequest(r); });
        }
        break;
      }
      case 8: {
        DeliveryRow d = Delivery(Pick({"crm", "mail"}), "evt_" + std::to_string(Uniform(0, 20)),
                                 Uniform(0, 3) == 0 ? "" : s, Uniform(0, 5));
        Both([&](WriteTx& tx) { return tx.InsertDelivery(d); });
        break;
      }
      case 9: {
        DeliveryRow d;
        d.id = Uniform(1, 20);
        d.status = Pick({"pending", "delivered", "dead"});
        d.next_at = Uniform(0, 5);
        Both([&](WriteTx& tx) { return tx.UpdateDelivery(d); });
        break;
      }
      case 10: Both([&](WriteTx& tx) { return tx.DeleteIndexesOf(s); }); break;
      case 11: {
        // A write that does several things then fails: nothing of it may remain.
        Both([&](WriteTx& tx) -> Status {
          GARDE_RETURN_IF_ERROR(tx.PutField(s, {"name", Bytes{42}}));
          GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(Event("con_rollback", s, "granted", 1)));
          GARDE_RETURN_IF_ERROR(tx.DeleteIndexesOf(s));
          return Conflict("rolled back");
        });
        break;
      }
      case 12: {
        const uint32_t version = static_cast<uint32_t>(Uniform(1, 2));
        Both([&](WriteTx& tx) {
          return tx.ReplaceDataKey(s, version, 3, version + 1, Bytes{static_cast<uint8_t>(version)})
              .status();
        });
        break;
      }
      default: {
        const uint32_t version = static_cast<uint32_t>(Uniform(1, 2));
        Both([&](WriteTx& tx) {
          return tx.RewrapDataKey(s, version, version + 1, Bytes{7}).status();
        });
        break;
      }
    }
    Compare();
  }

  int steps_compared() const { return compared_; }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::string Pick(std::initializer_list<const char*> list) {
    return *(list.begin() + Uniform(0, static_cast<int>(list.size()) - 1));
  }
  std::string Pick(const std::vector<std::string>& list) {
    return list[static_cast<size_t>(Uniform(0, static_cast<int>(list.size()) - 1))];
  }

  void Both(const std::function<Status(WriteTx&)>& fn) {
    const Status x = a_.Write(fn);
    const Status y = b_.Write(fn);
    ASSERT_EQ(x.code(), y.code()) << x.message() << " / " << y.message();
  }

  // Everything a reader can see, as text: equal text, equal stores.
  std::string Dump(Store& store) {
    std::ostringstream out;
    Status s = store.Read([&](ReadTx& tx) -> Status {
      for (const auto& row : V(tx.ScanSubjects("", 1000))) {
        out << row.id << ' ' << row.status << ' ' << row.root_key_version << ' ' << row.dek_version
            << ' ' << HexEncode(row.wrapped_dek) << ' ' << row.updated_at << '\n';
      }
      for (const auto& id : subjects_) {
        for (const auto& f : V(tx.GetFields(id)))
          out << id << " field " << f.field << HexEncode(f.box) << '\n';
        for (const auto& e : V(tx.ConsentEventsOf(id)))
          out << id << " event " << e.id << e.event << e.at << '\n';
        for (const auto& p : V(tx.ObjectedPurposesOf(id))) out << id << " objected " << p << '\n';
        for (const auto& k : V(tx.SuppressedContactsOf(id)))
          out << id << " suppressed " << k << '\n';
        for (const char* f : {"email", "~email", "=name_phone"}) {
          for (const auto& d : V(tx.IndexDigestsOf(id, f)))
            out << id << ' ' << f << HexEncode(d) << '\n';
        }
        for (const auto& f : V(tx.StaleIndexesOf(id, 2))) out << id << " stale " << f << '\n';
      }
      for (int d = 0; d < 4; ++d) {
        for (const auto& id : V(tx.FindByIndex("email", Bytes{static_cast<uint8_t>(d)})))
          out << "find " << d << id << '\n';
      }
      for (const auto& p : V(tx.SharedMatchKeys("", "", 100))) {
        out << "pair " << p.first << p.second;
        for (const auto& r : p.rules) out << ' ' << r;
        out << '\n';
      }
      for (const auto& [id, kind] : V(tx.SuppressedContactsIn("", "")))
        out << "in " << id << kind << '\n';
      const auto tail = V(tx.ChangesAfter(0, 100000));
      out << "changes " << tail.last_seq << tail.complete << '\n';
      for (const auto& [seq, id] : tail.changes) out << seq << id << ' ';
      out << "\nshreds " << V(tx.ShredCount()) << " stale " << V(tx.CountStaleIndexes(2)) << '\n';
      for (const auto& r : V(tx.QueryRequests({})))
        out << "req " << r.id << r.status << r.due_at << r.subject_id << '\n';
      const auto open = V(tx.CountOpenRequests(3));
      out << "open " << open.first << '/' << open.second << '\n';
      for (const auto& d : V(tx.DueDeliveries(3, 100)))
        out << "due " << d.id << d.endpoint << d.event_id << '\n';
      for (const auto& [status, n] : V(tx.CountDeliveries()))
        out << "deliveries " << status << n << '\n';
      for (const auto& [v, n] : V(tx.CountByRootKeyVersion()))
        out << "root " << v << '=' << n << '\n';
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.message();
    return out.str();
  }

  void Compare() {
    ++compared_;
    ASSERT_EQ(Dump(a_), Dump(b_)) << "after step " << compared_;
  }

  Store& a_;
  Store& b_;
  std::mt19937 rng_;
  const std::vector<std::string> subjects_ = {"sub_a", "sub_b", "sub_c", "sub_d", "sub_e"};
  int compared_ = 0;
};

// Random operations on `first` and `second` side by side, every answer compared.
void RunDifferential(const std::string& first, const std::string& second) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const auto dir = FreshDir("diff" + std::to_string(seed));
    StorePair a = OpenPair(first, dir);
    StorePair b = OpenPair(second, dir);
    ASSERT_TRUE(a.vault && b.vault);
    Differential run(*a.vault, *b.vault, seed);
    for (int i = 0; i < 250 && !::testing::Test::HasFatalFailure(); ++i) run.Step();
    EXPECT_EQ(run.steps_compared(), 250);
    a = {};
    b = {};
    std::filesystem::remove_all(dir);
    if (::testing::Test::HasFailure()) break;  // the first seed that differs says enough
  }
}

TEST(StoreDifferential, RandomOperationsAnswerAlikeOnSqliteAndInMemory) {
  RunDifferential("sqlite", "memory");
}

// Registered only beside a PostgreSQL server (ctest store_conformance_postgresql).
class PostgresDifferential : public ::testing::Test {
 public:
  void TestBody() override { RunDifferential("sqlite", "postgresql"); }
};

[[maybe_unused]] const bool kPostgresDifferential = [] {
  if (testing::TestPostgresHost().empty()) return false;
  ::testing::RegisterTest("StoreDifferential", "RandomOperationsAnswerAlikeOnSqliteAndPostgresql",
                          nullptr, nullptr, __FILE__, __LINE__,
                          []() -> ::testing::Test* { return new PostgresDifferential; });
  return true;
}();

}  // namespace
}  // namespace garde

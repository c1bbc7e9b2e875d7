#include "garde/domain/subject_vault.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "deployment_fixture.h"
#include "garde/app/deployment.h"
#include "garde/domain/consent_ledger.h"

namespace garde {
namespace {

class SubjectVaultTest : public DeploymentFixture {
 protected:
  SubjectView MustCreate(FieldMap fields, const char* kind = "person") {
    auto r = d_->vault().Create(operator_, {kind, "web_form", std::nullopt, std::move(fields)});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : SubjectView{};
  }
  int64_t CountSubjects() {
    int64_t n = -1;
    EXPECT_TRUE(d_->store()
                    .Read([&](ReadTx& tx) {
                      auto c = tx.CountSubjects();
                      n = c.ok() ? c.value() : -1;
                      return c.status();
                    })
                    .ok());
    return n;
  }

  Caller operator_{"key_op", "operator", {"customer_management", "marketing_email"}, "req_t", ""};
};

TEST_F(SubjectVaultTest, ReadReturnsOnlyTheActivityFields) {
  auto s = MustCreate({{"email", FieldValue::String("Ana@Example.org")},
                       {"birth_date", FieldValue::String("1990-01-31")},
                       {"first_name", FieldValue::String("Ana")}});
  auto full = d_->vault().Read(operator_, s.id, "customer_management");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->fields.at("email").text, "ana@example.org");
  EXPECT_EQ(full->fields.count("birth_date"), 1u);
  // SPEC §3.4: a consent-based activity reads only subjects whose consent allows it.
  EXPECT_EQ(d_->vault().Read(operator_, s.id, "marketing_email").status().code(),
            Code::kPermissionDenied);
  ConsentRequest grant{"marketing.email", "email", "granted", "2026-01", "web_form", ""};
  ASSERT_TRUE(d_->consents().Record(operator_, s.id, grant).ok());
  auto mkt = d_->vault().Read(operator_, s.id, "marketing_email");
  ASSERT_TRUE(mkt.ok()) << mkt.status().message();
  EXPECT_EQ(mkt->fields.count("birth_date"), 0u);
  EXPECT_EQ(mkt->fields.count("email"), 1u);
  EXPECT_EQ(d_->vault().Read(operator_, s.id, "dsr_handling").status().code(),
            Code::kPermissionDenied);
}

// Subjects created together are keyed side by side (their ids share a run's characters), and
// so are their consent events: a batch of writes lands on a few B-tree pages.
TEST_F(SubjectVaultTest, SubjectsAndEventsCreatedTogetherShareTheirIdsRun) {
  std::set<std::string> subject_runs, event_runs;
  ConsentRequest grant{"marketing.email", "email", "granted", "2026-01", "web_form", ""};
  for (int i = 0; i < 20; ++i) {
    auto s = MustCreate({{"email", FieldValue::String("run" + std::to_string(i) + "@x.org")}});
    ASSERT_TRUE(IsRandomId(s.id, "sub_")) << s.id;
    subject_runs.insert(s.id.substr(4, 3));
    auto event = d_->consents().Record(operator_, s.id, grant);
    ASSERT_TRUE(event.ok()) << event.status().message();
    ASSERT_TRUE(IsRandomId(event->id, "cev_")) << event->id;
    event_runs.insert(event->id.substr(4, 3));
  }
  EXPECT_EQ(subject_runs.size(), 1u);  // the first 20 of a run of 1 024
  EXPECT_EQ(event_runs.size(), 1u);
  // And the outbox events they sent downstream (consent.changed), keyed by their ids too.
  std::vector<OutboxRow> outbox;
  ASSERT_TRUE(d_->store()
                  .Read([&](ReadTx& tx) {
                    auto rows = tx.ListOutbox(0, 1000);
                    if (rows.ok()) outbox = std::move(rows.value());
                    return rows.status();
                  })
                  .ok());
  std::map<std::string, int> outbox_runs;  // run -> events, among the 20 consent.changed
  for (const auto& row : outbox) {
    if (row.topic == "consent.changed") ++outbox_runs[row.id.substr(4, 3)];
  }
  ASSERT_FALSE(outbox_runs.empty());
  // Other tests of this process may have minted some of the run: 20 events span two at most.
  EXPECT_LE(outbox_runs.size(), 2u);
  int total = 0;
  for (const auto& [run, n] : outbox_runs) total += n;
  EXPECT_EQ(total, 20);
}

TEST_F(SubjectVaultTest, InvalidWriteStoresNothingAndListsEveryProblem) {
  auto r = d_->vault().Create(operator_, {"person",
                                          "web_form",
                                          std::nullopt,
                                          {{"email", FieldValue::String("nope")},
                                           {"legal_name", FieldValue::String("ACME")},
                                           {"shoe_size", FieldValue::Number(42)},
                                           {"household_size", FieldValue::String("3")}}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnprocessable);
  std::set<std::string> fields;
  for (const auto& e : r.status().errors()) fields.insert(e.field);
  EXPECT_EQ(fields, (std::set<std::string>{"fields.email", "fields.legal_name", "fields.shoe_size",
                                           "fields.household_size"}));
  EXPECT_EQ(CountSubjects(), 0);
}

TEST_F(SubjectVaultTest, DuplicateUniqueValueConflictsWithTheExistingId) {
  auto first = MustCreate({{"email", FieldValue::String("dup@example.org")}});
  auto second = d_->vault().Create(
      operator_,
      {"person", "import", std::nullopt, {{"email", FieldValue::String(" DUP@example.org")}}});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kConflict);
  ASSERT_EQ(second.status().extras().size(), 1u);
  EXPECT_EQ(second.status().extras()[0].second, first.id);
  EXPECT_EQ(CountSubjects(), 1);
}

TEST_F(SubjectVaultTest, RectifySetsRemovesAndReindexes) {
  auto s = MustCreate({{"email", FieldValue::String("old@example.org")},
                       {"first_name", FieldValue::String("Ana")}});
  auto r = d_->vault().Rectify(
      operator_, s.id,
      {{{"email", FieldValue::String("new@example.org")}, {"first_name", FieldValue::Null()}},
       std::nullopt});
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto read = d_->vault().Read(operator_, s.id, "customer_management");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->fields.count("first_name"), 0u);
  EXPECT_EQ(read->fields.at("email").text, "new@example.org");
  auto old_hit = d_->vault().Search(operator_, "customer_management",
                                    {{"email", FieldValue::String("old@example.org")}});
  ASSERT_TRUE(old_hit.ok());
  EXPECT_TRUE(old_hit->empty());
  auto new_hit = d_->vault().Search(operator_, "customer_management",
                                    {{"email", FieldValue::String("NEW@example.org")}});
  ASSERT_TRUE(new_hit.ok());
  ASSERT_EQ(new_hit->size(), 1u);
  EXPECT_EQ(new_hit->at(0).id, s.id);
  EXPECT_EQ(d_->vault().Rectify(operator_, "sub_00000000000000000000000000", {}).status().code(),
            Code::kNotFound);
}

TEST_F(SubjectVaultTest, SearchIntersectsCriteriaAndRefusesUnindexedFields) {
  auto a = MustCreate({{"email", FieldValue::String("a@example.org")},
                       {"postal_code", FieldValue::String("75011")}});
  MustCreate({{"email", FieldValue::String("b@example.org")},
              {"postal_code", FieldValue::String("75011")}});
  auto both = d_->vault().Search(operator_, "customer_management",
                                 {{"postal_code", FieldValue::String("75011")}});
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->size(), 2u);
  auto one = d_->vault().Search(operator_, "customer_management",
                                {{"postal_code", FieldValue::String("75011")},
                                 {"email", FieldValue::String("a@example.org")}});
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ(one->at(0).id, a.id);
  EXPECT_EQ(
      d_->vault()
          .Search(operator_, "customer_management", {{"first_name", FieldValue::String("Ana")}})
          .status()
          .code(),
      Code::kUnprocessable);
}

TEST_F(SubjectVaultTest, CiphertextCopiedToAnotherSubjectOrFieldReadsAsDamaged) {
  auto a = MustCreate({{"email", FieldValue::String("a@example.org")}});
  auto b = MustCreate(
      {{"email", FieldValue::String("b@example.org")}, {"first_name", FieldValue::String("Bea")}});
  Bytes a_email;
  ASSERT_TRUE(d_->store()
                  .Read([&](ReadTx& tx) {
                    auto f = tx.GetFields(a.id);
                    a_email = f.value().at(0).box;
                    return Status::Ok();
                  })
                  .ok());
  // Onto another subject's same field.
  ASSERT_TRUE(d_->store()
                  .Write([&](WriteTx& tx) {
                    return tx.PutField(b.id, {"email", a_email});
                  })
                  .ok());
  auto r = d_->vault().Read(operator_, b.id, "customer_management");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kDamaged);
  EXPECT_EQ(r.status().message().find("a@example.org"), std::string::npos);
  // Onto another field of the same subject.
  ASSERT_TRUE(d_->store()
                  .Write([&](WriteTx& tx) {
                    return tx.PutField(a.id, {"first_name", a_email});
                  })
                  .ok());
  EXPECT_EQ(d_->vault().Read(operator_, a.id, "customer_management").status().code(),
            Code::kDamaged);
}

TEST_F(SubjectVaultTest, MarketingCannotWrite) {
  Caller marketing{"key_m", "marketing", {"marketing_email"}, "req", ""};
  auto r = d_->vault().Create(marketing, {"person", "api", std::nullopt, {}});
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
}

TEST_F(SubjectVaultTest, RotationRewrapsWithoutChangingFields) {
  auto s = MustCreate({{"email", FieldValue::String("rot@example.org")}});
  Bytes before;
  ASSERT_TRUE(d_->store()
                  .Read([&](ReadTx& tx) {
                    before = tx.GetFields(s.id).value().at(0).box;
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_TRUE(Keyring::AddVersion(cfg_.keyring_path()).ok());
  ASSERT_TRUE(d_->keys().Load().ok());
  auto n = d_->rotation().RewrapAll(10, nullptr);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n.value(), 1);
  auto usage = d_->rotation().Usage();
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->count(1), 0u);
  EXPECT_EQ(usage->at(2), 1);
  Bytes after;
  ASSERT_TRUE(d_->store()
                  .Read([&](ReadTx& tx) {
                    after = tx.GetFields(s.id).value().at(0).box;
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(before, after);  // no field was re-encrypted
  ASSERT_TRUE(Keyring::Retire(cfg_.keyring_path(), 1).ok());
  ASSERT_TRUE(d_->keys().Load().ok());
  auto read = d_->vault().Read(operator_, s.id, "customer_management");
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read->fields.at("email").text, "rot@example.org");
}

}  // namespace
}  // namespace garde

namespace garde {
namespace {

// A keyring reloaded while look-ups run (the keyring watch of `garde serve`): each look-up
// keeps the keys it started with until it is done with them. A look-up that let the old keys
// go while still hashing with them reads freed memory: the ASan and TSan runs of the suite
// report it here.
TEST_F(SubjectVaultTest, LookUpsRunOnWhileTheKeyringIsAppliedAgain) {
  const auto s = MustCreate({{"email", FieldValue::String("ana@example.org")}});
  std::atomic<bool> stop{false};
  std::thread reloads([&] {
    while (!stop) d_->lookup().Apply(*d_->keys().Current());
  });
  int found = 0;
  for (int i = 0; i < 2000; ++i) {
    auto hit = d_->vault().Search(operator_, "customer_management",
                                  {{"email", FieldValue::String("ana@example.org")}});
    if (hit.ok() && hit->size() == 1 && hit->at(0).id == s.id) ++found;
  }
  stop = true;
  reloads.join();
  EXPECT_EQ(found, 2000);
}

// Match keys through a master rotation: computed again under the new master; gone when the
// policies no longer keep them (no matching.yaml), so that the rotation can finish.
class MatchKeyRotationTest : public DeploymentFixture {
 protected:
  // Look-up digests under a master other than `master`.
  int64_t Stale(uint32_t master) {
    int64_t n = -1;
    EXPECT_TRUE(d_->store()
                    .Read([&](ReadTx& tx) {
                      auto c = tx.CountStaleIndexes(master);
                      n = c.ok() ? c.value() : -1;
                      return c.status();
                    })
                    .ok());
    return n;
  }
  void Reindex() {
    auto done = d_->vault().ReindexAll(10);
    ASSERT_TRUE(done.ok()) << done.status().message();
  }
  Caller operator_{"key_op", "operator", {"customer_management"}, "req_t", ""};
};

TEST_F(MatchKeyRotationTest, RotatedWithTheBlindIndexesOrDroppedWhenNoLongerKept) {
  for (const char* name : {"Robert", "Bob", "Alice"}) {
    ASSERT_TRUE(d_->vault()
                    .Create(operator_, {"person",
                                        "web_form",
                                        std::nullopt,
                                        {{"first_name", FieldValue::String(name)},
                                         {"last_name", FieldValue::String("Martin")},
                                         {"postal_code", FieldValue::String("69002")}}})
                    .ok());
  }
  const Caller officer{"key_dpo", "officer", {}, "req_t", ""};
  ASSERT_EQ(d_->vault().Duplicates(officer, "", "", 10)->size(), 1u);
  ASSERT_TRUE(Keyring::AddMaster(cfg_.keyring_path()).ok());
  ASSERT_TRUE(d_->keys().Load().ok());
  EXPECT_EQ(Stale(2), 3 * 3);  // postal code + two match keys each
  Reindex();
  EXPECT_EQ(Stale(2), 0);
  ASSERT_EQ(d_->vault().Duplicates(officer, "", "", 10)->size(), 1u);

  // Policies without matching.yaml, then another rotation: the match keys go.
  namespace fs = std::filesystem;
  const fs::path policies = dir_ / "policies";
  fs::copy(cfg_.policies_dir, policies, fs::copy_options::recursive);
  fs::remove(policies / "matching.yaml");
  auto without = LoadPolicies(policies.string());
  ASSERT_TRUE(without.ok());
  d_->policies().Replace(without.value());
  ASSERT_TRUE(Keyring::RetireMaster(cfg_.keyring_path(), 0).ok());
  ASSERT_TRUE(Keyring::AddMaster(cfg_.keyring_path()).ok());
  ASSERT_TRUE(d_->keys().Load().ok());
  Reindex();
  EXPECT_EQ(Stale(3), 0);
  EXPECT_TRUE(d_->vault().Duplicates(officer, "", "", 10)->empty());
}

}  // namespace
}  // namespace garde

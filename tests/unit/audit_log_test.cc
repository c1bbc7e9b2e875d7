#include "garde/domain/audit_log.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "deployment_fixture.h"
#include "garde/app/deployment.h"
#include "garde/base/encoding.h"

namespace garde {
namespace {

class AuditLogTest : public DeploymentFixture {
 protected:
  void Append(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(d_->audit().Record(nullptr, caller_, {"test.event", "", "", "ok", {"f"}, i}).ok());
    }
  }
  Caller caller_{"key_t", "operator", {}, "req_t", ""};
};

TEST_F(AuditLogTest, EntriesAreCanonicalAndCarryNoValues) {
  const std::string e = AuditLog::Encode(7, 1795341600, caller_,
                                         {"subject.read", "sub_x", "crm", "ok", {"email"}, 1});
  EXPECT_EQ(e,
            R"({"v":1,"seq":7,"time":"2026-11-22T10:00:00Z","actor":"key_t","role":"operator",)"
            R"("action":"subject.read","subject":"sub_x","activity":"crm","request_id":"req_t",)"
            R"("outcome":"ok","fields":["email"],"count":1})");
}

TEST_F(AuditLogTest, StoredTreeMatchesARecomputedTreeAtEverySize) {
  Append(37);
  std::vector<Hash> leaves;
  ASSERT_TRUE(d_->audit().Scan(0, 1000, [&](const AuditRow& r) {
    leaves.push_back(LeafHash(r.entry));
    return true;
  }).ok());
  ASSERT_EQ(leaves.size(), 37u);
  MerkleAccumulator acc;
  for (uint64_t n = 1; n <= leaves.size(); ++n) {
    acc.Add(leaves[n - 1]);
    auto root = d_->audit().Root(n);
    ASSERT_TRUE(root.ok()) << root.status().message();
    EXPECT_EQ(root.value(), acc.Root()) << "size " << n;
    for (uint64_t i = 0; i < n; i += 5) {
      auto proof = d_->audit().InclusionProof(i, n);
      ASSERT_TRUE(proof.ok());
      EXPECT_TRUE(VerifyInclusion(leaves[i], i, n, proof.value(), root.value()));
    }
  }
  auto p = d_->audit().ConsistencyProof(13, 37);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(VerifyConsistency(13, 37, d_->audit().Root(13).value(),
                                d_->audit().Root(37).value(), p.value()));
  EXPECT_EQ(d_->audit().InclusionProof(37, 37).status().code(), Code::kUnprocessable);
  EXPECT_EQ(d_->audit().ConsistencyProof(3, 38).status().code(), Code::kUnprocessable);
}

TEST_F(AuditLogTest, AWriteThatFailsHalfWayLeavesNeitherChangeNorEntry) {
  Append(3);
  Status s = d_->store().Write([&](WriteTx& tx) -> Status {
    SubjectRow row;
    row.id = RandomId("sub_");
    row.kind = "person";
    row.status = "active";
    row.source = "api";
    row.root_key_version = 1;
    row.wrapped_dek = Bytes(73, 1);
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(row));
    GARDE_RETURN_IF_ERROR(d_->audit().Record(&tx, caller_, {"subject.create", row.id, "", "ok", {}, 0}));
    return Internal("forced failure after the data write");
  });
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_EQ(d_->audit().Size().value(), 3u);
  int64_t subjects = -1;
  ASSERT_TRUE(d_->store().Read([&](ReadTx& tx) {
    subjects = tx.CountSubjects().value();
    return Status::Ok();
  }).ok());
  EXPECT_EQ(subjects, 0);
  // The tree is intact: the next entry lands at position 3.
  Append(1);
  EXPECT_EQ(d_->audit().Size().value(), 4u);
  EXPECT_TRUE(VerifyAuditLog(d_->store(), d_->signer().public_key(), d_->signer().origin(), {},
                             nullptr).ok());
}

TEST_F(AuditLogTest, CheckpointsAreSignedAndOnlyOurKeyVerifiesThem) {
  Append(5);
  auto head = d_->audit().Checkpoint();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, 5u);
  auto parsed = ParseCheckpoint(head->note, d_->signer().public_key(), d_->signer().origin());
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->size, 5u);
  EXPECT_EQ(Bytes(parsed->root.begin(), parsed->root.end()), head->root);
  // The same head again: no new checkpoint.
  EXPECT_EQ(d_->audit().Checkpoint()->size, 5u);
  size_t stored = 0;
  ASSERT_TRUE(d_->store().Read([&](ReadTx& tx) {
    stored = tx.ListCheckpoints().value().size();
    return Status::Ok();
  }).ok());
  EXPECT_EQ(stored, 1u);
  EXPECT_EQ(d_->audit().LatestCheckpoint().value()->size, 5u);

  std::string forged = head->note;
  forged[forged.find('\n') + 1] = '9';  // claim another size
  EXPECT_FALSE(ParseCheckpoint(forged, d_->signer().public_key(), d_->signer().origin()).ok());
  PublicKey other{};
  other[0] = 1;
  EXPECT_FALSE(ParseCheckpoint(head->note, other, d_->signer().origin()).ok());
}

}  // namespace
}  // namespace garde

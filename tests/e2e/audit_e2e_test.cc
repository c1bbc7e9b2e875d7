// The audit log as an officer and an authority use it: who accessed whom for what, signed
// checkpoints, proofs, offline verification, and every kind of tampering detected.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "garde/base/encoding.h"
#include "garde/crypto/merkle.h"
#include "garde_process.h"

namespace garde::testing {
namespace {

class AuditE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management"});
    marketing_key_ = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
    officer_key_ = g_.CreateKey("dpo", "officer", {});
    auditor_key_ = g_.CreateKey("authority", "auditor", {});
    g_.Start();
  }
  std::string CreateSubject(const std::string& email) {
    HttpReply r =
        g_.Post("/v1/subjects",
                R"({"kind":"person","fields":{"email":")" + email + R"(","first_name":"Ana"}})",
                operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonString(r.body, "id");
  }
  GardeProcess g_;
  std::string operator_key_, marketing_key_, officer_key_, auditor_key_;
};

TEST_F(AuditE2E, OfficerListsWhoAccessedACustomerAndForWhichActivity) {
  const std::string id = CreateSubject("ana@example.org");
  CreateSubject("other@example.org");
  ASSERT_EQ(
      g_.Post(
            "/v1/subjects/" + id + "/consents",
            R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})",
            operator_key_)
          .status,
      201);
  ASSERT_EQ(g_.Get("/v1/subjects/" + id, marketing_key_, "marketing_email").status, 200);
  ASSERT_EQ(g_.Get("/v1/subjects/" + id, marketing_key_, "customer_management").status, 403);
  const std::string marketing_id = g_.Sql("SELECT id FROM api_keys WHERE role = 'marketing'")[0][0];

  HttpReply r = g_.Get("/v1/audit?subject=" + id, officer_key_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"("action":"subject.create")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("actor":")" + marketing_id +
                        R"(","role":"marketing","action":"subject.read","subject":")" + id +
                        R"(","activity":"marketing_email")"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find(R"("action":"access.denied")"), std::string::npos);  // refusals too
  EXPECT_EQ(r.body.find("other@"), std::string::npos);
  EXPECT_EQ(r.body.find("ana@"), std::string::npos);  // names and ids, never values

  // Filters and pagination.
  r = g_.Get("/v1/audit?action=subject.create&limit=1", auditor_key_);
  ASSERT_EQ(r.status, 200);
  const std::string cursor = JsonString(r.body, "next_cursor");
  ASSERT_FALSE(cursor.empty()) << r.body;
  r = g_.Get("/v1/audit?action=subject.create&limit=1&cursor=" + cursor, auditor_key_);
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("subject.create"), std::string::npos);
  EXPECT_EQ(JsonString(r.body, "next_cursor"), "");

  // Roles and bad parameters.
  EXPECT_EQ(g_.Get("/v1/audit", operator_key_).status, 403);
  EXPECT_EQ(g_.Get("/v1/audit", marketing_key_).status, 403);
  EXPECT_EQ(g_.Get("/v1/audit", "").status, 401);
  EXPECT_EQ(g_.Get("/v1/audit?limit=0", auditor_key_).status, 422);
  EXPECT_EQ(g_.Get("/v1/audit?since=yesterday", auditor_key_).status, 422);
  EXPECT_EQ(g_.Get("/v1/audit?cursor=bm90LWEtY3Vyc29y", auditor_key_).status, 422);
  EXPECT_EQ(g_.Get("/v1/audit?cursor=%%%", auditor_key_).status, 400);  // malformed URI
  EXPECT_EQ(g_.Get("/v1/audit/proof/inclusion?index=x&size=1", auditor_key_).status, 422);
  EXPECT_EQ(g_.Get("/v1/audit/proof/inclusion?index=5&size=2", auditor_key_).status, 422);
  EXPECT_EQ(g_.Get("/v1/audit/proof/consistency?from=9&to=2", auditor_key_).status, 422);
}

TEST_F(AuditE2E, SignedCheckpointAndProofsVerifyAgainstThePublicKey) {
  for (int i = 0; i < 12; ++i) CreateSubject("p" + std::to_string(i) + "@example.org");
  HttpReply keys = g_.Get("/v1/keys/public", "");
  ASSERT_EQ(keys.status, 200);
  EXPECT_EQ(JsonString(keys.body, "algorithm"), "Ed25519");
  HttpReply cp = g_.Get("/v1/audit/checkpoint", auditor_key_);
  ASSERT_EQ(cp.status, 200) << cp.body;
  EXPECT_NE(JsonString(cp.body, "checkpoint").find("\xE2\x80\x94 garde/"), std::string::npos);

  // The independent verifier, in another language, from the documented formats only.
  RunResult py = RunProgram({"/usr/bin/python3", GARDE_VERIFIER,
                             "http://127.0.0.1:" + std::to_string(g_.port()), auditor_key_});
  EXPECT_EQ(py.exit_code, 0) << py.out << py.err;
  EXPECT_NE(py.out.find("root, signature and actor counts OK"), std::string::npos)
      << py.out << py.err;
}

// Copies the stopped service's data directory, applies `tamper`, runs `garde audit verify`.
class TamperMatrix : public AuditE2E {
 protected:
  void SetUp() override {
    AuditE2E::SetUp();
    for (int i = 0; i < 10; ++i) {
      const std::string id = CreateSubject("t" + std::to_string(i) + "@example.org");
      ASSERT_EQ(g_.Get("/v1/subjects/" + id, operator_key_, "customer_management").status, 200);
    }
    HttpReply cp = g_.Get("/v1/audit/checkpoint", auditor_key_);
    ASSERT_EQ(cp.status, 200);
    saved_checkpoint_ = g_.data_dir() + "-logs/saved-checkpoint.txt";
    std::ofstream(saved_checkpoint_) << JsonString(cp.body, "checkpoint");
    ASSERT_EQ(g_.Stop(), 0);
    size_ = std::stoull(g_.AuditSql("SELECT COUNT(*) FROM audit_log")[0][0]);
    ASSERT_GT(size_, 20u);
  }
  RunResult Verify(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"audit",       "verify",     "--data-dir",
                                     g_.data_dir(), "--policies", g_.policies()};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunGarde(args);
  }
  void ExpectDetected(const std::string& what) {
    RunResult r = Verify();
    EXPECT_EQ(r.exit_code, 1) << r.out;
    EXPECT_NE(r.out.find("FAILED"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(what), std::string::npos) << r.out;
  }
  std::string saved_checkpoint_;
  uint64_t size_ = 0;
};

TEST_F(TamperMatrix, UntouchedLogVerifies) {
  RunResult r = Verify({"--checkpoint", saved_checkpoint_});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("audit log verified: " + std::to_string(size_) + " entries"),
            std::string::npos)
      << r.out;
}

TEST_F(TamperMatrix, OneChangedByteIsDetected) {
  g_.AuditSql(
      "UPDATE audit_log SET entry = replace(entry, '\"outcome\":\"ok\"', '\"outcome\":\"ko\"') "
      "WHERE seq = 7");
  ExpectDetected("entry 7 was changed");
}

TEST_F(TamperMatrix, ChangeWithRecomputedLeafHashIsCaughtByTheSignedRoot) {
  const std::string entry = g_.AuditSql("SELECT entry FROM audit_log WHERE seq = 7")[0][0];
  std::string forged = entry;
  forged.replace(forged.find("\"outcome\":\"ok\""), 14, "\"outcome\":\"ko\"");
  const Hash h = LeafHash(forged);
  g_.AuditSql("UPDATE audit_log SET entry = '" + forged + "', leaf_hash = X'" +
              HexEncode(h.data(), h.size()) + "' WHERE seq = 7");
  ExpectDetected("do not match the signed checkpoint");
}

TEST_F(TamperMatrix, SearchColumnPointingElsewhereIsDetected) {
  // Hiding an access from "who read this customer" by editing the look-up column only.
  const std::string seq =
      g_.AuditSql("SELECT MIN(seq) FROM audit_log WHERE subject IS NOT NULL")[0][0];
  g_.AuditSql("UPDATE audit_log SET subject = 'sub_00000000000000000000000000' WHERE seq = " + seq);
  ExpectDetected("entry " + seq + ": its search column names another subject");
}

TEST_F(TamperMatrix, DeletedEntryIsDetected) {
  g_.AuditSql("DELETE FROM audit_log WHERE seq = 5");
  ExpectDetected("entry 5 is missing");
}

TEST_F(TamperMatrix, SwappedEntriesAreDetected) {
  g_.AuditSql(
      "UPDATE audit_log SET seq = -1 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4;"
      " UPDATE audit_log SET seq = 4 WHERE seq = -1");
  ExpectDetected("entry 3 holds another position's record");
}

TEST_F(TamperMatrix, InsertedEntryIsDetected) {
  g_.AuditSql(
      "UPDATE audit_log SET seq = seq + 1000000 WHERE seq >= 4;"
      " UPDATE audit_log SET seq = seq - 999999 WHERE seq >= 1000000;"
      " INSERT INTO audit_log(seq, entry, leaf_hash) SELECT 4, entry, leaf_hash FROM audit_log"
      " WHERE seq = 5");
  ExpectDetected("entry 5 holds another position's record");
}

TEST_F(TamperMatrix, TruncatedTailIsDetected) {
  g_.AuditSql("DELETE FROM audit_log WHERE seq >= " + std::to_string(size_ - 3));
  ExpectDetected("truncated");
}

TEST_F(TamperMatrix, TruncationWithCheckpointsDeletedIsCaughtByACheckpointKeptElsewhere) {
  g_.AuditSql("DELETE FROM audit_log WHERE seq >= " + std::to_string(size_ - 3) +
              "; DELETE FROM audit_checkpoints");
  EXPECT_EQ(Verify().exit_code, 0);  // nothing left in the file to contradict it ...
  RunResult r = Verify({"--checkpoint", saved_checkpoint_});
  EXPECT_EQ(r.exit_code, 1);  // ... but the checkpoint the officer kept does
  EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
}

TEST_F(TamperMatrix, ForgedCheckpointSignatureIsDetected) {
  std::string note =
      g_.AuditSql("SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1")[0][0];
  const size_t sig = note.rfind(' ') + 10;
  note[sig] = note[sig] == 'A' ? 'B' : 'A';
  g_.AuditSql("UPDATE audit_checkpoints SET note = '" + note +
              "' WHERE size = (SELECT MAX(size) FROM "
              "audit_checkpoints)");
  ExpectDetected("signature does not verify");
}

TEST_F(TamperMatrix, CheckpointFromAnotherKeyringIsDetected) {
  GardeProcess other;
  RunResult made = RunGarde(
      {"audit", "checkpoint", "--data-dir", other.data_dir(), "--policies", other.policies()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  // Re-label the foreign note with our origin so only the key differs.
  const std::string ours = g_.AuditSql("SELECT note FROM audit_checkpoints LIMIT 1")[0][0];
  const std::string our_origin = ours.substr(0, ours.find('\n'));
  std::string foreign = made.out;
  const std::string their_origin = foreign.substr(0, foreign.find('\n'));
  for (size_t at; (at = foreign.find(their_origin)) != std::string::npos;) {
    foreign.replace(at, their_origin.size(), our_origin);
  }
  g_.AuditSql("UPDATE audit_checkpoints SET note = '" + foreign +
              "' WHERE size = (SELECT MAX(size) "
              "FROM audit_checkpoints)");
  ExpectDetected("checkpoint at size");
}

}  // namespace
}  // namespace garde::testing

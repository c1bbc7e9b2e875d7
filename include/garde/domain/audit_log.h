// The audit log: every access event appended as an RFC 6962 Merkle-tree leaf, in the same
// transaction as the change it records, with signed checkpoints and proofs.
//
//   AuditLog audit(store, clock, signer);
//   audit.Record(&tx, caller, event);          // inside a write: atomic with it
//   Result<CheckpointRow> head = audit.Checkpoint();
//   Result<std::vector<Hash>> p = audit.InclusionProof(index, size);
//
// Entry encoding (the bytes hashed into the tree): one JSON object, no white space, members
// in this order: v, seq, time, actor, role, action, subject, activity, request_id, outcome,
// fields, count. Strings escaped as in RFC 8259 with only '"', '\\' and control characters
// escaped; absent values are null. See docs/audit.md.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "garde/base/clock.h"
#include "garde/crypto/checkpoint_signer.h"
#include "garde/crypto/merkle.h"
#include "garde/domain/access_journal.h"
#include "garde/store/store.h"

namespace garde {

class AuditLog final : public AccessJournal {
 public:
  AuditLog(Store& store, const Clock& clock, const CheckpointSigner& signer)
      : store_(store), clock_(clock), signer_(signer) {}

  // Appends inside `tx`, or in a transaction of its own when tx is null.
  Status Record(WriteTx* tx, const Caller& caller, const AccessEvent& event) override;
  // The canonical entry bytes.
  static std::string Encode(uint64_t seq, int64_t time, const Caller& caller,
                            const AccessEvent& event);

  Result<uint64_t> Size();
  // Signs the current tree head unless the latest checkpoint already covers it.
  Result<CheckpointRow> Checkpoint();
  Result<std::optional<CheckpointRow>> LatestCheckpoint();
  Result<Hash> Root(uint64_t size);
  Result<std::vector<Hash>> InclusionProof(uint64_t index, uint64_t size);
  Result<std::vector<Hash>> ConsistencyProof(uint64_t from, uint64_t to);
  Result<std::vector<AuditRow>> Query(const AuditQuery& query);
  Status Scan(uint64_t from, uint64_t to, const std::function<bool(const AuditRow&)>& fn);

  const CheckpointSigner& signer() const { return signer_; }

 private:
  Status Append(WriteTx& tx, const Caller& caller, const AccessEvent& event);

  Store& store_;
  const Clock& clock_;
  const CheckpointSigner& signer_;
};

struct AuditVerification {
  uint64_t entries = 0;
  uint64_t checkpoints = 0;
  std::vector<std::string> problems;  // empty when the log verifies
  bool ok() const { return problems.empty(); }
};

// Offline verification: recomputes every leaf and the tree, checks each stored checkpoint's
// signature and root (and any extra checkpoint notes given), detects changed, missing,
// moved, inserted and truncated entries. `progress` is called with entries read so far.
AuditVerification VerifyAuditLog(Store& store, const PublicKey& key, const std::string& origin,
                                  const std::vector<std::string>& extra_checkpoints,
                                  const std::function<void(uint64_t)>& progress);

}  // namespace garde

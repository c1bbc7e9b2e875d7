// Merging likely duplicates: two records of one customer become one (docs/duplicates.md).
//
//   SubjectMerges merges(deps);
//   Result<MergeRow> m = merges.Merge(caller, "sub_B", {.into = "sub_A"});
//   merges.Revert(caller, m->id);    // while not completed: both records as they were
//   merges.Complete(caller, m->id);  // the merged record's data destroyed; its id redirects
//
// A merge moves onto the survivor the merged record's fields it lacks (or, named in `prefer`,
// the merged record's value over its own), its data-subject requests and its contact links,
// and makes each consent decision the most protective of the two (consent_merge.h). The
// merged record stops answering: its look-ups and match keys are taken away, its status is
// `merged`, reads of it redirect (308), consent checks of it answer `merged`, and the
// customer's links to it act on the survivor. Until completion its sealed fields stay, so
// that a revert can put it back; an erasure of the survivor completes its merges first.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "garde/base/clock.h"
#include "garde/domain/access_journal.h"
#include "garde/domain/consent_ledger.h"
#include "garde/domain/subject_vault.h"
#include "garde/policy/policy_holder.h"
#include "garde/store/store.h"

namespace garde {

struct MergeRequest {
  std::string into;
  // field -> "merged": take the merged record's value although the survivor has one;
  // "survivor" (the default): keep the survivor's.
  std::map<std::string, std::string> prefer;
};

struct MergeDeps {
  Store& store;
  const PolicyHolder& policies;
  SubjectVault& vault;
  const ConsentLedger& consents;
  AccessJournal& journal;
  const Clock& clock;
};

class SubjectMerges {
 public:
  explicit SubjectMerges(MergeDeps deps) : d_(deps) {}

  // Needs subjects.merge. Both subjects active, of one kind, distinct; 409 otherwise.
  Result<MergeRow> Merge(const Caller& caller, const std::string& merged_id,
                         const MergeRequest& request);
  // Puts both records back as far as nothing has changed them since: fields the merge brought
  // and still there, consent decisions the merge changed and nothing recorded since (an
  // objection carried over stays), requests and links moved. 409 once completed or reverted.
  Result<MergeRow> Revert(const Caller& caller, const std::string& merge_id);
  // Destroys the merged record's data (its data key: crypto-shredding); the id keeps
  // redirecting. 409 unless the merge is `merged`.
  Result<MergeRow> Complete(const Caller& caller, const std::string& merge_id);
  Result<MergeRow> Get(const Caller& caller, const std::string& merge_id);

  // The subject a merged id now is (following merges of merges), or nullopt when `id` is not
  // merged. Reads only ids and states.
  Result<std::optional<std::string>> SurvivorOf(const std::string& id);
  // Completes every merge into `into` still open, inside the caller's transaction; with
  // `erase_history` (an erasure of the survivor: the merged records are the same customer's
  // data) their consent histories go too. What a restore must erase again goes to *kept.
  // Completes `merge` (state `merged`) inside the caller's transaction (the retention sweep,
  // once the revert period is over).
  static Status CompleteIn(WriteTx& tx, const SubjectVault& vault, MergeRow merge, int64_t now,
                           TombstoneEntries* kept);
  static Status CompleteMergesIn(WriteTx& tx, const SubjectVault& vault, const std::string& into,
                                 int64_t now, bool erase_history, TombstoneEntries* kept);

 private:
  // Needs subjects.merge; runs `step` in one write transaction, then keeps the tombstones.
  using Step = std::function<Status(WriteTx&, const PolicySet&, MergeRow&, TombstoneEntries&)>;
  Result<MergeRow> Change(const Caller& caller, const Step& step);
  MergeDeps d_;
};

// A merge as the API shows it.
void WriteMergeJson(JsonWriter& w, const MergeRow& m);

}  // namespace garde

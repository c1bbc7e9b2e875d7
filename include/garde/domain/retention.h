// Retention that runs (Art. 5(1)(e)): each activity of the register keeps the fields it lists
// for its rule's period from the rule's anchor; a field no activity still justifies is erased,
// a subject none justifies is erased whole (crypto-shredding), and the fields an erasure kept
// under a legal hold are destroyed the day the hold ends. The sweep also reports consents past
// their validity and requests near their deadline, as events for downstream systems.
//
//   RetentionPlan plan = PlanRetention(policies, facts, at);   // pure: what is due for one subject
//   RetentionSweep sweep(deps);
//   auto run = sweep.Run({.at = now, .dry_run = false});        // resumable, audited
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "garde/base/clock.h"
#include "garde/base/status.h"
#include "garde/domain/access_journal.h"
#include "garde/domain/consent_ledger.h"
#include "garde/domain/subject_vault.h"
#include "garde/domain/tombstone_log.h"
#include "garde/policy/policy_holder.h"
#include "garde/store/store.h"

namespace garde {

// What the rules need of one subject.
struct RetentionFacts {
  std::string status;         // active | restricted | erased
  std::string kind;           // person | organization
  bool held_erasure = false;  // restricted by an erasure that kept fields under a hold
  int64_t created_at = 0;
  int64_t last_interaction_at = 0;
  std::set<std::string> fields;          // present schema fields
  std::map<std::string, int64_t> dates;  // date fields present, as UTC midnight
  // Per activity resting on consent: when its consent ended (kStillGiven while it holds; no
  // entry when it was never given).
  std::map<std::string, int64_t> consent_ended;
  std::optional<int64_t> request_closed_at;  // the subject's last closed request
  static constexpr int64_t kStillGiven = INT64_MAX;
};

struct RetentionPlan {
  enum class Action { kNothing, kEraseFields, kEraseSubject, kReleaseHold };
  Action action = Action::kNothing;
  std::set<std::string> erase;  // kEraseFields: the fields
  // Which activity's rule ran out last for each erased field (and for the subject as a
  // whole under "*"): the report counts by it.
  std::map<std::string, std::string> because;
};

// Whether an activity concerns subjects of `kind`: it does unless every field of it that is
// specific to some kinds (schema `kinds`) is specific to others — a business account keeps
// nothing of a person.
bool ActivityConcerns(const PolicySet& policies, const Activity& activity, const std::string& kind);

// Until when each present field is justified, by which activity; fields absent from the map
// are justified by none. Held erasures count only legal obligations.
struct Justification {
  int64_t until = 0;
  std::string activity;
};
std::map<std::string, Justification> JustifiedFields(const PolicySet& policies,
                                                     const RetentionFacts& facts);
RetentionPlan PlanRetention(const PolicySet& policies, const RetentionFacts& facts, int64_t at);

struct RetentionDeps {
  Store& store;
  const PolicyHolder& policies;
  SubjectVault& vault;
  AccessJournal& journal;
  const Clock& clock;
  const TombstoneLog* tombstones = nullptr;
  int64_t due_warning = 7 * 86400;           // requests due within this raise request.due_soon
  int64_t merge_revert_period = 30 * 86400;  // merges older than this are completed
};

struct RetentionRunOptions {
  int64_t at = 0;  // evaluate the rules at this time (0: now)
  bool dry_run = false;
  size_t page = 500;
  std::function<void(int64_t done, int64_t total)> progress;
};

class RetentionSweep {
 public:
  explicit RetentionSweep(RetentionDeps deps) : d_(deps) {}
  // Runs a sweep, or resumes the newest one a crash interrupted (same `at`). Returns the run;
  // kConflict while another sweep of this process runs.
  Result<RetentionRunRow> Run(const RetentionRunOptions& options);
  Result<std::vector<RetentionRunRow>> List(int64_t before_seq, size_t limit);
  Result<std::optional<RetentionRunRow>> Get(const std::string& id);

 private:
  RetentionDeps d_;
  std::mutex running_;  // one sweep at a time in a process
};

}  // namespace garde

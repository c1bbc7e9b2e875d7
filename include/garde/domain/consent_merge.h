// Consent when two records of one customer are merged, and when the merge is reverted.
//
// The ledger is append-only, so a merge changes the survivor's decisions by appending
// corrective events, all at one time, in an order that makes each (purpose, channel) decision
// come out as wanted: the purpose as a whole first, then each channel.
//
//   for (const ConsentCorrection& c : MergeCorrections(survivor, merged, policies)) record(c);
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "garde/domain/consent_decision.h"
#include "garde/store/store.h"

namespace garde {

struct ConsentCorrection {
  std::string purpose;
  std::string channel;  // empty: the purpose as a whole
  ConsentEventType type = ConsentEventType::kWithdrawn;
  int64_t expires_at = 0;      // a grant carried over keeps its own end
  std::string notice_version;  // ... and the notice it was given under
};

// The most protective of the two subjects' current states, per purpose and decision channel,
// for the purposes that rest on the subject's choice (consent, legitimate interests): a "no"
// on either side wins; else a grant on either side (the later-ending one); else nothing.
// An objection to direct marketing on the merged side is carried over as such (Art. 21(3):
// it denies every marketing purpose, so marketing purposes need nothing else).
std::vector<ConsentCorrection> MergeCorrections(const std::vector<ConsentEventRow>& survivor,
                                                const std::vector<ConsentEventRow>& merged,
                                                const PolicySet& policies);

// What undoes a merge's effect on the survivor: each (purpose, channel) the merge changed and
// nothing has touched since goes back to the survivor's state before the merge; everything
// else stays as it is. Events at or after `merged_at` other than the merge's own count as
// touching, except those named in `before_merge` (recorded before it in its last second). An
// objection the merge carried stays (a "no" to direct marketing is never undone on the customer's
// behalf), so marketing purposes are left alone when it is there. Where the state before was
// "nothing", a consent purpose gets a withdrawal (still denied) and a legitimate-interests purpose
// a grant (allowed again, as it was).
std::vector<ConsentCorrection> RevertCorrections(const std::vector<ConsentEventRow>& survivor,
                                                 int64_t merged_at,
                                                 const std::set<std::string>& before_merge,
                                                 const std::set<std::string>& merge_events,
                                                 const PolicySet& policies);

}  // namespace garde

// The decision rule of SPEC §2.2: "may I process subject S for purpose P on channel C now?"
// A pure function of the subject's status, suppression, and consent history.
//
//   ConsentDecision d = Decide(status, suppressed, events, policies, purpose, "email", now);
//   d.allowed; d.reason;   // "consent_granted", "consent_withdrawn", "objected", ...
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "garde/base/byte_codec.h"
#include "garde/policy/policy_set.h"

namespace garde {

enum class ConsentEventType { kGranted, kWithdrawn, kRefused, kObjected };
const char* ConsentEventName(ConsentEventType t);
bool ParseConsentEventType(const std::string& s, ConsentEventType* out);

struct ConsentEvent {
  std::string id;
  std::string subject_id;
  std::string purpose;
  std::string channel;  // empty: all channels of the purpose
  ConsentEventType type = ConsentEventType::kGranted;
  std::string legal_basis;
  std::string notice_version;
  std::string method;
  std::string actor;
  int64_t at = 0;
  int64_t expires_at = 0;  // 0: no expiry
  std::string receipt;     // signed receipt JSON
  // Double opt-in: set instead of an event when the grant waits for the customer's click
  // (nothing was recorded in the history yet).
  std::string confirmation_id;
  int64_t confirmation_expires_at = 0;
};

// What a decision reads of an event.
struct ConsentFact {
  std::string purpose;
  std::string channel;  // empty: all channels of the purpose
  ConsentEventType type = ConsentEventType::kGranted;
  int64_t at = 0;
  int64_t expires_at = 0;  // 0: no expiry
};

// What decisions need of one subject, as kept in memory between decisions.
struct ConsentFacts {
  std::string status;                            // active | restricted | erased
  std::vector<std::string> suppressed_contacts;  // "email", "phone": digest suppressed
  std::vector<ConsentFact> events;               // in recording order, without receipts
};

// The facts as bytes, the form in which they are kept for every subject (the consent
// ledger's cache, the audience index's records and snapshot): about 12 bytes for one event
// of a usual purpose and channel, where the structure takes two blocks of 96.
void WriteConsentFacts(ByteWriter& w, const ConsentFacts& facts);
// Reads what WriteConsentFacts wrote into *out, reusing its capacity; with out null, only
// checks and skips it. False when the bytes are not such facts.
bool ReadConsentFacts(ByteReader& r, ConsentFacts* out);

struct ConsentDecision {
  bool allowed = false;
  std::string reason;      // stable machine word
  std::string basis;       // legal basis applied
  int64_t since = 0;       // time of the event the answer rests on (0: none)
  int64_t expires_at = 0;  // 0: none
};

// Art. 21(3): an objection to direct marketing is absolute — any `objected` event on a
// marketing purpose denies every marketing purpose.
// `status`: active | restricted | erased; `suppressed`: the asked channel's contact is on the
// suppression list; `events`: the subject's events in recording order.
ConsentDecision Decide(const std::string& status, bool suppressed,
                       const std::vector<ConsentFact>& events, const PolicySet& policies,
                       const Purpose& purpose, const std::string& channel, int64_t now);

// Whether an event recorded on `event_channel` answers a decision on `channel`: an event for
// the purpose as a whole ("") answers every channel; a channel's event answers that channel
// only, and never the purpose as a whole.
inline bool EventAnswers(std::string_view event_channel, std::string_view channel) {
  return event_channel.empty() || event_channel == channel;
}

// The channels a purpose is decided on: "" (the purpose as a whole) and each declared channel.
std::vector<std::string> DecisionChannels(const Purpose& purpose);

// Whether the consent events alone leave `purpose` open on at least one channel or for the
// purpose as a whole (status and suppression aside). "Saying no works everywhere": a
// customer's "no" to a purpose is recorded whenever this is true, so a channel grant can no
// longer outlive an unsubscribe-all, a preference-centre "off" or a GPC signal.
bool ConsentOpenOnAnyChannel(const std::vector<ConsentFact>& events, const PolicySet& policies,
                             const Purpose& purpose, int64_t now);

// Whether an activity's purposes rest on the data subject's choice: consent or legitimate
// interests (an objection or withdrawal stops them), or direct marketing (Art. 21(3)).
bool ActivityNeedsConsent(const PolicySet& policies, const Activity& activity);

}  // namespace garde

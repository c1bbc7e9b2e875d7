#include "garde/domain/consent_decision.h"

#include <iterator>

namespace garde {

const char* ConsentEventName(ConsentEventType t) {
  switch (t) {
    case ConsentEventType::kGranted: return "granted";
    case ConsentEventType::kWithdrawn: return "withdrawn";
    case ConsentEventType::kRefused: return "refused";
    case ConsentEventType::kObjected: return "objected";
  }
  return "granted";
}

bool ParseConsentEventType(const std::string& s, ConsentEventType* out) {
  for (auto t : {ConsentEventType::kGranted, ConsentEventType::kWithdrawn,
                 ConsentEventType::kRefused, ConsentEventType::kObjected}) {
    if (s == ConsentEventName(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

namespace {

// The usual statuses as one byte; any other is written out after kOtherStatus.
constexpr const char* kStatuses[] = {"active", "restricted", "erased"};
constexpr uint8_t kOtherStatus = 0xff;

// The words most facts repeat — the purposes and channels of the shipped policies, the
// contacts — one byte each instead of their letters (a million subjects' events keep
// "marketing.email" a million times). A word is written as Var(2 × its place here + 1), any
// other text as Var(2 × its length) and its bytes. Only ever appended to: a word's place is
// its code in the audience index's snapshots.
constexpr std::string_view kWords[] = {"email",           "sms",
                                       "phone",           "post",
                                       "marketing.email", "marketing.sms",
                                       "marketing.phone", "marketing.post",
                                       "profiling",       "partners.sharing",
                                       "service.orders",  "service.invoicing",
                                       "loyalty",         "rights.handling",
                                       "security.logging"};

void WriteWord(ByteWriter& w, std::string_view s) {
  for (size_t k = 0; k < std::size(kWords); ++k) {
    if (s == kWords[k]) {
      w.Var(2 * k + 1);
      return;
    }
  }
  w.Var(2 * uint64_t{s.size()}).Bytes(s);
}

// What WriteWord wrote, as a view of the bytes or of the word; false when it is neither.
bool ReadWord(ByteReader& r, std::string_view* out) {
  const uint64_t v = r.Var();
  if (r.failed()) return false;
  if (v % 2 == 1) {
    if (v / 2 >= std::size(kWords)) return false;
    *out = kWords[v / 2];
    return true;
  }
  *out = r.Bytes(v / 2);
  return !r.failed();
}

}  // namespace

void WriteConsentFacts(ByteWriter& w, const ConsentFacts& f) {
  uint8_t status = kOtherStatus;
  for (uint8_t k = 0; k < std::size(kStatuses); ++k) {
    if (f.status == kStatuses[k]) status = k;
  }
  w.U8(status);
  if (status == kOtherStatus) w.VStr(f.status);
  w.Var(f.suppressed_contacts.size());
  for (const auto& c : f.suppressed_contacts) WriteWord(w, c);
  w.Var(f.events.size());
  for (const auto& e : f.events) {
    WriteWord(w, e.purpose);
    WriteWord(w, e.channel);
    w.U8(static_cast<uint8_t>(e.type)).SVar(e.at).SVar(e.expires_at);
  }
}

bool ReadConsentFacts(ByteReader& r, ConsentFacts* out) {
  const uint8_t status = r.U8();
  if (status == kOtherStatus) {
    const std::string_view s = r.VStr();
    if (out != nullptr) out->status.assign(s.data(), s.size());
  } else if (status < std::size(kStatuses)) {
    if (out != nullptr) out->status = kStatuses[status];
  } else {
    return false;
  }
  // Counts are checked against the bytes left (each entry takes one at least) before any
  // room is made for them.
  const uint64_t contacts = r.Var();
  if (r.failed() || contacts > r.input().size() - r.at()) return false;
  if (out != nullptr) out->suppressed_contacts.resize(contacts);
  for (uint64_t k = 0; k < contacts; ++k) {
    std::string_view c;
    if (!ReadWord(r, &c)) return false;
    if (out != nullptr) out->suppressed_contacts[k].assign(c.data(), c.size());
  }
  const uint64_t events = r.Var();
  if (r.failed() || events > r.input().size() - r.at()) return false;
  if (out != nullptr) out->events.resize(events);
  for (uint64_t k = 0; k < events && !r.failed(); ++k) {
    std::string_view purpose, channel;
    if (!ReadWord(r, &purpose) || !ReadWord(r, &channel)) return false;
    const uint8_t type = r.U8();
    if (type > static_cast<uint8_t>(ConsentEventType::kObjected)) return false;
    const int64_t at = r.SVar();
    const int64_t expires_at = r.SVar();
    if (out != nullptr) {
      ConsentFact& e = out->events[k];
      e.purpose.assign(purpose.data(), purpose.size());
      e.channel.assign(channel.data(), channel.size());
      e.type = static_cast<ConsentEventType>(type);
      e.at = at;
      e.expires_at = expires_at;
    }
  }
  return !r.failed();
}

ConsentDecision Decide(const std::string& status, bool suppressed,
                       const std::vector<ConsentFact>& events, const PolicySet& policies,
                       const Purpose& purpose, const std::string& channel, int64_t now) {
  ConsentDecision d;
  d.basis = LegalBasisName(purpose.legal_basis);
  // erased | restricted | merged (the customer's record is now another: ask with its id);
  // a status this code does not know denies too.
  if (status != "active") {
    d.reason = status.empty() ? "unknown_status" : status;
    return d;
  }
  // The suppression list stops marketing contact; it does not stop an order confirmation or
  // a legally required notice (see docs/api.md, "Choices").
  if (suppressed && purpose.marketing) {
    d.reason = "suppressed";
    return d;
  }
  // The latest event for this purpose on this channel or on all channels; and any
  // objection to direct marketing.
  const ConsentFact* latest = nullptr;
  const ConsentFact* marketing_objection = nullptr;
  for (const auto& e : events) {
    if (e.type == ConsentEventType::kObjected) {
      const Purpose* p = policies.FindPurpose(e.purpose);
      if (p != nullptr && p->marketing &&
          (marketing_objection == nullptr || e.at >= marketing_objection->at)) {
        marketing_objection = &e;
      }
    }
    if (e.purpose != purpose.id || !EventAnswers(e.channel, channel)) continue;
    // Events come in recording order: on equal times the later-recorded one wins.
    if (latest == nullptr || e.at >= latest->at) latest = &e;
  }
  if (purpose.marketing && marketing_objection != nullptr) {
    d.reason = "objected";
    d.since = marketing_objection->at;
    return d;
  }
  switch (purpose.legal_basis) {
    case LegalBasis::kConsent:
      if (latest == nullptr) {
        d.reason = "no_consent";
      } else if (latest->type == ConsentEventType::kGranted) {
        d.since = latest->at;
        d.expires_at = latest->expires_at;
        if (latest->expires_at != 0 && latest->expires_at <= now) {
          d.reason = "consent_expired";
        } else {
          d.allowed = true;
          d.reason = "consent_granted";
        }
      } else {
        d.since = latest->at;
        d.reason = latest->type == ConsentEventType::kWithdrawn ? "consent_withdrawn"
                   : latest->type == ConsentEventType::kRefused ? "consent_refused"
                                                                : "objected";
      }
      return d;
    case LegalBasis::kLegitimateInterests:
      if (latest != nullptr && (latest->type == ConsentEventType::kWithdrawn ||
                                latest->type == ConsentEventType::kObjected ||
                                latest->type == ConsentEventType::kRefused)) {
        d.since = latest->at;
        d.reason = latest->type == ConsentEventType::kObjected  ? "objected"
                   : latest->type == ConsentEventType::kRefused ? "consent_refused"
                                                                : "consent_withdrawn";
        return d;
      }
      d.allowed = true;
      d.reason = "legitimate_interest";
      if (latest != nullptr) d.since = latest->at;
      return d;
    case LegalBasis::kContract:
      d.allowed = true;
      d.reason = "contract";
      return d;
    case LegalBasis::kLegalObligation:
      d.allowed = true;
      d.reason = "legal_obligation";
      return d;
    case LegalBasis::kVitalInterests:
      d.allowed = true;
      d.reason = "vital_interests";
      return d;
    case LegalBasis::kPublicTask:
      d.allowed = true;
      d.reason = "public_task";
      return d;
  }
  return d;
}

std::vector<std::string> DecisionChannels(const Purpose& purpose) {
  std::vector<std::string> out{""};
  out.insert(out.end(), purpose.channels.begin(), purpose.channels.end());
  return out;
}

bool ConsentOpenOnAnyChannel(const std::vector<ConsentFact>& events, const PolicySet& policies,
                             const Purpose& purpose, int64_t now) {
  for (const auto& channel : DecisionChannels(purpose)) {
    if (Decide("active", false, events, policies, purpose, channel, now).allowed) return true;
  }
  return false;
}

bool ActivityNeedsConsent(const PolicySet& policies, const Activity& activity) {
  if (activity.legal_basis == LegalBasis::kConsent) return true;
  for (const auto& id : activity.purposes) {
    const Purpose* p = policies.FindPurpose(id);
    if (p != nullptr && (p->marketing || p->legal_basis == LegalBasis::kConsent ||
                         p->legal_basis == LegalBasis::kLegitimateInterests)) {
      return true;
    }
  }
  return false;
}

}  // namespace garde

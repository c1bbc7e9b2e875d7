#include "garde/domain/consent_decision.h"

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

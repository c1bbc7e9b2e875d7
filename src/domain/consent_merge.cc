#include "garde/domain/consent_merge.h"

#include <deque>
#include <limits>

namespace garde {
namespace {

// What a decision on one (purpose, channel) rests on: the latest event, or none.
struct State {
  bool any = false;
  ConsentEventType type = ConsentEventType::kWithdrawn;
  int64_t expires_at = 0;
  std::string notice_version;
  bool granted() const { return any && type == ConsentEventType::kGranted; }
  bool refusal() const { return any && type != ConsentEventType::kGranted; }
};

using Events = std::vector<const ConsentEventRow*>;

// consent_decision.cc's rule: the latest event for the purpose as a whole or, when a channel
// is asked, on that channel; events in recording order, the later-recorded winning a tie.
State Latest(const Events& events, const std::string& purpose, const std::string& channel) {
  const ConsentEventRow* latest = nullptr;
  for (const ConsentEventRow* e : events) {
    if (e->purpose != purpose || !EventAnswers(e->channel, channel)) continue;
    if (latest == nullptr || e->at >= latest->at) latest = e;
  }
  State s;
  if (latest != nullptr && ParseConsentEventType(latest->event, &s.type)) {
    s.any = true;
    s.expires_at = latest->expires_at;
    s.notice_version = latest->notice_version;
  }
  return s;
}

bool DecidedByChoice(const Purpose& p) {
  return p.legal_basis == LegalBasis::kConsent || p.legal_basis == LegalBasis::kLegitimateInterests;
}

const ConsentEventRow* MarketingObjection(const Events& events, const PolicySet& policies) {
  for (const ConsentEventRow* e : events) {
    const Purpose* p = policies.FindPurpose(e->purpose);
    if (e->event == ConsentEventName(ConsentEventType::kObjected) && p != nullptr && p->marketing) {
      return e;
    }
  }
  return nullptr;
}

// Appends to `events` (and `out`) what makes each channel of `purpose` decide as `wanted`
// says (one state per DecisionChannels entry, in that order).
class Reconciler {
 public:
  Reconciler(Events events, std::vector<ConsentCorrection>* out)
      : events_(std::move(events)), out_(out) {}

  const Events& events() const { return events_; }

  void Append(ConsentCorrection c) {
    ConsentEventRow& row = added_.emplace_back();
    row.purpose = c.purpose;
    row.channel = c.channel;
    row.event = ConsentEventName(c.type);
    row.expires_at = c.expires_at;
    row.notice_version = c.notice_version;
    row.at = std::numeric_limits<int64_t>::max();  // recorded after everything there
    events_.push_back(&row);
    out_->push_back(std::move(c));
  }

  void Reconcile(const Purpose& purpose, const std::vector<State>& wanted) {
    const std::vector<std::string> channels = DecisionChannels(purpose);
    for (size_t i = 0; i < channels.size(); ++i) {
      const State current = Latest(events_, purpose.id, channels[i]);
      if (Same(current, wanted[i], purpose.legal_basis)) continue;
      ConsentCorrection c{purpose.id, channels[i], wanted[i].type, wanted[i].expires_at,
                          wanted[i].notice_version};
      if (!wanted[i].any) {  // "nothing" cannot be recorded: its decision can
        c.type = purpose.legal_basis == LegalBasis::kConsent ? ConsentEventType::kWithdrawn
                                                             : ConsentEventType::kGranted;
        c.expires_at = 0;
        c.notice_version.clear();
      }
      Append(std::move(c));
    }
  }

 private:
  static bool Same(const State& current, const State& wanted, LegalBasis basis) {
    if (!wanted.any) {
      return basis == LegalBasis::kConsent ? !current.granted() : !current.refusal();
    }
    if (wanted.refusal()) return current.refusal() && current.type == wanted.type;
    return current.granted() && current.expires_at == wanted.expires_at;
  }

  Events events_;
  std::deque<ConsentEventRow> added_;
  std::vector<ConsentCorrection>* out_;
};

Events Pointers(const std::vector<ConsentEventRow>& rows) {
  Events out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(&r);
  return out;
}

}  // namespace

std::vector<ConsentCorrection> MergeCorrections(const std::vector<ConsentEventRow>& survivor,
                                                const std::vector<ConsentEventRow>& merged,
                                                const PolicySet& policies) {
  std::vector<ConsentCorrection> out;
  const Events a = Pointers(survivor);
  const Events b = Pointers(merged);
  Reconciler r(a, &out);
  const ConsentEventRow* objected_a = MarketingObjection(a, policies);
  const ConsentEventRow* objected_b = MarketingObjection(b, policies);
  if (objected_b != nullptr && objected_a == nullptr) {
    r.Append({objected_b->purpose, objected_b->channel, ConsentEventType::kObjected, 0, ""});
  }
  const bool marketing_denied = objected_a != nullptr || objected_b != nullptr;
  for (const Purpose& p : policies.purposes()) {
    if (!DecidedByChoice(p) || (p.marketing && marketing_denied)) continue;
    std::vector<State> wanted;
    for (const auto& channel : DecisionChannels(p)) {
      const State sa = Latest(a, p.id, channel);
      const State sb = Latest(b, p.id, channel);
      if (sa.refusal()) {
        wanted.push_back(sa);
      } else if (sb.refusal()) {
        wanted.push_back(sb);
      } else if (sa.granted() && sb.granted()) {
        const bool a_later =
            sa.expires_at == 0 || (sb.expires_at != 0 && sa.expires_at >= sb.expires_at);
        wanted.push_back(a_later ? sa : sb);
      } else {
        wanted.push_back(sa.granted() ? sa : sb);
      }
    }
    r.Reconcile(p, wanted);
  }
  return out;
}

std::vector<ConsentCorrection> RevertCorrections(const std::vector<ConsentEventRow>& survivor,
                                                 int64_t merged_at,
                                                 const std::set<std::string>& before_merge,
                                                 const std::set<std::string>& merge_events,
                                                 const PolicySet& policies) {
  std::vector<ConsentCorrection> out;
  Events all = Pointers(survivor), before, since, merge;
  for (const ConsentEventRow* e : all) {
    if (merge_events.count(e->id) != 0) {
      merge.push_back(e);
    } else {
      (e->at < merged_at || before_merge.count(e->id) != 0 ? before : since).push_back(e);
    }
  }
  const bool marketing_denied = MarketingObjection(all, policies) != nullptr;
  Reconciler r(all, &out);
  for (const Purpose& p : policies.purposes()) {
    if (!DecidedByChoice(p) || (p.marketing && marketing_denied)) continue;
    std::vector<State> wanted;
    for (const auto& channel : DecisionChannels(p)) {
      auto any_for = [&](const Events& events) {
        for (const ConsentEventRow* e : events) {
          if (e->purpose == p.id && EventAnswers(e->channel, channel)) return true;
        }
        return false;
      };
      const bool restore = any_for(merge) && !any_for(since);
      wanted.push_back(Latest(restore ? before : all, p.id, channel));
    }
    r.Reconcile(p, wanted);
  }
  return out;
}

}  // namespace garde

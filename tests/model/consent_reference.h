// SPEC §2.2's consent decision as a small reference model, written from the text alone (it
// shares no code with Garde), and random sequences of the events that reach it through every
// entry point. Used against the domain (tests/unit/consent_model_test.cc) and over HTTP
// (tests/e2e/consent_model_e2e_test.cc).
//
//   std::mt19937_64 rng(seed);
//   for (const Op& op : RandomSequence(rng)) { apply op to Garde; model.Add(...) }
//   Model::Decision d = model.Decide(PurposeNamed("marketing.email"), "email", now);
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace garde::model {

// ---- The reference model -----------------------------------------------------------------

enum class Basis { kConsent, kLegitimate, kContract, kLegalObligation };

struct ModelPurpose {
  std::string id;
  Basis basis;
  bool marketing;
  std::vector<std::string> channels;
  int validity_months;  // 0: consent does not expire
  bool gpc;             // a GPC signal opts out
};

// The default catalogue (policies/purposes.yaml), restated.
inline const std::vector<ModelPurpose>& Catalogue() {
  static const std::vector<ModelPurpose> kPurposes = {
      {"marketing.email", Basis::kConsent, true, {"email"}, 24, true},
      {"marketing.sms", Basis::kConsent, true, {"sms"}, 24, true},
      {"marketing.phone", Basis::kLegitimate, true, {"phone"}, 0, true},
      {"marketing.post", Basis::kLegitimate, true, {"post"}, 0, false},
      {"profiling", Basis::kConsent, true, {}, 24, true},
      {"partners.sharing", Basis::kConsent, true, {"email", "post"}, 12, true},
      {"service.orders", Basis::kContract, false, {"email", "sms", "post", "phone"}, 0, false},
      {"service.invoicing", Basis::kLegalObligation, false, {}, 0, false},
      {"loyalty", Basis::kContract, false, {"email", "sms"}, 0, false},
      {"rights.handling", Basis::kLegalObligation, false, {"email", "post"}, 0, false},
      {"security.logging", Basis::kLegalObligation, false, {}, 0, false},
  };
  return kPurposes;
}

inline const ModelPurpose& PurposeNamed(const std::string& id) {
  for (const auto& p : Catalogue()) {
    if (p.id == id) return p;
  }
  throw std::invalid_argument("the model has no purpose " + id);
}

// Calendar months added to a UTC time, the day clamped to the month's last (Jan 31 + 1 month:
// Feb 28/29), computed with <chrono>'s calendar.
inline int64_t AddMonths(int64_t t, int months) {
  using namespace std::chrono;
  const sys_seconds at{seconds{t}};
  const sys_days day = floor<days>(at);
  year_month_day ymd{day};
  ymd += std::chrono::months{months};
  if (!ymd.ok()) ymd = year_month_day{ymd.year() / ymd.month() / last};
  return (sys_days{ymd} + (at - day)).time_since_epoch().count();
}

struct ModelEvent {
  std::string purpose, channel, type;  // type: granted | withdrawn | refused | objected
  int64_t at = 0, expires_at = 0;
};

struct Model {
  std::string status = "active";
  bool email_suppressed = false, phone_suppressed = false;
  std::vector<ModelEvent> events;  // in recording order

  struct Decision {
    bool allowed;
    std::string reason;
  };

  // "May I process the subject for purpose p on channel c now?" (SPEC §2.2, §2.3).
  Decision Decide(const ModelPurpose& p, const std::string& c, int64_t now,
                  bool consent_only = false) const {
    if (!consent_only) {
      if (status == "erased") return {false, "erased"};
      if (status == "restricted") return {false, "restricted"};
      const bool suppressed =
          (c == "email" && email_suppressed) || ((c == "sms" || c == "phone") && phone_suppressed);
      if (p.marketing && suppressed) return {false, "suppressed"};
    }
    if (p.marketing) {  // Art. 21(3): an objection to direct marketing is absolute
      for (const auto& e : events) {
        if (e.type == "objected" && PurposeNamed(e.purpose).marketing) return {false, "objected"};
      }
    }
    // The latest event recorded for (p, c) or for p on every channel; with no channel asked,
    // only the latter. Latest by time, then by recording order.
    const ModelEvent* latest = nullptr;
    for (const auto& e : events) {
      if (e.purpose != p.id) continue;
      if (!(e.channel.empty() || (!c.empty() && e.channel == c))) continue;
      if (latest == nullptr || e.at >= latest->at) latest = &e;
    }
    auto refusal = [](const std::string& type) {
      return type == "withdrawn" ? "consent_withdrawn"
             : type == "refused" ? "consent_refused"
                                 : "objected";
    };
    switch (p.basis) {
      case Basis::kConsent:
        if (latest == nullptr) return {false, "no_consent"};
        if (latest->type == "granted") {
          if (latest->expires_at != 0 && latest->expires_at <= now) {
            return {false, "consent_expired"};
          }
          return {true, "consent_granted"};
        }
        return {false, refusal(latest->type)};
      case Basis::kLegitimate:
        if (latest != nullptr && latest->type != "granted") return {false, refusal(latest->type)};
        return {true, "legitimate_interest"};
      case Basis::kContract: return {true, "contract"};
      case Basis::kLegalObligation: return {true, "legal_obligation"};
    }
    return {false, "?"};
  }

  // Whether the customer's choices leave p open on some channel or as a whole.
  bool Open(const ModelPurpose& p, int64_t now) const {
    if (Decide(p, "", now, true).allowed) return true;
    for (const auto& c : p.channels) {
      if (Decide(p, c, now, true).allowed) return true;
    }
    return false;
  }

  void Add(const ModelPurpose& p, const std::string& channel, const std::string& type, int64_t at) {
    ModelEvent e{p.id, channel, type, at, 0};
    if (type == "granted" && p.validity_months != 0)
      e.expires_at = AddMonths(at, p.validity_months);
    events.push_back(e);
    if (type == "objected" && p.marketing) email_suppressed = phone_suppressed = true;
  }
};

// ---- Operations, as data so that a failing sequence can be shrunk and printed ---------------

enum class OpKind {
  kApi,
  kPreferenceForm,
  kUnsubscribeAll,
  kOneClick,
  kGpcVisit,
  kDsrObjection,
  kDsrRestriction,
  kLift,
  kErasure,
  kAdvanceClock,
};

struct Op {
  OpKind kind = OpKind::kApi;
  std::string purpose;  // kApi, kOneClick ("*": every marketing purpose), kDsrObjection ("": all)
  std::string channel;  // kApi
  std::string event;    // kApi
  int backdate_s = 0;   // kApi: collected this many seconds ago
  std::vector<std::string> wanted;  // kPreferenceForm
  bool gpc = false;       // kPreferenceForm, kUnsubscribeAll: the browser sends Sec-GPC: 1
  int64_t advance_s = 0;  // kAdvanceClock
};

inline std::string Describe(const Op& op) {
  std::ostringstream o;
  switch (op.kind) {
    case OpKind::kApi:
      o << "API " << op.event << " " << op.purpose << " channel='" << op.channel << "'";
      if (op.backdate_s) o << " collected " << op.backdate_s << "s ago";
      break;
    case OpKind::kPreferenceForm:
      o << "preference form wanting [";
      for (const auto& w : op.wanted) o << w << " ";
      o << "]" << (op.gpc ? " with GPC" : "");
      break;
    case OpKind::kUnsubscribeAll:
      o << "unsubscribe from everything" << (op.gpc ? " with GPC" : "");
      break;
    case OpKind::kOneClick: o << "one-click unsubscribe scope=" << op.purpose; break;
    case OpKind::kGpcVisit: o << "preference centre visit with Sec-GPC: 1"; break;
    case OpKind::kDsrObjection: o << "DSR objection to '" << op.purpose << "'"; break;
    case OpKind::kDsrRestriction: o << "DSR restriction"; break;
    case OpKind::kLift: o << "restriction lifted"; break;
    case OpKind::kErasure: o << "DSR erasure"; break;
    case OpKind::kAdvanceClock: o << "clock +" << op.advance_s << "s"; break;
  }
  return o.str();
}

inline std::vector<std::string> MarketingIds() {
  std::vector<std::string> out;
  for (const auto& p : Catalogue()) {
    if (p.marketing) out.push_back(p.id);
  }
  return out;
}

// `with_clock`: include steps that move the clock (only where the test can move it).
inline std::vector<Op> RandomSequence(std::mt19937_64& rng, bool with_clock = true) {
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const auto marketing = MarketingIds();
  std::vector<Op> ops;
  const size_t length = 1 + pick(9);
  bool restricted = false;
  for (size_t i = 0; i < length; ++i) {
    Op op;
    const size_t roll = pick(100);
    if (roll < 45) {
      op.kind = OpKind::kApi;
      const auto& p = Catalogue()[pick(Catalogue().size())];
      op.purpose = p.id;
      const size_t c = pick(p.channels.size() + 2);  // purpose-wide twice as often
      op.channel = c < p.channels.size() ? p.channels[c] : "";
      static const char* kEvents[] = {"granted", "granted", "withdrawn", "refused", "objected"};
      op.event = kEvents[pick(5)];
      if (pick(5) == 0) op.backdate_s = static_cast<int>(1 + pick(3 * 86400));
    } else if (roll < 55) {
      op.kind = OpKind::kPreferenceForm;
      for (const auto& m : marketing) {
        if (pick(2) == 0) op.wanted.push_back(m);
      }
      op.gpc = pick(6) == 0;
    } else if (roll < 61) {
      op.kind = OpKind::kUnsubscribeAll;
      op.gpc = pick(6) == 0;
    } else if (roll < 69) {
      op.kind = OpKind::kOneClick;
      op.purpose = pick(3) == 0 ? "*" : marketing[pick(marketing.size())];
    } else if (roll < 74) {
      op.kind = OpKind::kGpcVisit;
    } else if (roll < 78) {
      op.kind = OpKind::kDsrObjection;
      static const char* kTargets[] = {"", "marketing.email", "marketing.post", "profiling"};
      op.purpose = kTargets[pick(4)];
    } else if (roll < 82) {
      op.kind = restricted ? OpKind::kLift : OpKind::kDsrRestriction;
      restricted = !restricted;
    } else if (roll < 84) {
      op.kind = OpKind::kErasure;
      ops.push_back(op);
      break;  // nothing is recorded for an erased subject
    } else if (with_clock) {
      op.kind = OpKind::kAdvanceClock;
      static const int64_t kSteps[] = {60, 86400, 400 * 86400LL, 800 * 86400LL};
      op.advance_s = kSteps[pick(4)];
    } else {
      continue;
    }
    ops.push_back(op);
  }
  return ops;
}

}  // namespace garde::model

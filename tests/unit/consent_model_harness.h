// Driving Garde's domain services with the reference model's operations (consent_reference.h):
// a fixture shared by the consent model test and the merge model test.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "consent_reference.h"
#include "deployment_fixture.h"
#include "garde/app/deployment.h"

namespace garde {

using namespace model;  // NOLINT: the model's vocabulary reads best unqualified here

// ---- Driving Garde's domain services ------------------------------------------------------

class ConsentModelHarness : public DeploymentFixture {
 protected:
  Caller Operator() {
    return Caller{"key_model_operator", "operator", {"customer_management"}, "req_model", ""};
  }
  Caller Officer() { return Caller{"key_model_officer", "officer", {}, "req_model", ""}; }
  Caller Marketing() {
    return Caller{"key_model_marketing", "marketing", {"marketing_email"}, "req_model", ""};
  }

  std::string NewSubject() {
    garde::NewSubject s;
    s.kind = "person";
    s.source = "test";
    const std::string n = std::to_string(++subjects_);
    s.fields["email"] = FieldValue::String("model" + n + "@example.org");
    s.fields["phone"] = FieldValue::String("+3361" + std::string(7 - n.size(), '0') + n);
    auto v = d_->vault().Create(Operator(), s);
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() ? v->id : "";
  }

  std::string NoticeOf(const std::string& purpose) {
    const Purpose* p = d_->policies().Current()->FindPurpose(purpose);
    return p != nullptr && !p->notices.empty() ? p->notices.back().version : "";
  }

  Status RunDsr(const std::string& subject, const std::string& type,
                const std::vector<std::string>& purposes) {
    NewRequest r;
    r.type = type;
    r.subject = subject;
    r.purposes = purposes;
    auto opened = d_->requests().Open(Officer(), r);
    if (!opened.ok()) return opened.status();
    const std::string id = opened->row.id;
    if (opened->row.status == "received") {
      auto v = d_->requests().Verify(Officer(), id, "checked");
      if (!v.ok()) return v.status();
    }
    auto done = d_->requests().Complete(Officer(), id, "");
    if (!done.ok()) return done.status();
    if (type == "restriction") restriction_[subject] = id;
    return Status::Ok();
  }

  // Applies `op` to Garde and to the model; an error Garde should not have answered fails.
  void Apply(const std::string& id, const Op& op, Model& m) {
    const int64_t now = d_->clock().Now();
    SubjectTokenClaims claims{id, "preferences", "*", now + 3600};
    Status s = Status::Ok();
    switch (op.kind) {
      case OpKind::kApi: {
        ConsentRequest req{op.purpose, op.channel, op.event, "", "api", ""};
        if (op.event == "granted") req.notice_version = NoticeOf(op.purpose);
        const int64_t at = now - op.backdate_s;
        if (op.backdate_s) req.collected_at = FormatRfc3339(at);
        auto e = d_->consents().Record(Operator(), id, req);
        s = e.status();
        if (e.ok()) m.Add(PurposeNamed(op.purpose), op.channel, op.event, e->at);
        break;
      }
      case OpKind::kPreferenceForm:
      case OpKind::kUnsubscribeAll:
      case OpKind::kGpcVisit: {
        std::map<std::string, bool> wanted;
        for (const auto& w : op.wanted) wanted[w] = true;
        const bool gpc = op.gpc || op.kind == OpKind::kGpcVisit;
        auto done = d_->consents().ApplyPreferences(
            claims, op.kind == OpKind::kGpcVisit ? nullptr : &wanted, gpc, "req_model");
        s = done.status();
        if (done.ok()) {
          for (const auto& p : Catalogue()) {
            if (!p.marketing) continue;
            const bool open = m.Open(p, now);
            bool want = op.kind == OpKind::kGpcVisit ? open : wanted.count(p.id) != 0;
            if (gpc && p.gpc) want = false;
            if (want != open) m.Add(p, "", want ? "granted" : "withdrawn", now);
          }
        }
        break;
      }
      case OpKind::kOneClick: {
        claims.use = "unsubscribe";
        claims.scope = op.purpose;
        auto done = d_->consents().UnsubscribeByToken(claims, "req_model");
        s = done.status();
        if (done.ok()) {
          for (const auto& p : Catalogue()) {
            if (p.marketing && (op.purpose == "*" || op.purpose == p.id) && m.Open(p, now)) {
              m.Add(p, "", "withdrawn", now);
            }
          }
        }
        break;
      }
      case OpKind::kDsrObjection: {
        std::vector<std::string> purposes;
        if (!op.purpose.empty()) purposes.push_back(op.purpose);
        s = RunDsr(id, "objection", purposes);
        if (s.ok()) {
          for (const auto& p : Catalogue()) {
            if (op.purpose.empty() ? p.marketing : p.id == op.purpose) {
              m.Add(p, "", "objected", d_->clock().Now());
            }
          }
        }
        break;
      }
      case OpKind::kDsrRestriction:
        s = RunDsr(id, "restriction", {});
        if (s.ok()) m.status = "restricted";
        break;
      case OpKind::kLift: {
        // Art. 18(3): the first call tells the subject, the next one lifts.
        auto told = d_->requests().Lift(Officer(), restriction_[id]);
        s = told.status();
        if (s.ok() && Decide(id, "service.orders") != "restricted") {
          s = Status(Code::kConflict, "lifted before the subject was told");
        }
        if (s.ok()) s = d_->requests().Lift(Officer(), restriction_[id]).status();
        if (s.ok()) m.status = "active";
        break;
      }
      case OpKind::kErasure:
        s = RunDsr(id, "erasure", {});
        if (s.ok()) {
          m.status = "erased";
          m.events.clear();
        }
        break;
      case OpKind::kAdvanceClock:
        d_->AdvanceClockForTests(op.advance_s);
        advanced_ += op.advance_s;
        break;
    }
    EXPECT_TRUE(s.ok()) << Describe(op) << ": " << s.message();
  }

  std::string Decide(const std::string& id, const std::string& purpose) {
    auto a = d_->consents().CheckMany(Marketing(), {id}, purpose, "");
    return a.ok() ? a->front().decision.reason : a.status().message();
  }

  // The first (purpose, channel) where Garde and the model differ, or "".
  std::string Compare(const std::string& id, const Model& m) {
    const int64_t now = d_->clock().Now();
    for (const auto& p : Catalogue()) {
      std::vector<std::string> channels{""};
      channels.insert(channels.end(), p.channels.begin(), p.channels.end());
      for (const auto& c : channels) {
        auto garde = d_->consents().CheckMany(Marketing(), {id}, p.id, c);
        if (!garde.ok()) return p.id + "/" + c + ": " + garde.status().message();
        const ConsentDecision& g = garde->front().decision;
        const Model::Decision want = m.Decide(p, c, now);
        if (g.allowed != want.allowed || g.reason != want.reason) {
          return p.id + " channel='" + c + "': Garde " + (g.allowed ? "allows" : "denies") + " (" +
                 g.reason + "), the model " + (want.allowed ? "allows" : "denies") + " (" +
                 want.reason + ")";
        }
      }
    }
    return "";
  }

  // Runs `ops` on a new subject; the description of the first difference, or "".
  std::string Run(const std::vector<Op>& ops) {
    d_->AdvanceClockForTests(-advanced_);  // each sequence starts at the real time
    advanced_ = 0;
    const std::string id = NewSubject();
    Model m;
    for (size_t i = 0; i < ops.size(); ++i) {
      Apply(id, ops[i], m);
      std::string diff = Compare(id, m);
      if (!diff.empty()) return "after step " + std::to_string(i + 1) + ": " + diff;
    }
    return "";
  }

  // Removes operations one at a time while the sequence still fails.
  std::vector<Op> Shrink(std::vector<Op> ops) {
    bool smaller = true;
    while (smaller && ops.size() > 1) {
      smaller = false;
      for (size_t i = 0; i < ops.size(); ++i) {
        std::vector<Op> without = ops;
        without.erase(without.begin() + static_cast<std::ptrdiff_t>(i));
        if (!Run(without).empty()) {
          ops = std::move(without);
          smaller = true;
          break;
        }
      }
    }
    return ops;
  }

  int subjects_ = 0;
  int64_t advanced_ = 0;
  std::map<std::string, std::string> restriction_;  // subject -> its restriction request
};

}  // namespace garde

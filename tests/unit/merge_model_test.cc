// Merging two records of one customer, held against the reference model (consent_reference.h):
// random consent histories on two subjects through every entry point, then a merge. After it,
// each (purpose, channel) decision on the survivor must be the most protective of the two
// before — a "no" on either side denies, else a "yes" on either side allows — stated here from
// the model's decisions, not from Garde's corrections; the merged id answers `merged`. After a
// revert, both records decide as before (an objection to marketing carried over stays).
//
// GARDE_MERGE_SEQUENCES sets how many pairs of histories run (400 by default).
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <set>
#include <sstream>

#include "consent_model_harness.h"

namespace garde {
namespace {

bool Refusal(const Model::Decision& d) {
  static const std::set<std::string> kNo = {"consent_withdrawn", "consent_refused", "objected",
                                            "suppressed"};
  return !d.allowed && kNo.count(d.reason) != 0;
}

bool MarketingObjection(const Model& m) {
  for (const auto& e : m.events) {
    if (e.type == "objected" && PurposeNamed(e.purpose).marketing) return true;
  }
  return false;
}

std::vector<std::string> ChannelsOf(const ModelPurpose& p) {
  std::vector<std::string> out{""};
  out.insert(out.end(), p.channels.begin(), p.channels.end());
  return out;
}

// Histories without restriction or erasure (a merge takes active subjects only).
std::vector<Op> ActiveSequence(std::mt19937_64& rng) {
  std::vector<Op> out;
  for (const Op& op : RandomSequence(rng)) {
    if (op.kind != OpKind::kDsrRestriction && op.kind != OpKind::kLift &&
        op.kind != OpKind::kErasure) {
      out.push_back(op);
    }
  }
  return out;
}

class MergeModelTest : public ConsentModelHarness {
 protected:
  ConsentDecision Garde(const std::string& id, const std::string& purpose, const std::string& c) {
    auto a = d_->consents().CheckMany(Marketing(), {id}, purpose, c);
    EXPECT_TRUE(a.ok()) << a.status().message();
    return a.ok() ? a->front().decision : ConsentDecision{};
  }

  // The first difference, or "".
  std::string RunMerge(const std::vector<Op>& ops_a, const std::vector<Op>& ops_b) {
    d_->AdvanceClockForTests(-advanced_);
    advanced_ = 0;
    const std::string a = NewSubject(), b = NewSubject();
    Model ma, mb;
    for (const Op& op : ops_a) Apply(a, op, ma);
    for (const Op& op : ops_b) Apply(b, op, mb);
    if (ops_b.size() % 2 == 0) {  // the merge a second after the last event, or in its second
      d_->AdvanceClockForTests(1);
      advanced_ += 1;
    }
    const int64_t now = d_->clock().Now();
    auto merged = d_->merges().Merge(Operator(), b, {a, {}});
    if (!merged.ok()) return "merge refused: " + merged.status().message();
    const bool carried = MarketingObjection(mb) && !MarketingObjection(ma);
    for (const auto& p : Catalogue()) {
      for (const auto& c : ChannelsOf(p)) {
        const Model::Decision da = ma.Decide(p, c, now), db = mb.Decide(p, c, now);
        const bool no = Refusal(da) || Refusal(db);
        const bool want = !no && (da.allowed || db.allowed);
        const ConsentDecision g = Garde(a, p.id, c);
        const std::string where = p.id + " channel='" + c + "'";
        if (g.allowed != want || (no && !Refusal({g.allowed, g.reason}))) {
          return "after the merge, " + where + ": Garde " + (g.allowed ? "allows" : "denies") +
                 " (" + g.reason + "); the survivor " + da.reason + ", the merged " + db.reason;
        }
        const ConsentDecision gb = Garde(b, p.id, c);
        if (gb.allowed || gb.reason != "merged") return "the merged id answers " + gb.reason;
      }
    }
    auto reverted = d_->merges().Revert(Officer(), merged->id);
    if (!reverted.ok()) return "revert refused: " + reverted.status().message();
    for (const auto& p : Catalogue()) {
      for (const auto& c : ChannelsOf(p)) {
        const Model::Decision da = ma.Decide(p, c, now), db = mb.Decide(p, c, now);
        const bool want_a = (carried && p.marketing) ? false : da.allowed;
        const ConsentDecision g = Garde(a, p.id, c), gb = Garde(b, p.id, c);
        const std::string where = p.id + " channel='" + c + "'";
        if (g.allowed != want_a) {
          return "after the revert, " + where + ": the survivor " +
                 (g.allowed ? "allows" : "denies") + " (" + g.reason + "), before: " + da.reason;
        }
        if (gb.allowed != db.allowed || gb.reason != db.reason) {
          return "after the revert, " + where + ": the merged " + gb.reason +
                 ", before: " + db.reason;
        }
      }
    }
    return "";
  }
};

TEST_F(MergeModelTest, AChannelGrantDoesNotSurviveTheOtherRecordsUnsubscribeAll) {
  Op grant;
  grant.kind = OpKind::kApi;
  grant.purpose = "marketing.email";
  grant.channel = "email";
  grant.event = "granted";
  Op unsubscribe;
  unsubscribe.kind = OpKind::kUnsubscribeAll;
  EXPECT_EQ(RunMerge({grant}, {unsubscribe}), "");
  EXPECT_EQ(RunMerge({unsubscribe}, {grant}), "");
}

TEST_F(MergeModelTest, DecisionsAreTheMostProtectiveOverManyRandomHistories) {
  const char* env = std::getenv("GARDE_MERGE_SEQUENCES");
  const int pairs = env != nullptr ? std::atoi(env) : 400;
  std::mt19937_64 rng(0x6d65726765ULL);
  for (int n = 0; n < pairs; ++n) {
    const std::vector<Op> ops_a = ActiveSequence(rng), ops_b = ActiveSequence(rng);
    const std::string diff = RunMerge(ops_a, ops_b);
    if (diff.empty()) continue;
    std::ostringstream o;
    o << "pair " << n << ": " << diff << "\n  survivor:";
    for (const Op& op : ops_a) o << "\n    " << Describe(op);
    o << "\n  merged:";
    for (const Op& op : ops_b) o << "\n    " << Describe(op);
    ADD_FAILURE() << o.str();
    break;
  }
}

}  // namespace
}  // namespace garde

// SPEC §2.2's decision rule held against a small reference model written here from the text
// alone (it shares no code with Garde): random sequences of consent events, through every
// entry point the domain offers — the API, the preference form, unsubscribe-all, one-click
// unsubscribe, a GPC visit, objection, restriction and its lifting, erasure, expiry by the
// clock — after each of which Garde's decision for every (purpose, channel) must equal the
// model's. A failing sequence is shrunk and printed.
//
// GARDE_MODEL_SEQUENCES sets how many sequences run (10 000 by default).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <sstream>

#include "consent_model_harness.h"

namespace garde {
namespace {

class ConsentModelTest : public ConsentModelHarness {};

TEST_F(ConsentModelTest, TheCatalogueIsTheOneTheModelRestates) {
  auto policies = d_->policies().Current();
  ASSERT_EQ(policies->purposes().size(), Catalogue().size());
  for (const auto& mp : Catalogue()) {
    const Purpose* p = policies->FindPurpose(mp.id);
    ASSERT_NE(p, nullptr) << mp.id;
    EXPECT_EQ(p->marketing, mp.marketing) << mp.id;
    EXPECT_EQ(p->channels, mp.channels) << mp.id;
    EXPECT_EQ(p->gpc_opt_out, mp.gpc) << mp.id;
    EXPECT_EQ(p->validity, mp.validity_months ? "P" + std::to_string(mp.validity_months) + "M" : "")
        << mp.id;
  }
}

// Regressions found by the model, kept as named cases.
Op ApiOp(const std::string& event, const std::string& purpose, const std::string& channel) {
  Op op;
  op.kind = OpKind::kApi;
  op.event = event;
  op.purpose = purpose;
  op.channel = channel;
  return op;
}

Op KindOp(OpKind kind, const std::string& purpose = "") {
  Op op;
  op.kind = kind;
  op.purpose = purpose;
  return op;
}

TEST_F(ConsentModelTest, UnsubscribeFromEverythingWithdrawsAChannelGrant) {
  EXPECT_EQ(Run({ApiOp("granted", "marketing.email", "email"), KindOp(OpKind::kUnsubscribeAll)}),
            "");
}

TEST_F(ConsentModelTest, OneClickAfterWithdrawAllAndAChannelRegrantWithdraws) {
  EXPECT_EQ(Run({KindOp(OpKind::kUnsubscribeAll), ApiOp("granted", "partners.sharing", "post"),
                 KindOp(OpKind::kOneClick, "*")}),
            "");
}

TEST_F(ConsentModelTest, AGpcVisitOptsOutOfChannelGrants) {
  EXPECT_EQ(Run({ApiOp("granted", "marketing.sms", "sms"), KindOp(OpKind::kGpcVisit)}), "");
}

TEST_F(ConsentModelTest, GardeDecidesAsTheModelOverManyRandomSequences) {
  const char* env = std::getenv("GARDE_MODEL_SEQUENCES");
  const int sequences = env != nullptr ? std::atoi(env) : 10000;
  std::mt19937_64 rng(0x6761726465ULL);
  int failures = 0;
  for (int n = 0; n < sequences && failures == 0; ++n) {
    const std::vector<Op> ops = RandomSequence(rng);
    const std::string diff = Run(ops);
    if (diff.empty()) continue;
    ++failures;
    const std::vector<Op> small = Shrink(ops);
    std::ostringstream o;
    o << "sequence " << n << " differs from the model; shrunk to " << small.size() << " steps:\n";
    for (size_t i = 0; i < small.size(); ++i)
      o << "  " << i + 1 << ". " << Describe(small[i]) << "\n";
    o << "  then " << Run(small);
    ADD_FAILURE() << o.str();
  }
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace garde

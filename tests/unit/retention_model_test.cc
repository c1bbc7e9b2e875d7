// Retention rules against a small reference model, on many random subjects: the register's
// activities × anchors (creation, last interaction, a date field, a closed request, consent
// ended) × category rules × held erasures × time. The model asks, for each field, whether some
// activity still keeps it at `at` — every rule that applies to it not yet run out — instead of
// computing "until" dates as PlanRetention does.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "garde/base/clock.h"
#include "garde/domain/retention.h"
#include "garde/policy/policy_set.h"

namespace garde {
namespace {

namespace fs = std::filesystem;

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

// The shipped policies with every kind of anchor and a category rule.
std::shared_ptr<const PolicySet> Policies() {
  static std::shared_ptr<const PolicySet> set = [] {
    const fs::path src = GARDE_TEST_FIXTURES "/../../policies";
    const fs::path dir =
        fs::temp_directory_path() / ("garde-retention-model-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    fs::copy(src, dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    std::stringstream ss;
    ss << std::ifstream(dir / "register.yaml").rdbuf();
    std::string reg = ss.str();
    // marketing_email: six months after its consent ended.
    const size_t me = reg.find("id: marketing_email");
    const size_t me_ret = reg.find("retention: \"P3Y after last_interaction\"", me);
    reg.replace(me_ret, std::string("retention: \"P3Y after last_interaction\"").size(),
                "retention: \"P6M after consent_withdrawn\"");
    // partners_sharing: one year from creation.
    const size_t ps = reg.find("id: partners_sharing");
    const size_t ps_ret = reg.find("retention: \"P1Y after last_interaction\"", ps);
    reg.replace(ps_ret, std::string("retention: \"P1Y after last_interaction\"").size(),
                "retention: \"P1Y\"");
    // orders_invoicing: identity data only six years of the ten.
    reg = Replace(reg, "               customer_number, total_spend, last_purchase]\n",
                  "               customer_number, total_spend, last_purchase]\n"
                  "      retention: { identity: \"P6Y after last_purchase\" }\n");
    std::ofstream(dir / "register.yaml") << reg;
    auto loaded = LoadPolicies(dir.string());
    EXPECT_TRUE(loaded.ok()) << loaded.status().message();
    fs::remove_all(dir);
    return loaded.ok() ? loaded.value() : nullptr;
  }();
  return set;
}

// Whether an activity concerns subjects of `kind`: one whose kind-specific fields are all of
// another kind does not (a business account keeps nothing of a person).
bool Concerns(const PolicySet& p, const Activity& a, const std::string& kind) {
  bool any_specific = false;
  for (const auto& field : a.fields) {
    const FieldSpec* spec = p.schema().Find(field);
    if (spec == nullptr || spec->kinds.size() != 1) continue;  // both kinds: says nothing
    any_specific = true;
    if (spec->kinds.count(kind)) return true;
  }
  return !any_specific;
}

// Whether `rule` still keeps data of activity `a` for the subject at `at`.
bool RuleKeeps(const PolicySet& p, const std::string& text, const Activity& a,
               const RetentionFacts& f, int64_t at) {
  std::string problem;
  auto rule = ParseRetentionRule(text, p.schema(), &problem);
  if (!rule) return true;  // criteria text: never enforced
  int64_t from = 0;
  switch (rule->anchor) {
    case RetentionRule::Anchor::kCreated: from = f.created_at; break;
    case RetentionRule::Anchor::kLastInteraction:
      from = f.last_interaction_at ? f.last_interaction_at : f.created_at;
      break;
    case RetentionRule::Anchor::kDateField:
      if (!f.dates.count(rule->field)) return false;
      from = f.dates.at(rule->field);
      break;
    case RetentionRule::Anchor::kRequestClosed:
      if (!f.request_closed_at) return false;
      from = *f.request_closed_at;
      break;
    case RetentionRule::Anchor::kConsentEnded:
      if (!f.consent_ended.count(a.id)) return false;
      if (f.consent_ended.at(a.id) == RetentionFacts::kStillGiven) return true;
      from = f.consent_ended.at(a.id);
      break;
  }
  return at < *AddIsoDuration(from, rule->duration);
}

struct Expected {
  RetentionPlan::Action action = RetentionPlan::Action::kNothing;
  std::set<std::string> erase;
};

Expected Model(const PolicySet& p, const RetentionFacts& f, int64_t at) {
  Expected e;
  if (f.status == "erased" || (f.status == "restricted" && !f.held_erasure)) return e;
  for (const auto& field : f.fields) {
    bool kept = false;
    for (const auto& a : p.activities()) {
      if (!a.fields.count(field)) continue;
      if (f.held_erasure && a.legal_basis != LegalBasis::kLegalObligation) continue;
      if (!Concerns(p, a, f.kind)) continue;
      const FieldSpec* spec = p.schema().Find(field);
      const std::string& own = a.RetentionFor(spec ? spec->category : "");
      kept |= RuleKeeps(p, a.retention, a, f, at) && RuleKeeps(p, own, a, f, at);
    }
    if (!kept) e.erase.insert(field);
  }
  if (e.erase.empty()) return e;
  if (e.erase.size() == f.fields.size()) {
    e.action =
        f.held_erasure ? RetentionPlan::Action::kReleaseHold : RetentionPlan::Action::kEraseSubject;
  } else {
    e.action = RetentionPlan::Action::kEraseFields;
  }
  return e;
}

TEST(RetentionModel, PlanMatchesTheReferenceOnRandomSubjects) {
  auto policies = Policies();
  ASSERT_NE(policies, nullptr);
  std::vector<std::string> schema_fields;
  for (const auto& a : policies->activities()) {
    for (const auto& f : a.fields) schema_fields.push_back(f);
  }
  std::sort(schema_fields.begin(), schema_fields.end());
  schema_fields.erase(std::unique(schema_fields.begin(), schema_fields.end()), schema_fields.end());
  std::mt19937_64 rng(24);
  const int64_t base = *ParseRfc3339("2015-01-01T00:00:00Z");
  const int64_t year = 365 * 86400;
  std::uniform_int_distribution<int64_t> span(0, 12 * year);
  std::bernoulli_distribution coin(0.5), rare(0.15);
  int erased = 0, fields = 0, released = 0, nothing = 0;
  const int rounds = 20000;
  for (int round = 0; round < rounds; ++round) {
    RetentionFacts f;
    const int pick = std::uniform_int_distribution<int>(0, 9)(rng);
    f.status = pick < 7 ? "active" : pick < 9 ? "restricted" : "erased";
    f.held_erasure = f.status == "restricted" && coin(rng);
    f.kind = coin(rng) ? "person" : "organization";
    f.created_at = base + span(rng);
    f.last_interaction_at = coin(rng) ? f.created_at + span(rng) / 4 : 0;
    for (const auto& field : schema_fields) {
      if (coin(rng)) f.fields.insert(field);
    }
    for (const char* date : {"last_purchase", "birth_date"}) {
      if (f.fields.count(date)) f.dates[date] = (f.created_at + span(rng) / 6) / 86400 * 86400;
    }
    for (const auto& a : policies->activities()) {
      if (a.legal_basis != LegalBasis::kConsent || rare(rng)) continue;
      const int c = std::uniform_int_distribution<int>(0, 2)(rng);
      if (c == 1) f.consent_ended[a.id] = RetentionFacts::kStillGiven;
      if (c == 2) f.consent_ended[a.id] = f.created_at + span(rng) / 3;
    }
    if (coin(rng)) f.request_closed_at = f.created_at + span(rng) / 2;
    const int64_t at = f.created_at + span(rng);

    const RetentionPlan plan = PlanRetention(*policies, f, at);
    const Expected want = Model(*policies, f, at);
    ASSERT_EQ(static_cast<int>(plan.action), static_cast<int>(want.action)) << "round " << round;
    if (plan.action != RetentionPlan::Action::kNothing) {
      ASSERT_EQ(plan.erase, want.erase) << "round " << round;
    }
    // What is erased is exactly what no rule keeps: a day earlier, each was still kept by
    // the activity the plan names (when it names one).
    for (const auto& [field, activity] : plan.because) {
      if (field == "*" || activity.empty()) continue;
      const Activity* a = policies->FindActivity(activity);
      ASSERT_NE(a, nullptr);
      EXPECT_TRUE(a->fields.count(field)) << field << " " << activity;
    }
    switch (plan.action) {
      case RetentionPlan::Action::kEraseSubject: ++erased; break;
      case RetentionPlan::Action::kEraseFields: ++fields; break;
      case RetentionPlan::Action::kReleaseHold: ++released; break;
      case RetentionPlan::Action::kNothing: ++nothing; break;
    }
  }
  // Every outcome is exercised, not only the easy ones.
  EXPECT_GT(erased, rounds / 50);
  EXPECT_GT(fields, rounds / 50);
  EXPECT_GT(released, rounds / 200);
  EXPECT_GT(nothing, rounds / 50);
}

// The examples, by the day.
TEST(RetentionModel, AProspectIsErasedThreeYearsAndOneDayAfterTheLastContactNotBefore) {
  auto policies = Policies();
  ASSERT_NE(policies, nullptr);
  RetentionFacts prospect;
  prospect.status = "active";
  prospect.kind = "person";
  prospect.created_at = *ParseRfc3339("2020-03-01T10:00:00Z");
  prospect.last_interaction_at = *ParseRfc3339("2022-06-15T10:00:00Z");
  prospect.fields = {"email", "first_name", "postal_code"};
  const int64_t three_years = *AddIsoDuration(prospect.last_interaction_at, "P3Y");
  EXPECT_EQ(PlanRetention(*policies, prospect, three_years - 86400).action,
            RetentionPlan::Action::kNothing);  // 2 years 364 days
  EXPECT_EQ(PlanRetention(*policies, prospect, three_years + 86400).action,
            RetentionPlan::Action::kEraseSubject);  // 3 years and a day
}

TEST(RetentionModel, HeldInvoicingFieldsAreDestroyedTheDayTheirHoldEnds) {
  auto policies = Policies();
  ASSERT_NE(policies, nullptr);
  RetentionFacts held;
  held.status = "restricted";
  held.held_erasure = true;
  held.created_at = *ParseRfc3339("2014-01-01T00:00:00Z");
  held.kind = "person";
  held.fields = {"total_spend", "last_purchase", "last_name"};
  held.dates["last_purchase"] = *ParseRfc3339("2016-05-10T00:00:00Z");
  const int64_t ten_years = *AddIsoDuration(held.dates["last_purchase"], "P10Y");
  const int64_t six_years = *AddIsoDuration(held.dates["last_purchase"], "P6Y");
  // Identity data (last_name) goes after six years under the category rule; the rest stays.
  RetentionPlan at_six = PlanRetention(*policies, held, six_years);
  EXPECT_EQ(at_six.action, RetentionPlan::Action::kEraseFields);
  EXPECT_EQ(at_six.erase, std::set<std::string>{"last_name"});
  EXPECT_EQ(PlanRetention(*policies, held, ten_years - 1).erase.size(), 1u);
  RetentionPlan at_ten = PlanRetention(*policies, held, ten_years);
  EXPECT_EQ(at_ten.action, RetentionPlan::Action::kReleaseHold);
  EXPECT_EQ(at_ten.because.at("*"), "orders_invoicing");
}

}  // namespace
}  // namespace garde

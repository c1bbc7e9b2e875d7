// Likely-duplicate match keys: folding, the phonetic skeleton, and precision and recall on a
// labelled synthetic set of customer pairs (docs/benchmarks.md, Duplicates).
#include "garde/domain/match_keys.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "garde/policy/policy_set.h"

namespace garde {
namespace {

const PolicySet& Policies() {
  static auto set = LoadPolicies(GARDE_SOURCE_POLICIES);
  EXPECT_TRUE(set.ok()) << set.status().message();
  return *set.value();
}

TEST(MatchKeys, FoldingAndSkeletons) {
  const MatchingPolicy& m = Policies().matching();
  ASSERT_TRUE(m.enabled);
  EXPECT_EQ(FoldGivenName(m, "Bob"), "robert");
  EXPECT_EQ(FoldGivenName(m, "ROB"), "robert");
  EXPECT_EQ(FoldGivenName(m, "Kate"), "catherine");
  EXPECT_EQ(FoldGivenName(m, "Jean-Pierre"), "jeanpierre");
  EXPECT_EQ(FoldGivenName(m, "J.-P."), "jeanpierre");
  EXPECT_EQ(FoldGivenName(m, "jean pierre"), "jeanpierre");
  EXPECT_EQ(FoldGivenName(m, "Léa"), "lea");
  EXPECT_EQ(FoldText("Lefèvre"), "lefevre");
  EXPECT_EQ(FoldText("O'Brien"), "obrien");
  EXPECT_EQ(FoldText("Müller-Straße"), "mullerstrasse");
  EXPECT_EQ(Skeleton("catherine"), Skeleton("katherine"));
  EXPECT_EQ(Skeleton("dupont"), Skeleton("dupond"));
  EXPECT_EQ(Skeleton("smith"), Skeleton("smyth"));
  EXPECT_EQ(Skeleton("schmidt"), Skeleton("schmitt"));
  EXPECT_EQ(Skeleton("stephen"), Skeleton("steven"));
  EXPECT_NE(Skeleton("martin"), Skeleton("martel"));
  EXPECT_EQ(FoldStreet("12, Avenue de la République"), FoldStreet("12 av. République"));
  EXPECT_EQ(FoldStreet("3 rue du Four"), FoldStreet("3 R. DU FOUR"));
  EXPECT_NE(FoldStreet("3 rue du Four"), FoldStreet("5 rue du Four"));
}

TEST(MatchKeys, NoNamesNoKeysAndNoPlaintextRuleNames) {
  const MatchingPolicy& m = Policies().matching();
  FieldMap only_family{{"last_name", FieldValue::String("Martin")},
                       {"postal_code", FieldValue::String("75011")}};
  EXPECT_TRUE(MatchKeysOf(m, only_family).empty());
  FieldMap full{{"first_name", FieldValue::String("Rob")},
                {"last_name", FieldValue::String("Martin")},
                {"postal_code", FieldValue::String("75011")},
                {"phone", FieldValue::String("+33612345678")},
                {"street", FieldValue::String("3 rue du Four")}};
  const auto keys = MatchKeysOf(m, full);
  EXPECT_EQ(keys.size(), 5u);
  for (const auto& k : keys) {
    EXPECT_NE(std::find(MatchRules().begin(), MatchRules().end(), k.rule), MatchRules().end());
  }
}

TEST(MatchKeys, ASpellingInTwoGroupsOrAnUnknownFieldIsAPolicyProblem) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("garde-matching-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(GARDE_SOURCE_POLICIES, dir, fs::copy_options::recursive);
  std::ofstream(dir / "matching.yaml", std::ios::app) << "  - [roberto, bob]\n";
  auto twice = LoadPolicies(dir.string());
  ASSERT_FALSE(twice.ok());
  ASSERT_FALSE(twice.status().errors().empty());
  EXPECT_EQ(twice.status().errors()[0].field.rfind("matching.yaml:", 0), 0u);
  EXPECT_NE(twice.status().errors()[0].message.find("'bob' is also in the group of line"),
            std::string::npos)
      << twice.status().errors()[0].message;
  std::ofstream(dir / "matching.yaml", std::ios::trunc)
      << "version: 1\nfields: {postal_code: zip}\ngiven_names: []\n";
  auto unknown = LoadPolicies(dir.string());
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().errors()[0].message.find("'zip' is not a field of the schema"),
            std::string::npos);
  // Without the file, no match key is kept.
  fs::remove(dir / "matching.yaml");
  auto without = LoadPolicies(dir.string());
  ASSERT_TRUE(without.ok());
  EXPECT_FALSE(without.value()->matching().enabled);
  EXPECT_TRUE(
      MatchKeysOf(without.value()->matching(), {{"first_name", FieldValue::String("Rob")},
                                                {"last_name", FieldValue::String("Martin")},
                                                {"postal_code", FieldValue::String("75011")}})
          .empty());
  fs::remove_all(dir);
}

// --- A labelled set of pairs ------------------------------------------------------------

struct Person {
  std::string given, family, postal, phone, street;
  FieldMap Values() const {
    FieldMap v;
    auto put = [&](const char* f, const std::string& s) {
      if (!s.empty()) v[f] = FieldValue::String(s);
    };
    put("first_name", given);
    put("last_name", family);
    put("postal_code", postal);
    put("phone", phone);
    put("street", street);
    return v;
  }
};

class PairMaker {
 public:
  explicit PairMaker(uint64_t seed) : rng_(seed) {}

  Person Someone() {
    Person p;
    p.given = Pick(kGiven);
    p.family = Pick(kFamily);
    p.postal = Postal();
    if (Chance(0.7)) p.phone = Phone();
    if (Chance(0.6)) p.street = Street();
    return p;
  }

  // The same customer entered again: another spelling, another source, perhaps a move.
  Person Again(const Person& p) {
    Person q = p;
    if (Chance(0.4)) q.given = Variant(p.given);
    if (Chance(0.3)) q.given = Recase(q.given), q.family = Recase(q.family);
    if (Chance(0.2)) q.family = Unaccent(q.family);
    if (Chance(0.12)) q.family = SoundAlike(q.family);
    if (Chance(0.06)) q.family = Typo(q.family);  // a slip no rule is meant to catch
    if (Chance(0.3) && !q.street.empty()) q.street = Abbreviate(q.street);
    if (Chance(0.1)) {  // moved: another address, the same phone
      q.postal = Postal();
      q.street = q.street.empty() ? "" : Street();
    }
    if (Chance(0.1)) q.phone = "";
    if (Chance(0.05)) q.postal = "";
    return q;
  }

  // Someone else, chosen to be hard to tell apart.
  Person Other(const Person& p) {
    Person q;
    const double kind = Uniform();
    if (kind < 0.4) {  // a family member at the same address
      q = p;
      do q.given = Pick(kGiven);
      while (SameName(q.given, p.given));
    } else if (kind < 0.7) {  // a namesake elsewhere
      q = Someone();
      q.given = p.given;
      q.family = p.family;
    } else {  // a neighbour: the same building
      q = Someone();
      q.postal = p.postal;
      q.street = p.street;
    }
    return q;
  }

  bool Chance(double p) { return Uniform() < p; }

 private:
  // clang-format off
  static inline const std::vector<std::vector<std::string>> kGiven = {
      {"Robert", "Rob", "Bob", "Bobby"},       {"Catherine", "Kate", "Katherine", "Cathy"},
      {"Jean-Pierre", "J.-P.", "Jean Pierre"}, {"Stephen", "Steve", "Steven"},
      {"Elizabeth", "Liz", "Beth", "Élisabeth"}, {"William", "Bill", "Will"},
      {"Marguerite", "Margot", "Maggie"},     {"Alexandre", "Alex"},
      {"Nathalie", "Natalie"},                {"Frédéric", "Fred", "Frederic"},
      {"Léa"}, {"Hugo"}, {"Chloé"}, {"Louis"}, {"Emma"}, {"Jules"}, {"Inès"}, {"Arthur"},
      {"Manon"}, {"Paul"}, {"Camille"}, {"Lucas"}, {"Sarah"}, {"Nathan"}, {"Zoé"}, {"Olivia"},
      {"Noah"}, {"Mila"}, {"Adam"}, {"Rose"}, {"Gabriel"}, {"Jade"}, {"Raphaël"}, {"Lina"},
      {"Mario"}, {"Marie"}, {"Julien"}, {"Julie"}, {"Sophie"}, {"Pauline"}, {"Antoine"},
      {"Claire"}, {"Thomas", "Tom"}, {"Michael", "Mike"}, {"Daniel", "Dan", "Danny"}};
  // clang-format on
  static inline const std::vector<std::string> kFamily = {
      "Martin",   "Bernard", "Dubois",   "Thomas",   "Robert",   "Richard",  "Petit",
      "Durand",   "Leroy",   "Moreau",   "Simon",    "Laurent",  "Lefèvre",  "Michel",
      "Garcia",   "David",   "Bertrand", "Roux",     "Vincent",  "Fournier", "Morel",
      "Girard",   "André",   "Mercier",  "Dupont",   "Lambert",  "Bonnet",   "François",
      "Martinez", "Smith",   "Johnson",  "Williams", "Brown",    "Jones",    "Müller",
      "Schmidt",  "Meyer",   "O'Brien",  "Nguyen",   "Da Silva", "Benoît",   "Chevalier"};

  std::string Pick(const std::vector<std::vector<std::string>>& groups) {
    const auto& g = groups[Index(groups.size())];
    return g[0];
  }
  std::string Pick(const std::vector<std::string>& names) { return names[Index(names.size())]; }
  std::string Variant(const std::string& given) {
    for (const auto& g : kGiven) {
      if (std::find(g.begin(), g.end(), given) != g.end()) return g[Index(g.size())];
    }
    return given;
  }
  static bool SameName(const std::string& a, const std::string& b) {
    for (const auto& g : kGiven) {
      const bool ha = std::find(g.begin(), g.end(), a) != g.end();
      const bool hb = std::find(g.begin(), g.end(), b) != g.end();
      if (ha || hb) return ha && hb;
    }
    return a == b;
  }
  std::string Recase(std::string s) {
    const bool upper = Chance(0.5);
    for (char& c : s) {
      if (static_cast<unsigned char>(c) < 0x80) {
        c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c))
                                    : std::tolower(static_cast<unsigned char>(c)));
      }
    }
    return s;
  }
  static std::string Unaccent(std::string s) {
    for (auto [from, to] : {std::pair<std::string, std::string>{"è", "e"},
                            {"é", "e"},
                            {"ü", "u"},
                            {"î", "i"},
                            {"ç", "c"}}) {
      for (size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, from.size(), to);
    }
    return s;
  }
  std::string SoundAlike(const std::string& family) {
    static const std::map<std::string, std::vector<std::string>> kAlike = {
        {"Dupont", {"Dupond"}},        {"Smith", {"Smyth"}},    {"Schmidt", {"Schmitt"}},
        {"Meyer", {"Mayer", "Meier"}}, {"Laurent", {"Lorent"}}, {"Girard", {"Girart"}},
        {"Petit", {"Petitt"}},         {"Thomas", {"Tomas"}},   {"Leroy", {"Le Roy", "Leroi"}},
        {"Mercier", {"Mercié"}},       {"Michel", {"Michell"}}, {"Philippe", {"Philipe"}}};
    auto it = kAlike.find(family);
    return it == kAlike.end() ? family : it->second[Index(it->second.size())];
  }
  std::string Typo(std::string s) {
    if (s.size() < 4) return s;
    const size_t i = 1 + Index(s.size() - 3);
    if (static_cast<unsigned char>(s[i]) >= 0x80 || static_cast<unsigned char>(s[i + 1]) >= 0x80) {
      return s;
    }
    std::swap(s[i], s[i + 1]);
    return s;
  }
  std::string Abbreviate(std::string s) {
    for (auto [from, to] : {std::pair<std::string, std::string>{"rue", "r."},
                            {"avenue", "av."},
                            {"boulevard", "bd"},
                            {"place", "pl."}}) {
      if (size_t at = s.find(from); at != std::string::npos) s.replace(at, from.size(), to);
    }
    return Chance(0.5) ? Recase(s) : s;
  }
  std::string Postal() { return std::to_string(10000 + Index(80000)); }
  std::string Phone() { return "+336" + std::to_string(10000000 + Index(89999999)); }
  std::string Street() {
    static const char* kWays[] = {"rue", "avenue", "boulevard", "place"};
    static const char* kNames[] = {"de la Paix",  "Victor Hugo",      "du Four", "des Lilas",
                                   "Jean Jaurès", "de la République", "Pasteur", "du Moulin"};
    return std::to_string(1 + Index(120)) + " " + kWays[Index(4)] + " " + kNames[Index(8)];
  }
  size_t Index(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  std::mt19937_64 rng_;
};

bool Match(const MatchingPolicy& m, const Person& a, const Person& b) {
  std::set<std::pair<std::string, std::string>> keys;
  for (const auto& k : MatchKeysOf(m, a.Values())) keys.insert({k.rule, k.key});
  for (const auto& k : MatchKeysOf(m, b.Values())) {
    if (keys.count({k.rule, k.key}) != 0) return true;
  }
  return false;
}

TEST(MatchKeys, PrecisionAndRecallOnALabelledSetOfPairs) {
  const MatchingPolicy& m = Policies().matching();
  const int pairs = 2000;  // 2 000 true duplicates and 2 000 hard non-duplicates
  int true_positive = 0, false_positive = 0, false_negative = 0;
  PairMaker maker(20261202);
  for (int i = 0; i < pairs; ++i) {
    const Person p = maker.Someone();
    if (Match(m, p, maker.Again(p))) {
      ++true_positive;
    } else {
      ++false_negative;
    }
    if (Match(m, p, maker.Other(p))) ++false_positive;
  }
  const double precision = true_positive / static_cast<double>(true_positive + false_positive);
  const double recall = true_positive / static_cast<double>(true_positive + false_negative);
  std::printf("duplicates: %d labelled pairs each way: precision %.3f, recall %.3f\n", pairs,
              precision, recall);
  EXPECT_GE(precision, 0.95);
  EXPECT_GE(recall, 0.85);
}

}  // namespace
}  // namespace garde

#include "garde/domain/match_keys.h"

#include <set>

namespace garde {
namespace {

bool Vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

std::string Text(const FieldMap& values, const std::string& field) {
  auto it = values.find(field);
  return it == values.end() || it->second.is_null() ? std::string() : IndexText(it->second);
}

}  // namespace

std::string FoldGivenName(const MatchingPolicy& policy, std::string_view name) {
  const std::string folded = FoldText(name);
  auto it = policy.given_names.find(folded);
  return it == policy.given_names.end() ? folded : it->second;
}

std::string FoldStreet(std::string_view street) {
  static const std::map<std::string, std::string, std::less<>> kWays = {
      {"rue", "r"},        {"r", "r"},       {"avenue", "av"},   {"av", "av"},     {"ave", "av"},
      {"boulevard", "bd"}, {"bd", "bd"},     {"blvd", "bd"},     {"street", "st"}, {"st", "st"},
      {"road", "rd"},      {"rd", "rd"},     {"place", "pl"},    {"pl", "pl"},     {"chemin", "ch"},
      {"ch", "ch"},        {"allee", "all"}, {"impasse", "imp"}, {"imp", "imp"},   {"drive", "dr"},
      {"dr", "dr"},        {"lane", "ln"},   {"ln", "ln"},       {"square", "sq"}, {"sq", "sq"},
      {"faubourg", "fg"},  {"fbg", "fg"},    {"route", "rte"},   {"rte", "rte"},   {"quai", "q"},
      {"cours", "crs"},    {"crs", "crs"}};
  static const std::set<std::string, std::less<>> kDropped = {
      "de", "du", "des", "la", "le", "les", "d", "l", "the", "of", "bis", "ter"};
  std::string out;
  for (const auto& w : FoldWords(street, true)) {
    if (kDropped.count(w) != 0) continue;
    auto way = kWays.find(w);
    out += way == kWays.end() ? w : way->second;
  }
  return out;
}

std::string Skeleton(std::string_view folded) {
  std::string s(folded);
  auto replace = [&s](std::string_view from, std::string_view to) {
    for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) {
      s.replace(at, from.size(), to);
    }
  };
  replace("sch", "sk");
  replace("ph", "f");
  replace("gh", "g");
  replace("th", "t");
  replace("ck", "k");
  replace("qu", "k");
  replace("dt", "t");
  std::string sounds;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const char next = i + 1 < s.size() ? s[i + 1] : '\0';
    switch (c) {
      case 'c': sounds += (next == 'e' || next == 'i' || next == 'y') ? 's' : 'k'; break;
      case 'q': sounds += 'k'; break;
      case 'x': sounds += "ks"; break;
      case 'z': sounds += 's'; break;
      case 'w':
      case 'v': sounds += 'f'; break;
      case 'y': sounds += 'i'; break;
      case 'h': break;
      case 'd': sounds += next == '\0' ? 't' : 'd'; break;  // Dupond, Dupont
      default: sounds += c;
    }
  }
  std::string out;
  for (size_t i = 0; i < sounds.size(); ++i) {
    const char c = sounds[i];
    if (i > 0 && Vowel(c)) continue;
    if (!out.empty() && out.back() == c) continue;
    out += c;
  }
  return out;
}

const std::vector<std::string>& MatchRules() {
  static const std::vector<std::string> kRules = {"name+postal_code", "name+phone", "name+street",
                                                  "sounds-like name+postal_code",
                                                  "sounds-like name+phone"};
  return kRules;
}

std::vector<MatchKey> MatchKeysOf(const MatchingPolicy& policy, const FieldMap& values) {
  std::vector<MatchKey> keys;
  if (!policy.enabled) return keys;
  const std::string given = FoldGivenName(policy, Text(values, policy.given_name));
  const std::string family = FoldText(Text(values, policy.family_name));
  if (given.empty() || family.empty()) return keys;
  const std::string names = given + "|" + family;
  const std::string sounds = Skeleton(given) + "|" + Skeleton(family);
  const std::string postal = Text(values, policy.postal_code);
  const std::string phone = Text(values, policy.phone);
  const std::string street = FoldStreet(Text(values, policy.street));
  const auto& rules = MatchRules();
  if (!postal.empty()) {
    keys.push_back({rules[0], names + "|" + postal});
    keys.push_back({rules[3], sounds + "|" + postal});
  }
  if (!phone.empty()) {
    keys.push_back({rules[1], names + "|" + phone});
    keys.push_back({rules[4], sounds + "|" + phone});
  }
  if (!street.empty()) keys.push_back({rules[2], names + "|" + street});
  return keys;
}

}  // namespace garde

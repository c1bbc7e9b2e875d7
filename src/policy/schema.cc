#include "garde/policy/schema.h"

#include <array>
#include <string_view>

namespace garde {
namespace {

struct TypeName {
  FieldType type;
  const char* name;
};
constexpr std::array<TypeName, 11> kTypes = {{
    {FieldType::kString, "string"},
    {FieldType::kEmail, "email"},
    {FieldType::kPhone, "phone"},
    {FieldType::kDate, "date"},
    {FieldType::kNumber, "number"},
    {FieldType::kEnum, "enum"},
    {FieldType::kBool, "bool"},
    {FieldType::kStreet, "street"},
    {FieldType::kPostalCode, "postal_code"},
    {FieldType::kCity, "city"},
    {FieldType::kCountry, "country"},
}};

constexpr std::array<std::string_view, 8> kOrdinary = {
    "identity",     "contact",     "demographic",   "household",
    "professional", "behavioural", "transactional", "financial"};
// GDPR Art. 9(1) special categories.
constexpr std::array<std::string_view, 8> kSpecial = {"racial_ethnic_origin",
                                                      "political_opinions",
                                                      "religious_beliefs",
                                                      "trade_union",
                                                      "genetic",
                                                      "biometric",
                                                      "health",
                                                      "sex_life_orientation"};

}  // namespace

const char* FieldTypeName(FieldType t) {
  for (const auto& tn : kTypes) {
    if (tn.type == t) return tn.name;
  }
  return "string";
}

std::optional<FieldType> ParseFieldType(const std::string& name) {
  for (const auto& tn : kTypes) {
    if (name == tn.name) return tn.type;
  }
  return std::nullopt;
}

bool IsSpecialCategory(const std::string& c) {
  for (auto s : kSpecial) {
    if (c == s) return true;
  }
  return false;
}

bool IsKnownCategory(const std::string& c) {
  for (auto s : kOrdinary) {
    if (c == s) return true;
  }
  return IsSpecialCategory(c);
}

const FieldSpec* Schema::Find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &fields_[it->second];
}

std::vector<std::string> Schema::FieldsInCategory(const std::string& category) const {
  std::vector<std::string> out;
  for (const auto& f : fields_) {
    if (f.category == category) out.push_back(f.name);
  }
  return out;
}

}  // namespace garde

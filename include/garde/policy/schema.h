// The customer-field schema (policies/schema.yaml): which fields a subject may carry, their
// type, data category, validation rules, normalisation and blind index.
//
//   const FieldSpec* f = schema.Find("email");
//   if (f && f->blind_index_bytes > 0) { ... }
//   for (const FieldSpec& f : schema.fields()) { ... }
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace Poco {
class RegularExpression;
}

namespace garde {

enum class FieldType {
  kString,
  kEmail,
  kPhone,
  kDate,
  kNumber,
  kEnum,
  kBool,
  kStreet,
  kPostalCode,
  kCity,
  kCountry,
};

const char* FieldTypeName(FieldType t);
std::optional<FieldType> ParseFieldType(const std::string& name);

// Data categories of the register; special ones are GDPR Art. 9 categories.
bool IsKnownCategory(const std::string& category);
bool IsSpecialCategory(const std::string& category);

inline constexpr const char* kSubjectKinds[] = {"person", "organization"};

struct FieldSpec {
  std::string name;
  FieldType type = FieldType::kString;
  std::string category;
  std::string description;
  std::set<std::string> kinds;      // subject kinds that may carry the field
  bool required = false;            // for every kind in `kinds`
  bool unique = false;              // one subject per value (needs a blind index)
  bool provided_by_subject = true;  // counted in portability exports (Art. 20)
  std::optional<size_t> min_length;
  std::optional<size_t> max_length;
  std::string pattern;
  std::shared_ptr<Poco::RegularExpression> pattern_re;
  std::optional<double> min;
  std::optional<double> max;
  bool integer = false;
  std::vector<std::string> values;  // enum values, canonical spelling
  size_t blind_index_bytes = 0;     // 0: no blind index
  int line = 0;                     // 1-based line in schema.yaml
};

class Schema {
 public:
  const FieldSpec* Find(const std::string& name) const;
  const std::vector<FieldSpec>& fields() const { return fields_; }
  // Names of the fields in a data category.
  std::vector<std::string> FieldsInCategory(const std::string& category) const;

  std::vector<FieldSpec> fields_;
  std::map<std::string, size_t> by_name_;
};

}  // namespace garde

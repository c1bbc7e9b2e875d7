// The entry standard (SPEC §2.1): every written value is validated against its schema field
// and normalised — trimmed, Unicode NFC, emails lower-cased, phones in E.164, dates ISO 8601.
//
//   EntryStandard standard("FR");
//   std::string why;
//   std::optional<FieldValue> v = standard.Normalize(*schema.Find("phone"),
//                                                    FieldValue::String("06 12 34 56 78"), &why);
//   // v->text == "+33612345678"
#pragma once

#include <optional>
#include <string>

#include "garde/domain/field_value.h"
#include "garde/policy/schema.h"

namespace garde {

class EntryStandard {
 public:
  // default_region: ISO 3166 alpha-2 region for phone numbers written without "+".
  explicit EntryStandard(std::string default_region);

  // The normalised value, or nullopt with `error` saying what is wrong (never echoing the
  // value itself: error messages must not carry personal data).
  std::optional<FieldValue> Normalize(const FieldSpec& spec, const FieldValue& value,
                                      std::string* error) const;

  const std::string& default_region() const { return default_region_; }

 private:
  std::optional<std::string> NormalizeText(const FieldSpec& spec, const std::string& in,
                                           std::string* error) const;
  std::string default_region_;
};

// Unicode NFC of valid UTF-8 text.
std::string ToNfc(const std::string& utf8);
// Unicode lower case of valid UTF-8 text.
std::string ToLower(const std::string& utf8);
// Number of Unicode code points in valid UTF-8 text.
size_t CodePoints(const std::string& utf8);

}  // namespace garde

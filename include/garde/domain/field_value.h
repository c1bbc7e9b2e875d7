// A personal field value as the domain sees it: a JSON scalar, independent of any JSON library.
//
//   FieldValue v = FieldValue::String("Ana");
//   std::string plain = EncodeFieldValue(v);           // what gets sealed
//   std::optional<FieldValue> back = DecodeFieldValue(plain);
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "garde/base/json_writer.h"

namespace garde {

struct FieldValue {
  enum class Type { kNull, kString, kNumber, kBool, kComposite };
  Type type = Type::kNull;
  std::string text;
  double number = 0;
  bool boolean = false;

  static FieldValue Null() { return {}; }
  static FieldValue String(std::string s) { return {Type::kString, std::move(s), 0, false}; }
  static FieldValue Number(double d) { return {Type::kNumber, {}, d, false}; }
  static FieldValue Bool(bool b) { return {Type::kBool, {}, 0, b}; }
  // An array or object: never a valid field value, kept so validation can say so.
  static FieldValue Composite() { return {Type::kComposite, {}, 0, false}; }
  bool is_null() const { return type == Type::kNull; }
};

using FieldMap = std::map<std::string, FieldValue>;

// Plaintext form sealed in storage: a type tag then the value ("s:Ana", "n:12.5", "b:1").
std::string EncodeFieldValue(const FieldValue& v);
std::optional<FieldValue> DecodeFieldValue(std::string_view plain);
// The text a blind index is computed over (the normalised value).
std::string IndexText(const FieldValue& v);
// Writes the value as a JSON scalar.
void WriteFieldValue(JsonWriter& w, const FieldValue& v);

}  // namespace garde

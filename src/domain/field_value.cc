#include "garde/domain/field_value.h"

#include <charconv>

namespace garde {

std::string EncodeFieldValue(const FieldValue& v) {
  switch (v.type) {
    case FieldValue::Type::kString: return "s:" + v.text;
    case FieldValue::Type::kBool: return v.boolean ? "b:1" : "b:0";
    case FieldValue::Type::kNumber: return "n:" + IndexText(v);
    default: return "z:";
  }
}

std::optional<FieldValue> DecodeFieldValue(std::string_view p) {
  if (p.size() < 2 || p[1] != ':') return std::nullopt;
  const std::string_view body = p.substr(2);
  switch (p[0]) {
    case 's': return FieldValue::String(std::string(body));
    case 'b': return FieldValue::Bool(body == "1");
    case 'n': {
      double d = 0;
      auto r = std::from_chars(body.data(), body.data() + body.size(), d);
      if (r.ec != std::errc() || r.ptr != body.data() + body.size()) return std::nullopt;
      return FieldValue::Number(d);
    }
    default: return std::nullopt;
  }
}

std::string IndexText(const FieldValue& v) {
  switch (v.type) {
    case FieldValue::Type::kString: return v.text;
    case FieldValue::Type::kBool: return v.boolean ? "true" : "false";
    case FieldValue::Type::kNumber: {
      char buf[32];
      auto r = std::to_chars(buf, buf + sizeof buf, v.number);
      return std::string(buf, r.ptr);
    }
    default: return "";
  }
}

void WriteFieldValue(JsonWriter& w, const FieldValue& v) {
  switch (v.type) {
    case FieldValue::Type::kString: w.String(v.text); break;
    case FieldValue::Type::kNumber: w.Number(v.number); break;
    case FieldValue::Type::kBool: w.Bool(v.boolean); break;
    default: w.Null();
  }
}

}  // namespace garde

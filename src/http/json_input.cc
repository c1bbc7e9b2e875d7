#include "garde/http/json_input.h"

#include <Poco/JSON/JSONException.h>
#include <Poco/JSON/Parser.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "garde/base/encoding.h"
#include "garde/domain/subject_vault.h"

namespace garde {

namespace {

// A JSON string no client sends in a number's place: "\u0001garde:number-out-of-range".
constexpr const char* kOutOfRange = "\\u0001garde:number-out-of-range";

std::optional<Poco::Dynamic::Var> TryParse(const std::string& text) {
  try {
    Poco::JSON::Parser parser;
    parser.setDepth(32);
    return std::optional<Poco::Dynamic::Var>(std::in_place, parser.parse(text));
  } catch (const Poco::Exception&) {
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// `text` with every number a 64-bit integer or a double cannot hold (1e400, 2^64) replaced by
// a marker string, outside strings; *replaced says whether there was one.
std::string MarkOutOfRangeNumbers(const std::string& text, bool* replaced) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) {
        out += text[i + 1];
        i += 2;
        continue;
      }
      if (c == '"') in_string = false;
      ++i;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      ++i;
      continue;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t j = i + 1;
      bool integral = true;
      while (j < text.size() && std::strchr("0123456789.eE+-", text[j]) != nullptr) {
        integral &= text[j] >= '0' && text[j] <= '9';
        ++j;
      }
      const std::string number = text.substr(i, j - i);
      errno = 0;
      bool fits;
      if (integral) {
        char* end = nullptr;
        if (number[0] == '-') {
          (void)std::strtoll(number.c_str(), &end, 10);
        } else {
          (void)std::strtoull(number.c_str(), &end, 10);
        }
        fits = errno != ERANGE;
      } else {
        const double d = std::strtod(number.c_str(), nullptr);
        fits = errno != ERANGE || d == 0.0;
      }
      if (fits) {
        out += number;
      } else {
        out.append(1, '"').append(kOutOfRange).append(1, '"');
        *replaced = true;
      }
      i = j;
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

// The path ("fields.household_size", "subjects[2]") of the first marker in `v`.
bool FindMarker(const Poco::Dynamic::Var& v, const std::string& path, std::string* out) {
  if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
    for (const auto& [k, member] : *v.extract<Poco::JSON::Object::Ptr>()) {
      if (FindMarker(member, path.empty() ? k : path + "." + k, out)) return true;
    }
    return false;
  }
  if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
    const auto& arr = *v.extract<Poco::JSON::Array::Ptr>();
    for (size_t i = 0; i < arr.size(); ++i) {
      if (FindMarker(arr.get(static_cast<unsigned>(i)), path + "[" + std::to_string(i) + "]",
                     out)) {
        return true;
      }
    }
    return false;
  }
  if (v.isString() && v.extract<std::string>() == std::string("\x01garde:number-out-of-range")) {
    *out = path;
    return true;
  }
  return false;
}

}  // namespace

Result<Poco::Dynamic::Var> ParseJson(const std::string& text) {
  if (!IsValidUtf8(text)) return BadRequest("the body is not valid UTF-8");
  if (auto parsed = TryParse(text)) return *parsed;
  // Well-formed JSON that is not a document Garde takes — a bare value, or a number no 64-bit
  // integer or double holds — is invalid content (422, naming where), not malformed (400).
  bool replaced = false;
  const std::string marked = MarkOutOfRangeNumbers(text, &replaced);
  if (auto parsed = TryParse("[" + marked + "]")) {
    std::string where;
    if (replaced && FindMarker(*parsed, "", &where)) {
      if (where.rfind("[0]", 0) == 0) where.erase(0, where.size() > 3 && where[3] == '.' ? 4 : 3);
      return Status(Code::kUnprocessable, "a number in the body is out of range")
          .AddError(where, "is out of range for a number");
    }
    return Status(Code::kUnprocessable, "the body must be a JSON object")
        .AddError("", "must be a JSON object, not a bare value");
  }
  return BadRequest("the body is not well-formed JSON");
}

bool IsJsonObject(const Poco::Dynamic::Var& v) {
  return v.type() == typeid(Poco::JSON::Object::Ptr);
}
bool IsJsonArray(const Poco::Dynamic::Var& v) { return v.type() == typeid(Poco::JSON::Array::Ptr); }

Result<Poco::JSON::Object::Ptr> ParseJsonObject(const std::string& text) {
  GARDE_ASSIGN_OR_RETURN(auto v, ParseJson(text));
  if (!IsJsonObject(v)) {
    return Status(Code::kUnprocessable, "the body must be a JSON object")
        .AddError("", "must be a JSON object");
  }
  return v.extract<Poco::JSON::Object::Ptr>();
}

void CheckMembers(const Poco::JSON::Object& obj, std::initializer_list<const char*> allowed,
                  const std::string& prefix, Status* problems) {
  for (const auto& [name, _] : obj) {
    bool ok = false;
    for (const char* a : allowed) ok |= name == a;
    if (!ok) problems->AddError(prefix + name, "is not a known member");
  }
}

FieldValue ToFieldValue(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return FieldValue::Null();
  if (v.isString()) return FieldValue::String(v.extract<std::string>());
  if (v.isBoolean()) return FieldValue::Bool(v.convert<bool>());
  if (v.isNumeric()) {
    try {
      return FieldValue::Number(v.convert<double>());
    } catch (const Poco::Exception&) {
      return FieldValue::Composite();
    }
  }
  return FieldValue::Composite();
}

FieldMap ReadFieldMap(const Poco::JSON::Object& obj, const std::string& name, Status* problems) {
  FieldMap out;
  if (!obj.has(name)) return out;
  const Poco::Dynamic::Var v = obj.get(name);
  if (!IsJsonObject(v)) {
    problems->AddError(name, "must be an object of field values");
    return out;
  }
  for (const auto& [field, value] : *v.extract<Poco::JSON::Object::Ptr>()) {
    FieldValue fv = ToFieldValue(value);
    if (fv.type == FieldValue::Type::kComposite) {
      problems->AddError(name + "." + field, "must be a single value, not an array or object");
      continue;
    }
    out[field] = std::move(fv);
  }
  return out;
}

std::optional<std::string> ReadString(const Poco::JSON::Object& obj, const std::string& name,
                                      const std::string& prefix, Status* problems) {
  if (!obj.has(name)) return std::nullopt;
  const Poco::Dynamic::Var v = obj.get(name);
  if (!v.isString()) {
    problems->AddError(prefix + name, "must be a string");
    return std::nullopt;
  }
  return v.extract<std::string>();
}

std::optional<std::vector<std::string>> ReadStringArray(const Poco::JSON::Object& obj,
                                                        const std::string& name,
                                                        const std::string& array_message,
                                                        Status* problems) {
  if (!obj.has(name)) return std::nullopt;
  std::vector<std::string> out;
  const Poco::Dynamic::Var v = obj.get(name);
  if (!IsJsonArray(v)) {
    problems->AddError(name, array_message);
    return out;
  }
  const auto& arr = *v.extract<Poco::JSON::Array::Ptr>();
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto item = arr.get(static_cast<unsigned>(i));
    if (!item.isString()) {
      problems->AddError(name + "[" + std::to_string(i) + "]", "must be a string");
      continue;
    }
    out.push_back(item.extract<std::string>());
  }
  return out;
}

SubjectChanges ReadChanges(const Poco::JSON::Object& obj, const std::string& prefix,
                           Status* problems, bool allow_id) {
  SubjectChanges changes;
  if (allow_id) {
    CheckMembers(obj, {"id", "fields", "external_id"}, prefix, problems);
  } else {
    CheckMembers(obj, {"fields", "external_id"}, prefix, problems);
  }
  Status nested(Code::kUnprocessable, "");
  changes.fields = ReadFieldMap(obj, "fields", &nested);
  for (const auto& e : nested.errors()) problems->AddError(prefix + e.field, e.message);
  if (obj.has("external_id")) {
    FieldValue v = ToFieldValue(obj.get("external_id"));
    if (v.type != FieldValue::Type::kString && !v.is_null()) {
      problems->AddError(prefix + "external_id", "must be a string or null");
    } else {
      changes.external_id = v;
    }
  }
  return changes;
}

}  // namespace garde

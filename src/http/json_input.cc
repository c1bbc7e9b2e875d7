#include "garde/http/json_input.h"

#include <Poco/JSON/JSONException.h>
#include <Poco/JSON/Parser.h>

#include "garde/base/encoding.h"
#include "garde/domain/subject_vault.h"

namespace garde {

Result<Poco::Dynamic::Var> ParseJson(const std::string& text) {
  if (!IsValidUtf8(text)) return BadRequest("the body is not valid UTF-8");
  try {
    Poco::JSON::Parser parser;
    parser.setDepth(32);
    return parser.parse(text);
  } catch (const Poco::Exception&) {
    return BadRequest("the body is not well-formed JSON");
  } catch (const std::exception&) {
    return BadRequest("the body is not well-formed JSON");
  }
}

bool IsJsonObject(const Poco::Dynamic::Var& v) {
  return v.type() == typeid(Poco::JSON::Object::Ptr);
}
bool IsJsonArray(const Poco::Dynamic::Var& v) {
  return v.type() == typeid(Poco::JSON::Array::Ptr);
}

Result<Poco::JSON::Object::Ptr> ParseJsonObject(const std::string& text) {
  auto v = ParseJson(text);
  if (!v.ok()) return v.status();
  if (!IsJsonObject(v.value())) return Unprocessable("the body must be a JSON object");
  return v.value().extract<Poco::JSON::Object::Ptr>();
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

FieldMap ReadFieldMap(const Poco::JSON::Object& obj, const std::string& name,
                      Status* problems) {
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

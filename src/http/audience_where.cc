#include "garde/http/audience_where.h"

#include "garde/http/json_input.h"

namespace garde {

using Kind = Predicate::Kind;

Predicate ParseWhere(const Poco::Dynamic::Var& v, const std::string& path, Status* problems) {
  Predicate p;
  if (!IsJsonObject(v)) {
    problems->AddError(path, "must be an object");
    return p;
  }
  const auto& o = *v.extract<Poco::JSON::Object::Ptr>();
  // An empty object filters nothing (as `{"all": []}`, or no `where` at all).
  if (o.size() == 0) return p;
  for (const char* combinator : {"all", "any"}) {
    if (!o.has(combinator)) continue;
    p.kind = std::string(combinator) == "all" ? Kind::kAll : Kind::kAny;
    const auto list = o.get(combinator);
    if (!IsJsonArray(list)) {
      problems->AddError(path + "." + combinator, "must be an array");
      return p;
    }
    const auto& arr = *list.extract<Poco::JSON::Array::Ptr>();
    for (size_t i = 0; i < arr.size(); ++i) {
      p.children.push_back(ParseWhere(arr.get(static_cast<unsigned>(i)),
                                      path + "." + combinator + "[" + std::to_string(i) + "]",
                                      problems));
    }
    if (o.size() != 1) problems->AddError(path, "a combinator stands alone in its object");
    return p;
  }
  if (o.has("not")) {
    p.kind = Kind::kNot;
    p.children.push_back(ParseWhere(o.get("not"), path + ".not", problems));
    if (o.size() != 1) problems->AddError(path, "a combinator stands alone in its object");
    return p;
  }
  static const std::pair<const char*, Kind> kOps[] = {
      {"eq", Kind::kEq},   {"in", Kind::kIn}, {"prefix", Kind::kPrefix}, {"gt", Kind::kGt},
      {"gte", Kind::kGte}, {"lt", Kind::kLt}, {"lte", Kind::kLte},       {"within", Kind::kWithin}};
  p.field = ReadString(o, "field", path + ".", problems).value_or("");
  if (p.field.empty()) problems->AddError(path, "needs all, any, not, or a field and an operator");
  int ops = 0;
  for (const auto& [name, kind] : kOps) {
    if (!o.has(name)) continue;
    ++ops;
    p.kind = kind;
    const auto value = o.get(name);
    if (kind == Kind::kIn) {
      if (!IsJsonArray(value)) {
        problems->AddError(path + ".in", "must be an array");
        continue;
      }
      const auto& arr = *value.extract<Poco::JSON::Array::Ptr>();
      for (size_t i = 0; i < arr.size(); ++i)
        p.values.push_back(ToFieldValue(arr.get(static_cast<unsigned>(i))));
    } else if (kind == Kind::kWithin) {
      p.duration = value.isString() ? value.extract<std::string>() : "";
    } else {
      p.values.push_back(ToFieldValue(value));
    }
  }
  for (const auto& v2 : p.values) {
    if (v2.type == FieldValue::Type::kComposite || v2.is_null()) {
      problems->AddError(path, "values must be strings, numbers or booleans");
    }
  }
  if (ops != 1)
    problems->AddError(path,
                       "needs exactly one operator (eq, in, prefix, gt, gte, lt, lte, within)");
  if (o.size() != 2) problems->AddError(path, "holds only field and one operator");
  return p;
}

}  // namespace garde

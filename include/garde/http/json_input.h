// Reading request JSON into domain types, refusing what the contract does not allow:
// malformed text (400), wrong member types and unknown members (422).
//
//   auto obj = ParseJsonObject(x.body);                  // 400 when malformed
//   GARDE_RETURN_IF_ERROR(OnlyMembers(obj.value(), {"kind", "fields"}, ""));
//   auto fields = ReadFieldMap(obj.value(), "fields");
#pragma once

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "garde/base/status.h"
#include "garde/domain/field_value.h"

namespace garde {

Result<Poco::Dynamic::Var> ParseJson(const std::string& text);
Result<Poco::JSON::Object::Ptr> ParseJsonObject(const std::string& text);
bool IsJsonObject(const Poco::Dynamic::Var& v);
bool IsJsonArray(const Poco::Dynamic::Var& v);

// Adds a 422 error to `problems` for each member of `obj` not in `allowed`.
void CheckMembers(const Poco::JSON::Object& obj, std::initializer_list<const char*> allowed,
                  const std::string& prefix, Status* problems);
FieldValue ToFieldValue(const Poco::Dynamic::Var& v);
// Reads member `name` as an object of scalar values; problems go to `problems`.
FieldMap ReadFieldMap(const Poco::JSON::Object& obj, const std::string& name, Status* problems);
// Reads an optional string member; a non-string is a problem.
std::optional<std::string> ReadString(const Poco::JSON::Object& obj, const std::string& name,
                                      const std::string& prefix, Status* problems);

// Reads an optional member that must be an array of strings: nullopt when absent; otherwise
// the strings, with `array_message` reported for a non-array and "must be a string" for each
// other element (field "name[i]").
std::optional<std::vector<std::string>> ReadStringArray(const Poco::JSON::Object& obj,
                                                        const std::string& name,
                                                        const std::string& array_message,
                                                        Status* problems);

// Reads a rectification ({fields, external_id}, plus "id" when allow_id); null removes a field.
struct SubjectChanges;
SubjectChanges ReadChanges(const Poco::JSON::Object& obj, const std::string& prefix,
                           Status* problems, bool allow_id);

}  // namespace garde

// The audience `where` language as JSON (SPEC §4): `{"all":[…]}`, `{"any":[…]}`,
// `{"not":{…}}`, or `{"field": F, OP: V}` with OP one of eq, in, prefix, gt, gte, lt, lte,
// within. Parsing only; the audience builder binds fields and values against the schema.
//
//   Status problems(Code::kUnprocessable, "the audience request is not valid");
//   Predicate p = ParseWhere(obj->get("where"), "where", &problems);  // errors name their path
#pragma once

#include <Poco/Dynamic/Var.h>

#include <string>

#include "garde/base/status.h"
#include "garde/domain/audience.h"

namespace garde {

// Parses one `where` node; problems are added to *problems with their JSON path.
Predicate ParseWhere(const Poco::Dynamic::Var& v, const std::string& path, Status* problems);

}  // namespace garde

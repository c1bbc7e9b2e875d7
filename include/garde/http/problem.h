// RFC 9457 problem details: the one table mapping each error Code to an HTTP status and a
// problem `type`, and the JSON body every error answer carries.
//
//   int status = HttpStatusOf(Code::kConflict);              // 409
//   std::string body = ProblemBody(status_value, request_id); // application/problem+json
#pragma once

#include <string>

#include "garde/base/status.h"

namespace garde {

inline constexpr const char* kProblemBase = "https://garde.dev/problems/";

int HttpStatusOf(Code code);
// The last path segment of the problem type, e.g. "validation-failed".
const char* ProblemSlug(Code code);
const char* ProblemTitle(Code code);
std::string ProblemBody(const Status& status, const std::string& request_id);

}  // namespace garde

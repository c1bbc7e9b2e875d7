// Lint of the register against the schema and purposes (SPEC §2.4). Each finding names its
// rule, severity, file:line and a fix hint.
//
//   for (const LintFinding& f : LintRegister(policies)) { ... }
#pragma once

#include <string>
#include <vector>

#include "garde/policy/policy_set.h"

namespace garde {

struct LintFinding {
  std::string severity;  // error | warning
  std::string rule;
  std::string location;  // file:line
  std::string message;
  std::string hint;
};

std::vector<LintFinding> LintRegister(const PolicySet& policies);

}  // namespace garde

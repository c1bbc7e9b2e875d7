// Replacing the running policies (POST /v1/admin/reload, SIGHUP): the new set is loaded and
// linted first; on any error the running set stays and the problems are returned. A change
// is audited with the before/after content hashes and a summary, and kept in the history
// (once per deployment). Other nodes sharing the database are told, and each reloads its own
// files (source "peer"; serve's reloader thread).
//
//   auto r = ReloadPolicies(deployment, caller, "api");   // 422 with file:line errors
//   r->changed, r->before, r->after, r->summary (JSON)
#pragma once

#include <string>

#include "garde/app/deployment.h"

namespace garde {

struct ReloadResult {
  bool changed = false;
  std::string before, after;  // content hashes
  std::string summary;        // JSON: activities, purposes, roles and fields added/removed/changed
};

Result<ReloadResult> ReloadPolicies(Deployment& d, const Caller& caller, const std::string& source);
// Adds the set the service starts with to the history when it differs from the last one.
Status RecordStartingPolicies(Deployment& d);

}  // namespace garde

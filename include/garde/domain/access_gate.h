// Roles and purpose binding (SPEC §3.4): the one place that decides whether a caller may make
// a call, and which fields a read may return.
//
//   GARDE_RETURN_IF_ERROR(AccessGate::Require(policies, caller, "subjects.write"));
//   Result<const Activity*> a = AccessGate::BindPurpose(policies, caller, x_purpose);
//   // a.value()->fields: the only fields this read may return
#pragma once

#include <set>
#include <string>
#include <string_view>

#include "garde/base/status.h"
#include "garde/policy/policy_set.h"

namespace garde {

// Who is calling: an API key, or a customer holding a subject token, and the request it made.
struct Caller {
  std::string key_id;  // "subject-token" for a customer
  std::string role;    // "subject" for a customer
  std::set<std::string> activities;
  std::string request_id;
  std::string subject;  // the token's subject, for a customer; empty for API keys
  // For a customer: the link's use (preferences | unsubscribe | dsr) and scope (a purpose, a
  // request id, or "*"). A package opens only with a dsr link scoped to its request.
  std::string link_use{};
  std::string link_scope{};
  // The keyed digest of the address the call came from (AuditValues::Client), "" when it
  // came from no network (a command on the host): incidents are scoped by it.
  std::string client{};

  bool is_subject() const { return !subject.empty(); }
};

// Where a customer's call through a link came from: its request id and the digest of its
// client address (Caller::client; "" when unknown).
struct RequestOrigin {
  RequestOrigin(const char* id) : request_id(id) {}              // NOLINT: a request id alone
  RequestOrigin(std::string id, std::string client_digest = "")  // NOLINT
      : request_id(std::move(id)), client(std::move(client_digest)) {}
  std::string request_id;
  std::string client;
};

// The caller behind a subject link (preference centre, DSR link) of `subject`.
inline Caller SubjectCaller(const std::string& subject, const std::string& request_id,
                            const std::string& use = "", const std::string& scope = "") {
  return Caller{"subject-token", "subject", {}, request_id, subject, use, scope};
}
inline Caller SubjectCallerFrom(const std::string& subject, const RequestOrigin& origin) {
  Caller c = SubjectCaller(subject, origin.request_id);
  c.client = origin.client;
  return c;
}

class AccessGate {
 public:
  // 403 unless the caller's role grants `capability`.
  static Status Require(const PolicySet& policies, const Caller& caller,
                        std::string_view capability);
  // The activity a personal-data read serves. 403 unless the activity is in the register,
  // the caller's role may read personal data, and the key is bound to the activity.
  static Result<const Activity*> BindPurpose(const PolicySet& policies, const Caller& caller,
                                             const std::string& activity_id);
};

}  // namespace garde

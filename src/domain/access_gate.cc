#include "garde/domain/access_gate.h"

namespace garde {

Status AccessGate::Require(const PolicySet& policies, const Caller& caller,
                           std::string_view capability) {
  const Role* role = policies.FindRole(caller.role);
  if (role == nullptr || role->capabilities.count(std::string(capability)) == 0) {
    return PermissionDenied("role '" + caller.role + "' may not " + std::string(capability));
  }
  return Status::Ok();
}

Result<const Activity*> AccessGate::BindPurpose(const PolicySet& policies, const Caller& caller,
                                                const std::string& activity_id) {
  if (activity_id.empty()) {
    return PermissionDenied(
        "reading personal data requires an X-Purpose header naming a processing activity");
  }
  const Role* role = policies.FindRole(caller.role);
  if (role == nullptr || !role->personal_data) {
    return PermissionDenied("role '" + caller.role + "' may not read personal data");
  }
  const Activity* activity = policies.FindActivity(activity_id);
  // An activity removed from the register stops authorising reads at once, even for keys
  // still bound to it.
  if (activity == nullptr) {
    // The value is the client's: named back only when it is an id-shaped token.
    const bool plain = activity_id.size() <= 64 &&
                       activity_id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_.-") ==
                           std::string::npos;
    return PermissionDenied((plain ? "'" + activity_id + "'" : std::string("the X-Purpose value")) +
                            " is not an activity of the register");
  }
  if (caller.activities.count(activity_id) == 0) {
    return PermissionDenied("this API key is not bound to activity '" + activity_id + "'");
  }
  return activity;
}

}  // namespace garde

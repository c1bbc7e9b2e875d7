// The officer's console under /console/: server-rendered pages (no script is needed; one
// script checks audit proofs in the browser when it may run) for officers, auditors and
// admins, in English and French. A person signs in with their API key, exchanged for a
// session cookie; every form carries the session's CSRF token; every page view is audited
// like the API read it stands for. docs/console.md.
//
//   ConsoleSessions sessions(deployment.store(), clock);
//   AddConsoleRoutes(router, deployment, sessions);
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "garde/base/clock.h"
#include "garde/domain/access_gate.h"
#include "garde/http/router.h"
#include "garde/store/store.h"

namespace garde {

class Deployment;

// Console sign-ins, kept in the vault's store so that every node of a deployment knows them:
// the cookie value is shown to the browser once and kept only as its BLAKE2b hash. A session
// ends at sign-out, after `idle_seconds` without a page, `absolute_seconds` after sign-in, or
// when its key is revoked.
class ConsoleSessions {
 public:
  struct Session {
    Caller caller;
    std::string csrf;  // the token every form of the session carries
    std::string lang;  // en | fr
    int64_t signed_in_at = 0;
    int64_t last_seen = 0;
  };
  static constexpr int64_t kIdleSeconds = 30 * 60;
  static constexpr int64_t kAbsoluteSeconds = 12 * 3600;

  ConsoleSessions(Store& store, const Clock& clock, int64_t idle_seconds = kIdleSeconds,
                  int64_t absolute_seconds = kAbsoluteSeconds)
      : store_(store), clock_(clock), idle_(idle_seconds), absolute_(absolute_seconds) {}

  // A new session (expired ones are swept on the way); returns the cookie value.
  Result<std::string> Open(const Caller& caller, const std::string& lang);
  // The session of a cookie value, its idle time restarted; nullopt when unknown, expired (an
  // expired session is forgotten) or unreadable.
  std::optional<Session> Touch(const std::string& cookie);
  void SetLanguage(const std::string& cookie, const std::string& lang);
  void Close(const std::string& cookie);
  // Sessions stored, expired or not.
  int64_t size() const;

 private:
  static Bytes HashOf(const std::string& cookie);
  // The expiry rule, stated once for the store's sweep and for a page: at `now`, a session last
  // seen before idle_before, or signed in before signed_in_before, has ended.
  struct Cutoffs {
    int64_t idle_before, signed_in_before;
  };
  Cutoffs EndedBefore(int64_t now) const { return {now - idle_ + 1, now - absolute_ + 1}; }
  // Ends the stored session of `key`.
  void Forget(const Bytes& key);
  // Changes the stored session of `key`, if it is still there.
  void Update(const Bytes& key, const std::function<void(ConsoleSessionRow&)>& change);
  Store& store_;
  const Clock& clock_;
  const int64_t idle_, absolute_;
};

// GET/POST /console/... (not part of the API document: pages for people).
void AddConsoleRoutes(Router& router, Deployment& d, ConsoleSessions& sessions);

}  // namespace garde

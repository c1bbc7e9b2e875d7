// The breach register (GDPR Art. 33-34): every personal data breach documented, the 72-hour
// clock from awareness to the authority's notification, the exact scope read from the
// verified audit log, and the notices to the customers concerned through the mailer.
//
//   BreachRegister breaches(deployment);
//   auto incident = breaches.Open(officer, facts_json, detected_at, aware_at);
//   auto scoped = breaches.Scope(officer, incident->row.id, {"key_ab12", since, until});
#pragma once

#include <string>
#include <vector>

#include "garde/crypto/secret.h"
#include "garde/domain/access_gate.h"
#include "garde/store/store.h"

namespace garde {

class Deployment;

inline constexpr int64_t kAuthorityDeadline = 72 * 3600;  // Art. 33(1)

struct IncidentView {
  IncidentRow row;
  std::string facts;  // JSON object: what the officer recorded, the scope, who was told
};

struct IncidentQuery {
  std::string status;       // open | closed | "" (any)
  bool overdue = false;     // the authority's deadline passed, not notified
  int64_t due_within = -1;  // seconds; -1: no bound
};

struct BreachScope {
  std::string actor;     // the API key id (or subject-token) whose accesses count; "": any
  std::string activity;  // only accesses for this processing activity; "": any
  // Only accesses from this client address (canonical text, CanonicalAddress); "": any. The
  // log holds its keyed digest (AuditValues::Client), compared here.
  std::string client;
  int64_t since = 0, until = 0;  // inclusive; 0: unbounded
};

class BreachRegister {
 public:
  explicit BreachRegister(Deployment& d) : d_(d) {}
  // `facts` is a JSON object of the members docs/api.md lists (validated by the caller).
  Result<IncidentView> Open(const Caller& caller, const std::string& facts, int64_t detected_at,
                            int64_t aware_at);
  Result<std::vector<IncidentView>> List(const Caller& caller, const IncidentQuery& q);
  Result<IncidentView> Get(const Caller& caller, const std::string& id);
  // Merges `changes` (a JSON object) into the facts; authority_notified_at and status set the
  // dates; every change is audited.
  Result<IncidentView> Update(const Caller& caller, const std::string& id,
                              const std::string& changes, int64_t authority_notified_at,
                              bool close);
  // Every subject whose data `scope.actor` read or changed within the window, with the fields
  // and activities, from the audit log verified first against a checkpoint signed now (409
  // when it does not verify: a shortened log never yields a shorter list).
  Result<IncidentView> Scope(const Caller& caller, const std::string& id, const BreachScope& scope);
  // The proof behind one subject of the scope: each of its entries' exact bytes with an
  // inclusion proof to the tree head signed when the scope was drawn, for anyone to check
  // with the public key alone (kConflict before a scope, kNotFound for a subject not in it).
  Result<std::string> Evidence(const Caller& caller, const std::string& id,
                               const std::string& subject);
  // Containment: revokes API key `key_id` at once (this process's key cache is emptied with
  // it) and records it in the incident's containment, with the time. 404 for no active key.
  Result<IncidentView> RevokeKey(const Caller& caller, const std::string& id,
                                 const std::string& key_id);
  // Containment: every subject of the drawn scope gets a fresh data key and everything
  // sealed under the old one is sealed again (SubjectVault::Rekey), so that a data key
  // obtained in the breach opens nothing the vault holds from now on; recorded with the
  // counts. kConflict before a scope. Officers (incidents.manage) or key custodians.
  Result<IncidentView> RekeySubjects(const Caller& caller, const std::string& id);
  // Containment taken on the host (`garde keys rotate --incident ID`): checks first that the
  // incident exists and that the caller may record on it (officers, incidents.manage; key
  // custodians, keys.manage), then records the step with the time once it is done.
  Status CheckContainment(const Caller& caller, const std::string& id);
  Result<IncidentView> RecordContainment(const Caller& caller, const std::string& id,
                                         const std::string& action);
  // Art. 34: a breach_notice to each subject of the scope still known, through the mailer.
  Result<IncidentView> NotifySubjects(const Caller& caller, const std::string& id);
  // The notice texts (nature, consequences, measures) in `lang`, for the mailer.
  Result<std::vector<std::string>> NoticeTexts(const std::string& id, const std::string& lang);

 private:
  void SealingKey(ScopedKey* key) const;
  Bytes Seal(const std::string& id, const std::string& facts) const;
  Result<std::string> Unseal(const IncidentRow& row) const;
  Result<IncidentView> Load(const std::string& id);
  // The incident, once the caller is found to be one who may record containment on it.
  Result<IncidentView> LoadForContainment(const Caller& caller, const std::string& id);
  // Appends `action` to the incident's containment steps, with the time, and saves it.
  Result<IncidentView> AddContainment(const Caller& caller, const IncidentView& view,
                                      const std::string& action);
  Result<IncidentView> Save(const Caller& caller, IncidentRow row, const std::string& facts,
                            const char* action, std::vector<std::string> details);
  Deployment& d_;
};

// The sheet for the supervisory authority, laid out under the headings of the CNIL's
// notification form (Art. 33(3) (a)-(d), dates and delay), in "fr" or "en".
std::string IncidentSheetHtml(const IncidentView& incident, const std::string& controller,
                              const std::string& dpo_contact, const std::string& lang);

}  // namespace garde

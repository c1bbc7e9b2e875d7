// Data-subject requests (SPEC §2.5): access, portability, rectification, erasure,
// restriction and objection, each worked from `received` to `completed` or `rejected`
// against its legal deadline, every step audited.
//
//   RequestDesk desk(deps);
//   Result<RequestRow> r = desk.Open(caller, {.type = "erasure", .subject = id});
//   desk.Verify(officer, r->id, "identity checked at the shop");
//   desk.Complete(officer, r->id, "");    // performs the erasure
//
// Lifecycle: received -> verified -> in_progress -> completed | rejected. A request opened
// through a subject token (a link sent to the customer's own contact) is verified on
// receipt; one opened by an operator waits in `received` until the customer follows the
// DSR verification link or an officer verifies it with a note.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "garde/base/clock.h"
#include "garde/domain/audit_log.h"
#include "garde/domain/consent_ledger.h"
#include "garde/domain/subject_vault.h"
#include "garde/domain/tombstone_log.h"
#include "garde/policy/policy_holder.h"
#include "garde/store/store.h"

namespace garde {

inline constexpr const char* kRequestTypes[] = {"access",  "portability", "rectification",
                                                "erasure", "restriction", "objection"};
inline constexpr const char* kOpenStatuses[] = {"received", "verified", "in_progress"};

// The lifecycle as one table (subject_requests.cc): the state each step leads to from each
// state, or the refusal (409) it meets there. States are stored and shown by their names.
enum class RequestState { kReceived, kVerified, kInProgress, kCompleted, kRejected };
enum class RequestStep { kVerify, kStart, kExtend, kReject, kComplete };
const char* NameOf(RequestState state);
std::optional<RequestState> ParseRequestState(std::string_view name);
bool IsOpen(RequestState state);
// Whether a stored status is open: anything but a closed state (completed, rejected). A status
// that names no state of the lifecycle (a damaged row) counts as open, so that it is listed,
// warned of and kept from the sweep rather than taken as done.
bool IsOpenStatus(std::string_view status);
// The state `step` leads to from the stored status `from`: a Conflict naming why not, or
// Damaged when `from` is no state of the lifecycle.
Result<RequestState> Transition(std::string_view from, RequestStep step);

// How long a controller has to answer, per jurisdiction.
struct Jurisdiction {
  std::string name;       // "gdpr"
  std::string deadline;   // ISO 8601 duration from receipt, calendar arithmetic: "P1M"
  std::string extension;  // the longest single extension: "P2M"
};
// Parses "gdpr=P1M+P2M,ccpa=P45D+P45D".
Result<std::vector<Jurisdiction>> ParseJurisdictions(const std::string& spec);

// received + deadline, by calendar arithmetic (31 January + P1M = 28/29 February).
std::optional<int64_t> DueAt(int64_t received_at, const Jurisdiction& j);
// The deadline after extending `request` by `by` (an ISO 8601 duration, counted from the
// current deadline). Refused (409) when already extended or the deadline has passed, 422 when
// `by` is not a duration or is longer than the jurisdiction allows.
Result<int64_t> ExtendedDue(const RequestRow& request, const Jurisdiction& j, const std::string& by,
                            int64_t now);

struct NewRequest {
  std::string type;
  std::string subject;
  std::string jurisdiction;               // empty: the deployment's default
  std::string note;                       // may hold personal data: sealed
  std::optional<SubjectChanges> changes;  // rectification: the requested values
  std::vector<std::string> purposes;      // objection: empty means every marketing purpose
  bool suppress = false;                  // erasure: also never contact again
  // When the request reached the controller (a letter recorded days later); the deadline
  // counts from it. Not in the future; empty means now.
  std::optional<int64_t> received_at;
};

// A request with its sealed texts opened (empty once the subject's key is destroyed).
struct RequestView {
  RequestRow row;
  std::string note, extension_reason, rejection_reason, verification_note;
  bool texts_destroyed = false;
};

struct RequestDeps {
  Store& store;
  const PolicyHolder& policies;
  SubjectVault& vault;
  ConsentLedger& consents;
  AuditLog& journal;  // records, and lists a subject's accesses for the access package
  const Clock& clock;
  std::vector<Jurisdiction> jurisdictions;
  std::string default_jurisdiction;
  // Completed erasures, objections and their suppressions, kept outside the database so
  // that a restored backup re-applies them (null: kept nowhere, e.g. in unit tests).
  const TombstoneLog* tombstones = nullptr;
};

class RequestDesk {
 public:
  explicit RequestDesk(RequestDeps deps) : d_(std::move(deps)) {}

  // API keys with requests.open, or a customer's subject token (own subject only).
  Result<RequestView> Open(const Caller& caller, const NewRequest& request);
  // Officers see any request; a customer sees only their own (404 otherwise).
  Result<RequestView> Get(const Caller& caller, const std::string& id);
  Result<std::vector<RequestRow>> List(const Caller& caller, const RequestQuery& query);
  // An officer checked the requester's identity; `note` says how (kept sealed).
  Result<RequestView> Verify(const Caller& caller, const std::string& id, const std::string& note);
  // The customer followed the DSR verification link minted for request `id`.
  Result<RequestView> VerifyByLink(const SubjectTokenClaims& claims, const RequestOrigin& origin);
  Result<RequestView> Start(const Caller& caller, const std::string& id);
  // `by` empty: the longest extension of the request's jurisdiction.
  Result<RequestView> Extend(const Caller& caller, const std::string& id, const std::string& by,
                             const std::string& reason);
  Result<RequestView> Reject(const Caller& caller, const std::string& id,
                             const std::string& reason);
  // Carries the request out (package, rectification, erasure, restriction, objection) and
  // closes it, all in one transaction with its audit entries.
  // A rectification opened without its changes takes them here.
  Result<RequestView> Complete(const Caller& caller, const std::string& id, const std::string& note,
                               const std::optional<SubjectChanges>& changes = std::nullopt);
  // Lifts the restriction a completed restriction request put in place.
  Result<RequestView> Lift(const Caller& caller, const std::string& id);
  // Re-applies the erasures, "no"s and suppressions of the tombstone log that the database has
  // lost, as after restoring a backup taken before them, and the erasures of the tombstones
  // table the log lacks. Only the lines after the database's mark for the log are checked (all
  // of them without one); the mark then moves to the log's end.
  struct Reapplied {
    size_t subjects = 0;                     // subjects whose erasure or "no"s were put back
    size_t checked_from = 0, log_bytes = 0;  // the lines checked: [checked_from, log_bytes)
  };
  Result<Reapplied> ReapplyTombstones();

  // The access or portability package as JSON: the one delivered once completed, a preview
  // for officers before. Audited with its SHA-256.
  Result<std::string> Package(const Caller& caller, const std::string& id);

  // A request as its notice to the customer tells it (dates, reasons), for the mailer; not
  // audited here: the mailer audits what it sends.
  Result<RequestView> ForNotice(const std::string& id);

  // The sealed part of a request (defined in the .cc file).
  struct Texts;

 private:
  const Jurisdiction* FindJurisdiction(const std::string& name) const;
  // Loads a request the caller may work on; 404 for a customer asking about another's.
  Status Load(ReadTx& tx, const Caller& caller, const std::string& id, RequestRow* out,
              SubjectRow* subject) const;
  Result<RequestView> Step(
      const Caller& caller, const std::string& id, const char* action,
      const std::function<Status(WriteTx&, RequestRow&, SubjectRow&, Texts&)>& fn);
  Result<RequestView> ViewOf(const RequestRow& row, const SubjectRow* subject) const;
  Result<std::string> BuildPackage(ReadTx& tx, const PolicySet& policies, const RequestRow& request,
                                   const SubjectRow& subject) const;
  // Puts a notice for the customer in the outbox (topic subject.notice, for the mailer): the
  // request's ids and dates; the mailer adds the link (docs/operations.md, Messages).
  Status Notify(WriteTx& tx, const RequestRow& r, const char* notice) const;
  Status Erase(WriteTx& tx, const PolicySet& policies, const Caller& caller, RequestRow& request,
               SubjectRow& subject, bool suppress, std::string* result,
               std::vector<std::string>* kept, std::vector<SuppressionTombstone>* suppressed) const;

  RequestDeps d_;
};

// The request as the API shows it: {id, type, subject, status, received_at, due_at, extended,
// completed_at, ...}.
void WriteRequestJson(JsonWriter& w, const RequestView& r, int64_t now);

}  // namespace garde

// The consent ledger: an append-only history of consent events per subject × purpose
// (× channel), a signed receipt for each event, decisions derived from it, and the
// suppression list of contacts that must never be contacted again.
//
//   ConsentLedger ledger(deps);
//   Result<ConsentEvent> e = ledger.Record(caller, subject_id, request);   // e->receipt signed
//   Result<ConsentAnswer> a = ledger.Check(caller, subject_id, "marketing.email", "email");
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/crypto/checkpoint_signer.h"
#include "garde/crypto/keyed_hash.h"
#include "garde/crypto/subject_token.h"
#include "garde/domain/access_journal.h"
#include "garde/domain/consent_decision.h"
#include "garde/domain/consent_merge.h"
#include "garde/domain/entry_standard.h"
#include "garde/domain/subject_cache.h"
#include "garde/domain/subject_vault.h"
#include "garde/domain/tombstone_log.h"
#include "garde/policy/policy_holder.h"
#include "garde/store/store.h"

namespace garde {

// Collection methods a consent event may name.
inline constexpr const char* kCollectionMethods[] = {"web_form",
                                                     "preference_centre",
                                                     "one_click_unsubscribe",
                                                     "phone",
                                                     "import",
                                                     "gpc",
                                                     "api",
                                                     "in_store",
                                                     "call_centre",
                                                     "email",
                                                     "data_subject_request"};

struct ConsentRequest {
  std::string purpose;
  std::string channel;         // empty: every channel of the purpose
  std::string event;           // granted | withdrawn | refused | objected
  std::string notice_version;  // required when granting a consent-based purpose
  std::string method;
  std::string collected_at;  // RFC 3339; empty: now
};

struct ConsentAnswer {
  std::string subject;
  std::string purpose;
  std::string channel;
  ConsentDecision decision;
};

struct ConsentDeps {
  Store& store;
  const PolicyHolder& policies;
  const EntryStandard& standard;
  const KeyedHash& suppression;
  const CheckpointSigner& signer;
  AccessJournal& journal;
  const Clock& clock;
  // Where the "no"s a restore must re-apply are kept (null: nowhere, e.g. in unit tests).
  const TombstoneLog* tombstones = nullptr;
};

class ConsentLedger final : public ActivityConsent {
 public:
  // Keeps the consent facts of up to `kept_subjects` subjects in memory.
  explicit ConsentLedger(ConsentDeps deps, size_t kept_subjects = 1000000)
      : d_(deps), facts_(kept_subjects) {}

  // Appends an event with its signed receipt. An objection to a marketing purpose also puts
  // the subject's e-mail and phone on the suppression list. A grant that needs the
  // customer's confirmation (NeedsConfirmation) records nothing yet: the answer carries
  // confirmation_id, and the grant counts from the click (Confirm).
  Result<ConsentEvent> Record(const Caller& caller, const std::string& subject_id,
                              const ConsentRequest& request);
  // Record, without waiting for the write: `done` gets the event (or why not) once it is
  // durable, on the thread that committed it, or on this one before RecordThen returns
  // (Store::WriteThen).
  void RecordThen(const Caller& caller, const std::string& subject_id,
                  const ConsentRequest& request, std::function<void(Result<ConsentEvent>)> done);
  // Art. 7(1), double opt-in: a grant of a purpose that asks for it, covering e-mail, and not
  // carried over from elsewhere (an import brings its own proof).
  static bool NeedsConfirmation(const Purpose& purpose, const std::string& channel,
                                const std::string& method);
  // The customer's click on a confirmation link (token use "confirm", scope the confirmation
  // id): records the grant, its receipt naming both steps. 409 once used or expired.
  Result<ConsentEvent> Confirm(const SubjectTokenClaims& claims, const RequestOrigin& origin);
  // The confirmation a link names, for its page (404 for another subject's).
  Result<ConsentConfirmationRow> Confirmation(const SubjectTokenClaims& claims);
  static constexpr int64_t kConfirmationTtl = 7 * 86400;
  // SPEC §3.4: whether `activity` may process the subject as far as its choices go — at least
  // one of the activity's purposes allowed on some channel (or as a whole). From the kept
  // facts while current. An unknown subject answers not_found.
  Result<ConsentDecision> PermitsActivity(const PolicySet& policies, const std::string& subject_id,
                                          const Activity& activity, ReadTx* tx) override;
  static ConsentDecision DecideActivityFrom(const ConsentFacts* facts, const PolicySet& policies,
                                            const Activity& activity, int64_t now);
  // Current state per purpose/channel and the whole history.
  Result<std::vector<ConsentEvent>> History(const Caller& caller, const std::string& subject_id);
  Result<ConsentAnswer> Check(const Caller& caller, const std::string& subject_id,
                              const std::string& purpose, const std::string& channel);
  // One decision per subject id, in order (unknown ids answer `not_found`).
  Result<std::vector<ConsentAnswer>> CheckMany(const Caller& caller,
                                               const std::vector<std::string>& subject_ids,
                                               const std::string& purpose,
                                               const std::string& channel);
  // One-click unsubscribe (RFC 8058) authorised by a subject token: withdraws the token's
  // purpose, or every marketing purpose for scope "*". Idempotent. Returns events recorded.
  Result<int> UnsubscribeByToken(const SubjectTokenClaims& claims, const RequestOrigin& origin);
  // Keeps the consent facts of every subject when they all fit, so that the checks after a
  // start do not each go to the database. Returns the subjects loaded (0: too many).
  Result<size_t> WarmUp();
  // The same from the facts kept in memory, inside a caller's read transaction: first
  // SyncFacts(tx) once, then DecideKept for any subject of the same snapshot.
  Result<int64_t> SyncFacts(ReadTx& tx) { return facts_.Sync(tx); }
  // A subject not kept is read from tx (an unknown id answers `not_found`).
  Result<ConsentAnswer> DecideKept(ReadTx& tx, int64_t position, const PolicySet& policies,
                                   const std::string& id, const Purpose& purpose,
                                   const std::string& channel, int64_t now);
  // The same in two steps, for a caller that keeps the facts itself: the kept facts (null
  // for an unknown id), then the decision from them.
  using FactsPtr = std::shared_ptr<const ConsentFacts>;
  Result<FactsPtr> KeptFacts(ReadTx& tx, int64_t position, const std::string& id);
  size_t kept_facts() const { return facts_.size(); }  // subjects whose facts are kept
  size_t kept_facts_bytes() const { return facts_.bytes(); }
  // Facts from what the store returned of a subject (ConsentFactsOf, SuppressedContactsOf).
  static FactsPtr MakeFacts(const std::string& status, std::vector<std::string> suppressed,
                            std::vector<ConsentFactRow> rows);
  // Reads the facts of `row` from tx.
  static Result<FactsPtr> LoadFacts(ReadTx& tx, const SubjectRow& row);
  // The facts of a page of subjects (ScanSubjects, id order) in one pass over the facts index:
  // `suppressed` is SuppressedContactsIn over a range holding the page, and *next_suppressed
  // where the previous page of the same range left off (0 for the first).
  static Result<std::vector<FactsPtr>> FactsOfPage(
      ReadTx& tx, const std::vector<SubjectRow>& page,
      const std::vector<std::pair<std::string, std::string>>& suppressed, size_t* next_suppressed);
  static ConsentAnswer DecideFrom(const ConsentFacts* facts, const PolicySet& policies,
                                  const std::string& id, const Purpose& purpose,
                                  const std::string& channel, int64_t now);
  // Inside a caller's transaction (DSR objection): records an `objected` event for each of
  // `purposes` and, when one is a marketing purpose, suppresses the subject's contacts.
  // What it recorded is added to *kept, for the tombstone log once committed.
  Status ObjectIn(WriteTx& tx, const PolicySet& policies, const std::string& subject_id,
                  const std::vector<const Purpose*>& purposes, const std::string& method,
                  const std::string& actor, int64_t at, TombstoneEntries* kept) const;
  // Merges (consent_merge.h): records `corrections` on the subject, in order, at `at`, inside
  // the caller's transaction, each with its receipt; their ids go to *ids and the "no"s to
  // *kept. An objection to a marketing purpose also suppresses the subject's contacts.
  Status RecordCorrectionsIn(WriteTx& tx, const PolicySet& policies, const std::string& subject_id,
                             const std::vector<ConsentCorrection>& corrections,
                             const std::string& method, const std::string& actor, int64_t at,
                             std::vector<std::string>* ids, TombstoneEntries* kept) const;
  // Puts the subject's e-mail and phone digests on the suppression list (and in *kept).
  static Status SuppressContactsIn(WriteTx& tx, const std::string& subject_id,
                                   const std::string& reason, int64_t at,
                                   std::vector<SuppressionTombstone>* kept);
  // Inside a restore's transaction: puts back an event the tombstone log kept, under its own
  // id and time, with a receipt signed now. False when the purpose left the catalogue.
  Result<bool> Reinstate(WriteTx& tx, const PolicySet& policies,
                         const ConsentTombstone& event) const;
  // Appends erasures to the tombstone log, after their commit ("no"s go ahead of theirs:
  // TombstoneLog::WriteAhead).
  Status KeepTombstones(const TombstoneEntries& entries) const;
  // The preference centre: each marketing purpose with the subject's current decision.
  struct Preference {
    const Purpose* purpose = nullptr;
    ConsentDecision decision;
    std::string notice_version;  // of the grant the decision rests on ("" when none)
    bool pending = false;        // a grant waits for the customer's confirmation
  };
  Result<std::vector<Preference>> Preferences(const SubjectTokenClaims& claims);
  // What the preference centre shows for a purpose, and what an activity's read rests on: the
  // first channel (or the purpose as a whole) that is allowed, else the purpose-wide refusal.
  static ConsentDecision ShownDecision(const ConsentFacts* facts, const PolicySet& policies,
                                       const Purpose& purpose, int64_t now);
  // Applies the customer's choices (purpose id -> wanted; purposes absent are not wanted)
  // and, when `gpc` is set, a Global Privacy Control opt-out for the purposes flagged for it.
  // Records only changes. Returns the number of events recorded.
  // A purpose that asks for double opt-in is not granted but asked for: its confirmation goes
  // to the customer in `lang` (*asked counts them).
  Result<int> ApplyPreferences(const SubjectTokenClaims& claims,
                               const std::map<std::string, bool>* wanted, bool gpc,
                               const RequestOrigin& origin, const std::string& lang = "",
                               int* asked = nullptr);
  // Consent over time (reports.read): at each of `instants`, of the customers on file then
  // (created by that time, and active or restricted now), how many the decision for
  // (purpose, channel) allowed, from the events recorded by that time. Erased customers'
  // histories are gone, so the past is told of the customers on file now. Audited.
  struct RateAt {
    int64_t at = 0;
    int64_t customers = 0;
    int64_t allowed = 0;
  };
  Result<std::vector<RateAt>> RatesOver(const Caller& caller, const std::string& purpose,
                                        const std::string& channel,
                                        const std::vector<int64_t>& instants);
  // Which of these contacts are suppressed (normalised first; invalid ones are not).
  Result<std::vector<bool>> Suppressed(const Caller& caller, const std::string& kind,
                                       const std::vector<std::string>& values);

 private:
  Status ValidatePurposeChannel(const PolicySet& policies, const std::string& purpose,
                                const std::string& channel, const Purpose** out) const;
  // `requested_at` (double opt-in): when the grant was asked for; `at` is the click.
  ConsentEventRow MakeEvent(const PolicySet& policies, const Purpose& purpose,
                            const std::string& subject_id, const std::string& channel,
                            ConsentEventType type, const std::string& notice_version,
                            const std::string& method, const std::string& actor, int64_t at,
                            const std::string& id = "", int64_t requested_at = 0,
                            std::optional<int64_t> expires_at = std::nullopt) const;
  // Double opt-in: records the grant as waiting for the customer's click, puts the
  // confirmation message in the outbox and audits the request, inside the caller's
  // transaction. The confirmation's actor is the caller's key.
  Result<ConsentConfirmationRow> AskConfirmationIn(
      WriteTx& tx, const Caller& caller, const Purpose& purpose, const std::string& subject_id,
      const std::string& channel, const std::string& notice_version, const std::string& method,
      const std::string& lang, int64_t at) const;
  // Reads subject `id`'s facts as of `position` (kept, or loaded from tx and kept) into *out;
  // false for an unknown id.
  Result<bool> KeptFactsInto(ReadTx& tx, int64_t position, const std::string& id,
                             ConsentFacts* out);
  // The kept facts of `id`, current as of the last sync, into *out; false when not kept.
  bool FindKeptInto(const std::string& id, ConsentFacts* out) const;
  ConsentDeps d_;
  // Each subject's facts as WriteConsentFacts writes them, in one allocation with the id
  // and a table slot: about 75 bytes for a subject with one grant.
  SubjectCache facts_;
  mutable RandomIdRuns event_ids_{"cev_", kIdRunLength};  // as the vault's subject ids
};

ConsentEvent ConsentEventFromRow(const ConsentEventRow& row);

}  // namespace garde

// The customer vault: subjects whose personal fields are validated, normalised, sealed under
// a per-subject data key, blind-indexed for look-ups, and returned only for a declared
// processing activity, minimised to the fields that activity may use.
//
//   SubjectVault vault(deps);
//   Result<SubjectView> s = vault.Create(caller, {.kind = "person", .fields = {...}});
//   Result<SubjectView> r = vault.Read(caller, s->id, "customer_management");
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/crypto/keyed_hash.h"
#include "garde/crypto/keyring_source.h"
#include "garde/crypto/lookup_keys.h"
#include "garde/crypto/secret.h"
#include "garde/domain/access_journal.h"
#include "garde/domain/consent_decision.h"
#include "garde/domain/entry_standard.h"
#include "garde/domain/field_value.h"
#include "garde/domain/subject_cache.h"
#include "garde/policy/policy_holder.h"
#include "garde/store/store.h"

namespace garde {

// The pseudo-field holding a CRM's own customer reference (`external_id` on the wire).
inline constexpr const char* kExternalIdField = "external_id";
// What each box sealed under a subject's data key beside its fields is sealed for (SealFor's
// label, bound into the box): a purchase's amount, a request's notes and its access package,
// a merge's changed values. A re-key (SubjectVault::Rekey) seals every one of them again.
inline constexpr const char* kInteractionAmountLabel = "interaction.amount";
inline std::string RequestNotesLabel(const std::string& request_id) {
  return "request:" + request_id;
}
inline std::string RequestPackageLabel(const std::string& request_id) {
  return "request-package:" + request_id;
}
inline std::string MergeValuesLabel(const std::string& merge_id) { return "merge:" + merge_id; }

// The import row a subject comes from, recorded in the transaction that creates it.
struct ImportMark {
  std::string import_id;
  int64_t row = 0;
};

struct NewSubject {
  std::string kind;
  std::string source;
  std::optional<std::string> external_id;
  FieldMap fields;
  std::optional<ImportMark> import_mark{};
};

// A rectification: values to set; a null value removes the field.
struct SubjectChanges {
  FieldMap fields;
  std::optional<FieldValue> external_id;
};

// A purchase or a contact with the customer: it moves last_interaction_at (the anchor of most
// retention periods) and, for purchases, the aggregates the schema declares (total_spend,
// spend_30d, last_purchase).
struct Interaction {
  std::string kind;  // purchase | contact | visit | support | other
  int64_t at = 0;
  std::optional<double> amount;  // purchases only
};
const std::set<std::string>& InteractionKinds();

struct SubjectView {
  std::string id;
  std::string kind;
  std::string status;
  std::string source;
  int64_t created_at = 0;
  int64_t updated_at = 0;
  int64_t last_interaction_at = 0;
  std::optional<std::string> external_id;
  FieldMap fields;
};

// Suppression-list digest of a normalised contact: keyed BLAKE2b over "kind\0value".
// kind is "email" or "phone". The vault keeps one per subject contact (index field "~kind"),
// so a consent decision can tell a suppressed contact without decrypting it.
Bytes SuppressionDigest(const KeyedHash& key, const std::string& kind, const std::string& value);
// "email", "phone", or "" for field types that are not suppressible contacts.
const char* SuppressionKind(FieldType type);

// A subject's values with its external id among them (under kExternalIdField), and such a map
// back into a change of the subject.
FieldMap ValuesWithExternalId(const SubjectView& subject);
SubjectChanges ChangesOf(FieldMap values);

// 409 for a subject nothing more can be done to (erased, or merged into another); else Ok.
Status RefuseGone(const SubjectRow& row);

// A subject as the API shows it: {id, kind, status, source, external_id?, fields, times}.
void WriteSubjectJson(JsonWriter& w, const SubjectView& s);

// What the vault asks before an activity whose purposes rest on the subject's choice reads a
// subject (SPEC §3.4); the consent ledger answers.
class ActivityConsent {
 public:
  virtual ~ActivityConsent() = default;
  // Allowed, or why the subject's consent does not let `activity` process it. Inside a
  // caller's transaction, `tx` is it (no second connection is taken); else null.
  virtual Result<ConsentDecision> PermitsActivity(const PolicySet& policies,
                                                  const std::string& subject_id,
                                                  const Activity& activity, ReadTx* tx) = 0;
};

struct VaultDeps {
  Store& store;
  KeyringSource& keys;
  const LookupKeys& lookup;  // blind indexes
  const KeyedHash& suppression;
  const EntryStandard& standard;
  const PolicyHolder& policies;
  AccessJournal& journal;
  const Clock& clock;
};

class SubjectVault {
 public:
  // Keeps the sealed records (row and boxes: ciphertext and the wrapped data key, never a
  // plaintext) of up to `kept_records` subjects read, so that a read needs no transaction
  // while nothing has been committed since; a sixteenth of that once the vault holds more
  // subjects (SubjectCache: 1M subjects read at random were served as fast keeping none as
  // keeping 100 000, which took 61.5 MB; docs/benchmarks.md).
  static constexpr size_t kOutgrownShare = 16;
  explicit SubjectVault(VaultDeps deps, size_t kept_records = 100000)
      : d_(deps), records_(kept_records, kept_records / kOutgrownShare) {}

  // The consent check for activities that need one (the deployment sets it once, before
  // serving; not owned).
  void SetActivityConsent(ActivityConsent* consent) { consent_ = consent; }

  // Keeps the sealed record of every subject when there are no more than `kept_records`, so
  // that the reads after a start do not each go to the database (the service's start does
  // so in the background). Returns the subjects loaded (0: they do not all fit).
  Result<size_t> WarmUp();
  size_t kept_records() const { return records_.size(); }  // subjects whose record is kept
  size_t kept_records_bytes() const { return records_.bytes(); }

  // Validates everything first: a write that fails is refused whole, every problem listed.
  Result<SubjectView> Create(const Caller& caller, const NewSubject& subject);
  // Create, without waiting for the write: `done` gets the subject (or why not) once it is
  // durable, on the thread that committed it, or on this one before CreateThen returns
  // (Store::WriteThen).
  void CreateThen(const Caller& caller, const NewSubject& subject,
                  std::function<void(Result<SubjectView>)> done);

  // Creates in bulk (imports, batches): PrepareCreate does a create's work that needs no
  // transaction — validation and normalisation, a new data key wrapped — and may run on many
  // threads at once; CommitCreates then writes many in one transaction (one commit, one
  // flush), checking uniqueness against the vault and the earlier ones of the same call. Each
  // gets its own result, in order: an invalid or conflicting one fails alone.
  struct PendingCreate;
  Result<std::unique_ptr<PendingCreate>> PrepareCreate(const Caller& caller,
                                                       const NewSubject& subject) const;
  std::vector<Result<SubjectView>> CommitCreates(
      const Caller& caller, std::vector<std::unique_ptr<PendingCreate>>& pending);
  // The validation problems of a create, without writing (for merging with edge checks).
  // `normalised` (optional) receives the values as they would be stored.
  Status CheckNew(const NewSubject& subject, FieldMap* normalised = nullptr) const;
  Result<SubjectView> Rectify(const Caller& caller, const std::string& id,
                              const SubjectChanges& changes);
  // Rectify, without waiting for the write: `done` gets the subject as changed (or why not)
  // once it is durable, as CreateThen.
  void RectifyThen(const Caller& caller, const std::string& id, const SubjectChanges& changes,
                   std::function<void(Result<SubjectView>)> done);
  // Fields of `activity` only; 403 unless the caller is bound to it, for a restricted
  // subject unless the activity is flagged for legal claims, and for an activity that rests
  // on consent or legitimate interests unless the subject's choices allow it.
  Result<SubjectView> Read(const Caller& caller, const std::string& id,
                           const std::string& activity);
  // Decrypts `fields` of a subject out of its sealed fields (ReadTx::GetFields), for internal
  // processing that has already been authorised and is audited by its caller (audiences).
  Result<FieldMap> OpenFields(const SubjectRow& row, const std::vector<SealedField>& sealed,
                              const std::set<std::string>& fields) const;
  // The subject's own `fields` (email, language) for speaking to the subject: its pages and
  // the messages the law calls for. Not an activity's read; the caller audits what it sends.
  // Empty for an unknown or erased subject.
  Result<FieldMap> OwnFields(const std::string& id, const std::set<std::string>& fields);
  // Every field of a subject, decrypted, inside a caller's transaction (DSR packages; the
  // caller has authorised and audits the access).
  Result<SubjectView> OpenAll(ReadTx& tx, const SubjectRow& row) const;
  // The validation problems of a rectification, without writing.
  Status CheckChanges(const std::string& kind, const SubjectChanges& changes) const;
  // Rectifies inside a caller's transaction; the caller has authorised it. Audited.
  Result<SubjectView> RectifyIn(WriteTx& tx, const PolicySet& policies, const Caller& caller,
                                const std::string& id, const SubjectChanges& changes);
  // Seals / opens data that belongs with a subject but is not a schema field (DSR notes,
  // delivered packages) under the subject's data key, bound to `label`. Crypto-shredding the
  // subject makes it unreadable too.
  Result<Bytes> SealFor(const SubjectRow& row, const std::string& label,
                        std::string_view plaintext) const;
  Result<std::string> OpenFor(const SubjectRow& row, const std::string& label,
                              const Bytes& box) const;
  // Erasure inside a caller's transaction: destroys every field not in `keep` and every
  // blind-index entry of the subject; when nothing is kept, destroys the data key too
  // (crypto-shredding). The caller updates the subject's status and audits.
  Status EraseIn(WriteTx& tx, const SubjectRow& row, const std::set<std::string>& keep) const;
  // Merges: computes again a subject's look-up digests, suppression digests and match keys
  // from its fields (taken away while it was merged into another). 409 when one of its unique
  // values now belongs to someone else.
  Status RestoreIndexesIn(WriteTx& tx, const PolicySet& policies, const SubjectRow& row) const;
  // Records interactions (all or none) and updates last_interaction_at and the aggregates.
  // Audited; the aggregates' change is a rectification (audited and told downstream).
  // Contacts of organisations (B2B): a person linked to an organisation with a role (buyer,
  // accounting …). Both must be active, of those kinds. Consent stays the person's own; a
  // person's erasure removes their links, never the organisation. Audited.
  Status LinkContact(const Caller& caller, const std::string& organisation_id,
                     const std::string& person_id, const std::string& role);
  Status UnlinkContact(const Caller& caller, const std::string& organisation_id,
                       const std::string& person_id);
  // The links of a subject, as organisation or as person (ids and roles only).
  Result<std::vector<ContactLinkRow>> Contacts(const Caller& caller, const std::string& id);
  Result<SubjectView> RecordInteractions(const Caller& caller, const std::string& id,
                                         const std::vector<Interaction>& interactions);
  // spend_30d as of `now` from the subject's purchases, inside a caller's transaction (the
  // retention sweep keeps it current as purchases leave the window). False: unchanged.
  Result<bool> RefreshSpendIn(WriteTx& tx, const PolicySet& policies, const Caller& caller,
                              const SubjectRow& row, int64_t now);
  // Whether `activity` may use the subject's data: a restricted subject (Art. 18(2)) only for
  // activities flagged for legal claims.
  static bool MayProcess(const SubjectRow& subject, const Activity& activity);
  // Equality look-up on blind-indexed fields (all criteria must match); restricted subjects
  // are left out for other activities.
  Result<std::vector<SubjectView>> Search(const Caller& caller, const std::string& activity,
                                          const FieldMap& criteria);
  // The subjects other than `self` whose match keys meet those of `values` (normalised, as
  // CheckNew or Create give them), with the rules that matched; empty when matching is off.
  struct LikelyDuplicate {
    std::string id;
    std::vector<std::string> rules;
  };
  Result<std::vector<LikelyDuplicate>> LikelyDuplicatesOf(const FieldMap& values,
                                                          const std::string& self) const;
  // For each of `each` (values normalised, as CheckNew gives them), the subject that holds
  // one of its unique values, with that field: the subject its create would be refused for.
  // Reads only, in one transaction: what a dry run predicts with.
  struct UniqueHolder {
    std::string field;
    std::string id;
  };
  Result<std::vector<std::optional<UniqueHolder>>> UniqueHoldersOf(
      const std::vector<const FieldMap*>& each) const;
  // A key for each unique value among `values`, the same for the same value of a field: the
  // field's name and the value's look-up digest (keyed), so that repeats can be told apart
  // without keeping the values.
  std::vector<std::string> UniqueKeysOf(const FieldMap& values) const;
  // Likely duplicates: pairs of subjects sharing a match key (match_keys.h), after the pair
  // (after_first, after_second), ids and rule names only. Needs duplicates.read; audited.
  Result<std::vector<DuplicatePair>> Duplicates(const Caller& caller,
                                                const std::string& after_first,
                                                const std::string& after_second, size_t limit);
  // Master-key rotation: computes again, under the current master, the look-up digests of up
  // to `limit` subjects (id > after_id) that still have one under another master, in one
  // transaction. Returns the last subject done, "" when none was left; *digests counts the
  // digests written.
  Result<std::string> ReindexAfter(const std::string& after_id, size_t limit, int64_t* digests);
  // ReindexAfter over every subject, `batch` at a time; the digests written.
  Result<int64_t> ReindexAll(size_t batch, const std::function<void(int64_t)>& progress = nullptr);

  // Containment after a leak: each subject gets a fresh data key, wrapped under the current
  // root key, and every box sealed under the old one (fields, purchase amounts, requests'
  // notes and packages, merges' values) is sealed again under it, all in one transaction
  // per subject; the old key then opens nothing the vault holds, and snapshots that hold
  // it lose their keys (a shred). Audited `subject.rekey` per subject. Erased subjects (no
  // key left) and unknown ids are counted, not changed. Whether `caller` may is checked by
  // whoever asks (the breach register: incidents.manage).
  struct RekeyOutcome {
    int64_t rekeyed = 0, erased = 0, unknown = 0;
  };
  Result<RekeyOutcome> Rekey(const Caller& caller, const std::vector<std::string>& ids);

 private:
  struct Prepared {
    FieldMap values;                   // normalised values to set
    std::vector<std::string> removed;  // fields to delete
  };

 public:
  struct PendingCreate {
    std::shared_ptr<const PolicySet> policies;
    SubjectRow row;
    ScopedKey dek;
    Prepared prepared;
    // Sealed and digested while preparing, on the caller's thread: the commit, which a batch
    // of writes runs one after another, only writes them.
    std::vector<SealedField> sealed;
    std::vector<IndexEntry> indexes;
    std::optional<ImportMark> import_mark;
    bool has_external_id = false;
  };

 private:
  Status Validate(const PolicySet& policies, const std::string& kind, const FieldMap& fields,
                  const std::optional<FieldValue>& external_id, bool creating, Prepared* out) const;
  Status CheckNewInto(const PolicySet& policies, const NewSubject& in, Prepared* out) const;
  // CommitCreates' write (each one's outcome set again at every run) and its answers.
  Status WriteCreates(WriteTx& tx, const Caller& caller,
                      std::vector<std::unique_ptr<PendingCreate>>& pending,
                      std::vector<Status>& outcome) const;
  std::vector<Result<SubjectView>> CreatedViews(
      const Caller& caller, std::vector<std::unique_ptr<PendingCreate>>& pending,
      const std::vector<Status>& outcome, const Status& written) const;
  // Match keys of likely duplicates (match_keys.h) from a subject's values, replacing the
  // ones it had (none when `fresh`); RefreshMatchKeys reads the values from the vault.
  static constexpr size_t kMatchKeyBytes = 16;
  Status PutMatchKeys(WriteTx& tx, const PolicySet& policies, const std::string& id,
                      const FieldMap& values, bool fresh) const;
  // The index entries of those match keys (none while matching is off), appended to *out.
  void MatchKeyEntries(const PolicySet& policies, const FieldMap& values,
                       std::vector<IndexEntry>* out) const;
  Status RefreshMatchKeys(WriteTx& tx, const PolicySet& policies, const SubjectRow& row) const;
  // Blind-index and suppression digests of one field value.
  Status PutIndexes(WriteTx& tx, const PolicySet& policies, const std::string& id,
                    const std::string& name, const FieldValue& value) const;
  void IndexEntries(const PolicySet& policies, const std::string& name, const FieldValue& value,
                    std::vector<IndexEntry>* out) const;
  // The spec of a schema field, or of the external_id pseudo-field.
  const FieldSpec* SpecOf(const PolicySet& policies, const std::string& field) const;
  Status CheckUnique(WriteTx& tx, const PolicySet& policies, const std::string& self_id,
                     const FieldMap& values) const;
  // The first unique field of `values` that a subject other than self_id (not erased) holds,
  // with that subject. With `write`, the write's IndexHeldByOthers is asked first (a store
  // may answer it later: CheckUnique's fast path).
  Result<std::optional<UniqueHolder>> UniqueHolderIn(ReadTx& tx, const PolicySet& policies,
                                                     const std::string& self_id,
                                                     const FieldMap& values, WriteTx* write) const;
  // The look-up digests of `text` for `field`, one under each master in use.
  std::vector<Bytes> LookupDigests(const std::string& field, const std::string& text,
                                   size_t bytes) const;
  // Subjects whose blind-index digest of `field` is that of `text`, under any master in use.
  Result<std::vector<std::string>> FindByIndex(ReadTx& tx, const std::string& field,
                                               const std::string& text, size_t bytes) const;
  // Subjects with any of `digests` for `field`, each once.
  static Result<std::vector<std::string>> FindByDigests(ReadTx& tx, const std::string& field,
                                                        const std::vector<Bytes>& digests);
  Status UnwrapFor(const SubjectRow& row, ScopedKey* dek) const;
  Status RekeyIn(WriteTx& tx, const SubjectRow& row) const;
  Result<std::optional<FieldValue>> OpenOne(ReadTx& tx, const SubjectRow& row,
                                            const std::string& field) const;
  Result<SubjectView> Decrypt(ReadTx& tx, const SubjectRow& row,
                              const std::set<std::string>& allowed) const;
  // A sealed field seen in place (in a SealedField, or in a kept record).
  struct SealedRef {
    std::string_view field;
    std::span<const uint8_t> box;
  };
  Result<SubjectView> DecryptSealed(const SubjectRow& row, const std::vector<SealedRef>& sealed,
                                    const std::set<std::string>& allowed) const;
  static std::vector<SealedRef> Refs(const std::vector<SealedField>& sealed);
  Result<FieldMap> OpenRefs(const SubjectRow& row, const std::vector<SealedRef>& sealed,
                            const std::set<std::string>& fields) const;
  void Audit(WriteTx* tx, const Caller& caller, AccessEvent event) const;
  // A subject's row and boxes. The boxes are packed in one string (field name length, name,
  // box length, box), a third of the memory of a vector of SealedField.
  struct SealedRecord {
    SubjectRow row;
    std::string packed;
    static std::string Pack(const std::vector<SealedField>& sealed);
    std::vector<SealedRef> Unpack() const;
    // As the cache keeps it: the row but its id (the cache's key) in a ByteWriter's form,
    // then the packed boxes; one allocation a subject instead of seven.
    std::string Encode() const;
    // Decodes kept bytes into this record (its strings' capacity reused); false if damaged.
    bool Decode(const std::string& id, std::string_view bytes);
  };
  // A subject's record as of now into *out: when `use_kept`, the kept one if still current
  // (*kept set), else read from the vault (and kept).
  Status Record(const std::string& id, bool use_kept, bool* kept, SealedRecord* out);

  // OK, or 403 when `activity` needs the subject's consent and does not have it.
  Status ConsentAllows(const PolicySet& policies, const std::string& id, const Activity& activity,
                       ReadTx* tx = nullptr) const;

  VaultDeps d_;
  ActivityConsent* consent_ = nullptr;
  SubjectCache records_;
  // New subjects' ids, in runs: a batch of creates or an import window writes its rows, field
  // boxes and index-by-subject entries onto a few pages (encoding.h).
  mutable RandomIdRuns subject_ids_{"sub_", kIdRunLength};
  FieldSpec external_id_spec_ = [] {
    FieldSpec s;
    s.name = kExternalIdField;
    s.type = FieldType::kString;
    s.category = "identity";
    s.unique = true;
    s.max_length = 128;
    s.blind_index_bytes = 16;
    return s;
  }();
};

}  // namespace garde

// The storage interface. Domain code sees only this; SQLite, PostgreSQL and an in-memory store
// implement it (docs/scaling.md), and all backend-specific SQL stays inside them. Each aggregate
// has a narrow reader and writer interface (the vault, consent, API keys, requests, officers'
// records, the outbox, the audit log); a transaction offers them all at once.
//
//   Status s = store.Write([&](WriteTx& tx) -> Status {
//     GARDE_RETURN_IF_ERROR(tx.InsertSubject(row));
//     return tx.PutField(row.id, sealed);
//   });   // commits when the function returns Ok, rolls back otherwise
//
// Rows hold ciphertext and keyed digests only; plaintext personal data never reaches a store.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "garde/base/encoding.h"
#include "garde/base/status.h"

namespace garde {

struct SubjectRow {
  std::string id;
  std::string kind;
  std::string status;  // active | restricted | erased
  std::string source;
  int64_t created_at = 0;
  int64_t updated_at = 0;
  int64_t last_interaction_at = 0;
  uint32_t root_key_version = 0;  // root key that wraps the DEK
  uint32_t dek_version = 1;
  Bytes wrapped_dek;

  bool operator==(const SubjectRow&) const = default;
};

struct SealedField {
  std::string field;
  Bytes box;

  bool operator==(const SealedField&) const = default;
};

struct IndexEntry {
  std::string field;
  Bytes digest;
  uint32_t master = 0;  // the master-key version of a look-up digest; 0: under a kept key

  bool operator==(const IndexEntry&) const = default;
};

struct ApiKeyRow {
  std::string id;
  std::string name;
  std::string role;
  std::vector<std::string> activities;
  Bytes key_hash;
  int64_t created_at = 0;
  int64_t revoked_at = 0;    // 0 while valid
  uint32_t hash_master = 1;  // the master-key version key_hash was computed under

  bool operator==(const ApiKeyRow&) const = default;
};

// One audit-log entry as stored: its position, canonical bytes and RFC 6962 leaf hash.
struct AuditRow {
  uint64_t seq = 0;
  std::string entry;
  Bytes leaf_hash;
  std::string subject;  // the entry's subject member, for look-ups ("" when null)

  bool operator==(const AuditRow&) const = default;
};

struct AuditQuery {
  std::string subject, actor, action, activity;
  std::string since, until;  // RFC 3339, inclusive
  std::optional<uint64_t> after_seq;
  size_t limit = 100;
};

struct CheckpointRow {
  uint64_t size = 0;
  Bytes root;
  int64_t time = 0;
  std::string note;  // the signed checkpoint text
  // The log's entry count per actor at this size, whose digest the note signs
  // (FormatActorCounts; "" on checkpoints signed before the actors line existed).
  std::string actors{};

  bool operator==(const CheckpointRow&) const = default;
};

struct ConsentEventRow {
  std::string id, subject_id, purpose, channel, event, legal_basis, notice_version, method, actor;
  int64_t at = 0;
  int64_t expires_at = 0;
  std::string receipt;

  bool operator==(const ConsentEventRow&) const = default;
};

// A grant waiting for the customer's confirmation (double opt-in): it counts only from the
// click on the link sent to the address on file, and its receipt records both steps.
struct ConsentConfirmationRow {
  std::string id, subject_id, purpose, channel, notice_version, method, actor;
  std::string status;  // pending | confirmed
  int64_t requested_at = 0;
  int64_t expires_at = 0;  // the link's end: a pending row past it is void
  int64_t confirmed_at = 0;
  std::string event_id;  // the granted event, once confirmed

  bool operator==(const ConsentConfirmationRow&) const = default;
};

// The part of a consent event that decisions use.
struct ConsentFactRow {
  std::string purpose, channel, event;
  int64_t at = 0;
  int64_t expires_at = 0;

  bool operator==(const ConsentFactRow&) const = default;
};

// A data-subject request (SPEC §2.5). Free text (notes, reasons) and rectification changes
// may hold personal data: they travel in `sealed`, encrypted under the subject's data key,
// and die with it on erasure. `result` says what was done, without personal data.
struct RequestRow {
  std::string id, type, subject_id, status, jurisdiction, opened_by, verification;
  int64_t received_at = 0;
  int64_t verified_at = 0;
  int64_t due_at = 0;
  int64_t completed_at = 0;
  bool extended = false;
  Bytes sealed;   // JSON {note, changes, extension_reason, rejection_reason, ...}
  Bytes package;  // the access/portability package as delivered, sealed (GetRequest only)
  int64_t package_bytes = 0;  // its stored size (also filled by QueryRequests)
  std::string result;         // JSON, no personal data

  bool operator==(const RequestRow&) const = default;
};

struct RequestQuery {
  std::vector<std::string> statuses;  // empty: any
  std::string type, subject;
  int64_t due_before = 0;  // 0: no bound; otherwise due_at < due_before
  std::optional<std::pair<int64_t, std::string>> after;  // (due_at, id) of the last row seen
  size_t limit = 100;
};

// A personal data breach (Art. 33(5)): dates in the clear for the 72-hour clock; the facts,
// assessment, scope and who was told sealed under the register's key (they may name people).
struct IncidentRow {
  std::string id, status;  // open | closed
  int64_t detected_at = 0, aware_at = 0, authority_due_at = 0;
  int64_t authority_notified_at = 0, subjects_notified_at = 0, closed_at = 0;
  int64_t created_at = 0, updated_at = 0;
  Bytes sealed;

  bool operator==(const IncidentRow&) const = default;
};

// A person who is a contact of an organisation (B2B), with their role there.
struct ContactLinkRow {
  std::string organisation_id, person_id, role;
  int64_t created_at = 0;

  bool operator==(const ContactLinkRow&) const = default;
};

// A saved audience definition (no member list: counts are computed when asked).
struct SegmentRow {
  std::string name;
  std::string definition;  // JSON: {activity, purpose, channel, where, description}
  std::string created_by;  // API key id
  int64_t created_at = 0, updated_at = 0;

  bool operator==(const SegmentRow&) const = default;
};

// Kept after an erasure so that a restored backup can re-apply it.
struct TombstoneRow {
  std::string subject_id, request_id;
  int64_t at = 0;
  // Fields an erasure kept under a legal hold (names only); empty: everything was destroyed.
  std::vector<std::string> kept;

  bool operator==(const TombstoneRow&) const = default;
};

// How far a tombstones.log has been applied to this database: the log (named by a digest of
// its first line, so that each node's log of a cluster has its own mark), the bytes applied,
// and a digest of those bytes, so that a log replaced or rewritten is not taken as applied.
struct TombstoneLogMark {
  std::string log;
  int64_t applied_to = 0;
  Bytes digest;

  bool operator==(const TombstoneLogMark&) const = default;
};

// An event for downstream systems (webhooks), written in the transaction of its change.
struct OutboxRow {
  std::string id, topic, payload;
  int64_t created_at = 0;
  int64_t seq = 0;  // its position, assigned on insert

  bool operator==(const OutboxRow&) const = default;
};

// One event on its way to one webhook endpoint (Art. 19), at least once, in order per subject.
struct DeliveryRow {
  int64_t id = 0;                                  // assigned on insert; orders deliveries
  std::string endpoint, event_id, topic, subject;  // subject: "" when the event has none
  std::string payload;
  int64_t created_at = 0;  // queued (or replayed): max_age counts from here
  std::string status;      // pending | delivered | dead
  int attempts = 0;
  int64_t next_at = 0;     // milliseconds since the epoch
  std::string last_error;  // no personal data: a status code or a transport error
  int64_t delivered_at = 0;

  bool operator==(const DeliveryRow&) const = default;
};

struct DeliveryQuery {
  std::string status, endpoint;  // empty: any
  int64_t after_id = 0;
  size_t limit = 100;
};

// An audit entry committed with the change it records and not yet appended to the log:
// the canonical entry without its leading {"v":1,"seq":N (the position is given when it is
// appended). Lives in the vault database so that it commits or rolls back with the change.
struct PendingAuditRow {
  int64_t id = 0;
  int64_t at_ns = 0;  // when it was recorded (orders it among entries logged together)
  std::string subject;
  std::string tail;

  bool operator==(const PendingAuditRow&) const = default;
};

// One policy set the service ran with: loaded at start or by a reload.
struct PolicyVersionRow {
  int64_t seq = 0;
  std::string content_hash;
  int64_t loaded_at = 0;
  std::string source;   // "start", "api", "sighup"
  std::string summary;  // JSON: what changed from the previous version

  bool operator==(const PolicyVersionRow&) const = default;
};

// The key of an encrypted snapshot the service keeps of an in-memory view (the audience
// index), wrapped by a root-key version. Erasing any subject deletes every such key.
struct SnapshotKeyRow {
  std::string name;    // "audience"
  std::string key_id;  // names the file's key, so a file sealed under another one is ignored
  uint32_t root_key_version = 0;
  Bytes wrapped_key;

  bool operator==(const SnapshotKeyRow&) const = default;
};

// A purchase or contact (POST /v1/subjects/{id}/interactions). The amount is personal data:
// sealed under the subject's data key.
struct InteractionRow {
  std::string subject_id, kind;
  int64_t at = 0;
  Bytes sealed_amount;  // empty: none
  int64_t seq = 0;      // assigned on insert

  bool operator==(const InteractionRow&) const = default;
};

// One run of the retention sweep: where it stands, and what it did (counts only).
struct RetentionRunRow {
  int64_t seq = 0;  // assigned on insert; orders runs
  std::string id;   // "ret_…"
  int64_t started_at = 0;
  int64_t at = 0;           // the time the rules were evaluated at
  int64_t finished_at = 0;  // 0 while running (or interrupted)
  bool dry_run = false;
  std::string cursor;  // the last subject id done; resumes after it
  std::string report;  // JSON, no personal data

  bool operator==(const RetentionRunRow&) const = default;
};

// A merge of one subject into another (likely duplicates resolved by a person). `record` is
// JSON without personal data (field names, event, request and link ids); `sealed` holds the
// survivor's values before the merge, sealed under the survivor's data key, for a revert.
struct MergeRow {
  std::string id, merged_id, into_id;
  std::string state;  // merged | completed | reverted
  std::string actor;
  int64_t created_at = 0, finished_at = 0;
  std::string record;
  Bytes sealed;

  bool operator==(const MergeRow&) const = default;
};

// A console sign-in (docs/console.md), shared by every node of a deployment: found by the
// BLAKE2b hash of its cookie, which is never stored; `activities` space-separated.
struct ConsoleSessionRow {
  Bytes cookie_hash;
  std::string key_id, role, activities, client;
  std::string csrf, lang;
  int64_t signed_in_at = 0, last_seen = 0;

  bool operator==(const ConsoleSessionRow&) const = default;
};

// Two subjects sharing match keys (likely duplicates), with the rules of those keys.
struct DuplicatePair {
  std::string first, second;  // first < second
  std::vector<std::string> rules;

  bool operator==(const DuplicatePair&) const = default;
};

// Changes the vault's change log keeps (SQLite vault migration 24, PostgreSQL 6); a reader
// further behind finds its next one trimmed.
constexpr int64_t kChangeLogKeep = 262144;

// The vault's change log after a reader's position (see ReadTx::ChangesAfter).
struct ChangeTail {
  int64_t last_seq = 0;  // the newest change in this transaction's snapshot
  bool complete = true;  // false: more than the limit, or trimmed; the reader starts over
  std::vector<std::pair<int64_t, std::string>> changes;  // (seq, subject id), in order

  bool operator==(const ChangeTail&) const = default;
};

// ---- The aggregates: a reader and a writer interface each ----

// The vault: subjects, their sealed fields and data keys, blind indexes and match keys, the
// change log in-memory views follow, snapshot keys, interactions, contact links, import rows.
class VaultReader {
 public:
  virtual ~VaultReader() = default;
  virtual Result<std::optional<SubjectRow>> GetSubject(const std::string& id) = 0;
  virtual Result<std::vector<SealedField>> GetFields(const std::string& id) = 0;
  // The sealed boxes of the subjects with first_id <= id <= last_id, in id order, each
  // handed to `fn` (its views last for the call only): one pass, no look-up per subject.
  using SealedVisitor = std::function<void(std::string_view subject_id, std::string_view field,
                                           const uint8_t* box, size_t size)>;
  virtual Status ScanFields(const std::string& first_id, const std::string& last_id,
                            const SealedVisitor& fn) = 0;
  // Subject ids whose blind-index digest for `field` equals `digest`.
  virtual Result<std::vector<std::string>> FindByIndex(const std::string& field,
                                                       const Bytes& digest) = 0;
  // Master-key rotation: subjects (id > after_id, in id order) with a look-up digest computed
  // under a master version other than `master`; the fields of one subject that have one; how
  // many such digests are left.
  virtual Result<std::vector<std::string>> SubjectsWithStaleIndexes(uint32_t master,
                                                                    const std::string& after_id,
                                                                    size_t limit) = 0;
  virtual Result<std::vector<std::string>> StaleIndexesOf(const std::string& subject_id,
                                                          uint32_t master) = 0;
  virtual Result<int64_t> CountStaleIndexes(uint32_t master) = 0;
  // Pairs of subjects sharing a match-key digest (index rows "=<rule>"), after the pair
  // (after_first, after_second), in order.
  virtual Result<std::vector<DuplicatePair>> SharedMatchKeys(const std::string& after_first,
                                                             const std::string& after_second,
                                                             size_t limit) = 0;
  // Up to `limit` subjects whose DEK is wrapped by a root version other than `version`.
  virtual Result<std::vector<SubjectRow>> SubjectsNotWrappedBy(uint32_t version, size_t limit) = 0;
  virtual Result<std::map<uint32_t, int64_t>> CountByRootKeyVersion() = 0;
  virtual Result<int64_t> CountSubjects() = 0;
  // Up to `limit` subjects with id > after_id, in id order.
  virtual Result<std::vector<SubjectRow>> ScanSubjects(const std::string& after_id,
                                                       size_t limit) = 0;
  // The subject's own index digests under `field`.
  virtual Result<std::vector<Bytes>> IndexDigestsOf(const std::string& subject_id,
                                                    const std::string& field) = 0;
  // Subjects changed after `after_seq` (their status, fields, consent events, or a suppression
  // of one of their contacts): at most `limit` changes, else `complete` is false.
  virtual Result<ChangeTail> ChangesAfter(int64_t after_seq, size_t limit) = 0;
  // How many times personal data was destroyed so far (a subject erased or deleted, a field
  // removed): read before a view's content, it tells whether the view may still be saved.
  virtual Result<int64_t> ShredCount() = 0;
  virtual Result<std::optional<SnapshotKeyRow>> GetSnapshotKey(const std::string& name) = 0;
  // The contact links a subject is part of, as organisation or as person, oldest first.
  virtual Result<std::vector<ContactLinkRow>> LinksOf(const std::string& subject_id) = 0;
  // The rows of an import that created a subject: row -> subject id.
  virtual Result<std::map<int64_t, std::string>> ImportedRows(const std::string& import_id) = 0;
  // A subject's interactions at or after `since`, oldest first.
  virtual Result<std::vector<InteractionRow>> InteractionsOf(const std::string& subject_id,
                                                             int64_t since) = 0;
  // Subjects with a purchase in [since, until), id > after_id, in id order.
  virtual Result<std::vector<std::string>> PurchasersBetween(int64_t since, int64_t until,
                                                             const std::string& after_id,
                                                             size_t limit) = 0;
};

class VaultWriter {
 public:
  virtual ~VaultWriter() = default;
  virtual Status InsertSubject(const SubjectRow& row) = 0;
  // Updates status, source and timestamps of an existing subject.
  virtual Status UpdateSubject(const SubjectRow& row) = 0;
  virtual Status PutField(const std::string& subject_id, const SealedField& field) = 0;
  virtual Status DeleteField(const std::string& subject_id, const std::string& field) = 0;
  virtual Status PutIndex(const std::string& subject_id, const IndexEntry& entry) = 0;
  virtual Status DeleteIndex(const std::string& subject_id, const std::string& field) = 0;
  // A subject just inserted: its sealed fields and its index entries (one per field), as
  // PutField and PutIndex would put them one by one (PostgreSQL: one statement each).
  virtual Status PutNewSubjectRows(const std::string& subject_id,
                                   const std::vector<SealedField>& fields,
                                   const std::vector<IndexEntry>& entries) {
    for (const SealedField& f : fields) GARDE_RETURN_IF_ERROR(PutField(subject_id, f));
    for (const IndexEntry& e : entries) GARDE_RETURN_IF_ERROR(PutIndex(subject_id, e));
    return Status::Ok();
  }
  // Inserts or replaces the role (by organisation and person); DeleteLink: false when there
  // was none; DeleteLinksOf: every link of the subject, on either side.
  virtual Status PutLink(const ContactLinkRow& row) = 0;
  virtual Result<bool> DeleteLink(const std::string& organisation_id,
                                  const std::string& person_id) = 0;
  virtual Status DeleteLinksOf(const std::string& subject_id) = 0;
  // kConflict when the row was recorded already.
  virtual Status InsertImportRow(const std::string& import_id, int64_t row,
                                 const std::string& subject_id) = 0;
  // Returns the row's seq.
  virtual Result<int64_t> InsertInteraction(const InteractionRow& row) = 0;
  virtual Status DeleteInteraction(int64_t seq) = 0;
  virtual Status DeleteInteractionsOf(const std::string& subject_id) = 0;
  virtual Status DeleteIndexesOf(const std::string& subject_id) = 0;
  // Keeps `key` as the only key of its snapshot if the shred count is still `shreds`; false
  // (nothing kept) when data was destroyed since, which the snapshot may still hold.
  virtual Result<bool> PutSnapshotKey(const SnapshotKeyRow& key, int64_t shreds) = 0;
  // Crypto-shredding: forgets the subject's wrapped data key for good.
  virtual Status ShredDataKey(const std::string& subject_id) = 0;
  // Compare-and-set re-wrap: true when the DEK was still under `from_version`.
  virtual Result<bool> RewrapDataKey(const std::string& subject_id, uint32_t from_version,
                                     uint32_t to_version, const Bytes& wrapped) = 0;
  // Compare-and-set replacement of the data key itself (a re-key): the subject's DEK
  // becomes `dek_version`, wrapped under `root_version`, when it was still `from_dek_version`.
  // Logged as a change of the subject and counted as a shred (the old key's boxes are gone).
  virtual Result<bool> ReplaceDataKey(const std::string& subject_id, uint32_t from_dek_version,
                                      uint32_t root_version, uint32_t dek_version,
                                      const Bytes& wrapped) = 0;
  // The interaction's amount sealed again (its seq, which merge records name, is kept).
  virtual Status ResealInteraction(int64_t seq, const Bytes& sealed_amount) = 0;
};

// Consent events (append-only, with receipts), double opt-in confirmations, suppression.
class ConsentReader {
 public:
  virtual ~ConsentReader() = default;
  // Oldest first, with their receipts (about 2 kB each).
  virtual Result<std::vector<ConsentEventRow>> ConsentEventsOf(const std::string& subject_id) = 0;
  // Oldest first, what decisions need of each event: read from an index, no receipts.
  // (ScanConsentFacts of the one subject.)
  Result<std::vector<ConsentFactRow>> ConsentFactsOf(const std::string& subject_id);
  virtual Result<std::optional<ConsentConfirmationRow>> GetConsentConfirmation(
      const std::string& id) = 0;
  // The subject's confirmations still pending, oldest first.
  virtual Result<std::vector<ConsentConfirmationRow>> PendingConfirmationsOf(
      const std::string& subject_id) = 0;
  // ConsentFactsOf of every subject with first_id <= id <= last_id, in id order, each row
  // handed to `fn` with its subject: one pass over the index, no look-up per subject.
  using FactVisitor = std::function<void(std::string_view subject_id, ConsentFactRow&& row)>;
  virtual Status ScanConsentFacts(const std::string& first_id, const std::string& last_id,
                                  const FactVisitor& fn) = 0;
  // The purposes the subject objected to (events 'objected'), without loading receipts.
  virtual Result<std::vector<std::string>> ObjectedPurposesOf(const std::string& subject_id) = 0;
  virtual Result<bool> IsSuppressed(const std::string& kind, const Bytes& digest) = 0;
  // The contact fields (e.g. "email", "phone") of the subject whose digest is suppressed.
  virtual Result<std::vector<std::string>> SuppressedContactsOf(const std::string& subject_id) = 0;
  // SuppressedContactsOf of every subject with from_id <= id < before_id (empty: no bound),
  // as (subject id, contact field) pairs in id order: one pass over the suppression list.
  virtual Result<std::vector<std::pair<std::string, std::string>>> SuppressedContactsIn(
      const std::string& from_id, const std::string& before_id) = 0;
};

class ConsentWriter {
 public:
  virtual ~ConsentWriter() = default;
  // kConflict when an event of that id was recorded already.
  virtual Status InsertConsentEvent(const ConsentEventRow& row) = 0;
  // Inserts or replaces (by id).
  virtual Status PutConsentConfirmation(const ConsentConfirmationRow& row) = 0;
  virtual Status PutSuppression(const std::string& kind, const Bytes& digest,
                                const std::string& reason, int64_t at) = 0;
  // The subject's consent events and confirmations.
  virtual Status DeleteConsentEventsOf(const std::string& subject_id) = 0;
};

// API keys: stored by keyed hash only.
class ApiKeyReader {
 public:
  virtual ~ApiKeyReader() = default;
  virtual Result<std::optional<ApiKeyRow>> FindApiKeyByHash(const Bytes& hash) = 0;
  virtual Result<std::vector<ApiKeyRow>> ListApiKeys() = 0;
  virtual Result<std::optional<ConsoleSessionRow>> GetConsoleSession(const Bytes& cookie_hash) = 0;
  virtual Result<int64_t> CountConsoleSessions() = 0;
};

class ApiKeyWriter {
 public:
  virtual ~ApiKeyWriter() = default;
  virtual Status InsertApiKey(const ApiKeyRow& row) = 0;
  virtual Status RevokeApiKey(const std::string& id, int64_t at) = 0;
  // Compare-and-set: replaces the key's hash `from` by `to`, computed under `master`; false
  // when the key no longer has hash `from`.
  virtual Result<bool> RehashApiKey(const std::string& id, const Bytes& from, const Bytes& to,
                                    uint32_t master) = 0;
  // Inserts or replaces the session of row.cookie_hash.
  virtual Status PutConsoleSession(const ConsoleSessionRow& row) = 0;
  virtual Status DeleteConsoleSession(const Bytes& cookie_hash) = 0;
  // Sessions idle since before `idle_before` or signed in before `signed_in_before`.
  virtual Status DeleteExpiredConsoleSessions(int64_t idle_before, int64_t signed_in_before) = 0;
};

// Data-subject requests, erasure tombstones, merges of duplicates.
class RequestReader {
 public:
  virtual ~RequestReader() = default;
  virtual Result<std::optional<RequestRow>> GetRequest(const std::string& id) = 0;
  virtual Result<std::optional<MergeRow>> GetMerge(const std::string& id) = 0;
  // The merges of a subject as the merged one (newest first) or into it, in any state.
  virtual Result<std::vector<MergeRow>> MergesOf(const std::string& merged_id) = 0;
  virtual Result<std::vector<MergeRow>> MergesInto(const std::string& into_id) = 0;
  // Merges still `merged` that were made before `before`, oldest first.
  virtual Result<std::vector<MergeRow>> OpenMergesBefore(int64_t before, size_t limit) = 0;
  // Ordered by (due_at, id).
  virtual Result<std::vector<RequestRow>> QueryRequests(const RequestQuery& query) = 0;
  virtual Result<std::vector<TombstoneRow>> ListTombstones(int64_t since) = 0;
  virtual Result<std::optional<TombstoneLogMark>> GetTombstoneLogMark(const std::string& log) = 0;
  // For metrics: requests not completed or rejected, and those of them past their due date
  // at `now`.
  virtual Result<std::pair<int64_t, int64_t>> CountOpenRequests(int64_t now) = 0;
};

class RequestWriter {
 public:
  virtual ~RequestWriter() = default;
  virtual Status InsertRequest(const RequestRow& row) = 0;
  virtual Status PutMerge(const MergeRow& row) = 0;
  // Moves a request to another subject with its sealed parts sealed again for it.
  virtual Status ReassignRequest(const std::string& id, const std::string& subject_id,
                                 const Bytes& sealed, const Bytes& package) = 0;
  // Updates every column but id, type, subject_id and received_at.
  virtual Status UpdateRequest(const RequestRow& row) = 0;
  virtual Status InsertTombstone(const TombstoneRow& row) = 0;
  // Inserts or replaces (by log).
  virtual Status PutTombstoneLogMark(const TombstoneLogMark& mark) = 0;
};

// What officers keep besides: the breach register, saved segments, policy versions,
// retention runs.
class RecordReader {
 public:
  virtual ~RecordReader() = default;
  virtual Result<std::optional<IncidentRow>> GetIncident(const std::string& id) = 0;
  // Every incident, earliest authority deadline first.
  virtual Result<std::vector<IncidentRow>> ListIncidents() = 0;
  virtual Result<std::optional<SegmentRow>> GetSegment(const std::string& name) = 0;
  // By name.
  virtual Result<std::vector<SegmentRow>> ListSegments() = 0;
  // Newest first.
  virtual Result<std::vector<PolicyVersionRow>> ListPolicyVersions(size_t limit) = 0;
  // Retention runs, newest first, seq < before_seq (0: from the newest).
  virtual Result<std::vector<RetentionRunRow>> ListRetentionRuns(int64_t before_seq,
                                                                 size_t limit) = 0;
  virtual Result<std::optional<RetentionRunRow>> GetRetentionRun(const std::string& id) = 0;
};

class RecordWriter {
 public:
  virtual ~RecordWriter() = default;
  // Inserts or replaces (by id).
  virtual Status PutIncident(const IncidentRow& row) = 0;
  // Inserts or replaces (by name); DeleteSegment: false when there was none.
  virtual Status PutSegment(const SegmentRow& row) = 0;
  virtual Result<bool> DeleteSegment(const std::string& name) = 0;
  virtual Status InsertPolicyVersion(const PolicyVersionRow& row) = 0;
  // Inserts a run (seq assigned) or, for an id already stored, updates it.
  virtual Status PutRetentionRun(const RetentionRunRow& row) = 0;
};

// Events for downstream systems, and their deliveries to each webhook endpoint.
class OutboxReader {
 public:
  virtual ~OutboxReader() = default;
  // Outbox events with seq > after_seq, in order.
  virtual Result<std::vector<OutboxRow>> ListOutbox(int64_t after_seq, size_t limit) = 0;
  virtual Result<int64_t> WebhookMark(const std::string& endpoint) = 0;
  // Pending deliveries due at `now`, oldest first, leaving out any that waits behind an
  // earlier pending delivery of the same subject to the same endpoint.
  virtual Result<std::vector<DeliveryRow>> DueDeliveries(int64_t now, size_t limit) = 0;
  virtual Result<std::vector<DeliveryRow>> QueryDeliveries(const DeliveryQuery& query) = 0;
  virtual Result<std::optional<DeliveryRow>> GetDelivery(int64_t id) = 0;
  // For metrics: deliveries per status.
  virtual Result<std::map<std::string, int64_t>> CountDeliveries() = 0;
};

class OutboxWriter {
 public:
  virtual ~OutboxWriter() = default;
  virtual Status InsertOutbox(const OutboxRow& row) = 0;
  virtual Status SetWebhookMark(const std::string& endpoint, int64_t outbox_seq) = 0;
  // Ignored when the endpoint already has the event.
  virtual Status InsertDelivery(const DeliveryRow& row) = 0;
  // Updates status, attempts, next_at, last_error, delivered_at and created_at.
  virtual Status UpdateDelivery(const DeliveryRow& row) = 0;
};

// The audit log (its entries, tree, checkpoints and intake marks live with the audit store), and
// the entries a change queued in the vault's transaction (pending).
class AuditReader {
 public:
  virtual ~AuditReader() = default;
  virtual Result<uint64_t> AuditSize() = 0;
  // Hash of the perfect subtree (level, index); level 0 is an entry's leaf hash.
  virtual Result<Bytes> AuditNode(unsigned level, uint64_t index) = 0;
  virtual Result<std::vector<AuditRow>> QueryAudit(const AuditQuery& query) = 0;
  // Calls fn for entries from `from_seq` in order until fn returns false.
  virtual Status ScanAudit(uint64_t from_seq, uint64_t to_seq,
                           const std::function<bool(const AuditRow&)>& fn) = 0;
  virtual Result<std::vector<CheckpointRow>> ListCheckpoints() = 0;
  // The positions below `below` the actor index gives for `actor` (the decoded actor
  // member), ascending. Nothing vouches for the index: AuditLog::ScopeActor checks it.
  virtual Result<std::vector<uint64_t>> AuditSeqsOfActor(const std::string& actor,
                                                         uint64_t below) = 0;
  // The checkpoint of the largest tree size, if any.
  virtual Result<std::optional<CheckpointRow>> LatestCheckpoint() = 0;
  // For metrics: audit entries waiting to be appended (vault database).
  virtual Result<int64_t> CountPendingAudit() = 0;
  // Audit entries waiting to be appended (vault database), id > after_id, in id order.
  virtual Result<std::vector<PendingAuditRow>> ListPendingAudit(int64_t after_id, size_t limit) = 0;
  // The last pending id already appended (audit database): ids up to it are in the log.
  virtual Result<int64_t> AuditIntakeMark() = 0;
  // Bytes of the named read journal already in the log (audit database; 0 if unknown).
  virtual Result<int64_t> JournalImportedTo(const std::string& name) = 0;
};

class AuditWriter {
 public:
  virtual ~AuditWriter() = default;
  virtual Status InsertAuditEntry(const AuditRow& row) = 0;
  virtual Status InsertAuditNode(unsigned level, uint64_t index, const Bytes& hash) = 0;
  // Adds an entry's position to the actor index.
  virtual Status InsertAuditActor(const std::string& actor, uint64_t seq) = 0;
  // The audit log's subject index is a set of sorted runs (docs/audit.md): each append adds
  // one run of its entries' (subject, seq), written after every key already stored; merging
  // folds the runs of the lowest full level into one. Merge returns whether it did.
  virtual Status AppendAuditSubjectRun(std::vector<std::pair<std::string, uint64_t>> postings) = 0;
  virtual Result<bool> MergeAuditSubjectRuns() = 0;
  // Ignored when a checkpoint of that size exists already.
  virtual Status InsertCheckpoint(const CheckpointRow& row) = 0;
  // Pending audit entries (vault database): queued with a change, removed once appended.
  virtual Status InsertPendingAudit(const PendingAuditRow& row) = 0;  // id is assigned
  virtual Status DeletePendingAudit(int64_t up_to_id) = 0;
  // New pending ids will be greater than `id` (after a restore of an older vault).
  virtual Status ReservePendingAuditIds(int64_t id) = 0;
  virtual Status SetAuditIntakeMark(int64_t id) = 0;  // audit database
  // Records how far a read journal is in the log; Forget once the file is gone.
  virtual Status SetJournalImported(const std::string& name, int64_t offset) = 0;
  virtual Status ForgetJournal(const std::string& name) = 0;
};

// A transaction offers every aggregate's interface over one database transaction, so that a
// change and what must go with it (its audit entry, its outbox event, a suppression) commit
// together. Domain code that needs one aggregate only can take that interface alone (as the
// in-memory store implements them all, a test can fake one).
class ReadTx : public VaultReader,
               public ConsentReader,
               public ApiKeyReader,
               public RequestReader,
               public RecordReader,
               public OutboxReader,
               public AuditReader {};

class WriteTx : public ReadTx,
                public VaultWriter,
                public ConsentWriter,
                public ApiKeyWriter,
                public RequestWriter,
                public RecordWriter,
                public OutboxWriter,
                public AuditWriter {
 public:
  // Runs fn once this write has committed (not if it rolls back). fn must not block.
  virtual void AfterCommit(std::function<void()> fn) = 0;
  // Lines that must be on stable storage before this write commits (the tombstone log's "no"s:
  // a crash between the commit and a later append would leave one in force that a restore
  // then loses). The store hands the lines of every write of a batch that succeeded to the
  // function set by Store::SetWriteAhead, once, before COMMIT; if it fails, the whole batch
  // rolls back. Dropped when no function is set.
  virtual void WriteAhead(std::string lines) = 0;
  // Whether a subject other than `self` has one of `digests` for `field` in the blind index
  // (a uniqueness check's first question: false settles it). A store may answer false at
  // once and ask later, in a rerunnable write only: if the answer turns out true, the write
  // fails then and runs again, this call then answering as it asks (PostgreSQL: the look-up
  // goes in the pipeline with the write's statements, no round trip of its own).
  virtual Result<bool> IndexHeldByOthers(const std::string& field,
                                         const std::vector<Bytes>& digests,
                                         const std::string& self) {
    for (const Bytes& digest : digests) {
      GARDE_ASSIGN_OR_RETURN(auto ids, FindByIndex(field, digest));
      for (const auto& id : ids) {
        if (id != self) return true;
      }
    }
    return false;
  }
};

// When a committed write must be on stable storage.
enum class Durability {
  kImmediate,  // fsynced before Write returns
  kDeferred,   // survives a crash of the process at once; on stable storage within the
               // store's deferred-sync window (power loss can lose at most that window)
};

// Work that one node of a deployment does at a time (Store::Lead).
enum class Job { kDispatch, kRetention, kCheckpoints };
// What a node asks of the other nodes sharing its database (Store::AskPeers).
enum class PeerEvent { kPoliciesReloaded, kAuditFlush };

// One request's reads (HttpService::Answer opens one per request): a store that confirms its
// in-memory views with the database (PostgreSQL's strict reads) does so once per scope — every
// read of the request then reflects what was committed before the request began, or later.
class Store;
class ReadScope {
 public:
  ReadScope() : ReadScope(nullptr, 0) {}
  // A scope whose reads `store` has confirmed already: Store::WhenFresh answered `ticket` and
  // has called back since.
  ReadScope(const Store* store, uint64_t ticket)
      : previous_(current_),
        previous_store_(confirmed_store_),
        previous_ticket_(confirmed_ticket_),
        id_(++next_) {
    current_ = id_;
    confirmed_store_ = store;
    confirmed_ticket_ = ticket;
  }
  ~ReadScope() {
    current_ = previous_;
    confirmed_store_ = previous_store_;
    confirmed_ticket_ = previous_ticket_;
  }
  ReadScope(const ReadScope&) = delete;
  ReadScope& operator=(const ReadScope&) = delete;
  // The scope this thread is in; 0 outside any.
  static uint64_t Current() { return current_; }
  // The ticket the current scope was opened with on `store`; 0 when none.
  static uint64_t ConfirmedTicket(const Store* store) {
    return store == confirmed_store_ ? confirmed_ticket_ : 0;
  }

 private:
  uint64_t previous_;
  const Store* previous_store_;
  uint64_t previous_ticket_;
  uint64_t id_;
  static thread_local uint64_t current_;
  static thread_local uint64_t next_;
  static thread_local const Store* confirmed_store_;
  static thread_local uint64_t confirmed_ticket_;
};

class Store {
 public:
  virtual ~Store() = default;
  // Runs fn in a read transaction (one consistent snapshot).
  virtual Status Read(const std::function<Status(ReadTx&)>& fn) = 0;
  // Runs fn in a write transaction; commits when fn returns Ok, rolls back otherwise.
  virtual Status Write(const std::function<Status(WriteTx&)>& fn,
                       Durability durability = Durability::kImmediate) = 0;
  // As Write, for a fn that may run more than once: each run starts from the transaction as
  // it was before the write, resets whatever it captures, and acts only through tx (its
  // hooks: only the last run's run). A store may then send it before the write ahead of it in
  // the same batch has been answered, and run it again in the rare case that write fails
  // after it was sent (PostgreSQL: a round trip a write fewer). The in-memory store runs it
  // twice, always, so that the domain's tests hold every such fn to this.
  virtual Status WriteRerunnable(const std::function<Status(WriteTx&)>& fn,
                                 Durability durability = Durability::kImmediate) {
    return Write(fn, durability);
  }
  // As Write (or WriteRerunnable, with `rerunnable`), without waiting: `done` gets the write's
  // result once it is committed and as durable as asked, called once from the thread that
  // committed it (or from this one, before WriteThen returns). A request answered when its
  // write is durable holds no thread meanwhile. The default runs the write at once.
  virtual void WriteThen(std::function<Status(WriteTx&)> fn, Durability durability, bool rerunnable,
                         std::function<void(Status)> done) {
    done(rerunnable ? WriteRerunnable(fn, durability) : Write(fn, durability));
  }
  // True when WriteThen returns before its write has run (the thread that posts never waits).
  virtual bool PostsWrites() const { return false; }
  // Cheap check that the database answers (for /readyz).
  virtual Status Ping() = 0;
  // A number that differs from every earlier answer once a write has committed since,
  // from this process or another one, read without a transaction: in-memory views follow
  // the change log only when it moved (subject_cache.h). A store that cannot tell answers
  // a new number every time.
  virtual uint64_t ChangeEpoch() = 0;
  // The same for API keys: moves once a key has been revoked by another process (the key
  // cache forgets what it verified). A store that one process serves answers 0: a key revoked
  // from the command line stops within api_key_cache_seconds.
  virtual uint64_t KeysEpoch() { return 0; }
  // For answering without a thread waiting: calls `ready` (once, on a thread of the store)
  // when a read scope can see everything committed before this call without waiting (strict
  // reads: once the database's counters, asked after this call, have answered), and returns
  // the ticket to open that answer's ReadScope with. A store whose reads never wait answers
  // 0 and never calls `ready`.
  virtual uint64_t WhenFresh(std::function<void()> ready) {
    (void)ready;
    return 0;
  }
  // Memory this process's connections hold in their page caches (as of each one's last use);
  // 0 for a store that keeps none.
  virtual size_t CacheBytes() const { return 0; }
  // Writes a consistent copy of the whole database, as of one moment, to a new file at `path`
  // while reads and writes go on (backups). A store that cannot answers kUnavailable.
  virtual Status CopyTo(const std::string& path) = 0;
  // True while this process should do `job`: one node of a shared database at a time, held
  // until that node's session ends (a node that dies frees it for the next to ask). A store
  // that one process serves always answers true.
  virtual bool Lead(Job) { return true; }
  // Asks every other node sharing the database to handle `event` (re-read its policy files,
  // log the audit entries its journals hold) and waits, up to `limit`, until each has done
  // so: kUnavailable names how many did not answer in time. The nodes asked are those whose
  // store is open on the database now. One process alone has no one to ask: Ok at once.
  virtual Status AskPeers(PeerEvent, std::chrono::milliseconds /*limit*/) { return Status::Ok(); }
  // What this node does when another asks (run on a thread of the store, one at a time);
  // nullptr: nothing, answered at once.
  virtual void OnPeerAsk(std::function<void(PeerEvent)>) {}
  // Where WriteTx::WriteAhead's lines go (set once, before the first write): durable when it
  // returns Ok.
  void SetWriteAhead(std::function<Status(const std::string&)> fn) { write_ahead_ = std::move(fn); }

 protected:
  // Makes a batch's lines durable before its commit (Ok when there are none, or nowhere to
  // write them).
  Status WriteAheadOf(const std::string& lines) const {
    return lines.empty() || !write_ahead_ ? Status::Ok() : write_ahead_(lines);
  }

 private:
  std::function<Status(const std::string&)> write_ahead_;
};

inline Result<std::vector<ConsentFactRow>> ConsentReader::ConsentFactsOf(
    const std::string& subject_id) {
  std::vector<ConsentFactRow> out;
  GARDE_RETURN_IF_ERROR(ScanConsentFacts(
      subject_id, subject_id,
      [&](std::string_view, ConsentFactRow&& row) { out.push_back(std::move(row)); }));
  return out;
}

// Puts an event for downstream systems in the outbox, in the transaction of its change.
// `payload` is a JSON object of ids and facts (a "subject" member orders deliveries). Event
// ids are minted in runs (encoding.h): a batch's events are neighbours in the outbox's index.
inline Status EmitEvent(WriteTx& tx, std::string topic, std::string payload, int64_t at) {
  static RandomIdRuns event_ids("evt_", kIdRunLength);
  return tx.InsertOutbox({event_ids.Next(), std::move(topic), std::move(payload), at});
}

// Moves *k forward through `page` (rows in id order, as ScanSubjects returns them) to the row
// of `subject`: its index, or page.size() if the page has none. Successive subjects must come
// in id order too (as ScanFields and ScanConsentFacts hand them).
inline size_t SeekSubjectRow(const std::vector<SubjectRow>& page, size_t* k,
                             std::string_view subject) {
  while (*k < page.size() && page[*k].id < subject) ++*k;
  return *k < page.size() && page[*k].id == subject ? *k : page.size();
}

}  // namespace garde

// Campaign audiences: subjects matching a `where` predicate over their (encrypted) fields,
// intersected with the consent decision for the purpose, returning only the fields the
// activity declares. The campaign is audited with its size and a hash of its id list.
//
//   AudienceBuilder b(vault, ledger, store, policies, standard, journal, clock);
//   Result<Audience> a = b.Build(caller, {"marketing_email", "marketing.email", "email",
//                                         where, {"first_name", "email"}});
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "garde/base/mutex.h"
#include "garde/domain/audience_index.h"
#include "garde/domain/consent_ledger.h"
#include "garde/domain/subject_vault.h"

namespace garde {

// The `where` language (SPEC §4): equality, set membership, prefixes, numeric and date
// ranges, `within` a duration of now, and all / any / not.
struct Predicate {
  enum class Kind { kAll, kAny, kNot, kEq, kIn, kPrefix, kGt, kGte, kLt, kLte, kWithin };
  Kind kind = Kind::kAll;
  std::vector<Predicate> children;
  std::string field;
  std::vector<FieldValue> values;
  std::string duration;  // kWithin
};

struct AudienceRequest {
  std::string activity;
  std::string purpose;
  std::string channel;
  Predicate where;                  // kAll with no children: everyone
  std::vector<std::string> fields;  // empty: every field the activity declares
};

struct AudienceMember {
  std::string id;
  FieldMap fields;
};

// How BuildText writes an audience: a head, then each member (its id and output fields) at
// the end of *out. Both are given the output columns.
struct AudienceText {
  std::function<std::string(const std::vector<std::string>& columns)> head;
  std::function<void(const std::vector<std::string>& columns, const AudienceMember& member,
                     std::string* out)>
      member;
};

struct Audience {
  std::vector<std::string> fields;      // output columns
  std::vector<AudienceMember> members;  // in id order; none kept when written as text
  std::string text;                     // BuildText: the head, then the members as written
  int64_t count = 0;                    // members
  std::string list_sha256;              // SHA-256 of the sorted ids, one per line
  int64_t scanned = 0;
  int64_t matched = 0;  // matched the predicate, before consent
};

struct BoundPredicate;  // a predicate bound to an AudienceIndex's columns

class AudienceBuilder {
 public:
  // Keeps the decrypted values of the fields audiences filter on in memory while there are
  // at most `kept_subjects` subjects, so that the next audience need not decrypt them again
  // (AudienceIndex); between runs in `snapshot` (null: not kept).
  AudienceBuilder(Store& store, SubjectVault& vault, ConsentLedger& ledger,
                  const PolicyHolder& policies, const EntryStandard& standard,
                  AccessJournal& journal, const Clock& clock, size_t kept_subjects = 1000000,
                  std::unique_ptr<SealedSnapshot> snapshot = nullptr);
  ~AudienceBuilder();

  // Audiences are built one at a time (each uses both cores).
  Result<Audience> Build(const Caller& caller, const AudienceRequest& request);
  // As Build, but each member is written into Audience::text as it is decided, and not kept:
  // at hundreds of thousands of members, the members kept with their fields and the list
  // written from them were most of the memory an audience took.
  Result<Audience> BuildText(const Caller& caller, const AudienceRequest& request,
                             const AudienceText& text);
  // Reads the last run's snapshot, if there is a usable one, so that the first audience of
  // this run need not (an audience meanwhile waits for it). Once per run.
  void WarmUp();
  // Writes the index's snapshot if it changed since the last one (at shutdown; a build that
  // rebuilt the index writes one in the background).
  void SaveSnapshot();
  // Subjects the index holds, as of the last build or snapshot read (for the metrics).
  size_t kept_subjects() const { return kept_.load(std::memory_order_relaxed); }
  // The memory the index held then: its records and columns.
  size_t kept_bytes() const { return kept_bytes_.load(std::memory_order_relaxed); }

 private:
  // Notes what the index holds now, for the metrics.
  void CountKept() REQUIRES(mu_) {
    kept_ = index_.size();
    kept_bytes_ = index_.bytes();
  }
  // One audience's question, prepared.
  struct Scan {
    const PolicySet& policies;
    const Purpose& purpose;
    const std::string& channel;
    const BoundPredicate& where;
    std::set<std::string> output_only;  // opened for members only, never kept
    const std::vector<std::string>& fields;
    int64_t now;
    const AudienceText* text;  // null: members kept in Audience::members
  };
  Result<Audience> Run(const Caller& caller, const AudienceRequest& request,
                       const AudienceText* text);
  void ReadSnapshotOnce() REQUIRES(mu_);
  // The subject's `fields` read from the vault (kNotFound unless active).
  Result<FieldMap> OpenFromVault(ReadTx& tx, const std::string& id,
                                 const std::set<std::string>& fields) const;
  // Adds the members among the index's entries [begin, end), in id order, and their entries
  // to *at.
  Status Evaluate(const Scan& scan, size_t begin, size_t end, Audience* out,
                  std::vector<uint32_t>* at);

  Store& store_;
  SubjectVault& vault_;
  ConsentLedger& ledger_;
  const PolicyHolder& policies_;
  const EntryStandard& standard_;
  AccessJournal& journal_;
  const Clock& clock_;
  Mutex save_mu_ ACQUIRED_BEFORE(mu_);  // one snapshot written at a time
  Mutex mu_;                            // one build at a time
  // Guarded by mu_; the build's helper thread reads it while the build holds mu_ for it.
  AudienceIndex index_;
  const std::unique_ptr<SealedSnapshot> snapshot_;
  bool snapshot_tried_ GUARDED_BY(mu_) = false;
  std::thread saver_;                  // the background save, if one was started
  std::atomic<bool> saving_{false};    // saver_ started and not finished
  std::atomic<size_t> kept_{0};        // index_.size() after the last build or read
  std::atomic<size_t> kept_bytes_{0};  // index_.bytes() then
};

}  // namespace garde

// Campaign audiences: subjects matching a `where` predicate over their (encrypted) fields,
// intersected with the consent decision for the purpose, returning only the fields the
// activity declares. The campaign is audited with its size and a hash of its id list.
//
//   AudienceBuilder b(vault, ledger, store, policies, standard, journal, clock);
//   Result<Audience> a = b.Build(caller, {"marketing_email", "marketing.email", "email",
//                                         where, {"first_name", "email"}});
#pragma once

#include <string>
#include <vector>

#include "garde/domain/consent_ledger.h"
#include "garde/domain/subject_cache.h"
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

struct Audience {
  std::vector<std::string> fields;  // output columns
  std::vector<AudienceMember> members;
  std::string list_sha256;          // SHA-256 of the sorted ids, one per line
  int64_t scanned = 0;
  int64_t matched = 0;              // matched the predicate, before consent
};

class AudienceBuilder {
 public:
  // Keeps the decrypted values of filtered fields of up to `kept_subjects` subjects in
  // memory (never on disk), so that the next audience need not decrypt them again.
  AudienceBuilder(Store& store, SubjectVault& vault, ConsentLedger& ledger,
                  const PolicyHolder& policies, const EntryStandard& standard,
                  AccessJournal& journal, const Clock& clock, size_t kept_subjects = 1000000)
      : store_(store), vault_(vault), ledger_(ledger), policies_(policies),
        standard_(standard), journal_(journal), clock_(clock), kept_(kept_subjects) {}

  Result<Audience> Build(const Caller& caller, const AudienceRequest& request);

 private:
  // The values of the fields audiences filtered on, for one subject.
  struct KeptFilterValues {
    std::set<std::string> opened;  // fields decrypted (a field absent from values is unset)
    FieldMap values;
  };
  using KeptPtr = SubjectCache<KeptFilterValues>::Ptr;
  // One audience's question, prepared.
  struct Scan {
    const PolicySet& policies;
    const Purpose& purpose;
    const std::string& channel;
    const Predicate& where;
    const std::set<std::string>& filter_fields;
    std::set<std::string> output_only;  // opened for members only, never kept
    const std::vector<std::string>& fields;
    int64_t now;
  };
  // Adds the members among subjects with from < id < before ("" : no bound), in id order.
  Status ScanRange(const Scan& scan, const std::string& from, const std::string& before,
                   Audience* out);
  // The subject's values of `fields`: kept, or opened (with those kept before) and kept.
  Result<KeptPtr> KeptValues(int64_t position, const std::string& id,
                             const std::set<std::string>& fields,
                             const std::function<Result<FieldMap>(const std::set<std::string>&)>& open);

  Store& store_;
  SubjectVault& vault_;
  ConsentLedger& ledger_;
  const PolicyHolder& policies_;
  const EntryStandard& standard_;
  AccessJournal& journal_;
  const Clock& clock_;
  SubjectCache<KeptFilterValues> kept_;
};

}  // namespace garde

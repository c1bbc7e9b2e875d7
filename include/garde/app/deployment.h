// A deployment: one data directory (keyring, vault database, audit database) with its policies,
// opened and wired into the domain services. `garde serve` and every CLI command that touches data
// open one.
//
//   auto d = Deployment::Open(config);          // fails with a clear message
//   d.value()->vault().Read(caller, id, "customer_management");
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "garde/app/breach_register.h"
#include "garde/app/webhooks.h"
#include "garde/base/clock.h"
#include "garde/base/file_system.h"
#include "garde/config/config.h"
#include "garde/crypto/checkpoint_signer.h"
#include "garde/crypto/keyed_hash.h"
#include "garde/crypto/keyring_source.h"
#include "garde/domain/access_journal.h"
#include "garde/domain/api_keys.h"
#include "garde/domain/audience.h"
#include "garde/domain/audit_log.h"
#include "garde/domain/consent_ledger.h"
#include "garde/domain/entry_standard.h"
#include "garde/domain/key_rotation.h"
#include "garde/domain/retention.h"
#include "garde/domain/subject_merges.h"
#include "garde/domain/subject_requests.h"
#include "garde/domain/subject_vault.h"
#include "garde/policy/policy_holder.h"
#include "garde/store/sqlite_store.h"
#include "garde/store/store.h"

namespace garde {

// The two stores of a deployment: the vault's aggregates, and the audit log's.
struct DeploymentStores {
  std::unique_ptr<Store> vault, audit;
  // Where the domain's own files go (audit journals, tombstone log, audience snapshot); null
  // for the machine's files.
  std::unique_ptr<FileSystem> files{};
};
using StoreOpener = std::function<Result<DeploymentStores>(const Config&)>;
Result<DeploymentStores> OpenSqliteStores(const Config& config);
Result<DeploymentStores> OpenPostgresStores(const Config& config);  // config.database

class Deployment {
 public:
  // Creates the data directory (mode 0700), keyring and database. Refuses an existing keyring.
  static Status Initialise(const Config& config);
  // On config.database (PostgreSQL) or else the data directory's SQLite files.
  static Result<std::unique_ptr<Deployment>> Open(const Config& config);
  // On the stores `open_stores` gives once policies and keys are loaded (e.g. two
  // MemoryStores for the domain's unit tests). The keyring and journals stay in data_dir.
  static Result<std::unique_ptr<Deployment>> Open(const Config& config,
                                                  const StoreOpener& open_stores);
  Deployment(const Deployment&) = delete;
  Deployment& operator=(const Deployment&) = delete;

  const Config& config() const { return config_; }
  // Base URL of links put in e-mails: public_url, else http://host:port as actually bound.
  std::string PublicBaseUrl() const;
  void set_bound_port(uint16_t port) { bound_port_ = port; }
  Store& store() { return *store_; }
  Store& audit_store() { return *audit_store_; }
  KeyringSource& keys() { return keys_; }
  PolicyHolder& policies() { return *policies_; }
  const Clock& clock() const { return clock_; }
  // Moves every service's "now" forward (tests of expiry and deadlines only).
  void AdvanceClockForTests(int64_t seconds) { clock_.Advance(seconds); }
  ApiKeys& api_keys() { return *api_keys_; }
  const EntryStandard& standard() const { return *standard_; }
  SubjectVault& vault() { return *vault_; }
  ConsentLedger& consents() { return *consents_; }
  AudienceBuilder& audiences() { return *audiences_; }
  RequestDesk& requests() { return *requests_; }
  const KeyedHash& suppression_hash() const { return *suppression_hash_; }
  // Link tokens of the current master (verifying those of a master being replaced too).
  std::shared_ptr<const SubjectTokens> tokens() const;
  LookupKeys& lookup() { return *lookup_; }
  KeyRotation& rotation() { return *rotation_; }
  RetentionSweep& retention() { return *retention_; }
  // Null when neither webhooks_file nor smtp_host is configured.
  WebhookDispatcher* webhooks() { return webhooks_.get(); }
  BreachRegister& breaches() { return *breaches_; }
  SubjectMerges& merges() { return *merges_; }
  // A customer's link: verified, and acting on the record the customer's is now when the one
  // it names was merged into another (a confirmation link stays with its own record).
  Result<SubjectTokenClaims> VerifySubjectToken(const std::string& token);
  AccessJournal& journal() { return *audit_; }
  AuditLog& audit() { return *audit_; }
  const CheckpointSigner& signer() const { return *signer_; }
  const TombstoneLog& tombstones() const { return *tombstones_; }

 private:
  explicit Deployment(Config config);
  Config config_;
  std::atomic<uint16_t> bound_port_{0};
  ShiftedClock clock_;
  KeyringSource keys_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Store> audit_store_;  // audit.db
  std::unique_ptr<FileSystem> files_;   // DeploymentStores::files; null: the machine's
  FileSystem& files() { return files_ ? *files_ : PosixFileSystem(); }
  std::unique_ptr<PolicyHolder> policies_;
  std::unique_ptr<LookupKeys> lookup_;  // blind indexes, API-key hashes, link tokens
  std::unique_ptr<KeyedHash> suppression_hash_;
  std::unique_ptr<KeyedHash> audit_digest_;  // digests of malformed values in the audit log
  std::unique_ptr<EntryStandard> standard_;
  std::unique_ptr<CheckpointSigner> signer_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<ApiKeys> api_keys_;
  std::unique_ptr<SubjectVault> vault_;
  std::unique_ptr<ConsentLedger> consents_;
  std::unique_ptr<AudienceBuilder> audiences_;
  std::unique_ptr<TombstoneLog> tombstones_;
  std::unique_ptr<RequestDesk> requests_;
  std::unique_ptr<KeyRotation> rotation_;
  std::unique_ptr<RetentionSweep> retention_;
  std::unique_ptr<WebhookDispatcher> webhooks_;
  std::unique_ptr<BreachRegister> breaches_;
  std::unique_ptr<SubjectMerges> merges_;
};

}  // namespace garde

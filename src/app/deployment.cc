#include "garde/app/deployment.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "garde/base/log.h"
#include "garde/store/postgres_store.h"
#include "garde/store/sqlite_store.h"

namespace garde {

Deployment::Deployment(Config config) : config_(std::move(config)), keys_(config_.keyring_path()) {}

std::shared_ptr<const SubjectTokens> Deployment::tokens() const {
  auto keys = lookup_->Current();
  return std::shared_ptr<const SubjectTokens>(keys, &keys->tokens);
}

Result<SubjectTokenClaims> Deployment::VerifySubjectToken(const std::string& token) {
  auto claims = tokens()->Verify(token, clock_.Now());
  if (!claims.ok() || claims->use == "confirm") return claims;
  GARDE_ASSIGN_OR_RETURN(auto survivor, merges_->SurvivorOf(claims->subject));
  if (survivor) claims->subject = *survivor;
  return claims;
}

std::string Deployment::PublicBaseUrl() const {
  if (!config_.public_url.empty()) return config_.public_url;
  const uint16_t port = bound_port_ != 0 ? bound_port_.load() : config_.listen_port;
  return "http://" + config_.listen_host + ":" + std::to_string(port);
}

Status Deployment::Initialise(const Config& config) {
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec)
    return Unavailable("cannot create data directory " + config.data_dir + ": " + ec.message());
  ::chmod(config.data_dir.c_str(), 0700);
  if (config.postgres()) {
    // Creates the schema. A database that already serves a deployment keeps its keys: a new
    // keyring could read none of its data.
    GARDE_ASSIGN_OR_RETURN(auto stores, OpenPostgresStores(config));
    bool used = false;
    GARDE_RETURN_IF_ERROR(stores.vault->Read([&](ReadTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto keys, tx.ListApiKeys());
      GARDE_ASSIGN_OR_RETURN(auto subjects, tx.CountSubjects());
      used = !keys.empty() || subjects > 0;
      return Status::Ok();
    }));
    if (used) {
      return Conflict(
          "the database already holds a Garde deployment: give this node a copy of "
          "its keyring.json instead of initialising (docs/scaling.md)");
    }
    return Keyring::Create(config.keyring_path());
  }
  GARDE_RETURN_IF_ERROR(Keyring::Create(config.keyring_path()));
  // audit.db is created by Open, where an existing deployment also gets it.
  SqliteOptions vault;
  vault.path = config.database_path();
  vault.synchronous_full = config.durable;
  return SqliteStore::Open(vault).status();
}

Result<DeploymentStores> OpenSqliteStores(const Config& config) {
  SqliteOptions options;
  options.path = config.database_path();
  options.synchronous_full = config.durable;
  options.max_connections = config.db_connections;
  options.mmap_bytes = config.db_mmap_bytes;
  options.cache_bytes = int64_t{config.db_cache_mib} << 20;
  options.deferred_sync_ms = config.deferred_sync_ms;
  options.checkpoint_frames = config.db_checkpoint_frames;
  options.writer_cache_bytes = int64_t{config.db_writer_cache_mib} << 20;
  GARDE_ASSIGN_OR_RETURN(auto store, SqliteStore::Open(options));
  // The audit log's own file: same durability, few connections (one appender, rare readers).
  SqliteOptions log = options;
  log.path = config.audit_database_path();
  log.schema = SqliteSchema::kAudit;
  // Appends, and the subject index's runs merged in order: a small cache serves them, and a
  // merge writes its pages as it goes rather than holding up to 64 MiB of them.
  log.writer_cache_bytes = int64_t{4} << 20;
  log.writer_spill_pages = 0;
  log.max_connections = 4;
  GARDE_ASSIGN_OR_RETURN(auto audit_store, SqliteStore::Open(log));
  GARDE_RETURN_IF_ERROR(audit_store->ImportLegacyAudit(options.path));
  return DeploymentStores{std::move(store), std::move(audit_store)};
}

Result<DeploymentStores> OpenPostgresStores(const Config& config) {
  PostgresOptions options;
  options.conninfo = config.database;
  options.synchronous = config.durable;
  options.max_connections = config.db_connections;
  options.strict_reads = config.strict_reads;
  options.visible_before_durable = true;
  GARDE_ASSIGN_OR_RETURN(auto store, PostgresStore::Open(options));
  // The audit log's tables live in the same database; its own few connections and write lock.
  options.max_connections = 4;
  options.write_lock = PostgresOptions::kAuditWriteLock;
  options.follow_changes = false;
  options.visible_before_durable = false;
  GARDE_ASSIGN_OR_RETURN(auto audit_store, PostgresStore::Open(options));
  return DeploymentStores{std::move(store), std::move(audit_store)};
}

Result<std::unique_ptr<Deployment>> Deployment::Open(const Config& config) {
  return Open(config, config.postgres() ? OpenPostgresStores : OpenSqliteStores);
}

Result<std::unique_ptr<Deployment>> Deployment::Open(const Config& config,
                                                     const StoreOpener& open_stores) {
  if (!InitSodium()) return Unavailable("libsodium cannot be initialised");
  std::unique_ptr<Deployment> d(new Deployment(config));  // private constructor
  if (config.test_clock_offset != 0) {
    // Tests of expiry, deadlines, retention and schedules only: every "now" is moved.
    d->clock_.Advance(config.test_clock_offset);
    LogLine(spdlog::level::warn, "test_clock_offset is set: the service's clock is moved")
        .Int("seconds", config.test_clock_offset);
  }
  auto policies = LoadPolicies(config.policies_dir);
  if (!policies.ok()) return policies.status();
  if (policies.value()->languages().count(config.default_language) == 0) {
    return Unprocessable("default_language: the policies have no locales/" +
                         config.default_language + ".yaml");
  }
  GARDE_RETURN_IF_ERROR(d->keys_.Load());
  GARDE_ASSIGN_OR_RETURN(auto stores, open_stores(config));
  d->store_ = std::move(stores.vault);
  d->audit_store_ = std::move(stores.audit);
  d->files_ = std::move(stores.files);
  // A "no" reaches the log before the database commits it (TombstoneLog::WriteAhead): set
  // before anything that writes, or starts a thread that does.
  d->tombstones_ = std::make_unique<TombstoneLog>(config.data_dir + "/tombstones.log", d->files());
  d->store_->SetWriteAhead(
      [log = d->tombstones_.get()](const std::string& lines) { return log->AppendText(lines); });
  d->policies_ = std::make_unique<PolicyHolder>(policies.value());
  const auto ring = d->keys_.Current();
  d->lookup_ = std::make_unique<LookupKeys>(*ring);
  // A master rotation reaches this process when it reloads the keyring.
  d->keys_.OnLoad([lookup = d->lookup_.get()](const Keyring& r) { lookup->Apply(r); });
  d->suppression_hash_ = std::make_unique<KeyedHash>(ring->Derive(KeyContext::kSuppression));
  d->standard_ = std::make_unique<EntryStandard>(config.default_region);
  d->signer_ =
      std::make_unique<CheckpointSigner>(ring->Derive(KeyContext::kSigning), config.audit_origin);
  d->audit_digest_ = std::make_unique<KeyedHash>(ring->Derive(KeyContext::kAuditDigest));
  // Activities are kept as given only when the register declares them (read at each entry,
  // so a reload applies at once).
  const PolicyHolder* holder = d->policies_.get();
  AuditValues values(d->audit_digest_.get(), [holder](std::string_view activity) {
    return holder->Current()->FindActivity(activity) != nullptr;
  });
  d->audit_ =
      std::make_unique<AuditLog>(*d->store_, *d->audit_store_, d->clock_, *d->signer_,
                                 AuditLog::Options{config.data_dir, config.deferred_sync_ms,
                                                   8 << 20, std::move(values), &d->files()});
  // Entries a crashed process left in its journal or pending are logged now.
  GARDE_RETURN_IF_ERROR(d->audit_->Recover());
  GARDE_RETURN_IF_ERROR(d->audit_->Flush());
  d->api_keys_ =
      std::make_unique<ApiKeys>(*d->store_, *d->lookup_, d->clock_, config.api_key_cache_seconds);
  d->vault_ = std::make_unique<SubjectVault>(
      VaultDeps{*d->store_, d->keys_, *d->lookup_, *d->suppression_hash_, *d->standard_,
                *d->policies_, *d->audit_, d->clock_},
      static_cast<size_t>(config.kept_records));
  d->consents_ = std::make_unique<ConsentLedger>(
      ConsentDeps{*d->store_, *d->policies_, *d->standard_, *d->suppression_hash_, *d->signer_,
                  *d->audit_, d->clock_, d->tombstones_.get()},
      static_cast<size_t>(config.kept_subjects));
  d->vault_->SetActivityConsent(d->consents_.get());
  d->audiences_ = std::make_unique<AudienceBuilder>(
      *d->store_, *d->vault_, *d->consents_, *d->policies_, *d->standard_, *d->audit_, d->clock_,
      static_cast<size_t>(config.kept_subjects),
      std::make_unique<SealedSnapshot>(*d->store_, d->keys_, config.audience_snapshot_path(),
                                       "audience", d->files()));
  auto jurisdictions = ParseJurisdictions(config.dsr_jurisdictions);
  if (!jurisdictions.ok())
    return Unprocessable("dsr_jurisdictions: " + jurisdictions.status().message());
  if (std::none_of(jurisdictions.value().begin(), jurisdictions.value().end(),
                   [&](const Jurisdiction& j) { return j.name == config.dsr_jurisdiction; })) {
    return Unprocessable("dsr_jurisdiction: '" + config.dsr_jurisdiction +
                         "' is not one of dsr_jurisdictions");
  }
  d->requests_ = std::make_unique<RequestDesk>(
      RequestDeps{*d->store_, *d->policies_, *d->vault_, *d->consents_, *d->audit_, d->clock_,
                  std::move(jurisdictions.value()), config.dsr_jurisdiction, d->tombstones_.get()});
  d->rotation_ = std::make_unique<KeyRotation>(*d->store_, d->keys_);
  d->retention_ = std::make_unique<RetentionSweep>(
      RetentionDeps{*d->store_, *d->policies_, *d->vault_, *d->audit_, d->clock_,
                    d->tombstones_.get(), config.request_due_warning, config.merge_revert_period});
  d->breaches_ = std::make_unique<BreachRegister>(*d);
  d->merges_ = std::make_unique<SubjectMerges>(
      MergeDeps{*d->store_, *d->policies_, *d->vault_, *d->consents_, *d->audit_, d->clock_});
  if (!config.webhooks_file.empty() || !config.smtp_host.empty()) {
    std::vector<WebhookEndpoint> endpoints;
    if (!config.webhooks_file.empty()) {
      GARDE_ASSIGN_OR_RETURN(auto loaded,
                             LoadWebhookEndpoints(config.webhooks_file, *d->policies_->Current()));
      endpoints = std::move(loaded);
    }
    d->webhooks_ = std::make_unique<WebhookDispatcher>(*d, std::move(endpoints));
    if (!config.smtp_host.empty()) {
      d->webhooks_->AttachMailer(std::make_unique<Mailer>(*d));
    }
  }
  return d;
}

}  // namespace garde

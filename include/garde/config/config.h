// Service configuration. Every option has one documented default and can be set, from lowest
// to highest precedence, in the config file (YAML), a GARDE_* environment variable, or a flag.
//
//   auto cfg = ResolveConfig(flags);    // flags: {"data-dir": "/var/lib/garde", ...}
//   if (!cfg.ok()) Die(cfg.status());   // names the option and what is wrong
//   cfg->listen_port;
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "garde/base/status.h"

namespace garde {

struct Config {
  std::string data_dir;
  std::string policies_dir;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  // The admin listener (GET /metrics); empty host: none.
  std::string admin_listen_host;
  uint16_t admin_listen_port = 0;
  int io_threads = 0;                     // threads owning the connections; 0: one per core
  int max_threads = 128;                  // workers for requests that may wait (writes, scans)
  int max_queued = 256;                   // requests waiting for a worker (503 above)
  int max_connections = 10000;            // open connections; more are closed on arrival
  int max_connections_per_client = 1000;  // from one client address
  // Addresses (canonical text) of proxies whose X-Forwarded-For names the client (HAProxy in
  // front of the nodes); the audit log records the client's address digest, not the proxy's.
  std::vector<std::string> trusted_proxies;
  int request_timeout = 15;     // seconds to receive a request or send a response
  int keep_alive_timeout = 10;  // seconds an idle keep-alive connection is kept
  int max_keep_alive_requests = 10000;
  int64_t max_body_bytes = 1 << 20;
  int64_t max_batch_bytes = 16 << 20;
  int64_t max_import_bytes = int64_t{1} << 30;  // a spreadsheet upload (kept on disk, sealed)
  int max_batch_rows = 1000;
  // Where the data lives: empty for the SQLite files in data_dir (garde.db, audit.db), or a
  // postgresql:// URI (libpq's) of a database several nodes may share.
  std::string database;
  // With PostgreSQL: answers from a node's memory confirm first that nothing changed
  // (read_consistency = strict), or follow other nodes' notifications (eventual).
  bool strict_reads = true;
  bool durable = true;              // fsync every commit
  int db_connections = 8;           // SQLite connections shared by the worker threads
  int64_t db_mmap_bytes = 0;        // bytes of the database each connection memory-maps
  int db_cache_mib = 2;             // pages each reading connection keeps
  int db_writer_cache_mib = 0;      // pages the writing connection keeps (0: the shared 16 MB)
  int db_checkpoint_frames = 4096;  // WAL frames a checkpointer thread copies (0: SQLite's own)
  int deferred_sync_ms = 50;        // read-audit entries reach stable storage within this (ms)
  int kept_subjects = 2000000;      // subjects whose consent facts stay in memory
  int kept_records = 100000;        // sealed subject records (ciphertext) kept for reads
  std::string default_region = "FR";
  std::string log_level = "info";
  std::string log_file;
  int keyring_watch_seconds = 2;
  int api_key_cache_seconds = 2;  // a revoked key stops working within this time
  // Root keys on a PKCS#11 token (docs/operations.md, Keys): off while pkcs11_module is empty.
  std::string pkcs11_module;
  std::string pkcs11_token = "garde";
  std::string pkcs11_pin_file;  // else $CREDENTIALS_DIRECTORY/garde-pkcs11-pin
  int64_t pkcs11_cache_keys = 65536;
  int64_t pkcs11_cache_seconds = 300;
  std::string public_url;             // base of links put in e-mails; empty: http://listen
  std::string audit_origin;           // checkpoint origin line; empty: derived from the key
  int audit_checkpoint_every = 1000;  // sign a tree head after this many new entries ...
  int audit_checkpoint_seconds = 60;  // ... or this long after the last one
  // Data-subject request deadlines: NAME=DEADLINE+LONGEST_EXTENSION, comma-separated.
  std::string dsr_jurisdictions = "gdpr=P1M+P2M,uk_gdpr=P1M+P2M,ccpa=P45D+P45D";
  std::string dsr_jurisdiction = "gdpr";  // applied when a request names none
  // Backups (docs/operations.md): where, how often inside `serve` (0: never), which are kept.
  std::string backup_dir;       // empty: data_dir/backups
  int64_t backup_interval = 0;  // seconds, from an ISO 8601 duration
  int backup_keep_last = 7;
  int backup_keep_daily = 7;
  int backup_keep_weekly = 4;
  int backup_keep_monthly = 6;
  // Retention sweep inside `serve` (0: never; `garde retention run` still works), and how long
  // before its deadline an open request raises request.due_soon.
  int64_t retention_interval = 86400;
  int64_t request_due_warning = 7 * 86400;
  int64_t merge_revert_period = 30 * 86400;  // then the retention sweep completes a merge
  // Webhook endpoints (docs/operations.md, Webhooks); empty: none.
  std::string webhooks_file;
  // Customers: the language of pages and messages when neither the subject's `language`
  // field nor the browser names one the policies have (checked against locales/ at start).
  std::string default_language = "en";
  // E-mail to customers (docs/operations.md, Messages): off while smtp_host is empty.
  std::string smtp_host;
  int64_t smtp_port = 587;
  std::string smtp_tls = "starttls";  // starttls (required) | none (tests, local relays)
  std::string smtp_ca_file;           // CA certificates for the server's; empty: the system's
  std::string smtp_user;
  std::string smtp_password;         // from GARDE_SMTP_PASSWORD or smtp_password_file
  std::string mail_from;             // "notices@example.com": the envelope and From address
  int64_t mail_max_age = 3 * 86400;  // seconds a message is retried before it is failed
  int64_t mail_first_retry_ms = 30000;
  // Tests only: seconds added to every "now" of the service (expiry, deadlines, schedules).
  int64_t test_clock_offset = 0;

  std::string keyring_path() const { return data_dir + "/keyring.json"; }
  bool postgres() const { return !database.empty(); }
  std::string database_path() const { return data_dir + "/garde.db"; }
  std::string audit_database_path() const { return data_dir + "/audit.db"; }
  std::string audience_snapshot_path() const { return data_dir + "/audience.snapshot"; }
  std::string backup_directory() const {
    return backup_dir.empty() ? data_dir + "/backups" : backup_dir;
  }
};

struct OptionDoc {
  const char* name;      // config-file key; flag is --name with '_' as '-'
  const char* env;       // environment variable
  const char* fallback;  // default, as text
  const char* help;
};
// Every option, for --help and docs/operations.md.
const std::vector<OptionDoc>& ConfigOptions();

// Resolves the configuration from defaults, the file named by --config / GARDE_CONFIG,
// the environment, then `flags` (keys are option names with '-' or '_').
Result<Config> ResolveConfig(const std::map<std::string, std::string>& flags);

}  // namespace garde

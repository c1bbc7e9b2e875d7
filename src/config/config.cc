#include "garde/config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <tuple>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/ip_address.h"
#include "garde/policy/locale.h"

namespace garde {
namespace {

std::string Canonical(std::string name) {
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  return name;
}

bool ParseInt(const std::string& text, int64_t lo, int64_t hi, int64_t* out) {
  if (text.empty() || text.size() > 18) return false;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

std::string DefaultPolicies() {
  if (std::filesystem::exists("policies/register.yaml")) return "policies";
  return GARDE_SOURCE_POLICIES;
}

}  // namespace

const std::vector<OptionDoc>& ConfigOptions() {
  static const std::vector<OptionDoc> kOptions = {
      {"data_dir", "GARDE_DATA_DIR", "(required)", "data directory: keyring, database, backups"},
      {"policies", "GARDE_POLICIES", "./policies",
       "policies directory (schema, purposes, register, roles)"},
      {"listen", "GARDE_LISTEN", "127.0.0.1:8080",
       "HOST:PORT to serve HTTP on (port 0 picks a free one)"},
      {"admin_listen", "GARDE_ADMIN_LISTEN", "(none)",
       "HOST:PORT of the admin listener: GET /metrics for Prometheus, without API key"},
      {"io_threads", "GARDE_IO_THREADS", "0", "threads that own the connections (0: one per core)"},
      {"max_threads", "GARDE_MAX_THREADS", "128",
       "most worker threads for requests that may wait (writes, scans)"},
      {"max_queued", "GARDE_MAX_QUEUED", "256", "requests waiting for a worker (503 above)"},
      {"max_connections", "GARDE_MAX_CONNECTIONS", "10000",
       "open connections (more are closed at once)"},
      {"max_connections_per_client", "GARDE_MAX_CONNECTIONS_PER_CLIENT", "1000",
       "open connections from one client address (more are closed at once)"},
      {"trusted_proxies", "GARDE_TRUSTED_PROXIES", "(none)",
       "comma-separated addresses of proxies (HAProxy) whose X-Forwarded-For names the client the "
       "audit log records"},
      {"request_timeout", "GARDE_REQUEST_TIMEOUT", "15",
       "seconds to receive a request or send a reply"},
      {"keep_alive_timeout", "GARDE_KEEP_ALIVE_TIMEOUT", "10",
       "seconds an idle connection is kept open"},
      {"max_keep_alive_requests", "GARDE_MAX_KEEP_ALIVE_REQUESTS", "10000",
       "requests per connection"},
      {"max_body_bytes", "GARDE_MAX_BODY_BYTES", "1048576", "largest request body (413 above)"},
      {"max_batch_bytes", "GARDE_MAX_BATCH_BYTES", "16777216", "largest batch body (413 above)"},
      {"max_import_bytes", "GARDE_MAX_IMPORT_BYTES", "1073741824",
       "largest spreadsheet upload, POST /v1/imports (413 above)"},
      {"max_batch_rows", "GARDE_MAX_BATCH_ROWS", "1000", "most rows in one batch (413 above)"},
      {"database", "GARDE_DATABASE", "(SQLite files in data_dir)",
       "postgresql://… URI of a PostgreSQL database to keep the data in instead (docs/scaling.md)"},
      {"read_consistency", "GARDE_READ_CONSISTENCY", "strict",
       "with PostgreSQL: strict (a read from a node's memory first confirms nothing changed: "
       "another node's write shows at once) or eventual (within milliseconds, one round trip "
       "less)"},
      {"db_connections", "GARDE_DB_CONNECTIONS", "8",
       "database connections shared by the worker threads"},
      {"db_mmap_bytes", "GARDE_DB_MMAP_BYTES", "0",
       "bytes of the database file each connection memory-maps"},
      {"db_cache_mib", "GARDE_DB_CACHE_MIB", "2",
       "MiB of pages each reading database connection keeps"},
      {"db_writer_cache_mib", "GARDE_DB_WRITER_CACHE_MIB", "0",
       "MiB of pages the writing connection keeps (0: 16 for garde serve, 256 for garde import)"},
      {"db_checkpoint_frames", "GARDE_DB_CHECKPOINT_FRAMES", "4096",
       "WAL pages copied into the database by a thread of its own (0: by the committer, SQLite's "
       "way)"},
      {"deferred_sync_ms", "GARDE_DEFERRED_SYNC_MS", "50",
       "read-audit entries are fsynced within this many ms (writes: at once)"},
      {"kept_subjects", "GARDE_KEPT_SUBJECTS", "2000000",
       "subjects whose consent facts (and audience filter values) stay in memory"},
      {"kept_records", "GARDE_KEPT_RECORDS", "100000",
       "subjects whose sealed record (ciphertext only) stays in memory for reads; all are loaded "
       "at start when they fit, a sixteenth of it is kept when the vault has more"},
      {"durable", "GARDE_DURABLE", "true",
       "fsync every commit (false: survive crashes, not power loss)"},
      {"default_region", "GARDE_DEFAULT_REGION", "FR",
       "region for phone numbers written without +"},
      {"log_level", "GARDE_LOG_LEVEL", "info", "trace, debug, info, warn, error"},
      {"log_file", "GARDE_LOG_FILE", "(stderr only)", "also append JSON log lines to this file"},
      {"keyring_watch_seconds", "GARDE_KEYRING_WATCH_SECONDS", "2",
       "how often the keyring file is checked for a rotation"},
      {"pkcs11_module", "GARDE_PKCS11_MODULE", "(none: no token)",
       "PKCS#11 module holding the root keys: a p11-kit module name (softhsm2) or a path"},
      {"pkcs11_token", "GARDE_PKCS11_TOKEN", "garde", "label of the PKCS#11 token"},
      {"pkcs11_pin_file", "GARDE_PKCS11_PIN_FILE", "(the credential garde-pkcs11-pin)",
       "file (mode 0600, outside the data directory) holding the token's user PIN"},
      {"pkcs11_cache_keys", "GARDE_PKCS11_CACHE_KEYS", "65536",
       "data keys kept opened in secret memory (0: every read asks the token)"},
      {"pkcs11_cache_seconds", "GARDE_PKCS11_CACHE_SECONDS", "300",
       "how long an opened data key is kept"},
      {"public_url", "GARDE_PUBLIC_URL", "http://<listen>",
       "base URL of subject links (preference centre, unsubscribe)"},
      {"audit_origin", "GARDE_AUDIT_ORIGIN", "garde/<key id>",
       "origin line of signed audit checkpoints"},
      {"audit_checkpoint_every", "GARDE_AUDIT_CHECKPOINT_EVERY", "1000",
       "sign a tree head after this many new audit entries"},
      {"audit_checkpoint_seconds", "GARDE_AUDIT_CHECKPOINT_SECONDS", "60",
       "or this many seconds after the last checkpoint"},
      {"dsr_jurisdictions", "GARDE_DSR_JURISDICTIONS",
       "gdpr=P1M+P2M,uk_gdpr=P1M+P2M,ccpa=P45D+P45D",
       "DSR deadline and longest extension per jurisdiction (ISO 8601 durations)"},
      {"dsr_jurisdiction", "GARDE_DSR_JURISDICTION", "gdpr",
       "jurisdiction of a request that names none"},
      {"backup_dir", "GARDE_BACKUP_DIR", "<data_dir>/backups",
       "where garde backup writes and finds backups"},
      {"backup_interval", "GARDE_BACKUP_INTERVAL", "(none)",
       "serve makes a backup this often (ISO 8601 duration, at least PT1M), then prunes"},
      {"backup_keep_last", "GARDE_BACKUP_KEEP_LAST", "7", "prune keeps the newest N backups ..."},
      {"backup_keep_daily", "GARDE_BACKUP_KEEP_DAILY", "7",
       "... and the newest of each of the last N days with one ..."},
      {"backup_keep_weekly", "GARDE_BACKUP_KEEP_WEEKLY", "4", "... of the last N ISO weeks ..."},
      {"backup_keep_monthly", "GARDE_BACKUP_KEEP_MONTHLY", "6", "... and of the last N months"},
      {"retention_interval", "GARDE_RETENTION_INTERVAL", "P1D",
       "serve runs the retention sweep this often (ISO 8601 duration; none: never)"},
      {"request_due_warning", "GARDE_REQUEST_DUE_WARNING", "P7D",
       "the sweep raises request.due_soon this long before a request's deadline"},
      {"merge_revert_period", "GARDE_MERGE_REVERT_PERIOD", "P30D",
       "a merge can be reverted this long; then the sweep completes it (the merged record's data "
       "destroyed)"},
      {"webhooks_file", "GARDE_WEBHOOKS_FILE", "(none)",
       "YAML file of webhook endpoints (recipients told of erasures, rectifications, consent "
       "changes)"},
      {"default_language", "GARDE_DEFAULT_LANGUAGE", "en",
       "language of customer pages and messages when neither the subject's language field nor the "
       "browser names one the policies have"},
      {"smtp_host", "GARDE_SMTP_HOST", "(none: no e-mail)",
       "SMTP server for messages to customers (request notices, confirmations)"},
      {"smtp_port", "GARDE_SMTP_PORT", "587", "its port"},
      {"smtp_tls", "GARDE_SMTP_TLS", "starttls",
       "starttls (required, certificate verified) or none (a relay on localhost)"},
      {"smtp_ca_file", "GARDE_SMTP_CA_FILE", "(the system's CAs)",
       "PEM file of the CAs that vouch for the SMTP server's certificate (a private relay)"},
      {"smtp_user", "GARDE_SMTP_USER", "(none)",
       "user to authenticate as (AUTH PLAIN); none: no authentication"},
      {"smtp_password_file", "GARDE_SMTP_PASSWORD_FILE", "(none)",
       "file holding the SMTP password (or set GARDE_SMTP_PASSWORD)"},
      {"mail_from", "GARDE_MAIL_FROM", "(required with smtp_host)",
       "address messages come from; the display name is the controller's"},
      {"mail_max_age", "GARDE_MAIL_MAX_AGE", "P3D",
       "a message not accepted by the SMTP server within this long is failed (officers see it)"},
      {"mail_first_retry", "GARDE_MAIL_FIRST_RETRY", "PT30S",
       "first retry delay; it doubles (with jitter) up to an hour"},
      {"test_clock_offset", "GARDE_TEST_CLOCK_OFFSET", "0",
       "tests only: seconds added to the service's clock (logged as a warning)"},
      {"api_key_cache_seconds", "GARDE_API_KEY_CACHE_SECONDS", "2",
       "how long a verified API key is remembered (revocation delay; 0 disables)"},
  };
  return kOptions;
}

Result<Config> ResolveConfig(const std::map<std::string, std::string>& raw_flags) {
  std::map<std::string, std::string> flags;
  for (const auto& [k, v] : raw_flags) flags[Canonical(k)] = v;

  std::map<std::string, std::string> values;
  std::string config_file = flags.count("config") ? flags["config"] : "";
  if (config_file.empty()) {
    if (const char* e = std::getenv("GARDE_CONFIG")) config_file = e;
  }
  if (!config_file.empty()) {
    try {
      YAML::Node root = YAML::LoadFile(config_file);
      if (!root.IsMap())
        return Unprocessable("config file " + config_file + ": expected a mapping");
      for (const auto& kv : root) {
        const std::string key = Canonical(kv.first.as<std::string>(""));
        bool known = false;
        for (const auto& o : ConfigOptions()) known |= key == o.name;
        if (!known) {
          return Unprocessable("config file " + config_file + ":" +
                               std::to_string(kv.first.Mark().line + 1) + ": unknown option '" +
                               key + "'");
        }
        if (!kv.second.IsScalar()) {
          return Unprocessable("config file " + config_file + ": '" + key + "' must be a value");
        }
        values[key] = kv.second.as<std::string>();
      }
    } catch (const YAML::Exception& e) {
      return Unprocessable("config file " + config_file + ": " + e.what());
    }
  }
  for (const auto& o : ConfigOptions()) {
    if (const char* e = std::getenv(o.env)) values[o.name] = e;
  }
  for (const auto& [k, v] : flags) {
    if (k == "config") continue;
    bool known = false;
    for (const auto& o : ConfigOptions()) known |= k == o.name;
    if (known) values[k] = v;
  }

  Config c;
  Status bad(Code::kUnprocessable, "invalid configuration");
  auto int_opt = [&](const char* name, int64_t lo, int64_t hi, auto* field) {
    auto it = values.find(name);
    if (it == values.end()) return;
    int64_t v;
    if (!ParseInt(it->second, lo, hi, &v)) {
      bad.AddError(
          name, "must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
      return;
    }
    *field = static_cast<std::remove_reference_t<decltype(*field)>>(v);
  };
  c.data_dir = values.count("data_dir") ? values["data_dir"] : "";
  if (c.data_dir.empty()) bad.AddError("data_dir", "is required (--data-dir or GARDE_DATA_DIR)");
  c.policies_dir = values.count("policies") ? values["policies"] : DefaultPolicies();
  // An empty value turns an optional listener off.
  auto host_port = [&](const char* name, bool optional, std::string* host, uint16_t* port) {
    auto it = values.find(name);
    if (it == values.end() || (optional && it->second.empty())) return;
    const std::string& l = it->second;
    const size_t colon = l.rfind(':');
    int64_t number;
    if (colon == std::string::npos || colon == 0 ||
        !ParseInt(l.substr(colon + 1), 0, 65535, &number)) {
      bad.AddError(name, "must be HOST:PORT, e.g. 127.0.0.1:8080");
      return;
    }
    *host = l.substr(0, colon);
    if (host->size() > 2 && host->front() == '[') *host = host->substr(1, host->size() - 2);
    *port = static_cast<uint16_t>(number);
  };
  host_port("listen", false, &c.listen_host, &c.listen_port);
  host_port("admin_listen", true, &c.admin_listen_host, &c.admin_listen_port);
  int_opt("io_threads", 0, 256, &c.io_threads);
  int_opt("max_threads", 2, 4096, &c.max_threads);
  int_opt("max_queued", 1, 100000, &c.max_queued);
  int_opt("max_connections", 1, 1000000, &c.max_connections);
  int_opt("max_connections_per_client", 1, 1000000, &c.max_connections_per_client);
  if (values.count("trusted_proxies")) {
    for (const std::string& item : SplitList(values["trusted_proxies"], ',')) {
      if (item.find_first_not_of(" \t") == std::string::npos) continue;
      if (auto address = CanonicalAddress(item)) {
        c.trusted_proxies.push_back(*address);
      } else {
        bad.AddError("trusted_proxies", "must list IPv4 or IPv6 addresses, e.g. 127.0.0.1,::1");
        break;
      }
    }
  }
  int_opt("request_timeout", 1, 3600, &c.request_timeout);
  int_opt("keep_alive_timeout", 1, 3600, &c.keep_alive_timeout);
  int_opt("max_keep_alive_requests", 1, 10000000, &c.max_keep_alive_requests);
  int_opt("max_body_bytes", 1024, int64_t{1} << 30, &c.max_body_bytes);
  int_opt("max_batch_bytes", 1024, int64_t{1} << 31, &c.max_batch_bytes);
  int_opt("max_import_bytes", 1024, int64_t{1} << 40, &c.max_import_bytes);
  int_opt("max_batch_rows", 1, 100000, &c.max_batch_rows);
  if (values.count("database")) {
    c.database = values["database"];
    if (!c.database.empty() && c.database.rfind("postgresql://", 0) != 0 &&
        c.database.rfind("postgres://", 0) != 0) {
      bad.AddError("database", "must be a postgresql:// URI (or empty for SQLite in data_dir)");
    }
  }
  if (values.count("read_consistency")) {
    const std::string& v = values["read_consistency"];
    if (v != "strict" && v != "eventual") {
      bad.AddError("read_consistency", "must be strict or eventual");
    } else {
      c.strict_reads = v == "strict";
    }
  }
  int_opt("db_connections", 1, 256, &c.db_connections);
  int_opt("db_mmap_bytes", 0, int64_t{1} << 40, &c.db_mmap_bytes);
  int_opt("db_cache_mib", 1, 1 << 20, &c.db_cache_mib);
  int_opt("db_writer_cache_mib", 0, 1 << 20, &c.db_writer_cache_mib);
  int_opt("db_checkpoint_frames", 0, 1 << 24, &c.db_checkpoint_frames);
  int_opt("deferred_sync_ms", 1, 10000, &c.deferred_sync_ms);
  int_opt("kept_subjects", 0, 100000000, &c.kept_subjects);
  int_opt("kept_records", 0, 100000000, &c.kept_records);
  int_opt("keyring_watch_seconds", 1, 3600, &c.keyring_watch_seconds);
  int_opt("api_key_cache_seconds", 0, 300, &c.api_key_cache_seconds);
  if (values.count("pkcs11_module")) c.pkcs11_module = values["pkcs11_module"];
  if (values.count("pkcs11_token")) {
    c.pkcs11_token = values["pkcs11_token"];
    const bool plain = std::all_of(c.pkcs11_token.begin(), c.pkcs11_token.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.' ||
             ch == ' ';
    });
    if (c.pkcs11_token.empty() || c.pkcs11_token.size() > 32 || !plain) {
      bad.AddError("pkcs11_token", "must be 1 to 32 letters, digits, spaces, '-', '_' or '.'");
    }
  }
  if (values.count("pkcs11_pin_file")) c.pkcs11_pin_file = values["pkcs11_pin_file"];
  int_opt("pkcs11_cache_keys", 0, 10000000, &c.pkcs11_cache_keys);
  int_opt("pkcs11_cache_seconds", 1, 86400, &c.pkcs11_cache_seconds);
  int_opt("audit_checkpoint_every", 1, 100000000, &c.audit_checkpoint_every);
  int_opt("audit_checkpoint_seconds", 1, 86400, &c.audit_checkpoint_seconds);
  if (values.count("public_url")) {
    c.public_url = values["public_url"];
    if (c.public_url.rfind("http://", 0) != 0 && c.public_url.rfind("https://", 0) != 0) {
      bad.AddError("public_url", "must start with http:// or https://");
    }
    while (!c.public_url.empty() && c.public_url.back() == '/') c.public_url.pop_back();
  }
  if (values.count("audit_origin")) {
    c.audit_origin = values["audit_origin"];
    if (c.audit_origin.find_first_of(" \n+") != std::string::npos || c.audit_origin.size() > 200) {
      bad.AddError("audit_origin", "must be one line without spaces or '+'");
    }
  }
  if (values.count("durable")) {
    const std::string& d = values["durable"];
    if (d == "true" || d == "1" || d == "yes") {
      c.durable = true;
    } else if (d == "false" || d == "0" || d == "no") {
      c.durable = false;
    } else {
      bad.AddError("durable", "must be true or false");
    }
  }
  if (values.count("default_region")) {
    c.default_region = values["default_region"];
    if (c.default_region.size() != 2) bad.AddError("default_region", "must be a 2-letter region");
  }
  if (values.count("log_level")) {
    c.log_level = values["log_level"];
    static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
    bool ok = false;
    for (const char* l : kLevels) ok |= c.log_level == l;
    if (!ok) bad.AddError("log_level", "must be one of trace, debug, info, warn, error, off");
  }
  if (values.count("log_file")) c.log_file = values["log_file"];
  if (values.count("dsr_jurisdictions")) c.dsr_jurisdictions = values["dsr_jurisdictions"];
  if (values.count("dsr_jurisdiction")) c.dsr_jurisdiction = values["dsr_jurisdiction"];
  if (values.count("backup_dir")) c.backup_dir = values["backup_dir"];
  if (values.count("webhooks_file")) c.webhooks_file = values["webhooks_file"];
  if (values.count("backup_interval") && !values["backup_interval"].empty()) {
    auto seconds = AddIsoDuration(0, values["backup_interval"]);
    if (!seconds || *seconds < 60) {
      bad.AddError("backup_interval", "must be an ISO 8601 duration of at least PT1M, e.g. P1D");
    } else {
      c.backup_interval = *seconds;
    }
  }
  if (values.count("retention_interval")) {
    const std::string& v = values["retention_interval"];
    auto seconds = AddIsoDuration(0, v);
    if (v == "none" || v == "0" || v.empty()) {
      c.retention_interval = 0;
    } else if (!seconds || *seconds < 60) {
      bad.AddError("retention_interval", "must be an ISO 8601 duration of at least PT1M, or none");
    } else {
      c.retention_interval = *seconds;
    }
  }
  // Durations in seconds, from ISO 8601 ("P7D").
  auto duration = [&](const char* name, const char* example, int64_t* out) {
    if (!values.count(name)) return;
    auto seconds = AddIsoDuration(0, values[name]);
    if (!seconds || *seconds < 0) {
      bad.AddError(name, std::string("must be an ISO 8601 duration, e.g. ") + example);
    } else {
      *out = *seconds;
    }
  };
  duration("request_due_warning", "P7D", &c.request_due_warning);
  duration("merge_revert_period", "P30D", &c.merge_revert_period);
  if (values.count("default_language")) {
    c.default_language = values["default_language"];
    if (!IsLanguageCode(c.default_language)) {
      bad.AddError("default_language", "must be a lower-case language code, e.g. fr");
    }
  }
  if (values.count("smtp_host")) c.smtp_host = values["smtp_host"];
  int_opt("smtp_port", 1, 65535, &c.smtp_port);
  if (values.count("smtp_tls")) {
    c.smtp_tls = values["smtp_tls"];
    if (c.smtp_tls != "starttls" && c.smtp_tls != "none") {
      bad.AddError("smtp_tls", "must be starttls or none");
    }
  }
  if (values.count("smtp_user")) c.smtp_user = values["smtp_user"];
  if (values.count("smtp_ca_file")) {
    c.smtp_ca_file = values["smtp_ca_file"];
    if (!c.smtp_ca_file.empty() && !std::ifstream(c.smtp_ca_file)) {
      bad.AddError("smtp_ca_file", "cannot be read");
    }
  }
  if (const char* password = std::getenv("GARDE_SMTP_PASSWORD")) c.smtp_password = password;
  if (values.count("smtp_password_file") && !values["smtp_password_file"].empty()) {
    std::ifstream in(values["smtp_password_file"]);
    if (!in || !std::getline(in, c.smtp_password)) {
      bad.AddError("smtp_password_file", "cannot be read");
    }
  }
  if (values.count("mail_from")) c.mail_from = values["mail_from"];
  if (!c.smtp_host.empty()) {
    const size_t at = c.mail_from.find('@');
    if (at == std::string::npos || at == 0 || at + 1 == c.mail_from.size() ||
        c.mail_from.find_first_of(" <>\r\n\",") != std::string::npos) {
      bad.AddError("mail_from",
                   "must be a plain address (notices@example.com) when smtp_host is set");
    }
  }
  // Durations, at least `minimum` seconds, kept in `unit`s of a second's fraction.
  for (auto [name, field, minimum, unit] :
       {std::tuple{"mail_max_age", &c.mail_max_age, int64_t{60}, int64_t{1}},
        std::tuple{"mail_first_retry", &c.mail_first_retry_ms, int64_t{1}, int64_t{1000}}}) {
    if (!values.count(name)) continue;
    auto seconds = AddIsoDuration(0, values[name]);
    if (!seconds || *seconds < minimum) {
      bad.AddError(name, "must be an ISO 8601 duration, e.g. PT30S");
    } else {
      *field = *seconds * unit;
    }
  }
  int_opt("test_clock_offset", -(int64_t{1} << 40), int64_t{1} << 40, &c.test_clock_offset);
  int_opt("backup_keep_last", 1, 100000, &c.backup_keep_last);
  int_opt("backup_keep_daily", 0, 100000, &c.backup_keep_daily);
  int_opt("backup_keep_weekly", 0, 100000, &c.backup_keep_weekly);
  int_opt("backup_keep_monthly", 0, 100000, &c.backup_keep_monthly);
  if (!bad.errors().empty()) return bad;
  return c;
}

}  // namespace garde

#include "garde/cli/commands.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <fcntl.h>
#include <sched.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <thread>

#include "garde/app/backups.h"
#include "garde/app/deployment.h"
#include "garde/app/importer.h"
#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/base/log.h"
#include "garde/cli/serve_command.h"
#include "garde/config/config.h"
#include "garde/crypto/keyring.h"
#include "garde/crypto/secret.h"
#include "garde/http/register_export.h"
#include "garde/policy/policy_set.h"
#include "garde/policy/register_lint.h"
#include "garde/store/migrate.h"
#include "garde/store/postgres_store.h"
#include "garde/store/sqlite_store.h"

namespace garde {
namespace {

constexpr const char* kSwitches[] = {"help",    "json",     "no-retire", "revoke-unconverted",
                                     "version", "progress", "dry-run"};

constexpr const char* kTopHelp = R"(garde — privacy compliance and consent management

Usage: garde <command> [options]

Commands:
  init              create the data directory, keyring and database; print the first admin key
  serve             run the HTTP service
  apikey create     create an API key with a role and bound activities; print it once
  apikey list       list API keys (never the keys themselves)
  apikey revoke     revoke an API key by id
  keys rotate       add a root-key version and re-wrap every data key under it
  keys rotate-master  add a master-key version, compute look-ups again, retire the old one
  keys status       show root-key versions and how many subjects each wraps
  keys migrate      move the root keys to another source: --to pkcs11 | passphrase | file
  audit verify      check the whole audit log offline against its signed checkpoints
  audit checkpoint  sign the current audit tree head and print it
  audit export      print audit entries (the exact hashed bytes), one per line
  receipt verify    check a consent receipt's signature
  lint              load and check the policy files
  register export   write the register of processing activities (json, csv, md, html)
  backup            make a sealed backup of the vault and the audit log while serving
  backup list|verify|prune   list, check or prune backups
  restore           restore a backup; erasures and withdrawals made since are re-applied
  retention run     apply the register's retention periods now (or --dry-run)
  import            load subjects from a spreadsheet's CSV with a column mapping

Every command takes --data-dir DIR and --policies DIR (or GARDE_DATA_DIR, GARDE_POLICIES,
or a config file given with --config FILE). `garde <command> --help` describes a command.

A keyring sealed under a passphrase is opened with the passphrase read from --passphrase-fd N
(a file descriptor), else from the systemd credential garde-keyring-passphrase
($CREDENTIALS_DIRECTORY, e.g. LoadCredentialEncrypted=), else at the terminal's prompt; never
from argv or the environment. `garde init` seals the new keyring when a passphrase is given.
)";

std::string OptionsHelp() {
  std::string out = "\nConfiguration (flag / environment / config-file key, default):\n";
  for (const auto& o : ConfigOptions()) {
    std::string flag = o.name;
    for (char& c : flag) c = c == '_' ? '-' : c;
    char line[256];
    std::snprintf(line, sizeof line, "  --%-24s %-30s %s (default %s)\n", flag.c_str(), o.env,
                  o.help, o.fallback);
    out += line;
  }
  out +=
      "  --config FILE              GARDE_CONFIG                   YAML file of the keys above\n";
  return out;
}

struct CommandHelp {
  const char* words;
  const char* text;
};

constexpr CommandHelp kHelp[] = {
    {"init", R"(Usage: garde init --data-dir DIR [--policies DIR]

Creates DIR (mode 0700) with a new keyring (keyring.json, mode 0600) and database (garde.db),
checks the policies, and creates a first API key with role admin. The key is printed alone on
the last line of stdout; it is shown only this once. Refuses to overwrite an existing keyring.
)"},
    {"serve",
     R"(Usage: garde serve --data-dir DIR [--policies DIR] [--listen HOST:PORT] [--config FILE]

Runs the HTTP service until SIGTERM or SIGINT, then stops accepting connections and lets
requests in progress finish. With --listen HOST:0 a free port is chosen. The first line on
stdout is "garde listening on http://HOST:PORT". Logs are JSON lines on stderr.
)"},
    {"apikey create",
     R"(Usage: garde apikey create --data-dir DIR --name NAME --role ROLE [--activity ID]...

Creates an API key. ROLE is one of the roles of roles.yaml (admin, officer, operator,
marketing, auditor). Each --activity binds the key to a processing activity of the register:
reads of personal data are allowed only for bound activities. The key is printed alone on the
last line of stdout, once; only a keyed hash of it is stored.
)"},
    {"apikey list", R"(Usage: garde apikey list --data-dir DIR [--json]

Lists API keys: id, name, role, activities, creation and revocation time.
)"},
    {"apikey revoke", R"(Usage: garde apikey revoke --data-dir DIR --id KEY_ID

Revokes an API key. Requests carrying it are refused from then on.
)"},
    {"keys rotate",
     R"(Usage: garde keys rotate --data-dir DIR [--batch N] [--no-retire] [--progress] [--incident ID]

Adds a root-key version to the keyring and makes it current, then re-wraps every subject's
data key under it, N per transaction (default 500). Fields are not re-encrypted. Safe to run
while `garde serve` is running (it picks up the new version within keyring_watch_seconds) and
safe to interrupt: run it again to resume. Once no subject uses an old version, that version's
key material is erased from the keyring (unless --no-retire).
--incident ID records the rotation, once done, among the containment steps of that incident
of the breach register (checked before anything is rotated).
)"},
    {"keys migrate",
     R"(Usage: garde keys migrate --data-dir DIR --to pkcs11|passphrase|file [--passphrase-fd N]

--to pkcs11: generates a root key on the PKCS#11 token (pkcs11_module, pkcs11_token, the PIN
from pkcs11_pin_file or the systemd credential garde-pkcs11-pin), makes it current, seals the
master key under it, re-wraps every data key through the token and retires the root keys the
file held: afterwards the data directory holds no usable key.
--to passphrase | file: rewrites the keyring sealed under a passphrase (argon2id, libsodium's
moderate limits) or, for development, in clear; from a token, a new root key is made in the
file and the token's keys are retired (destroyed on the token) once nothing uses them.
The passphrase comes from --passphrase-fd, the systemd credential garde-keyring-passphrase or
the terminal's prompt. Safe while `garde serve` runs, as `garde keys rotate` is.
)"},
    {"keys rotate-master",
     R"(Usage: garde keys rotate-master --data-dir DIR [--batch N] [--no-retire] [--revoke-unconverted] [--incident ID]

Makes a new master key current, keeping the old one beside it: look-ups (blind indexes,
API-key hashes, link tokens) read under both while every subject's blind-index digests are
computed again under the new master, N subjects per transaction (default 500). An API key is
hashed again the first time it is used. Then the old master is erased from the keyring; only
its link-token key stays, so that links already sent work until they expire (400 days at
most). Keys whose data cannot be computed again (suppression list, audit digests, signatures,
backups, the breach register) keep the sub-keys the first master gave them.
An API key not used since the rotation began keeps the old master: the command then stops
before retiring it and names such keys; run it again once they have been used, or with
--revoke-unconverted to revoke them. Safe while `garde serve` runs and safe to interrupt:
run it again to resume.
--incident ID records the rotation on that incident, as for `garde keys rotate`.
)"},
    {"keys status", R"(Usage: garde keys status --data-dir DIR [--json]

Shows each root-key version, whether it is current or retired, and how many subjects' data
keys it wraps.
)"},
    {"audit verify",
     R"(Usage: garde audit verify --data-dir DIR [--checkpoint FILE]... [--public-key B64 --origin O] [--progress] [--json]

Reads the audit log from the database file, recomputes every entry's RFC 6962 leaf hash and
the Merkle tree, checks the signature of every stored checkpoint and of each --checkpoint
FILE (a checkpoint saved elsewhere), and that each signed root matches the tree of its size.
Reports the first changed, missing, moved or inserted entry and any truncation. Exits 0 when
the log verifies, 1 otherwise. Without --public-key the key comes from the keyring.
)"},
    {"migrate", R"(Usage: garde migrate --from DIR --to postgresql://... [--policies DIR]

Copies the deployment of DIR (its SQLite files garde.db and audit.db) into an empty PostgreSQL
database. The audit log is verified where it is first (a log that fails is not copied); every
table is copied from one read snapshot of each file (a running service may go on serving),
then read back and compared (row counts and a digest of every row): nothing is committed
unless all agree; then the audit log is verified again on PostgreSQL against its signed
checkpoints. Exits 0 when all of it holds. Refuses a database that already holds a deployment. Writes made after the
snapshot are not in the copy: stop the service before the copy you switch to. Then serve with
--data-dir DIR --database URI (docs/scaling.md).
)"},
    {"audit checkpoint", R"(Usage: garde audit checkpoint --data-dir DIR

Signs the current audit tree head (unless the latest checkpoint covers it) and prints it.
)"},
    {"audit export", R"(Usage: garde audit export --data-dir DIR [--start N] [--end N]

Prints audit entries [start, end) one per line, byte for byte as hashed into the tree.
)"},
    {"receipt verify", R"(Usage: garde receipt verify FILE [--data-dir DIR | --public-key B64]

Checks the Ed25519 signature of a consent receipt (the JSON returned when a consent event is
recorded: {"receipt": {...}, "signature": {...}}) and that the signed bytes are the receipt
shown. Exits 0 when it verifies, 1 otherwise.
)"},
    {"register export",
     R"(Usage: garde register export [--policies DIR] [--format json|csv|md|html] [--lang en|fr] [--out FILE]

Writes the register of processing activities held in the policy files: JSON (default), CSV
(one row per activity, UTF-8 BOM), Markdown, or a printable HTML page laid out like the CNIL
register sheet (organisation first, one A4 sheet per activity). Lints first and refuses to
export a register with errors (exit 1). Without --out, writes to standard output.
)"},
    {"backup", R"(Usage: garde backup [create] --data-dir DIR [--backup-dir DIR] [--progress]

Copies the vault, then the audit log, while the service runs (each a consistent snapshot;
writers are not blocked), seals both into one file under a key derived from the keyring
(XChaCha20-Poly1305 secretstream), writes it under a temporary name, fsyncs and renames it,
then prunes by the keep policy (backup_keep_*). The keyring is not in the backup: keep it,
and tombstones.log, apart. Prints a summary, then the backup's path alone on the last line.
)"},
    {"backup list", R"(Usage: garde backup list --data-dir DIR [--backup-dir DIR] [--json]

Lists complete backups, newest first: id, time, subjects, audit log size, bytes. A file that
does not open with this keyring's backup key is listed with its error.
)"},
    {"backup verify", R"(Usage: garde backup verify --data-dir DIR [--from FILE|ID] [--json]

Decrypts a backup (default: the newest) into a scratch directory, checks each database's
digest and SQLite integrity, and verifies the audit log copy (entries, tree, signed
checkpoints) against the manifest. Exits 0 when it holds, 1 otherwise.
)"},
    {"backup prune", R"(Usage: garde backup prune --data-dir DIR [--backup-dir DIR]

Deletes the backups the keep policy does not keep: the newest backup_keep_last, and the
newest of each of the last backup_keep_daily days, backup_keep_weekly ISO weeks and
backup_keep_monthly months. Prints the ids removed.
)"},
    {"restore", R"(Usage: garde restore --data-dir DIR --from FILE|ID [--reason TEXT] [--json]

Restores a backup into DIR, which must hold the keyring (and tombstones.log) and must not be
served meanwhile. The vault comes from the backup (the one it replaces is kept aside as
garde.db.replaced-TIME). The audit log stays the live one when a consistency proof shows it
extends the backup's, so no entry is lost; otherwise the backup's log is used and the live
one kept aside as audit.db.forked-TIME — which needs --reason when a live log exists. Then
every erasure, withdrawal, objection and suppression of tombstones.log made after the
backup is re-applied, and the restore is audited (reason in restores.log).
)"},
    {"retention run",
     R"(Usage: garde retention run --data-dir DIR [--dry-run] [--at DATE] [--progress] [--json]

Applies every activity's retention (register.yaml: "DURATION after ANCHOR") to every subject:
fields no activity still justifies are erased, subjects none justifies are erased whole
(crypto-shredding, tombstone kept), held fields are destroyed when their legal hold ends. Also
raises consent.expired, request.due_soon and request.overdue events. Resumes a run a crash
interrupted; safe beside a running service. --dry-run only counts. --at evaluates the rules
at another time (RFC 3339 or YYYY-MM-DD; later than now only with --dry-run). Prints the
report: counts by activity and rule, never personal data.
)"},
    {"import",
     R"(Usage: garde import FILE.csv --mapping MAPPING.yaml --data-dir DIR [--dry-run] [--report OUT.csv] [--progress] [--json]

Loads subjects from a CSV file as spreadsheets export it (UTF-8 with or without BOM, or
Windows-1252; ',' or ';'; quoted cells; CRLF). The mapping (docs/policies.md, Imports) names
the schema field of each column, date formats and decimal separators, the kind and source of
every row, and whether a row whose unique field belongs to a subject updates it (on_existing:
update) or is reported as its duplicate (skip). Every row is validated and written like an API
create, and audited. Writes the per-row report (row, line, outcome, id, detail, errors) to
--report (default: FILE.csv with .report.csv appended) and prints the counts. Running the same import again
resumes it: no row creates a subject twice. --dry-run validates without writing.
)"},
    {"lint", R"(Usage: garde lint [--policies DIR] [--json]

Loads the policy files and reports every problem with file:line. Exits 1 when any is found.
)"},
};

const char* HelpFor(const std::string& words) {
  const std::string& w = words == "backup create"    ? std::string("backup")
                         : words == "backup restore" ? std::string("restore")
                                                     : words;
  for (const auto& h : kHelp) {
    if (w == h.words) return h.text;
  }
  return nullptr;
}

int Fail(const std::string& message) {
  std::cerr << "garde: " << message << "\n";
  return 1;
}

int FailStatus(const Status& s) {
  std::cerr << "garde: " << s.message() << "\n";
  for (const auto& e : s.errors()) std::cerr << "  " << e.field << ": " << e.message << "\n";
  return 1;
}

Result<Config> ConfigFrom(const CliArgs& args) { return ResolveConfig(args.ConfigFlags()); }

int RunInit(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto policies = LoadPolicies(cfg->policies_dir);
  if (!policies.ok()) return FailStatus(policies.status());
  Status s = Deployment::Initialise(cfg.value());
  if (!s.ok()) return FailStatus(s);
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  auto key = d.value()->api_keys().Create(*d.value()->policies().Current(), "admin", "admin", {});
  if (!key.ok()) return FailStatus(key.status());
  Caller cli{"cli", "admin", {}, "init", ""};
  d.value()->journal().Record(nullptr, cli, {"apikey.create", "", "", "ok", {}, 1}).IgnoreError();
  std::cout << "Initialised " << cfg->data_dir
            << (cfg->postgres() ? " (keyring.json; the data in PostgreSQL).\n"
                                : " (keyring.json, garde.db).\n")
            << "First admin API key (shown once; store it safely):\n"
            << key->token << std::endl;
  return 0;
}

int RunApiKeyCreate(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  if (args.Get("name").empty()) return Fail("--name is required");
  if (args.Get("role").empty()) return Fail("--role is required");
  auto key = d.value()->api_keys().Create(*d.value()->policies().Current(), args.Get("name"),
                                          args.Get("role"), args.All("activity"));
  if (!key.ok()) return FailStatus(key.status());
  Caller cli{"cli", "admin", {}, "apikey-create", ""};
  d.value()->journal().Record(nullptr, cli, {"apikey.create", "", "", "ok", {}, 1}).IgnoreError();
  std::cout << "Created API key " << key->row.id << " (role " << key->row.role << "). Shown once:\n"
            << key->token << std::endl;
  return 0;
}

int RunApiKeyList(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  auto keys = d.value()->api_keys().List();
  if (!keys.ok()) return FailStatus(keys.status());
  if (args.Has("json")) {
    JsonWriter w;
    w.BeginArray();
    for (const auto& k : keys.value()) {
      w.BeginObject().String("id", k.id).String("name", k.name).String("role", k.role);
      w.BeginArray("activities");
      for (const auto& a : k.activities) w.String(a);
      w.EndArray().String("created_at", FormatRfc3339(k.created_at));
      w.Key("revoked_at");
      if (k.revoked_at != 0) {
        w.String(FormatRfc3339(k.revoked_at));
      } else {
        w.Null();
      }
      w.EndObject();
    }
    w.EndArray();
    std::cout << w.str() << std::endl;
    return 0;
  }
  for (const auto& k : keys.value()) {
    std::cout << k.id << "  " << k.role << "  " << k.name << "  [" << JoinList(k.activities, ',')
              << "]  created " << FormatRfc3339(k.created_at)
              << (k.revoked_at != 0 ? "  revoked " + FormatRfc3339(k.revoked_at) : "") << "\n";
  }
  return 0;
}

int RunApiKeyRevoke(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  const std::string id = args.Get("id");
  if (id.empty()) return Fail("--id is required");
  Status s = d.value()->api_keys().Revoke(id);
  if (!s.ok()) return FailStatus(s);
  Caller cli{"cli", "admin", {}, "apikey-revoke", ""};
  d.value()->journal().Record(nullptr, cli, {"apikey.revoke", "", "", "ok", {id}, 1}).IgnoreError();
  std::cout << "Revoked " << id << std::endl;
  return 0;
}

int RunKeysStatus(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  auto usage = d.value()->rotation().Usage();
  if (!usage.ok()) return FailStatus(usage.status());
  const auto ring = d.value()->keys().Current();
  JsonWriter w;
  w.BeginObject().Int("master_version", ring->master_version()).Key("previous_master_version");
  if (ring->previous_master_version() != 0) {
    w.Int(ring->previous_master_version());
  } else {
    w.Null();
  }
  if (!args.Has("json")) {
    std::cout << "master key: version " << ring->master_version()
              << (ring->previous_master_version() != 0
                      ? " (rotating from version " +
                            std::to_string(ring->previous_master_version()) +
                            ": run `garde keys rotate-master` to finish)"
                      : "")
              << "\n";
  }
  w.Int("current", ring->current_version()).BeginArray("versions");
  for (const auto& [v, info] : ring->versions()) {
    const int64_t n = usage->count(v) ? usage->at(v) : 0;
    w.BeginObject()
        .Int("version", v)
        .String("created_at", info.created_at)
        .StringOrNull("retired_at", info.retired_at)
        .Int("subjects", n)
        .EndObject();
    if (!args.Has("json")) {
      std::cout << "version " << v << (v == ring->current_version() ? " (current)" : "")
                << (info.retired_at.empty() ? "" : " retired " + info.retired_at) << ": " << n
                << " subjects\n";
    }
  }
  w.EndArray().EndObject();
  if (args.Has("json")) std::cout << w.str() << std::endl;
  return 0;
}

// --batch N of the key rotations: subjects per transaction, 500 by default.
Result<size_t> BatchOf(const CliArgs& args) {
  int64_t batch = 500;
  try {
    batch = std::stoll(args.Get("batch", "500"));
  } catch (...) {
    return Unprocessable("--batch must be a number");
  }
  if (batch < 1 || batch > 100000) return Unprocessable("--batch must be between 1 and 100000");
  return static_cast<size_t>(batch);
}

// A progress bar on stderr when `show` (a terminal, or --progress); nothing in logs.
std::function<void(int64_t, int64_t)> ProgressBar(bool show, const char* unit) {
  return [show, unit](int64_t done, int64_t total) {
    if (!show || total <= 0) return;
    const int width = 40;
    const int filled = static_cast<int>(std::min<int64_t>(width, done * width / total));
    std::cerr << "\r  [" << std::string(static_cast<size_t>(filled), '#')
              << std::string(static_cast<size_t>(width - filled), ' ') << "] " << done << "/"
              << total << " " << unit << std::flush;
  };
}

// Re-wraps every data key under the current root version (beside a running service), then
// retires the versions nothing uses any more. Shared by `keys rotate` and `keys migrate`.
int RewrapAndRetire(const CliArgs& args, const Config& cfg, uint32_t current, const char* action) {
  auto d = Deployment::Open(cfg);
  if (!d.ok()) return FailStatus(d.status());
  auto batch = BatchOf(args);
  if (!batch.ok()) return Fail(batch.status().message());
  auto& rotation = d.value()->rotation();
  // The bar's whole: the data keys under another version when the rotation starts.
  int64_t to_rewrap = 0;
  if (auto before = rotation.Usage(); before.ok()) {
    for (const auto& [v, n] : before.value()) to_rewrap += v == current ? 0 : n;
  }
  const bool show = isatty(STDERR_FILENO) || args.Has("progress");
  auto bar = ProgressBar(show, "data keys");
  int64_t done_before = 0;
  auto progress = [&](int64_t done) { bar(std::min(done_before + done, to_rewrap), to_rewrap); };
  auto done = rotation.RewrapAll(batch.value(), progress);
  if (!done.ok()) return FailStatus(done.status());
  int64_t total = done.value();
  // A running service may still write under the old version until it notices the new
  // keyring; wait past its watch interval, then sweep until a pass finds nothing.
  const int grace = cfg.keyring_watch_seconds * 2 + 1;
  for (int pass = 0; pass < 10; ++pass) {
    std::this_thread::sleep_for(std::chrono::seconds(grace));
    done_before = total;
    auto more = rotation.RewrapAll(batch.value(), progress);
    if (!more.ok()) return FailStatus(more.status());
    total += more.value();
    if (more.value() == 0) break;
  }
  if (show && to_rewrap > 0) std::cerr << "\n";
  auto usage = rotation.Usage();
  if (!usage.ok()) return FailStatus(usage.status());
  std::cout << "Root key version " << current << " is current; re-wrapped " << total
            << " data keys.\n";
  if (!args.Has("no-retire")) {
    const auto ring = d.value()->keys().Current();
    for (const auto& [v, info] : ring->versions()) {
      if (v == current || !info.retired_at.empty()) continue;
      if (usage->count(v) != 0 && usage->at(v) > 0) {
        std::cout << "Version " << v << " still wraps " << usage->at(v)
                  << " data keys; not retired. Run `garde keys rotate` again later.\n";
        continue;
      }
      Status s = Keyring::Retire(cfg.keyring_path(), v);
      if (!s.ok()) return FailStatus(s);
      std::cout << "Retired version " << v
                << (info.token_key.empty() ? " (key material erased).\n"
                                           : " (destroyed on the token).\n");
    }
  }
  Caller cli{"cli", "admin", {}, action, ""};
  d.value()->journal().Record(nullptr, cli, {"keys.rotate", "", "", "ok", {}, total}).IgnoreError();
  return 0;
}

int RunImport(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  if (args.words.size() != 2)
    return Fail("name one CSV file: garde import FILE.csv --mapping M.yaml");
  if (args.Get("mapping").empty()) return Fail("--mapping is required");
  const std::string file = args.words[1];
  auto bytes = FileSource(file);  // read a chunk at a time, twice: never held whole
  if (!bytes.ok()) return Fail("cannot read " + file);
  // The writer keeps 256 MiB of pages unless configured: a window of 2 048 rows touches
  // index pages all over a large vault (1.2x the rows a second, docs/benchmarks.md).
  if (cfg.value().db_writer_cache_mib == 0) cfg.value().db_writer_cache_mib = 256;
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  auto mapping = LoadImportMapping(args.Get("mapping"), d.value()->policies().Current()->schema());
  if (!mapping.ok()) return FailStatus(mapping.status());
  const std::string report_path = args.Get("report", file + ".report.csv");
  std::ofstream report(report_path, std::ios::binary | std::ios::trunc);
  if (!report) return Fail("cannot write " + report_path);
  report << ImportReportCsvHeader();
  ImportOptions options;
  options.dry_run = args.Has("dry-run");
  const bool show = isatty(STDERR_FILENO) || args.Has("progress");
  options.progress = ProgressBar(show, "rows");
  Importer importer(*d.value());
  Caller cli{"cli", "operator", {}, "import", ""};  // writes as the API's operator role
  auto summary = importer.Run(cli, mapping.value(), *bytes.value(), options,
                              [&](const ImportRowResult& r) { report << ImportReportCsvLine(r); });
  if (show) std::cerr << "\n";
  if (!summary.ok()) return FailStatus(summary.status());
  report.close();
  const auto& s = summary.value();
  if (args.Has("json")) {
    JsonWriter w;
    w.BeginObject()
        .String("id", s.id)
        .Bool("dry_run", s.dry_run)
        .Int("rows", s.rows)
        .Int(s.dry_run ? "valid" : "created", s.created)
        .Int("updated", s.updated)
        .Int("duplicates", s.duplicates)
        .Int("invalid", s.invalid)
        .Int("failed", s.failed)
        .Int("resumed", s.resumed)
        .Int("likely_duplicates", s.likely_duplicates)
        .String("report", report_path)
        .EndObject();
    std::cout << w.str() << std::endl;
  } else {
    std::cout << "Import " << s.id << (s.dry_run ? " (dry run)" : "") << ": " << s.rows << " rows; "
              << s.created << (s.dry_run ? " valid, " : " created, ") << s.updated << " updated, "
              << s.duplicates << " duplicates, " << s.invalid << " invalid, " << s.failed
              << " failed"
              << (s.resumed > 0 ? ", " + std::to_string(s.resumed) + " done by an earlier run" : "")
              << (s.likely_duplicates > 0 ? "; " + std::to_string(s.likely_duplicates) +
                                                " likely duplicates of customers already there"
                                          : "")
              << ".\nReport: " << report_path << "\n";
  }
  return s.invalid + s.failed > 0 ? 1 : 0;
}

int RunKeysMigrate(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  const std::string to = args.Get("to", "");
  if (to != "passphrase" && to != "file" && to != "pkcs11") {
    return Fail("--to must be pkcs11, passphrase or file");
  }
  const std::string path = cfg->keyring_path();
  if (to == "pkcs11") {
    if (!HasKeyringToken()) return Fail("--to pkcs11 needs pkcs11_module (and the token's PIN)");
    auto added = Keyring::AddVersion(path, RootHome::kToken);
    if (!added.ok()) return FailStatus(added.status());
    std::cerr << "Root-key version " << added.value() << " is on the PKCS#11 token; re-wrapping "
              << "data keys through it...\n";
    const int rc = RewrapAndRetire(args, cfg.value(), added.value(), "keys-migrate");
    if (rc != 0) return rc;
    // No key is left in the file once every earlier version is retired: drop the passphrase
    // seal, which then protects nothing.
    auto form = Keyring::Form(path);
    if (form.ok() && form.value() == KeyringForm::kSealed) {
      auto ring = Keyring::Load(path);
      bool file_keys = false;
      if (ring.ok()) {
        for (const auto& [v, info] : ring.value()->versions()) {
          file_keys |= info.retired_at.empty() && info.token_key.empty();
        }
      }
      if (ring.ok() && !file_keys) {
        Status s = Keyring::Reseal(path, false);
        if (!s.ok()) return FailStatus(s);
      }
    }
    std::cerr << "The root keys are on the token; the data directory holds none.\n";
    return 0;
  }
  Status s = Keyring::Reseal(path, to == "passphrase");
  if (!s.ok()) return FailStatus(s);
  auto ring = Keyring::Load(path);
  if (!ring.ok()) return FailStatus(ring.status());
  if (ring.value()->TokenKey(ring.value()->current_version()) != nullptr) {
    auto added = Keyring::AddVersion(path, RootHome::kFile);
    if (!added.ok()) return FailStatus(added.status());
    std::cerr << "Root-key version " << added.value() << " is in the keyring file; re-wrapping "
              << "data keys...\n";
    const int rc = RewrapAndRetire(args, cfg.value(), added.value(), "keys-migrate");
    if (rc != 0) return rc;
  }
  std::cerr << (to == "passphrase" ? "The keyring is sealed under the passphrase.\n"
                                   : "The keyring is in clear: development only.\n");
  return 0;
}

// Computes again every look-up digest still under another master: a pass now, then passes
// after a running service's watch interval until one finds nothing. Returns the digests
// written, or -1 after printing the failure.
int64_t ReindexUnderCurrentMaster(Deployment& d, size_t batch, int grace) {
  int64_t digests = 0;
  for (int pass = 0; pass < 10; ++pass) {
    if (pass > 0) std::this_thread::sleep_for(std::chrono::seconds(grace));
    auto done = d.vault().ReindexAll(batch, [digests](int64_t n) {
      if (isatty(STDERR_FILENO)) std::cerr << "\r  computed again " << digests + n << std::flush;
    });
    if (!done.ok()) {
      FailStatus(done.status());
      return -1;
    }
    digests += done.value();
    if (pass > 0 && done.value() == 0) break;
  }
  return digests;
}

// The host's own commands act as an admin key would (keys.manage).
Caller CliCaller(const char* request) { return Caller{"cli", "admin", {}, request, ""}; }

// `--incident ID` of the key commands: the incident must exist before anything is rotated.
Status CheckIncident(const CliArgs& args, const Config& cfg) {
  if (args.Get("incident").empty()) return Status::Ok();
  GARDE_ASSIGN_OR_RETURN(auto d, Deployment::Open(cfg));
  return d->breaches().CheckContainment(CliCaller("keys-rotate"), args.Get("incident"));
}

// Once the rotation is done: the step among the incident's containment.
int RecordOnIncident(const CliArgs& args, const Config& cfg, const std::string& action) {
  if (args.Get("incident").empty()) return 0;
  auto d = Deployment::Open(cfg);
  if (!d.ok()) return FailStatus(d.status());
  auto recorded = d.value()->breaches().RecordContainment(CliCaller("keys-rotate"),
                                                          args.Get("incident"), action);
  if (!recorded.ok()) return FailStatus(recorded.status());
  std::cout << "Recorded on incident " << args.Get("incident") << ": " << action << ".\n";
  return 0;
}

int RunKeysRotateMaster(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  if (Status s = CheckIncident(args, cfg.value()); !s.ok()) return FailStatus(s);
  auto batch = BatchOf(args);
  if (!batch.ok()) return Fail(batch.status().message());
  const std::string path = cfg->keyring_path();
  auto ring = Keyring::Load(path);
  if (!ring.ok()) return FailStatus(ring.status());
  if (ring.value()->previous_master_version() != 0) {
    std::cerr << "Resuming the rotation to master-key version " << ring.value()->master_version()
              << ".\n";
  } else {
    auto added = Keyring::AddMaster(path);
    if (!added.ok()) return FailStatus(added.status());
    std::cerr << "Master-key version " << added.value() << " is current; the previous one is "
              << "read beside it.\n";
  }
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  const auto keys = d.value()->lookup().Current();
  const uint32_t current = keys->master, previous = keys->previous_master;
  // A running service looks up under the old master alone until it reloads the keyring: no
  // digest moves before it reads both.
  const int grace = cfg->keyring_watch_seconds * 2 + 1;
  std::this_thread::sleep_for(std::chrono::seconds(grace));
  const int64_t digests = ReindexUnderCurrentMaster(*d.value(), batch.value(), grace);
  if (digests < 0) return 1;
  std::cerr << "\n";
  Caller cli{"cli", "admin", {}, "keys-rotate-master", ""};
  d.value()
      ->journal()
      .Record(nullptr, cli, {"keys.rotate-master", "", "", "ok", {}, digests})
      .IgnoreError();
  int64_t stale = 0;
  Status counted = d.value()->store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto n, tx.CountStaleIndexes(current));
    stale = n;
    return Status::Ok();
  });
  if (!counted.ok()) return FailStatus(counted);
  std::cout << "Master-key version " << current << " is current; " << digests
            << " look-up digests computed again.\n";
  if (stale > 0) {
    std::cout << stale << " look-up digests are still under an older master (a writer that "
              << "has not reloaded the keyring?); not retired. Run the command again.\n";
    return 0;
  }
  auto api_keys = d.value()->api_keys().List();
  if (!api_keys.ok()) return FailStatus(api_keys.status());
  std::vector<ApiKeyRow> unconverted;
  for (const auto& k : api_keys.value()) {
    if (k.revoked_at == 0 && k.hash_master != current) unconverted.push_back(k);
  }
  if (!unconverted.empty() && !args.Has("revoke-unconverted")) {
    std::cout << unconverted.size() << " API keys have not been used since the rotation "
              << "began and are still hashed under master-key version " << previous << ":\n";
    for (const auto& k : unconverted) std::cout << "  " << k.id << "  " << k.name << "\n";
    std::cout << "Not retired: run the command again once they have been used, or with "
              << "--revoke-unconverted.\n";
    return 0;
  }
  for (const auto& k : unconverted) {
    Status s = d.value()->api_keys().Revoke(k.id);
    if (!s.ok()) return FailStatus(s);
    d.value()
        ->journal()
        .Record(nullptr, cli, {"apikey.revoke", "", "", "ok", {k.id}, 1})
        .IgnoreError();
    std::cout << "Revoked API key " << k.id << " (" << k.name << "): not used since the "
              << "rotation began.\n";
  }
  if (args.Has("no-retire") || previous == 0) return 0;
  const int64_t links_until = d.value()->clock().Now() + kLongestLinkSeconds;
  Status retired = Keyring::RetireMaster(path, links_until);
  if (!retired.ok()) return FailStatus(retired);
  std::cout << "Retired master-key version " << previous << " (erased); links sent before the "
            << "rotation stay valid until they expire, at the latest " << FormatRfc3339(links_until)
            << ".\n";
  return RecordOnIncident(args, cfg.value(),
                          "rotated the master key to version " + std::to_string(current) +
                              " and erased version " + std::to_string(previous) +
                              " (garde keys rotate-master)");
}

int RunKeysRotate(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  if (Status s = CheckIncident(args, cfg.value()); !s.ok()) return FailStatus(s);
  auto added = Keyring::AddVersion(cfg->keyring_path());
  if (!added.ok()) return FailStatus(added.status());
  std::cerr << "Added root-key version " << added.value() << "; re-wrapping data keys...\n";
  const int rc = RewrapAndRetire(args, cfg.value(), added.value(), "keys-rotate");
  if (rc != 0) return rc;
  return RecordOnIncident(args, cfg.value(),
                          "rotated the root key to version " + std::to_string(added.value()) +
                              " and re-wrapped every data key under it (garde keys rotate)");
}

int RunAuditCheckpoint(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  auto head = d.value()->audit().Checkpoint();
  if (!head.ok()) return FailStatus(head.status());
  std::cout << head->note;
  return 0;
}

int RunAuditExport(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  uint64_t start = 0, end = UINT64_MAX;
  try {
    start = std::stoull(args.Get("start", "0"));
    if (!args.Get("end").empty()) end = std::stoull(args.Get("end"));
  } catch (...) {
    return Fail("--start and --end must be numbers");
  }
  Status s = d.value()->audit().Scan(start, end, [](const AuditRow& r) {
    std::cout << r.entry << '\n';
    return true;
  });
  std::cout.flush();
  return s.ok() ? 0 : FailStatus(s);
}

int RunMigrate(const CliArgs& args) {
  auto flags = args.ConfigFlags();
  if (!args.Get("from").empty()) flags["data-dir"] = args.Get("from");
  auto cfg = ResolveConfig(flags);
  if (!cfg.ok()) return FailStatus(cfg.status());
  const std::string to = args.Get("to");
  if (to.rfind("postgresql://", 0) != 0 && to.rfind("postgres://", 0) != 0) {
    return Fail("--to must be a postgresql:// URI");
  }
  if (cfg->postgres()) return Fail("the source is the SQLite files of --from: unset database");
  for (const std::string& f : {cfg->database_path(), cfg->audit_database_path()}) {
    if (!std::filesystem::exists(f)) return Fail("no " + f + ": --from names a data directory");
  }
  auto ring = Keyring::Load(cfg->keyring_path());
  if (!ring.ok()) return FailStatus(ring.status());
  CheckpointSigner signer(ring.value()->Derive(KeyContext::kSigning), cfg->audit_origin);
  {
    // A log that does not verify where it is is not copied.
    SqliteOptions options;
    options.path = cfg->audit_database_path();
    options.schema = SqliteSchema::kAudit;
    auto source = SqliteStore::Open(options);
    if (!source.ok()) return FailStatus(source.status());
    AuditVerification before =
        VerifyAuditLog(*source.value(), signer.public_key(), signer.origin(), {}, nullptr);
    if (!before.ok()) {
      std::cout << "audit log FAILED verification in " << cfg->data_dir << "; nothing copied:\n";
      for (const auto& p : before.problems) std::cout << "  " << p << "\n";
      return 1;
    }
  }
  const bool show = args.Has("progress") || isatty(STDERR_FILENO);
  auto copies = CopySqliteToPostgres(cfg->database_path(), cfg->audit_database_path(), to,
                                     [&](const std::string& table, int64_t rows) {
                                       if (show)
                                         std::cerr << "\r" << table << ": " << rows << " rows   "
                                                   << std::flush;
                                     });
  if (show) std::cerr << "\n";
  if (!copies.ok()) return FailStatus(copies.status());
  int64_t rows = 0;
  for (const auto& c : copies.value()) {
    std::cout << c.table << ": " << c.rows << " rows, digest " << c.digest.substr(0, 16) << "\n";
    rows += c.rows;
  }
  auto store = PostgresStore::Open({to, true, 2, PostgresOptions::kAuditWriteLock, false});
  if (!store.ok()) return FailStatus(store.status());
  AuditVerification report =
      VerifyAuditLog(*store.value(), signer.public_key(), signer.origin(), {}, nullptr);
  if (!report.ok()) {
    std::cout << "audit log FAILED verification on PostgreSQL:\n";
    for (const auto& p : report.problems) std::cout << "  " << p << "\n";
    return 1;
  }
  std::cout << "copied " << copies.value().size() << " tables, " << rows
            << " rows; counts and digests agree; audit log verified on PostgreSQL: "
            << report.entries << " entries, " << report.checkpoints << " signed checkpoints\n"
            << "next: garde serve --data-dir " << cfg->data_dir << " --database '<the URI>'\n";
  return 0;
}

int RunAuditVerify(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  PublicKey key{};
  std::string origin = args.Get("origin");
  std::unique_ptr<CheckpointSigner> signer;
  if (!args.Get("public-key").empty()) {
    auto raw = Base64Decode(args.Get("public-key"));
    if (!raw || raw->size() != key.size()) return Fail("--public-key must be 32 bytes, base64");
    std::copy(raw->begin(), raw->end(), key.begin());
    if (origin.empty()) return Fail("--origin is required with --public-key");
  } else {
    auto ring = Keyring::Load(cfg->keyring_path());
    if (!ring.ok()) return FailStatus(ring.status());
    signer = std::make_unique<CheckpointSigner>(ring.value()->Derive(KeyContext::kSigning),
                                                cfg->audit_origin);
    key = signer->public_key();
    if (origin.empty()) origin = signer->origin();
  }
  std::vector<std::string> notes;
  for (const auto& file : args.All("checkpoint")) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return Fail("cannot read " + file);
    std::stringstream ss;
    ss << in.rdbuf();
    notes.push_back(ss.str());
  }
  Result<std::unique_ptr<Store>> store = [&]() -> Result<std::unique_ptr<Store>> {
    if (cfg->postgres()) {
      auto pg =
          PostgresStore::Open({cfg->database, true, 2, PostgresOptions::kAuditWriteLock, false});
      if (!pg.ok()) return pg.status();
      return std::unique_ptr<Store>(std::move(pg).value());
    }
    SqliteOptions options;
    options.path = cfg->audit_database_path();
    options.schema = SqliteSchema::kAudit;
    GARDE_ASSIGN_OR_RETURN(auto file, SqliteStore::Open(options));
    return std::unique_ptr<Store>(std::move(file));
  }();
  if (!store.ok()) return FailStatus(store.status());
  const bool show = args.Has("progress") || isatty(STDERR_FILENO);
  int64_t entries = 0;
  store.value()
      ->Read([&](ReadTx& tx) -> Status {
        auto size = tx.AuditSize();
        if (size.ok()) entries = static_cast<int64_t>(size.value());
        return Status::Ok();
      })
      .IgnoreError();
  auto bar = ProgressBar(show, "entries");
  const auto started = std::chrono::steady_clock::now();
  AuditVerification report = VerifyAuditLog(*store.value(), key, origin, notes, [&](uint64_t n) {
    bar(std::min(static_cast<int64_t>(n), entries), entries);
  });
  if (show) std::cerr << "\n";
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (args.Has("json")) {
    JsonWriter w;
    w.BeginObject()
        .Bool("ok", report.ok())
        .Int("entries", static_cast<int64_t>(report.entries))
        .Int("checkpoints", static_cast<int64_t>(report.checkpoints))
        .Number("seconds", secs)
        .BeginArray("problems");
    for (const auto& p : report.problems) w.String(p);
    w.EndArray().EndObject();
    std::cout << w.str() << std::endl;
  } else if (report.ok()) {
    std::cout << "audit log verified: " << report.entries << " entries, " << report.checkpoints
              << " signed checkpoints (" << origin << "), " << secs << " s\n";
  } else {
    std::cout << "audit log FAILED verification (" << report.entries << " entries read):\n";
    for (const auto& p : report.problems) std::cout << "  " << p << "\n";
  }
  return report.ok() ? 0 : 1;
}

KeepPolicy KeepPolicyOf(const Config& c) {
  return {c.backup_keep_last, c.backup_keep_daily, c.backup_keep_weekly, c.backup_keep_monthly};
}

std::string BackupLine(const BackupInfo& b) {
  return b.id + "  " + FormatRfc3339(b.created_at) + "  " + std::to_string(b.subjects) +
         " subjects  " + std::to_string(b.audit_size) + " audit entries  " +
         std::to_string(b.bytes) + " bytes";
}

// Backups and sweeps run beside a service that answers requests: like serve's own scheduled
// runs, they take only the CPU time it leaves (SCHED_IDLE: a request's thread preempts them at
// once, where nice 10 still cost the reads' p99 about 1 ms a wake-up; docs/benchmarks.md).
void GiveWayToTheService() {
  sched_param none{};
  ::sched_setscheduler(0, SCHED_IDLE, &none);
  // The disk too, where the I/O scheduler honours it (ioprio class idle).
  constexpr int kIoprioWhoProcess = 1, kIoprioClassIdle = 3, kIoprioClassShift = 13;
  ::syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, kIoprioClassIdle << kIoprioClassShift);
}

int RunBackupCreate(const CliArgs& args) {
  GiveWayToTheService();
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  Backups backups(*d.value(), cfg->backup_directory());
  const bool show = isatty(STDERR_FILENO) || args.Has("progress");
  auto bar = ProgressBar(show, "KiB sealed");
  auto made = backups.Create([&](int64_t done, int64_t total) { bar(done >> 10, total >> 10); });
  if (show) std::cerr << "\n";
  if (!made.ok()) return FailStatus(made.status());
  auto pruned = backups.Prune(KeepPolicyOf(cfg.value()));
  if (!pruned.ok()) return FailStatus(pruned.status());
  std::cout << "backup " << BackupLine(made.value()) << "\n";
  for (const auto& id : pruned.value()) std::cout << "pruned " << id << "\n";
  std::cout << made->path << std::endl;
  return 0;
}

int RunBackupList(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto listed = ListBackups(cfg.value(), cfg->backup_directory());
  if (!listed.ok()) return FailStatus(listed.status());
  if (args.Has("json")) {
    JsonWriter w;
    w.BeginArray();
    for (const auto& b : listed.value()) {
      w.BeginObject().String("id", b.info.id).String("path", b.info.path);
      if (b.error.empty()) {
        w.String("created_at", FormatRfc3339(b.info.created_at))
            .Int("subjects", b.info.subjects)
            .Int("audit_size", static_cast<int64_t>(b.info.audit_size))
            .Int("bytes", b.info.bytes);
      } else {
        w.String("error", b.error);
      }
      w.EndObject();
    }
    w.EndArray();
    std::cout << w.str() << std::endl;
    return 0;
  }
  for (const auto& b : listed.value()) {
    std::cout << (b.error.empty() ? BackupLine(b.info) : b.info.path + "  UNREADABLE: " + b.error)
              << "\n";
  }
  return 0;
}

// --from names a file, or the id of a backup in the backup directory; absent: the newest.
Result<std::string> BackupPath(const Config& cfg, const std::string& from) {
  if (!from.empty() && std::filesystem::is_regular_file(from)) return from;
  GARDE_ASSIGN_OR_RETURN(auto listed, ListBackups(cfg, cfg.backup_directory()));
  for (const auto& b : listed) {
    if (b.error.empty() && (from.empty() || b.info.id == from)) return b.info.path;
  }
  return NotFound(from.empty() ? "no backup in " + cfg.backup_directory()
                               : "no backup " + from + " (neither a file nor an id in " +
                                     cfg.backup_directory() + ")");
}

int RunBackupVerify(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto path = BackupPath(cfg.value(), args.Get("from"));
  if (!path.ok()) return FailStatus(path.status());
  auto check = VerifyBackup(cfg.value(), path.value());
  if (!check.ok()) return FailStatus(check.status());
  if (args.Has("json")) {
    JsonWriter w;
    w.BeginObject()
        .Bool("ok", check->ok())
        .String("id", check->info.id)
        .String("path", path.value())
        .BeginArray("problems");
    for (const auto& p : check->problems) w.String(p);
    w.EndArray().EndObject();
    std::cout << w.str() << std::endl;
  } else if (check->ok()) {
    std::cout << "backup verified: " << BackupLine(check->info) << "\n";
  } else {
    std::cout << "backup FAILED verification (" << path.value() << "):\n";
    for (const auto& p : check->problems) std::cout << "  " << p << "\n";
  }
  return check->ok() ? 0 : 1;
}

int RunBackupPrune(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  auto pruned = Backups(*d.value(), cfg->backup_directory()).Prune(KeepPolicyOf(cfg.value()));
  if (!pruned.ok()) return FailStatus(pruned.status());
  for (const auto& id : pruned.value()) std::cout << "pruned " << id << "\n";
  return 0;
}

int RunRestore(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  if (args.Get("from").empty()) return Fail("--from FILE|ID is required");
  auto path = BackupPath(cfg.value(), args.Get("from"));
  if (!path.ok()) return FailStatus(path.status());
  RestoreReport report;
  Status s = RestoreBackup(cfg.value(), path.value(), args.Get("reason"), &report);
  if (!s.ok()) return FailStatus(s);
  if (args.Has("json")) {
    JsonWriter w;
    w.BeginObject()
        .String("backup", report.backup.id)
        .String("audit", report.audit_consistent ? "consistent" : "forked")
        .Int("backup_audit_size", static_cast<int64_t>(report.backup.audit_size))
        .Int("live_audit_size", static_cast<int64_t>(report.live_audit_size))
        .Int("reapplied", static_cast<int64_t>(report.reapplied))
        .Int("reindexed", report.reindexed)
        .Int("api_keys_under_old_master", report.keys_under_old_master)
        .String("forked_log", report.forked_log)
        .String("replaced_vault", report.replaced_vault)
        .EndObject();
    std::cout << w.str() << std::endl;
    return 0;
  }
  std::cout << "restored " << BackupLine(report.backup) << "\n";
  if (report.audit_consistent) {
    std::cout << "audit log: the live log (" << report.live_audit_size
              << " entries) extends the backup's; kept\n";
  } else {
    std::cout << "audit log: continues from the backup's " << report.backup.audit_size
              << " entries (a fork; recorded in restores.log)"
              << (report.forked_log.empty() ? "" : ", live log kept as " + report.forked_log)
              << "\n";
  }
  if (!report.replaced_vault.empty()) {
    std::cout << "previous vault kept as " << report.replaced_vault << " (delete it when done)\n";
  }
  std::cout << "re-applied the erasures and withdrawals of " << report.reapplied
            << " subjects from tombstones.log\n";
  if (report.reindexed > 0) {
    std::cout << "computed " << report.reindexed << " look-up digests again under the current "
              << "master key (the backup predates a master-key rotation)\n";
  }
  if (report.keys_under_old_master > 0) {
    std::cout << report.keys_under_old_master << " API keys of the backup are hashed under an "
              << "earlier master key and stop working once it is retired: issue them again "
              << "(garde apikey create)\n";
  }
  return 0;
}

int RunRetention(const CliArgs& args) {
  GiveWayToTheService();
  auto cfg = ConfigFrom(args);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto d = Deployment::Open(cfg.value());
  if (!d.ok()) return FailStatus(d.status());
  RetentionRunOptions options;
  options.dry_run = args.Has("dry-run");
  if (const std::string at = args.Get("at"); !at.empty()) {
    std::optional<int64_t> t = ParseRfc3339(at);
    if (!t) {
      if (auto date = ParseIsoDate(at)) t = DaysFromCivil(*date) * 86400;
    }
    if (!t) return Fail("--at must be an RFC 3339 time or a YYYY-MM-DD date");
    if (*t > d.value()->clock().Now() && !options.dry_run) {
      return Fail("--at later than now erases data before its time: only with --dry-run");
    }
    options.at = *t;
  }
  const bool show = isatty(STDERR_FILENO) || args.Has("progress");
  options.progress = ProgressBar(show, "subjects");
  auto run = d.value()->retention().Run(options);
  if (show) std::cerr << "\n";
  if (!run.ok()) return FailStatus(run.status());
  if (args.Has("json")) {
    std::cout << "{\"id\":\"" << run->id << "\",\"dry_run\":" << (run->dry_run ? "true" : "false")
              << ",\"at\":\"" << FormatRfc3339(run->at) << "\",\"report\":" << run->report << "}"
              << std::endl;
  } else {
    std::cout << (run->dry_run ? "retention dry run " : "retention run ") << run->id << " at "
              << FormatRfc3339(run->at) << "\n"
              << run->report << std::endl;
  }
  return 0;
}

int RunReceiptVerify(const CliArgs& args) {
  if (args.words.size() != 3) return Fail("name the receipt file: garde receipt verify FILE");
  std::ifstream in(args.words[2], std::ios::binary);
  if (!in) return Fail("cannot read " + args.words[2]);
  std::stringstream ss;
  ss << in.rdbuf();
  PublicKey key{};
  if (!args.Get("public-key").empty()) {
    auto raw = Base64Decode(args.Get("public-key"));
    if (!raw || raw->size() != key.size()) return Fail("--public-key must be 32 bytes, base64");
    std::copy(raw->begin(), raw->end(), key.begin());
  } else {
    auto cfg = ConfigFrom(args);
    if (!cfg.ok()) return FailStatus(cfg.status());
    auto ring = Keyring::Load(cfg->keyring_path());
    if (!ring.ok()) return FailStatus(ring.status());
    key = CheckpointSigner(ring.value()->Derive(KeyContext::kSigning), "").public_key();
  }
  try {
    Poco::JSON::Parser parser;
    auto doc = parser.parse(ss.str()).extract<Poco::JSON::Object::Ptr>();
    auto sig = doc->getObject("signature");
    auto receipt = doc->getObject("receipt");
    if (!sig || !receipt) return Fail("not a consent receipt");
    auto signed_bytes = Base64UrlDecode(sig->getValue<std::string>("signed"));
    auto value = Base64Decode(sig->getValue<std::string>("value"));
    if (!signed_bytes || !value || value->size() != crypto_sign_BYTES) {
      return Fail("malformed signature");
    }
    if (crypto_sign_verify_detached(value->data(), signed_bytes->data(), signed_bytes->size(),
                                    key.data()) != 0) {
      std::cout << "receipt signature does NOT verify\n";
      return 1;
    }
    // The signed bytes must be the receipt shown, member for member.
    auto signed_doc =
        parser.parse(std::string(AsStringView(*signed_bytes))).extract<Poco::JSON::Object::Ptr>();
    std::ostringstream a, b;
    signed_doc->stringify(a);
    receipt->stringify(b);
    if (a.str() != b.str()) {
      std::cout << "receipt signature verifies, but the receipt shown differs from what was "
                   "signed\n";
      return 1;
    }
    std::cout << "receipt " << receipt->optValue<std::string>("record_id", "?") << " verifies ("
              << receipt->optValue<std::string>("event", "?") << " "
              << receipt->optValue<std::string>("purpose", "?") << ")\n";
    return 0;
  } catch (const Poco::Exception& e) {
    return Fail("not a consent receipt: " + e.displayText());
  }
}

int RunLint(const CliArgs& args) {
  std::map<std::string, std::string> flags = args.ConfigFlags();
  flags.emplace("data-dir", ".");  // lint needs no data directory
  auto cfg = ResolveConfig(flags);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto policies = LoadPolicies(cfg->policies_dir);
  // Load problems first (each one an error), then the register rules.
  std::vector<LintFinding> findings;
  for (const auto& e : policies.status().errors()) {
    findings.push_back({"error", "policy-file", e.field, e.message, "fix the file"});
  }
  if (policies.ok()) findings = LintRegister(*policies.value());
  // Import mappings (imports/*.yaml) name schema fields: checked against this schema.
  const std::filesystem::path imports = cfg->policies_dir + "/imports";
  if (policies.ok() && std::filesystem::is_directory(imports)) {
    for (const auto& entry : std::filesystem::directory_iterator(imports)) {
      if (entry.path().extension() != ".yaml") continue;
      const std::string name = "imports/" + entry.path().filename().string();
      auto mapping = LoadImportMapping(entry.path().string(), policies.value()->schema(), name);
      for (const auto& e : mapping.status().errors()) {
        findings.push_back({"error", "import-mapping", e.field, e.message, "fix the mapping"});
      }
      if (!mapping.ok() && mapping.status().errors().empty()) {
        findings.push_back(
            {"error", "import-mapping", name, mapping.status().message(), "fix the mapping"});
      }
    }
  }
  bool ok = true;
  for (const auto& f : findings) ok &= f.severity != "error";
  if (args.Has("json")) {
    JsonWriter w;
    w.BeginObject().Bool("ok", ok).BeginArray("findings");
    for (const auto& f : findings) {
      w.BeginObject()
          .String("severity", f.severity)
          .String("rule", f.rule)
          .String("location", f.location)
          .String("message", f.message)
          .String("hint", f.hint)
          .EndObject();
    }
    w.EndArray().EndObject();
    std::cout << w.str() << std::endl;
    return ok ? 0 : 1;
  }
  for (const auto& f : findings) {
    std::cout << cfg->policies_dir << "/" << f.location << ": " << f.severity << ": " << f.message
              << " [" << f.rule << "] (" << f.hint << ")\n";
  }
  if (ok && policies.ok()) {
    std::cout << "Policies in " << cfg->policies_dir << " are valid ("
              << policies.value()->schema().fields().size() << " fields, "
              << policies.value()->purposes().size() << " purposes, "
              << policies.value()->activities().size() << " activities).\n";
  }
  return ok ? 0 : 1;
}

int RunRegisterExport(const CliArgs& args) {
  std::map<std::string, std::string> flags = args.ConfigFlags();
  flags.emplace("data-dir", ".");  // the register lives in the policy files only
  auto cfg = ResolveConfig(flags);
  if (!cfg.ok()) return FailStatus(cfg.status());
  auto policies = LoadPolicies(cfg->policies_dir);
  if (!policies.ok()) return FailStatus(policies.status());
  for (const auto& f : LintRegister(*policies.value())) {
    if (f.severity == "error") {
      return Fail("the register has lint errors; run `garde lint` (first: " + f.location + ": " +
                  f.message + ")");
    }
  }
  auto doc = ExportRegister(*policies.value(), args.Get("format", "json"), args.Get("lang", "en"));
  if (!doc.ok()) return FailStatus(doc.status());
  const std::string out = args.Get("out", "");
  if (out.empty()) {
    std::cout << doc->body;
    return 0;
  }
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  file << doc->body;
  file.close();
  if (!file) return Fail("cannot write " + out);
  std::cerr << "wrote " << out << " (" << doc->body.size() << " bytes, "
            << policies.value()->activities().size() << " activities)\n";
  return 0;
}

}  // namespace

std::string CliArgs::Get(const std::string& name, const std::string& fallback) const {
  auto it = options.find(name);
  return it == options.end() ? fallback : it->second;
}

std::vector<std::string> CliArgs::All(const std::string& name) const {
  std::vector<std::string> out;
  auto [b, e] = options.equal_range(name);
  for (auto it = b; it != e; ++it) out.push_back(it->second);
  return out;
}

std::map<std::string, std::string> CliArgs::ConfigFlags() const {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : options) {
    static const std::set<std::string> kCommandOptions = {
        "name",       "role",   "activity", "id",      "batch",  "checkpoint",
        "public-key", "origin", "start",    "end",     "format", "out",
        "from",       "reason", "at",       "mapping", "report", "to"};
    if (kCommandOptions.count(k) == 0) out[k] = v;
  }
  return out;
}

namespace {

// Reads a passphrase line (at most 4 KiB; the trailing newline dropped) from `fd`.
bool ReadPassphrase(int fd, std::string* out) {
  char buf[4096];
  size_t got = 0;
  while (got < sizeof buf) {
    const ssize_t n = ::read(fd, buf + got, sizeof buf - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r')) --got;
  out->assign(buf, got);
  sodium_memzero(buf, sizeof buf);
  return got > 0;
}

// Asks at the terminal, without echo, when the command runs on one.
bool PromptAtTerminal(std::string* passphrase) {
  if (::isatty(STDIN_FILENO) == 0) return false;
  const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (tty < 0) return false;
  const char ask[] = "garde keyring passphrase: ";
  (void)!::write(tty, ask, sizeof ask - 1);
  struct termios saved;
  const bool quiet = ::tcgetattr(tty, &saved) == 0;
  if (quiet) {
    struct termios silent = saved;
    silent.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(tty, TCSAFLUSH, &silent);
  }
  std::string line;
  char c;
  while (::read(tty, &c, 1) == 1 && c != '\n' && line.size() < 4096) line.push_back(c);
  if (quiet) ::tcsetattr(tty, TCSAFLUSH, &saved);
  (void)!::write(tty, "\n", 1);
  ::close(tty);
  *passphrase = std::move(line);
  return !passphrase->empty();
}

}  // namespace

Status AcquireKeyringPassphrase(const CliArgs& args) {
  SetKeyringPassphrasePrompt(&PromptAtTerminal);
  std::string passphrase;
  const std::string fd_text = args.Get("passphrase-fd", "");
  if (!fd_text.empty()) {
    char* end = nullptr;
    const long fd = std::strtol(fd_text.c_str(), &end, 10);
    if (end == fd_text.c_str() || *end != '\0' || fd < 0 || fd > 1 << 20 ||
        !ReadPassphrase(static_cast<int>(fd), &passphrase)) {
      return Unprocessable("--passphrase-fd: no passphrase could be read from that descriptor");
    }
    ::close(static_cast<int>(fd));
  } else if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY")) {
    // systemd's LoadCredential=/LoadCredentialEncrypted= (the latter sealed to the TPM).
    const std::string path = std::string(dir) + "/garde-keyring-passphrase";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ReadPassphrase(fd, &passphrase);
      ::close(fd);
    }
  }
  if (!passphrase.empty()) SetKeyringPassphrase(passphrase);
  sodium_memzero(passphrase.data(), passphrase.size());
  return AcquireTokenPin(args);
}

Status AcquireTokenPin(const CliArgs& args) {
  auto cfg = ConfigFrom(args);
  if (!cfg.ok() || cfg->pkcs11_module.empty())
    return Status::Ok();  // commands report config errors
  std::string path = cfg->pkcs11_pin_file;
  if (path.empty()) {
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir == nullptr) {
      return Unprocessable(
          "pkcs11_module is set but no PIN is given: set pkcs11_pin_file, or pass "
          "the systemd credential garde-pkcs11-pin");
    }
    path = std::string(dir) + "/garde-pkcs11-pin";
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return Unprocessable("the PKCS#11 PIN file " + path + " is missing");
  if ((st.st_mode & 077) != 0) {
    return PermissionDenied("the PKCS#11 PIN file " + path +
                            " is readable by group or others; run `chmod 600 " + path + "`");
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  std::string pin;
  if (fd < 0 || !ReadPassphrase(fd, &pin)) {
    if (fd >= 0) ::close(fd);
    return Unprocessable("no PIN could be read from " + path);
  }
  ::close(fd);
  Pkcs11Settings settings;
  settings.module = cfg->pkcs11_module;
  settings.token = cfg->pkcs11_token;
  settings.cache_entries = static_cast<size_t>(cfg->pkcs11_cache_keys);
  settings.cache_ttl = std::chrono::seconds(cfg->pkcs11_cache_seconds);
  SetKeyringToken(settings, pin);
  sodium_memzero(pin.data(), pin.size());
  return Status::Ok();
}

CliArgs ParseCliArgs(int argc, char** argv) {
  CliArgs args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h") a = "--help";
    if (a.rfind("--", 0) != 0) {
      args.words.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    std::string value;
    const size_t eq = name.find('=');
    bool has_value = false;
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    bool is_switch = false;
    for (const char* s : kSwitches) is_switch |= name == s;
    if (is_switch) {
      args.switches.insert(name);
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        args.error = "--" + name + " needs a value";
        break;
      }
      value = argv[++i];
    }
    args.options.emplace(name, value);
  }
  return args;
}

int RunCli(int argc, char** argv) {
  ::umask(077);  // database, WAL, backups and logs are readable by the service user only
  // Before anything draws a random byte: the generator is chosen there (secret.cc).
  if (!InitSodium()) {
    std::cerr << "garde: libsodium cannot be initialised" << std::endl;
    return 1;
  }
  CliArgs args = ParseCliArgs(argc, argv);
  std::string words;
  for (const auto& w : args.words) words += (words.empty() ? "" : " ") + w;
  if (args.Has("version")) {
    std::cout << "garde " << GARDE_VERSION << std::endl;
    return 0;
  }
  if (words.empty() || words == "help") {
    std::cout << kTopHelp << OptionsHelp();
    return words.empty() && !args.Has("help") ? 2 : 0;
  }
  if (args.Has("help")) {
    const char* text = HelpFor(words);
    if (text == nullptr && words.rfind("receipt verify", 0) == 0) text = HelpFor("receipt verify");
    if (text == nullptr && words.rfind("import ", 0) == 0) text = HelpFor("import");
    if (text == nullptr && (words == "apikey" || words == "keys" || words == "audit" ||
                            words == "register" || words == "retention")) {
      std::cout << kTopHelp;
      return 0;
    }
    if (text == nullptr) {
      std::cerr << "garde: unknown command '" << words << "'\n" << kTopHelp;
      return 2;
    }
    std::cout << text << OptionsHelp();
    return 0;
  }
  if (!args.error.empty()) {
    std::cerr << "garde: " << args.error << "\n";
    return 2;
  }
  SetUpLogging(std::getenv("GARDE_LOG_LEVEL") ? std::getenv("GARDE_LOG_LEVEL") : "warn", "");
  if (Status s = AcquireKeyringPassphrase(args); !s.ok()) return FailStatus(s);
  if (words == "init") return RunInit(args);
  if (words == "serve") return RunServe(args);
  if (words == "apikey create") return RunApiKeyCreate(args);
  if (words == "apikey list") return RunApiKeyList(args);
  if (words == "apikey revoke") return RunApiKeyRevoke(args);
  if (words == "keys rotate") return RunKeysRotate(args);
  if (words == "keys rotate-master") return RunKeysRotateMaster(args);
  if (words == "keys status") return RunKeysStatus(args);
  if (words == "keys migrate") return RunKeysMigrate(args);
  if (words == "lint") return RunLint(args);
  if (words == "register export") return RunRegisterExport(args);
  if (words == "audit verify") return RunAuditVerify(args);
  if (words == "migrate") return RunMigrate(args);
  if (words == "audit checkpoint") return RunAuditCheckpoint(args);
  if (words == "audit export") return RunAuditExport(args);
  if (words == "backup" || words == "backup create") return RunBackupCreate(args);
  if (words == "backup list") return RunBackupList(args);
  if (words == "backup verify") return RunBackupVerify(args);
  if (words == "backup prune") return RunBackupPrune(args);
  if (words == "restore" || words == "backup restore") return RunRestore(args);
  if (words == "retention run") return RunRetention(args);
  if (!args.words.empty() && args.words[0] == "import") return RunImport(args);
  if (args.words.size() == 3 && args.words[0] == "receipt" && args.words[1] == "verify") {
    return RunReceiptVerify(args);
  }
  std::cerr << "garde: unknown command '" << words << "'\n" << kTopHelp;
  return 2;
}

}  // namespace garde

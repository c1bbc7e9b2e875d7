// Backups of a deployment: online, consistent across the vault and the audit log, sealed and
// authenticated, written atomically, kept by a policy; and the restore that never brings an
// erasure back.
//
//   Backups backups(deployment, cfg.backup_directory());
//   auto made = backups.Create();                 // while the service serves
//   auto all = backups.List();                    // newest first
//   auto checked = VerifyBackup(cfg, made->path); // decrypts everything, checks the audit log
//   RestoreBackup(cfg, made->path, "disk lost", &report);   // service stopped
//
// File format (docs/operations.md, Backups): "GARDEBK1", a 4-byte length and a small JSON
// header in clear (id, creation time), then a libsodium secretstream (XChaCha20-Poly1305)
// under a key derived from the keyring for backups: the manifest (the header as associated
// data), each database in 1 MiB messages, and a final empty message tagged FINAL. A backup is
// written under a ".partial" name, fsynced and renamed: a name ending in ".gbak" is complete.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "garde/base/status.h"
#include "garde/config/config.h"

namespace garde {

class Deployment;

// `garde serve` holds this file of the data directory with a shared lock while it runs; a
// restore needs it exclusively.
inline constexpr const char* kServeLock = "serve.lock";

struct BackupFile {
  std::string name;  // "garde.db" | "audit.db"
  int64_t bytes = 0;
  std::string blake2b;  // hex, of the plaintext
};

struct BackupInfo {
  std::string id;  // "bk_20261202T071500Z_1a2b3c4d"
  std::string path;
  int64_t created_at = 0;
  int64_t bytes = 0;  // of the backup file
  int64_t subjects = 0;
  int64_t tombstones = 0;   // erasures in the vault's tombstones table at the time
  uint64_t audit_size = 0;  // entries in the audit log copy
  std::string audit_root;   // hex RFC 6962 root of that log
  std::vector<BackupFile> files;
};

// Which backups a keep policy keeps: the newest `last`, and the newest of each of the last
// `daily` days, `weekly` ISO weeks and `monthly` months that have one (UTC).
struct KeepPolicy {
  int last = 7;
  int daily = 7;
  int weekly = 4;
  int monthly = 6;
};
// Indices into `created` (creation times, any order) of the backups to keep.
std::vector<size_t> SelectKept(const std::vector<int64_t>& created, const KeepPolicy& policy);

class Backups {
 public:
  Backups(Deployment& deployment, std::string directory);
  // Copies the vault, then the audit log (so the log copy holds the entry of every change in
  // the vault copy), seals both into one file and audits it. `progress` (if any) is told the
  // bytes sealed so far and in all.
  Result<BackupInfo> Create(const std::function<void(int64_t, int64_t)>& progress = nullptr);
  // Deletes the backups the policy does not keep; returns their ids.
  Result<std::vector<std::string>> Prune(const KeepPolicy& policy);

 private:
  Deployment& d_;
  std::string dir_;
};

// Complete backups in `directory`, newest first, read with the keyring of `config`. A file
// that cannot be opened with it is listed with its error.
struct ListedBackup {
  BackupInfo info;
  std::string error;  // empty: the manifest opened
};
Result<std::vector<ListedBackup>> ListBackups(const Config& config, const std::string& directory);

// Decrypts the whole file into a scratch directory beside it, checks each database's digest,
// SQLite's integrity check, and the audit log copy (signatures, tree) against the manifest.
struct BackupCheck {
  BackupInfo info;
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};
Result<BackupCheck> VerifyBackup(const Config& config, const std::string& path);

// Restores into config.data_dir, which must hold the keyring (and should hold the tombstone
// log kept with it) and must not be in use by a running garde. The vault comes from the
// backup. The audit log stays the live one when it extends the backup's (checked with a
// consistency proof), so no entry is lost; otherwise — no live log, or one that does not
// extend it — the backup's log is used and the fork is recorded with `reason`. The vault it
// replaces is kept aside as garde.db.replaced-<time>. Then every tombstone (erasures,
// withdrawals, objections, suppressions) is re-applied and the restore is audited.
struct RestoreReport {
  BackupInfo backup;
  bool audit_consistent = false;  // the live log extends the backup's and was kept
  uint64_t live_audit_size = 0;   // 0: there was none
  std::string forked_log;         // where the live log was moved, if it was
  std::string replaced_vault;     // where the previous vault was moved, if any
  size_t reapplied = 0;           // subjects whose erasure or "no" was re-applied
  int64_t reindexed = 0;          // look-up digests computed again under the current master
  // API keys hashed under an earlier master (the backup predates a master rotation): they
  // work while that master is being replaced, not after; issue them again.
  int64_t keys_under_old_master = 0;
};
Status RestoreBackup(const Config& config, const std::string& path, const std::string& reason,
                     RestoreReport* report);

}  // namespace garde

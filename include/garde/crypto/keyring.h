// The keyring: versioned root keys that wrap subjects' data keys, and one master key from
// which every other sub-key is derived with crypto_kdf (distinct 8-byte contexts).
//
//   auto ring = Keyring::Load(data_dir + "/keyring.json");   // refused if mode & 077
//   const SecretKey* root = ring.value()->Root(ring.value()->current_version());
//   SecretKey blind = ring.value()->Derive(KeyContext::kBlindIndex);
//
// The file is JSON, mode 0600, rewritten atomically (write + fsync + rename). Rotation adds a
// root version; retiring a version erases its key material but keeps its number and dates.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "garde/base/status.h"
#include "garde/crypto/secret.h"

namespace garde {

// Sub-key uses. Each has its own crypto_kdf context, so no two uses ever share a key.
enum class KeyContext {
  kBlindIndex,   // "gdblindx": per-field blind-index keys
  kSuppression,  // "gdsuppr_": suppression-list hashes
  kSubjectToken, // "gdtoken_": subject link tokens
  kApiKeyHash,   // "gdapikey": stored API-key hashes
  kSigning,      // "gdsignkp": Ed25519 seed for receipts and tree heads
  kAuditDigest,  // "gdauditd": digests of malformed client values kept in the audit log
  kBackup,       // "gdbackup": the key that seals backups (secretstream)
  kIncident,     // "gdincidt": the key that seals the breach register's facts
};

struct RootKeyInfo {
  uint32_t version = 0;
  std::string created_at;
  std::string retired_at;  // empty while usable
};

// The passphrase that seals the keyring file (docs/security.md, Keys): a process holds at
// most one, in secret memory, set once at start from a file descriptor, a systemd credential
// or a TTY prompt — never argv or the environment.
void SetKeyringPassphrase(std::string_view passphrase);
bool HasKeyringPassphrase();
// Asked when a sealed keyring is read and no passphrase was set (a TTY prompt); may be unset.
void SetKeyringPassphrasePrompt(bool (*prompt)(std::string* passphrase));

class Keyring {
 public:
  // Creates a new keyring file (refuses to overwrite). Mode 0600. Sealed under the process's
  // passphrase when it has one (argon2id, libsodium's moderate limits; XSalsa20-Poly1305).
  static Status Create(const std::string& path);
  // Whether the file holds the keyring sealed under a passphrase (false: keys in clear).
  static Result<bool> IsSealed(const std::string& path);
  // Rewrites the keyring sealed under the process's passphrase, or in clear (`seal` false),
  // atomically; a running service reloads it. Later writes keep the form chosen.
  static Status Reseal(const std::string& path, bool seal);
  // Loads and checks permissions; any group/other bit set is refused.
  static Result<std::shared_ptr<const Keyring>> Load(const std::string& path);
  // Adds a root version and makes it current; returns the new version.
  static Result<uint32_t> AddVersion(const std::string& path);
  // Erases the key material of a non-current version.
  static Status Retire(const std::string& path, uint32_t version);

  uint32_t current_version() const { return current_; }
  // The root key of a version, or nullptr when unknown or retired.
  const SecretKey* Root(uint32_t version) const;
  const std::map<uint32_t, RootKeyInfo>& versions() const { return info_; }
  // Derives the sub-key for a use (crypto_kdf from the master key).
  SecretKey Derive(KeyContext context) const;
  // Derives the data-key wrapping key of a root version (context "gddekwrp").
  bool DeriveWrappingKey(uint32_t version, uint8_t out[kKeyBytes]) const;

 private:
  Keyring() = default;
  std::unique_ptr<SecretKey> master_;
  std::map<uint32_t, SecretKey> roots_;
  std::map<uint32_t, RootKeyInfo> info_;
  uint32_t current_ = 0;
};

}  // namespace garde

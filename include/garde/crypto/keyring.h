// The keyring: versioned root keys that wrap subjects' data keys, and one master key from
// which every other sub-key is derived with crypto_kdf (distinct 8-byte contexts).
//
//   auto ring = Keyring::Load(data_dir + "/keyring.json");   // refused if mode & 077
//   const SecretKey* root = ring.value()->Root(ring.value()->current_version());
//   SecretKey blind = ring.value()->Derive(KeyContext::kBlindIndex);
//
// The file is JSON, mode 0600, rewritten atomically (write + fsync + rename). Rotation adds a
// root version; retiring a version erases its key material but keeps its number and dates.
// A root version either lives in the file (sealed under a passphrase, or in clear for
// development) or is a key on a PKCS#11 token that never leaves it (docs/security.md, Keys);
// when the current version is on a token, the file holds the master key only as sealed by it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "garde/base/status.h"
#include "garde/crypto/pkcs11_token.h"
#include "garde/crypto/secret.h"

namespace garde {

// Sub-key uses. Each has its own crypto_kdf context, so no two uses ever share a key.
enum class KeyContext {
  kBlindIndex,    // "gdblindx": per-field blind-index keys
  kSuppression,   // "gdsuppr_": suppression-list hashes
  kSubjectToken,  // "gdtoken_": subject link tokens
  kApiKeyHash,    // "gdapikey": stored API-key hashes
  kSigning,       // "gdsignkp": Ed25519 seed for receipts and tree heads
  kAuditDigest,   // "gdauditd": digests of malformed client values kept in the audit log
  kBackup,        // "gdbackup": the key that seals backups (secretstream)
  kIncident,      // "gdincidt": the key that seals the breach register's facts
};

struct RootKeyInfo {
  uint32_t version = 0;
  std::string created_at;
  std::string retired_at;  // empty while usable
  std::string token_key;   // the key's label on the PKCS#11 token; empty: in the file
};

// Where a new root version is kept.
enum class RootHome { kSameAsCurrent, kFile, kToken };

// Where a keyring file keeps its keys, read from the file without opening it.
enum class KeyringForm {
  kClear,   // keys in clear beside the data: development only
  kSealed,  // sealed under a passphrase
  kToken,   // no key in the file: root keys on a PKCS#11 token, the master sealed by one
};

// The PKCS#11 token of this process (from pkcs11_module and the PIN), connected when a
// keyring first needs it and kept for the life of the process.
void SetKeyringToken(const Pkcs11Settings& settings, std::string_view pin);
bool HasKeyringToken();
Result<std::shared_ptr<Pkcs11Token>> KeyringToken();

// The passphrase that seals the keyring file (docs/security.md, Keys): a process holds at
// most one, in secret memory, set once at start from a file descriptor, a systemd credential
// or a TTY prompt — never argv or the environment.
void SetKeyringPassphrase(std::string_view passphrase);
bool HasKeyringPassphrase();
// Asked when a sealed keyring is read and no passphrase was set (a TTY prompt); may be unset.
void SetKeyringPassphrasePrompt(bool (*prompt)(std::string* passphrase));

class Keyring {
 public:
  // Creates a new keyring file (refuses to overwrite). Mode 0600. Its first root key is on the
  // process's PKCS#11 token when it has one; else the file is sealed under the process's
  // passphrase when it has one (argon2id, libsodium's moderate limits; XSalsa20-Poly1305).
  static Status Create(const std::string& path);
  static Result<KeyringForm> Form(const std::string& path);
  // Rewrites the keyring sealed under the process's passphrase, or in clear (`seal` false),
  // atomically; a running service reloads it. Later writes keep the form chosen.
  static Status Reseal(const std::string& path, bool seal);
  // Loads and checks permissions; any group/other bit set is refused.
  static Result<std::shared_ptr<const Keyring>> Load(const std::string& path);
  // Adds a root version and makes it current; returns the new version. A version on a token
  // is generated there; the master key is sealed again under the new current version.
  static Result<uint32_t> AddVersion(const std::string& path,
                                     RootHome home = RootHome::kSameAsCurrent);
  // Erases the key material of a non-current version (destroys it on the token).
  static Status Retire(const std::string& path, uint32_t version);

  uint32_t current_version() const { return current_; }
  // Whether root `version` can wrap and unwrap (known, not retired).
  bool Usable(uint32_t version) const;
  // The root key of a version kept in the file, or nullptr (unknown, retired, on a token).
  const SecretKey* Root(uint32_t version) const;
  // The token and key label of a version kept on a PKCS#11 token, or nullptr.
  const std::string* TokenKey(uint32_t version) const;
  Pkcs11Token* token() const { return token_.get(); }
  const std::map<uint32_t, RootKeyInfo>& versions() const { return info_; }
  // Derives the sub-key for a use (crypto_kdf from the master key). Uses whose data cannot
  // be computed again (suppression, signing, audit digests, backups, the breach register)
  // keep the sub-key the first master gave them across master rotations.
  SecretKey Derive(KeyContext context) const;

  // Master-key rotation (docs/security.md, Keys): AddMaster makes a new master current and
  // keeps the old one beside it, so that look-ups read both while every blind index is
  // computed again and API keys are hashed again as they are used; RetireMaster then erases
  // the old master, keeping only its link-token key until `links_until`, so that links
  // already sent keep working. AddMaster is refused while a rotation is under way.
  static Result<uint32_t> AddMaster(const std::string& path);
  static Status RetireMaster(const std::string& path, int64_t links_until);
  uint32_t master_version() const { return master_version_; }
  // The master being replaced (0: no master rotation under way).
  uint32_t previous_master_version() const { return previous_version_; }
  // The previous master's sub-key for a use that it does not keep (blind indexes, API-key
  // hashes, link tokens), while a master rotation is under way.
  std::optional<SecretKey> DerivePrevious(KeyContext context) const;
  // The link-token key of the last retired master while links under it may be valid.
  const SecretKey* RetiredLinkKey(int64_t now) const;
  // Derives the data-key wrapping key of a root version (context "gddekwrp").
  bool DeriveWrappingKey(uint32_t version, uint8_t out[kKeyBytes]) const;

 private:
  Keyring() = default;
  std::unique_ptr<SecretKey> master_;
  uint32_t master_version_ = 1;
  std::unique_ptr<SecretKey> previous_;
  uint32_t previous_version_ = 0;
  std::map<KeyContext, SecretKey> kept_;
  std::unique_ptr<SecretKey> link_key_;
  int64_t link_key_until_ = 0;
  std::map<uint32_t, SecretKey> roots_;
  std::shared_ptr<Pkcs11Token> token_;  // set when any usable version is on a token
  std::map<uint32_t, RootKeyInfo> info_;
  uint32_t current_ = 0;
};

}  // namespace garde

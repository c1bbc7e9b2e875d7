#include "garde/crypto/keyring.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/file_system.h"

namespace garde {
namespace {

constexpr const char* kFormat = "garde-keyring/1";
constexpr std::string_view kSealedFormat = "garde-keyring-sealed/1";

std::unique_ptr<SecretBuffer>& Passphrase() {
  static std::unique_ptr<SecretBuffer> passphrase;
  return passphrase;
}
bool (*g_prompt)(std::string*) = nullptr;

// Sub-keys whose data cannot be computed again, so that a master rotation keeps them as they
// were (docs/security.md, Keys): suppression digests outlive the addresses they hide, audit
// entries and signatures are published, backups and the breach register stay sealed.
constexpr KeyContext kKeptContexts[] = {KeyContext::kSuppression, KeyContext::kSigning,
                                        KeyContext::kAuditDigest, KeyContext::kBackup,
                                        KeyContext::kIncident};
constexpr size_t kKeptBytes = std::size(kKeptContexts) * kKeyBytes;

// The on-disk form, holding key bytes only while a file is read or written, and only in
// sodium_malloc'd memory.
struct KeyringFile {
  SecretBuffer master{kKeyBytes};
  uint32_t master_version = 1;
  // Written from the first master rotation on: the kept sub-keys, as the first master gave them.
  std::unique_ptr<SecretBuffer> kept;
  // While a master rotation runs: the master being replaced, read beside the current one.
  std::unique_ptr<SecretBuffer> previous;
  uint32_t previous_version = 0;
  // After one: the retired master's link-token key, so that links already sent keep working
  // until the longest of them expires.
  std::unique_ptr<SecretBuffer> link_key;
  std::string link_key_until;
  uint32_t current = 0;
  struct Version {
    RootKeyInfo info;
    std::unique_ptr<SecretBuffer> key;  // null once retired
  };
  std::map<uint32_t, Version> versions;
  bool sealed = false;     // read from, and written back to, the sealed form
  std::string token_name;  // the PKCS#11 token's label, when a version lives on one
  Bytes master_box;        // the master key as sealed by the token key of version master_by
  uint32_t master_by = 0;
  // The other secrets as sealed by the same token key (token form only).
  Bytes kept_box, previous_box, link_key_box;
};

// The secrets beside the master, each written in clear ("<name>") or, when the current root
// is on a token, sealed by it ("<name>_sealed"): one table for the reader and the writer.
struct OtherSecret {
  const char* name;
  size_t size;
  std::unique_ptr<SecretBuffer> KeyringFile::*key;
  Bytes KeyringFile::*box;
};
const OtherSecret kOtherSecrets[] = {
    {"kept", kKeptBytes, &KeyringFile::kept, &KeyringFile::kept_box},
    {"previous_master", kKeyBytes, &KeyringFile::previous, &KeyringFile::previous_box},
    {"link_key", kKeyBytes, &KeyringFile::link_key, &KeyringFile::link_key_box}};

// The entry of kOtherSecrets whose member is named `key` (+ `suffix`), or nullptr.
const OtherSecret* OtherNamed(std::string_view key, std::string_view suffix) {
  for (const OtherSecret& o : kOtherSecrets) {
    const std::string_view name = o.name;
    if (key.starts_with(name) && key.substr(name.size()) == suffix) return &o;
  }
  return nullptr;
}

struct TokenSetting {
  std::mutex mu;
  std::optional<Pkcs11Settings> settings;
  std::unique_ptr<SecretBuffer> pin;
  size_t pin_size = 0;
  std::shared_ptr<Pkcs11Token> token;
};
TokenSetting& Token() {
  // Never destroyed: a PKCS#11 module's own statics may be gone by the time exit handlers
  // run (SoftHSM2's are), and the token forgets the process's sessions when it ends.
  static TokenSetting* setting = new TokenSetting;
  return *setting;
}

std::string MasterAd(uint32_t version) { return "garde.master.v1:" + std::to_string(version); }
// Associated data of the other secrets sealed by a token key: their name and the key's version.
std::string SecretAd(std::string_view name, uint32_t version) {
  return "garde." + std::string(name) + ".v1:" + std::to_string(version);
}

constexpr size_t kMaxKeyringBytes = 1 << 20;

// A strict reader of the keyring's JSON over the file's bytes in place: strings are views into
// the secret buffer (no escapes: the format has none), so a key's base64 text is never copied
// and is decoded by libsodium straight into its own secret buffer.
class KeyringReader {
 public:
  explicit KeyringReader(std::string_view text) : t_(text) {}

  bool Parse(KeyringFile* out) {
    bool format = false, master = false, current = false, versions = false;
    if (!Expect('{')) return false;
    do {
      std::string_view key;
      if (!String(&key) || !Expect(':')) return false;
      if (key == "format") {
        std::string_view v;
        if (!String(&v) || v != kFormat) return false;
        format = true;
      } else if (key == "master") {
        std::string_view v;
        if (!String(&v) || !DecodeKey(v, &out->master)) return false;
        master = true;
      } else if (key == "master_sealed") {
        std::string_view v;
        if (!String(&v)) return false;
        auto box = Base64Decode(v);
        if (!box) return false;
        out->master_box = std::move(*box);
      } else if (key == "master_by") {
        if (!Number(&out->master_by) || out->master_by == 0) return false;
      } else if (key == "master_version") {
        if (!Number(&out->master_version) || out->master_version == 0) return false;
      } else if (key == "previous_master_version") {
        if (!Number(&out->previous_version) || out->previous_version == 0) return false;
      } else if (const OtherSecret* clear = OtherNamed(key, "")) {
        auto& into = out->*clear->key;
        std::string_view v;
        into = std::make_unique<SecretBuffer>(clear->size);
        if (!String(&v) || !DecodeKey(v, into.get())) return false;
      } else if (const OtherSecret* sealed = OtherNamed(key, "_sealed")) {
        std::string_view v;
        if (!String(&v)) return false;
        auto box = Base64Decode(v);
        if (!box || box->empty()) return false;
        out->*sealed->box = std::move(*box);
      } else if (key == "link_key_until") {
        std::string_view v;
        if (!String(&v) || !ParseRfc3339(v)) return false;
        out->link_key_until = std::string(v);
      } else if (key == "pkcs11_token") {
        std::string_view v;
        if (!String(&v) || v.empty()) return false;
        out->token_name = std::string(v);
      } else if (key == "current") {
        if (!Number(&out->current)) return false;
        current = true;
      } else if (key == "versions") {
        if (!Versions(out)) return false;
        versions = true;
      } else {
        return false;
      }
    } while (Accept(','));
    if (!Expect('}')) return false;
    Space();
    const bool token_master = !out->master_box.empty() && out->master_by != 0;
    // Each secret is either in clear or sealed by the token, as the master is.
    bool clear_ok = true;
    for (const OtherSecret& o : kOtherSecrets) {
      clear_ok &= token_master ? !(out->*o.key) : (out->*o.box).empty();
    }
    const bool has_previous = out->previous || !out->previous_box.empty();
    const bool has_link_key = out->link_key || !out->link_key_box.empty();
    return pos_ == t_.size() && format && (master != token_master) && current && versions &&
           clear_ok && has_previous == (out->previous_version != 0) &&
           (!has_previous || out->previous_version < out->master_version) &&
           has_link_key == !out->link_key_until.empty();
  }

 private:
  bool Versions(KeyringFile* out) {
    if (!Expect('[')) return false;
    if (Accept(']')) return true;
    do {
      KeyringFile::Version v;
      bool has_version = false;
      if (!Expect('{')) return false;
      do {
        std::string_view key;
        if (!String(&key) || !Expect(':')) return false;
        std::string_view text;
        if (key == "version") {
          if (!Number(&v.info.version)) return false;
          has_version = true;
        } else if (key == "created_at" || key == "retired_at") {
          if (!String(&text)) return false;
          (key == "created_at" ? v.info.created_at : v.info.retired_at) = std::string(text);
        } else if (key == "key") {
          if (Literal("null")) continue;
          v.key = std::make_unique<SecretBuffer>(kKeyBytes);
          if (!String(&text) || !DecodeKey(text, v.key.get())) return false;
        } else if (key == "pkcs11") {
          if (!String(&text) || text.empty()) return false;
          v.info.token_key = std::string(text);
        } else {
          return false;
        }
      } while (Accept(','));
      if (!Expect('}') || !has_version || out->versions.count(v.info.version) != 0) return false;
      const bool usable = static_cast<bool>(v.key) || !v.info.token_key.empty();
      if (v.key && !v.info.token_key.empty()) return false;
      if (v.info.retired_at.empty() != usable) return false;
      if (!v.info.token_key.empty() && out->token_name.empty()) return false;
      out->versions[v.info.version] = std::move(v);
    } while (Accept(','));
    return Expect(']');
  }

  // Decodes exactly into->size() bytes.
  static bool DecodeKey(std::string_view b64, SecretBuffer* into) {
    size_t len = 0;
    return sodium_base642bin(into->data(), into->size(), b64.data(), b64.size(), nullptr, &len,
                             nullptr, sodium_base64_VARIANT_ORIGINAL) == 0 &&
           len == into->size();
  }

  void Space() {
    while (pos_ < t_.size() &&
           (t_[pos_] == ' ' || t_[pos_] == '\n' || t_[pos_] == '\r' || t_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool Accept(char c) {
    Space();
    if (pos_ < t_.size() && t_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool Expect(char c) { return Accept(c); }
  bool Literal(std::string_view word) {
    Space();
    if (t_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool String(std::string_view* out) {
    if (!Accept('"')) return false;
    const size_t start = pos_;
    while (pos_ < t_.size() && t_[pos_] != '"') {
      const auto c = static_cast<unsigned char>(t_[pos_]);
      if (c == '\\' || c < 0x20) return false;
      ++pos_;
    }
    if (pos_ == t_.size()) return false;
    *out = t_.substr(start, pos_ - start);
    ++pos_;
    return true;
  }
  bool Number(uint32_t* out) {
    Space();
    uint64_t v = 0;
    const size_t start = pos_;
    while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9' && pos_ - start < 10) {
      v = v * 10 + static_cast<uint64_t>(t_[pos_++] - '0');
    }
    if (pos_ == start || v > UINT32_MAX) return false;
    *out = static_cast<uint32_t>(v);
    return true;
  }

  std::string_view t_;
  size_t pos_ = 0;
};

// The sealed form: three lines,
//   garde-keyring-sealed/1
//   argon2id13 <opslimit> <memlimit> <salt, base64>
//   <nonce and secretbox of the clear keyring, base64>
// The key is derived from the passphrase with the limits written in the file.
bool DeriveSealingKey(const SecretBuffer& passphrase, const uint8_t* salt, unsigned long long ops,
                      size_t mem, SecretBuffer* key) {
  return crypto_pwhash(key->data(), key->size(), reinterpret_cast<const char*>(passphrase.data()),
                       passphrase.size(), salt, ops, mem, crypto_pwhash_ALG_ARGON2ID13) == 0;
}

Result<std::unique_ptr<SecretBuffer>> OpenSealed(const std::string& path, std::string_view text) {
  Status bad = Unavailable("keyring " + path + " is not a valid sealed garde keyring");
  if (!Passphrase() && g_prompt != nullptr) {
    std::string typed;
    if (g_prompt(&typed)) SetKeyringPassphrase(typed);
    sodium_memzero(typed.data(), typed.size());
  }
  if (!Passphrase()) {
    return Unavailable("keyring " + path +
                       " is sealed under a passphrase: give it with "
                       "--passphrase-fd N, the systemd credential garde-keyring-passphrase, or "
                       "at the terminal's prompt");
  }
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  if (lines.size() != 3) return bad;
  char alg[16] = {0};
  unsigned long long ops = 0;
  unsigned long long mem = 0;
  char salt_b64[64] = {0};
  const std::string kdf(lines[1]);
  if (std::sscanf(kdf.c_str(), "%15s %llu %llu %63s", alg, &ops, &mem, salt_b64) != 4 ||
      std::string(alg) != "argon2id13" || ops < crypto_pwhash_OPSLIMIT_MIN ||
      ops > crypto_pwhash_OPSLIMIT_SENSITIVE || mem < crypto_pwhash_MEMLIMIT_MIN ||
      mem > crypto_pwhash_MEMLIMIT_SENSITIVE) {
    return bad;
  }
  uint8_t salt[crypto_pwhash_SALTBYTES];
  size_t salt_len = 0;
  if (sodium_base642bin(salt, sizeof salt, salt_b64, std::strlen(salt_b64), nullptr, &salt_len,
                        nullptr, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      salt_len != sizeof salt) {
    return bad;
  }
  std::vector<uint8_t> box(lines[2].size());
  size_t box_len = 0;
  if (sodium_base642bin(box.data(), box.size(), lines[2].data(), lines[2].size(), nullptr, &box_len,
                        nullptr, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      box_len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
    return bad;
  }
  SecretBuffer key(crypto_secretbox_KEYBYTES);
  if (!DeriveSealingKey(*Passphrase(), salt, ops, static_cast<size_t>(mem), &key)) {
    return Unavailable("not enough memory to derive the keyring's key");
  }
  auto clear = std::make_unique<SecretBuffer>(box_len - crypto_secretbox_NONCEBYTES -
                                              crypto_secretbox_MACBYTES);
  if (crypto_secretbox_open_easy(clear->data(), box.data() + crypto_secretbox_NONCEBYTES,
                                 box_len - crypto_secretbox_NONCEBYTES, box.data(),
                                 key.data()) != 0) {
    return PermissionDenied("keyring " + path + ": wrong passphrase (or a damaged file)");
  }
  return clear;
}

// The process's token, checked to be the one the keyring names.
Result<std::shared_ptr<Pkcs11Token>> TokenFor(const std::string& path, const std::string& name) {
  auto token = KeyringToken();
  if (!token.ok()) {
    if (token.status().code() != Code::kNotFound) return token.status();
    return Unavailable("keyring " + path + " keeps its root keys on the PKCS#11 token '" + name +
                       "': set pkcs11_module and pkcs11_token, and give the token's PIN (the "
                       "systemd credential garde-pkcs11-pin or pkcs11_pin_file)");
  }
  if (token.value()->settings().token != name) {
    return Unavailable("keyring " + path + " keeps its root keys on the PKCS#11 token '" + name +
                       "', not on '" + token.value()->settings().token + "' (pkcs11_token)");
  }
  return token;
}

// The keyring file's bytes, straight from the kernel into secret memory; refused when any
// group/other permission bit is set.
Result<std::unique_ptr<SecretBuffer>> ReadKeyringBytes(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return Unavailable("keyring " + path + " not found; run `garde init --data-dir DIR` first");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return PermissionDenied("keyring " + path + " is readable by group or others (mode " +
                            std::string(mode) + "); run `chmod 600 " + path + "`");
  }
  Status bad = Unavailable("keyring " + path + " is not a valid garde keyring");
  if (st.st_size <= 0 || static_cast<uint64_t>(st.st_size) > kMaxKeyringBytes) return bad;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Unavailable("cannot open keyring " + path);
  auto text = std::make_unique<SecretBuffer>(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < text->size()) {
    const ssize_t n = ::read(fd, text->data() + got, text->size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got != text->size()) return bad;
  return text;
}

Status ReadKeyringFile(const std::string& path, KeyringFile* out) {
  GARDE_ASSIGN_OR_RETURN(auto bytes, ReadKeyringBytes(path));
  const SecretBuffer& text = *bytes;
  Status bad = Unavailable("keyring " + path + " is not a valid garde keyring");
  if (text.view().substr(0, kSealedFormat.size()) == kSealedFormat) {
    GARDE_ASSIGN_OR_RETURN(auto opened, OpenSealed(path, text.view()));
    out->sealed = true;
    if (!KeyringReader(opened->view()).Parse(out)) return bad;
  } else if (!KeyringReader(text.view()).Parse(out)) {
    return bad;
  }
  auto cur = out->versions.find(out->current);
  if (cur == out->versions.end() || !cur->second.info.retired_at.empty()) return bad;
  if (out->master_by != 0) {
    // The master key was sealed by a root key on the token: only the token opens it.
    auto by = out->versions.find(out->master_by);
    if (by == out->versions.end() || by->second.info.token_key.empty()) return bad;
    auto token = TokenFor(path, out->token_name);
    if (!token.ok()) return token.status();
    Status opened = token.value()->Open(by->second.info.token_key, MasterAd(out->master_by),
                                        out->master_box, out->master.data(), kKeyBytes);
    if (opened.code() == Code::kDamaged) {
      return PermissionDenied("keyring " + path + ": the token does not open its master key");
    }
    GARDE_RETURN_IF_ERROR(opened);
    for (const OtherSecret& o : kOtherSecrets) {
      const Bytes& box = out->*o.box;
      if (box.empty()) continue;
      auto& into = out->*o.key;
      into = std::make_unique<SecretBuffer>(o.size);
      Status s = token.value()->Open(by->second.info.token_key, SecretAd(o.name, out->master_by),
                                     box, into->data(), o.size);
      if (s.code() == Code::kDamaged) {
        return PermissionDenied("keyring " + path + ": the token does not open its " + o.name);
      }
      GARDE_RETURN_IF_ERROR(s);
    }
  }
  return Status::Ok();
}

// Appends to a secret buffer of fixed capacity (sized generously by the caller).
class SecretText {
 public:
  explicit SecretText(size_t capacity) : buf_(capacity) {}
  SecretText& Add(std::string_view s) {
    if (len_ + s.size() > buf_.size()) {
      overflow_ = true;
      return *this;
    }
    std::memcpy(buf_.data() + len_, s.data(), s.size());
    len_ += s.size();
    return *this;
  }
  SecretText& Base64(const SecretBuffer& key) {
    const size_t need = sodium_base64_encoded_len(key.size(), sodium_base64_VARIANT_ORIGINAL);
    if (len_ + need > buf_.size()) {
      overflow_ = true;
      return *this;
    }
    sodium_bin2base64(reinterpret_cast<char*>(buf_.data() + len_), need, key.data(), key.size(),
                      sodium_base64_VARIANT_ORIGINAL);
    len_ += need - 1;  // without its NUL
    return *this;
  }
  bool ok() const { return !overflow_; }
  const uint8_t* data() const { return buf_.data(); }
  size_t size() const { return len_; }

 private:
  SecretBuffer buf_;
  size_t len_ = 0;
  bool overflow_ = false;
};

// Writes atomically: a 0600 temporary file, fsync, rename, fsync of the directory. The text
// is built in secret memory.
Status WriteKeyringFile(const std::string& path, const KeyringFile& kf, bool exclusive) {
  SecretText text(2048 + 256 * kf.versions.size());
  text.Add("{\"format\":\"").Add(kFormat).Add("\",");
  const auto& current = kf.versions.at(kf.current).info;
  // A link key whose links have all expired is dropped.
  const bool link_key =
      kf.link_key && ParseRfc3339(kf.link_key_until).value_or(0) > SystemClock().Now();
  // The other secrets to write: those held, but an expired link key.
  auto to_write = [&](const OtherSecret& o) -> const SecretBuffer* {
    if (o.key == &KeyringFile::link_key && !link_key) return nullptr;
    return (kf.*o.key).get();
  };
  if (!current.token_key.empty()) {
    // The current root is on the token: the master key (and every other secret) is written
    // only as sealed by it.
    GARDE_ASSIGN_OR_RETURN(auto token, TokenFor(path, kf.token_name));
    GARDE_ASSIGN_OR_RETURN(auto box, token->Seal(current.token_key, MasterAd(kf.current),
                                                 {kf.master.data(), kf.master.size()}));
    text.Add("\"master_sealed\":\"")
        .Add(Base64Encode(box.data(), box.size()))
        .Add("\",\"master_by\":")
        .Add(std::to_string(kf.current))
        .Add(",");
    for (const OtherSecret& o : kOtherSecrets) {
      const SecretBuffer* secret = to_write(o);
      if (secret == nullptr) continue;
      GARDE_ASSIGN_OR_RETURN(auto sealed,
                             token->Seal(current.token_key, SecretAd(o.name, kf.current),
                                         {secret->data(), secret->size()}));
      text.Add("\"")
          .Add(o.name)
          .Add("_sealed\":\"")
          .Add(Base64Encode(sealed.data(), sealed.size()))
          .Add("\",");
    }
  } else {
    text.Add("\"master\":\"").Base64(kf.master).Add("\",");
    for (const OtherSecret& o : kOtherSecrets) {
      if (const SecretBuffer* secret = to_write(o)) {
        text.Add("\"").Add(o.name).Add("\":\"").Base64(*secret).Add("\",");
      }
    }
  }
  if (kf.master_version != 1) {
    text.Add("\"master_version\":").Add(std::to_string(kf.master_version)).Add(",");
  }
  if (kf.previous) {
    text.Add("\"previous_master_version\":").Add(std::to_string(kf.previous_version)).Add(",");
  }
  if (link_key) text.Add("\"link_key_until\":\"").Add(kf.link_key_until).Add("\",");
  if (!kf.token_name.empty()) text.Add("\"pkcs11_token\":\"").Add(kf.token_name).Add("\",");
  text.Add("\"current\":").Add(std::to_string(kf.current)).Add(",\"versions\":[");
  bool first = true;
  for (const auto& [v, ver] : kf.versions) {
    text.Add(first ? "" : ",")
        .Add("{\"version\":")
        .Add(std::to_string(v))
        .Add(",\"created_at\":\"")
        .Add(ver.info.created_at)
        .Add("\"");
    first = false;
    if (!ver.info.token_key.empty()) {
      text.Add(",\"pkcs11\":\"").Add(ver.info.token_key).Add("\"}");
    } else if (!ver.key) {
      text.Add(",\"key\":null,\"retired_at\":\"").Add(ver.info.retired_at).Add("\"}");
    } else {
      text.Add(",\"key\":\"").Base64(*ver.key).Add("\"}");
    }
  }
  text.Add("]}\n");
  if (!text.ok()) return Internal("the keyring is too large to write");
  std::string sealed;  // the sealed form holds no clear key: an ordinary string is fine
  if (kf.sealed) {
    if (!Passphrase()) return Unavailable("sealing the keyring needs its passphrase");
    uint8_t salt[crypto_pwhash_SALTBYTES];
    randombytes_buf(salt, sizeof salt);
    const unsigned long long ops = crypto_pwhash_OPSLIMIT_MODERATE;
    const size_t mem = crypto_pwhash_MEMLIMIT_MODERATE;
    SecretBuffer key(crypto_secretbox_KEYBYTES);
    if (!DeriveSealingKey(*Passphrase(), salt, ops, mem, &key)) {
      return Unavailable("not enough memory to derive the keyring's key");
    }
    std::vector<uint8_t> box(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + text.size());
    randombytes_buf(box.data(), crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(box.data() + crypto_secretbox_NONCEBYTES, text.data(), text.size(),
                          box.data(), key.data());
    sealed = std::string(kSealedFormat) + "\nargon2id13 " + std::to_string(ops) + " " +
             std::to_string(mem) + " " + Base64Encode(salt, sizeof salt) + "\n" +
             Base64Encode(box.data(), box.size()) + "\n";
  }
  const uint8_t* bytes = kf.sealed ? reinterpret_cast<const uint8_t*>(sealed.data()) : text.data();
  const size_t length = kf.sealed ? sealed.size() : text.size();

  if (exclusive && ::access(path.c_str(), F_OK) == 0) {
    return Conflict("keyring " + path + " already exists");
  }
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Internal("cannot create " + tmp);
  const bool written =
      ::write(fd, bytes, length) == static_cast<ssize_t>(length) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Internal("cannot write keyring " + path);
  }
  SyncDirectoryOf(path).IgnoreError();
  return Status::Ok();
}

const char* ContextName(KeyContext c) {
  switch (c) {
    case KeyContext::kBlindIndex: return "gdblindx";
    case KeyContext::kSuppression: return "gdsuppr_";
    case KeyContext::kSubjectToken: return "gdtoken_";
    case KeyContext::kApiKeyHash: return "gdapikey";
    case KeyContext::kSigning: return "gdsignkp";
    case KeyContext::kAuditDigest: return "gdauditd";
    case KeyContext::kBackup: return "gdbackup";
    case KeyContext::kIncident: return "gdincidt";
  }
  return "gdunknwn";
}

// A new root version: a random key in the file, or a key generated on the token under a
// label that names the version (and a random part, so deployments can share a token).
Result<KeyringFile::Version> NewVersion(const std::string& path, KeyringFile* kf, uint32_t number,
                                        bool on_token) {
  KeyringFile::Version v;
  v.info.version = number;
  v.info.created_at = FormatRfc3339(SystemClock().Now());
  if (!on_token) {
    v.key = std::make_unique<SecretBuffer>(kKeyBytes);
    randombytes_buf(v.key->data(), kKeyBytes);
    return v;
  }
  auto token = KeyringToken();
  if (!token.ok()) {
    return token.status().code() == Code::kNotFound
               ? Unavailable(
                     "a root key on a PKCS#11 token needs pkcs11_module, pkcs11_token "
                     "and the token's PIN")
               : token.status();
  }
  const std::string& name = token.value()->settings().token;
  for (const auto& [n, other] : kf->versions) {
    if (!other.info.token_key.empty() && other.info.retired_at.empty() && kf->token_name != name) {
      return Conflict("keyring " + path + " has root keys on the token '" + kf->token_name +
                      "'; retire them before using the token '" + name + "'");
    }
  }
  uint8_t tag[4];
  randombytes_buf(tag, sizeof tag);
  v.info.token_key = "garde-root-" + std::to_string(number) + "-" + HexEncode(tag, sizeof tag);
  GARDE_RETURN_IF_ERROR(token.value()->Generate(v.info.token_key));
  kf->token_name = name;
  return v;
}

}  // namespace

void SetKeyringToken(const Pkcs11Settings& settings, std::string_view pin) {
  InitSodium();
  auto& t = Token();
  std::lock_guard<std::mutex> lock(t.mu);
  t.settings = settings;
  t.pin = std::make_unique<SecretBuffer>(pin.empty() ? 1 : pin.size());
  std::memcpy(t.pin->data(), pin.data(), pin.size());
  t.pin_size = pin.size();
  t.token.reset();
}

bool HasKeyringToken() {
  auto& t = Token();
  std::lock_guard<std::mutex> lock(t.mu);
  return t.settings.has_value();
}

Result<std::shared_ptr<Pkcs11Token>> KeyringToken() {
  auto& t = Token();
  std::lock_guard<std::mutex> lock(t.mu);
  if (t.token) return t.token;
  if (!t.settings) return NotFound("no PKCS#11 token is configured");
  GARDE_ASSIGN_OR_RETURN(
      auto token,
      Pkcs11Token::Connect(
          *t.settings, std::string_view(reinterpret_cast<const char*>(t.pin->data()), t.pin_size)));
  t.token = token;
  return t.token;
}

Status Keyring::Create(const std::string& path) {
  InitSodium();
  KeyringFile kf;
  randombytes_buf(kf.master.data(), kKeyBytes);
  const bool on_token = HasKeyringToken();
  GARDE_ASSIGN_OR_RETURN(auto v1, NewVersion(path, &kf, 1, on_token));
  kf.versions[1] = std::move(v1);
  kf.current = 1;
  kf.sealed = !on_token && HasKeyringPassphrase();
  return WriteKeyringFile(path, kf, /*exclusive=*/true);
}

Result<KeyringForm> Keyring::Form(const std::string& path) {
  GARDE_ASSIGN_OR_RETURN(auto bytes, ReadKeyringBytes(path));
  const std::string_view text = bytes->view();
  if (text.substr(0, kSealedFormat.size()) == kSealedFormat) return KeyringForm::kSealed;
  // Read, not opened: a master sealed by a token stays sealed here.
  KeyringFile kf;
  if (!KeyringReader(text).Parse(&kf)) {
    return Unavailable("keyring " + path + " is not a valid garde keyring");
  }
  bool clear = kf.master_by == 0;
  for (const auto& [n, v] : kf.versions) clear |= static_cast<bool>(v.key);
  return clear ? KeyringForm::kClear : KeyringForm::kToken;
}

Status Keyring::Reseal(const std::string& path, bool seal) {
  InitSodium();
  KeyringFile kf;
  GARDE_RETURN_IF_ERROR(ReadKeyringFile(path, &kf));
  if (seal && !HasKeyringPassphrase()) {
    return Unavailable(
        "sealing the keyring needs a passphrase (--passphrase-fd N, the systemd "
        "credential garde-keyring-passphrase, or the terminal's prompt)");
  }
  kf.sealed = seal;
  return WriteKeyringFile(path, kf, /*exclusive=*/false);
}

void SetKeyringPassphrase(std::string_view passphrase) {
  InitSodium();
  auto buffer = std::make_unique<SecretBuffer>(passphrase.size() == 0 ? 1 : passphrase.size());
  std::memcpy(buffer->data(), passphrase.data(), passphrase.size());
  Passphrase() = passphrase.empty() ? nullptr : std::move(buffer);
}

bool HasKeyringPassphrase() { return static_cast<bool>(Passphrase()); }

void SetKeyringPassphrasePrompt(bool (*prompt)(std::string*)) { g_prompt = prompt; }

Result<std::shared_ptr<const Keyring>> Keyring::Load(const std::string& path) {
  InitSodium();
  KeyringFile kf;
  GARDE_RETURN_IF_ERROR(ReadKeyringFile(path, &kf));
  std::shared_ptr<Keyring> ring(new Keyring());  // private constructor
  ring->master_ = std::make_unique<SecretKey>(SecretKey::FromBytes(kf.master.data()));
  ring->master_version_ = kf.master_version;
  if (kf.previous) {
    ring->previous_ = std::make_unique<SecretKey>(SecretKey::FromBytes(kf.previous->data()));
    ring->previous_version_ = kf.previous_version;
  }
  for (size_t i = 0; kf.kept && i < std::size(kKeptContexts); ++i) {
    ring->kept_.emplace(kKeptContexts[i], SecretKey::FromBytes(kf.kept->data() + i * kKeyBytes));
  }
  if (kf.link_key) {
    ring->link_key_ = std::make_unique<SecretKey>(SecretKey::FromBytes(kf.link_key->data()));
    ring->link_key_until_ = ParseRfc3339(kf.link_key_until).value_or(0);
  }
  ring->current_ = kf.current;
  for (const auto& [v, ver] : kf.versions) {
    ring->info_[v] = ver.info;
    if (ver.key) ring->roots_.emplace(v, SecretKey::FromBytes(ver.key->data()));
    if (!ver.info.token_key.empty() && !ring->token_) {
      GARDE_ASSIGN_OR_RETURN(auto token, TokenFor(path, kf.token_name));
      ring->token_ = token;
    }
  }
  return std::shared_ptr<const Keyring>(std::move(ring));
}

Result<uint32_t> Keyring::AddVersion(const std::string& path, RootHome home) {
  KeyringFile kf;
  GARDE_RETURN_IF_ERROR(ReadKeyringFile(path, &kf));
  const uint32_t next = kf.versions.rbegin()->first + 1;
  const bool on_token =
      home == RootHome::kToken ||
      (home == RootHome::kSameAsCurrent && !kf.versions.at(kf.current).info.token_key.empty());
  GARDE_ASSIGN_OR_RETURN(auto v, NewVersion(path, &kf, next, on_token));
  kf.versions[next] = std::move(v);
  kf.current = next;
  GARDE_RETURN_IF_ERROR(WriteKeyringFile(path, kf, /*exclusive=*/false));
  return next;
}

Status Keyring::Retire(const std::string& path, uint32_t version) {
  KeyringFile kf;
  GARDE_RETURN_IF_ERROR(ReadKeyringFile(path, &kf));
  auto it = kf.versions.find(version);
  if (it == kf.versions.end()) return NotFound("no root key version " + std::to_string(version));
  if (version == kf.current) return Conflict("the current root key cannot be retired");
  if (!it->second.info.retired_at.empty()) return Status::Ok();
  it->second.key.reset();  // sodium_free wipes it
  const std::string token_key = std::move(it->second.info.token_key);
  it->second.info.token_key.clear();
  it->second.info.retired_at = FormatRfc3339(SystemClock().Now());
  bool token_left = false;
  for (const auto& [n, v] : kf.versions) token_left |= !v.info.token_key.empty();
  if (!token_left) kf.token_name.clear();
  GARDE_RETURN_IF_ERROR(WriteKeyringFile(path, kf, /*exclusive=*/false));
  if (token_key.empty()) return Status::Ok();
  // The file no longer names it; now the token forgets it too.
  GARDE_ASSIGN_OR_RETURN(auto token, KeyringToken());
  return token->Destroy(token_key);
}

bool Keyring::Usable(uint32_t version) const {
  return Root(version) != nullptr || TokenKey(version) != nullptr;
}

const std::string* Keyring::TokenKey(uint32_t version) const {
  auto it = info_.find(version);
  if (it == info_.end() || it->second.token_key.empty() || !token_) return nullptr;
  return &it->second.token_key;
}

const SecretKey* Keyring::Root(uint32_t version) const {
  auto it = roots_.find(version);
  return it == roots_.end() ? nullptr : &it->second;
}

namespace {
SecretKey DeriveFrom(const SecretKey& master, KeyContext context) {
  ScopedKey out;
  crypto_kdf_derive_from_key(out.data(), kKeyBytes, 1, ContextName(context), master.data());
  return SecretKey::FromBytes(out.data());
}
bool IsKept(KeyContext context) {
  return std::find(std::begin(kKeptContexts), std::end(kKeptContexts), context) !=
         std::end(kKeptContexts);
}
}  // namespace

SecretKey Keyring::Derive(KeyContext context) const {
  auto kept = kept_.find(context);
  if (kept != kept_.end()) return SecretKey::FromBytes(kept->second.data());
  return DeriveFrom(*master_, context);
}

std::optional<SecretKey> Keyring::DerivePrevious(KeyContext context) const {
  if (!previous_ || IsKept(context)) return std::nullopt;
  return DeriveFrom(*previous_, context);
}

const SecretKey* Keyring::RetiredLinkKey(int64_t now) const {
  return link_key_ && now < link_key_until_ ? link_key_.get() : nullptr;
}

Result<uint32_t> Keyring::AddMaster(const std::string& path) {
  InitSodium();
  KeyringFile kf;
  GARDE_RETURN_IF_ERROR(ReadKeyringFile(path, &kf));
  if (kf.previous) {
    return Conflict("a master-key rotation to version " + std::to_string(kf.master_version) +
                    " is under way; finish it first");
  }
  if (!kf.kept) {
    // What the first master derives for these uses stays theirs from now on.
    kf.kept = std::make_unique<SecretBuffer>(kKeptBytes);
    const SecretKey first = SecretKey::FromBytes(kf.master.data());
    for (size_t i = 0; i < std::size(kKeptContexts); ++i) {
      const SecretKey sub = DeriveFrom(first, kKeptContexts[i]);
      std::memcpy(kf.kept->data() + i * kKeyBytes, sub.data(), kKeyBytes);
    }
  }
  kf.previous = std::make_unique<SecretBuffer>(kKeyBytes);
  std::memcpy(kf.previous->data(), kf.master.data(), kKeyBytes);
  kf.previous_version = kf.master_version;
  randombytes_buf(kf.master.data(), kKeyBytes);
  kf.master_version += 1;
  GARDE_RETURN_IF_ERROR(WriteKeyringFile(path, kf, /*exclusive=*/false));
  return kf.master_version;
}

Status Keyring::RetireMaster(const std::string& path, int64_t links_until) {
  KeyringFile kf;
  GARDE_RETURN_IF_ERROR(ReadKeyringFile(path, &kf));
  if (!kf.previous) return Status::Ok();
  // Links sent before the rotation keep working until they expire: only the link-token key
  // of the old master stays, the master itself is erased.
  kf.link_key = std::make_unique<SecretBuffer>(kKeyBytes);
  const SecretKey links =
      DeriveFrom(SecretKey::FromBytes(kf.previous->data()), KeyContext::kSubjectToken);
  std::memcpy(kf.link_key->data(), links.data(), kKeyBytes);
  kf.link_key_until = FormatRfc3339(links_until);
  kf.previous.reset();  // sodium_free wipes it
  kf.previous_version = 0;
  return WriteKeyringFile(path, kf, /*exclusive=*/false);
}

bool Keyring::DeriveWrappingKey(uint32_t version, uint8_t out[kKeyBytes]) const {
  const SecretKey* root = Root(version);
  if (root == nullptr) return false;
  crypto_kdf_derive_from_key(out, kKeyBytes, version, "gddekwrp", root->data());
  return true;
}

}  // namespace garde

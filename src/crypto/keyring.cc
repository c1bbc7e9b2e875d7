#include "garde/crypto/keyring.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"

namespace garde {
namespace {

constexpr const char* kFormat = "garde-keyring/1";

// The on-disk form, holding key bytes only while a file is read or written.
struct KeyringFile {
  Bytes master;
  uint32_t current = 0;
  struct Version {
    RootKeyInfo info;
    Bytes key;  // empty once retired
  };
  std::map<uint32_t, Version> versions;

  ~KeyringFile() {
    sodium_memzero(master.data(), master.size());
    for (auto& [v, ver] : versions) sodium_memzero(ver.key.data(), ver.key.size());
  }
};

void WipeString(std::string& s) {
  sodium_memzero(s.data(), s.size());
  s.clear();
}

Status ReadKeyringFile(const std::string& path, KeyringFile* out) {
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
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  Status bad = Unavailable("keyring " + path + " is not a valid garde keyring");
  try {
    Poco::JSON::Parser parser;
    auto root = parser.parse(text).extract<Poco::JSON::Object::Ptr>();
    WipeString(text);
    if (root->optValue<std::string>("format", "") != kFormat) return bad;
    std::string master_b64 = root->getValue<std::string>("master");
    auto master = Base64Decode(master_b64);
    WipeString(master_b64);
    if (!master || master->size() != kKeyBytes) return bad;
    out->master = std::move(*master);
    out->current = root->getValue<uint32_t>("current");
    auto versions = root->getArray("versions");
    if (!versions) return bad;
    for (size_t i = 0; i < versions->size(); ++i) {
      auto v = versions->getObject(static_cast<unsigned>(i));
      KeyringFile::Version ver;
      ver.info.version = v->getValue<uint32_t>("version");
      ver.info.created_at = v->optValue<std::string>("created_at", "");
      ver.info.retired_at = v->optValue<std::string>("retired_at", "");
      if (ver.info.retired_at.empty()) {
        std::string key_b64 = v->getValue<std::string>("key");
        auto key = Base64Decode(key_b64);
        WipeString(key_b64);
        if (!key || key->size() != kKeyBytes) return bad;
        ver.key = std::move(*key);
      }
      out->versions[ver.info.version] = std::move(ver);
    }
  } catch (const Poco::Exception&) {
    WipeString(text);
    return bad;
  } catch (const std::exception&) {
    WipeString(text);
    return bad;
  }
  auto cur = out->versions.find(out->current);
  if (cur == out->versions.end() || cur->second.key.empty()) return bad;
  return Status::Ok();
}

// Writes atomically: a 0600 temporary file, fsync, rename, fsync of the directory.
Status WriteKeyringFile(const std::string& path, const KeyringFile& kf, bool exclusive) {
  JsonWriter w;
  w.BeginObject().Key("format").String(kFormat);
  std::string master_b64 = Base64Encode(kf.master);
  w.Key("master").String(master_b64);
  WipeString(master_b64);
  w.Key("current").Int(kf.current).Key("versions").BeginArray();
  for (const auto& [v, ver] : kf.versions) {
    w.BeginObject().Key("version").Int(v).Key("created_at").String(ver.info.created_at);
    if (ver.key.empty()) {
      w.Key("key").Null().Key("retired_at").String(ver.info.retired_at);
    } else {
      std::string key_b64 = Base64Encode(ver.key);
      w.Key("key").String(key_b64);
      WipeString(key_b64);
    }
    w.EndObject();
  }
  w.EndArray().EndObject();
  std::string text = w.Take();
  text += '\n';

  if (exclusive && ::access(path.c_str(), F_OK) == 0) {
    WipeString(text);
    return Conflict("keyring " + path + " already exists");
  }
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    WipeString(text);
    return Internal("cannot create " + tmp);
  }
  const bool written =
      ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
      ::fsync(fd) == 0;
  ::close(fd);
  WipeString(text);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Internal("cannot write keyring " + path);
  }
  const std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos
                                              ? 0
                                              : path.find_last_of('/'));
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
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
  }
  return "gdunknwn";
}

}  // namespace

Status Keyring::Create(const std::string& path) {
  InitSodium();
  KeyringFile kf;
  kf.master.resize(kKeyBytes);
  randombytes_buf(kf.master.data(), kKeyBytes);
  KeyringFile::Version v1;
  v1.info.version = 1;
  v1.info.created_at = FormatRfc3339(SystemClock().Now());
  v1.key.resize(kKeyBytes);
  randombytes_buf(v1.key.data(), kKeyBytes);
  kf.versions[1] = std::move(v1);
  kf.current = 1;
  return WriteKeyringFile(path, kf, /*exclusive=*/true);
}

Result<std::shared_ptr<const Keyring>> Keyring::Load(const std::string& path) {
  InitSodium();
  KeyringFile kf;
  GARDE_RETURN_IF_ERROR(ReadKeyringFile(path, &kf));
  std::shared_ptr<Keyring> ring(new Keyring());  // private constructor
  ring->master_ = std::make_unique<SecretKey>(SecretKey::FromBytes(kf.master.data()));
  ring->current_ = kf.current;
  for (const auto& [v, ver] : kf.versions) {
    ring->info_[v] = ver.info;
    if (!ver.key.empty()) ring->roots_.emplace(v, SecretKey::FromBytes(ver.key.data()));
  }
  return std::shared_ptr<const Keyring>(std::move(ring));
}

Result<uint32_t> Keyring::AddVersion(const std::string& path) {
  KeyringFile kf;
  GARDE_RETURN_IF_ERROR(ReadKeyringFile(path, &kf));
  const uint32_t next = kf.versions.rbegin()->first + 1;
  KeyringFile::Version v;
  v.info.version = next;
  v.info.created_at = FormatRfc3339(SystemClock().Now());
  v.key.resize(kKeyBytes);
  randombytes_buf(v.key.data(), kKeyBytes);
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
  if (it->second.key.empty()) return Status::Ok();
  sodium_memzero(it->second.key.data(), it->second.key.size());
  it->second.key.clear();
  it->second.info.retired_at = FormatRfc3339(SystemClock().Now());
  return WriteKeyringFile(path, kf, /*exclusive=*/false);
}

const SecretKey* Keyring::Root(uint32_t version) const {
  auto it = roots_.find(version);
  return it == roots_.end() ? nullptr : &it->second;
}

SecretKey Keyring::Derive(KeyContext context) const {
  ScopedKey out;
  crypto_kdf_derive_from_key(out.data(), kKeyBytes, 1, ContextName(context), master_->data());
  return SecretKey::FromBytes(out.data());
}

bool Keyring::DeriveWrappingKey(uint32_t version, uint8_t out[kKeyBytes]) const {
  const SecretKey* root = Root(version);
  if (root == nullptr) return false;
  crypto_kdf_derive_from_key(out, kKeyBytes, version, "gddekwrp", root->data());
  return true;
}

}  // namespace garde

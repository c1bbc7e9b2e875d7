#include "garde/crypto/pkcs11_token.h"

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include <array>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace garde {
namespace {

constexpr size_t kIvBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr size_t kMaxSessions = 4;
constexpr size_t kMaxSecret = 64;   // the largest secret the cache keeps (data keys)
constexpr size_t kMaxSealed = 256;  // the largest Open() returns: keys, not documents

std::string Rv(CK_RV rv) {
  char text[32];
  std::snprintf(text, sizeof text, "CKR 0x%lx", static_cast<unsigned long>(rv));
  return text;
}

// Return values that say the token, or the way to it, is gone, rather than that this one
// call was wrong.
bool TokenGone(CK_RV rv) {
  switch (rv) {
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_MEMORY:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_GENERAL_ERROR:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_SLOT_ID_INVALID:
    case CKR_FUNCTION_FAILED:
    case CKR_KEY_HANDLE_INVALID:  // the token lost the key (its store went away)
    case CKR_OBJECT_HANDLE_INVALID: return true;
    default: return false;
  }
}

// AES-GCM with a 96-bit IV, a 128-bit tag, and `aad` bound in. The token reads, never
// writes, the buffers.
CK_GCM_PARAMS Gcm(const uint8_t* iv, std::string_view aad) {
  return {const_cast<uint8_t*>(iv),
          kIvBytes,
          kIvBytes * 8,
          reinterpret_cast<unsigned char*>(const_cast<char*>(aad.data())),
          aad.size(),
          kTagBytes * 8};
}

std::string TrimmedLabel(const unsigned char* label, size_t n) {
  std::string s(reinterpret_cast<const char*>(label), n);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// Finds a registered p11-kit module by name ("softhsm2") and returns its file; a value with
// a slash is a path already.
Result<std::string> ModuleFile(const std::string& module) {
  if (module.find('/') != std::string::npos) return module;
  CK_FUNCTION_LIST** all = p11_kit_modules_load(nullptr, P11_KIT_MODULE_UNMANAGED);
  std::string found;
  for (CK_FUNCTION_LIST** m = all; m != nullptr && *m != nullptr; ++m) {
    char* name = p11_kit_module_get_name(*m);
    if (name != nullptr && module == name) {
      char* file = p11_kit_module_get_filename(*m);
      if (file != nullptr) found = file;
      std::free(file);
    }
    std::free(name);
  }
  if (all != nullptr) p11_kit_modules_release(all);
  if (found.empty()) {
    return Unprocessable("pkcs11_module: no p11-kit module named '" + module +
                         "' (see `p11-kit list-modules`); give the module's path instead");
  }
  return found;
}

// Data keys opened recently: a fixed arena of secret memory, slots found by a BLAKE2b digest
// of (key label, associated data, box), evicted oldest first, each kept at most `ttl`.
class OpenedKeyCache {
 public:
  OpenedKeyCache(size_t entries, std::chrono::seconds ttl)
      : entries_(entries),
        ttl_(ttl),
        arena_(entries == 0 ? 1 : entries * kMaxSecret),
        owners_(entries) {}

  using Digest = std::array<uint8_t, 16>;
  static Digest Of(const std::string& label, std::string_view aad, std::span<const uint8_t> box) {
    crypto_generichash_state st;
    crypto_generichash_init(&st, nullptr, 0, 16);
    const uint8_t sep = 0;
    crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>(label.data()), label.size());
    crypto_generichash_update(&st, &sep, 1);
    crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>(aad.data()), aad.size());
    crypto_generichash_update(&st, &sep, 1);
    crypto_generichash_update(&st, box.data(), box.size());
    Digest d;
    crypto_generichash_final(&st, d.data(), d.size());
    return d;
  }

  bool Find(const Digest& d, uint8_t* out, size_t n) {
    if (entries_ == 0) return false;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = slots_.find(Key(d));
    if (it == slots_.end()) return false;
    if (std::chrono::steady_clock::now() >= it->second.expires || it->second.size != n) {
      Wipe(it->second.slot);
      slots_.erase(it);
      return false;
    }
    std::memcpy(out, arena_.data() + it->second.slot * kMaxSecret, n);
    return true;
  }

  void Keep(const Digest& d, const uint8_t* secret, size_t n) {
    if (entries_ == 0 || n > kMaxSecret) return;
    std::lock_guard<std::mutex> lock(mu_);
    const std::string key = Key(d);
    if (slots_.count(key) != 0) return;
    const size_t slot = next_;
    next_ = (next_ + 1) % entries_;
    if (!owners_[slot].empty()) slots_.erase(owners_[slot]);  // the oldest goes
    owners_[slot] = key;
    std::memcpy(arena_.data() + slot * kMaxSecret, secret, n);
    slots_[key] = {slot, n, std::chrono::steady_clock::now() + ttl_};
  }

  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    sodium_memzero(arena_.data(), arena_.size());
    slots_.clear();
    for (auto& o : owners_) o.clear();
  }

 private:
  static std::string Key(const Digest& d) {
    return {reinterpret_cast<const char*>(d.data()), d.size()};
  }
  void Wipe(size_t slot) {
    sodium_memzero(arena_.data() + slot * kMaxSecret, kMaxSecret);
    owners_[slot].clear();
  }
  struct Slot {
    size_t slot;
    size_t size;
    std::chrono::steady_clock::time_point expires;
  };
  const size_t entries_;
  const std::chrono::seconds ttl_;
  std::mutex mu_;
  SecretBuffer arena_;
  std::vector<std::string> owners_;  // digest held by each slot ("" when free)
  std::unordered_map<std::string, Slot> slots_;
  size_t next_ = 0;
};

}  // namespace

struct Pkcs11Token::Impl {
  Impl(const Pkcs11Settings& s, std::string_view pin_text)
      : pin(pin_text.empty() ? 1 : pin_text.size()),
        pin_size(pin_text.size()),
        cache(s.cache_entries, s.cache_ttl) {
    std::memcpy(pin.data(), pin_text.data(), pin_text.size());
  }

  CK_FUNCTION_LIST* fn = nullptr;
  std::string token_label;
  SecretBuffer pin;
  size_t pin_size;
  OpenedKeyCache cache;

  std::mutex mu;
  std::condition_variable cv;
  bool initialised = false;
  bool up = false;
  uint64_t generation = 0;
  CK_SLOT_ID slot = 0;
  std::vector<CK_SESSION_HANDLE> idle;
  size_t open_sessions = 0;
  std::map<std::string, CK_OBJECT_HANDLE> handles;
  std::chrono::steady_clock::time_point last_attempt{};
  std::chrono::steady_clock::time_point last_probe{};
  Status last_probe_status = Status::Ok();

  // (Re)connects: initialise the module, find the token, log in. mu held.
  Status ConnectLocked() {
    last_attempt = std::chrono::steady_clock::now();
    if (initialised) {
      p11_kit_module_finalize(fn);
      initialised = false;
    }
    idle.clear();
    open_sessions = 0;
    handles.clear();
    ++generation;
    CK_RV rv = p11_kit_module_initialize(fn);
    if (rv != CKR_OK) return Unavailable("the PKCS#11 module does not start (" + Rv(rv) + ")");
    initialised = true;
    CK_ULONG n = 0;
    rv = fn->C_GetSlotList(CK_TRUE, nullptr, &n);
    std::vector<CK_SLOT_ID> slots(n);
    if (rv == CKR_OK && n > 0) rv = fn->C_GetSlotList(CK_TRUE, slots.data(), &n);
    if (rv != CKR_OK) return Unavailable("the PKCS#11 module lists no slots (" + Rv(rv) + ")");
    bool found = false;
    for (CK_ULONG i = 0; i < n && !found; ++i) {
      CK_TOKEN_INFO info;
      if (fn->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
      if (TrimmedLabel(info.label, sizeof info.label) == token_label) {
        slot = slots[i];
        found = true;
      }
    }
    if (!found) return Unavailable("no PKCS#11 token labelled '" + token_label + "'");
    CK_SESSION_HANDLE session = 0;
    rv = fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session);
    if (rv != CKR_OK) return Unavailable("cannot open a PKCS#11 session (" + Rv(rv) + ")");
    rv = fn->C_Login(session, CKU_USER, pin.data(), pin_size);
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_LOCKED) {
      fn->C_CloseSession(session);
      return PermissionDenied("the PKCS#11 token refuses the PIN (" + Rv(rv) + ")");
    }
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      fn->C_CloseSession(session);
      return Unavailable("cannot log in to the PKCS#11 token (" + Rv(rv) + ")");
    }
    idle.push_back(session);
    open_sessions = 1;
    up = true;
    return Status::Ok();
  }

  void MarkGone(uint64_t gen) {
    std::lock_guard<std::mutex> lock(mu);
    if (gen != generation || !up) return;
    up = false;
    idle.clear();
    handles.clear();
    cache.Clear();  // a token that went away stops all decryption, cached or not
    cv.notify_all();
  }

  struct Lease {
    CK_SESSION_HANDLE session = 0;
    uint64_t generation = 0;
  };

  Result<Lease> Acquire() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      if (!up) {
        if (std::chrono::steady_clock::now() - last_attempt < std::chrono::seconds(1)) {
          return Unavailable("the PKCS#11 token is unavailable");
        }
        Status s = ConnectLocked();
        if (!s.ok()) {
          up = false;
          return s.code() == Code::kPermissionDenied ? s
                                                     : Unavailable(
                                                           "the PKCS#11 token is "
                                                           "unavailable: " +
                                                           s.message());
        }
      }
      if (!idle.empty()) {
        Lease l{idle.back(), generation};
        idle.pop_back();
        return l;
      }
      if (open_sessions < kMaxSessions) {
        CK_SESSION_HANDLE session = 0;
        const CK_RV rv = fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                                           nullptr, &session);
        if (rv == CKR_OK) {
          ++open_sessions;
          return Lease{session, generation};
        }
        if (!TokenGone(rv)) return Unavailable("cannot open a PKCS#11 session (" + Rv(rv) + ")");
        up = false;
        cache.Clear();
        continue;
      }
      cv.wait(lock);
    }
  }

  // Gives the session back when it goes out of scope.
  struct Held {
    Impl* impl;
    Lease lease;
    ~Held() { impl->Release(lease); }
  };

  void Release(const Lease& l) {
    std::lock_guard<std::mutex> lock(mu);
    if (l.generation == generation && up) idle.push_back(l.session);
    cv.notify_one();
  }

  // The object handle of a secret key by label. kNotFound when the token has none.
  // `fresh`: ask the token even when the handle is known (it may have lost the key).
  Result<CK_OBJECT_HANDLE> Find(const Lease& l, const std::string& label, bool fresh = false) {
    if (!fresh) {
      std::lock_guard<std::mutex> lock(mu);
      auto it = handles.find(label);
      if (it != handles.end() && l.generation == generation) return it->second;
    }
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
    };
    CK_RV rv = fn->C_FindObjectsInit(l.session, tmpl, 2);
    if (rv != CKR_OK) return Failure(l, rv, "find");
    CK_OBJECT_HANDLE found[2];
    CK_ULONG n = 0;
    rv = fn->C_FindObjects(l.session, found, 2, &n);
    fn->C_FindObjectsFinal(l.session);
    if (rv != CKR_OK) return Failure(l, rv, "find");
    if (n == 0) return NotFound("the PKCS#11 token holds no key '" + label + "'");
    if (n > 1) return Conflict("the PKCS#11 token holds two keys labelled '" + label + "'");
    std::lock_guard<std::mutex> lock(mu);
    if (l.generation == generation) handles[label] = found[0];
    return found[0];
  }

  // A key the operation needs: one the token lacks makes the operation unavailable (the
  // wrong token, or a key destroyed under a running service), not the caller's fault.
  Result<CK_OBJECT_HANDLE> KeyFor(const Lease& l, const std::string& label) {
    auto key = Find(l, label);
    if (!key.ok() && key.status().code() == Code::kNotFound) {
      return Unavailable(key.status().message());
    }
    return key;
  }

  void Forget(const std::string& label) {
    std::lock_guard<std::mutex> lock(mu);
    handles.erase(label);
  }

  Status Failure(const Lease& l, CK_RV rv, const std::string& what) {
    if (TokenGone(rv)) {
      MarkGone(l.generation);
      return Unavailable("the PKCS#11 token is unavailable (" + what + ": " + Rv(rv) + ")");
    }
    return Internal("PKCS#11 " + what + " failed (" + Rv(rv) + ")");
  }
};

Pkcs11Token::Pkcs11Token(Pkcs11Settings settings) : settings_(std::move(settings)) {}

Pkcs11Token::~Pkcs11Token() {
  if (impl_ && impl_->fn != nullptr) {
    if (impl_->initialised) p11_kit_module_finalize(impl_->fn);
    p11_kit_module_release(impl_->fn);
  }
}

Result<std::shared_ptr<Pkcs11Token>> Pkcs11Token::Connect(const Pkcs11Settings& settings,
                                                          std::string_view pin) {
  InitSodium();
  if (settings.token.empty()) return Unprocessable("pkcs11_token: the token's label is required");
  GARDE_ASSIGN_OR_RETURN(auto file, ModuleFile(settings.module));
  std::shared_ptr<Pkcs11Token> token(new Pkcs11Token(settings));
  token->impl_ = std::make_unique<Impl>(settings, pin);
  token->impl_->token_label = settings.token;
  token->impl_->fn = p11_kit_module_load(file.c_str(), 0);
  if (token->impl_->fn == nullptr) {
    return Unavailable("cannot load the PKCS#11 module " + file + ": " +
                       (p11_kit_message() ? p11_kit_message() : "unknown error"));
  }
  std::lock_guard<std::mutex> lock(token->impl_->mu);
  GARDE_RETURN_IF_ERROR(token->impl_->ConnectLocked());
  return token;
}

Status Pkcs11Token::Generate(const std::string& label) {
  GARDE_ASSIGN_OR_RETURN(auto lease, impl_->Acquire());
  Impl::Held held{impl_.get(), lease};
  auto existing = impl_->Find(lease, label);
  if (existing.ok()) return Conflict("the PKCS#11 token already holds a key '" + label + "'");
  if (existing.status().code() != Code::kNotFound) return existing.status();
  CK_MECHANISM mech{CKM_AES_KEY_GEN, nullptr, 0};
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_AES;
  CK_ULONG len = 32;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof cls},     {CKA_KEY_TYPE, &type, sizeof type},
      {CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &yes, sizeof yes},
      {CKA_PRIVATE, &yes, sizeof yes},   {CKA_SENSITIVE, &yes, sizeof yes},
      {CKA_EXTRACTABLE, &no, sizeof no}, {CKA_ENCRYPT, &yes, sizeof yes},
      {CKA_DECRYPT, &yes, sizeof yes},   {CKA_WRAP, &no, sizeof no},
      {CKA_UNWRAP, &no, sizeof no},      {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
  };
  CK_OBJECT_HANDLE key = 0;
  const CK_RV rv =
      impl_->fn->C_GenerateKey(lease.session, &mech, tmpl, sizeof tmpl / sizeof tmpl[0], &key);
  if (rv != CKR_OK) return impl_->Failure(lease, rv, "key generation");
  return Status::Ok();
}

Status Pkcs11Token::Destroy(const std::string& label) {
  GARDE_ASSIGN_OR_RETURN(auto lease, impl_->Acquire());
  Impl::Held held{impl_.get(), lease};
  auto key = impl_->Find(lease, label);
  if (!key.ok()) return key.status().code() == Code::kNotFound ? Status::Ok() : key.status();
  const CK_RV rv = impl_->fn->C_DestroyObject(lease.session, key.value());
  impl_->Forget(label);
  if (rv != CKR_OK) return impl_->Failure(lease, rv, "destroy");
  return Status::Ok();
}

Result<Bytes> Pkcs11Token::Seal(const std::string& label, std::string_view aad,
                                std::span<const uint8_t> plain) {
  GARDE_ASSIGN_OR_RETURN(auto lease, impl_->Acquire());
  Impl::Held held{impl_.get(), lease};
  GARDE_ASSIGN_OR_RETURN(auto key, impl_->KeyFor(lease, label));
  Bytes box(kIvBytes + plain.size() + kTagBytes);
  randombytes_buf(box.data(), kIvBytes);
  CK_GCM_PARAMS params = Gcm(box.data(), aad);
  CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
  CK_RV rv = impl_->fn->C_EncryptInit(lease.session, &mech, key);
  if (rv != CKR_OK) return impl_->Failure(lease, rv, "encrypt");
  CK_ULONG out_len = plain.size() + kTagBytes;
  rv = impl_->fn->C_Encrypt(lease.session, const_cast<uint8_t*>(plain.data()), plain.size(),
                            box.data() + kIvBytes, &out_len);
  if (rv != CKR_OK) return impl_->Failure(lease, rv, "encrypt");
  if (out_len != plain.size() + kTagBytes) return Internal("PKCS#11 encrypt: unexpected length");
  return box;
}

Status Pkcs11Token::Open(const std::string& label, std::string_view aad,
                         std::span<const uint8_t> box, uint8_t* out, size_t out_len) {
  if (out_len > kMaxSealed || box.size() != kIvBytes + out_len + kTagBytes) {
    return Damaged("sealed key of the wrong length");
  }
  const auto digest = OpenedKeyCache::Of(label, aad, box);
  {
    // A token found gone serves nothing from the cache; Acquire below tries to reconnect.
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->up && impl_->cache.Find(digest, out, out_len)) return Status::Ok();
  }
  GARDE_ASSIGN_OR_RETURN(auto lease, impl_->Acquire());
  Impl::Held held{impl_.get(), lease};
  auto key = impl_->KeyFor(lease, label);
  if (!key.ok()) return key.status();
  CK_GCM_PARAMS params = Gcm(box.data(), aad);
  CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
  CK_RV rv = impl_->fn->C_DecryptInit(lease.session, &mech, key.value());
  if (rv != CKR_OK) return impl_->Failure(lease, rv, "decrypt");
  std::array<uint8_t, kMaxSealed + kTagBytes> clear{};
  CK_ULONG clear_len = clear.size();
  rv = impl_->fn->C_Decrypt(lease.session, const_cast<uint8_t*>(box.data()) + kIvBytes,
                            box.size() - kIvBytes, clear.data(), &clear_len);
  if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
      (rv == CKR_OK && clear_len != out_len)) {
    sodium_memzero(clear.data(), clear.size());
    return Damaged("sealed key fails authentication");
  }
  if (rv != CKR_OK) {
    sodium_memzero(clear.data(), clear.size());
    return impl_->Failure(lease, rv, "decrypt");
  }
  std::memcpy(out, clear.data(), out_len);
  impl_->cache.Keep(digest, clear.data(), out_len);
  sodium_memzero(clear.data(), clear.size());
  return Status::Ok();
}

Status Pkcs11Token::Probe(const std::string& label) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (std::chrono::steady_clock::now() - impl_->last_probe < std::chrono::seconds(1)) {
      return impl_->last_probe_status;
    }
    impl_->last_probe = std::chrono::steady_clock::now();
  }
  Status result = Status::Ok();
  auto lease = impl_->Acquire();
  if (!lease.ok()) {
    result = lease.status();
  } else {
    // Finding the key reads the token's store again: a token whose store went away, or
    // that lost the key, fails here even while its sessions still answer.
    auto key = impl_->Find(lease.value(), label, /*fresh=*/true);
    if (!key.ok()) {
      result = key.status().code() == Code::kUnavailable
                   ? key.status()
                   : Unavailable("the PKCS#11 token does not hold " + label + ": " +
                                 key.status().message());
      impl_->MarkGone(lease->generation);
    }
    impl_->Release(lease.value());
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->last_probe_status = result;
  return result;
}

}  // namespace garde

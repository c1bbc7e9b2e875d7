#include "garde/crypto/checkpoint_signer.h"

#include <sodium.h>

#include <sstream>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"

namespace garde {
namespace {

constexpr const char* kDash = "\xE2\x80\x94";  // U+2014 EM DASH, as signed-note requires

std::string Body(const std::string& origin, const SignedHead& h) {
  std::string body = origin + "\n" + std::to_string(h.size) + "\n" +
                     Base64Encode(h.root.data(), h.root.size()) + "\ntime " +
                     FormatRfc3339(h.time) + "\n";
  if (h.actors) body += "actors " + Base64Encode(h.actors->data(), h.actors->size()) + "\n";
  return body;
}

}  // namespace

std::array<uint8_t, 4> CheckpointKeyId(const std::string& origin, const PublicKey& key) {
  std::string msg = origin + "\n";
  msg += '\x01';
  msg.append(reinterpret_cast<const char*>(key.data()), key.size());
  uint8_t digest[32];
  crypto_hash_sha256(digest, reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
  return {digest[0], digest[1], digest[2], digest[3]};
}

CheckpointSigner::CheckpointSigner(const SecretKey& seed, std::string origin)
    : secret_key_(crypto_sign_SECRETKEYBYTES), origin_(std::move(origin)) {
  crypto_sign_seed_keypair(public_key_.data(), secret_key_.data(), seed.data());
  if (origin_.empty()) {
    auto id = CheckpointKeyId("garde", public_key_);
    origin_ = "garde/" + HexEncode(id.data(), id.size());
  }
}

std::array<uint8_t, 64> CheckpointSigner::SignBytes(std::string_view message) const {
  std::array<uint8_t, 64> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const uint8_t*>(message.data()),
                       message.size(), secret_key_.data());
  return sig;
}

std::string CheckpointSigner::Sign(const SignedHead& head) const {
  const std::string body = Body(origin_, head);
  const auto sig = SignBytes(body);
  const auto id = CheckpointKeyId(origin_, public_key_);
  Bytes blob(id.begin(), id.end());
  blob.insert(blob.end(), sig.begin(), sig.end());
  return body + "\n" + kDash + " " + origin_ + " " + Base64Encode(blob) + "\n";
}

std::string CheckpointSigner::key_id_hex() const {
  auto id = CheckpointKeyId(origin_, public_key_);
  return HexEncode(id.data(), id.size());
}

std::string CheckpointSigner::verifier_key() const {
  Bytes k{0x01};
  k.insert(k.end(), public_key_.begin(), public_key_.end());
  return origin_ + "+" + key_id_hex() + "+" + Base64Encode(k);
}

Result<SignedHead> ParseCheckpoint(const std::string& note, const PublicKey& key,
                                   const std::string& origin) {
  const size_t split = note.find("\n\n");
  if (split == std::string::npos) return Unprocessable("checkpoint: no signature block");
  const std::string body = note.substr(0, split + 1);
  std::istringstream lines(body);
  std::string line_origin, line_size, line_root, line_time;
  std::getline(lines, line_origin);
  std::getline(lines, line_size);
  std::getline(lines, line_root);
  std::getline(lines, line_time);
  if (line_origin != origin) return Unprocessable("checkpoint: origin is not " + origin);
  SignedHead head;
  try {
    size_t used = 0;
    head.size = std::stoull(line_size, &used);
    if (used != line_size.size()) throw std::invalid_argument("size");
  } catch (...) {
    return Unprocessable("checkpoint: bad tree size");
  }
  auto root = Base64Decode(line_root);
  if (!root || root->size() != 32) return Unprocessable("checkpoint: bad root hash");
  std::copy(root->begin(), root->end(), head.root.begin());
  if (line_time.rfind("time ", 0) != 0) return Unprocessable("checkpoint: no time line");
  auto t = ParseRfc3339(line_time.substr(5));
  if (!t) return Unprocessable("checkpoint: bad time");
  head.time = *t;
  std::string line_actors;
  if (std::getline(lines, line_actors)) {
    if (line_actors.rfind("actors ", 0) != 0) return Unprocessable("checkpoint: unknown line");
    auto digest = Base64Decode(line_actors.substr(7));
    if (!digest || digest->size() != 32) return Unprocessable("checkpoint: bad actors digest");
    head.actors.emplace();
    std::copy(digest->begin(), digest->end(), head.actors->begin());
  }
  if (std::string extra; std::getline(lines, extra)) {
    return Unprocessable("checkpoint: unknown line");
  }

  const std::string prefix = std::string(kDash) + " " + origin + " ";
  const auto id = CheckpointKeyId(origin, key);
  std::istringstream sigs(note.substr(split + 2));
  std::string sig_line;
  while (std::getline(sigs, sig_line)) {
    if (sig_line.rfind(prefix, 0) != 0) continue;
    auto blob = Base64Decode(sig_line.substr(prefix.size()));
    if (!blob || blob->size() != 68 || !std::equal(id.begin(), id.end(), blob->begin())) {
      continue;  // another key's signature
    }
    if (crypto_sign_verify_detached(blob->data() + 4, reinterpret_cast<const uint8_t*>(body.data()),
                                    body.size(), key.data()) == 0) {
      return head;
    }
    return PermissionDenied("checkpoint: signature does not verify");
  }
  return PermissionDenied("checkpoint: no signature by this service's key");
}

}  // namespace garde

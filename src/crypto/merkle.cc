#include "garde/crypto/merkle.h"

// SHA256_Init/Update/Final: see Sha256() below.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <bit>
#include <cstdlib>

namespace garde {
namespace {

// Largest power of two strictly below n (n >= 2).
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

bool IsPowerOfTwo(uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

// SHA-256 through OpenSSL's libcrypto (linked already by Poco's NetSSL): it uses the CPU's SHA
// instructions, about 5x libsodium's portable SHA-256 per audit entry (199 vs 1 143 ns for
// a 250-byte entry, docs/benchmarks.md), and verifying or scoping the log is hashing every
// entry. The one-call SHA256_* functions (deprecated in OpenSSL 3 in favour of EVP, kept
// there) work on a context on the stack: no allocation, no provider look-up, no per-thread
// error state — which EVP allocates, and which static destructors hashing after OpenSSL's own
// exit handler ran would leak.
Hash Sha256(const uint8_t* prefix, size_t prefix_size, const void* data, size_t size) {
  SHA256_CTX ctx;
  Hash out;
  if (SHA256_Init(&ctx) != 1 ||
      (prefix_size != 0 && SHA256_Update(&ctx, prefix, prefix_size) != 1) ||
      SHA256_Update(&ctx, data, size) != 1 || SHA256_Final(out.data(), &ctx) != 1) {
    std::abort();  // cannot happen with a context on the stack: no hash beats a wrong one
  }
  return out;
}

}  // namespace

Hash LeafHash(std::string_view entry) {
  const uint8_t prefix = 0x00;
  return Sha256(&prefix, 1, entry.data(), entry.size());
}

Hash NodeHash(const Hash& left, const Hash& right) {
  uint8_t buf[65];
  buf[0] = 0x01;
  std::copy(left.begin(), left.end(), buf + 1);
  std::copy(right.begin(), right.end(), buf + 33);
  return Sha256(nullptr, 0, buf, sizeof buf);
}

Hash EmptyTreeHash() { return Sha256(nullptr, 0, "", 0); }

Result<Hash> MerkleTree::RangeHash(uint64_t start, uint64_t n) const {
  if (IsPowerOfTwo(n) && start % n == 0) {
    return source_(static_cast<unsigned>(std::countr_zero(n)), start / n);
  }
  const uint64_t k = SplitPoint(n);
  GARDE_ASSIGN_OR_RETURN(auto left, RangeHash(start, k));
  GARDE_ASSIGN_OR_RETURN(auto right, RangeHash(start + k, n - k));
  return NodeHash(left, right);
}

Result<Hash> MerkleTree::Root(uint64_t size) const {
  if (size == 0) return EmptyTreeHash();
  return RangeHash(0, size);
}

Status MerkleTree::Path(uint64_t m, uint64_t start, uint64_t n, std::vector<Hash>* out) const {
  if (n == 1) return Status::Ok();
  const uint64_t k = SplitPoint(n);
  if (m < k) {
    GARDE_RETURN_IF_ERROR(Path(m, start, k, out));
    GARDE_ASSIGN_OR_RETURN(auto right, RangeHash(start + k, n - k));
    out->push_back(right);
  } else {
    GARDE_RETURN_IF_ERROR(Path(m - k, start + k, n - k, out));
    GARDE_ASSIGN_OR_RETURN(auto left, RangeHash(start, k));
    out->push_back(left);
  }
  return Status::Ok();
}

Result<std::vector<Hash>> MerkleTree::InclusionProof(uint64_t index, uint64_t size) const {
  if (index >= size) return Unprocessable("index must be below size");
  std::vector<Hash> out;
  GARDE_RETURN_IF_ERROR(Path(index, 0, size, &out));
  return out;
}

// RFC 6962 §2.1.2 SUBPROOF(m, D[start:start+n], b).
Status MerkleTree::SubProof(uint64_t m, uint64_t start, uint64_t n, bool whole,
                            std::vector<Hash>* out) const {
  if (m == n) {
    if (whole) return Status::Ok();
    GARDE_ASSIGN_OR_RETURN(auto h, RangeHash(start, n));
    out->push_back(h);
    return Status::Ok();
  }
  const uint64_t k = SplitPoint(n);
  if (m <= k) {
    GARDE_RETURN_IF_ERROR(SubProof(m, start, k, whole, out));
    GARDE_ASSIGN_OR_RETURN(auto right, RangeHash(start + k, n - k));
    out->push_back(right);
  } else {
    GARDE_RETURN_IF_ERROR(SubProof(m - k, start + k, n - k, false, out));
    GARDE_ASSIGN_OR_RETURN(auto left, RangeHash(start, k));
    out->push_back(left);
  }
  return Status::Ok();
}

Result<std::vector<Hash>> MerkleTree::ConsistencyProof(uint64_t from, uint64_t to) const {
  if (from > to) return Unprocessable("from must not exceed to");
  std::vector<Hash> out;
  if (from == 0 || from == to) return out;
  GARDE_RETURN_IF_ERROR(SubProof(from, 0, to, true, &out));
  return out;
}

bool VerifyInclusion(const Hash& leaf_hash, uint64_t index, uint64_t size,
                     const std::vector<Hash>& proof, const Hash& root) {
  if (index >= size) return false;
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Hash r = leaf_hash;
  for (const Hash& p : proof) {
    if (sn == 0) return false;
    if ((fn & 1) == 1 || fn == sn) {
      r = NodeHash(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

bool VerifyConsistency(uint64_t from, uint64_t to, const Hash& from_root, const Hash& to_root,
                       const std::vector<Hash>& proof) {
  if (from > to) return false;
  if (from == to) return proof.empty() && from_root == to_root;
  if (from == 0) return proof.empty();
  if (proof.empty()) return false;
  std::vector<Hash> path = proof;
  if (IsPowerOfTwo(from)) path.insert(path.begin(), from_root);
  uint64_t fn = from - 1;
  uint64_t sn = to - 1;
  while ((fn & 1) == 1) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) return false;
    if ((fn & 1) == 1 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && fr == from_root && sr == to_root;
}

void MerkleAccumulator::Add(const Hash& leaf_hash) {
  stack_.push_back(leaf_hash);
  levels_.push_back(0);
  while (levels_.size() >= 2 && levels_[levels_.size() - 1] == levels_[levels_.size() - 2]) {
    const Hash right = stack_.back();
    stack_.pop_back();
    const unsigned level = levels_.back();
    levels_.pop_back();
    stack_.back() = NodeHash(stack_.back(), right);
    levels_.back() = level + 1;
  }
  ++size_;
}

Hash MerkleAccumulator::Root() const {
  if (stack_.empty()) return EmptyTreeHash();
  Hash r = stack_.back();
  for (size_t i = stack_.size() - 1; i-- > 0;) r = NodeHash(stack_[i], r);
  return r;
}

}  // namespace garde

// RFC 6962 / RFC 9162 §2.1 Merkle trees: leaf hash SHA-256(0x00 ‖ entry), node hash
// SHA-256(0x01 ‖ left ‖ right), split at the largest power of two below n; inclusion and
// consistency proofs and their verification.
//
//   MerkleTree tree(nodes);                         // nodes: hash of a perfect subtree
//   Result<Hash> root = tree.Root(size);
//   Result<std::vector<Hash>> proof = tree.InclusionProof(index, size);
//   bool ok = VerifyInclusion(leaf_hash, index, size, proof.value(), root.value());
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "garde/base/status.h"

namespace garde {

using Hash = std::array<uint8_t, 32>;

Hash LeafHash(std::string_view entry);
Hash NodeHash(const Hash& left, const Hash& right);
Hash EmptyTreeHash();

// Hash of the perfect subtree at `level` (2^level leaves) and position `index`, i.e. of
// leaves [index * 2^level, (index + 1) * 2^level). Level 0 is a leaf hash.
using SubtreeSource = std::function<Result<Hash>(unsigned level, uint64_t index)>;

class MerkleTree {
 public:
  explicit MerkleTree(SubtreeSource source) : source_(std::move(source)) {}

  Result<Hash> Root(uint64_t size) const;
  // Audit path of leaf `index` in the tree of `size` leaves (RFC 6962 PATH).
  Result<std::vector<Hash>> InclusionProof(uint64_t index, uint64_t size) const;
  // Proof that the tree of size `from` is a prefix of the tree of size `to` (RFC 6962 PROOF).
  Result<std::vector<Hash>> ConsistencyProof(uint64_t from, uint64_t to) const;

 private:
  // Hash of leaves [start, start + n): perfect aligned subtrees come from the source.
  Result<Hash> RangeHash(uint64_t start, uint64_t n) const;
  Status Path(uint64_t m, uint64_t start, uint64_t n, std::vector<Hash>* out) const;
  Status SubProof(uint64_t m, uint64_t start, uint64_t n, bool whole, std::vector<Hash>* out) const;
  SubtreeSource source_;
};

// RFC 9162 §2.1.3.2.
bool VerifyInclusion(const Hash& leaf_hash, uint64_t index, uint64_t size,
                     const std::vector<Hash>& proof, const Hash& root);
// RFC 9162 §2.1.4.2.
bool VerifyConsistency(uint64_t from, uint64_t to, const Hash& from_root, const Hash& to_root,
                       const std::vector<Hash>& proof);

// Builds a tree root incrementally from leaf hashes in order (a compact range), in O(log n)
// memory: what an offline verifier needs.
class MerkleAccumulator {
 public:
  void Add(const Hash& leaf_hash);
  uint64_t size() const { return size_; }
  Hash Root() const;

 private:
  std::vector<Hash> stack_;       // perfect subtree roots, largest first
  std::vector<unsigned> levels_;  // their levels
  uint64_t size_ = 0;
};

}  // namespace garde

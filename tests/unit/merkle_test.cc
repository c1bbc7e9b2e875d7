#include "garde/crypto/merkle.h"

#include <gtest/gtest.h>

#include "garde/base/encoding.h"

namespace garde {
namespace {

std::string Hex(const Hash& h) { return HexEncode(h.data(), h.size()); }
Hash FromHex(const char* s) {
  auto b = HexDecode(s);
  Hash h{};
  std::copy(b->begin(), b->end(), h.begin());
  return h;
}

// An in-memory source over leaf hashes, computing perfect subtrees on demand.
SubtreeSource MemorySource(const std::vector<Hash>& leaves) {
  return [&leaves](unsigned level, uint64_t index) -> Result<Hash> {
    std::function<Hash(unsigned, uint64_t)> node = [&](unsigned l, uint64_t i) -> Hash {
      if (l == 0) return leaves.at(i);
      return NodeHash(node(l - 1, 2 * i), node(l - 1, 2 * i + 1));
    };
    return node(level, index);
  };
}

// RFC 6962 reference leaves and roots (Certificate Transparency test data).
const char* kLeaves[] = {"",
                         "00",
                         "10",
                         "2021",
                         "3031",
                         "40414243",
                         "5051525354555657",
                         "606162636465666768696a6b6c6d6e6f"};
const char* kRoots[] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

std::vector<Hash> ReferenceLeafHashes() {
  std::vector<Hash> out;
  for (const char* l : kLeaves) out.push_back(LeafHash(AsStringView(*HexDecode(l))));
  return out;
}

TEST(Merkle, RootsMatchTheRfc6962ReferenceForEverySize) {
  const auto leaves = ReferenceLeafHashes();
  MerkleTree tree(MemorySource(leaves));
  for (uint64_t n = 0; n <= 8; ++n) {
    auto root = tree.Root(n);
    ASSERT_TRUE(root.ok());
    EXPECT_EQ(Hex(root.value()), kRoots[n]) << "size " << n;
    MerkleAccumulator acc;
    for (uint64_t i = 0; i < n; ++i) acc.Add(leaves[i]);
    EXPECT_EQ(Hex(acc.Root()), kRoots[n]) << "accumulator size " << n;
  }
}

TEST(Merkle, InclusionProofsMatchTheReference) {
  const auto leaves = ReferenceLeafHashes();
  MerkleTree tree(MemorySource(leaves));
  auto p0 = tree.InclusionProof(0, 8);
  ASSERT_TRUE(p0.ok());
  ASSERT_EQ(p0->size(), 3u);
  EXPECT_EQ(Hex((*p0)[0]), "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7");
  EXPECT_EQ(Hex((*p0)[1]), "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e");
  EXPECT_EQ(Hex((*p0)[2]), "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4");
  auto p5 = tree.InclusionProof(5, 8);
  ASSERT_TRUE(p5.ok());
  EXPECT_EQ(Hex((*p5)[0]), "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b");
  EXPECT_EQ(Hex((*p5)[1]), "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0");
  EXPECT_EQ(Hex((*p5)[2]), "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7");
  EXPECT_TRUE(VerifyInclusion(leaves[5], 5, 8, *p5, FromHex(kRoots[8])));
  EXPECT_FALSE(VerifyInclusion(leaves[4], 5, 8, *p5, FromHex(kRoots[8])));
  EXPECT_FALSE(VerifyInclusion(leaves[5], 4, 8, *p5, FromHex(kRoots[8])));
  // A size with another proof shape fails (for size 7 the shape is the same: the signed
  // checkpoint binds size and root together).
  EXPECT_FALSE(VerifyInclusion(leaves[5], 5, 6, *p5, FromHex(kRoots[8])));
}

TEST(Merkle, EveryProofOfEveryShapeVerifiesAndTamperedOnesDoNot) {
  std::vector<Hash> leaves;
  for (int i = 0; i < 37; ++i) leaves.push_back(LeafHash("entry-" + std::to_string(i)));
  MerkleTree tree(MemorySource(leaves));
  for (uint64_t n = 1; n <= leaves.size(); ++n) {
    const Hash root = tree.Root(n).value();
    for (uint64_t i = 0; i < n; ++i) {
      auto proof = tree.InclusionProof(i, n).value();
      ASSERT_TRUE(VerifyInclusion(leaves[i], i, n, proof, root)) << i << "/" << n;
      if (!proof.empty()) {
        proof[0][0] ^= 1;
        EXPECT_FALSE(VerifyInclusion(leaves[i], i, n, proof, root));
      }
    }
    for (uint64_t m = 0; m <= n; ++m) {
      auto proof = tree.ConsistencyProof(m, n).value();
      const Hash old_root = tree.Root(m).value();
      ASSERT_TRUE(VerifyConsistency(m, n, old_root, root, proof)) << m << "->" << n;
      if (m > 0 && m < n) {
        Hash wrong = old_root;
        wrong[3] ^= 1;
        EXPECT_FALSE(VerifyConsistency(m, n, wrong, root, proof)) << m << "->" << n;
      }
    }
  }
}

TEST(Merkle, ConsistencyProofMatchesTheReference) {
  const auto leaves = ReferenceLeafHashes();
  MerkleTree tree(MemorySource(leaves));
  auto p = tree.ConsistencyProof(2, 8);
  ASSERT_TRUE(p.ok());
  ASSERT_GE(p->size(), 2u);
  EXPECT_EQ(Hex((*p)[0]), "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e");
  EXPECT_EQ(Hex((*p)[1]), "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4");
}

}  // namespace
}  // namespace garde

#include "garde/base/bytes_by_id.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "garde/base/encoding.h"
#include "garde/base/sanitizers.h"

#ifdef GARDE_ADDRESS_SANITIZER
#include <sanitizer/lsan_interface.h>
#endif

namespace garde {
namespace {

// BytesById against std::unordered_map, over random puts, replacements, erasures, evictions
// and clears; ids drawn from a small pool so that they come back after being erased, and
// tables grown and shrunk through many sizes, with the probes' wrap-around at the end.
TEST(BytesById, AgreesWithAMapOverRandomOperations) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    const size_t pool = 1 + rng() % 3000;
    // Subject ids as minted (stored packed) beside ids of other shapes, some one character
    // away from a minted one (stored as they are): each must find only its own value.
    std::vector<std::string> ids(pool);
    const std::string alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
    for (size_t k = 0; k < pool; ++k) {
      if (k % 3 == 0) {
        ids[k] = "sub_" + std::to_string(k * 7919 % 100003);
        continue;
      }
      std::string minted = "sub_";
      for (int c = 0; c < 26; ++c) minted += alphabet[rng() % 32];
      if (k % 3 == 2 && k > 0) {  // a neighbour of the previous id, or a near miss
        minted = ids[k - 1];
        switch (rng() % 5) {
          case 0: minted[4 + rng() % 26] = 'A'; break;             // upper case
          case 1: minted[4 + rng() % 26] = 'i'; break;             // not Crockford
          case 2: minted[1] = 'x'; break;                          // another prefix
          case 3: minted.pop_back(); break;                        // 25 characters
          default: minted[4 + rng() % 26] = alphabet[rng() % 32];  // another minted id
        }
      }
      ids[k] = minted;
    }
    auto id_of = [&](size_t k) { return ids[k]; };
    auto value_of = [&](size_t k) {
      return std::string(rng() % 70, static_cast<char>('a' + k % 26)) + std::to_string(rng());
    };
    BytesById table;
    std::unordered_map<std::string, std::string> model;
    for (int step = 0; step < 20000; ++step) {
      const size_t k = rng() % pool;
      const std::string id = id_of(k);
      switch (rng() % 10) {
        case 0:
        case 1:
        case 2:
        case 3: {
          const std::string v = value_of(k);
          ASSERT_TRUE(table.Put(id, v));
          model[id] = v;
          break;
        }
        case 4:
        case 5:
          EXPECT_EQ(table.Erase(id), model.erase(id) == 1) << "seed " << seed << " step " << step;
          break;
        case 6: {
          const size_t before = table.size();
          table.EraseAny();
          ASSERT_EQ(table.size(), before == 0 ? 0 : before - 1);
          // Which one went: the model drops the id the table no longer finds.
          for (auto it = model.begin(); it != model.end();) {
            it = table.Find(it->first) ? std::next(it) : model.erase(it);
          }
          break;
        }
        case 7:
          if (rng() % 200 == 0) {
            table.Clear();
            model.clear();
          }
          break;
        default: {
          auto found = table.Find(id);
          auto it = model.find(id);
          ASSERT_EQ(found.has_value(), it != model.end()) << "seed " << seed << " step " << step;
          if (found) {
            ASSERT_EQ(*found, it->second);
          }
        }
      }
      ASSERT_EQ(table.size(), model.size()) << "seed " << seed << " step " << step;
    }
    for (const auto& [id, v] : model) {
      auto found = table.Find(id);
      ASSERT_TRUE(found.has_value()) << id;
      EXPECT_EQ(*found, v);
    }
    for (size_t k = 0; k < pool; ++k) {
      if (model.count(id_of(k)) == 0) {
        EXPECT_FALSE(table.Find(id_of(k)).has_value());
      }
    }
  }
}

TEST(BytesById, KeepsEmptyValuesAndRefusesIdsTooLongForItsLengthByte) {
  BytesById table;
  ASSERT_TRUE(table.Put("sub_empty", ""));
  ASSERT_TRUE(table.Find("sub_empty").has_value());
  EXPECT_EQ(table.Find("sub_empty")->size(), 0u);
  const std::string longest(BytesById::kMaxIdSize, 'x');
  EXPECT_TRUE(table.Put(longest, "v"));
  EXPECT_EQ(*table.Find(longest), "v");
  const std::string too_long(BytesById::kMaxIdSize + 1, 'x');
  EXPECT_FALSE(table.Put(too_long, "v"));
  EXPECT_FALSE(table.Find(too_long).has_value());
  EXPECT_FALSE(table.Find(longest.substr(1)).has_value());
  EXPECT_EQ(table.size(), 2u);
  table.Clear();
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.bytes(), 0u);
  EXPECT_FALSE(table.Find("sub_empty").has_value());
}

// A full cache evicts one entry for each it keeps, for as long as it runs: the table must
// stay as spread out as random puts leave it. (Evicting in a sweep filled the slots just ahead
// of the sweep solid: runs of thousands that every probe and shift there walked.)
TEST(BytesById, EvictingForEveryPutKeepsRunsShort) {
  BytesById table;
  constexpr int kKept = 20000;
  int next = 0;
  for (; next < kKept; ++next) table.Put("sub_" + std::to_string(next), "v");
  const size_t fresh = table.LongestRun();
  for (int lap = 0; lap < 10 * kKept; ++lap, ++next) {
    table.EraseAny();
    table.Put("sub_" + std::to_string(next), "v");
  }
  EXPECT_EQ(table.size(), static_cast<size_t>(kKept));
  EXPECT_LT(table.LongestRun(), std::max<size_t>(4 * fresh, 200)) << "fresh " << fresh;
}

// What a kept subject costs, as the allocator counts it: the point of the table. The tests
// allocate with glibc's malloc, whose usable size is 56 bytes for this entry's 46 (jemalloc's
// in the service: 48), about 66 a subject with its slot; ids stored as they are made the
// entry 62 bytes (72 usable), about 82 a subject.
TEST(BytesById, ManySubjectsCostLessThanSeventyTwoBytesEach) {
  BytesById table;
  const std::string facts(27, 'f');
  for (int i = 0; i < 200000; ++i) {
    ASSERT_TRUE(table.Put(
        "sub_" + std::string(22 - std::to_string(i).size(), '0') + std::to_string(i) + "abcd",
        facts));
  }
  EXPECT_EQ(table.size(), 200000u);
  EXPECT_LT(table.bytes() / table.size(), 72u) << table.bytes();
}

#ifdef GARDE_ADDRESS_SANITIZER
// A slot holds its entry's address with a tag in the top bits, which LeakSanitizer does not
// take for a pointer: a check while the table holds entries (as libFuzzer runs between
// inputs) must not report them as leaked.
TEST(BytesById, LeakSanitizerDoesNotTakeHeldEntriesForLeaks) {
  auto table = std::make_unique<BytesById>();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(table->Put(RandomId("sub_"), "facts"));
  EXPECT_EQ(__lsan_do_recoverable_leak_check(), 0);
}
#endif

}  // namespace
}  // namespace garde

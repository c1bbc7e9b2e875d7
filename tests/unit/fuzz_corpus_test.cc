// Replays the fuzzing corpus (tests/fuzz/corpus) through the HTTP edge in every build,
// including the sanitizer build: each input must keep the contract.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../fuzz/http_fuzz_harness.h"

namespace garde::fuzz {
namespace {

TEST(FuzzCorpus, EveryInputGetsANon5xxAnswerAndProblemJsonErrors) {
  HttpFuzzHarness harness;
  int inputs = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(GARDE_TEST_FIXTURES "/../fuzz/corpus")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string data = ss.str();
    const Exchange x = harness.Run(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    EXPECT_TRUE(HttpFuzzHarness::KeepsContract(x))
        << entry.path() << ": " << x.status << " " << x.reply;
    ++inputs;
  }
  EXPECT_GE(inputs, 10);
}

}  // namespace
}  // namespace garde::fuzz

// Data-key unwraps: through a PKCS#11 token (SoftHSM2) with the cache cold (every open goes to
// the token) and warm, beside the file keyring's in-process unwrap. bench/keys.sh sets up the
// token and runs this with:
//   SOFTHSM2_CONF=... garde_bench_token --module softhsm2 --token T --pin-file F
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "garde/crypto/envelope.h"
#include "garde/crypto/pkcs11_token.h"

namespace garde {
namespace {

std::shared_ptr<Pkcs11Token> g_cold, g_warm;
const std::string kLabel = "garde-bench-root";

struct Box {
  Bytes sealed;
  std::string aad = "garde.dek.v1:bench";
};
Box& TheBox() {
  static Box box;
  return box;
}

// Opens the same sealed data key over and over: through `token` with its cache off (cold:
// every open goes to the token) or on (warm: served from the cache).
void BM_TokenOpen(benchmark::State& state, std::shared_ptr<Pkcs11Token>* token) {
  uint8_t out[kKeyBytes];
  for (auto _ : state) {
    Status s = (*token)->Open(kLabel, TheBox().aad, TheBox().sealed, out, kKeyBytes);
    if (!s.ok()) state.SkipWithError(s.message().c_str());
    benchmark::DoNotOptimize(out);
  }
  state.counters["unwraps/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_TokenOpen, Cold, &g_cold)->UseRealTime()->Threads(1)->Threads(2);
BENCHMARK_CAPTURE(BM_TokenOpen, Warm, &g_warm)->UseRealTime()->Threads(1)->Threads(2);

void BM_TokenSeal(benchmark::State& state) {
  uint8_t dek[kKeyBytes] = {1};
  for (auto _ : state) {
    auto box = g_cold->Seal(kLabel, TheBox().aad, {dek, kKeyBytes});
    if (!box.ok()) state.SkipWithError(box.status().message().c_str());
    benchmark::DoNotOptimize(box);
  }
  state.counters["wraps/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TokenSeal)->UseRealTime();

}  // namespace
}  // namespace garde

int main(int argc, char** argv) {
  using namespace garde;
  std::string module = "softhsm2", token = "garde-bench", pin_file;
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--module")
      module = argv[++i];
    else if (a == "--token")
      token = argv[++i];
    else if (a == "--pin-file")
      pin_file = argv[++i];
  }
  std::string pin;
  std::ifstream(pin_file) >> pin;
  Pkcs11Settings cold{module, token, 0, std::chrono::seconds(300)};
  Pkcs11Settings warm{module, token, 65536, std::chrono::seconds(300)};
  auto c = Pkcs11Token::Connect(cold, pin);
  auto w = Pkcs11Token::Connect(warm, pin);
  if (!c.ok() || !w.ok()) {
    std::cerr << "token: " << (c.ok() ? w.status() : c.status()).message() << "\n";
    return 1;
  }
  g_cold = c.value();
  g_warm = w.value();
  g_cold->Destroy(kLabel).IgnoreError();
  if (Status s = g_cold->Generate(kLabel); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  uint8_t dek[kKeyBytes];
  randombytes_buf(dek, sizeof dek);
  TheBox().sealed = g_cold->Seal(kLabel, TheBox().aad, {dek, kKeyBytes}).value();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  g_cold->Destroy(kLabel).IgnoreError();
  // Closed before exit: SoftHSM2's own statics may be gone by the time ours are destroyed.
  g_cold.reset();
  g_warm.reset();
  return 0;
}

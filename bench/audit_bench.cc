// Audit log benchmarks (Google Benchmark), all in one run:
//   BM_CreateSubject/audit:{0,1}  durable vault writes with the audit journal off and on
//   BM_InclusionProof             an inclusion proof in a 1M-entry log (server-side work)
//   BM_VerifyLog                  offline verification of the whole 1M-entry log
//
//   build/bench/garde_bench_audit --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <atomic>
#include <filesystem>
#include <random>

#include "garde/app/deployment.h"
#include "garde/base/log.h"

namespace garde {
namespace {

// Records nothing: the "audit off" side of the comparison. Benchmark-only.
class NoJournal final : public AccessJournal {
 public:
  Status Record(WriteTx*, const Caller&, const AccessEvent&) override { return Status::Ok(); }
};

struct Fixture {
  std::string dir;
  std::unique_ptr<Deployment> d;
  NoJournal none;
  std::unique_ptr<SubjectVault> unaudited;

  explicit Fixture(const char* name, bool durable) {
    dir = (std::filesystem::temp_directory_path() / name).string();
    std::filesystem::remove_all(dir);
    SetUpLogging("off", "");
    Config cfg;
    cfg.data_dir = dir;
    cfg.policies_dir = GARDE_SOURCE_POLICIES;
    cfg.durable = durable;
    if (!Deployment::Initialise(cfg).ok()) std::abort();
    d = std::move(Deployment::Open(cfg).value());
    // The same vault wiring with the journal swapped out.
    static EntryStandard standard("FR");
    static auto blind = BlindIndex(d->keys().Current()->Derive(KeyContext::kBlindIndex));
    unaudited = std::make_unique<SubjectVault>(VaultDeps{d->store(), d->keys(), blind,
                                                         d->suppression_hash(), standard,
                                                         d->policies(), none, d->clock()});
  }
  ~Fixture() {
    unaudited.reset();
    d.reset();
    std::filesystem::remove_all(dir);
  }
};

Fixture& Writes() {
  static Fixture f("garde-bench-audit-writes", true);
  return f;
}

std::atomic<long> g_counter{0};

void BM_CreateSubject(benchmark::State& state) {
  Fixture& f = Writes();
  const bool audited = state.range(0) == 1;
  SubjectVault& vault = audited ? f.d->vault() : *f.unaudited;
  Caller op{"key_bench", "operator", {}, "req_bench", ""};
  for (auto _ : state) {
    NewSubject s;
    s.kind = "person";
    s.source = "bench";
    s.fields["email"] = FieldValue::String("w" + std::to_string(g_counter++) + "@bench.example");
    s.fields["first_name"] = FieldValue::String("Ana");
    auto r = vault.Create(op, s);
    if (!r.ok()) state.SkipWithError(r.status().message().c_str());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CreateSubject)->ArgName("audit")->Arg(0)->Arg(1)->Threads(32)->UseRealTime()
    ->MinTime(5);

constexpr uint64_t kEntries = 1000000;

Fixture& BigLog() {
  static Fixture* f = [] {
    auto* fx = new Fixture("garde-bench-audit-1m", false);  // lives for the process
    Caller c{"key_bench", "marketing", {}, "req_bench", ""};
    for (uint64_t done = 0; done < kEntries;) {
      Status s = fx->d->store().Write([&](WriteTx& tx) -> Status {
        for (int i = 0; i < 10000 && done < kEntries; ++i, ++done) {
          GARDE_RETURN_IF_ERROR(fx->d->audit().Record(
              &tx, c, {"subject.read", "sub_0123456789abcdefghjkmnpqrs", "marketing_email",
                       "ok", {"email", "first_name"}, 1}));
        }
        return Status::Ok();
      });
      if (!s.ok()) std::abort();
    }
    if (!fx->d->audit().Checkpoint().ok()) std::abort();
    return fx;
  }();
  return *f;
}

void BM_InclusionProof(benchmark::State& state) {
  Fixture& f = BigLog();
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    auto p = f.d->audit().InclusionProof(rng() % kEntries, kEntries);
    if (!p.ok()) state.SkipWithError("proof failed");
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_InclusionProof)->Unit(benchmark::kMicrosecond)->MinTime(2);

void BM_VerifyLog(benchmark::State& state) {
  Fixture& f = BigLog();
  for (auto _ : state) {
    auto report = VerifyAuditLog(f.d->audit_store(), f.d->signer().public_key(), f.d->signer().origin(),
                                 {}, nullptr);
    if (!report.ok() || report.entries != kEntries) state.SkipWithError("verify failed");
  }
  state.counters["entries"] = static_cast<double>(kEntries);
}
BENCHMARK(BM_VerifyLog)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace garde

BENCHMARK_MAIN();

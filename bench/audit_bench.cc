// Audit log benchmarks (Google Benchmark), all in one run:
//   BM_CreateSubject/audit:{0,1}  durable vault writes with the audit journal off and on
//   BM_InclusionProof             an inclusion proof in a 1M-entry log (server-side work)
//   BM_VerifyLog                  offline verification of the whole 1M-entry log
//   BM_ImportReads                reads recorded to the journal until they are in the log
//   BM_ScopeIncident              an incident scoped to one leaked key over a 10M-entry log
//                                 (GARDE_BENCH_SCOPE_ENTRIES), its entries proved and counted
//
//   build/bench/garde_bench_audit --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>

#include "garde/app/breach_register.h"
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
    unaudited = std::make_unique<SubjectVault>(VaultDeps{d->store(), d->keys(), d->lookup(),
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
// Creates per second of the last run of each (audit, round), for the summary line.
std::map<std::pair<int64_t, int64_t>, double> g_rates;

void BM_CreateSubject(benchmark::State& state) {
  Fixture& f = Writes();
  const bool audited = state.range(0) == 1;
  SubjectVault& vault = audited ? f.d->vault() : *f.unaudited;
  Caller op{"key_bench", "operator", {}, "req_bench", ""};
  const auto started = std::chrono::steady_clock::now();
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
  if (state.thread_index() == 0) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    g_rates[{state.range(0), state.range(1)}] =
        static_cast<double>(state.iterations()) * state.threads() / secs;
    // Entries the importer has not logged yet would hide work: log them now, and show how
    // long that took (a few milliseconds when it keeps up).
    const auto flush_started = std::chrono::steady_clock::now();
    if (!f.d->audit().Flush().ok()) state.SkipWithError("audit flush failed");
    state.counters["backlog_ms"] =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - flush_started)
            .count();
  }
}
// Off and on in ABBA order over two rounds after a warm-up round (round 0, left out of the
// summary): the database grows during the run, and a plain "off, then on" would charge that
// growth (and the first run's empty, fast database) to the audit.
BENCHMARK(BM_CreateSubject)
    ->ArgNames({"audit", "round"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({1, 2})
    ->Args({0, 2})
    ->Threads(32)
    ->UseRealTime()
    ->MinTime(5);

constexpr uint64_t kEntries = 1000000;

Fixture& BigLog() {
  static Fixture* f = [] {
    auto* fx = new Fixture("garde-bench-audit-1m", false);  // lives for the process
    Caller c{"key_bench", "marketing", {}, "req_bench", ""};
    for (uint64_t done = 0; done < kEntries;) {
      Status s = fx->d->store().Write([&](WriteTx& tx) -> Status {
        for (int i = 0; i < 10000 && done < kEntries; ++i, ++done) {
          GARDE_RETURN_IF_ERROR(fx->d->audit().Record(&tx, c,
                                                      {"subject.read",
                                                       "sub_0123456789abcdefghjkmnpqrs",
                                                       "marketing_email",
                                                       "ok",
                                                       {"email", "first_name"},
                                                       1}));
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
    auto report = VerifyAuditLog(f.d->audit_store(), f.d->signer().public_key(),
                                 f.d->signer().origin(), {}, nullptr);
    if (!report.ok() || report.entries != kEntries) state.SkipWithError("verify failed");
  }
  state.counters["entries"] = static_cast<double>(kEntries);
}
BENCHMARK(BM_VerifyLog)->Unit(benchmark::kMillisecond)->Iterations(3);

// How fast the importer logs reads (what every GET and consent check records): 50 000
// reads of random subjects among 100 000, recorded as the routes do, until a flush has
// logged the last one. The importer runs while they are recorded, as in the service.
void BM_ImportReads(benchmark::State& state) {
  static Fixture f("garde-bench-audit-import", false);
  static const std::vector<std::string> subjects = [] {
    std::vector<std::string> ids;
    for (int i = 0; i < 100000; ++i) ids.push_back(RandomId("sub_"));
    return ids;
  }();
  constexpr int kReads = 50000;
  Caller c{"key_bench", "operator", {}, "req_bench", ""};
  std::mt19937_64 rng(11);
  for (auto _ : state) {
    for (int i = 0; i < kReads; ++i) {
      Status s = f.d->audit().Record(nullptr, c,
                                     {"subject.read",
                                      subjects[rng() % subjects.size()],
                                      "customer_management",
                                      "ok",
                                      {"email", "first_name"},
                                      1});
      if (!s.ok()) state.SkipWithError("record failed");
    }
    if (!f.d->audit().Flush().ok()) state.SkipWithError("flush failed");
  }
  state.counters["entries_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kReads, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ImportReads)->Unit(benchmark::kMillisecond)->Iterations(8)->UseRealTime();

// Breach scoping (incidents issue): a log of GARDE_BENCH_SCOPE_ENTRIES entries (10M by
// default) written by 100 keys over 100 000 subjects; key 7 is the leaked one and wrote one
// entry in 1 000. Each iteration signs a head, proves each of the key's entries against it
// (found through the actor index, counted against the head's signed count) and lists the
// key's subjects with fields and entry positions, as POST /v1/incidents/{id}:scope does.
// The untimed first call counts every actor's entries once (no checkpoint was signed yet).
void BM_ScopeIncident(benchmark::State& state) {
  const char* env = std::getenv("GARDE_BENCH_SCOPE_ENTRIES");
  const uint64_t total = env != nullptr ? std::strtoull(env, nullptr, 10) : 10000000;
  static Fixture f("garde-bench-audit-scope", false);
  std::vector<std::string> subjects;
  for (int i = 0; i < 100000; ++i) subjects.push_back(RandomId("sub_"));
  const auto built = std::chrono::steady_clock::now();
  std::mt19937_64 rng(13);
  uint64_t leaked_entries = 0;
  for (uint64_t done = 0; done < total;) {
    Status s = f.d->store().Write([&](WriteTx& tx) -> Status {
      for (int i = 0; i < 20000 && done < total; ++i, ++done) {
        const bool leaked = done % 1000 == 7;
        leaked_entries += leaked ? 1 : 0;
        char actor[16];
        std::snprintf(actor, sizeof actor, "key_bench%02d",
                      leaked ? 7 : static_cast<int>(done % 97) + 10);
        Caller c{actor, "marketing", {}, "req_bench", ""};
        GARDE_RETURN_IF_ERROR(f.d->audit().Record(&tx, c,
                                                  {"subject.read",
                                                   subjects[rng() % subjects.size()],
                                                   "marketing_email",
                                                   "ok",
                                                   {"email", "first_name"},
                                                   1}));
      }
      return Status::Ok();
    });
    if (!s.ok()) std::abort();
    if (done % 1000000 == 0 && !f.d->audit().Flush().ok()) std::abort();
  }
  if (!f.d->audit().Flush().ok()) std::abort();
  std::fprintf(stderr, "built a %llu-entry log in %.1f s\n", static_cast<unsigned long long>(total),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - built).count());
  const Caller officer{"key_officer", "officer", {}, "req_bench", ""};
  auto incident = f.d->breaches().Open(officer, R"({"title":"leaked key"})", 0, 0);
  if (!incident.ok()) {
    state.SkipWithError(incident.status().message().c_str());
    return;
  }
  BreachScope scope;
  scope.actor = "key_bench07";
  // Untimed: the first scope's checkpoint logs what the build left pending.
  if (!f.d->breaches().Scope(officer, incident->row.id, scope).ok()) std::abort();
  size_t listed = 0;
  for (auto _ : state) {
    auto scoped = f.d->breaches().Scope(officer, incident->row.id, scope);
    if (!scoped.ok()) {
      state.SkipWithError(scoped.status().message().c_str());
      return;
    }
    listed = scoped->facts.size();
  }
  state.counters["entries"] = static_cast<double>(total);
  state.counters["leaked_entries"] = static_cast<double>(leaked_entries);
  state.counters["facts_bytes"] = static_cast<double>(listed);
}
BENCHMARK(BM_ScopeIncident)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace
}  // namespace garde

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  double off = 0, on = 0;
  int n_off = 0, n_on = 0;
  for (const auto& [key, rate] : garde::g_rates) {
    if (key.second == 0) continue;  // warm-up
    (key.first == 1 ? on : off) += rate;
    ++(key.first == 1 ? n_on : n_off);
  }
  if (n_off > 0 && n_on > 0) {
    off /= n_off;
    on /= n_on;
    std::printf("audit off %.0f creates/s, audit on %.0f creates/s: write throughput drop %.1f%%\n",
                off, on, 100.0 * (1.0 - on / off));
  }
  return 0;
}

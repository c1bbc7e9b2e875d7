// Data-subject request benchmarks (Google Benchmark), durable commits, one subject holding
// 1 000 consent events (each with its signed receipt) and a few hundred audit entries:
//   BM_Erasure          completing an erasure: destroy fields, index entries, consent
//                       events and the data key, tombstone, outbox, audit, one commit
//   BM_AccessPackage    building the Art. 15 access package (officer preview, audited)
//   BM_CompleteAccess   completing an access request: build, seal and store the package
// Each repetition is one operation on a fresh request; medians are what to quote.
//
//   build/bench/garde_bench_dsr
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "garde/app/deployment.h"
#include "garde/base/encoding.h"
#include "garde/base/log.h"

namespace garde {
namespace {

[[noreturn]] void Die(int line) {
  std::fprintf(stderr, "dsr_bench: set-up failed at line %d\n", line);
  std::exit(1);
}

constexpr int kEvents = 1000;
constexpr int kReads = 300;  // earlier reads of the subject, so the package lists accesses

const Caller kOperator{
    "key_bench_op", "operator", {"customer_management", "marketing_email"}, "req_bench", ""};
const Caller kOfficer{"key_bench_dpo", "officer", {}, "req_bench", ""};

struct Fixture {
  std::string dir;
  std::unique_ptr<Deployment> d;

  Fixture() {
    dir = (std::filesystem::temp_directory_path() / "garde-bench-dsr").string();
    std::filesystem::remove_all(dir);
    SetUpLogging("off", "");
    Config cfg;
    cfg.data_dir = dir;
    cfg.policies_dir = GARDE_SOURCE_POLICIES;
    cfg.durable = true;
    if (!Deployment::Initialise(cfg).ok()) Die(__LINE__);
    d = std::move(Deployment::Open(cfg).value());
  }
  ~Fixture() {
    d.reset();
    std::filesystem::remove_all(dir);
  }

  // A customer with six fields, kEvents consent events and kReads audited reads.
  std::string Customer(int n) {
    NewSubject s;
    s.kind = "person";
    s.source = "bench";
    auto text = [](std::string v) { return FieldValue::String(std::move(v)); };
    s.fields["email"] = text("bench" + std::to_string(n) + "@example.org");
    s.fields["first_name"] = text("Benoît");
    s.fields["last_name"] = text("Mark");
    s.fields["city"] = text("Lyon");
    s.fields["postal_code"] = text("69002");
    s.fields["phone"] = text("+3361" + std::to_string(1000000 + n).substr(0, 7));
    auto created = d->vault().Create(kOperator, s);
    if (!created.ok()) Die(__LINE__);
    const std::string id = created->id;
    // One real, signed event; the rest are copies of it (same size, fresh ids).
    ConsentRequest grant;
    grant.purpose = "marketing.email";
    grant.event = "granted";
    grant.notice_version = "2026-01";
    grant.method = "web_form";
    auto first = d->consents().Record(kOperator, id, grant);
    if (!first.ok()) Die(__LINE__);
    Status seeded = d->store().Write([&](WriteTx& tx) -> Status {
      auto events = tx.ConsentEventsOf(id);
      if (!events.ok() || events->empty()) return Internal("no seed event");
      ConsentEventRow row = events->front();
      for (int i = 1; i < kEvents; ++i) {
        row.id = RandomId("cev_");
        row.event = i % 2 ? "withdrawn" : "granted";
        row.at += 60;
        GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(row));
      }
      return Status::Ok();
    });
    if (!seeded.ok()) Die(__LINE__);
    for (int i = 0; i < kReads; ++i) {
      if (!d->vault().Read(kOperator, id, "marketing_email").ok()) Die(__LINE__);
    }
    return id;
  }

  std::string Verified(const std::string& subject, const char* type) {
    NewRequest in;
    in.type = type;
    in.subject = subject;
    auto r = d->requests().Open(kOperator, in);
    if (!r.ok() || !d->requests().Verify(kOfficer, r->row.id, "bench").ok()) Die(__LINE__);
    return r->row.id;
  }
};

Fixture& Shared() {
  static Fixture f;
  return f;
}

void BM_Erasure(benchmark::State& state) {
  Fixture& f = Shared();
  static int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string request = f.Verified(f.Customer(++n), "erasure");
    state.ResumeTiming();
    auto done = f.d->requests().Complete(kOfficer, request, "");
    if (!done.ok()) state.SkipWithError(done.status().message().c_str());
  }
}
BENCHMARK(BM_Erasure)
    ->Iterations(1)
    ->Repetitions(40)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_AccessPackage(benchmark::State& state) {
  Fixture& f = Shared();
  static const std::string request = f.Verified(f.Customer(100000), "access");
  size_t bytes = 0;
  for (auto _ : state) {
    auto package = f.d->requests().Package(kOfficer, request);
    if (!package.ok()) state.SkipWithError(package.status().message().c_str());
    bytes = package.ok() ? package->size() : 0;
  }
  state.counters["package_kB"] = static_cast<double>(bytes) / 1000.0;
}
BENCHMARK(BM_AccessPackage)
    ->Iterations(1)
    ->Repetitions(40)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_CompleteAccess(benchmark::State& state) {
  Fixture& f = Shared();
  static const std::string subject = f.Customer(200000);
  for (auto _ : state) {
    state.PauseTiming();
    const std::string request = f.Verified(subject, "access");
    state.ResumeTiming();
    auto done = f.d->requests().Complete(kOfficer, request, "");
    if (!done.ok()) state.SkipWithError(done.status().message().c_str());
  }
}
BENCHMARK(BM_CompleteAccess)
    ->Iterations(1)
    ->Repetitions(40)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace garde

BENCHMARK_MAIN();

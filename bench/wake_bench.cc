// What it costs one thread to wake another on this machine: two threads hand a turn back and
// forth through a mutex and a condition variable, as a worker and a group commit's leader do.
// Every round trip is two wakes; the CPU counter is the process's own time (both threads).
//
//   build/bench/garde_bench_wake   # µs of wall and CPU time per round trip
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace {

double ProcessCpuSeconds() {
  rusage r{};
  ::getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

void BM_WakeRoundTrip(benchmark::State& state) {
  std::mutex mu;
  std::condition_variable to_other, to_me;
  bool others_turn = false;
  bool stop = false;
  std::thread other([&] {
    std::unique_lock lock(mu);
    for (;;) {
      to_other.wait(lock, [&] { return others_turn || stop; });
      if (stop) return;
      others_turn = false;
      to_me.notify_one();
    }
  });
  const double cpu_before = ProcessCpuSeconds();
  for (auto _ : state) {
    std::unique_lock lock(mu);
    others_turn = true;
    to_other.notify_one();
    to_me.wait(lock, [&] { return !others_turn; });
  }
  const double cpu = ProcessCpuSeconds() - cpu_before;
  {
    std::lock_guard lock(mu);
    stop = true;
  }
  to_other.notify_one();
  other.join();
  state.counters["cpu_us_per_round_trip"] =
      benchmark::Counter(cpu * 1e6 / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_WakeRoundTrip)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();

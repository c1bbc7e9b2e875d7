// How much of the time this machine's cores are taken away from it: one thread per core spins
// reading the clock, and every jump of more than 1 ms is time the thread did not run. On a
// virtual machine with both cores busy this shows the host's own scheduling (steal), which no
// server on the guest can avoid and which sets a floor under tail latencies.
//
//   garde_bench_host_stalls [seconds]   # prints one RESULT line
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

struct Stalls {
  double frozen_ms = 0;
  double longest_ms = 0;
  int over_4ms = 0;
};

Stalls Spin(double seconds) {
  using Clock = std::chrono::steady_clock;
  Stalls s;
  const auto start = Clock::now();
  auto last = start;
  for (;;) {
    const auto now = Clock::now();
    const double gap = std::chrono::duration<double, std::milli>(now - last).count();
    if (gap > 1.0) {
      s.frozen_ms += gap;
      s.longest_ms = std::max(s.longest_ms, gap);
      s.over_4ms += gap > 4.0 ? 1 : 0;
    }
    last = now;
    if (std::chrono::duration<double>(now - start).count() > seconds) return s;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::vector<Stalls> results(cores);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < cores; ++i) {
    threads.emplace_back([&results, i, seconds] { results[i] = Spin(seconds); });
  }
  for (auto& t : threads) t.join();
  Stalls total;
  for (const auto& r : results) {
    total.frozen_ms += r.frozen_ms / cores;
    total.longest_ms = std::max(total.longest_ms, r.longest_ms);
    total.over_4ms += r.over_4ms;
  }
  std::printf("RESULT cores=%u seconds=%.0f frozen_pct=%.2f stalls_over_4ms=%d longest_ms=%.1f\n",
              cores, seconds, 100.0 * total.frozen_ms / (seconds * 1000.0), total.over_4ms,
              total.longest_ms);
  return 0;
}

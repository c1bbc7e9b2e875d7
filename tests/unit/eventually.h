// Waiting in tests for what another thread does: polls `done` every millisecond.
//
//   EXPECT_TRUE(Eventually([&] { return fs.syncs_begun("-wal") > 0; }));
#pragma once

#include <chrono>
#include <thread>

namespace garde::testing {

// Waits up to five seconds for `done`; whether it came.
template <typename Pred>
bool Eventually(Pred done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace garde::testing

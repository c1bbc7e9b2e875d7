// What `GET /metrics` on the admin listener tells Prometheus (text exposition format 0.0.4):
// requests per route and status and their latency, counted on the request path with relaxed
// atomics (no lock), and the service's state, read when scraped — open and overdue requests,
// webhook deliveries, the audit log's intake backlog and last checkpoint, key-rotation
// progress, database size. Labels are route patterns and numbers, never ids or values.
//
//   RequestMetrics metrics(router.routes().size());
//   metrics.Record(route_index, 201, seconds);     // route_index -1: no route matched
//   std::string text = MetricsText(deployment, metrics, router.routes());
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "garde/http/router.h"

namespace garde {

class Deployment;

class RequestMetrics {
 public:
  // Upper bounds of the latency histogram's buckets, in seconds (+Inf follows).
  static constexpr std::array<double, 14> kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};

  explicit RequestMetrics(size_t routes);
  void Record(int route_index, int status, double seconds);
  // Appends the counters and histograms; routes[i] names slot i.
  void Write(const std::vector<Route>& routes, std::string* out) const;

 private:
  struct Slot {
    std::array<std::atomic<uint64_t>, 600> by_status{};                // index: the status code
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> buckets{};  // last: above all
    std::atomic<uint64_t> nanoseconds{0};
  };
  std::vector<std::unique_ptr<Slot>> slots_;  // one per route, then one for no route
};

// The whole exposition: `requests` of the public listener, then the service's state.
std::string MetricsText(Deployment& d, const RequestMetrics& requests,
                        const std::vector<Route>& routes);

}  // namespace garde

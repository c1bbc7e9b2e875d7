// Seeds a data directory with generated subjects through the real vault (validation,
// encryption, blind indexes), and writes their ids one per line for the load scripts.
//
//   garde_bench_seed --data-dir D --policies P --count 100000 --ids ids.txt [--consent-share 0.6]
//                    [--threads 2]   (writers share group commits: about 1.7x on two cores)
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "garde/app/deployment.h"
#include "garde/base/log.h"
#include "garde/cli/commands.h"

int main(int argc, char** argv) {
  garde::CliArgs args = garde::ParseCliArgs(argc, argv);
  garde::SetUpLogging("off", "");
  auto flags = args.ConfigFlags();
  flags.erase("count");
  flags.erase("ids");
  flags.erase("consent-share");
  flags.erase("threads");
  flags["durable"] = "false";  // seeding speed; the service under test runs durable
  auto cfg = garde::ResolveConfig(flags);
  if (!cfg.ok()) {
    std::cerr << cfg.status().message() << "\n";
    return 1;
  }
  auto d = garde::Deployment::Open(cfg.value());
  if (!d.ok()) {
    std::cerr << d.status().message() << "\n";
    return 1;
  }
  const long count = std::stol(args.Get("count", "100000"));
  const double consent_share = std::stod(args.Get("consent-share", "0"));
  const int threads = std::max(1, std::stoi(args.Get("threads", "1")));
  std::ofstream ids(args.Get("ids", "ids.txt"));
  std::mutex ids_mu;
  std::atomic<bool> failed{false};
  garde::Caller seeder{"seed", "operator", {}, "seed", ""};
  auto seed_range = [&](long from, long to, unsigned seed) {
    std::mt19937 rng(seed);
    const char* firsts[] = {"Ana", "Louis", "Chloé", "Karim", "Zoë", "Jean", "Inès", "Hugo"};
    const char* genders[] = {"F", "M", "X"};
    for (long i = from; i < to && !failed; ++i) {
      garde::NewSubject s;
      s.kind = "person";
      s.source = "import";
      char buf[64];
      std::snprintf(buf, sizeof buf, "person%ld@bench.example", i);
      s.fields["email"] = garde::FieldValue::String(buf);
      s.fields["first_name"] = garde::FieldValue::String(firsts[rng() % 8]);
      s.fields["last_name"] = garde::FieldValue::String("Martin");
      std::snprintf(buf, sizeof buf, "750%02u", static_cast<unsigned>(rng() % 20 + 1));
      s.fields["postal_code"] = garde::FieldValue::String(buf);
      s.fields["gender"] = garde::FieldValue::String(genders[rng() % 3]);
      s.fields["spend_30d"] = garde::FieldValue::Number(static_cast<double>(rng() % 1000));
      s.fields["last_purchase"] = garde::FieldValue::String("2026-11-01");
      auto r = d.value()->vault().Create(seeder, s);
      if (!r.ok()) {
        std::cerr << "seed failed at " << i << ": " << r.status().message() << "\n";
        failed = true;
        return;
      }
      {
        std::lock_guard<std::mutex> lock(ids_mu);
        ids << r->id << "\n";
      }
      // A share of them agreed to e-mail marketing (signed receipt and all), for audiences.
      if (consent_share > 0 && static_cast<double>(rng() % 1000) < consent_share * 1000) {
        garde::ConsentRequest grant;
        grant.purpose = "marketing.email";
        grant.event = "granted";
        grant.notice_version = "2026-01";
        grant.method = "import";
        if (!d.value()->consents().Record(seeder, r->id, grant).ok()) {
          std::cerr << "consent seed failed at " << i << "\n";
          failed = true;
          return;
        }
      }
      if (from == 0 && i % 10000 == 0) std::cerr << "\rseeded " << i * threads << std::flush;
    }
  };
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back(seed_range, count * t / threads, count * (t + 1) / threads,
                         42u + static_cast<unsigned>(t));
  }
  for (auto& w : workers) w.join();
  if (failed) return 1;
  std::cerr << "\rseeded " << count << "\n";
  return 0;
}

// `garde keys rotate` while the service reads and writes continuously.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "garde_process.h"

namespace garde::testing {
namespace {

TEST(KeyRotationE2E, RotationUnderContinuousReadsAndWritesFailsNoRequest) {
  GardeProcess g;
  const std::string key = g.CreateKey("crm", "operator", {"customer_management"});
  g.Start({"--keyring-watch-seconds", "1"});
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    HttpReply r = g.Post("/v1/subjects",
                         R"({"kind":"person","fields":{"email":"seed)" + std::to_string(i) +
                             R"(@example.org","first_name":"Seed"}})",
                         key);
    ASSERT_EQ(r.status, 201) << r.body;
    ids.push_back(JsonString(r.body, "id"));
  }

  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, writes{0}, failures{0};
  std::mutex mu;
  std::string first_failure;
  auto record_failure = [&](const HttpReply& r) {
    failures++;
    std::lock_guard<std::mutex> lock(mu);
    if (first_failure.empty()) first_failure = std::to_string(r.status) + " " + r.body;
  };
  std::vector<std::thread> workers;
  for (int t = 0; t < 2; ++t) {
    workers.emplace_back([&, t] {
      size_t i = static_cast<size_t>(t);
      while (!stop) {
        HttpReply r = g.Get("/v1/subjects/" + ids[i++ % ids.size()], key, "customer_management");
        if (r.status != 200 || r.body.find("@example.org") == std::string::npos) {
          record_failure(r);
        }
        reads++;
      }
    });
  }
  workers.emplace_back([&] {
    int n = 0;
    while (!stop) {
      HttpReply r = g.Post("/v1/subjects",
                           R"({"kind":"person","fields":{"email":"live)" + std::to_string(n++) +
                               R"(@example.org"}})",
                           key);
      if (r.status != 201) record_failure(r);
      writes++;
    }
  });

  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  RunResult rotate = RunGarde({"keys", "rotate", "--data-dir", g.data_dir(), "--policies",
                               g.policies(), "--batch", "50", "--keyring-watch-seconds", "1"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (auto& w : workers) w.join();

  EXPECT_EQ(rotate.exit_code, 0) << rotate.err << rotate.out;
  EXPECT_NE(rotate.out.find("Retired version 1"), std::string::npos) << rotate.out;
  EXPECT_EQ(failures.load(), 0) << first_failure;
  EXPECT_GT(reads.load(), 100);
  EXPECT_GT(writes.load(), 10);

  // Every data key is now under version 2; version 1's key material is gone.
  EXPECT_EQ(g.Sql("SELECT COUNT(*) FROM subjects WHERE root_key_version <> 2")[0][0], "0");
  RunResult status = RunGarde(
      {"keys", "status", "--data-dir", g.data_dir(), "--policies", g.policies(), "--json"});
  EXPECT_NE(status.out.find(R"("current":2)"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find(R"("version":1,"created_at")"), std::string::npos);
  EXPECT_NE(status.out.find(R"("retired_at":"20)"), std::string::npos) << status.out;
  // Old data still reads after the old version is retired.
  HttpReply r = g.Get("/v1/subjects/" + ids[0], key, "customer_management");
  EXPECT_EQ(r.status, 200) << r.body;
}

}  // namespace
}  // namespace garde::testing

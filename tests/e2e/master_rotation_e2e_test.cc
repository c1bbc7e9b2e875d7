// `garde keys rotate-master` while the service looks customers up by e-mail, authenticates API
// keys and opens links sent before the rotation.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "garde_process.h"

namespace garde::testing {
namespace {

// The master key as the development keyring spells it (base64).
std::string MasterText(const std::string& keyring) {
  const std::string text = ReadFile(keyring);
  const size_t at = text.find("\"master\":\"") + 10;
  return text.substr(at, text.find('"', at) - at);
}

std::string SearchBody(const std::string& email) { return R"({"email":")" + email + R"("})"; }

TEST(MasterRotationE2E, LookUpsKeysAndLinksKeepWorkingAndTheOldMasterIsGone) {
  GardeProcess g;
  const std::string crm = g.CreateKey("crm", "operator", {"customer_management"});
  const std::string idle = g.CreateKey("idle", "operator", {"customer_management"});
  g.Start({"--keyring-watch-seconds", "1"});
  const std::string keyring = g.data_dir() + "/keyring.json";
  const std::string first_master = MasterText(keyring);
  ASSERT_GT(first_master.size(), 40u);

  std::vector<std::pair<std::string, std::string>> seeds;  // (id, email)
  for (int i = 0; i < 200; ++i) {
    const std::string email = "seed" + std::to_string(i) + "@example.org";
    HttpReply r = g.Post("/v1/subjects",
                         R"({"kind":"person","fields":{"email":")" + email +
                             R"(","first_name":"Seed","last_name":"Dupont","postal_code":")" +
                             std::to_string(10000 + i) + R"("}})",
                         crm);
    ASSERT_EQ(r.status, 201) << r.body;
    seeds.emplace_back(JsonString(r.body, "id"), email);
  }
  RunResult backup = RunGarde({"backup", "--data-dir", g.data_dir(), "--policies", g.policies()});
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  // Links sent before the rotation: preference centres of the first 20 subjects.
  std::vector<std::string> links;
  for (size_t i = 0; i < 20; ++i) {
    HttpReply r =
        g.Post("/v1/subjects/" + seeds[i].first + "/links", R"({"uses":["preferences"]})", crm);
    ASSERT_EQ(r.status, 201) << r.body;
    const size_t at = r.body.find("/p/");
    links.push_back(r.body.substr(at, r.body.find('"', at) - at));
  }

  std::atomic<bool> stop{false};
  std::atomic<int> searches{0}, opened{0}, created{0}, failures{0};
  std::mutex mu;
  std::string first_failure;
  std::vector<std::string> live;  // e-mails created during the rotation
  auto fail = [&](const std::string& what, const HttpReply& r) {
    failures++;
    std::lock_guard<std::mutex> lock(mu);
    if (first_failure.empty())
      first_failure = what + ": " + std::to_string(r.status) + " " + r.body;
  };
  // A request that gets no answer (the service died: a sanitizer's report, say) ends that
  // worker as a failure, not the test program.
  auto guarded = [&](std::function<void()> body) {
    return [&, body = std::move(body)] {
      try {
        body();
      } catch (const std::exception& e) {
        fail(std::string("no answer: ") + e.what(), HttpReply{});
      }
    };
  };
  std::vector<std::thread> workers;
  workers.emplace_back(guarded([&] {  // look-ups by e-mail: exactly the subject, every time
    size_t i = 0;
    while (!stop) {
      const auto& [id, email] = seeds[i++ % seeds.size()];
      HttpReply r = g.Post("/v1/subjects:search", SearchBody(email), crm, "customer_management");
      if (r.status != 200 || r.body.find(id) == std::string::npos ||
          r.body.find(R"("count":1)") == std::string::npos) {
        fail("search " + email, r);
      }
      searches++;
    }
  }));
  workers.emplace_back(guarded([&] {  // links from before the rotation, and the admin key
    size_t i = 0;
    while (!stop) {
      HttpReply r = g.Request("GET", links[i++ % links.size()], "", {}, "");
      if (r.status != 200) fail("link", r);
      opened++;
    }
  }));
  workers.emplace_back(
      guarded([&] {  // new customers, whose unique e-mail is checked against both masters
        int n = 0;
        while (!stop) {
          const std::string email = "live" + std::to_string(n++) + "@example.org";
          HttpReply r = g.Post("/v1/subjects",
                               R"({"kind":"person","fields":{"email":")" + email + R"("}})", crm);
          if (r.status != 201) fail("create", r);
          HttpReply again = g.Post(
              "/v1/subjects", R"({"kind":"person","fields":{"email":")" + email + R"("}})", crm);
          if (again.status != 409) fail("duplicate " + email, again);
          std::lock_guard<std::mutex> lock(mu);
          live.push_back(email);
          created++;
        }
      }));

  const std::vector<std::string> rotate = {"keys",
                                           "rotate-master",
                                           "--data-dir",
                                           g.data_dir(),
                                           "--policies",
                                           g.policies(),
                                           "--batch",
                                           "40",
                                           "--keyring-watch-seconds",
                                           "1"};
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  RunResult first = RunGarde(rotate);
  stop = true;
  for (auto& w : workers) w.join();
  if (failures.load() != 0) {
    const std::string logs = g.Logs();
    FAIL() << first_failure << "\nThe service's log ends:\n"
           << logs.substr(logs.size() > 6000 ? logs.size() - 6000 : 0);
  }
  EXPECT_GT(searches.load(), 50);
  EXPECT_GT(opened.load(), 50);
  EXPECT_GT(created.load(), 10);

  // The admin and idle keys were not used since the rotation began: the old master stays.
  ASSERT_EQ(first.exit_code, 0) << first.err << first.out;
  EXPECT_NE(first.out.find("2 API keys have not been used"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("  idle"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("Not retired"), std::string::npos) << first.out;
  EXPECT_NE(ReadFile(keyring).find(first_master), std::string::npos);
  EXPECT_EQ(g.Sql("SELECT COUNT(*) FROM blind_index WHERE master NOT IN (0, 2)")[0][0], "0");

  // The admin key is hashed again on its first use; the idle one is revoked by the next run.
  EXPECT_EQ(g.Get("/v1/purposes", g.admin_key()).status, 200);
  RunResult status = RunGarde(
      {"keys", "status", "--data-dir", g.data_dir(), "--policies", g.policies(), "--json"});
  EXPECT_NE(status.out.find(R"("master_version":2,"previous_master_version":1)"), std::string::npos)
      << status.out;
  std::vector<std::string> finish = rotate;
  finish.push_back("--revoke-unconverted");
  RunResult second = RunGarde(finish);
  ASSERT_EQ(second.exit_code, 0) << second.err << second.out;
  EXPECT_NE(second.out.find("Revoked API key"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("Retired master-key version 1"), std::string::npos) << second.out;

  // The old master is gone from the keyring; look-ups, keys and old links work without it.
  const std::string after = ReadFile(keyring);
  EXPECT_EQ(after.find(first_master), std::string::npos);
  EXPECT_EQ(after.find("previous_master"), std::string::npos);
  EXPECT_NE(after.find(R"("master_version":2)"), std::string::npos);
  status = RunGarde(
      {"keys", "status", "--data-dir", g.data_dir(), "--policies", g.policies(), "--json"});
  EXPECT_NE(status.out.find(R"("master_version":2,"previous_master_version":null)"),
            std::string::npos)
      << status.out;
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // the service reloads
  for (const auto& [id, email] : seeds) {
    HttpReply r = g.Post("/v1/subjects:search", SearchBody(email), crm, "customer_management");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.body.find(id), std::string::npos) << email << " " << r.body;
  }
  for (const std::string& email : live) {
    HttpReply r = g.Post("/v1/subjects:search", SearchBody(email), crm, "customer_management");
    EXPECT_NE(r.body.find(R"("count":1)"), std::string::npos) << email << " " << r.body;
  }
  for (const std::string& link : links) {
    EXPECT_EQ(g.Request("GET", link, "", {}, "").status, 200) << link;
  }
  EXPECT_EQ(g.Get("/v1/purposes", g.admin_key()).status, 200);
  EXPECT_EQ(g.Get("/v1/subjects/" + seeds[0].first, idle, "customer_management").status, 401);
  EXPECT_EQ(g.Get("/v1/subjects/" + seeds[0].first, crm, "customer_management").status, 200);
  EXPECT_EQ(g.Sql("SELECT COUNT(*) FROM api_keys WHERE revoked_at = 0 AND hash_master <> 2")[0][0],
            "0");
  // Match keys of likely duplicates were computed again too: a new entry of seed 5 pairs.
  EXPECT_EQ(g.Sql("SELECT COUNT(*) FROM blind_index WHERE field LIKE '=%' AND master = 2")[0][0],
            "400");
  HttpReply again = g.Post(
      "/v1/subjects",
      R"({"kind":"person","fields":{"first_name":"Seed","last_name":"DUPONT","postal_code":"10005"}})",
      crm);
  ASSERT_EQ(again.status, 201) << again.body;
  HttpReply pairs = g.Get("/v1/duplicates", crm);
  EXPECT_NE(pairs.body.find(seeds[5].first), std::string::npos) << pairs.body;
  EXPECT_NE(pairs.body.find(JsonString(again.body, "id")), std::string::npos) << pairs.body;
  // A restarted service starts from the rotated keyring alone.
  g.Stop();
  g.Start();
  HttpReply r =
      g.Post("/v1/subjects:search", SearchBody(seeds[7].second), crm, "customer_management");
  EXPECT_NE(r.body.find(seeds[7].first), std::string::npos) << r.body;
  EXPECT_EQ(g.Request("GET", links[3], "", {}, "").status, 200);
  RunResult verify =
      RunGarde({"audit", "verify", "--data-dir", g.data_dir(), "--policies", g.policies()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  // A backup from before the rotation: its look-ups are computed again under the new master;
  // its API keys, hashed under the retired one, are named for the administrator.
  ASSERT_EQ(g.Stop(), 0);
  RunResult restored = RunGarde({"restore", "--data-dir", g.data_dir(), "--policies", g.policies(),
                                 "--from", backup.LastLine(), "--reason", "drill"});
  ASSERT_EQ(restored.exit_code, 0) << restored.err << restored.out;
  EXPECT_NE(restored.out.find("computed 600 look-up digests again"), std::string::npos)
      << restored.out;
  EXPECT_NE(restored.out.find("3 API keys of the backup are hashed under an earlier master"),
            std::string::npos)
      << restored.out;
  EXPECT_EQ(g.Sql("SELECT COUNT(*) FROM blind_index WHERE master NOT IN (0, 2)")[0][0], "0");
  g.Start();
  const std::string fresh = g.CreateKey("fresh", "operator", {"customer_management"});
  r = g.Post("/v1/subjects:search", SearchBody(seeds[11].second), fresh, "customer_management");
  EXPECT_NE(r.body.find(seeds[11].first), std::string::npos) << r.body;
}

}  // namespace
}  // namespace garde::testing

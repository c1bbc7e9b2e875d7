// Two `garde serve` nodes on one PostgreSQL database behind HAProxy (Debian's package, started
// here with a generated configuration, health checks on /readyz): consent withdrawn through one
// node is refused by the other within a second, both write one audit log that `garde audit
// verify` accepts, and a node killed with -9 under write load loses no acknowledged write.
// Registered only beside a PostgreSQL server (ctest e2e_postgresql_*, docs/scaling.md).
#include <Poco/JSON/Object.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "garde_process.h"
#include "test_database.h"

namespace garde::testing {
namespace {

int FreePort() {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  return socket.address().port();
}

// HAProxy in front of the given ports, round robin, a node taken out after two failed
// /readyz checks 200 ms apart; a connection refused is retried on the other node.
class HaProxy {
 public:
  explicit HaProxy(const std::vector<int>& ports) : port_(FreePort()) {
    dir_ = std::filesystem::temp_directory_path() /
           ("garde-haproxy-" + std::to_string(::getpid()) + "-" + std::to_string(port_));
    std::filesystem::create_directories(dir_);
    std::ofstream cfg(dir_ / "haproxy.cfg");
    cfg << "global\n  maxconn 512\n"
        << "defaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n"
        << "  timeout server 30s\n  retries 3\n  option redispatch\n"
        << "frontend garde\n  bind 127.0.0.1:" << port_ << "\n  default_backend nodes\n"
        << "backend nodes\n  balance roundrobin\n  option httpchk GET /readyz\n"
        << "  default-server inter 200ms fall 2 rise 2\n";
    for (size_t i = 0; i < ports.size(); ++i) {
      cfg << "  server node" << i << " 127.0.0.1:" << ports[i] << " check\n";
    }
    cfg.close();
    pid_ = SpawnProgram({"/usr/sbin/haproxy", "-f", (dir_ / "haproxy.cfg").string(), "-db"},
                        (dir_ / "out").string(), (dir_ / "err").string());
    for (int i = 0; i < 100; ++i) {
      try {
        if (HttpCall(port_, "GET", "/healthz", "", {}, "").status == 200) return;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "haproxy did not start: " << ReadFile((dir_ / "err").string());
  }
  ~HaProxy() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    std::filesystem::remove_all(dir_);
  }
  int port() const { return port_; }

 private:
  int port_;
  int pid_ = -1;
  std::filesystem::path dir_;
};

std::string IdOf(const HttpReply& r) { return JsonString(r.body, "id"); }

bool Allowed(int port, const std::string& key, const std::string& subject) {
  HttpReply r = HttpCall(port, "GET",
                         "/v1/consent/check?subject=" + subject +
                             "&purpose=marketing.email&channel=email",
                         "", {{"Authorization", "Bearer " + key}}, "");
  EXPECT_EQ(r.status, 200) << r.body;
  return ParseObject(r.body)->getValue<bool>("allowed");
}

class ClusterE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = a_.CreateKey("crm", "operator", {"customer_management"});
    marketing_key_ = a_.CreateKey("campaigns", "marketing", {"marketing_email"});
    a_.Start();
    b_.Start();
  }
  HttpReply Create(int port, const std::string& email) {
    return HttpCall(port, "POST", "/v1/subjects",
                    R"({"kind":"person","fields":{"email":")" + email + R"("}})",
                    {{"Authorization", "Bearer " + operator_key_}});
  }
  HttpReply Consent(int port, const std::string& id, const std::string& event) {
    return HttpCall(port, "POST", "/v1/subjects/" + id + "/consents",
                    R"({"purpose":"marketing.email","event":")" + event +
                        R"(","notice_version":"2026-01","method":"web_form"})",
                    {{"Authorization", "Bearer " + operator_key_}});
  }

  GardeProcess a_;
  GardeProcess b_{GardeProcess::NodeOf{a_}};
  std::string operator_key_, marketing_key_;
};

class AWithdrawalThroughOneNodeIsRefusedByTheOtherWithinASecond : public ClusterE2E {
  void TestBody() override;
};

void AWithdrawalThroughOneNodeIsRefusedByTheOtherWithinASecond::TestBody() {
  HaProxy lb({a_.port(), b_.port()});
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    HttpReply r = Create(lb.port(), "cluster" + std::to_string(i) + "@example.org");
    ASSERT_EQ(r.status, 201) << r.body;
    ids.push_back(IdOf(r));
    ASSERT_EQ(Consent(lb.port(), ids.back(), "granted").status, 201);
  }
  // Both nodes answered writes (round robin), and each allows every grant, wherever it was
  // recorded.
  EXPECT_GT(a_.LogCount("\"route\":\"POST /v1/subjects"), 0u);
  EXPECT_GT(b_.LogCount("\"route\":\"POST /v1/subjects"), 0u);
  for (const auto& id : ids) {
    EXPECT_TRUE(Allowed(a_.port(), marketing_key_, id));
    EXPECT_TRUE(Allowed(b_.port(), marketing_key_, id));  // now in b's kept facts
  }
  for (const auto& id : ids) {
    ASSERT_EQ(Consent(a_.port(), id, "withdrawn").status, 201);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    bool allowed = true;
    while ((allowed = Allowed(b_.port(), marketing_key_, id)) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_FALSE(allowed) << "node b still allows " << id << " a second after the withdrawal";
  }
  // One audit log, written by both, verified.
  EXPECT_EQ(a_.Stop(), 0);
  EXPECT_EQ(b_.Stop(), 0);
  RunResult v = RunGarde({"audit", "verify", "--data-dir", a_.data_dir(), "--policies",
                          a_.policies()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("audit log verified"), std::string::npos) << v.out;
}

class ANodeKilledUnderWriteLoadLosesNoAcknowledgedWrite : public ClusterE2E {
  void TestBody() override;
};

void ANodeKilledUnderWriteLoadLosesNoAcknowledgedWrite::TestBody() {
  HaProxy lb({a_.port(), b_.port()});
  std::mutex mu;
  std::vector<std::string> acknowledged;
  std::atomic<int> failed{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        try {
          HttpReply r = Create(lb.port(), "load" + std::to_string(t) + "-" + std::to_string(i) +
                                              "@example.org");
          if (r.status == 201) {
            std::lock_guard<std::mutex> lock(mu);
            acknowledged.push_back(IdOf(r));
          } else {
            ++failed;
          }
        } catch (const std::exception&) {
          ++failed;  // a connection the dying node held
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  a_.Kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  size_t after_kill;
  {
    std::lock_guard<std::mutex> lock(mu);
    after_kill = acknowledged.size();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  stop.store(true);
  for (auto& w : writers) w.join();
  // HAProxy routed around the dead node: writes kept being acknowledged.
  EXPECT_GT(acknowledged.size(), after_kill) << failed.load() << " failed";
  // Every acknowledged write is there, read through the surviving node.
  for (const auto& id : acknowledged) {
    HttpReply r = b_.Get("/v1/subjects/" + id, operator_key_, "customer_management");
    EXPECT_EQ(r.status, 200) << id << ": " << r.body;
  }
  // The killed node comes back on the same database and serves them too.
  a_.Start();
  EXPECT_EQ(a_.Get("/v1/subjects/" + acknowledged.front(), operator_key_, "customer_management")
                .status,
            200);
  EXPECT_EQ(a_.Stop(), 0);
  EXPECT_EQ(b_.Stop(), 0);
  RunResult v = RunGarde({"audit", "verify", "--data-dir", b_.data_dir(), "--policies",
                          b_.policies()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

// Registered beside a PostgreSQL server only (the nodes need a database to share), so that the
// SQLite run neither lists nor skips them.
template <typename Case>
void Register(const char* name) {
  ::testing::RegisterTest("ClusterE2E", name, nullptr, nullptr, __FILE__, __LINE__,
                          []() -> ::testing::Test* { return new Case; });
}

[[maybe_unused]] const bool kRegistered = [] {
  if (TestPostgresHost().empty()) return false;
  Register<AWithdrawalThroughOneNodeIsRefusedByTheOtherWithinASecond>(
      "AWithdrawalThroughOneNodeIsRefusedByTheOtherWithinASecond");
  Register<ANodeKilledUnderWriteLoadLosesNoAcknowledgedWrite>(
      "ANodeKilledUnderWriteLoadLosesNoAcknowledgedWrite");
  return true;
}();

}  // namespace
}  // namespace garde::testing

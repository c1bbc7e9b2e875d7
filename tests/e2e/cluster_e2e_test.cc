// Two `garde serve` nodes on one PostgreSQL database behind HAProxy (Debian's package, started
// here with a generated configuration, health checks on /readyz): consent withdrawn through one
// node is refused by the other within a second, both write one audit log that `garde audit
// verify` accepts, a node killed with -9 under write load loses no acknowledged write, and
// neither does a restart of PostgreSQL under load (the nodes report not ready meanwhile, and
// recover by themselves).
// Registered only beside a PostgreSQL server, outside cluster mode (ctest e2e_postgresql,
// docs/scaling.md).
#include <Poco/JSON/Object.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "garde_process.h"
#include "test_database.h"

namespace garde::testing {
namespace {

std::string IdOf(const HttpReply& r) { return JsonString(r.body, "id"); }

int CheckStatus(int port, const std::string& key, const std::string& subject) {
  return HttpCall(port, "GET",
                  "/v1/consent/check?subject=" + subject + "&purpose=marketing.email&channel=email",
                  "", {{"Authorization", "Bearer " + key}}, "")
      .status;
}

bool Allowed(int port, const std::string& key, const std::string& subject) {
  HttpReply r =
      HttpCall(port, "GET",
               "/v1/consent/check?subject=" + subject + "&purpose=marketing.email&channel=email",
               "", {{"Authorization", "Bearer " + key}}, "");
  EXPECT_EQ(r.status, 200) << r.body;
  return ParseObject(r.body)->getValue<bool>("allowed");
}

// Four clients creating subjects through `port` until Stop: the ids acknowledged (201), the
// statuses of the other answers, and the requests that got no answer at all.
class WriteLoad {
 public:
  WriteLoad(int port, const std::string& key, const std::string& tag) {
    for (int t = 0; t < 4; ++t) {
      writers_.emplace_back([this, port, key, tag, t] {
        for (int i = 0; !stop_.load(); ++i) {
          const std::string email =
              tag + std::to_string(t) + "-" + std::to_string(i) + "@example.org";
          try {
            HttpReply r = HttpCall(port, "POST", "/v1/subjects",
                                   R"({"kind":"person","fields":{"email":")" + email + R"("}})",
                                   {{"Authorization", "Bearer " + key}});
            std::lock_guard<std::mutex> lock(mu_);
            if (r.status == 201) {
              acknowledged_.push_back(JsonString(r.body, "id"));
              continue;
            }
            refused_.push_back(r.status);
          } catch (const std::exception&) {
            ++unanswered_;  // a connection a dying node held, or no node to offer
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      });
    }
  }
  ~WriteLoad() { Stop(); }
  void Stop() {
    stop_.store(true);
    for (auto& w : writers_) {
      if (w.joinable()) w.join();
    }
  }
  std::vector<std::string> acknowledged() {
    std::lock_guard<std::mutex> lock(mu_);
    return acknowledged_;
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return acknowledged_.size();
  }
  std::vector<int> refused() {
    std::lock_guard<std::mutex> lock(mu_);
    return refused_;
  }
  int unanswered() const { return unanswered_.load(); }

 private:
  std::mutex mu_;
  std::vector<std::string> acknowledged_;
  std::vector<int> refused_;
  std::atomic<int> unanswered_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> writers_;
};

class ClusterE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = a_.CreateKey("crm", "operator", {"customer_management"});
    marketing_key_ = a_.CreateKey("campaigns", "marketing", {"marketing_email"});
    a_.Start(Flags());
    b_.Start(Flags());
  }
  virtual std::vector<std::string> Flags() const { return {}; }
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

// read_consistency = eventual: the other node learns of the change from its notification.
class AWithdrawalThroughOneNodeIsRefusedByTheOtherWithinASecond : public ClusterE2E {
  std::vector<std::string> Flags() const override { return {"--read-consistency", "eventual"}; }
  void TestBody() override;
};

// read_consistency = strict (the default): the other node refuses at its very next check.
class AWithdrawalThroughOneNodeIsRefusedByTheOtherAtOnce : public ClusterE2E {
  void TestBody() override;
};

void AWithdrawalThroughOneNodeIsRefusedByTheOtherAtOnce::TestBody() {
  for (int i = 0; i < 20; ++i) {
    HttpReply r = Create(a_.port(), "strict" + std::to_string(i) + "@example.org");
    ASSERT_EQ(r.status, 201) << r.body;
    const std::string id = IdOf(r);
    EXPECT_FALSE(Allowed(b_.port(), marketing_key_, id));  // b keeps the subject's facts now
    ASSERT_EQ(Consent(a_.port(), id, "granted").status, 201);
    EXPECT_TRUE(Allowed(b_.port(), marketing_key_, id)) << "b missed a grant made through a";
    ASSERT_EQ(Consent(b_.port(), id, "withdrawn").status, 201);
    EXPECT_FALSE(Allowed(a_.port(), marketing_key_, id)) << "a missed a withdrawal made through b";
  }
  // A key revoked from the command line is refused by both nodes at once, though each had
  // verified it (api_key_cache_seconds is 2: without strict reads it would live on).
  const std::string key = a_.CreateKey("short-lived", "marketing", {"marketing_email"});
  const std::string id = IdOf(Create(a_.port(), "keyholder@example.org"));
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(CheckStatus(a_.port(), key, id), 200);
  ASSERT_EQ(CheckStatus(b_.port(), key, id), 200);
  const std::string key_id = a_.Sql("SELECT id FROM api_keys WHERE name = 'short-lived'")[0][0];
  RunResult revoked = RunGarde({"apikey", "revoke", "--data-dir", a_.data_dir(), "--policies",
                                a_.policies(), "--id", key_id});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  for (const GardeProcess* node : {&a_, &b_}) {
    EXPECT_EQ(CheckStatus(node->port(), key, id), 401);
  }
}

void AWithdrawalThroughOneNodeIsRefusedByTheOtherWithinASecond::TestBody() {
  LoadBalancer lb({a_.port(), b_.port()});
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
  RunResult v =
      RunGarde({"audit", "verify", "--data-dir", a_.data_dir(), "--policies", a_.policies()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("audit log verified"), std::string::npos) << v.out;
}

// A person signed in to the console through one node is signed in on the other (the session is
// in the database), and signing out through either ends it on both.
class AConsoleSignInThroughOneNodeHoldsOnTheOther : public ClusterE2E {
  void TestBody() override;
};

void AConsoleSignInThroughOneNodeHoldsOnTheOther::TestBody() {
  const std::string officer = a_.CreateKey("dpo", "officer", {"customer_management"});
  HttpReply in = HttpCall(a_.port(), "POST", "/console/sign-in", "lang=en&key=" + officer, {},
                          "application/x-www-form-urlencoded");
  ASSERT_EQ(in.status, 303) << in.body;
  const std::string set = in.headers["set-cookie"];
  const std::string cookie = set.substr(0, set.find(';'));
  ASSERT_EQ(cookie.rfind("garde_console=", 0), 0u) << set;
  HttpReply page = HttpCall(b_.port(), "GET", "/console/requests", "", {{"Cookie", cookie}}, "");
  ASSERT_EQ(page.status, 200) << "node b does not know a's sign-in: " << page.status;
  const std::string mark = "name=\"csrf\" value=\"";
  const size_t at = page.body.find(mark);
  ASSERT_NE(at, std::string::npos);
  const std::string csrf = page.body.substr(at + mark.size(), 43);
  HttpReply unknown = HttpCall(b_.port(), "GET", "/console/requests", "",
                               {{"Cookie", "garde_console=" + std::string(43, 'A')}}, "");
  EXPECT_EQ(unknown.status, 303);
  EXPECT_EQ(unknown.headers["location"], "/console/sign-in");
  HttpReply out = HttpCall(b_.port(), "POST", "/console/sign-out", "csrf=" + csrf,
                           {{"Cookie", cookie}}, "application/x-www-form-urlencoded");
  EXPECT_EQ(out.status, 303) << out.body;
  for (const GardeProcess* node : {&a_, &b_}) {
    HttpReply after =
        HttpCall(node->port(), "GET", "/console/requests", "", {{"Cookie", cookie}}, "");
    EXPECT_EQ(after.headers["location"], "/console/sign-in")
        << "signed out through b, still signed in on " << node->port();
  }
}

class ANodeKilledUnderWriteLoadLosesNoAcknowledgedWrite : public ClusterE2E {
  void TestBody() override;
};

void ANodeKilledUnderWriteLoadLosesNoAcknowledgedWrite::TestBody() {
  LoadBalancer lb({a_.port(), b_.port()});
  WriteLoad load(lb.port(), operator_key_, "load");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  a_.Kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  const size_t after_kill = load.count();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  load.Stop();
  const std::vector<std::string> acknowledged = load.acknowledged();
  // HAProxy routed around the dead node: writes kept being acknowledged.
  EXPECT_GT(acknowledged.size(), after_kill)
      << load.refused().size() << " refused, " << load.unanswered() << " unanswered";
  // Every acknowledged write is there, read through the surviving node.
  for (const auto& id : acknowledged) {
    HttpReply r = b_.Get("/v1/subjects/" + id, operator_key_, "customer_management");
    EXPECT_EQ(r.status, 200) << id << ": " << r.body;
  }
  // The killed node comes back on the same database and serves them too.
  a_.Start();
  EXPECT_EQ(
      a_.Get("/v1/subjects/" + acknowledged.front(), operator_key_, "customer_management").status,
      200);
  EXPECT_EQ(a_.Stop(), 0);
  EXPECT_EQ(b_.Stop(), 0);
  RunResult v =
      RunGarde({"audit", "verify", "--data-dir", b_.data_dir(), "--policies", b_.policies()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

int Ready(int port) {
  try {
    return HttpCall(port, "GET", "/readyz", "", {}, "").status;
  } catch (const std::exception&) {
    return 0;
  }
}

// The database stopped ("stop", an operator's restart) or crashed ("crash") under write load,
// then started again.
class ADatabaseGoneUnderLoad : public ClusterE2E {
 protected:
  void GoneAndBack(const std::string& how);
};

class ADatabaseRestartedUnderLoadLosesNothingAcknowledged : public ADatabaseGoneUnderLoad {
  void TestBody() override { GoneAndBack("stop"); }
};

// A crash loses what PostgreSQL had not flushed: nothing a writer was told succeeded.
class ADatabaseCrashedUnderLoadLosesNothingAcknowledged : public ADatabaseGoneUnderLoad {
  void TestBody() override { GoneAndBack("crash"); }
};

void ADatabaseGoneUnderLoad::GoneAndBack(const std::string& how) {
  LoadBalancer lb({a_.port(), b_.port()});
  WriteLoad load(lb.port(), operator_key_, "restart");
  auto count = [&] { return load.count(); };
  ASSERT_TRUE(WaitUntil([&] { return count() >= 20; }, std::chrono::seconds(20)));
  const std::string checked = load.acknowledged().front();
  for (const GardeProcess* node : {&a_, &b_}) {  // its facts are in both nodes' memory now
    ASSERT_EQ(CheckStatus(node->port(), marketing_key_, checked), 200);
  }
  ASSERT_TRUE(ControlTestPostgres(how));
  // Both nodes say they are not ready while the database is away (HAProxy takes them out).
  EXPECT_TRUE(WaitUntil([&] { return Ready(a_.port()) == 503 && Ready(b_.port()) == 503; },
                        std::chrono::seconds(10)));
  // A strict node cannot confirm what it keeps in memory: a check is unavailable, at once, not
  // answered from memory and not a 500.
  for (const GardeProcess* node : {&a_, &b_}) {
    const auto asked = std::chrono::steady_clock::now();
    EXPECT_EQ(CheckStatus(node->port(), marketing_key_, checked), 503);
    EXPECT_LT(std::chrono::steady_clock::now() - asked, std::chrono::seconds(5));
  }
  const size_t before_start = count();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(ControlTestPostgres("start"));
  // They come back by themselves, without a restart, and take writes again.
  EXPECT_TRUE(WaitUntil([&] { return Ready(a_.port()) == 200 && Ready(b_.port()) == 200; },
                        std::chrono::seconds(20)));
  EXPECT_TRUE(WaitUntil([&] { return count() >= before_start + 20; }, std::chrono::seconds(20)))
      << load.refused().size() << " refused";
  load.Stop();
  const std::vector<int> refused = load.refused();
  EXPECT_GT(refused.size() + static_cast<size_t>(load.unanswered()), 0u)
      << "the restart went unnoticed: was the database stopped?";
  for (int status : refused) EXPECT_EQ(status, 503);  // unavailable, never a 500
  // Every acknowledged write is there, through either node.
  const std::vector<std::string> ids = load.acknowledged();
  for (size_t i = 0; i < ids.size(); ++i) {
    const GardeProcess& node = i % 2 == 0 ? a_ : b_;
    HttpReply r = node.Get("/v1/subjects/" + ids[i], operator_key_, "customer_management");
    EXPECT_EQ(r.status, 200) << ids[i] << ": " << r.body;
  }
  EXPECT_EQ(a_.Stop(), 0);
  EXPECT_EQ(b_.Stop(), 0);
  RunResult v =
      RunGarde({"audit", "verify", "--data-dir", a_.data_dir(), "--policies", a_.policies()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

// With strict reads, a request answered from memory waits for the database's counters, and its
// connection stays watched meanwhile: what the client sends while it waits - the next
// pipelined requests, one write at a time, or the end of its stream - is read once the answer
// is out, in order, and nothing is left unanswered.
class RequestsSentWhileAStrictReadWaitsAreAnsweredInOrder : public ClusterE2E {
  void TestBody() override;
};

void RequestsSentWhileAStrictReadWaitsAreAnsweredInOrder::TestBody() {
  // /healthz answers from memory: on a strict node, it waits for the counters.
  EXPECT_TRUE(AnsweredInOrder(SendOneWriteAtATime(a_.port(), "/healthz", 300), 300));
  for (int i = 0; i < 20; ++i) {
    const std::string answer = RequestThenHalfClose(a_.port(), "/healthz");
    EXPECT_NE(answer.find("HTTP/1.1 200 OK"), std::string::npos) << answer;
  }
}

// Registered beside a PostgreSQL server only (the nodes need a database to share), so that the
// SQLite run neither lists nor skips them.
template <typename Case>
void Register(const char* name) {
  ::testing::RegisterTest("ClusterE2E", name, nullptr, nullptr, __FILE__, __LINE__,
                          []() -> ::testing::Test* { return new Case; });
}

[[maybe_unused]] const bool kRegistered = [] {
  // (Not in cluster mode, where every deployment is already two nodes behind HAProxy.)
  if (TestPostgresHost().empty() || ClusterMode()) return false;
  Register<AWithdrawalThroughOneNodeIsRefusedByTheOtherWithinASecond>(
      "AWithdrawalThroughOneNodeIsRefusedByTheOtherWithinASecond");
  Register<AWithdrawalThroughOneNodeIsRefusedByTheOtherAtOnce>(
      "AWithdrawalThroughOneNodeIsRefusedByTheOtherAtOnce");
  Register<RequestsSentWhileAStrictReadWaitsAreAnsweredInOrder>(
      "RequestsSentWhileAStrictReadWaitsAreAnsweredInOrder");
  Register<AConsoleSignInThroughOneNodeHoldsOnTheOther>(
      "AConsoleSignInThroughOneNodeHoldsOnTheOther");
  Register<ANodeKilledUnderWriteLoadLosesNoAcknowledgedWrite>(
      "ANodeKilledUnderWriteLoadLosesNoAcknowledgedWrite");
  Register<ADatabaseRestartedUnderLoadLosesNothingAcknowledged>(
      "ADatabaseRestartedUnderLoadLosesNothingAcknowledged");
  Register<ADatabaseCrashedUnderLoadLosesNothingAcknowledged>(
      "ADatabaseCrashedUnderLoadLosesNothingAcknowledged");
  return true;
}();

}  // namespace
}  // namespace garde::testing

// The HTTP/1.1 edge as raw clients use it: pipelining, chunked bodies, 100-continue, limits,
// and many open connections on few threads.
#include <Poco/Exception.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "garde_process.h"

namespace garde::testing {
namespace {

class HttpE2E : public ::testing::Test {
 protected:
  std::unique_ptr<Poco::Net::StreamSocket> Connect() const {
    auto s = std::make_unique<Poco::Net::StreamSocket>(
        Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(g_.port())));
    s->setReceiveTimeout(Poco::Timespan(10, 0));
    return s;
  }
  // Reads until `marker` has been seen `times` times (or the peer closes).
  static std::string ReadUntil(Poco::Net::StreamSocket& s, const std::string& marker, int times) {
    std::string got;
    char buf[8192];
    auto count = [&] {
      int c = 0;
      for (size_t at = got.find(marker); at != std::string::npos; at = got.find(marker, at + 1))
        ++c;
      return c;
    };
    try {
      while (count() < times) {
        const int n = s.receiveBytes(buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
    } catch (const Poco::Exception&) {
    }
    return got;
  }
  static int Count(const std::string& text, const std::string& what) {
    int c = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++c;
    return c;
  }

  GardeProcess g_;
};

TEST_F(HttpE2E, PipelinedRequestsAreAnsweredInOrder) {
  g_.Start();
  auto s = Connect();
  SendAll(*s,
          "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: first\r\n\r\n"
          "GET /nowhere HTTP/1.1\r\nHost: x\r\nX-Request-Id: second\r\n\r\n"
          "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: third\r\nConnection: close\r\n\r\n");
  const std::string got = ReadUntilClosed(*s, std::chrono::seconds(10));
  const size_t first = got.find("X-Request-Id: first");
  const size_t second = got.find("X-Request-Id: second");
  const size_t third = got.find("X-Request-Id: third");
  ASSERT_NE(third, std::string::npos) << got;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
  EXPECT_EQ(Count(got, "HTTP/1.1 200 OK"), 2) << got;
  EXPECT_EQ(Count(got, "HTTP/1.1 404 Not Found"), 1) << got;
  EXPECT_NE(got.find("Connection: Close"), std::string::npos);
}

// Answers large enough to fill the socket's send buffer: the server waits to write, and the
// requests pipelined behind must still be answered once it can (they once waited for bytes
// that never came, and the connection closed at keep_alive_timeout with a quarter unanswered).
TEST_F(HttpE2E, PipelinedRequestsBehindAnAnswerThatWaitsToBeWrittenAreAllAnswered) {
  g_.Start();
  auto s = Connect();
  std::string requests;
  constexpr int kRequests = 101;
  for (int i = 0; i < kRequests; ++i) {
    requests += "GET /openapi.json HTTP/1.1\r\nHost: x\r\nX-Request-Id: r" + std::to_string(i) +
                "\r\n" + (i + 1 == kRequests ? "Connection: close\r\n" : "") + "\r\n";
  }
  std::thread sender([&] { SendAll(*s, requests); });
  // Read nothing at first: 101 answers of ~100 KB fill the socket buffers, so the server waits
  // to write with requests still buffered behind.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string got = ReadUntilClosed(*s, std::chrono::seconds(20));
  sender.join();
  EXPECT_EQ(Count(got, "HTTP/1.1 200 OK"), kRequests);
  EXPECT_TRUE(AnsweredInOrder(got, kRequests));
}

// While a worker answers a request (here /readyz, which goes to the pool), its connection stays
// watched: what the client sends meanwhile - the next requests, one write at a time, or the
// end of its stream - is read once the answer is out, in order, and nothing is left
// unanswered. (ClusterE2E has the same for a request waiting on a strict read.)
TEST_F(HttpE2E, RequestsSentWhileAWorkerAnswersAreAnsweredInOrder) {
  g_.Start();
  EXPECT_TRUE(AnsweredInOrder(SendOneWriteAtATime(g_.port(), "/readyz", 300), 300));
  for (int i = 0; i < 20; ++i) {
    const std::string answer = RequestThenHalfClose(g_.port(), "/readyz");
    EXPECT_NE(answer.find("HTTP/1.1 200 OK"), std::string::npos) << answer;
  }
}

TEST_F(HttpE2E, ChunkedBodyAfterOneHundredContinueStoresTheSubject) {
  const std::string key = g_.CreateKey("crm", "operator", {"customer_management"});
  g_.Start();
  auto s = Connect();
  SendAll(*s, "POST /v1/subjects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
                  "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                  "Expect: 100-continue\r\n\r\n");
  const std::string interim = ReadUntil(*s, "\r\n\r\n", 1);
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  const std::string body = R"({"kind":"person","fields":{"email":"chunked.client@example.org"}})";
  // Three chunks, the last sent a byte at a time, as a slow client would.
  const std::string part1 = body.substr(0, 10), part2 = body.substr(10, 20),
                    part3 = body.substr(30);
  auto hex = [](size_t n) {
    char b[16];
    std::snprintf(b, sizeof b, "%zx", n);
    return std::string(b);
  };
  SendAll(*s, hex(part1.size()) + "\r\n" + part1 + "\r\n");
  SendAll(*s, hex(part2.size()) + ";ext=1\r\n" + part2 + "\r\n");
  const std::string last = hex(part3.size()) + "\r\n" + part3 + "\r\n0\r\n\r\n";
  for (char c : last) {
    SendAll(*s, std::string(1, c));
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  const std::string reply = ReadUntil(*s, "\"id\"", 1);
  EXPECT_EQ(reply.rfind("HTTP/1.1 201", 0), 0u) << reply;
  const std::string id = JsonString(reply.substr(reply.find("\r\n\r\n") + 4), "id");
  ASSERT_FALSE(id.empty()) << reply;
  const HttpReply read = g_.Get("/v1/subjects/" + id, key, "customer_management");
  EXPECT_EQ(read.status, 200);
  EXPECT_NE(read.body.find("chunked.client@example.org"), std::string::npos) << read.body;
}

TEST_F(HttpE2E, OversizedHeadOrBodyIsRefusedWithAProblemAndTheConnectionCloses) {
  const std::string key = g_.CreateKey("crm", "operator", {"customer_management"});
  g_.Start();
  {
    auto s = Connect();
    SendAll(*s,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n");
    const std::string got = ReadUntilClosed(*s, std::chrono::seconds(10));
    EXPECT_EQ(got.rfind("HTTP/1.1 431", 0), 0u) << got.substr(0, 200);
    EXPECT_NE(got.find("application/problem+json"), std::string::npos);
    EXPECT_NE(got.find("\"status\":431"), std::string::npos);
    EXPECT_NE(got.find("Connection: Close"), std::string::npos);
  }
  {
    // Refused on the header alone: the 2 MB never need to be sent.
    auto s = Connect();
    SendAll(*s, "POST /v1/subjects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
                    "\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{");
    const std::string got = ReadUntilClosed(*s, std::chrono::seconds(10));
    EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got;
    EXPECT_NE(got.find("\"status\":413"), std::string::npos) << got;
  }
  {
    auto s = Connect();
    SendAll(*s,
            "POST /v1/subjects HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
    const std::string got = ReadUntilClosed(*s, std::chrono::seconds(10));
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << got;
    EXPECT_NE(got.find("Transfer-Encoding"), std::string::npos) << got;
  }
  EXPECT_EQ(g_.CountRows("subjects"), 0);
  EXPECT_EQ(g_.Get("/healthz", "").status, 200);
}

TEST_F(HttpE2E, HundredsOfOpenConnectionsAreServedByAFewThreads) {
  const std::string key = g_.CreateKey("crm", "operator", {"customer_management"});
  // Two workers for the routes that may wait; connections do not hold a thread each.
  g_.Start({"--max-threads", "2", "--io-threads", "1"});
  std::vector<std::unique_ptr<Poco::Net::StreamSocket>> open;
  for (int i = 0; i < 300; ++i) open.push_back(Connect());
  // Every connection asks at once, then all keep their connection open and ask again.
  for (int round = 0; round < 2; ++round) {
    for (auto& s : open) SendAll(*s, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    int ok = 0;
    for (auto& s : open) {
      const std::string got = ReadUntil(*s, "{\"status\":\"ok\"}", 1);
      ok += got.rfind("HTTP/1.1 200", 0) == 0 ? 1 : 0;
    }
    EXPECT_EQ(ok, 300) << "round " << round;
  }
  // Writes run on the workers while those connections stay open.
  const HttpReply created =
      g_.Post("/v1/subjects",
              R"({"kind":"person","fields":{"email":"many.connections@example.org"}})", key);
  EXPECT_EQ(created.status, 201) << created.body;
}

// Workers start as requests find the started ones busy: an idle service holds none of its
// max_threads (128 by default), and however many requests wait, no more than max_threads start.
TEST_F(HttpE2E, WorkerThreadsStartWhenRequestsWaitAndNeverMoreThanMaxThreads) {
  const std::string key = g_.CreateKey("crm", "operator", {"customer_management"});
  auto named_workers = [this] {  // the service's threads named garde-worker
    int n = 0;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(g_.pid()) + "/task")) {
      n += ReadFile(task.path().string() + "/comm") == "garde-worker\n" ? 1 : 0;
    }
    return n;
  };
  // A thread a worker starts (the group commit's flusher, the audit importer) carries the
  // worker's name until its first line names it: the count is taken once two reads 100 ms
  // apart agree (a CI run once read 2 after one write).
  auto threads = [&] {
    int last = named_workers();
    for (int i = 0; i < 50; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const int now = named_workers();
      if (now == last) break;
      last = now;
    }
    return last;
  };
  g_.Start({"--io-threads", "1"});
  EXPECT_EQ(threads(), 0) << "an idle service started its workers";
  ASSERT_EQ(g_.Stop(), 0);

  g_.Start({"--max-threads", "3", "--io-threads", "1"});
  auto create = [&](int i) {
    const std::string email = "w" + std::to_string(i) + "@example.org";
    return g_.Post("/v1/subjects", R"({"kind":"person","fields":{"email":")" + email + R"("}})",
                   key);
  };
  // A create is prepared on the I/O thread and answered once its commit is durable: it holds
  // no thread meanwhile, forty at once included.
  const HttpReply first = create(0);
  ASSERT_EQ(first.status, 201);
  const std::string id = JsonString(first.body, "id");
  std::vector<int> statuses(40);
  std::vector<std::thread> clients;
  for (int i = 0; i < 40; ++i) {
    clients.emplace_back([&, i] { statuses[static_cast<size_t>(i)] = create(i + 1).status; });
  }
  for (auto& c : clients) c.join();
  for (int status : statuses) EXPECT_EQ(status, 201);
  EXPECT_EQ(threads(), 0) << "creates waited for their commits on workers";
  EXPECT_EQ(g_.CountRows("subjects"), 41);
  // So is a rectification.
  auto in_turn = [&](const std::function<int(int)>& request) {
    clients.clear();
    for (int i = 0; i < 40; ++i) {
      clients.emplace_back([&, i] { statuses[static_cast<size_t>(i)] = request(i); });
    }
    for (auto& c : clients) c.join();
  };
  in_turn([&](int i) {
    return g_
        .Patch("/v1/subjects/" + id, R"({"fields":{"city":"Lyon )" + std::to_string(i) + R"("}})",
               key)
        .status;
  });
  for (int status : statuses) EXPECT_EQ(status, 200);
  EXPECT_EQ(threads(), 0) << "rectifications waited for their commits on workers";
  // Interactions run on workers: forty at once wait for their commits side by side.
  in_turn([&](int i) {
    return g_
        .Post("/v1/subjects/" + id + "/interactions",
              R"({"kind":"purchase","amount":)" + std::to_string(i + 1) + "}", key)
        .status;
  });
  for (int status : statuses) EXPECT_EQ(status, 201);
  const int workers = threads();
  EXPECT_GE(workers, 1);
  EXPECT_LE(workers, 3) << "more workers than --max-threads 3";
}

// Creates and consent events are answered once committed and synced, from the thread that
// synced them: the node killed with -9 under load from eight clients, and started again, has
// every subject and every event it answered 201 for.
TEST_F(HttpE2E, EveryAcknowledgedWriteOutlivesAKill) {
  const std::string key = g_.CreateKey("crm", "operator", {"customer_management"});
  g_.Start();
  const HttpReply seed =
      g_.Post("/v1/subjects", R"({"kind":"person","fields":{"email":"seed@example.org"}})", key);
  ASSERT_EQ(seed.status, 201) << seed.body;
  const std::string seed_id = JsonString(seed.body, "id");
  const int port = g_.port();
  std::mutex mu;
  std::vector<std::string> created;
  int events = 0;  // on seed_id: withdrawals, each answered 201
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        try {
          if (t % 2 == 0) {
            const std::string email =
                "k" + std::to_string(t) + "-" + std::to_string(i) + "@example.org";
            HttpReply r = HttpCall(port, "POST", "/v1/subjects",
                                   R"({"kind":"person","fields":{"email":")" + email + R"("}})",
                                   {{"Authorization", "Bearer " + key}});
            std::lock_guard<std::mutex> lock(mu);
            if (r.status == 201) created.push_back(JsonString(r.body, "id"));
          } else {
            HttpReply r =
                HttpCall(port, "POST", "/v1/subjects/" + seed_id + "/consents",
                         R"({"purpose":"marketing.email","event":"withdrawn","method":"api"})",
                         {{"Authorization", "Bearer " + key}});
            std::lock_guard<std::mutex> lock(mu);
            if (r.status == 201) ++events;
          }
        } catch (const std::exception&) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the node is gone
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  g_.Kill();
  stop.store(true);
  for (auto& c : clients) c.join();
  ASSERT_GT(created.size(), 20u);
  ASSERT_GT(events, 20);
  g_.Start();
  for (const auto& id : created) {
    EXPECT_EQ(g_.Get("/v1/subjects/" + id, key, "customer_management").status, 200)
        << id << " was acknowledged";
  }
  const HttpReply history = g_.Get("/v1/subjects/" + seed_id + "/consents", key);
  ASSERT_EQ(history.status, 200);
  size_t recorded = 0;
  for (size_t at = history.body.find("\"receipt\""); at != std::string::npos;
       at = history.body.find("\"receipt\"", at + 1)) {
    ++recorded;
  }
  EXPECT_GE(recorded, static_cast<size_t>(events)) << "acknowledged consent events were lost";
}

// One client's idle connections cannot take every slot: beyond its share, its new connections
// are closed on arrival, and another client is still served.
TEST_F(HttpE2E, OneClientsIdleConnectionsCannotLockOthersOut) {
  g_.Start({"--max-connections", "6", "--max-connections-per-client", "3"});
  std::vector<std::unique_ptr<Poco::Net::StreamSocket>> idle;
  for (int i = 0; i < 3; ++i) idle.push_back(Connect());
  // The fourth from the same address is closed without an answer ...
  auto over = Connect();
  EXPECT_EQ(ReadUntilClosed(*over, std::chrono::seconds(5)), "");
  // ... while another client address (127.0.0.2, the same loopback) is served.
  Poco::Net::StreamSocket other;
  other.impl()->bind(Poco::Net::SocketAddress("127.0.0.2", 0), false);
  other.connect(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(g_.port())));
  SendAll(other, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(ReadUntilClosed(other, std::chrono::seconds(5)).rfind("HTTP/1.1 200", 0), 0u);
  // A slot freed is a slot taken again, once the server has seen the close (on a loaded
  // machine that can take longer than any fixed pause: ask until served, within a bound).
  idle.front()->close();
  std::string served;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (served.empty() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto again = Connect();
    try {  // a connection closed on arrival may already be reset
      SendAll(*again, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    } catch (const Poco::Exception&) {
      continue;
    }
    served = ReadUntilClosed(*again, std::chrono::seconds(5));
  }
  EXPECT_EQ(served.rfind("HTTP/1.1 200", 0), 0u) << served;
  // Its share is still enforced: the two idle ones and the one just served leave room for one.
  std::vector<std::unique_ptr<Poco::Net::StreamSocket>> more;
  for (int i = 0; i < 2; ++i) more.push_back(Connect());
  EXPECT_EQ(ReadUntilClosed(*more.back(), std::chrono::seconds(5)), "");
}

// More connections allowed than descriptors available: said at start, not found out under load.
TEST_F(HttpE2E, MaxConnectionsAboveTheOpenFileLimitIsWarnedAtStart) {
  // The service inherits this process's limits: at most 8192 descriptors for it.
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit lowered{1024, std::min<rlim_t>(saved.rlim_max, 8192)};
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  g_.Start({"--max-connections", "100000"});
  ::setrlimit(RLIMIT_NOFILE, &saved);  // as root: the hard limit goes back up too
  EXPECT_TRUE(g_.WaitForLog("max_connections exceeds the open-file limit", 1)) << g_.Logs();
  EXPECT_EQ(g_.Get("/healthz", "").status, 200);
}

}  // namespace
}  // namespace garde::testing

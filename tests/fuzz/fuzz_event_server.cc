// libFuzzer target: the event server's pipelining. The input becomes several requests sent at
// once on one connection (GETs answered on the I/O thread, POSTs on a worker, some of either
// answered later from another thread, answers of random sizes up to a few hundred KB) while
// the client reads with pauses, so that answers
// wait for the socket to be writable with requests buffered behind them. Every request must be
// answered, in order, and the connection must close after the last (Connection: close).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "garde/http/event_server.h"

namespace {

// Fills in an answer: the size asked, the sequence number echoed.
void Echo(garde::Exchange& x) {
  x.status = 200;
  x.reply_type = "text/plain";
  x.reply.assign(static_cast<size_t>(std::atoi(x.Header("x-size").c_str())), 'x');
  x.reply_headers.emplace_back("X-Seq", x.Header("x-seq"));
}

// Answers requests marked X-Later later, from a thread of its own (as a write answered once
// durable is), in the order they came.
class Later {
 public:
  void Add(garde::Exchange* x) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(x);
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    for (;;) {
      garde::Exchange* x;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        x = queue_.front();
        queue_.pop_front();
      }
      Echo(*x);
      auto send = std::move(x->send_later);
      send();  // x is not touched after this
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<garde::Exchange*> queue_;
  std::thread thread_{[this] { Run(); }};  // lives for the whole run
};

class EchoHandler final : public garde::ExchangeHandler {
 public:
  int64_t BodyLimit(std::string_view) const override { return 1 << 16; }
  bool AnswersAtOnce(const garde::Exchange& x) const override { return x.method == "GET"; }
  bool Answer(garde::Exchange& x, const garde::Status& framing) override {
    if (!framing.ok()) {
      x.status = 400;
      x.reply = "bad";
      return true;
    }
    if (x.send_later && x.Header("x-later") == "1") {
      later_->Add(&x);
      return false;
    }
    Echo(x);
    return true;
  }

 private:
  Later* later_ = new Later;  // lives for the whole run
};

garde::EventServer& Server() {
  static EchoHandler handler;
  static garde::EventServer* server = [] {
    garde::EventServerOptions options;
    options.io_threads = 2;
    options.workers = 2;
    options.request_timeout = std::chrono::seconds(5);
    auto* s = new garde::EventServer(options, handler);  // lives for the whole run
    if (!s->Start().ok()) std::abort();
    return s;
  }();
  return *server;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t count = 1 + data[0] % 24;
  std::string wire;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t b = data[1 + i % (size - 1)];
    const size_t bytes = (b & 0x0f) == 0 ? 200000 : static_cast<size_t>(b) * 97;
    const bool post = (b & 0x10) != 0;
    wire += std::string(post ? "POST" : "GET") +
            " /x HTTP/1.1\r\nHost: f\r\nX-Seq: " + std::to_string(i) +
            "\r\nX-Size: " + std::to_string(bytes) + "\r\n" +
            ((b & 0x40) != 0 ? "X-Later: 1\r\n" : "") + (post ? "Content-Length: 3\r\n" : "") +
            (i + 1 == count ? "Connection: close\r\n" : "") + "\r\n" + (post ? "abc" : "");
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(Server().port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
  std::thread sender([&] { (void)::send(fd, wire.data(), wire.size(), MSG_NOSIGNAL); });
  std::string got;
  char buf[8192];
  for (size_t round = 0;; ++round) {
    // Pauses, decided by the input, while the server's answers pile up.
    if (data[round % size] & 0x80) std::this_thread::sleep_for(std::chrono::microseconds(300));
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  sender.join();
  ::close(fd);
  size_t at = 0;
  for (size_t i = 0; i < count; ++i) {
    const size_t next = got.find("X-Seq: " + std::to_string(i) + "\r\n", at);
    if (next == std::string::npos) {
      std::fprintf(stderr, "request %zu of %zu unanswered or out of order\n", i, count);
      std::abort();
    }
    at = next;
  }
  return 0;
}

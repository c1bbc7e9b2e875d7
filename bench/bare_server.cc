// Baseline for HTTP benchmarks: a bare Poco HTTPServer answering every request with a fixed
// 60-byte JSON body, with the same thread and keep-alive settings garde uses.
//
//   garde_bench_bare 127.0.0.1:9090                 # stock Poco HTTPServer (the baseline)
//   garde_bench_bare 127.0.0.1:9090 --garde-server  # the same answer from garde's own
//                                                   # event-driven server (event_server.h)
//   garde_bench_bare 127.0.0.1:9090 --garde-server 20  # ... spinning 20 µs per request, to
//                                                      # see the tail of a given CPU cost
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/ThreadPool.h>
#include <Poco/Util/ServerApplication.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <thread>

#include "garde/http/event_server.h"

namespace {

constexpr char kBody[] = R"({"id":"sub_0123456789abcdefghjkmnpqrs","status":"active"})";

class FixedHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  void handleRequest(Poco::Net::HTTPServerRequest& req,
                     Poco::Net::HTTPServerResponse& resp) override {
    req.stream().ignore(std::numeric_limits<std::streamsize>::max());
    static const std::string body =
        std::string(kBody) + std::string(60 - sizeof(kBody) + 1, ' ');  // 60 bytes
    resp.setContentType("application/json");
    resp.setContentLength64(static_cast<Poco::Int64>(body.size()));
    resp.sendBuffer(body.data(), body.size());
  }
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new FixedHandler;  // Poco owns and deletes the handler
  }
};

// The fixed answer behind garde's server: every request is answered on its I/O thread.
class FixedExchange final : public garde::ExchangeHandler {
 public:
  explicit FixedExchange(int work_us) : work_us_(work_us) {}
  int64_t BodyLimit(std::string_view) const override { return 1 << 20; }
  bool AnswersAtOnce(const garde::Exchange&) const override { return true; }
  bool Answer(garde::Exchange& x, const garde::Status&) override {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(work_us_);
    while (work_us_ > 0 && std::chrono::steady_clock::now() < until) {
    }
    static const std::string body = std::string(kBody) + std::string(60 - sizeof(kBody) + 1, ' ');
    x.Json(200, body);
    return true;
  }

 private:
  const int work_us_;
};

class BareApp final : public Poco::Util::ServerApplication {
 public:
  BareApp(std::string listen, bool garde_server, int work_us)
      : listen_(std::move(listen)), garde_server_(garde_server), work_us_(work_us) {}

 protected:
  int main(const std::vector<std::string>&) override {
    if (garde_server_) {
      FixedExchange handler(work_us_);
      garde::EventServerOptions options;
      const Poco::Net::SocketAddress address(listen_);
      options.host = address.host().toString();
      options.port = address.port();
      options.io_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      garde::EventServer server(options, handler);
      if (!server.Start().ok()) return 1;
      std::cout << "bare (garde server) listening on " << listen_ << std::endl;
      waitForTerminationRequest();
      server.Stop();
      return 0;
    }
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress(listen_), 128);
    auto params = Poco::AutoPtr<Poco::Net::HTTPServerParams>(new Poco::Net::HTTPServerParams);
    params->setMaxThreads(128);
    params->setMaxQueued(256);
    params->setKeepAlive(true);
    params->setMaxKeepAliveRequests(10000);
    Poco::ThreadPool pool(4, 132, 60);
    Poco::Net::HTTPServer server(new Factory, pool, socket, params);  // takes the factory
    server.start();
    std::cout << "bare listening on " << listen_ << std::endl;
    waitForTerminationRequest();
    server.stopAll(false);
    return 0;
  }

 private:
  std::string listen_;
  bool garde_server_;
  int work_us_;
};

}  // namespace

int main(int argc, char** argv) {
  BareApp app(argc > 1 ? argv[1] : "127.0.0.1:9090",
              argc > 2 && std::string(argv[2]) == "--garde-server",
              argc > 3 ? std::atoi(argv[3]) : 0);
  std::vector<std::string> args = {"bare"};
  return app.run(args);
}

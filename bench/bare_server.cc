// Baseline for HTTP benchmarks: a bare Poco HTTPServer answering every request with a fixed
// 60-byte JSON body, with the same thread and keep-alive settings garde uses.
//
//   garde_bench_bare 127.0.0.1:9090               # stock Poco HTTPServer (the baseline)
//   garde_bench_bare 127.0.0.1:9090 --garde-loop  # the same handler behind garde's own
//                                                 # keep-alive loop (http_connection.h)
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

#include <atomic>
#include <iostream>
#include <memory>
#include <limits>
#include <string>

#include "garde/http/http_connection.h"

namespace {

constexpr char kBody[] = R"({"id":"sub_0123456789abcdefghjkmnpqrs","status":"active"})";


class FixedHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  void handleRequest(Poco::Net::HTTPServerRequest& req,
                     Poco::Net::HTTPServerResponse& resp) override {
    req.stream().ignore(std::numeric_limits<std::streamsize>::max());
    static const std::string body = std::string(kBody) + std::string(60 - sizeof(kBody) + 1, ' ');  // 60 bytes
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

class BareApp final : public Poco::Util::ServerApplication {
 public:
  BareApp(std::string listen, bool garde_loop)
      : listen_(std::move(listen)), garde_loop_(garde_loop) {}

 protected:
  int main(const std::vector<std::string>&) override {
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress(listen_), 128);
    auto params = Poco::AutoPtr<Poco::Net::HTTPServerParams>(new Poco::Net::HTTPServerParams);
    params->setMaxThreads(128);
    params->setMaxQueued(256);
    params->setKeepAlive(true);
    params->setMaxKeepAliveRequests(10000);
    Poco::ThreadPool pool(4, 132, 60);
    if (garde_loop_) {
      auto stopping = std::make_shared<std::atomic<bool>>(false);
      Poco::Net::TCPServer server(
          new garde::HttpConnectionFactory(new Factory, params, stopping), pool, socket, params);
      server.start();
      std::cout << "bare (garde loop) listening on " << listen_ << std::endl;
      waitForTerminationRequest();
      *stopping = true;
      server.stop();
      pool.joinAll();
      return 0;
    }
    Poco::Net::HTTPServer server(new Factory, pool, socket, params);  // takes the factory
    server.start();
    std::cout << "bare listening on " << listen_ << std::endl;
    waitForTerminationRequest();
    server.stopAll(false);
    return 0;
  }

 private:
  std::string listen_;
  bool garde_loop_;
};

}  // namespace

int main(int argc, char** argv) {
  BareApp app(argc > 1 ? argv[1] : "127.0.0.1:9090",
              argc > 2 && std::string(argv[2]) == "--garde-loop");
  std::vector<std::string> args = {"bare"};
  return app.run(args);
}

// Baseline for HTTP benchmarks: a bare Poco HTTPServer answering every request with a fixed
// 60-byte JSON body, with the same thread and keep-alive settings garde uses.
//
//   garde_bench_bare 127.0.0.1:9090
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>
#include <Poco/Util/ServerApplication.h>

#include <iostream>
#include <limits>
#include <string>

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
  explicit BareApp(std::string listen) : listen_(std::move(listen)) {}

 protected:
  int main(const std::vector<std::string>&) override {
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
};

}  // namespace

int main(int argc, char** argv) {
  BareApp app(argc > 1 ? argv[1] : "127.0.0.1:9090");
  std::vector<std::string> args = {"bare"};
  return app.run(args);
}

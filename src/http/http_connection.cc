#include "garde/http/http_connection.h"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponseImpl.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Timestamp.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>

#include "garde/base/encoding.h"
#include "garde/base/status.h"
#include "garde/http/problem.h"

namespace garde {
namespace {

// How often a connection waiting for its next request looks at the stop flag.
constexpr int kStopCheckMs = 200;

// The session with its read-ahead visible: a pipelined request already buffered needs no
// wait.
class Session final : public Poco::Net::HTTPServerSession {
 public:
  using HTTPServerSession::HTTPServerSession;
  bool HasBuffered() const { return buffered() > 0; }
};

// The Date header, formatted once a second per thread rather than once a response.
const std::string& HttpDate() {
  thread_local std::time_t formatted_for = 0;
  thread_local std::string text;
  const std::time_t now = std::time(nullptr);
  if (now != formatted_for) {
    formatted_for = now;
    text = Poco::DateTimeFormatter::format(Poco::Timestamp::fromEpochTime(now),
                                           Poco::DateTimeFormat::HTTP_FORMAT);
  }
  return text;
}

class HttpConnection final : public Poco::Net::TCPServerConnection {
 public:
  HttpConnection(const Poco::Net::StreamSocket& socket,
                 Poco::Net::HTTPRequestHandlerFactory::Ptr handlers,
                 Poco::Net::HTTPServerParams::Ptr params,
                 std::shared_ptr<const std::atomic<bool>> stopping)
      : TCPServerConnection(socket),
        handlers_(std::move(handlers)),
        params_(std::move(params)),
        stopping_(std::move(stopping)) {}

  void run() override {
    Session session(socket(), params_);
    const int max_requests = params_->getMaxKeepAliveRequests();  // <= 0: no limit
    int served = 0;
    try {
      for (;;) {
        if (served > 0 && (!session.getKeepAlive() ||
                           (max_requests > 0 && served >= max_requests))) {
          break;
        }
        const Poco::Timespan wait =
            served == 0 ? params_->getTimeout() : params_->getKeepAliveTimeout();
        if (!session.HasBuffered() && !WaitForRequest(wait)) break;
        if (stopping_->load(std::memory_order_relaxed)) break;
        ++served;
        if (!ServeOne(session)) break;
      }
    } catch (const Poco::Exception&) {
      // The peer went away or broke the protocol mid-exchange: the connection just closes.
    }
  }

 private:
  // True once the socket is readable (a request, or the peer closing), false when `wait`
  // passes without one or the server stops.
  bool WaitForRequest(Poco::Timespan wait) {
    const int fd = socket().impl()->sockfd();
    auto left_ms = std::max<int64_t>(0, wait.totalMilliseconds());
    for (;;) {
      if (stopping_->load(std::memory_order_relaxed)) return false;
      pollfd p{fd, POLLIN, 0};
      const int slice = static_cast<int>(std::min<int64_t>(left_ms, kStopCheckMs));
      const auto started = std::chrono::steady_clock::now();
      const int rc = ::poll(&p, 1, slice);
      if (rc > 0) return true;
      if (rc < 0 && errno != EINTR) return false;
      left_ms -= std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - started)
                     .count();
      if (rc == 0 && left_ms <= 0) return false;
    }
  }

  // One request and its answer; false when the connection must close.
  bool ServeOne(Session& session) {
    try {
      Poco::Net::HTTPServerResponseImpl response(session);
      Poco::Net::HTTPServerRequestImpl request(response, session, params_);
      response.set("Date", HttpDate());
      response.setVersion(request.getVersion());
      response.setKeepAlive(params_->getKeepAlive() && request.getKeepAlive() &&
                            session.canKeepAlive() && !stopping_->load());
      const std::string& server = params_->getSoftwareVersion();
      if (!server.empty()) response.set("Server", server);
      std::unique_ptr<Poco::Net::HTTPRequestHandler> handler(
          handlers_->createRequestHandler(request));
      if (request.getExpectContinue() &&
          response.getStatus() == Poco::Net::HTTPResponse::HTTP_OK) {
        response.sendContinue();
      }
      handler->handleRequest(request, response);
      session.setKeepAlive(params_->getKeepAlive() && response.getKeepAlive() &&
                           session.canKeepAlive());
      return true;
    } catch (const Poco::Net::NoMessageException&) {
      return false;  // the peer closed between requests
    } catch (const Poco::Net::MessageException&) {
      SendBadRequest(session);
      return false;
    }
  }

  // A request line or header block that is not HTTP: answered like every other error.
  static void SendBadRequest(Session& session) {
    const std::string request_id = NextRequestId();
    const std::string body =
        ProblemBody(BadRequest("the request is not valid HTTP/1.1"), request_id);
    Poco::Net::HTTPServerResponseImpl response(session);
    response.setVersion(Poco::Net::HTTPMessage::HTTP_1_1);
    response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_BAD_REQUEST);
    response.setKeepAlive(false);
    response.set("Date", HttpDate());
    SetStandardHeaders(response, request_id);
    response.setContentType("application/problem+json");
    response.setContentLength64(static_cast<Poco::Int64>(body.size()));
    // Not sendBuffer: without a parsed request Poco would leave the body out.
    response.send().write(body.data(), static_cast<std::streamsize>(body.size())).flush();
    session.setKeepAlive(false);
  }

  Poco::Net::HTTPRequestHandlerFactory::Ptr handlers_;
  Poco::Net::HTTPServerParams::Ptr params_;
  std::shared_ptr<const std::atomic<bool>> stopping_;
};

}  // namespace

// A per-thread random prefix and a counter avoid a getrandom() call per request.
std::string NextRequestId() {
  thread_local const std::string prefix = RandomId("req_").substr(0, 16);
  thread_local uint64_t counter = 0;
  return prefix + std::to_string(++counter);
}

void SetStandardHeaders(Poco::Net::HTTPResponse& response, const std::string& request_id) {
  response.set("X-Request-Id", request_id);
  response.set("X-Content-Type-Options", "nosniff");
  response.set("Cache-Control", "no-store");
}

Poco::Net::TCPServerConnection* HttpConnectionFactory::createConnection(
    const Poco::Net::StreamSocket& socket) {
  return new HttpConnection(socket, handlers_, params_, stopping_);
}

}  // namespace garde

#include "garde/http/http_service.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>

#include <chrono>
#include <cstdio>

#include "garde/base/encoding.h"
#include "garde/base/log.h"
#include "garde/http/http_connection.h"
#include "garde/http/problem.h"
#include "garde/http/request_pages.h"

namespace garde {
namespace {

bool ValidRequestId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_' || c == '.' || c == ':')) {
      return false;
    }
  }
  return true;
}

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

void Fail(Exchange& x, const Status& s) {
  x.status = HttpStatusOf(s.code());
  x.reply_type = "application/problem+json";
  x.reply = ProblemBody(s, x.request_id);
}

class GardeRequestHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit GardeRequestHandler(HttpService& service) : service_(service) {}

  void handleRequest(Poco::Net::HTTPServerRequest& req,
                     Poco::Net::HTTPServerResponse& resp) override {
    const auto started = std::chrono::steady_clock::now();
    auto elapsed_ms = [&] {
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
          .count();
    };
    Exchange x;
    x.method = req.getMethod();
    const std::string incoming_id = req.get("X-Request-Id", "");
    x.request_id = ValidRequestId(incoming_id) ? incoming_id : NextRequestId();
    bool sent = false;
    try {
      Status body_status = ReadRequest(req, x);
      if (body_status.ok()) {
        service_.Dispatch(x);
      } else {
        Fail(x, body_status);
        if (body_status.code() == Code::kPayloadTooLarge) resp.setKeepAlive(false);
      }
      // W3C Server Timing: the time from receiving the request to having the whole answer
      // ready, without sending it (what a client cannot tell apart from the network).
      char timing[48];
      std::snprintf(timing, sizeof(timing), "app;dur=%.2f", elapsed_ms());
      resp.set("Server-Timing", timing);
      Send(resp, x);
      sent = true;
    } catch (const Poco::Net::NetException&) {
      sent = true;  // the client went away; nothing to answer
    } catch (const Poco::TimeoutException&) {
      sent = true;
    } catch (const std::exception& e) {
      LogLine(spdlog::level::err, "unhandled exception")
          .Str("request_id", x.request_id)
          .Str("route", x.route)
          .Str("what", e.what());
    } catch (...) {
      LogLine(spdlog::level::err, "unhandled exception").Str("request_id", x.request_id);
    }
    if (!sent && !resp.sent()) {
      x.caller.reset();
      Fail(x, Internal("an unexpected error occurred; it has been logged"));
      try {
        Send(resp, x);
      } catch (...) {
      }
    }
    const double ms = elapsed_ms();
    LogLine(x.status >= 500 ? spdlog::level::warn : spdlog::level::debug, "request")
        .Str("request_id", x.request_id)
        .Str("method", x.method)
        .Str("route", x.route.empty() ? "(unmatched)" : x.route)
        .Int("status", x.status)
        .Num("ms", ms)
        .Str("key", x.caller ? x.caller->key_id : "");
  }

 private:
  // Reads headers, query and the whole body (within limits) into x.
  Status ReadRequest(Poco::Net::HTTPServerRequest& req, Exchange& x) {
    const auto& cfg = service_.deployment().config();
    std::string uri = req.getURI();
    const size_t q = uri.find('?');
    std::string raw_path = uri.substr(0, q);
    try {
      Poco::URI::decode(raw_path, x.path);
      if (q != std::string::npos) {
        Poco::URI parsed("http://h/?" + uri.substr(q + 1));
        for (const auto& [k, v] : parsed.getQueryParameters()) x.query[k] = v;
      }
    } catch (const Poco::Exception&) {
      x.path = raw_path;
      return BadRequest("the request URI is malformed");
    }
    for (const auto& [name, value] : req) x.headers[Lower(name)] = value;
    const std::string ct = req.getContentType();
    x.content_type = Lower(ct.substr(0, ct.find(';')));
    while (!x.content_type.empty() && x.content_type.back() == ' ') x.content_type.pop_back();

    const bool batch = x.path.size() > 6 && x.path.compare(x.path.size() - 6, 6, ":batch") == 0;
    const int64_t limit = batch ? cfg.max_batch_bytes : cfg.max_body_bytes;
    std::istream& in = req.stream();
    if (req.hasContentLength()) {
      const int64_t len = req.getContentLength64();
      if (len > limit) {
        return Status(Code::kPayloadTooLarge,
                      "the body is larger than " + std::to_string(limit) + " bytes");
      }
      x.body.resize(static_cast<size_t>(len));
      in.read(x.body.data(), len);
      x.body.resize(static_cast<size_t>(in.gcount()));
    } else if (req.getChunkedTransferEncoding()) {
      char buf[16384];
      while (in) {
        in.read(buf, sizeof buf);
        x.body.append(buf, static_cast<size_t>(in.gcount()));
        if (static_cast<int64_t>(x.body.size()) > limit) {
          return Status(Code::kPayloadTooLarge,
                        "the body is larger than " + std::to_string(limit) + " bytes");
        }
      }
    }
    return Status::Ok();
  }

  void Send(Poco::Net::HTTPServerResponse& resp, const Exchange& x) {
    resp.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(x.status));
    SetStandardHeaders(resp, x.request_id);
    for (const auto& [k, v] : x.reply_headers) resp.set(k, v);
    resp.setContentType(x.reply_type);
    resp.setContentLength64(static_cast<Poco::Int64>(x.reply.size()));
    if (x.method == "HEAD") {
      resp.send();
      return;
    }
    resp.sendBuffer(x.reply.data(), x.reply.size());
  }

  HttpService& service_;
};

class GardeHandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit GardeHandlerFactory(HttpService& service) : service_(service) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new GardeRequestHandler(service_);  // Poco owns and deletes the handler
  }

 private:
  HttpService& service_;
};

}  // namespace

Status Authenticate(Deployment& d, Exchange& x) {
  if (x.caller) return Status::Ok();
  const std::string auth = x.Header("authorization");
  if (auth.empty()) {
    x.reply_headers.emplace_back("WWW-Authenticate", "Bearer realm=\"garde\"");
    return Unauthenticated("send an API key as `Authorization: Bearer <key>`");
  }
  if (auth.size() < 8 || Lower(auth.substr(0, 7)) != "bearer ") {
    x.reply_headers.emplace_back("WWW-Authenticate", "Bearer realm=\"garde\"");
    return Unauthenticated("the Authorization header must use the Bearer scheme");
  }
  auto caller = d.api_keys().Authenticate(auth.substr(7));
  if (!caller.ok()) {
    x.reply_headers.emplace_back("WWW-Authenticate",
                                 "Bearer realm=\"garde\", error=\"invalid_token\"");
    return caller.status();
  }
  caller.value().request_id = x.request_id;
  x.caller = std::move(caller.value());
  return Status::Ok();
}

std::string BearerCredential(const Exchange& x) {
  const std::string auth = x.Header("authorization");
  if (auth.size() < 8 || Lower(auth.substr(0, 7)) != "bearer ") return "";
  return auth.substr(7);
}

Status RequireJsonBody(const Exchange& x) {
  const std::string& ct = x.content_type;
  const bool json = ct == "application/json" ||
                    (ct.size() > 5 && ct.compare(ct.size() - 5, 5, "+json") == 0);
  if (!json) {
    return Status(Code::kUnsupportedMediaType,
                  "send the body as application/json" +
                      std::string(ct.empty() ? "" : " (got " + ct + ")"));
  }
  return Status::Ok();
}

HttpService::HttpService(Deployment& deployment) : d_(deployment) {
  AddSystemRoutes(router_, d_);
  AddSubjectRoutes(router_, d_);
  AddAuditRoutes(router_, d_);
  AddConsentRoutes(router_, d_);
  AddLinkRoutes(router_, d_);
  AddAudienceRoutes(router_, d_);
  AddRegisterRoutes(router_, d_);
  AddRequestRoutes(router_, d_);
  AddRequestPages(router_, d_);
}

HttpService::~HttpService() { Stop(); }

void HttpService::Dispatch(Exchange& x) {
  std::vector<std::string> allowed;
  const Route* route = router_.Match(x.method, x.path, &x.params, &allowed);
  Status s;
  if (route == nullptr) {
    if (allowed.empty()) {
      s = NotFound("no such path");
    } else {
      std::string allow;
      for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
      x.reply_headers.emplace_back("Allow", allow);
      s = Status(Code::kMethodNotAllowed, "use " + allow);
    }
  } else {
    x.route = route->method + " " + route->pattern;
    s = route->handler(x);
    if (s.code() == Code::kPermissionDenied && x.caller) {
      // Refusals are evidence too: who tried what, for which activity.
      auto subject = x.params.find("id");
      d_.journal()
          .Record(nullptr, *x.caller,
                  {"access.denied",
                   subject != x.params.end() && IsRandomId(subject->second, "sub_")
                       ? subject->second
                       : "",
                   x.Header("x-purpose").substr(0, 100), "denied", {x.route}, 0})
          .IgnoreError();
    }
  }
  if (!s.ok()) Fail(x, s);
  if (x.status >= 500) {
    LogLine(spdlog::level::err, "request failed")
        .Str("request_id", x.request_id)
        .Str("route", x.route)
        .Str("detail", s.message());
  }
}

Status HttpService::Start() {
  const Config& cfg = d_.config();
  try {
    Poco::Net::SocketAddress address(cfg.listen_host, cfg.listen_port);
    // Reuse the address (restart while old connections linger) but not the port: a second
    // service on the same port must fail to start, not share its connections.
    Poco::Net::ServerSocket socket;
    socket.bind(address, /*reuseAddress=*/true, /*reusePort=*/false);
    socket.listen(128);
    port_ = socket.address().port();
    d_.set_bound_port(port_);
    auto params = Poco::AutoPtr<Poco::Net::HTTPServerParams>(new Poco::Net::HTTPServerParams);
    params->setMaxThreads(cfg.max_threads);
    params->setMaxQueued(cfg.max_queued);
    params->setTimeout(Poco::Timespan(cfg.request_timeout, 0));
    params->setKeepAlive(true);
    params->setKeepAliveTimeout(Poco::Timespan(cfg.keep_alive_timeout, 0));
    params->setMaxKeepAliveRequests(cfg.max_keep_alive_requests);
    params->setServerName("garde");
    // A pool of our own: Poco's default pool caps at 16 threads whatever maxThreads says.
    // Workers are started up front (up to 64) so a burst of connections does not wait for
    // thread creation; the pool grows to max_threads on demand.
    pool_ = std::make_unique<Poco::ThreadPool>(std::min(cfg.max_threads, 64),
                                               cfg.max_threads + 4, 60);
    stopping_ = std::make_shared<std::atomic<bool>>(false);
    Poco::Net::HTTPRequestHandlerFactory::Ptr handlers(new GardeHandlerFactory(*this));
    server_ = std::make_unique<Poco::Net::TCPServer>(
        new HttpConnectionFactory(handlers, params, stopping_), *pool_, socket, params);
    server_->start();
  } catch (const Poco::Exception& e) {
    return Unavailable("cannot listen on " + cfg.listen_host + ":" +
                       std::to_string(cfg.listen_port) + ": " + e.displayText());
  }
  return Status::Ok();
}

void HttpService::Stop() {
  if (server_) {
    // Accept no more, close idle connections, let each busy one finish its request.
    *stopping_ = true;
    server_->stop();
    pool_->joinAll();
    server_.reset();
  }
}

}  // namespace garde

#include "garde/http/http_service.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "garde/base/encoding.h"
#include "garde/base/ip_address.h"
#include "garde/base/log.h"
#include "garde/crypto/sealed_spool.h"
#include "garde/http/console.h"
#include "garde/http/metrics.h"
#include "garde/http/problem.h"
#include "garde/http/request_pages.h"

namespace garde {
namespace {

bool ValidRequestId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.' || c == ':')) {
      return false;
    }
  }
  return true;
}

void Fail(Exchange& x, const Status& s) {
  x.status = HttpStatusOf(s.code());
  x.reply_type = "application/problem+json";
  x.reply = ProblemBody(s, x.request_id);
}

// Reads path and query out of the raw target into x.
Status ParseTarget(Exchange& x) {
  const size_t q = x.target.find('?');
  const std::string raw_path = x.target.substr(0, q);
  // An encoded slash would make the decoded path's segments differ from the raw one's (which
  // paces the request and which proxies in front match on): refused, so both agree.
  if (raw_path.find("%2F") != std::string::npos || raw_path.find("%2f") != std::string::npos) {
    x.path = "/";
    return BadRequest("an encoded slash (%2F) in the request path is refused");
  }
  try {
    Poco::URI::decode(raw_path, x.path);
    if (q != std::string::npos) {
      Poco::URI parsed("http://h/?" + x.target.substr(q + 1));
      for (const auto& [k, v] : parsed.getQueryParameters()) x.query[k] = v;
    }
  } catch (const Poco::Exception&) {
    x.path = raw_path;
    return BadRequest("the request URI is malformed");
  }
  const std::string ct = x.Header("content-type");
  x.content_type = AsciiLower(ct.substr(0, ct.find(';')));
  while (!x.content_type.empty() && x.content_type.back() == ' ') x.content_type.pop_back();
  return Status::Ok();
}

std::string_view PathOf(std::string_view target) { return target.substr(0, target.find('?')); }

bool IsBatchTarget(std::string_view target) {
  const std::string_view path = PathOf(target);
  return path.size() > 6 && path.substr(path.size() - 6) == ":batch";
}

// A spreadsheet upload goes to a sealed spool as it arrives, not to memory.
bool IsUploadTarget(std::string_view target) { return PathOf(target) == "/v1/imports"; }

}  // namespace

int64_t HttpService::BodyLimit(std::string_view target) const {
  const auto& cfg = d_.config();
  if (IsUploadTarget(target)) return cfg.max_import_bytes;
  return IsBatchTarget(target) ? cfg.max_batch_bytes : cfg.max_body_bytes;
}

Result<std::unique_ptr<SealedSpool>> HttpService::SpoolFor(std::string_view target) {
  if (!IsUploadTarget(target)) return std::unique_ptr<SealedSpool>();
  return SealedSpool::Create(d_.config().data_dir);
}

bool HttpService::AnswersAtOnce(const Exchange& x) const {
  const Pace pace = router_.PaceOf(x.method, x.target.substr(0, x.target.find('?')));
  if (pace != Pace::kPostsItsWrite) return pace == Pace::kAtOnce;
  // A write prepared on the I/O thread must not wait there: for a store that posts its
  // writes, and root keys in memory (a token's call, to wrap a new subject's key, may take
  // the time of a network round trip).
  if (!d_.store().PostsWrites()) return false;
  const auto ring = d_.keys().Current();
  return ring->TokenKey(ring->current_version()) == nullptr;
}

bool HttpService::Defer(Exchange& x, std::function<void()> ready) {
  // With strict reads on PostgreSQL, an answer from memory waits for the database's change
  // counters first: the store calls back once they have answered (one query for every
  // request waiting then), and no thread is held meanwhile.
  x.fresh_ticket = d_.store().WhenFresh(std::move(ready));
  return x.fresh_ticket != 0;
}

namespace {

// A route that throws gets a plain 500; whatever it had built of its answer is dropped.
void AnswerInternalError(Exchange& x, const char* what) {
  LogLine(spdlog::level::err, "unhandled exception")
      .Str("request_id", x.request_id)
      .Str("route", x.route)
      .Str("what", what);
  x.caller.reset();
  x.reply_headers.clear();
  Fail(x, Internal("an unexpected error occurred; it has been logged"));
}

}  // namespace

bool HttpService::Answer(Exchange& x, const Status& framing) {
  if (x.received == std::chrono::steady_clock::time_point{}) {
    x.received = std::chrono::steady_clock::now();
  }
  const std::string incoming_id = x.Header("x-request-id");
  x.request_id = ValidRequestId(incoming_id) ? incoming_id : NextRequestId();
  // A route that answers later fills in its answer on another thread, perhaps before this
  // one has returned from it: whichever of the two is done with x last sends it.
  struct Later {
    std::atomic<int> pending{2};
    std::function<void()> send;
  };
  std::shared_ptr<Later> later;
  if (x.send_later) {
    later = std::make_shared<Later>();
    later->send = std::move(x.send_later);
    x.finish_later = [this, &x, later](const std::function<Status()>& fill) {
      try {
        Conclude(x, fill());
      } catch (const std::exception& e) {
        AnswerInternalError(x, e.what());
      } catch (...) {
        AnswerInternalError(x, "(not a std::exception)");
      }
      Finish(x);
      if (later->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) later->send();
    };
  }
  try {
    // What this request reads from memory is confirmed once (or was, when it was deferred).
    const ReadScope reads(&d_.store(), x.fresh_ticket);
    Status read = framing.ok() ? ParseTarget(x) : framing;
    if (read.ok()) {
      Dispatch(x);
    } else {
      Fail(x, read);
    }
  } catch (const std::exception& e) {
    if (!x.answering_later) AnswerInternalError(x, e.what());
  } catch (...) {
    if (!x.answering_later) AnswerInternalError(x, "(not a std::exception)");
  }
  // (answering_later is this thread's own: the other thread never writes it.)
  if (x.answering_later) {
    if (later->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) later->send();
    return false;
  }
  x.finish_later = nullptr;
  Finish(x);
  return true;
}

void HttpService::Finish(Exchange& x) {
  // W3C Server Timing: from having the whole request to having the whole answer ready,
  // without sending it (what a client cannot tell apart from the network).
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - x.received)
          .count();
  char timing[48];
  std::snprintf(timing, sizeof(timing), "app;dur=%.2f", ms);
  x.reply_headers.emplace_back("Server-Timing", timing);
  if (metrics_) metrics_->Record(x.route_index, x.status, ms / 1000);
  x.reply_headers.emplace_back("X-Request-Id", x.request_id);
  x.reply_headers.emplace_back("X-Content-Type-Options", "nosniff");
  x.reply_headers.emplace_back("Cache-Control", "no-store");
  LogLine(x.status >= 500 ? spdlog::level::warn : spdlog::level::debug, "request")
      .Str("request_id", x.request_id)
      .Str("method", x.method)
      .Str("route", x.route.empty() ? "(unmatched)" : x.route)
      .Int("status", x.status)
      .Num("ms", ms)
      .Str("key", x.caller ? x.caller->key_id : "");
}

Status RequireCapability(Deployment& d, Exchange& x, const char* capability) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  return AccessGate::Require(*d.policies().Current(), *x.caller, capability);
}

namespace {

// What the audit log records of the address `x` came from (AuditValues::Client).
std::string ClientDigest(Deployment& d, const Exchange& x) {
  return d.audit().values().Client(
      ClientAddress(d.config().trusted_proxies, x.peer, x.Header("x-forwarded-for")));
}

}  // namespace

Caller FromClient(Deployment& d, const Exchange& x, Caller caller) {
  caller.client = ClientDigest(d, x);
  return caller;
}

RequestOrigin Origin(Deployment& d, const Exchange& x) {
  return RequestOrigin(x.request_id, ClientDigest(d, x));
}

Status Authenticate(Deployment& d, Exchange& x) {
  if (x.caller) return Status::Ok();
  const std::string auth = x.Header("authorization");
  if (auth.empty()) {
    x.reply_headers.emplace_back("WWW-Authenticate", "Bearer realm=\"garde\"");
    return Unauthenticated("send an API key as `Authorization: Bearer <key>`");
  }
  if (auth.size() < 8 || AsciiLower(auth.substr(0, 7)) != "bearer ") {
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
  x.caller = FromClient(d, x, std::move(caller.value()));
  return Status::Ok();
}

std::string BearerCredential(const Exchange& x) {
  const std::string auth = x.Header("authorization");
  if (auth.size() < 8 || AsciiLower(auth.substr(0, 7)) != "bearer ") return "";
  return auth.substr(7);
}

Status RequireJsonBody(const Exchange& x) {
  const std::string& ct = x.content_type;
  const bool json =
      ct == "application/json" || (ct.size() > 5 && ct.compare(ct.size() - 5, 5, "+json") == 0);
  if (!json) {
    return Status(
        Code::kUnsupportedMediaType,
        "send the body as application/json" + std::string(ct.empty() ? "" : " (got " + ct + ")"));
  }
  return Status::Ok();
}

void AddAllRoutes(Router& router, Deployment& d) {
  AddSystemRoutes(router, d);
  AddSubjectRoutes(router, d);
  AddImportRoutes(router, d);
  AddSegmentRoutes(router, d);
  AddAuditRoutes(router, d);
  AddConsentRoutes(router, d);
  AddLinkRoutes(router, d);
  AddAudienceRoutes(router, d);
  AddRegisterRoutes(router, d);
  AddRetentionRoutes(router, d);
  AddIncidentRoutes(router, d);
  AddRequestRoutes(router, d);
  AddRequestPages(router, d);
}

HttpService::HttpService(Deployment& deployment) : d_(deployment), admin_(false) {
  AddAllRoutes(router_, d_);
  console_ = std::make_unique<ConsoleSessions>(d_.store(), d_.clock());
  AddConsoleRoutes(router_, d_, *console_);
  metrics_ = std::make_unique<RequestMetrics>(router_.routes().size());
}

HttpService::HttpService(Deployment& deployment, const HttpService& api)
    : d_(deployment), admin_(true) {
  router_.Add("GET", "/metrics", [&deployment, &api](Exchange& x) {
    x.status = 200;
    x.reply_type = "text/plain; version=0.0.4; charset=utf-8";
    x.reply = MetricsText(deployment, *api.metrics_, api.router_.routes());
    return Status::Ok();
  });
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
    x.route_index = static_cast<int>(route - router_.routes().data());
    s = route->handler(x);
    // Answered later, on another thread: nothing of x is this thread's any more.
    if (x.answering_later) return;
  }
  Conclude(x, s);
}

void HttpService::Conclude(Exchange& x, const Status& s) {
  if (s.code() == Code::kPermissionDenied && x.caller) {
    // Refusals are evidence too: who tried what, for which activity.
    auto subject = x.params.find("id");
    d_.journal()
        .Record(nullptr, *x.caller,
                {"access.denied",
                 subject != x.params.end() && x.route.find("/subjects/") != std::string::npos
                     ? subject->second
                     : "",
                 x.Header("x-purpose"),
                 "denied",
                 {x.route},
                 0})
        .IgnoreError();
  }
  if (!s.ok()) Fail(x, s);
  if (x.status >= 500) {
    LogLine(spdlog::level::err, "request failed")
        .Str("request_id", x.request_id)
        .Str("route", x.route)
        .Str("detail", s.message());
  }
}

namespace {

// Each connection holds a descriptor: raise the soft open-file limit towards what
// max_connections needs (plus databases, journals, epoll), and say so when it cannot.
void CheckDescriptorLimit(int max_connections) {
  constexpr rlim_t kReserve = 64;
  const rlim_t needed = static_cast<rlim_t>(max_connections) + kReserve;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= needed) return;
  rlimit raised = limit;
  raised.rlim_cur = std::min(needed, limit.rlim_max);
  if (raised.rlim_cur > limit.rlim_cur && ::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
    limit = raised;
  }
  if (limit.rlim_cur < needed) {
    LogLine(spdlog::level::warn, "max_connections exceeds the open-file limit")
        .Int("max_connections", max_connections)
        .Int("open_file_limit", static_cast<int64_t>(limit.rlim_cur))
        .Str("hint", "raise LimitNOFILE / ulimit -n, or lower max_connections");
  }
}

}  // namespace

Status HttpService::Start() {
  const Config& cfg = d_.config();
  CheckDescriptorLimit(cfg.max_connections);
  EventServerOptions options;
  options.host = admin_ ? cfg.admin_listen_host : cfg.listen_host;
  options.port = admin_ ? cfg.admin_listen_port : cfg.listen_port;
  options.io_threads = cfg.io_threads > 0
                           ? cfg.io_threads
                           : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.workers = cfg.max_threads;
  options.max_queued = cfg.max_queued;
  options.max_connections = cfg.max_connections;
  options.max_connections_per_client = cfg.max_connections_per_client;
  options.request_timeout = std::chrono::seconds(cfg.request_timeout);
  options.keep_alive_timeout = std::chrono::seconds(cfg.keep_alive_timeout);
  options.max_keep_alive_requests = cfg.max_keep_alive_requests;
  server_ = std::make_unique<EventServer>(options, *this);
  Status started = server_->Start();
  if (!started.ok()) {
    server_.reset();
    return started;
  }
  port_ = server_->port();
  if (!admin_) d_.set_bound_port(port_);
  return Status::Ok();
}

void HttpService::Stop() {
  if (server_) {
    // Accept no more, close idle connections, let each busy one finish its request.
    server_->Stop();
    server_.reset();
  }
}

}  // namespace garde

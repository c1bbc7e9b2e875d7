// The HTTP edge: the event-driven server (event_server.h) hands every request here; the
// service assigns the request id, routes, runs the route inside one catch-all, and answers
// problem+json for every error, including requests that could not be read.
//
//   HttpService http(deployment);
//   GARDE_RETURN_IF_ERROR(http.Start());     // binds config().listen_*
//   http.port();                             // the bound port (for --listen host:0)
//   http.Stop();                             // stops accepting, lets requests finish
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "garde/app/deployment.h"
#include "garde/base/await.h"
#include "garde/http/event_server.h"
#include "garde/http/router.h"

namespace garde {

class ConsoleSessions;
class RequestMetrics;

class HttpService final : public ExchangeHandler {
 public:
  // The public listener (listen): every route of the API, and the officer console.
  explicit HttpService(Deployment& deployment);
  // The admin listener (admin_listen): GET /metrics, the Prometheus exposition of `api`'s
  // requests and of the service's state; no API key (reach it from the operators' network).
  HttpService(Deployment& deployment, const HttpService& api);
  ~HttpService();
  HttpService(const HttpService&) = delete;
  HttpService& operator=(const HttpService&) = delete;

  Status Start();
  void Stop();
  uint16_t port() const { return port_; }

  // Routes one parsed exchange and runs its handler (also used directly by tests and the
  // fuzzer); errors become problem+json.
  void Dispatch(Exchange& x);

  // ExchangeHandler: what the server calls for each request.
  int64_t BodyLimit(std::string_view target) const override;
  Result<std::unique_ptr<SealedSpool>> SpoolFor(std::string_view target) override;
  bool AnswersAtOnce(const Exchange& x) const override;
  bool Defer(Exchange& x, std::function<void()> ready) override;
  bool Answer(Exchange& x, const Status& framing) override;
  Deployment& deployment() { return d_; }

 private:
  // A route's status made its answer: a refusal audited, an error answered as a problem, a
  // 5xx logged. Whether the route answered at once or later.
  void Conclude(Exchange& x, const Status& s);
  // What every answer gets once filled in: its timing, metrics, headers and log line.
  void Finish(Exchange& x);

  Deployment& d_;
  bool admin_;
  Router router_;
  std::unique_ptr<RequestMetrics> metrics_;   // the public listener's; null on the admin one
  std::unique_ptr<ConsoleSessions> console_;  // the officer console's sign-ins (public listener)
  std::unique_ptr<EventServer> server_;
  uint16_t port_ = 0;
};

// Route registration, one function per area of the API.
// Every route of the service (the ones below); the OpenAPI document lists exactly these.
void AddAllRoutes(Router& router, Deployment& d);
void AddSystemRoutes(Router& router, Deployment& d);
void AddSubjectRoutes(Router& router, Deployment& d);
void AddAuditRoutes(Router& router, Deployment& d);
void AddConsentRoutes(Router& router, Deployment& d);
void AddLinkRoutes(Router& router, Deployment& d);
void AddAudienceRoutes(Router& router, Deployment& d);
void AddRegisterRoutes(Router& router, Deployment& d);
void AddRetentionRoutes(Router& router, Deployment& d);
void AddRequestRoutes(Router& router, Deployment& d);
void AddIncidentRoutes(Router& router, Deployment& d);
void AddImportRoutes(Router& router, Deployment& d);
void AddSegmentRoutes(Router& router, Deployment& d);

// `caller` with the digest of the address `x` came from (behind trusted proxies, the client's):
// what the audit log records of it (AuditValues::Client).
Caller FromClient(Deployment& d, const Exchange& x, Caller caller);
// The request id and client digest of `x`, for a customer's call through a link.
RequestOrigin Origin(Deployment& d, const Exchange& x);
// Authenticates the bearer key of `x` into x.caller (401 when missing or unknown).
Status Authenticate(Deployment& d, Exchange& x);
// Authenticates, then 403 unless the caller's role has `capability` (roles.yaml).
Status RequireCapability(Deployment& d, Exchange& x, const char* capability);
// The credential of an `Authorization: Bearer` header; empty when there is none.
std::string BearerCredential(const Exchange& x);
// 415 unless the body is JSON (application/json or +json).
Status RequireJsonBody(const Exchange& x);

// Answers x once what `start` began (a write) is done: `start` gets the function to call with
// its outcome, once, from any thread, and `fill` makes x's answer of it. When x can be answered
// later (Exchange::AnswerLater), no thread waits meanwhile: `fill` runs on the thread that
// calls back, and this returns at once; else this thread waits for the outcome. Whatever
// `start` and `fill` need must outlive the call: they capture by value.
template <typename Outcome>
Status AnswerWhenDone(Exchange& x, const std::function<void(std::function<void(Outcome)>)>& start,
                      std::function<Status(Outcome&)> fill) {
  if (Exchange::Finisher finish = x.AnswerLater()) {
    // Nothing of x is touched here once `start` has begun: it may be answered already.
    start([finish = std::move(finish), fill = std::move(fill)](Outcome outcome) {
      finish([&] { return fill(outcome); });
    });
    return Status::Ok();
  }
  Outcome o = Await<Outcome>(start);
  return fill(o);
}

}  // namespace garde

// The HTTP edge: a Poco HTTPServer whose single handler reads the whole body within limits,
// assigns the request id, routes, authenticates, runs the route inside one catch-all, and
// answers problem+json for every error.
//
//   HttpService http(deployment);
//   GARDE_RETURN_IF_ERROR(http.Start());     // binds config().listen_*
//   http.port();                             // the bound port (for --listen host:0)
//   http.Stop();                             // stops accepting, lets requests finish
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "garde/app/deployment.h"
#include "garde/http/router.h"

namespace Poco {
class ThreadPool;
namespace Net {
class TCPServer;
}
}  // namespace Poco

namespace garde {

class HttpService {
 public:
  explicit HttpService(Deployment& deployment);
  ~HttpService();
  HttpService(const HttpService&) = delete;
  HttpService& operator=(const HttpService&) = delete;

  Status Start();
  void Stop();
  uint16_t port() const { return port_; }

  // Handles one exchange end to end (also used directly by tests and the fuzzer).
  void Dispatch(Exchange& x);
  Deployment& deployment() { return d_; }

 private:
  Deployment& d_;
  Router router_;
  std::unique_ptr<Poco::ThreadPool> pool_;  // declared first: outlives server_
  std::unique_ptr<Poco::Net::TCPServer> server_;
  std::shared_ptr<std::atomic<bool>> stopping_;  // read by every connection
  uint16_t port_ = 0;
};

// Route registration, one function per area of the API.
void AddSystemRoutes(Router& router, Deployment& d);
void AddSubjectRoutes(Router& router, Deployment& d);
void AddAuditRoutes(Router& router, Deployment& d);
void AddConsentRoutes(Router& router, Deployment& d);
void AddLinkRoutes(Router& router, Deployment& d);
void AddAudienceRoutes(Router& router, Deployment& d);
void AddRegisterRoutes(Router& router, Deployment& d);
void AddRequestRoutes(Router& router, Deployment& d);

// Authenticates the bearer key of `x` into x.caller (401 when missing or unknown).
Status Authenticate(Deployment& d, Exchange& x);
// The credential of an `Authorization: Bearer` header; empty when there is none.
std::string BearerCredential(const Exchange& x);
// 415 unless the body is JSON (application/json or +json).
Status RequireJsonBody(const Exchange& x);

}  // namespace garde

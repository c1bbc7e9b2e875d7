// The keep-alive loop of one HTTP connection: Poco's request parsing and response writing
// (HTTPServerSession, HTTPServerRequestImpl, HTTPServerResponseImpl), driven by a loop of
// our own instead of Poco's HTTPServerConnection, for three reasons:
//  - between two requests Poco 1.11 waits with Socket::poll, which creates, fills, waits on
//    and closes an epoll instance every time (four system calls per request); one poll(2)
//    does the same;
//  - a request that is not valid HTTP is answered with problem+json like every other error;
//  - a stopping server closes idle keep-alive connections within a fraction of a second
//    instead of leaving them to their keep-alive timeout.
//
//   auto stopping = std::make_shared<std::atomic<bool>>(false);
//   Poco::Net::TCPServer server(new HttpConnectionFactory(handlers, params, stopping),
//                               pool, socket, params);
//   ...
//   *stopping = true;  // idle connections close, busy ones after their current request
#pragma once

#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/TCPServerConnectionFactory.h>

#include <atomic>
#include <memory>
#include <string>

namespace garde {

// A fresh request id ("req_..."): unique, not secret.
std::string NextRequestId();
// The headers every answer carries: X-Request-Id, nosniff, no-store.
void SetStandardHeaders(Poco::Net::HTTPResponse& response, const std::string& request_id);

class HttpConnectionFactory final : public Poco::Net::TCPServerConnectionFactory {
 public:
  HttpConnectionFactory(Poco::Net::HTTPRequestHandlerFactory::Ptr handlers,
                        Poco::Net::HTTPServerParams::Ptr params,
                        std::shared_ptr<const std::atomic<bool>> stopping)
      : handlers_(std::move(handlers)), params_(std::move(params)), stopping_(std::move(stopping)) {}

  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override;

 private:
  Poco::Net::HTTPRequestHandlerFactory::Ptr handlers_;
  Poco::Net::HTTPServerParams::Ptr params_;
  std::shared_ptr<const std::atomic<bool>> stopping_;
};

}  // namespace garde

// The HTTP/1.1 server under garde's API: a few I/O threads, each with its own epoll set, own
// every open connection (non-blocking sockets, requests parsed as bytes arrive). A request
// whose route answers from memory runs right on its I/O thread; anything that may wait (a
// durable commit, a scan, an export) goes to a pool of worker threads; one whose answer from
// memory must wait for the database to confirm it is current (strict reads) leaves the I/O
// thread until the handler calls back, and is then answered there. An open connection
// holds no thread, a slow client holds nothing but its buffer, and under load the I/O
// threads serve ready connections in turn instead of 64 threads contending for two cores.
//
//   EventServer server(options, service);  // service implements ExchangeHandler
//   GARDE_RETURN_IF_ERROR(server.Start());
//   server.port();                          // the bound port (for port 0)
//   server.Stop();                          // idle connections close, busy ones finish
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "garde/base/status.h"
#include "garde/crypto/sealed_spool.h"
#include "garde/http/exchange.h"

namespace garde {

// What the server asks of the service behind it. Called from several threads at once.
class ExchangeHandler {
 public:
  virtual ~ExchangeHandler() = default;
  // The largest request body accepted for a request target (413 above it).
  virtual int64_t BodyLimit(std::string_view target) const = 0;
  // Where a body too large to hold in memory goes as it arrives (an upload): a spool, or
  // nullptr for a body kept in memory. Asked once the request's head is read.
  virtual Result<std::unique_ptr<SealedSpool>> SpoolFor(std::string_view target) {
    (void)target;
    return std::unique_ptr<SealedSpool>();
  }
  // True when the request's answer comes from memory in microseconds: it then runs on the
  // I/O thread, without a hand-over to a worker.
  virtual bool AnswersAtOnce(const Exchange& x) const = 0;
  // For such a request, true when its answer must first wait for something outside (strict
  // reads confirm the database's change counters): the handler then calls `ready`, once and
  // from another thread, when the answer can be given at once, and no thread waits meanwhile.
  virtual bool Defer(Exchange& x, std::function<void()> ready) {
    (void)x;
    (void)ready;
    return false;
  }
  // Fills in x's answer and returns true. With `framing` not ok the request could not be read
  // (malformed, too large) and x holds what was parsed of it; the answer says why. When the
  // server set x.send_later, the handler may instead return false and call send_later once,
  // from any thread, when x's answer is filled in (and x no longer touched by it): a write
  // acknowledged once durable then holds no thread meanwhile.
  virtual bool Answer(Exchange& x, const Status& framing) = 0;
};

struct EventServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  int io_threads = 2;
  int workers = 128;     // threads for requests that may wait
  int max_queued = 256;  // requests waiting for a worker (503 above)
  int max_connections = 10000;
  // From one client address: one client's idle connections cannot take every slot.
  int max_connections_per_client = 1000;
  std::chrono::milliseconds request_timeout{15000};  // to receive a request or send an answer
  std::chrono::milliseconds keep_alive_timeout{10000};
  int max_keep_alive_requests = 10000;
  size_t max_head_bytes = 65536;
  std::string server_name = "garde";
};

class EventServer {
 public:
  EventServer(EventServerOptions options, ExchangeHandler& handler);
  ~EventServer();
  EventServer(const EventServer&) = delete;
  EventServer& operator=(const EventServer&) = delete;

  // Binds (address reuse, no port sharing), listens and starts the threads.
  Status Start();
  uint16_t port() const;
  // Stops accepting, closes idle connections, lets requests in progress finish and be sent.
  void Stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// A fresh request id ("req_..."): unique, not secret.
std::string NextRequestId();

}  // namespace garde

// Incremental HTTP/1.1 request parsing (RFC 9112) for the event-driven server: bytes are
// parsed as they arrive, so a connection never holds a thread while its client is slow.
// Strict where leniency lets requests be smuggled (Content-Length with Transfer-Encoding,
// conflicting lengths, folded headers, whitespace before the colon); every failure is a
// Status the edge answers as problem+json.
//
//   RequestParser parser({.max_head_bytes = 65536, .body_limit = limit_for_target});
//   size_t pos = 0;
//   if (parser.Advance(buffer, &pos) == RequestParser::Progress::kDone) use(parser.request());
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "garde/base/status.h"
#include "garde/http/exchange.h"

namespace garde {

struct ParsedRequest {
  std::string method;
  std::string target;     // as sent: path and query, still percent-encoded
  int minor_version = 1;  // HTTP/1.<minor>: 0 or 1
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case, in order
  std::string body;
  bool keep_alive = true;        // what the client asked for (version and Connection)
  bool expect_continue = false;  // Expect: 100-continue
};

class RequestParser {
 public:
  struct Limits {
    size_t max_head_bytes = 65536;  // request line and headers together
    size_t max_headers = 100;
    // The largest body accepted for a request target (413 above it).
    std::function<int64_t(std::string_view target)> body_limit;
  };

  enum class Progress {
    kNeedMore,  // nothing complete yet
    kBodyNext,  // the head is parsed, (part of) the body has still to arrive
    kDone,      // request() is complete
    kFailed,    // error() says why; the connection must close after answering
  };

  explicit RequestParser(Limits limits) : limits_(std::move(limits)) {}

  // Parses what `buffer` holds from *pos on, moving *pos past the bytes it consumed. Bytes
  // after a complete request (a pipelined next one) are left for the next call.
  Progress Advance(std::string_view buffer, size_t* pos);

  // Moves out the body bytes read so far (a body kept elsewhere as it arrives); the body
  // limit still counts them.
  std::string TakeBody();

  // Ready for the next request on the same connection.
  void Reset();

  // True once any byte of the current request has been consumed.
  bool Started() const { return state_ != State::kHead || scanned_ > 0; }
  const ParsedRequest& request() const { return request_; }
  ParsedRequest& request() { return request_; }
  const Status& error() const { return error_; }

 private:
  enum class State {
    kHead,
    kBody,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kDone,
    kFailed
  };

  Progress Fail(Status s);
  Status ParseHead(std::string_view head);
  Progress Body(std::string_view buffer, size_t* pos);
  Progress Chunked(std::string_view buffer, size_t* pos);

  Limits limits_;
  State state_ = State::kHead;
  size_t scanned_ = 0;      // head bytes already searched for the blank line
  uint64_t remaining_ = 0;  // body or chunk bytes still to come
  int64_t body_limit_ = 0;
  uint64_t body_taken_ = 0;  // bytes moved out by TakeBody()
  ParsedRequest request_;
  Status error_;
};

// Moves a parsed request into a fresh exchange (method, target, headers, body); the route
// handlers' view of it (path, query, content type) is filled in by the service.
Exchange ToExchange(ParsedRequest&& request);

}  // namespace garde

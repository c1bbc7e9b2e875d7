// One HTTP exchange as route handlers see it: the parsed request (method, path parameters,
// query, headers, whole body or a spool of it) and the answer they build. Handlers return a
// Status; a non-Ok status becomes a problem+json answer.
//
//   Status GetSubject(Exchange& x) {
//     auto caller = x.RequireCaller();  ...
//     x.Json(200, body);
//     return Status::Ok();
//   }
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "garde/base/status.h"
#include "garde/domain/access_gate.h"

namespace garde {

class SealedSpool;

// The most items a listing answers in one page (`limit`); the openapi document says the same.
constexpr size_t kMaxPage = 1000;

struct Exchange {
  // Request.
  std::string method;
  std::string target;                              // as received: path and query, percent-encoded
  std::chrono::steady_clock::time_point received;  // when the whole request was in
  std::string path;
  std::string route;     // the matched pattern, safe to log (no tokens or ids)
  int route_index = -1;  // its position in the router (-1: none matched), for metrics
  std::map<std::string, std::string> params;
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string content_type;                    // media type only, lower-case
  std::string body;
  // A body kept on disk as it arrived instead (ExchangeHandler::SpoolFor): `body` is empty.
  std::shared_ptr<SealedSpool> body_spool;
  std::string request_id;
  std::string peer;  // the connection's peer address: 4 or 16 bytes ("" when none)
  std::optional<Caller> caller;
  // The vault store's ticket when the request waited for it to confirm its reads
  // (Store::WhenFresh); 0 when it did not.
  uint64_t fresh_ticket = 0;

  // Answering later. A route whose answer waits for something outside (a write acknowledged
  // once durable) can leave its thread instead of waiting: AnswerLater() gives it a function
  // to call once, from any thread, with what fills in the answer (its status: a problem answer
  // when not ok). Null when this exchange can only be answered before the route returns; the
  // route then waits. `finish_later` is set by whoever hosts the route (HttpService).
  using Finisher = std::function<void(const std::function<Status()>& fill)>;
  Finisher finish_later;
  std::function<void()> send_later;  // the server's (ExchangeHandler::Answer)
  bool answering_later = false;      // AnswerLater was called: the route returned unanswered
  Finisher AnswerLater() {
    if (!finish_later) return nullptr;
    answering_later = true;
    return std::move(finish_later);
  }

  // Answer.
  int status = 200;
  std::string reply_type = "application/json";
  std::string reply;
  std::vector<std::pair<std::string, std::string>> reply_headers;

  Exchange() = default;
  Exchange(Exchange&&) = default;
  Exchange& operator=(Exchange&&) = default;
  Exchange(const Exchange&) = default;
  Exchange& operator=(const Exchange&) = default;
  ~Exchange() { WipeCredentials(); }
  // Overwrites the bearer credential the request carried (its Authorization header), before
  // the memory holding it is released.
  void WipeCredentials();

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
  void Json(int http_status, std::string json) {
    Reply(http_status, "application/json", std::move(json));
  }
  void Reply(int http_status, std::string type, std::string content) {
    status = http_status;
    reply_type = std::move(type);
    reply = std::move(content);
  }
};

// The page size a listing was asked for: `limit` from 1 to kMaxPage; kDefaultPage when the
// parameter is absent or empty (a form's blank field). Anything else adds an error naming
// `limit` to *invalid and gives kDefaultPage.
constexpr size_t kDefaultPage = 100;
size_t PageLimit(const Exchange& x, Status* invalid);

}  // namespace garde

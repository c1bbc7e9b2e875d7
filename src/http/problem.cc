#include "garde/http/problem.h"

#include "garde/base/json_writer.h"

namespace garde {
namespace {

struct Mapping {
  Code code;
  int http;
  const char* slug;
  const char* title;
};

constexpr Mapping kMappings[] = {
    {Code::kOk, 200, "ok", "OK"},
    {Code::kBadRequest, 400, "malformed-request", "Malformed request"},
    {Code::kUnauthenticated, 401, "unauthenticated", "Authentication required"},
    {Code::kPermissionDenied, 403, "forbidden", "Not allowed"},
    {Code::kNotFound, 404, "not-found", "Not found"},
    {Code::kMoved, 308, "moved", "Moved permanently"},
    {Code::kMethodNotAllowed, 405, "method-not-allowed", "Method not allowed"},
    {Code::kConflict, 409, "conflict", "Conflict"},
    {Code::kDamaged, 409, "record-damaged", "Stored record is damaged"},
    {Code::kPayloadTooLarge, 413, "payload-too-large", "Request too large"},
    {Code::kHeaderTooLarge, 431, "header-too-large", "Request header too large"},
    {Code::kRequestTimeout, 408, "request-timeout", "Request timeout"},
    {Code::kNotImplemented, 501, "not-implemented", "Method not implemented"},
    {Code::kVersionNotSupported, 505, "http-version-not-supported", "HTTP version not supported"},
    {Code::kUnsupportedMediaType, 415, "unsupported-media-type", "Unsupported content type"},
    {Code::kUnprocessable, 422, "validation-failed", "Invalid content"},
    {Code::kUnavailable, 503, "unavailable", "Service unavailable"},
    {Code::kInternal, 500, "internal", "Internal error"},
};

const Mapping& Find(Code code) {
  for (const auto& m : kMappings) {
    if (m.code == code) return m;
  }
  return kMappings[std::size(kMappings) - 1];
}

}  // namespace

int HttpStatusOf(Code code) { return Find(code).http; }
const char* ProblemSlug(Code code) { return Find(code).slug; }
const char* ProblemTitle(Code code) { return Find(code).title; }

std::string ProblemBody(const Status& s, const std::string& request_id) {
  JsonWriter w;
  w.BeginObject()
      .String("type", std::string(kProblemBase) + ProblemSlug(s.code()))
      .String("title", ProblemTitle(s.code()))
      .Int("status", HttpStatusOf(s.code()))
      .String("detail", s.message())
      .String("request_id", request_id);
  for (const auto& [k, v] : s.extras()) w.String(k, v);
  if (!s.errors().empty()) {
    w.BeginArray("errors");
    for (const auto& e : s.errors()) {
      w.BeginObject().String("field", e.field).String("message", e.message).EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
  return w.Take();
}

}  // namespace garde

// /v1/requests: data-subject requests opened by operators, officers or the customer (a
// subject link used as bearer token), worked through their lifecycle by officers, and the
// access / portability package.
#include <algorithm>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/domain/subject_requests.h"
#include "garde/http/html.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"
#include "garde/http/request_pages.h"

namespace garde {
namespace {

constexpr int64_t kVerificationTtl = 30 * 86400;

// An API key, or a customer's subject link (preferences or dsr) sent as bearer token.
Status AuthenticateKeyOrSubject(Deployment& d, Exchange& x) {
  if (x.caller) return Status::Ok();
  const std::string credential = BearerCredential(x);
  if (!credential.empty() && credential.rfind("gk_", 0) != 0) {
    auto claims = d.VerifySubjectToken(credential);
    if (claims.ok() && (claims->use == "preferences" || claims->use == "dsr")) {
      x.caller = FromClient(
          d, x, SubjectCaller(claims->subject, x.request_id, claims->use, claims->scope));
      return Status::Ok();
    }
    x.reply_headers.emplace_back("WWW-Authenticate",
                                 "Bearer realm=\"garde\", error=\"invalid_token\"");
    return Unauthenticated("the API key or subject link is not valid");
  }
  return Authenticate(d, x);
}

// A lifecycle step's body: JSON object or nothing at all.
Result<Poco::JSON::Object::Ptr> StepBody(const Exchange& x) {
  if (x.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Poco::JSON::Object::Ptr(new Poco::JSON::Object);
  }
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  return ParseJsonObject(x.body);
}

std::string RequestJson(Deployment& d, const RequestView& v) {
  JsonWriter w;
  WriteRequestJson(w, v, d.clock().Now());
  return w.Take();
}

// Reads the requested changes of a rectification: {"changes": {"fields": {...}}} as for
// PATCH /v1/subjects/{id}, or the field map directly ({"changes": {"email": ...}}).
std::optional<SubjectChanges> ReadRequestedChanges(const Poco::JSON::Object& obj,
                                                   Status* problems) {
  if (!obj.has("changes")) return std::nullopt;
  if (!IsJsonObject(obj.get("changes"))) {
    problems->AddError("changes", "must be an object of field values");
    return std::nullopt;
  }
  const auto& changes = *obj.getObject("changes");
  if (changes.has("fields") || changes.has("external_id")) {
    return ReadChanges(changes, "changes.", problems, false);
  }
  SubjectChanges out;
  Status nested(Code::kUnprocessable, "");
  out.fields = ReadFieldMap(obj, "changes", &nested);
  for (const auto& e : nested.errors()) problems->AddError(e.field, e.message);
  return out;
}

Status OpenRequest(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(AuthenticateKeyOrSubject(d, x));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  const auto& body = *obj;
  Status problems(Code::kUnprocessable, "the request is not valid; nothing was stored");
  CheckMembers(
      body,
      {"type", "subject", "jurisdiction", "note", "changes", "purposes", "suppress", "received_at"},
      "", &problems);
  NewRequest in;
  in.type = ReadString(body, "type", "", &problems).value_or("");
  if (!body.has("type")) problems.AddError("type", "is required");
  in.subject = ReadString(body, "subject", "", &problems).value_or("");
  if (!body.has("subject") && !x.caller->is_subject()) problems.AddError("subject", "is required");
  in.jurisdiction = ReadString(body, "jurisdiction", "", &problems).value_or("");
  in.note = ReadString(body, "note", "", &problems).value_or("");
  in.changes = ReadRequestedChanges(body, &problems);
  in.purposes = ReadStringArray(body, "purposes", "must be an array of purpose ids", &problems)
                    .value_or(std::vector<std::string>{});
  if (body.has("suppress")) {
    const auto v = body.get("suppress");
    if (!v.isBoolean()) {
      problems.AddError("suppress", "must be true or false");
    } else {
      in.suppress = v.extract<bool>();
    }
  }
  if (auto received = ReadString(body, "received_at", "", &problems)) {
    if (x.caller->is_subject()) {
      problems.AddError("received_at", "is set by the service for requests from a link");
    } else if (auto t = ParseRfc3339(*received)) {
      in.received_at = *t;
    } else {
      problems.AddError("received_at", "must be an RFC 3339 time");
    }
  }
  if (!problems.errors().empty()) return problems;
  GARDE_ASSIGN_OR_RETURN(auto opened, d.requests().Open(*x.caller, in));
  JsonWriter w;
  WriteRequestJson(w, opened, d.clock().Now());
  std::string json = w.Take();
  if (opened.row.status == "received" && !x.caller->is_subject()) {
    // The link to send to the customer's known contact: following it confirms the request.
    // Never to a subject link's holder: the link may have been forwarded, and the notice in
    // the outbox goes to the contact on file instead.
    const int64_t expires = d.clock().Now() + kVerificationTtl;
    const std::string token =
        d.tokens()->Mint({opened.row.subject_id, "dsr", opened.row.id, expires});
    json.pop_back();
    json += ",\"verification_url\":\"" + d.PublicBaseUrl() + "/r/" + token + "\"}";
  }
  x.Json(201, std::move(json));
  x.reply_headers.emplace_back("Location", "/v1/requests/" + opened.row.id);
  return Status::Ok();
}

// GET /v1/requests?status=open|received,...&type=&subject=&overdue=true&due_within=7
Status ListRequests(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(AuthenticateKeyOrSubject(d, x));
  RequestQuery q;
  Status invalid(Code::kUnprocessable, "the request search is not valid");
  const int64_t now = d.clock().Now();
  auto param = [&](const char* name) -> std::string {
    auto it = x.query.find(name);
    return it == x.query.end() ? std::string() : it->second;
  };
  std::vector<std::string> statuses;
  for (const std::string& s : SplitList(param("status"), ',')) {
    if (s == "open") {
      statuses.insert(statuses.end(), std::begin(kOpenStatuses), std::end(kOpenStatuses));
    } else if (s == "received" || s == "verified" || s == "in_progress" || s == "completed" ||
               s == "rejected") {
      statuses.push_back(s);
    } else {
      invalid.AddError("status",
                       "must be open, received, verified, in_progress, completed or "
                       "rejected (comma-separated)");
      break;
    }
  }
  auto only_open = [&] {
    std::vector<std::string> open;
    for (const char* s : kOpenStatuses) {
      if (statuses.empty() || std::find(statuses.begin(), statuses.end(), s) != statuses.end()) {
        open.push_back(s);
      }
    }
    statuses = open.empty() ? std::vector<std::string>{"none"} : open;
  };
  const std::string overdue = param("overdue");
  if (overdue == "true" || overdue == "1") {
    only_open();
    q.due_before = now;
  } else if (!overdue.empty() && overdue != "false" && overdue != "0") {
    invalid.AddError("overdue", "must be true or false");
  }
  if (const std::string within = param("due_within"); !within.empty()) {
    if (within.size() > 4 || within.find_first_not_of("0123456789") != std::string::npos) {
      invalid.AddError("due_within", "must be a number of days from 0 to 9999");
    } else {
      only_open();
      const int64_t bound = now + std::stoll(within) * 86400;
      q.due_before = q.due_before == 0 ? bound : std::min(q.due_before, bound);
    }
  }
  q.statuses = statuses;
  q.type = param("type");
  if (!q.type.empty() && std::none_of(std::begin(kRequestTypes), std::end(kRequestTypes),
                                      [&](const char* t) { return q.type == t; })) {
    invalid.AddError("type", "is not a request type");
  }
  q.subject = param("subject");
  if (!q.subject.empty() && !IsRandomId(q.subject, "sub_")) {
    invalid.AddError("subject", "must be a subject id");
  }
  if (const std::string cursor = param("cursor"); !cursor.empty()) {
    auto raw = Base64UrlDecode(cursor);
    const std::string s = raw ? std::string(AsStringView(*raw)) : "";
    const size_t colon = s.find(':');
    if (colon == std::string::npos || colon == 0 || colon > 19 ||
        s.find_first_not_of("0123456789") != colon || !IsRandomId(s.substr(colon + 1), "dsr_")) {
      invalid.AddError("cursor", "is not a cursor this service issued");
    } else {
      q.after = std::make_pair(std::stoll(s.substr(0, colon)), s.substr(colon + 1));
    }
  }
  const size_t limit = PageLimit(x, &invalid);
  if (!invalid.errors().empty()) return invalid;
  q.limit = limit + 1;  // one more tells whether there is a next page
  GARDE_ASSIGN_OR_RETURN(auto rows, d.requests().List(*x.caller, q));
  const bool more = rows.size() > limit;
  if (more) rows.resize(limit);
  JsonWriter w;
  w.BeginObject().BeginArray("items");
  for (const auto& row : rows) {
    RequestView v;
    v.row = row;
    WriteRequestJson(w, v, now);
  }
  w.EndArray().Int("count", static_cast<int64_t>(rows.size())).Key("next_cursor");
  if (more) {
    const RequestRow& last = rows.back();
    const std::string c = std::to_string(last.due_at) + ":" + last.id;
    w.String(Base64UrlEncode(reinterpret_cast<const uint8_t*>(c.data()), c.size()));
  } else {
    w.Null();
  }
  w.EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

Status GetRequest(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(AuthenticateKeyOrSubject(d, x));
  GARDE_ASSIGN_OR_RETURN(auto v, d.requests().Get(*x.caller, x.params["id"]));
  x.Json(200, RequestJson(d, v));
  return Status::Ok();
}

// POST /v1/requests/{id}:verb with an optional JSON body of text members.
Status StepRequest(Deployment& d, Exchange& x, const std::string& verb) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  GARDE_ASSIGN_OR_RETURN(auto obj, StepBody(x));
  const auto& body = *obj;
  Status problems(Code::kUnprocessable, "the " + verb + " step is not valid; nothing changed");
  const std::string& id = x.params["id"];
  Result<RequestView> done = Internal("unknown step");
  if (verb == "verify") {
    CheckMembers(body, {"note"}, "", &problems);
    const std::string note = ReadString(body, "note", "", &problems).value_or("");
    if (!problems.errors().empty()) return problems;
    done = d.requests().Verify(*x.caller, id, note);
  } else if (verb == "start") {
    CheckMembers(body, {}, "", &problems);
    if (!problems.errors().empty()) return problems;
    done = d.requests().Start(*x.caller, id);
  } else if (verb == "extend") {
    CheckMembers(body, {"by", "months", "reason"}, "", &problems);
    std::string by = ReadString(body, "by", "", &problems).value_or("");
    if (body.has("months")) {  // {"months": 2} says the same as {"by": "P2M"}
      const auto m = body.get("months");
      if (!m.isInteger() || m.convert<int>() < 1 || m.convert<int>() > 12 || !by.empty()) {
        problems.AddError("months", "must be a whole number of months (1-12), instead of by");
      } else {
        by = "P" + std::to_string(m.convert<int>()) + "M";
      }
    }
    const std::string reason = ReadString(body, "reason", "", &problems).value_or("");
    if (!problems.errors().empty()) return problems;
    done = d.requests().Extend(*x.caller, id, by, reason);
  } else if (verb == "reject") {
    CheckMembers(body, {"reason"}, "", &problems);
    const std::string reason = ReadString(body, "reason", "", &problems).value_or("");
    if (!problems.errors().empty()) return problems;
    done = d.requests().Reject(*x.caller, id, reason);
  } else if (verb == "complete") {
    CheckMembers(body, {"note", "changes"}, "", &problems);
    const std::string note = ReadString(body, "note", "", &problems).value_or("");
    auto changes = ReadRequestedChanges(body, &problems);
    if (!problems.errors().empty()) return problems;
    done = d.requests().Complete(*x.caller, id, note, changes);
  } else if (verb == "lift") {
    CheckMembers(body, {}, "", &problems);
    if (!problems.errors().empty()) return problems;
    done = d.requests().Lift(*x.caller, id);
  }
  if (!done.ok()) return done.status();
  x.Json(200, RequestJson(d, done.value()));
  return Status::Ok();
}

Status GetPackage(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(AuthenticateKeyOrSubject(d, x));
  auto it = x.query.find("format");
  const std::string format = it == x.query.end() || it->second.empty() ? "json" : it->second;
  if (format != "json" && format != "html" && format != "csv") {
    return Status(Code::kUnprocessable, "unknown package format")
        .AddError("format", "must be json, html or csv");
  }
  GARDE_ASSIGN_OR_RETURN(auto package, d.requests().Package(*x.caller, x.params["id"]));
  return SendPackage(x, package, format, PageWords(d.policies().Current(), PageLanguage(x)));
}

}  // namespace

void AddRequestRoutes(Router& router, Deployment& d) {
  router.Add("POST", "/v1/requests", [&d](Exchange& x) { return OpenRequest(d, x); });
  router.Add("GET", "/v1/requests", [&d](Exchange& x) { return ListRequests(d, x); });
  router.Add("GET", "/v1/requests/{id}", [&d](Exchange& x) { return GetRequest(d, x); });
  for (const char* verb : {"verify", "start", "extend", "reject", "complete", "lift"}) {
    const std::string v = verb;
    router.Add("POST", "/v1/requests/{id}:" + v,
               [&d, v](Exchange& x) { return StepRequest(d, x, v); });
  }
  router.Add("GET", "/v1/requests/{id}/package", [&d](Exchange& x) { return GetPackage(d, x); });
}

}  // namespace garde

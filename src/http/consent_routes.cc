// /v1/purposes, /v1/subjects/{id}/consents, /v1/consent/check, /v1/suppressions:check.
#include <map>

#include "garde/base/clock.h"
#include "garde/base/json_writer.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"

namespace garde {
namespace {

void TimeOrNull(JsonWriter& w, int64_t t) {
  if (t == 0) {
    w.Null();
  } else {
    w.String(FormatRfc3339(t));
  }
}

void WriteAnswer(JsonWriter& w, const ConsentAnswer& a) {
  w.BeginObject()
      .String("subject", a.subject)
      .String("purpose", a.purpose)
      .StringOrNull("channel", a.channel)
      .Bool("allowed", a.decision.allowed)
      .String("reason", a.decision.reason)
      .String("basis", a.decision.basis)
      .Key("since");
  TimeOrNull(w, a.decision.since);
  w.Key("expires_at");
  TimeOrNull(w, a.decision.expires_at);
  w.EndObject();
}

void WriteEvent(JsonWriter& w, const ConsentEvent& e, bool with_receipt) {
  w.BeginObject()
      .String("id", e.id)
      .String("subject", e.subject_id)
      .String("purpose", e.purpose)
      .StringOrNull("channel", e.channel)
      .String("event", ConsentEventName(e.type))
      .String("legal_basis", e.legal_basis)
      .StringOrNull("notice_version", e.notice_version)
      .String("method", e.method)
      .String("actor", e.actor)
      .String("at", FormatRfc3339(e.at))
      .Key("expires_at");
  TimeOrNull(w, e.expires_at);
  if (with_receipt) w.Raw("receipt", e.receipt);
  w.EndObject();
}

Status ListPurposes(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  auto policies = d.policies().Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, *x.caller, "purposes.read"));
  JsonWriter w;
  w.BeginObject().BeginArray("items");
  for (const auto& p : policies->purposes()) {
    w.BeginObject()
        .String("id", p.id)
        .String("title", p.title)
        .String("description", p.description);
    // Every language given: {"fr": {"title": ..., "description": ...}}.
    w.BeginObject("translations");
    for (const auto& [lang, title] : p.titles.by_lang) {
      w.BeginObject(lang).String("title", title);
      auto text = p.descriptions.by_lang.find(lang);
      if (text != p.descriptions.by_lang.end()) w.String("description", text->second);
      w.EndObject();
    }
    w.EndObject()
        .Bool("double_opt_in", p.double_opt_in)
        .String("legal_basis", LegalBasisName(p.legal_basis))
        .Bool("marketing", p.marketing)
        .BeginArray("channels");
    for (const auto& c : p.channels) w.String(c);
    w.EndArray().StringOrNull("validity", p.validity).Bool("gpc_opt_out", p.gpc_opt_out);
    w.BeginArray("notices");
    for (const auto& n : p.notices) {
      w.BeginObject()
          .String("version", n.version)
          .StringOrNull("text", n.text)
          .StringOrNull("url", n.url)
          .StringOrNull("valid_from", n.valid_from)
          .EndObject();
    }
    w.EndArray().EndObject();
  }
  w.EndArray().EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

Status AnswerRecorded(Exchange& x, const std::string& id, Result<ConsentEvent>& recorded);

Status RecordConsent(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*d.policies().Current(), *x.caller, "consents.write"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  Status problems(Code::kUnprocessable, "the consent event is not valid; nothing was stored");
  CheckMembers(*obj, {"purpose", "channel", "event", "notice_version", "method", "collected_at"},
               "", &problems);
  ConsentRequest req;
  req.purpose = ReadString(*obj, "purpose", "", &problems).value_or("");
  req.channel = ReadString(*obj, "channel", "", &problems).value_or("");
  req.event = ReadString(*obj, "event", "", &problems).value_or("");
  req.notice_version = ReadString(*obj, "notice_version", "", &problems).value_or("");
  req.method = ReadString(*obj, "method", "", &problems).value_or("api");
  req.collected_at = ReadString(*obj, "collected_at", "", &problems).value_or("");
  if (req.purpose.empty()) problems.AddError("purpose", "is required");
  if (req.event.empty()) problems.AddError("event", "is required");
  if (!problems.errors().empty()) return problems;
  const std::string id = x.params["id"];
  return AnswerWhenDone<Result<ConsentEvent>>(
      x,
      [&d, caller = *x.caller, id, req](std::function<void(Result<ConsentEvent>)> done) {
        d.consents().RecordThen(caller, id, req, std::move(done));
      },
      [&x, id](Result<ConsentEvent>& recorded) { return AnswerRecorded(x, id, recorded); });
}

// The answer to a consent event once recorded (or asked to be confirmed).
Status AnswerRecorded(Exchange& x, const std::string& id, Result<ConsentEvent>& recorded) {
  GARDE_RETURN_IF_ERROR(recorded.status());
  const ConsentEvent& e = recorded.value();
  if (!e.confirmation_id.empty()) {
    // Double opt-in: nothing counts until the customer follows the link sent to them.
    JsonWriter w;
    w.BeginObject()
        .String("status", "pending_confirmation")
        .String("confirmation", e.confirmation_id)
        .String("subject", e.subject_id)
        .String("purpose", e.purpose)
        .StringOrNull("channel", e.channel)
        .StringOrNull("notice_version", e.notice_version)
        .String("requested_at", FormatRfc3339(e.at))
        .String("expires_at", FormatRfc3339(e.confirmation_expires_at))
        .EndObject();
    x.Json(202, w.Take());
    return Status::Ok();
  }
  JsonWriter w;
  WriteEvent(w, e, true);
  x.Json(201, w.Take());
  x.reply_headers.emplace_back("Location", "/v1/subjects/" + id + "/consents");
  return Status::Ok();
}

Status ConsentHistory(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  GARDE_ASSIGN_OR_RETURN(auto events, d.consents().History(*x.caller, x.params["id"]));
  // Current state: the latest event per purpose and channel.
  std::map<std::pair<std::string, std::string>, const ConsentEvent*> latest;
  for (const auto& e : events) {
    auto& slot = latest[{e.purpose, e.channel}];
    if (slot == nullptr || e.at >= slot->at) slot = &e;
  }
  JsonWriter w;
  w.BeginObject().String("subject", x.params["id"]).BeginArray("state");
  for (const auto& [key, e] : latest) WriteEvent(w, *e, false);
  w.EndArray().BeginArray("history");
  for (const auto& e : events) WriteEvent(w, e, true);
  w.EndArray().EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

Status CheckOne(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  Status problems(Code::kUnprocessable, "the consent check is not valid");
  if (x.query["subject"].empty()) problems.AddError("subject", "is required");
  if (x.query["purpose"].empty()) problems.AddError("purpose", "is required");
  if (!problems.errors().empty()) return problems;
  auto a =
      d.consents().Check(*x.caller, x.query["subject"], x.query["purpose"], x.query["channel"]);
  if (!a.ok()) return a.status();
  JsonWriter w;
  WriteAnswer(w, a.value());
  x.Json(200, w.Take());
  return Status::Ok();
}

Status CheckBatch(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "consent.check"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  Status problems(Code::kUnprocessable, "the consent check is not valid");
  CheckMembers(*obj, {"purpose", "channel", "subjects"}, "", &problems);
  const std::string purpose = ReadString(*obj, "purpose", "", &problems).value_or("");
  const std::string channel = ReadString(*obj, "channel", "", &problems).value_or("");
  if (purpose.empty()) problems.AddError("purpose", "is required");
  const std::string kIdsMessage = "must be an array of subject ids";
  const std::vector<std::string> ids = ReadStringArray(*obj, "subjects", kIdsMessage, &problems)
                                           .value_or(std::vector<std::string>{});
  if (!obj->has("subjects")) problems.AddError("subjects", kIdsMessage);
  if (!problems.errors().empty()) return problems;
  GARDE_ASSIGN_OR_RETURN(auto answers, d.consents().CheckMany(*x.caller, ids, purpose, channel));
  JsonWriter w;
  int64_t allowed = 0;
  w.BeginObject()
      .String("purpose", purpose)
      .StringOrNull("channel", channel)
      .BeginArray("decisions");
  for (const auto& a : answers) {
    WriteAnswer(w, a);
    allowed += a.decision.allowed ? 1 : 0;
  }
  w.EndArray()
      .Int("allowed", allowed)
      .Int("denied", static_cast<int64_t>(answers.size()) - allowed)
      .EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

Status CheckSuppressions(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  GARDE_RETURN_IF_ERROR(
      AccessGate::Require(*d.policies().Current(), *x.caller, "suppressions.check"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  Status problems(Code::kUnprocessable, "the suppression check is not valid");
  CheckMembers(*obj, {"emails", "phones"}, "", &problems);
  std::map<std::string, std::vector<std::string>> lists;
  size_t total = 0;
  for (const char* member : {"emails", "phones"}) {
    auto list = ReadStringArray(*obj, member, "must be an array of strings", &problems);
    if (!list) continue;
    total += list->size();
    lists[member] = std::move(*list);
  }
  if (total > 10000) return Status(Code::kPayloadTooLarge, "check at most 10000 contacts at once");
  if (!problems.errors().empty()) return problems;
  JsonWriter w;
  w.BeginObject();
  int64_t suppressed = 0;
  for (const auto& [member, kind] :
       {std::pair<std::string, std::string>{"emails", "email"}, {"phones", "phone"}}) {
    GARDE_ASSIGN_OR_RETURN(auto result, d.consents().Suppressed(*x.caller, kind, lists[member]));
    // Answers by position: the response never repeats the contacts themselves.
    w.BeginArray(member);
    for (size_t i = 0; i < result.size(); ++i) {
      w.BeginObject()
          .Int("index", static_cast<int64_t>(i))
          .Bool("suppressed", (result)[i])
          .EndObject();
      suppressed += (result)[i] ? 1 : 0;
    }
    w.EndArray();
  }
  w.Int("suppressed", suppressed).EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

}  // namespace

void AddConsentRoutes(Router& router, Deployment& d) {
  router.Add(
      "GET", "/v1/purposes", [&d](Exchange& x) { return ListPurposes(d, x); }, Pace::kAtOnce);
  router.Add(
      "POST", "/v1/subjects/{id}/consents", [&d](Exchange& x) { return RecordConsent(d, x); },
      Pace::kPostsItsWrite);
  router.Add("GET", "/v1/subjects/{id}/consents",
             [&d](Exchange& x) { return ConsentHistory(d, x); });
  router.Add(
      "GET", "/v1/consent/check", [&d](Exchange& x) { return CheckOne(d, x); }, Pace::kAtOnce);
  router.Add("POST", "/v1/consent/check", [&d](Exchange& x) { return CheckBatch(d, x); });
  router.Add("POST", "/v1/suppressions:check",
             [&d](Exchange& x) { return CheckSuppressions(d, x); });
}

}  // namespace garde

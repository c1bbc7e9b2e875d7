// /v1/incidents: the breach register (officer). Open, list with the 72-hour clock, update,
// scope from the verified audit log, notify the customers concerned, and the sheet for the
// supervisory authority.
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>

#include <sstream>

#include "garde/app/breach_register.h"
#include "garde/base/clock.h"
#include "garde/base/ip_address.h"
#include "garde/base/json_writer.h"
#include "garde/http/html.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"

namespace garde {
namespace {

using Poco::JSON::Object;

// What an officer records (docs/api.md, Breach register).
constexpr std::initializer_list<const char*> kFactMembers = {"title",
                                                             "nature",
                                                             "categories_of_data",
                                                             "categories_of_subjects",
                                                             "approx_subjects",
                                                             "approx_records",
                                                             "consequences",
                                                             "measures",
                                                             "contact",
                                                             "delay_reasons",
                                                             "assessment",
                                                             "containment",
                                                             "notes"};

bool IsText(const Poco::Dynamic::Var& v) {
  if (v.isString()) return true;
  if (!IsJsonObject(v)) return false;
  const auto texts = v.extract<Object::Ptr>();
  for (const auto& [lang, text] : *texts) {
    if (!IsLanguageCode(lang) || !text.isString()) return false;
  }
  return texts->size() > 0;
}

// Whether a text (IsText's form) says something: not empty, not only spaces.
bool SaysSomething(const Poco::Dynamic::Var& v) {
  auto non_blank = [](const Poco::Dynamic::Var& t) {
    return t.isString() && t.toString().find_first_not_of(" \t\r\n") != std::string::npos;
  };
  if (non_blank(v)) return true;
  if (!IsJsonObject(v)) return false;
  for (const auto& [_, text] : *v.extract<Object::Ptr>()) {
    if (non_blank(text)) return true;
  }
  return false;
}

// Checks the facts of `obj` (the members kFactMembers lists) and copies them into *facts.
void ReadFacts(const Object& obj, Object* facts, Status* problems) {
  for (const char* key : kFactMembers) {
    if (!obj.has(key)) continue;
    const auto v = obj.get(key);
    const std::string k = key;
    bool ok = true;
    if (k == "categories_of_data" || k == "categories_of_subjects") {
      ok = IsJsonArray(v);
      if (ok) {
        const auto arr = v.extract<Poco::JSON::Array::Ptr>();
        for (size_t i = 0; i < arr->size(); ++i)
          ok &= arr->get(static_cast<unsigned>(i)).isString();
      }
      if (!ok) problems->AddError(k, "must be an array of texts");
    } else if (k == "approx_subjects" || k == "approx_records") {
      ok = v.isInteger() && v.convert<int64_t>() >= 0;
      if (!ok) problems->AddError(k, "must be a whole number");
    } else if (k == "assessment") {
      ok = IsJsonObject(v);
      if (ok) {
        const auto a = v.extract<Object::Ptr>();
        CheckMembers(*a, {"readable_by_intruder", "risk", "reasoning"}, "assessment.", problems);
        if (a->has("risk")) {
          const std::string risk = a->get("risk").isString() ? a->get("risk").toString() : "";
          if (risk != "none" && risk != "risk" && risk != "high") {
            problems->AddError("assessment.risk", "must be none, risk or high (Art. 33(1), 34(1))");
          }
        }
        if (a->has("readable_by_intruder") && !a->get("readable_by_intruder").isBoolean()) {
          problems->AddError("assessment.readable_by_intruder", "must be true or false");
        }
      } else {
        problems->AddError(k, "must be an object {readable_by_intruder, risk, reasoning}");
      }
    } else if (k == "containment") {
      ok = IsJsonArray(v);
      if (!ok) problems->AddError(k, "must be an array of {at, action}");
    } else if (!IsText(v)) {
      ok = false;
      problems->AddError(k, "must be a text, or an object of texts by language");
    }
    if (ok) facts->set(k, v);
  }
}

std::optional<int64_t> ReadTime(const Object& obj, const char* key, Status* problems) {
  if (!obj.has(key)) return std::nullopt;
  const auto v = obj.get(key);
  auto t = v.isString() ? ParseRfc3339(v.toString()) : std::nullopt;
  if (!t) problems->AddError(key, "must be an RFC 3339 time");
  return t;
}

void WriteIncident(JsonWriter& w, const IncidentView& v, int64_t now) {
  const auto& r = v.row;
  auto time = [&](const char* key, int64_t t) {
    w.Key(key);
    if (t == 0) {
      w.Null();
    } else {
      w.String(FormatRfc3339(t));
    }
  };
  w.BeginObject().String("id", r.id).String("status", r.status);
  time("detected_at", r.detected_at);
  time("aware_at", r.aware_at);
  time("authority_due_at", r.authority_due_at);
  time("authority_notified_at", r.authority_notified_at);
  time("subjects_notified_at", r.subjects_notified_at);
  time("closed_at", r.closed_at);
  w.Bool("overdue", r.status == "open" && r.authority_notified_at == 0 && r.authority_due_at < now)
      .Raw("facts", v.facts)
      .EndObject();
}

Status Reply(Deployment& d, Exchange& x, const Result<IncidentView>& v, int status) {
  if (!v.ok()) return v.status();
  JsonWriter w;
  WriteIncident(w, v.value(), d.clock().Now());
  x.Json(status, w.Take());
  return Status::Ok();
}

// The body of a write: the facts (kFactMembers) and the members in `extra`; anything else is
// refused by name.
struct IncidentBody {
  Object::Ptr obj;
  Object::Ptr facts = new Object;  // Poco counts its references
  std::string FactsJson() const {
    std::ostringstream json;
    facts->stringify(json);
    return json.str();
  }
};
// The caller authenticated, then the JSON object of the body.
Result<Object::Ptr> AuthenticatedJson(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  return ParseJsonObject(x.body);
}

Result<IncidentBody> ReadIncidentBody(Deployment& d, Exchange& x,
                                      std::initializer_list<const char*> extra, Status* problems) {
  GARDE_ASSIGN_OR_RETURN(auto obj, AuthenticatedJson(d, x));
  IncidentBody body;
  body.obj = obj;
  for (const auto& [key, _] : *body.obj) {
    bool known = false;
    for (const char* k : kFactMembers) known |= key == k;
    for (const char* k : extra) known |= key == k;
    if (!known) problems->AddError(key, "is not a member of an incident");
  }
  ReadFacts(*body.obj, body.facts.get(), problems);
  return body;
}

Status OpenIncident(Deployment& d, Exchange& x) {
  Status problems(Code::kUnprocessable, "the incident is not valid; nothing was stored");
  GARDE_ASSIGN_OR_RETURN(auto body, ReadIncidentBody(d, x, {"detected_at", "aware_at"}, &problems));
  const auto& obj = body.obj;
  const int64_t now = d.clock().Now();
  auto detected = ReadTime(*obj, "detected_at", &problems);
  auto aware = ReadTime(*obj, "aware_at", &problems);
  if (!obj->has("detected_at")) problems.AddError("detected_at", "is required");
  const auto says = [&](const char* key) { return obj->has(key) && SaysSomething(obj->get(key)); };
  if (!says("title") && !says("nature")) {
    problems.AddError("nature", "say what is known of the breach");
  }
  if (detected && *detected > now + 300) problems.AddError("detected_at", "is in the future");
  if (aware && *aware > now + 300) problems.AddError("aware_at", "is in the future");
  if (detected && aware && *aware < *detected) {
    problems.AddError("aware_at", "is before detected_at: awareness follows the detection");
  }
  if (!problems.errors().empty()) return problems;
  return Reply(d, x, d.breaches().Open(*x.caller, body.FactsJson(), *detected, aware.value_or(now)),
               201);
}

Status ListIncidents(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  IncidentQuery q;
  Status problems(Code::kUnprocessable, "the query is not valid");
  if (auto s = x.query.find("status"); s != x.query.end()) {
    if (s->second != "open" && s->second != "closed") problems.AddError("status", "open or closed");
    q.status = s->second;
  }
  if (auto o = x.query.find("overdue"); o != x.query.end()) {
    if (o->second != "true" && o->second != "false") problems.AddError("overdue", "true or false");
    q.overdue = o->second == "true";
  }
  if (auto h = x.query.find("due_within_hours"); h != x.query.end()) {
    char* end = nullptr;
    const long hours = std::strtol(h->second.c_str(), &end, 10);
    if (h->second.empty() || *end != '\0' || hours < 0 || hours > 24 * 365) {
      problems.AddError("due_within_hours", "a whole number of hours");
    }
    q.due_within = hours * 3600;
  }
  if (!problems.errors().empty()) return problems;
  GARDE_ASSIGN_OR_RETURN(auto list, d.breaches().List(*x.caller, q));
  JsonWriter w;
  w.BeginObject().BeginArray("items");
  for (const auto& v : list) WriteIncident(w, v, d.clock().Now());
  w.EndArray().Int("count", static_cast<int64_t>(list.size())).EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

Status GetIncident(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  auto v = d.breaches().Get(*x.caller, x.params["id"]);
  auto format = x.query.find("format");
  if (format == x.query.end() || format->second == "json") return Reply(d, x, v, 200);
  if (format->second != "html") {
    return Status(Code::kUnprocessable, "unknown format").AddError("format", "json or html");
  }
  if (!v.ok()) return v.status();
  const std::string lang = PageLanguage(x);
  auto policies = d.policies().Current();
  const std::string title = lang == "fr" ? "Notification d'une violation de données personnelles"
                                         : "Notification of a personal data breach";
  HtmlPage(x, 200, title,
           IncidentSheetHtml(v.value(), policies->controller().name,
                             policies->controller().dpo_contact, lang),
           lang);
  return Status::Ok();
}

Status UpdateIncident(Deployment& d, Exchange& x) {
  Status problems(Code::kUnprocessable, "the change is not valid; nothing was stored");
  GARDE_ASSIGN_OR_RETURN(auto body,
                         ReadIncidentBody(d, x, {"authority_notified_at", "status"}, &problems));
  const auto& obj = body.obj;
  auto notified = ReadTime(*obj, "authority_notified_at", &problems);
  if (notified && *notified > d.clock().Now() + 300) {
    problems.AddError("authority_notified_at", "is in the future");
  }
  const bool close = obj->has("status");
  if (close && obj->get("status").toString() != "closed") {
    problems.AddError("status", "only closed can be set");
  }
  if (!problems.errors().empty()) return problems;
  return Reply(
      d, x,
      d.breaches().Update(*x.caller, x.params["id"], body.FactsJson(), notified.value_or(0), close),
      200);
}

Status ScopeIncident(Deployment& d, Exchange& x) {
  GARDE_ASSIGN_OR_RETURN(auto obj, AuthenticatedJson(d, x));
  Status problems(Code::kUnprocessable, "the scope is not valid");
  CheckMembers(*obj, {"actor", "activity", "client", "since", "until"}, "", &problems);
  BreachScope scope;
  scope.actor = ReadString(*obj, "actor", "", &problems).value_or("");
  scope.activity = ReadString(*obj, "activity", "", &problems).value_or("");
  const std::string client = ReadString(*obj, "client", "", &problems).value_or("");
  if (!client.empty()) {
    if (auto address = CanonicalAddress(client)) {
      scope.client = *address;
    } else {
      problems.AddError("client", "must be an IPv4 or IPv6 address, e.g. 203.0.113.7");
    }
  }
  if (scope.actor.empty() && scope.activity.empty() && client.empty()) {
    problems.AddError("actor",
                      "the API key id (key_...) whose accesses count, an activity or "
                      "a client address");
  }
  if (!scope.activity.empty() && d.policies().Current()->FindActivity(scope.activity) == nullptr) {
    problems.AddError("activity", "is not an activity of the register");
  }
  scope.since = ReadTime(*obj, "since", &problems).value_or(0);
  scope.until = ReadTime(*obj, "until", &problems).value_or(0);
  if (!problems.errors().empty()) return problems;
  return Reply(d, x, d.breaches().Scope(*x.caller, x.params["id"], scope), 200);
}

Status RevokeKey(Deployment& d, Exchange& x) {
  GARDE_ASSIGN_OR_RETURN(auto obj, AuthenticatedJson(d, x));
  Status problems(Code::kUnprocessable, "the containment step is not valid");
  CheckMembers(*obj, {"key"}, "", &problems);
  const std::string key = ReadString(*obj, "key", "", &problems).value_or("");
  if (key.empty()) problems.AddError("key", "the id of the API key to revoke (key_...)");
  if (!problems.errors().empty()) return problems;
  return Reply(d, x, d.breaches().RevokeKey(*x.caller, x.params["id"], key), 200);
}

Status RekeySubjects(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  return Reply(d, x, d.breaches().RekeySubjects(*x.caller, x.params["id"]), 200);
}

Status NotifySubjects(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  return Reply(d, x, d.breaches().NotifySubjects(*x.caller, x.params["id"]), 200);
}

}  // namespace

void AddIncidentRoutes(Router& router, Deployment& d) {
  router.Add("POST", "/v1/incidents", [&d](Exchange& x) { return OpenIncident(d, x); });
  router.Add("GET", "/v1/incidents", [&d](Exchange& x) { return ListIncidents(d, x); });
  router.Add("GET", "/v1/incidents/{id}", [&d](Exchange& x) { return GetIncident(d, x); });
  router.Add("PATCH", "/v1/incidents/{id}", [&d](Exchange& x) { return UpdateIncident(d, x); });
  router.Add("POST", "/v1/incidents/{id}:scope", [&d](Exchange& x) { return ScopeIncident(d, x); });
  router.Add("GET", "/v1/incidents/{id}/evidence", [&d](Exchange& x) {
    GARDE_RETURN_IF_ERROR(Authenticate(d, x));
    auto subject = x.query.find("subject");
    if (subject == x.query.end() || subject->second.empty()) {
      return Status(Code::kUnprocessable, "name the subject").AddError("subject", "is required");
    }
    GARDE_ASSIGN_OR_RETURN(auto evidence,
                           d.breaches().Evidence(*x.caller, x.params["id"], subject->second));
    x.Json(200, std::move(evidence));
    return Status::Ok();
  });
  router.Add("POST", "/v1/incidents/{id}:revoke-key",
             [&d](Exchange& x) { return RevokeKey(d, x); });
  router.Add("POST", "/v1/incidents/{id}:rekey", [&d](Exchange& x) { return RekeySubjects(d, x); });
  router.Add("POST", "/v1/incidents/{id}:notify-subjects",
             [&d](Exchange& x) { return NotifySubjects(d, x); });
}

}  // namespace garde

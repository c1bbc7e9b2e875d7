// /v1/subjects: create, batch, read, rectify, search. Bodies are JSON; reads of personal data
// name their processing activity in X-Purpose.
#include <sstream>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"
#include "garde/http/problem.h"

namespace garde {
namespace {

std::string SubjectJson(const SubjectView& s) {
  JsonWriter w;
  WriteSubjectJson(w, s);
  return w.Take();
}

// Reads a create row ({kind, fields, source, external_id}); problems are prefixed.
NewSubject ReadNewSubject(const Poco::JSON::Object& obj, const std::string& prefix,
                          Status* problems) {
  NewSubject in;
  CheckMembers(obj, {"kind", "fields", "source", "external_id"}, prefix, problems);
  auto kind = ReadString(obj, "kind", prefix, problems);
  if (!kind && !obj.has("kind")) problems->AddError(prefix + "kind", "is required");
  in.kind = kind.value_or("");
  in.source = ReadString(obj, "source", prefix, problems).value_or("api");
  in.external_id = ReadString(obj, "external_id", prefix, problems);
  Status nested(Code::kUnprocessable, "");
  in.fields = ReadFieldMap(obj, "fields", &nested);
  for (const auto& e : nested.errors()) problems->AddError(prefix + e.field, e.message);
  return in;
}

Status CreateSubject(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.write"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  Status problems(Code::kUnprocessable, "the subject is not valid; nothing was stored");
  NewSubject in = ReadNewSubject(*obj, "", &problems);
  if (!problems.errors().empty()) {
    // List the field problems too: one answer names everything that is wrong.
    const Status fields = d.vault().CheckNew(in);
    for (const auto& e : fields.errors()) problems.AddError(e.field, e.message);
    return problems;
  }
  return AnswerWhenDone<Result<SubjectView>>(
      x,
      [&d, caller = *x.caller, in = std::move(in)](std::function<void(Result<SubjectView>)> done) {
        d.vault().CreateThen(caller, in, std::move(done));
      },
      [&x](Result<SubjectView>& created) -> Status {
        GARDE_RETURN_IF_ERROR(created.status());
        x.Json(201, SubjectJson(created.value()));
        x.reply_headers.emplace_back("Location", "/v1/subjects/" + created.value().id);
        return Status::Ok();
      });
}

// An interaction ({kind, occurred_at?, amount?}); problems are prefixed.
Interaction ReadInteraction(const Poco::Dynamic::Var& v, const std::string& prefix, int64_t now,
                            Status* problems) {
  Interaction in;
  in.at = now;
  if (!IsJsonObject(v)) {
    problems->AddError(prefix.empty() ? "body" : prefix.substr(0, prefix.size() - 1),
                       "must be an object {kind, occurred_at, amount}");
    return in;
  }
  const auto& obj = *v.extract<Poco::JSON::Object::Ptr>();
  CheckMembers(obj, {"kind", "occurred_at", "amount"}, prefix, problems);
  in.kind = ReadString(obj, "kind", prefix, problems).value_or("");
  if (!InteractionKinds().count(in.kind)) {
    problems->AddError(prefix + "kind", "one of purchase, contact, visit, support, other");
  }
  if (auto at = ReadString(obj, "occurred_at", prefix, problems)) {
    auto t = ParseRfc3339(*at);
    if (!t || *t > now + 300) {
      problems->AddError(prefix + "occurred_at", "an RFC 3339 time, not in the future");
    } else {
      in.at = *t;
    }
  }
  if (obj.has("amount")) {
    const auto a = obj.get("amount");
    if (!a.isNumeric() || a.isBoolean() || a.convert<double>() < 0 || a.convert<double>() > 1e12) {
      problems->AddError(prefix + "amount", "a number from 0");
    } else if (in.kind != "purchase") {
      problems->AddError(prefix + "amount", "only a purchase has an amount");
    } else {
      in.amount = a.convert<double>();
    }
  }
  return in;
}

// POST /v1/subjects/{id}/interactions: one interaction, or {"interactions":[…]} (at most 1000).
Status RecordInteractions(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.write"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  Status problems(Code::kUnprocessable, "the interaction is not valid; nothing was stored");
  std::vector<Interaction> list;
  const int64_t now = d.clock().Now();
  if (obj->has("interactions")) {
    CheckMembers(*obj, {"interactions"}, "", &problems);
    const auto arr = obj->getArray("interactions");
    if (!arr || arr->size() == 0 || arr->size() > 1000) {
      problems.AddError("interactions", "an array of 1 to 1000 interactions");
    } else {
      for (size_t i = 0; i < arr->size(); ++i) {
        list.push_back(ReadInteraction(arr->get(static_cast<unsigned>(i)),
                                       "interactions[" + std::to_string(i) + "].", now, &problems));
      }
    }
  } else {
    list.push_back(ReadInteraction(Poco::Dynamic::Var(obj), "", now, &problems));
  }
  if (!problems.errors().empty()) return problems;
  GARDE_ASSIGN_OR_RETURN(auto view, d.vault().RecordInteractions(*x.caller, x.params["id"], list));
  JsonWriter w;
  w.BeginObject()
      .String("subject", view.id)
      .Int("recorded", static_cast<int64_t>(list.size()))
      .String("last_interaction_at", FormatRfc3339(view.last_interaction_at))
      .EndObject();
  x.Json(201, w.Take());
  return Status::Ok();
}

// One row of a batch: a create without "id", a rectification with one (which may carry
// "interactions" as well, or alone).
void BatchRow(Deployment& d, Exchange& x, size_t index, const Poco::Dynamic::Var& row,
              JsonWriter& w) {
  w.BeginObject().Int("index", static_cast<int64_t>(index));
  Status problems(Code::kUnprocessable, "the row is not valid; nothing was stored for it");
  Status outcome;
  std::string id;
  int http = 200;
  if (!IsJsonObject(row)) {
    outcome = Unprocessable("each row must be a JSON object");
  } else {
    const auto& obj = *row.extract<Poco::JSON::Object::Ptr>();
    if (obj.has("id")) {
      auto target = ReadString(obj, "id", "", &problems);
      Poco::JSON::Object rest(obj);
      std::vector<Interaction> interactions;
      if (obj.has("interactions")) {
        rest.remove("interactions");
        const auto arr = obj.getArray("interactions");
        if (!arr || arr->size() == 0 || arr->size() > 1000) {
          problems.AddError("interactions", "an array of 1 to 1000 interactions");
        } else {
          for (size_t i = 0; i < arr->size(); ++i) {
            interactions.push_back(ReadInteraction(arr->get(static_cast<unsigned>(i)),
                                                   "interactions[" + std::to_string(i) + "].",
                                                   d.clock().Now(), &problems));
          }
        }
      }
      SubjectChanges changes = ReadChanges(rest, "", &problems, true);
      if (!problems.errors().empty()) {
        outcome = problems;
      } else {
        const bool rectify = !changes.fields.empty() || changes.external_id || interactions.empty();
        if (rectify) {
          auto r = d.vault().Rectify(*x.caller, target.value_or(""), changes);
          outcome = r.status();
          if (r.ok()) id = r->id;
        }
        if (outcome.ok() && !interactions.empty()) {
          auto r = d.vault().RecordInteractions(*x.caller, target.value_or(""), interactions);
          outcome = r.status();
          if (r.ok()) id = r->id;
        }
      }
    } else {
      NewSubject in = ReadNewSubject(obj, "", &problems);
      if (!problems.errors().empty()) {
        outcome = problems;
      } else {
        auto r = d.vault().Create(*x.caller, in);
        outcome = r.status();
        if (r.ok()) {
          id = r->id;
          http = 201;
        }
      }
    }
  }
  if (outcome.ok()) {
    w.Int("status", http).String("id", id);
  } else {
    w.Int("status", HttpStatusOf(outcome.code()))
        .String("type", std::string(kProblemBase) + ProblemSlug(outcome.code()))
        .String("detail", outcome.message());
    for (const auto& [k, v] : outcome.extras()) w.String(k, v);
    if (!outcome.errors().empty()) {
      w.BeginArray("errors");
      for (const auto& e : outcome.errors()) {
        w.BeginObject().String("field", e.field).String("message", e.message).EndObject();
      }
      w.EndArray();
    }
  }
  w.EndObject();
}

Status BatchSubjects(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.write"));
  const bool ndjson = x.content_type == "application/x-ndjson" ||
                      x.content_type == "application/ndjson" ||
                      x.content_type == "application/jsonl";
  if (!ndjson) GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  std::vector<Poco::Dynamic::Var> rows;
  if (ndjson) {
    std::istringstream lines(x.body);
    std::string line;
    size_t n = 0;
    while (std::getline(lines, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto v = ParseJson(line);
      if (!v.ok()) return BadRequest("line " + std::to_string(n) + " is not well-formed JSON");
      rows.push_back(std::move(v.value()));
    }
  } else {
    GARDE_ASSIGN_OR_RETURN(auto v, ParseJson(x.body));
    if (!IsJsonArray(v)) return Unprocessable("the body must be a JSON array of rows");
    const auto& arr = *v.extract<Poco::JSON::Array::Ptr>();
    for (size_t i = 0; i < arr.size(); ++i) rows.push_back(arr.get(static_cast<unsigned>(i)));
  }
  const auto max_rows = static_cast<size_t>(d.config().max_batch_rows);
  if (rows.size() > max_rows) {
    return Status(Code::kPayloadTooLarge,
                  "a batch holds at most " + std::to_string(max_rows) + " rows");
  }
  if (rows.empty()) return Unprocessable("the batch has no rows");
  JsonWriter w;
  w.BeginObject().BeginArray("results");
  for (size_t i = 0; i < rows.size(); ++i) BatchRow(d, x, i, rows[i], w);
  w.EndArray().EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

// Contacts of an organisation: /v1/subjects/{organisation}/contacts/{person} with a role.
Status PutContact(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.write"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  Status problems(Code::kUnprocessable, "the contact is not valid");
  CheckMembers(*obj, {"role"}, "", &problems);
  const std::string role = ReadString(*obj, "role", "", &problems).value_or("");
  if (!obj->has("role")) problems.AddError("role", "is required");
  if (!problems.errors().empty()) return problems;
  GARDE_RETURN_IF_ERROR(d.vault().LinkContact(*x.caller, x.params["id"], x.params["person"], role));
  JsonWriter w;
  w.BeginObject()
      .String("organisation", x.params["id"])
      .String("person", x.params["person"])
      .String("role", role)
      .EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

Status DeleteContact(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.write"));
  GARDE_RETURN_IF_ERROR(d.vault().UnlinkContact(*x.caller, x.params["id"], x.params["person"]));
  x.status = 204;
  x.reply.clear();
  return Status::Ok();
}

Status ListContacts(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.write"));
  GARDE_ASSIGN_OR_RETURN(auto links, d.vault().Contacts(*x.caller, x.params["id"]));
  JsonWriter w;
  w.BeginObject().BeginArray("items");
  for (const auto& l : links) {
    w.BeginObject()
        .String("organisation", l.organisation_id)
        .String("person", l.person_id)
        .String("role", l.role)
        .String("since", FormatRfc3339(l.created_at))
        .EndObject();
  }
  w.EndArray().EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

// A merged id answers 308 to the record it is now part of.
Status Redirected(Deployment& d, Exchange& x, Status moved) {
  GARDE_ASSIGN_OR_RETURN(auto survivor, d.merges().SurvivorOf(x.params["id"]));
  if (!survivor) return moved;
  x.reply_headers.emplace_back("Location", "/v1/subjects/" + *survivor);
  return moved.AddExtra("merged_into", *survivor);
}

Status GetSubject(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.read"));
  auto view = d.vault().Read(*x.caller, x.params["id"], x.Header("x-purpose"));
  if (!view.ok() && view.status().code() == Code::kMoved) return Redirected(d, x, view.status());
  if (!view.ok()) return view.status();
  x.Json(200, SubjectJson(view.value()));
  return Status::Ok();
}

Status PatchSubject(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.write"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  Status problems(Code::kUnprocessable, "the change is not valid; nothing was stored");
  SubjectChanges changes = ReadChanges(*obj, "", &problems, false);
  if (!problems.errors().empty()) return problems;
  return AnswerWhenDone<Result<SubjectView>>(
      x,
      [&d, caller = *x.caller, id = x.params["id"],
       changes = std::move(changes)](std::function<void(Result<SubjectView>)> done) {
        d.vault().RectifyThen(caller, id, changes, std::move(done));
      },
      [&x](Result<SubjectView>& changed) -> Status {
        GARDE_RETURN_IF_ERROR(changed.status());
        x.Json(200, SubjectJson(changed.value()));
        return Status::Ok();
      });
}

Status SearchSubjects(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.read"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  FieldMap criteria;
  Status problems(Code::kUnprocessable, "the search is not valid");
  for (const auto& [name, value] : *obj) {
    FieldValue v = ToFieldValue(value);
    if (v.type == FieldValue::Type::kComposite || v.is_null()) {
      problems.AddError(name, "must be a single value");
      continue;
    }
    criteria[name] = std::move(v);
  }
  if (!problems.errors().empty()) return problems;
  GARDE_ASSIGN_OR_RETURN(auto found, d.vault().Search(*x.caller, x.Header("x-purpose"), criteria));
  JsonWriter w;
  w.BeginObject().BeginArray("items");
  for (const auto& s : found) WriteSubjectJson(w, s);
  w.EndArray().Int("count", static_cast<int64_t>(found.size())).Null("next_cursor");
  w.EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

// POST /v1/subjects/{id}:merge {into, prefer?}: the subject merged into `into`.
Status MergeSubject(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.merge"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  Status problems(Code::kUnprocessable, "the merge is not valid; nothing was changed");
  CheckMembers(*obj, {"into", "prefer"}, "", &problems);
  MergeRequest request;
  request.into = ReadString(*obj, "into", "", &problems).value_or("");
  if (obj->has("prefer")) {
    const Poco::Dynamic::Var prefer = obj->get("prefer");
    if (!IsJsonObject(prefer)) {
      problems.AddError("prefer", "must be an object of field names to \"merged\" or \"survivor\"");
    } else {
      for (const auto& [field, side] : *prefer.extract<Poco::JSON::Object::Ptr>()) {
        if (!side.isString()) {
          problems.AddError("prefer." + field, "must be \"merged\" or \"survivor\"");
        } else {
          request.prefer[field] = side.extract<std::string>();
        }
      }
    }
  }
  if (!problems.errors().empty()) return problems;
  GARDE_ASSIGN_OR_RETURN(auto m, d.merges().Merge(*x.caller, x.params["id"], request));
  JsonWriter w;
  WriteMergeJson(w, m);
  x.reply_headers.emplace_back("Location", "/v1/merges/" + m.id);
  x.Json(201, w.Take());
  return Status::Ok();
}

using MergeStepFn = Result<MergeRow> (SubjectMerges::*)(const Caller&, const std::string&);

Status MergeStep(Deployment& d, Exchange& x, MergeStepFn step) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.merge"));
  const std::string id = x.params["id"];
  if (!IsRandomId(id, "mrg_")) return NotFound("no merge " + id);
  GARDE_ASSIGN_OR_RETURN(auto m, (d.merges().*step)(*x.caller, id));
  JsonWriter w;
  WriteMergeJson(w, m);
  x.Json(200, w.Take());
  return Status::Ok();
}

// GET /v1/duplicates?limit=&cursor=: likely duplicates, ids and the rules that matched.
Status ListDuplicates(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "duplicates.read"));
  Status invalid(Code::kUnprocessable, "the listing is not valid");
  std::string after_first, after_second;
  if (auto c = x.query.find("cursor"); c != x.query.end()) {
    auto raw = Base64UrlDecode(c->second);
    const std::string s = raw ? std::string(AsStringView(*raw)) : "";
    const size_t comma = s.find(',');
    if (comma == std::string::npos || !IsRandomId(s.substr(0, comma), "sub_") ||
        !IsRandomId(s.substr(comma + 1), "sub_")) {
      invalid.AddError("cursor", "is not a cursor this service issued");
    } else {
      after_first = s.substr(0, comma);
      after_second = s.substr(comma + 1);
    }
  }
  const size_t limit = PageLimit(x, &invalid);
  if (!invalid.errors().empty()) return invalid;
  GARDE_ASSIGN_OR_RETURN(auto pairs,
                         d.vault().Duplicates(*x.caller, after_first, after_second, limit + 1));
  const bool more = pairs.size() > limit;
  if (more) pairs.resize(limit);
  JsonWriter w;
  w.BeginObject().BeginArray("items");
  for (const auto& p : pairs) {
    w.BeginObject()
        .BeginArray("subjects")
        .String(p.first)
        .String(p.second)
        .EndArray()
        .BeginArray("rules");
    for (const auto& rule : p.rules) w.String(rule);
    w.EndArray().EndObject();
  }
  w.EndArray().Int("count", static_cast<int64_t>(pairs.size())).Key("next_cursor");
  if (more) {
    const std::string c = pairs.back().first + "," + pairs.back().second;
    w.String(Base64UrlEncode(reinterpret_cast<const uint8_t*>(c.data()), c.size()));
  } else {
    w.Null();
  }
  x.Json(200, w.EndObject().Take());
  return Status::Ok();
}

}  // namespace

void AddSubjectRoutes(Router& router, Deployment& d) {
  router.Add("GET", "/v1/duplicates", [&d](Exchange& x) { return ListDuplicates(d, x); });
  router.Add(
      "POST", "/v1/subjects", [&d](Exchange& x) { return CreateSubject(d, x); },
      Pace::kPostsItsWrite);
  router.Add("POST", "/v1/subjects/{id}:merge", [&d](Exchange& x) { return MergeSubject(d, x); });
  router.Add("GET", "/v1/merges/{id}",
             [&d](Exchange& x) { return MergeStep(d, x, &SubjectMerges::Get); });
  router.Add("POST", "/v1/merges/{id}:revert",
             [&d](Exchange& x) { return MergeStep(d, x, &SubjectMerges::Revert); });
  router.Add("POST", "/v1/merges/{id}:complete",
             [&d](Exchange& x) { return MergeStep(d, x, &SubjectMerges::Complete); });
  router.Add("POST", "/v1/subjects:batch", [&d](Exchange& x) { return BatchSubjects(d, x); });
  router.Add("GET", "/v1/subjects/{id}/contacts", [&d](Exchange& x) { return ListContacts(d, x); });
  router.Add("PUT", "/v1/subjects/{id}/contacts/{person}",
             [&d](Exchange& x) { return PutContact(d, x); });
  router.Add("DELETE", "/v1/subjects/{id}/contacts/{person}",
             [&d](Exchange& x) { return DeleteContact(d, x); });
  router.Add("POST", "/v1/subjects/{id}/interactions",
             [&d](Exchange& x) { return RecordInteractions(d, x); });
  router.Add("POST", "/v1/subjects:search", [&d](Exchange& x) { return SearchSubjects(d, x); });
  router.Add(
      "GET", "/v1/subjects/{id}", [&d](Exchange& x) { return GetSubject(d, x); }, Pace::kAtOnce);
  router.Add(
      "PATCH", "/v1/subjects/{id}", [&d](Exchange& x) { return PatchSubject(d, x); },
      Pace::kPostsItsWrite);
}

}  // namespace garde

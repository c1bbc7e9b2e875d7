// The data lifecycle for officers: /v1/retention/runs (what the retention sweep erased or
// released, by activity and rule, counts only; a run on demand) and /v1/webhooks/deliveries
// (what each recipient was told, dead letters and their replay).
#include "garde/base/clock.h"
#include "garde/base/json_writer.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"

namespace garde {
namespace {

void WriteRun(JsonWriter& w, const RetentionRunRow& r) {
  w.BeginObject()
      .String("id", r.id)
      .String("status", r.finished_at != 0 ? "completed" : "running")
      .Bool("dry_run", r.dry_run)
      .String("started_at", FormatRfc3339(r.started_at))
      .String("at", FormatRfc3339(r.at));
  if (r.finished_at != 0) {
    w.String("finished_at", FormatRfc3339(r.finished_at));
  } else {
    w.Null("finished_at");
  }
  w.Raw("report", r.report).EndObject();
}

Status ListRuns(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "retention.read"));
  int64_t before = 0;
  if (auto c = x.query.find("cursor"); c != x.query.end()) {
    char* end = nullptr;
    before = std::strtoll(c->second.c_str(), &end, 10);
    if (c->second.empty() || *end != '\0' || before <= 0) {
      return Status(Code::kUnprocessable, "the cursor is not valid")
          .AddError("cursor", "use next_cursor of the previous page");
    }
  }
  constexpr size_t kPage = 50;
  GARDE_ASSIGN_OR_RETURN(auto runs, d.retention().List(before, kPage));
  JsonWriter w;
  w.BeginObject().BeginArray("items");
  for (const auto& r : runs) WriteRun(w, r);
  w.EndArray().Key("next_cursor");
  if (runs.size() == kPage) {
    w.String(std::to_string(runs.back().seq));
  } else {
    w.Null();
  }
  w.EndObject();
  x.Json(200, w.Take());
  return d.journal().Record(
      nullptr, *x.caller, {"retention.list", "", "", "ok", {}, static_cast<int64_t>(runs.size())});
}

Status GetRun(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "retention.read"));
  auto run = d.retention().Get(x.params["id"]);
  if (!run.ok()) return run.status();
  if (!run.value()) return NotFound("no such retention run");
  JsonWriter w;
  WriteRun(w, *run.value());
  x.Json(200, w.Take());
  return d.journal().Record(nullptr, *x.caller,
                            {"retention.read", "", "", "ok", {run.value()->id}, 1});
}

// POST {"dry_run": bool}: runs a sweep now, at the service's time, and answers with its run.
Status StartRun(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "retention.run"));
  bool dry_run = false;
  if (!x.body.empty()) {
    GARDE_ASSIGN_OR_RETURN(auto body, ParseJsonObject(x.body));
    Status invalid(Code::kUnprocessable, "the run request is not valid");
    for (const auto& name : body->getNames()) {
      if (name != "dry_run") invalid.AddError(name, "unknown field");
    }
    if (body->has("dry_run")) {
      const auto v = body->get("dry_run");
      if (!v.isBoolean()) {
        invalid.AddError("dry_run", "must be true or false");
      } else {
        dry_run = v.extract<bool>();
      }
    }
    if (!invalid.errors().empty()) return invalid;
  }
  RetentionRunOptions options;
  options.dry_run = dry_run;
  GARDE_ASSIGN_OR_RETURN(auto run, d.retention().Run(options));
  JsonWriter w;
  WriteRun(w, run);
  x.Json(201, w.Take());
  return Status::Ok();
}

void WriteDelivery(JsonWriter& w, const DeliveryRow& r) {
  w.BeginObject()
      .String("id", std::to_string(r.id))
      .String("endpoint", r.endpoint)
      .String("event_id", r.event_id)
      .String("topic", r.topic)
      .StringOrNull("subject", r.subject)
      .String("status", r.status)
      .Int("attempts", r.attempts)
      .String("queued_at", FormatRfc3339(r.created_at));
  w.Key("next_attempt_at");
  if (r.status == "pending") {
    w.String(FormatRfc3339(r.next_at / 1000));
  } else {
    w.Null();
  }
  w.Key("delivered_at");
  if (r.delivered_at != 0) {
    w.String(FormatRfc3339(r.delivered_at));
  } else {
    w.Null();
  }
  w.StringOrNull("last_error", r.last_error).EndObject();
}

Result<int64_t> PositiveId(const std::string& text, const char* field) {
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v <= 0) {
    return Status(Code::kUnprocessable, "not a valid id").AddError(field, "a positive integer");
  }
  return static_cast<int64_t>(v);
}

Status ListDeliveries(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "webhooks.read"));
  DeliveryQuery q;
  q.limit = 100;
  if (auto s = x.query.find("status"); s != x.query.end()) {
    if (s->second != "pending" && s->second != "delivered" && s->second != "dead" &&
        s->second != "skipped") {
      return Status(Code::kUnprocessable, "unknown status")
          .AddError("status", "one of pending, delivered, dead, skipped");
    }
    q.status = s->second;
  }
  if (auto e = x.query.find("endpoint"); e != x.query.end()) q.endpoint = e->second;
  if (auto c = x.query.find("cursor"); c != x.query.end()) {
    GARDE_ASSIGN_OR_RETURN(auto after, PositiveId(c->second, "cursor"));
    q.after_id = after;
  }
  std::vector<DeliveryRow> rows;
  GARDE_RETURN_IF_ERROR(d.store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto got, tx.QueryDeliveries(q));
    rows = std::move(got);
    return Status::Ok();
  }));
  JsonWriter w;
  w.BeginObject().BeginArray("items");
  for (const auto& r : rows) WriteDelivery(w, r);
  w.EndArray().Key("next_cursor");
  if (rows.size() == q.limit) {
    w.String(std::to_string(rows.back().id));
  } else {
    w.Null();
  }
  w.EndObject();
  x.Json(200, w.Take());
  return d.journal().Record(nullptr, *x.caller,
                            {"webhooks.list", "", "", "ok", {}, static_cast<int64_t>(rows.size())});
}

Status ReplayDelivery(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "webhooks.replay"));
  auto id = PositiveId(x.params["id"], "id");
  if (!id.ok()) return NotFound("no such delivery");
  if (d.webhooks() == nullptr) return Conflict("no webhook endpoints are configured");
  // The row as the replay left it: read again, the dispatcher may already have sent it.
  GARDE_ASSIGN_OR_RETURN(auto row, d.webhooks()->Replay(id.value()));
  JsonWriter w;
  WriteDelivery(w, row);
  x.Json(200, w.Take());
  return d.journal().Record(nullptr, *x.caller,
                            {"webhooks.replay", row.subject, "", "ok", {row.event_id}, 1});
}

}  // namespace

void AddRetentionRoutes(Router& router, Deployment& d) {
  router.Add("GET", "/v1/webhooks/deliveries", [&d](Exchange& x) { return ListDeliveries(d, x); });
  router.Add("POST", "/v1/webhooks/deliveries/{id}:replay",
             [&d](Exchange& x) { return ReplayDelivery(d, x); });
  router.Add("GET", "/v1/retention/runs", [&d](Exchange& x) { return ListRuns(d, x); });
  router.Add("POST", "/v1/retention/runs", [&d](Exchange& x) { return StartRun(d, x); });
  router.Add("GET", "/v1/retention/runs/{id}", [&d](Exchange& x) { return GetRun(d, x); });
}

}  // namespace garde

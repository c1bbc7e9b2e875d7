// /v1/retention/runs: the retention sweep's runs for officers (what was erased or released,
// by activity and rule, counts only), and a run started on demand.
#include "garde/base/clock.h"
#include "garde/base/json_writer.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"

namespace garde {
namespace {

Status Require(Deployment& d, Exchange& x, const char* capability) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  return AccessGate::Require(*d.policies().Current(), *x.caller, capability);
}

void WriteRun(JsonWriter& w, const RetentionRunRow& r) {
  w.BeginObject()
      .Key("id").String(r.id)
      .Key("status").String(r.finished_at != 0 ? "completed" : "running")
      .Key("dry_run").Bool(r.dry_run)
      .Key("started_at").String(FormatRfc3339(r.started_at))
      .Key("at").String(FormatRfc3339(r.at));
  if (r.finished_at != 0) {
    w.Key("finished_at").String(FormatRfc3339(r.finished_at));
  } else {
    w.Key("finished_at").Null();
  }
  w.Key("report").Raw(r.report).EndObject();
}

Status ListRuns(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Require(d, x, "retention.read"));
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
  auto runs = d.retention().List(before, kPage);
  if (!runs.ok()) return runs.status();
  JsonWriter w;
  w.BeginObject().Key("items").BeginArray();
  for (const auto& r : runs.value()) WriteRun(w, r);
  w.EndArray().Key("next_cursor");
  if (runs.value().size() == kPage) {
    w.String(std::to_string(runs.value().back().seq));
  } else {
    w.Null();
  }
  w.EndObject();
  x.Json(200, w.Take());
  return d.journal().Record(nullptr, *x.caller,
                            {"retention.list", "", "", "ok", {},
                             static_cast<int64_t>(runs.value().size())});
}

Status GetRun(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Require(d, x, "retention.read"));
  auto run = d.retention().Get(x.params["id"]);
  if (!run.ok()) return run.status();
  if (!run.value()) return NotFound("no such retention run");
  JsonWriter w;
  WriteRun(w, *run.value());
  x.Json(200, w.Take());
  return d.journal().Record(nullptr, *x.caller, {"retention.read", "", "", "ok", {run.value()->id}, 1});
}

// POST {"dry_run": bool}: runs a sweep now, at the service's time, and answers with its run.
Status StartRun(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Require(d, x, "retention.run"));
  bool dry_run = false;
  if (!x.body.empty()) {
    auto body = ParseJsonObject(x.body);
    if (!body.ok()) return body.status();
    Status invalid(Code::kUnprocessable, "the run request is not valid");
    for (const auto& name : body.value()->getNames()) {
      if (name != "dry_run") invalid.AddError(name, "unknown field");
    }
    if (body.value()->has("dry_run")) {
      const auto v = body.value()->get("dry_run");
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
  auto run = d.retention().Run(options);
  if (!run.ok()) return run.status();
  JsonWriter w;
  WriteRun(w, run.value());
  x.Json(201, w.Take());
  return Status::Ok();
}

}  // namespace

void AddRetentionRoutes(Router& router, Deployment& d) {
  router.Add("GET", "/v1/retention/runs", [&d](Exchange& x) { return ListRuns(d, x); });
  router.Add("POST", "/v1/retention/runs", [&d](Exchange& x) { return StartRun(d, x); });
  router.Add("GET", "/v1/retention/runs/{id}", [&d](Exchange& x) { return GetRun(d, x); });
}

}  // namespace garde

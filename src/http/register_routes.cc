// /v1/register (JSON, CSV, Markdown, printable HTML), /v1/register/{id}, /v1/register/lint,
// /v1/register/history and POST /v1/admin/reload.
#include "garde/app/policy_reload.h"
#include "garde/base/clock.h"
#include "garde/base/json_writer.h"
#include "garde/http/html.h"
#include "garde/http/http_service.h"
#include "garde/http/register_export.h"
#include "garde/policy/register_lint.h"

namespace garde {
namespace {

Status GetRegister(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "register.read"));
  auto p = d.policies().Current();
  const std::string format = x.query.count("format") ? x.query["format"] : "json";
  // An explicit ?lang= must be one the register speaks; otherwise Accept-Language decides.
  auto lang = x.query.find("lang");
  GARDE_ASSIGN_OR_RETURN(
      auto doc, ExportRegister(*p, format, lang != x.query.end() ? lang->second : PageLanguage(x)));
  x.status = 200;
  x.reply_type = doc.content_type;
  x.reply = std::move(doc.body);
  if (format == "html") {
    x.reply_headers.emplace_back("Content-Security-Policy",
                                 "default-src 'none'; style-src 'unsafe-inline'");
  }
  return d.journal().Record(
      nullptr, *x.caller,
      {"register.export", "", "", "ok", {format}, static_cast<int64_t>(p->activities().size())});
}

Status GetActivity(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "register.read"));
  const auto policies = d.policies().Current();
  const Activity* a = policies->FindActivity(x.params["id"]);
  if (a == nullptr) return NotFound("no such activity");
  x.Json(200, a->json);
  return Status::Ok();
}

Status GetLint(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "register.lint"));
  const auto findings = LintRegister(*d.policies().Current());
  bool ok = true;
  JsonWriter w;
  w.BeginObject().BeginArray("findings");
  for (const auto& f : findings) {
    ok &= f.severity != "error";
    w.BeginObject()
        .String("severity", f.severity)
        .String("rule", f.rule)
        .String("location", f.location)
        .String("message", f.message)
        .String("hint", f.hint)
        .EndObject();
  }
  w.EndArray().Bool("ok", ok).EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

Status Reload(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "policies.reload"));
  GARDE_ASSIGN_OR_RETURN(auto r, ReloadPolicies(d, *x.caller, "api"));
  JsonWriter w;
  w.BeginObject()
      .Bool("changed", r.changed)
      .String("before", r.before)
      .String("after", r.after)
      .Raw("summary", r.summary)
      .EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

Status History(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "register.read"));
  std::vector<PolicyVersionRow> rows;
  GARDE_RETURN_IF_ERROR(d.store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto list, tx.ListPolicyVersions(1000));
    rows = std::move(list);
    return Status::Ok();
  }));
  const std::string current = d.policies().Current()->content_hash();
  JsonWriter w;
  w.BeginObject().String("current", current).BeginArray("items");
  for (const auto& v : rows) {
    w.BeginObject()
        .String("content_hash", v.content_hash)
        .String("loaded_at", FormatRfc3339(v.loaded_at))
        .String("source", v.source)
        .Raw("changes", v.summary)
        .EndObject();
  }
  w.EndArray().EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

}  // namespace

void AddRegisterRoutes(Router& router, Deployment& d) {
  router.Add("GET", "/v1/register", [&d](Exchange& x) { return GetRegister(d, x); });
  router.Add("GET", "/v1/register/lint", [&d](Exchange& x) { return GetLint(d, x); });
  router.Add("GET", "/v1/register/history", [&d](Exchange& x) { return History(d, x); });
  router.Add("POST", "/v1/admin/reload", [&d](Exchange& x) { return Reload(d, x); });
  router.Add("GET", "/v1/register/{id}", [&d](Exchange& x) { return GetActivity(d, x); });
}

}  // namespace garde

// /v1/register (JSON, CSV, Markdown), /v1/register/{id}, /v1/register/lint.
#include "garde/base/json_writer.h"
#include "garde/http/csv.h"
#include "garde/http/http_service.h"
#include "garde/policy/register_lint.h"

namespace garde {
namespace {

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

Status RequireOfficer(Deployment& d, Exchange& x, const char* capability) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  return AccessGate::Require(*d.policies().Current(), *x.caller, capability);
}

Status GetRegister(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireOfficer(d, x, "register.read"));
  auto p = d.policies().Current();
  const std::string format = x.query.count("format") ? x.query["format"] : "json";
  if (format == "json") {
    JsonWriter w;
    w.BeginObject().Key("organisation").Raw(p->organisation_json())
        .Key("content_hash").String(p->content_hash()).Key("activities").BeginArray();
    for (const auto& a : p->activities()) w.Raw(a.json);
    w.EndArray().EndObject();
    x.Json(200, w.Take());
  } else if (format == "csv") {
    // UTF-8 BOM so spreadsheets read accents right; one row per activity.
    std::string out = "\xEF\xBB\xBFid,reference,name,legal_basis,purposes,data,retention\r\n";
    for (const auto& a : p->activities()) {
      std::vector<std::string> fields(a.fields.begin(), a.fields.end());
      out += CsvCell(a.id) + "," + CsvCell(a.reference) + "," + CsvCell(a.name) + "," +
             CsvCell(LegalBasisName(a.legal_basis)) + "," + CsvCell(Join(a.purposes, "; ")) +
             "," + CsvCell(Join(fields, "; ")) + "," + CsvCell(a.retention) + "\r\n";
    }
    x.status = 200;
    x.reply_type = "text/csv; charset=utf-8";
    x.reply = std::move(out);
  } else if (format == "md") {
    std::string out = "# Register of processing activities\n\n"
                      "| reference | activity | legal basis | purposes | data | retention |\n"
                      "| --- | --- | --- | --- | --- | --- |\n";
    auto cell = [](std::string s) {
      for (size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2) s.replace(i, 1, "\\|");
      return s;
    };
    for (const auto& a : p->activities()) {
      std::vector<std::string> fields(a.fields.begin(), a.fields.end());
      out += "| " + cell(a.reference) + " | " + cell(a.name) + " (`" + a.id + "`) | " +
             LegalBasisName(a.legal_basis) + " | " + cell(Join(a.purposes, ", ")) + " | " +
             cell(Join(fields, ", ")) + " | " + cell(a.retention) + " |\n";
    }
    x.status = 200;
    x.reply_type = "text/markdown; charset=utf-8";
    x.reply = std::move(out);
  } else {
    return Status(Code::kUnprocessable, "unsupported register format")
        .AddError("format", "must be json, csv or md (the printable html sheet is not built yet)");
  }
  return d.journal().Record(nullptr, *x.caller,
                            {"register.export", "", "", "ok", {format},
                             static_cast<int64_t>(p->activities().size())});
}

Status GetActivity(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireOfficer(d, x, "register.read"));
  const Activity* a = d.policies().Current()->FindActivity(x.params["id"]);
  if (a == nullptr) return NotFound("no such activity");
  x.Json(200, a->json);
  return Status::Ok();
}

Status GetLint(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireOfficer(d, x, "register.lint"));
  const auto findings = LintRegister(*d.policies().Current());
  bool ok = true;
  JsonWriter w;
  w.BeginObject().Key("findings").BeginArray();
  for (const auto& f : findings) {
    ok &= f.severity != "error";
    w.BeginObject().Key("severity").String(f.severity).Key("rule").String(f.rule)
        .Key("location").String(f.location).Key("message").String(f.message)
        .Key("hint").String(f.hint).EndObject();
  }
  w.EndArray().Key("ok").Bool(ok).EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

}  // namespace

void AddRegisterRoutes(Router& router, Deployment& d) {
  router.Add("GET", "/v1/register", [&d](Exchange& x) { return GetRegister(d, x); });
  router.Add("GET", "/v1/register/lint", [&d](Exchange& x) { return GetLint(d, x); });
  router.Add("GET", "/v1/register/{id}", [&d](Exchange& x) { return GetActivity(d, x); });
}

}  // namespace garde

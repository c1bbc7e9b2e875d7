// /v1/imports: a spreadsheet's CSV uploaded as the body (text/csv), read with a mapping kept
// beside the policies (policies/imports/NAME.yaml, reviewed like them). The upload is kept on
// disk, sealed, as it arrives (up to max_import_bytes), never whole in memory. The answer is
// the per-row report, as JSON or, for Accept: text/csv, as CSV. The same upload again resumes.
#include <cctype>

#include "garde/app/importer.h"
#include "garde/base/json_writer.h"
#include "garde/crypto/sealed_spool.h"
#include "garde/http/http_service.h"

namespace garde {
namespace {

bool IsMappingName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

void WriteRow(JsonWriter& w, const ImportRowResult& r) {
  w.BeginObject()
      .Int("row", r.row)
      .Int("line", static_cast<int64_t>(r.line))
      .String("outcome", r.outcome);
  if (!r.id.empty()) w.String("id", r.id);
  if (r.earlier) w.Bool("earlier", true);
  if (!r.likely_duplicate_of.empty()) {
    w.BeginObject("likely_duplicate_of").String("id", r.likely_duplicate_of).BeginArray("rules");
    for (const auto& rule : r.likely_rules) w.String(rule);
    w.EndArray().EndObject();
  }
  if (!r.detail.empty()) w.String("detail", r.detail);
  if (!r.errors.empty()) {
    w.BeginArray("errors");
    for (const auto& e : r.errors) {
      w.BeginObject().String("field", e.field).String("message", e.message).EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
}

Status PostImport(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "subjects.write"));
  if (x.content_type != "text/csv") {
    return Status(Code::kUnsupportedMediaType, "send the file as text/csv");
  }
  const std::string name = x.query.count("mapping") ? x.query["mapping"] : "";
  if (!IsMappingName(name)) {
    return Status(Code::kUnprocessable, "name the mapping to read the file with")
        .AddError("mapping", "the name of a file in the policies' imports/ directory");
  }
  const std::string dry = x.query.count("dry_run") ? x.query["dry_run"] : "false";
  if (dry != "true" && dry != "false") {
    return Status(Code::kUnprocessable, "dry_run is true or false")
        .AddError("dry_run", "true or false");
  }
  // Problems name the file as the policies' reviewers know it, not its place on the server.
  auto mapping = LoadImportMapping(d.config().policies_dir + "/imports/" + name + ".yaml",
                                   d.policies().Current()->schema(), "imports/" + name + ".yaml");
  if (mapping.status().code() == Code::kNotFound)
    return NotFound("no import mapping named " + name);
  if (!mapping.ok()) return mapping.status();
  const bool csv = x.Header("accept").find("text/csv") != std::string::npos;
  std::string rows_csv = csv ? ImportReportCsvHeader() : "";
  JsonWriter rows;
  rows.BeginArray();
  Importer importer(d);
  ImportOptions options;
  options.dry_run = dry == "true";
  options.workers = 2;   // a share of the service's cores, not all of them
  options.window = 256;  // short transactions: other writers wait at most one window
  // The upload arrived into a sealed spool (HttpService::SpoolFor), read twice from there.
  std::unique_ptr<ByteSource> in_memory;
  ByteSource* file = x.body_spool.get();
  if (file == nullptr) {
    in_memory = StringSource(x.body);
    file = in_memory.get();
  }
  auto summary =
      importer.Run(*x.caller, mapping.value(), *file, options, [&](const ImportRowResult& r) {
        if (csv)
          rows_csv += ImportReportCsvLine(r);
        else
          WriteRow(rows, r);
      });
  if (!summary.ok()) return summary.status();
  if (csv) {
    x.status = 200;
    x.reply_type = "text/csv; charset=utf-8";
    x.reply = std::move(rows_csv);
    x.reply_headers.emplace_back("X-Garde-Import", summary->id);
    return Status::Ok();
  }
  rows.EndArray();
  JsonWriter w;
  w.BeginObject()
      .String("id", summary->id)
      .String("mapping", name)
      .Bool("dry_run", summary->dry_run)
      .Int("rows", summary->rows)
      .Int(summary->dry_run ? "valid" : "created", summary->created)
      .Int("updated", summary->updated)
      .Int("duplicates", summary->duplicates)
      .Int("invalid", summary->invalid)
      .Int("failed", summary->failed)
      .Int("resumed", summary->resumed)
      .Int("likely_duplicates", summary->likely_duplicates)
      .Raw("results", rows.Take())
      .EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

}  // namespace

void AddImportRoutes(Router& router, Deployment& d) {
  router.Add("POST", "/v1/imports", [&d](Exchange& x) { return PostImport(d, x); });
}

}  // namespace garde

// POST /v1/audiences: a campaign audience as NDJSON (default) or CSV.
#include "garde/base/json_writer.h"
#include "garde/http/audience_where.h"
#include "garde/http/csv.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"

namespace garde {
namespace {

std::string CellText(const FieldValue& v) {
  if (v.type == FieldValue::Type::kString) return v.text;
  if (v.type == FieldValue::Type::kBool) return v.boolean ? "true" : "false";
  return IndexText(v);
}

Status BuildAudience(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "audiences.build"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  Status problems(Code::kUnprocessable, "the audience request is not valid");
  CheckMembers(*obj, {"activity", "purpose", "channel", "where", "fields", "format"}, "",
               &problems);
  AudienceRequest req;
  req.activity = ReadString(*obj, "activity", "", &problems).value_or("");
  req.purpose = ReadString(*obj, "purpose", "", &problems).value_or("");
  req.channel = ReadString(*obj, "channel", "", &problems).value_or("");
  const std::string format =
      ReadString(*obj, "format", "", &problems)
          .value_or(x.Header("accept").find("text/csv") != std::string::npos ? "csv" : "ndjson");
  if (format != "csv" && format != "ndjson") problems.AddError("format", "must be ndjson or csv");
  if (req.activity.empty()) problems.AddError("activity", "is required");
  if (req.purpose.empty()) problems.AddError("purpose", "is required");
  if (obj->has("where")) req.where = ParseWhere(obj->get("where"), "where", &problems);
  req.fields = ReadStringArray(*obj, "fields", "must be an array of field names", &problems)
                   .value_or(std::vector<std::string>{});
  if (!problems.errors().empty()) return problems;
  // Each member is written as it is decided (Audience::text), not kept with its fields.
  AudienceText text;
  if (format == "csv") {
    text.head = [](const std::vector<std::string>& columns) {
      std::string head = "id";
      for (const auto& f : columns) head += "," + CsvCell(f);
      return head + "\r\n";
    };
    text.member = [](const std::vector<std::string>& columns, const AudienceMember& m,
                     std::string* out) {
      *out += m.id;
      for (const auto& f : columns) {
        auto it = m.fields.find(f);
        *out += ',';
        if (it != m.fields.end()) *out += CsvCell(CellText(it->second));
      }
      *out += "\r\n";
    };
  } else {
    text.head = [](const std::vector<std::string>&) { return std::string(); };
    text.member = [](const std::vector<std::string>&, const AudienceMember& m, std::string* out) {
      JsonWriter w;
      w.BeginObject().String("id", m.id).BeginObject("fields");
      for (const auto& [name, v] : m.fields) {
        w.Key(name);
        if (v.type == FieldValue::Type::kNumber) {
          w.Number(v.number);
        } else if (v.type == FieldValue::Type::kBool) {
          w.Bool(v.boolean);
        } else {
          w.String(v.text);
        }
      }
      w.EndObject().EndObject();
      *out += w.str();
      *out += '\n';
    };
  }
  GARDE_ASSIGN_OR_RETURN(auto audience, d.audiences().BuildText(*x.caller, req, text));
  x.reply_type = format == "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson";
  x.status = 200;
  x.reply = std::move(audience.text);
  x.reply_headers.emplace_back("X-Audience-Count", std::to_string(audience.count));
  x.reply_headers.emplace_back("X-Audience-Sha256", audience.list_sha256);
  return Status::Ok();
}

}  // namespace

void AddAudienceRoutes(Router& router, Deployment& d) {
  router.Add("POST", "/v1/audiences", [&d](Exchange& x) { return BuildAudience(d, x); });
}

}  // namespace garde

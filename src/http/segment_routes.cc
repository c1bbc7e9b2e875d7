// /v1/segments: saved audience definitions (activity, purpose, channel, where) counted when
// asked, and the revenue-concentration report of a segment (the 20/80 question). Both read
// through the audience builder, so consent and the activity's fields bound them like any
// campaign; reports give aggregates only, never a group of fewer than five customers.
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/http/audience_where.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"

namespace garde {
namespace {

constexpr int64_t kSmallestGroup = 5;  // k-anonymity floor of every reported group

bool IsSegmentName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
           c == '-' || c == '_';
  });
}

struct Definition {
  AudienceRequest request;
  std::string description;
  Poco::JSON::Object::Ptr json;  // as stored
};

// Reads a definition from a request body or from storage; problems name their member.
Result<Definition> ReadDefinition(const std::string& text) {
  auto obj = ParseJsonObject(text);
  if (!obj.ok()) return obj.status();
  Status problems(Code::kUnprocessable, "the segment is not valid");
  CheckMembers(*obj.value(), {"activity", "purpose", "channel", "where", "description"}, "",
               &problems);
  Definition d;
  d.request.activity = ReadString(*obj.value(), "activity", "", &problems).value_or("");
  d.request.purpose = ReadString(*obj.value(), "purpose", "", &problems).value_or("");
  d.request.channel = ReadString(*obj.value(), "channel", "", &problems).value_or("");
  d.description = ReadString(*obj.value(), "description", "", &problems).value_or("");
  if (d.request.activity.empty()) problems.AddError("activity", "is required");
  if (d.request.purpose.empty()) problems.AddError("purpose", "is required");
  if (d.description.size() > 500) problems.AddError("description", "at most 500 characters");
  if (obj.value()->has("where")) d.request.where = ParseWhere(obj.value()->get("where"), "where", &problems);
  if (!problems.errors().empty()) return problems;
  d.json = obj.value();
  return d;
}

// The segment's members with `fields` (the activity's first field when none is asked: a
// count needs one), through the audience builder (consent, activity, audit).
Result<Audience> Members(Deployment& d, Exchange& x, Definition def, std::vector<std::string> fields) {
  if (fields.empty()) {
    const Activity* a = d.policies().Current()->FindActivity(def.request.activity);
    if (a != nullptr && !a->fields.empty()) fields.push_back(*a->fields.begin());
  }
  def.request.fields = std::move(fields);
  return d.audiences().Build(*x.caller, def.request);
}

void WriteSegment(JsonWriter& w, const SegmentRow& row, const Definition& def,
                  std::optional<int64_t> count) {
  std::ostringstream json;
  Poco::JSON::Stringifier::stringify(def.json, json);
  w.BeginObject().Key("name").String(row.name).Key("definition").Raw(json.str())
      .Key("created_at").String(FormatRfc3339(row.created_at))
      .Key("updated_at").String(FormatRfc3339(row.updated_at));
  if (count) w.Key("count").Int(*count);
  w.EndObject();
}

Status PutSegment(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "audiences.build"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  const std::string name = x.params["name"];
  if (!IsSegmentName(name)) {
    return Status(Code::kUnprocessable, "the segment's name is not valid")
        .AddError("name", "1 to 64 of a-z, 0-9, '-' and '_'");
  }
  auto def = ReadDefinition(x.body);
  if (!def.ok()) return def.status();
  // Counting it checks the definition against the register and the schema as a campaign would.
  auto members = Members(d, x, def.value(), {});
  if (!members.ok()) return members.status();
  const int64_t now = d.clock().Now();
  SegmentRow row{name, x.body, x.caller->key_id, now, now};
  bool created = false;
  GARDE_RETURN_IF_ERROR(d.store().Write([&](WriteTx& tx) -> Status {
    auto existing = tx.GetSegment(name);
    if (!existing.ok()) return existing.status();
    created = !existing.value().has_value();
    if (!created) row.created_at = existing.value()->created_at;
    std::ostringstream json;
    Poco::JSON::Stringifier::stringify(def->json, json);
    row.definition = json.str();
    GARDE_RETURN_IF_ERROR(tx.PutSegment(row));
    return d.journal().Record(&tx, *x.caller, {"segment.save", "", def->request.activity, "ok", {},
                                               static_cast<int64_t>(members->members.size())});
  }));
  JsonWriter w;
  WriteSegment(w, row, def.value(), static_cast<int64_t>(members->members.size()));
  x.Json(created ? 201 : 200, w.Take());
  return Status::Ok();
}

Result<std::pair<SegmentRow, Definition>> Load(Deployment& d, const std::string& name) {
  std::optional<SegmentRow> row;
  GARDE_RETURN_IF_ERROR(d.store().Read([&](ReadTx& tx) -> Status {
    auto r = tx.GetSegment(name);
    if (!r.ok()) return r.status();
    row = std::move(r.value());
    return Status::Ok();
  }));
  if (!row) return NotFound("no segment named " + name);
  auto def = ReadDefinition(row->definition);
  if (!def.ok()) return Damaged("the stored segment " + name + " no longer reads");
  return std::make_pair(std::move(*row), std::move(def.value()));
}

Status GetSegment(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "audiences.build"));
  auto seg = Load(d, x.params["name"]);
  if (!seg.ok()) return seg.status();
  auto members = Members(d, x, seg->second, {});
  if (!members.ok()) return members.status();
  JsonWriter w;
  WriteSegment(w, seg->first, seg->second, static_cast<int64_t>(members->members.size()));
  x.Json(200, w.Take());
  return Status::Ok();
}

Status ListSegments(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "audiences.build"));
  std::vector<SegmentRow> rows;
  GARDE_RETURN_IF_ERROR(d.store().Read([&](ReadTx& tx) -> Status {
    auto r = tx.ListSegments();
    if (!r.ok()) return r.status();
    rows = std::move(r.value());
    return Status::Ok();
  }));
  const bool counts = x.query.count("counts") != 0 && x.query["counts"] == "true";
  JsonWriter w;
  w.BeginObject().Key("items").BeginArray();
  for (const auto& row : rows) {
    auto def = ReadDefinition(row.definition);
    if (!def.ok()) continue;
    std::optional<int64_t> count;
    if (counts) {
      auto members = Members(d, x, def.value(), {});
      if (!members.ok()) return members.status();
      count = static_cast<int64_t>(members->members.size());
    }
    WriteSegment(w, row, def.value(), count);
  }
  w.EndArray().EndObject();
  x.Json(200, w.Take());
  return d.journal().Record(nullptr, *x.caller,
                            {"segment.list", "", "", "ok", {}, static_cast<int64_t>(rows.size())});
}

Status DeleteSegment(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "audiences.build"));
  bool deleted = false;
  GARDE_RETURN_IF_ERROR(d.store().Write([&](WriteTx& tx) -> Status {
    auto r = tx.DeleteSegment(x.params["name"]);
    if (!r.ok()) return r.status();
    deleted = r.value();
    if (!deleted) return Status::Ok();
    return d.journal().Record(&tx, *x.caller, {"segment.delete", "", "", "ok", {}, 0});
  }));
  if (!deleted) return NotFound("no segment named " + x.params["name"]);
  x.status = 204;
  x.reply.clear();
  return Status::Ok();
}

// Revenue concentration: the share of the segment's revenue brought by its top customers.
struct Concentration {
  int64_t customers = 0;
  double revenue = 0;
  struct Step {
    int percent;            // the top `percent` % of customers ...
    int64_t customers;      // ... that many
    std::optional<double> share;  // ... bring this share of revenue (absent: fewer than 5)
  };
  std::vector<Step> steps;
  std::optional<double> customers_for_80;  // % of customers that bring 80 % of revenue
};

Concentration Concentrate(std::vector<double> amounts) {
  Concentration c;
  std::sort(amounts.begin(), amounts.end(), std::greater<>());
  c.customers = static_cast<int64_t>(amounts.size());
  for (double a : amounts) c.revenue += a;
  std::vector<double> cumulative(amounts.size());
  double sum = 0;
  for (size_t i = 0; i < amounts.size(); ++i) cumulative[i] = sum += amounts[i];
  for (int percent = 5; percent <= 100; percent += 5) {
    const auto top = static_cast<int64_t>(
        std::ceil(static_cast<double>(c.customers) * percent / 100.0 - 1e-9));
    Concentration::Step step{percent, top, std::nullopt};
    if (top >= kSmallestGroup && c.revenue > 0) {
      step.share = cumulative[static_cast<size_t>(top - 1)] / c.revenue;
    }
    c.steps.push_back(step);
  }
  if (c.revenue > 0) {
    for (size_t i = 0; i < cumulative.size(); ++i) {
      if (cumulative[i] >= 0.8 * c.revenue - 1e-9) {
        if (static_cast<int64_t>(i + 1) >= kSmallestGroup) {
          c.customers_for_80 = 100.0 * static_cast<double>(i + 1) / static_cast<double>(c.customers);
        }
        break;
      }
    }
  }
  return c;
}

std::string Svg(const std::string& name, const Concentration& c) {
  // A Lorenz-style curve: x the top share of customers, y their share of revenue.
  constexpr int kW = 480, kH = 320, kPad = 48;
  auto px = [&](double pct) { return kPad + pct / 100.0 * (kW - 2 * kPad); };
  auto py = [&](double share) { return kH - kPad - share * (kH - 2 * kPad); };
  char buf[128];
  std::string points;
  for (const auto& s : c.steps) {
    if (!s.share) continue;
    std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(s.percent), py(*s.share));
    points += buf;
  }
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 480 320\" role=\"img\" "
                    "aria-labelledby=\"t d\"><title id=\"t\">Revenue concentration: " +
                    HtmlEscape(name) + "</title><desc id=\"d\">";
  if (c.customers_for_80) {
    std::snprintf(buf, sizeof buf, "%.1f %% of %lld customers bring 80 %% of the revenue.",
                  *c.customers_for_80, static_cast<long long>(c.customers));
    svg += buf;
  } else {
    svg += "Too few customers to say which bring 80 % of the revenue.";
  }
  svg += "</desc>";
  std::snprintf(buf, sizeof buf,
                "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#555\"/>",
                kPad, kPad, kW - 2 * kPad, kH - 2 * kPad);
  svg += buf;
  std::snprintf(buf, sizeof buf,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" stroke-dasharray=\"4\"/>",
                px(0), py(0.8), px(100), py(0.8));
  svg += buf;
  svg += "<polyline fill=\"none\" stroke=\"#1d4ed8\" stroke-width=\"2\" points=\"" + points + "\"/>";
  std::snprintf(buf, sizeof buf,
                "<text x=\"%d\" y=\"%d\" font-size=\"12\">top %% of customers</text>"
                "<text x=\"4\" y=\"%d\" font-size=\"12\">%% of revenue</text>",
                kW / 2 - 50, kH - 12, kPad - 8);
  svg += buf;
  return svg + "</svg>\n";
}

Status SegmentReport(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "audiences.build"));
  auto seg = Load(d, x.params["name"]);
  if (!seg.ok()) return seg.status();
  const std::string measure = x.query.count("measure") ? x.query["measure"] : "total_spend";
  const FieldSpec* spec = d.policies().Current()->schema().Find(measure);
  if (spec == nullptr || spec->type != FieldType::kNumber) {
    return Status(Code::kUnprocessable, "the measure must be a number field")
        .AddError("measure", "a number field of the schema, e.g. total_spend or spend_30d");
  }
  const std::string format = x.query.count("format") ? x.query["format"] : "json";
  if (format != "json" && format != "csv" && format != "svg") {
    return Status(Code::kUnprocessable, "the format is json, csv or svg").AddError("format", "json, csv or svg");
  }
  auto members = Members(d, x, seg->second, {measure});
  if (!members.ok()) return members.status();
  if (static_cast<int64_t>(members->members.size()) < kSmallestGroup) {
    return Status(Code::kUnprocessable,
                  "the segment has fewer than 5 customers: no aggregate is given for so few")
        .AddError("segment", "fewer than 5 customers");
  }
  std::vector<double> amounts;
  amounts.reserve(members->members.size());
  for (const auto& m : members->members) {
    auto it = m.fields.find(measure);
    amounts.push_back(it != m.fields.end() && it->second.type == FieldValue::Type::kNumber
                          ? std::max(0.0, it->second.number)
                          : 0.0);
  }
  const Concentration c = Concentrate(std::move(amounts));
  GARDE_RETURN_IF_ERROR(d.journal().Record(nullptr, *x.caller,
                                           {"segment.report", "", seg->second.request.activity,
                                            "ok", {measure}, c.customers}));
  if (format == "svg") {
    x.status = 200;
    x.reply_type = "image/svg+xml";
    x.reply = Svg(seg->first.name, c);
    return Status::Ok();
  }
  if (format == "csv") {
    std::string out = "top_percent,customers,revenue_share\r\n";
    char buf[96];
    for (const auto& s : c.steps) {
      if (s.share) {
        std::snprintf(buf, sizeof buf, "%d,%lld,%.4f\r\n", s.percent, static_cast<long long>(s.customers), *s.share);
      } else {
        std::snprintf(buf, sizeof buf, "%d,%lld,\r\n", s.percent, static_cast<long long>(s.customers));
      }
      out += buf;
    }
    x.status = 200;
    x.reply_type = "text/csv; charset=utf-8";
    x.reply = std::move(out);
    return Status::Ok();
  }
  JsonWriter w;
  w.BeginObject().Key("segment").String(seg->first.name).Key("measure").String(measure)
      .Key("customers").Int(c.customers).Key("revenue").Number(c.revenue)
      .Key("customers_for_80_percent");
  if (c.customers_for_80) w.Number(*c.customers_for_80); else w.Null();
  w.Key("steps").BeginArray();
  for (const auto& s : c.steps) {
    w.BeginObject().Key("top_percent").Int(s.percent).Key("customers").Int(s.customers)
        .Key("revenue_share");
    if (s.share) w.Number(*s.share); else w.Null();
    w.EndObject();
  }
  w.EndArray().Key("smallest_group").Int(kSmallestGroup).EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

}  // namespace

void AddSegmentRoutes(Router& router, Deployment& d) {
  router.Add("GET", "/v1/segments", [&d](Exchange& x) { return ListSegments(d, x); });
  router.Add("PUT", "/v1/segments/{name}", [&d](Exchange& x) { return PutSegment(d, x); });
  router.Add("GET", "/v1/segments/{name}", [&d](Exchange& x) { return GetSegment(d, x); });
  router.Add("DELETE", "/v1/segments/{name}", [&d](Exchange& x) { return DeleteSegment(d, x); });
  router.Add("GET", "/v1/segments/{name}/report", [&d](Exchange& x) { return SegmentReport(d, x); });
}

}  // namespace garde

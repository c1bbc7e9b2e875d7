// /v1/segments: saved audience definitions (activity, purpose, channel, where) counted when
// asked, and the reports of a segment: revenue concentration (the 20/80 question) and
// inactive customers by age band. Both read through the audience builder, so consent and the
// activity's fields bound them like any campaign. /v1/reports: consent rates per purpose and
// channel over time. Reports give aggregates only, never a group of fewer than five customers.
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/http/audience_where.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"
#include "garde/http/report_charts.h"

namespace garde {
namespace {

constexpr int64_t kSmallestGroup = kSmallestReportGroup;

bool IsSegmentName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

struct Definition {
  AudienceRequest request;
  std::string description;
  Poco::JSON::Object::Ptr json;  // as stored
};

// Reads a definition from a request body or from storage; problems name their member.
Result<Definition> ReadDefinition(const std::string& text) {
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(text));
  Status problems(Code::kUnprocessable, "the segment is not valid");
  CheckMembers(*obj, {"activity", "purpose", "channel", "where", "description"}, "", &problems);
  Definition d;
  d.request.activity = ReadString(*obj, "activity", "", &problems).value_or("");
  d.request.purpose = ReadString(*obj, "purpose", "", &problems).value_or("");
  d.request.channel = ReadString(*obj, "channel", "", &problems).value_or("");
  d.description = ReadString(*obj, "description", "", &problems).value_or("");
  if (d.request.activity.empty()) problems.AddError("activity", "is required");
  if (d.request.purpose.empty()) problems.AddError("purpose", "is required");
  if (d.description.size() > 500) problems.AddError("description", "at most 500 characters");
  if (obj->has("where")) d.request.where = ParseWhere(obj->get("where"), "where", &problems);
  if (!problems.errors().empty()) return problems;
  d.json = obj;
  return d;
}

// The segment's members with `fields` (the activity's first field when none is asked: a
// count needs one), through the audience builder (consent, activity, audit).
Result<Audience> Members(Deployment& d, Exchange& x, Definition def,
                         std::vector<std::string> fields) {
  if (fields.empty()) {
    const auto policies = d.policies().Current();  // the activity lives as long as its policies
    const Activity* a = policies->FindActivity(def.request.activity);
    if (a != nullptr && !a->fields.empty()) fields.push_back(*a->fields.begin());
  }
  def.request.fields = std::move(fields);
  return d.audiences().Build(*x.caller, def.request);
}

void WriteSegment(JsonWriter& w, const SegmentRow& row, const Definition& def,
                  std::optional<int64_t> count) {
  std::ostringstream json;
  Poco::JSON::Stringifier::stringify(def.json, json);
  w.BeginObject()
      .String("name", row.name)
      .Raw("definition", json.str())
      .String("created_at", FormatRfc3339(row.created_at))
      .String("updated_at", FormatRfc3339(row.updated_at));
  if (count) w.Int("count", *count);
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
  GARDE_ASSIGN_OR_RETURN(auto def, ReadDefinition(x.body));
  // Counting it checks the definition against the register and the schema as a campaign would.
  GARDE_ASSIGN_OR_RETURN(auto members, Members(d, x, def, {}));
  const int64_t now = d.clock().Now();
  SegmentRow row{name, x.body, x.caller->key_id, now, now};
  bool created = false;
  GARDE_RETURN_IF_ERROR(d.store().Write([&](WriteTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto existing, tx.GetSegment(name));
    created = !existing.has_value();
    if (!created) row.created_at = existing->created_at;
    std::ostringstream json;
    Poco::JSON::Stringifier::stringify(def.json, json);
    row.definition = json.str();
    GARDE_RETURN_IF_ERROR(tx.PutSegment(row));
    return d.journal().Record(&tx, *x.caller,
                              {"segment.save",
                               "",
                               def.request.activity,
                               "ok",
                               {},
                               static_cast<int64_t>(members.members.size())});
  }));
  JsonWriter w;
  WriteSegment(w, row, def, static_cast<int64_t>(members.members.size()));
  x.Json(created ? 201 : 200, w.Take());
  return Status::Ok();
}

Result<std::pair<SegmentRow, Definition>> Load(Deployment& d, const std::string& name) {
  std::optional<SegmentRow> row;
  GARDE_RETURN_IF_ERROR(d.store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto r, tx.GetSegment(name));
    row = std::move(r);
    return Status::Ok();
  }));
  if (!row) return NotFound("no segment named " + name);
  auto def = ReadDefinition(row->definition);
  if (!def.ok()) return Damaged("the stored segment " + name + " no longer reads");
  return std::make_pair(std::move(*row), std::move(def.value()));
}

Status GetSegment(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "audiences.build"));
  GARDE_ASSIGN_OR_RETURN(auto seg, Load(d, x.params["name"]));
  GARDE_ASSIGN_OR_RETURN(auto members, Members(d, x, seg.second, {}));
  JsonWriter w;
  WriteSegment(w, seg.first, seg.second, static_cast<int64_t>(members.members.size()));
  x.Json(200, w.Take());
  return Status::Ok();
}

Status ListSegments(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "audiences.build"));
  std::vector<SegmentRow> rows;
  GARDE_RETURN_IF_ERROR(d.store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto r, tx.ListSegments());
    rows = std::move(r);
    return Status::Ok();
  }));
  const bool counts = x.query.count("counts") != 0 && x.query["counts"] == "true";
  JsonWriter w;
  w.BeginObject().BeginArray("items");
  for (const auto& row : rows) {
    auto def = ReadDefinition(row.definition);
    if (!def.ok()) continue;
    std::optional<int64_t> count;
    if (counts) {
      GARDE_ASSIGN_OR_RETURN(auto members, Members(d, x, def.value(), {}));
      count = static_cast<int64_t>(members.members.size());
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
    GARDE_ASSIGN_OR_RETURN(auto r, tx.DeleteSegment(x.params["name"]));
    deleted = r;
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
    int percent;                  // the top `percent` % of customers ...
    int64_t customers;            // ... that many
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
    const auto top =
        static_cast<int64_t>(std::ceil(static_cast<double>(c.customers) * percent / 100.0 - 1e-9));
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
          c.customers_for_80 =
              100.0 * static_cast<double>(i + 1) / static_cast<double>(c.customers);
        }
        break;
      }
    }
  }
  return c;
}

std::string Svg(const std::string& name, const Concentration& c) {
  // A Lorenz-style curve: x the top share of customers, y their share of revenue.
  constexpr int kW = kPlotW, kH = kPlotH, kPad = kPlotPad;
  auto px = [&](double pct) { return kPad + pct / 100.0 * (kW - 2 * kPad); };
  auto py = [&](double share) { return kH - kPad - share * (kH - 2 * kPad); };
  char buf[128];
  std::string points;
  for (const auto& s : c.steps) {
    if (!s.share) continue;
    std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(s.percent), py(*s.share));
    points += buf;
  }
  std::string described = "Too few customers to say which bring 80 % of the revenue.";
  if (c.customers_for_80) {
    std::snprintf(buf, sizeof buf, "%.1f %% of %lld customers bring 80 %% of the revenue.",
                  *c.customers_for_80, static_cast<long long>(c.customers));
    described = buf;
  }
  std::string svg = SvgOpen(kW, kH, "Revenue concentration: " + name, described) + PlotFrame();
  std::snprintf(buf, sizeof buf,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
                "stroke-dasharray=\"4\"/>",
                px(0), py(0.8), px(100), py(0.8));
  svg += buf;
  svg +=
      "<polyline fill=\"none\" stroke=\"#1d4ed8\" stroke-width=\"2\" points=\"" + points + "\"/>";
  std::snprintf(buf, sizeof buf,
                "<text x=\"%d\" y=\"%d\" font-size=\"12\">top %% of customers</text>"
                "<text x=\"4\" y=\"%d\" font-size=\"12\">%% of revenue</text>",
                kW / 2 - 50, kH - 12, kPad - 8);
  svg += buf;
  return svg + "</svg>\n";
}

// Inactive customers: the segment's members by time since their last interaction (or their
// creation, for one who never came back) and, when the segment's activity declares the birth
// date, by age band. Cells of fewer than five are withheld.
struct InactivityTable {
  static constexpr const char* kInactivity[] = {"under 6 months", "6-12 months", "1-2 years",
                                                "2-3 years", "3 years or more"};
  static constexpr const char* kAges[] = {"under 25", "25-34",       "35-44",  "45-54",
                                          "55-64",    "65 and over", "unknown"};
  int64_t customers = 0;
  int64_t cells[std::size(kInactivity)][std::size(kAges)] = {};

  static size_t InactivityBand(int64_t since, int64_t now) {
    const int64_t months = (now - since) / (86400 * 365 / 12);
    return months < 6 ? 0 : months < 12 ? 1 : months < 24 ? 2 : months < 36 ? 3 : 4;
  }
  static size_t AgeBand(const FieldValue* birth, int64_t now) {
    if (birth == nullptr || birth->type != FieldValue::Type::kString) return 6;
    auto date = ParseIsoDate(birth->text);
    if (!date) return 6;
    const CivilDate today = CivilFromDays(now / 86400);
    int age = today.year - date->year;
    if (today.month < date->month || (today.month == date->month && today.day < date->day)) --age;
    return age < 0    ? 6
           : age < 25 ? 0
           : age < 35 ? 1
           : age < 45 ? 2
           : age < 55 ? 3
           : age < 65 ? 4
                      : 5;
  }
  int64_t Row(size_t i) const {
    int64_t n = 0;
    for (int64_t c : cells[i]) n += c;
    return n;
  }
};

std::optional<int64_t> Shown(int64_t n) {
  return n >= kSmallestGroup ? std::optional<int64_t>(n) : std::nullopt;
}

std::string BarsSvg(const std::string& title, const InactivityTable& t) {
  constexpr int kW = 480, kRow = 36, kPad = 130;
  const int height = 40 + kRow * static_cast<int>(std::size(t.kInactivity));
  int64_t most = 1;
  for (size_t i = 0; i < std::size(t.kInactivity); ++i) most = std::max(most, t.Row(i));
  char buf[256];
  std::string bars, described;
  for (size_t i = 0; i < std::size(t.kInactivity); ++i) {
    const auto n = Shown(t.Row(i));
    const int y = 20 + kRow * static_cast<int>(i);
    const double w = n ? static_cast<double>(*n) / static_cast<double>(most) * (kW - kPad - 60) : 0;
    std::snprintf(buf, sizeof buf,
                  "<text x=\"4\" y=\"%d\" font-size=\"12\">%s</text>"
                  "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"20\" fill=\"#1d4ed8\"/>"
                  "<text x=\"%.1f\" y=\"%d\" font-size=\"12\">%s</text>",
                  y + 15, t.kInactivity[i], kPad, y, w, kPad + w + 6, y + 15,
                  n ? std::to_string(*n).c_str() : "fewer than 5");
    bars += buf;
    described +=
        std::string(t.kInactivity[i]) + ": " + (n ? std::to_string(*n) : "fewer than 5") + ". ";
  }
  return SvgOpen(kW, height, title, described) + bars + "</svg>\n";
}

Status InactivityReport(Deployment& d, Exchange& x, const SegmentRow& row, const Definition& def,
                        const std::string& format) {
  const auto policies = d.policies().Current();
  const Activity* activity = policies->FindActivity(def.request.activity);
  const bool ages = activity != nullptr && activity->fields.count("birth_date") != 0;
  GARDE_ASSIGN_OR_RETURN(auto members, Members(d, x, def,
                                               ages ? std::vector<std::string>{"birth_date"}
                                                    : std::vector<std::string>{}));
  if (static_cast<int64_t>(members.members.size()) < kSmallestGroup) {
    return Status(Code::kUnprocessable,
                  "the segment has fewer than 5 customers: no aggregate is given for so few")
        .AddError("segment", "fewer than 5 customers");
  }
  InactivityTable t;
  const int64_t now = d.clock().Now();
  GARDE_RETURN_IF_ERROR(d.store().Read([&](ReadTx& tx) -> Status {
    for (const auto& m : members.members) {
      GARDE_ASSIGN_OR_RETURN(auto subject, tx.GetSubject(m.id));
      if (!subject) continue;  // erased since the audience was read
      const SubjectRow& s = *subject;
      const int64_t since = s.last_interaction_at != 0 ? s.last_interaction_at : s.created_at;
      auto birth = m.fields.find("birth_date");
      ++t.cells[InactivityTable::InactivityBand(since, now)]
               [InactivityTable::AgeBand(birth == m.fields.end() ? nullptr : &birth->second, now)];
      ++t.customers;
    }
    return Status::Ok();
  }));
  GARDE_RETURN_IF_ERROR(d.journal().Record(
      nullptr, *x.caller,
      {"segment.report", "", def.request.activity, "ok", {"inactivity"}, t.customers}));
  if (format == "svg") {
    x.Reply(200, "image/svg+xml",
            BarsSvg("Customers of " + row.name + " by time since their last interaction", t));
    return Status::Ok();
  }
  if (format == "csv") {
    std::string out = "inactive_for,age_band,customers\r\n";
    for (size_t i = 0; i < std::size(t.kInactivity); ++i) {
      for (size_t a = 0; a < std::size(t.kAges); ++a) {
        const auto n = Shown(t.cells[i][a]);
        out += std::string(t.kInactivity[i]) + "," + t.kAges[a] + "," +
               (n ? std::to_string(*n) : "") + "\r\n";
      }
    }
    x.Reply(200, "text/csv; charset=utf-8", std::move(out));
    return Status::Ok();
  }
  JsonWriter w;
  w.BeginObject()
      .String("segment", row.name)
      .String("report", "inactivity")
      .Int("customers", t.customers)
      .Bool("by_age", ages)
      .BeginArray("bands");
  auto count = [&w](int64_t n) {
    if (auto shown = Shown(n))
      w.Int(*shown);
    else
      w.Null();
  };
  for (size_t i = 0; i < std::size(t.kInactivity); ++i) {
    w.BeginObject().String("inactive_for", t.kInactivity[i]).Key("customers");
    count(t.Row(i));
    w.BeginObject("ages");
    for (size_t a = 0; a < std::size(t.kAges); ++a) {
      w.Key(t.kAges[a]);
      count(t.cells[i][a]);
    }
    w.EndObject().EndObject();
  }
  w.EndArray().Int("smallest_group", kSmallestGroup).EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

Status SegmentReport(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "audiences.build"));
  GARDE_ASSIGN_OR_RETURN(auto seg, Load(d, x.params["name"]));
  const std::string report = x.query.count("report") ? x.query["report"] : "concentration";
  if (report != "concentration" && report != "inactivity") {
    return Status(Code::kUnprocessable, "the report is concentration or inactivity")
        .AddError("report", "concentration or inactivity");
  }
  if (report == "inactivity") {
    const std::string format = x.query.count("format") ? x.query["format"] : "json";
    if (format != "json" && format != "csv" && format != "svg") {
      return Status(Code::kUnprocessable, "the format is json, csv or svg")
          .AddError("format", "json, csv or svg");
    }
    return InactivityReport(d, x, seg.first, seg.second, format);
  }
  const std::string measure = x.query.count("measure") ? x.query["measure"] : "total_spend";
  const auto policies = d.policies().Current();
  const FieldSpec* spec = policies->schema().Find(measure);
  if (spec == nullptr || spec->type != FieldType::kNumber) {
    return Status(Code::kUnprocessable, "the measure must be a number field")
        .AddError("measure", "a number field of the schema, e.g. total_spend or spend_30d");
  }
  const std::string format = x.query.count("format") ? x.query["format"] : "json";
  if (format != "json" && format != "csv" && format != "svg") {
    return Status(Code::kUnprocessable, "the format is json, csv or svg")
        .AddError("format", "json, csv or svg");
  }
  GARDE_ASSIGN_OR_RETURN(auto members, Members(d, x, seg.second, {measure}));
  if (static_cast<int64_t>(members.members.size()) < kSmallestGroup) {
    return Status(Code::kUnprocessable,
                  "the segment has fewer than 5 customers: no aggregate is given for so few")
        .AddError("segment", "fewer than 5 customers");
  }
  std::vector<double> amounts;
  amounts.reserve(members.members.size());
  for (const auto& m : members.members) {
    auto it = m.fields.find(measure);
    amounts.push_back(it != m.fields.end() && it->second.type == FieldValue::Type::kNumber
                          ? std::max(0.0, it->second.number)
                          : 0.0);
  }
  const Concentration c = Concentrate(std::move(amounts));
  GARDE_RETURN_IF_ERROR(d.journal().Record(
      nullptr, *x.caller,
      {"segment.report", "", seg.second.request.activity, "ok", {measure}, c.customers}));
  if (format == "svg") {
    x.Reply(200, "image/svg+xml", Svg(seg.first.name, c));
    return Status::Ok();
  }
  if (format == "csv") {
    std::string out = "top_percent,customers,revenue_share\r\n";
    char buf[96];
    for (const auto& s : c.steps) {
      if (s.share) {
        std::snprintf(buf, sizeof buf, "%d,%lld,%.4f\r\n", s.percent,
                      static_cast<long long>(s.customers), *s.share);
      } else {
        std::snprintf(buf, sizeof buf, "%d,%lld,\r\n", s.percent,
                      static_cast<long long>(s.customers));
      }
      out += buf;
    }
    x.Reply(200, "text/csv; charset=utf-8", std::move(out));
    return Status::Ok();
  }
  JsonWriter w;
  w.BeginObject()
      .String("segment", seg.first.name)
      .String("measure", measure)
      .Int("customers", c.customers)
      .Number("revenue", c.revenue)
      .Key("customers_for_80_percent");
  if (c.customers_for_80)
    w.Number(*c.customers_for_80);
  else
    w.Null();
  w.BeginArray("steps");
  for (const auto& s : c.steps) {
    w.BeginObject()
        .Int("top_percent", s.percent)
        .Int("customers", s.customers)
        .Key("revenue_share");
    if (s.share)
      w.Number(*s.share);
    else
      w.Null();
    w.EndObject();
  }
  w.EndArray().Int("smallest_group", kSmallestGroup).EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

// GET /v1/reports/consent-rates?purpose=P[&channel=C][&months=12][&format=json|csv|svg]
Status ConsentRates(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireCapability(d, x, "reports.read"));
  Status invalid(Code::kUnprocessable, "the report is not valid");
  const std::string purpose = x.query.count("purpose") ? x.query["purpose"] : "";
  const std::string channel = x.query.count("channel") ? x.query["channel"] : "";
  const std::string format = x.query.count("format") ? x.query["format"] : "json";
  int months = 12;
  if (purpose.empty()) invalid.AddError("purpose", "is required");
  if (auto m = x.query.find("months"); m != x.query.end()) {
    const std::string& v = m->second;
    if (v.empty() || v.size() > 2 || v.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(v) < 1 || std::stoi(v) > 36) {
      invalid.AddError("months", "must be from 1 to 36");
    } else {
      months = std::stoi(v);
    }
  }
  if (format != "json" && format != "csv" && format != "svg")
    invalid.AddError("format", "json, csv or svg");
  if (!invalid.errors().empty()) return invalid;
  auto rates =
      d.consents().RatesOver(*x.caller, purpose, channel, MonthEnds(d.clock().Now(), months));
  if (!rates.ok()) return rates.status();
  auto rate_of = [](const ConsentLedger::RateAt& r) -> std::optional<double> {
    if (!Shown(r.customers)) return std::nullopt;
    return static_cast<double>(r.allowed) / static_cast<double>(r.customers);
  };
  if (format == "svg") {
    x.status = 200;
    x.reply_type = "image/svg+xml";
    x.reply = ConsentRateSvg(
        "Consent to " + purpose + (channel.empty() ? "" : " by " + channel) + " over time",
        rates.value());
    return Status::Ok();
  }
  if (format == "csv") {
    std::string out = "at,customers,allowed,rate\r\n";
    char buf[128];
    for (const auto& r : rates.value()) {
      const auto rate = rate_of(r);
      if (rate) {
        std::snprintf(buf, sizeof buf, "%s,%lld,%lld,%.4f\r\n", FormatRfc3339(r.at).c_str(),
                      static_cast<long long>(r.customers), static_cast<long long>(r.allowed),
                      *rate);
      } else {
        std::snprintf(buf, sizeof buf, "%s,%lld,,\r\n", FormatRfc3339(r.at).c_str(),
                      static_cast<long long>(r.customers));
      }
      out += buf;
    }
    x.Reply(200, "text/csv; charset=utf-8", std::move(out));
    return Status::Ok();
  }
  JsonWriter w;
  w.BeginObject().String("purpose", purpose).StringOrNull("channel", channel).BeginArray("points");
  for (const auto& r : rates.value()) {
    const auto rate = rate_of(r);
    w.BeginObject().String("at", FormatRfc3339(r.at)).Int("customers", r.customers).Key("allowed");
    if (rate)
      w.Int(r.allowed);
    else
      w.Null();
    w.Key("rate");
    if (rate)
      w.Number(*rate);
    else
      w.Null();
    w.EndObject();
  }
  w.EndArray().Int("smallest_group", kSmallestGroup).EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

}  // namespace

void AddSegmentRoutes(Router& router, Deployment& d) {
  router.Add("GET", "/v1/segments", [&d](Exchange& x) { return ListSegments(d, x); });
  router.Add("PUT", "/v1/segments/{name}", [&d](Exchange& x) { return PutSegment(d, x); });
  router.Add("GET", "/v1/segments/{name}", [&d](Exchange& x) { return GetSegment(d, x); });
  router.Add("DELETE", "/v1/segments/{name}", [&d](Exchange& x) { return DeleteSegment(d, x); });
  router.Add("GET", "/v1/segments/{name}/report",
             [&d](Exchange& x) { return SegmentReport(d, x); });
  router.Add("GET", "/v1/reports/consent-rates", [&d](Exchange& x) { return ConsentRates(d, x); });
}

}  // namespace garde

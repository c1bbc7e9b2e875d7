#include "garde/http/register_export.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Parser.h>

#include <map>

#include "garde/base/json_writer.h"
#include "garde/http/csv.h"
#include "garde/http/html.h"

namespace garde {
namespace {

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string Json(const PolicySet& p) {
  JsonWriter w;
  w.BeginObject().Key("organisation").Raw(p.organisation_json())
      .Key("content_hash").String(p.content_hash()).Key("activities").BeginArray();
  for (const auto& a : p.activities()) w.Raw(a.json);
  w.EndArray().EndObject();
  return w.Take();
}

std::string Csv(const PolicySet& p) {
  // UTF-8 BOM so spreadsheets read accents right; one row per activity.
  std::string out = "\xEF\xBB\xBFid,reference,name,legal_basis,purposes,data,retention\r\n";
  for (const auto& a : p.activities()) {
    std::vector<std::string> fields(a.fields.begin(), a.fields.end());
    out += CsvCell(a.id) + "," + CsvCell(a.reference) + "," + CsvCell(a.name) + "," +
           CsvCell(LegalBasisName(a.legal_basis)) + "," + CsvCell(Join(a.purposes, "; ")) +
           "," + CsvCell(Join(fields, "; ")) + "," + CsvCell(a.retention) + "\r\n";
  }
  return out;
}

std::string Markdown(const PolicySet& p) {
  std::string out = "# Register of processing activities\n\n"
                    "| reference | activity | legal basis | purposes | data | retention |\n"
                    "| --- | --- | --- | --- | --- | --- |\n";
  auto cell = [](std::string s) {
    for (size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2) s.replace(i, 1, "\\|");
    return s;
  };
  for (const auto& a : p.activities()) {
    std::vector<std::string> fields(a.fields.begin(), a.fields.end());
    out += "| " + cell(a.reference) + " | " + cell(a.name) + " (`" + a.id + "`) | " +
           LegalBasisName(a.legal_basis) + " | " + cell(Join(a.purposes, ", ")) + " | " +
           cell(Join(fields, ", ")) + " | " + cell(a.retention) + " |\n";
  }
  return out;
}

Poco::Dynamic::Var ParsedJson(const std::string& json) {
  try {
    Poco::JSON::Parser parser;
    return parser.parse(json);
  } catch (const Poco::Exception&) {
    return Poco::Dynamic::Var();
  }
}

// The rows of a CNIL register sheet, in its order: register member, heading.
constexpr std::pair<const char*, const char*> kSheetRows[] = {
    {"reference", "Reference"},
    {"created", "Created"},
    {"updated", "Last updated"},
    {"purposes", "Purposes (main purpose and sub-purposes)"},
    {"legal_basis", "Legal basis"},
    {"art9_condition", "Special categories: Art. 9 condition"},
    {"data_subjects", "Categories of data subjects"},
    {"data", "Categories of personal data"},
    {"recipients", "Recipients"},
    {"transfers", "Transfers outside the EU and safeguards"},
    {"retention", "Retention"},
    {"security", "Security measures"},
    {"dpia", "Data protection impact assessment"},
    {"actors", "Actors (joint controllers, processors)"},
};

std::string Html(const PolicySet& p) {
  std::string body = "<p>Register of processing activities (GDPR Art. 30). Content hash <code>" +
                     HtmlEscape(p.content_hash()) + "</code>.</p>";
  body += "<section class=\"sheet\"><h2>Organisation</h2>" +
          JsonHtml(ParsedJson(p.organisation_json())) + "<h3>Activities</h3><table><thead><tr>"
          "<th scope=\"col\">Reference</th><th scope=\"col\">Activity</th>"
          "<th scope=\"col\">Legal basis</th></tr></thead><tbody>";
  for (const auto& a : p.activities()) {
    body += "<tr><td>" + HtmlEscape(a.reference) + "</td><td><a href=\"#" + HtmlEscape(a.id) +
            "\">" + HtmlEscape(a.name) + "</a></td><td>" + LegalBasisName(a.legal_basis) +
            "</td></tr>";
  }
  body += "</tbody></table></section>";
  for (const auto& a : p.activities()) {
    const auto parsed = ParsedJson(a.json);
    if (parsed.type() != typeid(Poco::JSON::Object::Ptr)) continue;
    const auto& obj = *parsed.extract<Poco::JSON::Object::Ptr>();
    body += "<section class=\"sheet\" id=\"" + HtmlEscape(a.id) + "\"><h2>" +
            HtmlEscape(a.name) + "</h2><table><tbody>";
    for (const auto& [key, heading] : kSheetRows) {
      if (!obj.has(key)) continue;
      std::string cell;
      if (std::string(key) == "purposes") {
        cell = "<ul>";
        for (const auto& id : a.purposes) {
          const Purpose* purpose = p.FindPurpose(id);
          cell += "<li>" + HtmlEscape(purpose != nullptr ? purpose->title : id) + " <code>" +
                  HtmlEscape(id) + "</code>" +
                  (purpose != nullptr ? " — " + std::string(LegalBasisName(purpose->legal_basis))
                                      : "") +
                  "</li>";
        }
        cell += "</ul>";
      } else if (std::string(key) == "data") {
        // Fields grouped by their schema category.
        std::map<std::string, std::vector<std::string>> by_category;
        for (const auto& f : a.fields) {
          const FieldSpec* spec = p.schema().Find(f);
          by_category[spec != nullptr ? spec->category : "other"].push_back(f);
        }
        cell = "<dl>";
        for (const auto& [category, fields] : by_category) {
          cell += "<dt>" + HtmlEscape(category) + "</dt><dd>" + HtmlEscape(Join(fields, ", ")) +
                  "</dd>";
        }
        cell += "</dl>";
        const auto data = obj.get("data");
        if (data.type() == typeid(Poco::JSON::Object::Ptr)) {
          Poco::JSON::Object::Ptr rest(new Poco::JSON::Object(*data.extract<Poco::JSON::Object::Ptr>()));
          rest->remove("fields");
          if (rest->size() > 0) cell += JsonHtml(Poco::Dynamic::Var(rest));
        }
      } else {
        cell = JsonHtml(obj.get(key));
      }
      if (cell.empty()) cell = "—";
      body += "<tr><th scope=\"row\">" + HtmlEscape(heading) + "</th><td>" + cell + "</td></tr>";
    }
    body += "</tbody></table></section>";
  }
  // Printable: one sheet per A4 page, no screen-only width limit.
  const char* css =
      "@page{size:A4;margin:15mm}@media print{body{max-width:none;margin:0;font-size:10pt}"
      ".sheet{break-before:page}.sheet:first-of-type{break-before:auto}a{color:inherit;"
      "text-decoration:none}}.sheet th[scope=row]{width:30%}";
  return HtmlDocument("Register of processing activities — " + p.controller_name(), body, "en",
                      css);
}

}  // namespace

Result<RegisterDocument> ExportRegister(const PolicySet& policies, const std::string& format) {
  if (format == "json") return RegisterDocument{"application/json", "json", Json(policies)};
  if (format == "csv") return RegisterDocument{"text/csv; charset=utf-8", "csv", Csv(policies)};
  if (format == "md") {
    return RegisterDocument{"text/markdown; charset=utf-8", "md", Markdown(policies)};
  }
  if (format == "html") return RegisterDocument{"text/html; charset=utf-8", "html", Html(policies)};
  return Status(Code::kUnprocessable, "unsupported register format")
      .AddError("format", std::string("must be ") + kRegisterFormats);
}

}  // namespace garde

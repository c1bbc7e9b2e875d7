#include "garde/http/request_pages.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Parser.h>

#include <functional>
#include <set>
#include <sstream>

#include "garde/base/clock.h"
#include "garde/domain/subject_requests.h"
#include "garde/http/csv.h"
#include "garde/http/html.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"

namespace garde {
namespace {

Result<SubjectTokenClaims> CustomerToken(Deployment& d, const std::string& token, bool dsr_only) {
  auto claims = d.VerifySubjectToken(token);
  if (!claims.ok() || (claims->use != "dsr" && (dsr_only || claims->use != "preferences"))) {
    return NotFound("this link is not valid or has expired");
  }
  return claims;
}

// --- the package, for people -------------------------------------------------------------

using Object = Poco::JSON::Object;
using Array = Poco::JSON::Array;

bool IsObject(const Poco::Dynamic::Var& v) { return v.type() == typeid(Object::Ptr); }
bool IsArray(const Poco::Dynamic::Var& v) { return v.type() == typeid(Array::Ptr); }

// The objects of a package member that is a list of them (none when it is not a list).
std::vector<Object::Ptr> ObjectsIn(const Poco::Dynamic::Var& v) {
  std::vector<Object::Ptr> out;
  if (!IsArray(v)) return out;
  const auto& arr = *v.extract<Array::Ptr>();
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto item = arr.get(static_cast<unsigned>(i));
    if (IsObject(item)) out.push_back(item.extract<Object::Ptr>());
  }
  return out;
}

// A value as one CSV cell: scalars as text, composites as compact JSON.
std::string ValueText(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return "";
  if (IsObject(v) || IsArray(v)) {
    std::ostringstream out;
    Poco::JSON::Stringifier::stringify(v, out);
    return out.str();
  }
  return v.toString();
}

Poco::Dynamic::Var Member(const Object& obj, const char* key) {
  return obj.has(key) ? obj.get(key) : Poco::Dynamic::Var();
}

std::string Cell(const Object& obj, const char* key) { return JsonHtml(Member(obj, key)); }

// A member as text; "" when absent or null.
std::string Str(const Object& obj, const char* key) {
  const auto v = Member(obj, key);
  return v.isEmpty() ? "" : v.toString();
}

// A table of `rows` (objects) with one column per (key, heading's text key).
std::string Table(const Poco::Dynamic::Var& rows, const PageWords& t,
                  std::initializer_list<std::pair<const char*, const char*>> columns,
                  const std::function<std::string(const std::string&, const Object&)>& cell = {}) {
  if (!IsArray(rows) || rows.extract<Array::Ptr>()->size() == 0) {
    return "<p>" + t.Html("package.none") + "</p>";
  }
  std::string out = "<table><thead><tr>";
  for (const auto& [_, heading] : columns) out += "<th scope=\"col\">" + t.Html(heading) + "</th>";
  out += "</tr></thead><tbody>";
  const auto& arr = *rows.extract<Array::Ptr>();
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto row = arr.get(static_cast<unsigned>(i));
    if (!IsObject(row)) continue;
    const auto& obj = *row.extract<Object::Ptr>();
    out += "<tr>";
    for (const auto& [key, _] : columns) {
      out += "<td>" + (cell ? cell(key, obj) : Cell(obj, key)) + "</td>";
    }
    out += "</tr>";
  }
  return out + "</tbody></table>";
}

// A schema field's name as the customer reads it (field.<name>), else the name itself.
std::string FieldLabel(const PageWords& t, const std::string& name) {
  const std::string label = t("field." + name);
  return label == "field." + name ? name : label;
}

std::string FieldsTable(const Poco::Dynamic::Var& fields, const PageWords& t) {
  if (!IsObject(fields) || fields.extract<Object::Ptr>()->size() == 0) {
    return "<p>" + t.Html("package.none") + "</p>";
  }
  std::string out = "<table><thead><tr><th scope=\"col\">" + t.Html("package.field") +
                    "</th><th scope=\"col\">" + t.Html("package.value") +
                    "</th></tr></thead><tbody>";
  for (const auto& [name, value] : *fields.extract<Object::Ptr>()) {
    out += "<tr><th scope=\"row\">" + HtmlEscape(FieldLabel(t, name)) + "</th><td>" +
           JsonHtml(value) + "</td></tr>";
  }
  return out + "</tbody></table>";
}

Result<Object::Ptr> ParsePackage(const std::string& json) {
  try {
    Poco::JSON::Parser parser;
    auto v = parser.parse(json);
    if (!IsObject(v)) return Damaged("the package is not a JSON object");
    return v.extract<Object::Ptr>();
  } catch (const Poco::Exception&) {
    return Damaged("the package is not well-formed JSON");
  }
}

// The subject's fields in a package: "fields" (portability) or "subject.fields" (access).
Poco::Dynamic::Var PackageFields(const Object& pkg) {
  if (pkg.has("fields")) return pkg.get("fields");
  const auto subject = Member(pkg, "subject");
  return IsObject(subject) ? Member(*subject.extract<Object::Ptr>(), "fields")
                           : Poco::Dynamic::Var();
}

// A legal basis in words (basis.<name>).
std::string BasisText(const PageWords& t, const std::string& basis) {
  const std::string text = t("basis." + basis);
  return text == "basis." + basis ? basis : text;
}

// Purposes as "title (legal basis)", titles from the catalogue in the page's language.
std::string PurposesHtml(const Poco::Dynamic::Var& purposes, const PageWords& t) {
  if (!IsArray(purposes)) return JsonHtml(purposes);
  std::string out = "<ul>";
  for (const auto& p : ObjectsIn(purposes)) {
    const auto& obj = *p;
    const Purpose* known = t.policies().FindPurpose(Str(obj, "id"));
    out += "<li>" +
           (known != nullptr ? HtmlEscape(known->titles.In(t.lang()))
                             : Cell(obj, obj.has("title") ? "title" : "id")) +
           (obj.has("legal_basis") ? " (" + HtmlEscape(BasisText(t, Str(obj, "legal_basis"))) + ")"
                                   : "") +
           "</li>";
  }
  return out + "</ul>";
}

// Art. 15(1)(e), (f) and (h): the rights, the complaint and automated decisions.
std::string PackageRightsHtml(const Object& pkg, const PageWords& t) {
  std::string body = "<h2>" + t.Html("package.rights") + "</h2><ul>";
  for (const auto& right : ObjectsIn(Member(pkg, "rights"))) {
    const auto& obj = *right;
    const std::string name = Str(obj, "right");
    body += "<li data-right=\"" + HtmlEscape(name) + "\">" + t.Html("right." + name) + " (" +
            Cell(obj, "article") + ")</li>";
  }
  body += "</ul>";
  const auto with = Member(pkg, "exercise_with");
  if (IsObject(with)) {
    const auto& obj = *with.extract<Object::Ptr>();
    body += "<p>" + t.Html("package.exercise") + " " + Cell(obj, "controller") + " : " +
            Cell(obj, "contact") + ".</p>";
  }
  const auto complaint = Member(pkg, "complaint");
  if (IsObject(complaint)) {
    const auto& obj = *complaint.extract<Object::Ptr>();
    body += "<h3>" + t.Html("package.complaint") + "</h3><p data-complaint>" +
            t.Html("package.complaint_text") + " " + Cell(obj, "authority") + ", " +
            Cell(obj, "address") + " — " + Cell(obj, "url") + "</p>";
  }
  body += "<h3>" + t.Html("package.automated") + "</h3>";
  const auto decisions = ObjectsIn(Member(pkg, "automated_decisions"));
  if (!decisions.empty()) {
    for (const auto& decision : decisions) {
      const auto& obj = *decision;
      const Activity* a = t.policies().FindActivity(Str(obj, "activity"));
      auto text = [&](const char* key, const LocalText* local) {
        return a != nullptr && local != nullptr && !local->empty() ? HtmlEscape(local->In(t.lang()))
                                                                   : Cell(obj, key);
      };
      body += "<section data-automated><h4>" + text("name", a != nullptr ? &a->names : nullptr) +
              "</h4><dl><dt>" + t.Html("package.logic") + "</dt><dd>" +
              text("logic", a != nullptr ? &a->automated_decision.logics : nullptr) + "</dd><dt>" +
              t.Html("package.significance") + "</dt><dd>" +
              text("significance", a != nullptr ? &a->automated_decision.significances : nullptr) +
              "</dd></dl></section>";
    }
  } else {
    body += "<p>" + t.Html("package.no_automated") + "</p>";
  }
  return body;
}

std::string PackageHtml(const Object& pkg, const PageWords& t, std::string* title) {
  const bool portable = Str(pkg, "format") == "garde-portability/1";
  *title = t(portable ? "package.portable_title" : "package.title");
  std::string body =
      "<p>" + t.Html("package.generated") + " " + HtmlEscape(Str(pkg, "generated_at")) + "</p>";
  body += "<h2>" + t.Html("package.data") + "</h2>" + FieldsTable(PackageFields(pkg), t);
  if (portable) return body;
  auto words = [&](const std::string& key, const Object& row) -> std::string {
    const std::string v = Str(row, key.c_str());
    if (key == "purpose") {
      const Purpose* p = t.policies().FindPurpose(v);
      return HtmlEscape(p != nullptr ? p->titles.In(t.lang()) : v);
    }
    if (key == "legal_basis") return HtmlEscape(BasisText(t, v));
    if (key == "type") return t.Html("type." + v);
    if (key == "status") return t.Html("status." + v);
    return Cell(row, key.c_str());
  };
  body += "<h2>" + t.Html("package.consents") + "</h2>" +
          Table(Member(pkg, "consents"), t,
                {{"purpose", "package.purpose"},
                 {"channel", "package.channel"},
                 {"event", "package.event"},
                 {"legal_basis", "package.basis"},
                 {"method", "package.method"},
                 {"at", "package.at"},
                 {"expires_at", "package.expires"}},
                words);
  body += "<h2>" + t.Html("package.processing") + "</h2>";
  const auto processing = ObjectsIn(Member(pkg, "processing"));
  if (!processing.empty()) {
    for (const auto& activity : processing) {
      const auto& obj = *activity;
      const Activity* a = t.policies().FindActivity(Str(obj, "activity"));
      std::string fields;
      const auto used = Member(obj, "fields");
      if (IsArray(used)) {
        const auto& arr = *used.extract<Array::Ptr>();
        for (size_t i = 0; i < arr.size(); ++i) {
          fields += (fields.empty() ? "" : ", ") +
                    HtmlEscape(FieldLabel(t, arr.get(static_cast<unsigned>(i)).toString()));
        }
      }
      body += "<section><h3>" +
              (a != nullptr ? HtmlEscape(a->names.In(t.lang())) : Cell(obj, "name")) +
              "</h3><dl><dt>" + t.Html("package.purposes") + "</dt><dd>" +
              PurposesHtml(Member(obj, "purposes"), t) + "</dd><dt>" + t.Html("package.basis") +
              "</dt><dd>" + HtmlEscape(BasisText(t, Str(obj, "legal_basis"))) + "</dd><dt>" +
              t.Html("package.fields") + "</dt><dd>" + fields + "</dd><dt>" +
              t.Html("package.recipients") + "</dt><dd>" + Cell(obj, "recipients") + "</dd><dt>" +
              t.Html("package.transfers") + "</dt><dd>" + Cell(obj, "transfers") + "</dd><dt>" +
              t.Html("package.retention") + "</dt><dd>" + Cell(obj, "retention") + "</dd><dt>" +
              t.Html("package.source") + "</dt><dd>" + Cell(obj, "source") + "</dd></dl></section>";
    }
  } else {
    body += "<p>" + t.Html("package.none") + "</p>";
  }
  body += PackageRightsHtml(pkg, t);
  body += "<h2>" + t.Html("package.requests") + "</h2>" +
          Table(Member(pkg, "requests"), t,
                {{"type", "rights.type"},
                 {"status", "rights.status"},
                 {"received_at", "rights.received_on"},
                 {"due_at", "rights.answer_by"}},
                words);
  body += "<h2>" + t.Html("package.accesses") + "</h2>" +
          Table(Member(pkg, "accesses"), t,
                {{"time", "package.at"},
                 {"role", "package.who"},
                 {"action", "package.action"},
                 {"activity", "package.activity"},
                 {"outcome", "package.outcome"}});
  return body;
}

}  // namespace

PageWords CustomerWords(Deployment& d, const Exchange& x, const std::string& subject_id) {
  auto policies = d.policies().Current();
  auto chosen = x.query.find("lang");
  std::string own;
  if (!subject_id.empty() && policies->schema().Find("language") != nullptr) {
    auto fields = d.vault().OwnFields(subject_id, {"language"});
    if (fields.ok() && fields->count("language")) own = fields->at("language").text;
  }
  std::string lang =
      ChooseLanguage(policies->languages(), chosen == x.query.end() ? "" : chosen->second, own,
                     x.Header("accept-language"), d.config().default_language);
  return PageWords(std::move(policies), std::move(lang));
}

Status CustomerErrors(Deployment& d, Exchange& x, Status s) {
  if (s.code() != Code::kNotFound || x.Header("accept").find("text/html") == std::string::npos) {
    return s;
  }
  const PageWords t = CustomerWords(d, x, "");
  CustomerPage(x, 404, t, t("error.link_gone_title"), "<p>" + t.Html("error.link_gone") + "</p>");
  return Status::Ok();
}

Status SendPackage(Exchange& x, const std::string& json, const std::string& format,
                   const PageWords& t) {
  GARDE_ASSIGN_OR_RETURN(auto pkg, ParsePackage(json));
  const std::string request = Member(*pkg, "request").toString();
  const std::string kind =
      Member(*pkg, "format").toString() == "garde-portability/1" ? "portability" : "access";
  if (format == "html") {
    std::string title;
    const std::string body = PackageHtml(*pkg, t, &title);
    CustomerPage(x, 200, t, title, body);
    return Status::Ok();
  }
  const std::string file = "garde-" + kind + "-" + request;
  if (format == "csv") {
    // One row per field; a UTF-8 BOM so that spreadsheets read accents right.
    std::string csv =
        "\xEF\xBB\xBF"
        "field,value\r\n";
    const auto fields = PackageFields(*pkg);
    if (IsObject(fields)) {
      for (const auto& [name, value] : *fields.extract<Object::Ptr>()) {
        csv += CsvCell(name) + "," + CsvCell(ValueText(value)) + "\r\n";
      }
    }
    x.status = 200;
    x.reply_type = "text/csv; charset=utf-8";
    x.reply = std::move(csv);
    x.reply_headers.emplace_back("Content-Disposition",
                                 "attachment; filename=\"" + file + ".csv\"");
  } else {
    x.Json(200, json);
    x.reply_headers.emplace_back("Content-Disposition",
                                 "attachment; filename=\"" + file + ".json\"");
  }
  x.reply_headers.emplace_back("Cache-Control", "no-store");
  return Status::Ok();
}

namespace {

// The fields a customer may correct from their page, with labels.
// Labels are the field.<name> texts.
struct CorrectableField {
  const char *name, *autocomplete;
};
constexpr CorrectableField kCorrectable[] = {
    {"first_name", "given-name"}, {"last_name", "family-name"},
    {"email", "email"},           {"phone", "tel"},
    {"street", "street-address"}, {"postal_code", "postal-code"},
    {"city", "address-level2"}};

// Art. 18(1)(a)-(d): the grounds for a restriction (texts ground.<id>), kept (sealed) as the
// request's note in the source language, for the officer.
constexpr const char* kRestrictionGrounds[] = {"accuracy", "unlawful", "legal_claims",
                                               "objection_pending"};

std::string RequestForm(const std::string& type, const std::string& label,
                        const std::string& extra) {
  return "<form method=\"post\" data-right=\"" + type +
         "\"><input type=\"hidden\" name=\"form\" value=\"request\"><input type=\"hidden\" "
         "name=\"type\" value=\"" +
         type + "\">" + extra + "<p><button type=\"submit\" class=\"secondary\">" +
         HtmlEscape(label) + "</button></p></form>";
}

// The six rights (Art. 15-18, 20, 21) as forms posting to the page itself.
std::string RightsForms(const PageWords& t) {
  const PolicySet* policies = &t.policies();
  std::string out;
  out += RequestForm("access", t("rights.access"), "");
  out += RequestForm("portability", t("rights.portability"), "");
  std::string fields = "<fieldset><legend>" + t.Html("rights.rectification") + "</legend><p>" +
                       t.Html("rights.rectification_intro") + "</p>";
  for (const auto& f : kCorrectable) {
    if (policies->schema().Find(f.name) == nullptr) continue;
    const std::string id = std::string("fix-") + f.name;
    fields += "<p><label for=\"" + id + "\">" + t.Html(std::string("field.") + f.name) +
              "</label> <input id=\"" + id + "\" name=\"field." + f.name + "\" autocomplete=\"" +
              f.autocomplete + "\"></p>";
  }
  out += RequestForm("rectification", t("rights.rectification"), fields + "</fieldset>");
  out += RequestForm("erasure", t("rights.erasure"),
                     "<p><input type=\"checkbox\" id=\"erase-confirm\" name=\"confirm\" "
                     "value=\"yes\" required><label for=\"erase-confirm\">" +
                         t.Html("rights.erasure_confirm") +
                         "</label></p><p><input type=\"checkbox\" id=\"erase-suppress\" "
                         "name=\"suppress\" value=\"yes\"><label for=\"erase-suppress\">" +
                         t.Html("rights.never_contact") + "</label></p>");
  std::string grounds = "<fieldset><legend>" + t.Html("rights.restriction_intro") + "</legend>";
  for (const char* g : kRestrictionGrounds) {
    const std::string id = std::string("restrict-") + g;
    grounds += "<p><input type=\"radio\" required name=\"ground\" id=\"" + id + "\" value=\"" + g +
               "\"><label for=\"" + id + "\">" + t.Html(std::string("ground.") + g) +
               "</label></p>";
  }
  out += RequestForm("restriction", t("rights.restriction"), grounds + "</fieldset>");
  std::string objectable = "<fieldset><legend>" + t.Html("rights.objection_intro") + "</legend>";
  for (const auto& p : policies->purposes()) {
    if (!p.marketing && p.legal_basis != LegalBasis::kLegitimateInterests) continue;
    const std::string id = "object-" + p.id;
    objectable += "<p><input type=\"checkbox\" name=\"purpose\" id=\"" + HtmlEscape(id) +
                  "\" value=\"" + HtmlEscape(p.id) + "\"><label for=\"" + HtmlEscape(id) + "\">" +
                  HtmlEscape(p.titles.In(t.lang())) + "</label></p>";
  }
  out += RequestForm("objection", t("rights.objection"), objectable + "</fieldset>");
  return out;
}

// What the customer is told about one request: its answer date, an extension and its reason
// (Art. 12(3)), a refusal with its reason and the remedies (Art. 12(4)), and, through the link
// sent for it, the package.
std::string RequestDetail(const RequestView& v, const std::string& page_path, const PageWords& t) {
  const RequestRow& r = v.row;
  std::string out = "<section aria-labelledby=\"detail\" data-request-detail=\"" + r.id +
                    "\"><h2 id=\"detail\">" + t.Html("rights.your_request") + " — " +
                    t.Html("type." + r.type) + "</h2><p>" + t.Html("rights.status") + ": " +
                    t.Html("status." + r.status) + ". " + t.Html("rights.received_on") + " " +
                    HtmlEscape(CustomerDay(t, r.received_at)) + ".</p>";
  if (r.extended && r.status != "completed" && r.status != "rejected") {
    out += "<p data-extended>" + t.Html("rights.extended") + " " +
           HtmlEscape(CustomerDay(t, r.due_at)) + ". " + HtmlEscape(v.extension_reason) + "</p>";
  }
  if (r.status == "rejected") {
    const auto& authority = t.policies().supervisory_authority();
    out += "<p data-rejected>" + t.Html("rights.rejected") + " " + HtmlEscape(v.rejection_reason) +
           "</p><p data-remedies>" + t.Html("rights.remedies") + " " + HtmlEscape(authority.name) +
           ", " + HtmlEscape(authority.address) + " — " + HtmlEscape(authority.url) + "</p>";
  }
  if (r.status == "completed" && (r.type == "access" || r.type == "portability") &&
      r.package_bytes > 0) {
    const std::string base =
        page_path + "/requests/" + r.id + "/package?lang=" + t.lang() + "&amp;format=";
    out += "<p><a href=\"" + base + "html\">" + t.Html("rights.read") + "</a>, <a href=\"" + base +
           "json\">JSON</a>" +
           (r.type == "portability" ? ", <a href=\"" + base + "csv\">CSV</a>" : "") + "</p>";
  }
  return out + "</section>";
}

}  // namespace

Result<std::string> RightsSection(Deployment& d, const SubjectTokenClaims& claims,
                                  const PageWords& t) {
  RequestQuery q;
  q.subject = claims.subject;
  q.limit = 50;
  GARDE_ASSIGN_OR_RETURN(auto mine, d.requests().List(SubjectCaller(claims.subject, ""), q));
  std::string out = "<section aria-labelledby=\"rights\"><h2 id=\"rights\">" +
                    t.Html("rights.title") + "</h2><p>" + t.Html("rights.intro") + "</p>";
  out += "<h3>" + t.Html("rights.requests") + "</h3>";
  if (mine.empty()) {
    out += "<p>" + t.Html("rights.none") + "</p>";
  } else {
    out += "<table><thead><tr><th scope=\"col\">" + t.Html("rights.type") +
           "</th><th scope=\"col\">" + t.Html("rights.status") + "</th><th scope=\"col\">" +
           t.Html("rights.received_on") + "</th><th scope=\"col\">" + t.Html("rights.answer_by") +
           "</th></tr></thead><tbody>";
    for (const auto& r : mine) {
      std::string status = t.Html("status." + r.status);
      // A package opens only from the link sent for its request (never from this page's
      // link, which may have been forwarded).
      if (r.status == "completed" && (r.type == "access" || r.type == "portability") &&
          r.package_bytes > 0) {
        status += " (" + t.Html("rights.package_sent") + ")";
      }
      out += "<tr><td>" + t.Html("type." + r.type) + "</td><td data-request=\"" + r.id +
             "\" data-status=\"" + r.status + "\">" + status + "</td><td>" +
             HtmlEscape(CustomerDay(t, r.received_at)) + "</td><td>" +
             HtmlEscape(CustomerDay(t, r.due_at)) + "</td></tr>";
    }
    out += "</tbody></table>";
  }
  out += RightsForms(t);
  return out + "</section>";
}

Status OpenRequestFromForm(Deployment& d, Exchange& x, const SubjectTokenClaims& claims,
                           const std::multimap<std::string, std::string>& form, const PageWords& t,
                           std::string* message) {
  auto type = form.find("type");
  static const std::set<std::string> kTypes = {"access",  "portability", "rectification",
                                               "erasure", "restriction", "objection"};
  if (type == form.end() || kTypes.count(type->second) == 0) {
    return Status(Code::kUnprocessable, "the form does not name a request this page offers")
        .AddError("type",
                  "must be access, portability, rectification, erasure, restriction "
                  "or objection");
  }
  NewRequest in;
  in.type = type->second;
  in.subject = claims.subject;
  if (in.type == "erasure") {
    auto confirm = form.find("confirm");
    if (confirm == form.end() || confirm->second != "yes") {
      return Status(Code::kUnprocessable, "an erasure must be confirmed")
          .AddError("confirm", "tick the box to confirm the erasure");
    }
    auto suppress = form.find("suppress");
    in.suppress = suppress != form.end() && suppress->second == "yes";
  } else if (in.type == "rectification") {
    SubjectChanges changes;
    for (const auto& f : kCorrectable) {
      auto it = form.find(std::string("field.") + f.name);
      if (it != form.end() && it->second.find_first_not_of(" \t") != std::string::npos) {
        changes.fields[f.name] = FieldValue::String(it->second);
      }
    }
    if (changes.fields.empty()) {
      return Status(Code::kUnprocessable, "a correction names what to correct")
          .AddError("fields", "fill in at least one field");
    }
    in.changes = std::move(changes);
  } else if (in.type == "restriction") {
    auto ground = form.find("ground");
    const char* found = nullptr;
    for (const char* g : kRestrictionGrounds) {
      if (ground != form.end() && ground->second == g) found = g;
    }
    if (found == nullptr) {
      return Status(Code::kUnprocessable, "a restriction gives its ground")
          .AddError("ground", "must be accuracy, unlawful, legal_claims or objection_pending");
    }
    in.note = t.policies().Text(kSourceLanguage, std::string("ground.") + found);
  } else if (in.type == "objection") {
    auto [b, e] = form.equal_range("purpose");
    for (auto it = b; it != e; ++it) in.purposes.push_back(it->second);
  }
  auto opened =
      d.requests().Open(FromClient(d, x, SubjectCaller(claims.subject, x.request_id)), in);
  if (!opened.ok()) return opened.status();
  *message =
      t.Html("rights.link_sent") + " " + HtmlEscape(CustomerDay(t, opened->row.due_at)) + ".";
  return Status::Ok();
}

namespace {

// The package of a request, opened only with the dsr link sent for that request.
Status CustomerPackage(Deployment& d, Exchange& x) {
  GARDE_ASSIGN_OR_RETURN(auto claims, CustomerToken(d, x.params["token"], true));
  auto it = x.query.find("format");
  const std::string format = it == x.query.end() || it->second.empty() ? "html" : it->second;
  if (format != "json" && format != "html" && format != "csv") {
    return Status(Code::kUnprocessable, "unknown package format")
        .AddError("format", "must be json, html or csv");
  }
  GARDE_ASSIGN_OR_RETURN(
      auto package,
      d.requests().Package(
          FromClient(d, x, SubjectCaller(claims.subject, x.request_id, claims.use, claims.scope)),
          x.params["id"]));
  return SendPackage(x, package, format, CustomerWords(d, x, claims.subject));
}

// A DSR link: scope "*" is the customer's rights page; scope = a request id confirms it, then
// tells its answer.
Status DsrPage(Deployment& d, Exchange& x, const SubjectTokenClaims& claims, const PageWords& t,
               const std::string& message) {
  const std::string path = "/r/" + x.params["token"];
  std::string body;
  if (!message.empty()) body += "<p class=\"status\" role=\"status\">" + message + "</p>";
  if (claims.scope != "*") {
    GARDE_ASSIGN_OR_RETURN(
        auto r, d.requests().Get(FromClient(d, x, SubjectCaller(claims.subject, x.request_id)),
                                 claims.scope));
    if (r.row.status == "received") {
      body += "<p>" + t.Html("rights.confirm_intro") + "</p><p>" + t.Html("type." + r.row.type) +
              " — " + t.Html("rights.received_on") + " " +
              HtmlEscape(CustomerDay(t, r.row.received_at)) +
              "</p><form method=\"post\"><input type=\"hidden\" "
              "name=\"form\" value=\"confirm\"><button type=\"submit\">" +
              t.Html("rights.confirm") + "</button></form>";
      CustomerPage(x, 200, t, t("rights.confirm_title"), body);
      return Status::Ok();
    }
    body += RequestDetail(r, path, t);
  }
  auto rights = RightsSection(d, claims, t);
  if (!rights.ok()) return rights.status();
  CustomerPage(x, 200, t, t("rights.title"), body + rights.value());
  return Status::Ok();
}

Status DsrGet(Deployment& d, Exchange& x) {
  GARDE_ASSIGN_OR_RETURN(auto claims, CustomerToken(d, x.params["token"], true));
  return DsrPage(d, x, claims, CustomerWords(d, x, claims.subject), "");
}

Status DsrPost(Deployment& d, Exchange& x) {
  GARDE_ASSIGN_OR_RETURN(auto claims, CustomerToken(d, x.params["token"], true));
  if (x.content_type != "application/x-www-form-urlencoded") {
    return Status(Code::kUnsupportedMediaType,
                  "send the form as application/x-www-form-urlencoded");
  }
  const PageWords t = CustomerWords(d, x, claims.subject);
  const auto form = FormPairs(x.body);
  auto kind = form.find("form");
  std::string message;
  if (kind != form.end() && kind->second == "confirm" && claims.scope != "*") {
    auto done = d.requests().VerifyByLink(claims, Origin(d, x));
    if (!done.ok()) return done.status();
    message = t.Html("rights.confirmed");
  } else if (kind != form.end() && kind->second == "request") {
    GARDE_RETURN_IF_ERROR(OpenRequestFromForm(d, x, claims, form, t, &message));
  } else {
    return Status(Code::kUnprocessable, "the form is not a request form")
        .AddError("form", "must be confirm or request");
  }
  return DsrPage(d, x, claims, t, message);
}

}  // namespace

void AddRequestPages(Router& router, Deployment& d) {
  router.Add("GET", "/r/{token}", [&d](Exchange& x) { return CustomerErrors(d, x, DsrGet(d, x)); });
  router.Add("POST", "/r/{token}",
             [&d](Exchange& x) { return CustomerErrors(d, x, DsrPost(d, x)); });
  router.Add("GET", "/r/{token}/requests/{id}/package",
             [&d](Exchange& x) { return CustomerErrors(d, x, CustomerPackage(d, x)); });
}

}  // namespace garde

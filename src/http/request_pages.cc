#include "garde/http/request_pages.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Parser.h>

#include <set>
#include <sstream>

#include "garde/base/clock.h"
#include "garde/domain/subject_requests.h"
#include "garde/http/csv.h"
#include "garde/http/html.h"
#include "garde/http/json_input.h"

namespace garde {
namespace {

struct RightsText {
  const char* title;
  const char* intro;
  const char* access;
  const char* portability;
  const char* erasure;
  const char* erasure_confirm;
  const char* never_contact;
  const char* requests;
  const char* none;
  const char* received;  // followed by the due date
  const char* confirm_title;
  const char* confirm_intro;
  const char* confirm;
  const char* confirmed;
  const char* read;
  const char* type, *status, *received_on, *answer_by;
  // The other rights, and what the customer is told about a request.
  const char* rectification, *rectification_intro, *restriction, *restriction_intro,
      *objection, *objection_intro;
  const char* link_sent;     // after a request is opened: followed by the answer date
  const char* package_sent;  // in the list: the package opens from the link sent
  const char* extended;      // followed by the new date and the reason
  const char* rejected;      // followed by the reason
  const char* remedies;      // complaint and judicial remedy, followed by the authority
  const char* your_request;
};

const RightsText& RightsFor(const std::string& lang) {
  static const RightsText kEn{
      "Your data and your rights",
      "You can ask for a copy of your data or a portable copy, have it corrected or erased, "
      "restrict its use, or object to it. We answer within the time the law gives us.",
      "Get a copy of my data",
      "Get my data in a portable format",
      "Erase my data",
      "I understand that my data will be erased, except what the law obliges us to keep.",
      "Never contact me again (we keep a one-way fingerprint of your e-mail address and phone "
      "number, not the address or number, to recognise them).",
      "Your requests",
      "You have made no request.",
      "Your request is recorded. We will answer by",
      "Confirm your request",
      "We received a request about your personal data. Please confirm that you made it.",
      "Yes, I made this request",
      "Thank you: your request is confirmed.",
      "read",
      "Request", "Status", "Received", "Answer by",
      "Correct my data",
      "Type only what is wrong; leave the rest empty.",
      "Restrict the use of my data",
      "While a question is settled we will only keep your data, not use it. Why?",
      "Object to the use of my data",
      "Tick what you object to; with nothing ticked, you object to all direct marketing, "
      "which then stops for good.",
      "To protect your data, we sent a link to confirm this request to the contact we have "
      "on file; it works for one hour. We will answer by",
      "we sent you a link to open it",
      "We need more time, as the law allows. We will answer by",
      "We cannot grant this request. Our reason:",
      "You may lodge a complaint with a supervisory authority and seek a judicial remedy. "
      "Authority:",
      "Your request"};
  static const RightsText kFr{
      "Vos données et vos droits",
      "Vous pouvez demander une copie de vos données ou une copie portable, les faire corriger "
      "ou effacer, en limiter l'utilisation ou vous y opposer. Nous répondons dans le délai "
      "prévu par la loi.",
      "Obtenir une copie de mes données",
      "Récupérer mes données dans un format portable",
      "Effacer mes données",
      "Je comprends que mes données seront effacées, sauf celles que la loi nous oblige à "
      "conserver.",
      "Ne plus jamais me contacter (nous gardons une empreinte irréversible de votre adresse "
      "e-mail et de votre numéro, pas l'adresse ni le numéro, pour les reconnaître).",
      "Vos demandes",
      "Vous n'avez fait aucune demande.",
      "Votre demande est enregistrée. Nous vous répondrons au plus tard le",
      "Confirmez votre demande",
      "Nous avons reçu une demande concernant vos données personnelles. Merci de confirmer "
      "que vous en êtes l'auteur.",
      "Oui, j'ai fait cette demande",
      "Merci : votre demande est confirmée.",
      "lire",
      "Demande", "État", "Reçue le", "Réponse au plus tard le",
      "Corriger mes données",
      "Indiquez seulement ce qui est inexact ; laissez le reste vide.",
      "Limiter l'utilisation de mes données",
      "Le temps qu'une question soit réglée, nous ne ferons que conserver vos données, sans "
      "les utiliser. Pourquoi ?",
      "M'opposer à l'utilisation de mes données",
      "Cochez ce à quoi vous vous opposez ; sans rien cocher, vous vous opposez à toute "
      "prospection, qui cesse alors définitivement.",
      "Pour protéger vos données, nous avons envoyé un lien de confirmation de cette demande "
      "au contact que nous connaissons ; il est valable une heure. Nous vous répondrons au "
      "plus tard le",
      "nous vous avons envoyé un lien pour l'ouvrir",
      "Il nous faut plus de temps, comme la loi le permet. Nous vous répondrons au plus tard le",
      "Nous ne pouvons pas donner suite à cette demande. Notre motif :",
      "Vous pouvez introduire une réclamation auprès d'une autorité de contrôle et former un "
      "recours juridictionnel. Autorité :",
      "Votre demande"};
  return lang == "fr" ? kFr : kEn;
}

const char* TypeName(const std::string& type, const std::string& lang) {
  static const std::map<std::string, std::pair<const char*, const char*>> kNames{
      {"access", {"Access to my data", "Accès à mes données"}},
      {"portability", {"Portable copy", "Copie portable"}},
      {"rectification", {"Rectification", "Rectification"}},
      {"erasure", {"Erasure", "Effacement"}},
      {"restriction", {"Restriction", "Limitation"}},
      {"objection", {"Objection", "Opposition"}}};
  auto it = kNames.find(type);
  if (it == kNames.end()) return "";
  return lang == "fr" ? it->second.second : it->second.first;
}

const char* StatusName(const std::string& status, const std::string& lang) {
  static const std::map<std::string, std::pair<const char*, const char*>> kNames{
      {"received", {"awaiting confirmation", "en attente de confirmation"}},
      {"verified", {"confirmed", "confirmée"}},
      {"in_progress", {"in progress", "en cours"}},
      {"completed", {"answered", "traitée"}},
      {"rejected", {"declined", "refusée"}}};
  auto it = kNames.find(status);
  if (it == kNames.end()) return "";
  return lang == "fr" ? it->second.second : it->second.first;
}

// The calendar date of `t` (the customer cares about the day, not the second).
std::string Day(int64_t t) { return FormatRfc3339(t).substr(0, 10); }

Result<SubjectTokenClaims> CustomerToken(Deployment& d, const std::string& token,
                                         bool dsr_only) {
  auto claims = d.tokens().Verify(token, d.clock().Now());
  if (!claims.ok() || (claims->use != "dsr" && (dsr_only || claims->use != "preferences"))) {
    return NotFound("this link is not valid or has expired");
  }
  return claims;
}

// --- the package, for people -------------------------------------------------------------

struct PackageText {
  const char* title;
  const char* portable_title;
  const char* controller;
  const char* data;
  const char* consents;
  const char* processing;
  const char* requests;
  const char* accesses;
  const char* none;
  const char* field, *value;
  const char* purpose, *channel, *event, *basis, *method, *at, *expires;
  const char* activity, *purposes, *fields, *recipients, *transfers, *retention, *source;
  const char* who, *action, *outcome;
  const char* generated;
};

const PackageText& PackageFor(const std::string& lang) {
  static const PackageText kEn{
      "Your personal data", "Your data in a portable format", "Who is responsible",
      "The data we hold about you", "Your consents and choices",
      "How and why we use your data", "Your requests", "Who accessed your data",
      "Nothing.", "Data", "Value",
      "Purpose", "Channel", "Event", "Legal basis", "How", "When", "Expires",
      "Activity", "Purposes", "Data used", "Recipients", "Transfers outside the EU",
      "Kept for", "Where the data came from",
      "Who", "What", "Result", "Generated on"};
  static const PackageText kFr{
      "Vos données personnelles", "Vos données dans un format portable", "Responsable du traitement",
      "Les données que nous détenons sur vous", "Vos consentements et vos choix",
      "Comment et pourquoi nous utilisons vos données", "Vos demandes",
      "Qui a accédé à vos données",
      "Rien.", "Donnée", "Valeur",
      "Finalité", "Canal", "Événement", "Base légale", "Comment", "Quand", "Expire le",
      "Traitement", "Finalités", "Données utilisées", "Destinataires",
      "Transferts hors de l'UE", "Durée de conservation", "Origine des données",
      "Qui", "Quoi", "Résultat", "Produit le"};
  return lang == "fr" ? kFr : kEn;
}

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

// A table of `rows` (objects) with one column per (key, heading).
std::string Table(const Poco::Dynamic::Var& rows, const PackageText& t,
                  std::initializer_list<std::pair<const char*, const char*>> columns) {
  if (!IsArray(rows) || rows.extract<Array::Ptr>()->size() == 0) {
    return "<p>" + HtmlEscape(t.none) + "</p>";
  }
  std::string out = "<table><thead><tr>";
  for (const auto& [_, heading] : columns) out += "<th scope=\"col\">" + HtmlEscape(heading) + "</th>";
  out += "</tr></thead><tbody>";
  const auto& arr = *rows.extract<Array::Ptr>();
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto row = arr.get(static_cast<unsigned>(i));
    if (!IsObject(row)) continue;
    const auto& obj = *row.extract<Object::Ptr>();
    out += "<tr>";
    for (const auto& [key, _] : columns) out += "<td>" + Cell(obj, key) + "</td>";
    out += "</tr>";
  }
  return out + "</tbody></table>";
}

std::string FieldsTable(const Poco::Dynamic::Var& fields, const PackageText& t) {
  if (!IsObject(fields) || fields.extract<Object::Ptr>()->size() == 0) {
    return "<p>" + HtmlEscape(t.none) + "</p>";
  }
  std::string out = "<table><thead><tr><th scope=\"col\">" + HtmlEscape(t.field) +
                    "</th><th scope=\"col\">" + HtmlEscape(t.value) + "</th></tr></thead><tbody>";
  for (const auto& [name, value] : *fields.extract<Object::Ptr>()) {
    out += "<tr><th scope=\"row\">" + HtmlEscape(name) + "</th><td>" + JsonHtml(value) +
           "</td></tr>";
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

// Purposes as "title (legal basis)".
std::string PurposesHtml(const Poco::Dynamic::Var& purposes) {
  if (!IsArray(purposes)) return JsonHtml(purposes);
  std::string out = "<ul>";
  for (const auto& p : ObjectsIn(purposes)) {
    const auto& obj = *p;
    out += "<li>" + Cell(obj, obj.has("title") ? "title" : "id") +
           (obj.has("legal_basis") ? " (" + Cell(obj, "legal_basis") + ")" : "") + "</li>";
  }
  return out + "</ul>";
}

// What each right of the package's `rights` lets the subject do, in their language.
const char* RightText(const std::string& right, const std::string& lang) {
  static const std::map<std::string, std::pair<const char*, const char*>> kTexts{
      {"rectification",
       {"Have inaccurate data about you corrected and incomplete data completed.",
        "Faire corriger les données inexactes vous concernant et compléter les données "
        "incomplètes."}},
      {"erasure",
       {"Have your data erased, except what the law obliges us to keep.",
        "Faire effacer vos données, sauf celles que la loi nous oblige à conserver."}},
      {"restriction",
       {"Have the use of your data restricted while a question about it is settled: we then "
        "only keep it.",
        "Faire limiter l'utilisation de vos données le temps qu'une question soit réglée : "
        "nous ne faisons alors que les conserver."}},
      {"objection",
       {"Object to the use of your data based on our legitimate interests, and at any time to "
        "direct marketing, which then stops for good.",
        "Vous opposer à l'utilisation de vos données fondée sur notre intérêt légitime, et à "
        "tout moment à la prospection, qui cesse alors définitivement."}},
      {"portability",
       {"Receive the data you gave us in a portable format, or have it sent to another "
        "organisation.",
        "Recevoir les données que vous nous avez fournies dans un format portable, ou les "
        "faire transmettre à un autre organisme."}},
      {"withdraw_consent",
       {"Withdraw a consent at any time, as easily as you gave it.",
        "Retirer un consentement à tout moment, aussi simplement que vous l'avez donné."}}};
  auto it = kTexts.find(right);
  if (it == kTexts.end()) return "";
  return lang == "fr" ? it->second.second : it->second.first;
}

// Art. 15(1)(e), (f) and (h): the rights, the complaint and automated decisions.
std::string PackageRightsHtml(const Object& pkg, const std::string& lang) {
  const bool fr = lang == "fr";
  std::string body = "<h2>" + HtmlEscape(fr ? "Vos droits" : "Your rights") + "</h2><ul>";
  for (const auto& right : ObjectsIn(Member(pkg, "rights"))) {
    const auto& obj = *right;
    body += "<li data-right=\"" + HtmlEscape(Member(obj, "right").toString()) + "\">" +
            HtmlEscape(RightText(Member(obj, "right").toString(), lang)) + " (" +
            Cell(obj, "article") + ")</li>";
  }
  body += "</ul>";
  const auto with = Member(pkg, "exercise_with");
  if (IsObject(with)) {
    const auto& obj = *with.extract<Object::Ptr>();
    body += "<p>" + HtmlEscape(fr ? "Pour les exercer, écrivez à" : "To exercise them, write to") +
            " " + Cell(obj, "controller") + " : " + Cell(obj, "contact") + ".</p>";
  }
  const auto complaint = Member(pkg, "complaint");
  if (IsObject(complaint)) {
    const auto& obj = *complaint.extract<Object::Ptr>();
    body += "<h3>" + HtmlEscape(fr ? "Réclamation" : "Complaint") + "</h3><p data-complaint>" +
            HtmlEscape(fr ? "Vous pouvez introduire une réclamation auprès d'une autorité de "
                            "contrôle (article 77 du RGPD) :"
                          : "You may lodge a complaint with a supervisory authority (GDPR "
                            "Article 77):") +
            " " + Cell(obj, "authority") + ", " + Cell(obj, "address") + " — " +
            Cell(obj, "url") + "</p>";
  }
  body += "<h3>" + HtmlEscape(fr ? "Décisions automatisées et profilage"
                                 : "Automated decisions and profiling") + "</h3>";
  const auto decisions = ObjectsIn(Member(pkg, "automated_decisions"));
  if (!decisions.empty()) {
    for (const auto& decision : decisions) {
      const auto& obj = *decision;
      body += "<section data-automated><h4>" + Cell(obj, "name") + "</h4><dl><dt>" +
              HtmlEscape(fr ? "Logique" : "Logic") + "</dt><dd>" + Cell(obj, "logic") +
              "</dd><dt>" + HtmlEscape(fr ? "Portée et conséquences" : "Significance and consequences") +
              "</dt><dd>" + Cell(obj, "significance") + "</dd></dl></section>";
    }
  } else {
    body += "<p>" + HtmlEscape(fr ? "Aucune décision fondée exclusivement sur un traitement "
                                    "automatisé ne vous concerne."
                                  : "No decision based solely on automated processing "
                                    "concerns you.") +
            "</p>";
  }
  return body;
}

std::string PackageHtml(const Object& pkg, const std::string& lang, std::string* title) {
  const PackageText& t = PackageFor(lang);
  const bool portable = Member(pkg, "format").toString() == "garde-portability/1";
  *title = portable ? t.portable_title : t.title;
  std::string body = "<p>" + HtmlEscape(t.generated) + " " +
                     HtmlEscape(Member(pkg, "generated_at").toString()) + "</p>";
  if (pkg.has("organisation")) {
    body += "<h2>" + HtmlEscape(t.controller) + "</h2>" + Cell(pkg, "organisation");
  }
  body += "<h2>" + HtmlEscape(t.data) + "</h2>" + FieldsTable(PackageFields(pkg), t);
  if (portable) return body;
  body += "<h2>" + HtmlEscape(t.consents) + "</h2>" +
          Table(Member(pkg, "consents"), t,
                {{"purpose", t.purpose}, {"channel", t.channel}, {"event", t.event},
                 {"legal_basis", t.basis}, {"method", t.method}, {"at", t.at},
                 {"expires_at", t.expires}});
  body += "<h2>" + HtmlEscape(t.processing) + "</h2>";
  const auto processing = ObjectsIn(Member(pkg, "processing"));
  if (!processing.empty()) {
    for (const auto& activity : processing) {
      const auto& obj = *activity;
      body += "<section><h3>" + Cell(obj, "name") + "</h3><dl>" +
              "<dt>" + HtmlEscape(t.purposes) + "</dt><dd>" + PurposesHtml(Member(obj, "purposes")) +
              "</dd>" +
              "<dt>" + HtmlEscape(t.basis) + "</dt><dd>" + Cell(obj, "legal_basis") + "</dd>" +
              "<dt>" + HtmlEscape(t.fields) + "</dt><dd>" + Cell(obj, "fields") + "</dd>" +
              "<dt>" + HtmlEscape(t.recipients) + "</dt><dd>" + Cell(obj, "recipients") + "</dd>" +
              "<dt>" + HtmlEscape(t.transfers) + "</dt><dd>" + Cell(obj, "transfers") + "</dd>" +
              "<dt>" + HtmlEscape(t.retention) + "</dt><dd>" + Cell(obj, "retention") + "</dd>" +
              "<dt>" + HtmlEscape(t.source) + "</dt><dd>" + Cell(obj, "source") + "</dd></dl>" +
              "</section>";
    }
  } else {
    body += "<p>" + HtmlEscape(t.none) + "</p>";
  }
  body += PackageRightsHtml(pkg, lang);
  const RightsText& r = RightsFor(lang);
  body += "<h2>" + HtmlEscape(t.requests) + "</h2>" +
          Table(Member(pkg, "requests"), t,
                {{"type", r.type}, {"status", r.status}, {"received_at", r.received_on},
                 {"due_at", r.answer_by}});
  body += "<h2>" + HtmlEscape(t.accesses) + "</h2>" +
          Table(Member(pkg, "accesses"), t,
                {{"time", t.at}, {"role", t.who}, {"action", t.action},
                 {"activity", t.activity}, {"outcome", t.outcome}});
  return body;
}

}  // namespace

Status SendPackage(Exchange& x, const std::string& json, const std::string& format,
                   const std::string& lang) {
  auto pkg = ParsePackage(json);
  if (!pkg.ok()) return pkg.status();
  const std::string request = Member(*pkg.value(), "request").toString();
  const std::string kind =
      Member(*pkg.value(), "format").toString() == "garde-portability/1" ? "portability" : "access";
  if (format == "html") {
    std::string title;
    const std::string body = PackageHtml(*pkg.value(), lang, &title);
    HtmlPage(x, 200, title, body, lang);
    return Status::Ok();
  }
  const std::string file = "garde-" + kind + "-" + request;
  if (format == "csv") {
    // One row per field; a UTF-8 BOM so that spreadsheets read accents right.
    std::string csv = "\xEF\xBB\xBF" "field,value\r\n";
    const auto fields = PackageFields(*pkg.value());
    if (IsObject(fields)) {
      for (const auto& [name, value] : *fields.extract<Object::Ptr>()) {
        csv += CsvCell(name) + "," + CsvCell(ValueText(value)) + "\r\n";
      }
    }
    x.status = 200;
    x.reply_type = "text/csv; charset=utf-8";
    x.reply = std::move(csv);
    x.reply_headers.emplace_back("Content-Disposition", "attachment; filename=\"" + file + ".csv\"");
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
struct CorrectableField {
  const char* name, *en, *fr, *autocomplete;
};
constexpr CorrectableField kCorrectable[] = {
    {"first_name", "First name", "Prénom", "given-name"},
    {"last_name", "Last name", "Nom", "family-name"},
    {"email", "E-mail address", "Adresse e-mail", "email"},
    {"phone", "Phone number", "Numéro de téléphone", "tel"},
    {"street", "Street", "Rue", "street-address"},
    {"postal_code", "Postal code", "Code postal", "postal-code"},
    {"city", "City", "Ville", "address-level2"}};

// Art. 18(1)(a)-(d): the grounds for a restriction, kept (sealed) as the request's note.
struct RestrictionGround {
  const char* id, *en, *fr;
};
constexpr RestrictionGround kRestrictionGrounds[] = {
    {"accuracy", "I contest the accuracy of my data (Art. 18(1)(a))",
     "Je conteste l'exactitude de mes données (art. 18.1.a)"},
    {"unlawful", "The use is unlawful but I do not want my data erased (Art. 18(1)(b))",
     "L'utilisation est illicite mais je ne veux pas l'effacement (art. 18.1.b)"},
    {"legal_claims", "I need my data for a legal claim (Art. 18(1)(c))",
     "J'ai besoin de mes données pour une action en justice (art. 18.1.c)"},
    {"objection_pending", "I objected and await your answer (Art. 18(1)(d))",
     "Je me suis opposé(e) et j'attends votre réponse (art. 18.1.d)"}};

std::string RequestForm(const std::string& type, const char* label, const std::string& extra) {
  return "<form method=\"post\" data-right=\"" + type +
         "\"><input type=\"hidden\" name=\"form\" value=\"request\"><input type=\"hidden\" "
         "name=\"type\" value=\"" + type + "\">" + extra +
         "<p><button type=\"submit\" class=\"secondary\">" + HtmlEscape(label) +
         "</button></p></form>";
}

// The six rights (Art. 15-18, 20, 21) as forms posting to the page itself.
std::string RightsForms(Deployment& d, const std::string& lang) {
  const RightsText& t = RightsFor(lang);
  const bool fr = lang == "fr";
  auto policies = d.policies().Current();
  std::string out;
  out += RequestForm("access", t.access, "");
  out += RequestForm("portability", t.portability, "");
  std::string fields = "<fieldset><legend>" + HtmlEscape(t.rectification) + "</legend><p>" +
                       HtmlEscape(t.rectification_intro) + "</p>";
  for (const auto& f : kCorrectable) {
    if (policies->schema().Find(f.name) == nullptr) continue;
    const std::string id = std::string("fix-") + f.name;
    fields += "<p><label for=\"" + id + "\">" + HtmlEscape(fr ? f.fr : f.en) +
              "</label> <input id=\"" + id + "\" name=\"field." + f.name +
              "\" autocomplete=\"" + f.autocomplete + "\"></p>";
  }
  out += RequestForm("rectification", t.rectification, fields + "</fieldset>");
  out += RequestForm("erasure", t.erasure,
                     "<p><input type=\"checkbox\" id=\"erase-confirm\" name=\"confirm\" "
                     "value=\"yes\" required><label for=\"erase-confirm\">" +
                         HtmlEscape(t.erasure_confirm) +
                         "</label></p><p><input type=\"checkbox\" id=\"erase-suppress\" "
                         "name=\"suppress\" value=\"yes\"><label for=\"erase-suppress\">" +
                         HtmlEscape(t.never_contact) + "</label></p>");
  std::string grounds = "<fieldset><legend>" + HtmlEscape(t.restriction_intro) + "</legend>";
  for (const auto& g : kRestrictionGrounds) {
    const std::string id = std::string("restrict-") + g.id;
    grounds += "<p><input type=\"radio\" required name=\"ground\" id=\"" + id + "\" value=\"" +
               g.id + "\"><label for=\"" + id + "\">" + HtmlEscape(fr ? g.fr : g.en) +
               "</label></p>";
  }
  out += RequestForm("restriction", t.restriction, grounds + "</fieldset>");
  std::string objectable = "<fieldset><legend>" + HtmlEscape(t.objection_intro) + "</legend>";
  for (const auto& p : policies->purposes()) {
    if (!p.marketing && p.legal_basis != LegalBasis::kLegitimateInterests) continue;
    const std::string id = "object-" + p.id;
    objectable += "<p><input type=\"checkbox\" name=\"purpose\" id=\"" + HtmlEscape(id) +
                  "\" value=\"" + HtmlEscape(p.id) + "\"><label for=\"" + HtmlEscape(id) +
                  "\">" + HtmlEscape(p.title) + "</label></p>";
  }
  out += RequestForm("objection", t.objection, objectable + "</fieldset>");
  return out;
}

// What the customer is told about one request: its answer date, an extension and its reason
// (Art. 12(3)), a refusal with its reason and the remedies (Art. 12(4)), and, through the link
// sent for it, the package.
std::string RequestDetail(Deployment& d, const RequestView& v, const std::string& page_path,
                          const std::string& lang) {
  const RightsText& t = RightsFor(lang);
  const RequestRow& r = v.row;
  std::string out = "<section aria-labelledby=\"detail\" data-request-detail=\"" + r.id +
                    "\"><h2 id=\"detail\">" + HtmlEscape(t.your_request) + " — " +
                    HtmlEscape(TypeName(r.type, lang)) + "</h2><p>" + HtmlEscape(t.status) +
                    ": " + HtmlEscape(StatusName(r.status, lang)) + ". " +
                    HtmlEscape(t.received_on) + " " + Day(r.received_at) + ".</p>";
  if (r.extended && r.status != "completed" && r.status != "rejected") {
    out += "<p data-extended>" + HtmlEscape(t.extended) + " " + Day(r.due_at) + ". " +
           HtmlEscape(v.extension_reason) + "</p>";
  }
  if (r.status == "rejected") {
    const auto& authority = d.policies().Current()->supervisory_authority();
    out += "<p data-rejected>" + HtmlEscape(t.rejected) + " " + HtmlEscape(v.rejection_reason) +
           "</p><p data-remedies>" + HtmlEscape(t.remedies) + " " + HtmlEscape(authority.name) +
           ", " + HtmlEscape(authority.address) + " — " + HtmlEscape(authority.url) + "</p>";
  }
  if (r.status == "completed" && (r.type == "access" || r.type == "portability") &&
      r.package_bytes > 0) {
    const std::string base =
        page_path + "/requests/" + r.id + "/package?lang=" + lang + "&amp;format=";
    out += "<p><a href=\"" + base + "html\">" + HtmlEscape(t.read) + "</a>, <a href=\"" + base +
           "json\">JSON</a>" +
           (r.type == "portability" ? ", <a href=\"" + base + "csv\">CSV</a>" : "") + "</p>";
  }
  return out + "</section>";
}

}  // namespace

Result<std::string> RightsSection(Deployment& d, const SubjectTokenClaims& claims,
                                  const std::string& lang) {
  const RightsText& t = RightsFor(lang);
  RequestQuery q;
  q.subject = claims.subject;
  q.limit = 50;
  auto mine = d.requests().List(SubjectCaller(claims.subject, ""), q);
  if (!mine.ok()) return mine.status();
  std::string out = "<section aria-labelledby=\"rights\"><h2 id=\"rights\">" +
                    HtmlEscape(t.title) + "</h2><p>" + HtmlEscape(t.intro) + "</p>";
  out += "<h3>" + HtmlEscape(t.requests) + "</h3>";
  if (mine->empty()) {
    out += "<p>" + HtmlEscape(t.none) + "</p>";
  } else {
    out += "<table><thead><tr><th scope=\"col\">" + HtmlEscape(t.type) + "</th><th scope=\"col\">" +
           HtmlEscape(t.status) + "</th><th scope=\"col\">" + HtmlEscape(t.received_on) +
           "</th><th scope=\"col\">" + HtmlEscape(t.answer_by) + "</th></tr></thead><tbody>";
    for (const auto& r : mine.value()) {
      std::string status = HtmlEscape(StatusName(r.status, lang));
      // A package opens only from the link sent for its request (never from this page's
      // link, which may have been forwarded).
      if (r.status == "completed" && (r.type == "access" || r.type == "portability") &&
          r.package_bytes > 0) {
        status += " (" + HtmlEscape(t.package_sent) + ")";
      }
      out += "<tr><td>" + HtmlEscape(TypeName(r.type, lang)) + "</td><td data-request=\"" +
             r.id + "\" data-status=\"" + r.status + "\">" + status + "</td><td>" +
             Day(r.received_at) + "</td><td>" + Day(r.due_at) + "</td></tr>";
    }
    out += "</tbody></table>";
  }
  out += RightsForms(d, lang);
  return out + "</section>";
}

Status OpenRequestFromForm(Deployment& d, Exchange& x, const SubjectTokenClaims& claims,
                           const std::multimap<std::string, std::string>& form,
                           std::string* message) {
  auto type = form.find("type");
  static const std::set<std::string> kTypes = {"access",      "portability", "rectification",
                                               "erasure",     "restriction", "objection"};
  if (type == form.end() || kTypes.count(type->second) == 0) {
    return Status(Code::kUnprocessable, "the form does not name a request this page offers")
        .AddError("type", "must be access, portability, rectification, erasure, restriction "
                          "or objection");
  }
  NewRequest in;
  in.type = type->second;
  in.subject = claims.subject;
  const std::string lang = PageLanguage(x);
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
    const RestrictionGround* found = nullptr;
    for (const auto& g : kRestrictionGrounds) {
      if (ground != form.end() && ground->second == g.id) found = &g;
    }
    if (found == nullptr) {
      return Status(Code::kUnprocessable, "a restriction gives its ground")
          .AddError("ground", "must be accuracy, unlawful, legal_claims or objection_pending");
    }
    in.note = found->en;  // sealed with the request
  } else if (in.type == "objection") {
    auto [b, e] = form.equal_range("purpose");
    for (auto it = b; it != e; ++it) in.purposes.push_back(it->second);
  }
  auto opened = d.requests().Open(SubjectCaller(claims.subject, x.request_id), in);
  if (!opened.ok()) return opened.status();
  *message = HtmlEscape(RightsFor(lang).link_sent) + " " + Day(opened->row.due_at) + ".";
  return Status::Ok();
}

namespace {

// The package of a request, opened only with the dsr link sent for that request.
Status CustomerPackage(Deployment& d, Exchange& x) {
  auto claims = CustomerToken(d, x.params["token"], true);
  if (!claims.ok()) return claims.status();
  auto it = x.query.find("format");
  const std::string format = it == x.query.end() || it->second.empty() ? "html" : it->second;
  if (format != "json" && format != "html" && format != "csv") {
    return Status(Code::kUnprocessable, "unknown package format")
        .AddError("format", "must be json, html or csv");
  }
  auto package = d.requests().Package(
      SubjectCaller(claims->subject, x.request_id, claims->use, claims->scope), x.params["id"]);
  if (!package.ok()) return package.status();
  return SendPackage(x, package.value(), format, PageLanguage(x));
}

// A DSR link: scope "*" is the customer's rights page; scope = a request id confirms it, then
// tells its answer.
Status DsrPage(Deployment& d, Exchange& x, const std::string& message) {
  auto claims = CustomerToken(d, x.params["token"], true);
  if (!claims.ok()) return claims.status();
  const std::string lang = PageLanguage(x);
  const RightsText& t = RightsFor(lang);
  const std::string path = "/r/" + x.params["token"];
  std::string body;
  if (!message.empty()) body += "<p class=\"status\" role=\"status\">" + message + "</p>";
  if (claims->scope != "*") {
    auto r = d.requests().Get(SubjectCaller(claims->subject, x.request_id), claims->scope);
    if (!r.ok()) return r.status();
    if (r->row.status == "received") {
      body += "<p>" + HtmlEscape(t.confirm_intro) + "</p><p>" +
              HtmlEscape(TypeName(r->row.type, lang)) + " — " + HtmlEscape(t.received_on) +
              " " + Day(r->row.received_at) + "</p><form method=\"post\"><input type=\"hidden\" "
              "name=\"form\" value=\"confirm\"><button type=\"submit\">" +
              HtmlEscape(t.confirm) + "</button></form>";
      HtmlPage(x, 200, t.confirm_title, body, lang);
      return Status::Ok();
    }
    body += RequestDetail(d, r.value(), path, lang);
  }
  auto rights = RightsSection(d, claims.value(), lang);
  if (!rights.ok()) return rights.status();
  HtmlPage(x, 200, t.title, body + rights.value(), lang);
  return Status::Ok();
}

Status DsrPost(Deployment& d, Exchange& x) {
  auto claims = CustomerToken(d, x.params["token"], true);
  if (!claims.ok()) return claims.status();
  if (x.content_type != "application/x-www-form-urlencoded") {
    return Status(Code::kUnsupportedMediaType, "send the form as application/x-www-form-urlencoded");
  }
  const auto form = FormPairs(x.body);
  auto kind = form.find("form");
  std::string message;
  if (kind != form.end() && kind->second == "confirm" && claims->scope != "*") {
    auto done = d.requests().VerifyByLink(claims.value(), x.request_id);
    if (!done.ok()) return done.status();
    message = HtmlEscape(RightsFor(PageLanguage(x)).confirmed);
  } else if (kind != form.end() && kind->second == "request") {
    GARDE_RETURN_IF_ERROR(OpenRequestFromForm(d, x, claims.value(), form, &message));
  } else {
    return Status(Code::kUnprocessable, "the form is not a request form")
        .AddError("form", "must be confirm or request");
  }
  return DsrPage(d, x, message);
}

}  // namespace

void AddRequestPages(Router& router, Deployment& d) {
  router.Add("GET", "/r/{token}", [&d](Exchange& x) { return DsrPage(d, x, ""); });
  router.Add("POST", "/r/{token}", [&d](Exchange& x) { return DsrPost(d, x); });
  router.Add("GET", "/r/{token}/requests/{id}/package",
             [&d](Exchange& x) { return CustomerPackage(d, x); });
}

}  // namespace garde

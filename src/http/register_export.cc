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
  w.BeginObject()
      .Raw("organisation", p.organisation_json())
      .String("content_hash", p.content_hash())
      .BeginArray("activities");
  for (const auto& a : p.activities()) w.Raw(a.json);
  w.EndArray().EndObject();
  return w.Take();
}

using Object = Poco::JSON::Object;
using Array = Poco::JSON::Array;

Poco::Dynamic::Var ParsedJson(const std::string& json) {
  try {
    Poco::JSON::Parser parser;
    return parser.parse(json);
  } catch (const Poco::Exception&) {
    return Poco::Dynamic::Var();
  }
}

bool IsObject(const Poco::Dynamic::Var& v) { return v.type() == typeid(Object::Ptr); }
bool IsArray(const Poco::Dynamic::Var& v) { return v.type() == typeid(Array::Ptr); }

// A register word (legal basis, security measure, recipient group ...) for people, in the
// page's language; nullptr for a word the table does not know.
const char* KnownLabel(const std::string& word, const std::string& lang) {
  static const std::map<std::string, std::pair<const char*, const char*>> kLabels{
      {"consent", {"Consent", "Consentement"}},
      {"contract", {"Contract", "Exécution d'un contrat"}},
      {"legal_obligation", {"Legal obligation", "Obligation légale"}},
      {"vital_interests", {"Vital interests", "Sauvegarde des intérêts vitaux"}},
      {"public_task", {"Public task", "Mission d'intérêt public"}},
      {"legitimate_interests", {"Legitimate interests", "Intérêt légitime"}},
      {"access_control", {"Access control", "Contrôle d'accès"}},
      {"traceability", {"Traceability", "Traçabilité"}},
      {"encryption", {"Encryption", "Chiffrement"}},
      {"backups", {"Backups", "Sauvegardes"}},
      {"staff_training", {"Staff training", "Formation du personnel"}},
      {"separation_of_duties", {"Separation of duties", "Séparation des tâches"}},
      {"merkle_tree",
       {"Tamper-evident log (Merkle tree)", "Journal infalsifiable (arbre de Merkle)"}},
      {"signed_checkpoints", {"Signed checkpoints", "Points de contrôle signés"}},
      {"technical", {"Technical", "Techniques"}},
      {"organisational", {"Organisational", "Organisationnelles"}},
      {"internal", {"Internal", "Internes"}},
      {"processors", {"Processors", "Sous-traitants"}},
      {"third_parties", {"Third parties", "Tiers"}},
      {"customers", {"Customers", "Clients"}},
      {"prospects", {"Prospects", "Prospects"}},
      {"members", {"Members", "Adhérents"}},
      {"staff", {"Staff", "Personnel"}},
      {"business_contacts", {"Business contacts", "Contacts professionnels"}},
      {"required", {"Required", "Requise"}},
      {"reference", {"Reference", "Référence"}},
      {"date", {"Date", "Date"}},
      {"logic", {"Logic", "Logique"}},
      {"significance", {"Significance", "Portée"}},
      {"identity", {"Identity", "État civil, identité"}},
      {"contact", {"Contact details", "Coordonnées"}},
      {"demographic", {"Personal life", "Vie personnelle"}},
      {"household", {"Household", "Foyer"}},
      {"professional", {"Professional life", "Vie professionnelle"}},
      {"behavioural", {"Behaviour and preferences", "Habitudes et préférences"}},
      {"transactional", {"Purchases", "Achats"}},
      {"financial", {"Economic and financial", "Informations d'ordre économique et financier"}},
      {"yes", {"yes", "oui"}},
      {"no", {"no", "non"}}};
  auto it = kLabels.find(word);
  if (it == kLabels.end()) return nullptr;
  return lang == "fr" ? it->second.second : it->second.first;
}

// A member name or vocabulary word as a heading: its label, else the word with spaces and a
// capital.
std::string Label(const std::string& word, const std::string& lang) {
  if (const char* known = KnownLabel(word, lang)) return known;
  std::string out = word;
  for (auto& c : out) c = c == '_' ? ' ' : c;
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 32);
  return out;
}

// ": " in English, " : " in French typography.
const char* Colon(const std::string& lang) { return lang == "fr" ? " : " : ": "; }

// A retention rule for people: "P3Y after last_interaction" -> "3 years after the last
// interaction"; other rules (criteria text) as written.
std::string Retention(const std::string& rule, const std::string& lang) {
  const bool fr = lang == "fr";
  const size_t after = rule.find(" after ");
  const std::string duration = rule.substr(0, after);
  std::string out;
  size_t i = 1;
  if (duration.size() < 3 || duration[0] != 'P') return rule;
  while (i < duration.size()) {
    size_t j = i;
    while (j < duration.size() && duration[j] >= '0' && duration[j] <= '9') ++j;
    if (j == i || j == duration.size()) return rule;
    const std::string n = duration.substr(i, j - i);
    const bool one = n == "1";
    std::string unit;
    switch (duration[j]) {
      case 'Y': unit = fr ? (one ? "an" : "ans") : (one ? "year" : "years"); break;
      case 'M': unit = fr ? "mois" : (one ? "month" : "months"); break;
      case 'W': unit = fr ? (one ? "semaine" : "semaines") : (one ? "week" : "weeks"); break;
      case 'D': unit = fr ? (one ? "jour" : "jours") : (one ? "day" : "days"); break;
      default: return rule;
    }
    out += (out.empty() ? "" : " ") + n + " " + unit;
    i = j + 1;
  }
  if (after == std::string::npos) return out + " (" + rule + ")";
  std::string anchor = rule.substr(after + 7);
  static const std::map<std::string, std::pair<const char*, const char*>> kAnchors{
      {"last_interaction", {"the last interaction", "le dernier contact"}},
      {"last_purchase", {"the last purchase", "le dernier achat"}},
      {"created", {"the record was created", "la création de la fiche"}},
      {"closing", {"the request was closed", "la clôture de la demande"}}};
  auto it = kAnchors.find(anchor);
  if (it != kAnchors.end()) {
    anchor = fr ? it->second.second : it->second.first;
  } else {
    for (auto& c : anchor) c = c == '_' ? ' ' : c;
  }
  return out + (fr ? " après " : " after ") + anchor + " (" + rule + ")";
}

// A register value as plain text: words of the register's vocabulary labelled, free text as
// written; a party {name, ...} as "Name (details)"; other mappings as "Heading: value. ...".
std::string Text(const Poco::Dynamic::Var& v, const std::string& lang) {
  if (v.isEmpty()) return "";
  if (IsArray(v)) {
    std::string out;
    const auto& arr = *v.extract<Array::Ptr>();
    bool parties = false;
    for (size_t i = 0; i < arr.size(); ++i) {
      const auto item = arr.get(static_cast<unsigned>(i));
      parties |= IsObject(item);
      const std::string text = Text(item, lang);
      if (!text.empty()) out += (out.empty() ? "" : parties ? "; " : ", ") + text;
    }
    return out;
  }
  if (IsObject(v)) {
    const auto& obj = *v.extract<Object::Ptr>();
    std::string out;
    if (obj.has("name") && !obj.isNull("name")) {
      std::string details;
      for (const auto& [k, member] : obj) {
        if (k == "name") continue;
        const std::string text = Text(member, lang);
        if (!text.empty()) details += (details.empty() ? "" : ", ") + text;
      }
      return obj.get("name").toString() + (details.empty() ? "" : " (" + details + ")");
    }
    for (const auto& [k, member] : obj) {
      // A text given per language (<key>_i18n beside it) is shown in the export's language.
      if (k.size() > 5 && k.compare(k.size() - 5, 5, "_i18n") == 0) continue;
      std::string text = Text(member, lang);
      const auto local = obj.has(k + "_i18n") ? obj.get(k + "_i18n") : Poco::Dynamic::Var();
      if (IsObject(local) && local.extract<Object::Ptr>()->has(lang)) {
        text = local.extract<Object::Ptr>()->get(lang).toString();
      }
      if (!text.empty()) out += (out.empty() ? "" : ". ") + Label(k, lang) + Colon(lang) + text;
    }
    return out;
  }
  if (v.isBoolean()) return KnownLabel(v.extract<bool>() ? "yes" : "no", lang);
  const std::string text = v.toString();
  const char* known = KnownLabel(text, lang);
  return known != nullptr ? known : text;
}

// One column of the register: a machine key (CSV header, JSON member), labels, and the text
// of an activity's value.
struct Column {
  const char* key;
  const char* en;
  const char* fr;
};
// The CNIL register sheet's headings, in its order, plus identification.
constexpr Column kColumns[] = {
    {"id", "Identifier", "Identifiant"},
    {"reference", "Reference", "Référence"},
    {"name", "Activity", "Activité"},
    {"created", "Created", "Date de création"},
    {"updated", "Last updated", "Dernière mise à jour"},
    {"joint_controllers", "Joint controllers", "Responsables conjoints"},
    {"purposes", "Purposes", "Finalités"},
    {"sub_purposes", "Sub-purposes", "Sous-finalités"},
    {"legal_basis", "Legal basis", "Base légale"},
    {"art9_condition", "Special categories: Art. 9 condition",
     "Données sensibles : condition de l'article 9"},
    {"data_subjects", "Categories of data subjects", "Catégories de personnes concernées"},
    {"data", "Categories of personal data", "Catégories de données personnelles"},
    {"recipients", "Recipients", "Destinataires"},
    {"transfers", "Transfers outside the EU and safeguards",
     "Transferts hors de l'Union européenne et garanties"},
    {"retention", "Retention", "Durées de conservation"},
    {"security", "Security measures", "Mesures de sécurité"},
    {"dpia", "Data protection impact assessment", "Analyse d'impact (AIPD)"},
    {"automated_decision", "Automated decisions, profiling", "Décisions automatisées, profilage"},
    {"description", "Description", "Description"},
};

// The text of column `key` for an activity (empty when the register says nothing).
std::string ColumnText(const PolicySet& p, const Activity& a, const Object& obj,
                       const std::string& key, const std::string& lang) {
  if (key == "id") return a.id;
  if (key == "name") return a.names.In(lang);
  if (key == "legal_basis") return Label(LegalBasisName(a.legal_basis), lang);
  if (key == "retention") return Retention(a.retention, lang);
  if (key == "purposes") {
    std::string out;
    for (const auto& id : a.purposes) {
      const Purpose* purpose = p.FindPurpose(id);
      out += (out.empty() ? "" : "; ") +
             (purpose != nullptr ? purpose->titles.In(lang) + " (" + id + ", " +
                                       Label(LegalBasisName(purpose->legal_basis), lang) + ")"
                                 : id);
    }
    return out;
  }
  if (key == "data") {
    // Fields grouped by their schema category, then the category rules.
    std::map<std::string, std::vector<std::string>> by_category;
    for (const auto& f : a.fields) {
      const FieldSpec* spec = p.schema().Find(f);
      by_category[spec != nullptr ? spec->category : "other"].push_back(f);
    }
    std::string out;
    for (const auto& [category, fields] : by_category) {
      out += (out.empty() ? "" : "; ") + Label(category, lang) + Colon(lang) + Join(fields, ", ");
    }
    for (const auto& [category, rule] : a.category_retention) {
      out += (out.empty() ? "" : "; ") + Label(category, lang) + " " +
             (lang == "fr" ? "conservées " : "kept ") + Retention(rule, lang);
    }
    return out;
  }
  if (key == "transfers") {
    const auto v = obj.get("transfers");
    if (!IsArray(v) || v.extract<Array::Ptr>()->size() == 0) {
      return lang == "fr" ? "Aucun" : "None";
    }
    std::string out;
    const auto& arr = *v.extract<Array::Ptr>();
    for (size_t i = 0; i < arr.size(); ++i) {
      const auto t = arr.get(static_cast<unsigned>(i));
      if (!IsObject(t)) continue;
      const auto& to = *t.extract<Object::Ptr>();
      std::string one;
      for (const char* member : {"country", "recipient", "safeguard", "documentation"}) {
        if (to.has(member)) one += (one.empty() ? "" : " — ") + to.get(member).toString();
      }
      out += (out.empty() ? "" : "; ") + one;
    }
    return out;
  }
  if (!obj.has(key) || obj.isNull(key)) return "";
  return Text(obj.get(key), lang);
}

struct ActivityRow {
  const Activity* activity;
  std::vector<std::string> cells;  // one per kColumns entry
};

std::vector<ActivityRow> Rows(const PolicySet& p, const std::string& lang) {
  std::vector<ActivityRow> rows;
  for (const auto& a : p.activities()) {
    const auto parsed = ParsedJson(a.json);
    Object empty;
    const Object& obj = IsObject(parsed) ? *parsed.extract<Object::Ptr>() : empty;
    ActivityRow row{&a, {}};
    for (const auto& c : kColumns) row.cells.push_back(ColumnText(p, a, obj, c.key, lang));
    rows.push_back(std::move(row));
  }
  return rows;
}

const char* Heading(const Column& c, const std::string& lang) { return lang == "fr" ? c.fr : c.en; }

std::string Csv(const PolicySet& p, const std::string& lang) {
  // UTF-8 BOM so spreadsheets read accents right; one row per activity, every column of the
  // register sheet.
  std::string out = "\xEF\xBB\xBF";
  for (size_t i = 0; i < std::size(kColumns); ++i)
    out += (i ? "," : "") + std::string(kColumns[i].key);
  out += "\r\n";
  for (const auto& row : Rows(p, lang)) {
    for (size_t i = 0; i < row.cells.size(); ++i) out += (i ? "," : "") + CsvCell(row.cells[i]);
    out += "\r\n";
  }
  return out;
}

std::string MdCell(std::string s) {
  for (size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2) s.replace(i, 1, "\\|");
  for (auto& c : s) c = c == '\n' ? ' ' : c;
  return s;
}

std::string Markdown(const PolicySet& p, const std::string& lang) {
  const bool fr = lang == "fr";
  std::string out =
      fr ? "# Registre des activités de traitement\n\n" : "# Register of processing activities\n\n";
  out += fr ? "| référence | activité | base légale |\n| --- | --- | --- |\n"
            : "| reference | activity | legal basis |\n| --- | --- | --- |\n";
  const auto rows = Rows(p, lang);
  for (const auto& row : rows) {
    const Activity& a = *row.activity;
    out += "| " + MdCell(a.reference) + " | " + MdCell(a.name) + " (`" + a.id + "`) | " +
           Label(LegalBasisName(a.legal_basis), lang) + " |\n";
  }
  for (const auto& row : rows) {
    const Activity& a = *row.activity;
    out += "\n## " + MdCell(a.reference) + " — " + MdCell(a.name) + " {#" + a.id + "}\n\n" +
           (fr ? "| rubrique | contenu |\n" : "| heading | content |\n") + "| --- | --- |\n";
    for (size_t i = 0; i < row.cells.size(); ++i) {
      if (row.cells[i].empty()) continue;
      out += "| " + std::string(Heading(kColumns[i], lang)) + " | " + MdCell(row.cells[i]) + " |\n";
    }
  }
  return out;
}

// The organisation sheet: controller, DPO, representative (when there is one), supervisory
// authority.
std::string OrganisationHtml(const PolicySet& p, const std::string& lang) {
  const bool fr = lang == "fr";
  const auto parsed = ParsedJson(p.organisation_json());
  std::string body = "<section class=\"sheet\"><h2>" +
                     HtmlEscape(fr ? "Organisation" : "Organisation") + "</h2><table><tbody>";
  static const std::pair<const char*, std::pair<const char*, const char*>> kParts[] = {
      {"controller", {"Controller", "Responsable du traitement"}},
      {"dpo", {"Data protection officer", "Délégué à la protection des données"}},
      {"representative", {"Representative", "Représentant"}},
      {"supervisory_authority", {"Supervisory authority", "Autorité de contrôle"}}};
  if (IsObject(parsed)) {
    const auto& org = *parsed.extract<Object::Ptr>();
    for (const auto& [key, labels] : kParts) {
      if (!org.has(key) || org.isNull(key)) continue;  // no empty headings
      const std::string text = Text(org.get(key), lang);
      if (text.empty()) continue;
      body += "<tr><th scope=\"row\">" + HtmlEscape(fr ? labels.second : labels.first) +
              "</th><td>" + HtmlEscape(text) + "</td></tr>";
    }
  }
  return body + "</tbody></table>";
}

std::string Html(const PolicySet& p, const std::string& lang) {
  const bool fr = lang == "fr";
  std::string body = "<p>" +
                     HtmlEscape(fr ? "Registre des activités de traitement (article 30 du RGPD). "
                                     "Empreinte du contenu"
                                   : "Register of processing activities (GDPR Art. 30). "
                                     "Content hash") +
                     " <code>" + HtmlEscape(p.content_hash()) + "</code>.</p>";
  body += OrganisationHtml(p, lang) + "<h3>" + HtmlEscape(fr ? "Activités" : "Activities") +
          "</h3><table><thead><tr><th scope=\"col\">" + HtmlEscape(Heading(kColumns[1], lang)) +
          "</th><th scope=\"col\">" + HtmlEscape(Heading(kColumns[2], lang)) +
          "</th><th scope=\"col\">" + HtmlEscape(Heading(kColumns[8], lang)) +
          "</th></tr></thead><tbody>";
  const auto rows = Rows(p, lang);
  for (const auto& row : rows) {
    const Activity& a = *row.activity;
    body += "<tr><td>" + HtmlEscape(a.reference) + "</td><td><a href=\"#" + HtmlEscape(a.id) +
            "\">" + HtmlEscape(a.name) + "</a></td><td>" +
            HtmlEscape(Label(LegalBasisName(a.legal_basis), lang)) + "</td></tr>";
  }
  body += "</tbody></table></section>";
  for (const auto& row : rows) {
    const Activity& a = *row.activity;
    body += "<section class=\"sheet\" id=\"" + HtmlEscape(a.id) + "\"><h2>" +
            HtmlEscape(fr ? "Fiche de registre" : "Register sheet") + Colon(lang) +
            HtmlEscape(a.name) + "</h2><table><tbody>";
    for (size_t i = 0; i < row.cells.size(); ++i) {
      if (row.cells[i].empty()) continue;
      body += "<tr data-column=\"" + std::string(kColumns[i].key) + "\"><th scope=\"row\">" +
              HtmlEscape(Heading(kColumns[i], lang)) + "</th><td>" + HtmlEscape(row.cells[i]) +
              "</td></tr>";
    }
    body += "</tbody></table></section>";
  }
  // Printable: one sheet per A4 page, no screen-only width limit.
  const char* css =
      "@page{size:A4;margin:15mm}@media print{body{max-width:none;margin:0;font-size:10pt}"
      ".sheet{break-before:page}.sheet:first-of-type{break-before:auto}a{color:inherit;"
      "text-decoration:none}}.sheet th[scope=row]{width:30%}";
  return HtmlDocument(std::string(fr ? "Registre des activités de traitement — "
                                     : "Register of processing activities — ") +
                          p.controller_name(),
                      body, lang, css);
}

}  // namespace

Result<RegisterDocument> ExportRegister(const PolicySet& policies, const std::string& format,
                                        const std::string& lang) {
  if (lang != "en" && lang != "fr") {
    return Status(Code::kUnprocessable, "unsupported register language")
        .AddError("lang", "must be en or fr");
  }
  if (format == "json") return RegisterDocument{"application/json", "json", Json(policies)};
  if (format == "csv") {
    return RegisterDocument{"text/csv; charset=utf-8", "csv", Csv(policies, lang)};
  }
  if (format == "md") {
    return RegisterDocument{"text/markdown; charset=utf-8", "md", Markdown(policies, lang)};
  }
  if (format == "html") {
    return RegisterDocument{"text/html; charset=utf-8", "html", Html(policies, lang)};
  }
  return Status(Code::kUnprocessable, "unsupported register format")
      .AddError("format", std::string("must be ") + kRegisterFormats);
}

}  // namespace garde

#include "garde/policy/policy_set.h"

#include <Poco/Exception.h>
#include <Poco/RegularExpression.h>
#include <sodium.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"

namespace garde {
namespace {

// Reads one YAML file and collects "file:line: message" problems instead of throwing.
class YamlFile {
 public:
  YamlFile(std::string dir, std::string name, Status* problems)
      : name_(std::move(name)), path_(dir + "/" + name_), problems_(problems) {}

  bool Load(std::string* raw) {
    std::ifstream in(path_, std::ios::binary);
    if (!in) {
      Problem(0, "cannot read file");
      return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    *raw = ss.str();
    try {
      root_ = YAML::Load(*raw);
    } catch (const YAML::Exception& e) {
      Problem(e.mark.line + 1, "not valid YAML: " + e.msg);
      return false;
    }
    if (!root_.IsMap()) {
      Problem(1, "expected a mapping at the top level");
      return false;
    }
    return true;
  }

  const YAML::Node& root() const { return root_; }
  static int Line(const YAML::Node& n) { return n.Mark().line + 1; }

  void Problem(int line, const std::string& message) {
    problems_->AddError(name_ + ":" + std::to_string(line), message);
  }

  // Flags keys outside `allowed`, so a typo is an error rather than a silently ignored rule.
  void OnlyKeys(const YAML::Node& map, std::initializer_list<const char*> allowed,
                const std::string& where) {
    for (const auto& kv : map) {
      const auto key = kv.first.as<std::string>("");
      bool ok = false;
      for (const char* a : allowed) ok |= (key == a);
      if (!ok) Problem(Line(kv.first), where + ": unknown key '" + key + "'");
    }
  }

  std::string String(const YAML::Node& map, const char* key, const std::string& where,
                     bool required, const std::string& fallback = "") {
    const YAML::Node n = map[key];
    if (!n) {
      if (required) Problem(Line(map), where + ": missing '" + key + "'");
      return fallback;
    }
    if (!n.IsScalar()) {
      Problem(Line(n), where + ": '" + key + "' must be a text value");
      return fallback;
    }
    return n.as<std::string>();
  }

  // A customer-facing text: a plain text (in the source language) or {lang: text, ...}.
  LocalText Local(const YAML::Node& map, const char* key, const std::string& where, bool required) {
    LocalText out;
    out.file = name_;
    out.line = Line(map);
    const YAML::Node n = map[key];
    if (!n) {
      if (required) Problem(Line(map), where + ": missing '" + key + "'");
      return out;
    }
    out.line = Line(n);
    if (n.IsScalar()) {
      out.by_lang[kSourceLanguage] = n.as<std::string>();
    } else if (n.IsMap()) {
      for (const auto& kv : n) {
        const std::string lang = kv.first.as<std::string>("");
        if (!IsLanguageCode(lang)) {
          Problem(Line(kv.first), where + ": '" + key + "' has '" + lang +
                                      "', not a language code (fr, en, pt-br)");
        } else if (!kv.second.IsScalar()) {
          Problem(Line(kv.second), where + ": '" + key + "." + lang + "' must be a text value");
        } else {
          out.by_lang[lang] = kv.second.as<std::string>();
        }
      }
      if (required && out.by_lang.empty()) Problem(Line(n), where + ": '" + key + "' is empty");
    } else {
      Problem(Line(n), where + ": '" + key + "' must be a text or a mapping of languages to texts");
    }
    return out;
  }

  bool Bool(const YAML::Node& map, const char* key, const std::string& where, bool fallback) {
    const YAML::Node n = map[key];
    if (!n) return fallback;
    try {
      return n.as<bool>();
    } catch (const YAML::Exception&) {
      Problem(Line(n), where + ": '" + key + "' must be true or false");
      return fallback;
    }
  }

  std::optional<double> Number(const YAML::Node& map, const char* key, const std::string& where) {
    const YAML::Node n = map[key];
    if (!n) return std::nullopt;
    try {
      return n.as<double>();
    } catch (const YAML::Exception&) {
      Problem(Line(n), where + ": '" + key + "' must be a number");
      return std::nullopt;
    }
  }

  std::vector<std::string> List(const YAML::Node& map, const char* key, const std::string& where) {
    std::vector<std::string> out;
    const YAML::Node n = map[key];
    if (!n) return out;
    if (!n.IsSequence()) {
      Problem(Line(n), where + ": '" + key + "' must be a list");
      return out;
    }
    for (const auto& item : n) {
      if (!item.IsScalar()) {
        Problem(Line(item), where + ": '" + key + "' must list text values");
        continue;
      }
      out.push_back(item.as<std::string>());
    }
    return out;
  }

 private:
  std::string name_;
  std::string path_;
  Status* problems_;
  YAML::Node root_;
};

std::optional<LegalBasis> ParseLegalBasis(const std::string& s) {
  if (s == "consent") return LegalBasis::kConsent;
  if (s == "contract") return LegalBasis::kContract;
  if (s == "legal_obligation") return LegalBasis::kLegalObligation;
  if (s == "vital_interests") return LegalBasis::kVitalInterests;
  if (s == "public_task") return LegalBasis::kPublicTask;
  if (s == "legitimate_interests") return LegalBasis::kLegitimateInterests;
  return std::nullopt;
}

// A YAML node as JSON (scalars as strings, except null, true/false and plain numbers).
void YamlToJson(const YAML::Node& n, JsonWriter& w) {
  if (!n || n.IsNull()) {
    w.Null();
  } else if (n.IsSequence()) {
    w.BeginArray();
    for (const auto& item : n) YamlToJson(item, w);
    w.EndArray();
  } else if (n.IsMap()) {
    w.BeginObject();
    for (const auto& kv : n) {
      w.Key(kv.first.as<std::string>(""));
      YamlToJson(kv.second, w);
    }
    w.EndObject();
  } else {
    const std::string v = n.as<std::string>("");
    if (n.Tag() != "!" && (v == "true" || v == "false")) {
      w.Bool(v == "true");
    } else if (n.Tag() != "!" && !v.empty() &&
               v.find_first_not_of("0123456789") == std::string::npos && v.size() < 16) {
      w.Int(std::stoll(v));
    } else {
      w.String(v);
    }
  }
}

bool IsFieldName(const std::string& s) {
  if (s.empty() || s.size() > 64 || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

void LoadSchema(YamlFile& f, Schema* schema) {
  const YAML::Node fields = f.root()["fields"];
  f.OnlyKeys(f.root(), {"version", "fields"}, "schema");
  if (!fields || !fields.IsSequence()) {
    f.Problem(1, "'fields' must be a list of field declarations");
    return;
  }
  for (const auto& n : fields) {
    const int line = YamlFile::Line(n);
    if (!n.IsMap()) {
      f.Problem(line, "each field must be a mapping");
      continue;
    }
    FieldSpec spec;
    spec.line = line;
    spec.name = f.String(n, "name", "field", true);
    const std::string where = "field '" + spec.name + "'";
    f.OnlyKeys(n,
               {"name", "type", "category", "description", "kinds", "required", "unique",
                "provided_by_subject", "min_length", "max_length", "pattern", "min", "max",
                "integer", "values", "blind_index"},
               where);
    if (!IsFieldName(spec.name)) {
      f.Problem(line, where + ": names are lower-case letters, digits and '_' (max 64)");
      continue;
    }
    if (schema->by_name_.count(spec.name) != 0) {
      f.Problem(line, where + ": declared twice");
      continue;
    }
    const std::string type = f.String(n, "type", where, true, "string");
    if (auto t = ParseFieldType(type)) {
      spec.type = *t;
    } else {
      f.Problem(line, where + ": unknown type '" + type + "'");
    }
    spec.category = f.String(n, "category", where, true);
    if (!spec.category.empty() && !IsKnownCategory(spec.category)) {
      f.Problem(line, where + ": unknown data category '" + spec.category + "'");
    }
    spec.description = f.String(n, "description", where, false);
    for (const auto& k : f.List(n, "kinds", where)) {
      if (k != "person" && k != "organization") {
        f.Problem(line, where + ": unknown subject kind '" + k + "'");
      }
      spec.kinds.insert(k);
    }
    if (spec.kinds.empty()) spec.kinds = {"person", "organization"};
    spec.required = f.Bool(n, "required", where, false);
    spec.unique = f.Bool(n, "unique", where, false);
    spec.provided_by_subject = f.Bool(n, "provided_by_subject", where, true);
    if (auto v = f.Number(n, "min_length", where)) spec.min_length = static_cast<size_t>(*v);
    if (auto v = f.Number(n, "max_length", where)) spec.max_length = static_cast<size_t>(*v);
    spec.min = f.Number(n, "min", where);
    spec.max = f.Number(n, "max", where);
    spec.integer = f.Bool(n, "integer", where, false);
    spec.values = f.List(n, "values", where);
    spec.pattern = f.String(n, "pattern", where, false);
    if (!spec.pattern.empty()) {
      try {
        spec.pattern_re = std::make_shared<Poco::RegularExpression>(
            "^(?:" + spec.pattern + ")$", Poco::RegularExpression::RE_UTF8);
      } catch (const Poco::Exception& e) {
        f.Problem(line, where + ": invalid pattern: " + e.message());
      }
    }
    if (spec.type == FieldType::kEnum && spec.values.empty()) {
      f.Problem(line, where + ": an enum needs 'values'");
    }
    if (const YAML::Node bi = n["blind_index"]) {
      if (bi.IsMap()) {
        f.OnlyKeys(bi, {"bytes"}, where + " blind_index");
        spec.blind_index_bytes = static_cast<size_t>(f.Number(bi, "bytes", where).value_or(16));
      } else if (f.Bool(n, "blind_index", where, false)) {
        spec.blind_index_bytes = 16;
      }
      if (spec.blind_index_bytes != 0 &&
          (spec.blind_index_bytes < 4 || spec.blind_index_bytes > 32)) {
        f.Problem(line, where + ": blind_index bytes must be between 4 and 32");
      }
    }
    if (spec.unique && spec.blind_index_bytes == 0) {
      f.Problem(line, where + ": a unique field needs a blind_index");
    }
    schema->by_name_[spec.name] = schema->fields_.size();
    schema->fields_.push_back(std::move(spec));
  }
}

void LoadPurposes(YamlFile& f, std::vector<Purpose>* out) {
  f.OnlyKeys(f.root(), {"version", "purposes"}, "purposes");
  const YAML::Node list = f.root()["purposes"];
  if (!list || !list.IsSequence()) {
    f.Problem(1, "'purposes' must be a list");
    return;
  }
  for (const auto& n : list) {
    const int line = YamlFile::Line(n);
    if (!n.IsMap()) {
      f.Problem(line, "each purpose must be a mapping");
      continue;
    }
    Purpose p;
    p.line = line;
    p.id = f.String(n, "id", "purpose", true);
    const std::string where = "purpose '" + p.id + "'";
    f.OnlyKeys(n,
               {"id", "title", "description", "legal_basis", "channels", "notices", "validity",
                "gpc_opt_out", "marketing", "double_opt_in"},
               where);
    p.titles = f.Local(n, "title", where, true);
    p.descriptions = f.Local(n, "description", where, false);
    p.title = p.titles.In(kSourceLanguage);
    p.description = p.descriptions.In(kSourceLanguage);
    p.double_opt_in = f.Bool(n, "double_opt_in", where, false);
    const std::string basis = f.String(n, "legal_basis", where, true);
    if (auto b = ParseLegalBasis(basis)) {
      p.legal_basis = *b;
    } else {
      f.Problem(line, where + ": unknown legal basis '" + basis + "'");
    }
    p.channels = f.List(n, "channels", where);
    p.validity = f.String(n, "validity", where, false);
    p.gpc_opt_out = f.Bool(n, "gpc_opt_out", where, false);
    p.marketing = f.Bool(n, "marketing", where, false);
    if (const YAML::Node notices = n["notices"]) {
      for (const auto& nv : notices) {
        NoticeVersion v;
        v.version = f.String(nv, "version", where + " notice", true);
        v.texts = f.Local(nv, "text", where + " notice", false);
        v.urls = f.Local(nv, "url", where + " notice", false);
        v.text = v.texts.In(kSourceLanguage);
        v.url = v.urls.In(kSourceLanguage);
        v.valid_from = f.String(nv, "valid_from", where + " notice", false);
        p.notices.push_back(std::move(v));
      }
    }
    for (const auto& other : *out) {
      if (other.id == p.id) f.Problem(line, where + ": declared twice");
    }
    out->push_back(std::move(p));
  }
}

void LoadRegister(YamlFile& f, const Schema& schema, const std::vector<Purpose>& purposes,
                  std::vector<Activity>* out) {
  const YAML::Node list = f.root()["activities"];
  if (!list || !list.IsSequence()) {
    f.Problem(1, "'activities' must be a list");
    return;
  }
  for (const auto& n : list) {
    const int line = YamlFile::Line(n);
    if (!n.IsMap()) {
      f.Problem(line, "each activity must be a mapping");
      continue;
    }
    Activity a;
    a.line = line;
    // A misspelt key would silently drop a register column: refuse it.
    // clang-format off
    f.OnlyKeys(n,
               {"id", "name", "reference", "created", "updated", "description", "purposes",
                "sub_purposes", "legal_basis", "art9_condition", "joint_controllers",
                "data_subjects", "data", "recipients", "transfers", "retention", "security",
                "dpia", "notes", "legal_claims", "automated_decision"},
               "activity");
    // clang-format on
    // Exports and the API keep one text per column (the source language); the translations
    // ride along as <key>_i18n.
    YAML::Node plain = YAML::Clone(n);
    auto flatten = [](YAML::Node map, const char* key) {
      if (!map.IsMap() || !map[key] || !map[key].IsMap()) return;
      // A copy: yaml-cpp nodes share their data, and the key is overwritten just below.
      const YAML::Node texts = YAML::Clone(map[key]);
      const YAML::Node source = texts[kSourceLanguage];
      const std::string text =
          source ? source.as<std::string>("") : texts.begin()->second.as<std::string>("");
      map[std::string(key) + "_i18n"] = texts;
      map[key] = text;
    };
    flatten(plain, "name");
    if (plain["automated_decision"]) {
      flatten(plain["automated_decision"], "logic");
      flatten(plain["automated_decision"], "significance");
    }
    JsonWriter json;
    YamlToJson(plain, json);
    a.json = json.Take();
    a.id = f.String(n, "id", "activity", true);
    const std::string where = "activity '" + a.id + "'";
    a.names = f.Local(n, "name", where, true);
    a.name = a.names.In(kSourceLanguage);
    a.reference = f.String(n, "reference", where, false);
    const std::string basis = f.String(n, "legal_basis", where, false);
    a.has_legal_basis = !basis.empty();
    a.has_art9_condition = static_cast<bool>(n["art9_condition"]);
    if (const YAML::Node transfers = n["transfers"]; transfers && transfers.IsSequence()) {
      for (const auto& t : transfers) {
        if (t.IsMap() && !t["safeguard"])
          a.transfers_without_safeguard.push_back(t["country"].as<std::string>("?"));
      }
    }
    if (auto b = ParseLegalBasis(basis)) {
      a.legal_basis = *b;
    } else if (!basis.empty()) {
      f.Problem(line, where + ": unknown legal basis '" + basis + "'");
    }
    if (const YAML::Node ps = n["purposes"]) {
      for (const auto& pn : ps) {
        const std::string pid =
            pn.IsMap() ? f.String(pn, "id", where + " purpose", true) : pn.as<std::string>("");
        bool known = false;
        for (const auto& p : purposes) known |= (p.id == pid);
        if (!known) f.Problem(YamlFile::Line(pn), where + ": unknown purpose '" + pid + "'");
        a.purposes.push_back(pid);
      }
    }
    if (const YAML::Node data = n["data"]) {
      for (const auto& field : f.List(data, "fields", where)) {
        if (schema.Find(field) == nullptr) {
          f.Problem(YamlFile::Line(data), where + ": unknown schema field '" + field + "'");
        }
        a.fields.insert(field);
      }
      f.OnlyKeys(data, {"fields", "categories", "retention"}, where + " data");
      if (const YAML::Node kept = data["retention"]) {
        if (!kept.IsMap()) {
          f.Problem(YamlFile::Line(kept), where + ": data.retention must map categories to rules");
        } else {
          for (const auto& entry : kept) {
            const std::string cat = entry.first.as<std::string>("");
            if (!IsKnownCategory(cat)) {
              f.Problem(YamlFile::Line(entry.first),
                        where + ": unknown data category '" + cat + "'");
            }
            a.category_retention[cat] = entry.second.as<std::string>("");
          }
        }
      }
      for (const auto& cat : f.List(data, "categories", where)) {
        if (!IsKnownCategory(cat)) {
          f.Problem(YamlFile::Line(data), where + ": unknown data category '" + cat + "'");
        }
        for (auto& name : schema.FieldsInCategory(cat)) a.fields.insert(std::move(name));
      }
    }
    a.legal_claims = f.Bool(n, "legal_claims", where, false);
    if (const YAML::Node ad = n["automated_decision"]) {
      f.OnlyKeys(ad, {"logic", "significance"}, where + " automated_decision");
      auto& decision = a.automated_decision;
      decision.logics = f.Local(ad, "logic", where + " automated_decision", true);
      decision.significances = f.Local(ad, "significance", where + " automated_decision", true);
      decision.logic = decision.logics.In(kSourceLanguage);
      decision.significance = decision.significances.In(kSourceLanguage);
    }
    if (const YAML::Node r = n["retention"]) {
      a.retention = r.IsScalar() ? r.as<std::string>() : f.String(r, "duration", where, false);
    }
    for (const auto& other : *out) {
      if (other.id == a.id) f.Problem(line, where + ": declared twice");
    }
    out->push_back(std::move(a));
  }
}

// matching.yaml: {version, fields: {given_name, family_name, postal_code, phone, street},
// given_names: [[canonical, variant, ...], ...]}.
void LoadMatching(YamlFile& f, const Schema& schema, MatchingPolicy* out) {
  f.OnlyKeys(f.root(), {"version", "fields", "given_names"}, "matching");
  if (const YAML::Node fields = f.root()["fields"]) {
    const std::string where = "matching.fields";
    f.OnlyKeys(fields, {"given_name", "family_name", "postal_code", "phone", "street"}, where);
    for (auto [key, into] :
         {std::pair{"given_name", &out->given_name}, std::pair{"family_name", &out->family_name},
          std::pair{"postal_code", &out->postal_code}, std::pair{"phone", &out->phone},
          std::pair{"street", &out->street}}) {
      *into = f.String(fields, key, where, false, *into);
      if (schema.Find(*into) == nullptr) {
        f.Problem(YamlFile::Line(fields[key] ? fields[key] : fields),
                  where + "." + key + ": '" + *into + "' is not a field of the schema");
      }
    }
  }
  const YAML::Node groups = f.root()["given_names"];
  if (groups && !groups.IsSequence()) {
    f.Problem(YamlFile::Line(groups), "given_names must be a list of lists of names");
  }
  std::map<std::string, int> seen;  // folded variant -> line of its group
  for (size_t g = 0; groups && groups.IsSequence() && g < groups.size(); ++g) {
    const YAML::Node group = groups[g];
    const int line = YamlFile::Line(group);
    if (!group.IsSequence() || group.size() < 2) {
      f.Problem(line, "given_names: each entry is a list of two or more spellings of one name");
      continue;
    }
    const std::string canonical = FoldText(group[0].as<std::string>(""));
    for (const auto& name : group) {
      const std::string folded = name.IsScalar() ? FoldText(name.as<std::string>()) : "";
      if (folded.empty()) {
        f.Problem(YamlFile::Line(name), "given_names: a spelling needs letters");
        continue;
      }
      auto [it, fresh] = seen.emplace(folded, line);
      if (!fresh && out->given_names[folded] != canonical) {
        f.Problem(YamlFile::Line(name), "given_names: '" + folded +
                                            "' is also in the group of line " +
                                            std::to_string(it->second));
        continue;
      }
      out->given_names[folded] = canonical;
    }
  }
  out->enabled = true;
}

void LoadRoles(YamlFile& f, std::map<std::string, Role>* out) {
  f.OnlyKeys(f.root(), {"version", "roles"}, "roles");
  const YAML::Node roles = f.root()["roles"];
  if (!roles || !roles.IsMap()) {
    f.Problem(1, "'roles' must map role names to their rights");
    return;
  }
  for (const auto& kv : roles) {
    Role r;
    r.name = kv.first.as<std::string>("");
    const std::string where = "role '" + r.name + "'";
    f.OnlyKeys(kv.second, {"description", "capabilities", "personal_data"}, where);
    r.description = f.String(kv.second, "description", where, false);
    for (auto& c : f.List(kv.second, "capabilities", where)) r.capabilities.insert(std::move(c));
    r.personal_data = f.Bool(kv.second, "personal_data", where, false);
    (*out)[r.name] = std::move(r);
  }
  for (const char* required : {"admin", "officer", "operator", "marketing", "auditor"}) {
    if (out->count(required) == 0) f.Problem(1, std::string("missing role '") + required + "'");
  }
}

// Every file of `dir` whose name ends in `suffix`, sorted.
std::vector<std::string> FilesEndingIn(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadWhole(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  *ok = static_cast<bool>(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void HashFile(crypto_hash_sha256_state* hash, const std::string& name, const std::string& raw) {
  const std::string framed = name + '\0' + std::to_string(raw.size()) + '\0';
  crypto_hash_sha256_update(hash, reinterpret_cast<const uint8_t*>(framed.data()), framed.size());
  crypto_hash_sha256_update(hash, reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
}

// mail/<lang>/<name>.txt ("Subject: ..." line, blank line, body) and <name>.html.
void LoadMail(const std::string& dir, const std::string& lang, crypto_hash_sha256_state* hash,
              Status* problems, std::map<std::string, MailTemplate>* out) {
  const std::string sub = "mail/" + lang;
  for (const auto& file : FilesEndingIn(dir + "/" + sub, ".txt")) {
    MailTemplate t;
    t.name = file.substr(0, file.size() - 4);
    t.file = sub + "/" + file;
    bool ok = false;
    const std::string text = ReadWhole(dir + "/" + t.file, &ok);
    const std::string html_file = sub + "/" + t.name + ".html";
    bool html_ok = false;
    const std::string html = ReadWhole(dir + "/" + html_file, &html_ok);
    HashFile(hash, t.file, text);
    HashFile(hash, html_file, html);
    auto problem = [&](const std::string& where, int line, const std::string& message) {
      problems->AddError(where + ":" + std::to_string(line), message);
    };
    if (!ok) {
      problem(t.file, 0, "cannot read file");
      continue;
    }
    if (!html_ok)
      problem(html_file, 0, "cannot read file: every message has a text and an HTML body");
    if (text.rfind("Subject: ", 0) != 0) {
      problem(t.file, 1, "the first line must be 'Subject: ...'");
      continue;
    }
    const size_t eol = text.find('\n');
    t.subject = text.substr(9, eol == std::string::npos ? std::string::npos : eol - 9);
    while (!t.subject.empty() && (t.subject.back() == '\r' || t.subject.back() == ' ')) {
      t.subject.pop_back();
    }
    t.text = eol == std::string::npos ? "" : text.substr(eol + 1);
    if (!t.text.empty() && t.text[0] == '\n') t.text.erase(0, 1);
    t.html = html;
    for (const auto& [body, where] : {std::pair{&text, t.file}, std::pair{&html, html_file}}) {
      for (const auto& name : UnknownTemplateVariables(*body)) {
        const size_t at = body->find(name);
        const int line =
            1 + static_cast<int>(std::count(body->begin(),
                                            body->begin() + static_cast<std::ptrdiff_t>(at), '\n'));
        problem(where, line, "unknown template variable '" + name + "'");
      }
    }
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state version;
    crypto_hash_sha256_init(&version);
    HashFile(&version, t.file, text);
    HashFile(&version, html_file, html);
    crypto_hash_sha256_final(&version, digest);
    t.version = HexEncode(digest, 8);
    (*out)[t.name] = std::move(t);
  }
}

// locales/<lang>.yaml: {language, name, texts: {key: text}}, and the language's messages.
void LoadLocales(const std::string& dir, crypto_hash_sha256_state* hash, Status* problems,
                 std::map<std::string, Locale>* out) {
  for (const auto& file : FilesEndingIn(dir + "/locales", ".yaml")) {
    YamlFile f(dir, "locales/" + file, problems);
    std::string raw;
    const bool loaded = f.Load(&raw);
    HashFile(hash, "locales/" + file, raw);
    if (!loaded) continue;
    Locale locale;
    locale.file = "locales/" + file;
    locale.code = file.substr(0, file.size() - 5);
    try {
      f.OnlyKeys(f.root(), {"version", "language", "name", "texts"}, "locale");
      const std::string declared = f.String(f.root(), "language", "locale", true);
      if (!IsLanguageCode(locale.code) || declared != locale.code) {
        f.Problem(1, "the file of language '" + declared + "' must be named " + declared +
                         ".yaml, with a lower-case language code (fr, en, pt-br)");
        continue;
      }
      locale.name = f.String(f.root(), "name", "locale", true);
      const YAML::Node texts = f.root()["texts"];
      if (!texts || !texts.IsMap()) {
        f.Problem(1, "'texts' must map keys to texts");
        continue;
      }
      for (const auto& kv : texts) {
        const std::string key = kv.first.as<std::string>("");
        if (!kv.second.IsScalar()) {
          f.Problem(YamlFile::Line(kv.second), "text '" + key + "' must be a text value");
          continue;
        }
        locale.texts[key] = kv.second.as<std::string>();
        locale.lines[key] = YamlFile::Line(kv.first);
      }
    } catch (const YAML::Exception& e) {
      f.Problem(e.mark.line >= 0 ? e.mark.line + 1 : 1,
                std::string("unexpected structure: ") + e.msg);
      continue;
    }
    LoadMail(dir, locale.code, hash, problems, &locale.mail);
    (*out)[locale.code] = std::move(locale);
  }
  if (out->count(kSourceLanguage) == 0) {
    problems->AddError(std::string("locales/") + kSourceLanguage + ".yaml:0",
                       "the source language's texts are required: every other language falls "
                       "back to them");
  }
}

}  // namespace

const NoticeVersion* Purpose::NoticeAt(const std::string& day) const {
  const NoticeVersion* best = nullptr;
  for (const auto& n : notices) {
    if (n.valid_from <= day && (best == nullptr || best->valid_from <= n.valid_from)) best = &n;
  }
  return best;
}

const NoticeVersion* Purpose::FindNotice(const std::string& version) const {
  for (const auto& n : notices) {
    if (n.version == version) return &n;
  }
  return nullptr;
}

std::string PolicySet::Text(const std::string& lang, const std::string& key) const {
  for (const std::string& code : {lang, std::string(kSourceLanguage)}) {
    auto l = locales_.find(code);
    if (l == locales_.end()) continue;
    auto t = l->second.texts.find(key);
    if (t != l->second.texts.end()) return t->second;
  }
  return key;  // a key no file has: shown as is, and reported by lint (text-missing)
}

std::string PolicySet::Day(const std::string& lang, int64_t time) const {
  const std::string day = FormatRfc3339(time).substr(0, 10);  // YYYY-MM-DD
  const auto months = SplitList(Text(lang, "date.months"), ',');
  if (months.size() != 12) return day;
  std::string out = Text(lang, "date.pattern");
  auto put = [&](const std::string& name, const std::string& value) {
    const size_t at = out.find(name);
    if (at != std::string::npos) out.replace(at, name.size(), value);
  };
  std::string month = months[static_cast<size_t>(std::stoi(day.substr(5, 2)) - 1)];
  month.erase(0, month.find_first_not_of(' '));
  put("{day}", std::to_string(std::stoi(day.substr(8, 2))));
  put("{month}", month);
  put("{year}", day.substr(0, 4));
  return out;
}

const MailTemplate* PolicySet::Template(const std::string& lang, const std::string& name) const {
  for (const std::string& code : {lang, std::string(kSourceLanguage)}) {
    auto l = locales_.find(code);
    if (l == locales_.end()) continue;
    auto t = l->second.mail.find(name);
    if (t != l->second.mail.end()) return &t->second;
  }
  return nullptr;
}

const char* LegalBasisName(LegalBasis b) {
  switch (b) {
    case LegalBasis::kConsent: return "consent";
    case LegalBasis::kContract: return "contract";
    case LegalBasis::kLegalObligation: return "legal_obligation";
    case LegalBasis::kVitalInterests: return "vital_interests";
    case LegalBasis::kPublicTask: return "public_task";
    case LegalBasis::kLegitimateInterests: return "legitimate_interests";
  }
  return "consent";
}

const Activity* PolicySet::FindActivity(std::string_view id) const {
  for (const auto& a : activities_) {
    if (a.id == id) return &a;
  }
  return nullptr;
}

const Purpose* PolicySet::FindPurpose(const std::string& id) const {
  for (const auto& p : purposes_) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

const Role* PolicySet::FindRole(const std::string& name) const {
  auto it = roles_.find(name);
  return it == roles_.end() ? nullptr : &it->second;
}

Result<std::shared_ptr<const PolicySet>> LoadPolicies(const std::string& dir) {
  Status problems(Code::kUnprocessable, "policies in " + dir + " are not valid");
  auto set = std::shared_ptr<PolicySet>(new PolicySet());  // private constructor
  set->directory_ = dir;
  crypto_hash_sha256_state hash;
  crypto_hash_sha256_init(&hash);
  auto load = [&](const char* name, auto&& parse) {
    YamlFile f(dir, name, &problems);
    std::string raw;
    const bool loaded = f.Load(&raw);
    const std::string framed = std::string(name) + '\0' + std::to_string(raw.size()) + '\0';
    crypto_hash_sha256_update(&hash, reinterpret_cast<const uint8_t*>(framed.data()),
                              framed.size());
    crypto_hash_sha256_update(&hash, reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
    if (!loaded) return;
    // yaml-cpp throws on a document of an unexpected shape (a list or a scalar where a mapping
    // belongs, then indexed): a problem with the file, not a crash of the service.
    try {
      parse(f);
    } catch (const YAML::Exception& e) {
      f.Problem(e.mark.line >= 0 ? e.mark.line + 1 : 1,
                std::string("unexpected structure: ") + e.msg);
    }
  };
  load("schema.yaml", [&](YamlFile& f) { LoadSchema(f, &set->schema_); });
  load("purposes.yaml", [&](YamlFile& f) { LoadPurposes(f, &set->purposes_); });
  load("register.yaml", [&](YamlFile& f) {
    LoadRegister(f, set->schema_, set->purposes_, &set->activities_);
    JsonWriter org;
    YamlToJson(f.root()["organisation"], org);
    set->organisation_json_ = org.Take();
    const YAML::Node controller = f.root()["organisation"]["controller"];
    if (controller && controller.IsMap()) {
      set->controller_name_ = f.String(controller, "name", "controller", true);
      set->controller_contact_ = f.String(controller, "contact", "controller", false);
      auto& c = set->controller_;
      c.name = set->controller_name_;
      c.contact = set->controller_contact_;
      c.address = f.String(controller, "address", "controller", false);
      c.line = YamlFile::Line(controller);
      const YAML::Node dpo = f.root()["organisation"]["dpo"];
      if (dpo && dpo.IsMap()) c.dpo_contact = f.String(dpo, "contact", "dpo", false);
      c.privacy_notice = f.Local(f.root()["organisation"], "privacy_notice", "organisation", false);
    } else {
      f.Problem(1, "'organisation.controller' (name, address, contact) is required");
    }
    if (const YAML::Node sa = f.root()["organisation"]["supervisory_authority"]) {
      const std::string where = "organisation.supervisory_authority";
      f.OnlyKeys(sa, {"name", "address", "url"}, where);
      set->authority_ = {f.String(sa, "name", where, true), f.String(sa, "address", where, false),
                         f.String(sa, "url", where, false)};
    }
  });
  load("roles.yaml", [&](YamlFile& f) { LoadRoles(f, &set->roles_); });
  if (std::filesystem::exists(dir + "/matching.yaml")) {
    load("matching.yaml", [&](YamlFile& f) { LoadMatching(f, set->schema_, &set->matching_); });
  }
  LoadLocales(dir, &hash, &problems, &set->locales_);
  for (const auto& [code, _] : set->locales_) set->languages_.insert(code);
  uint8_t digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&hash, digest);
  set->content_hash_ = HexEncode(digest, sizeof digest);
  if (!problems.errors().empty()) return problems;
  return std::shared_ptr<const PolicySet>(std::move(set));
}

std::optional<RetentionRule> ParseRetentionRule(const std::string& text, const Schema& schema,
                                                std::string* problem) {
  const size_t after = text.find(" after ");
  RetentionRule rule;
  rule.duration = text.substr(0, after);
  if (rule.duration.empty() || rule.duration[0] != 'P' || !AddIsoDuration(0, rule.duration)) {
    *problem = "'" + text + "' does not start with an ISO 8601 duration (e.g. P3Y)";
    return std::nullopt;
  }
  if (after == std::string::npos) {
    rule.anchor =
        RetentionRule::Anchor::kLastInteraction;  // a bare duration: from the last contact
    return rule;
  }
  const std::string anchor = text.substr(after + 7);
  using A = RetentionRule::Anchor;
  static const std::pair<const char*, A> kNamed[] = {
      {"created", A::kCreated},
      {"created_at", A::kCreated},
      {"last_interaction", A::kLastInteraction},
      {"last_interaction_at", A::kLastInteraction},
      {"last_contact", A::kLastInteraction},
      {"consent_withdrawn", A::kConsentEnded},
      {"consent_withdrawn_at", A::kConsentEnded},
      {"request_closed", A::kRequestClosed},
      {"request_closed_at", A::kRequestClosed},
      {"closing", A::kRequestClosed},
  };
  for (const auto& [name, a] : kNamed) {
    if (anchor == name) {
      rule.anchor = a;
      return rule;
    }
  }
  if (const FieldSpec* f = schema.Find(anchor); f != nullptr && f->type == FieldType::kDate) {
    rule.anchor = A::kDateField;
    rule.field = anchor;
    return rule;
  }
  *problem = "Garde cannot evaluate the anchor '" + anchor +
             "': use created, last_interaction, consent_withdrawn, request_closed or a date "
             "field of the schema";
  return std::nullopt;
}

}  // namespace garde

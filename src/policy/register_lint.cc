#include "garde/policy/register_lint.h"

namespace garde {
namespace {

std::string At(const char* file, int line) {
  return std::string(file) + ":" + std::to_string(line);
}

// Customers are spoken to in every language the policies ship (locales/): each of their texts
// and messages must exist in each, or the customer reads the source language's words.
void LintTranslations(const PolicySet& p, std::vector<LintFinding>* out) {
  auto local = [&](const LocalText& text, const std::string& what) {
    if (text.empty()) return;
    for (const auto& lang : p.languages()) {
      if (text.by_lang.count(lang)) continue;
      out->push_back({"warning", "translation-missing", text.file + ":" + std::to_string(text.line),
                      what + " has no " + lang + " text",
                      "give it as a mapping of languages: {en: ..., " + lang + ": ...}"});
    }
  };
  for (const auto& pu : p.purposes()) {
    local(pu.titles, "the title of purpose '" + pu.id + "'");
    local(pu.descriptions, "the description of purpose '" + pu.id + "'");
    for (const auto& n : pu.notices) {
      local(n.texts.empty() ? n.urls : n.texts,
            "notice " + n.version + " of purpose '" + pu.id + "'");
    }
  }
  for (const auto& a : p.activities()) {
    local(a.names, "the name of activity '" + a.id + "'");
    local(a.automated_decision.logics, "the automated decision logic of activity '" + a.id + "'");
    local(a.automated_decision.significances,
          "the automated decision significance of activity '" + a.id + "'");
  }
  local(p.controller().privacy_notice, "the privacy notice link");
  auto source = p.locales().find(kSourceLanguage);
  if (source == p.locales().end()) return;
  for (const auto& [lang, locale] : p.locales()) {
    if (lang == kSourceLanguage) continue;
    for (const auto& [key, _] : source->second.texts) {
      if (locale.texts.count(key)) continue;
      out->push_back({"warning", "translation-missing",
                      source->second.file + ":" + std::to_string(source->second.lines.at(key)),
                      "text '" + key + "' has no " + lang + " translation",
                      "add it under texts: in " + locale.file});
    }
    for (const auto& [key, line] : locale.lines) {
      if (source->second.texts.count(key)) continue;
      out->push_back({"warning", "text-unknown", locale.file + ":" + std::to_string(line),
                      "text '" + key + "' is not in " + source->second.file + ": nothing shows it",
                      "remove it, or correct its key"});
    }
    for (const auto& [name, tmpl] : source->second.mail) {
      if (locale.mail.count(name)) continue;
      out->push_back({"warning", "translation-missing", tmpl.file + ":1",
                      "message '" + name + "' has no " + lang + " template",
                      "add mail/" + lang + "/" + name + ".txt and .html"});
    }
  }
}

}  // namespace

std::vector<LintFinding> LintRegister(const PolicySet& p) {
  std::vector<LintFinding> out;
  for (const auto& f : p.schema().fields()) {
    bool covered = false;
    for (const auto& a : p.activities()) covered |= a.fields.count(f.name) != 0;
    if (!covered) {
      out.push_back({"error", "field-not-covered", At("schema.yaml", f.line),
                     "field '" + f.name + "' is used by no processing activity",
                     "list it under data.fields of the activities that use it, or remove it"});
    }
    if (f.blind_index_bytes > 0 && (f.type == FieldType::kEnum || f.type == FieldType::kBool ||
                                    f.type == FieldType::kCountry)) {
      out.push_back(
          {"warning", "blind-index-low-cardinality", At("schema.yaml", f.line),
           "field '" + f.name + "' has few possible values: its blind index reveals them",
           "remove blind_index, or index it only together with a high-cardinality field"});
    }
  }
  for (const auto& pu : p.purposes()) {
    bool used = false;
    for (const auto& a : p.activities()) {
      for (const auto& id : a.purposes) used |= id == pu.id;
    }
    if (!used) {
      out.push_back({"error", "purpose-unused", At("purposes.yaml", pu.line),
                     "purpose '" + pu.id + "' is served by no processing activity",
                     "add it to the purposes of an activity, or remove it"});
    }
    if (pu.legal_basis == LegalBasis::kConsent && pu.notices.empty()) {
      out.push_back({"error", "consent-without-notice", At("purposes.yaml", pu.line),
                     "purpose '" + pu.id + "' rests on consent but has no notice",
                     "add notices: [{version, text or url, valid_from}]"});
    }
  }
  for (const auto& a : p.activities()) {
    if (a.retention.empty()) {
      out.push_back(
          {"error", "activity-without-retention", At("register.yaml", a.line),
           "activity '" + a.id + "' has no retention rule",
           "add retention: an ISO 8601 duration, \"P3Y after last_interaction\", or criteria"});
    }
    // Art. 5(1)(e): a retention Garde can execute is applied by the sweep (docs/policies.md);
    // criteria text is allowed by the register format but nothing enforces it.
    auto check_rule = [&](const std::string& rule, const std::string& what) {
      if (rule.empty()) return;
      std::string problem;
      if (ParseRetentionRule(rule, p.schema(), &problem)) return;
      const bool criteria = rule[0] != 'P';
      out.push_back(
          {criteria ? "warning" : "error",
           criteria ? "retention-not-executable" : "retention-anchor-unknown",
           At("register.yaml", a.line), "activity '" + a.id + "' " + what + ": " + problem,
           criteria ? "write it as DURATION after ANCHOR so that the retention sweep applies it"
                    : "use created, last_interaction, consent_withdrawn, request_closed "
                      "or a date field of the schema"});
    };
    check_rule(a.retention, "retention");
    for (const auto& [category, rule] : a.category_retention) {
      check_rule(rule, "retention of " + category);
    }
    if (!a.has_legal_basis) {
      out.push_back({"error", "activity-without-legal-basis", At("register.yaml", a.line),
                     "activity '" + a.id + "' has no legal basis",
                     "add legal_basis (GDPR Art. 6)"});
    }
    bool special = false;
    for (const auto& name : a.fields) {
      const FieldSpec* f = p.schema().Find(name);
      special |= f != nullptr && IsSpecialCategory(f->category);
    }
    if (special && !a.has_art9_condition) {
      out.push_back(
          {"error", "special-category-without-art9", At("register.yaml", a.line),
           "activity '" + a.id + "' processes special-category data without an Art. 9 condition",
           "add art9_condition (e.g. explicit_consent, Art. 9(2)(a))"});
    }
    // An erasure holds an obligation's fields only when its retention runs from an anchor it
    // can evaluate for one subject (last_interaction, created, a date field; see Erase).
    const size_t after = a.retention.find(" after ");
    const std::string anchor = after == std::string::npos ? "" : a.retention.substr(after + 7);
    const FieldSpec* anchor_field = p.schema().Find(anchor);
    const bool holds_at_erasure =
        !a.retention.empty() && a.retention[0] == 'P' &&
        (anchor.empty() || anchor == "last_interaction" || anchor == "created" ||
         (anchor_field != nullptr && anchor_field->type == FieldType::kDate));
    if (a.legal_basis == LegalBasis::kLegalObligation && holds_at_erasure) {
      for (const auto& name : a.fields) {
        const FieldSpec* f = p.schema().Find(name);
        if (f == nullptr || (f->type != FieldType::kEmail && f->type != FieldType::kPhone)) {
          continue;
        }
        // Art. 5(1)(c), 17(3)(b): a legal obligation keeps what the obligation needs. A hold
        // on a contact channel keeps the customer reachable after they asked to be erased.
        out.push_back({"warning", "legal-hold-keeps-contact", At("register.yaml", a.line),
                       "activity '" + a.id + "' is under a legal obligation and lists '" + name +
                           "': an erasure would keep this contact for the whole hold",
                       "list only what the obligation needs (invoices: name, billing address, "
                       "amounts); use the contact under a contract or consent activity"});
      }
    }
    for (const auto& country : a.transfers_without_safeguard) {
      out.push_back(
          {"error", "transfer-without-safeguard", At("register.yaml", a.line),
           "activity '" + a.id + "' transfers data to " + country + " without a safeguard",
           "add safeguard (adequacy decision, SCC, BCR) and its documentation"});
    }
  }
  LintTranslations(p, &out);
  return out;
}

}  // namespace garde

// What Garde says to customers, in their language: the texts of the customer pages
// (policies/locales/<lang>.yaml), the message templates (policies/mail/<lang>/<name>.txt and
// .html), and policy texts given per language (a purpose's title, a notice). Adding a
// language is adding its files; no code names a language.
//
//   const std::string& title = purpose.titles.In("fr");
//   std::string html = RenderTemplate(tmpl.html, values, TemplateEscape::kHtml);
//   std::string lang = BestLanguage("fr-CH, fr;q=0.9, en;q=0.8", {"en", "fr"});  // "fr"
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace garde {

// The language policy texts fall back to when one is missing (the shipped files' source).
inline constexpr const char* kSourceLanguage = "en";

// A customer-facing text in several languages. In the policy files a plain text is in the
// source language, a mapping gives one text per language code.
struct LocalText {
  std::map<std::string, std::string> by_lang;
  std::string file;  // where it was read, for lint findings
  int line = 0;

  // The text in `lang`, else in the source language, else in any; "" when there is none.
  const std::string& In(const std::string& lang) const;
  bool empty() const { return by_lang.empty(); }
};

// One message: its subject line and plain-text body (<name>.txt: "Subject: ..." then a blank
// line then the body) and its HTML body (<name>.html).
struct MailTemplate {
  std::string name;
  std::string subject, text, html;
  std::string version;  // the first 16 hex digits of SHA-256 over both files
  std::string file;     // mail/<lang>/<name>.txt
};

struct Locale {
  std::string code;                          // "fr", "en", "pt-br"
  std::string name;                          // the language's own name ("Français")
  std::map<std::string, std::string> texts;  // key -> text
  std::map<std::string, int> lines;          // key -> line in the file
  std::string file;                          // locales/<code>.yaml
  std::map<std::string, MailTemplate> mail;  // template name -> template
};

// The names a template may use, and what they hold (docs/policies.md, Messages).
const std::set<std::string>& TemplateVariables();

enum class TemplateEscape { kNone, kHtml };
// `tmpl` with every {{name}} replaced by values[name] ("" when absent). With kHtml every
// value is escaped: a template cannot insert unescaped text.
std::string RenderTemplate(const std::string& tmpl,
                           const std::map<std::string, std::string>& values, TemplateEscape escape);
// The {{names}} a template uses that TemplateVariables() does not know.
std::vector<std::string> UnknownTemplateVariables(const std::string& tmpl);

// The best of `available` for an Accept-Language header (RFC 9110 §12.5.4, with q-values and
// prefix matching: "fr-CH" picks "fr"); "" when none is acceptable.
std::string BestLanguage(const std::string& accept_language,
                         const std::set<std::string>& available);

// The language to speak to a customer in, the first of these that `available` has: an
// explicit choice on the page, the subject's `language` field, the browser's Accept-Language,
// the configured default; the source language when none is.
std::string ChooseLanguage(const std::set<std::string>& available, const std::string& chosen,
                           const std::string& subject_language, const std::string& accept_language,
                           const std::string& fallback);

// Lower-case language code: 2-3 letters, optionally "-" and 2-8 letters or digits.
bool IsLanguageCode(const std::string& code);

}  // namespace garde

#include "garde/policy/locale.h"

#include <algorithm>
#include <cstdlib>

#include "garde/base/encoding.h"

namespace garde {

const std::string& LocalText::In(const std::string& lang) const {
  static const std::string kNone;
  auto it = by_lang.find(lang);
  if (it != by_lang.end()) return it->second;
  it = by_lang.find(kSourceLanguage);
  if (it != by_lang.end()) return it->second;
  return by_lang.empty() ? kNone : by_lang.begin()->second;
}

const std::set<std::string>& TemplateVariables() {
  static const std::set<std::string> kNames{
      // The controller (register.yaml organisation), on every message.
      "controller_name", "controller_address", "controller_contact", "dpo_contact",
      "privacy_notice_url",
      // A request: its type in words, dates, the reason given, the link to open it.
      "request_type", "received_on", "due_on", "reason", "link", "link_expires_on",
      // Where to complain (Art. 77).
      "authority_name", "authority_address", "authority_url",
      // A consent to confirm (double opt-in): the purpose and the notice it rests on.
      "purpose_title", "notice_version", "notice_url",
      // A breach notice (Art. 34(2)): what happened, its likely consequences, the measures.
      "breach_nature", "breach_consequences", "breach_measures"};
  return kNames;
}

namespace {

// Calls visit(name, begin, end) for each {{name}} of `tmpl`, with its position.
template <typename Visit>
void ForEachPlaceholder(const std::string& tmpl, Visit&& visit) {
  size_t at = 0;
  while ((at = tmpl.find("{{", at)) != std::string::npos) {
    const size_t close = tmpl.find("}}", at + 2);
    if (close == std::string::npos) return;
    std::string name = tmpl.substr(at + 2, close - at - 2);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    visit(name, at, close + 2);
    at = close + 2;
  }
}

}  // namespace

std::string RenderTemplate(const std::string& tmpl,
                           const std::map<std::string, std::string>& values,
                           TemplateEscape escape) {
  std::string out;
  size_t copied = 0;
  ForEachPlaceholder(tmpl, [&](const std::string& name, size_t begin, size_t end) {
    out.append(tmpl, copied, begin - copied);
    auto it = values.find(name);
    if (it != values.end()) {
      out += escape == TemplateEscape::kHtml ? HtmlEscape(it->second) : it->second;
    }
    copied = end;
  });
  out.append(tmpl, copied, std::string::npos);
  return out;
}

std::vector<std::string> UnknownTemplateVariables(const std::string& tmpl) {
  std::vector<std::string> out;
  ForEachPlaceholder(tmpl, [&](const std::string& name, size_t, size_t) {
    if (TemplateVariables().count(name) == 0) out.push_back(name);
  });
  return out;
}

bool IsLanguageCode(const std::string& code) {
  const size_t dash = code.find('-');
  const std::string primary = code.substr(0, dash);
  if (primary.size() < 2 || primary.size() > 3) return false;
  for (char c : primary) {
    if (c < 'a' || c > 'z') return false;
  }
  if (dash == std::string::npos) return true;
  const std::string region = code.substr(dash + 1);
  if (region.size() < 2 || region.size() > 8) return false;
  for (char c : region) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

std::string BestLanguage(const std::string& accept_language,
                         const std::set<std::string>& available) {
  std::string best;
  double best_q = 0;
  for (const auto& item : SplitList(accept_language, ',')) {
    std::string range = item.substr(0, item.find(';'));
    range.erase(0, range.find_first_not_of(" \t"));
    range.erase(range.find_last_not_of(" \t") + 1);
    range = AsciiLower(range);
    double q = 1;
    const size_t qpos = item.find(";q=");
    if (qpos == std::string::npos) {
      const size_t spaced = item.find("; q=");
      if (spaced != std::string::npos) q = std::strtod(item.c_str() + spaced + 4, nullptr);
    } else {
      q = std::strtod(item.c_str() + qpos + 3, nullptr);
    }
    if (!(q > 0) || q > 1) continue;  // q=0: "not acceptable"; nonsense values count for nothing
    // The exact tag, then its primary language ("fr-CH" -> "fr"); "*" takes the first we have.
    std::string match;
    if (available.count(range)) {
      match = range;
    } else if (const std::string primary = range.substr(0, range.find('-'));
               available.count(primary)) {
      match = primary;
    } else if (range == "*" && !available.empty()) {
      match = available.count(kSourceLanguage) ? kSourceLanguage : *available.begin();
    }
    if (!match.empty() && q > best_q) {
      best = match;
      best_q = q;
    }
  }
  return best;
}

std::string ChooseLanguage(const std::set<std::string>& available, const std::string& chosen,
                           const std::string& subject_language, const std::string& accept_language,
                           const std::string& fallback) {
  for (const std::string& named : {chosen, subject_language}) {
    if (named.empty()) continue;
    const std::string best = BestLanguage(named, available);  // "FR", "fr-FR" -> "fr"
    if (!best.empty() && best != "*") return best;
  }
  const std::string browser = BestLanguage(accept_language, available);
  if (!browser.empty()) return browser;
  return available.count(fallback) ? fallback : kSourceLanguage;
}

}  // namespace garde

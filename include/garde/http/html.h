// Server-rendered pages for customers (preference centre, unsubscribe, DSR confirmation,
// access package): escaping, one accessible page frame, and form bodies.
//
//   HtmlPage(x, 200, "Your data", "<p>" + HtmlEscape(text) + "</p>", "fr");
#pragma once

#include <Poco/Dynamic/Var.h>

#include <map>
#include <string>

#include "garde/base/encoding.h"  // HtmlEscape
#include "garde/http/exchange.h"
#include "garde/policy/policy_set.h"

namespace garde {

// A complete HTML document around `body` (also written to files by the CLI); `header` goes
// before the page's <main> (the console's navigation).
std::string HtmlDocument(const std::string& title, const std::string& body,
                         const std::string& lang = "en", const std::string& extra_css = "",
                         const std::string& header = "");
// Answers a complete HTML page (no scripts, strict CSP, no referrer) around `body`.
void HtmlPage(Exchange& x, int status, const std::string& title, const std::string& body,
              const std::string& lang = "en", const std::string& extra_css = "");
// Any parsed JSON value as readable HTML: lists for arrays, definition lists for objects.
std::string JsonHtml(const Poco::Dynamic::Var& v);
// "fr" or "en" for officers' exports: the `lang` query parameter, else Accept-Language.
std::string PageLanguage(const Exchange& x);
// The texts of customer pages in one language (policies/locales/<lang>.yaml).
//   PageWords t(policies, "fr");  body += "<p>" + t.Html("rights.intro") + "</p>";
class PageWords {
 public:
  PageWords(std::shared_ptr<const PolicySet> policies, std::string lang)
      : policies_(std::move(policies)), lang_(std::move(lang)) {}
  std::string operator()(const std::string& key) const { return policies_->Text(lang_, key); }
  std::string Html(const std::string& key) const { return HtmlEscape(policies_->Text(lang_, key)); }
  const std::string& lang() const { return lang_; }
  const PolicySet& policies() const { return *policies_; }

 private:
  std::shared_ptr<const PolicySet> policies_;
  std::string lang_;
};
// Who speaks on a customer page: the controller's name, address and contact, the DPO and the
// privacy notice in the page's language (register.yaml organisation).
std::string ControllerHtml(const PageWords& t);
// A customer page: HtmlPage in the words' language, closed by ControllerHtml.
void CustomerPage(Exchange& x, int status, const PageWords& t, const std::string& title,
                  const std::string& body);
// The calendar day of `t` for a customer: "2 December 2026", "2 décembre 2026" (date.* texts).
std::string CustomerDay(const PageWords& t, int64_t time);
// application/x-www-form-urlencoded pairs, names and values decoded.
std::multimap<std::string, std::string> FormPairs(const std::string& body);

}  // namespace garde

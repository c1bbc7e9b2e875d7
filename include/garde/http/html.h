// Server-rendered pages for customers (preference centre, unsubscribe, DSR confirmation,
// access package): escaping, one accessible page frame, and form bodies.
//
//   HtmlPage(x, 200, "Your data", "<p>" + HtmlEscape(text) + "</p>", "fr");
#pragma once

#include <Poco/Dynamic/Var.h>

#include <map>
#include <string>

#include "garde/http/exchange.h"

namespace garde {

std::string HtmlEscape(const std::string& s);
// A complete HTML document around `body` (also written to files by the CLI).
std::string HtmlDocument(const std::string& title, const std::string& body,
                         const std::string& lang = "en", const std::string& extra_css = "");
// Answers a complete HTML page (no scripts, strict CSP, no referrer) around `body`.
void HtmlPage(Exchange& x, int status, const std::string& title, const std::string& body,
              const std::string& lang = "en", const std::string& extra_css = "");
// Any parsed JSON value as readable HTML: lists for arrays, definition lists for objects.
std::string JsonHtml(const Poco::Dynamic::Var& v);
// "fr" or "en": the `lang` query parameter, else Accept-Language.
std::string PageLanguage(const Exchange& x);
// application/x-www-form-urlencoded pairs, names and values decoded.
std::multimap<std::string, std::string> FormPairs(const std::string& body);

}  // namespace garde

#include "garde/http/html.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/URI.h>

#include "garde/base/clock.h"

namespace garde {

std::string JsonHtml(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return "";
  if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
    std::string out = "<dl>";
    for (const auto& [k, member] : *v.extract<Poco::JSON::Object::Ptr>()) {
      out += "<dt>" + HtmlEscape(k) + "</dt><dd>" + JsonHtml(member) + "</dd>";
    }
    return out + "</dl>";
  }
  if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
    const auto& arr = *v.extract<Poco::JSON::Array::Ptr>();
    if (arr.size() == 0) return "";
    std::string out = "<ul>";
    for (size_t i = 0; i < arr.size(); ++i) {
      out += "<li>" + JsonHtml(arr.get(static_cast<unsigned>(i))) + "</li>";
    }
    return out + "</ul>";
  }
  return HtmlEscape(v.toString());
}

std::string HtmlDocument(const std::string& title, const std::string& body, const std::string& lang,
                         const std::string& extra_css, const std::string& header) {
  return "<!doctype html><html lang=\"" + lang +
         "\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         "<title>" +
         HtmlEscape(title) +
         "</title>"
         "<style>body{font:1.1rem/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;"
         "padding:0 1rem;color:#111;background:#fff}button{font:inherit;padding:.6rem 1.2rem;"
         "border:2px solid #111;background:#111;color:#fff;border-radius:.3rem}"
         "button:focus,input:focus{outline:3px solid #1a56db;outline-offset:2px}"
         ".purpose{border:1px solid #555;border-radius:.3rem;padding:.8rem;margin:1rem 0}"
         ".purpose label{font-weight:600}.notice{color:#333;margin:.3rem 0 0 1.8rem}"
         "input[type=checkbox]{width:1.2rem;height:1.2rem;margin-right:.6rem}"
         ".status{background:#e6f4ea;border-left:4px solid #137333;padding:.6rem}"
         ".secondary{background:#fff;color:#111}table{border-collapse:collapse;width:100%;"
         "margin:.5rem 0 1.5rem}th,td{border:1px solid #777;padding:.3rem .5rem;"
         "text-align:left;vertical-align:top}caption{text-align:left;font-weight:600}"
         "dt{font-weight:600}dd{margin:0 0 .5rem 1rem}" +
         extra_css + "</style></head><body>" + header +
         "<main>"
         "<h1>" +
         HtmlEscape(title) + "</h1>" + body + "</main></body></html>";
}

void HtmlPage(Exchange& x, int status, const std::string& title, const std::string& body,
              const std::string& lang, const std::string& extra_css) {
  x.status = status;
  x.reply_type = "text/html; charset=utf-8";
  x.reply = HtmlDocument(title, body, lang, extra_css);
  x.reply_headers.emplace_back("Content-Security-Policy",
                               "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
  x.reply_headers.emplace_back("Referrer-Policy", "no-referrer");
}

std::string PageLanguage(const Exchange& x) {
  auto q = x.query.find("lang");
  if (q != x.query.end()) return q->second == "fr" ? "fr" : "en";
  const std::string best = BestLanguage(x.Header("accept-language"), {"en", "fr"});
  return best.empty() ? "en" : best;
}

std::string ControllerHtml(const PageWords& t) {
  const auto& c = t.policies().controller();
  std::string out =
      "<footer aria-labelledby=\"controller\" data-controller><h2 id=\"controller\">" +
      t.Html("controller.heading") + "</h2><dl><dt>" + t.Html("controller.name") + "</dt><dd>" +
      HtmlEscape(c.name) + "</dd>";
  if (!c.address.empty()) {
    out += "<dt>" + t.Html("controller.address") + "</dt><dd>" + HtmlEscape(c.address) + "</dd>";
  }
  if (!c.contact.empty()) {
    out += "<dt>" + t.Html("controller.contact") + "</dt><dd>" + HtmlEscape(c.contact) + "</dd>";
  }
  if (!c.dpo_contact.empty()) {
    out += "<dt>" + t.Html("controller.dpo") + "</dt><dd>" + HtmlEscape(c.dpo_contact) + "</dd>";
  }
  out += "</dl>";
  const std::string& notice = c.privacy_notice.In(t.lang());
  if (!notice.empty()) {
    out += "<p><a data-privacy-notice href=\"" + HtmlEscape(notice) + "\">" +
           t.Html("controller.notice") + "</a></p>";
  }
  return out + "</footer>";
}

void CustomerPage(Exchange& x, int status, const PageWords& t, const std::string& title,
                  const std::string& body) {
  HtmlPage(x, status, title, body + ControllerHtml(t), t.lang());
}

std::string CustomerDay(const PageWords& t, int64_t time) {
  return t.policies().Day(t.lang(), time);
}

std::multimap<std::string, std::string> FormPairs(const std::string& body) {
  auto decode = [](std::string in) {
    for (char& c : in) {
      if (c == '+') c = ' ';
    }
    std::string out;
    try {
      Poco::URI::decode(in, out);
    } catch (const Poco::Exception&) {
      out = in;  // a malformed escape is kept as typed
    }
    return out;
  };
  std::multimap<std::string, std::string> out;
  size_t start = 0;
  while (start < body.size()) {
    size_t amp = body.find('&', start);
    if (amp == std::string::npos) amp = body.size();
    const std::string pair = body.substr(start, amp - start);
    const size_t eq = pair.find('=');
    if (eq != std::string::npos)
      out.emplace(decode(pair.substr(0, eq)), decode(pair.substr(eq + 1)));
    start = amp + 1;
  }
  return out;
}

}  // namespace garde

// Subject links: minting (operator), one-click unsubscribe (RFC 8058, no credentials but the
// token), and the Global Privacy Control statement.
#include <map>

#include "garde/base/clock.h"
#include "garde/base/json_writer.h"
#include "garde/http/html.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"
#include "garde/http/request_pages.h"

namespace garde {
namespace {

constexpr int64_t kDefaultTtl = 60 * 86400;  // links in e-mails live 60 days
constexpr int64_t kMaxTtl = 400 * 86400;

// RFC 8058 §3.1: the body carries List-Unsubscribe=One-Click, form-urlencoded or multipart.
bool IsOneClickBody(const Exchange& x) {
  if (x.content_type == "application/x-www-form-urlencoded") {
    size_t start = 0;
    while (start <= x.body.size()) {
      size_t amp = x.body.find('&', start);
      if (amp == std::string::npos) amp = x.body.size();
      std::string pair = x.body.substr(start, amp - start);
      while (!pair.empty() && (pair.back() == '\r' || pair.back() == '\n')) pair.pop_back();
      if (pair == "List-Unsubscribe=One-Click") return true;
      start = amp + 1;
    }
    return false;
  }
  if (x.content_type == "multipart/form-data") {
    const size_t name = x.body.find("name=\"List-Unsubscribe\"");
    if (name == std::string::npos) return false;
    const size_t value = x.body.find("\r\n\r\n", name);
    return value != std::string::npos && x.body.compare(value + 4, 9, "One-Click") == 0;
  }
  return false;
}

// Where a notice version's text is read: its own URL in the page's language, else Garde's page.
std::string NoticeHref(const Purpose& purpose, const NoticeVersion& notice,
                       const std::string& lang) {
  const std::string& url = notice.urls.In(lang);
  if (!url.empty()) return HtmlEscape(url);
  return "/notices/" + HtmlEscape(purpose.id) + "/" + HtmlEscape(notice.version) + "?lang=" + lang;
}

// GET /notices/{purpose}/{version}: the text a consent rests on, for anyone (no token).
Status NoticePage(Deployment& d, Exchange& x) {
  auto policies = d.policies().Current();
  const Purpose* p = policies->FindPurpose(x.params["purpose"]);
  const NoticeVersion* n = p == nullptr ? nullptr : p->FindNotice(x.params["version"]);
  if (n == nullptr) return NotFound("no such notice");
  const PageWords t = CustomerWords(d, x, "");
  std::string body = "<h2>" + HtmlEscape(p->titles.In(t.lang())) + "</h2><p>" +
                     t.Html("notice.version") + " " + HtmlEscape(n->version);
  if (!n->valid_from.empty()) {
    body += " — " + t.Html("notice.valid_from") + " " + HtmlEscape(n->valid_from);
  }
  body += "</p><p data-notice>" + HtmlEscape(n->texts.In(t.lang())) + "</p>";
  if (!n->urls.empty()) {
    body += "<p><a href=\"" + HtmlEscape(n->urls.In(t.lang())) + "\">" +
            HtmlEscape(n->urls.In(t.lang())) + "</a></p>";
  }
  CustomerPage(x, 200, t, t("notice.title"), body);
  return Status::Ok();
}

// The confirmation link of a double opt-in: GET shows what is confirmed (link scanners
// follow links: only the button confirms), POST records the grant.
Status ConfirmPage(Deployment& d, Exchange& x, bool post) {
  auto claims = d.VerifySubjectToken(x.params["token"]);
  if (!claims.ok() || claims->use != "confirm")
    return NotFound("this link is not valid or has expired");
  GARDE_ASSIGN_OR_RETURN(auto confirmation, d.consents().Confirmation(claims.value()));
  const PageWords t = CustomerWords(d, x, claims->subject);
  const Purpose* p = t.policies().FindPurpose(confirmation.purpose);
  const std::string title = p == nullptr ? confirmation.purpose : p->titles.In(t.lang());
  std::string body;
  if (post) {
    if (x.content_type != "application/x-www-form-urlencoded") {
      return Status(Code::kUnsupportedMediaType,
                    "send the form as application/x-www-form-urlencoded");
    }
    auto done = d.consents().Confirm(claims.value(), Origin(d, x));
    if (!done.ok() && done.status().code() != Code::kConflict) return done.status();
    body = "<p class=\"status\" role=\"status\"" + std::string(done.ok() ? " data-confirmed" : "") +
           ">" + t.Html(done.ok() ? "confirm.done" : "confirm.gone") + "</p><p>" +
           HtmlEscape(title) + "</p>";
  } else if (confirmation.status != "pending" || confirmation.expires_at < d.clock().Now()) {
    body = "<p class=\"status\" role=\"status\">" + t.Html("confirm.gone") + "</p>";
  } else {
    body =
        "<p>" + t.Html("confirm.intro") + "</p><p><strong>" + HtmlEscape(title) + "</strong></p>";
    const NoticeVersion* n = p == nullptr ? nullptr : p->FindNotice(confirmation.notice_version);
    if (n != nullptr) {
      body += "<p class=\"notice\">" + HtmlEscape(n->texts.In(t.lang())) + " (" +
              t.Html("notice.version") + " " + HtmlEscape(n->version) + " — <a href=\"" +
              NoticeHref(*p, *n, t.lang()) + "\">" + t.Html("preferences.read_notice") +
              "</a>)</p>";
    }
    body +=
        "<form method=\"post\"><input type=\"hidden\" name=\"form\" value=\"confirm\">"
        "<button type=\"submit\">" +
        t.Html("confirm.button") + "</button></form>";
  }
  CustomerPage(x, 200, t, t("confirm.title"), body);
  return Status::Ok();
}

Status RenderPreferences(Deployment& d, Exchange& x, const SubjectTokenClaims& claims,
                         const PageWords& t, const std::string& status_message) {
  GARDE_ASSIGN_OR_RETURN(auto prefs, d.consents().Preferences(claims));
  std::string body = "<p>" + t.Html("preferences.intro") + "</p>";
  if (!status_message.empty()) {
    body += "<p class=\"status\" role=\"status\">" + status_message + "</p>";
  }
  body += "<form method=\"post\" aria-label=\"" + t.Html("preferences.title") +
          "\"><input type=\"hidden\" name=\"form\" value=\"preferences\">";
  const std::string today = FormatRfc3339(d.clock().Now()).substr(0, 10);
  int n = 0;
  for (const auto& p : prefs) {
    const std::string id = "p" + std::to_string(n++);
    // The notice a standing consent rests on; otherwise the one a choice now would rest on.
    const NoticeVersion* notice = p.notice_version.empty()
                                      ? p.purpose->NoticeAt(today)
                                      : p.purpose->FindNotice(p.notice_version);
    std::string text = p.purpose->descriptions.In(t.lang());
    if (notice != nullptr && !notice->texts.empty()) text = notice->texts.In(t.lang());
    body += "<div class=\"purpose\"><input type=\"checkbox\" id=\"" + id +
            "\" name=\"purpose\" value=\"" + HtmlEscape(p.purpose->id) + "\" aria-describedby=\"" +
            id + "-notice\"" + (p.decision.allowed ? " checked" : "") + "><label for=\"" + id +
            "\">" + HtmlEscape(p.purpose->titles.In(t.lang())) + "</label> <span data-state=\"" +
            (p.decision.allowed ? "on"
             : p.pending        ? "pending"
                                : "off") +
            "\">(" + t.Html(p.decision.allowed ? "preferences.on" : "preferences.off") +
            ")</span><p class=\"notice\" id=\"" + id + "-notice\">" + HtmlEscape(text) + "</p>";
    if (notice != nullptr) {
      body += "<p class=\"notice\" data-notice-version=\"" + HtmlEscape(notice->version) + "\">" +
              (p.notice_version.empty() ? "" : t.Html("preferences.rests_on") + " ") +
              HtmlEscape(notice->version) + " — <a href=\"" +
              NoticeHref(*p.purpose, *notice, t.lang()) + "\">" +
              t.Html("preferences.read_notice") + "</a></p>";
    }
    if (p.pending)
      body += "<p class=\"notice\" data-pending>" + t.Html("preferences.pending") + "</p>";
    if (p.decision.reason == "objected") {
      body += "<p class=\"notice\">" + t.Html("preferences.objected") + "</p>";
    }
    body += "</div>";
  }
  body += "<button type=\"submit\">" + t.Html("preferences.save") +
          "</button></form>"
          "<form method=\"post\"><input type=\"hidden\" name=\"form\" value=\"unsubscribe_all\">"
          "<p><button type=\"submit\" class=\"secondary\">" +
          t.Html("preferences.unsubscribe_all") + "</button></p></form>";
  GARDE_ASSIGN_OR_RETURN(auto rights, RightsSection(d, claims, t));
  CustomerPage(x, 200, t, t("preferences.title"), body + rights);
  return Status::Ok();
}

Status PreferencesPage(Deployment& d, Exchange& x) {
  auto claims = d.VerifySubjectToken(x.params["token"]);
  if (!claims.ok() || claims->use != "preferences") {
    return NotFound("this link is not valid or has expired");
  }
  const PageWords t = CustomerWords(d, x, claims->subject);
  std::string message;
  if (x.Header("sec-gpc") == "1") {
    auto done = d.consents().ApplyPreferences(claims.value(), nullptr, true, Origin(d, x));
    if (!done.ok()) return done.status();
    message = t.Html("preferences.gpc");
  }
  return RenderPreferences(d, x, claims.value(), t, message);
}

Status PreferencesPost(Deployment& d, Exchange& x) {
  auto claims = d.VerifySubjectToken(x.params["token"]);
  if (!claims.ok() || claims->use != "preferences") {
    return NotFound("this link is not valid or has expired");
  }
  if (x.content_type != "application/x-www-form-urlencoded") {
    return Status(Code::kUnsupportedMediaType,
                  "send the form as application/x-www-form-urlencoded");
  }
  const auto form = FormPairs(x.body);
  const PageWords t = CustomerWords(d, x, claims->subject);
  auto kind = form.find("form");
  std::map<std::string, bool> wanted;
  std::string message;
  if (kind != form.end() && kind->second == "request") {
    GARDE_RETURN_IF_ERROR(OpenRequestFromForm(d, x, claims.value(), form, t, &message));
    return RenderPreferences(d, x, claims.value(), t, message);
  }
  if (kind != form.end() && kind->second == "unsubscribe_all") {
    message = t.Html("preferences.unsubscribed_all");  // nothing wanted
  } else if (kind != form.end() && kind->second == "preferences") {
    auto policies = d.policies().Current();
    auto [b, e] = form.equal_range("purpose");
    for (auto it = b; it != e; ++it) {
      const Purpose* p = policies->FindPurpose(it->second);
      if (p == nullptr || !p->marketing) {
        return Status(Code::kUnprocessable, "the form names an unknown purpose")
            .AddError("purpose", "is not a marketing purpose of the catalogue");
      }
      wanted[p->id] = true;
    }
    message = t.Html("preferences.saved");
  } else {
    return Status(Code::kUnprocessable, "the form is not a preference-centre form")
        .AddError("form", "must be preferences or unsubscribe_all");
  }
  const bool gpc = x.Header("sec-gpc") == "1";
  int asked = 0;
  auto done =
      d.consents().ApplyPreferences(claims.value(), &wanted, gpc, Origin(d, x), t.lang(), &asked);
  if (!done.ok()) return done.status();
  if (asked > 0) message += " " + t.Html("preferences.confirm_sent");
  if (gpc) message += " " + t.Html("preferences.gpc");
  return RenderPreferences(d, x, claims.value(), t, message);
}

Status MintLinks(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  auto policies = d.policies().Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, *x.caller, "links.mint"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  GARDE_ASSIGN_OR_RETURN(auto obj, ParseJsonObject(x.body));
  Status problems(Code::kUnprocessable, "the link request is not valid");
  CheckMembers(*obj, {"uses", "purpose", "ttl_days"}, "", &problems);
  std::vector<std::string> uses;
  if (obj->has("uses")) {
    if (!IsJsonArray(obj->get("uses"))) {
      problems.AddError("uses", "must be an array");
    } else {
      const auto& arr = *obj->getArray("uses");
      for (size_t i = 0; i < arr.size(); ++i) {
        const auto v = arr.get(static_cast<unsigned>(i));
        const std::string use = v.isString() ? v.extract<std::string>() : "";
        if (use != "preferences" && use != "unsubscribe" && use != "dsr") {
          problems.AddError("uses[" + std::to_string(i) + "]",
                            "must be preferences, unsubscribe or dsr");
        } else {
          uses.push_back(use);
        }
      }
    }
  } else {
    uses = {"preferences", "unsubscribe"};
  }
  const std::string scope = ReadString(*obj, "purpose", "", &problems).value_or("*");
  if (scope != "*") {
    const Purpose* p = policies->FindPurpose(scope);
    if (p == nullptr || !p->marketing) {
      problems.AddError("purpose", "must be a marketing purpose of the catalogue");
    }
  }
  int64_t ttl = kDefaultTtl;
  if (obj->has("ttl_days")) {
    const auto v = obj->get("ttl_days");
    if (!v.isInteger() || v.convert<int64_t>() < 1 || v.convert<int64_t>() * 86400 > kMaxTtl) {
      problems.AddError("ttl_days", "must be a whole number of days from 1 to 400");
    } else {
      ttl = v.convert<int64_t>() * 86400;
    }
  }
  if (!problems.errors().empty()) return problems;
  const std::string& id = x.params["id"];
  Status exists = d.store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
    if (!row || row->status == "erased") return NotFound("no such subject");
    return Status::Ok();
  });
  GARDE_RETURN_IF_ERROR(exists);
  const std::string base = d.PublicBaseUrl();
  const int64_t expires = d.clock().Now() + ttl;
  JsonWriter w;
  w.BeginObject().String("subject", id).BeginArray("links");
  for (const auto& use : uses) {
    // A DSR link opens the customer's rights page, whatever the purpose scope.
    const std::string token = d.tokens()->Mint({id, use, use == "dsr" ? "*" : scope, expires});
    const std::string url = base +
                            (use == "unsubscribe" ? "/u/"
                             : use == "dsr"       ? "/r/"
                                                  : "/p/") +
                            token;
    w.BeginObject()
        .String("use", use)
        .String("url", url)
        .String("token", token)
        .String("expires_at", FormatRfc3339(expires));
    if (use == "unsubscribe") {
      // Ready for the message headers (RFC 2369, RFC 8058).
      w.BeginObject("headers")
          .String("List-Unsubscribe", "<" + url + ">")
          .String("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
          .EndObject();
    }
    w.EndObject();
  }
  w.EndArray().EndObject();
  GARDE_RETURN_IF_ERROR(
      d.journal().Record(nullptr, *x.caller, {"links.mint", id, "", "ok", uses, 1}));
  x.Json(201, w.Take());
  return Status::Ok();
}

Status UnsubscribePage(Deployment& d, Exchange& x) {
  auto claims = d.VerifySubjectToken(x.params["token"]);
  if (!claims.ok() || claims->use != "unsubscribe") {
    return NotFound("this link is not valid or has expired");
  }
  // GET never unsubscribes (link scanners follow links): it only offers the button.
  const PageWords t = CustomerWords(d, x, claims->subject);
  CustomerPage(x, 200, t, t("unsubscribe.title"),
               "<p>" + t.Html("unsubscribe.question") +
                   "</p><form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" "
                   "value=\"One-Click\"><button type=\"submit\">" +
                   t.Html("unsubscribe.button") + "</button></form>");
  return Status::Ok();
}

Status UnsubscribePost(Deployment& d, Exchange& x) {
  auto claims = d.VerifySubjectToken(x.params["token"]);
  if (!claims.ok() || claims->use != "unsubscribe") {
    return NotFound("this link is not valid or has expired");
  }
  if (!IsOneClickBody(x)) {
    return Status(Code::kUnprocessable, "expected the body List-Unsubscribe=One-Click")
        .AddError("List-Unsubscribe", "must be One-Click");
  }
  auto done = d.consents().UnsubscribeByToken(claims.value(), Origin(d, x));
  if (!done.ok()) return done.status();
  const PageWords t = CustomerWords(d, x, claims->subject);
  CustomerPage(x, 200, t, t("unsubscribe.done_title"), "<p>" + t.Html("unsubscribe.done") + "</p>");
  return Status::Ok();
}

}  // namespace

void AddLinkRoutes(Router& router, Deployment& d) {
  router.Add("POST", "/v1/subjects/{id}/links", [&d](Exchange& x) { return MintLinks(d, x); });
  router.Add("GET", "/p/{token}",
             [&d](Exchange& x) { return CustomerErrors(d, x, PreferencesPage(d, x)); });
  router.Add("POST", "/p/{token}",
             [&d](Exchange& x) { return CustomerErrors(d, x, PreferencesPost(d, x)); });
  router.Add("GET", "/u/{token}",
             [&d](Exchange& x) { return CustomerErrors(d, x, UnsubscribePage(d, x)); });
  router.Add("POST", "/u/{token}",
             [&d](Exchange& x) { return CustomerErrors(d, x, UnsubscribePost(d, x)); });
  router.Add("GET", "/notices/{purpose}/{version}",
             [&d](Exchange& x) { return CustomerErrors(d, x, NoticePage(d, x)); });
  router.Add("GET", "/c/{token}",
             [&d](Exchange& x) { return CustomerErrors(d, x, ConfirmPage(d, x, false)); });
  router.Add("POST", "/c/{token}",
             [&d](Exchange& x) { return CustomerErrors(d, x, ConfirmPage(d, x, true)); });
  router.Add("GET", "/.well-known/gpc.json", [](Exchange& x) {
    x.Json(200, R"({"gpc":true,"lastUpdate":"2026-11-22"})");
    return Status::Ok();
  });
}

}  // namespace garde

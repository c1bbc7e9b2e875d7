// The officer's console (/console/): sign-in, the register, the request queue, the audit
// explorer with inclusion proofs, consent statistics and retention runs.
#include "garde/http/console.h"

#include <Poco/JSON/Parser.h>
#include <sodium.h>

#include <algorithm>

#include "garde/app/deployment.h"
#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/crypto/merkle.h"
#include "garde/domain/subject_merges.h"
#include "garde/domain/subject_requests.h"
#include "garde/http/html.h"
#include "garde/http/http_service.h"
#include "garde/http/problem.h"
#include "garde/http/report_charts.h"
#include "garde/policy/register_lint.h"

namespace garde {

// ---- Sessions -------------------------------------------------------------------------------

Bytes ConsoleSessions::HashOf(const std::string& cookie) {
  Bytes h(crypto_generichash_BYTES);
  crypto_generichash(h.data(), h.size(), reinterpret_cast<const uint8_t*>(cookie.data()),
                     cookie.size(), nullptr, 0);
  return h;
}

Result<std::string> ConsoleSessions::Open(const Caller& caller, const std::string& lang) {
  uint8_t raw[32];
  randombytes_buf(raw, sizeof raw);
  const std::string cookie = Base64UrlEncode(raw, sizeof raw);
  randombytes_buf(raw, sizeof raw);
  const int64_t now = clock_.Now();
  ConsoleSessionRow row;
  row.cookie_hash = HashOf(cookie);
  row.key_id = caller.key_id;
  row.role = caller.role;
  row.activities =
      JoinList(std::vector<std::string>(caller.activities.begin(), caller.activities.end()), ' ');
  row.client = caller.client;
  row.csrf = Base64UrlEncode(raw, sizeof raw);
  row.lang = lang;
  row.signed_in_at = row.last_seen = now;
  sodium_memzero(raw, sizeof raw);
  // Expired sessions go on the way, so that abandoned ones do not pile up.
  GARDE_RETURN_IF_ERROR(store_.Write(
      [&](WriteTx& tx) -> Status {
        const Cutoffs ended = EndedBefore(now);
        GARDE_RETURN_IF_ERROR(
            tx.DeleteExpiredConsoleSessions(ended.idle_before, ended.signed_in_before));
        return tx.PutConsoleSession(row);
      },
      Durability::kDeferred));
  return cookie;
}

std::optional<ConsoleSessions::Session> ConsoleSessions::Touch(const std::string& cookie) {
  if (cookie.empty()) return std::nullopt;
  const Bytes key = HashOf(cookie);
  const int64_t now = clock_.Now();
  std::optional<ConsoleSessionRow> row;
  Status read = store_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto found, tx.GetConsoleSession(key));
    row = std::move(found);
    return Status::Ok();
  });
  if (!read.ok() || !row) return std::nullopt;
  const Cutoffs ended = EndedBefore(now);
  if (row->last_seen < ended.idle_before || row->signed_in_at < ended.signed_in_before) {
    Forget(key);
    return std::nullopt;
  }
  if (row->last_seen < now) {  // at most one write a second per session
    row->last_seen = now;
    Update(key, [now](ConsoleSessionRow& r) { r.last_seen = std::max(r.last_seen, now); });
  }
  Session s;
  s.caller.key_id = row->key_id;
  s.caller.role = row->role;
  for (auto& a : SplitList(row->activities, ' ')) s.caller.activities.insert(std::move(a));
  s.caller.client = row->client;
  s.csrf = row->csrf;
  s.lang = row->lang;
  s.signed_in_at = row->signed_in_at;
  s.last_seen = row->last_seen;
  return s;
}

void ConsoleSessions::SetLanguage(const std::string& cookie, const std::string& lang) {
  Update(HashOf(cookie), [&lang](ConsoleSessionRow& r) { r.lang = lang; });
}

void ConsoleSessions::Update(const Bytes& key,
                             const std::function<void(ConsoleSessionRow&)>& change) {
  store_
      .Write(
          [&](WriteTx& tx) -> Status {
            // Read again in the write: a session signed out meanwhile, on any node, stays out.
            GARDE_ASSIGN_OR_RETURN(auto current, tx.GetConsoleSession(key));
            if (!current) return Status::Ok();
            ConsoleSessionRow row = std::move(*current);
            change(row);
            return tx.PutConsoleSession(row);
          },
          Durability::kDeferred)
      .IgnoreError();
}

void ConsoleSessions::Close(const std::string& cookie) { Forget(HashOf(cookie)); }

void ConsoleSessions::Forget(const Bytes& key) {
  store_.Write([&](WriteTx& tx) { return tx.DeleteConsoleSession(key); }).IgnoreError();
}

int64_t ConsoleSessions::size() const {
  int64_t n = 0;
  store_
      .Read([&](ReadTx& tx) -> Status {
        GARDE_ASSIGN_OR_RETURN(auto count, tx.CountConsoleSessions());
        n = count;
        return Status::Ok();
      })
      .IgnoreError();
  return n;
}

namespace {

constexpr char kCookie[] = "garde_console";

// ---- Page frame ------------------------------------------------------------------------------

std::string W(const std::string& lang, const char* en, const char* fr) {
  return lang == "fr" ? fr : en;
}

constexpr char kCss[] =
    "body{max-width:72rem}header nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;"
    "gap:.4rem 1.2rem;margin:1rem 0}header a[aria-current]{font-weight:700}"
    "form.inline{display:inline}label{display:block;font-weight:600;margin:.6rem 0 .2rem}"
    "input[type=text],input[type=password],input[type=search],select,textarea{font:inherit;"
    "padding:.3rem;border:1px solid #555;border-radius:.2rem;max-width:100%}"
    "textarea{width:100%}fieldset{border:1px solid #777;margin:1rem 0;padding:.6rem 1rem}"
    ".error{background:#fce8e6;border-left:4px solid #a50e0e;padding:.6rem}"
    ".overdue{color:#a50e0e;font-weight:700}pre{white-space:pre-wrap;word-break:break-all;"
    "background:#f3f3f3;padding:.6rem}.filters{display:flex;flex-wrap:wrap;gap:1rem}"
    ".filters div{min-width:12rem}";

struct Nav {
  const char* path;
  const char* capability;
  const char* en;
  const char* fr;
};
constexpr Nav kPages[] = {
    {"/console/requests", "requests.manage", "Requests", "Demandes"},
    {"/console/register", "register.read", "Register", "Registre"},
    {"/console/audit", "audit.read", "Audit log", "Journal d'audit"},
    {"/console/consent", "reports.read", "Consent", "Consentements"},
    {"/console/duplicates", "duplicates.read", "Duplicates", "Doublons"},
    {"/console/imports", "audit.read", "Imports", "Imports"},
    {"/console/retention", "retention.read", "Retention", "Conservation"},
};

// One signed-in page view.
struct Ctx {
  Deployment& d;
  Exchange& x;
  ConsoleSessions& sessions;
  std::string cookie;
  ConsoleSessions::Session s;
  const std::string& lang() const { return s.lang; }
  std::string w(const char* en, const char* fr) const { return W(s.lang, en, fr); }
  bool May(const char* capability) const {
    return AccessGate::Require(*d.policies().Current(), s.caller, capability).ok();
  }
};

void Send(Exchange& x, int status, const std::string& lang, const std::string& title,
          const std::string& header, const std::string& body) {
  x.status = status;
  x.reply_type = "text/html; charset=utf-8";
  x.reply = HtmlDocument(title, body, lang, kCss, header);
  x.reply_headers.emplace_back(
      "Content-Security-Policy",
      "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; img-src 'self'; "
      "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  x.reply_headers.emplace_back("X-Frame-Options", "DENY");
  // same-origin, not no-referrer: under no-referrer browsers send "Origin: null" with forms,
  // and the origin of a posted form is one of the console's checks against forgery.
  x.reply_headers.emplace_back("Referrer-Policy", "same-origin");
}

std::string CsrfInput(const Ctx& c) {
  return "<input type=\"hidden\" name=\"csrf\" value=\"" + HtmlEscape(c.s.csrf) + "\">";
}

void Page(Ctx& c, int status, const std::string& title, const std::string& body,
          const std::string& current = "") {
  std::string nav = "<header><p>Garde — " + c.w("console", "console") + " · " +
                    HtmlEscape(c.s.caller.role) + "</p><nav aria-label=\"" +
                    c.w("Console", "Console") + "\"><ul>";
  for (const Nav& p : kPages) {
    if (!c.May(p.capability)) continue;
    nav += std::string("<li><a href=\"") + p.path + "\"" +
           (current == p.path ? " aria-current=\"page\"" : "") + ">" + W(c.lang(), p.en, p.fr) +
           "</a></li>";
  }
  const bool fr = c.lang() == "fr";
  nav += std::string("<li><a href=\"?lang=") + (fr ? "en" : "fr") + "\" lang=\"" +
         (fr ? "en" : "fr") + "\">" + (fr ? "English" : "Français") + "</a></li>";
  nav += "<li><form class=\"inline\" method=\"post\" action=\"/console/sign-out\">" + CsrfInput(c) +
         "<button type=\"submit\" class=\"secondary\">" + c.w("Sign out", "Se déconnecter") +
         "</button></form></li></ul></nav></header>";
  Send(c.x, status, c.lang(), title, nav, body);
}

void Redirect(Exchange& x, const std::string& to) {
  x.status = 303;
  x.reply_type = "text/plain; charset=utf-8";
  x.reply = "See " + to + "\n";
  x.reply_headers.emplace_back("Location", to);
}

std::string CookieOf(const Exchange& x) {
  const std::string header = x.Header("cookie");
  const std::string name = std::string(kCookie) + "=";
  size_t at = 0;
  while (at < header.size()) {
    while (at < header.size() && (header[at] == ' ' || header[at] == ';')) ++at;
    if (header.compare(at, name.size(), name) == 0) {
      const size_t end = header.find(';', at);
      return header.substr(at + name.size(),
                           end == std::string::npos ? std::string::npos : end - at - name.size());
    }
    at = header.find(';', at);
    if (at == std::string::npos) break;
  }
  return "";
}

bool BehindTls(Deployment& d, const Exchange& x) {
  return d.PublicBaseUrl().rfind("https://", 0) == 0 ||
         AsciiLower(x.Header("x-forwarded-proto")) == "https";
}

void SetCookie(Deployment& d, Exchange& x, const std::string& value, bool clear) {
  std::string c = std::string(kCookie) + "=" + value + "; Path=/console; HttpOnly; SameSite=Strict";
  if (BehindTls(d, x)) c += "; Secure";
  if (clear) c += "; Max-Age=0";
  x.reply_headers.emplace_back("Set-Cookie", c);
}

std::string Param(const Exchange& x, const char* name) {
  auto it = x.query.find(name);
  return it == x.query.end() ? "" : it->second;
}

std::string Day(int64_t t) { return t == 0 ? "—" : FormatRfc3339(t).substr(0, 10); }
std::string Time(int64_t t) { return t == 0 ? "—" : FormatRfc3339(t); }

// The session of a page; otherwise the answer (a redirect to sign in) is already made.
std::optional<Ctx> SignedIn(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  const std::string cookie = CookieOf(x);
  auto s = sessions.Touch(cookie);
  bool valid = false;
  if (s) {
    // A key revoked since sign-in ends its sessions at once.
    auto keys = d.api_keys().List();
    if (keys.ok()) {
      for (const auto& k : keys.value()) valid |= k.id == s->caller.key_id && k.revoked_at == 0;
    }
    if (!valid) sessions.Close(cookie);
  }
  if (!valid) {
    if (!cookie.empty()) SetCookie(d, x, "", true);
    Redirect(x, "/console/sign-in");
    return std::nullopt;
  }
  const std::string lang = Param(x, "lang");
  if (lang == "en" || lang == "fr") {
    sessions.SetLanguage(cookie, lang);
    s->lang = lang;
  }
  s->caller.request_id = x.request_id;
  s->caller = FromClient(d, x, std::move(s->caller));
  x.caller = s->caller;
  return Ctx{d, x, sessions, cookie, std::move(*s)};
}

// Page views are audited as the reads they are; `subject` when the page is about one.
void Viewed(Ctx& c, const std::string& page, const std::string& subject = "", int64_t count = 0) {
  c.d.journal()
      .Record(nullptr, c.s.caller, {"console.view", subject, "", "ok", {page}, count})
      .IgnoreError();
}

// 403 page (audited as a refusal) unless the role has `capability`.
bool Require(Ctx& c, const char* capability) {
  if (c.May(capability)) return true;
  c.d.journal()
      .Record(nullptr, c.s.caller, {"access.denied", "", "", "denied", {c.x.route}, 0})
      .IgnoreError();
  Page(c, 403, c.w("Not for your role", "Hors de votre rôle"),
       "<p>" +
           c.w("Your key's role does not give access to this page.",
               "Le rôle de votre clé ne donne pas accès à cette page.") +
           "</p>");
  return false;
}

// A posted form: its fields when it is this session's own (CSRF token, same origin).
std::optional<std::multimap<std::string, std::string>> PostedForm(Ctx& c) {
  auto form = FormPairs(c.x.body);
  auto token = form.find("csrf");
  const bool same_token =
      token != form.end() && token->second.size() == c.s.csrf.size() &&
      sodium_memcmp(token->second.data(), c.s.csrf.data(), c.s.csrf.size()) == 0;
  const std::string origin = c.x.Header("origin");
  const bool same_origin = origin.empty() || origin == "null"
                               ? origin.empty()
                               : origin.substr(origin.find("://") + 3) == c.x.Header("host");
  if (c.x.content_type != "application/x-www-form-urlencoded" || !same_token || !same_origin) {
    c.d.journal()
        .Record(nullptr, c.s.caller, {"access.denied", "", "", "denied", {"console.csrf"}, 0})
        .IgnoreError();
    Page(c, 403, c.w("Form refused", "Formulaire refusé"),
         "<p class=\"error\" role=\"alert\">" +
             c.w("This form did not come from your console session. Reload the page and try again.",
                 "Ce formulaire ne vient pas de votre session. Rechargez la page et recommencez.") +
             "</p>");
    return std::nullopt;
  }
  return form;
}

std::string FormValue(const std::multimap<std::string, std::string>& form, const char* name) {
  auto it = form.find(name);
  return it == form.end() ? "" : it->second;
}

std::string ErrorBox(const Status& s) {
  std::string out = "<div class=\"error\" role=\"alert\"><p>" + HtmlEscape(s.message()) + "</p>";
  if (!s.errors().empty()) {
    out += "<ul>";
    for (const auto& e : s.errors()) {
      out += "<li>" + HtmlEscape(e.field) + ": " + HtmlEscape(e.message) + "</li>";
    }
    out += "</ul>";
  }
  return out + "</div>";
}

// ---- Sign-in ---------------------------------------------------------------------------------

void SignInPage(Exchange& x, int status, const std::string& lang, const std::string& message) {
  std::string body;
  if (!message.empty()) body += "<p class=\"error\" role=\"alert\">" + HtmlEscape(message) + "</p>";
  body += "<p>" +
          W(lang,
            "Officers, auditors and administrators sign in with their API key. "
            "The key is not kept: the session ends after 30 minutes without a "
            "page, 12 hours after signing in, or when you sign out.",
            "Délégués, auditeurs et administrateurs se connectent avec leur clé d'API. "
            "La clé n'est pas conservée : la session prend fin après 30 minutes sans "
            "page, 12 heures après la connexion, ou quand vous vous déconnectez.") +
          "</p><form method=\"post\" action=\"/console/sign-in\"><input type=\"hidden\" "
          "name=\"lang\" value=\"" +
          lang + "\"><label for=\"key\">" + W(lang, "API key", "Clé d'API") +
          "</label><input type=\"password\" id=\"key\" name=\"key\" autocomplete=\"off\" "
          "required size=\"50\"><p><button type=\"submit\">" +
          W(lang, "Sign in", "Se connecter") + "</button></p></form>";
  const bool fr = lang == "fr";
  const std::string header =
      std::string("<header><nav aria-label=\"") + W(lang, "Language", "Langue") +
      "\"><ul><li><a href=\"?lang=" + (fr ? "en" : "fr") + "\" lang=\"" + (fr ? "en" : "fr") +
      "\">" + (fr ? "English" : "Français") + "</a></li></ul></nav></header>";
  Send(x, status, lang, W(lang, "Garde console — sign in", "Console Garde — connexion"), header,
       body);
}

Status SignInForm(Deployment&, ConsoleSessions& sessions, Exchange& x) {
  if (sessions.Touch(CookieOf(x))) {
    Redirect(x, "/console/");
    return Status::Ok();
  }
  SignInPage(x, 200, PageLanguage(x), "");
  return Status::Ok();
}

Status SignIn(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto form = FormPairs(x.body);
  std::string lang = FormValue(form, "lang");
  if (lang != "fr" && lang != "en") lang = PageLanguage(x);
  const std::string origin = x.Header("origin");
  if (x.content_type != "application/x-www-form-urlencoded" ||
      (!origin.empty() &&
       (origin == "null" || origin.substr(origin.find("://") + 3) != x.Header("host")))) {
    SignInPage(x, 403, lang,
               W(lang, "This form did not come from this console.",
                 "Ce formulaire ne vient pas de cette console."));
    return Status::Ok();
  }
  std::string key = FormValue(form, "key");
  auto caller = d.api_keys().Authenticate(key);
  sodium_memzero(key.data(), key.size());
  for (auto& [name, value] : form) sodium_memzero(value.data(), value.size());
  if (!caller.ok()) {
    SignInPage(x, 401, lang, W(lang, "This key is not valid.", "Cette clé n'est pas valide."));
    return Status::Ok();
  }
  const std::string& role = caller->role;
  if (role != "officer" && role != "auditor" && role != "admin") {
    d.journal()
        .Record(nullptr, caller.value(),
                {"access.denied", "", "", "denied", {"console.sign_in"}, 0})
        .IgnoreError();
    SignInPage(x, 403, lang,
               W(lang, "The console is for officer, auditor and admin keys.",
                 "La console est réservée aux clés de délégué, d'auditeur et d'administrateur."));
    return Status::Ok();
  }
  caller->request_id = x.request_id;
  caller.value() = FromClient(d, x, std::move(caller.value()));
  x.caller = caller.value();
  GARDE_ASSIGN_OR_RETURN(auto opened, sessions.Open(caller.value(), lang));
  const std::string cookie = std::move(opened);
  GARDE_RETURN_IF_ERROR(
      d.journal().Record(nullptr, caller.value(), {"console.sign_in", "", "", "ok", {}, 0}));
  SetCookie(d, x, cookie, false);
  Redirect(x, "/console/");
  return Status::Ok();
}

Status SignOut(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c) return Status::Ok();
  if (!PostedForm(*c)) return Status::Ok();
  sessions.Close(c->cookie);
  d.journal().Record(nullptr, c->s.caller, {"console.sign_out", "", "", "ok", {}, 0}).IgnoreError();
  SetCookie(d, x, "", true);
  Redirect(x, "/console/sign-in");
  return Status::Ok();
}

Status Home(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c) return Status::Ok();
  for (const Nav& p : kPages) {
    if (c->May(p.capability)) {
      Redirect(x, p.path);
      return Status::Ok();
    }
  }
  Page(*c, 200, "Garde",
       "<p>" +
           c->w("No page of the console is open to your role.",
                "Aucune page de la console n'est ouverte à votre rôle.") +
           "</p>");
  return Status::Ok();
}

// ---- Requests --------------------------------------------------------------------------------

struct QueueView {
  const char* id;
  const char* en;
  const char* fr;
};
constexpr QueueView kQueues[] = {
    {"open", "Open", "En cours"},        {"due", "Due within 7 days", "Échéance sous 7 jours"},
    {"overdue", "Overdue", "En retard"}, {"extended", "Extended", "Prolongées"},
    {"closed", "Closed", "Closes"},
};

Status Requests(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "requests.manage")) return Status::Ok();
  std::string view = Param(x, "view");
  if (std::none_of(std::begin(kQueues), std::end(kQueues),
                   [&](const QueueView& q) { return view == q.id; })) {
    view = "open";
  }
  const int64_t now = d.clock().Now();
  RequestQuery q;
  q.limit = 500;
  if (view == "closed") {
    q.statuses = {"completed", "rejected"};
  } else {
    q.statuses.assign(std::begin(kOpenStatuses), std::end(kOpenStatuses));
    if (view == "overdue") q.due_before = now;
    if (view == "due") q.due_before = now + 7 * 86400;
  }
  auto rows = d.requests().List(c->s.caller, q);
  if (!rows.ok()) {
    Page(*c, 500, c->w("Requests", "Demandes"), ErrorBox(rows.status()), "/console/requests");
    return Status::Ok();
  }
  if (view == "extended") {
    rows->erase(
        std::remove_if(rows->begin(), rows->end(), [](const RequestRow& r) { return !r.extended; }),
        rows->end());
  }
  std::string body = "<nav aria-label=\"" + c->w("Queues", "Files") + "\"><ul class=\"filters\">";
  for (const QueueView& v : kQueues) {
    body += std::string("<li><a href=\"/console/requests?view=") + v.id + "\"" +
            (view == v.id ? " aria-current=\"page\"" : "") + ">" + W(c->lang(), v.en, v.fr) +
            "</a></li>";
  }
  body += "</ul></nav><table><caption>" + std::to_string(rows->size()) + " " +
          c->w("requests", "demandes") + "</caption><thead><tr><th scope=\"col\">" +
          c->w("Request", "Demande") + "</th><th scope=\"col\">" + c->w("Type", "Type") +
          "</th><th scope=\"col\">" + c->w("Status", "Statut") + "</th><th scope=\"col\">" +
          c->w("Received", "Reçue") + "</th><th scope=\"col\">" + c->w("Due", "Échéance") +
          "</th><th scope=\"col\">" + c->w("Extended", "Prolongée") + "</th></tr></thead><tbody>";
  for (const RequestRow& r : rows.value()) {
    const bool late = IsOpenStatus(r.status) && r.due_at < now;
    body += "<tr><td><a href=\"/console/requests/" + HtmlEscape(r.id) + "\">" + HtmlEscape(r.id) +
            "</a></td><td>" + HtmlEscape(r.type) + "</td><td>" + HtmlEscape(r.status) +
            "</td><td>" + Day(r.received_at) + "</td><td" + (late ? " class=\"overdue\"" : "") +
            ">" + Day(r.due_at) + (late ? " (" + c->w("overdue", "en retard") + ")" : "") +
            "</td><td>" + (r.extended ? c->w("yes", "oui") : c->w("no", "non")) + "</td></tr>";
  }
  body += "</tbody></table>";
  Viewed(*c, "requests", "", static_cast<int64_t>(rows->size()));
  Page(*c, 200, c->w("Data-subject requests", "Demandes des personnes"), body, "/console/requests");
  return Status::Ok();
}

void RequestPage(Ctx& c, const std::string& id, const std::string& message, const Status& error) {
  auto v = c.d.requests().Get(c.s.caller, id);
  if (!v.ok()) {
    const int status = v.status().code() == Code::kNotFound ? 404 : 422;
    Page(c, status, c.w("Request", "Demande"), ErrorBox(v.status()), "/console/requests");
    return;
  }
  JsonWriter w;
  WriteRequestJson(w, v.value(), c.d.clock().Now());
  std::string details;
  try {
    details = JsonHtml(Poco::JSON::Parser().parse(w.Take()));
  } catch (const std::exception&) {
    details = "";
  }
  std::string body;
  if (!error.ok()) body += ErrorBox(error);
  if (!message.empty())
    body += "<p class=\"status\" role=\"status\">" + HtmlEscape(message) + "</p>";
  body += details;
  const RequestRow& r = v->row;
  const std::string action = "/console/requests/" + HtmlEscape(r.id) + "/";
  auto form = [&](const char* verb, const std::string& legend, const std::string& fields,
                  const std::string& button) {
    return "<form method=\"post\" action=\"" + action + verb + "\"><fieldset><legend>" + legend +
           "</legend>" + CsrfInput(c) + fields + "<p><button type=\"submit\">" + button +
           "</button></p></fieldset></form>";
  };
  auto text = [&](const char* name, const std::string& label, bool required) {
    const std::string field = std::string("f-") + name;
    return "<label for=\"" + field + "\">" + label + "</label><textarea id=\"" + field +
           "\" name=\"" + name + "\" rows=\"2\"" + (required ? " required" : "") + "></textarea>";
  };
  const bool open = IsOpenStatus(r.status);
  if (r.status == "received") {
    body +=
        form("verify", c.w("Verify the requester's identity", "Vérifier l'identité du demandeur"),
             text("note", c.w("How it was checked", "Comment elle a été vérifiée"), false),
             c.w("Mark verified", "Marquer vérifiée"));
  }
  if (r.status == "verified" || r.status == "in_progress") {
    body += form("complete", c.w("Complete the request", "Traiter la demande"),
                 text("note", c.w("Note (kept sealed)", "Note (conservée chiffrée)"), false),
                 c.w("Complete", "Traiter"));
  }
  if (open && !r.extended) {
    body += form(
        "extend", c.w("Extend the deadline", "Prolonger le délai"),
        "<label for=\"f-months\">" + c.w("By", "De") +
            "</label><select id=\"f-months\" name=\"months\"><option value=\"1\">1 " +
            c.w("month", "mois") + "</option><option value=\"2\" selected>2 " +
            c.w("months", "mois") + "</option></select>" +
            text("reason", c.w("Reason (told to the customer)", "Motif (communiqué à la personne)"),
                 true),
        c.w("Extend", "Prolonger"));
  }
  if (open) {
    body +=
        form("reject", c.w("Reject the request", "Refuser la demande"),
             text("reason",
                  c.w("Reason (told to the customer)", "Motif (communiqué à la personne)"), true),
             c.w("Reject", "Refuser"));
  }
  if (r.status == "completed" && r.type == "restriction") {
    body +=
        form("lift", c.w("Lift the restriction", "Lever la limitation"), "", c.w("Lift", "Lever"));
  }
  body += "<p><a href=\"/console/requests\">" + c.w("Back to the queue", "Retour à la file") +
          "</a> · <a href=\"/console/audit?subject=" + HtmlEscape(r.subject_id) + "\">" +
          c.w("This customer's audit entries", "Entrées d'audit de cette personne") + "</a></p>";
  Viewed(c, "request", r.subject_id, 1);
  Page(c, error.ok() ? 200 : HttpStatusOf(error.code()), c.w("Request ", "Demande ") + r.id, body,
       "/console/requests");
}

Status RequestDetail(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "requests.manage")) return Status::Ok();
  std::string message;
  const std::string done = Param(x, "done");
  if (done == "verify") message = c->w("The request is verified.", "La demande est vérifiée.");
  if (done == "complete") message = c->w("The request is completed.", "La demande est traitée.");
  if (done == "extend") message = c->w("The deadline is extended.", "Le délai est prolongé.");
  if (done == "reject") message = c->w("The request is rejected.", "La demande est refusée.");
  if (done == "lift") message = c->w("The restriction is lifted.", "La limitation est levée.");
  RequestPage(*c, x.params["id"], message, Status::Ok());
  return Status::Ok();
}

Status RequestAction(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "requests.manage")) return Status::Ok();
  auto form = PostedForm(*c);
  if (!form) return Status::Ok();
  const std::string& id = x.params["id"];
  const std::string& verb = x.params["verb"];
  RequestDesk& desk = d.requests();
  Result<RequestView> done = NotFound("no such step");
  if (verb == "verify") {
    done = desk.Verify(c->s.caller, id, FormValue(*form, "note"));
  } else if (verb == "complete") {
    done = desk.Complete(c->s.caller, id, FormValue(*form, "note"));
  } else if (verb == "extend") {
    const std::string months = FormValue(*form, "months");
    if (months != "1" && months != "2") {
      done = Status(Code::kUnprocessable, "the extension is not valid")
                 .AddError("months", "must be 1 or 2");
    } else {
      done = desk.Extend(c->s.caller, id, "P" + months + "M", FormValue(*form, "reason"));
    }
  } else if (verb == "reject") {
    done = desk.Reject(c->s.caller, id, FormValue(*form, "reason"));
  } else if (verb == "lift") {
    done = desk.Lift(c->s.caller, id);
  }
  if (!done.ok()) {
    RequestPage(*c, id, "", done.status());
    return Status::Ok();
  }
  Redirect(x, "/console/requests/" + id + "?done=" + verb);
  return Status::Ok();
}

// ---- Register --------------------------------------------------------------------------------

Status Register(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "register.read")) return Status::Ok();
  auto policies = d.policies().Current();
  std::string body =
      "<p><a href=\"/v1/register?format=html&amp;lang=" + c->lang() + "\">" +
      c->w("Printable register (needs the API key)", "Registre imprimable (demande la clé d'API)") +
      "</a></p><h2>" + c->w("Processing activities", "Activités de traitement") +
      "</h2><table><thead><tr><th scope=\"col\">" + c->w("Activity", "Activité") +
      "</th><th scope=\"col\">" + c->w("Purposes", "Finalités") + "</th><th scope=\"col\">" +
      c->w("Retention", "Conservation") + "</th></tr></thead><tbody>";
  for (const Activity& a : policies->activities()) {
    std::string purposes;
    for (const auto& p : a.purposes) purposes += (purposes.empty() ? "" : ", ") + HtmlEscape(p);
    body += "<tr><td><a href=\"/console/register/" + HtmlEscape(a.id) + "\">" +
            HtmlEscape(a.names.In(c->lang()).empty() ? a.name : a.names.In(c->lang())) +
            "</a> <small>(" + HtmlEscape(a.id) + ")</small></td><td>" + purposes + "</td><td>" +
            HtmlEscape(a.retention) + "</td></tr>";
  }
  body += "</tbody></table>";
  if (c->May("register.lint")) {
    const auto findings = LintRegister(*policies);
    body += "<h2>" + c->w("Findings", "Constats") + "</h2>";
    if (findings.empty()) {
      body +=
          "<p>" + c->w("The register has no finding.", "Le registre n'a aucun constat.") + "</p>";
    } else {
      body += "<table><thead><tr><th scope=\"col\">" + c->w("Severity", "Gravité") +
              "</th><th scope=\"col\">" + c->w("Where", "Où") + "</th><th scope=\"col\">" +
              c->w("Finding", "Constat") + "</th><th scope=\"col\">" + c->w("Hint", "Piste") +
              "</th></tr></thead><tbody>";
      for (const auto& f : findings) {
        body += "<tr><td>" + HtmlEscape(f.severity) + "</td><td><code>" + HtmlEscape(f.location) +
                "</code></td><td>" + HtmlEscape(f.message) + " <small>(" + HtmlEscape(f.rule) +
                ")</small></td><td>" + HtmlEscape(f.hint) + "</td></tr>";
      }
      body += "</tbody></table>";
    }
  }
  std::vector<PolicyVersionRow> versions;
  GARDE_RETURN_IF_ERROR(d.store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto list, tx.ListPolicyVersions(50));
    versions = std::move(list);
    return Status::Ok();
  }));
  body += "<h2>" + c->w("History of changes", "Historique des modifications") +
          "</h2><table><thead><tr>"
          "<th scope=\"col\">" +
          c->w("Loaded", "Chargée") + "</th><th scope=\"col\">" + c->w("By", "Par") +
          "</th><th scope=\"col\">" + c->w("Version", "Version") + "</th><th scope=\"col\">" +
          c->w("What changed", "Ce qui a changé") + "</th></tr></thead><tbody>";
  for (const auto& v : versions) {
    std::string changes;
    try {
      changes = JsonHtml(Poco::JSON::Parser().parse(v.summary));
    } catch (const std::exception&) {
      changes = HtmlEscape(v.summary);
    }
    body += "<tr><td>" + Time(v.loaded_at) + "</td><td>" + HtmlEscape(v.source) +
            "</td><td><code>" + HtmlEscape(v.content_hash.substr(0, 16)) + "</code></td><td>" +
            changes + "</td></tr>";
  }
  body += "</tbody></table>";
  Viewed(*c, "register", "", static_cast<int64_t>(policies->activities().size()));
  Page(*c, 200, c->w("Register of processing activities", "Registre des activités de traitement"),
       body, "/console/register");
  return Status::Ok();
}

Status ActivitySheet(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "register.read")) return Status::Ok();
  auto policies = d.policies().Current();
  const Activity* a = policies->FindActivity(x.params["id"]);
  if (a == nullptr) {
    Page(*c, 404, c->w("No such activity", "Activité inconnue"),
         "<p><a href=\"/console/register\">" + c->w("Back to the register", "Retour au registre") +
             "</a></p>",
         "/console/register");
    return Status::Ok();
  }
  std::string sheet;
  try {
    sheet = JsonHtml(Poco::JSON::Parser().parse(a->json));
  } catch (const std::exception&) {
    sheet = "<pre>" + HtmlEscape(a->json) + "</pre>";
  }
  Viewed(*c, "register.activity", "", 1);
  Page(*c, 200, a->name,
       sheet + "<p><a href=\"/console/register\">" +
           c->w("Back to the register", "Retour au registre") + "</a></p>",
       "/console/register");
  return Status::Ok();
}

// ---- Audit -----------------------------------------------------------------------------------

std::string Member(const Poco::JSON::Object& o, const char* name) {
  if (!o.has(name) || o.isNull(name)) return "";
  return o.getValue<std::string>(name);
}

Status Audit(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "audit.read")) return Status::Ok();
  AuditQuery q;
  Status invalid(Code::kUnprocessable,
                 c->w("The search is not valid.", "La recherche n'est pas valide."));
  struct Filter {
    const char* name;
    std::string* into;
    const char* en;
    const char* fr;
  };
  const Filter filters[] = {{"subject", &q.subject, "Subject id", "Identifiant de la personne"},
                            {"actor", &q.actor, "Key id", "Identifiant de clé"},
                            {"action", &q.action, "Action", "Action"},
                            {"activity", &q.activity, "Activity", "Activité"}};
  std::string form =
      "<form method=\"get\" action=\"/console/audit\" role=\"search\"><div class=\"filters\">";
  for (const Filter& f : filters) {
    *f.into = Param(x, f.name).substr(0, 200);
    form += std::string("<div><label for=\"q-") + f.name + "\">" + W(c->lang(), f.en, f.fr) +
            "</label><input type=\"text\" id=\"q-" + f.name + "\" name=\"" + f.name +
            "\" value=\"" + HtmlEscape(*f.into) + "\"></div>";
  }
  for (const char* name : {"since", "until"}) {
    const std::string v = Param(x, name).substr(0, 40);
    if (!v.empty()) {
      auto t = ParseRfc3339(v);
      if (!t)
        invalid.AddError(name, c->w("must be an RFC 3339 time, e.g. 2026-12-01T09:00:00Z",
                                    "doit être une heure RFC 3339, p. ex. 2026-12-01T09:00:00Z"));
      else
        (std::string(name) == "since" ? q.since : q.until) = FormatRfc3339(*t);
    }
    form += std::string("<div><label for=\"q-") + name + "\">" +
            (std::string(name) == "since" ? c->w("From", "Depuis") : c->w("Until", "Jusqu'à")) +
            "</label><input type=\"text\" id=\"q-" + name + "\" name=\"" + name + "\" value=\"" +
            HtmlEscape(v) + "\" placeholder=\"2026-12-01T09:00:00Z\"></div>";
  }
  form +=
      "</div><p><button type=\"submit\">" + c->w("Search", "Rechercher") + "</button></p></form>";
  std::string body = form;
  if (!invalid.errors().empty()) {
    body += ErrorBox(invalid);
    Page(*c, 422, c->w("Audit log", "Journal d'audit"), body, "/console/audit");
    return Status::Ok();
  }
  q.limit = 100;
  std::vector<AuditRow> rows;
  // Oldest first; the next page starts after the last entry shown.
  if (const std::string after = Param(x, "after");
      !after.empty() && after.size() < 20 &&
      after.find_first_not_of("0123456789") == std::string::npos) {
    q.after_seq = std::stoull(after);
  }
  auto found = d.audit().Query(q);
  if (!found.ok()) {
    Page(*c, 500, c->w("Audit log", "Journal d'audit"), body + ErrorBox(found.status()),
         "/console/audit");
    return Status::Ok();
  }
  rows = std::move(found.value());
  auto head = d.audit().LatestCheckpoint();
  if (head.ok() && head.value()) {
    body += "<p>" + c->w("Latest signed tree head: ", "Dernière tête d'arbre signée : ") +
            std::to_string(head.value()->size) + c->w(" entries, ", " entrées, ") +
            Time(head.value()->time) + ".</p>";
  }
  body += "<table><caption>" + std::to_string(rows.size()) + " " + c->w("entries", "entrées") +
          "</caption><thead><tr><th scope=\"col\">#</th><th scope=\"col\">" +
          c->w("Time", "Heure") + "</th><th scope=\"col\">" + c->w("Key", "Clé") +
          "</th><th scope=\"col\">" + c->w("Action", "Action") + "</th><th scope=\"col\">" +
          c->w("Subject", "Personne") + "</th><th scope=\"col\">" + c->w("Activity", "Activité") +
          "</th><th scope=\"col\">" + c->w("Outcome", "Résultat") + "</th><th scope=\"col\">" +
          c->w("Fields", "Champs") + "</th></tr></thead><tbody>";
  for (const AuditRow& r : rows) {
    Poco::JSON::Object::Ptr e;
    try {
      e = Poco::JSON::Parser().parse(r.entry).extract<Poco::JSON::Object::Ptr>();
    } catch (const std::exception&) {
      continue;
    }
    std::string fields;
    if (auto arr = e->getArray("fields")) {
      for (size_t i = 0; i < arr->size(); ++i) {
        fields +=
            (i ? ", " : "") + HtmlEscape(arr->getElement<std::string>(static_cast<unsigned>(i)));
      }
    }
    const std::string seq = std::to_string(r.seq);
    body += "<tr><td><a href=\"/console/audit/" + seq + "\" aria-label=\"" +
            c->w("Entry ", "Entrée ") + seq + "\">" + seq + "</a></td><td>" +
            HtmlEscape(Member(*e, "time")) + "</td><td>" + HtmlEscape(Member(*e, "actor")) +
            " <small>" + HtmlEscape(Member(*e, "role")) + "</small></td><td>" +
            HtmlEscape(Member(*e, "action")) + "</td><td>" + HtmlEscape(Member(*e, "subject")) +
            "</td><td>" + HtmlEscape(Member(*e, "activity")) + "</td><td>" +
            HtmlEscape(Member(*e, "outcome")) + "</td><td>" + fields + "</td></tr>";
  }
  body += "</tbody></table>";
  if (rows.size() == q.limit) {
    std::string next = "/console/audit?after=" + std::to_string(rows.back().seq);
    for (const Filter& f : filters) {
      if (!f.into->empty()) next += std::string("&amp;") + f.name + "=" + HtmlEscape(*f.into);
    }
    body += "<p><a href=\"" + next + "\">" + c->w("More entries", "Entrées suivantes") + "</a></p>";
  }
  d.journal()
      .Record(nullptr, c->s.caller,
              {"audit.search", q.subject, "", "ok", {"console"}, static_cast<int64_t>(rows.size())})
      .IgnoreError();
  Page(*c, 200, c->w("Audit log", "Journal d'audit"), body, "/console/audit");
  return Status::Ok();
}

std::string B64(const Hash& h) { return Base64Encode(h.data(), h.size()); }

Status AuditEntry(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "audit.read")) return Status::Ok();
  const std::string& text = x.params["seq"];
  auto not_found = [&] {
    Page(*c, 404, c->w("No such entry", "Entrée inconnue"),
         "<p><a href=\"/console/audit\">" + c->w("Back to the search", "Retour à la recherche") +
             "</a></p>",
         "/console/audit");
    return Status::Ok();
  };
  if (text.empty() || text.size() > 19 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return not_found();
  }
  const uint64_t seq = std::stoull(text);
  // The latest signed tree head when it holds the entry; otherwise a new one is signed.
  Result<CheckpointRow> head = NotFound("no checkpoint");
  if (auto latest = d.audit().LatestCheckpoint();
      latest.ok() && latest.value() && seq < latest.value()->size) {
    head = *latest.value();
  } else {
    head = d.audit().Checkpoint();
  }
  if (!head.ok()) return head.status();
  if (seq >= head->size) return not_found();
  std::string entry;
  GARDE_RETURN_IF_ERROR(d.audit().Scan(seq, seq + 1, [&](const AuditRow& r) {
    entry = r.entry;
    return false;
  }));
  auto proof = d.audit().InclusionProof(seq, head->size);
  if (!proof.ok()) return proof.status();
  Hash root{};
  if (head->root.size() == root.size())
    std::copy(head->root.begin(), head->root.end(), root.begin());
  const bool checked = VerifyInclusion(LeafHash(entry), seq, head->size, proof.value(), root);
  const CheckpointSigner& signer = d.signer();
  JsonWriter data;
  data.BeginObject()
      .String("entry", entry)
      .Int("index", static_cast<int64_t>(seq))
      .Int("size", static_cast<int64_t>(head->size))
      .String("checkpoint", head->note)
      .String("origin", signer.origin())
      .String("public_key", Base64Encode(signer.public_key().data(), signer.public_key().size()))
      .BeginArray("proof");
  for (const auto& h : proof.value()) data.String(B64(h));
  data.EndArray().EndObject();
  std::string json = data.Take();
  // Inside <script type="application/json"> nothing may close the element.
  for (size_t at = json.find("</"); at != std::string::npos; at = json.find("</", at + 2)) {
    json.replace(at, 2, "<\\/");
  }
  std::string body =
      "<h2>" + c->w("The entry, as stored", "L'entrée, telle que conservée") + "</h2><pre>" +
      HtmlEscape(entry) + "</pre><h2>" + c->w("Proof", "Preuve") +
      "</h2><p class=\"status\" "
      "role=\"status\" data-server-check=\"" +
      (checked ? "ok" : "failed") + "\">" +
      (checked ? c->w("Checked by the service: the entry is in the log of ",
                      "Vérifiée par le service : l'entrée est dans le journal de ") +
                     std::to_string(head->size) +
                     c->w(" entries whose root the signed tree head below states.",
                          " entrées dont la tête d'arbre signée ci-dessous donne la racine.")
               : c->w("The service could NOT check this entry against the signed tree head.",
                      "Le service n'a PAS pu vérifier cette entrée avec la tête d'arbre signée.")) +
      "</p><p id=\"browser-check\" role=\"status\" aria-live=\"polite\">" +
      c->w("Your browser has not checked the proof (it needs JavaScript).",
           "Votre navigateur n'a pas vérifié la preuve (il faut JavaScript).") +
      "</p><dl><dt>" + c->w("Position", "Position") + "</dt><dd>" + std::to_string(seq) +
      "</dd><dt>" +
      c->w("Leaf hash (SHA-256 of 0x00 and the entry)",
           "Empreinte de feuille (SHA-256 de 0x00 et de l'entrée)") +
      "</dt><dd><code>" + B64(LeafHash(entry)) + "</code></dd><dt>" +
      c->w("Audit path (RFC 9162)", "Chemin d'audit (RFC 9162)") + "</dt><dd><ol>";
  for (const auto& h : proof.value()) body += "<li><code>" + B64(h) + "</code></li>";
  body += "</ol></dd><dt>" + c->w("Signed tree head", "Tête d'arbre signée") + "</dt><dd><pre>" +
          HtmlEscape(head->note) + "</pre></dd><dt>" +
          c->w("Service public key (Ed25519)", "Clé publique du service (Ed25519)") +
          "</dt><dd><code>" + Base64Encode(signer.public_key().data(), signer.public_key().size()) +
          "</code></dd></dl><script type=\"application/json\" id=\"proof-data\">" + json +
          "</script><script src=\"/console/proof.js\" data-ok=\"" +
          HtmlEscape(c->w("Checked in your browser: leaf hash, audit path and the signature of "
                          "the tree head are all valid.",
                          "Vérifiée dans votre navigateur : empreinte, chemin d'audit et "
                          "signature de la tête d'arbre sont valides.")) +
          "\" data-failed=\"" +
          HtmlEscape(c->w("Your browser found the proof INVALID.",
                          "Votre navigateur a trouvé la preuve INVALIDE.")) +
          "\" data-nosig=\"" +
          HtmlEscape(c->w("Checked in your browser: leaf hash and audit path are valid; this "
                          "browser cannot check Ed25519 signatures.",
                          "Vérifiée dans votre navigateur : empreinte et chemin d'audit valides ; "
                          "ce navigateur ne sait pas vérifier les signatures Ed25519.")) +
          "\"></script><p><a href=\"/console/audit\">" +
          c->w("Back to the search", "Retour à la recherche") + "</a></p>";
  std::string subject;
  try {
    subject =
        Member(*Poco::JSON::Parser().parse(entry).extract<Poco::JSON::Object::Ptr>(), "subject");
  } catch (const std::exception&) {
  }
  Viewed(*c, "audit.entry", subject, 1);
  Page(*c, 200, c->w("Audit entry ", "Entrée d'audit ") + text, body, "/console/audit");
  return Status::Ok();
}

// Checks the page's proof with Web Crypto: the leaf hash of the exact entry bytes, the RFC
// 9162 audit path to the signed root, and the Ed25519 signature of the C2SP checkpoint.
constexpr char kProofJs[] = R"js('use strict';
(async () => {
  const me = document.currentScript;
  const out = document.getElementById('browser-check');
  const data = JSON.parse(document.getElementById('proof-data').textContent);
  const enc = new TextEncoder();
  const b64 = (s) => Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));
  const cat = (...parts) => {
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { all.set(p, at); at += p.length; }
    return all;
  };
  const sha = async (bytes) => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const node = (l, r) => sha(cat(Uint8Array.of(1), l, r));
  const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
  try {
    const body = data.checkpoint.split('\n\n')[0] + '\n';
    const lines = body.split('\n');
    const root = b64(lines[2]);
    let ok = lines[0] === data.origin && Number(lines[1]) === data.size;
    let fn = data.index, sn = data.size - 1;
    let r = await sha(cat(Uint8Array.of(0), enc.encode(data.entry)));
    for (const p of data.proof.map(b64)) {
      if (sn === 0) { ok = false; break; }
      if ((fn & 1) || fn === sn) {
        r = await node(p, r);
        if (!(fn & 1)) while (!(fn & 1) && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await node(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    ok = ok && sn === 0 && same(r, root);
    let signed = null;
    if (ok) {
      const pub = b64(data.public_key);
      const keyId = (await sha(cat(enc.encode(data.origin + '\n'), Uint8Array.of(1), pub))).slice(0, 4);
      try {
        const key = await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
        signed = false;
        for (const line of data.checkpoint.split('\n\n')[1].split('\n')) {
          const prefix = '\u2014 ' + data.origin + ' ';
          if (!line.startsWith(prefix)) continue;
          const blob = b64(line.slice(prefix.length));
          if (same(blob.slice(0, 4), keyId) &&
              await crypto.subtle.verify({ name: 'Ed25519' }, key, blob.slice(4), enc.encode(body))) {
            signed = true;
          }
        }
      } catch (e) {
        signed = null;  // no Ed25519 in this browser's Web Crypto
      }
    }
    const verdict = !ok || signed === false ? 'failed' : signed ? 'ok' : 'nosig';
    out.textContent = me.dataset[verdict];
    out.className = verdict === 'failed' ? 'error' : 'status';
    out.dataset.browserCheck = verdict;
  } catch (e) {
    out.textContent = me.dataset.failed;
    out.dataset.browserCheck = 'failed';
  }
})();
)js";

Status ProofScript(Exchange& x) {
  x.Reply(200, "text/javascript; charset=utf-8", kProofJs);
  return Status::Ok();
}

// ---- Consent statistics ----------------------------------------------------------------------

Status Consent(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "reports.read")) return Status::Ok();
  auto policies = d.policies().Current();
  std::vector<const Purpose*> chosen;
  for (const Purpose& p : policies->purposes()) {
    if (p.legal_basis == LegalBasis::kConsent) chosen.push_back(&p);
  }
  const std::string wanted = Param(x, "purpose");
  std::string channel = Param(x, "channel");
  std::string form =
      "<form method=\"get\" action=\"/console/consent\"><div class=\"filters\"><div>"
      "<label for=\"c-purpose\">" +
      c->w("Purpose", "Finalité") +
      "</label><select id=\"c-purpose\" name=\"purpose\"><option value=\"\">" +
      c->w("All purposes", "Toutes les finalités") + "</option>";
  std::set<std::string> channels;
  for (const Purpose* p : chosen) {
    form += "<option value=\"" + HtmlEscape(p->id) + "\"" + (p->id == wanted ? " selected" : "") +
            ">" + HtmlEscape(p->titles.In(c->lang()).empty() ? p->title : p->titles.In(c->lang())) +
            "</option>";
    channels.insert(p->channels.begin(), p->channels.end());
  }
  if (!channel.empty() && channels.count(channel) == 0) channel.clear();
  form += "</select></div><div><label for=\"c-channel\">" + c->w("Channel", "Canal") +
          "</label><select id=\"c-channel\" name=\"channel\"><option value=\"\">" +
          c->w("Any channel (purpose-wide)", "Tous canaux (finalité entière)") + "</option>";
  for (const auto& ch : channels) {
    form += "<option value=\"" + HtmlEscape(ch) + "\"" + (ch == channel ? " selected" : "") + ">" +
            HtmlEscape(ch) + "</option>";
  }
  form += "</select></div></div><p><button type=\"submit\">" + c->w("Show", "Afficher") +
          "</button></p></form>";
  if (!wanted.empty()) {
    chosen.erase(std::remove_if(chosen.begin(), chosen.end(),
                                [&](const Purpose* p) { return p->id != wanted; }),
                 chosen.end());
  }
  std::string body = form + "<p>" +
                     c->w(
                         "At each month's end over the last 12 months: of the customers on file "
                         "then, the share the consent decision allowed. No figure is shown for "
                         "fewer than 5 customers.",
                         "À chaque fin de mois des 12 derniers mois : parmi les personnes "
                         "connues alors, la part que la décision de consentement autorisait. "
                         "Aucun chiffre sous 5 personnes.") +
                     "</p>";
  const auto instants = MonthEnds(d.clock().Now(), 12);
  int charts = 0;
  for (const Purpose* p : chosen) {
    const std::vector<std::string>& own = p->channels;
    if (!channel.empty() && std::find(own.begin(), own.end(), channel) == own.end()) continue;
    auto rates = d.consents().RatesOver(c->s.caller, p->id, channel, instants);
    if (!rates.ok()) {
      body += ErrorBox(rates.status());
      continue;
    }
    const std::string title =
        (p->titles.In(c->lang()).empty() ? p->title : p->titles.In(c->lang())) +
        (channel.empty() ? "" : " — " + channel);
    body += "<h2>" + HtmlEscape(title) + "</h2><figure>" +
            ConsentRateSvg(title, rates.value(), "c" + std::to_string(++charts) + "-") +
            "</figure><table><caption>" + HtmlEscape(title) +
            "</caption><thead><tr><th scope=\"col\">" + c->w("Month end", "Fin de mois") +
            "</th><th scope=\"col\">" + c->w("Customers", "Personnes") + "</th><th scope=\"col\">" +
            c->w("Allowed", "Autorisées") + "</th></tr></thead><tbody>";
    for (const auto& r : rates.value()) {
      const bool shown = r.customers >= kSmallestReportGroup;
      body += "<tr><td>" + Day(r.at) + "</td><td>" + std::to_string(r.customers) + "</td><td>" +
              (shown ? std::to_string(r.allowed) + " (" +
                           std::to_string(r.customers == 0
                                              ? 0
                                              : (100 * r.allowed + r.customers / 2) / r.customers) +
                           " %)"
                     : "—") +
              "</td></tr>";
    }
    body += "</tbody></table>";
  }
  Viewed(*c, "consent", "", static_cast<int64_t>(chosen.size()));
  Page(*c, 200, c->w("Consent over time", "Consentement dans le temps"), body, "/console/consent");
  return Status::Ok();
}

// ---- Likely duplicates -----------------------------------------------------------------------

void DuplicatesPage(Ctx& c, const std::string& message, const Status& error) {
  const std::string after = Param(c.x, "after");
  std::string after_first, after_second;
  if (const size_t comma = after.find(','); comma != std::string::npos &&
                                            IsRandomId(after.substr(0, comma), "sub_") &&
                                            IsRandomId(after.substr(comma + 1), "sub_")) {
    after_first = after.substr(0, comma);
    after_second = after.substr(comma + 1);
  }
  constexpr size_t kPage = 50;
  auto pairs = c.d.vault().Duplicates(c.s.caller, after_first, after_second, kPage);
  std::string body;
  if (!error.ok()) body += ErrorBox(error);
  if (!message.empty()) body += message;
  if (!pairs.ok()) {
    Page(c, 500, c.w("Likely duplicates", "Doublons probables"), body + ErrorBox(pairs.status()),
         "/console/duplicates");
    return;
  }
  const bool may_merge = c.May("subjects.merge");
  body += "<p>" +
          c.w("Pairs of customers whose keyed match keys agree (names folded, with a postal "
              "code, street or phone). Merging keeps the first record; the second one's "
              "missing fields, consent (the most protective choice wins), requests and "
              "links move onto it. A merge can be reverted until it is completed.",
              "Paires de personnes dont les clés de rapprochement concordent (noms "
              "normalisés, avec un code postal, une rue ou un téléphone). La fusion garde "
              "la première fiche ; les champs manquants de la seconde, ses consentements "
              "(le choix le plus protecteur l'emporte), ses demandes et ses liens y "
              "passent. Une fusion peut être annulée tant qu'elle n'est pas achevée.") +
          "</p><table><caption>" + std::to_string(pairs->size()) + " " + c.w("pairs", "paires") +
          "</caption><thead><tr><th scope=\"col\">" + c.w("Keep", "Garder") +
          "</th><th scope=\"col\">" + c.w("Merge into it", "Fusionner dedans") +
          "</th><th scope=\"col\">" + c.w("Rules that matched", "Règles concordantes") + "</th>" +
          (may_merge ? "<th scope=\"col\">" + c.w("Action", "Action") + "</th>" : "") +
          "</tr></thead><tbody>";
  for (const auto& p : pairs.value()) {
    std::string rules;
    for (const auto& r : p.rules) rules += (rules.empty() ? "" : ", ") + HtmlEscape(r);
    body += "<tr><td>" + HtmlEscape(p.first) + "</td><td>" + HtmlEscape(p.second) + "</td><td>" +
            rules + "</td>";
    if (may_merge) {
      body += "<td><form method=\"post\" action=\"/console/duplicates/merge\">" + CsrfInput(c) +
              "<input type=\"hidden\" name=\"merged\" value=\"" + HtmlEscape(p.second) +
              "\"><input type=\"hidden\" name=\"into\" value=\"" + HtmlEscape(p.first) +
              "\"><button type=\"submit\" aria-label=\"" + c.w("Merge ", "Fusionner ") +
              HtmlEscape(p.second) + c.w(" into ", " dans ") + HtmlEscape(p.first) + "\">" +
              c.w("Merge", "Fusionner") + "</button></form></td>";
    }
    body += "</tr>";
  }
  body += "</tbody></table>";
  if (pairs->size() == kPage) {
    body += "<p><a href=\"/console/duplicates?after=" + HtmlEscape(pairs->back().first) + "," +
            HtmlEscape(pairs->back().second) + "\">" + c.w("More pairs", "Paires suivantes") +
            "</a></p>";
  }
  Viewed(c, "duplicates", "", static_cast<int64_t>(pairs->size()));
  Page(c, error.ok() ? 200 : HttpStatusOf(error.code()),
       c.w("Likely duplicates", "Doublons probables"), body, "/console/duplicates");
}

std::string MergeDone(Ctx& c, const MergeRow& m) {
  std::string out = "<div class=\"status\" role=\"status\"><p>";
  if (m.state == "reverted") {
    out += c.w("The merge ", "La fusion ") + HtmlEscape(m.id) +
           c.w(" is reverted: both records are back.",
               " est annulée : les deux fiches sont revenues.");
    return out + "</p></div>";
  }
  out += HtmlEscape(m.merged_id) + c.w(" is merged into ", " est fusionnée dans ") +
         HtmlEscape(m.into_id) + " (" + HtmlEscape(m.id) +
         ").</p><form method=\"post\" "
         "action=\"/console/merges/" +
         HtmlEscape(m.id) + "/revert\">" + CsrfInput(c) +
         "<button type=\"submit\" class=\"secondary\">" +
         c.w("Revert this merge", "Annuler cette fusion") + "</button></form></div>";
  return out;
}

Status Duplicates(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "duplicates.read")) return Status::Ok();
  std::string message;
  if (const std::string id = Param(x, "merge"); IsRandomId(id, "mrg_")) {
    auto m = d.store().Read([&](ReadTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto row, tx.GetMerge(id));
      if (row) message = MergeDone(*c, *row);
      return Status::Ok();
    });
    m.IgnoreError();
  }
  DuplicatesPage(*c, message, Status::Ok());
  return Status::Ok();
}

Status MergePair(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "subjects.merge")) return Status::Ok();
  auto form = PostedForm(*c);
  if (!form) return Status::Ok();
  auto merged = d.merges().Merge(c->s.caller, FormValue(*form, "merged"),
                                 MergeRequest{FormValue(*form, "into"), {}});
  if (!merged.ok()) {
    DuplicatesPage(*c, "", merged.status());
    return Status::Ok();
  }
  Redirect(x, "/console/duplicates?merge=" + merged->id);
  return Status::Ok();
}

Status RevertMerge(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "subjects.merge")) return Status::Ok();
  if (!PostedForm(*c)) return Status::Ok();
  auto reverted = d.merges().Revert(c->s.caller, x.params["id"]);
  if (!reverted.ok()) {
    DuplicatesPage(*c, "", reverted.status());
    return Status::Ok();
  }
  Redirect(x, "/console/duplicates?merge=" + reverted->id);
  return Status::Ok();
}

// ---- Imports ---------------------------------------------------------------------------------

// Spreadsheet imports as the audit log records them (the per-row report went to whoever ran
// the import: a file, or the API's answer).
Status Imports(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "audit.read")) return Status::Ok();
  std::vector<AuditRow> rows;
  for (const char* action : {"import.run", "import.check"}) {
    AuditQuery q;
    q.action = action;
    q.limit = 200;
    auto found = d.audit().Query(q);
    if (!found.ok()) {
      Page(*c, 500, c->w("Imports", "Imports"), ErrorBox(found.status()), "/console/imports");
      return Status::Ok();
    }
    rows.insert(rows.end(), found->begin(), found->end());
  }
  std::sort(rows.begin(), rows.end(),
            [](const AuditRow& a, const AuditRow& b) { return a.seq > b.seq; });
  std::string body = "<p>" +
                     c->w(
                         "Each import of a spreadsheet, newest first, as the audit log "
                         "records it. Each row's outcome (created, updated, duplicate, "
                         "likely duplicate, invalid) is in the report given to whoever "
                         "ran it; likely duplicates are on the Duplicates page.",
                         "Chaque import de tableur, du plus récent au plus ancien, tel "
                         "que le journal d'audit l'enregistre. Le résultat de chaque "
                         "ligne (créée, mise à jour, doublon, doublon probable, "
                         "invalide) est dans le rapport remis à qui l'a lancé ; les "
                         "doublons probables sont sur la page Doublons.") +
                     "</p><table><caption>" + std::to_string(rows.size()) + " " +
                     c->w("imports", "imports") + "</caption><thead><tr><th scope=\"col\">" +
                     c->w("Time", "Heure") + "</th><th scope=\"col\">" + c->w("Key", "Clé") +
                     "</th><th scope=\"col\">" + c->w("Kind", "Nature") +
                     "</th><th scope=\"col\">" + c->w("Rows", "Lignes") +
                     "</th><th scope=\"col\">" + c->w("Audit entry", "Entrée d'audit") +
                     "</th></tr></thead><tbody>";
  for (const AuditRow& r : rows) {
    Poco::JSON::Object::Ptr e;
    try {
      e = Poco::JSON::Parser().parse(r.entry).extract<Poco::JSON::Object::Ptr>();
    } catch (const std::exception&) {
      continue;
    }
    const std::string seq = std::to_string(r.seq);
    body += "<tr><td>" + HtmlEscape(Member(*e, "time")) + "</td><td>" +
            HtmlEscape(Member(*e, "actor")) + " <small>" + HtmlEscape(Member(*e, "role")) +
            "</small></td><td>" +
            (Member(*e, "action") == "import.run" ? c->w("written", "écrit")
                                                  : c->w("dry run", "à blanc")) +
            "</td><td>" + std::to_string(e->optValue<int64_t>("count", 0)) +
            "</td><td><a href=\"/console/audit/" + seq + "\">" + seq + "</a></td></tr>";
  }
  body += "</tbody></table>";
  Viewed(*c, "imports", "", static_cast<int64_t>(rows.size()));
  Page(*c, 200, c->w("Imports", "Imports"), body, "/console/imports");
  return Status::Ok();
}

// ---- Retention -------------------------------------------------------------------------------

Status Retention(Deployment& d, ConsoleSessions& sessions, Exchange& x) {
  auto c = SignedIn(d, sessions, x);
  if (!c || !Require(*c, "retention.read")) return Status::Ok();
  std::vector<RetentionRunRow> runs;
  GARDE_RETURN_IF_ERROR(d.store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto list, tx.ListRetentionRuns(0, 50));
    runs = std::move(list);
    return Status::Ok();
  }));
  std::string body = "<table><caption>" + std::to_string(runs.size()) + " " +
                     c->w("latest runs", "dernières exécutions") +
                     "</caption><thead><tr>"
                     "<th scope=\"col\">" +
                     c->w("Run", "Exécution") + "</th><th scope=\"col\">" +
                     c->w("Started", "Début") + "</th><th scope=\"col\">" +
                     c->w("Finished", "Fin") + "</th><th scope=\"col\">" +
                     c->w("Dry run", "À blanc") + "</th><th scope=\"col\">" +
                     c->w("What it did", "Ce qu'elle a fait") + "</th></tr></thead><tbody>";
  for (const auto& r : runs) {
    std::string report;
    try {
      report = JsonHtml(Poco::JSON::Parser().parse(r.report.empty() ? "{}" : r.report));
    } catch (const std::exception&) {
      report = HtmlEscape(r.report);
    }
    body += "<tr><td>" + HtmlEscape(r.id) + "</td><td>" + Time(r.started_at) + "</td><td>" +
            (r.finished_at == 0 ? c->w("running or interrupted", "en cours ou interrompue")
                                : Time(r.finished_at)) +
            "</td><td>" + (r.dry_run ? c->w("yes", "oui") : c->w("no", "non")) + "</td><td>" +
            report + "</td></tr>";
  }
  body += "</tbody></table>";
  Viewed(*c, "retention", "", static_cast<int64_t>(runs.size()));
  Page(*c, 200, c->w("Retention runs", "Exécutions de la conservation"), body,
       "/console/retention");
  return Status::Ok();
}

}  // namespace

void AddConsoleRoutes(Router& router, Deployment& d, ConsoleSessions& sessions) {
  using Page = Status (*)(Deployment&, ConsoleSessions&, Exchange&);
  auto add = [&](const char* method, const char* pattern, Page page) {
    router.Add(method, pattern,
               [&d, &sessions, page](Exchange& x) { return page(d, sessions, x); });
  };
  add("GET", "/console", Home);
  add("GET", "/console/", Home);
  add("GET", "/console/sign-in", SignInForm);
  add("POST", "/console/sign-in", SignIn);
  add("POST", "/console/sign-out", SignOut);
  add("GET", "/console/requests", Requests);
  add("GET", "/console/requests/{id}", RequestDetail);
  add("POST", "/console/requests/{id}/{verb}", RequestAction);
  add("GET", "/console/register", Register);
  add("GET", "/console/register/{id}", ActivitySheet);
  add("GET", "/console/audit", Audit);
  add("GET", "/console/audit/{seq}", AuditEntry);
  add("GET", "/console/consent", Consent);
  add("GET", "/console/duplicates", Duplicates);
  add("POST", "/console/duplicates/merge", MergePair);
  add("POST", "/console/merges/{id}/revert", RevertMerge);
  add("GET", "/console/imports", Imports);
  add("GET", "/console/retention", Retention);
  router.Add("GET", "/console/proof.js", [](Exchange& x) { return ProofScript(x); });
}

}  // namespace garde

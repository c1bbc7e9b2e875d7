// Subject links: minting (operator), one-click unsubscribe (RFC 8058, no credentials but the
// token), and the Global Privacy Control statement.
#include "garde/base/clock.h"
#include "garde/base/json_writer.h"
#include "garde/http/http_service.h"
#include "garde/http/json_input.h"

namespace garde {
namespace {

constexpr int64_t kDefaultTtl = 60 * 86400;       // links in e-mails live 60 days
constexpr int64_t kMaxTtl = 400 * 86400;

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

void Page(Exchange& x, int status, const std::string& title, const std::string& body) {
  x.status = status;
  x.reply_type = "text/html; charset=utf-8";
  x.reply = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>" + HtmlEscape(title) + "</title>"
            "<style>body{font:1.1rem/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;"
            "padding:0 1rem;color:#111;background:#fff}button{font:inherit;padding:.6rem 1.2rem;"
            "border:2px solid #111;background:#111;color:#fff;border-radius:.3rem}"
            "button:focus{outline:3px solid #1a56db;outline-offset:2px}</style></head><body><main>"
            "<h1>" + HtmlEscape(title) + "</h1>" + body + "</main></body></html>";
  x.reply_headers.emplace_back("Content-Security-Policy",
                               "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
  x.reply_headers.emplace_back("Referrer-Policy", "no-referrer");
}

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

Status MintLinks(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(Authenticate(d, x));
  auto policies = d.policies().Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, *x.caller, "links.mint"));
  GARDE_RETURN_IF_ERROR(RequireJsonBody(x));
  auto obj = ParseJsonObject(x.body);
  if (!obj.ok()) return obj.status();
  Status problems(Code::kUnprocessable, "the link request is not valid");
  CheckMembers(*obj.value(), {"uses", "purpose", "ttl_days"}, "", &problems);
  std::vector<std::string> uses;
  if (obj.value()->has("uses")) {
    if (!IsJsonArray(obj.value()->get("uses"))) {
      problems.AddError("uses", "must be an array");
    } else {
      const auto& arr = *obj.value()->getArray("uses");
      for (size_t i = 0; i < arr.size(); ++i) {
        const auto v = arr.get(static_cast<unsigned>(i));
        const std::string use = v.isString() ? v.extract<std::string>() : "";
        if (use != "preferences" && use != "unsubscribe") {
          problems.AddError("uses[" + std::to_string(i) + "]", "must be preferences or unsubscribe");
        } else {
          uses.push_back(use);
        }
      }
    }
  } else {
    uses = {"preferences", "unsubscribe"};
  }
  const std::string scope = ReadString(*obj.value(), "purpose", "", &problems).value_or("*");
  if (scope != "*") {
    const Purpose* p = policies->FindPurpose(scope);
    if (p == nullptr || !p->marketing) {
      problems.AddError("purpose", "must be a marketing purpose of the catalogue");
    }
  }
  int64_t ttl = kDefaultTtl;
  if (obj.value()->has("ttl_days")) {
    const auto v = obj.value()->get("ttl_days");
    if (!v.isInteger() || v.convert<int64_t>() < 1 || v.convert<int64_t>() * 86400 > kMaxTtl) {
      problems.AddError("ttl_days", "must be a whole number of days from 1 to 400");
    } else {
      ttl = v.convert<int64_t>() * 86400;
    }
  }
  if (!problems.errors().empty()) return problems;
  const std::string& id = x.params["id"];
  Status exists = d.store().Read([&](ReadTx& tx) -> Status {
    auto row = tx.GetSubject(id);
    if (!row.ok()) return row.status();
    if (!row.value() || row.value()->status == "erased") return NotFound("no such subject");
    return Status::Ok();
  });
  GARDE_RETURN_IF_ERROR(exists);
  const Config& cfg = d.config();
  const std::string base = !cfg.public_url.empty()
                               ? cfg.public_url
                               : "http://" + cfg.listen_host + ":" + std::to_string(cfg.listen_port);
  const int64_t expires = d.clock().Now() + ttl;
  JsonWriter w;
  w.BeginObject().Key("subject").String(id).Key("links").BeginArray();
  for (const auto& use : uses) {
    const std::string token = d.tokens().Mint({id, use, scope, expires});
    const std::string url = base + (use == "unsubscribe" ? "/u/" : "/p/") + token;
    w.BeginObject().Key("use").String(use).Key("url").String(url).Key("token").String(token)
        .Key("expires_at").String(FormatRfc3339(expires));
    if (use == "unsubscribe") {
      // Ready for the message headers (RFC 2369, RFC 8058).
      w.Key("headers").BeginObject().Key("List-Unsubscribe").String("<" + url + ">")
          .Key("List-Unsubscribe-Post").String("List-Unsubscribe=One-Click").EndObject();
    }
    w.EndObject();
  }
  w.EndArray().EndObject();
  GARDE_RETURN_IF_ERROR(d.journal().Record(nullptr, *x.caller,
                                           {"links.mint", id, "", "ok", uses, 1}));
  x.Json(201, w.Take());
  return Status::Ok();
}

Status UnsubscribePage(Deployment& d, Exchange& x) {
  auto claims = d.tokens().Verify(x.params["token"], d.clock().Now());
  if (!claims.ok() || claims->use != "unsubscribe") {
    return NotFound("this link is not valid or has expired");
  }
  // GET never unsubscribes (link scanners follow links): it only offers the button.
  Page(x, 200, "Unsubscribe",
       "<p>Stop receiving these messages?</p>"
       "<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" "
       "value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>");
  return Status::Ok();
}

Status UnsubscribePost(Deployment& d, Exchange& x) {
  auto claims = d.tokens().Verify(x.params["token"], d.clock().Now());
  if (!claims.ok() || claims->use != "unsubscribe") {
    return NotFound("this link is not valid or has expired");
  }
  if (!IsOneClickBody(x)) {
    return Status(Code::kUnprocessable, "expected the body List-Unsubscribe=One-Click")
        .AddError("List-Unsubscribe", "must be One-Click");
  }
  auto done = d.consents().UnsubscribeByToken(claims.value(), x.request_id);
  if (!done.ok()) return done.status();
  Page(x, 200, "You are unsubscribed",
       "<p>You will not receive these messages any more. It may take a moment for messages "
       "already on their way to stop.</p>");
  return Status::Ok();
}

}  // namespace

void AddLinkRoutes(Router& router, Deployment& d) {
  router.Add("POST", "/v1/subjects/{id}/links", [&d](Exchange& x) { return MintLinks(d, x); });
  router.Add("GET", "/u/{token}", [&d](Exchange& x) { return UnsubscribePage(d, x); });
  router.Add("POST", "/u/{token}", [&d](Exchange& x) { return UnsubscribePost(d, x); });
  router.Add("GET", "/.well-known/gpc.json", [](Exchange& x) {
    x.Json(200, R"({"gpc":true,"lastUpdate":"2026-11-22"})");
    return Status::Ok();
  });
}

}  // namespace garde

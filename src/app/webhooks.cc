#include "garde/app/webhooks.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/URI.h>
#include <sodium.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <mutex>
#include <random>

#include "garde/app/deployment.h"
#include "garde/base/clock.h"
#include "garde/base/json_writer.h"
#include "garde/base/log.h"

namespace garde {
namespace {

constexpr size_t kFanOutBatch = 2000;
constexpr size_t kDeliveryBatch = 500;
constexpr int64_t kLongestBackoffMs = 3600 * 1000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The recipients the register names, whatever their kind.
std::set<std::string> RegisterRecipients(const PolicySet& policies) {
  std::set<std::string> out;
  for (const auto& a : policies.activities()) {
    try {
      Poco::JSON::Parser p;
      auto o = p.parse(a.json).extract<Poco::JSON::Object::Ptr>();
      auto recipients = o->getObject("recipients");
      if (!recipients) continue;
      for (const auto& kind : recipients->getNames()) {
        auto list = recipients->getArray(kind);
        if (!list) continue;
        for (size_t i = 0; i < list->size(); ++i) {
          const auto v = list->get(static_cast<unsigned>(i));
          if (v.isString()) {
            out.insert(v.extract<std::string>());
          } else if (auto obj = list->getObject(static_cast<unsigned>(i))) {
            out.insert(obj->optValue<std::string>("name", ""));
          }
        }
      }
    } catch (const std::exception&) {
    }
  }
  return out;
}

std::optional<Bytes> SecretKeyBytes(const std::string& secret) {
  if (secret.rfind("whsec_", 0) != 0) return std::nullopt;
  auto raw = Base64Decode(secret.substr(6));
  if (!raw || raw->size() < 24 || raw->size() > 64) return std::nullopt;
  return raw;
}

}  // namespace

const std::set<std::string>& WebhookTopics() {
  static const std::set<std::string> kTopics = {"consent.changed",    "consent.expired",
                                                "subject.rectified",  "subject.erased",
                                                "subject.restricted", "subject.restriction_lifted",
                                                "request.completed",  "request.due_soon",
                                                "request.overdue",    "suppression.added"};
  return kTopics;
}

Result<std::vector<WebhookEndpoint>> LoadWebhookEndpoints(const std::string& path,
                                                          const PolicySet& policies) {
  Status bad(Code::kUnprocessable, "the webhooks file " + path + " is not valid");
  auto at = [&](const YAML::Node& n) { return path + ":" + std::to_string(n.Mark().line + 1); };
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return bad.AddError(path, e.what());
  }
  std::vector<WebhookEndpoint> out;
  const YAML::Node list = root["endpoints"];
  if (!list || !list.IsSequence()) return bad.AddError(path, "needs endpoints: [ … ]");
  const std::set<std::string> recipients = RegisterRecipients(policies);
  std::set<std::string> ids;
  for (const auto& n : list) {
    WebhookEndpoint e;
    if (!n.IsMap()) {
      bad.AddError(at(n), "each endpoint is a map");
      continue;
    }
    for (const auto& kv : n) {
      const std::string key = kv.first.as<std::string>("");
      static const std::set<std::string> kKeys = {"id",      "url",     "recipient",  "events",
                                                  "secrets", "max_age", "first_retry"};
      if (!kKeys.count(key)) bad.AddError(at(kv.first), "unknown key '" + key + "'");
    }
    try {
      e.id = n["id"].as<std::string>("");
      e.url = n["url"].as<std::string>("");
      e.recipient = n["recipient"].as<std::string>("");
      if (n["events"]) {
        for (const auto& t : n["events"]) e.events.insert(t.as<std::string>());
      }
      if (n["secrets"]) {
        for (const auto& s : n["secrets"]) e.secrets.push_back(s.as<std::string>());
      }
      if (n["max_age"]) {
        auto seconds = AddIsoDuration(0, n["max_age"].as<std::string>());
        if (!seconds || *seconds <= 0) {
          bad.AddError(at(n["max_age"]), "max_age must be an ISO 8601 duration, e.g. P3D");
        } else {
          e.max_age = *seconds;
        }
      }
      if (n["first_retry"]) {
        auto seconds = AddIsoDuration(0, n["first_retry"].as<std::string>());
        if (!seconds || *seconds <= 0) {
          bad.AddError(at(n["first_retry"]), "first_retry must be an ISO 8601 duration, e.g. PT1S");
        } else {
          e.first_retry_ms = *seconds * 1000;
        }
      }
    } catch (const std::exception&) {
      bad.AddError(at(n), "id, url and recipient are strings; events and secrets are lists");
      continue;
    }
    if (e.id.empty() || !ids.insert(e.id).second) {
      bad.AddError(at(n), "each endpoint needs its own id");
    }
    if (e.id == kMailEndpoint) {
      bad.AddError(at(n), "the id 'mail' is Garde's own queue of messages to customers");
    }
    Poco::URI uri;
    try {
      uri = Poco::URI(e.url);
    } catch (const std::exception&) {
    }
    if ((uri.getScheme() != "http" && uri.getScheme() != "https") || uri.getHost().empty()) {
      bad.AddError(at(n), "url must be an http:// or https:// URL");
    }
    if (recipients.count(e.recipient) == 0) {
      bad.AddError(at(n), "recipient '" + e.recipient +
                              "' is named by no activity of the register (recipients)");
    }
    if (e.events.empty()) bad.AddError(at(n), "events lists the topics to deliver");
    for (const auto& t : e.events) {
      if (!WebhookTopics().count(t)) bad.AddError(at(n), "events: unknown topic '" + t + "'");
    }
    if (e.secrets.empty() || e.secrets.size() > 2) {
      bad.AddError(at(n), "secrets lists one or two whsec_ secrets (two while rotating)");
    }
    for (const auto& s : e.secrets) {
      if (!SecretKeyBytes(s)) {
        bad.AddError(at(n), "a secret is whsec_ followed by 24 to 64 bytes in base64");
      }
    }
    out.push_back(std::move(e));
  }
  if (!bad.errors().empty()) return bad;
  return out;
}

Result<std::string> SignWebhook(const std::vector<std::string>& secrets, const std::string& id,
                                int64_t timestamp, const std::string& body) {
  const std::string message = id + "." + std::to_string(timestamp) + "." + body;
  std::string out;
  for (const auto& secret : secrets) {
    auto key = SecretKeyBytes(secret);
    if (!key) return Unprocessable("not a whsec_ secret");
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key->data(), key->size());
    crypto_auth_hmacsha256_update(&st, reinterpret_cast<const uint8_t*>(message.data()),
                                  message.size());
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(key->data(), key->size());
    out += (out.empty() ? "" : " ") + std::string("v1,") + Base64Encode(mac, sizeof mac);
  }
  return out;
}

struct WebhookDispatcher::Sessions {
  std::map<std::string, std::unique_ptr<Poco::Net::HTTPClientSession>> by_endpoint;
};

struct WebhookDispatcher::Sent {
  bool ok = false;
  std::string error;       // a status code or a transport error: no personal data
  bool skipped = false;    // nothing to send (a message with no address on file)
  bool permanent = false;  // refused for good: dead at once
};

void WebhookDispatcher::AttachMailer(std::unique_ptr<Mailer> mailer) {
  WebhookEndpoint mail;
  mail.id = kMailEndpoint;
  mail.events = {"subject.notice"};
  mail.max_age = d_.config().mail_max_age;
  mail.first_retry_ms = d_.config().mail_first_retry_ms;
  endpoints_.push_back(std::move(mail));
  by_id_.clear();
  for (const auto& e : endpoints_) by_id_[e.id] = &e;
  mailer_ = std::move(mailer);
}

WebhookDispatcher::WebhookDispatcher(Deployment& deployment, std::vector<WebhookEndpoint> endpoints)
    : d_(deployment), endpoints_(std::move(endpoints)), sessions_(std::make_unique<Sessions>()) {
  for (const auto& e : endpoints_) by_id_[e.id] = &e;
  static std::once_flag ssl;
  std::call_once(ssl, [] { Poco::Net::initializeSSL(); });
}

WebhookDispatcher::~WebhookDispatcher() = default;

Status WebhookDispatcher::FanOut() {
  if (endpoints_.empty()) return Status::Ok();
  return d_.store().Write([&](WriteTx& tx) -> Status {
    for (const auto& e : endpoints_) {
      GARDE_ASSIGN_OR_RETURN(auto mark, tx.WebhookMark(e.id));
      GARDE_ASSIGN_OR_RETURN(auto events, tx.ListOutbox(mark, kFanOutBatch));
      if (events.empty()) continue;
      const int64_t now = SystemClock().Now();
      for (const auto& ev : events) {
        if (!e.events.count(ev.topic)) continue;
        // A message is due when its event happens: turning e-mail on does not send the past.
        if (e.id == kMailEndpoint && ev.created_at < now - e.max_age) continue;
        DeliveryRow row;
        row.endpoint = e.id;
        row.event_id = ev.id;
        row.topic = ev.topic;
        row.payload = ev.payload;
        row.created_at = ev.created_at;
        row.status = "pending";
        row.next_at = 0;
        try {
          Poco::JSON::Parser p;
          auto o = p.parse(ev.payload).extract<Poco::JSON::Object::Ptr>();
          row.subject = o->optValue<std::string>("subject", "");
        } catch (const std::exception&) {
        }
        GARDE_RETURN_IF_ERROR(tx.InsertDelivery(row));
      }
      GARDE_RETURN_IF_ERROR(tx.SetWebhookMark(e.id, events.back().seq));
    }
    return Status::Ok();
  });
}

WebhookDispatcher::Sent WebhookDispatcher::Send(const WebhookEndpoint& e,
                                                const DeliveryRow& delivery) {
  Sent sent;
  const int64_t timestamp = SystemClock().Now();
  JsonWriter body;
  body.BeginObject()
      .String("type", delivery.topic)
      .String("timestamp", FormatRfc3339(delivery.created_at))
      .Raw("data", delivery.payload)
      .EndObject();
  const std::string text = body.Take();
  auto signature = SignWebhook(e.secrets, delivery.event_id, timestamp, text);
  if (!signature.ok()) {
    sent.error = "cannot sign";
    return sent;
  }
  try {
    const Poco::URI uri(e.url);
    auto& session = sessions_->by_endpoint[e.id];
    if (!session) {
      if (uri.getScheme() == "https") {
        static Poco::Net::Context::Ptr context =
            new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", "",
                                   Poco::Net::Context::VERIFY_STRICT, 9, true);
        session =
            std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), context);
      } else {
        session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
      }
      session->setKeepAlive(true);
      session->setTimeout(Poco::Timespan(10, 0));
    }
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, uri.getPathEtc(),
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.setKeepAlive(true);
    request.setContentType("application/json");
    request.setContentLength(static_cast<std::streamsize>(text.size()));
    request.set("webhook-id", delivery.event_id);
    request.set("webhook-timestamp", std::to_string(timestamp));
    request.set("webhook-signature", signature.value());
    request.set("User-Agent", "garde-webhooks");
    session->sendRequest(request) << text;
    Poco::Net::HTTPResponse response;
    std::istream& in = session->receiveResponse(response);
    in.ignore(std::numeric_limits<std::streamsize>::max());  // drain, to reuse the connection
    const int status = static_cast<int>(response.getStatus());
    sent.ok = status >= 200 && status < 300;
    if (!sent.ok) sent.error = "HTTP " + std::to_string(status);
  } catch (const std::exception& ex) {
    sessions_->by_endpoint.erase(e.id);  // a broken connection is opened afresh next time
    sent.error = "transport: " + std::string(ex.what()).substr(0, 120);
  }
  return sent;
}

Result<size_t> WebhookDispatcher::Pass() {
  GARDE_RETURN_IF_ERROR(FanOut());
  std::vector<DeliveryRow> due;
  GARDE_RETURN_IF_ERROR(d_.store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto rows, tx.DueDeliveries(NowMs(), kDeliveryBatch));
    due = std::move(rows);
    return Status::Ok();
  }));
  if (due.empty()) return size_t{0};
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::set<std::pair<std::string, std::string>> held_back;  // (endpoint, subject) that failed
  std::vector<DeliveryRow> done;
  for (auto& delivery : due) {
    auto it = by_id_.find(delivery.endpoint);
    if (it == by_id_.end()) continue;  // an endpoint since removed from the file: left as is
    // In order per subject: once one fails, the later ones of that subject wait for it.
    if (!delivery.subject.empty() && held_back.count({delivery.endpoint, delivery.subject})) {
      continue;
    }
    Sent sent;
    if (delivery.endpoint == kMailEndpoint) {
      if (mailer_ == nullptr) continue;
      const MailOutcome mail = mailer_->Deliver(delivery);
      sent.ok = mail.kind == MailOutcome::Kind::kSent;
      sent.skipped = mail.kind == MailOutcome::Kind::kSkipped;
      sent.permanent = mail.kind == MailOutcome::Kind::kFailed;
      sent.error = mail.detail;
    } else {
      sent = Send(*it->second, delivery);
    }
    const int64_t now_ms = NowMs();
    ++delivery.attempts;
    if (sent.ok) {
      delivery.status = "delivered";
      delivery.delivered_at = now_ms / 1000;
      delivery.last_error.clear();
    } else if (sent.skipped) {
      delivery.status = "skipped";  // nothing the law calls for could be sent: said why
      delivery.last_error = sent.error;
    } else if (sent.permanent) {
      delivery.status = "dead";
      delivery.last_error = sent.error;
      LogLine(spdlog::level::warn, "message refused for good")
          .Str("event", delivery.event_id)
          .Str("error", sent.error);
    } else {
      delivery.last_error = sent.error;
      if (!delivery.subject.empty()) held_back.insert({delivery.endpoint, delivery.subject});
      // Exponential back-off with ±25 % jitter, until the event is older than max_age.
      const int shift = std::min(delivery.attempts - 1, 30);
      const int64_t base = std::min(kLongestBackoffMs, it->second->first_retry_ms << shift);
      std::uniform_int_distribution<int64_t> jitter(-base / 4, base / 4);
      delivery.next_at = now_ms + base + jitter(rng);
      if (delivery.next_at / 1000 - delivery.created_at > it->second->max_age) {
        delivery.status = "dead";
        LogLine(spdlog::level::warn, "webhook delivery dead")
            .Str("endpoint", delivery.endpoint)
            .Str("event", delivery.event_id)
            .Str("error", sent.error)
            .Int("attempts", delivery.attempts);
      }
    }
    done.push_back(delivery);
  }
  GARDE_RETURN_IF_ERROR(d_.store().Write([&](WriteTx& tx) -> Status {
    for (const auto& r : done) GARDE_RETURN_IF_ERROR(tx.UpdateDelivery(r));
    return Status::Ok();
  }));
  return done.size();
}

Result<DeliveryRow> WebhookDispatcher::Replay(int64_t delivery_id) {
  DeliveryRow replayed;
  GARDE_RETURN_IF_ERROR(d_.store().Write([&](WriteTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto row, tx.GetDelivery(delivery_id));
    if (!row) return NotFound("no such delivery");
    DeliveryRow r = *row;
    if (r.status == "pending") return Conflict("the delivery is still pending");
    r.status = "pending";
    r.next_at = 0;
    r.attempts = 0;
    // A replayed event gets a new age, or it would die again at its first failure.
    r.created_at = SystemClock().Now();
    replayed = r;
    return tx.UpdateDelivery(r);
  }));
  return replayed;
}

}  // namespace garde

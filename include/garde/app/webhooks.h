// Art. 19: recipients of personal data hear of every erasure, rectification, restriction and
// consent change — webhooks from the transactional outbox, signed as Standard Webhooks
// (standardwebhooks.com: webhook-id, webhook-timestamp, webhook-signature "v1,<base64>"),
// delivered at least once, in order per subject, retried with exponential back-off and
// jitter up to a maximum age, then kept as dead letters officers can replay.
//
//   auto endpoints = LoadWebhookEndpoints(cfg.webhooks_file, *policies);   // webhooks.yaml
//   WebhookDispatcher dispatcher(deployment, std::move(endpoints.value()));
//   dispatcher.Pass();   // fans new outbox events out, then delivers what is due
//
// Payloads carry ids and event facts only (field names, times), never a value: a recipient
// reads values through the API with a key bound to its activity, where minimisation applies.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "garde/app/mailer.h"
#include "garde/base/encoding.h"
#include "garde/base/status.h"
#include "garde/policy/policy_set.h"
#include "garde/store/store.h"

namespace garde {

class Deployment;

// The outbox topics an endpoint may subscribe to ("subject.notice" goes to customers, by the
// mailer, never to a recipient).
const std::set<std::string>& WebhookTopics();

struct WebhookEndpoint {
  std::string id;         // names the endpoint in deliveries and the API
  std::string url;        // http:// or https://
  std::string recipient;  // a recipient named in the register (processor, third party, internal)
  std::set<std::string> events;
  // Secrets as "whsec_<base64>": every one signs, so a recipient can rotate by adding the new
  // secret first and removing the old one once it verifies with the new.
  std::vector<std::string> secrets;
  int64_t max_age = 3 * 86400;    // seconds an event is retried before it is dead
  int64_t first_retry_ms = 1000;  // back-off starts here and doubles, up to an hour
};

// Reads webhooks.yaml (docs/operations.md, Webhooks); every problem with file:line.
Result<std::vector<WebhookEndpoint>> LoadWebhookEndpoints(const std::string& path,
                                                          const PolicySet& policies);

// The webhook-signature header value: "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" for
// each secret, space-separated.
Result<std::string> SignWebhook(const std::vector<std::string>& secrets, const std::string& id,
                                int64_t timestamp, const std::string& body);

class WebhookDispatcher {
 public:
  WebhookDispatcher(Deployment& deployment, std::vector<WebhookEndpoint> endpoints);
  ~WebhookDispatcher();
  const std::vector<WebhookEndpoint>& endpoints() const { return endpoints_; }
  // Fans new outbox events out to the endpoints that subscribe to them, then attempts the
  // deliveries that are due. Returns how many deliveries were attempted.
  Result<size_t> Pass();
  // Puts a dead (or delivered) delivery back in the queue, due now; the row as it left it.
  Result<DeliveryRow> Replay(int64_t delivery_id);
  // E-mail to customers: the subject.notice events become deliveries of endpoint "mail",
  // sent by `mailer` with the same retries, ordering and visibility as webhooks.
  void AttachMailer(std::unique_ptr<Mailer> mailer);
  Mailer* mailer() { return mailer_.get(); }

 private:
  Status FanOut();
  struct Sent;
  Sent Send(const WebhookEndpoint& endpoint, const DeliveryRow& delivery);
  Deployment& d_;
  std::vector<WebhookEndpoint> endpoints_;
  std::map<std::string, const WebhookEndpoint*> by_id_;
  struct Sessions;
  std::unique_ptr<Sessions> sessions_;  // keep-alive connections, one per endpoint
  std::unique_ptr<Mailer> mailer_;
};

}  // namespace garde

// Messages to customers by e-mail, as the law calls for them (Art. 12: a request received,
// its verification link, an extension and its reasons, a refusal and the right to complain,
// the package ready, completion; Art. 7 double opt-in; Art. 34 breach notices). They come
// from the outbox (topic subject.notice) through the webhook dispatcher's queue, as endpoint
// "mail": retried with back-off, in order per subject, sent once per outbox event (its id is
// the Message-ID), failures visible in GET /v1/webhooks/deliveries?endpoint=mail.
//
//   Mailer mailer(deployment);                     // smtp_* and mail_* of the config
//   MailOutcome sent = mailer.Deliver(delivery);   // renders, sends over SMTP, audits
#pragma once

#include <map>
#include <memory>
#include <string>

#include "garde/config/config.h"
#include "garde/store/store.h"

namespace garde {

class Deployment;

inline constexpr const char* kMailEndpoint = "mail";

struct MailOutcome {
  enum class Kind { kSent, kSkipped, kRetry, kFailed } kind = Kind::kRetry;
  // No personal data: an SMTP reply code, a transport error, or why nothing was sent.
  std::string detail;
};

// A message ready for SMTP: headers and a multipart/alternative body (text and HTML).
struct ComposedMail {
  std::string to, subject, text, html, message_id, lang, template_name, template_version;
  std::map<std::string, std::string> headers;  // List-Id, Auto-Submitted, ...
};

class Mailer {
 public:
  explicit Mailer(Deployment& deployment);
  ~Mailer();
  // Sends the notice of one delivery: only to the address on file, in the subject's language.
  MailOutcome Deliver(const DeliveryRow& delivery);
  // The message of a delivery without sending it; kSkipped (with why) when none is due.
  Result<ComposedMail> Compose(const DeliveryRow& delivery, MailOutcome* skipped);

 private:
  MailOutcome Send(const ComposedMail& mail);
  Deployment& d_;
  const Config& config_;  // the deployment's
  struct Tls;
  std::unique_ptr<Tls> tls_;  // the TLS client context, made once
};

}  // namespace garde

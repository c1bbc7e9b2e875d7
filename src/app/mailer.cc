#include "garde/app/mailer.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/MailMessage.h>
#include <Poco/Net/MailRecipient.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SecureSMTPClientSession.h>
#include <Poco/Net/StringPartSource.h>
#include <Poco/Timestamp.h>

#include <regex>

#include "garde/app/deployment.h"
#include "garde/base/clock.h"
#include "garde/base/log.h"

namespace garde {
namespace {

constexpr int64_t kVerifyLinkTtl = 3600;        // a request's confirmation: one hour
constexpr int64_t kNoticeLinkTtl = 30 * 86400;  // reading an answer, downloading a package

// The template of a notice (subject.notice "notice" member).
std::string TemplateFor(const std::string& notice, const std::string& request_type) {
  if (notice == "verify_request") return "request_verify";
  if (notice == "request_completed") {
    return request_type == "access" || request_type == "portability" ? "package_ready"
                                                                     : "request_completed";
  }
  return notice;  // request_received, request_extended, request_rejected,
                  // restriction_lifting, consent_confirm, breach_notice
}

std::string Member(const Poco::JSON::Object& o, const char* key) {
  return o.optValue<std::string>(key, "");
}

// Header values come from policies and ids: no line breaks may reach the headers.
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return s;
}

}  // namespace

struct Mailer::Tls {
  Poco::Net::Context::Ptr context;
};

Mailer::Mailer(Deployment& deployment)
    : d_(deployment), config_(deployment.config()), tls_(std::make_unique<Tls>()) {
  if (config_.smtp_tls == "starttls") {
    // The server's certificate is verified, against the given CAs or the system's.
    try {
      tls_->context = new Poco::Net::Context(
          Poco::Net::Context::TLS_CLIENT_USE, "", "", config_.smtp_ca_file,
          Poco::Net::Context::VERIFY_STRICT, 9, config_.smtp_ca_file.empty());
    } catch (const Poco::Exception& e) {
      LogLine(spdlog::level::err, "no TLS context for SMTP: messages will wait")
          .Str("detail", e.displayText().substr(0, 200));
    }
  }
}

Mailer::~Mailer() = default;

Result<ComposedMail> Mailer::Compose(const DeliveryRow& delivery, MailOutcome* skipped) {
  auto skip = [&](const std::string& why) -> Status {
    skipped->kind = MailOutcome::Kind::kSkipped;
    skipped->detail = why;
    return Status(Code::kConflict, why);
  };
  Poco::JSON::Object::Ptr payload;
  try {
    Poco::JSON::Parser parser;
    payload = parser.parse(delivery.payload).extract<Poco::JSON::Object::Ptr>();
  } catch (const std::exception&) {
    return skip("the notice is not readable");
  }
  const std::string notice = Member(*payload, "notice");
  const std::string subject = Member(*payload, "subject");
  auto policies = d_.policies().Current();
  // Only ever to the address on file: never one a request supplied.
  GARDE_ASSIGN_OR_RETURN(auto own, d_.vault().OwnFields(subject, {"email", "language"}));
  auto email = own.find("email");
  if (email == own.end() || email->second.text.empty()) return skip("no e-mail address on file");
  auto language = own.find("language");
  const std::string lang =
      ChooseLanguage(policies->languages(), "", language == own.end() ? "" : language->second.text,
                     Member(*payload, "lang"), d_.config().default_language);

  const auto& c = policies->controller();
  const auto& authority = policies->supervisory_authority();
  std::map<std::string, std::string> values{{"controller_name", c.name},
                                            {"controller_address", c.address},
                                            {"controller_contact", c.contact},
                                            {"dpo_contact", c.dpo_contact},
                                            {"privacy_notice_url", c.privacy_notice.In(lang)},
                                            {"authority_name", authority.name},
                                            {"authority_address", authority.address},
                                            {"authority_url", authority.url}};
  const std::string base = d_.PublicBaseUrl();
  const int64_t now = d_.clock().Now();
  std::string request_type;
  if (const std::string request = Member(*payload, "request"); !request.empty()) {
    auto view = d_.requests().ForNotice(request);
    if (!view.ok())
      return view.status().code() == Code::kNotFound ? skip("the request is gone") : view.status();
    const RequestRow& r = view->row;
    if (r.subject_id != subject) return skip("the request is another subject's");
    request_type = r.type;
    values["request_type"] = policies->Text(lang, "type." + r.type);
    values["received_on"] = policies->Day(lang, r.received_at);
    values["due_on"] = policies->Day(lang, r.due_at);
    values["reason"] =
        notice == "request_rejected" ? view->rejection_reason : view->extension_reason;
    if (notice == "verify_request" && r.status != "received") return skip("already confirmed");
    // The link is minted now, not stored: the message is its only copy.
    const int64_t expires = now + (notice == "verify_request" ? kVerifyLinkTtl : kNoticeLinkTtl);
    values["link"] =
        base + "/r/" + d_.tokens()->Mint({subject, "dsr", r.id, expires}) + "?lang=" + lang;
    values["link_expires_on"] = policies->Day(lang, expires);
  }
  if (notice == "consent_confirm") {
    const std::string id = Member(*payload, "confirmation");
    std::optional<ConsentConfirmationRow> confirmation;
    GARDE_RETURN_IF_ERROR(d_.store().Read([&](ReadTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto row, tx.GetConsentConfirmation(id));
      confirmation = std::move(row);
      return Status::Ok();
    }));
    if (!confirmation || confirmation->subject_id != subject)
      return skip("the confirmation is gone");
    if (confirmation->status != "pending" || confirmation->expires_at < now) {
      return skip("already confirmed or expired");
    }
    const Purpose* purpose = policies->FindPurpose(confirmation->purpose);
    if (purpose == nullptr) return skip("the purpose left the catalogue");
    values["purpose_title"] = purpose->titles.In(lang);
    values["notice_version"] = confirmation->notice_version;
    if (const NoticeVersion* n = purpose->FindNotice(confirmation->notice_version)) {
      values["notice_url"] =
          n->urls.empty() ? base + "/notices/" + purpose->id + "/" + n->version + "?lang=" + lang
                          : n->urls.In(lang);
    }
    values["link"] = base + "/c/" +
                     d_.tokens()->Mint({subject, "confirm", id, confirmation->expires_at}) +
                     "?lang=" + lang;
    values["link_expires_on"] = policies->Day(lang, confirmation->expires_at);
  }
  if (notice == "breach_notice") {
    // Art. 34(2): the officer's texts, in the customer's language when given in it.
    auto texts = d_.breaches().NoticeTexts(Member(*payload, "incident"), lang);
    if (!texts.ok())
      return texts.status().code() == Code::kNotFound ? skip("the incident is gone")
                                                      : texts.status();
    values["breach_nature"] = texts.value()[0];
    values["breach_consequences"] = texts.value()[1];
    values["breach_measures"] = texts.value()[2];
  }
  const std::string name = TemplateFor(notice, request_type);
  const MailTemplate* tmpl = policies->Template(lang, name);
  if (tmpl == nullptr) return skip("no template '" + name + "'");

  ComposedMail mail;
  mail.to = email->second.text;
  mail.lang = lang;
  mail.template_name = name;
  mail.template_version = tmpl->version;
  mail.subject = OneLine(RenderTemplate(tmpl->subject, values, TemplateEscape::kNone));
  mail.text = RenderTemplate(tmpl->text, values, TemplateEscape::kNone);
  mail.html = RenderTemplate(tmpl->html, values, TemplateEscape::kHtml);
  const std::string domain = config_.mail_from.substr(config_.mail_from.find('@') + 1);
  // One outbox event, one Message-ID: a receiving system can tell a retry from a new message.
  mail.message_id = "<" + delivery.event_id + "@" + domain + ">";
  mail.headers["Auto-Submitted"] = "auto-generated";  // RFC 3834: no out-of-office replies
  mail.headers["X-Auto-Response-Suppress"] = "All";
  mail.headers["List-Id"] = "\"" + OneLine(c.name) + "\" <notices." + domain + ">";
  mail.headers["Content-Language"] = lang;
  return mail;
}

MailOutcome Mailer::Send(const ComposedMail& mail) {
  MailOutcome out;
  try {
    Poco::Net::MailMessage message;
    const auto policies = d_.policies().Current();
    message.setSender(Poco::Net::MailMessage::encodeWord(OneLine(policies->controller().name)) +
                      " <" + config_.mail_from + ">");
    message.addRecipient(
        Poco::Net::MailRecipient(Poco::Net::MailRecipient::PRIMARY_RECIPIENT, mail.to));
    message.setSubject(Poco::Net::MailMessage::encodeWord(mail.subject));
    message.setDate(Poco::Timestamp());
    message.set("Message-ID", mail.message_id);
    for (const auto& [name, value] : mail.headers) message.set(name, value);
    message.setContentType("multipart/alternative");
    // Poco takes ownership of each part source.
    message.addPart("", new Poco::Net::StringPartSource(mail.text, "text/plain; charset=UTF-8"),
                    Poco::Net::MailMessage::CONTENT_INLINE,
                    Poco::Net::MailMessage::ENCODING_QUOTED_PRINTABLE);
    message.addPart("", new Poco::Net::StringPartSource(mail.html, "text/html; charset=UTF-8"),
                    Poco::Net::MailMessage::CONTENT_INLINE,
                    Poco::Net::MailMessage::ENCODING_QUOTED_PRINTABLE);
    Poco::Net::SecureSMTPClientSession session(config_.smtp_host,
                                               static_cast<Poco::UInt16>(config_.smtp_port));
    session.setTimeout(Poco::Timespan(20, 0));
    session.login();
    if (config_.smtp_tls == "starttls") {
      if (!tls_->context) {
        out.detail = "no TLS context (smtp_ca_file?)";
        return out;
      }
      if (!session.startTLS(tls_->context)) {
        out.detail = "the SMTP server does not offer STARTTLS";
        return out;
      }
      session.login();
    }
    if (!config_.smtp_user.empty()) {
      session.login(Poco::Net::SMTPClientSession::AUTH_PLAIN, config_.smtp_user,
                    config_.smtp_password);
    }
    session.sendMessage(message);
    session.close();
    out.kind = MailOutcome::Kind::kSent;
  } catch (const Poco::Exception& e) {
    // Keep the reply code only: the server's text may quote the address.
    static const std::regex kCode("\\b([245][0-9][0-9])\\b");
    std::smatch m;
    const std::string text = e.displayText();
    if (std::regex_search(text, m, kCode)) {
      out.detail = "SMTP " + m[1].str();
      // A permanent refusal (5xx) is not retried: an officer looks at it.
      if (m[1].str()[0] == '5') out.kind = MailOutcome::Kind::kFailed;
    } else {
      out.detail = "transport: " + std::string(e.className());
    }
  } catch (const std::exception&) {
    out.detail = "transport error";
  }
  return out;
}

MailOutcome Mailer::Deliver(const DeliveryRow& delivery) {
  MailOutcome skipped;
  auto mail = Compose(delivery, &skipped);
  if (!mail.ok()) {
    if (skipped.kind == MailOutcome::Kind::kSkipped) return skipped;
    MailOutcome retry;
    retry.detail = "cannot compose: " + mail.status().message().substr(0, 100);
    return retry;
  }
  MailOutcome sent = Send(mail.value());
  if (sent.kind != MailOutcome::Kind::kSent) return sent;
  // What was sent, never its body: the template and its version, the language, the id.
  const Caller system{"garde", "system", {}, delivery.event_id, ""};
  Status audited = d_.journal().Record(
      nullptr, system,
      {"mail.sent",
       delivery.subject,
       "",
       "ok",
       {mail->template_name, mail->template_version, mail->lang, mail->message_id},
       1});
  if (!audited.ok()) {
    LogLine(spdlog::level::err, "mail sent but not audited").Str("event", delivery.event_id);
  }
  return sent;
}

}  // namespace garde

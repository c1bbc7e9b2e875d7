// Speaking to customers by e-mail: a real SMTP server (Debian's python3-aiosmtpd, started by
// the test) captures what Garde sends, and Python's email package reads it back.
#include <Poco/JSON/Array.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "garde_process.h"
#include "smtp_capture.h"

namespace garde::testing {
namespace {

using Poco::JSON::Object;

// The shipped policies with double opt-in asked for the e-mail newsletter.
std::string PoliciesWithDoubleOptIn() {
  const std::string dir = std::filesystem::temp_directory_path().string() +
                          "/garde-mail-policies-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::copy(GARDE_POLICIES_DIR, dir, std::filesystem::copy_options::recursive);
  std::string purposes = ReadFile(dir + "/purposes.yaml");
  const std::string anchor = "  - id: marketing.email\n";
  purposes.insert(purposes.find(anchor) + anchor.size(), "    double_opt_in: true\n");
  std::ofstream(dir + "/purposes.yaml", std::ios::trunc) << purposes;
  return dir;
}

// A directory removed when the fixture ends, after the service that reads it (declared before it).
struct RemovedAtEnd {
  std::string dir;
  ~RemovedAtEnd() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

class MailE2E : public ::testing::Test {
 protected:
  MailE2E() : policies_{PoliciesWithDoubleOptIn()}, g_(policies_.dir) {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management"});
    officer_key_ = g_.CreateKey("dpo", "officer", {});
  }
  void StartWithMail(std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = smtp_.GardeFlags();
    flags.insert(flags.end(), extra.begin(), extra.end());
    g_.Start(flags);
  }
  std::string NewSubject(const std::string& email, const std::string& language) {
    std::string fields = "\"email\":\"" + email + "\",\"first_name\":\"Camille\"";
    if (!language.empty()) fields += ",\"language\":\"" + language + "\"";
    HttpReply r =
        g_.Post("/v1/subjects", "{\"kind\":\"person\",\"fields\":{" + fields + "}}", operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonString(r.body, "id");
  }
  std::string OpenRequest(const std::string& subject, const std::string& type) {
    HttpReply r =
        g_.Post("/v1/requests", "{\"type\":\"" + type + "\",\"subject\":\"" + subject + "\"}",
                officer_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonString(r.body, "id");
  }
  HttpReply Step(const std::string& id, const std::string& step, const std::string& body = "{}") {
    return g_.Post("/v1/requests/" + id + ":" + step, body, officer_key_);
  }
  // The path of an absolute link to this service.
  std::string PathOf(const std::string& link) const {
    const std::string base = "http://127.0.0.1:" + std::to_string(g_.port());
    EXPECT_EQ(link.rfind(base, 0), 0u) << link;
    return link.substr(base.size());
  }
  HttpReply Page(const std::string& link, const std::string& method = "GET",
                 const std::string& form = "") {
    return g_.Request(method, PathOf(link), form, {}, "application/x-www-form-urlencoded");
  }
  std::string Decision(const std::string& subject) {
    return g_
        .Get("/v1/consent/check?subject=" + subject + "&purpose=marketing.email&channel=email",
             operator_key_)
        .body;
  }

  SmtpCapture smtp_;
  RemovedAtEnd policies_;
  GardeProcess g_;
  std::string operator_key_, officer_key_;
};

// The controller's identity and the headers every message carries.
void ExpectControllerAndHeaders(const Mail& m, const std::string& lang) {
  for (const std::string* body : {&m.text, &m.html}) {
    EXPECT_NE(body->find("Maison Exemple SAS"), std::string::npos) << *body;
    // The address, as written in the text body and HTML-escaped in the HTML one.
    const bool address = body->find("12 rue de l'Exemple") != std::string::npos ||
                         body->find("12 rue de l&#39;Exemple") != std::string::npos;
    EXPECT_TRUE(address) << *body;
    EXPECT_NE(body->find("dpo@maison-exemple.example"), std::string::npos);
    EXPECT_NE(body->find(lang == "fr" ? "/fr/confidentialite" : "/en/privacy"), std::string::npos);
  }
  EXPECT_EQ(m.Header("auto-submitted"), "auto-generated");
  EXPECT_NE(m.Header("list-id").find("<notices.maison-exemple.example>"), std::string::npos);
  EXPECT_EQ(m.Header("content-language"), lang);
  EXPECT_NE(m.Header("from").find("notices@maison-exemple.example"), std::string::npos);
  EXPECT_NE(m.Header("message-id").find("@maison-exemple.example>"), std::string::npos);
}

// Art. 12: every notice of a request reaches the customer, in their language, from the
// controller, with a link that works for them and for nobody else.
TEST_F(MailE2E, EveryRequestNoticeArrivesInTheCustomersLanguageNamingTheController) {
  StartWithMail();
  const std::string fr = NewSubject("camille@example.org", "fr");
  const std::string en = NewSubject("alex@example.org", "en");

  // Received (opened for the customer), extended with reasons, ready.
  const std::string access = OpenRequest(fr, "access");
  auto mails = smtp_.WaitFor(1);
  ASSERT_EQ(mails.size(), 1u);
  EXPECT_EQ(mails[0].to, "camille@example.org");
  EXPECT_EQ(mails[0].subject, "Nous avons reçu votre demande concernant vos données personnelles");
  EXPECT_NE(mails[0].text.find("Accès à mes données"), std::string::npos) << mails[0].text;
  EXPECT_NE(mails[0].text.find("Nous vous répondrons au plus tard le"), std::string::npos);
  ExpectControllerAndHeaders(mails[0], "fr");
  ASSERT_EQ(Step(access, "verify", "{\"note\":\"checked in person\"}").status, 200);
  ASSERT_EQ(Step(access, "extend",
                 "{\"by\":\"P1M\",\"reason\":\"Nous attendons les archives du magasin.\"}")
                .status,
            200);
  mails = smtp_.WaitFor(2);
  ASSERT_EQ(mails.size(), 2u);
  EXPECT_EQ(mails[1].subject, "Il nous faut plus de temps pour répondre à votre demande");
  EXPECT_NE(mails[1].text.find("Nous attendons les archives du magasin."), std::string::npos);
  EXPECT_NE(mails[1].html.find("Nous attendons les archives du magasin."), std::string::npos);
  EXPECT_NE(mails[1].text.find("article 12.3"), std::string::npos);
  ExpectControllerAndHeaders(mails[1], "fr");
  ASSERT_EQ(Step(access, "complete").status, 200);
  mails = smtp_.WaitFor(3);
  ASSERT_EQ(mails.size(), 3u);
  EXPECT_EQ(mails[2].subject, "Vos données sont prêtes");
  EXPECT_EQ(mails[2].text.find("camille@example.org"), std::string::npos)
      << "the data itself never travels in the mail";
  const std::string ready = mails[2].Link("http://");
  ASSERT_FALSE(ready.empty()) << mails[2].text;
  HttpReply page = Page(ready);
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("lang=\"fr\""), std::string::npos);
  EXPECT_NE(page.body.find("data-controller"), std::string::npos);
  // The same link opens this request's package, and nobody else's.
  const std::string path = PathOf(ready).substr(0, PathOf(ready).find('?'));
  EXPECT_EQ(g_.Request("GET", path + "/requests/" + access + "/package?format=json", "", {}).status,
            200);
  const std::string other = OpenRequest(en, "access");
  ASSERT_EQ(Step(other, "verify", "{\"note\":\"checked in person\"}").status, 200);
  ASSERT_EQ(Step(other, "complete").status, 200);
  HttpReply foreign =
      g_.Request("GET", path + "/requests/" + other + "/package?format=json", "", {});
  EXPECT_TRUE(foreign.status == 403 || foreign.status == 404) << foreign.status;
  EXPECT_EQ(foreign.body.find("alex@example.org"), std::string::npos);

  // Refused, with reasons and the right to complain, in English for the English customer.
  mails = smtp_.WaitFor(5);
  const std::string erasure = OpenRequest(en, "erasure");
  ASSERT_EQ(Step(erasure, "reject", "{\"reason\":\"We could not confirm who asked.\"}").status,
            200);
  mails = smtp_.WaitFor(7);
  ASSERT_EQ(mails.size(), 7u);
  EXPECT_EQ(mails[3].to, "alex@example.org");
  EXPECT_EQ(mails[3].subject, "We received your request about your personal data");
  EXPECT_EQ(mails[4].subject, "Your data is ready");
  EXPECT_EQ(mails[5].subject, "We received your request about your personal data");
  EXPECT_EQ(mails[6].subject, "We cannot grant your request");
  EXPECT_NE(mails[6].text.find("We could not confirm who asked."), std::string::npos);
  EXPECT_NE(mails[6].text.find("Commission nationale de l'informatique et des libertés"),
            std::string::npos);
  EXPECT_NE(mails[6].text.find("Article 12(4)"), std::string::npos);
  ExpectControllerAndHeaders(mails[6], "en");

  // What was sent is audited: the template and its version, never the body.
  size_t audited = 0;
  for (int i = 0; i < 50 && audited < 7; ++i) {
    HttpReply log = g_.Get("/v1/audit?action=mail.sent", officer_key_);
    ASSERT_EQ(log.status, 200) << log.body;
    audited = ParseObject(log.body)->getArray("items")->size();
    if (audited < 7) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(audited, 7u);
  HttpReply log = g_.Get("/v1/audit?action=mail.sent&subject=" + fr, officer_key_);
  EXPECT_NE(log.body.find("package_ready"), std::string::npos) << log.body;
  EXPECT_NE(log.body.find("request_extended"), std::string::npos) << log.body;
  for (const char* secret :
       {"Nous attendons les archives", "camille@example.org", "alex@example.org"}) {
    EXPECT_EQ(ReadFile(g_.audit_db_path()).find(secret), std::string::npos) << secret;
    EXPECT_EQ(g_.Logs().find(secret), std::string::npos) << secret;
  }
  // Each message once, each with its own id.
  std::set<std::string> ids;
  for (const auto& m : mails) ids.insert(m.Header("message-id"));
  EXPECT_EQ(ids.size(), mails.size());
}

// A customer who opens a request from their page confirms it through a one-hour link sent to
// the address on file; the link confirms that request only.
TEST_F(MailE2E, ARequestOpenedByTheCustomerIsConfirmedFromTheAddressOnFile) {
  StartWithMail();
  const std::string en = NewSubject("sam@example.org", "");  // no language: the default, en
  HttpReply links = g_.Post("/v1/subjects/" + en + "/links", "{\"uses\":[\"dsr\"]}", operator_key_);
  ASSERT_EQ(links.status, 201);
  const std::string page =
      ParseObject(links.body)->getArray("links")->getObject(0)->getValue<std::string>("url");
  HttpReply opened = Page(page, "POST", "form=request&type=access");
  ASSERT_EQ(opened.status, 200) << opened.body;
  auto mails = smtp_.WaitFor(1);
  ASSERT_EQ(mails.size(), 1u);
  EXPECT_EQ(mails[0].subject, "Confirm your request about your personal data");
  EXPECT_NE(mails[0].text.find("If you did not make it, ignore this message"), std::string::npos);
  ExpectControllerAndHeaders(mails[0], "en");
  const std::string confirm = mails[0].Link("http://");
  HttpReply shown = Page(confirm);
  ASSERT_EQ(shown.status, 200);
  EXPECT_NE(shown.body.find("Yes, I made this request"), std::string::npos);
  HttpReply confirmed = Page(confirm, "POST", "form=confirm");
  ASSERT_EQ(confirmed.status, 200) << confirmed.body;
  auto queue = ParseObject(g_.Get("/v1/requests?subject=" + en, officer_key_).body);
  EXPECT_EQ(queue->getArray("items")->getObject(0)->getValue<std::string>("status"), "verified");
  // Nothing more is sent for a confirmation.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(smtp_.Messages().size(), 1u);
}

// Art. 7(1): with double opt-in, the check says no_consent until the customer follows the
// link sent to the address on file; the receipt then records both steps.
TEST_F(MailE2E, DoubleOptInCountsFromTheClickAndTheReceiptRecordsBothSteps) {
  StartWithMail();
  const std::string fr = NewSubject("dominique@example.org", "fr");
  const std::string en = NewSubject("robin@example.org", "en");
  HttpReply asked = g_.Post("/v1/subjects/" + fr + "/consents",
                            R"({"purpose":"marketing.email","channel":"email","event":"granted",)"
                            R"("notice_version":"2026-01","method":"web_form"})",
                            operator_key_);
  ASSERT_EQ(asked.status, 202) << asked.body;
  EXPECT_EQ(JsonString(asked.body, "status"), "pending_confirmation");
  EXPECT_EQ(JsonString(Decision(fr), "reason"), "no_consent");
  auto mails = smtp_.WaitFor(1);
  ASSERT_EQ(mails.size(), 1u);
  EXPECT_EQ(mails[0].to, "dominique@example.org");
  EXPECT_EQ(mails[0].subject, "Merci de confirmer votre inscription");
  EXPECT_NE(mails[0].text.find("Lettres d'information et offres par e-mail"), std::string::npos);
  EXPECT_NE(mails[0].text.find("version 2026-01"), std::string::npos);
  ExpectControllerAndHeaders(mails[0], "fr");
  const std::string link = mails[0].Link("http://127.0.0.1:" + std::to_string(g_.port()) + "/c/");
  ASSERT_FALSE(link.empty()) << mails[0].text;
  // Following the link shows what is confirmed; a link scanner's GET confirms nothing.
  HttpReply shown = Page(link);
  ASSERT_EQ(shown.status, 200);
  EXPECT_NE(shown.body.find("Oui, je confirme"), std::string::npos);
  EXPECT_EQ(JsonString(Decision(fr), "reason"), "no_consent");
  // Another subject's pending consent stays pending whatever this link does.
  ASSERT_EQ(
      g_.Post(
            "/v1/subjects/" + en + "/consents",
            R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})",
            operator_key_)
          .status,
      202);
  HttpReply clicked = Page(link, "POST", "form=confirm");
  ASSERT_EQ(clicked.status, 200) << clicked.body;
  EXPECT_NE(clicked.body.find("data-confirmed"), std::string::npos);
  auto decision = ParseObject(Decision(fr));
  EXPECT_EQ(decision->getValue<std::string>("reason"), "consent_granted");
  EXPECT_EQ(JsonString(Decision(en), "reason"), "no_consent");
  // The receipt: asked at the first step, granted from the click.
  auto history = ParseObject(g_.Get("/v1/subjects/" + fr + "/consents", operator_key_).body);
  auto events = history->getArray("history");
  ASSERT_EQ(events->size(), 1u);
  auto receipt = events->getObject(0)->getObject("receipt")->getObject("receipt");
  auto confirmation = receipt->getObject("confirmation");
  ASSERT_TRUE(confirmation);
  EXPECT_EQ(confirmation->getValue<std::string>("method"), "double_opt_in");
  EXPECT_EQ(confirmation->getValue<std::string>("requested_at"),
            JsonString(asked.body, "requested_at"));
  EXPECT_EQ(confirmation->getValue<std::string>("confirmed_at"),
            receipt->getValue<std::string>("collected_at"));
  // Single use.
  HttpReply again = Page(link, "POST", "form=confirm");
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(again.body.find("data-confirmed"), std::string::npos);
  EXPECT_EQ(ParseObject(g_.Get("/v1/subjects/" + fr + "/consents", operator_key_).body)
                ->getArray("history")
                ->size(),
            1u);
  // A consent carried over from elsewhere brings its own proof.
  EXPECT_EQ(
      g_.Post(
            "/v1/subjects/" + en + "/consents",
            R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"import"})",
            operator_key_)
          .status,
      201);
}

// A server that refuses or vanishes: retried with back-off, visible to officers, delivered
// once it takes the message, and never sent twice, even across a restart.
TEST_F(MailE2E, RefusalsAreRetriedVisibleToOfficersAndNothingIsSentTwice) {
  smtp_.SetMode("tempfail");
  StartWithMail();
  const std::string s = NewSubject("jo@example.org", "en");
  OpenRequest(s, "access");
  auto pending = [&] {
    return ParseObject(g_.Get("/v1/webhooks/deliveries?endpoint=mail", officer_key_).body)
        ->getArray("items");
  };
  for (int i = 0; i < 100; ++i) {
    auto items = pending();
    if (items->size() == 1 && items->getObject(0)->getValue<int>("attempts") >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto items = pending();
  ASSERT_EQ(items->size(), 1u);
  EXPECT_EQ(items->getObject(0)->getValue<std::string>("status"), "pending");
  EXPECT_GE(items->getObject(0)->getValue<int>("attempts"), 2);
  EXPECT_EQ(items->getObject(0)->getValue<std::string>("last_error"), "SMTP 451");
  EXPECT_TRUE(smtp_.Messages().empty());
  smtp_.Stop();  // the server goes away
  for (int i = 0;
       i < 100 && pending()->getObject(0)->getValue<std::string>("last_error") == "SMTP 451"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(pending()->getObject(0)->getValue<std::string>("last_error").rfind("transport", 0), 0u)
      << g_.Get("/v1/webhooks/deliveries?endpoint=mail", officer_key_).body;
  EXPECT_EQ(pending()->getObject(0)->getValue<std::string>("status"), "pending");
  smtp_.SetMode("accept");
  smtp_.Start();
  auto mails = smtp_.WaitFor(1);
  ASSERT_EQ(mails.size(), 1u) << g_.Get("/v1/webhooks/deliveries?endpoint=mail", officer_key_).body;
  for (int i = 0; i < 50 && pending()->getObject(0)->getValue<std::string>("status") != "delivered";
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(pending()->getObject(0)->getValue<std::string>("status"), "delivered");
  // A restart sends nothing again.
  ASSERT_EQ(g_.Stop(), 0);
  StartWithMail();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(smtp_.Messages().size(), 1u);
  // A permanent refusal is not retried: it is dead at once, for an officer to look at.
  smtp_.SetMode("permfail");
  OpenRequest(s, "portability");
  for (int i = 0; i < 100 && pending()->size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (int i = 0; i < 100 && pending()->getObject(1)->getValue<std::string>("status") != "dead";
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(pending()->getObject(1)->getValue<std::string>("status"), "dead");
  EXPECT_EQ(pending()->getObject(1)->getValue<std::string>("last_error"), "SMTP 550");
  EXPECT_EQ(pending()->getObject(1)->getValue<int>("attempts"), 1)
      << g_.Get("/v1/webhooks/deliveries?endpoint=mail", officer_key_).body;
  // A subject without an address gets nothing, and the queue says why.
  HttpReply none =
      g_.Post("/v1/subjects", R"({"kind":"person","fields":{"first_name":"Lou"}})", operator_key_);
  OpenRequest(JsonString(none.body, "id"), "access");
  for (int i = 0; i < 100 && pending()->size() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (int i = 0; i < 100 && pending()->getObject(2)->getValue<std::string>("status") == "pending";
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(pending()->getObject(2)->getValue<std::string>("status"), "skipped");
  EXPECT_EQ(pending()->getObject(2)->getValue<std::string>("last_error"),
            "no e-mail address on file");
  EXPECT_EQ(g_.Logs().find("jo@example.org"), std::string::npos);
}

// SMTP authentication (AUTH PLAIN) with the password from a file, never the config; a wrong
// password is a permanent refusal an officer sees, and the next message after the fix goes.
TEST_F(MailE2E, TheServerIsLoggedIntoWithThePasswordFromItsFile) {
  std::ofstream(smtp_.dir() / "auth") << "garde:s3cret-pass";
  smtp_.Stop();
  smtp_.Start();  // now requires authentication
  const std::string password = g_.data_dir() + "-smtp-password";
  std::ofstream(password) << "wrong\n";
  StartWithMail({"--smtp-user", "garde", "--smtp-password-file", password});
  const std::string s = NewSubject("kim@example.org", "fr");
  OpenRequest(s, "objection");
  auto deliveries = [&] {
    return ParseObject(g_.Get("/v1/webhooks/deliveries?endpoint=mail", officer_key_).body)
        ->getArray("items");
  };
  for (int i = 0;
       i < 100 && (deliveries()->size() == 0 ||
                   deliveries()->getObject(0)->getValue<std::string>("status") == "pending");
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(deliveries()->size(), 1u);
  EXPECT_EQ(deliveries()->getObject(0)->getValue<std::string>("status"), "dead");
  EXPECT_EQ(deliveries()->getObject(0)->getValue<std::string>("last_error"), "SMTP 535");
  EXPECT_EQ(g_.Logs().find("wrong"), std::string::npos);
  ASSERT_EQ(g_.Stop(), 0);
  std::ofstream(password, std::ios::trunc) << "s3cret-pass\n";
  StartWithMail({"--smtp-user", "garde", "--smtp-password-file", password});
  // The request's completion (an objection: no package) reaches the customer.
  auto list = ParseObject(g_.Get("/v1/requests?subject=" + s, officer_key_).body);
  const std::string rid = list->getArray("items")->getObject(0)->getValue<std::string>("id");
  ASSERT_EQ(Step(rid, "verify", "{\"note\":\"checked in person\"}").status, 200);
  ASSERT_EQ(Step(rid, "complete").status, 200);
  auto mails = smtp_.WaitFor(1);
  ASSERT_EQ(mails.size(), 1u);
  EXPECT_EQ(mails[0].subject, "Votre demande est traitée");
  EXPECT_NE(mails[0].text.find("Opposition"), std::string::npos);
  ExpectControllerAndHeaders(mails[0], "fr");
  std::filesystem::remove(password);
}

// STARTTLS, required: the server's certificate is checked against the CA given in
// smtp_ca_file; a server whose certificate nothing vouches for, or that offers no STARTTLS,
// gets no message (not even in clear).
TEST_F(MailE2E, StartTlsIsRequiredAndTheServersCertificateVerified) {
  const std::string dir = smtp_.dir().string();
  // A test CA and a certificate for 127.0.0.1 signed by it (Debian's openssl).
  const std::string make_pki =
      "cd " + dir +
      " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca "
      "-keyout ca.key -out ca.crt 2>/dev/null && "
      "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout tls.key -out tls.csr "
      "2>/dev/null && printf 'subjectAltName=IP:127.0.0.1\n' > san.ext && "
      "openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile san.ext -out tls.crt 2>/dev/null";
  ASSERT_EQ(RunProgram({"/bin/sh", "-c", make_pki}).exit_code, 0);
  // Against a server without STARTTLS first: nothing goes out in clear.
  std::vector<std::string> flags = smtp_.GardeFlags();
  flags[5] = "starttls";  // --smtp-tls
  ASSERT_EQ(flags[4], "--smtp-tls");
  std::filesystem::rename(dir + "/tls.crt", dir + "/tls.crt.off");
  g_.Start([&] {
    auto f = flags;
    f.insert(f.end(), {"--smtp-ca-file", dir + "/ca.crt"});
    return f;
  }());
  const std::string s = NewSubject("tls@example.org", "en");
  OpenRequest(s, "access");
  auto deliveries = [&] {
    return ParseObject(g_.Get("/v1/webhooks/deliveries?endpoint=mail", officer_key_).body)
        ->getArray("items");
  };
  for (int i = 0; i < 100 && (deliveries()->size() == 0 ||
                              deliveries()->getObject(0)->getValue<int>("attempts") == 0);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(deliveries()->getObject(0)->getValue<std::string>("last_error"),
            "the SMTP server does not offer STARTTLS");
  EXPECT_TRUE(smtp_.Messages().empty());
  ASSERT_EQ(g_.Stop(), 0);
  // With TLS, but garde trusting only the system's CAs: the certificate is refused.
  std::filesystem::rename(dir + "/tls.crt.off", dir + "/tls.crt");
  smtp_.Stop();
  smtp_.Start();
  g_.Start(flags);
  for (int i = 0; i < 150 && deliveries()->getObject(0)->getValue<std::string>("last_error") ==
                                 "the SMTP server does not offer STARTTLS";
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(deliveries()->getObject(0)->getValue<std::string>("last_error").rfind("transport", 0),
            0u)
      << deliveries()->getObject(0)->getValue<std::string>("last_error");
  EXPECT_TRUE(smtp_.Messages().empty());
  EXPECT_EQ(deliveries()->getObject(0)->getValue<std::string>("status"), "pending");
  ASSERT_EQ(g_.Stop(), 0);
  // Trusting the test CA: the message goes, over TLS.
  flags.insert(flags.end(), {"--smtp-ca-file", dir + "/ca.crt"});
  g_.Start(flags);
  auto mails = smtp_.WaitFor(1);
  ASSERT_EQ(mails.size(), 1u) << g_.Get("/v1/webhooks/deliveries?endpoint=mail", officer_key_).body;
  EXPECT_EQ(mails[0].to, "tls@example.org");
}

}  // namespace
}  // namespace garde::testing

// When a key leaks: the breach register, its 72-hour clock, the exact scope of what the key
// read from the verified audit log, and the Art. 34 notices to the customers concerned.
#include <Poco/JSON/Array.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <thread>

#include "garde/base/clock.h"
#include "garde_process.h"
#include "smtp_capture.h"

namespace garde::testing {
namespace {

namespace fs = std::filesystem;

std::string FormatRfc3339Now() { return FormatRfc3339(SystemClock().Now()); }

class BreachE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management"});
    officer_key_ = g_.CreateKey("dpo", "officer", {});
    marketing_key_ = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
    // The tests' requests come from 127.0.0.1, standing for the proxy in front.
    std::vector<std::string> flags = smtp_.GardeFlags();
    flags.insert(flags.end(), {"--trusted-proxies", "127.0.0.1"});
    g_.Start(flags);
  }
  std::string Subject(int i) {
    const std::string lang = i % 2 == 0 ? "fr" : "en";
    HttpReply r = g_.Post("/v1/subjects",
                          R"({"kind":"person","fields":{"email":"leak)" + std::to_string(i) +
                              R"(@example.org","first_name":"Client","language":")" + lang + "\"}}",
                          operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    const std::string id = JsonString(r.body, "id");
    EXPECT_EQ(
        g_.Post(
              "/v1/subjects/" + id + "/consents",
              R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})",
              operator_key_)
            .status,
        201);
    return id;
  }
  Poco::JSON::Object::Ptr Incident(const std::string& body) {
    HttpReply r = g_.Post("/v1/incidents", body, officer_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    return ParseObject(r.body);
  }

  SmtpCapture smtp_;
  GardeProcess g_;
  std::string operator_key_, officer_key_, marketing_key_;
};

// A marketing key reads some of the customers; the incident scoped to that key lists exactly
// those, with the fields read, from a log verified first; the customers are told in their
// language; the authority's sheet has every item of Art. 33(3).
TEST_F(BreachE2E, ALeakedKeysReadsAreScopedExactlyAndTheCustomersTold) {
  std::vector<std::string> all;
  for (int i = 0; i < 24; ++i) all.push_back(Subject(i));  // even: fr, odd: en
  std::set<std::string> read_by_leaked;
  for (size_t i = 0; i < 24; i += 3) {
    ASSERT_EQ(g_.Get("/v1/subjects/" + all[i], marketing_key_, "marketing_email").status, 200);
    read_by_leaked.insert(all[i]);
  }
  // Other keys' reads are not the leak's.
  for (size_t i = 1; i < 24; i += 4) {
    ASSERT_EQ(g_.Get("/v1/subjects/" + all[i], operator_key_, "customer_management").status, 200);
  }
  const std::string leaked_id =
      ParseObject(
          g_.Get("/v1/audit?action=subject.read&activity=marketing_email", officer_key_).body)
          ->getArray("items")
          ->getObject(0)
          ->getValue<std::string>("actor");
  ASSERT_FALSE(leaked_id.empty());
  const std::string now = FormatRfc3339Now();
  auto incident = Incident(
      R"({"detected_at":")" + now +
      R"(","title":"Marketing key published",)"
      R"("nature":{"en":"A marketing API key was published in a public repository.",)"
      R"("fr":"Une clé d'API marketing a été publiée dans un dépôt public."},)"
      R"("categories_of_data":["contact details"],"categories_of_subjects":["customers"]})");
  const std::string id = incident->getValue<std::string>("id");
  EXPECT_EQ(incident->getValue<std::string>("status"), "open");
  EXPECT_FALSE(incident->getValue<bool>("overdue"));
  // The 72-hour clock runs from awareness (aware_at defaults to the moment of recording).
  const int64_t aware = *ParseRfc3339(incident->getValue<std::string>("aware_at"));
  EXPECT_EQ(*ParseRfc3339(incident->getValue<std::string>("authority_due_at")), aware + 72 * 3600);

  // Containment from the incident: the key stops working at once, and the step is recorded.
  HttpReply contained = g_.Post("/v1/incidents/" + id + ":revoke-key",
                                R"({"key":")" + leaked_id + "\"}", officer_key_);
  ASSERT_EQ(contained.status, 200) << contained.body;
  EXPECT_EQ(g_.Get("/v1/subjects/" + all[0], marketing_key_, "marketing_email").status, 401);
  EXPECT_NE(contained.body.find("revoked API key " + leaked_id), std::string::npos);
  EXPECT_EQ(g_.Post("/v1/incidents/" + id + ":revoke-key", R"({"key":")" + leaked_id + "\"}",
                    officer_key_)
                .status,
            404);

  HttpReply scoped =
      g_.Post("/v1/incidents/" + id + ":scope", R"({"actor":")" + leaked_id + "\"}", officer_key_);
  ASSERT_EQ(scoped.status, 200) << scoped.body;
  auto scope = ParseObject(scoped.body)->getObject("facts")->getObject("scope");
  auto subjects = scope->getArray("subjects");
  std::set<std::string> listed;
  for (size_t i = 0; i < subjects->size(); ++i) {
    auto s = subjects->getObject(static_cast<unsigned>(i));
    listed.insert(s->getValue<std::string>("subject"));
    const std::string fields = s->get("fields").toString();
    EXPECT_NE(fields.find("email"), std::string::npos) << fields;
    EXPECT_EQ(s->getArray("activities")->getElement<std::string>(0), "marketing_email");
  }
  EXPECT_EQ(listed, read_by_leaked);
  EXPECT_GT(scope->getValue<int64_t>("verified_entries"), 0);

  // Each subject's entries come with inclusion proofs to the head signed when the scope was
  // drawn, checked here by the independent verifier with the public key alone.
  const std::string verifier_dir = fs::path(GARDE_VERIFIER).parent_path().string();
  for (const auto& subject : read_by_leaked) {
    RunResult py = RunProgram({"/usr/bin/python3", verifier_dir + "/verify_evidence.py",
                               "http://127.0.0.1:" + std::to_string(g_.port()), officer_key_, id,
                               subject, leaked_id});
    EXPECT_EQ(py.exit_code, 0) << py.err << py.out;
    EXPECT_NE(py.out.find("proved against the signed head"), std::string::npos) << py.out;
  }
  EXPECT_EQ(g_.Get("/v1/incidents/" + id + "/evidence?subject=" + all[1], officer_key_).status,
            404);  // read by another key only
  EXPECT_EQ(g_.Get("/v1/incidents/" + id + "/evidence", officer_key_).status, 422);
  EXPECT_EQ(g_.Get("/v1/incidents/" + id + "/evidence?subject=" + all[0], marketing_key_).status,
            401);

  // Art. 34: the customers concerned hear of it, in their language, from the controller.
  ASSERT_EQ(
      g_.Patch(
            "/v1/incidents/" + id,
            R"({"consequences":{"en":"Your e-mail address may receive unwanted messages.",)"
            R"("fr":"Votre adresse e-mail pourrait recevoir des messages indésirables."},)"
            R"("measures":{"en":"The key was revoked within the hour.","fr":"La clé a été révoquée dans l'heure."},)"
            R"("assessment":{"readable_by_intruder":true,"risk":"high","reasoning":"plaintext reads"}})",
            officer_key_)
          .status,
      200);
  HttpReply told = g_.Post("/v1/incidents/" + id + ":notify-subjects", "{}", officer_key_);
  ASSERT_EQ(told.status, 200) << told.body;
  auto mails = smtp_.WaitFor(read_by_leaked.size());
  ASSERT_EQ(mails.size(), read_by_leaked.size());
  size_t french = 0;
  for (const auto& m : mails) {
    if (m.Header("content-language") == "fr") {
      ++french;
      EXPECT_EQ(m.subject,
                "Important : un incident de sécurité concernant vos données personnelles");
      EXPECT_NE(m.text.find("Une clé d'API marketing a été publiée"), std::string::npos);
      EXPECT_NE(m.text.find("La clé a été révoquée dans l'heure."), std::string::npos);
    } else {
      EXPECT_EQ(m.subject, "Important: a security incident concerning your personal data");
      EXPECT_NE(m.text.find("Your e-mail address may receive unwanted messages."),
                std::string::npos);
    }
    EXPECT_NE(m.text.find("dpo@maison-exemple.example"), std::string::npos);
  }
  EXPECT_EQ(french, 4u);  // subjects 0, 6, 12, 18 are even: fr; 3, 9, 15, 21: en

  // The authority's sheet, under the notification form's headings.
  for (const char* lang : {"fr", "en"}) {
    HttpReply sheet = g_.Get("/v1/incidents/" + id + "?format=html&lang=" + lang, officer_key_);
    ASSERT_EQ(sheet.status, 200);
    for (const char* item :
         {"(a)", "(b)", "(c)", "(d)", "dpo@maison-exemple.example", id.c_str()}) {
      EXPECT_NE(sheet.body.find(item), std::string::npos) << lang << ": " << item;
    }
    EXPECT_NE(sheet.body.find(std::string(lang) == "fr" ? "Conséquences probables"
                                                        : "Likely consequences"),
              std::string::npos);
  }
  // Every change is in the audit log.
  HttpReply audit = g_.Get("/v1/audit?action=incident.notify_subjects", officer_key_);
  EXPECT_NE(audit.body.find(id), std::string::npos);
  // Facts are sealed: the database does not hold them in clear.
  EXPECT_EQ(ReadFile(g_.db_path()).find("published in a public repository"), std::string::npos);

  // Scoped by activity instead (every key's reads for customer management), then by both.
  HttpReply by_activity = g_.Post("/v1/incidents/" + id + ":scope",
                                  R"({"activity":"customer_management"})", officer_key_);
  ASSERT_EQ(by_activity.status, 200) << by_activity.body;
  auto activity_scope = ParseObject(by_activity.body)->getObject("facts")->getObject("scope");
  std::set<std::string> read_for_management;
  for (size_t i = 1; i < 24; i += 4) read_for_management.insert(all[i]);
  std::set<std::string> listed_for_management;
  auto managed = activity_scope->getArray("subjects");
  for (size_t i = 0; i < managed->size(); ++i) {
    listed_for_management.insert(
        managed->getObject(static_cast<unsigned>(i))->getValue<std::string>("subject"));
  }
  EXPECT_EQ(listed_for_management, read_for_management);
  HttpReply both =
      g_.Post("/v1/incidents/" + id + ":scope",
              R"({"actor":")" + leaked_id + R"(","activity":"customer_management"})", officer_key_);
  ASSERT_EQ(both.status, 200) << both.body;
  EXPECT_EQ(
      ParseObject(both.body)->getObject("facts")->getObject("scope")->getArray("subjects")->size(),
      0u);
  EXPECT_EQ(
      g_.Post("/v1/incidents/" + id + ":scope", R"({"activity":"no_such"})", officer_key_).status,
      422);
  EXPECT_EQ(g_.Post("/v1/incidents/" + id + ":scope", "{}", officer_key_).status, 422);
}

// Containment by re-keying: every subject of the drawn scope gets a fresh data key (so that a
// data key obtained in the breach opens nothing held from now on) and reads as before; the
// others keep theirs. Refused before a scope, and to roles that may not contain.
TEST_F(BreachE2E, TheScopedSubjectsAreRekeyedAndReadAsBefore) {
  std::vector<std::string> all;
  for (int i = 0; i < 6; ++i) all.push_back(Subject(i));
  for (size_t i = 0; i < all.size(); i += 2) {
    ASSERT_EQ(g_.Get("/v1/subjects/" + all[i], marketing_key_, "marketing_email").status, 200);
  }
  HttpReply reads = g_.Get("/v1/audit?action=subject.read&activity=marketing_email", officer_key_);
  const std::string leaked_id =
      ParseObject(reads.body)->getArray("items")->getObject(0)->getValue<std::string>("actor");
  auto incident = Incident(R"({"detected_at":")" + FormatRfc3339Now() +
                           R"(","title":"Database copy and keyring left on a shared drive"})");
  const std::string id = incident->getValue<std::string>("id");
  const std::string rekey = "/v1/incidents/" + id + ":rekey";
  EXPECT_EQ(g_.Post(rekey, "{}", officer_key_).status, 409);  // no scope yet
  ASSERT_EQ(
      g_.Post("/v1/incidents/" + id + ":scope", R"({"actor":")" + leaked_id + "\"}", officer_key_)
          .status,
      200);
  EXPECT_EQ(g_.Post(rekey, "{}", marketing_key_).status, 403);
  EXPECT_EQ(g_.Post(rekey, "{}", operator_key_).status, 403);
  EXPECT_EQ(g_.Post("/v1/incidents/inc_none:rekey", "{}", officer_key_).status, 404);
  auto dek_version = [&](const std::string& subject) {
    auto rows = g_.Sql("SELECT dek_version FROM subjects WHERE id = '" + subject + "'");
    return rows.empty() ? std::string() : rows[0][0];
  };
  for (const auto& s : all) EXPECT_EQ(dek_version(s), "1");

  HttpReply done = g_.Post(rekey, "{}", officer_key_);
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_NE(done.body.find("re-keyed the data keys of 3 subject(s) of the scope"),
            std::string::npos)
      << done.body;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(dek_version(all[i]), i % 2 == 0 ? "2" : "1") << i;
    HttpReply read = g_.Get("/v1/subjects/" + all[i], operator_key_, "customer_management");
    ASSERT_EQ(read.status, 200) << read.body;
    EXPECT_NE(read.body.find("leak" + std::to_string(i) + "@example.org"), std::string::npos);
  }
  auto audited = ParseObject(g_.Get("/v1/audit?action=subject.rekey", officer_key_).body);
  EXPECT_EQ(audited->getArray("items")->size(), 3u);
}

// The same key used from two places: the incident scoped to the intruder's address lists
// exactly what was read from there. The log holds a keyed digest of each address, never the
// address, and a client cannot pass for another by writing X-Forwarded-For itself.
TEST_F(BreachE2E, AnIncidentIsScopedByTheClientAddressTheKeyWasUsedFrom) {
  std::vector<std::string> all;
  for (int i = 0; i < 12; ++i) all.push_back(Subject(i));
  std::set<std::string> from_intruder;
  auto read = [&](const std::string& subject, const std::string& forwarded_for) {
    HttpReply r = g_.Request("GET", "/v1/subjects/" + subject, "",
                             {{"Authorization", "Bearer " + marketing_key_},
                              {"X-Purpose", "marketing_email"},
                              {"X-Forwarded-For", forwarded_for}},
                             "");
    ASSERT_EQ(r.status, 200) << r.body;
  };
  for (size_t i = 0; i < all.size(); ++i) {
    if (i % 3 == 0) {
      read(all[i], "198.51.100.7");
      from_intruder.insert(all[i]);
    } else {
      read(all[i], "203.0.113.20");
    }
  }
  // Claiming the intruder's address in front of the proxy's entry does not make it one's own.
  read(all[1], "198.51.100.7, 203.0.113.21");
  auto incident =
      Incident(R"({"detected_at":")" + FormatRfc3339Now() +
               R"(","title":"Key used from an unknown address",)"
               R"("nature":{"en":"A marketing key was used from an unknown network."}})");
  const std::string id = incident->getValue<std::string>("id");
  HttpReply scoped =
      g_.Post("/v1/incidents/" + id + ":scope", R"({"client":"198.51.100.7"})", officer_key_);
  ASSERT_EQ(scoped.status, 200) << scoped.body;
  auto scope = ParseObject(scoped.body)->getObject("facts")->getObject("scope");
  EXPECT_EQ(scope->getValue<std::string>("client"), "198.51.100.7");
  std::set<std::string> listed;
  auto subjects = scope->getArray("subjects");
  for (size_t i = 0; i < subjects->size(); ++i) {
    listed.insert(subjects->getObject(static_cast<unsigned>(i))->getValue<std::string>("subject"));
  }
  EXPECT_EQ(listed, from_intruder);
  // The other address, written differently, is one address.
  HttpReply other =
      g_.Post("/v1/incidents/" + id + ":scope",
              R"({"client":"::ffff:203.0.113.21","activity":"marketing_email"})", officer_key_);
  ASSERT_EQ(other.status, 200) << other.body;
  auto other_subjects =
      ParseObject(other.body)->getObject("facts")->getObject("scope")->getArray("subjects");
  ASSERT_EQ(other_subjects->size(), 1u);
  EXPECT_EQ(other_subjects->getObject(0)->getValue<std::string>("subject"), all[1]);
  EXPECT_EQ(
      g_.Post("/v1/incidents/" + id + ":scope", R"({"client":"intruder.example"})", officer_key_)
          .status,
      422);
  // The log carries digests of the addresses, not the addresses.
  const int64_t size =
      ParseObject(g_.Get("/v1/audit/checkpoint", officer_key_).body)->getValue<int64_t>("size");
  HttpReply entries = g_.Get("/v1/audit/entries?start=0&end=" + std::to_string(size), officer_key_);
  ASSERT_EQ(entries.status, 200) << entries.body;
  EXPECT_NE(entries.body.find("\"client\":\""), std::string::npos);
  for (const char* address : {"198.51.100.7", "203.0.113.20", "203.0.113.21"}) {
    EXPECT_EQ(entries.body.find(address), std::string::npos) << address;
  }
}

// Containment on the host: a root-key rotation run with --incident is recorded among the
// incident's steps once done; an unknown incident stops the command before anything turns.
TEST_F(BreachE2E, ARootKeyRotationRunForAnIncidentIsRecordedOnIt) {
  const std::string subject = Subject(1);
  auto incident = Incident(R"({"detected_at":")" + FormatRfc3339Now() +
                           R"(","title":"Keyring copied from a backup disk"})");
  const std::string id = incident->getValue<std::string>("id");
  const std::string keyring = g_.data_dir() + "/keyring.json";
  const std::string before = ReadFile(keyring);
  RunResult refused = RunGarde({"keys", "rotate", "--data-dir", g_.data_dir(), "--policies",
                                g_.policies(), "--incident", "inc_0000000000000000000000000"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("no such incident"), std::string::npos) << refused.err;
  EXPECT_EQ(ReadFile(keyring), before);  // nothing rotated

  RunResult rotated = RunGarde({"keys", "rotate", "--data-dir", g_.data_dir(), "--policies",
                                g_.policies(), "--keyring-watch-seconds", "1", "--incident", id});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  EXPECT_NE(rotated.out.find("Recorded on incident " + id), std::string::npos) << rotated.out;
  HttpReply got = g_.Get("/v1/incidents/" + id, officer_key_);
  ASSERT_EQ(got.status, 200) << got.body;
  auto containment = ParseObject(got.body)->getObject("facts")->getArray("containment");
  ASSERT_TRUE(containment);
  ASSERT_EQ(containment->size(), 1u);
  EXPECT_NE(containment->getObject(0)->getValue<std::string>("action").find(
                "rotated the root key to version 2"),
            std::string::npos);
  // The customer's record reads as before, its data key now wrapped under version 2.
  EXPECT_EQ(g_.Get("/v1/subjects/" + subject, operator_key_, "customer_management").status, 200);
  EXPECT_NE(g_.Get("/v1/audit?action=incident.update&actor=cli", officer_key_).body.find(id),
            std::string::npos);
}

// The clock: an incident known for 80 hours and not notified is overdue, and leaves the
// queue once the authority is notified. A removed audit entry makes scoping fail rather than
// return a shorter list. Only officers hold the register.
TEST_F(BreachE2E, TheSeventyTwoHourClockAndATamperedLog) {
  const std::string long_ago = FormatRfc3339(SystemClock().Now() - 80 * 3600);
  auto late = Incident(R"({"detected_at":")" + long_ago + R"(","aware_at":")" + long_ago +
                       R"(","nature":"A laptop was stolen."})");
  const std::string id = late->getValue<std::string>("id");
  EXPECT_TRUE(late->getValue<bool>("overdue"));
  auto overdue = ParseObject(g_.Get("/v1/incidents?overdue=true", officer_key_).body);
  ASSERT_EQ(overdue->getArray("items")->size(), 1u);
  auto soon = Incident(R"({"detected_at":")" + FormatRfc3339Now() + R"(","nature":"Phishing."})");
  EXPECT_EQ(ParseObject(g_.Get("/v1/incidents?due_within_hours=80", officer_key_).body)
                ->getArray("items")
                ->size(),
            2u);
  ASSERT_EQ(g_.Patch("/v1/incidents/" + id,
                     R"({"authority_notified_at":")" + FormatRfc3339Now() +
                         R"(","delay_reasons":"The theft was reported late by the employee."})",
                     officer_key_)
                .status,
            200);
  EXPECT_EQ(ParseObject(g_.Get("/v1/incidents?overdue=true", officer_key_).body)
                ->getArray("items")
                ->size(),
            0u);
  // Refusals: bad input, other roles.
  EXPECT_EQ(g_.Post("/v1/incidents", R"({"nature":"x"})", officer_key_).status, 422);
  EXPECT_EQ(
      g_.Post("/v1/incidents", R"({"detected_at":"yesterday","nature":"x"})", officer_key_).status,
      422);
  EXPECT_EQ(
      g_.Post("/v1/incidents", R"({"detected_at":"2026-01-01T00:00:00Z","nature":"x","extra":1})",
              officer_key_)
          .status,
      422);
  // Times out of order, and a breach described by nothing, are refused and store nothing.
  const std::string day_before = FormatRfc3339(SystemClock().Now() - 24 * 3600);
  const std::string listed_before = g_.Get("/v1/incidents", officer_key_).body;
  for (const std::string& bad : {R"({"detected_at":")" + FormatRfc3339Now() + R"(","aware_at":")" +
                                     day_before + R"(","nature":"x"})",
                                 R"({"detected_at":")" + day_before + R"(","nature":"  "})",
                                 R"({"detected_at":")" + day_before + R"(","title":{"en":""}})"}) {
    HttpReply r = g_.Post("/v1/incidents", bad, officer_key_);
    EXPECT_EQ(r.status, 422) << bad << " -> " << r.body;
  }
  EXPECT_EQ(g_.Get("/v1/incidents", officer_key_).body, listed_before);
  // The authority told before the breach was detected, or in the future.
  for (const std::string& when : {FormatRfc3339(SystemClock().Now() - 90 * 3600),
                                  FormatRfc3339(SystemClock().Now() + 24 * 3600)}) {
    HttpReply r = g_.Patch("/v1/incidents/" + id, R"({"authority_notified_at":")" + when + R"("})",
                           officer_key_);
    EXPECT_EQ(r.status, 422) << when << " -> " << r.body;
  }
  EXPECT_EQ(g_.Get("/v1/incidents", operator_key_).status, 403);
  EXPECT_EQ(g_.Get("/v1/incidents/inc_00000000000000000000000000", officer_key_).status, 404);
  // A key's reads, then one of them removed from the log: the key's scope (which reads its
  // entries alone, through the actor index) and a scope by activity (which reads the whole
  // log) both refuse rather than list one subject fewer.
  ASSERT_EQ(g_.Get("/v1/subjects/" + Subject(1), marketing_key_, "marketing_email").status, 200);
  ASSERT_EQ(g_.Get("/v1/subjects/" + Subject(2), marketing_key_, "marketing_email").status, 200);
  const std::string marketing_id =
      ParseObject(
          g_.Get("/v1/audit?action=subject.read&activity=marketing_email", officer_key_).body)
          ->getArray("items")
          ->getObject(0)
          ->getValue<std::string>("actor");
  const std::string scope = "/v1/incidents/" + soon->getValue<std::string>("id") + ":scope";
  for (const std::string& by :
       {R"({"actor":")" + marketing_id + "\"}", std::string(R"({"activity":"marketing_email"})")}) {
    HttpReply drawn = g_.Post(scope, by, officer_key_);
    ASSERT_EQ(drawn.status, 200) << drawn.body;
    EXPECT_EQ(ParseObject(drawn.body)
                  ->getObject("facts")
                  ->getObject("scope")
                  ->getArray("subjects")
                  ->size(),
              2u)
        << by;
  }
  ASSERT_EQ(g_.Stop(), 0);
  g_.AuditSql(
      "DELETE FROM audit_log WHERE seq = (SELECT seq FROM audit_log WHERE entry LIKE "
      "'%subject.read%' ORDER BY seq DESC LIMIT 1)");
  g_.Start(smtp_.GardeFlags());
  for (const std::string& by :
       {R"({"actor":")" + marketing_id + "\"}", std::string(R"({"activity":"marketing_email"})")}) {
    HttpReply refused = g_.Post(scope, by, officer_key_);
    EXPECT_EQ(refused.status, 409) << by << refused.body;
    EXPECT_NE(refused.body.find("does not verify"), std::string::npos) << refused.body;
  }
}

}  // namespace
}  // namespace garde::testing

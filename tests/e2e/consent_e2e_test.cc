// Consent as marketing and the CRM use it: record, check, prove, suppress.
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include <fstream>
#include <sstream>

#include "garde/base/encoding.h"
#include "garde_process.h"

namespace garde::testing {
namespace {

Poco::JSON::Object::Ptr Parse(const std::string& body) {
  Poco::JSON::Parser p;
  return p.parse(body).extract<Poco::JSON::Object::Ptr>();
}

class ConsentE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management"});
    marketing_key_ = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
    officer_key_ = g_.CreateKey("dpo", "officer", {});
    g_.Start();
    HttpReply r =
        g_.Post("/v1/subjects",
                R"({"kind":"person","fields":{"email":"ana@example.org","phone":"+33612345678"}})",
                operator_key_);
    ASSERT_EQ(r.status, 201) << r.body;
    id_ = JsonString(r.body, "id");
  }
  HttpReply Record(const std::string& body) {
    return g_.Post("/v1/subjects/" + id_ + "/consents", body, operator_key_);
  }
  Poco::JSON::Object::Ptr Check(const std::string& purpose, const std::string& channel) {
    HttpReply r =
        g_.Get("/v1/consent/check?subject=" + id_ + "&purpose=" + purpose + "&channel=" + channel,
               marketing_key_);
    EXPECT_EQ(r.status, 200) << r.body;
    return Parse(r.body);
  }
  GardeProcess g_;
  std::string operator_key_, marketing_key_, officer_key_, id_;
};

TEST_F(ConsentE2E, GrantThenWithdrawChangesTheDecisionWithItsReason) {
  auto d = Check("marketing.email", "email");
  EXPECT_FALSE(d->getValue<bool>("allowed"));
  EXPECT_EQ(d->getValue<std::string>("reason"), "no_consent");
  EXPECT_EQ(d->getValue<std::string>("basis"), "consent");

  HttpReply r = Record(
      R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})");
  ASSERT_EQ(r.status, 201) << r.body;
  d = Check("marketing.email", "email");
  EXPECT_TRUE(d->getValue<bool>("allowed"));
  EXPECT_EQ(d->getValue<std::string>("reason"), "consent_granted");
  EXPECT_FALSE(d->isNull("since"));
  EXPECT_FALSE(d->isNull("expires_at"));  // P24M validity
  for (const char* member :
       {"subject", "purpose", "channel", "allowed", "reason", "basis", "since", "expires_at"}) {
    EXPECT_TRUE(d->has(member)) << member;
  }

  ASSERT_EQ(
      Record(R"({"purpose":"marketing.email","event":"withdrawn","method":"preference_centre"})")
          .status,
      201);
  d = Check("marketing.email", "email");
  EXPECT_FALSE(d->getValue<bool>("allowed"));
  EXPECT_EQ(d->getValue<std::string>("reason"), "consent_withdrawn");

  // History and state, for the operator and the officer.
  HttpReply h = g_.Get("/v1/subjects/" + id_ + "/consents", officer_key_);
  ASSERT_EQ(h.status, 200) << h.body;
  auto doc = Parse(h.body);
  EXPECT_EQ(doc->getArray("history")->size(), 2u);
  EXPECT_EQ(doc->getArray("state")->getObject(0)->getValue<std::string>("event"), "withdrawn");
}

TEST_F(ConsentE2E, ReceiptIsSignedAndVerifiesWithThePublicKey) {
  HttpReply r = Record(
      R"({"purpose":"marketing.sms","event":"granted","notice_version":"2026-01","method":"phone"})");
  ASSERT_EQ(r.status, 201) << r.body;
  auto receipt = Parse(r.body)->getObject("receipt");
  auto sig = receipt->getObject("signature");
  const auto signed_bytes = Base64UrlDecode(sig->getValue<std::string>("signed"));
  const auto value = Base64Decode(sig->getValue<std::string>("value"));
  auto keys = Parse(g_.Get("/v1/keys/public", "").body);
  const auto pk = Base64Decode(keys->getValue<std::string>("public_key"));
  ASSERT_TRUE(signed_bytes && value && pk);
  ASSERT_EQ(value->size(), 64u);
  EXPECT_EQ(crypto_sign_verify_detached(value->data(), signed_bytes->data(), signed_bytes->size(),
                                        pk->data()),
            0);
  // The signed bytes are the receipt shown.
  auto shown = Parse(std::string(AsStringView(*signed_bytes)));
  EXPECT_EQ(shown->getValue<std::string>("record_id"), Parse(r.body)->getValue<std::string>("id"));
  EXPECT_EQ(shown->getValue<std::string>("subject"), id_);
  EXPECT_EQ(shown->getValue<std::string>("notice_version"), "2026-01");
  EXPECT_EQ(shown->getValue<std::string>("collection_method"), "phone");
  EXPECT_EQ(shown->getObject("controller")->getValue<std::string>("name"), "Maison Exemple SAS");
  // The CLI verifies the receipt file, and refuses an edited one.
  const std::string file = g_.data_dir() + "-logs/receipt.json";
  {
    std::ostringstream os;
    Parse(r.body)->getObject("receipt")->stringify(os);
    std::ofstream(file) << os.str();
  }
  RunResult ok = RunGarde(
      {"receipt", "verify", file, "--data-dir", g_.data_dir(), "--policies", g_.policies()});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("verifies"), std::string::npos);
  {
    std::string text = ReadFile(file);
    text.replace(text.find("\"phone\""), 7, "\"email\"");  // claim another method
    std::ofstream(file) << text;
  }
  RunResult bad = RunGarde(
      {"receipt", "verify", file, "--data-dir", g_.data_dir(), "--policies", g_.policies()});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  // A changed byte does not verify.
  Bytes tampered = *signed_bytes;
  tampered[tampered.size() / 2] ^= 1;
  EXPECT_NE(
      crypto_sign_verify_detached(value->data(), tampered.data(), tampered.size(), pk->data()), 0);
}

TEST_F(ConsentE2E, ObjectionIsAbsoluteAndSuppressesTheContacts) {
  ASSERT_EQ(
      Record(
          R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})")
          .status,
      201);
  ASSERT_EQ(
      Record(R"({"purpose":"marketing.post","event":"objected","method":"call_centre"})").status,
      201);
  auto d = Check("marketing.email", "email");
  EXPECT_FALSE(d->getValue<bool>("allowed"));
  const std::string reason = d->getValue<std::string>("reason");
  EXPECT_TRUE(reason == "suppressed" || reason == "objected") << reason;
  d = Check("service.orders", "email");  // the contract still runs
  EXPECT_TRUE(d->getValue<bool>("allowed"));

  HttpReply s =
      g_.Post("/v1/suppressions:check",
              R"({"emails":["ANA@example.org","bob@example.org"],"phones":["06 12 34 56 78"]})",
              marketing_key_);
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_NE(
      s.body.find(R"("emails":[{"index":0,"suppressed":true},{"index":1,"suppressed":false}])"),
      std::string::npos)
      << s.body;
  EXPECT_NE(s.body.find(R"("phones":[{"index":0,"suppressed":true}])"), std::string::npos);
  EXPECT_EQ(s.body.find("ana@"), std::string::npos);  // contacts are never echoed
  EXPECT_EQ(ReadFile(g_.db_path()).find("ana@example.org"), std::string::npos);
}

// After a start, the service loads every subject's sealed record and consent facts in the
// background: what it answers from them must be what it answered from the database.
TEST_F(ConsentE2E, AfterARestartTheLoadedRecordsAndFactsAnswerAsBefore) {
  ASSERT_EQ(
      Record(
          R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})")
          .status,
      201);
  ASSERT_EQ(
      Record(R"({"purpose":"marketing.post","event":"objected","method":"call_centre"})").status,
      201);
  const std::string b =
      JsonString(g_.Post("/v1/subjects",
                         R"({"kind":"person","fields":{"email":"b@example.org","city":"Lyon"}})",
                         operator_key_)
                     .body,
                 "id");
  ASSERT_FALSE(b.empty());
  ASSERT_EQ(
      g_.Post(
            "/v1/subjects/" + b + "/consents",
            R"({"purpose":"marketing.sms","event":"granted","notice_version":"2026-01","method":"web_form"})",
            operator_key_)
          .status,
      201);
  // c's address put on the suppression list by another program on the file.
  const std::string c =
      JsonString(g_.Post("/v1/subjects", R"({"kind":"person","fields":{"email":"c@example.org"}})",
                         operator_key_)
                     .body,
                 "id");
  ASSERT_FALSE(c.empty());
  ASSERT_EQ(
      g_.Post(
            "/v1/subjects/" + c + "/consents",
            R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})",
            operator_key_)
          .status,
      201);
  g_.Sql(
      "INSERT INTO suppressions(kind, digest, reason, at) SELECT 'email', digest, 'complaint', 0 "
      "FROM blind_index WHERE subject_id = '" +
      c + "' AND field = '~email'");
  auto answers = [&] {
    std::string out;
    for (const auto& id : {id_, b, c}) {
      out += g_.Get("/v1/subjects/" + id, operator_key_, "customer_management").body + "\n";
      for (const std::string purpose :
           {"marketing.email", "marketing.sms", "marketing.post", "service.orders"}) {
        const std::string channel = purpose == "marketing.sms"    ? "sms"
                                    : purpose == "marketing.post" ? "post"
                                                                  : "email";
        HttpReply r = g_.Get(
            "/v1/consent/check?subject=" + id + "&purpose=" + purpose + "&channel=" + channel,
            marketing_key_);
        auto d = Parse(r.body);
        out += std::to_string(r.status) + " " + purpose + " " +
               (d->getValue<bool>("allowed") ? "allowed " : "refused ") +
               d->getValue<std::string>("reason") + "\n";
      }
    }
    return out;
  };
  const std::string before = answers();
  ASSERT_NE(before.find("marketing.post refused objected"), std::string::npos) << before;
  ASSERT_NE(before.find("marketing.sms allowed consent_granted"), std::string::npos) << before;
  ASSERT_NE(before.find("marketing.email refused suppressed"), std::string::npos) << before;

  ASSERT_EQ(g_.Stop(), 0);
  g_.Start();
  ASSERT_TRUE(g_.WaitForLog("kept records loaded", 2)) << g_.Logs();
  const std::string logs = g_.Logs();
  const std::string loaded = logs.substr(logs.rfind("kept records loaded"));
  EXPECT_NE(loaded.find(R"("sealed_records":3,"consent_facts":3)"), std::string::npos) << loaded;
  EXPECT_EQ(answers(), before);
  // A change after the loading shows at once.
  ASSERT_EQ(g_.Post("/v1/subjects/" + b + "/consents",
                    R"({"purpose":"marketing.sms","event":"withdrawn","method":"web_form"})",
                    operator_key_)
                .status,
            201);
  auto d = Parse(
      g_.Get("/v1/consent/check?subject=" + b + "&purpose=marketing.sms", marketing_key_).body);
  EXPECT_EQ(d->getValue<std::string>("reason"), "consent_withdrawn");
}

TEST_F(ConsentE2E, BatchCheckAnswersEverySubjectInOrder) {
  ASSERT_EQ(
      Record(
          R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})")
          .status,
      201);
  HttpReply other = g_.Post(
      "/v1/subjects", R"({"kind":"person","fields":{"email":"b@example.org"}})", operator_key_);
  const std::string b = JsonString(other.body, "id");
  HttpReply r = g_.Post("/v1/consent/check",
                        R"({"purpose":"marketing.email","channel":"email","subjects":[")" + id_ +
                            R"(",")" + b + R"(","sub_0000000000000000000000000a"]})",
                        marketing_key_);
  ASSERT_EQ(r.status, 200) << r.body;
  auto doc = Parse(r.body);
  auto list = doc->getArray("decisions");
  ASSERT_EQ(list->size(), 3u);
  EXPECT_TRUE(list->getObject(0)->getValue<bool>("allowed"));
  EXPECT_EQ(list->getObject(1)->getValue<std::string>("reason"), "no_consent");
  EXPECT_EQ(list->getObject(2)->getValue<std::string>("reason"), "not_found");
  EXPECT_EQ(doc->getValue<int>("allowed"), 1);
}

TEST_F(ConsentE2E, ALargeBatchIsDecidedInHalvesAndAnsweredInOrder) {
  ASSERT_EQ(
      Record(
          R"({"purpose":"marketing.email","event":"granted","notice_version":"2026-01","method":"web_form"})")
          .status,
      201);
  HttpReply other = g_.Post(
      "/v1/subjects", R"({"kind":"person","fields":{"email":"c@example.org"}})", operator_key_);
  const std::string c = JsonString(other.body, "id");
  // 2 501 subjects (split in two halves server-side), in a pattern that shows any mix-up.
  const std::string pattern[] = {id_, c, "sub_0000000000000000000000000a"};
  std::string body = R"({"purpose":"marketing.email","channel":"email","subjects":[)";
  constexpr int kCount = 2501;
  for (int i = 0; i < kCount; ++i) body += (i ? ",\"" : "\"") + pattern[i % 3] + "\"";
  body += "]}";
  HttpReply r = g_.Post("/v1/consent/check", body, marketing_key_);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  auto doc = Parse(r.body);
  auto list = doc->getArray("decisions");
  ASSERT_EQ(list->size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    auto d = list->getObject(static_cast<unsigned>(i));
    ASSERT_EQ(d->getValue<std::string>("subject"), pattern[i % 3]) << i;
    ASSERT_EQ(d->getValue<bool>("allowed"), i % 3 == 0) << i;
  }
  EXPECT_EQ(doc->getValue<int>("allowed"), (kCount + 2) / 3);
}

TEST_F(ConsentE2E, BadConsentInputIsRefusedAndWritesNothing) {
  struct Case {
    std::string body;
    int status;
    const char* field;
  } cases[] = {
      {R"({"purpose":"marketing.email","event":"granted","method":"web_form"})", 422,
       "notice_version"},
      {R"({"purpose":"no.such","event":"granted","method":"web_form"})", 422, "purpose"},
      {R"({"purpose":"marketing.email","channel":"sms","event":"granted","notice_version":"2026-01","method":"web_form"})",
       422, "channel"},
      {R"({"purpose":"marketing.email","event":"maybe","method":"web_form"})", 422, "event"},
      {R"({"purpose":"marketing.email","event":"withdrawn","method":"pigeon"})", 422, "method"},
      {R"({"purpose":"marketing.email","event":"withdrawn","method":"api","extra":1})", 422,
       "extra"},
      {R"({"purpose":"marketing.email","event":"withdrawn","method":"api","collected_at":"2999-01-01T00:00:00Z"})",
       422, "collected_at"},
      {R"({"purpose":7})", 422, "purpose"},
      {R"({"purpose":)", 400, nullptr},
  };
  for (const auto& c : cases) {
    HttpReply r = Record(c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
    if (c.field != nullptr) {
      EXPECT_NE(r.body.find(std::string("\"field\":\"") + c.field), std::string::npos) << r.body;
    }
  }
  // A version that is not the purpose's is named as such, with the ones there are.
  for (const char* event : {"granted", "withdrawn"}) {
    HttpReply r = Record(std::string(R"({"purpose":"marketing.email","event":")") + event +
                         R"(","notice_version":"v1","method":"web_form"})");
    EXPECT_EQ(r.status, 422) << r.body;
    EXPECT_NE(r.body.find("is not a notice version of marketing.email (one of: 2026-01)"),
              std::string::npos)
        << r.body;
  }
  EXPECT_EQ(g_.CountRows("consent_events"), 0);
  EXPECT_EQ(
      g_.Post("/v1/subjects/sub_0000000000000000000000000a/consents",
              R"({"purpose":"marketing.email","event":"withdrawn","method":"api"})", operator_key_)
          .status,
      404);
  EXPECT_EQ(
      g_.Post("/v1/subjects/" + id_ + "/consents",
              R"({"purpose":"marketing.email","event":"withdrawn","method":"api"})", marketing_key_)
          .status,
      403);
  EXPECT_EQ(g_.Get("/v1/consent/check?subject=" + id_ + "&purpose=marketing.email&channel=fax",
                   marketing_key_)
                .status,
            422);
  EXPECT_EQ(g_.Get("/v1/consent/check?purpose=marketing.email", marketing_key_).status, 422);
  EXPECT_EQ(
      g_.Get("/v1/consent/check?subject=sub_0000000000000000000000000a&purpose=marketing.email",
             marketing_key_)
          .status,
      404);
  EXPECT_EQ(g_.Post("/v1/consent/check", R"({"purpose":"marketing.email","subjects":"x"})",
                    marketing_key_)
                .status,
            422);
}

TEST_F(ConsentE2E, PurposesCatalogueIsServedToAnyKey) {
  HttpReply r = g_.Get("/v1/purposes", marketing_key_);
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(R"("id":"marketing.email")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("validity":"P24M")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("version":"2026-01")"), std::string::npos);
  EXPECT_EQ(g_.Get("/v1/purposes", "").status, 401);
}

}  // namespace
}  // namespace garde::testing

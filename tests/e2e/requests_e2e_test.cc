// Data-subject requests as officers and customers work them, through the real binary: the
// queue, the six types from received to completed, erasure with crypto-shredding and legal
// holds, the access package, and customers limited to their own requests.
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "garde/base/clock.h"
#include "garde_process.h"
#include "smtp_capture.h"

namespace garde::testing {
namespace {

Poco::JSON::Object::Ptr Parse(const std::string& body) {
  Poco::JSON::Parser p;
  return p.parse(body).extract<Poco::JSON::Object::Ptr>();
}

class RequestsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management", "orders_invoicing"});
    officer_key_ = g_.CreateKey("dpo", "officer", {});
    marketing_key_ = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
    g_.Start(smtp_.GardeFlags());
  }
  std::string CreateSubject(const std::string& fields) {
    HttpReply r =
        g_.Post("/v1/subjects", R"({"kind":"person","fields":)" + fields + "}", operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonString(r.body, "id");
  }
  void Grant(const std::string& id, const std::string& purpose) {
    EXPECT_EQ(g_.Post("/v1/subjects/" + id + "/consents",
                      R"({"purpose":")" + purpose +
                          R"(","event":"granted","notice_version":"2026-01","method":"web_form"})",
                      operator_key_)
                  .status,
              201);
  }
  Poco::JSON::Object::Ptr Open(const std::string& body, const std::string& key) {
    HttpReply r = g_.Post("/v1/requests", body, key);
    EXPECT_EQ(r.status, 201) << r.body;
    return Parse(r.body);
  }
  Poco::JSON::Object::Ptr Step(const std::string& id, const std::string& verb,
                               const std::string& body = "{}", int expected = 200) {
    HttpReply r = g_.Post("/v1/requests/" + id + ":" + verb, body, officer_key_);
    EXPECT_EQ(r.status, expected) << verb << " " << r.body;
    return Parse(r.body);
  }
  std::string Decision(const std::string& id, const std::string& purpose) {
    HttpReply r = g_.Get("/v1/consent/check?subject=" + id + "&purpose=" + purpose, marketing_key_);
    EXPECT_EQ(r.status, 200) << r.body;
    return Parse(r.body)->getValue<std::string>("reason");
  }
  std::string SubjectToken(const std::string& id, const std::string& use = "preferences") {
    HttpReply r =
        g_.Post("/v1/subjects/" + id + "/links", R"({"uses":[")" + use + R"("]})", operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    return Parse(r.body)->getArray("links")->getObject(0)->getValue<std::string>("token");
  }
  // Opens an access request for `id` with an operator key, verifies and completes it;
  // returns its id.
  std::string AnswerAccessRequest(const std::string& id) {
    auto r = Open(R"({"type":"access","subject":")" + id + R"("})", operator_key_);
    const std::string rid = r->getValue<std::string>("id");
    Step(rid, "verify", R"({"note":"checked in person"})");
    Step(rid, "complete");
    return rid;
  }
  // The path of the link in the latest customer notice `notice` about `request`, as mailed
  // to the contact on file (/r/{token}), or "" when there is no such notice.
  std::string NoticeLink(const std::string& request, const std::string& notice) {
    auto rows = g_.Sql(
        "SELECT id FROM outbox WHERE topic = 'subject.notice' AND payload "
        "LIKE '%\"notice\":\"" +
        notice + "\"%\"request\":\"" + request + "\"%' ORDER BY seq DESC LIMIT 1");
    if (rows.empty()) return "";
    const std::string path = smtp_.WaitForEvent(rows[0][0]).LinkPath();
    return path.substr(0, path.find('?'));
  }
  HttpReply WithBearer(const std::string& method, const std::string& path, const std::string& token,
                       const std::string& body = "") {
    return g_.Request(method, path, body, {{"Authorization", "Bearer " + token}},
                      body.empty() ? "" : "application/json");
  }

  SmtpCapture smtp_;
  GardeProcess g_;
  std::string operator_key_, officer_key_, marketing_key_;
};

TEST_F(RequestsE2E, OpenedRequestCarriesTheContractFieldsAndACalendarMonthDeadline) {
  const std::string id = CreateSubject(R"({"email":"dl@example.org"})");
  auto r = Open(R"({"type":"access","subject":")" + id + R"("})", operator_key_);
  for (const char* member :
       {"id", "type", "subject", "status", "received_at", "due_at", "extended", "completed_at"}) {
    EXPECT_TRUE(r->has(member)) << member;
  }
  EXPECT_EQ(r->getValue<std::string>("status"), "received");
  EXPECT_EQ(r->getValue<std::string>("subject"), id);
  EXPECT_TRUE(r->isNull("completed_at"));
  EXPECT_FALSE(r->getValue<bool>("extended"));
  // A letter received on 31 January is due on the last day of February.
  auto late =
      Open(R"({"type":"access","subject":")" + id + R"(","received_at":"2026-01-31T09:00:00Z"})",
           operator_key_);
  EXPECT_EQ(late->getValue<std::string>("due_at"), "2026-02-28T09:00:00Z");
  EXPECT_TRUE(late->getValue<bool>("overdue"));
  auto ccpa = Open(R"({"type":"access","subject":")" + id +
                       R"(","jurisdiction":"ccpa","received_at":"2026-01-01T00:00:00Z"})",
                   operator_key_);
  EXPECT_EQ(ccpa->getValue<std::string>("due_at"), "2026-02-15T00:00:00Z");
}

TEST_F(RequestsE2E, QueueFiltersOpenDueSoonAndOverdueWithCursorPages) {
  const std::string id = CreateSubject(R"({"email":"queue@example.org"})");
  const std::string overdue =
      Open(R"({"type":"access","subject":")" + id + R"(","received_at":"2026-01-31T09:00:00Z"})",
           operator_key_)
          ->getValue<std::string>("id");
  const std::string fresh = Open(R"({"type":"erasure","subject":")" + id + R"("})", operator_key_)
                                ->getValue<std::string>("id");
  const std::string rejected =
      Open(R"({"type":"objection","subject":")" + id + R"("})", operator_key_)
          ->getValue<std::string>("id");
  auto rej = Step(rejected, "reject", R"({"reason":"the requester could not be identified"})");
  EXPECT_EQ(rej->getValue<std::string>("status"), "rejected");

  auto ids = [&](const std::string& query) {
    HttpReply r = g_.Get("/v1/requests" + query, officer_key_);
    EXPECT_EQ(r.status, 200) << query << " " << r.body;
    std::vector<std::string> out;
    auto items = Parse(r.body)->getArray("items");
    for (size_t i = 0; i < items->size(); ++i) {
      out.push_back(items->getObject(static_cast<unsigned>(i))->getValue<std::string>("id"));
    }
    return out;
  };
  EXPECT_EQ(ids("?status=open"), (std::vector<std::string>{overdue, fresh}));  // by due date
  EXPECT_EQ(ids("?overdue=true"), (std::vector<std::string>{overdue}));
  EXPECT_EQ(ids("?due_within=40"), (std::vector<std::string>{overdue, fresh}));
  EXPECT_EQ(ids("?status=rejected"), (std::vector<std::string>{rejected}));
  EXPECT_EQ(ids("?type=erasure"), (std::vector<std::string>{fresh}));
  EXPECT_EQ(ids("").size(), 3u);

  HttpReply page1 = g_.Get("/v1/requests?status=open&limit=1", officer_key_);
  const std::string cursor = Parse(page1.body)->getValue<std::string>("next_cursor");
  EXPECT_EQ(ids("?status=open&limit=1&cursor=" + cursor), (std::vector<std::string>{fresh}));

  for (const char* bad : {"?status=lost", "?overdue=maybe", "?due_within=-3", "?limit=0",
                          "?cursor=bm9wZQ", "?type=wish", "?subject=alice"}) {
    HttpReply r = g_.Get(std::string("/v1/requests") + bad, officer_key_);
    EXPECT_EQ(r.status, 422) << bad << " " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  // The queue is the officer's: an operator may open requests, not read the queue.
  EXPECT_EQ(g_.Get("/v1/requests", operator_key_).status, 403);
  EXPECT_EQ(g_.Get("/v1/requests/" + fresh, marketing_key_).status, 403);
  EXPECT_EQ(g_.Get("/v1/requests/dsr_00000000000000000000000000", officer_key_).status, 404);
}

// The three listings read `limit` alike: absent or empty (a form's blank field) is the default
// page, 1 to 1000 is that page, anything else is a 422 naming `limit`.
TEST_F(RequestsE2E, EveryListingReadsItsPageLimitTheSameWay) {
  for (int i = 0; i < 3; ++i) {
    const std::string id =
        CreateSubject(R"({"email":"p)" + std::to_string(i) + R"(@example.org"})");
    Open(R"({"type":"access","subject":")" + id + R"("})", operator_key_);
  }
  for (const char* listing : {"/v1/requests", "/v1/audit", "/v1/duplicates"}) {
    const std::string base = std::string(listing) + "?limit=";
    const HttpReply absent = g_.Get(listing, officer_key_);
    ASSERT_EQ(absent.status, 200) << listing << " " << absent.body;
    const HttpReply empty = g_.Get(base, officer_key_);
    EXPECT_EQ(empty.status, 200) << base << " " << empty.body;
    for (const char* good : {"1", "7", "1000", "0001", "00000000000000000000001"}) {
      const HttpReply r = g_.Get(base + good, officer_key_);
      EXPECT_EQ(r.status, 200) << base << good << " " << r.body;
    }
    for (const char* bad : {"0", "1001", "-1", "1.5", "abc", "%201", "1e3", "99999999999999999999",
                            "18446744073709551617"}) {
      const HttpReply r = g_.Get(base + bad, officer_key_);
      EXPECT_EQ(r.status, 422) << base << bad << " " << r.body;
      EXPECT_EQ(r.content_type, "application/problem+json") << base << bad;
      EXPECT_NE(r.body.find(R"("field":"limit")"), std::string::npos) << base << bad << r.body;
    }
  }
}

TEST_F(RequestsE2E, EachOfTheSixTypesIsWorkedFromReceivedToCompleted) {
  const std::string id = CreateSubject(
      R"({"email":"six@example.org","first_name":"Six","city":"Lyon","phone":"+33611223344"})");
  Grant(id, "marketing.email");
  ASSERT_EQ(Decision(id, "marketing.email"), "consent_granted");
  const std::string types[] = {"access", "portability", "rectification", "restriction",
                               "objection"};
  std::map<std::string, std::string> request;
  for (const auto& type : types) {
    std::string body = R"({"type":")" + type + R"(","subject":")" + id + R"(")";
    if (type == "rectification") body += R"(,"changes":{"city":"Marseille"})";
    body += "}";
    auto r = Open(body, operator_key_);
    EXPECT_EQ(r->getValue<std::string>("status"), "received");
    request[type] = r->getValue<std::string>("id");
    // Nothing happens before the identity is verified.
    Step(request[type], "complete", "{}", 409);
    EXPECT_EQ(Step(request[type], "verify", R"({"note":"ID checked at the shop"})")
                  ->getValue<std::string>("status"),
              "verified");
    EXPECT_EQ(Step(request[type], "start")->getValue<std::string>("status"), "in_progress");
  }
  // Extension: once, with a reason, before the deadline.
  Step(request["access"], "extend", R"({"by":"P2M"})", 422);  // no reason
  auto extended = Step(request["access"], "extend", R"({"by":"P2M","reason":"many records"})");
  EXPECT_TRUE(extended->getValue<bool>("extended"));
  Step(request["access"], "extend", R"({"by":"P1M","reason":"again"})", 409);
  Step(request["portability"], "extend", R"({"months":3,"reason":"too long"})", 422);
  EXPECT_TRUE(Step(request["portability"], "extend", R"({"months":1,"reason":"volume"})")
                  ->getValue<bool>("extended"));

  for (const auto& type : types) {
    auto done = Step(request[type], "complete");
    EXPECT_EQ(done->getValue<std::string>("status"), "completed") << type;
    EXPECT_FALSE(done->isNull("completed_at"));
    EXPECT_FALSE(done->getValue<bool>("overdue"));
    Step(request[type], "complete", "{}", 409);  // once only
  }
  // Restriction: every processing check says no until lifted; only what the law obliges.
  HttpReply read = g_.Get("/v1/subjects/" + id, operator_key_, "customer_management");
  EXPECT_EQ(read.status, 403) << read.body;
  EXPECT_EQ(g_.Get("/v1/subjects/" + id, operator_key_, "orders_invoicing").status, 200);
  EXPECT_EQ(Decision(id, "marketing.email"), "restricted");
  EXPECT_EQ(g_.Get("/v1/subjects/" + id, marketing_key_, "marketing_email").status, 403);
  // Art. 18(3): the subject is told before the restriction is lifted.
  auto told = Step(request["restriction"], "lift");
  EXPECT_NE(told->getObject("result")->getValue<std::string>("lift_notified_at"), "");
  EXPECT_NE(NoticeLink(request["restriction"], "restriction_lifting"), "");
  EXPECT_EQ(Decision(id, "marketing.email"), "restricted");
  EXPECT_EQ(Step(request["restriction"], "lift")->getValue<std::string>("status"), "completed");
  // Rectification applied through the normal validation.
  read = g_.Get("/v1/subjects/" + id, operator_key_, "customer_management");
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_NE(read.body.find("\"city\":\"Marseille\""), std::string::npos) << read.body;
  // Objection: marketing denied for good, contacts suppressed.
  EXPECT_EQ(Decision(id, "marketing.email"), "objected");
  Grant(id, "marketing.email");
  EXPECT_EQ(Decision(id, "marketing.email"), "objected");
  HttpReply sup =
      g_.Post("/v1/suppressions:check", R"({"emails":["six@example.org"]})", marketing_key_);
  EXPECT_NE(sup.body.find("\"suppressed\":true"), std::string::npos) << sup.body;
  // Access and portability packages.
  HttpReply access = g_.Get("/v1/requests/" + request["access"] + "/package", officer_key_);
  ASSERT_EQ(access.status, 200) << access.body;
  EXPECT_EQ(Parse(access.body)->getValue<std::string>("format"), "garde-access-package/1");
  HttpReply csv =
      g_.Get("/v1/requests/" + request["portability"] + "/package?format=csv", officer_key_);
  ASSERT_EQ(csv.status, 200) << csv.body;
  EXPECT_NE(csv.content_type.find("text/csv"), std::string::npos);
  EXPECT_NE(csv.body.find("email,six@example.org"), std::string::npos) << csv.body;
  EXPECT_EQ(g_.Get("/v1/requests/" + request["objection"] + "/package", officer_key_).status, 409);
  // The sixth type, erasure, on another customer, through the same steps.
  const std::string other = CreateSubject(R"({"email":"sixth@example.org"})");
  const std::string erasure =
      Open(R"({"type":"erasure","subject":")" + other + R"("})", operator_key_)
          ->getValue<std::string>("id");
  Step(erasure, "verify", R"({"note":"known customer"})");
  Step(erasure, "start");
  EXPECT_EQ(Step(erasure, "complete")->getValue<std::string>("status"), "completed");
  EXPECT_EQ(Decision(other, "marketing.email"), "erased");
  // Every step is in the audit log.
  HttpReply audit = g_.Get("/v1/audit?subject=" + id + "&limit=1000", officer_key_);
  for (const char* action : {"request.open", "request.verify", "request.start", "request.extend",
                             "request.complete", "request.lift", "request.package"}) {
    EXPECT_NE(audit.body.find(std::string("\"action\":\"") + action + "\""), std::string::npos)
        << action;
  }
}

TEST_F(RequestsE2E, ErasureShredsTheKeyAndLeavesNothingThatDecrypts) {
  const std::string id = CreateSubject(
      R"({"email":"erase.me@example.org","first_name":"Erasme","phone":"+33698765432"})");
  Grant(id, "marketing.email");
  const auto boxes =
      g_.Sql("SELECT field, hex(box) FROM subject_fields WHERE subject_id='" + id + "'");
  ASSERT_EQ(boxes.size(), 3u);
  // The customer asks from their link, and confirms through the fresh link sent to them.
  const std::string token = SubjectToken(id);
  HttpReply opened = WithBearer("POST", "/v1/requests", token, R"({"type":"erasure"})");
  ASSERT_EQ(opened.status, 201) << opened.body;
  auto r = Parse(opened.body);
  EXPECT_EQ(r->getValue<std::string>("status"), "received");
  const std::string confirm = NoticeLink(r->getValue<std::string>("id"), "verify_request");
  ASSERT_NE(confirm, "");
  ASSERT_EQ(
      g_.Request("POST", confirm, "form=confirm", {}, "application/x-www-form-urlencoded").status,
      200);
  auto done = Step(r->getValue<std::string>("id"), "complete");
  auto result = done->getObject("result");
  EXPECT_TRUE(result->getValue<bool>("data_key_destroyed"));
  EXPECT_EQ(result->getArray("kept")->size(), 0u);

  // The data key is gone, and with it every copy of the ciphertext.
  EXPECT_EQ(g_.Sql("SELECT length(wrapped_dek), status FROM subjects WHERE id='" + id + "'"),
            (std::vector<std::vector<std::string>>{{"0", "erased"}}));
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM subject_fields WHERE subject_id='" + id + "'")[0][0], "0");
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM blind_index WHERE subject_id='" + id + "'")[0][0], "0");
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM tombstones WHERE subject_id='" + id + "'")[0][0], "1");
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM outbox WHERE topic='subject.erased'")[0][0], "1");
  // Put the old ciphertext back (a copy kept somewhere): it no longer decrypts.
  for (const auto& row : boxes) {
    g_.Sql("INSERT INTO subject_fields(subject_id, field, box) VALUES('" + id + "','" + row[0] +
           "', x'" + row[1] + "')");
  }
  HttpReply read = g_.Get("/v1/subjects/" + id, operator_key_, "customer_management");
  EXPECT_GE(read.status, 400) << read.body;
  EXPECT_LT(read.status, 500) << read.body;
  EXPECT_EQ(read.body.find("erase.me"), std::string::npos) << read.body;

  HttpReply found = g_.Post("/v1/subjects:search", R"({"email":"erase.me@example.org"})",
                            operator_key_, "customer_management");
  EXPECT_EQ(found.status, 200);
  EXPECT_NE(found.body.find("\"items\":[]"), std::string::npos) << found.body;
  EXPECT_EQ(Decision(id, "marketing.email"), "erased");
  // The customer's erasure request stays readable to them, and the log still verifies.
  EXPECT_EQ(WithBearer("GET", "/v1/requests/" + r->getValue<std::string>("id"), token).status, 200);
  HttpReply audit = g_.Get("/v1/audit?subject=" + id + "&action=subject.erase", officer_key_);
  EXPECT_NE(audit.body.find("\"action\":\"subject.erase\""), std::string::npos) << audit.body;
  RunResult verify = RunGarde({"audit", "verify", "--data-dir", g_.data_dir()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST_F(RequestsE2E, ARestoredBackupReappliesTheErasureAtStart) {
  const std::string id = CreateSubject(R"({"email":"restored@example.org","first_name":"Rex"})");
  const std::string keep = CreateSubject(R"({"email":"stays@example.org"})");
  const std::string backup = g_.data_dir() + "/backup.db";
  g_.Sql("VACUUM INTO '" + backup + "'");  // an online backup, taken before the erasure
  auto r = Open(R"({"type":"erasure","subject":")" + id + R"("})", operator_key_);
  Step(r->getValue<std::string>("id"), "verify", R"({"note":"by phone"})");
  Step(r->getValue<std::string>("id"), "complete");
  ASSERT_EQ(g_.Stop(), 0);
  // Disaster: the database is replaced by the backup, which still holds the subject's key.
  std::filesystem::remove(g_.db_path() + "-wal");
  std::filesystem::remove(g_.db_path() + "-shm");
  std::filesystem::copy_file(backup, g_.db_path(),
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_EQ(g_.Sql("SELECT length(wrapped_dek) > 0 FROM subjects WHERE id='" + id + "'")[0][0],
            "1");
  g_.Start(smtp_.GardeFlags());
  EXPECT_EQ(g_.Sql("SELECT length(wrapped_dek), status FROM subjects WHERE id='" + id + "'"),
            (std::vector<std::vector<std::string>>{{"0", "erased"}}));
  HttpReply found = g_.Post("/v1/subjects:search", R"({"email":"restored@example.org"})",
                            operator_key_, "customer_management");
  EXPECT_NE(found.body.find("\"items\":[]"), std::string::npos) << found.body;
  EXPECT_EQ(g_.Get("/v1/subjects/" + keep, operator_key_, "customer_management").status, 200);
  HttpReply audit = g_.Get("/v1/audit?subject=" + id + "&action=subject.erase", officer_key_);
  EXPECT_NE(audit.body.find("\"outcome\":\"reapplied\""), std::string::npos) << audit.body;
}

// A held erasure once wrote no tombstone, so a restored backup brought back everything that
// had been erased around the held invoicing fields.
TEST_F(RequestsE2E, ARestoredBackupReappliesAHeldErasureAroundItsHeldFields) {
  const std::string last_purchase = FormatRfc3339(SystemClock().Now() - 40 * 86400).substr(0, 10);
  const std::string id = CreateSubject(
      R"({"email":"held.restore@example.org","first_name":"Hugo","phone":"+33655443311",)"
      R"("customer_number":"C-2002","last_purchase":")" +
      last_purchase + R"("})");
  Grant(id, "marketing.email");
  const std::string backup = g_.data_dir() + "/backup-held.db";
  g_.Sql("VACUUM INTO '" + backup + "'");  // taken before the erasure
  auto r = Open(R"({"type":"erasure","subject":")" + id + R"("})", operator_key_);
  Step(r->getValue<std::string>("id"), "verify", R"({"note":"letter"})");
  auto done = Step(r->getValue<std::string>("id"), "complete");
  ASSERT_EQ(done->getObject("result")->getValue<std::string>("subject_status"), "restricted");
  const auto fields_after =
      g_.Sql("SELECT field FROM subject_fields WHERE subject_id='" + id + "' ORDER BY field");
  ASSERT_FALSE(fields_after.empty());
  ASSERT_EQ(g_.Stop(), 0);
  EXPECT_NE(ReadFile(g_.data_dir() + "/tombstones.log").find(id + " "), std::string::npos);
  std::filesystem::remove(g_.db_path() + "-wal");
  std::filesystem::remove(g_.db_path() + "-shm");
  std::filesystem::copy_file(backup, g_.db_path(),
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_GT(g_.Sql("SELECT COUNT(*) FROM subject_fields WHERE subject_id='" + id + "'").size(), 0u);
  g_.Start(smtp_.GardeFlags());
  // Only the held fields are back; the e-mail, phone and consents stay erased.
  EXPECT_EQ(g_.Sql("SELECT field FROM subject_fields WHERE subject_id='" + id + "' ORDER BY field"),
            fields_after);
  EXPECT_EQ(g_.Sql("SELECT status FROM subjects WHERE id='" + id + "'")[0][0], "restricted");
  EXPECT_EQ(g_.Sql("SELECT COUNT(*) FROM consent_events WHERE subject_id='" + id + "'")[0][0], "0");
  HttpReply found = g_.Post("/v1/subjects:search", R"({"email":"held.restore@example.org"})",
                            operator_key_, "customer_management");
  EXPECT_NE(found.body.find("\"items\":[]"), std::string::npos) << found.body;
  HttpReply inv = g_.Get("/v1/subjects/" + id, operator_key_, "orders_invoicing");
  ASSERT_EQ(inv.status, 200) << inv.body;
  EXPECT_NE(inv.body.find("C-2002"), std::string::npos);
  EXPECT_EQ(inv.body.find("held.restore"), std::string::npos) << inv.body;
  // A second start finds nothing left to re-apply.
  ASSERT_EQ(g_.Stop(), 0);
  g_.Start(smtp_.GardeFlags());
  HttpReply audit = g_.Get("/v1/audit?subject=" + id + "&action=subject.erase", officer_key_);
  size_t reapplied = 0;
  for (size_t at = audit.body.find("reapplied"); at != std::string::npos;
       at = audit.body.find("reapplied", at + 1)) {
    ++reapplied;
  }
  EXPECT_EQ(reapplied, 1u) << audit.body;
}

TEST_F(RequestsE2E, LegalHoldKeepsInvoicingFieldsRestrictedWithTheReason) {
  const std::string last_purchase = FormatRfc3339(SystemClock().Now() - 40 * 86400).substr(0, 10);
  const std::string id =
      CreateSubject(R"({"email":"invoice@example.org","first_name":"Ines","phone":"+33655443322",)"
                    R"("customer_number":"C-1001","last_purchase":")" +
                    last_purchase + R"("})");
  auto r = Open(R"({"type":"erasure","subject":")" + id + R"("})", operator_key_);
  Step(r->getValue<std::string>("id"), "verify", R"({"note":"signed letter"})");
  auto done = Step(r->getValue<std::string>("id"), "complete");
  auto result = done->getObject("result");
  EXPECT_FALSE(result->getValue<bool>("data_key_destroyed"));
  EXPECT_EQ(result->getValue<std::string>("subject_status"), "restricted");
  auto kept = result->getArray("kept");
  std::set<std::string> kept_fields;
  std::map<std::string, std::string> until;
  for (size_t i = 0; i < kept->size(); ++i) {
    auto k = kept->getObject(static_cast<unsigned>(i));
    kept_fields.insert(k->getValue<std::string>("field"));
    until[k->getValue<std::string>("field")] = k->getValue<std::string>("until");
    EXPECT_EQ(k->getValue<std::string>("activity"), "orders_invoicing");
    EXPECT_NE(k->getValue<std::string>("reason").find("legal obligation"), std::string::npos);
  }
  EXPECT_TRUE(kept_fields.count("customer_number"));
  EXPECT_TRUE(kept_fields.count("last_purchase"));
  EXPECT_FALSE(kept_fields.count("phone"));  // not an invoicing field: destroyed
  EXPECT_FALSE(kept_fields.count("email"));  // an invoice does not need it: destroyed
  // Accounting records run ten years from the purchase.
  const int year = std::stoi(FormatRfc3339(SystemClock().Now()).substr(0, 4));
  EXPECT_GE(std::stoi(until["customer_number"].substr(0, 4)), year + 9) << until["customer_number"];
  // The invoicing activity still reads what it must keep; nothing else reads anything.
  HttpReply inv = g_.Get("/v1/subjects/" + id, operator_key_, "orders_invoicing");
  ASSERT_EQ(inv.status, 200) << inv.body;
  EXPECT_NE(inv.body.find("C-1001"), std::string::npos);
  EXPECT_EQ(inv.body.find("+33655443322"), std::string::npos);
  EXPECT_EQ(inv.body.find("invoice@example.org"), std::string::npos);
  EXPECT_EQ(g_.Get("/v1/subjects/" + id, operator_key_, "customer_management").status, 403);
  EXPECT_EQ(Decision(id, "marketing.email"), "restricted");
}

TEST_F(RequestsE2E, AccessPackageListsAnEarlierMarketingReadWithItsActivity) {
  const std::string id = CreateSubject(R"({"email":"pkg@example.org","first_name":"Paquet"})");
  Grant(id, "marketing.email");
  ASSERT_EQ(g_.Get("/v1/subjects/" + id, marketing_key_, "marketing_email").status, 200);
  const std::string rid = AnswerAccessRequest(id);
  HttpReply pkg = g_.Get("/v1/requests/" + rid + "/package", officer_key_);
  ASSERT_EQ(pkg.status, 200) << pkg.body;
  auto p = Parse(pkg.body);
  EXPECT_EQ(p->getObject("subject")->getObject("fields")->getValue<std::string>("email"),
            "pkg@example.org");
  EXPECT_EQ(p->getArray("consents")->size(), 1u);
  EXPECT_FALSE(p->getArray("consents")->getObject(0)->isNull("receipt"));
  EXPECT_GE(p->getArray("processing")->size(), 2u);
  EXPECT_TRUE(p->getArray("processing")->getObject(0)->has("recipients"));
  bool marketing_read = false;
  auto accesses = p->getArray("accesses");
  for (size_t i = 0; i < accesses->size(); ++i) {
    auto a = accesses->getObject(static_cast<unsigned>(i));
    marketing_read |= a->getValue<std::string>("action") == "subject.read" &&
                      a->getValue<std::string>("role") == "marketing" &&
                      a->getValue<std::string>("activity") == "marketing_email";
  }
  EXPECT_TRUE(marketing_read) << pkg.body;
  bool lists_itself = false;
  auto requests = p->getArray("requests");
  for (size_t i = 0; i < requests->size(); ++i) {
    lists_itself |=
        requests->getObject(static_cast<unsigned>(i))->getValue<std::string>("id") == rid;
  }
  EXPECT_TRUE(lists_itself);
  // The HTML rendition a customer can read, in French too.
  HttpReply html = g_.Get("/v1/requests/" + rid + "/package?format=html&lang=fr", officer_key_);
  ASSERT_EQ(html.status, 200);
  EXPECT_NE(html.content_type.find("text/html"), std::string::npos);
  EXPECT_NE(html.body.find("Qui a accédé à vos données"), std::string::npos);
  EXPECT_NE(html.body.find("marketing_email"), std::string::npos);
  EXPECT_EQ(g_.Get("/v1/requests/" + rid + "/package?format=pdf", officer_key_).status, 422);
}

// Art. 15(1)(a)-(h) and 15(3): every item an access package must give, in JSON and in the HTML
// rendition, in French and English.
TEST_F(RequestsE2E, AccessPackageGivesEveryItemOfArticle15) {
  const std::string id =
      CreateSubject(R"({"email":"art15@example.org","first_name":"Quinze","postal_code":"75002"})");
  Grant(id, "profiling");
  const std::string rid = AnswerAccessRequest(id);
  HttpReply pkg = g_.Get("/v1/requests/" + rid + "/package", officer_key_);
  ASSERT_EQ(pkg.status, 200) << pkg.body;
  auto p = Parse(pkg.body);
  // (a) purposes, (b) categories, (c) recipients, (d) retention, (g) source: per activity.
  auto processing = p->getArray("processing");
  ASSERT_GT(processing->size(), 0u);
  for (size_t i = 0; i < processing->size(); ++i) {
    auto a = processing->getObject(static_cast<unsigned>(i));
    for (const char* item :
         {"purposes", "fields", "recipients", "transfers", "retention", "source"}) {
      EXPECT_TRUE(a->has(item)) << item << " in " << a->getValue<std::string>("activity");
    }
  }
  // (e) rectification, erasure, restriction, objection.
  std::set<std::string> rights;
  auto listed = p->getArray("rights");
  for (size_t i = 0; i < listed->size(); ++i) {
    rights.insert(listed->getObject(static_cast<unsigned>(i))->getValue<std::string>("right"));
  }
  for (const char* right : {"rectification", "erasure", "restriction", "objection"}) {
    EXPECT_TRUE(rights.count(right)) << right;
  }
  // (f) the supervisory authority, from the register's organisation block.
  auto complaint = p->getObject("complaint");
  EXPECT_NE(complaint->getValue<std::string>("authority").find("CNIL"), std::string::npos);
  EXPECT_NE(complaint->getValue<std::string>("address").find("Fontenoy"), std::string::npos);
  // (h) profiling: the default register's segmentation, with its logic and significance.
  auto decisions = p->getArray("automated_decisions");
  ASSERT_EQ(decisions->size(), 1u) << pkg.body;
  EXPECT_EQ(decisions->getObject(0)->getValue<std::string>("activity"), "profiling_segmentation");
  EXPECT_FALSE(decisions->getObject(0)->getValue<std::string>("logic").empty());
  EXPECT_FALSE(decisions->getObject(0)->getValue<std::string>("significance").empty());
  // 15(3): the copy of the data itself.
  EXPECT_EQ(p->getObject("subject")->getObject("fields")->getValue<std::string>("email"),
            "art15@example.org");
  // The same items for people, in both languages.
  const std::vector<std::pair<std::string, std::vector<std::string>>> html_items = {
      {"en",
       {"Your rights", "data-right=\"rectification\"", "data-right=\"erasure\"",
        "data-right=\"restriction\"", "data-right=\"objection\"",
        "lodge a complaint with a supervisory authority", "CNIL",
        "Automated decisions and profiling", "Personalisation and segmentation",
        "How and why we use your data", "Who accessed your data"}},
      {"fr",
       {"Vos droits", "Faire corriger", "Faire effacer", "Faire limiter", "Vous opposer",
        "introduire une réclamation", "CNIL", "Décisions automatisées et profilage", "Logique",
        "Comment et pourquoi nous utilisons vos données"}}};
  for (const auto& [lang, items] : html_items) {
    HttpReply html =
        g_.Get("/v1/requests/" + rid + "/package?format=html&lang=" + lang, officer_key_);
    ASSERT_EQ(html.status, 200) << html.body;
    for (const auto& item : items) {
      EXPECT_NE(html.body.find(item), std::string::npos) << lang << ": " << item;
    }
  }
}

// Art. 18(2): while restricted, the data is only stored; activities flagged for legal claims
// may still read it, an ordinary legal obligation may not.
TEST_F(RequestsE2E, ARestrictedSubjectIsReadOnlyForLegalClaims) {
  const std::string id =
      CreateSubject(R"({"email":"restrict@example.org","customer_number":"C-7"})");
  auto r = Open(R"({"type":"restriction","subject":")" + id + R"("})", operator_key_);
  Step(r->getValue<std::string>("id"), "verify", R"({"note":"letter"})");
  Step(r->getValue<std::string>("id"), "complete");
  const std::string officer_reader = g_.CreateKey("dpo-reader", "operator", {"dsr_handling"});
  EXPECT_EQ(g_.Get("/v1/subjects/" + id, operator_key_, "orders_invoicing").status, 200);
  EXPECT_EQ(g_.Get("/v1/subjects/" + id, operator_key_, "customer_management").status, 403);
  HttpReply obligation = g_.Get("/v1/subjects/" + id, officer_reader, "dsr_handling");
  EXPECT_EQ(obligation.status, 403) << obligation.body;
  EXPECT_EQ(obligation.body.find("restrict@"), std::string::npos);
}

TEST_F(RequestsE2E, ASubjectTokenOnlyReachesItsOwnSubjectsRequests) {
  const std::string alice = CreateSubject(R"({"email":"alice.dsr@example.org"})");
  const std::string bob = CreateSubject(R"({"email":"bob.dsr@example.org"})");
  const std::string alice_token = SubjectToken(alice);
  const std::string bob_token = SubjectToken(bob, "dsr");
  HttpReply mine = WithBearer("POST", "/v1/requests", bob_token, R"({"type":"access"})");
  ASSERT_EQ(mine.status, 201) << mine.body;
  const std::string bob_request = JsonString(mine.body, "id");
  // Alice can neither open a request for Bob nor read, work or download his.
  EXPECT_EQ(WithBearer("POST", "/v1/requests", alice_token,
                       R"({"type":"erasure","subject":")" + bob + R"("})")
                .status,
            403);
  EXPECT_EQ(WithBearer("GET", "/v1/requests/" + bob_request, alice_token).status, 404);
  EXPECT_EQ(WithBearer("GET", "/v1/requests/" + bob_request + "/package", alice_token).status, 403);
  EXPECT_EQ(
      WithBearer("POST", "/v1/requests/" + bob_request + ":complete", alice_token, "{}").status,
      401);
  HttpReply list = WithBearer("GET", "/v1/requests", alice_token);
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.body.find(bob_request), std::string::npos);
  // Tampered and unsubscribe-only tokens are not credentials.
  std::string tampered = alice_token;
  tampered[5] = tampered[5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(WithBearer("GET", "/v1/requests", tampered).status, 401);
  EXPECT_EQ(WithBearer("GET", "/v1/requests", SubjectToken(alice, "unsubscribe")).status, 401);
  // Bob downloads his package once it is answered, with the link sent for it only.
  Step(bob_request, "verify", R"({"note":"phone"})");
  Step(bob_request, "complete");
  EXPECT_EQ(WithBearer("GET", "/v1/requests/" + bob_request + "/package", bob_token).status, 403);
  const std::string sent = NoticeLink(bob_request, "request_completed");
  ASSERT_NE(sent, "");
  const std::string request_token = sent.substr(3);
  HttpReply pkg = WithBearer("GET", "/v1/requests/" + bob_request + "/package", request_token);
  ASSERT_EQ(pkg.status, 200) << pkg.body;
  EXPECT_NE(pkg.body.find("bob.dsr@example.org"), std::string::npos);
}

TEST_F(RequestsE2E, VerificationLinkConfirmsOnlyOnPostAndOnlyOnce) {
  const std::string id = CreateSubject(R"({"email":"link@example.org"})");
  auto r = Open(R"({"type":"portability","subject":")" + id + R"("})", operator_key_);
  const std::string url = r->getValue<std::string>("verification_url");
  const std::string path = url.substr(url.find("/r/"));
  HttpReply page = g_.Request("GET", path, "", {}, "");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("name=\"form\" value=\"confirm\""), std::string::npos);
  const std::string rid = r->getValue<std::string>("id");
  EXPECT_EQ(JsonString(g_.Get("/v1/requests/" + rid, officer_key_).body, "status"), "received");
  HttpReply post =
      g_.Request("POST", path, "form=confirm", {}, "application/x-www-form-urlencoded");
  ASSERT_EQ(post.status, 200) << post.body;
  auto after = Parse(g_.Get("/v1/requests/" + rid, officer_key_).body);
  EXPECT_EQ(after->getValue<std::string>("status"), "verified");
  EXPECT_EQ(after->getValue<std::string>("verification"), "subject_link");
  EXPECT_EQ(
      g_.Request("POST", path, "form=confirm", {}, "application/x-www-form-urlencoded").status,
      409);
}

TEST_F(RequestsE2E, BadRequestsAre4xxAndStoreNothing) {
  const std::string id = CreateSubject(R"({"email":"bad.dsr@example.org"})");
  const std::string cases[] = {
      R"({"type":"wish","subject":")" + id + R"("})",
      R"({"subject":")" + id + R"("})",
      R"({"type":"access"})",
      R"({"type":"access","subject":"sub_nope"})",
      R"({"type":"access","subject":")" + id + R"(","jurisdiction":"mars"})",
      R"({"type":"access","subject":")" + id + R"(","colour":"blue"})",
      R"({"type":"access","subject":")" + id + R"(","received_at":"2999-01-01T00:00:00Z"})",
      R"({"type":"rectification","subject":")" + id + R"(","changes":{"email":"not an email"}})",
      R"({"type":"rectification","subject":")" + id + R"(","changes":{"shoe_size":"42"}})",
      R"({"type":"access","subject":")" + id + R"(","suppress":true})",
      R"({"type":"objection","subject":")" + id + R"(","purposes":["service.invoicing"]})",
      R"({"type":"access","subject":)",
      R"([1,2])",
  };
  for (const auto& body : cases) {
    HttpReply r = g_.Post("/v1/requests", body, operator_key_);
    EXPECT_GE(r.status, 400) << body;
    EXPECT_LT(r.status, 500) << body << " " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json") << body;
    EXPECT_EQ(r.body.find("not an email"), std::string::npos) << "a value was echoed";
  }
  EXPECT_EQ(
      g_.Post("/v1/requests", R"({"type":"access","subject":"sub_00000000000000000000000000"})",
              operator_key_)
          .status,
      404);
  EXPECT_EQ(
      g_.Post("/v1/requests", R"({"type":"access","subject":")" + id + R"("})", marketing_key_)
          .status,
      403);
  EXPECT_EQ(g_.Post("/v1/requests", R"({"type":"access","subject":")" + id + R"("})", "").status,
            401);
  EXPECT_EQ(g_.CountRows("requests"), 0);
}

TEST_F(RequestsE2E, RequestNotesNeverReachTheDatabaseInPlaintext) {
  const std::string id = CreateSubject(R"({"email":"notes@example.org"})");
  auto r = Open(
      R"({"type":"rectification","subject":")" + id +
          R"(","note":"Zqxnotecanary lives at 3 rue Canary","changes":{"city":"Zqxcitycanary"}})",
      operator_key_);
  const std::string rid = r->getValue<std::string>("id");
  Step(rid, "verify", R"({"note":"Zqxverifycanary passport 12AB"})");
  Step(rid, "complete");
  HttpReply got = g_.Get("/v1/requests/" + rid, officer_key_);
  EXPECT_NE(got.body.find("Zqxnotecanary"), std::string::npos);  // the officer reads it
  ASSERT_EQ(g_.Stop(), 0);
  for (const std::string& path : {g_.db_path(), g_.db_path() + "-wal", g_.audit_db_path(),
                                  g_.audit_db_path() + "-wal", g_.log_path()}) {
    const std::string bytes = ReadFile(path);
    for (const char* canary : {"Zqxnotecanary", "Zqxverifycanary", "Zqxcitycanary"}) {
      EXPECT_EQ(bytes.find(canary), std::string::npos) << canary << " in " << path;
    }
  }
  EXPECT_EQ(g_.Logs().find("Zqx"), std::string::npos);
}

}  // namespace
}  // namespace garde::testing

// GET /v1/duplicates and merges: likely duplicates found on encrypted data and resolved,
// through the real service.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "garde_process.h"

namespace garde::testing {
namespace {

class DuplicatesE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    op_ = g_.CreateKey("crm", "operator", {"customer_management", "loyalty_programme"});
    officer_ = g_.CreateKey("dpo", "officer", {});
    marketing_ = g_.CreateKey("mkt", "marketing", {"marketing_email"});
    g_.Start();
  }
  std::string Create(const std::string& fields) {
    HttpReply r = g_.Post("/v1/subjects", R"({"kind":"person","fields":)" + fields + "}", op_);
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonString(r.body, "id");
  }
  // "a b: rule|rule" per pair, in the service's order.
  std::vector<std::string> Pairs(const std::string& key, const std::string& query = "") {
    HttpReply r = g_.Get("/v1/duplicates" + query, key);
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::string> out;
    for (size_t at = 0; (at = r.body.find(R"({"subjects":[")", at)) != std::string::npos;) {
      const size_t end = r.body.find("]}", at);
      out.push_back(r.body.substr(at, end - at + 2));
      at = end;
    }
    return out;
  }
  static std::string Pair(std::string a, std::string b, const std::vector<std::string>& rules) {
    if (b < a) std::swap(a, b);
    std::string out = R"({"subjects":[")" + a + R"(",")" + b + R"("],"rules":[)";
    for (size_t i = 0; i < rules.size(); ++i) out += (i ? "," : "") + ("\"" + rules[i] + "\"");
    return out + "]}";
  }

  void Consent(const std::string& id, const std::string& purpose, const std::string& event) {
    const std::string notice = event == "granted" ? R"(,"notice_version":"2026-01")" : "";
    HttpReply r = g_.Post("/v1/subjects/" + id + "/consents",
                          R"({"purpose":")" + purpose + R"(","event":")" + event + "\"" + notice +
                              R"(,"method":"web_form"})",
                          op_);
    EXPECT_EQ(r.status, 201) << r.body;
  }
  std::string Reason(const std::string& id, const std::string& purpose) {
    HttpReply r = g_.Get("/v1/consent/check?subject=" + id + "&purpose=" + purpose, marketing_);
    EXPECT_EQ(r.status, 200) << r.body;
    return JsonString(r.body, "reason");
  }
  double TotalSpend(const std::string& id) {
    HttpReply r = g_.Get("/v1/subjects/" + id, op_, "loyalty_programme");
    EXPECT_EQ(r.status, 200) << r.body;
    return ParseObject(r.body)->getObject("fields")->getValue<double>("total_spend");
  }
  std::string Purchases(const std::string& id) {
    return g_.Sql("SELECT count(*) FROM interactions WHERE subject_id = '" + id + "'")[0][0];
  }
  HttpReply Read(const std::string& id) {
    return g_.Get("/v1/subjects/" + id, op_, "customer_management");
  }
  std::string FileText(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  GardeProcess g_;
  std::string op_, officer_, marketing_;
};

TEST_F(DuplicatesE2E, NicknamesSoundsAndAddressesMakePairsFamiliesDoNot) {
  const std::string robert = Create(
      R"({"first_name":"Robert","last_name":"Dupont","postal_code":"75011","street":"3 rue du Four"})");
  const std::string bob = Create(
      R"({"first_name":"Bob","last_name":"DUPOND","postal_code":"75011","street":"3, R. du Four"})");
  const std::string marie = Create(
      R"({"first_name":"Marie","last_name":"Dupont","postal_code":"75011","street":"3 rue du Four"})");
  const std::string kate = Create(
      R"({"first_name":"Kate","last_name":"Martin","phone":"+33 6 12 34 56 78","postal_code":"69001"})");
  const std::string catherine = Create(
      R"({"first_name":"Catherine","last_name":"Martin","phone":"06 12 34 56 78","postal_code":"13001"})");
  Create(R"({"first_name":"Léa","last_name":"Petit","postal_code":"75011"})");

  const std::vector<std::string> expected_pairs = {
      Pair(robert, bob, {"sounds-like name+postal_code"}),
      Pair(kate, catherine, {"name+phone", "sounds-like name+phone"})};
  std::vector<std::string> found = Pairs(op_);
  std::sort(found.begin(), found.end());
  std::vector<std::string> expected = expected_pairs;
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(found, expected);
  EXPECT_EQ(Pairs(officer_).size(), 2u);
  EXPECT_EQ(g_.Get("/v1/duplicates", marketing_).status, 403);
  EXPECT_EQ(g_.Get("/v1/duplicates", "").status, 401);
  EXPECT_EQ(g_.Get("/v1/duplicates?limit=0", op_).status, 422);
  EXPECT_EQ(g_.Get("/v1/duplicates?cursor=bm90LWEtY3Vyc29y", op_).status, 422);

  // One pair per page, then none.
  HttpReply first = g_.Get("/v1/duplicates?limit=1", op_);
  ASSERT_EQ(first.status, 200);
  const std::string cursor = JsonString(first.body, "next_cursor");
  ASSERT_FALSE(cursor.empty()) << first.body;
  std::vector<std::string> second = Pairs(op_, "?limit=1&cursor=" + cursor);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(first.body.find(second[0]), std::string::npos);
  EXPECT_NE(
      g_.Get("/v1/duplicates?limit=1&cursor=" + cursor, op_).body.find(R"("next_cursor":null)"),
      std::string::npos);

  // Bob moves: the pair goes. The match keys follow rectifications.
  ASSERT_EQ(
      g_.Patch("/v1/subjects/" + bob, R"({"fields":{"postal_code":"69002","street":null}})", op_)
          .status,
      200);
  EXPECT_EQ(Pairs(op_), std::vector<std::string>{
                            Pair(kate, catherine, {"name+phone", "sounds-like name+phone"})});
  // Catherine gives her name as Kate: the plain-name rule now sees it too (and still by phone).
  ASSERT_EQ(
      g_.Patch("/v1/subjects/" + catherine, R"({"fields":{"postal_code":"69001"}})", op_).status,
      200);
  EXPECT_EQ(Pairs(op_), std::vector<std::string>{
                            Pair(kate, catherine,
                                 {"name+phone", "name+postal_code", "sounds-like name+phone",
                                  "sounds-like name+postal_code"})});

  // Only keyed digests are stored: no folded name, no match key in any file.
  ASSERT_EQ(g_.Stop(), 0);
  const std::string everything = EverythingUnder(g_.data_dir());
  for (const char* planted : {"robert|dupont", "ktrn", "catherine|martin", "Dupond", "DUPOND"}) {
    EXPECT_EQ(everything.find(planted), std::string::npos) << planted;
  }
}

// POST /v1/subjects/{id}:merge, revert and complete (duplicates.md, "Merging"): fields,
// consent, requests and the customer's own links follow the customer; the merged id
// redirects; a revert puts both back; completion destroys the merged record's data.
TEST_F(DuplicatesE2E, TheCustomerFollowsTheMergeARevertPutsBothBackCompletionDestroys) {
  const std::string robert = Create(
      R"({"first_name":"Robert","last_name":"Dupont","postal_code":"75011","phone":"+33 6 12 34 56 78"})");
  const std::string bob = Create(
      R"({"first_name":"Bob","last_name":"Dupond","postal_code":"75011","email":"bob.dupond@example.org","street":"3 rue du Four"})");
  for (const auto& [id, amount] : {std::pair{robert, "50"}, std::pair{bob, "120"}}) {
    ASSERT_EQ(g_.Post("/v1/subjects/" + id + "/interactions",
                      std::string(R"({"kind":"purchase","amount":)") + amount + "}", op_)
                  .status,
              201);
  }
  Consent(bob, "marketing.email", "granted");
  Consent(robert, "marketing.sms", "granted");
  Consent(bob, "marketing.sms", "withdrawn");
  HttpReply link = g_.Post("/v1/subjects/" + bob + "/links",
                           R"({"uses":["unsubscribe"],"purpose":"marketing.email"})", op_);
  ASSERT_EQ(link.status, 201) << link.body;
  const size_t at = link.body.find("/u/");
  const std::string unsubscribe = link.body.substr(at, link.body.find('"', at) - at);
  HttpReply request =
      g_.Post("/v1/requests", R"({"type":"access","subject":")" + bob + "\"}", officer_);
  ASSERT_EQ(request.status, 201) << request.body;
  const std::string request_id = JsonString(request.body, "id");

  // Refused: unknown target, itself, a role without the right, a malformed body.
  EXPECT_EQ(
      g_.Post("/v1/subjects/" + bob + ":merge", R"({"into":"sub_AAAAAAAAAAAAAAAAAAAAAAAAAA"})", op_)
          .status,
      422);
  EXPECT_EQ(g_.Post("/v1/subjects/" + bob + ":merge", R"({"into":")" + bob + "\"}", op_).status,
            422);
  EXPECT_EQ(
      g_.Post("/v1/subjects/" + bob + ":merge", R"({"into":")" + robert + "\"}", marketing_).status,
      403);
  EXPECT_EQ(
      g_.Post("/v1/subjects/" + bob + ":merge", R"({"into":")" + robert + R"(","prefer":[1]})", op_)
          .status,
      422);
  EXPECT_EQ(g_.Post("/v1/subjects/" + bob + ":merge",
                    R"({"into":")" + robert + R"(","prefer":{"nope":"merged"}})", op_)
                .status,
            422);
  EXPECT_EQ(Read(bob).status, 200) << "a refused merge changed nothing";

  HttpReply merged =
      g_.Post("/v1/subjects/" + bob + ":merge",
              R"({"into":")" + robert + R"(","prefer":{"first_name":"merged"}})", op_);
  ASSERT_EQ(merged.status, 201) << merged.body;
  const std::string merge = JsonString(merged.body, "id");
  EXPECT_EQ(JsonString(merged.body, "state"), "merged");
  EXPECT_NE(merged.body.find(R"("fields_filled":["email","street"])"), std::string::npos)
      << merged.body;
  EXPECT_NE(merged.body.find(R"("fields_replaced":["first_name","total_spend"])"),
            std::string::npos)
      << merged.body;

  // The merged id redirects; the survivor holds both records' data.
  HttpReply old = Read(bob);
  EXPECT_EQ(old.status, 308) << old.body;
  EXPECT_EQ(old.headers["location"], "/v1/subjects/" + robert);
  HttpReply survivor = Read(robert);
  ASSERT_EQ(survivor.status, 200);
  EXPECT_NE(survivor.body.find("bob.dupond@example.org"), std::string::npos) << survivor.body;
  EXPECT_NE(survivor.body.find(R"("first_name":"Bob")"), std::string::npos) << survivor.body;
  EXPECT_NE(survivor.body.find(R"("last_name":"Dupont")"), std::string::npos) << survivor.body;
  EXPECT_EQ(g_.Patch("/v1/subjects/" + bob, R"({"fields":{"city":"Lyon"}})", op_).status, 409);
  // Purchases follow the customer and spending adds up.
  EXPECT_EQ(TotalSpend(robert), 170);
  EXPECT_EQ(Purchases(robert), "2");
  EXPECT_EQ(Purchases(bob), "0");
  EXPECT_EQ(g_.Post("/v1/subjects/" + bob + ":merge", R"({"into":")" + robert + "\"}", op_).status,
            409);
  HttpReply taken = g_.Post(
      "/v1/subjects", R"({"kind":"person","fields":{"email":"bob.dupond@example.org"}})", op_);
  EXPECT_EQ(taken.status, 409);
  EXPECT_NE(taken.body.find(robert), std::string::npos) << taken.body;

  // Consent: the most protective of the two; the merged id answers "merged".
  EXPECT_EQ(Reason(robert, "marketing.email"), "consent_granted");
  EXPECT_EQ(Reason(robert, "marketing.sms"), "consent_withdrawn");
  EXPECT_EQ(Reason(bob, "marketing.email"), "merged");
  // The request and the customer's link follow the customer.
  HttpReply moved = g_.Get("/v1/requests/" + request_id, officer_);
  ASSERT_EQ(moved.status, 200) << moved.body;
  EXPECT_EQ(JsonString(moved.body, "subject"), robert);
  EXPECT_EQ(g_.Request("POST", unsubscribe, "List-Unsubscribe=One-Click", {},
                       "application/x-www-form-urlencoded")
                .status,
            200);
  EXPECT_EQ(Reason(robert, "marketing.email"), "consent_withdrawn");

  // Revert: both records as they were, except what happened since (the unsubscribe stays).
  EXPECT_EQ(g_.Post("/v1/merges/" + merge + ":revert", "", marketing_).status, 403);
  HttpReply reverted = g_.Post("/v1/merges/" + merge + ":revert", "", officer_);
  ASSERT_EQ(reverted.status, 200) << reverted.body;
  EXPECT_EQ(JsonString(reverted.body, "state"), "reverted");
  HttpReply back = Read(bob);
  ASSERT_EQ(back.status, 200) << back.body;
  EXPECT_NE(back.body.find("bob.dupond@example.org"), std::string::npos);
  survivor = Read(robert);
  EXPECT_EQ(survivor.body.find("bob.dupond@example.org"), std::string::npos) << survivor.body;
  EXPECT_NE(survivor.body.find(R"("first_name":"Robert")"), std::string::npos) << survivor.body;
  EXPECT_EQ(Reason(robert, "marketing.sms"), "consent_granted");
  EXPECT_EQ(Reason(robert, "marketing.email"), "consent_withdrawn");
  EXPECT_EQ(TotalSpend(robert), 50);
  EXPECT_EQ(Purchases(robert), "1");
  EXPECT_EQ(Purchases(bob), "1");
  EXPECT_EQ(Reason(bob, "marketing.email"), "consent_granted");
  EXPECT_EQ(JsonString(g_.Get("/v1/requests/" + request_id, officer_).body, "subject"), bob);
  EXPECT_EQ(g_.Post("/v1/merges/" + merge + ":revert", "", officer_).status, 409);

  // Merge again and complete: the merged record's data key is gone; its id still redirects.
  merged = g_.Post("/v1/subjects/" + bob + ":merge", R"({"into":")" + robert + "\"}", op_);
  ASSERT_EQ(merged.status, 201) << merged.body;
  const std::string second = JsonString(merged.body, "id");
  HttpReply completed = g_.Post("/v1/merges/" + second + ":complete", "", officer_);
  ASSERT_EQ(completed.status, 200) << completed.body;
  EXPECT_EQ(JsonString(completed.body, "state"), "completed");
  EXPECT_EQ(
      g_.Sql(
          "SELECT length(wrapped_dek), (SELECT count(*) FROM subject_fields WHERE subject_id = '" +
          bob + "') FROM subjects WHERE id = '" + bob + "'"),
      (std::vector<std::vector<std::string>>{{"0", "0"}}));
  EXPECT_EQ(Read(bob).status, 308);
  EXPECT_EQ(Purchases(robert), "2") << "completion keeps what moved to the survivor";
  EXPECT_EQ(g_.Post("/v1/merges/" + second + ":revert", "", officer_).status, 409);
  EXPECT_EQ(g_.Get("/v1/merges/" + second, officer_).status, 200);
  EXPECT_EQ(g_.Get("/v1/merges/mrg_nope", officer_).status, 404);

  g_.Stop();
  for (const std::string& file : {g_.db_path(), g_.db_path() + "-wal", g_.audit_db_path()}) {
    const std::string text = FileText(file);
    for (const char* planted : {"bob.dupond@example.org", "Dupond", "rue du Four"}) {
      EXPECT_EQ(text.find(planted), std::string::npos) << planted << " in " << file;
    }
  }
  RunResult verify =
      RunGarde({"audit", "verify", "--data-dir", g_.data_dir(), "--policies", g_.policies()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

// A merge nobody reverts is completed by the retention sweep once merge_revert_period has
// passed: the merged record's data key goes, as a completion would.
TEST_F(DuplicatesE2E, TheSweepCompletesAMergeAfterItsRevertPeriod) {
  const std::string a =
      Create(R"({"first_name":"Robert","last_name":"Dupont","postal_code":"75011"})");
  const std::string b =
      Create(R"({"first_name":"Bob","last_name":"Dupont","postal_code":"75011"})");
  HttpReply merged = g_.Post("/v1/subjects/" + b + ":merge", R"({"into":")" + a + "\"}", op_);
  ASSERT_EQ(merged.status, 201) << merged.body;
  const std::string merge = JsonString(merged.body, "id");
  const std::string admin = g_.admin_key();
  auto sweep = [&]() {
    HttpReply run = g_.Post("/v1/retention/runs", "{}", admin);
    EXPECT_EQ(run.status, 201) << run.body;
    return ParseObject(run.body)->getObject("report")->getValue<int>("merges_completed");
  };
  EXPECT_EQ(sweep(), 0) << "within its revert period a merge stays open";
  EXPECT_EQ(JsonString(g_.Get("/v1/merges/" + merge, officer_).body, "state"), "merged");
  g_.Stop();
  g_.Start({"--test-clock-offset", std::to_string(31 * 86400)});
  EXPECT_EQ(sweep(), 1);
  EXPECT_EQ(JsonString(g_.Get("/v1/merges/" + merge, officer_).body, "state"), "completed");
  EXPECT_EQ(g_.Sql("SELECT length(wrapped_dek) FROM subjects WHERE id = '" + b + "'"),
            (std::vector<std::vector<std::string>>{{"0"}}));
  EXPECT_EQ(g_.Post("/v1/merges/" + merge + ":revert", "", officer_).status, 409);
  EXPECT_EQ(sweep(), 0);
}

}  // namespace
}  // namespace garde::testing

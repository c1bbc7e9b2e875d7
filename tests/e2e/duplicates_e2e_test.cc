// GET /v1/duplicates: likely duplicates found on encrypted data, through the real service.
#include <gtest/gtest.h>

#include "garde_process.h"

namespace garde::testing {
namespace {

class DuplicatesE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    op_ = g_.CreateKey("crm", "operator", {"customer_management"});
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
  EXPECT_NE(g_.Get("/v1/duplicates?limit=1&cursor=" + cursor, op_).body.find(R"("next_cursor":null)"),
            std::string::npos);

  // Bob moves: the pair goes. The match keys follow rectifications.
  ASSERT_EQ(g_.Patch("/v1/subjects/" + bob, R"({"fields":{"postal_code":"69002","street":null}})", op_)
                .status,
            200);
  EXPECT_EQ(Pairs(op_), std::vector<std::string>{Pair(kate, catherine, {"name+phone", "sounds-like name+phone"})});
  // Catherine gives her name as Kate: the plain-name rule now sees it too (and still by phone).
  ASSERT_EQ(g_.Patch("/v1/subjects/" + catherine, R"({"fields":{"postal_code":"69001"}})", op_)
                .status,
            200);
  EXPECT_EQ(Pairs(op_), std::vector<std::string>{Pair(kate, catherine,
                                                      {"name+phone", "name+postal_code",
                                                       "sounds-like name+phone",
                                                       "sounds-like name+postal_code"})});

  // Only keyed digests are stored: no folded name, no match key in any file.
  ASSERT_EQ(g_.Stop(), 0);
  const std::string everything = EverythingUnder(g_.data_dir());
  for (const char* planted : {"robert|dupont", "ktrn", "catherine|martin", "Dupond", "DUPOND"}) {
    EXPECT_EQ(everything.find(planted), std::string::npos) << planted;
  }
}

}  // namespace
}  // namespace garde::testing

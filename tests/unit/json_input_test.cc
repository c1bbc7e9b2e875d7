#include "garde/http/json_input.h"

#include <gtest/gtest.h>

namespace garde {
namespace {

// Well-formed JSON that is not a body Garde takes is invalid content (422 naming where), never
// malformed (400); only what is not JSON at all is 400.
TEST(JsonInput, WellFormedButNotAnObjectIs422WithAFieldError) {
  struct Case {
    const char* body;
    Code code;
    const char* field;
  };
  const Case cases[] = {
      {"1", Code::kUnprocessable, ""},
      {"\"x\"", Code::kUnprocessable, ""},
      {"true", Code::kUnprocessable, ""},
      {"null", Code::kUnprocessable, ""},
      {"[1,2]", Code::kUnprocessable, ""},
      {"1e400", Code::kUnprocessable, ""},
      {"18446744073709551616", Code::kUnprocessable, ""},
      {"{\"a\":{\"b\":[1,1e400]}}", Code::kUnprocessable, "a.b[1]"},
      {"{\"n\":-99999999999999999999}", Code::kUnprocessable, "n"},
      {"{\"s\":\"1e400 \\\" 1e400\",\"t\":1}", Code::kOk, nullptr},
      {"{\"n\":18446744073709551615,\"m\":-9223372036854775808,\"d\":1e300}", Code::kOk, nullptr},
      {"{\"a\":", Code::kBadRequest, nullptr},
      {"{'a':1}", Code::kBadRequest, nullptr},
      {"1e400 1", Code::kBadRequest, nullptr},
  };
  for (const auto& c : cases) {
    auto parsed = ParseJsonObject(c.body);
    if (c.code == Code::kOk) {
      EXPECT_TRUE(parsed.ok()) << c.body << ": " << parsed.status().message();
      continue;
    }
    ASSERT_FALSE(parsed.ok()) << c.body;
    EXPECT_EQ(parsed.status().code(), c.code) << c.body << ": " << parsed.status().message();
    if (c.field != nullptr) {
      ASSERT_EQ(parsed.status().errors().size(), 1u) << c.body;
      EXPECT_EQ(parsed.status().errors()[0].field, c.field) << c.body;
    }
  }
}

}  // namespace
}  // namespace garde

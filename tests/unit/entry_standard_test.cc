#include "garde/domain/entry_standard.h"

#include <gtest/gtest.h>

#include "garde/policy/policy_set.h"

namespace garde {
namespace {

class EntryStandardTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto set = LoadPolicies(GARDE_TEST_FIXTURES "/../../policies");
    ASSERT_TRUE(set.ok()) << set.status().message();
    policies_ = new std::shared_ptr<const PolicySet>(set.value());
  }
  static void TearDownTestSuite() {
    delete policies_;
    policies_ = nullptr;
  }
  const FieldSpec& Spec(const char* name) {
    const FieldSpec* s = (*policies_)->schema().Find(name);
    EXPECT_NE(s, nullptr) << name;
    return *s;
  }
  static std::shared_ptr<const PolicySet>* policies_;
  EntryStandard standard_{"FR"};
};
std::shared_ptr<const PolicySet>* EntryStandardTest::policies_ = nullptr;

struct TextCase {
  const char* field;
  const char* input;
  const char* expected;  // nullptr: refused
};

TEST_F(EntryStandardTest, NormalisesOrRefusesTextValues) {
  const TextCase cases[] = {
      {"email", "  Ana.Lopez@Example.ORG ", "ana.lopez@example.org"},
      {"email", "ÉLODIE@exemple.fr", "élodie@exemple.fr"},
      {"email", "not-an-email", nullptr},
      {"email", "a@b", nullptr},
      {"email", "two@@example.org", nullptr},
      {"email", "sp ace@example.org", nullptr},
      {"phone", "06 12 34 56 78", "+33612345678"},
      {"phone", "+33 6 12 34 56 78", "+33612345678"},
      {"phone", "+1 (202) 555-0143", "+12025550143"},
      {"phone", "0033612345678", "+33612345678"},
      {"phone", "12", nullptr},
      {"phone", "call me maybe", nullptr},
      {"birth_date", "1990-01-31", "1990-01-31"},
      {"birth_date", "19900131", "1990-01-31"},
      {"birth_date", "2023-02-29", nullptr},
      {"birth_date", "2024-02-29", "2024-02-29"},
      {"birth_date", "31/01/1990", nullptr},
      {"gender", "f", "F"},
      {"gender", "Q", nullptr},
      {"country", "fr", "FR"},
      {"country", "ZZ", nullptr},
      {"postal_code", " 75011 ", "75011"},
      {"postal_code", "sw1a  1aa", "SW1A 1AA"},
      {"first_name", "  Ana  ", "Ana"},
      {"first_name", "Jose\xCC\x81", "Jos\xC3\xA9"},  // e + combining acute -> NFC é
      {"first_name", "tab\x01", nullptr},
      {"first_name", "bad \xC3\x28 utf8", nullptr},
      {"occupation", "Retired", "retired"},
  };
  for (const auto& c : cases) {
    std::string why;
    auto out = standard_.Normalize(Spec(c.field), FieldValue::String(c.input), &why);
    if (c.expected == nullptr) {
      EXPECT_FALSE(out.has_value()) << c.field << " <- " << c.input;
      EXPECT_FALSE(why.empty());
      // Messages never echo the value: they may end up in logs.
      if (std::string(c.input).size() > 3) {
        EXPECT_EQ(why.find(c.input), std::string::npos) << why;
      }
    } else {
      ASSERT_TRUE(out.has_value()) << c.field << " <- " << c.input << ": " << why;
      EXPECT_EQ(out->text, c.expected) << c.field;
    }
  }
}

TEST_F(EntryStandardTest, NumbersRespectTypeRangeAndWholeness) {
  std::string why;
  EXPECT_TRUE(standard_.Normalize(Spec("household_size"), FieldValue::Number(3), &why));
  EXPECT_FALSE(standard_.Normalize(Spec("household_size"), FieldValue::Number(2.5), &why));
  EXPECT_FALSE(standard_.Normalize(Spec("household_size"), FieldValue::Number(0), &why));
  EXPECT_FALSE(standard_.Normalize(Spec("household_size"), FieldValue::Number(31), &why));
  EXPECT_FALSE(standard_.Normalize(Spec("household_size"), FieldValue::String("3"), &why));
  EXPECT_TRUE(standard_.Normalize(Spec("spend_30d"), FieldValue::Number(512.25), &why));
  EXPECT_FALSE(standard_.Normalize(Spec("spend_30d"), FieldValue::Number(-1), &why));
}

TEST_F(EntryStandardTest, WrongJsonTypesAreRefused) {
  std::string why;
  EXPECT_FALSE(standard_.Normalize(Spec("email"), FieldValue::Number(1), &why));
  EXPECT_FALSE(standard_.Normalize(Spec("email"), FieldValue::Bool(true), &why));
  EXPECT_FALSE(standard_.Normalize(Spec("first_name"), FieldValue::Composite(), &why));
}

TEST_F(EntryStandardTest, TooLongValuesAreRefused) {
  std::string why;
  EXPECT_FALSE(
      standard_.Normalize(Spec("first_name"), FieldValue::String(std::string(101, 'a')), &why));
  EXPECT_TRUE(
      standard_.Normalize(Spec("first_name"), FieldValue::String(std::string(100, 'a')), &why));
}

TEST(FieldValueCodec, RoundTripsEveryType) {
  for (const FieldValue& v :
       {FieldValue::String("Zoë"), FieldValue::Number(12.5), FieldValue::Number(-3),
        FieldValue::Bool(true), FieldValue::Bool(false)}) {
    auto back = DecodeFieldValue(EncodeFieldValue(v));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->type, v.type);
    EXPECT_EQ(back->text, v.text);
    EXPECT_EQ(back->number, v.number);
    EXPECT_EQ(back->boolean, v.boolean);
  }
  EXPECT_FALSE(DecodeFieldValue("x:1").has_value());
  EXPECT_FALSE(DecodeFieldValue("n:abc").has_value());
}

}  // namespace
}  // namespace garde

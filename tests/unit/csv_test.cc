#include "garde/http/csv.h"

#include <gtest/gtest.h>

namespace garde {
namespace {

TEST(CsvCell, QuotesSeparatorsAndNeutralisesFormulas) {
  EXPECT_EQ(CsvCell("plain"), "plain");
  EXPECT_EQ(CsvCell("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvCell("a;b"), "\"a;b\"");
  EXPECT_EQ(CsvCell("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvCell("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(CsvCell("=SUM(A1)"), "'=SUM(A1)");
  EXPECT_EQ(CsvCell("@cmd"), "'@cmd");
  EXPECT_EQ(CsvCell("-1,5"), "\"'-1,5\"");
}

}  // namespace
}  // namespace garde

#include "garde/http/register_export.h"

#include <gtest/gtest.h>

namespace garde {
namespace {

// Texts given per language in register.yaml appear in the export's language, once, and the
// machinery that carries them (<key>_i18n) never shows.
TEST(RegisterExport, TranslatedTextsAppearInTheExportsLanguageOnly) {
  auto set = LoadPolicies(GARDE_TEST_FIXTURES "/../../policies");
  ASSERT_TRUE(set.ok()) << set.status().message();
  for (const char* format : {"md", "csv", "html", "json"}) {
    auto fr = ExportRegister(*set.value(), format, "fr");
    ASSERT_TRUE(fr.ok()) << format;
    auto en = ExportRegister(*set.value(), format, "en");
    ASSERT_TRUE(en.ok()) << format;
    if (std::string(format) != "json") {
      EXPECT_EQ(fr->body.find("i18n"), std::string::npos) << format;
      EXPECT_EQ(en->body.find("i18n"), std::string::npos) << format;
      EXPECT_NE(fr->body.find("Personnalisation et segmentation"), std::string::npos) << format;
      EXPECT_NE(fr->body.find("personne ne revoit chaque classement"), std::string::npos) << format;
      EXPECT_EQ(fr->body.find("no person reviews each placement"), std::string::npos) << format;
      EXPECT_NE(en->body.find("no person reviews each placement"), std::string::npos) << format;
      EXPECT_EQ(en->body.find("personne ne revoit"), std::string::npos) << format;
    } else {
      // JSON keeps the source text in each column and every language beside it.
      EXPECT_NE(en->body.find("\"name\":\"Personalisation and segmentation\""), std::string::npos);
      EXPECT_NE(en->body.find("\"fr\":\"Personnalisation et segmentation\""), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace garde

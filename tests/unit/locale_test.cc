#include "garde/policy/locale.h"

#include <gtest/gtest.h>

namespace garde {
namespace {

const std::set<std::string> kShipped = {"en", "fr"};

// RFC 9110 §12.5.4: the highest q-value wins, a region falls back to its language, q=0
// refuses, and nothing acceptable answers "".
TEST(Locale, BestLanguageFollowsQValuesAndPrefixes) {
  struct Case {
    const char* header;
    const char* best;
  };
  const Case cases[] = {
      {"fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "fr"},
      {"en-GB,en;q=0.9", "en"},
      {"de-DE, en;q=0.3, fr;q=0.7", "fr"},
      {"fr;q=0, en", "en"},
      {"FR-fr", "fr"},
      {"de, it", ""},
      {"*", "en"},
      {"", ""},
      {"fr;q=2, en;q=0.5", "en"},  // a q-value above 1 counts for nothing
      {"fr ; q=0.4, en; q=0.6", "en"},
  };
  for (const auto& c : cases) EXPECT_EQ(BestLanguage(c.header, kShipped), c.best) << c.header;
}

// The page's explicit choice, then the subject's field, then the browser, then the default.
TEST(Locale, TheCustomersLanguageComesFirstFromTheSubjectThenTheBrowser) {
  EXPECT_EQ(ChooseLanguage(kShipped, "en", "fr", "fr", "fr"), "en");
  EXPECT_EQ(ChooseLanguage(kShipped, "", "fr-FR", "en-GB", "en"), "fr");
  EXPECT_EQ(ChooseLanguage(kShipped, "", "FR", "en-GB", "en"), "fr");
  EXPECT_EQ(ChooseLanguage(kShipped, "", "de", "fr-BE,en;q=0.5", "en"), "fr");
  EXPECT_EQ(ChooseLanguage(kShipped, "xx", "", "", "fr"), "fr");
  EXPECT_EQ(ChooseLanguage(kShipped, "", "", "de", "it"), "en");  // no usable default: source
}

// Escaping cannot be forgotten: every value in an HTML template is escaped, the text
// template keeps values as they are, and unknown names are found.
TEST(Locale, HtmlTemplatesEscapeEveryValue) {
  const std::map<std::string, std::string> values{
      {"reason", "<script>alert(1)</script> & \"quotes\" 'too'"},
      {"link", "https://x/r/a?b=1&c=2"}};
  EXPECT_EQ(RenderTemplate("<p>{{reason}}</p><a href=\"{{ link }}\">go</a>", values,
                           TemplateEscape::kHtml),
            "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot; &#39;too&#39;</p>"
            "<a href=\"https://x/r/a?b=1&amp;c=2\">go</a>");
  EXPECT_EQ(RenderTemplate("Reason: {{reason}}", values, TemplateEscape::kNone),
            "Reason: <script>alert(1)</script> & \"quotes\" 'too'");
  EXPECT_EQ(RenderTemplate("{{due_on}} {{ unclosed", values, TemplateEscape::kHtml),
            " {{ unclosed");
  EXPECT_EQ(UnknownTemplateVariables("{{link}} {{password}} {{reason}} {{ x }}"),
            (std::vector<std::string>{"password", "x"}));
}

TEST(Locale, LanguageCodes) {
  for (const char* good : {"fr", "en", "pt-br", "zh-hant", "ast"})
    EXPECT_TRUE(IsLanguageCode(good)) << good;
  for (const char* bad : {"", "f", "FR", "fr_FR", "french", "fr-", "fr-x", "../en"}) {
    EXPECT_FALSE(IsLanguageCode(bad)) << bad;
  }
}

TEST(Locale, ALocalTextFallsBackToTheSourceLanguage) {
  LocalText t;
  t.by_lang = {{"en", "Orders"}, {"fr", "Commandes"}};
  EXPECT_EQ(t.In("fr"), "Commandes");
  EXPECT_EQ(t.In("de"), "Orders");
  LocalText only_fr;
  only_fr.by_lang = {{"fr", "Commandes"}};
  EXPECT_EQ(only_fr.In("de"), "Commandes");
  EXPECT_EQ(LocalText().In("fr"), "");
}

}  // namespace
}  // namespace garde

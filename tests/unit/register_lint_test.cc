#include "garde/policy/register_lint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

namespace garde {
namespace {

TEST(RegisterLint, DefaultPoliciesHaveNoFindings) {
  auto set = LoadPolicies(GARDE_TEST_FIXTURES "/../../policies");
  ASSERT_TRUE(set.ok());
  const auto findings = LintRegister(*set.value());
  for (const auto& f : findings) ADD_FAILURE() << f.location << " " << f.rule << ": " << f.message;
}

TEST(RegisterLint, EveryRuleFiresWithItsLocation) {
  auto set = LoadPolicies(GARDE_TEST_FIXTURES "/lint_policies");
  ASSERT_TRUE(set.ok()) << set.status().message();
  const auto findings = LintRegister(*set.value());
  auto has = [&](const std::string& rule, const std::string& location,
                 const std::string& severity) {
    for (const auto& f : findings) {
      if (f.rule == rule && f.location == location && f.severity == severity && !f.hint.empty()) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(has("field-not-covered", "schema.yaml:16", "error"));             // shoe_size
  EXPECT_TRUE(has("blind-index-low-cardinality", "schema.yaml:8", "warning"));  // gender
  EXPECT_TRUE(has("purpose-unused", "purposes.yaml:8", "error"));               // orders
  EXPECT_TRUE(has("consent-without-notice", "purposes.yaml:3", "error"));       // newsletter
  EXPECT_TRUE(has("activity-without-retention", "register.yaml:5", "error"));
  EXPECT_TRUE(has("activity-without-legal-basis", "register.yaml:5", "error"));
  EXPECT_TRUE(has("special-category-without-art9", "register.yaml:5", "error"));
  EXPECT_TRUE(has("transfer-without-safeguard", "register.yaml:5", "error"));
  // Customer-facing texts given in one language only, where fr is shipped (locales/).
  EXPECT_TRUE(has("translation-missing", "purposes.yaml:4", "warning"));  // newsletter's title
  EXPECT_TRUE(has("translation-missing", "purposes.yaml:9", "warning"));  // orders' title
  EXPECT_TRUE(has("translation-missing", "register.yaml:6", "warning"));  // care's name
  EXPECT_EQ(findings.size(), 11u);
}

}  // namespace
}  // namespace garde

namespace garde {
namespace {

// The default policies copied into a fresh temporary directory, for a test to change.
std::filesystem::path CopyDefaultPolicies(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("garde-lint-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::filesystem::path source = GARDE_TEST_FIXTURES "/../../policies";
  std::filesystem::copy(source, dir, std::filesystem::copy_options::recursive);
  return dir;
}

std::string ReadRegister(const std::filesystem::path& dir) {
  std::ifstream in(dir / "register.yaml");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// policy-file rule: a misspelt register column is an error with its file:line, not a
// silently missing column.
TEST(RegisterLint, MisspeltActivityKeyIsAnErrorWithItsLine) {
  const std::filesystem::path dir = CopyDefaultPolicies("key");
  std::string text = ReadRegister(dir);
  const size_t at = text.find("    retention: \"P3Y after last_interaction\"");
  ASSERT_NE(at, std::string::npos);
  const int line =
      1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n'));
  text.replace(at, 14, "    retension:");
  std::ofstream(dir / "register.yaml", std::ios::trunc) << text;
  auto set = LoadPolicies(dir.string());
  ASSERT_FALSE(set.ok());
  bool named = false;
  for (const auto& e : set.status().errors()) {
    named |= e.field == "register.yaml:" + std::to_string(line) &&
             e.message.find("unknown key 'retension'") != std::string::npos;
  }
  EXPECT_TRUE(named) << set.status().message();
  std::filesystem::remove_all(dir);
}

// A legal-obligation hold that lists the e-mail keeps the customer reachable for ten years
// after they asked to be erased; the default register once did.
TEST(RegisterLint, ALegalHoldOnAContactChannelIsAWarning) {
  const std::filesystem::path dir = CopyDefaultPolicies("hold");
  std::string text = ReadRegister(dir);
  const size_t at = text.find("fields: [first_name, last_name, legal_name, street");
  ASSERT_NE(at, std::string::npos);
  text.insert(at + 9, "email, ");
  std::ofstream(dir / "register.yaml", std::ios::trunc) << text;
  auto set = LoadPolicies(dir.string());
  ASSERT_TRUE(set.ok()) << set.status().message();
  bool warned = false;
  for (const auto& f : LintRegister(*set.value())) {
    warned |= f.rule == "legal-hold-keeps-contact" && f.severity == "warning" &&
              f.message.find("orders_invoicing") != std::string::npos &&
              f.message.find("'email'") != std::string::npos;
  }
  EXPECT_TRUE(warned);
  std::filesystem::remove_all(dir);
}

// Lint refuses a retention anchor Garde cannot evaluate, and warns of criteria text that
// nothing enforces; every anchor the sweep knows passes.
TEST(RegisterLint, RetentionAnchorsGardeCannotEvaluateAreRefused) {
  struct Case {
    const char* rule;
    const char* finding;  // "" when none
    const char* severity;
  };
  const Case cases[] = {
      {"P3Y after last_interaction", "", ""},
      {"P3Y after last_contact", "", ""},
      {"P3Y after created_at", "", ""},
      {"P6M after consent_withdrawn", "", ""},
      {"P5Y after request_closed", "", ""},
      {"P10Y after last_purchase", "", ""},  // a date field
      {"P2Y", "", ""},
      {"P3Y after contract_end", "retention-anchor-unknown", "error"},  // not in the schema
      {"P3Y after postal_code", "retention-anchor-unknown", "error"},   // not a date
      {"PXY after created", "retention-anchor-unknown", "error"},
      {"three years after the end of the contract", "retention-not-executable", "warning"},
  };
  for (const auto& c : cases) {
    const std::filesystem::path dir = CopyDefaultPolicies("anchor");
    std::string text = ReadRegister(dir);
    const std::string from = "retention: \"P2Y after last_interaction\"";  // profiling
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos);
    text.replace(at, from.size(), std::string("retention: \"") + c.rule + "\"");
    std::ofstream(dir / "register.yaml", std::ios::trunc) << text;
    auto set = LoadPolicies(dir.string());
    ASSERT_TRUE(set.ok()) << set.status().message();
    std::string found;
    for (const auto& f : LintRegister(*set.value())) {
      if (f.rule.rfind("retention-", 0) == 0 && f.message.find("profiling") != std::string::npos) {
        found = f.rule + "/" + f.severity;
      }
    }
    EXPECT_EQ(found,
              std::string(c.finding).empty() ? "" : std::string(c.finding) + "/" + c.severity)
        << c.rule;
    std::filesystem::remove_all(dir);
  }
}

}  // namespace

}  // namespace garde

namespace garde {
namespace {

// Adding a language is adding files: a text, a message or a policy text the new language
// lacks is reported where it is missing, with its file:line.
TEST(RegisterLint, AMissingTranslationIsReportedWithItsFileAndLine) {
  const std::filesystem::path dir = CopyDefaultPolicies("translation");
  // German: one text translated, no messages; French: one text dropped.
  std::ofstream(dir / "locales" / "de.yaml")
      << "version: 1\nlanguage: de\nname: Deutsch\ntexts:\n"
         "  preferences.title: Ihre Einstellungen\n  preferences.typo: Tippfehler\n";
  std::string fr;
  {
    std::ifstream in(dir / "locales" / "fr.yaml");
    fr.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const size_t at = fr.find("  rights.read: lire\n");
  ASSERT_NE(at, std::string::npos);
  fr.erase(at, std::string("  rights.read: lire\n").size());
  std::ofstream(dir / "locales" / "fr.yaml", std::ios::trunc) << fr;
  auto set = LoadPolicies(dir.string());
  ASSERT_TRUE(set.ok()) << set.status().message();
  EXPECT_EQ(set.value()->languages(), (std::set<std::string>{"de", "en", "fr"}));
  std::map<std::string, std::string> found;  // message -> location
  for (const auto& f : LintRegister(*set.value())) {
    if (f.rule == "translation-missing" || f.rule == "text-unknown") found[f.message] = f.location;
  }
  EXPECT_EQ(found["text 'rights.read' has no fr translation"].rfind("locales/en.yaml:", 0), 0u);
  EXPECT_EQ(found["text 'preferences.typo' is not in locales/en.yaml: nothing shows it"],
            "locales/de.yaml:6");
  EXPECT_EQ(found["message 'request_extended' has no de template"],
            "mail/en/request_extended.txt:1");
  EXPECT_EQ(
      found["the title of purpose 'marketing.email' has no de text"].rfind("purposes.yaml:", 0),
      0u);
  EXPECT_TRUE(found.count("text 'rights.title' has no de translation"));
  // The page falls back to the source language for what is missing.
  EXPECT_EQ(set.value()->Text("fr", "rights.read"), "read");
  EXPECT_EQ(set.value()->Text("de", "preferences.title"), "Ihre Einstellungen");
  std::filesystem::remove_all(dir);
}

// A template naming a variable Garde does not fill is refused at load, with its line.
TEST(RegisterLint, AnUnknownTemplateVariableIsRefusedWithItsLine) {
  const std::filesystem::path dir = CopyDefaultPolicies("template");
  std::ofstream(dir / "mail" / "fr" / "request_received.html", std::ios::trunc)
      << "<p>Bonjour</p>\n<p>{{customer_password}}</p>\n";
  auto set = LoadPolicies(dir.string());
  ASSERT_FALSE(set.ok());
  bool named = false;
  for (const auto& e : set.status().errors()) {
    named |= e.field == "mail/fr/request_received.html:2" &&
             e.message.find("customer_password") != std::string::npos;
  }
  EXPECT_TRUE(named) << set.status().message();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace garde

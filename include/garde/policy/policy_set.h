// The policy set: schema, purposes catalogue, register of processing activities and roles,
// loaded together from one directory and cross-checked. Immutable once loaded; a reload
// builds a new set and swaps it in.
//
//   auto set = LoadPolicies("policies");     // errors name file:line and what is wrong
//   const Activity* a = set.value()->FindActivity("crm.customer_management");
//   const Role* r = set.value()->FindRole("operator");
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "garde/base/status.h"
#include "garde/policy/locale.h"
#include "garde/policy/matching.h"
#include "garde/policy/schema.h"

namespace garde {

enum class LegalBasis {
  kConsent,
  kContract,
  kLegalObligation,
  kVitalInterests,
  kPublicTask,
  kLegitimateInterests,
};
const char* LegalBasisName(LegalBasis b);

struct NoticeVersion {
  std::string version;
  std::string text;  // in the source language; texts/urls hold every language given
  std::string url;
  std::string valid_from;
  LocalText texts, urls;
};

struct Purpose {
  std::string id;
  std::string title;  // in the source language (the API's catalogue)
  std::string description;
  LocalText titles, descriptions;  // per language, for customers
  LegalBasis legal_basis = LegalBasis::kConsent;
  std::vector<std::string> channels;
  std::vector<NoticeVersion> notices;
  std::string validity;  // ISO 8601 duration, empty: no expiry
  bool gpc_opt_out = false;
  bool marketing = false;  // direct marketing: Art. 21(3) objections are absolute
  // A grant by e-mail counts only once the customer follows the link sent to the address on
  // file (double opt-in); until then the check answers no_consent.
  bool double_opt_in = false;
  int line = 0;

  // The notice in force at `day` (YYYY-MM-DD): the latest whose valid_from is not after it.
  const NoticeVersion* NoticeAt(const std::string& day) const;
  const NoticeVersion* FindNotice(const std::string& version) const;
};

struct Activity {
  std::string id;
  std::string json;  // the whole register entry as JSON, for exports
  bool has_legal_basis = false;
  std::vector<std::string> transfers_without_safeguard;  // countries
  bool has_art9_condition = false;
  std::string name;
  LocalText names;  // per language, for customers (access packages)
  std::string reference;
  std::vector<std::string> purposes;
  LegalBasis legal_basis = LegalBasis::kContract;
  std::set<std::string> fields;  // schema fields the activity may use (data minimisation)
  std::string retention;
  // data.retention: categories of data kept for a time of their own (category -> rule).
  std::map<std::string, std::string> category_retention;
  // Art. 18(2): may still process a restricted subject's data, for legal claims.
  bool legal_claims = false;
  // Art. 15(1)(h), Art. 22: automated decision-making, including profiling, and what the
  // data subject is told about it (empty `logic`: none).
  struct AutomatedDecision {
    std::string logic, significance;
    LocalText logics, significances;
  } automated_decision;
  int line = 0;

  // The retention rule for a field of `category`.
  const std::string& RetentionFor(const std::string& category) const {
    auto it = category_retention.find(category);
    return it == category_retention.end() ? retention : it->second;
  }
};

// A retention rule Garde can execute: "DURATION[ after ANCHOR]" (docs/policies.md).
//   "P3Y after last_interaction"   three years after the last purchase or contact
//   "P10Y after last_purchase"     ten years after the date in the subject's field
//   "P5Y after request_closed"     five years after the subject's last request was closed
//   "P6M after consent_withdrawn"  six months after the activity's consent ended
//   "P1Y"                          one year after the last interaction, like "P1Y after created"
//                                  would be after the subject was created
struct RetentionRule {
  enum class Anchor { kCreated, kLastInteraction, kConsentEnded, kRequestClosed, kDateField };
  std::string duration;  // ISO 8601
  Anchor anchor = Anchor::kCreated;
  std::string field;  // kDateField: the schema field holding the date
};
// The rule, or nullopt with *problem saying why Garde cannot evaluate it.
std::optional<RetentionRule> ParseRetentionRule(const std::string& text, const Schema& schema,
                                                std::string* problem);

// What a role may do. Capabilities are the names routes ask for ("subjects.write", ...).
struct Role {
  std::string name;
  std::string description;
  std::set<std::string> capabilities;
  bool personal_data = false;  // may read personal data for its bound activities
};

class PolicySet {
 public:
  const Schema& schema() const { return schema_; }
  const Activity* FindActivity(std::string_view id) const;
  const Purpose* FindPurpose(const std::string& id) const;
  const Role* FindRole(const std::string& name) const;
  const std::vector<Activity>& activities() const { return activities_; }
  const std::vector<Purpose>& purposes() const { return purposes_; }
  const std::map<std::string, Role>& roles() const { return roles_; }
  const std::string& directory() const { return directory_; }
  // register.yaml's organisation block as JSON.
  const std::string& organisation_json() const { return organisation_json_; }
  // The data controller named in register.yaml (organisation.controller).
  const std::string& controller_name() const { return controller_name_; }
  const std::string& controller_contact() const { return controller_contact_; }
  // The supervisory authority a data subject may complain to (Art. 15(1)(f), 77):
  // organisation.supervisory_authority {name, address, url}.
  struct Authority {
    std::string name, address, url;
  };
  const Authority& supervisory_authority() const { return authority_; }
  // Who speaks to customers, on every customer page and message (organisation.controller,
  // organisation.dpo, organisation.privacy_notice: one URL per language).
  struct Controller {
    std::string name, address, contact, dpo_contact;
    LocalText privacy_notice;
    int line = 0;
  };
  const Controller& controller() const { return controller_; }
  // Customer-facing texts and message templates per language (locales/, mail/).
  const std::map<std::string, Locale>& locales() const { return locales_; }
  const std::set<std::string>& languages() const { return languages_; }
  // The page text `key` in `lang`, else in the source language, else the key itself.
  std::string Text(const std::string& lang, const std::string& key) const;
  // The calendar day of `time` as customers read it: "2 December 2026", "2 décembre 2026"
  // (texts date.months and date.pattern); YYYY-MM-DD when the language has none.
  std::string Day(const std::string& lang, int64_t time) const;
  // The message template `name` in `lang`, else in the source language; nullptr if none.
  const MailTemplate* Template(const std::string& lang, const std::string& name) const;
  // matching.yaml: the likely-duplicate rules' fields and given-name variants.
  const MatchingPolicy& matching() const { return matching_; }
  // SHA-256 over the policy files' bytes, hex; changes whenever any file's content does.
  const std::string& content_hash() const { return content_hash_; }

 private:
  friend Result<std::shared_ptr<const PolicySet>> LoadPolicies(const std::string& dir);
  Schema schema_;
  std::vector<Purpose> purposes_;
  std::vector<Activity> activities_;
  std::map<std::string, Role> roles_;
  std::string directory_;
  std::string content_hash_;
  std::string organisation_json_ = "null";
  std::string controller_name_;
  std::string controller_contact_;
  Authority authority_;
  Controller controller_;
  std::map<std::string, Locale> locales_;
  std::set<std::string> languages_;
  MatchingPolicy matching_;
};

// Loads schema.yaml, purposes.yaml, register.yaml, roles.yaml, locales/*.yaml and
// mail/<lang>/* from `dir`. On failure the
// status lists every problem found as {field: "file:line", message}.
Result<std::shared_ptr<const PolicySet>> LoadPolicies(const std::string& dir);

}  // namespace garde

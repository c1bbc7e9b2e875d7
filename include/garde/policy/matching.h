// policies/matching.yaml: which schema fields the likely-duplicate rules read, and the table
// of given-name variants (docs/policies.md, docs/duplicates.md). Optional: without the file
// no match key is kept.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace garde {

struct MatchingPolicy {
  bool enabled = false;  // the file exists
  // The schema fields the rules read.
  std::string given_name = "first_name", family_name = "last_name", postal_code = "postal_code",
              phone = "phone", street = "street";
  // Folded given-name variant -> the folded canonical name of its group (its first entry).
  std::map<std::string, std::string> given_names;

  std::vector<std::string> fields() const {
    return {given_name, family_name, postal_code, phone, street};
  }
};

// Lower case, accents and every character but letters (and digits when `digits`) removed,
// the words joined ("Jean-Pierre" -> "jeanpierre", "J.-P." -> "jp", "Ødegård" -> "odegard").
std::string FoldText(std::string_view text, bool digits = false);
// FoldText's words, kept apart.
std::vector<std::string> FoldWords(std::string_view text, bool digits = false);

}  // namespace garde

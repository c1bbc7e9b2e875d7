// The register of processing activities as a document: JSON, CSV (one row per activity,
// every column, UTF-8 BOM), Markdown (an index, then one table per activity), or a printable
// HTML page laid out like the CNIL register sheet (organisation first, then one A4 sheet per
// activity with human headings), in English or French. Used by GET /v1/register and
// `garde register export`.
//
//   auto doc = ExportRegister(*policies, "html");   // 422 for an unknown format
//   write(doc->body) with doc->content_type
#pragma once

#include <string>

#include "garde/base/status.h"
#include "garde/policy/policy_set.h"

namespace garde {

struct RegisterDocument {
  std::string content_type;
  std::string extension;  // "json", "csv", "md", "html"
  std::string body;
};

inline constexpr const char* kRegisterFormats = "json, csv, md or html";

// `lang` (en | fr) sets the headings and labels of CSV values, Markdown and HTML; every
// format carries every column of the register (Art. 30(1)).
Result<RegisterDocument> ExportRegister(const PolicySet& policies, const std::string& format,
                                        const std::string& lang = "en");

}  // namespace garde

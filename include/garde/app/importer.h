// Loading a customer file from a spreadsheet's CSV: a mapping (YAML) says which column holds
// which schema field, how its dates and numbers are written, and what every row shares (kind,
// source, constants). Each row goes through the vault like an API create: validated by the
// entry standard, sealed, indexed, audited. A row whose unique field (e-mail, external id)
// already belongs to a subject updates it, or is reported as its duplicate.
//
//   auto mapping = LoadImportMapping("crm.yaml", policies.schema());
//   Importer importer(deployment);
//   auto summary = importer.Run(caller, mapping.value(), bytes, {.dry_run = false},
//                               [](const ImportRowResult& r) { report << ...; });
//
// The import's id is a digest of the file and the mapping: running the same import again
// resumes it. A row that created a subject is recorded in the creating transaction, so an
// interrupted import never creates anyone twice; updates are idempotent.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "garde/base/csv_reader.h"
#include "garde/base/status.h"
#include "garde/domain/access_gate.h"
#include "garde/policy/schema.h"

namespace garde {

class Deployment;

struct ImportColumn {
  std::string column;       // the header cell, as the file writes it
  std::string field;        // a schema field, or "external_id"
  std::string date_format;  // strptime format of a date column ("%d/%m/%Y"); empty: ISO 8601
  char decimal = 0;         // ',' or '.'; 0: either, when unambiguous
};

struct ImportMapping {
  std::string name;  // the file's name, for reports
  std::string kind = "person";
  std::string source = "import";
  std::string encoding = "auto";  // auto | utf-8 | windows-1252
  char delimiter = 0;             // ',' or ';'; 0: found from the header line
  std::vector<ImportColumn> columns;
  std::map<std::string, std::string> constants;  // field -> value, for every row
  bool update_existing = true;                   // on_existing: update | skip
  std::string text;  // the mapping file's bytes (part of the import's id)
};

// Reads and checks a mapping against the schema; problems come with `name` (the path when
// empty) and the file's line. kNotFound when the file cannot be read.
Result<ImportMapping> LoadImportMapping(const std::string& path, const Schema& schema,
                                        const std::string& name = "");
Result<ImportMapping> ParseImportMapping(const std::string& name, const std::string& text,
                                         const Schema& schema);

struct ImportRowResult {
  int64_t row = 0;      // 1-based, the header excluded
  size_t line = 0;      // the file's line where the row starts
  std::string outcome;  // created | updated | duplicate | invalid | failed
  std::string id;       // the subject created, updated or duplicated
  std::string detail;   // why, for the others (never a value from the file)
  std::vector<FieldError> errors;
  bool earlier = false;  // done by an earlier, interrupted run of the same import
  // A created (or, in a dry run, valid) row that is likely the same customer as a subject
  // already there: its id and the rules that matched (docs/duplicates.md).
  std::string likely_duplicate_of;
  std::vector<std::string> likely_rules;
};

struct ImportSummary {
  std::string id;
  bool dry_run = false;
  int64_t rows = 0, created = 0, updated = 0, duplicates = 0, invalid = 0, failed = 0;
  int64_t resumed = 0;            // rows an earlier run had done
  int64_t likely_duplicates = 0;  // created (or valid) rows flagged as likely duplicates
};

struct ImportOptions {
  bool dry_run = false;
  size_t workers = 0;    // threads preparing rows (0: one per core)
  size_t window = 2048;  // rows written per transaction (one commit and flush each)
  std::function<void(int64_t done, int64_t total)> progress;
};

class Importer {
 public:
  explicit Importer(Deployment& d) : d_(d) {}
  // Rows are reported in file order. kUnprocessable when the file cannot be read as CSV or
  // its header lacks a mapped column; nothing is written then.
  // The file is read twice, a chunk at a time (memory holds a window of rows, not the file):
  // checked whole first, then imported.
  Result<ImportSummary> Run(const Caller& caller, const ImportMapping& mapping, ByteSource& file,
                            const ImportOptions& options,
                            const std::function<void(const ImportRowResult&)>& on_row);
  Result<ImportSummary> Run(const Caller& caller, const ImportMapping& mapping,
                            std::string_view file, const ImportOptions& options,
                            const std::function<void(const ImportRowResult&)>& on_row);

 private:
  Deployment& d_;
};

// The per-row report as CSV (row, line, outcome, id, detail, errors, likely_duplicate_of),
// formula-safe.
std::string ImportReportCsvHeader();
std::string ImportReportCsvLine(const ImportRowResult& r);

}  // namespace garde

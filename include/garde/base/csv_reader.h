// Reading CSV files as spreadsheets export them: UTF-8 with or without a byte-order mark, or
// Windows-1252 (Excel's "CSV" on Windows); cells separated by ',' or ';' (found from the
// header line when not given); RFC 4180 quoting, line breaks inside quotes; CRLF or LF.
//
//   auto text = SpreadsheetText(bytes, "auto");        // UTF-8, whatever the file was
//   CsvReader csv(text.value(), CsvReader::Detect(text.value()));
//   std::vector<std::string> row;
//   while (csv.Next(&row)) { ... csv.line() ... }
//   if (!csv.error().empty()) ...                      // an unclosed quote, with its line
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "garde/base/status.h"

namespace garde {

// The file's text as UTF-8: `encoding` is utf-8, windows-1252 or auto (UTF-8 when the bytes
// are valid UTF-8, else Windows-1252). A UTF-8 byte-order mark is dropped, and makes the file
// UTF-8 whatever `encoding` says. kUnprocessable when the file is UTF-8 (declared, or by its
// mark) and its bytes are not.
Result<std::string> SpreadsheetText(std::string_view bytes, std::string_view encoding);

class CsvReader {
 public:
  CsvReader(std::string_view text, char delimiter) : t_(text), delimiter_(delimiter) {}
  // ';' when the first line has more semicolons than commas outside quotes, else ','.
  static char Detect(std::string_view text);

  // The next record's cells; false at the end or on a malformed record (see error()).
  // Blank lines are skipped.
  bool Next(std::vector<std::string>* cells);
  // The 1-based line on which the record last returned by Next() started.
  size_t line() const { return record_line_; }
  const std::string& error() const { return error_; }

 private:
  std::string_view t_;
  char delimiter_;
  size_t pos_ = 0;
  size_t line_ = 1;
  size_t record_line_ = 0;
  std::string error_;
};

}  // namespace garde

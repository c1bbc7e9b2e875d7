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

#include <memory>
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

// Whether a file is read as Windows-1252 rather than UTF-8, from its declared `encoding`
// (utf-8, windows-1252, auto), its byte-order mark and whether its bytes are valid UTF-8:
// a mark or a declaration of UTF-8 must hold (kUnprocessable), auto takes UTF-8 when it is.
Result<bool> IsWindows1252(std::string_view encoding, bool bom, bool valid_utf8);

// Windows-1252 bytes as UTF-8 (every byte maps to a character).
Result<std::string> Utf8FromWindows1252(std::string_view bytes);

class CsvReader {
 public:
  // `first_line`: the line `text` starts on in its file.
  CsvReader(std::string_view text, char delimiter, size_t first_line = 1)
      : t_(text), delimiter_(delimiter), line_(first_line) {}
  // ';' when the first line has more semicolons than commas outside quotes, else ','.
  static char Detect(std::string_view text);

  // The next record's cells; false at the end or on a malformed record (see error()).
  // Blank lines are skipped.
  bool Next(std::vector<std::string>* cells);
  // The 1-based line on which the record last returned by Next() started.
  size_t line() const { return record_line_; }
  const std::string& error() const { return error_; }
  // Bytes of the text consumed so far, and the line the next record would start on.
  size_t consumed() const { return pos_; }
  size_t next_line() const { return line_; }

 private:
  std::string_view t_;
  char delimiter_;
  size_t pos_ = 0;
  size_t line_;
  size_t record_line_ = 0;
  std::string error_;
};

// Bytes read in order, from the first again when asked: a file, a string, a sealed upload.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Up to `n` bytes into `out`; 0 at the end.
  virtual Result<size_t> Read(char* out, size_t n) = 0;
  // Back to the first byte.
  virtual Status Rewind() = 0;
};

// `bytes` must outlive the source.
std::unique_ptr<ByteSource> StringSource(std::string_view bytes);
// kNotFound when the file cannot be opened.
Result<std::unique_ptr<ByteSource>> FileSource(const std::string& path);

// The records of a CSV file read from a ByteSource a chunk at a time, so that memory holds a
// chunk and a record whatever the file's size; records are split as CsvReader splits them (a
// record may span chunks). A UTF-8 byte-order mark at the start is dropped (bom() tells).
//
//   CsvStream csv(source);
//   csv.set_delimiter(CsvReader::Detect(csv.Start().value()));
//   while (csv.Next(&cells)) { csv.line(); csv.raw(); }
//   if (!csv.error().empty()) ...
class CsvStream {
 public:
  explicit CsvStream(ByteSource& source, size_t max_record = size_t{1} << 20)
      : source_(source), max_record_(max_record) {}
  // Reads the first chunk (for CsvReader::Detect): the file's first bytes, the mark dropped.
  Result<std::string_view> Start();
  void set_delimiter(char delimiter) { delimiter_ = delimiter; }
  bool Next(std::vector<std::string>* cells);
  size_t line() const { return record_line_; }
  // The bytes of the record Next() returned last, as the file has them.
  std::string_view raw() const { return raw_; }
  bool bom() const { return bom_; }
  const std::string& error() const { return error_; }
  // Not ok when reading the source failed (error() then says so too): not a CSV problem.
  const Status& read_status() const { return read_status_; }

 private:
  bool Fill();  // false at the end of the source (or on an error)

  ByteSource& source_;
  const size_t max_record_;
  char delimiter_ = ',';
  std::string buffer_;
  std::unique_ptr<char[]> chunk_;  // what one Read() fills
  size_t start_ = 0;               // the first byte of buffer_ not yet returned
  size_t line_ = 1;                // the line buffer_[start_] is on
  size_t record_line_ = 0;
  std::string_view raw_;
  bool started_ = false, ended_ = false, bom_ = false;
  std::string error_;
  Status read_status_ = Status::Ok();
};

}  // namespace garde

#include "garde/base/csv_reader.h"

#include <unicode/ucnv.h>

#include <memory>

#include "garde/base/encoding.h"

namespace garde {
namespace {

Result<std::string> FromWindows1252(std::string_view bytes) {
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<UConverter, void (*)(UConverter*)> from(ucnv_open("windows-1252", &status),
                                                          ucnv_close);
  if (U_FAILURE(status)) return Internal("no windows-1252 converter");
  std::unique_ptr<UConverter, void (*)(UConverter*)> to(ucnv_open("UTF-8", &status), ucnv_close);
  if (U_FAILURE(status)) return Internal("no UTF-8 converter");
  std::string out(bytes.size() * 3 + 4, '\0');
  char* target = out.data();
  const char* source = bytes.data();
  ucnv_convertEx(to.get(), from.get(), &target, out.data() + out.size(), &source,
                 bytes.data() + bytes.size(), nullptr, nullptr, nullptr, nullptr, true, true,
                 &status);
  if (U_FAILURE(status)) return Unprocessable("the file is not Windows-1252 text");
  out.resize(static_cast<size_t>(target - out.data()));
  return out;
}

}  // namespace

Result<std::string> SpreadsheetText(std::string_view bytes, std::string_view encoding) {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  const bool bom = bytes.substr(0, kBom.size()) == kBom;
  if (bom) bytes.remove_prefix(kBom.size());
  if (encoding == "windows-1252" && !bom) return FromWindows1252(bytes);
  if (IsValidUtf8(bytes)) return std::string(bytes);
  if (encoding == "utf-8" || bom) {
    return Unprocessable("the file is declared UTF-8 but is not valid UTF-8");
  }
  return FromWindows1252(bytes);
}

char CsvReader::Detect(std::string_view text) {
  size_t commas = 0, semicolons = 0;
  bool quoted = false;
  for (char c : text) {
    if (c == '"') quoted = !quoted;
    if (quoted) continue;
    if (c == '\n') break;
    commas += c == ',';
    semicolons += c == ';';
  }
  return semicolons > commas ? ';' : ',';
}

bool CsvReader::Next(std::vector<std::string>* cells) {
  cells->clear();
  if (!error_.empty()) return false;
  // Blank lines between records are skipped.
  while (pos_ < t_.size() && (t_[pos_] == '\n' || t_[pos_] == '\r')) {
    if (t_[pos_] == '\n') ++line_;
    ++pos_;
  }
  if (pos_ >= t_.size()) return false;
  record_line_ = line_;
  std::string cell;
  bool quoted = false;      // inside a quoted cell
  bool was_quoted = false;  // the current cell was quoted (text after the closing quote is refused)
  while (pos_ < t_.size()) {
    const char c = t_[pos_++];
    if (quoted) {
      if (c == '"') {
        if (pos_ < t_.size() && t_[pos_] == '"') {
          cell += '"';
          ++pos_;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line_;
        cell += c;
      }
      continue;
    }
    if (c == '"' && cell.empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (c == delimiter_) {
      cells->push_back(std::move(cell));
      cell.clear();
      was_quoted = false;
    } else if (c == '\r' && pos_ < t_.size() && t_[pos_] == '\n') {
      continue;  // CRLF: the LF ends the record
    } else if (c == '\n') {
      ++line_;
      cells->push_back(std::move(cell));
      return true;
    } else if (was_quoted) {
      error_ = "line " + std::to_string(line_) + ": text after a closing quote";
      return false;
    } else {
      cell += c;
    }
  }
  if (quoted) {
    error_ = "line " + std::to_string(record_line_) + ": a quoted cell is never closed";
    return false;
  }
  cells->push_back(std::move(cell));
  return true;
}

}  // namespace garde

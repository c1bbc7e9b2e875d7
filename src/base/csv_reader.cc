#include "garde/base/csv_reader.h"

#include <unicode/ucnv.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "garde/base/encoding.h"

namespace garde {

Result<std::string> Utf8FromWindows1252(std::string_view bytes) {
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

Result<bool> IsWindows1252(std::string_view encoding, bool bom, bool valid_utf8) {
  if (encoding == "windows-1252" && !bom) return true;
  if (valid_utf8) return false;
  if (encoding == "utf-8" || bom) {
    return Unprocessable("the file is declared UTF-8 but is not valid UTF-8");
  }
  return true;
}

Result<std::string> SpreadsheetText(std::string_view bytes, std::string_view encoding) {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  const bool bom = bytes.substr(0, kBom.size()) == kBom;
  if (bom) bytes.remove_prefix(kBom.size());
  const bool utf8 = !(encoding == "windows-1252" && !bom) && IsValidUtf8(bytes);
  GARDE_ASSIGN_OR_RETURN(auto windows_1252, IsWindows1252(encoding, bom, utf8));
  if (windows_1252) return Utf8FromWindows1252(bytes);
  return std::string(bytes);
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

namespace {

class StringBytes : public ByteSource {
 public:
  explicit StringBytes(std::string_view bytes) : bytes_(bytes) {}
  Result<size_t> Read(char* out, size_t n) override {
    n = std::min(n, bytes_.size() - pos_);
    std::memcpy(out, bytes_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  Status Rewind() override {
    pos_ = 0;
    return Status::Ok();
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

class FileBytes : public ByteSource {
 public:
  explicit FileBytes(std::FILE* f) : f_(f) {}
  ~FileBytes() override { std::fclose(f_); }
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  Result<size_t> Read(char* out, size_t n) override {
    const size_t got = std::fread(out, 1, n, f_);
    if (got < n && std::ferror(f_)) return Unavailable("cannot read the file");
    return got;
  }
  Status Rewind() override {
    if (std::fseek(f_, 0, SEEK_SET) != 0) return Unavailable("cannot read the file again");
    return Status::Ok();
  }

 private:
  std::FILE* f_;
};

constexpr size_t kChunk = 64 * 1024;

}  // namespace

std::unique_ptr<ByteSource> StringSource(std::string_view bytes) {
  return std::make_unique<StringBytes>(bytes);
}

Result<std::unique_ptr<ByteSource>> FileSource(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rbe");
  if (f == nullptr) return NotFound("cannot read " + path);
  return std::unique_ptr<ByteSource>(std::make_unique<FileBytes>(f));
}

bool CsvStream::Fill() {
  if (ended_) return false;
  if (start_ >= kChunk) {  // what was returned is not kept
    buffer_.erase(0, start_);
    start_ = 0;
  }
  // Read into a chunk of its own and append what came: growing buffer_ by a whole chunk
  // first would zero 64 KiB for every read, however few bytes a short read brings.
  if (!chunk_) chunk_ = std::make_unique_for_overwrite<char[]>(kChunk);
  auto n = source_.Read(chunk_.get(), kChunk);
  if (!n.ok()) {
    read_status_ = n.status();
    error_ = n.status().message();
    ended_ = true;
    return false;
  }
  buffer_.append(chunk_.get(), n.value());
  if (n.value() == 0) ended_ = true;
  return n.value() > 0;
}

Result<std::string_view> CsvStream::Start() {
  if (!started_) {
    started_ = true;
    while (buffer_.size() < 3 && Fill()) {
    }
    if (!read_status_.ok()) return read_status_;
    constexpr std::string_view kBom = "\xEF\xBB\xBF";
    if (std::string_view(buffer_).substr(0, kBom.size()) == kBom) {
      bom_ = true;
      start_ = kBom.size();
    }
    if (buffer_.size() - start_ < kChunk) Fill();
  }
  return std::string_view(buffer_).substr(start_);
}

bool CsvStream::Next(std::vector<std::string>* cells) {
  if (!started_ && !Start().ok()) return false;
  raw_ = {};
  for (;;) {
    if (!error_.empty()) return false;
    const std::string_view rest = std::string_view(buffer_).substr(start_);
    CsvReader reader(rest, delimiter_, line_);
    const bool got = reader.Next(cells);
    const size_t used = reader.consumed();
    // A record is whole once its line ended within what was read, or the file did.
    const bool whole = ended_ || (got && used > 0 && rest[used - 1] == '\n');
    // An error met on the last byte read may go with more bytes (a quote closed later, a
    // CR whose LF is in the next chunk).
    const bool definite_error = !reader.error().empty() && used < rest.size();
    if (got && used > max_record_) {
      error_ = "line " + std::to_string(reader.line()) + ": a record longer than " +
               std::to_string(max_record_) + " bytes";
      return false;
    }
    if (!whole && !definite_error) {
      if (rest.size() > max_record_) {
        error_ = "line " + std::to_string(line_) + ": a record longer than " +
                 std::to_string(max_record_) + " bytes";
        return false;
      }
      Fill();
      continue;
    }
    if (!got) {
      error_ = reader.error();
      return false;
    }
    record_line_ = reader.line();
    raw_ = rest.substr(0, used);
    line_ = reader.next_line();
    start_ += used;
    return true;
  }
}

}  // namespace garde

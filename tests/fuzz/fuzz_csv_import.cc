// libFuzzer target: spreadsheet CSV as `garde import` and POST /v1/imports read it. Any bytes
// decode to valid UTF-8 text or are refused; parsing ends; the records read, written back
// with every cell quoted, read back the same (no cell is lost, split or joined); and read a
// few bytes at a time (CsvStream, as imports read files), the same records and error.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "garde/base/csv_reader.h"

namespace {

std::vector<std::vector<std::string>> ReadAll(std::string_view text, char delimiter, bool* ok) {
  garde::CsvReader csv(text, delimiter);
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> cells;
  size_t last_line = 0;
  while (csv.Next(&cells)) {
    if (cells.empty() || csv.line() < last_line) std::abort();
    last_line = csv.line();
    records.push_back(cells);
  }
  *ok = csv.error().empty();
  return records;
}

// Hands out 1 to 7 bytes per read, the sizes taken from the input's own bytes.
class ChoppySource : public garde::ByteSource {
 public:
  explicit ChoppySource(std::string_view bytes)
      : bytes_(bytes), inner_(garde::StringSource(bytes)) {}
  garde::Result<size_t> Read(char* out, size_t n) override {
    const size_t step = pos_ < bytes_.size() ? 1 + static_cast<uint8_t>(bytes_[pos_]) % 7 : 1;
    auto got = inner_->Read(out, std::min(n, step));
    if (got.ok()) pos_ += got.value();
    return got;
  }
  garde::Status Rewind() override {
    pos_ = 0;
    return inner_->Rewind();
  }

 private:
  std::string_view bytes_;
  std::unique_ptr<garde::ByteSource> inner_;
  size_t pos_ = 0;
};

// The raw bytes read a chunk at a time split as the whole text does.
void SameInChunks(std::string_view bytes) {
  const bool bom = bytes.rfind("\xEF\xBB\xBF", 0) == 0;
  const std::string_view text = bom ? bytes.substr(3) : bytes;
  for (char delimiter : {',', ';'}) {
    garde::CsvReader whole(text, delimiter);
    ChoppySource source(bytes);
    garde::CsvStream stream(source);
    if (!stream.Start().ok()) std::abort();
    stream.set_delimiter(delimiter);
    std::vector<std::string> a, b;
    for (;;) {
      const bool got = whole.Next(&a);
      if (stream.Next(&b) != got || a != b || (got && whole.line() != stream.line())) std::abort();
      if (!got) break;
    }
    if (whole.error() != stream.error() || stream.bom() != bom) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  SameInChunks(bytes);
  for (const char* encoding : {"auto", "utf-8", "windows-1252"}) {
    auto text = garde::SpreadsheetText(bytes, encoding);
    if (!text.ok()) {
      // Every byte maps from Windows-1252; only a UTF-8 byte-order mark overrides the mapping.
      if (std::string_view(encoding) == "windows-1252" && bytes.rfind("\xEF\xBB\xBF", 0) != 0) {
        std::abort();
      }
      continue;
    }
    const char delimiter = garde::CsvReader::Detect(text.value());
    if (delimiter != ',' && delimiter != ';') std::abort();
    bool ok = false;
    const auto records = ReadAll(text.value(), delimiter, &ok);
    if (!ok) continue;
    std::string again;
    for (const auto& r : records) {
      for (size_t i = 0; i < r.size(); ++i) {
        again += i == 0 ? "\"" : std::string(1, delimiter) + "\"";
        for (char c : r[i]) again += c == '"' ? std::string("\"\"") : std::string(1, c);
        again += '"';
      }
      again += "\r\n";
    }
    bool ok_again = false;
    if (ReadAll(again, delimiter, &ok_again) != records || !ok_again) std::abort();
  }
  return 0;
}

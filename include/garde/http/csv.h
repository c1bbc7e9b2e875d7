// CSV cells for files people open in spreadsheets (RFC 4180 quoting).
//
//   out += CsvCell(value) + "," + CsvCell(other) + "\r\n";
#pragma once

#include <string>

namespace garde {

// Quotes a cell holding , " ; or a line break (';' separates cells in some locales), and
// neutralises one that starts like a formula (= + - @) against CSV injection.
std::string CsvCell(const std::string& value);

}  // namespace garde

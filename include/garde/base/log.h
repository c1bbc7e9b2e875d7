// Structured logs: one JSON object per line through spdlog. Callers pass ids, names and
// counts — never personal data values.
//
//   LogLine(spdlog::level::info, "request").Str("request_id", id).Int("status", 200);
//   // {"ts":"2026-11-22T10:00:00.123Z","level":"info","msg":"request","request_id":...}
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "garde/base/json_writer.h"

namespace garde {

// Sends JSON lines to stderr (and `file` when not empty) at `level` and above.
void SetUpLogging(const std::string& level, const std::string& file);

class LogLine {
 public:
  LogLine(spdlog::level::level_enum level, std::string_view msg);
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  ~LogLine();  // emits the line

  LogLine& Str(std::string_view key, std::string_view value);
  LogLine& Int(std::string_view key, int64_t value);
  LogLine& Num(std::string_view key, double value);
  // Inserts a JSON value already serialised.
  LogLine& Raw(std::string_view key, std::string_view json);

 private:
  spdlog::level::level_enum level_;
  bool enabled_;
  JsonWriter w_;
};

}  // namespace garde

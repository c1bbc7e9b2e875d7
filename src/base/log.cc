#include "garde/base/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace garde {
namespace {

// spdlog's registry is a function-local static inside libspdlog, whose guard ThreadSanitizer
// cannot see (the library is not instrumented): a process's first two log lines, written by
// two threads at once, looked like a race on it. Creating it under a guard of our own orders
// every later use after its construction.
void EnsureRegistry() {
  static const bool created = spdlog::default_logger_raw() != nullptr;
  (void)created;
}

}  // namespace

void SetUpLogging(const std::string& level, const std::string& file) {
  EnsureRegistry();
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (!file.empty()) {
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, false));
  }
  auto logger = std::make_shared<spdlog::logger>("garde", sinks.begin(), sinks.end());
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

LogLine::LogLine(spdlog::level::level_enum level, std::string_view msg)
    : level_(level), enabled_((EnsureRegistry(), spdlog::should_log(level))) {
  if (!enabled_) return;
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[64];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  w_.BeginObject().String("ts", ts).String("level", spdlog::level::to_string_view(level).data());
  w_.String("msg", msg);
}

LogLine::~LogLine() {
  if (!enabled_) return;
  w_.EndObject();
  spdlog::log(level_, "{}", w_.str());
}

LogLine& LogLine::Str(std::string_view key, std::string_view value) {
  if (enabled_) w_.String(key, value);
  return *this;
}
LogLine& LogLine::Int(std::string_view key, int64_t value) {
  if (enabled_) w_.Int(key, value);
  return *this;
}
LogLine& LogLine::Num(std::string_view key, double value) {
  if (enabled_) w_.Number(key, value);
  return *this;
}
LogLine& LogLine::Raw(std::string_view key, std::string_view json) {
  if (enabled_) w_.Raw(key, json);
  return *this;
}

}  // namespace garde

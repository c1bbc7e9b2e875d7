// Time as whole seconds since the Unix epoch, and its RFC 3339 / ISO 8601 text forms.
//
//   int64_t t = SystemClock().Now();
//   std::string s = FormatRfc3339(t);            // "2026-11-22T10:00:00Z"
//   std::optional<int64_t> back = ParseRfc3339(s);
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace garde {

// A source of "now"; tests substitute a fixed or stepping clock.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t Now() const override;
};

// The system clock moved by an offset that only tests change (consent expiry, deadlines,
// retention are driven through it; a deployment's offset is 0 unless a test moves it).
class ShiftedClock final : public Clock {
 public:
  int64_t Now() const override { return system_.Now() + offset_.load(std::memory_order_relaxed); }
  void Advance(int64_t seconds) { offset_.fetch_add(seconds, std::memory_order_relaxed); }

 private:
  SystemClock system_;
  std::atomic<int64_t> offset_{0};
};

std::string FormatRfc3339(int64_t unix_seconds);
// Accepts "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)"; returns UTC seconds.
std::optional<int64_t> ParseRfc3339(std::string_view text);

struct CivilDate {
  int year = 0;
  int month = 0;
  int day = 0;
};
// Accepts "YYYY-MM-DD" and the basic form "YYYYMMDD"; rejects impossible dates.
std::optional<CivilDate> ParseIsoDate(std::string_view text);
std::string FormatIsoDate(const CivilDate& d);
bool IsLeapYear(int year);
int DaysInMonth(int year, int month);
int64_t DaysFromCivil(const CivilDate& d);
CivilDate CivilFromDays(int64_t days);
// Adds an ISO 8601 duration such as P24M, P1Y, P30D, PT12H to a time (calendar months and
// years, days clamped to the month's length); nullopt if invalid.
std::optional<int64_t> AddIsoDuration(int64_t t, const std::string& duration);

}  // namespace garde

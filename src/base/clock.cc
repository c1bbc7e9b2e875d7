#include "garde/base/clock.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace garde {

int64_t SystemClock::Now() const {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && IsLeapYear(y)) return 29;
  return kDays[m - 1];
}

// Howard Hinnant's days_from_civil.
int64_t DaysFromCivil(const CivilDate& d) {
  int64_t y = d.year - (d.month <= 2 ? 1 : 0);
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t mp = (d.month + 9) % 12;
  const int64_t doy = (153 * mp + 2) / 5 + d.day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

CivilDate CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  return CivilDate{static_cast<int>(y), static_cast<int>(m), static_cast<int>(d)};
}

std::string FormatRfc3339(int64_t t) {
  int64_t days = t / 86400;
  int64_t rem = t % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  const CivilDate d = CivilFromDays(days);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", d.year, d.month, d.day,
                static_cast<int>(rem / 3600), static_cast<int>(rem / 60 % 60),
                static_cast<int>(rem % 60));
  return buf;
}

namespace {

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::optional<CivilDate> ParseIsoDate(std::string_view s) {
  CivilDate d;
  bool ok = false;
  if (s.size() == 10 && s[4] == '-' && s[7] == '-') {
    ok = Digits(s, 0, 4, &d.year) && Digits(s, 5, 2, &d.month) && Digits(s, 8, 2, &d.day);
  } else if (s.size() == 8) {
    ok = Digits(s, 0, 4, &d.year) && Digits(s, 4, 2, &d.month) && Digits(s, 6, 2, &d.day);
  }
  if (!ok || d.month < 1 || d.month > 12 || d.day < 1 || d.day > DaysInMonth(d.year, d.month)) {
    return std::nullopt;
  }
  return d;
}

std::string FormatIsoDate(const CivilDate& d) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", d.year, d.month, d.day);
  return buf;
}

std::optional<int64_t> ParseRfc3339(std::string_view s) {
  if (s.size() < 20 || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  auto date = ParseIsoDate(s.substr(0, 10));
  int hh, mm, ss;
  if (!date || !Digits(s, 11, 2, &hh) || !Digits(s, 14, 2, &mm) || !Digits(s, 17, 2, &ss) ||
      hh > 23 || mm > 59 || ss > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  int64_t offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (pos + 6 != s.size() || s[pos + 3] != ':' || !Digits(s, pos + 1, 2, &oh) ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  return DaysFromCivil(*date) * 86400 + hh * 3600 + mm * 60 + (ss == 60 ? 59 : ss) - offset;
}

std::optional<int64_t> AddIsoDuration(int64_t t, const std::string& d) {
  if (d.size() < 3 || d[0] != 'P') return std::nullopt;
  int64_t years = 0, months = 0, days = 0, seconds = 0;
  bool in_time = false;
  int64_t num = -1;
  for (size_t i = 1; i < d.size(); ++i) {
    const char c = d[i];
    if (c == 'T') {
      if (in_time || num != -1) return std::nullopt;
      in_time = true;
      continue;
    }
    if (c >= '0' && c <= '9') {
      num = (num < 0 ? 0 : num) * 10 + (c - '0');
      if (num > 100000) return std::nullopt;
      continue;
    }
    if (num < 0) return std::nullopt;
    if (!in_time && c == 'Y')
      years += num;
    else if (!in_time && c == 'M')
      months += num;
    else if (!in_time && c == 'W')
      days += num * 7;
    else if (!in_time && c == 'D')
      days += num;
    else if (in_time && c == 'H')
      seconds += num * 3600;
    else if (in_time && c == 'M')
      seconds += num * 60;
    else if (in_time && c == 'S')
      seconds += num;
    else
      return std::nullopt;
    num = -1;
  }
  if (num != -1) return std::nullopt;
  // Calendar arithmetic: add months, clamping the day to the target month's length.
  int64_t day_index = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  const int64_t secs = t - day_index * 86400;
  CivilDate c = CivilFromDays(day_index);
  int64_t m = c.month - 1 + months + years * 12;
  c.year += static_cast<int>(m >= 0 ? m / 12 : (m - 11) / 12);
  c.month = static_cast<int>(((m % 12) + 12) % 12 + 1);
  c.day = std::min(c.day, DaysInMonth(c.year, c.month));
  return (DaysFromCivil(c) + days) * 86400 + secs + seconds;
}

}  // namespace garde

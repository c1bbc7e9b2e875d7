// The keep policy of backups against a reference written the other way round: instead of
// walking periods from the newest, each backup asks whether it is the newest of its period and
// how many periods with a backup are newer than its own.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>

#include "garde/app/backups.h"
#include "garde/base/clock.h"

namespace garde {
namespace {

struct Period {
  // "2026-12-02", "2026-W49" (ISO week, by its Thursday), "2026-12".
  static std::string Day(int64_t t) { return FormatRfc3339(t).substr(0, 10); }
  static std::string Month(int64_t t) { return FormatRfc3339(t).substr(0, 7); }
  static std::string Week(int64_t t) {
    const int64_t day = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    const int64_t weekday = ((day + 3) % 7 + 7) % 7;  // Monday = 0 (1970-01-01 a Thursday)
    const int64_t thursday = day - weekday + 3;
    const CivilDate c = CivilFromDays(thursday);
    const int64_t jan1 = DaysFromCivil({c.year, 1, 1});
    return std::to_string(c.year) + "-W" + std::to_string((thursday - jan1) / 7 + 1);
  }
};

std::set<size_t> Reference(const std::vector<int64_t>& t, const KeepPolicy& p) {
  // Newer: a later time, or the same time and a larger index (the rule SelectKept documents).
  auto newer = [&](size_t a, size_t b) { return t[a] != t[b] ? t[a] > t[b] : a > b; };
  std::set<size_t> kept;
  for (size_t i = 0; i < t.size(); ++i) {
    size_t rank = 0;
    for (size_t j = 0; j < t.size(); ++j) rank += newer(j, i) ? 1u : 0u;
    if (rank < static_cast<size_t>(std::max(p.last, 0))) kept.insert(i);
    auto by = [&](int count, std::string (*period)(int64_t)) {
      bool newest_of_period = true;
      std::set<std::string> newer_periods;
      for (size_t j = 0; j < t.size(); ++j) {
        if (!newer(j, i)) continue;
        if (period(t[j]) == period(t[i]))
          newest_of_period = false;
        else
          newer_periods.insert(period(t[j]));
      }
      // Periods are ordered like time, so the periods of newer backups are the newer periods.
      if (newest_of_period && static_cast<int>(newer_periods.size()) < count) kept.insert(i);
    };
    by(p.daily, &Period::Day);
    by(p.weekly, &Period::Week);
    by(p.monthly, &Period::Month);
  }
  return kept;
}

TEST(BackupKeep, MatchesTheReferenceOnRandomHistories) {
  std::mt19937_64 rng(20261202);
  const int64_t start = *ParseRfc3339("2025-12-20T00:00:00Z");
  for (int round = 0; round < 3000; ++round) {
    std::uniform_int_distribution<int> n_dist(0, 40), k_dist(0, 6);
    // Spread over hours to a year, with duplicates now and then.
    const int64_t span = std::vector<int64_t>{3600, 86400 * 3, 86400 * 40,
                                              86400 * 400}[static_cast<size_t>(round % 4)];
    std::uniform_int_distribution<int64_t> t_dist(0, span);
    std::vector<int64_t> created(static_cast<size_t>(n_dist(rng)));
    for (auto& c : created) c = start + t_dist(rng);
    if (created.size() > 2 && round % 5 == 0) created[1] = created[0];
    const KeepPolicy policy{std::max(1, k_dist(rng)), k_dist(rng), k_dist(rng), k_dist(rng)};
    const auto got = SelectKept(created, policy);
    EXPECT_EQ(std::set<size_t>(got.begin(), got.end()), Reference(created, policy))
        << "round " << round << " last " << policy.last << " daily " << policy.daily << " weekly "
        << policy.weekly << " monthly " << policy.monthly;
    if (HasFailure()) return;
  }
}

TEST(BackupKeep, AWeekOfDailyBackupsKeepsTheNewestNAndOnePerPeriod) {
  std::vector<int64_t> created;
  const int64_t monday = *ParseRfc3339("2026-11-30T02:00:00Z");
  for (int d = -40; d <= 6; ++d) created.push_back(monday + d * 86400);
  const auto kept = SelectKept(created, {2, 3, 2, 2});
  // Newest two (Sun 6 Dec, Sat 5 Dec), days: + Fri 4 Dec; weeks: the newest of this week
  // (already) and of last week (Sun 29 Nov); months: December's (already) and November's
  // newest (Mon 30 Nov).
  std::set<std::string> days;
  for (size_t i : kept) days.insert(FormatRfc3339(created[i]).substr(0, 10));
  EXPECT_EQ(days, (std::set<std::string>{"2026-12-06", "2026-12-05", "2026-12-04", "2026-11-29",
                                         "2026-11-30"}));
}

}  // namespace
}  // namespace garde

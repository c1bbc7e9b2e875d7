// Charts and periods shared by the reports (/v1/segments, /v1/reports) and the console:
// accessible SVG (a title and a text description for screen readers), month ends.
//
//   std::string svg = ConsentRateSvg("Consent to newsletter", rates, "c1-");
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "garde/domain/consent_ledger.h"

namespace garde {

inline constexpr int64_t kSmallestReportGroup = 5;  // k-anonymity floor of every reported group
inline constexpr int kPlotW = 480, kPlotH = 320, kPlotPad = 48;

// `id` prefixes the title's and description's element ids: charts inlined in one page need
// distinct ones.
std::string SvgOpen(int width, int height, const std::string& title, const std::string& description,
                    const std::string& id = "");
// The frame of a kPlotW × kPlotH plot.
std::string PlotFrame();
// The ends of the last `months` calendar months before now's month, then now.
std::vector<int64_t> MonthEnds(int64_t now, int months);
// The share of customers allowed at each instant, as a line (groups under the floor left out).
std::string ConsentRateSvg(const std::string& title,
                           const std::vector<ConsentLedger::RateAt>& rates,
                           const std::string& id = "");

}  // namespace garde

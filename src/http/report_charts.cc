// Charts and periods shared by the reports (segment_routes.cc) and the console.
#include "garde/http/report_charts.h"

#include <chrono>
#include <cstdio>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"

namespace garde {

// The opening of an accessible chart (its title and a text description for screen readers)
// and, for the 480×320 plots, their frame.
std::string SvgOpen(int width, int height, const std::string& title, const std::string& description,
                    const std::string& id) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + std::to_string(width) + " " +
         std::to_string(height) + "\" role=\"img\" aria-labelledby=\"" + id + "t " + id +
         "d\"><title id=\"" + id + "t\">" + HtmlEscape(title) + "</title><desc id=\"" + id +
         "d\">" + HtmlEscape(description) + "</desc>";
}
std::string PlotFrame() {
  char buf[128];
  std::snprintf(
      buf, sizeof buf,
      "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#555\"/>",
      kPlotPad, kPlotPad, kPlotW - 2 * kPlotPad, kPlotH - 2 * kPlotPad);
  return buf;
}

// The ends of the last `months` calendar months before now's month, then now: 31 January,
// 28 February, ..., now.
std::vector<int64_t> MonthEnds(int64_t now, int months) {
  using namespace std::chrono;
  const year_month_day today{floor<days>(sys_seconds{seconds{now}})};
  std::vector<int64_t> out;
  for (int back = months - 1; back >= 1; --back) {
    const year_month first =
        year_month{today.year(), today.month()} - std::chrono::months{back - 1};
    const sys_seconds start{sys_days{first / 1}};  // the first of the next month, 00:00
    out.push_back(start.time_since_epoch().count() - 1);
  }
  out.push_back(now);
  return out;
}

std::string ConsentRateSvg(const std::string& title,
                           const std::vector<ConsentLedger::RateAt>& rates, const std::string& id) {
  constexpr int kW = kPlotW, kH = kPlotH, kPad = kPlotPad;
  const size_t n = rates.size();
  auto px = [&](size_t i) {
    return kPad +
           (n <= 1 ? 0.0 : static_cast<double>(i) / static_cast<double>(n - 1)) * (kW - 2 * kPad);
  };
  auto py = [&](double rate) { return kH - kPad - rate * (kH - 2 * kPad); };
  char buf[160];
  std::string points, described;
  for (size_t i = 0; i < n; ++i) {
    if (rates[i].customers < kSmallestReportGroup) continue;
    const double rate =
        static_cast<double>(rates[i].allowed) / static_cast<double>(rates[i].customers);
    std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(i), py(rate));
    points += buf;
    std::snprintf(buf, sizeof buf, "%s: %.1f %% of %lld. ",
                  FormatRfc3339(rates[i].at).substr(0, 10).c_str(), 100 * rate,
                  static_cast<long long>(rates[i].customers));
    described += buf;
  }
  if (described.empty()) described = "Too few customers to give a rate.";
  std::string svg = SvgOpen(kW, kH, title, described, id) + PlotFrame();
  svg +=
      "<polyline fill=\"none\" stroke=\"#1d4ed8\" stroke-width=\"2\" points=\"" + points + "\"/>";
  std::snprintf(buf, sizeof buf,
                "<text x=\"%d\" y=\"%d\" font-size=\"12\">month</text>"
                "<text x=\"4\" y=\"%d\" font-size=\"12\">%% allowed</text>",
                kW / 2 - 20, kH - 12, kPad - 8);
  svg += buf;
  return svg + "</svg>\n";
}

}  // namespace garde

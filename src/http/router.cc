#include "garde/http/router.h"

namespace garde {
namespace {

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool MatchSegment(const std::string& pattern, const std::string& segment,
                  std::map<std::string, std::string>* params) {
  if (pattern.empty() || pattern[0] != '{') return pattern == segment;
  const size_t close = pattern.find('}');
  const std::string name = pattern.substr(1, close - 1);
  const std::string suffix = pattern.substr(close + 1);
  if (segment.size() <= suffix.size() ||
      segment.compare(segment.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  const std::string value = segment.substr(0, segment.size() - suffix.size());
  if (value.find(':') != std::string::npos) return false;
  (*params)[name] = value;
  return true;
}

}  // namespace

void Router::Add(std::string method, std::string pattern, Handler handler, Pace pace) {
  Route r{std::move(method), pattern, std::move(handler), Split(pattern), pace};
  routes_.push_back(std::move(r));
}

const Route* Router::Match(const std::string& method, const std::string& path,
                           std::map<std::string, std::string>* params,
                           std::vector<std::string>* allowed) const {
  if (path.empty() || path[0] != '/') return nullptr;
  const std::vector<std::string> segments = Split(path);
  for (const auto& r : routes_) {
    if (r.segments.size() != segments.size()) continue;
    std::map<std::string, std::string> found;
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      ok = MatchSegment(r.segments[i], segments[i], &found);
    }
    if (!ok) continue;
    if (r.method == method || (method == "HEAD" && r.method == "GET")) {
      *params = std::move(found);
      return &r;
    }
    allowed->push_back(r.method);
  }
  return nullptr;
}

Pace Router::PaceOf(const std::string& method, const std::string& path) const {
  std::map<std::string, std::string> params;
  std::vector<std::string> allowed;
  const Route* r = Match(method, path, &params, &allowed);
  return r != nullptr ? r->pace : Pace::kMayWait;
}

}  // namespace garde

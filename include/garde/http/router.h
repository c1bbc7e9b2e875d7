// Maps method + path to a handler. Patterns are literal segments and {name} parameters; a
// segment may end in a literal ":verb" suffix (Google AIP custom methods), e.g.
// "/v1/subjects:batch" or "/v1/requests/{id}:verify".
//
//   router.Add("GET", "/v1/subjects/{id}", GetSubject);
//   const Route* r = router.Match("GET", path, &params, &allowed);
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "garde/http/exchange.h"

namespace garde {

using Handler = std::function<Status(Exchange&)>;

// How long a route may take: kAtOnce routes answer from memory in microseconds and run on
// the I/O thread that read the request; the others run on a worker, since they may wait
// (a commit, a scan, a file). kPostsItsWrite routes prepare one write in microseconds and are
// answered once it is durable: on the I/O thread where the store posts its writes
// (Store::PostsWrites), no thread waiting meanwhile; on a worker where it does not.
enum class Pace { kMayWait, kAtOnce, kPostsItsWrite };

struct Route {
  std::string method;
  std::string pattern;
  Handler handler;
  std::vector<std::string> segments;
  Pace pace = Pace::kMayWait;
};

class Router {
 public:
  void Add(std::string method, std::string pattern, Handler handler, Pace pace = Pace::kMayWait);
  // The route for method+path, filling params; nullptr when none. When the path matches other
  // methods only, `allowed` lists them (for 405 and the Allow header).
  const Route* Match(const std::string& method, const std::string& path,
                     std::map<std::string, std::string>* params,
                     std::vector<std::string>* allowed) const;
  // The pace of the route for method+path (still percent-encoded); kMayWait when none matches.
  Pace PaceOf(const std::string& method, const std::string& path) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace garde

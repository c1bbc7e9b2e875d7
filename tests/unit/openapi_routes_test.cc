// The OpenAPI document (GET /openapi.json) and the router agree: every route the service
// answers is described, with its method, and every described operation is a route.
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <set>

#include "deployment_fixture.h"
#include "garde/http/http_service.h"
#include "garde/http/openapi.h"

namespace garde {
namespace {

// "/v1/subjects/{id}/contacts/{person}" -> "/v1/subjects/{}/contacts/{}"
std::string Shape(const std::string& pattern) {
  std::string out;
  bool inside = false;
  for (char c : pattern) {
    if (c == '{') {
      inside = true;
      out += "{}";
    } else if (c == '}') {
      inside = false;
    } else if (!inside) {
      out += c;
    }
  }
  return out;
}

class OpenApiRoutes : public DeploymentFixture {};

TEST_F(OpenApiRoutes, TheDocumentDescribesExactlyTheRoutes) {
  Router router;
  AddAllRoutes(router, *d_);
  std::set<std::string> routes;
  for (const auto& r : router.routes()) routes.insert(r.method + " " + Shape(r.pattern));
  ASSERT_GT(routes.size(), 40u);

  Poco::JSON::Parser parser;
  auto doc = parser.parse(std::string(OpenApiDocument())).extract<Poco::JSON::Object::Ptr>();
  ASSERT_EQ(doc->getValue<std::string>("openapi").rfind("3.1", 0), 0u);
  std::set<std::string> described;
  auto paths = doc->getObject("paths");
  for (const auto& [path, item] : *paths) {
    auto ops = item.extract<Poco::JSON::Object::Ptr>();
    for (const char* method : {"get", "put", "post", "patch", "delete", "head", "options"}) {
      if (!ops->has(method)) continue;
      std::string upper(method);
      for (auto& c : upper) c = static_cast<char>(std::toupper(c));
      described.insert(upper + " " + Shape(path));
    }
  }
  std::set<std::string> undocumented, unrouted;
  for (const auto& r : routes) {
    if (described.count(r) == 0) undocumented.insert(r);
  }
  for (const auto& o : described) {
    if (routes.count(o) == 0) unrouted.insert(o);
  }
  EXPECT_TRUE(undocumented.empty())
      << "routes missing from the OpenAPI document: " << ::testing::PrintToString(undocumented);
  EXPECT_TRUE(unrouted.empty()) << "documented operations no route answers: "
                                << ::testing::PrintToString(unrouted);
}

}  // namespace
}  // namespace garde

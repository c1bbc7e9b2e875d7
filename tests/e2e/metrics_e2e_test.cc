// GET /metrics on the admin listener, read by the official Prometheus client's parser: the
// counts of what the test did, and the service's state.
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "garde_process.h"

namespace garde::testing {
namespace {

// The admin listener's port, from the line `garde serve` prints for it.
int AdminPort(const GardeProcess& g) {
  const std::string marker = "garde admin (metrics) on http://127.0.0.1:";
  const std::string logs = g.Logs();
  const size_t at = logs.find(marker);
  return at == std::string::npos ? 0 : std::stoi(logs.substr(at + marker.size()));
}

HttpReply AdminRequest(int port, const std::string& method, const std::string& path) {
  Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
  Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
  session.sendRequest(req);
  Poco::Net::HTTPResponse resp;
  std::istream& is = session.receiveResponse(resp);
  HttpReply reply;
  reply.status = resp.getStatus();
  reply.content_type = resp.getContentType();
  Poco::StreamCopier::copyToString(is, reply.body);
  return reply;
}

// The samples the parser read, as "name{labels}" -> value, and the families' types.
struct Scrape {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  double operator[](const std::string& sample) const {
    auto it = samples.find(sample);
    return it == samples.end() ? -1 : it->second;
  }
};

Scrape ScrapeAndParse(const GardeProcess& g, int port) {
  HttpReply r = AdminRequest(port, "GET", "/metrics");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type.rfind("text/plain; version=0.0.4", 0), 0u) << r.content_type;
  const std::string file = g.data_dir() + "-logs/metrics.txt";
  std::ofstream(file, std::ios::trunc) << r.body;
  RunResult parsed = RunProgram({"/usr/bin/python3", GARDE_METRICS_PARSER, file});
  EXPECT_EQ(parsed.exit_code, 0) << parsed.err << r.body;
  Scrape out;
  std::istringstream lines(parsed.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# family ", 0) == 0) {
      std::istringstream words(line.substr(9));
      std::string name, type;
      words >> name >> type;
      out.types[name] = type;
      continue;
    }
    const size_t space = line.rfind(' ');
    out.samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

TEST(MetricsE2E, TheAdminListenerCountsWhatWasDoneAndTellsTheServicesState) {
  GardeProcess g;
  const std::string op = g.CreateKey("crm", "operator", {"customer_management"});
  g.Start({"--admin-listen", "127.0.0.1:0"});
  const int port = AdminPort(g);
  ASSERT_GT(port, 0) << g.Logs();
  ASSERT_NE(port, g.port());

  // Metrics are on the admin listener only; it serves nothing else.
  EXPECT_EQ(g.Get("/metrics", "").status, 404);
  EXPECT_EQ(AdminRequest(port, "GET", "/v1/purposes").status, 404);
  EXPECT_EQ(AdminRequest(port, "POST", "/metrics").status, 405);

  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    HttpReply r = g.Post(
        "/v1/subjects",
        R"({"kind":"person","fields":{"email":"m)" + std::to_string(i) + R"(@example.org"}})", op);
    ASSERT_EQ(r.status, 201) << r.body;
    ids.push_back(JsonString(r.body, "id"));
  }
  EXPECT_EQ(
      g.Post("/v1/subjects", R"({"kind":"person","fields":{"email":"m0@example.org"}})", op).status,
      409);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(g.Get("/v1/subjects/" + ids[0], "").status, 401);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(g.Get("/v1/subjects/" + ids[i], op, "customer_management").status, 200);
  }
  EXPECT_EQ(g.Get("/no/such/path", op).status, 404);
  EXPECT_EQ(g.Post("/v1/requests", R"({"type":"access","subject":")" + ids[1] + R"("})", op).status,
            201);

  Scrape m = ScrapeAndParse(g, port);
  EXPECT_EQ(m.types["garde_http_requests"], "counter");
  EXPECT_EQ(m.types["garde_http_request_duration_seconds"], "histogram");
  EXPECT_EQ(m[R"(garde_http_requests_total{method="POST",route="/v1/subjects",status="201"})"], 5);
  EXPECT_EQ(m[R"(garde_http_requests_total{method="POST",route="/v1/subjects",status="409"})"], 1);
  EXPECT_EQ(m[R"(garde_http_requests_total{method="GET",route="/v1/subjects/{id}",status="401"})"],
            2);
  EXPECT_EQ(m[R"(garde_http_requests_total{method="GET",route="/v1/subjects/{id}",status="200"})"],
            3);
  EXPECT_EQ(m[R"m(garde_http_requests_total{method="",route="(none)",status="404"})m"], 2);
  EXPECT_EQ(m[R"(garde_http_requests_total{method="POST",route="/v1/requests",status="201"})"], 1);
  // The histogram agrees with the counter, and its buckets only grow.
  const std::string create = R"(method="POST",route="/v1/subjects")";
  EXPECT_EQ(m["garde_http_request_duration_seconds_count{" + create + "}"], 6);
  EXPECT_EQ(m["garde_http_request_duration_seconds_bucket{le=\"+Inf\"," + create + "}"], 6);
  EXPECT_GT(m["garde_http_request_duration_seconds_sum{" + create + "}"], 0);
  double previous = 0;
  for (const char* le : {"0.0001", "0.001", "0.01", "0.1", "1", "5", "+Inf"}) {
    const double n = m["garde_http_request_duration_seconds_bucket{le=\"" + std::string(le) +
                       "\"," + create + "}"];
    EXPECT_GE(n, previous) << le;
    previous = n;
  }
  // The state.
  EXPECT_EQ(m["garde_state_up{}"], 1);
  EXPECT_EQ(m["garde_dsr_requests_open{}"], 1);
  EXPECT_EQ(m["garde_dsr_requests_overdue{}"], 0);
  EXPECT_EQ(m[R"(garde_subjects_by_root_key{version="1"})"], 5);
  EXPECT_EQ(m["garde_root_key_version{}"], 1);
  EXPECT_EQ(m["garde_master_key_version{}"], 1);
  EXPECT_EQ(m["garde_lookup_digests_stale{}"], 0);
  EXPECT_EQ(m[R"(garde_webhook_deliveries{status="pending"})"], 0);
  if (!g.postgres()) {  // the SQLite files' sizes; a PostgreSQL deployment has none
    EXPECT_GT(m[R"(garde_database_bytes{file="garde.db"})"], 0);
  }
  // Memory: the process, and the views kept in it — the three records read are kept, no
  // audience was built.
  EXPECT_GT(m["process_resident_memory_bytes{}"], 1 << 20);
  EXPECT_GE(m[R"(garde_kept_subjects{cache="sealed_records"})"], 3);
  EXPECT_LE(m[R"(garde_kept_subjects{cache="sealed_records"})"], 5);
  EXPECT_GE(m[R"(garde_kept_subjects{cache="consent_facts"})"], 0);
  EXPECT_EQ(m[R"(garde_kept_subjects{cache="audience_index"})"], 0);
  // Three records of five fields or so: more than their ids, less than a few KiB each.
  EXPECT_GT(m[R"(garde_kept_bytes{cache="sealed_records"})"], 3 * 100);
  EXPECT_LT(m[R"(garde_kept_bytes{cache="sealed_records"})"], 5 * 4096);
  EXPECT_GE(m[R"(garde_kept_bytes{cache="consent_facts"})"], 0);
  EXPECT_EQ(m["garde_audience_index_bytes{}"], 0);
  if (!g.postgres()) {  // the connections' page caches: pages were read and written
    EXPECT_GT(m[R"(garde_sqlite_cache_bytes{file="garde.db"})"], 4096);
    EXPECT_GT(m[R"(garde_sqlite_cache_bytes{file="audit.db"})"], 4096);
  }
  EXPECT_GE(m["garde_audit_log_entries{}"], 0);
  EXPECT_GE(m["garde_audit_intake_backlog{}"], 0);
  EXPECT_EQ(m[R"(garde_build_info{version="0.1.0"})"], 1);
  // No id or value is a label.
  for (const auto& [sample, value] : m.samples) {
    for (const auto& id : ids) EXPECT_EQ(sample.find(id), std::string::npos) << sample;
    EXPECT_EQ(sample.find("example.org"), std::string::npos) << sample;
  }

  // A month and a half later the access request is overdue.
  ASSERT_EQ(g.Stop(), 0);
  g.Start({"--admin-listen", "127.0.0.1:0", "--test-clock-offset", std::to_string(45 * 86400)});
  const int later = AdminPort(g);
  ASSERT_GT(later, 0);
  m = ScrapeAndParse(g, later);
  EXPECT_EQ(m["garde_dsr_requests_overdue{}"], 1);
  EXPECT_GT(m["garde_audit_checkpoint_age_seconds{}"], 30 * 86400);
}

}  // namespace
}  // namespace garde::testing

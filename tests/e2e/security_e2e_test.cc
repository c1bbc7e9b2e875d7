// Bad input, plaintext leaks, tampered ciphertext, slow clients: the promises of SPEC §3.
#include <Poco/Net/SocketStream.h>
#include <Poco/Net/StreamSocket.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "garde_process.h"
#include "test_database.h"

namespace garde::testing {
namespace {

bool IsProblem(const HttpReply& r) {
  return r.content_type == "application/problem+json" &&
         r.body.find("\"type\":\"https://") != std::string::npos &&
         r.body.find("\"title\":") != std::string::npos &&
         r.body.find("\"status\":" + std::to_string(r.status)) != std::string::npos &&
         r.body.find("\"detail\":") != std::string::npos;
}

class SecurityE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management"});
    marketing_key_ = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
    auditor_key_ = g_.CreateKey("audit", "auditor", {});
  }
  GardeProcess g_;
  std::string operator_key_, marketing_key_, auditor_key_;
};

struct BadCase {
  const char* name;
  const char* method;
  const char* path;
  std::string body;
  std::string content_type;
  std::string key;  // "op", "mkt", "aud", "bad", "" (none)
  std::string purpose;
  int expected;
};

TEST_F(SecurityE2E, BadInputTableAnswers4xxProblemsAndWritesNothing) {
  g_.Start({"--max-body-bytes", "4096"});
  const std::string ok_body = R"({"kind":"person","fields":{"email":"x@example.org"}})";
  const BadCase cases[] = {
      {"malformed JSON", "POST", "/v1/subjects", "{\"kind\": \"person\",", "application/json", "op",
       "", 400},
      {"not an object", "POST", "/v1/subjects", "[1,2]", "application/json", "op", "", 422},
      {"invalid UTF-8", "POST", "/v1/subjects",
       "{\"kind\":\"person\",\"fields\":{\"first_name\":\"\xC3\x28\"}}", "application/json", "op",
       "", 400},
      {"wrong type for kind", "POST", "/v1/subjects", R"({"kind":7})", "application/json", "op", "",
       422},
      {"wrong type for number", "POST", "/v1/subjects",
       R"({"kind":"person","fields":{"household_size":"three"}})", "application/json", "op", "",
       422},
      {"object as field value", "POST", "/v1/subjects",
       R"({"kind":"person","fields":{"email":{"a":1}}})", "application/json", "op", "", 422},
      {"unknown field", "POST", "/v1/subjects", R"({"kind":"person","fields":{"shoe_size":42}})",
       "application/json", "op", "", 422},
      {"unknown member", "POST", "/v1/subjects", R"({"kind":"person","vip":true})",
       "application/json", "op", "", 422},
      {"unknown kind", "POST", "/v1/subjects", R"({"kind":"robot"})", "application/json", "op", "",
       422},
      {"field of the other kind", "POST", "/v1/subjects",
       R"({"kind":"person","fields":{"legal_name":"ACME"}})", "application/json", "op", "", 422},
      {"deeply nested", "POST", "/v1/subjects", std::string(200, '[') + std::string(200, ']'),
       "application/json", "op", "", 400},
      {"oversized body", "POST", "/v1/subjects",
       "{\"kind\":\"person\",\"source\":\"" + std::string(5000, 'a') + "\"}", "application/json",
       "op", "", 413},
      {"wrong content type", "POST", "/v1/subjects", ok_body, "text/plain", "op", "", 415},
      {"form content type", "POST", "/v1/subjects", "kind=person",
       "application/x-www-form-urlencoded", "op", "", 415},
      {"missing key", "POST", "/v1/subjects", ok_body, "application/json", "", "", 401},
      {"invalid key", "POST", "/v1/subjects", ok_body, "application/json", "bad", "", 401},
      {"wrong role (marketing writes)", "POST", "/v1/subjects", ok_body, "application/json", "mkt",
       "", 403},
      {"wrong role (auditor reads)", "GET", "/v1/subjects/sub_0000000000000000000000000a", "", "",
       "aud", "customer_management", 403},
      {"unbound purpose", "GET", "/v1/subjects/sub_0000000000000000000000000a", "", "", "op",
       "marketing_email", 403},
      {"unknown purpose", "GET", "/v1/subjects/sub_0000000000000000000000000a", "", "", "op",
       "no_such_activity", 403},
      {"unknown subject", "GET", "/v1/subjects/sub_0000000000000000000000000a", "", "", "op",
       "customer_management", 404},
      {"malformed subject id", "GET", "/v1/subjects/..%2E..%2Eetc", "", "", "op",
       "customer_management", 404},
      {"encoded slash in a path", "GET", "/v1/subjects/..%2F..%2Fetc", "", "", "op",
       "customer_management", 400},
      {"unknown path", "GET", "/v1/nothing", "", "", "op", "", 404},
      {"wrong method", "DELETE", "/v1/subjects", "", "", "op", "", 405},
      {"batch not an array", "POST", "/v1/subjects:batch", R"({"kind":"person"})",
       "application/json", "op", "", 422},
      {"batch malformed ndjson", "POST", "/v1/subjects:batch", "{\"kind\":\n",
       "application/x-ndjson", "op", "", 400},
      {"patch unknown member", "PATCH", "/v1/subjects/sub_0000000000000000000000000a",
       R"({"kind":"organization"})", "application/json", "op", "", 422},
      {"search by unindexed field", "POST", "/v1/subjects:search", R"({"city":"Paris"})",
       "application/json", "op", "customer_management", 422},
  };
  for (const auto& c : cases) {
    std::map<std::string, std::string> headers;
    if (c.key == "op") headers["Authorization"] = "Bearer " + operator_key_;
    if (c.key == "mkt") headers["Authorization"] = "Bearer " + marketing_key_;
    if (c.key == "aud") headers["Authorization"] = "Bearer " + auditor_key_;
    if (c.key == "bad") headers["Authorization"] = "Bearer gk_" + std::string(43, 'A');
    if (!c.purpose.empty()) headers["X-Purpose"] = c.purpose;
    HttpReply r = g_.Request(c.method, c.path, c.body, headers, c.content_type);
    EXPECT_EQ(r.status, c.expected) << c.name << ": " << r.body;
    EXPECT_TRUE(IsProblem(r)) << c.name << ": " << r.content_type << " " << r.body;
  }
  EXPECT_EQ(g_.CountRows("subjects"), 0);
  EXPECT_EQ(g_.CountRows("subject_fields"), 0);
  EXPECT_EQ(g_.CountRows("blind_index"), 0);
  // The service is still healthy after all of it.
  EXPECT_EQ(g_.Get("/healthz", "").status, 200);
}

TEST_F(SecurityE2E, ValidationListsEveryFailingField) {
  g_.Start();
  HttpReply r = g_.Post(
      "/v1/subjects",
      R"({"kind":"person","vip":1,"fields":{"email":"nope","birth_date":"1990-02-30","gender":"Q"}})",
      operator_key_);
  ASSERT_EQ(r.status, 422);
  for (const char* f :
       {"\"vip\"", "\"fields.email\"", "\"fields.birth_date\"", "\"fields.gender\""}) {
    EXPECT_NE(r.body.find(f), std::string::npos) << f << " in " << r.body;
  }
}

TEST_F(SecurityE2E, PlantedPersonalDataNeverReachesDatabaseWalOrLogs) {
  g_.Start();
  const std::string canaries[] = {
      "zqxcanary.email@example.org", "Zqxcanaryfirst", "Zqxcanarylast", "+33699887766",
      "Zqxcanarystreet 12",          "ZQXEXT-991"};
  HttpReply r =
      g_.Post("/v1/subjects",
              R"({"kind":"person","source":"web_form","external_id":"ZQXEXT-991","fields":{
                             "email":"zqxcanary.email@example.org","first_name":"Zqxcanaryfirst",
                             "last_name":"Zqxcanarylast","phone":"+33 6 99 88 77 66",
                             "street":"Zqxcanarystreet 12"}})",
              operator_key_);
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string id = JsonString(r.body, "id");
  // Reads, look-ups, rectifications and refusals that carry the values.
  EXPECT_EQ(g_.Get("/v1/subjects/" + id, operator_key_, "customer_management").status, 200);
  EXPECT_EQ(g_.Post("/v1/subjects:search", R"({"email":"zqxcanary.email@example.org"})",
                    operator_key_, "customer_management")
                .status,
            200);
  EXPECT_EQ(g_.Patch("/v1/subjects/" + id, R"({"fields":{"city":"Zqxcanarycity"}})", operator_key_)
                .status,
            200);
  EXPECT_EQ(g_.Post("/v1/subjects",
                    R"({"kind":"person","fields":{"email":"zqxcanary.email@example.org"}})",
                    operator_key_)
                .status,
            409);
  r = g_.Post(
      "/v1/subjects",
      R"({"kind":"person","fields":{"email":"Zqxcanarybad-email","phone":"Zqxcanaryphone"}})",
      operator_key_);
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.body.find("Zqxcanary"), std::string::npos) << "error message echoes a value";
  EXPECT_EQ(g_.Post("/v1/subjects:batch",
                    R"([{"kind":"person","fields":{"email":"zqxcanary.batch@example.org"}}])",
                    operator_key_)
                .status,
            200);

  // On PostgreSQL, the server's files: its tables, its WAL and its log.
  const std::string server = g_.postgres() ? TestPostgresHost() : "";
  auto scan = [&](const std::string& where) {
    // Every file of the data directory (databases, WALs, read journals), and the log file.
    std::vector<std::string> files = {g_.log_path()};
    for (const auto& f : std::filesystem::directory_iterator(g_.data_dir())) {
      files.push_back(f.path().string());
    }
    if (server.empty()) {
      for (const std::string& must : {g_.db_path(), g_.audit_db_path()}) {
        EXPECT_NE(std::find(files.begin(), files.end(), must), files.end()) << must;
      }
    } else {
      size_t wal = 0;
      for (const auto& f : std::filesystem::recursive_directory_iterator(server)) {
        if (!f.is_regular_file()) continue;
        files.push_back(f.path().string());
        if (f.path().string().find("/pg_wal/") != std::string::npos) ++wal;
      }
      EXPECT_GT(wal, 0u) << "the server's WAL really is scanned";
    }
    for (const auto& f : files) {
      const std::string content = ReadFile(f);
      for (const auto& c : canaries) {
        EXPECT_EQ(content.find(c), std::string::npos) << where << ": " << c << " found in " << f;
      }
      EXPECT_EQ(content.find("Zqxcanarycity"), std::string::npos) << where << " " << f;
      EXPECT_EQ(content.find("zqxcanary"), std::string::npos) << where << " " << f;
      EXPECT_EQ(content.find("Zqxcanary"), std::string::npos) << where << " " << f;
    }
  };
  if (server.empty()) {
    ASSERT_FALSE(ReadFile(g_.db_path() + "-wal").empty());  // the WAL really is scanned
  }
  scan("while running");
  EXPECT_EQ(g_.Stop(), 0);
  scan("after shutdown");
  EXPECT_NE(g_.Logs().find("\"msg\":\"request\""), std::string::npos);  // logs were written
  // The audit log records every one of those calls, without the values.
  RunResult exported =
      RunGarde({"audit", "export", "--data-dir", g_.data_dir(), "--policies", g_.policies()});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_NE(exported.out.find("\"action\":\"subject.create\""), std::string::npos);
  EXPECT_NE(exported.out.find("\"action\":\"subject.search\""), std::string::npos);
  EXPECT_EQ(exported.out.find("zqxcanary"), std::string::npos);
  EXPECT_EQ(exported.out.find("Zqxcanary"), std::string::npos);
  EXPECT_EQ(exported.out.find("ZQXEXT"), std::string::npos);
}

// The records are tampered with at rest, the server stopped: a running server may hold a
// record's genuine copy for reads (warmed up from disk in the background at start, and kept
// current through the vault's own change log, which a write from outside does not touch).
TEST_F(SecurityE2E, CiphertextSwappedBetweenRecordsReadsAsDamagedNot5xx) {
  g_.Start();
  auto create = [&](const std::string& email) {
    HttpReply r =
        g_.Post("/v1/subjects",
                R"({"kind":"person","fields":{"email":")" + email + R"(","first_name":"Someone"}})",
                operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonString(r.body, "id");
  };
  const std::string a = create("a@example.org");
  const std::string b = create("b@example.org");
  const std::string c = create("c@example.org");
  ASSERT_EQ(g_.Stop(), 0);
  const std::string a_email =
      "(SELECT box FROM subject_fields WHERE subject_id = '" + a + "' AND field = 'email')";
  // Another subject's email box onto b's email.
  g_.Sql("UPDATE subject_fields SET box = " + a_email + " WHERE subject_id = '" + b +
         "' AND field = 'email'");
  // The same subject's email box onto its first_name.
  g_.Sql("UPDATE subject_fields SET box = " + a_email + " WHERE subject_id = '" + a +
         "' AND field = 'first_name'");
  // A wrapped data key zeroed.
  g_.Sql("UPDATE subjects SET wrapped_dek = zeroblob(length(wrapped_dek)) WHERE id = '" + c + "'");
  g_.Start();
  for (const std::string& id : {b, a, c}) {
    HttpReply r = g_.Get("/v1/subjects/" + id, operator_key_, "customer_management");
    EXPECT_EQ(r.status, 409) << r.body;
    EXPECT_TRUE(IsProblem(r));
    EXPECT_NE(r.body.find("record-damaged"), std::string::npos);
    EXPECT_EQ(r.body.find("@example.org"), std::string::npos);
  }
  EXPECT_EQ(g_.Get("/healthz", "").status, 200);
}

TEST_F(SecurityE2E, SlowAndIdleConnectionsTimeOut) {
  g_.Start({"--request-timeout", "1", "--keep-alive-timeout", "1"});
  Poco::Net::StreamSocket s(
      Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(g_.port())));
  const std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\n";  // headers never end
  s.sendBytes(partial.data(), static_cast<int>(partial.size()));
  const auto start = std::chrono::steady_clock::now();
  // RFC 9110 §15.5.9: answered 408 (a problem), then closed.
  const std::string reply = ReadUntilClosed(s, std::chrono::seconds(5));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(reply.rfind("HTTP/1.1 408", 0), 0u) << reply;
  EXPECT_NE(reply.find("\"status\":408"), std::string::npos) << reply;
  EXPECT_NE(reply.find("Connection: Close"), std::string::npos) << reply;
  EXPECT_LT(waited, std::chrono::seconds(4));
  // An idle keep-alive connection (no request started) is closed without an answer.
  Poco::Net::StreamSocket idle(
      Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(g_.port())));
  EXPECT_EQ(ReadUntilClosed(idle, std::chrono::seconds(5)), "");
  EXPECT_EQ(g_.Get("/healthz", "").status, 200);
}

TEST_F(SecurityE2E, RequestThatIsNotHttpGetsProblemJson) {
  g_.Start();
  Poco::Net::StreamSocket s(
      Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(g_.port())));
  const std::string garbage = "\x01\x02 NOT-HTTP \xff\r\n\r\n";
  s.sendBytes(garbage.data(), static_cast<int>(garbage.size()));
  const std::string reply = ReadUntilClosed(s, std::chrono::seconds(5));
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  EXPECT_NE(reply.find("Content-Type: application/problem+json"), std::string::npos) << reply;
  EXPECT_NE(reply.find("\"status\":400"), std::string::npos) << reply;
  EXPECT_NE(reply.find("Connection: Close"), std::string::npos) << reply;
  // Like every other answer: a request id (also in the body), nosniff, no-store.
  const size_t id_at = reply.find("X-Request-Id: req_");
  ASSERT_NE(id_at, std::string::npos) << reply;
  const std::string id = reply.substr(id_at + 14, reply.find("\r\n", id_at) - id_at - 14);
  EXPECT_NE(reply.find("\"" + id + "\""), std::string::npos) << reply;
  EXPECT_NE(reply.find("X-Content-Type-Options: nosniff"), std::string::npos) << reply;
  EXPECT_NE(reply.find("Cache-Control: no-store"), std::string::npos) << reply;
  EXPECT_EQ(g_.Get("/healthz", "").status, 200);
}

TEST_F(SecurityE2E, StopClosesIdleKeepAliveConnectionsPromptly) {
  g_.Start({"--keep-alive-timeout", "60"});
  Poco::Net::StreamSocket s(
      Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(g_.port())));
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  s.sendBytes(request.data(), static_cast<int>(request.size()));
  char buf[1024];
  s.setReceiveTimeout(Poco::Timespan(5, 0));
  const int n = s.receiveBytes(buf, sizeof buf);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 200", 0), 0u);
  // The connection now idles in keep-alive for up to 60 s; stopping must not wait for it.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(g_.Stop(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(ReadUntilClosed(s, std::chrono::seconds(2)), "");
}

}  // namespace
}  // namespace garde::testing

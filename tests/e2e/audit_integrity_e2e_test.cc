// No request, whatever its bytes, may break, skip or pollute the audit log (SPEC §2.6): hostile
// and random values in every path parameter, query parameter and header that reaches an entry,
// then `garde audit verify` passes, every request is on record, and audit.db holds none of the
// values sent.
#include <gtest/gtest.h>

#include <random>

#include "garde_process.h"

namespace garde::testing {
namespace {

std::string PercentEncode(const std::string& value) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    out += '%';
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// RFC 9110 §5.5: visible characters, spaces and obs-text inside, none at either end. Other
// values are refused by the HTTP parser before any route (400), so they never reach the log.
bool IsFieldValue(const std::string& value) {
  if (value.empty() || value.front() == ' ' || value.front() == '\t' || value.back() == ' ' ||
      value.back() == '\t') {
    return false;
  }
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

class AuditIntegrity : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management"});
    marketing_key_ = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
    g_.Start();
  }
  int64_t Entries() {
    HttpReply cp = g_.Get("/v1/audit/checkpoint", auditor_key());
    EXPECT_EQ(cp.status, 200) << cp.body;
    const std::string key = "\"size\":";
    const size_t at = cp.body.find(key);
    return at == std::string::npos ? -1 : std::stoll(cp.body.substr(at + key.size()));
  }
  const std::string& auditor_key() {
    if (auditor_key_.empty()) auditor_key_ = g_.CreateKey("authority", "auditor", {});
    return auditor_key_;
  }
  // Each of these requests reaches a route that records exactly one entry.
  void SendHostile(const std::string& value) {
    const std::string enc = PercentEncode(value);
    HttpReply r = g_.Get("/v1/subjects/" + enc, operator_key_, "customer_management");
    if (value.find('/') != std::string::npos) {
      EXPECT_EQ(r.status, 400) << "an encoded slash is refused before routing: " << r.body;
    } else if (value.find(':') != std::string::npos) {
      EXPECT_EQ(r.status, 404) << "a colon names a custom method no route has: " << r.body;
    } else {
      EXPECT_EQ(r.status, 404) << r.body;
      ++expected_;
    }
    if (value.size() >= 6) {
      EXPECT_EQ(r.body.find(value), std::string::npos) << "the answer echoes the value";
    }
    // A hostile X-Purpose can only be sent when it is a valid header value.
    if (IsFieldValue(value)) {
      // The value also as the request id a client may send.
      r = g_.Request("GET", "/v1/subjects/sub_00000000000000000000000000", "",
                     {{"Authorization", "Bearer " + marketing_key_},
                      {"X-Purpose", value},
                      {"X-Request-Id", value}},
                     "");
      EXPECT_EQ(r.status, 403) << r.body;
      // (A well-formed request id is echoed by design: letters, digits and -_.: only.)
      const bool request_id = value.find_first_not_of(
                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                                  "qrstuvwxyz0123456789-_.:") == std::string::npos;
      if (value.size() >= 6 && !request_id) {
        EXPECT_EQ(r.body.find(value), std::string::npos) << r.body;
      }
      ++expected_;
    }
    r = g_.Get("/v1/consent/check?subject=" + enc + "&purpose=marketing.email&channel=email",
               marketing_key_);
    EXPECT_EQ(r.status, 404) << r.body;
    ++expected_;
  }
  RunResult Verify() {
    return RunGarde({"audit", "verify", "--data-dir", g_.data_dir(), "--policies", g_.policies()});
  }
  GardeProcess g_;
  std::string operator_key_, marketing_key_, auditor_key_;
  int64_t expected_ = 0;
};

TEST_F(AuditIntegrity, AQuoteBackslashTabOrEmailInAnIdNeitherBreaksNorEscapesTheLog) {
  const std::vector<std::string> hostile = {"x\"y",
                                            "x\\y",
                                            "a\tb",
                                            "a\nb",
                                            std::string("nul\0byte", 8),
                                            "\x01\x1f\x7f",
                                            "someone@example.org",
                                            "\xff\xfe not utf-8",
                                            "sub_\"",
                                            "\"subject\":null",
                                            std::string(3000, 'A'),
                                            "canary-7d1f0c9e@example.org"};
  auditor_key();
  const int64_t before = Entries();
  for (const auto& v : hostile) SendHostile(v);
  const int64_t after = Entries();
  EXPECT_EQ(after - before, expected_) << "every request that reached a route is on record";
  ASSERT_EQ(g_.Stop(), 0);

  RunResult v = Verify();
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  const std::string db = ReadFile(g_.audit_db_path());
  EXPECT_EQ(db.find("someone@example.org"), std::string::npos);
  EXPECT_EQ(db.find("canary-7d1f0c9e"), std::string::npos);
  EXPECT_EQ(db.find("not utf-8"), std::string::npos);
  // The attempts are on record as malformed values, with a keyed digest to correlate them.
  auto rows =
      g_.AuditSql("SELECT COUNT(*) FROM audit_log WHERE entry LIKE '%\"subject\":\"malformed:%'");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_GE(std::stoll(rows[0][0]), static_cast<long long>(hostile.size()));
  rows =
      g_.AuditSql("SELECT COUNT(*) FROM audit_log WHERE entry LIKE '%\"activity\":\"undeclared:%'");
  EXPECT_GE(std::stoll(rows[0][0]), 5);
}

TEST_F(AuditIntegrity, RandomBytesInEveryAuditedValueKeepTheLogVerifiable) {
  std::mt19937 rng(20261202);
  auditor_key();
  const int64_t before = Entries();
  for (int i = 0; i < 150; ++i) {
    std::string value(1 + rng() % 40, '\0');
    for (auto& c : value) c = static_cast<char>(rng() % 256);
    // Mostly printable, sometimes anything: both shapes reach different checks.
    if (i % 3 != 0) {
      for (auto& c : value) c = static_cast<char>(0x20 + static_cast<unsigned char>(c) % 95);
    }
    SendHostile(value);
  }
  EXPECT_EQ(Entries() - before, expected_);
  // The independent verifier, from the documented formats only, agrees ...
  RunResult py = RunProgram({"/usr/bin/python3", GARDE_VERIFIER,
                             "http://127.0.0.1:" + std::to_string(g_.port()), auditor_key()});
  EXPECT_EQ(py.exit_code, 0) << py.out << py.err;
  EXPECT_NE(py.out.find("root, signature and actor counts OK"), std::string::npos)
      << py.out << py.err;
  // ... and so does the offline check of the whole log.
  ASSERT_EQ(g_.Stop(), 0);
  RunResult v = Verify();
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

}  // namespace
}  // namespace garde::testing

// SPEC §2.2 over HTTP: random sequences of consent events sent to the real binary the way
// customers, operators and officers send them (the consent API, the preference centre's forms,
// unsubscribe-all, one-click unsubscribe, a GPC visit, DSR objection, restriction and its
// lifting, erasure), after each of which every consent check the API answers must equal the
// reference model's (tests/model/consent_reference.h). Expiry by the clock is driven in the
// domain run (tests/unit/consent_model_test.cc), where the clock can move.
//
// GARDE_MODEL_HTTP_SEQUENCES sets how many sequences run (300 by default).
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <map>
#include <random>

#include "consent_reference.h"
#include "garde/base/clock.h"
#include "garde_process.h"

namespace garde::testing {
namespace {

using namespace garde::model;  // NOLINT: the model's vocabulary reads best unqualified here

class ConsentModelHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_key_ = g_.CreateKey("crm", "operator", {"customer_management"});
    marketing_key_ = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
    officer_key_ = g_.CreateKey("dpo", "officer", {});
    g_.Start();
  }

  struct Customer {
    std::string id, preferences, unsubscribe_all;
    std::map<std::string, std::string> unsubscribe;  // purpose -> one-click path
    std::string restriction;                         // its completed restriction request
  };

  std::string PathOf(const std::string& body, const std::string& prefix) {
    const size_t at = body.find(prefix);
    return at == std::string::npos ? "" : body.substr(at, body.find('"', at) - at);
  }

  Customer NewCustomer() {
    const std::string n = std::to_string(++customers_);
    HttpReply r =
        g_.Post("/v1/subjects",
                R"({"kind":"person","fields":{"email":"m)" + n + R"(@example.org","phone":"+3361)" +
                    std::string(7 - n.size(), '0') + n + "\"}}",
                operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    Customer c;
    c.id = JsonString(r.body, "id");
    HttpReply links = g_.Post("/v1/subjects/" + c.id + "/links",
                              R"({"uses":["preferences","unsubscribe"]})", operator_key_);
    EXPECT_EQ(links.status, 201) << links.body;
    c.preferences = PathOf(links.body, "/p/");
    c.unsubscribe_all = PathOf(links.body, "/u/");
    return c;
  }

  std::string OneClickPath(Customer& c, const std::string& scope) {
    if (scope == "*") return c.unsubscribe_all;
    auto& path = c.unsubscribe[scope];
    if (path.empty()) {
      HttpReply links =
          g_.Post("/v1/subjects/" + c.id + "/links",
                  R"({"uses":["unsubscribe"],"purpose":")" + scope + "\"}", operator_key_);
      EXPECT_EQ(links.status, 201) << links.body;
      path = PathOf(links.body, "/u/");
    }
    return path;
  }

  // Opens, verifies and completes a request; "" or what went wrong.
  std::string RunDsr(Customer& c, const std::string& type, const std::string& purposes) {
    HttpReply opened = g_.Post(
        "/v1/requests", R"({"type":")" + type + R"(","subject":")" + c.id + "\"" + purposes + "}",
        operator_key_);
    if (opened.status != 201) return "open: " + opened.body;
    const std::string rid = JsonString(opened.body, "id");
    HttpReply verified =
        g_.Post("/v1/requests/" + rid + ":verify", R"({"note":"checked"})", officer_key_);
    if (verified.status != 200) return "verify: " + verified.body;
    HttpReply done = g_.Post("/v1/requests/" + rid + ":complete", "{}", officer_key_);
    if (done.status != 200) return "complete: " + done.body;
    if (type == "restriction") c.restriction = rid;
    return "";
  }

  HttpReply Form(const std::string& path, const std::string& body, bool gpc) {
    std::map<std::string, std::string> headers;
    if (gpc) headers["Sec-GPC"] = "1";
    return g_.Request("POST", path, body, headers, "application/x-www-form-urlencoded");
  }

  // Applies `op` over HTTP and to the model; "" or what the service should not have answered.
  std::string Apply(Customer& c, const Op& op, Model& m) {
    // The service's clock, not time(2): Linux serves time() from the coarse clock, which can
    // still read the previous second just after the service stamped an event with the next
    // one, and the model would then order a later choice before it.
    const int64_t now = SystemClock().Now();
    switch (op.kind) {
      case OpKind::kApi: {
        std::string body =
            R"({"purpose":")" + op.purpose + R"(","event":")" + op.event + R"(","method":"api")";
        if (!op.channel.empty()) body += R"(,"channel":")" + op.channel + "\"";
        if (op.event == "granted") body += R"(,"notice_version":")" + notice_[op.purpose] + "\"";
        if (op.backdate_s != 0) {
          // At least an hour back, so that a second's rounding never reorders events.
          body += R"(,"collected_at":")" + FormatRfc3339(now - 3600 - op.backdate_s) + "\"";
        }
        HttpReply r = g_.Post("/v1/subjects/" + c.id + "/consents", body + "}", operator_key_);
        if (r.status != 201) return Describe(op) + ": " + r.body;
        auto at = ParseRfc3339(JsonString(r.body, "at"));
        if (!at) return "no time in " + r.body;
        m.Add(PurposeNamed(op.purpose), op.channel, op.event, *at);
        return "";
      }
      case OpKind::kPreferenceForm:
      case OpKind::kUnsubscribeAll:
      case OpKind::kGpcVisit: {
        HttpReply r;
        if (op.kind == OpKind::kGpcVisit) {
          r = g_.Request("GET", c.preferences, "", {{"Sec-GPC", "1"}}, "");
        } else if (op.kind == OpKind::kUnsubscribeAll) {
          r = Form(c.preferences, "form=unsubscribe_all", op.gpc);
        } else {
          std::string body = "form=preferences";
          for (const auto& w : op.wanted) body += "&purpose=" + w;
          r = Form(c.preferences, body, op.gpc);
        }
        if (r.status != 200) return Describe(op) + ": " + std::to_string(r.status) + " " + r.body;
        const bool gpc = op.gpc || op.kind == OpKind::kGpcVisit;
        for (const auto& p : Catalogue()) {
          if (!p.marketing) continue;
          const bool open = m.Open(p, now);
          bool want = op.kind == OpKind::kGpcVisit
                          ? open
                          : std::find(op.wanted.begin(), op.wanted.end(), p.id) != op.wanted.end();
          if (gpc && p.gpc) want = false;
          if (want != open) m.Add(p, "", want ? "granted" : "withdrawn", now);
        }
        return "";
      }
      case OpKind::kOneClick: {
        HttpReply r = Form(OneClickPath(c, op.purpose), "List-Unsubscribe=One-Click", false);
        if (r.status != 200) return Describe(op) + ": " + r.body;
        for (const auto& p : Catalogue()) {
          if (p.marketing && (op.purpose == "*" || op.purpose == p.id) && m.Open(p, now)) {
            m.Add(p, "", "withdrawn", now);
          }
        }
        return "";
      }
      case OpKind::kDsrObjection: {
        const std::string purposes =
            op.purpose.empty() ? "" : R"(,"purposes":[")" + op.purpose + "\"]";
        std::string failed = RunDsr(c, "objection", purposes);
        if (!failed.empty()) return Describe(op) + ": " + failed;
        for (const auto& p : Catalogue()) {
          if (op.purpose.empty() ? p.marketing : p.id == op.purpose) m.Add(p, "", "objected", now);
        }
        return "";
      }
      case OpKind::kDsrRestriction: {
        std::string failed = RunDsr(c, "restriction", "");
        if (!failed.empty()) return Describe(op) + ": " + failed;
        m.status = "restricted";
        return "";
      }
      case OpKind::kLift: {
        // Art. 18(3): the first call tells the subject, the next one lifts.
        for (int call = 0; call < 2; ++call) {
          HttpReply r = g_.Post("/v1/requests/" + c.restriction + ":lift", "{}", officer_key_);
          if (r.status != 200) return Describe(op) + ": " + r.body;
        }
        m.status = "active";
        return "";
      }
      case OpKind::kErasure: {
        std::string failed = RunDsr(c, "erasure", "");
        if (!failed.empty()) return Describe(op) + ": " + failed;
        m.status = "erased";
        m.events.clear();
        return "";
      }
      case OpKind::kAdvanceClock: return "";  // not in HTTP sequences
    }
    return "";
  }

  // The first consent check that differs from the model, or "".
  std::string Compare(const Customer& c, const Model& m) {
    const int64_t now = SystemClock().Now();
    for (const auto& p : Catalogue()) {
      std::vector<std::string> channels{""};
      channels.insert(channels.end(), p.channels.begin(), p.channels.end());
      for (const auto& channel : channels) {
        HttpReply r =
            g_.Get("/v1/consent/check?subject=" + c.id + "&purpose=" + p.id + "&channel=" + channel,
                   marketing_key_);
        if (r.status != 200) return p.id + "/" + channel + ": " + r.body;
        const bool allowed = r.body.find("\"allowed\":true") != std::string::npos;
        const std::string reason = JsonString(r.body, "reason");
        const Model::Decision want = m.Decide(p, channel, now);
        if (allowed != want.allowed || reason != want.reason) {
          return p.id + " channel='" + channel + "': Garde " + (allowed ? "allows" : "denies") +
                 " (" + reason + "), the model " + (want.allowed ? "allows" : "denies") + " (" +
                 want.reason + ")";
        }
      }
    }
    return "";
  }

  std::string Run(const std::vector<Op>& ops) {
    Customer c = NewCustomer();
    Model m;
    for (size_t i = 0; i < ops.size(); ++i) {
      std::string diff = Apply(c, ops[i], m);
      if (diff.empty()) diff = Compare(c, m);
      if (!diff.empty()) return "after step " + std::to_string(i + 1) + ": " + diff;
    }
    return "";
  }

  GardeProcess g_;
  std::string operator_key_, marketing_key_, officer_key_;
  std::map<std::string, std::string> notice_ = {{"marketing.email", "2026-01"},
                                                {"marketing.sms", "2026-01"},
                                                {"profiling", "2026-01"},
                                                {"partners.sharing", "2026-01"}};
  int customers_ = 0;
};

TEST_F(ConsentModelHttp, EveryEntryPointAnswersAsTheModelOverRandomSequences) {
  // The notice versions the service publishes for consent-based purposes.
  HttpReply purposes = g_.Get("/v1/purposes", marketing_key_);
  ASSERT_EQ(purposes.status, 200) << purposes.body;
  for (const auto& [purpose, version] : notice_) {
    ASSERT_NE(purposes.body.find("\"" + version + "\""), std::string::npos) << purpose;
  }
  const char* env = std::getenv("GARDE_MODEL_HTTP_SEQUENCES");
  const int sequences = env != nullptr ? std::atoi(env) : 300;
  std::mt19937_64 rng(0x68747470ULL);
  for (int n = 0; n < sequences; ++n) {
    const std::vector<Op> ops = RandomSequence(rng, /*with_clock=*/false);
    const std::string diff = Run(ops);
    if (diff.empty()) continue;
    std::string steps;
    for (size_t i = 0; i < ops.size(); ++i) {
      steps += "  " + std::to_string(i + 1) + ". " + Describe(ops[i]) + "\n";
    }
    FAIL() << "sequence " << n << " differs from the model:\n" << steps << "  then " << diff;
  }
}

}  // namespace
}  // namespace garde::testing

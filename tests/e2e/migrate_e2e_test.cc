// `garde migrate`: a SQLite deployment moved into PostgreSQL, then served from there with every
// answer as before. Registered only beside a PostgreSQL server, outside cluster mode (ctest
// e2e_postgresql).
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>

#include <cstdlib>
#include <future>
#include <map>

#include "garde_process.h"
#include "test_database.h"

namespace garde::testing {
namespace {

class MigrateE2E : public ::testing::Test {
 protected:
  std::string Create(const std::string& email) {
    HttpReply r =
        g_.Post("/v1/subjects",
                R"({"kind":"person","fields":{"email":")" + email + R"(","first_name":"Ana"}})",
                operator_key_);
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonString(r.body, "id");
  }
  void Consent(const std::string& id, const std::string& event) {
    ASSERT_EQ(g_.Post("/v1/subjects/" + id + "/consents",
                      R"({"purpose":"marketing.email","event":")" + event +
                          R"(","notice_version":"2026-01","method":"web_form"})",
                      operator_key_)
                  .status,
              201);
  }
  // What a client sees of a subject: its record and the consent decision.
  std::string Seen(const std::string& id) {
    HttpReply read = g_.Get("/v1/subjects/" + id, operator_key_, "customer_management");
    HttpReply check =
        g_.Get("/v1/consent/check?subject=" + id + "&purpose=marketing.email&channel=email",
               marketing_key_);
    return std::to_string(read.status) + read.body + std::to_string(check.status) +
           JsonString(check.body, "reason");
  }
  RunResult Migrate(const std::string& uri) {
    return RunGarde({"migrate", "--from", g_.data_dir(), "--to", uri, "--policies", g_.policies()});
  }

  GardeProcess g_{GardeProcess::OnSqlite{}};
  std::string operator_key_ = g_.CreateKey("crm", "operator", {"customer_management"});
  std::string marketing_key_ = g_.CreateKey("campaigns", "marketing", {"marketing_email"});
};

class ADeploymentMovesWithEveryAnswerAndItsVerifiedLog : public MigrateE2E {
  void TestBody() override;
};

void ADeploymentMovesWithEveryAnswerAndItsVerifiedLog::TestBody() {
  g_.Start();
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(Create("move" + std::to_string(i) + "@example.org"));
  Consent(ids[0], "granted");
  Consent(ids[1], "granted");
  Consent(ids[1], "withdrawn");
  ASSERT_EQ(
      g_.Post("/v1/requests", R"({"type":"access","subject":")" + ids[2] + R"("})", operator_key_)
          .status,
      201);
  std::map<std::string, std::string> before;
  for (const auto& id : ids) before[id] = Seen(id);
  EXPECT_EQ(g_.Stop(), 0);

  std::string error;
  const std::string uri = CreateTestDatabase(&error, /*with_schema=*/false);
  ASSERT_FALSE(uri.empty()) << error;
  RunResult moved = Migrate(uri);
  ASSERT_EQ(moved.exit_code, 0) << moved.out << moved.err;
  EXPECT_NE(moved.out.find("subjects: 6 rows"), std::string::npos) << moved.out;
  EXPECT_NE(moved.out.find("counts and digests agree"), std::string::npos) << moved.out;
  EXPECT_NE(moved.out.find("audit log verified on PostgreSQL"), std::string::npos) << moved.out;
  // Into a database that holds a deployment: refused.
  RunResult again = Migrate(uri);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("already holds a deployment"), std::string::npos) << again.err;

  // The same data directory served from PostgreSQL: every answer as before.
  g_.UseDatabase(uri);
  ASSERT_TRUE(g_.postgres());
  // The change log's triggers, off during the copy, are on again.
  auto disabled = g_.Sql("SELECT COUNT(*) FROM pg_trigger WHERE tgenabled = 'D'");
  ASSERT_EQ(disabled.size(), 1u);
  EXPECT_EQ(disabled[0][0], "0");
  g_.Start();
  for (const auto& id : ids) EXPECT_EQ(Seen(id), before[id]) << id;
  // New writes go on from where SQLite left (ids, sequences, the log).
  const std::string added = Create("after@example.org");
  EXPECT_EQ(g_.Get("/v1/subjects/" + added, operator_key_, "customer_management").status, 200);
  EXPECT_EQ(g_.Post("/v1/subjects", R"({"kind":"person","fields":{"email":"move0@example.org"}})",
                    operator_key_)
                .status,
            409);  // the blind index came along
  EXPECT_EQ(g_.Stop(), 0);
  RunResult verified =
      RunGarde({"audit", "verify", "--data-dir", g_.data_dir(), "--policies", g_.policies()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

class ALogThatDoesNotVerifyIsNotCopied : public MigrateE2E {
  void TestBody() override;
};

void ALogThatDoesNotVerifyIsNotCopied::TestBody() {
  g_.Start();
  Create("tamper@example.org");
  EXPECT_EQ(g_.Stop(), 0);
  g_.AuditSql("UPDATE audit_log SET entry = replace(entry, 'subject.create', 'subject.delete')");
  std::string error;
  const std::string uri = CreateTestDatabase(&error, /*with_schema=*/false);
  ASSERT_FALSE(uri.empty()) << error;
  RunResult moved = Migrate(uri);
  EXPECT_EQ(moved.exit_code, 1) << moved.out << moved.err;
  EXPECT_NE(moved.out.find("FAILED verification"), std::string::npos) << moved.out;
  // Nothing reached the database: not even the schema was made.
  g_.UseDatabase(uri);
  auto tables = g_.Sql("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'");
  ASSERT_EQ(tables.size(), 1u);
  EXPECT_EQ(tables[0][0], "0");
}

class ACopyRefusedHalfwayLeavesNoDeployment : public MigrateE2E {
  void TestBody() override;
};

// Runs statements on the database of `uri` as its owner; false with the reason on failure.
bool OnDatabase(const std::string& uri, const std::string& sql, std::string* error) {
  PGconn* c = PQconnectdb(uri.c_str());
  PGresult* r = PQexec(c, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) *error = PQerrorMessage(c);
  PQclear(r);
  PQfinish(c);
  return ok;
}

// Plants in the database of `uri` a row trigger `name` (`when`, e.g. "BEFORE INSERT") on
// `table`, running the PL/pgSQL `body`, as soon as migrate creates that table (an event
// trigger named "plant" watches for it); false with the reason on failure.
bool PlantTrigger(const std::string& uri, const std::string& name, const std::string& when,
                  const std::string& table, const std::string& body, std::string* error) {
  return OnDatabase(uri,
                    "CREATE FUNCTION " + name + "() RETURNS trigger LANGUAGE plpgsql AS $$\n" +
                        body +
                        "\n$$;\n"
                        "CREATE FUNCTION plant() RETURNS event_trigger LANGUAGE plpgsql AS $$\n"
                        "BEGIN\n"
                        "  IF to_regclass('" +
                        table +
                        "') IS NOT NULL AND NOT EXISTS\n"
                        "      (SELECT 1 FROM pg_trigger WHERE tgname = '" +
                        name +
                        "') THEN\n"
                        "    CREATE TRIGGER " +
                        name + " " + when + " ON " + table +
                        "\n"
                        "      FOR EACH ROW EXECUTE FUNCTION " +
                        name +
                        "();\n"
                        "  END IF;\n"
                        "END $$;\n"
                        "CREATE EVENT TRIGGER plant ON ddl_command_end EXECUTE FUNCTION plant();",
                    error);
}

void ACopyRefusedHalfwayLeavesNoDeployment::TestBody() {
  g_.Start();
  for (int i = 0; i < 6; ++i) Create("half" + std::to_string(i) + "@example.org");
  EXPECT_EQ(g_.Stop(), 0);
  std::string error;
  const std::string uri = CreateTestDatabase(&error, /*with_schema=*/false);
  ASSERT_FALSE(uri.empty()) << error;
  // The copy's inserts are pipelined: the database refuses the third row of the audit log's
  // actor index (planted, as soon as migrate creates that table), rows after it are skipped.
  ASSERT_TRUE(PlantTrigger(uri, "refuse_third", "BEFORE INSERT", "audit_by_actor", R"(
    BEGIN
      IF (SELECT COUNT(*) FROM audit_by_actor) >= 2 THEN RAISE EXCEPTION 'planted refusal'; END IF;
      RETURN NEW;
    END)",
                           &error))
      << error;
  RunResult refused = Migrate(uri);
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE((refused.out + refused.err).find("audit_by_actor: planted refusal"), std::string::npos)
      << refused.out << refused.err;
  // Nothing of the copy was kept: the same database takes the whole copy once the trigger goes.
  ASSERT_TRUE(OnDatabase(
      uri, "DROP EVENT TRIGGER plant; DROP TRIGGER refuse_third ON audit_by_actor", &error))
      << error;
  RunResult moved = Migrate(uri);
  ASSERT_EQ(moved.exit_code, 0) << moved.out << moved.err;
  EXPECT_NE(moved.out.find("subjects: 6 rows"), std::string::npos) << moved.out;
  EXPECT_NE(moved.out.find("counts and digests agree"), std::string::npos) << moved.out;
}

// The server process serving the copy dies without a word (kill -9, as the out-of-memory
// killer would) while the copy waits in a statement: migrate reports the lost connection and
// exits 1. It used to build its message from the server's, which such a death leaves null:
// a segmentation fault.
class ACopyWhoseServerProcessDiesFailsWithAMessage : public MigrateE2E {
  void TestBody() override;
};

// The pid of the server process of `uri`'s database that sleeps in pg_sleep, or 0.
int SleepingBackend(const std::string& uri) {
  PGconn* c = PQconnectdb(uri.c_str());
  PGresult* r = PQexec(c,
                       "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event = 'PgSleep'");
  const int pid = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                      ? std::atoi(PQgetvalue(r, 0, 0))
                      : 0;
  PQclear(r);
  PQfinish(c);
  return pid;
}

void ACopyWhoseServerProcessDiesFailsWithAMessage::TestBody() {
  g_.Start();
  Create("dies@example.org");
  EXPECT_EQ(g_.Stop(), 0);
  std::string error;
  const std::string uri = CreateTestDatabase(&error, /*with_schema=*/false);
  ASSERT_FALSE(uri.empty()) << error;
  // The copy's update of `shreds` (a statement of its own, not pipelined) sleeps.
  ASSERT_TRUE(PlantTrigger(uri, "sleep_long", "BEFORE UPDATE", "shreds",
                           "BEGIN PERFORM pg_sleep(60); RETURN NEW; END", &error))
      << error;
  auto copy = std::async(std::launch::async, [&] { return Migrate(uri); });
  int pid = 0;
  ASSERT_TRUE(
      WaitUntil([&] { return (pid = SleepingBackend(uri)) != 0; }, std::chrono::seconds(30)));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  RunResult died = copy.get();
  EXPECT_EQ(died.exit_code, 1) << died.out << died.err;
  EXPECT_NE(died.err.find("postgresql: "), std::string::npos) << died.out << died.err;
  // The server restarts by itself after the death of one of its processes (crash recovery):
  // the tests after this one find it up.
  EXPECT_TRUE(WaitUntil([&] { return !CreateTestDatabase(&error, /*with_schema=*/false).empty(); },
                        std::chrono::seconds(30)))
      << error;
}

template <typename Case>
void Register(const char* name) {
  ::testing::RegisterTest("MigrateE2E", name, nullptr, nullptr, __FILE__, __LINE__,
                          []() -> ::testing::Test* { return new Case; });
}

[[maybe_unused]] const bool kRegistered = [] {
  if (TestPostgresHost().empty() || ClusterMode()) return false;
  Register<ADeploymentMovesWithEveryAnswerAndItsVerifiedLog>(
      "ADeploymentMovesWithEveryAnswerAndItsVerifiedLog");
  Register<ALogThatDoesNotVerifyIsNotCopied>("ALogThatDoesNotVerifyIsNotCopied");
  Register<ACopyRefusedHalfwayLeavesNoDeployment>("ACopyRefusedHalfwayLeavesNoDeployment");
  Register<ACopyWhoseServerProcessDiesFailsWithAMessage>(
      "ACopyWhoseServerProcessDiesFailsWithAMessage");
  return true;
}();

}  // namespace
}  // namespace garde::testing

// Databases on the PostgreSQL server tests/postgres/with_postgres.sh started (its socket
// directory is in GARDE_TEST_POSTGRES): one fresh database per test, so tests stay apart.
#pragma once

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "garde/store/postgres_store.h"

namespace garde::testing {

// The server's socket directory, or "" when the tests run without one.
inline std::string TestPostgresHost() {
  const char* host = std::getenv("GARDE_TEST_POSTGRES");
  return host == nullptr ? "" : host;
}

inline std::string TestPostgresUri(const std::string& database) {
  return "postgresql:///" + database + "?host=" + TestPostgresHost() + "&user=garde";
}

namespace internal {

inline bool Exec(PGconn* conn, const std::string& sql, std::string* error) {
  PGresult* res = PQexec(conn, sql.c_str());
  const bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  if (!ok) *error = PQresultErrorMessage(res);
  PQclear(res);
  return ok;
}

// The schema every test's database starts from: Garde's migrations, applied once per test
// process by the store's own Open into a database that then serves as the template of the
// others. A test's database is a copy of its files; applying the migrations to each (as
// `garde init` would) made that command about 0.4 s slower in each test. Retried at the
// next call when the server could not make it (a fault test may have stopped it).
inline std::string MigratedTemplate(PGconn* admin, std::string* error) {
  static std::mutex mu;
  static std::string made;
  std::lock_guard<std::mutex> lock(mu);
  if (!made.empty()) return made;
  const std::string name = "garde_template_" + std::to_string(::getpid());
  if (!Exec(admin, "DROP DATABASE IF EXISTS " + name, error) ||
      !Exec(admin, "CREATE DATABASE " + name, error)) {
    return "";
  }
  {
    PostgresOptions options;
    options.conninfo = TestPostgresUri(name);
    options.max_connections = 1;
    options.follow_changes = false;
    auto store = PostgresStore::Open(options);
    if (!store.ok()) {
      *error = store.status().message();
      return "";
    }
  }  // closed: a template is copied only while no one is connected to it
  if (!Exec(admin, "ALTER DATABASE " + name + " WITH ALLOW_CONNECTIONS false", error)) return "";
  made = name;
  return made;
}

}  // namespace internal

// Creates a database holding Garde's schema and no data (or, `with_schema` false, nothing at
// all: what `garde migrate` is pointed at), and returns its URI; "" (with the reason in *error)
// on failure.
inline std::string CreateTestDatabase(std::string* error, bool with_schema = true) {
  static std::atomic<int> counter{0};
  const std::string name = "garde_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  PGconn* admin = PQconnectdb(TestPostgresUri("postgres").c_str());
  std::string made;
  if (PQstatus(admin) != CONNECTION_OK) {
    *error = PQerrorMessage(admin);
  } else {
    const std::string from = with_schema ? internal::MigratedTemplate(admin, error) : "template1";
    if (!from.empty() &&
        internal::Exec(admin, "CREATE DATABASE " + name + " TEMPLATE " + from, error)) {
      made = TestPostgresUri(name);
    }
  }
  PQfinish(admin);
  return made;
}

// Stops ("stop"), crashes ("crash": an immediate stop, recovered from the WAL at the next start)
// or starts ("start") the server: true when pg_ctl says it did (fault tests; the server is the
// one with_postgres.sh started).
inline bool ControlTestPostgres(const std::string& action) {
  const std::string script = TestPostgresHost() + "/" + action;
  return std::system(("sh " + script + " > /dev/null 2>&1").c_str()) == 0;
}

}  // namespace garde::testing

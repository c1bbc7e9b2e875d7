// Databases on the PostgreSQL server tests/postgres/with_postgres.sh started (its socket
// directory is in GARDE_TEST_POSTGRES): one fresh database per test, so tests stay apart.
#pragma once

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace garde::testing {

// The server's socket directory, or "" when the tests run without one.
inline std::string TestPostgresHost() {
  const char* host = std::getenv("GARDE_TEST_POSTGRES");
  return host == nullptr ? "" : host;
}

inline std::string TestPostgresUri(const std::string& database) {
  return "postgresql:///" + database + "?host=" + TestPostgresHost() + "&user=garde";
}

// Creates an empty database and returns its URI; "" (with the reason in *error) on failure.
inline std::string CreateTestDatabase(std::string* error) {
  static std::atomic<int> counter{0};
  const std::string name = "garde_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  PGconn* admin = PQconnectdb(TestPostgresUri("postgres").c_str());
  std::string made;
  if (PQstatus(admin) != CONNECTION_OK) {
    *error = PQerrorMessage(admin);
  } else {
    PGresult* res = PQexec(admin, ("CREATE DATABASE " + name).c_str());
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
      made = TestPostgresUri(name);
    } else {
      *error = PQresultErrorMessage(res);
    }
    PQclear(res);
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

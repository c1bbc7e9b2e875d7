// libpq directly against Poco::Data::PostgreSQL, on the statement shape PostgresStore runs most
// (a point look-up of a subject row by id) and on inserts in one transaction: the measurement
// behind the README's choice of client. Run beside a server:
//
//   tests/postgres/with_postgres.sh build/bench/garde_bench_pg_client
#include <Poco/Data/PostgreSQL/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <benchmark/benchmark.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <string>
#include <vector>

using namespace Poco::Data::Keywords;

namespace {

constexpr int kRows = 10000;

std::string Host() {
  const char* host = std::getenv("GARDE_TEST_POSTGRES");
  return host == nullptr ? "" : host;
}

std::string Id(int i) { return "sub_" + std::to_string(100000 + i); }

void Exec(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
    std::fprintf(stderr, "%s: %s", sql.c_str(), PQresultErrorMessage(r));
    std::exit(1);
  }
  PQclear(r);
}

PGconn* Connect() {
  PGconn* c = PQconnectdb(("host=" + Host() + " user=garde dbname=postgres").c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::fprintf(stderr, "run beside a server: tests/postgres/with_postgres.sh %s\n",
                 "build/bench/garde_bench_pg_client");
    std::exit(2);
  }
  return c;
}

void Seed() {
  PGconn* c = Connect();
  Exec(c, "DROP TABLE IF EXISTS bench_subjects");
  Exec(c,
       "CREATE TABLE bench_subjects(id TEXT COLLATE \"C\" PRIMARY KEY, status TEXT NOT NULL, "
       "wrapped_dek BYTEA NOT NULL)");
  Exec(c,
       "INSERT INTO bench_subjects SELECT 'sub_' || (100000 + g), 'active', "
       "decode(repeat('ab', 72), 'hex') FROM generate_series(0, " +
           std::to_string(kRows - 1) + ") g");
  PQfinish(c);
}

void BM_LibpqPreparedLookup(benchmark::State& state) {
  PGconn* c = Connect();
  PGresult* p = PQprepare(
      c, "get", "SELECT id, status, wrapped_dek FROM bench_subjects WHERE id = $1", 0, nullptr);
  PQclear(p);
  int i = 0;
  for (auto _ : state) {
    const std::string id = Id(i++ % kRows);
    const char* values[] = {id.c_str()};
    PGresult* r = PQexecPrepared(c, "get", 1, values, nullptr, nullptr, 1);
    benchmark::DoNotOptimize(PQgetlength(r, 0, 2));
    PQclear(r);
  }
  PQfinish(c);
}
BENCHMARK(BM_LibpqPreparedLookup)->UseRealTime();

void BM_PocoDataLookup(benchmark::State& state) {
  Poco::Data::PostgreSQL::Connector::registerConnector();
  Poco::Data::Session session("PostgreSQL", "host=" + Host() + " user=garde dbname=postgres");
  std::string id, got_id, status;
  Poco::Data::BLOB dek;
  Poco::Data::Statement select(session);
  select << "SELECT id, status, wrapped_dek FROM bench_subjects WHERE id = $1", into(got_id),
      into(status), into(dek), use(id);
  int i = 0;
  for (auto _ : state) {
    id = Id(i++ % kRows);
    select.execute();
    benchmark::DoNotOptimize(dek.size());
  }
}
BENCHMARK(BM_PocoDataLookup)->UseRealTime();

void BM_LibpqInsert1000(benchmark::State& state) {
  PGconn* c = Connect();
  Exec(c, "CREATE TEMP TABLE t(id TEXT, box BYTEA)");
  PGresult* p = PQprepare(c, "ins", "INSERT INTO t VALUES($1, $2)", 0, nullptr);
  PQclear(p);
  const std::string box(120, 'x');
  for (auto _ : state) {
    Exec(c, "BEGIN");
    for (int i = 0; i < 1000; ++i) {
      const std::string id = Id(i);
      const char* values[] = {id.c_str(), box.data()};
      const int lengths[] = {0, static_cast<int>(box.size())};
      const int formats[] = {0, 1};
      PGresult* r = PQexecPrepared(c, "ins", 2, values, lengths, formats, 1);
      PQclear(r);
    }
    Exec(c, "ROLLBACK");
  }
  PQfinish(c);
}
BENCHMARK(BM_LibpqInsert1000)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_PocoDataInsert1000(benchmark::State& state) {
  Poco::Data::PostgreSQL::Connector::registerConnector();
  Poco::Data::Session session("PostgreSQL", "host=" + Host() + " user=garde dbname=postgres");
  session << "CREATE TEMP TABLE t(id TEXT, box BYTEA)", now;
  std::string id;
  const std::vector<unsigned char> bytes(120, 'x');
  Poco::Data::BLOB box(bytes);
  Poco::Data::Statement insert(session);
  insert << "INSERT INTO t VALUES($1, $2)", use(id), use(box);
  for (auto _ : state) {
    session.begin();
    for (int i = 0; i < 1000; ++i) {
      id = Id(i);
      insert.execute();
    }
    session.rollback();
  }
}
BENCHMARK(BM_PocoDataInsert1000)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  Seed();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}

// End-to-end harness: runs the real `garde` binary in a fresh data directory and talks HTTP
// to it, as a client would.
//
//   GardeProcess g;                      // garde init in a temp dir; g.admin_key()
//   std::string key = g.CreateKey("crm", "operator", {"customer_management"});
//   g.Start();                           // garde serve --listen 127.0.0.1:0
//   HttpReply r = g.Post("/v1/subjects", body, key);
#pragma once

#include <Poco/JSON/Object.h>
#include <Poco/Net/StreamSocket.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace garde::testing {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  // The last non-empty line of stdout (where keys are printed).
  std::string LastLine() const;
};

struct HttpReply {
  int status = 0;
  std::string body;
  std::string content_type;
  std::map<std::string, std::string> headers;  // lower-case names
};

// Polls `done` every 50 ms for at most `limit`; whether it came.
bool WaitUntil(const std::function<bool()>& done, std::chrono::seconds limit);

// Runs any program (argv[0] is its path) to completion.
RunResult RunProgram(const std::vector<std::string>& argv);
// Runs `garde args...` to completion with extra environment variables.
RunResult RunGarde(const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env = {});
// Starts `garde args...` without waiting (stdout and stderr to the files given); its pid.
int SpawnGarde(const std::vector<std::string>& args, const std::string& out,
               const std::string& err);

// Starts any program (argv[0] is its path) without waiting; its pid. `pass_fd`, when given,
// is the child's fd 3.
int SpawnProgram(const std::vector<std::string>& argv, const std::string& out,
                 const std::string& err, int pass_fd = -1);

// One HTTP/1.1 request to 127.0.0.1:port (a garde, or a load balancer in front of several).
HttpReply HttpCall(int port, const std::string& method, const std::string& path,
                   const std::string& body, const std::map<std::string, std::string>& headers,
                   const std::string& content_type = "application/json");

// A socket listening on a free port of 127.0.0.1, held from its creation: handed to HAProxy
// rather than its number, which another process could bind in between.
class ReservedPort {
 public:
  ReservedPort();
  ~ReservedPort();
  ReservedPort(const ReservedPort&) = delete;
  ReservedPort& operator=(const ReservedPort&) = delete;
  int port() const { return port_; }
  int fd() const { return fd_; }

 private:
  int port_ = 0;
  int fd_ = -1;
};

// HAProxy (Debian's package) in front of the given ports, with a generated configuration:
// round robin, health checks on /readyz every 200 ms (a node is out after two failures), a
// refused connection retried on another node.
class LoadBalancer {
 public:
  // Listens on a free port of its choosing.
  explicit LoadBalancer(const std::vector<int>& ports);
  // Listens on `listener`, reserved by the caller (who has named its port to the nodes).
  LoadBalancer(const std::vector<int>& ports, std::unique_ptr<ReservedPort> listener);
  ~LoadBalancer();
  LoadBalancer(const LoadBalancer&) = delete;
  LoadBalancer& operator=(const LoadBalancer&) = delete;
  int port() const { return port_; }

 private:
  std::unique_ptr<ReservedPort> listener_;
  int port_;
  int pid_ = -1;
  std::string dir_;
};

// True when the suite runs each deployment as two nodes behind HAProxy (GARDE_E2E_NODES=2
// beside PostgreSQL, ctest e2e_cluster_*).
bool ClusterMode();

class GardeProcess {
 public:
  // Initialises a fresh data directory (garde init). `policies` defaults to the repo's.
  explicit GardeProcess(std::string policies = "");
  // The same with environment variables for every command it runs (e.g. a systemd
  // CREDENTIALS_DIRECTORY holding the keyring's passphrase).
  GardeProcess(std::string policies, std::map<std::string, std::string> env);
  // Another node of `first`'s deployment: its own data directory holding a copy of the
  // keyring, the same PostgreSQL database (under with_postgres.sh), no `garde init`.
  struct NodeOf {
    const GardeProcess& first;
  };
  explicit GardeProcess(NodeOf node);
  // A deployment on SQLite files even when the suite runs beside PostgreSQL (a migration's
  // source); UseDatabase moves its later commands onto a PostgreSQL database.
  struct OnSqlite {};
  explicit GardeProcess(OnSqlite);
  void UseDatabase(const std::string& uri);
  ~GardeProcess();
  GardeProcess(const GardeProcess&) = delete;
  GardeProcess& operator=(const GardeProcess&) = delete;

  // The environment of the commands it runs from now on (the next Start, CreateKey, ...).
  void SetEnv(std::map<std::string, std::string> env) { env_ = std::move(env); }
  const std::string& data_dir() const { return data_dir_; }
  // True when this deployment keeps its data in PostgreSQL (the suite runs under
  // tests/postgres/with_postgres.sh).
  bool postgres() const;
  const std::string& admin_key() const { return admin_key_; }
  const std::string& log_path() const { return log_path_; }
  const std::string& policies() const { return policies_; }
  std::string db_path() const { return data_dir_ + "/garde.db"; }
  std::string audit_db_path() const { return data_dir_ + "/audit.db"; }
  int port() const { return port_; }
  int pid() const { return pid_; }

  // `garde apikey create ...`; returns the key (last stdout line).
  std::string CreateKey(const std::string& name, const std::string& role,
                        const std::vector<std::string>& activities);
  // Starts `garde serve` and waits for it to listen. Extra flags are appended. In cluster mode,
  // starts a second node of the deployment (its own data directory, the keyring linked to
  // this one's) and HAProxy in front of both: port() is HAProxy's, pid() the first node's.
  void Start(const std::vector<std::string>& extra_flags = {});
  // Sends SIGTERM and waits; returns the exit code (the first non-zero of the nodes').
  int Stop();
  // kill -9, and waits for it (every node).
  void Kill();
  bool running() const { return pid_ > 0; }
  // All the service wrote to stderr and stdout so far (every node's).
  std::string Logs() const;
  // How many times the logs hold `what`; waiting up to ten seconds for them to hold it
  // `times` times.
  size_t LogCount(const std::string& what) const;
  bool WaitForLog(const std::string& what, size_t times) const;

  HttpReply Request(const std::string& method, const std::string& path, const std::string& body,
                    const std::map<std::string, std::string>& headers,
                    const std::string& content_type = "application/json") const;
  HttpReply Get(const std::string& path, const std::string& key,
                const std::string& purpose = "") const;
  HttpReply Post(const std::string& path, const std::string& body, const std::string& key,
                 const std::string& purpose = "") const;
  HttpReply Patch(const std::string& path, const std::string& body, const std::string& key) const;

  // Runs SQL against the database file with the sqlite3 library; returns rows as text.
  std::vector<std::vector<std::string>> Sql(const std::string& sql) const {
    return SqlOn(db_path(), sql);
  }
  // The same against the audit database.
  std::vector<std::vector<std::string>> AuditSql(const std::string& sql) const {
    return SqlOn(audit_db_path(), sql);
  }
  std::vector<std::vector<std::string>> SqlOn(const std::string& file,
                                              const std::string& sql) const;
  int64_t CountRows(const std::string& table) const;

 private:
  std::string data_dir_;
  std::string policies_;
  std::map<std::string, std::string> env_;
  std::string admin_key_;
  std::string log_path_;
  std::string out_path_;
  int pid_ = -1;
  int port_ = 0;
  // Cluster mode: the second node and the load balancer.
  struct Peer {
    std::string data_dir, log_path, out_path;
    int pid = -1;
    int port = 0;
  };
  Peer peer_;
  std::unique_ptr<LoadBalancer> balancer_;
  // Starts `garde serve args` with its output to the given files; its port, or 0 (the test
  // has failed) and *pid set to -1.
  int Serve(const std::vector<std::string>& args, const std::string& out, const std::string& err,
            int* pid);
};

// Sends all of `bytes` on a raw socket.
void SendAll(Poco::Net::StreamSocket& s, const std::string& bytes);
// Whether `got` holds the answers to requests r0 ... r{requests - 1} (by their X-Request-Id),
// each once and in that order.
::testing::AssertionResult AnsweredInOrder(const std::string& got, int requests);
// Sends `requests` GET `path` on one connection, one write each with X-Request-Id r0, r1 ...,
// some spaced out so that many arrive while an earlier one is being answered, the last asking
// to close; returns everything that came back.
std::string SendOneWriteAtATime(int port, const std::string& path, int requests);
// Sends one GET `path` and closes the sending side at once; returns everything that came back.
std::string RequestThenHalfClose(int port, const std::string& path);
// Everything a raw socket receives until the server closes it (or `limit` passes).
std::string ReadUntilClosed(Poco::Net::StreamSocket& socket, std::chrono::seconds limit);
// Reads a whole file ("" when missing).
std::string ReadFile(const std::string& path);
// Every file under `dir` as one string (databases, WAL, journals, keyring, logs): where a
// planted value must never be found.
std::string EverythingUnder(const std::string& dir);
// Parses a JSON object (throws on anything else: the test fails with the exception).
Poco::JSON::Object::Ptr ParseObject(const std::string& json);
// Extracts a top-level string member from a JSON object (test convenience).
std::string JsonString(const std::string& json, const std::string& member);

}  // namespace garde::testing

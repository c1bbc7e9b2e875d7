#include "garde_process.h"

#include <Poco/Base64Encoder.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "garde/base/encoding.h"
#include "test_database.h"

namespace garde::testing {
namespace {

// Data directories whose deployment keeps its data in PostgreSQL (runs under
// with_postgres.sh): every garde command naming one gets GARDE_DATABASE.
std::mutex databases_mu;
std::map<std::string, std::string> databases;

std::string DatabaseOf(const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env = {}) {
  std::lock_guard<std::mutex> lock(databases_mu);
  std::vector<std::string> dirs;
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--data-dir") dirs.push_back(args[i + 1]);
  }
  if (auto it = env.find("GARDE_DATA_DIR"); it != env.end()) dirs.push_back(it->second);
  for (const auto& dir : dirs) {
    auto it = databases.find(dir);
    if (it != databases.end()) return it->second;
  }
  return "";
}

std::string UniqueDir(const char* prefix) {
  static int counter = 0;
  auto dir = std::filesystem::temp_directory_path() /
             (std::string(prefix) + std::to_string(::getpid()) + "-" + std::to_string(++counter));
  std::filesystem::remove_all(dir);
  return dir.string();
}

// fork + exec with stdout and stderr sent to files; returns the pid.
// `pass_fd`: a descriptor the child gets as its fd 3 (-1: none); every other descriptor of the
// tests is opened close-on-exec or is inherited as before.
int Spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
          const std::string& out_path, const std::string& err_path,
          const std::string& program = GARDE_BINARY, int pass_fd = -1) {
  std::map<std::string, std::string> environment = env;
  if (const std::string database = DatabaseOf(args, env); !database.empty()) {
    environment.emplace("GARDE_DATABASE", database);
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    const int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    if (pass_fd == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else if (pass_fd >= 0) {
      ::dup2(pass_fd, 3);  // the copy is not close-on-exec
    }
    for (const auto& [k, v] : environment) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv;
    std::string bin = program;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

// Waits for a child to end: its exit code, or 128 + the signal that ended it.
int AwaitExit(int pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

bool WaitUntil(const std::function<bool()>& done, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

::testing::AssertionResult AnsweredInOrder(const std::string& got, int requests) {
  size_t last = 0;
  for (int i = 0; i < requests; ++i) {
    const size_t at = got.find("X-Request-Id: r" + std::to_string(i) + "\r\n");
    if (at == std::string::npos) {
      return ::testing::AssertionFailure() << "request " << i << " was not answered";
    }
    if (i > 0 && at <= last) {
      return ::testing::AssertionFailure() << "request " << i << " answered out of order";
    }
    last = at;
  }
  return ::testing::AssertionSuccess();
}

namespace {
Poco::Net::StreamSocket ConnectTo(int port) {
  return Poco::Net::StreamSocket(
      Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(port)));
}
}  // namespace

void SendAll(Poco::Net::StreamSocket& s, const std::string& bytes) {
  s.sendBytes(bytes.data(), static_cast<int>(bytes.size()));
}

std::string SendOneWriteAtATime(int port, const std::string& path, int requests) {
  Poco::Net::StreamSocket s = ConnectTo(port);
  for (int i = 0; i < requests; ++i) {
    SendAll(s, "GET " + path + " HTTP/1.1\r\nHost: x\r\nX-Request-Id: r" + std::to_string(i) +
                   "\r\n" + (i + 1 == requests ? "Connection: close\r\n" : "") + "\r\n");
    if (i % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(150));
  }
  return ReadUntilClosed(s, std::chrono::seconds(20));
}

std::string RequestThenHalfClose(int port, const std::string& path) {
  Poco::Net::StreamSocket s = ConnectTo(port);
  SendAll(s, "GET " + path + " HTTP/1.1\r\nHost: x\r\nX-Request-Id: half\r\n\r\n");
  s.shutdownSend();
  return ReadUntilClosed(s, std::chrono::seconds(10));
}

std::string ReadUntilClosed(Poco::Net::StreamSocket& socket, std::chrono::seconds limit) {
  socket.setReceiveTimeout(Poco::Timespan(static_cast<long>(limit.count()), 0));
  std::string got;
  char buf[8192];
  try {
    for (int n; (n = socket.receiveBytes(buf, sizeof buf)) > 0;) {
      got.append(buf, static_cast<size_t>(n));
    }
  } catch (const Poco::Exception&) {
  }
  return got;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string EverythingUnder(const std::string& dir) {
  std::string all;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir)) {
    if (f.is_regular_file()) all += ReadFile(f.path().string());
  }
  return all;
}

Poco::JSON::Object::Ptr ParseObject(const std::string& json) {
  Poco::JSON::Parser p;
  return p.parse(json).extract<Poco::JSON::Object::Ptr>();
}

std::string JsonString(const std::string& json, const std::string& member) {
  try {
    Poco::JSON::Parser p;
    auto obj = p.parse(json).extract<Poco::JSON::Object::Ptr>();
    return obj->optValue<std::string>(member, "");
  } catch (...) {
    return "";
  }
}

std::string RunResult::LastLine() const {
  std::string last;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

RunResult RunProgram(const std::vector<std::string>& argv) {
  const std::string dir = UniqueDir("garde-prog-");
  std::filesystem::create_directories(dir);
  const int pid = Spawn(std::vector<std::string>(argv.begin() + 1, argv.end()), {}, dir + "/out",
                        dir + "/err", argv[0]);
  RunResult r;
  r.exit_code = AwaitExit(pid);
  r.out = ReadFile(dir + "/out");
  r.err = ReadFile(dir + "/err");
  std::filesystem::remove_all(dir);
  return r;
}

RunResult RunGarde(const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env) {
  const std::string dir = UniqueDir("garde-run-");
  std::filesystem::create_directories(dir);
  const std::string out = dir + "/out", err = dir + "/err";
  const int pid = Spawn(args, env, out, err);
  RunResult r;
  r.exit_code = AwaitExit(pid);
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  std::filesystem::remove_all(dir);
  return r;
}

int SpawnGarde(const std::vector<std::string>& args, const std::string& out,
               const std::string& err) {
  return Spawn(args, {}, out, err);
}

int SpawnProgram(const std::vector<std::string>& argv, const std::string& out,
                 const std::string& err, int pass_fd) {
  return Spawn(std::vector<std::string>(argv.begin() + 1, argv.end()), {}, out, err, argv[0],
               pass_fd);
}

GardeProcess::GardeProcess(std::string policies) : GardeProcess(std::move(policies), {}) {}

GardeProcess::GardeProcess(OnSqlite) : GardeProcess("", {{"GARDE_E2E_SQLITE", "1"}}) {}

void GardeProcess::UseDatabase(const std::string& uri) {
  std::lock_guard<std::mutex> lock(databases_mu);
  databases[data_dir_] = uri;
}

GardeProcess::GardeProcess(std::string policies, std::map<std::string, std::string> env)
    : data_dir_(UniqueDir("garde-e2e-")),
      policies_(policies.empty() ? GARDE_POLICIES_DIR : std::move(policies)),
      env_(std::move(env)) {
  std::filesystem::create_directories(data_dir_ + "-logs");
  log_path_ = data_dir_ + "-logs/serve.err";
  out_path_ = data_dir_ + "-logs/serve.out";
  if (!TestPostgresHost().empty() && env_.count("GARDE_E2E_SQLITE") == 0) {
    std::string error;
    const std::string database = CreateTestDatabase(&error);
    EXPECT_FALSE(database.empty()) << error;
    std::lock_guard<std::mutex> lock(databases_mu);
    databases[data_dir_] = database;
  }
  RunResult r = RunGarde({"init", "--data-dir", data_dir_, "--policies", policies_}, env_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  admin_key_ = r.LastLine();
}

GardeProcess::GardeProcess(NodeOf node)
    : data_dir_(UniqueDir("garde-e2e-")),
      policies_(node.first.policies_),
      env_(node.first.env_),
      admin_key_(node.first.admin_key_) {
  std::filesystem::create_directories(data_dir_);
  std::filesystem::permissions(data_dir_, std::filesystem::perms::owner_all);
  std::filesystem::copy_file(node.first.data_dir_ + "/keyring.json", data_dir_ + "/keyring.json");
  std::filesystem::create_directories(data_dir_ + "-logs");
  log_path_ = data_dir_ + "-logs/serve.err";
  out_path_ = data_dir_ + "-logs/serve.out";
  const std::string database = DatabaseOf({"--data-dir", node.first.data_dir_});
  EXPECT_FALSE(database.empty()) << "nodes share a PostgreSQL database";
  std::lock_guard<std::mutex> lock(databases_mu);
  databases[data_dir_] = database;
}

void GardeProcess::Kill() {
  balancer_.reset();
  for (int* pid : {&pid_, &peer_.pid}) {
    if (*pid <= 0) continue;
    ::kill(*pid, SIGKILL);
    ::waitpid(*pid, nullptr, 0);
    *pid = -1;
  }
}

GardeProcess::~GardeProcess() {
  if (pid_ > 0) Stop();
  std::filesystem::remove_all(data_dir_);
  if (!peer_.data_dir.empty()) std::filesystem::remove_all(peer_.data_dir);
  std::filesystem::remove_all(data_dir_ + "-logs");
}

std::string GardeProcess::CreateKey(const std::string& name, const std::string& role,
                                    const std::vector<std::string>& activities) {
  std::vector<std::string> args = {"apikey",  "create", "--data-dir", data_dir_, "--policies",
                                   policies_, "--name", name,         "--role",  role};
  for (const auto& a : activities) {
    args.push_back("--activity");
    args.push_back(a);
  }
  RunResult r = RunGarde(args, env_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.LastLine();
}

bool ClusterMode() {
  static const bool on = [] {
    const char* nodes = std::getenv("GARDE_E2E_NODES");
    return nodes != nullptr && std::string(nodes) == "2" && !TestPostgresHost().empty();
  }();
  return on;
}

namespace {

// A listening socket on a free port of 127.0.0.1, close-on-exec; its port in *port.
int ListenOnFreePort(int* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(fd, 1024) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ADD_FAILURE() << "no listening socket: " << std::strerror(errno);
    if (fd >= 0) ::close(fd);
    *port = 0;
    return -1;
  }
  *port = ntohs(address.sin_port);
  return fd;
}

}  // namespace

ReservedPort::ReservedPort() : fd_(ListenOnFreePort(&port_)) {}

ReservedPort::~ReservedPort() {
  if (fd_ >= 0) ::close(fd_);
}

LoadBalancer::LoadBalancer(const std::vector<int>& ports)
    : LoadBalancer(ports, std::make_unique<ReservedPort>()) {}

LoadBalancer::LoadBalancer(const std::vector<int>& ports, std::unique_ptr<ReservedPort> listener)
    : listener_(std::move(listener)), port_(listener_->port()) {
  dir_ = UniqueDir("garde-haproxy-");
  std::filesystem::create_directories(dir_);
  std::ofstream cfg(dir_ + "/haproxy.cfg");
  cfg << "global\n  maxconn 1024\n"
      << "defaults\n  mode http\n  timeout connect 1s\n  timeout client 60s\n"
      << "  timeout server 60s\n  retries 3\n  option redispatch\n"
      << "frontend garde\n  bind fd@3\n  option forwardfor\n"
      << "  default_backend nodes\n"
      << "backend nodes\n  balance roundrobin\n  option httpchk GET /readyz\n"
      << "  default-server inter 200ms fall 2 rise 2\n";
  for (size_t i = 0; i < ports.size(); ++i) {
    cfg << "  server node" << i << " 127.0.0.1:" << ports[i] << " check\n";
  }
  cfg.close();
  // HAProxy accepts on the socket bound here, so the port it serves cannot have been taken
  // by anything else in between (a node of another shard, another shard's HAProxy).
  pid_ = SpawnProgram({"/usr/sbin/haproxy", "-f", dir_ + "/haproxy.cfg", "-db"}, dir_ + "/out",
                      dir_ + "/err", listener_->fd());
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      break;
    }
    try {
      if (HttpCall(port_, "GET", "/healthz", "", {}, "").status == 200) return;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "haproxy did not start: " << ReadFile(dir_ + "/err");
}

LoadBalancer::~LoadBalancer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  std::filesystem::remove_all(dir_);
}

int GardeProcess::Serve(const std::vector<std::string>& args, const std::string& out_path,
                        const std::string& err_path, int* pid) {
  ::truncate(out_path.c_str(), 0);
  std::map<std::string, std::string> env = env_;
  env["GARDE_LOG_LEVEL"] = "debug";
  *pid = Spawn(args, env, out_path, err_path);
  const std::string marker = "listening on http://127.0.0.1:";
  // Up to 20 s: a sealed keyring's argon2id (256 MiB) on a loaded two-core machine running
  // sanitizer builds beside it takes several seconds before the service listens.
  for (int i = 0; i < 800; ++i) {
    const std::string out = ReadFile(out_path);
    const size_t at = out.find(marker);
    if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
      return std::stoi(out.substr(at + marker.size()));
    }
    int status = 0;
    if (::waitpid(*pid, &status, WNOHANG) == *pid) {
      *pid = -1;
      ADD_FAILURE() << "garde serve exited early: " << ReadFile(err_path);
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ADD_FAILURE() << "garde serve did not start: " << ReadFile(err_path);
  return 0;
}

void GardeProcess::Start(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"serve",   "--data-dir", data_dir_,    "--policies",
                                   policies_, "--listen",   "127.0.0.1:0"};
  args.insert(args.end(), extra.begin(), extra.end());
  const bool cluster = ClusterMode() && postgres();
  // The load balancer's socket, bound before the nodes start so that they can name it.
  auto balancer_socket = cluster ? std::make_unique<ReservedPort>() : nullptr;
  if (cluster && std::find(extra.begin(), extra.end(), "--public-url") == extra.end()) {
    // Links in messages name the address customers reach: the load balancer's.
    args.push_back("--public-url");
    args.push_back("http://127.0.0.1:" + std::to_string(balancer_socket->port()));
  }
  if (cluster && std::find(extra.begin(), extra.end(), "--trusted-proxies") == extra.end()) {
    // The audit log records the client HAProxy names, as a deployment would configure it.
    args.insert(args.end(), {"--trusted-proxies", "127.0.0.1"});
  }
  port_ = Serve(args, out_path_, log_path_, &pid_);
  if (port_ == 0 || !cluster) return;
  if (peer_.data_dir.empty()) {
    // The second node's own directory (read journals, tombstone log, snapshot), the
    // deployment's keyring linked in: a rotation through either is the other's too.
    peer_.data_dir = data_dir_ + "-node2";
    peer_.log_path = data_dir_ + "-logs/node2.err";
    peer_.out_path = data_dir_ + "-logs/node2.out";
    std::filesystem::create_directories(peer_.data_dir);
    std::filesystem::permissions(peer_.data_dir, std::filesystem::perms::owner_all);
    std::filesystem::create_symlink(data_dir_ + "/keyring.json", peer_.data_dir + "/keyring.json");
    const std::string database = DatabaseOf({"--data-dir", data_dir_});
    std::lock_guard<std::mutex> lock(databases_mu);
    databases[peer_.data_dir] = database;
  }
  args[2] = peer_.data_dir;
  peer_.port = Serve(args, peer_.out_path, peer_.log_path, &peer_.pid);
  if (peer_.port == 0) return;
  balancer_ = std::make_unique<LoadBalancer>(std::vector<int>{port_, peer_.port},
                                             std::move(balancer_socket));
  port_ = balancer_->port();
}

int GardeProcess::Stop() {
  if (pid_ <= 0) return -1;
  balancer_.reset();
  // Both nodes are told at once and stop side by side.
  ::kill(pid_, SIGTERM);
  if (peer_.pid > 0) ::kill(peer_.pid, SIGTERM);
  int code = AwaitExit(pid_);
  pid_ = -1;
  if (peer_.pid > 0) {
    const int peer = AwaitExit(peer_.pid);
    if (code == 0) code = peer;
    peer_.pid = -1;
  }
  return code;
}

std::string GardeProcess::Logs() const {
  std::string logs = ReadFile(log_path_) + ReadFile(out_path_);
  if (!peer_.data_dir.empty()) logs += ReadFile(peer_.log_path) + ReadFile(peer_.out_path);
  return logs;
}

size_t GardeProcess::LogCount(const std::string& what) const {
  const std::string text = Logs();
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

bool GardeProcess::WaitForLog(const std::string& what, size_t times) const {
  for (int i = 0; i < 200; ++i) {
    if (LogCount(what) >= times) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

namespace {

// Under tests/openapi/e2e_via_prism.sh: the exchange just made, judged by Prism's validating
// proxy (its upstream replays `reply`, so garde sees the request once). A response at odds
// with the API document fails the test; request violations are what tests of bad input send.
// Targets that are not URIs (tests of the HTTP edge) and console pages stay out.
void JudgedByPrism(const std::string& method, const std::string& path, const std::string& body,
                   const std::map<std::string, std::string>& headers,
                   const std::string& content_type, const Poco::Net::HTTPResponse& resp,
                   const HttpReply& reply) {
  static const char* port = std::getenv("GARDE_E2E_PRISM_PORT");
  if (port == nullptr || *port == '\0' || path.rfind("/console", 0) == 0) return;
  for (char ch : path) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || std::strchr("\"<>\\^`{|}", ch) != nullptr) return;
  }
  // Prism stops on a percent-encoding that is not UTF-8 (its decodeURIComponent throws).
  std::string decoded;
  try {
    Poco::URI::decode(path, decoded);
  } catch (const Poco::Exception&) {
    return;
  }
  if (!garde::IsValidUtf8(decoded)) return;
  static std::atomic<int> next{0};
  const std::string file = "/tmp/garde-e2e-replay-" + std::to_string(::getpid()) + "-" +
                           std::to_string(next++) + ".json";
  {
    Poco::JSON::Object answer;
    answer.set("status", static_cast<int>(resp.getStatus()));
    Poco::JSON::Array fields;
    for (const auto& [k, v] : resp) {
      Poco::JSON::Array pair;
      pair.add(k);
      pair.add(v);
      fields.add(pair);
    }
    answer.set("headers", fields);
    std::string encoded;
    {
      std::ostringstream out;
      Poco::Base64Encoder b64(out);
      b64.rdbuf()->setLineLength(0);
      b64 << reply.body;
      b64.close();
      encoded = out.str();
    }
    answer.set("body", encoded);
    std::ofstream f(file, std::ios::binary | std::ios::trunc);
    answer.stringify(f);
  }
  try {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(std::atoi(port)));
    session.setTimeout(Poco::Timespan(30, 0));
    Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [k, v] : headers) req.set(k, v);
    req.set("X-Garde-Replay", file);
    if (!body.empty() || method == "POST" || method == "PATCH") {
      if (!content_type.empty()) req.setContentType(content_type);
      req.setContentLength64(static_cast<Poco::Int64>(body.size()));
    }
    session.sendRequest(req) << body;
    Poco::Net::HTTPResponse judged;
    std::string ignored;
    Poco::StreamCopier::copyToString(session.receiveResponse(judged), ignored);
    if (judged.has("sl-violations")) {
      const std::string& v = judged.get("sl-violations");
      if (v.find("\"response\"") != std::string::npos) {
        ADD_FAILURE() << "Prism: " << method << " " << path << " -> " << reply.status << ": " << v;
      }
    }
  } catch (const Poco::Exception& e) {
    ADD_FAILURE() << "Prism did not judge " << method << " " << path << ": " << e.displayText();
  }
  std::remove(file.c_str());
}

}  // namespace

HttpReply GardeProcess::Request(const std::string& method, const std::string& path,
                                const std::string& body,
                                const std::map<std::string, std::string>& headers,
                                const std::string& content_type) const {
  return HttpCall(port_, method, path, body, headers, content_type);
}

HttpReply HttpCall(int port, const std::string& method, const std::string& path,
                   const std::string& body, const std::map<std::string, std::string>& headers,
                   const std::string& content_type) {
  Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
  session.setTimeout(Poco::Timespan(30, 0));
  Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
  for (const auto& [k, v] : headers) req.set(k, v);
  if (!body.empty() || method == "POST" || method == "PATCH") {
    if (!content_type.empty()) req.setContentType(content_type);
    req.setContentLength64(static_cast<Poco::Int64>(body.size()));
  }
  std::ostream& os = session.sendRequest(req);
  os << body;
  Poco::Net::HTTPResponse resp;
  std::istream& is = session.receiveResponse(resp);
  HttpReply reply;
  reply.status = resp.getStatus();
  Poco::StreamCopier::copyToString(is, reply.body);
  reply.content_type = resp.getContentType();
  for (const auto& [k, v] : resp) {
    std::string lower = k;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    reply.headers[lower] = v;
  }
  JudgedByPrism(method, path, body, headers, content_type, resp, reply);
  return reply;
}

HttpReply GardeProcess::Get(const std::string& path, const std::string& key,
                            const std::string& purpose) const {
  std::map<std::string, std::string> h;
  if (!key.empty()) h["Authorization"] = "Bearer " + key;
  if (!purpose.empty()) h["X-Purpose"] = purpose;
  return Request("GET", path, "", h, "");
}

HttpReply GardeProcess::Post(const std::string& path, const std::string& body,
                             const std::string& key, const std::string& purpose) const {
  std::map<std::string, std::string> h;
  if (!key.empty()) h["Authorization"] = "Bearer " + key;
  if (!purpose.empty()) h["X-Purpose"] = purpose;
  return Request("POST", path, body, h);
}

HttpReply GardeProcess::Patch(const std::string& path, const std::string& body,
                              const std::string& key) const {
  return Request("PATCH", path, body, {{"Authorization", "Bearer " + key}});
}

namespace {

// The few SQLite spellings the tests use, in PostgreSQL's.
std::string ForPostgres(std::string sql) {
  auto replace_calls = [&](const std::string& name, const auto& rewrite) {
    for (size_t at = 0; (at = sql.find(name + "(", at)) != std::string::npos;) {
      const size_t open = at + name.size();
      int depth = 0;
      size_t close = open;
      for (; close < sql.size(); ++close) {
        if (sql[close] == '(') ++depth;
        if (sql[close] == ')' && --depth == 0) break;
      }
      const std::string inner = sql.substr(open + 1, close - open - 1);
      const std::string with = rewrite(inner);
      sql.replace(at, close + 1 - at, with);
      at += with.size();
    }
  };
  replace_calls("hex", [](const std::string& x) { return "upper(encode(" + x + ", 'hex'))"; });
  replace_calls("zeroblob",
                [](const std::string& n) { return "decode(repeat('00', " + n + "), 'hex')"; });
  replace_calls("json_extract", [](const std::string& args) {
    const size_t comma = args.rfind(',');
    std::string path = args.substr(comma + 1);
    path = path.substr(path.find("$.") + 2);
    path = path.substr(0, path.find('\''));
    return "((" + args.substr(0, comma) + ")::jsonb ->> '" + path + "')::numeric";
  });
  // Blob literals: X'00ff' or x'00ff' -> '\x00ff'::bytea (not the end of a word: 'index').
  for (size_t at = 0; (at = sql.find_first_of("Xx", at)) != std::string::npos;) {
    const bool literal = at + 1 < sql.size() && sql[at + 1] == '\'' &&
                         (at == 0 || !(std::isalnum(static_cast<unsigned char>(sql[at - 1])) ||
                                       sql[at - 1] == '_' || sql[at - 1] == '\''));
    if (!literal) {
      ++at;
      continue;
    }
    const size_t end = sql.find('\'', at + 2);
    const std::string with = "'\\x" + sql.substr(at + 2, end - at - 2) + "'::bytea";
    sql.replace(at, end + 1 - at, with);
    at += with.size();
  }
  return sql;
}

// SQL on a deployment's PostgreSQL database; rows as text, booleans as 1 and 0 as SQLite has them.
std::vector<std::vector<std::string>> SqlOnPostgres(const std::string& uri,
                                                    const std::string& sql) {
  std::vector<std::vector<std::string>> rows;
  PGconn* conn = PQconnectdb(uri.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    ADD_FAILURE() << "cannot connect to " << uri << ": " << PQerrorMessage(conn);
    PQfinish(conn);
    return rows;
  }
  PGresult* res = PQexec(conn, ForPostgres(sql).c_str());
  const ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    ADD_FAILURE() << "SQL failed: " << PQresultErrorMessage(res) << " in " << ForPostgres(sql);
  }
  for (int r = 0; st == PGRES_TUPLES_OK && r < PQntuples(res); ++r) {
    rows.emplace_back();
    for (int c = 0; c < PQnfields(res); ++c) {
      std::string v = PQgetvalue(res, r, c);
      if (PQftype(res, c) == 16) v = v == "t" ? "1" : "0";  // BOOLOID
      rows.back().push_back(v);
    }
  }
  PQclear(res);
  PQfinish(conn);
  return rows;
}

}  // namespace

std::vector<std::vector<std::string>> GardeProcess::SqlOn(const std::string& file,
                                                          const std::string& sql) const {
  if (file == db_path() || file == audit_db_path()) {
    // Both files' tables are in the one database of a PostgreSQL deployment.
    const std::string database = DatabaseOf({"--data-dir", data_dir_});
    if (!database.empty()) return SqlOnPostgres(database, sql);
  }
  sqlite3* db = nullptr;
  std::vector<std::vector<std::string>> rows;
  if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << file;
    sqlite3_close(db);
    return rows;
  }
  sqlite3_busy_timeout(db, 10000);
  char* err = nullptr;
  auto cb = [](void* out, int n, char** values, char**) {
    auto* r = static_cast<std::vector<std::vector<std::string>>*>(out);
    r->emplace_back();
    for (int i = 0; i < n; ++i) r->back().push_back(values[i] ? values[i] : "");
    return 0;
  };
  if (sqlite3_exec(db, sql.c_str(), cb, &rows, &err) != SQLITE_OK) {
    ADD_FAILURE() << "SQL failed: " << (err ? err : "?") << " in " << sql;
    sqlite3_free(err);
  }
  sqlite3_close(db);
  return rows;
}

bool GardeProcess::postgres() const { return !DatabaseOf({"--data-dir", data_dir_}).empty(); }

int64_t GardeProcess::CountRows(const std::string& table) const {
  auto rows = Sql("SELECT COUNT(*) FROM " + table);
  return rows.empty() ? -1 : std::stoll(rows[0][0]);
}

}  // namespace garde::testing

// An open-loop HTTP load generator: requests are due at a fixed rate whatever the server does,
// and each one's latency runs from the moment it was due, not from when a connection was free
// to send it. A closed loop such as wrk waits for an answer before it sends the next request on
// a connection, so when the server (or the machine) stops for 10 ms it also stops asking, and
// the requests that should have been made meanwhile are never counted ("coordinated
// omission"). Here they are: they queue, and their wait is part of their latency.
//
//   garde_bench_rate --port P --rate R [--duration S] [--connections C] [--threads T]
//                    --path TEMPLATE [--header 'Name: value']...
//
// TEMPLATE may contain {id}, replaced for each request by a random line of the file named by
// GARDE_IDS. Prints one RESULT line: offered and achieved rate, latency percentiles in ms,
// failed and non-2xx answers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Nanos = std::int64_t;

Nanos Now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Options {
  int port = 0;
  double rate = 0;
  double duration = 8;
  int connections = 64;
  int threads = 2;
  std::string path;
  std::vector<std::string> headers;
  bool timeline = false;
};

struct Tally {
  std::vector<std::uint32_t> latency_us;                  // one per answered request
  std::vector<std::pair<Nanos, std::uint32_t>> timeline;  // (due, latency) with --timeline
  long failed = 0;  // connection errors and unparsable answers
  long non2xx = 0;
  long unanswered = 0;  // still queued or in flight when the drain ended
};

class Requests {
 public:
  Requests(const Options& options, std::vector<std::string> ids) : ids_(std::move(ids)) {
    const auto at = options.path.find("{id}");
    prefix_ = "GET " + options.path.substr(0, at);
    suffix_ = at == std::string::npos ? "" : options.path.substr(at + 4);
    suffix_ += " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& h : options.headers) suffix_ += h + "\r\n";
    suffix_ += "\r\n";
    if (at == std::string::npos) ids_.assign(1, "");
  }

  std::string Next(std::mt19937_64& random) const {
    const auto& id = ids_[random() % ids_.size()];
    std::string request;
    request.reserve(prefix_.size() + id.size() + suffix_.size());
    request.append(prefix_).append(id).append(suffix_);
    return request;
  }

 private:
  std::vector<std::string> ids_;
  std::string prefix_;
  std::string suffix_;
};

struct Connection {
  int fd = -1;
  Nanos due = 0;  // when the request in flight was due; 0 when idle
  std::string in;
};

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 &&
      errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The length of the first complete answer in `in`, 0 while incomplete, -1 if unparsable.
// Answers carry Content-Length (garde and Poco both send it for these requests).
long AnswerLength(std::string_view in, int* status) {
  const auto end = in.find("\r\n\r\n");
  if (end == std::string_view::npos) return 0;
  if (in.size() < 12 || in.substr(0, 5) != "HTTP/") return -1;
  *status = std::atoi(std::string(in.substr(9, 3)).c_str());
  long body = 0;
  const std::string_view head = in.substr(0, end);
  std::size_t line = head.find("\r\n");
  while (line != std::string_view::npos) {
    const std::size_t next = head.find("\r\n", line + 2);
    std::string_view header = head.substr(line + 2, next - line - 2);
    constexpr std::string_view kLength = "content-length:";
    if (header.size() > kLength.size()) {
      std::string name(header.substr(0, kLength.size()));
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (name == kLength) body = std::atol(std::string(header.substr(kLength.size())).c_str());
    }
    line = next;
  }
  const long total = static_cast<long>(end) + 4 + body;
  return static_cast<long>(in.size()) >= total ? total : 0;
}

// One thread's share: `rate` requests per second over its own connections, the first due at
// `start`, none due after `stop`; then up to two seconds to answer what is still waiting.
Tally Drive(const Options& options, const Requests& requests, double rate, int connections,
            Nanos start, Nanos stop, unsigned seed) {
  Tally tally;
  std::mt19937_64 random(seed);
  const int epoll = ::epoll_create1(0);
  std::vector<Connection> conns(static_cast<std::size_t>(connections));
  std::vector<std::size_t> idle;
  for (std::size_t i = 0; i < conns.size(); ++i) {
    conns[i].fd = Connect(options.port);
    if (conns[i].fd < 0) {
      ++tally.failed;
      continue;
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = i;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, conns[i].fd, &event);
    idle.push_back(i);
  }
  const Nanos interval = static_cast<Nanos>(1e9 / rate);
  const Nanos give_up = stop + 2'000'000'000;
  Nanos next_due = start;
  std::deque<Nanos> waiting;  // due, not yet sent: no connection was free
  std::size_t in_flight = 0;
  std::vector<epoll_event> events(static_cast<std::size_t>(connections));
  char buffer[16384];
  for (;;) {
    Nanos now = Now();
    while (next_due <= now && next_due < stop) {
      waiting.push_back(next_due);
      next_due += interval;
    }
    while (!waiting.empty() && !idle.empty()) {
      Connection& c = conns[idle.back()];
      const std::string request = requests.Next(random);
      if (::send(c.fd, request.data(), request.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(request.size())) {
        ++tally.failed;  // the connection is dropped; the request stays due
        ::close(c.fd);
        idle.pop_back();
        continue;
      }
      c.due = waiting.front();
      waiting.pop_front();
      idle.pop_back();
      ++in_flight;
    }
    if (next_due >= stop && waiting.empty() && in_flight == 0) break;
    if (now >= give_up || (idle.empty() && in_flight == 0)) break;
    const Nanos wake = next_due < stop ? next_due : give_up;
    const Nanos wait = std::max<Nanos>(0, wake - now);
    timespec timeout{static_cast<time_t>(wait / 1'000'000'000),
                     static_cast<long>(wait % 1'000'000'000)};
    const int n =
        ::epoll_pwait2(epoll, events.data(), static_cast<int>(events.size()), &timeout, nullptr);
    now = Now();
    for (int e = 0; e < n; ++e) {
      const std::size_t i = events[static_cast<std::size_t>(e)].data.u64;
      Connection& c = conns[i];
      const ssize_t got = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        ++tally.failed;
        ::epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        if (c.due != 0) --in_flight;
        c.due = 0;
        continue;
      }
      c.in.append(buffer, static_cast<std::size_t>(got));
      int status = 0;
      const long length = AnswerLength(c.in, &status);
      if (length < 0) {
        ++tally.failed;
        c.in.clear();
      } else if (length == 0) {
        continue;
      } else {
        c.in.erase(0, static_cast<std::size_t>(length));
        if (status < 200 || status > 299) ++tally.non2xx;
        tally.latency_us.push_back(static_cast<std::uint32_t>((now - c.due) / 1000));
        if (options.timeline) tally.timeline.emplace_back(c.due, tally.latency_us.back());
      }
      if (c.due != 0) --in_flight;
      c.due = 0;
      idle.push_back(i);
    }
  }
  tally.unanswered = static_cast<long>(waiting.size() + in_flight);
  for (const auto& c : conns) {
    if (c.fd >= 0) ::close(c.fd);
  }
  ::close(epoll);
  return tally;
}

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: garde_bench_rate --port P --rate R --path TEMPLATE [--duration S]\n"
               "       [--connections C] [--threads T] [--header 'Name: value']...\n");
  std::exit(2);
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--timeline") {
      o.timeline = true;
      continue;
    }
    if (i + 1 >= argc) Usage();
    const char* value = argv[++i];
    if (flag == "--port")
      o.port = std::atoi(value);
    else if (flag == "--rate")
      o.rate = std::atof(value);
    else if (flag == "--duration")
      o.duration = std::atof(value);
    else if (flag == "--connections")
      o.connections = std::atoi(value);
    else if (flag == "--threads")
      o.threads = std::atoi(value);
    else if (flag == "--path")
      o.path = value;
    else if (flag == "--header")
      o.headers.emplace_back(value);
    else
      Usage();
  }
  if (o.port <= 0 || o.rate <= 0 || o.path.empty() || o.threads < 1 || o.connections < o.threads) {
    Usage();
  }
  return o;
}

double Percentile(const std::vector<std::uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto at = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1));
  return sorted[at] / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = Parse(argc, argv);
  std::vector<std::string> ids;
  if (const char* file = std::getenv("GARDE_IDS")) {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) ids.push_back(line);
    }
  }
  if (options.path.find("{id}") != std::string::npos && ids.empty()) {
    std::fprintf(stderr, "the path has {id}: set GARDE_IDS to a file of subject ids\n");
    return 2;
  }
  const Requests requests(options, std::move(ids));
  const Nanos start = Now() + 100'000'000;  // time to connect before the first is due
  const Nanos stop = start + static_cast<Nanos>(options.duration * 1e9);
  const double per_thread = options.rate / options.threads;
  std::vector<Tally> tallies(static_cast<std::size_t>(options.threads));
  std::vector<std::thread> threads;
  for (int t = 0; t < options.threads; ++t) {
    const int connections = options.connections / options.threads;
    // Threads offset by a fraction of the interval, so their requests interleave.
    const Nanos offset = static_cast<Nanos>(1e9 / options.rate) * t;
    threads.emplace_back([&, t, connections, offset] {
      tallies[static_cast<std::size_t>(t)] =
          Drive(options, requests, per_thread, connections, start + offset, stop,
                static_cast<unsigned>(t + 1));
    });
  }
  for (auto& t : threads) t.join();
  Tally all;
  for (auto& t : tallies) {
    all.latency_us.insert(all.latency_us.end(), t.latency_us.begin(), t.latency_us.end());
    all.failed += t.failed;
    all.non2xx += t.non2xx;
    all.unanswered += t.unanswered;
  }
  std::sort(all.latency_us.begin(), all.latency_us.end());
  if (options.timeline) {  // the worst latency of the requests due in each 100 ms
    std::vector<std::uint32_t> worst(static_cast<std::size_t>(options.duration * 10) + 1);
    for (const auto& t : tallies) {
      for (const auto& [due, us] : t.timeline) {
        auto& w = worst[std::min(worst.size() - 1,
                                 static_cast<std::size_t>((due - start) / 100'000'000))];
        w = std::max(w, us);
      }
    }
    for (std::size_t i = 0; i < worst.size(); ++i) {
      std::fprintf(stderr, "%5.1f s %8.2f ms\n", static_cast<double>(i) / 10, worst[i] / 1000.0);
    }
  }
  std::printf(
      "RESULT rate=%.0f achieved=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f "
      "max_ms=%.3f errors=%ld non2xx=%ld unanswered=%ld\n",
      options.rate, static_cast<double>(all.latency_us.size()) / options.duration,
      Percentile(all.latency_us, 50), Percentile(all.latency_us, 90),
      Percentile(all.latency_us, 99), Percentile(all.latency_us, 99.9),
      all.latency_us.empty() ? 0.0 : all.latency_us.back() / 1000.0, all.failed, all.non2xx,
      all.unanswered);
  return 0;
}

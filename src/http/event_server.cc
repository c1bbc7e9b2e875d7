#include "garde/http/event_server.h"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Timestamp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "garde/base/encoding.h"
#include "garde/base/log.h"
#include "garde/base/mutex.h"
#include "garde/base/thread_name.h"
#include "garde/crypto/sealed_spool.h"
#include "garde/http/request_parser.h"

namespace garde {
namespace {

using Clock = std::chrono::steady_clock;

// How often an I/O thread looks for timed-out connections and the stop flag.
constexpr int kSweepMs = 200;
// Bytes read from one connection per readiness event before others get their turn.
constexpr size_t kReadBurst = 256 * 1024;

// The Date header, formatted once a second per thread rather than once an answer.
const std::string& HttpDate() {
  thread_local std::time_t formatted_for = 0;
  thread_local std::string text;
  const std::time_t now = std::time(nullptr);
  if (now != formatted_for) {
    formatted_for = now;
    text = Poco::DateTimeFormatter::format(Poco::Timestamp::fromEpochTime(now),
                                           Poco::DateTimeFormat::HTTP_FORMAT);
  }
  return text;
}

class Loop;

struct Connection {
  enum class Phase { kReading, kAnswering, kWriting, kLingering };

  Connection(int socket, const RequestParser::Limits& limits) : fd(socket), parser(limits) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // The bytes read may hold a bearer key: overwritten before they are released.
  ~Connection() { sodium_memzero(in.data(), in.size()); }

  int fd;
  std::string client;  // the peer's address bytes (ClientSlots)
  Phase phase = Phase::kReading;
  std::string in;
  size_t in_pos = 0;
  RequestParser parser;
  std::unique_ptr<SealedSpool> spool;  // where the body of the request being read goes
  bool spool_asked = false;            // the handler was asked for it, for this request
  Exchange x;
  std::string out;       // the answer's head; its body is sent from x.reply, not copied
  size_t body_size = 0;  // bytes of x.reply to send after the head (0 for HEAD, 204, 304)
  size_t out_pos = 0;    // bytes of head and body sent
  int minor_version = 1;
  bool head_only = false;
  bool keep_alive = true;
  bool peer_closed = false;
  bool continue_sent = false;
  bool in_epoll = true;
  bool waiting_writable = false;
  int served = 0;
  Clock::time_point deadline;
};

// Requests that may wait, answered by up to `threads` threads in arrival order. A thread is
// started when a request finds every started one busy, so an idle service holds a few threads,
// not max_threads of them (128 by default: starting them all cost 1.2 s of each start under
// ThreadSanitizer, and their stacks at every start). Started threads stay. The worker that went
// idle last takes the next request: its stack, its malloc arena and the caches are still warm
// (waking the longest-idle one made a 10k-subject batch check 2x slower).
class WorkerPool {
 public:
  WorkerPool(ExchangeHandler& handler, int threads, size_t max_queued)
      : handler_(handler), max_threads_(static_cast<size_t>(threads)), max_queued_(max_queued) {}
  ~WorkerPool() {
    std::vector<std::unique_ptr<Worker>> workers;
    {
      MutexLock lock(&mu_);
      stopping_ = true;  // no thread starts after this
      for (auto& w : workers_) w->wake.notify_one();
      workers.swap(workers_);
    }
    for (auto& w : workers) w->thread.join();
  }

  // False when every worker is busy, no other may start, and the queue is full.
  bool Submit(Loop* loop, Connection* c) {
    MutexLock lock(&mu_);
    if (!idle_.empty()) {
      Worker* w = idle_.back();
      idle_.pop_back();
      w->job = {loop, c};
      w->has_job = true;
      lock.Unlock();
      w->wake.notify_one();
      return true;
    }
    if (!stopping_ && workers_.size() < max_threads_ && StartWorker({loop, c})) return true;
    if (queue_.size() >= max_queued_) return false;
    queue_.push_back({loop, c});
    return true;
  }

 private:
  struct Job {
    Loop* loop = nullptr;
    Connection* connection = nullptr;
  };
  struct Worker {
    std::condition_variable wake;
    Job job;
    bool has_job = false;
    std::thread thread;  // running Work(*this)
  };
  // A new thread whose first job is `job`; false when the system refuses one.
  bool StartWorker(Job job) REQUIRES(mu_) {
    workers_.push_back(std::make_unique<Worker>());
    Worker* w = workers_.back().get();
    w->job = job;
    w->has_job = true;
    try {
      w->thread = std::thread([this, w] { Work(*w); });
    } catch (const std::system_error&) {
      workers_.pop_back();
      return false;
    }
    return true;
  }
  void Work(Worker& self);

  ExchangeHandler& handler_;
  const size_t max_threads_;
  const size_t max_queued_;
  Mutex mu_;  // also guards each worker's job and has_job
  std::deque<Job> queue_ GUARDED_BY(mu_);
  std::vector<Worker*> idle_ GUARDED_BY(mu_);  // a stack: the last one idle is woken first
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Worker>> workers_ GUARDED_BY(mu_);  // each started, never stopped
};

// Open connections per client address, across the loops, so that one client's idle
// connections cannot take every slot of max_connections.
class ClientSlots {
 public:
  explicit ClientSlots(int per_client) : per_client_(per_client) {}
  // False when `client` already holds its share.
  bool Take(const std::string& client) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    int& n = counts_[client];
    if (n >= per_client_) return false;
    ++n;
    return true;
  }
  void Give(const std::string& client) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    auto it = counts_.find(client);
    if (it != counts_.end() && --it->second <= 0) counts_.erase(it);
  }

 private:
  const int per_client_;
  Mutex mu_;
  std::unordered_map<std::string, int> counts_ GUARDED_BY(mu_);  // address bytes -> open
};

// The address of a connection's peer, without its port (4 or 16 bytes).
std::string ClientAddress(const sockaddr_storage& peer) {
  if (peer.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(peer).sin_addr;
    return std::string(reinterpret_cast<const char*>(&a), sizeof a);
  }
  if (peer.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr;
    return std::string(reinterpret_cast<const char*>(&a), sizeof a);
  }
  return "";
}

// One I/O thread: its epoll set, its connections, and the answers workers hand back.
class Loop {
 public:
  Loop(const EventServerOptions& options, ExchangeHandler& handler, WorkerPool& pool,
       std::atomic<int>& open_connections, ClientSlots& clients, int listen_fd)
      : options_(options),
        handler_(handler),
        pool_(pool),
        open_connections_(open_connections),
        clients_(clients),
        listen_fd_(listen_fd) {
    limits_.max_head_bytes = options.max_head_bytes;
    limits_.body_limit = [&handler](std::string_view target) { return handler.BodyLimit(target); };
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    Watch(wake_fd_, EPOLLIN);
    WatchListener();
  }

  ~Loop() {
    for (auto& [fd, c] : connections_) ::close(fd);
    for (const auto& handed : handed_) {  // handed over after this loop had stopped
      ::close(handed.first);
      clients_.Give(handed.second);
    }
    ::close(wake_fd_);
    ::close(epoll_fd_);
  }

  bool ok() const { return epoll_fd_ >= 0 && wake_fd_ >= 0; }

  void Run() {
    epoll_event events[256];
    auto next_sweep = Clock::now();
    bool listening = true;
    for (;;) {
      const int n = ::epoll_wait(epoll_fd_, events, 256, kSweepMs);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == listen_fd_) {
          if (listening) Accept();
        } else if (fd == wake_fd_) {
          TakeBack();
        } else {
          auto it = connections_.find(fd);
          if (it != connections_.end()) OnReady(it->second.get(), events[i].events);
        }
      }
      const bool stopping = stopping_.load(std::memory_order_acquire);
      if (stopping && listening) {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
        listening = false;
      }
      const auto now = Clock::now();
      if (now >= next_sweep || stopping) {
        Sweep(now, stopping);
        next_sweep = now + std::chrono::milliseconds(kSweepMs);
      }
      if (stopping && connections_.empty()) break;
    }
  }

  void Stop() {
    stopping_.store(true, std::memory_order_release);
    Wake();
  }

  void SetPeers(const std::vector<std::unique_ptr<Loop>>& loops) {
    for (const auto& loop : loops) {
      if (loop.get() != this) peers_.push_back(loop.get());
    }
  }

  // Called by a worker once x's answer is ready. A group commit answers its writers together:
  // only the first of them since the loop last took its answers writes to the eventfd.
  void HandBack(Connection* c) {
    bool first;
    {
      MutexLock lock(&returned_mu_);
      first = returned_.empty() && ready_.empty();  // else a wake is on its way already
      returned_.push_back(c);
    }
    if (first) Wake();
  }

  // Called by the handler once a deferred request can be answered at once.
  void HandReady(Connection* c) {
    bool first;
    {
      MutexLock lock(&returned_mu_);
      first = ready_.empty() && returned_.empty();  // else a wake is on its way already
      ready_.push_back(c);
    }
    if (first) Wake();
  }

  // A request answered off this loop's thread (by a worker, or later): serialised on the
  // thread that filled it in, sent from here.
  void SendLater(Connection* c) {
    Serialize(c);
    HandBack(c);
  }

  // Writes the answer of c.x into c.out.
  void Serialize(Connection* c) const {
    const Exchange& x = c->x;
    std::string& out = c->out;
    out.clear();
    c->out_pos = 0;
    const bool no_body = x.status == 204 || x.status == 304;
    out.reserve(256);
    out += c->minor_version == 0 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out += std::to_string(x.status);
    out += ' ';
    out += Poco::Net::HTTPResponse::getReasonForStatus(
        static_cast<Poco::Net::HTTPResponse::HTTPStatus>(x.status));
    out += "\r\nDate: ";
    out += HttpDate();
    if (!options_.server_name.empty()) {
      out += "\r\nServer: ";
      out += options_.server_name;
    }
    // A server stopping while the request ran closes the connection after this answer.
    c->keep_alive = c->keep_alive && !stopping_.load(std::memory_order_relaxed);
    out += c->keep_alive ? "\r\nConnection: Keep-Alive" : "\r\nConnection: Close";
    if (!no_body) {
      out += "\r\nContent-Type: ";
      out += x.reply_type;
      out += "\r\nContent-Length: ";
      out += std::to_string(x.reply.size());
    }
    for (const auto& [name, value] : x.reply_headers) {
      out += "\r\n";
      out += name;
      out += ": ";
      out += value;
    }
    out += "\r\n\r\n";
    c->body_size = c->head_only || no_body ? 0 : x.reply.size();
  }

 private:
  void Watch(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }

  // Every loop waits on the listening socket; EPOLLEXCLUSIVE wakes one of them per arrival.
  void WatchListener() { Watch(listen_fd_, EPOLLIN | EPOLLEXCLUSIVE); }

  void Wake() {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  void Accept() {
    for (int i = 0; i < 64; ++i) {
      sockaddr_storage address{};
      socklen_t address_len = sizeof address;
      const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&address), &address_len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE) {
          // Out of descriptors: stop accepting until the next sweep rather than spin.
          ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
          accept_paused_ = true;
          LogLine(spdlog::level::warn, "out of file descriptors; accepting paused");
        }
        return;
      }
      if (open_connections_.fetch_add(1) >= options_.max_connections) {
        open_connections_.fetch_sub(1);
        ::close(fd);
        continue;
      }
      std::string client = ClientAddress(address);
      if (!clients_.Take(client)) {
        open_connections_.fetch_sub(1);
        ::close(fd);
        continue;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      // Whichever loop the kernel woke accepts, but the loop holding the fewest connections
      // serves: a client opening its whole pool at once would otherwise land on one thread.
      Loop* target = this;
      for (Loop* peer : peers_) {
        if (peer->held_.load(std::memory_order_relaxed) <
            target->held_.load(std::memory_order_relaxed)) {
          target = peer;
        }
      }
      target->held_.fetch_add(1, std::memory_order_relaxed);
      if (target == this) {
        Adopt(fd, std::move(client));
      } else {
        {
          MutexLock lock(&target->returned_mu_);
          target->handed_.emplace_back(fd, std::move(client));
        }
        target->Wake();
      }
    }
  }

  void Adopt(int fd, std::string client) {
    auto c = std::make_unique<Connection>(fd, limits_);
    c->client = std::move(client);
    c->deadline = Clock::now() + options_.request_timeout;
    Watch(fd, EPOLLIN);
    connections_.emplace(fd, std::move(c));
  }

  void Close(Connection* c) {
    const int fd = c->fd;
    ::close(fd);  // also leaves the epoll set
    clients_.Give(c->client);
    connections_.erase(fd);
    open_connections_.fetch_sub(1);
    held_.fetch_sub(1, std::memory_order_relaxed);
  }

  void OnReady(Connection* c, uint32_t events) {
    if (c->phase == Connection::Phase::kLingering) {
      thread_local char sink[16384];
      ssize_t n;
      while ((n = ::recv(c->fd, sink, sizeof sink, 0)) > 0) {
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) Close(c);
      return;
    }
    if (c->phase == Connection::Phase::kWriting) {
      // Once the answer is out, the requests a client pipelined behind it are already
      // buffered: answer them now, since no new bytes may ever arrive to wake us.
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && Flush(c)) Process(c);
      return;
    }
    if (c->phase == Connection::Phase::kAnswering) {
      // Input while its answer is made (a pipelined request, a close): read once answered.
      if (c->in_epoll) {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
        c->in_epoll = false;
      }
      return;
    }
    if (c->phase != Connection::Phase::kReading) return;
    if (!Receive(c)) {
      Close(c);
      return;
    }
    Process(c);
  }

  // Reads what the socket holds; false on a connection error.
  bool Receive(Connection* c) {
    thread_local char buf[65536];
    if (c->in_pos == c->in.size()) {
      sodium_memzero(c->in.data(), c->in.size());
      c->in.clear();
      c->in_pos = 0;
    } else if (c->in_pos > 65536) {
      sodium_memzero(c->in.data(), c->in_pos);
      c->in.erase(0, c->in_pos);
      c->in_pos = 0;
    }
    size_t total = 0;
    while (total < kReadBurst) {
      const ssize_t n = ::recv(c->fd, buf, sizeof buf, 0);
      if (n > 0) {
        // When `in` grows past its capacity, the old buffer is freed without being wiped;
        // heads (where a bearer key travels) fit the first 64 KiB, so it is large bodies that
        // can leave such a copy.
        c->in.append(buf, static_cast<size_t>(n));
        sodium_memzero(buf, static_cast<size_t>(n));  // may hold a bearer key
        total += static_cast<size_t>(n);
        if (static_cast<size_t>(n) < sizeof buf) break;  // drained; spare the EAGAIN call
        continue;
      }
      if (n == 0) {
        c->peer_closed = true;
        break;
      }
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    return true;
  }

  // Parses and answers every complete request buffered on c, in order.
  void Process(Connection* c) {
    while (c->phase == Connection::Phase::kReading) {
      const bool was_started = c->parser.Started();
      const auto progress = c->parser.Advance(c->in, &c->in_pos);
      if (!Spool(c, progress)) return;
      if (progress == RequestParser::Progress::kNeedMore ||
          progress == RequestParser::Progress::kBodyNext) {
        if (c->peer_closed) {
          // The client stopped sending mid-request: say so (it may still be reading), then
          // close. A connection closed between requests just closes.
          if (c->parser.Started()) {
            AnswerAndClose(c, BadRequest("the request ended before it was complete"));
          } else {
            Close(c);
          }
          return;
        }
        // The request timer starts with its first byte; an idle connection has its own.
        if (!was_started && c->parser.Started()) {
          c->deadline = Clock::now() + options_.request_timeout;
        }
        if (progress == RequestParser::Progress::kBodyNext && !c->continue_sent &&
            c->parser.request().expect_continue) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          c->continue_sent = true;
          [[maybe_unused]] const ssize_t n =
              ::send(c->fd, kContinue.data(), kContinue.size(), MSG_NOSIGNAL);
        }
        return;
      }
      ParsedRequest& r = c->parser.request();
      c->minor_version = r.minor_version;
      ++c->served;
      c->keep_alive = r.keep_alive && c->served < options_.max_keep_alive_requests &&
                      !stopping_.load(std::memory_order_relaxed);
      c->continue_sent = false;
      c->x = ToExchange(std::move(r));
      c->x.received = Clock::now();
      c->x.peer = c->client;
      c->x.body_spool = std::move(c->spool);  // the whole body, when it went to a spool
      c->spool_asked = false;
      c->head_only = c->x.method == "HEAD";
      if (progress == RequestParser::Progress::kFailed) {
        // A framing error leaves the rest of the stream unreadable: answer, then close.
        c->keep_alive = false;
        c->x.body.clear();
        handler_.Answer(c->x, c->parser.error());
        StartWrite(c);
        return;
      }
      c->parser.Reset();
      if (handler_.AnswersAtOnce(c->x)) {
        if (handler_.Defer(c->x, [this, c] { HandReady(c); })) {
          // TakeBack answers it on this thread once the handler calls back (on another
          // thread, which touches nothing of c). Watched for input meanwhile, as below.
          c->phase = Connection::Phase::kAnswering;
          return;
        }
        if (!AnswerHere(c)) return;
        if (!StartWrite(c)) return;
        continue;
      }
      // Off the I/O thread: the worker owns c until it hands it back, all but its phase and
      // in_epoll, which stay this thread's. It stays in the epoll set meanwhile, watched for
      // input as it was: a client sends nothing more before its answer, as a rule, and
      // OnReady takes it out only if one does - two system calls a request saved.
      c->phase = Connection::Phase::kAnswering;
      if (!pool_.Submit(this, c)) {
        c->phase = Connection::Phase::kReading;
        handler_.Answer(c->x, Unavailable("the service is busy; retry in a moment"));
        c->x.reply_headers.emplace_back("Retry-After", "1");
        if (!StartWrite(c)) return;
      }
    }
  }

  // A body the handler keeps out of memory goes to its spool as it arrives; bytes arriving
  // keep such an upload's request timer going (the time-out is then one of silence, not of
  // the whole upload). False when c was answered and is closing.
  bool Spool(Connection* c, RequestParser::Progress progress) {
    using Progress = RequestParser::Progress;
    if (progress == Progress::kFailed) {
      c->spool.reset();
      return true;
    }
    if (progress == Progress::kNeedMore) return true;
    if (!c->spool_asked) {
      c->spool_asked = true;
      auto spool = handler_.SpoolFor(c->parser.request().target);
      if (!spool.ok()) {
        AnswerAndClose(c, spool.status());
        return false;
      }
      c->spool = std::move(spool).value();
    }
    if (!c->spool) return true;
    std::string part = c->parser.TakeBody();
    Status s = c->spool->Append(part);
    sodium_memzero(part.data(), part.size());
    if (s.ok() && progress == Progress::kDone) s = c->spool->Finish();
    if (!s.ok()) {
      AnswerAndClose(c, s);
      return false;
    }
    if (!part.empty()) c->deadline = Clock::now() + options_.request_timeout;
    return true;
  }

  void Rewatch(Connection* c, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = c->fd;
    ::epoll_ctl(epoll_fd_, c->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
    c->in_epoll = true;
  }

  // Answers the workers finished.
  void TakeBack() {
    uint64_t count;
    [[maybe_unused]] const ssize_t n = ::read(wake_fd_, &count, sizeof count);
    std::vector<Connection*> done, ready;
    std::vector<std::pair<int, std::string>> handed;
    {
      MutexLock lock(&returned_mu_);
      done.swap(returned_);
      ready.swap(ready_);
      handed.swap(handed_);
    }
    for (auto& [fd, client] : handed) Adopt(fd, std::move(client));
    for (Connection* c : done) {
      if (!c->in_epoll) Rewatch(c, EPOLLIN);  // else still watched for input, as it was
      c->phase = Connection::Phase::kReading;
      if (StartWrite(c)) Process(c);
    }
    for (Connection* c : ready) {
      if (!c->in_epoll) Rewatch(c, EPOLLIN);  // else still watched for input, as it was
      c->phase = Connection::Phase::kReading;
      if (AnswerHere(c) && StartWrite(c)) Process(c);
    }
  }

  // Answers c's request on this thread; false when the handler answers it later (c is then
  // handed back, as from a worker, once its answer is filled in).
  bool AnswerHere(Connection* c) {
    c->x.send_later = [this, c] { SendLater(c); };
    if (handler_.Answer(c->x, Status::Ok())) return true;
    c->phase = Connection::Phase::kAnswering;
    return false;
  }

  // Sends c.out (serialised by whoever answered); true when the connection is ready for its
  // next request, false when it is waiting to write or closed.
  bool StartWrite(Connection* c) {
    if (c->out.empty()) Serialize(c);
    c->phase = Connection::Phase::kWriting;
    c->deadline = Clock::now() + options_.request_timeout;
    return Flush(c);
  }

  bool Flush(Connection* c) {
    const size_t total = c->out.size() + c->body_size;
    while (c->out_pos < total) {
      iovec parts[2];
      int count = 0;
      if (c->out_pos < c->out.size()) {
        parts[count++] = {c->out.data() + c->out_pos, c->out.size() - c->out_pos};
        if (c->body_size > 0) parts[count++] = {c->x.reply.data(), c->body_size};
      } else {
        const size_t sent_body = c->out_pos - c->out.size();
        parts[count++] = {c->x.reply.data() + sent_body, c->body_size - sent_body};
      }
      msghdr message{};
      message.msg_iov = parts;
      message.msg_iovlen = static_cast<size_t>(count);
      const ssize_t n = ::sendmsg(c->fd, &message, MSG_NOSIGNAL);
      if (n > 0) {
        c->out_pos += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!c->waiting_writable) {
          Rewatch(c, EPOLLOUT);
          c->waiting_writable = true;
        }
        return false;
      }
      Close(c);
      return false;
    }
    c->out.clear();
    c->out_pos = 0;
    c->body_size = 0;
    c->x.WipeCredentials();
    c->x = Exchange{};
    if (c->peer_closed && c->in_pos == c->in.size()) {
      Close(c);
      return false;
    }
    if (!c->keep_alive) {
      Linger(c);
      return false;
    }
    if (c->waiting_writable) {
      Rewatch(c, EPOLLIN);
      c->waiting_writable = false;
    }
    c->phase = Connection::Phase::kReading;
    c->deadline = Clock::now() + options_.keep_alive_timeout;
    return true;  // a pipelined request already buffered is the caller's to Process
  }

  // Closing while the client may still be sending (a refused body, a pipelined request)
  // would reset the connection and could destroy the answer before the client reads it:
  // stop sending, discard what still arrives, and close when the client does (or after a
  // moment).
  void Linger(Connection* c) {
    ::shutdown(c->fd, SHUT_WR);
    c->phase = Connection::Phase::kLingering;
    c->deadline = Clock::now() + std::chrono::seconds(2);
    if (c->waiting_writable) {
      Rewatch(c, EPOLLIN);
      c->waiting_writable = false;
    }
  }

  // Answers `why` on c outside any request it could finish, then closes.
  void AnswerAndClose(Connection* c, const Status& why) {
    c->spool.reset();
    c->spool_asked = false;
    c->keep_alive = false;
    c->x.WipeCredentials();
    c->x = Exchange{};
    c->x.received = Clock::now();
    c->head_only = false;
    handler_.Answer(c->x, why);
    StartWrite(c);
  }

  void Sweep(Clock::time_point now, bool stopping) {
    if (accept_paused_ && !stopping) {
      WatchListener();
      accept_paused_ = false;
    }
    std::vector<Connection*> expired;
    for (auto& [fd, c] : connections_) {
      if (c->phase == Connection::Phase::kAnswering) continue;
      const bool idle = (c->phase == Connection::Phase::kReading && !c->parser.Started() &&
                         c->in_pos == c->in.size()) ||
                        c->phase == Connection::Phase::kLingering;
      if (now >= c->deadline || (stopping && idle)) expired.push_back(c.get());
    }
    for (Connection* c : expired) {
      // RFC 9110 §15.5.9: a request that did not arrive whole in time is answered 408.
      if (c->phase == Connection::Phase::kReading && c->parser.Started() && !stopping) {
        AnswerAndClose(c, Status(Code::kRequestTimeout, "the request did not arrive in time"));
      } else {
        Close(c);
      }
    }
  }

  const EventServerOptions& options_;
  ExchangeHandler& handler_;
  WorkerPool& pool_;
  std::atomic<int>& open_connections_;
  ClientSlots& clients_;
  const int listen_fd_;
  RequestParser::Limits limits_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  bool accept_paused_ = false;
  std::atomic<bool> stopping_{false};
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  std::vector<Loop*> peers_;  // the other loops, set before any runs
  std::atomic<int> held_{0};  // connections this loop serves or has been handed
  Mutex returned_mu_;
  std::vector<Connection*> returned_ GUARDED_BY(returned_mu_);  // answered by workers
  std::vector<Connection*> ready_ GUARDED_BY(returned_mu_);     // deferred, now answerable
  // Accepted by another loop for this one: descriptor and client address.
  std::vector<std::pair<int, std::string>> handed_ GUARDED_BY(returned_mu_);
};

void WorkerPool::Work(Worker& self) {
  NameThisThread("garde-worker");
  MutexLock lock(&mu_);
  for (;;) {
    Job job;
    if (self.has_job) {  // its first, given as it started
      job = self.job;
      self.has_job = false;
    } else if (!queue_.empty()) {
      job = queue_.front();
      queue_.pop_front();
    } else if (stopping_) {
      return;
    } else {
      idle_.push_back(&self);
      while (!self.has_job && !stopping_) self.wake.wait(lock.native());
      if (!self.has_job) {
        idle_.erase(std::find(idle_.begin(), idle_.end(), &self));
        return;
      }
      job = self.job;
      self.has_job = false;
    }
    lock.Unlock();
    Connection* c = job.connection;
    Loop* loop = job.loop;
    c->x.send_later = [loop, c] { loop->SendLater(c); };
    if (handler_.Answer(c->x, Status::Ok())) loop->SendLater(c);  // else once answered
    lock.Relock();
  }
}

}  // namespace

class EventServer::Impl {
 public:
  Impl(EventServerOptions options, ExchangeHandler& handler)
      : options_(std::move(options)), handler_(handler) {}

  ~Impl() { Stop(); }

  Status Start() {
    try {
      Poco::Net::SocketAddress address(options_.host, options_.port);
      // Reuse the address (restart while old connections linger) but not the port: a second
      // service on the same port must fail to start, not share its connections.
      socket_.bind(address, /*reuseAddress=*/true, /*reusePort=*/false);
      socket_.listen(1024);
      socket_.setBlocking(false);
      port_ = socket_.address().port();
    } catch (const Poco::Exception& e) {
      return Unavailable("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                         ": " + e.displayText());
    }
    pool_ = std::make_unique<WorkerPool>(handler_, options_.workers,
                                         static_cast<size_t>(options_.max_queued));
    const int listen_fd = socket_.impl()->sockfd();
    for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
      auto loop = std::make_unique<Loop>(options_, handler_, *pool_, open_connections_, clients_,
                                         listen_fd);
      if (!loop->ok()) return Unavailable("cannot create the I/O threads' epoll sets");
      loops_.push_back(std::move(loop));
    }
    for (auto& loop : loops_) loop->SetPeers(loops_);
    for (auto& loop : loops_) {
      threads_.emplace_back([l = loop.get()] {
        NameThisThread("garde-io");
        l->Run();
      });
    }
    return Status::Ok();
  }

  void Stop() {
    for (auto& loop : loops_) loop->Stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    pool_.reset();  // every connection is back from its worker: the loops waited for them
    loops_.clear();
    socket_.close();
  }

  uint16_t port() const { return port_; }

 private:
  EventServerOptions options_;
  ExchangeHandler& handler_;
  Poco::Net::ServerSocket socket_;
  uint16_t port_ = 0;
  std::atomic<int> open_connections_{0};
  ClientSlots clients_{options_.max_connections_per_client};
  std::unique_ptr<WorkerPool> pool_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::thread> threads_;
};

EventServer::EventServer(EventServerOptions options, ExchangeHandler& handler)
    : impl_(std::make_unique<Impl>(std::move(options), handler)) {}

EventServer::~EventServer() = default;

Status EventServer::Start() { return impl_->Start(); }
uint16_t EventServer::port() const { return impl_->port(); }
void EventServer::Stop() { impl_->Stop(); }

// A per-thread random prefix and a counter avoid a getrandom() call per request.
std::string NextRequestId() {
  thread_local const std::string prefix = RandomId("req_").substr(0, 16);
  thread_local uint64_t counter = 0;
  return prefix + std::to_string(++counter);
}

}  // namespace garde

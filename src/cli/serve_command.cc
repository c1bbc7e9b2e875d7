#include "garde/cli/serve_command.h"

#include <Poco/Util/ServerApplication.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <thread>

#include "garde/app/backups.h"
#include "garde/app/deployment.h"
#include "garde/app/policy_reload.h"
#include "garde/base/log.h"
#include "garde/base/thread_name.h"
#include "garde/crypto/keyring.h"
#include "garde/http/http_service.h"

namespace garde {
namespace {

// Backups and retention sweeps take only the CPU time requests leave (SCHED_IDLE for this
// thread: a request's thread preempts it at once; nice 10 still cost reads about 1 ms of p99).
void YieldToRequests() {
  sched_param none{};
  ::sched_setscheduler(static_cast<pid_t>(::gettid()), SCHED_IDLE, &none);
}

class ServeApplication final : public Poco::Util::ServerApplication {
 public:
  explicit ServeApplication(Config config) : config_(std::move(config)) {}

 protected:
  int main(const std::vector<std::string>&) override {
    // Block the termination signals before any thread exists: every thread inherits the mask,
    // so a SIGTERM that arrives during start-up stays pending until waitForTerminationRequest()
    // takes it, instead of killing the process mid-start.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGQUIT);
    sigaddset(&stop_signals, SIGHUP);  // taken by the reload thread below
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    SetUpLogging(config_.log_level, config_.log_file);
    // Shared with any other service on this directory; a restore waits for none to hold it.
    const int serve_lock =
        ::open((config_.data_dir + "/" + kServeLock).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (serve_lock >= 0 && ::flock(serve_lock, LOCK_SH | LOCK_NB) != 0) {
      std::cerr << "garde: " << config_.data_dir << " is being restored (serve.lock)\n";
      return 1;
    }
    auto d = Deployment::Open(config_);
    if (!d.ok()) {
      std::cerr << "garde: " << d.status().message() << "\n";
      for (const auto& e : d.status().errors()) {
        std::cerr << "  " << e.field << ": " << e.message << "\n";
      }
      return 1;
    }
    if (auto form = Keyring::Form(config_.keyring_path());
        form.ok() && form.value() == KeyringForm::kClear) {
      // Whoever copies the data directory then holds every customer's data in clear.
      LogLine(spdlog::level::warn,
              "THE KEYRING IS IN CLEAR BESIDE THE DATA: development only; seal it with "
              "`garde keys migrate --to passphrase`")
          .Str("keyring", config_.keyring_path());
    }
    if (config_.smtp_host.empty()) {
      const auto policies = d.value()->policies().Current();
      for (const auto& p : policies->purposes()) {
        if (!p.double_opt_in) continue;
        // Its grants wait for a click on a link that nothing sends.
        LogLine(spdlog::level::warn,
                "a purpose asks for double opt-in but e-mail is not configured")
            .Str("purpose", p.id)
            .Str("fix", "set smtp_host and mail_from");
      }
    }
    // A database restored from a backup may predate erasures: carry them out again first.
    auto reapplied = d.value()->requests().ReapplyTombstones();
    if (!reapplied.ok()) {
      std::cerr << "garde: cannot re-apply erasures: " << reapplied.status().message() << "\n";
      return 1;
    }
    const RequestDesk::Reapplied& log = reapplied.value();
    if (log.subjects > 0) {
      LogLine(spdlog::level::warn, "erasures re-applied from the tombstone log")
          .Int("subjects", static_cast<int64_t>(log.subjects));
    }
    LogLine(spdlog::level::info, "tombstone log checked")
        .Int("from_byte", static_cast<int64_t>(log.checked_from))
        .Int("bytes", static_cast<int64_t>(log.log_bytes - log.checked_from));
    if (Status recorded = RecordStartingPolicies(*d.value()); !recorded.ok()) {
      std::cerr << "garde: cannot record the policy version: " << recorded.message() << "\n";
      return 1;
    }
    // The audience index of the last run is read back while the service starts answering;
    // then, as background work, the sealed records and consent facts that reads and checks
    // keep are loaded page by page, so that the first minute after a start is not spent
    // going to the database for each subject.
    std::thread warm_up([&] {
      NameThisThread("garde-warm-up");
      d.value()->audiences().WarmUp();
      ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
      const auto start = std::chrono::steady_clock::now();
      auto records = d.value()->vault().WarmUp();
      auto facts = d.value()->consents().WarmUp();
      if (!records.ok() || !facts.ok()) {
        LogLine(spdlog::level::err, "loading the kept records failed")
            .Str("detail", records.ok() ? facts.status().message() : records.status().message());
        return;
      }
      LogLine(spdlog::level::info, "kept records loaded")
          .Int("sealed_records", static_cast<int64_t>(records.value()))
          .Int("consent_facts", static_cast<int64_t>(facts.value()))
          .Int("ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - start)
                         .count());
    });
    HttpService http(*d.value());
    Status started = http.Start();
    if (!started.ok()) {
      warm_up.join();
      std::cerr << "garde: " << started.message() << "\n";
      return 1;
    }
    LogLine(spdlog::level::info, "listening")
        .Str("host", config_.listen_host)
        .Int("port", http.port())
        .Str("data_dir", config_.data_dir)
        .Str("policies", config_.policies_dir)
        .Str("policies_hash", d.value()->policies().Current()->content_hash());
    // The admin listener (metrics) is announced first: the API's line means "ready".
    std::unique_ptr<HttpService> admin;
    if (!config_.admin_listen_host.empty()) {
      admin = std::make_unique<HttpService>(*d.value(), http);
      if (Status s = admin->Start(); !s.ok()) {
        http.Stop();
        warm_up.join();
        std::cerr << "garde: admin_listen: " << s.message() << "\n";
        return 1;
      }
      LogLine(spdlog::level::info, "admin listener")
          .Str("host", config_.admin_listen_host)
          .Int("port", admin->port());
      std::cout << "garde admin (metrics) on http://" << config_.admin_listen_host << ":"
                << admin->port() << "/metrics" << std::endl;
    }
    std::cout << "garde listening on http://" << config_.listen_host << ":" << http.port()
              << std::endl;

    std::mutex mu;
    std::condition_variable cv;
    bool stopping = false;
    std::thread watcher([&] {
      NameThisThread("garde-watcher");
      bool token_up = true;
      std::unique_lock<std::mutex> lock(mu);
      while (!cv.wait_for(lock, std::chrono::seconds(config_.keyring_watch_seconds),
                          [&] { return stopping; })) {
        if (d.value()->keys().RefreshIfChanged()) {
          LogLine(spdlog::level::info, "keyring reloaded")
              .Int("current_version", d.value()->keys().Current()->current_version());
        }
        // A token that went away stops every decryption, cached keys included; one that
        // comes back is used again. Both are logged once, when they happen.
        const auto ring = d.value()->keys().Current();
        if (const std::string* label = ring->TokenKey(ring->current_version())) {
          const Status token = ring->token()->Probe(*label);
          if (token.ok() != token_up) {
            token_up = token.ok();
            if (token_up) {
              LogLine(spdlog::level::warn, "the PKCS#11 token answers again");
            } else {
              LogLine(spdlog::level::err, "the PKCS#11 token is unavailable: reads answer 503")
                  .Str("error", token.message());
            }
          }
        }
      }
    });
    // Signs a tree head every audit_checkpoint_every entries or audit_checkpoint_seconds.
    // It signs what the importer has logged so far; the importer (nice 10) does the
    // importing, so that a burst of audited reads does not take the cores from requests. If
    // reads keep both cores busy for long, the importer falls behind; from
    // kCatchUpJournals full journals on, this thread (normal priority) imports everything
    // each second, so that requests pay for their entries then. At full load on two cores
    // this slows the backlog's growth without stopping it (docs/benchmarks.md).
    std::thread checkpointer([&] {
      NameThisThread("garde-checkpts");
      constexpr size_t kCatchUpJournals = 8;
      auto last = std::chrono::steady_clock::now();
      std::unique_lock<std::mutex> lock(mu);
      while (!cv.wait_for(lock, std::chrono::seconds(1), [&] { return stopping; })) {
        lock.unlock();
        if (d.value()->audit().JournalBacklog() >= kCatchUpJournals) {
          const Status caught_up = d.value()->audit().Flush();
          if (!caught_up.ok()) {
            LogLine(spdlog::level::err, "audit import failed").Str("detail", caught_up.message());
          }
        }
        auto size = d.value()->audit().Size();
        auto latest = d.value()->audit().LatestCheckpoint();
        const uint64_t signed_size = latest.ok() && latest.value() ? latest.value()->size : 0;
        const bool due_by_count =
            size.ok() &&
            size.value() >= signed_size + static_cast<uint64_t>(config_.audit_checkpoint_every);
        const bool due_by_time = size.ok() && size.value() > signed_size &&
                                 std::chrono::steady_clock::now() - last >=
                                     std::chrono::seconds(config_.audit_checkpoint_seconds);
        // One node signs (the log and its checkpoints are the deployment's, not a node's).
        if ((due_by_count || due_by_time) && d.value()->store().Lead(Job::kCheckpoints)) {
          auto head = d.value()->audit().Checkpoint(/*import_first=*/false);
          if (head.ok()) {
            last = std::chrono::steady_clock::now();
          } else {
            LogLine(spdlog::level::err, "audit checkpoint failed")
                .Str("detail", head.status().message());
          }
        }
        lock.lock();
      }
    });

    // Scheduled backups (backup_interval): due when the newest backup in the directory is
    // that old, so a restart neither skips one nor makes one early. At idle priority:
    // copying the databases must not take the cores from requests.
    std::thread backer([&] {
      NameThisThread("garde-backups");
      if (config_.backup_interval <= 0) return;
      YieldToRequests();
      Backups backups(*d.value(), config_.backup_directory());
      const KeepPolicy keep{config_.backup_keep_last, config_.backup_keep_daily,
                            config_.backup_keep_weekly, config_.backup_keep_monthly};
      int64_t newest = -1;  // unknown until listed
      std::unique_lock<std::mutex> lock(mu);
      while (!cv.wait_for(lock, std::chrono::seconds(1), [&] { return stopping; })) {
        lock.unlock();
        if (newest < 0) {
          auto listed = ListBackups(config_, config_.backup_directory());
          newest = 0;
          if (listed.ok()) {
            for (const auto& b : listed.value()) {
              if (b.error.empty()) newest = std::max(newest, b.info.created_at);
            }
          }
        }
        if (d.value()->clock().Now() - newest >= config_.backup_interval) {
          auto made = backups.Create();
          if (made.ok()) {
            newest = made->created_at;
            LogLine(spdlog::level::info, "backup made")
                .Str("id", made->id)
                .Int("subjects", made->subjects)
                .Int("bytes", made->bytes);
            auto pruned = backups.Prune(keep);
            if (!pruned.ok()) {
              LogLine(spdlog::level::err, "backup prune failed")
                  .Str("detail", pruned.status().message());
            }
          } else {
            newest = d.value()->clock().Now() - config_.backup_interval + 60;  // retry in a minute
            LogLine(spdlog::level::err, "backup failed").Str("detail", made.status().message());
          }
        }
        lock.lock();
      }
    });

    // The retention sweep (retention_interval): due when the last real run started that long
    // ago, so a restart keeps the rhythm (and resumes an interrupted run). The first look is
    // ten minutes after the start (or one interval, if shorter): a service that starts is busy
    // warming up, and one started for a few minutes' work is not swept under its feet.
    std::thread sweeper([&] {
      NameThisThread("garde-retention");
      if (config_.retention_interval <= 0) return;
      YieldToRequests();
      std::unique_lock<std::mutex> lock(mu);
      const auto first = std::chrono::seconds(std::min<int64_t>(config_.retention_interval, 600));
      if (cv.wait_for(lock, first, [&] { return stopping; })) return;
      do {
        lock.unlock();
        int64_t last = 0;
        bool interrupted = false;
        auto runs = d.value()->retention().List(0, 20);
        if (runs.ok()) {
          for (const auto& r : runs.value()) {
            if (r.dry_run) continue;
            interrupted |= r.finished_at == 0;
            last = std::max(last, r.started_at);
          }
        }
        const bool due =
            interrupted || d.value()->clock().Now() - last >= config_.retention_interval;
        if (due && d.value()->store().Lead(Job::kRetention)) {
          RetentionRunOptions options;
          auto run = d.value()->retention().Run(options);
          if (run.ok()) {
            LogLine(spdlog::level::info, "retention sweep done")
                .Str("id", run->id)
                .Str("report", run->report);
          } else {
            LogLine(spdlog::level::err, "retention sweep failed")
                .Str("detail", run.status().message());
          }
        }
        lock.lock();
      } while (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return stopping; }));
    });

    // Webhooks: fans the outbox out and delivers, as fast as the receivers take them, then
    // polls every 50 ms when idle.
    std::thread dispatcher([&] {
      NameThisThread("garde-dispatch");
      WebhookDispatcher* webhooks = d.value()->webhooks();
      if (webhooks == nullptr) return;
      std::unique_lock<std::mutex> lock(mu);
      while (!stopping) {
        lock.unlock();
        // One node delivers: two would send each message twice.
        Result<size_t> sent = size_t{0};
        if (d.value()->store().Lead(Job::kDispatch)) sent = webhooks->Pass();
        if (!sent.ok()) {
          LogLine(spdlog::level::err, "webhook dispatch failed")
              .Str("detail", sent.status().message());
        }
        lock.lock();
        if (!sent.ok() || sent.value() == 0) {
          cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return stopping; });
        }
      }
    });

    // What other nodes sharing the database ask of this one: a reload made through one of
    // them (each node reads its own policy files), and the audit entries this node's journals
    // hold, before an officer's query there.
    d.value()->store().OnPeerAsk([&](PeerEvent event) {
      if (event == PeerEvent::kAuditFlush) {
        const Status flushed = d.value()->audit().Flush();
        if (!flushed.ok()) {
          LogLine(spdlog::level::err, "audit import failed").Str("detail", flushed.message());
        }
        return;
      }
      const Caller peer{"peer", "admin", {}, "peer", ""};
      auto r = ReloadPolicies(*d.value(), peer, "peer");
      if (r.ok()) {
        LogLine(spdlog::level::info, "policies reloaded")
            .Str("before", r->before)
            .Str("after", r->after)
            .Int("changed", r->changed)
            .Str("source", "peer");
      } else {
        LogLine(spdlog::level::err, "policy reload refused; the running policies stay")
            .Str("detail", r.status().message())
            .Str("source", "peer");
      }
    });

    // SIGHUP reloads the policies, linted first, exactly as POST /v1/admin/reload does.
    std::thread reloader([&] {
      NameThisThread("garde-reloader");
      sigset_t hup;
      sigemptyset(&hup);
      sigaddset(&hup, SIGHUP);
      const timespec tick{0, 200 * 1000 * 1000};
      for (;;) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (stopping) return;
        }
        if (sigtimedwait(&hup, nullptr, &tick) != SIGHUP) continue;
        {
          std::lock_guard<std::mutex> lock(mu);
          if (stopping) return;  // the SIGHUP that stopping sends (below), not an operator's
        }
        const Caller signal{"sighup", "admin", {}, "sighup", ""};
        auto r = ReloadPolicies(*d.value(), signal, "sighup");
        if (r.ok()) {
          LogLine(spdlog::level::info, "policies reloaded")
              .Str("before", r->before)
              .Str("after", r->after)
              .Int("changed", r->changed);
        } else {
          LogLine(spdlog::level::err, "policy reload refused; the running policies stay")
              .Str("detail", r.status().message())
              .Int("errors", static_cast<int64_t>(r.status().errors().size()));
        }
      }
    });

    waitForTerminationRequest();
    LogLine(spdlog::level::info, "stopping");
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    cv.notify_all();
    // Wakes the reloader now rather than at its next tick (a stop would wait for it).
    ::pthread_kill(reloader.native_handle(), SIGHUP);
    watcher.join();
    checkpointer.join();
    backer.join();
    sweeper.join();
    dispatcher.join();
    reloader.join();
    if (admin) admin->Stop();
    http.Stop();
    d.value()->store().OnPeerAsk(nullptr);
    warm_up.join();
    // The next run starts its audiences from where this one left them.
    d.value()->audiences().SaveSnapshot();
    // The last entries are covered by a signed head before the process exits.
    auto head = d.value()->audit().Checkpoint();
    if (!head.ok()) {
      LogLine(spdlog::level::err, "final audit checkpoint failed")
          .Str("detail", head.status().message());
    }
    LogLine(spdlog::level::info, "stopped");
    ::close(serve_lock);
    return 0;
  }

 private:
  Config config_;
};

}  // namespace

int RunServe(const CliArgs& args) {
  auto cfg = ResolveConfig(args.ConfigFlags());
  if (!cfg.ok()) {
    std::cerr << "garde: " << cfg.status().message() << "\n";
    for (const auto& e : cfg.status().errors()) {
      std::cerr << "  " << e.field << ": " << e.message << "\n";
    }
    return 1;
  }
  ServeApplication app(cfg.value());
  // Options are ours: Poco sees only the program name.
  std::vector<std::string> poco_args = {"garde"};
  return app.run(poco_args);
}

}  // namespace garde

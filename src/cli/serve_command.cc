#include "garde/cli/serve_command.h"

#include <Poco/Util/ServerApplication.h>

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>

#include "garde/app/deployment.h"
#include "garde/base/log.h"
#include "garde/http/http_service.h"

namespace garde {
namespace {

class ServeApplication final : public Poco::Util::ServerApplication {
 public:
  explicit ServeApplication(Config config) : config_(std::move(config)) {}

 protected:
  int main(const std::vector<std::string>&) override {
    SetUpLogging(config_.log_level, config_.log_file);
    auto d = Deployment::Open(config_);
    if (!d.ok()) {
      std::cerr << "garde: " << d.status().message() << "\n";
      for (const auto& e : d.status().errors()) {
        std::cerr << "  " << e.field << ": " << e.message << "\n";
      }
      return 1;
    }
    HttpService http(*d.value());
    Status started = http.Start();
    if (!started.ok()) {
      std::cerr << "garde: " << started.message() << "\n";
      return 1;
    }
    LogLine(spdlog::level::info, "listening")
        .Str("host", config_.listen_host)
        .Int("port", http.port())
        .Str("data_dir", config_.data_dir)
        .Str("policies", config_.policies_dir)
        .Str("policies_hash", d.value()->policies().Current()->content_hash());
    std::cout << "garde listening on http://" << config_.listen_host << ":" << http.port()
              << std::endl;

    std::mutex mu;
    std::condition_variable cv;
    bool stopping = false;
    std::thread watcher([&] {
      std::unique_lock<std::mutex> lock(mu);
      while (!cv.wait_for(lock, std::chrono::seconds(config_.keyring_watch_seconds),
                          [&] { return stopping; })) {
        if (d.value()->keys().RefreshIfChanged()) {
          LogLine(spdlog::level::info, "keyring reloaded")
              .Int("current_version", d.value()->keys().Current()->current_version());
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
    watcher.join();
    http.Stop();
    LogLine(spdlog::level::info, "stopped");
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

#include "smtp_capture.h"

#include <Poco/JSON/Array.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <regex>
#include <thread>

#include "garde_process.h"

namespace garde::testing {

std::string Mail::Link(const std::string& prefix) const {
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return "";
  const size_t end = text.find_first_of(" \r\n", at);
  return text.substr(at, end - at);
}

std::string Mail::LinkPath() const {
  const std::string link = Link("http://");
  const size_t path = link.find('/', 7);
  return path == std::string::npos ? "" : link.substr(path);
}

SmtpCapture::SmtpCapture() {
  static std::atomic<int> count{0};
  dir_ = std::filesystem::temp_directory_path() /
         ("garde-smtp-" + std::to_string(::getpid()) + "-" + std::to_string(++count));
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  Start();
}

SmtpCapture::~SmtpCapture() {
  Stop();
  std::filesystem::remove_all(dir_);
  std::filesystem::remove(dir_.string() + ".out");
  std::filesystem::remove(dir_.string() + ".err");
}

void SmtpCapture::Start() {
  const std::string out = dir_.string() + ".out";
  std::filesystem::remove(out);
  std::vector<std::string> argv = {"/usr/bin/python3", GARDE_SMTP_CAPTURE, dir_.string()};
  if (port_ != 0) argv.push_back(std::to_string(port_));
  pid_ = SpawnProgram(argv, out, dir_.string() + ".err");
  static const std::regex kListening("listening ([0-9]+)");
  for (int i = 0; i < 200; ++i) {
    std::smatch m;
    const std::string said = ReadFile(out);
    if (std::regex_search(said, m, kListening)) {
      port_ = std::stoi(m[1].str());
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "the SMTP server did not start: " << ReadFile(dir_.string() + ".err");
}

void SmtpCapture::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void SmtpCapture::SetMode(const std::string& mode) {
  std::ofstream(dir_ / "mode", std::ios::trunc) << mode;
}

std::vector<std::string> SmtpCapture::GardeFlags() const {
  return {"--smtp-host",        "127.0.0.1", "--smtp-port", std::to_string(port_),
          "--smtp-tls",         "none",      "--mail-from", "notices@maison-exemple.example",
          "--mail-first-retry", "PT1S"};
}

std::vector<Mail> SmtpCapture::Messages() const {
  std::vector<std::string> names;
  for (const auto& f : std::filesystem::directory_iterator(dir_)) {
    if (f.path().extension() == ".json") names.push_back(f.path().string());
  }
  std::sort(names.begin(), names.end());
  std::vector<Mail> out;
  for (const auto& name : names) {
    auto o = ParseObject(ReadFile(name));
    Mail m;
    m.to = o->getArray("rcpt_tos")->getElement<std::string>(0);
    m.subject = o->getValue<std::string>("subject");
    m.text = o->getValue<std::string>("text");
    m.html = o->getValue<std::string>("html");
    m.headers = o->getObject("headers");
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<Mail> SmtpCapture::WaitFor(size_t n) const {
  for (int i = 0; i < 600; ++i) {
    auto all = Messages();
    if (all.size() >= n) return all;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Messages();
}

Mail SmtpCapture::WaitForEvent(const std::string& event_id) const {
  for (int i = 0; i < 600; ++i) {
    for (auto& m : Messages()) {
      if (m.Header("message-id").find("<" + event_id + "@") != std::string::npos) return m;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "no message for " << event_id;
  return Mail{};
}

}  // namespace garde::testing

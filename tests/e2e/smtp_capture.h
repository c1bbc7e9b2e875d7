// A real SMTP server for end-to-end tests (Debian's python3-aiosmtpd, tests/mail/
// smtp_capture.py): it captures what garde sends, read back with Python's email package.
//
//   SmtpCapture smtp;  g.Start(smtp.GardeFlags());
//   Mail m = smtp.WaitFor(1)[0];  std::string link = m.Link("http://");
#pragma once

#include <Poco/JSON/Object.h>

#include <filesystem>
#include <string>
#include <vector>

namespace garde::testing {

// One captured message, as Python's email package decoded it.
struct Mail {
  std::string to, subject, text, html;
  Poco::JSON::Object::Ptr headers;
  std::string Header(const std::string& name) const {
    return headers->optValue<std::string>(name, "");
  }
  // The first link of the text body that starts with `prefix`.
  std::string Link(const std::string& prefix) const;
  // The path of Link("http://"): "/r/...".
  std::string LinkPath() const;
};

class SmtpCapture {
 public:
  SmtpCapture();
  ~SmtpCapture();
  SmtpCapture(const SmtpCapture&) = delete;
  SmtpCapture& operator=(const SmtpCapture&) = delete;
  // Starts the server (again on the same port once it has one).
  void Start();
  // The server vanishes: connections are refused until Start().
  void Stop();
  int port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_; }
  // accept | tempfail | permfail
  void SetMode(const std::string& mode);
  // The flags that point `garde serve` at this server.
  std::vector<std::string> GardeFlags() const;
  std::vector<Mail> Messages() const;
  // Waits up to 30 s for at least `n` messages.
  std::vector<Mail> WaitFor(size_t n) const;
  // Waits up to 30 s for the message of outbox event `event_id` (its Message-ID).
  Mail WaitForEvent(const std::string& event_id) const;

 private:
  std::filesystem::path dir_;
  int pid_ = -1;
  int port_ = 0;
};

}  // namespace garde::testing

#include "http_fuzz_harness.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "garde/base/log.h"
#include "garde/http/request_parser.h"

namespace garde::fuzz {

HttpFuzzHarness::HttpFuzzHarness() {
  dir_ = (std::filesystem::temp_directory_path() / ("garde-fuzz-" + std::to_string(::getpid())))
             .string();
  std::filesystem::remove_all(dir_);
  SetUpLogging("off", "");
  Config cfg;
  cfg.data_dir = dir_;
  cfg.policies_dir = GARDE_FUZZ_POLICIES;
  cfg.durable = false;
  if (!Deployment::Initialise(cfg).ok()) std::abort();
  auto d = Deployment::Open(cfg);
  if (!d.ok()) std::abort();
  deployment_ = std::move(d.value());
  auto key = deployment_->api_keys().Create(*deployment_->policies().Current(), "fuzz", "operator",
                                            {"customer_management"});
  if (!key.ok()) std::abort();
  operator_key_ = key->token;
  http_ = std::make_unique<HttpService>(*deployment_);
}

HttpFuzzHarness::~HttpFuzzHarness() {
  http_.reset();
  deployment_.reset();
  std::filesystem::remove_all(dir_);
}

Exchange HttpFuzzHarness::RunWire(const std::string& wire) {
  RequestParser::Limits limits;
  limits.max_head_bytes = 2048;
  limits.body_limit = [this](std::string_view target) { return http_->BodyLimit(target); };
  // What the parser reads from the whole buffer: one line per request or error.
  auto read_all = [&](size_t step, std::vector<Exchange>* out) {
    RequestParser parser(limits);
    std::string buffer;
    size_t pos = 0;
    std::string trace;
    for (size_t at = 0; at <= wire.size(); at += step) {
      buffer.append(wire, at, step);
      for (;;) {
        const auto progress = parser.Advance(buffer, &pos);
        if (progress == RequestParser::Progress::kDone) {
          out->push_back(ToExchange(std::move(parser.request())));
          trace += "ok " + out->back().method + " " + out->back().target + " " +
                   std::to_string(out->back().body.size()) + "\n";
          parser.Reset();
          if (out->size() >= 8) return trace;
          continue;
        }
        if (progress == RequestParser::Progress::kFailed) {
          Exchange failed = ToExchange(std::move(parser.request()));
          failed.status = -static_cast<int>(parser.error().code());
          out->push_back(std::move(failed));
          trace += "failed " + std::to_string(static_cast<int>(parser.error().code())) + "\n";
          return trace;
        }
        break;
      }
    }
    return trace;
  };
  std::vector<Exchange> whole, bytewise;
  const std::string a = read_all(wire.size() + 1, &whole);
  const std::string b = read_all(1, &bytewise);
  if (a != b) {
    std::fprintf(stderr, "parser read differently by pieces:\n%s--\n%s", a.c_str(), b.c_str());
    std::abort();
  }
  Exchange last;
  last.status = 200;
  for (Exchange& x : whole) {
    const Status framing =
        x.status < 0 ? Status(static_cast<Code>(-x.status), "framing") : Status::Ok();
    x.status = 200;
    http_->Answer(x, framing);
    if (!KeepsContract(x)) return x;
    last = std::move(x);
  }
  return last;
}

Exchange HttpFuzzHarness::Run(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  if (!in.empty() && in[0] == '~') return RunWire(in.substr(1));
  Exchange x;
  x.request_id = "req_fuzz";
  if (!in.empty() && in[0] == '!') {
    x.headers["authorization"] = "Bearer " + operator_key_;
    in.erase(0, 1);
  }
  size_t eol = in.find('\n');
  const std::string first = in.substr(0, eol);
  const size_t space = first.find(' ');
  x.method = first.substr(0, space);
  x.path = space == std::string::npos ? "/" : first.substr(space + 1);
  size_t pos = eol == std::string::npos ? in.size() : eol + 1;
  while (pos < in.size()) {
    eol = in.find('\n', pos);
    if (eol == std::string::npos) eol = in.size();
    const std::string line = in.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value[0] == ' ') value.erase(0, 1);
    x.headers[name] = value;
    if (name == "content-type") x.content_type = value.substr(0, value.find(';'));
  }
  if (pos < in.size()) x.body = in.substr(pos);
  http_->Dispatch(x);
  return x;
}

bool HttpFuzzHarness::KeepsContract(const Exchange& x) {
  // RFC 9110 §15.6.2, §15.6.6: an unknown method is 501 and another HTTP major version 505,
  // both problem+json; no other 5xx answers any input.
  if (x.status >= 500 && x.status != 501 && x.status != 505) return false;
  if (x.status >= 400 && x.reply_type != "application/problem+json") return false;
  return x.status >= 200;
}

}  // namespace garde::fuzz

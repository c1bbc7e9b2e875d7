// libFuzzer target: the HTTP/1.1 request parser on its own, several pipelined requests per
// input. The same bytes read whole and a byte at a time must give the same requests, in the
// same order, ending at the same place with the same refusal; positions never run backwards.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "garde/http/request_parser.h"

namespace {

std::vector<std::string> ReadAll(const std::string& wire, size_t step) {
  garde::RequestParser::Limits limits;
  limits.max_head_bytes = 4096;
  limits.max_headers = 32;
  limits.body_limit = [](std::string_view target) -> int64_t {
    return target.find(":batch") != std::string_view::npos ? 8192 : 1024;
  };
  garde::RequestParser parser(limits);
  std::vector<std::string> out;
  std::string buffer;
  size_t pos = 0;
  for (size_t at = 0; at < wire.size() && out.size() < 64;) {
    const size_t take = step == 0 ? wire.size() : std::min(step, wire.size() - at);
    buffer.append(wire, at, take);
    at += take;
    for (;;) {
      const size_t before = pos;
      const auto progress = parser.Advance(buffer, &pos);
      if (pos < before || pos > buffer.size()) std::abort();
      if (progress == garde::RequestParser::Progress::kFailed) {
        out.push_back("failed " + std::to_string(static_cast<int>(parser.error().code())));
        return out;
      }
      if (progress != garde::RequestParser::Progress::kDone) break;
      const auto& r = parser.request();
      std::string line = r.method + " " + r.target + " " + std::to_string(r.minor_version) + " " +
                         std::to_string(r.body.size()) + " " + r.body;
      for (const auto& [name, value] : r.headers) line += "|" + name + ":" + value;
      out.push_back(std::move(line));
      parser.Reset();
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string wire(reinterpret_cast<const char*>(data), size);
  const auto whole = ReadAll(wire, 0);
  for (size_t step : {1u, 3u, 17u}) {
    if (ReadAll(wire, step) != whole) {
      std::fprintf(stderr, "reading in steps of %zu differs from reading whole\n", step);
      std::abort();
    }
  }
  return 0;
}

// Drives HttpService::Dispatch with one raw request, in process, against a real deployment
// (temporary data directory, real SQLite file, real keyring). Shared by the libFuzzer target
// and the corpus replay in the regular suite.
//
// Input: "METHOD PATH\n" then "Name: value\n" header lines, a blank line, then the body.
// A first byte of '!' adds a valid operator key bound to customer_management.
// A first byte of '~' makes the rest raw HTTP/1.1 bytes: they go through the request parser
// (whole, and again a byte at a time: both must read the same requests) and every request
// or framing error through HttpService::Answer, as the server does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "garde/app/deployment.h"
#include "garde/http/exchange.h"
#include "garde/http/http_service.h"

namespace garde::fuzz {

class HttpFuzzHarness {
 public:
  HttpFuzzHarness();
  ~HttpFuzzHarness();
  // Runs one input; returns the answer. Never throws.
  Exchange Run(const uint8_t* data, size_t size);
  // True when the answer keeps the contract: no 5xx, errors as problem+json.
  static bool KeepsContract(const Exchange& x);

 private:
  Exchange RunWire(const std::string& wire);

  std::string dir_;
  std::unique_ptr<Deployment> deployment_;
  std::unique_ptr<HttpService> http_;
  std::string operator_key_;
};

}  // namespace garde::fuzz

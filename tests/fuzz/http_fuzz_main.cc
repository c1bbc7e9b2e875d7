// libFuzzer entry: any request must get a non-5xx answer, errors as problem+json.
#include <cstdio>
#include <cstdlib>

#include "http_fuzz_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static garde::fuzz::HttpFuzzHarness harness;
  const garde::Exchange x = harness.Run(data, size);
  if (!garde::fuzz::HttpFuzzHarness::KeepsContract(x)) {
    std::fprintf(stderr, "contract broken: %d %s\n%s\n", x.status, x.reply_type.c_str(),
                 x.reply.c_str());
    std::abort();
  }
  return 0;
}

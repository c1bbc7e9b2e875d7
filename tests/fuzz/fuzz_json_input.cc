// libFuzzer target: JSON request bodies. Anything is answered 400 (not JSON) or 422 (JSON, but
// not what a body may be), never anything else; a body that parses reads as field values.
#include <cstdlib>
#include <string>

#include "garde/http/json_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto obj = garde::ParseJsonObject(body);
  if (!obj.ok()) {
    const auto code = obj.status().code();
    if (code != garde::Code::kBadRequest && code != garde::Code::kUnprocessable) std::abort();
    return 0;
  }
  garde::Status problems(garde::Code::kUnprocessable, "");
  (void)garde::ReadFieldMap(*obj.value(), "fields", &problems);
  (void)garde::ReadString(*obj.value(), "kind", "", &problems);
  return 0;
}

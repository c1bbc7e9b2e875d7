// libFuzzer target: the audience `where` language. Any JSON either parses into a predicate or
// is refused with problems that name where; deep nesting is bounded by the JSON depth limit.
#include <cstdlib>
#include <string>

#include "garde/http/audience_where.h"
#include "garde/http/json_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto json = garde::ParseJson(body);
  if (!json.ok()) return 0;
  garde::Status problems(garde::Code::kUnprocessable, "the audience request is not valid");
  const garde::Predicate p = garde::ParseWhere(json.value(), "where", &problems);
  for (const auto& e : problems.errors()) {
    if (e.field.rfind("where", 0) != 0) std::abort();  // every problem names its path
  }
  (void)p;
  return 0;
}

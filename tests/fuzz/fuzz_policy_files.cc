// libFuzzer target: the policy files an administrator edits. The input replaces register.yaml
// (or, by its first byte, purposes.yaml, schema.yaml, the French texts or a French message
// template) in a copy of the default policies; loading and linting must report problems,
// never crash or hang.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "garde/policy/policy_set.h"
#include "garde/policy/register_lint.h"

namespace {

std::filesystem::path CopyDir() {
  return std::filesystem::temp_directory_path() /
         ("garde-fuzz-policies-" + std::to_string(::getpid()));
}

const std::string& PolicyCopy() {
  static const std::string dir = [] {
    const auto d = CopyDir();
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    std::filesystem::copy(GARDE_FUZZ_POLICIES, d, std::filesystem::copy_options::recursive);
    std::atexit([] {  // libFuzzer ends a timed run with exit()
      std::error_code ignored;
      std::filesystem::remove_all(CopyDir(), ignored);
    });
    return d.string();
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* kFiles[] = {"register.yaml", "purposes.yaml", "schema.yaml", "locales/fr.yaml",
                                 "mail/fr/request_extended.txt"};
  const std::string& dir = PolicyCopy();
  const char* file = kFiles[data[0] % 5];
  const std::string original = [&] {
    std::ifstream in(std::string(GARDE_FUZZ_POLICIES) + "/" + file, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }();
  std::ofstream(dir + "/" + file, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
  auto set = garde::LoadPolicies(dir);
  if (set.ok()) (void)garde::LintRegister(*set.value());
  std::ofstream(dir + "/" + file, std::ios::binary | std::ios::trunc) << original;
  return 0;
}

// A directory of the running test's own under the temporary directory: named by the process
// and the test, left empty (removed if an earlier run left it). A parameterised test's name
// ("Case/param") is flattened, so that the directory is one level deep and removing it
// removes everything the test wrote.
//
//   dir_ = TestDir("garde-fs-");            // /tmp/garde-fs-<pid>-<test>
//   std::filesystem::create_directories(dir_);
//   ...
//   std::filesystem::remove_all(dir_);
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

namespace garde {

inline std::filesystem::path TestDir(const std::string& prefix) {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::replace(name.begin(), name.end(), '/', '_');
  auto dir =
      std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace garde

// A real deployment (keyring, SQLite file, default policies) in a fresh temporary directory
// per test, for unit tests of the domain services.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "garde/app/deployment.h"

namespace garde {

// An active person's row with a stand-in wrapped key, for tests that write to a store
// directly rather than through the vault.
inline SubjectRow StandInRow(const std::string& id) {
  SubjectRow row;
  row.id = id;
  row.kind = "person";
  row.status = "active";
  row.source = "test";
  row.root_key_version = 1;
  row.wrapped_dek = Bytes(73, 1);
  return row;
}

class DeploymentFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("garde-unit-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    cfg_.data_dir = dir_.string();
    cfg_.policies_dir = GARDE_TEST_FIXTURES "/../../policies";
    cfg_.durable = false;
    ASSERT_TRUE(Deployment::Initialise(cfg_).ok());
    auto d = Deployment::Open(cfg_);
    ASSERT_TRUE(d.ok()) << d.status().message();
    d_ = std::move(d.value());
  }
  void TearDown() override {
    d_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  Config cfg_;
  std::unique_ptr<Deployment> d_;
};

}  // namespace garde

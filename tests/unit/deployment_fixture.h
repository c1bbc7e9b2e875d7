// A real deployment (keyring, default policies, every domain service) in a fresh temporary
// directory per test, for unit tests of the domain services: on in-memory stores (milliseconds,
// nothing to clean up), or on the SQLite files `garde serve` uses when a test is about them
// (reopening, crashes, files on disk): set `sqlite_ = true` before SetUp. In memory, the
// domain's own files (audit journals, tombstone log, audience snapshot) are in memory too.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "garde/app/deployment.h"
#include "garde/store/memory_store.h"
#include "test_dir.h"

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

// The audit log's latest head signed again as versions before the actor counts signed it
// (no actors line); "" when no head can be signed.
inline std::string LegacyHeadNote(Deployment& d) {
  auto head = d.audit().Checkpoint();
  if (!head.ok() || head->root.size() != 32) return "";
  SignedHead legacy{head->size, {}, head->time};
  std::copy(head->root.begin(), head->root.end(), legacy.root.begin());
  return d.signer().Sign(legacy);
}

class DeploymentFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("garde-unit-");
    cfg_.data_dir = dir_.string();
    cfg_.policies_dir = GARDE_TEST_FIXTURES "/../../policies";
    cfg_.durable = false;
    ASSERT_TRUE(Deployment::Initialise(cfg_).ok());
    auto d = sqlite_ ? Deployment::Open(cfg_) : Deployment::Open(cfg_, MemoryStores);
    ASSERT_TRUE(d.ok()) << d.status().message();
    d_ = std::move(d.value());
  }
  void TearDown() override {
    d_.reset();
    std::filesystem::remove_all(dir_);
  }

  static Result<DeploymentStores> MemoryStores(const Config&) {
    return DeploymentStores{std::make_unique<MemoryStore>(), std::make_unique<MemoryStore>(),
                            NewMemoryFileSystem()};
  }

  bool sqlite_ = false;
  std::filesystem::path dir_;
  Config cfg_;
  std::unique_ptr<Deployment> d_;
};

}  // namespace garde

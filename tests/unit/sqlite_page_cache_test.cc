// What the SQLite store's connections keep in their page caches: a reader keeps no more than
// its `cache_bytes`, the writer its own 16 MiB, and CacheBytes counts both.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "deployment_fixture.h"
#include "garde/store/sqlite_store.h"

namespace garde {
namespace {

TEST(SqlitePageCache, AReaderKeepsItsOwnSizeAndTheStoreCountsEveryConnection) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("garde-page-cache-" + std::to_string(::getpid()) + ".db");
  std::filesystem::remove(path);
  constexpr int64_t kMiB = int64_t{1} << 20;
  {
    SqliteOptions o;
    o.path = path.string();
    o.synchronous_full = false;
    o.max_connections = 1;
    o.cache_bytes = kMiB;
    auto store = std::move(SqliteStore::Open(o).value());
    // ~24 MB of subjects: more than either cache holds.
    for (int batch = 0; batch < 48; ++batch) {
      ASSERT_TRUE(store
                      ->Write([&](WriteTx& tx) -> Status {
                        for (int i = 0; i < 1000; ++i) {
                          SubjectRow row = StandInRow("sub_" + std::to_string(batch * 1000 + i));
                          row.wrapped_dek = Bytes(500, static_cast<uint8_t>(i));
                          GARDE_RETURN_IF_ERROR(tx.InsertSubject(row));
                        }
                        return Status::Ok();
                      })
                      .ok());
    }
    const size_t written = store->CacheBytes();  // the writer's alone so far
    EXPECT_GT(written, static_cast<size_t>(8 * kMiB));
    EXPECT_LE(written, static_cast<size_t>(17 * kMiB));
    // A reader goes through every page.
    size_t seen = 0;
    ASSERT_TRUE(store
                    ->Read([&](ReadTx& tx) -> Status {
                      std::string after;
                      for (;;) {
                        GARDE_ASSIGN_OR_RETURN(auto page, tx.ScanSubjects(after, 4096));
                        if (page.empty()) return Status::Ok();
                        seen += page.size();
                        after = page.back().id;
                      }
                    })
                    .ok());
    EXPECT_EQ(seen, 48000u);
    const size_t read = store->CacheBytes() - written;
    EXPECT_GT(read, static_cast<size_t>(kMiB / 2));
    EXPECT_LE(read, static_cast<size_t>(kMiB + kMiB / 4));
  }
  for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + ext);
}

}  // namespace
}  // namespace garde

// Baseline of the audience benchmark: how long this machine takes merely to read three
// encrypted fields of N rows from a SQLite file and decrypt them, on two threads, with one
// key, one table and no policy, consent or envelope. Creates the file on first use.
//
//   garde_bench_decrypt_baseline --db /tmp/baseline.db --rows 1000000 [--runs 3]
// Prints "RESULT seconds=… rows=…" per run; the first run follows a fresh open of the file.
#include <sodium.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kBox = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;

void Check(int rc, sqlite3* db, const char* what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return;
  std::fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
  std::exit(1);
}

std::vector<unsigned char> Seal(const unsigned char* key, const std::string& plain) {
  std::vector<unsigned char> box(kBox + plain.size() + kTag);
  randombytes_buf(box.data(), kBox);
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(box.data() + kBox, &n,
                                             reinterpret_cast<const unsigned char*>(plain.data()),
                                             plain.size(), nullptr, 0, nullptr, box.data(), key);
  return box;
}

void Create(const std::string& path, int64_t rows, const unsigned char* key) {
  sqlite3* db = nullptr;
  Check(sqlite3_open(path.c_str(), &db), db, "open");
  Check(
      sqlite3_exec(db,
                   "CREATE TABLE IF NOT EXISTS people("
                   "id TEXT PRIMARY KEY, gender BLOB, postal_code BLOB, spend BLOB) WITHOUT ROWID;"
                   "BEGIN;",
                   nullptr, nullptr, nullptr),
      db, "schema");
  sqlite3_stmt* st = nullptr;
  Check(sqlite3_prepare_v2(db, "INSERT INTO people VALUES(?,?,?,?)", -1, &st, nullptr), db,
        "prepare");
  for (int64_t i = 0; i < rows; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "sub_%012lld", static_cast<long long>(i));
    const auto g = Seal(key, i % 2 ? "s:F" : "s:M");
    const auto p = Seal(key, "s:" + std::to_string(75000 + randombytes_uniform(20000)));
    const auto s = Seal(key, "n:" + std::to_string(randombytes_uniform(1000)));
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 2, g.data(), static_cast<int>(g.size()), SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 3, p.data(), static_cast<int>(p.size()), SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 4, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    Check(sqlite3_step(st), db, "insert");
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  Check(sqlite3_exec(db, "COMMIT;", nullptr, nullptr, nullptr), db, "commit");
  sqlite3_close(db);
}

// Reads and decrypts the rows with from <= id < before (empty: unbounded); returns how many.
int64_t Scan(const std::string& path, const std::string& from, const std::string& before,
             const unsigned char* key) {
  sqlite3* db = nullptr;
  Check(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), db, "open");
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* st = nullptr;
  Check(sqlite3_prepare_v2(db,
                           before.empty()
                               ? "SELECT gender, postal_code, spend FROM people WHERE id >= ?1"
                               : "SELECT gender, postal_code, spend FROM people "
                                 "WHERE id >= ?1 AND id < ?2",
                           -1, &st, nullptr),
        db, "prepare");
  sqlite3_bind_text(st, 1, from.c_str(), -1, SQLITE_TRANSIENT);
  if (!before.empty()) sqlite3_bind_text(st, 2, before.c_str(), -1, SQLITE_TRANSIENT);
  int64_t n = 0;
  unsigned char plain[256];
  while (sqlite3_step(st) == SQLITE_ROW) {
    bool ok = true;
    for (int c = 0; c < 3; ++c) {
      const auto* box = static_cast<const unsigned char*>(sqlite3_column_blob(st, c));
      const auto size = static_cast<size_t>(sqlite3_column_bytes(st, c));
      unsigned long long len = 0;
      ok &= size >= kBox + kTag && size - kBox - kTag <= sizeof plain &&
            crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &len, nullptr, box + kBox,
                                                       size - kBox, nullptr, 0, box, key) == 0;
    }
    if (!ok) {
      std::fprintf(stderr, "row %lld fails authentication\n", static_cast<long long>(n));
      std::exit(1);
    }
    ++n;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = "/tmp/garde-decrypt-baseline.db";
  int64_t rows = 1000000;
  int runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--db") == 0) path = argv[i + 1];
    if (std::strcmp(argv[i], "--rows") == 0) rows = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--runs") == 0) runs = std::atoi(argv[i + 1]);
  }
  if (sodium_init() < 0) return 1;
  // A fixed key: the file is a throwaway of random values, never personal data.
  unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
  std::memset(key, 7, sizeof key);
  {
    sqlite3* db = nullptr;
    int64_t have = 0;
    // A rollback journal: the two readers then share the file with no WAL index to set up.
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK &&
        sqlite3_exec(db, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr) == SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT count(*) FROM people", -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW) {
        have = sqlite3_column_int64(st, 0);
      }
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    if (have != rows) {
      std::remove(path.c_str());
      Create(path, rows, key);
    }
  }
  // Two halves of the id range on two threads, like the service's own scans.
  char split[32];
  std::snprintf(split, sizeof split, "sub_%012lld", static_cast<long long>(rows / 2));
  for (int r = 0; r < runs; ++r) {
    const auto start = std::chrono::steady_clock::now();
    int64_t upper = 0;
    std::thread helper([&] { upper = Scan(path, split, "", key); });
    const int64_t lower = Scan(path, "", split, key);
    helper.join();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("  baseline: RESULT seconds=%.3f rows=%lld\n", s,
                static_cast<long long>(lower + upper));
    std::fflush(stdout);
  }
  return 0;
}

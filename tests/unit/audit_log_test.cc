#include "garde/domain/audit_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "deployment_fixture.h"
#include "garde/app/deployment.h"
#include "garde/base/encoding.h"
#include "garde/store/sqlite_store.h"

namespace garde {
namespace {

// A well-formed subject id for a name ("sub_" + the name in hex, padded): the log keeps only
// well-formed ids as given (audit_values.h).
std::string Sid(const std::string& name) {
  std::string hex = HexEncode(reinterpret_cast<const uint8_t*>(name.data()), name.size());
  hex.resize(26, '0');
  return "sub_" + hex;
}

class AuditLogTest : public DeploymentFixture {
 protected:
  void Append(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(
          d_->audit().Record(nullptr, caller_, {"test.event", "", "", "ok", {"f"}, i}).ok());
    }
  }
  Caller caller_{"key_t", "operator", {}, "req_t", ""};
};

// The log as it lives on disk: reopened after a crash, restored, its SQLite subject index runs.
class AuditLogFileTest : public AuditLogTest {
 protected:
  void SetUp() override {
    sqlite_ = true;
    AuditLogTest::SetUp();
  }
};

TEST_F(AuditLogTest, EntriesAreCanonicalAndCarryNoValues) {
  const std::string e = AuditLog::Encode(7, 1795341600, caller_,
                                         {"subject.read", "sub_x", "crm", "ok", {"email"}, 1});
  EXPECT_EQ(e, R"({"v":1,"seq":7,"time":"2026-11-22T10:00:00Z","actor":"key_t","role":"operator",)"
               R"("action":"subject.read","subject":"sub_x","activity":"crm","request_id":"req_t",)"
               R"("outcome":"ok","fields":["email"],"count":1,"client":null})");
  Caller from = caller_;
  from.client = d_->audit().values().Client("203.0.113.7");
  ASSERT_EQ(from.client.size(), 16u);
  EXPECT_NE(from.client, d_->audit().values().Client("203.0.113.8"));
  EXPECT_NE(AuditLog::Encode(7, 1795341600, from, {"subject.read", "", "", "ok", {}, 0})
                .find(R"("count":0,"client":")" + from.client + "\"}"),
            std::string::npos);
}

// SPEC §2.6: a client's value that is not a well-formed id or a declared activity is never
// stored as given, and no value can make the log fail verification.
TEST_F(AuditLogTest, HostileValuesAreKeptOnlyAsKeyedDigestsAndTheLogVerifies) {
  const std::vector<std::string> hostile = {
      "x\"y", "a\tb", "someone@example.org", "\xff\xfe", std::string(300, 'q'), ""};
  for (const auto& v : hostile) {
    ASSERT_TRUE(d_->audit().Record(nullptr, caller_, {"subject.read", v, v, "ok", {v}, 1}).ok());
    // With a change too (the pending path).
    ASSERT_TRUE(
        d_->store()
            .Write([&](WriteTx& tx) {
              return d_->audit().Record(&tx, caller_, {"subject.rectify", v, v, "ok", {v}, 1});
            })
            .ok());
  }
  ASSERT_TRUE(d_->audit().Flush().ok());
  std::vector<std::string> entries;
  ASSERT_TRUE(d_->audit()
                  .Scan(0, 1000,
                        [&](const AuditRow& r) {
                          entries.push_back(r.entry);
                          return true;
                        })
                  .ok());
  ASSERT_EQ(entries.size(), 2 * hostile.size());
  for (const auto& e : entries) {
    EXPECT_EQ(e.find("someone@"), std::string::npos) << e;
    EXPECT_EQ(e.find("x\\\"y"), std::string::npos) << e;
    EXPECT_EQ(e.find("qqqq"), std::string::npos) << e;
    for (char c : e) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << e;
  }
  // The same value gives the same digest (attempts can be correlated); "" stays null.
  EXPECT_EQ(entries[4].substr(entries[4].find("\"subject\"")),
            entries[5].substr(entries[5].find("\"subject\"")))
      << "same value, same marker";
  EXPECT_NE(entries[10].find("\"subject\":null,\"activity\":null"), std::string::npos)
      << entries[10];
  EXPECT_NE(entries[0].find("\"subject\":\"malformed:"), std::string::npos) << entries[0];
  EXPECT_NE(entries[0].find("\"activity\":\"undeclared:"), std::string::npos) << entries[0];
  EXPECT_TRUE(VerifyAuditLog(d_->audit_store(), d_->signer().public_key(), d_->signer().origin(),
                             {}, nullptr)
                  .ok());
}

TEST_F(AuditLogTest, StoredTreeMatchesARecomputedTreeAtEverySize) {
  Append(37);
  std::vector<Hash> leaves;
  ASSERT_TRUE(d_->audit()
                  .Scan(0, 1000,
                        [&](const AuditRow& r) {
                          leaves.push_back(LeafHash(r.entry));
                          return true;
                        })
                  .ok());
  ASSERT_EQ(leaves.size(), 37u);
  MerkleAccumulator acc;
  for (uint64_t n = 1; n <= leaves.size(); ++n) {
    acc.Add(leaves[n - 1]);
    auto root = d_->audit().Root(n);
    ASSERT_TRUE(root.ok()) << root.status().message();
    EXPECT_EQ(root.value(), acc.Root()) << "size " << n;
    for (uint64_t i = 0; i < n; i += 5) {
      auto proof = d_->audit().InclusionProof(i, n);
      ASSERT_TRUE(proof.ok());
      EXPECT_TRUE(VerifyInclusion(leaves[i], i, n, proof.value(), root.value()));
    }
  }
  auto p = d_->audit().ConsistencyProof(13, 37);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(VerifyConsistency(13, 37, d_->audit().Root(13).value(), d_->audit().Root(37).value(),
                                p.value()));
  EXPECT_EQ(d_->audit().InclusionProof(37, 37).status().code(), Code::kUnprocessable);
  EXPECT_EQ(d_->audit().ConsistencyProof(3, 38).status().code(), Code::kUnprocessable);
}

TEST_F(AuditLogTest, AWriteThatFailsHalfWayLeavesNeitherChangeNorEntry) {
  Append(3);
  Status s = d_->store().Write([&](WriteTx& tx) -> Status {
    const SubjectRow row = StandInRow(RandomId("sub_"));
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(row));
    GARDE_RETURN_IF_ERROR(
        d_->audit().Record(&tx, caller_, {"subject.create", row.id, "", "ok", {}, 0}));
    return Internal("forced failure after the data write");
  });
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_EQ(d_->audit().Size().value(), 3u);
  int64_t subjects = -1;
  ASSERT_TRUE(d_->store()
                  .Read([&](ReadTx& tx) {
                    subjects = tx.CountSubjects().value();
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(subjects, 0);
  // The tree is intact: the next entry lands at position 3.
  Append(1);
  EXPECT_EQ(d_->audit().Size().value(), 4u);
  EXPECT_TRUE(VerifyAuditLog(d_->audit_store(), d_->signer().public_key(), d_->signer().origin(),
                             {}, nullptr)
                  .ok());
}

TEST_F(AuditLogTest, CheckpointsAreSignedAndOnlyOurKeyVerifiesThem) {
  Append(5);
  auto head = d_->audit().Checkpoint();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, 5u);
  auto parsed = ParseCheckpoint(head->note, d_->signer().public_key(), d_->signer().origin());
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->size, 5u);
  EXPECT_EQ(Bytes(parsed->root.begin(), parsed->root.end()), head->root);
  // The same head again: no new checkpoint.
  EXPECT_EQ(d_->audit().Checkpoint()->size, 5u);
  size_t stored = 0;
  ASSERT_TRUE(d_->audit_store()
                  .Read([&](ReadTx& tx) {
                    stored = tx.ListCheckpoints().value().size();
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(stored, 1u);
  EXPECT_EQ(d_->audit().LatestCheckpoint().value()->size, 5u);

  std::string forged = head->note;
  forged[forged.find('\n') + 1] = '9';  // claim another size
  EXPECT_FALSE(ParseCheckpoint(forged, d_->signer().public_key(), d_->signer().origin()).ok());
  PublicKey other{};
  other[0] = 1;
  EXPECT_FALSE(ParseCheckpoint(head->note, other, d_->signer().origin()).ok());
}

// A change's entry: committed with the change, then appended by the appender.
Status WriteWithEntry(Deployment& d, const Caller& caller, const std::string& action) {
  return d.store().Write([&](WriteTx& tx) {
    return d.audit().Record(&tx, caller, {action, Sid("x"), "", "ok", {}, 0});
  });
}

int64_t PendingRows(Deployment& d) {
  int64_t n = -1;
  EXPECT_TRUE(d.store()
                  .Read([&](ReadTx& tx) {
                    n = static_cast<int64_t>(tx.ListPendingAudit(0, 100000).value().size());
                    return Status::Ok();
                  })
                  .ok());
  return n;
}

TEST_F(AuditLogTest, AChangeIsInTheLogOnceItsCallReturnsAndLeavesTheVault) {
  Append(2);
  ASSERT_TRUE(WriteWithEntry(*d_, caller_, "subject.update").ok());
  auto rows = d_->audit().Query({});  // queries append what is pending first
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_NE(rows->back().entry.find("\"action\":\"subject.update\""), std::string::npos);
  EXPECT_EQ(rows->back().seq, 2u);
  d_->audit().Stop();  // trims the vault's pending rows
  EXPECT_EQ(PendingRows(*d_), 0);
}

TEST_F(AuditLogFileTest, EntriesLeftPendingByACrashAreLoggedAtTheNextStart) {
  // What a process that died between its commit and the append leaves behind.
  ASSERT_TRUE(d_->store()
                  .Write([&](WriteTx& tx) -> Status {
                    for (int i = 0; i < 3; ++i) {
                      GARDE_RETURN_IF_ERROR(tx.InsertPendingAudit(
                          {0, i, Sid("x"),
                           AuditLog::Encode(0, 1795341600, caller_,
                                            {"subject.update", Sid("x"), "", "ok", {}, i})
                               .substr(14)}));
                    }
                    return Status::Ok();
                  })
                  .ok());
  d_.reset();
  auto reopened = Deployment::Open(cfg_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().message();
  d_ = std::move(reopened.value());
  EXPECT_EQ(d_->audit().Size().value(), 3u);
  EXPECT_TRUE(VerifyAuditLog(d_->audit_store(), d_->signer().public_key(), d_->signer().origin(),
                             {}, nullptr)
                  .ok());
}

TEST_F(AuditLogTest, TwoAppendersNeverLogAnEntryTwice) {
  // A second appender over the same files, as a CLI command beside the service would be.
  AuditLog other(d_->store(), d_->audit_store(), d_->clock(), d_->signer(),
                 AuditLog::Options{dir_.string(), 50, 1 << 20});
  ASSERT_TRUE(other.Flush().ok());  // learns the intake mark (nothing yet)
  d_->audit().Stop();               // the first appender: only explicit flushes from now on
  ASSERT_TRUE(WriteWithEntry(*d_, caller_, "apikey.create").ok());
  ASSERT_TRUE(WriteWithEntry(*d_, caller_, "apikey.revoke").ok());
  ASSERT_TRUE(d_->audit().Flush().ok());
  ASSERT_TRUE(other.Flush().ok());  // sees the same pending rows, already logged
  EXPECT_EQ(other.Size().value(), 2u);
  EXPECT_EQ(d_->audit().Size().value(), 2u);
}

TEST_F(AuditLogFileTest, AVaultRestoredFromAnOlderBackupKeepsLoggingItsChanges) {
  const auto backup = dir_ / "garde.db.bak";
  d_.reset();  // closed: the file alone is a consistent copy
  std::filesystem::copy_file(dir_ / "garde.db", backup);
  auto d = Deployment::Open(cfg_);
  ASSERT_TRUE(d.ok());
  d_ = std::move(d.value());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(WriteWithEntry(*d_, caller_, "subject.update").ok());
  EXPECT_EQ(d_->audit().Size().value(), 5u);
  d_.reset();
  std::filesystem::remove(dir_ / "garde.db-wal");
  std::filesystem::remove(dir_ / "garde.db-shm");
  std::filesystem::copy_file(backup, dir_ / "garde.db",
                             std::filesystem::copy_options::overwrite_existing);
  d = Deployment::Open(cfg_);
  ASSERT_TRUE(d.ok()) << d.status().message();
  d_ = std::move(d.value());
  // The restored vault would number its pending entries from 1 again: they would look
  // logged already. Opening moves its numbering past the log's intake mark.
  ASSERT_TRUE(WriteWithEntry(*d_, caller_, "subject.erase").ok());
  auto rows = d_->audit().Query({});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 6u);
  EXPECT_NE(rows->back().entry.find("subject.erase"), std::string::npos);
}

TEST_F(AuditLogTest, ConcurrentReadsAreAllLoggedInOneValidTree) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        EXPECT_TRUE(
            d_->audit()
                .Record(nullptr, caller_,
                        {"subject.read", Sid("y"), "customer_management", "ok", {"email"}, 1})
                .ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(d_->audit().Size().value(), 400u);
  EXPECT_TRUE(VerifyAuditLog(d_->audit_store(), d_->signer().public_key(), d_->signer().origin(),
                             {}, nullptr)
                  .ok());
}

// A read-journal record as AuditJournal writes it: header (magic, length), text, padding.
std::string JournalRecord(const Caller& caller, int64_t ns, int count) {
  const std::string text =
      std::to_string(ns) + "\tsub_j\t" +
      AuditLog::Encode(0, 1795341600, caller,
                       {"subject.read", Sid("j"), "customer_management", "ok", {}, count})
          .substr(14);
  const uint64_t header = (uint64_t{0x47414A31} << 32) | text.size();
  std::string out(reinterpret_cast<const char*>(&header), 8);
  out += text;
  out.resize((out.size() + 7) / 8 * 8, '\0');
  return out;
}

TEST_F(AuditLogFileTest, AJournalLeftByACrashedProcessIsLoggedOnceAndRemoved) {
  d_.reset();
  const std::string r1 = JournalRecord(caller_, 1, 1), r2 = JournalRecord(caller_, 2, 2),
                    r3 = JournalRecord(caller_, 3, 3), r5 = JournalRecord(caller_, 5, 5);
  // Record 4 was being copied when the process died: no header yet, half its text.
  std::string r4 = JournalRecord(caller_, 4, 4);
  std::fill(r4.begin(), r4.begin() + 8, '\0');
  r4.resize(r4.size() / 2 / 8 * 8);
  // Crashed after logging the first record: the log knows how far it got.
  {
    std::ofstream(dir_ / "audit-journal-crashed00000000.log", std::ios::binary)
        << r1 << r2 << r3 << r4 << r5 << std::string(4096, '\0');
    auto store =
        SqliteStore::Open({.path = cfg_.audit_database_path(), .schema = SqliteSchema::kAudit});
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE(store.value()
                    ->Write([&](WriteTx& tx) {
                      return tx.SetJournalImported("audit-journal-crashed00000000.log",
                                                   static_cast<int64_t>(r1.size()));
                    })
                    .ok());
  }
  // A journal its (running) process holds locked is not touched.
  std::ofstream(dir_ / "audit-journal-live0000000000.log", std::ios::binary) << r1;
  const int live = ::open((dir_ / "audit-journal-live0000000000.log").c_str(), O_RDONLY);
  ASSERT_EQ(::flock(live, LOCK_EX | LOCK_NB), 0);

  auto d = Deployment::Open(cfg_);
  ASSERT_TRUE(d.ok()) << d.status().message();
  d_ = std::move(d.value());
  auto rows = d_->audit().Query({});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u) << "records 2, 3 and 5; not 1 again, not the torn 4";
  EXPECT_NE(rows->at(0).entry.find("\"count\":2"), std::string::npos);
  EXPECT_NE(rows->at(1).entry.find("\"count\":3"), std::string::npos);
  EXPECT_NE(rows->at(2).entry.find("\"count\":5"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "audit-journal-crashed00000000.log"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "audit-journal-live0000000000.log"));
  ::close(live);
}

std::vector<std::string> JournalFiles(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().filename().string().rfind("audit-journal-", 0) == 0) {
      out.push_back(f.path().string());
    }
  }
  return out;
}

TEST_F(AuditLogFileTest, ReadsGoToAJournalFileUntilImportedThenItIsRemoved) {
  ASSERT_TRUE(d_->audit()
                  .Record(nullptr, caller_,
                          {"subject.read", Sid("k"), "customer_management", "ok", {"email"}, 1})
                  .ok());
  const auto files = JournalFiles(dir_);
  ASSERT_FALSE(files.empty());
  bool found = false;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    found = found || bytes.find("\t" + Sid("k") + "\t,\"time\":") != std::string::npos;
  }
  EXPECT_TRUE(found) << "the entry is on file before Record returns";
  EXPECT_EQ(d_->audit().Size().value(), 1u);
  d_->audit().Stop();
  EXPECT_TRUE(JournalFiles(dir_).empty());
  EXPECT_EQ(d_->audit().Size().value(), 1u);
}

TEST_F(AuditLogTest, FullJournalsAreRotatedWithoutLosingOrRepeatingAnEntry) {
  d_->audit().Stop();
  // Journals of 4 KiB: a dozen entries each.
  AuditLog small(d_->store(), d_->audit_store(), d_->clock(), d_->signer(),
                 AuditLog::Options{dir_.string(), 5, 4096});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        EXPECT_TRUE(small
                        .Record(nullptr, caller_,
                                {"subject.read", Sid("r"), "customer_management", "ok", {}, i})
                        .ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(small.Size().value(), 400u);
  small.Stop();
  EXPECT_TRUE(JournalFiles(dir_).empty());
  EXPECT_TRUE(VerifyAuditLog(d_->audit_store(), d_->signer().public_key(), d_->signer().origin(),
                             {}, nullptr)
                  .ok());
}

// An importer that fell behind by many journals catches up one journal a pass: every entry
// logged once, in a log that verifies, and no pass holding more than a journal's entries.
TEST_F(AuditLogTest, AnImporterFarBehindTakesOneJournalAPass) {
  d_->audit().Stop();
  // Journals of 4 KiB (a dozen entries) and an importer that does not run by itself.
  AuditLog small(d_->store(), d_->audit_store(), d_->clock(), d_->signer(),
                 AuditLog::Options{dir_.string(), 600000, 4096});
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(small
                    .Record(nullptr, caller_,
                            {"subject.read", Sid("b"), "customer_management", "ok", {}, i})
                    .ok());
  }
  EXPECT_GT(JournalFiles(dir_).size(), 20u);
  ASSERT_TRUE(small.Flush().ok());
  EXPECT_EQ(small.Size().value(), 300u);
  EXPECT_GT(small.largest_import(), 0u);
  EXPECT_LE(small.largest_import(), 20u);  // one 4 KiB journal's entries
  small.Stop();
  EXPECT_TRUE(JournalFiles(dir_).empty());
  EXPECT_TRUE(VerifyAuditLog(d_->audit_store(), d_->signer().public_key(), d_->signer().origin(),
                             {}, nullptr)
                  .ok());
}

// The bytes of this process's memory that map files under `dir` (its /proc/self/smaps).
int64_t ResidentBytesOfFilesIn(const std::filesystem::path& dir) {
  std::ifstream smaps("/proc/self/smaps");
  const std::string prefix = dir.string() + "/";
  int64_t kib = 0;
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find(' ') != std::string::npos && line.find(':') > line.find(' ')) {
      inside = line.find(prefix) != std::string::npos;  // a mapping's first line
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      kib += std::stoll(line.substr(4));
    }
  }
  return kib * 1024;
}

// A journal full and waiting for the importer is the file's, not the process's: a backlog
// of them under load once held 100-200 MB of a million-subject server's resident memory.
// Its entries are still all imported, once, from the file.
TEST_F(AuditLogTest, AFullJournalWaitingForTheImporterLeavesTheProcesssMemory) {
  d_->audit().Stop();
  constexpr int64_t kJournal = 64 << 10;
  // An importer that does not run by itself.
  AuditLog small(d_->store(), d_->audit_store(), d_->clock(), d_->signer(),
                 AuditLog::Options{dir_.string(), 600000, kJournal});
  int recorded = 0;
  while (JournalFiles(dir_).size() < 10) {
    ASSERT_TRUE(small
                    .Record(nullptr, caller_,
                            {"subject.read", Sid("m"), "customer_management", "ok", {}, recorded})
                    .ok());
    ++recorded;
  }
  // At most the current journal and the spare are resident, not the eight full ones.
  EXPECT_LE(ResidentBytesOfFilesIn(dir_), 2 * kJournal);
  ASSERT_TRUE(small.Flush().ok());
  EXPECT_EQ(small.Size().value(), static_cast<uint64_t>(recorded));
  small.Stop();
  EXPECT_TRUE(JournalFiles(dir_).empty());
  EXPECT_TRUE(VerifyAuditLog(d_->audit_store(), d_->signer().public_key(), d_->signer().origin(),
                             {}, nullptr)
                  .ok());
}

// Waits up to five seconds for `dir` to hold `n` journals.
bool JournalCountReaches(const std::filesystem::path& dir, size_t n) {
  for (int i = 0; i < 500 && JournalFiles(dir).size() != n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return JournalFiles(dir).size() == n;
}

TEST_F(AuditLogTest, TheNextJournalIsReadyBeforeTheCurrentOneFills) {
  d_->audit().Stop();
  // Journals of 4 KiB, and an importer that does not run during the test: the spares can
  // only come from the journal maker.
  AuditLog small(d_->store(), d_->audit_store(), d_->clock(), d_->signer(),
                 AuditLog::Options{dir_.string(), 600000, 4096});
  ASSERT_TRUE(
      small.Record(nullptr, caller_, {"subject.read", Sid("s"), "customer_management", "ok", {}, 0})
          .ok());
  EXPECT_TRUE(JournalCountReaches(dir_, 2)) << "the current journal and a spare";
  // Fill the current journal (a dozen entries): the spare takes over, another is made.
  for (int i = 1; i < 20; ++i) {
    ASSERT_TRUE(small
                    .Record(nullptr, caller_,
                            {"subject.read", Sid("s"), "customer_management", "ok", {}, i})
                    .ok());
  }
  EXPECT_TRUE(JournalCountReaches(dir_, 3)) << "the full one, the current one and a spare";
  EXPECT_EQ(small.Size().value(), 20u);
  small.Stop();
  EXPECT_TRUE(JournalFiles(dir_).empty());
}

// Every entry of `subject` in the log, by a full scan: the oracle for the subject index.
std::vector<uint64_t> ScanSeqsOf(AuditLog& log, const std::string& subject) {
  std::vector<uint64_t> seqs;
  EXPECT_TRUE(log.Scan(0, UINT64_MAX,
                       [&](const AuditRow& row) {
                         if (row.subject == subject) seqs.push_back(row.seq);
                         return true;
                       })
                  .ok());
  return seqs;
}

std::vector<uint64_t> SearchSeqsOf(AuditLog& log, const std::string& subject, size_t page) {
  std::vector<uint64_t> seqs;
  AuditQuery q;
  q.subject = subject;
  q.limit = page;
  for (;;) {
    auto rows = log.Query(q);
    EXPECT_TRUE(rows.ok());
    if (!rows.ok() || rows->empty()) return seqs;
    for (const auto& r : rows.value()) seqs.push_back(r.seq);
    q.after_seq = rows->back().seq;
  }
}

// The rows of an integer query on audit.db, read with SQLite directly (WAL: sees every
// commit).
std::vector<std::vector<int64_t>> IntRows(const std::filesystem::path& audit_db,
                                          const std::string& sql) {
  std::vector<std::vector<int64_t>> rows;
  sqlite3* db = nullptr;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_open_v2(audit_db.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      rows.emplace_back();
      for (int k = 0; k < sqlite3_column_count(st); ++k) {
        rows.back().push_back(sqlite3_column_int64(st, k));
      }
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

int64_t CountRows(const std::filesystem::path& audit_db, const std::string& table) {
  const auto rows = IntRows(audit_db, "SELECT COUNT(*) FROM " + table);
  return rows.empty() ? -1 : rows[0][0];
}

TEST_F(AuditLogFileTest, SubjectSearchesFindEveryEntryWhileTheIndexRunsMerge) {
  // 70 import passes of a few entries each: 70 runs at level 0, merged 8 at a time into
  // level 1, whose 8 runs merge into level 2.
  std::mt19937 random(7);
  std::vector<std::string> subjects;
  for (int i = 0; i < 12; ++i) subjects.push_back(Sid("search" + std::to_string(i)));
  for (int pass = 0; pass < 70; ++pass) {
    const int n = 1 + static_cast<int>(random() % 6);
    for (int i = 0; i < n; ++i) {
      const std::string& who = subjects[random() % subjects.size()];
      ASSERT_TRUE(
          d_->audit()
              .Record(nullptr, caller_, {"subject.read", who, "customer_management", "ok", {}, i})
              .ok());
    }
    if (pass % 5 == 0) Append(1);  // entries without a subject are not indexed
    ASSERT_TRUE(d_->audit().Flush().ok());
    d_->audit().MergeSubjectRuns();
  }
  // At most 7 runs wait at each level.
  EXPECT_LT(CountRows(dir_ / "audit.db", "audit_runs"), 3 * 8);
  size_t total = 0;
  for (const auto& who : subjects) {
    const auto expected = ScanSeqsOf(d_->audit(), who);
    total += expected.size();
    EXPECT_EQ(SearchSeqsOf(d_->audit(), who, 100), expected) << who;
    EXPECT_EQ(SearchSeqsOf(d_->audit(), who, 3), expected) << who << ", pages of 3";
  }
  EXPECT_GT(total, 70u);
  EXPECT_EQ(CountRows(dir_ / "audit.db", "audit_subject_runs"), static_cast<int64_t>(total));
  EXPECT_TRUE(SearchSeqsOf(d_->audit(), Sid("nobody"), 100).empty());
}

TEST_F(AuditLogFileTest, ALargeImportStartsAtTheLevelOfItsSize) {
  // 1500 entries in one pass: level 1 (1024 to 8191 entries), not merged with small runs.
  // An importer waking every minute leaves the passes to the test.
  d_->audit().Stop();
  AuditLog log(d_->store(), d_->audit_store(), d_->clock(), d_->signer(),
               AuditLog::Options{dir_.string(), 60000});
  for (int i = 0; i < 1500; ++i) {
    ASSERT_TRUE(log.Record(nullptr, caller_,
                           {"subject.read", Sid("big"), "customer_management", "ok", {}, i})
                    .ok());
  }
  ASSERT_TRUE(log.Flush().ok());
  for (int pass = 0; pass < 8; ++pass) {
    ASSERT_TRUE(log.Record(nullptr, caller_,
                           {"subject.read", Sid("big"), "customer_management", "ok", {}, pass})
                    .ok());
    ASSERT_TRUE(log.Flush().ok());
  }
  log.MergeSubjectRuns();
  const auto runs =
      IntRows(dir_ / "audit.db", "SELECT level, entries FROM audit_runs ORDER BY level");
  // The eight small passes merged among themselves at level 0; the large run stayed whole.
  const std::vector<std::vector<int64_t>> expected{{0, 8}, {1, 1500}};
  EXPECT_EQ(runs, expected);
  EXPECT_EQ(SearchSeqsOf(log, Sid("big"), 1000).size(), 1508u);
  log.Stop();
}

TEST_F(AuditLogFileTest, ALogIndexedTheOldWayGetsItsSubjectIndexAsOneRun) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(d_->audit()
                    .Record(nullptr, caller_,
                            {"subject.read", Sid("old"), "customer_management", "ok", {}, i})
                    .ok());
    Append(1);
  }
  ASSERT_TRUE(d_->audit().Flush().ok());
  const auto expected = ScanSeqsOf(d_->audit(), Sid("old"));
  ASSERT_EQ(expected.size(), 5u);
  d_.reset();
  // audit.db as version 2 left it: one index on audit_log(subject).
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "audit.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE audit_subject_runs; DROP TABLE audit_runs;"
                         "CREATE INDEX audit_by_subject ON audit_log(subject) "
                         "WHERE subject IS NOT NULL;"
                         "DROP TABLE audit_by_actor;"
                         "ALTER TABLE audit_checkpoints DROP COLUMN actors;"
                         "DELETE FROM schema_migrations WHERE version >= 3;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto d = Deployment::Open(cfg_);
  ASSERT_TRUE(d.ok()) << d.status().message();
  d_ = std::move(d.value());
  EXPECT_EQ(SearchSeqsOf(d_->audit(), Sid("old"), 2), expected);
  EXPECT_EQ(CountRows(dir_ / "audit.db", "audit_runs"), 1);
  // New entries add runs beside it.
  ASSERT_TRUE(d_->audit()
                  .Record(nullptr, caller_,
                          {"subject.read", Sid("old"), "customer_management", "ok", {}, 9})
                  .ok());
  EXPECT_EQ(SearchSeqsOf(d_->audit(), Sid("old"), 100).size(), 6u);
}

TEST_F(AuditLogFileTest, ALogKeptInTheVaultByAnEarlierVersionMovesToItsOwnFileOnce) {
  Append(3);
  ASSERT_TRUE(
      d_->audit()
          .Record(nullptr, caller_, {"subject.read", Sid("l"), "customer_management", "ok", {}, 1})
          .ok());
  // Signed as versions of that time signed: no actor counts.
  const std::string legacy_note = LegacyHeadNote(*d_);
  ASSERT_FALSE(legacy_note.empty());
  d_.reset();
  // The layout before audit.db: the same tables inside garde.db.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "garde.db").c_str(), &db), SQLITE_OK);
  const std::string attach = "ATTACH '" + (dir_ / "audit.db").string() + "' AS a;";
  ASSERT_EQ(sqlite3_exec(db,
                         (attach +
                          "INSERT INTO main.audit_log SELECT * FROM a.audit_log;"
                          "INSERT INTO main.audit_nodes SELECT * FROM a.audit_nodes;"
                          "INSERT INTO main.audit_checkpoints "
                          "  SELECT size, root, time, '" +
                          legacy_note +
                          "' FROM a.audit_checkpoints;"
                          "DETACH a;")
                             .c_str(),
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  for (const char* f : {"audit.db", "audit.db-wal", "audit.db-shm"}) {
    std::filesystem::remove(dir_ / f);
  }
  auto d = Deployment::Open(cfg_);
  ASSERT_TRUE(d.ok()) << d.status().message();
  d_ = std::move(d.value());
  EXPECT_EQ(d_->audit().Size().value(), 4u);
  EXPECT_EQ(d_->audit().LatestCheckpoint().value()->size, 4u);
  EXPECT_EQ(SearchSeqsOf(d_->audit(), Sid("l"), 100), std::vector<uint64_t>{3});
  auto report = VerifyAuditLog(d_->audit_store(), d_->signer().public_key(), d_->signer().origin(),
                               {}, nullptr);
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems[0]);
  int64_t left = -1;
  ASSERT_TRUE(d_->store()
                  .Read([&](ReadTx& tx) {
                    left = static_cast<int64_t>(tx.AuditSize().value());
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(left, 0) << "the old copy is emptied";
  // Opening again does not import twice.
  d_.reset();
  d = Deployment::Open(cfg_);
  ASSERT_TRUE(d.ok());
  d_ = std::move(d.value());
  EXPECT_EQ(d_->audit().Size().value(), 4u);
}

}  // namespace
}  // namespace garde

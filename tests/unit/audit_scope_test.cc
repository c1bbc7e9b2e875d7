// Scoping by actor (AuditLog::ScopeActor): the actor index and the counts each checkpoint
// signs, held to the whole log read back and parsed independently, and to a log changed on
// disk behind the service's back.
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <random>

#include "deployment_fixture.h"
#include "garde/base/json_writer.h"
#include "garde/domain/audit_log.h"

namespace garde {
namespace {

namespace fs = std::filesystem;

std::string Sid(int n) {
  std::string id = "sub_" + std::to_string(n);
  id.resize(30, '0');
  return id;
}

class AuditScopeTest : public DeploymentFixture {
 protected:
  void SetUp() override {
    sqlite_ = true;
    DeploymentFixture::SetUp();
  }

  void Reopen() {
    d_.reset();
    auto d = Deployment::Open(cfg_);
    ASSERT_TRUE(d.ok()) << d.status().message();
    d_ = std::move(d.value());
  }

  // Logs one entry by `actor` ("" for none) about `subject`: a read, or with a change.
  void Log(const std::string& actor, int subject, bool with_change) {
    const Caller caller{actor, actor.empty() ? "" : "operator", {}, "req_s", ""};
    const AccessEvent event{"subject.read", Sid(subject), "customer_management",
                            "ok",           {"email"},    1};
    if (with_change) {
      ASSERT_TRUE(d_->store()
                      .Write([&](WriteTx& tx) { return d_->audit().Record(&tx, caller, event); })
                      .ok());
    } else {
      ASSERT_TRUE(d_->audit().Record(nullptr, caller, event).ok());
    }
  }

  // The positions of `actor`'s entries below `size`, from every entry parsed on its own.
  std::vector<uint64_t> Reference(const std::string& actor, uint64_t size) {
    std::vector<uint64_t> out;
    EXPECT_TRUE(
        d_->audit()
            .Scan(0, size,
                  [&](const AuditRow& row) {
                    auto entry =
                        Poco::JSON::Parser().parse(row.entry).extract<Poco::JSON::Object::Ptr>();
                    if (!entry->isNull("actor") && entry->getValue<std::string>("actor") == actor) {
                      out.push_back(row.seq);
                    }
                    return true;
                  })
            .ok());
    return out;
  }

  struct Drawn {
    bool ok = false;
    std::vector<std::string> problems;
    std::vector<uint64_t> seqs;
  };
  Drawn Scope(const std::string& actor) {
    Drawn out;
    auto scope =
        d_->audit().ScopeActor(actor, [&](const AuditRow& row) { out.seqs.push_back(row.seq); });
    out.ok = scope.ok();
    if (scope.ok()) {
      out.problems = scope->problems;
      EXPECT_EQ(scope->entries, out.seqs.size());
      EXPECT_TRUE(std::is_sorted(out.seqs.begin(), out.seqs.end()));
    } else {
      out.problems.push_back(scope.status().message());
    }
    return out;
  }
};

// Random histories: entries by several keys (and by none) through both paths into the log,
// checkpoints signed at random moments, the service restarted now and then. Every scope is
// complete, untampered, and exactly the actor's entries.
TEST_F(AuditScopeTest, EachActorsScopeIsEveryEntryOfItsAndNoOther) {
  const std::vector<std::string> actors = {"key_a", "key_b", "key_c", "key_d", ""};
  std::mt19937_64 rng(20261203);
  for (int round = 0; round < 40; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const int entries = static_cast<int>(rng() % 40);
    for (int i = 0; i < entries; ++i) {
      Log(actors[rng() % actors.size()], static_cast<int>(rng() % 20), rng() % 4 == 0);
      if (rng() % 16 == 0) {
        ASSERT_TRUE(d_->audit().Checkpoint().ok());
      }
    }
    if (rng() % 8 == 0) Reopen();
    const std::string actor = actors[rng() % (actors.size() - 1)];
    const Drawn drawn = Scope(actor);
    ASSERT_TRUE(drawn.ok) << drawn.problems.front();
    ASSERT_TRUE(drawn.problems.empty()) << drawn.problems.front();
    const uint64_t size = d_->audit().LatestCheckpoint().value()->size;
    EXPECT_EQ(drawn.seqs, Reference(actor, size)) << actor;
  }
  auto report = VerifyAuditLog(d_->audit_store(), d_->signer().public_key(), d_->signer().origin(),
                               {}, nullptr);
  EXPECT_TRUE(report.ok()) << report.problems.front();
  EXPECT_GT(report.checkpoints, 40u);
}

// The log changed on disk while the service was stopped: any change that would take one of
// the actor's entries out of its scope, or alter one, fails the scope instead.
TEST_F(AuditScopeTest, AnEntryOfTheActorRemovedMovedOrChangedOnDiskFailsItsScope) {
  for (int i = 0; i < 60; ++i) {
    Log(i % 2 == 0 ? "key_a" : "key_b", i, i % 5 == 0);
    if (i == 39) {
      ASSERT_TRUE(d_->audit().Checkpoint().ok());
    }
  }
  ASSERT_TRUE(d_->audit().Checkpoint().ok());
  const Drawn before = Scope("key_a");
  ASSERT_TRUE(before.problems.empty()) << before.problems.front();
  ASSERT_EQ(before.seqs.size(), 30u);
  d_.reset();
  const fs::path kept = dir_.string() + "-kept";
  fs::remove_all(kept);
  fs::copy(dir_, kept, fs::copy_options::recursive);

  // key_a's sixth entry (covered by the first checkpoint) and its last (by the second only).
  const std::string sixth =
      "(SELECT seq FROM audit_by_actor WHERE actor = 'key_a' ORDER BY seq LIMIT 1 OFFSET 5)";
  const std::string last = "(SELECT MAX(seq) FROM audit_by_actor WHERE actor = 'key_a')";
  struct Case {
    const char* what;
    std::string sql;
  };
  const std::vector<Case> cases = {
      {"nothing changed (the control)", ""},
      {"an entry removed", "DELETE FROM audit_log WHERE seq = " + sixth},
      {"its index row removed",
       "DELETE FROM audit_by_actor WHERE actor = 'key_a' AND seq = " + sixth},
      {"the last entry and its index row removed",
       "DELETE FROM audit_log WHERE seq = " + last +
           "; DELETE FROM audit_by_actor WHERE actor = 'key_a' AND seq = " + last},
      {"an entry changed",
       "UPDATE audit_log SET entry = replace(entry, '\"ok\"', '\"ko\"') WHERE seq = " + sixth},
      {"an entry given to another key with its index row",
       "UPDATE audit_log SET entry = replace(entry, 'key_a', 'key_b') WHERE seq = " + sixth +
           "; UPDATE audit_by_actor SET actor = 'key_b' WHERE actor = 'key_a' AND seq = " + sixth},
      {"an index row naming another key's entry",
       "INSERT INTO audit_by_actor(actor, seq) SELECT 'key_a', MIN(seq) FROM audit_by_actor "
       "WHERE actor = 'key_b'"},
      {"the search column naming another subject",
       "UPDATE audit_log SET subject = '" + Sid(99) + "' WHERE seq = " + sixth},
      {"an entry removed and the signed counts lowered to match",
       "DELETE FROM audit_log WHERE seq = " + sixth +
           "; DELETE FROM audit_by_actor WHERE actor = 'key_a' AND seq = " + sixth +
           "; UPDATE audit_checkpoints SET actors = replace(actors, '30 \"key_a\"', "
           "'29 \"key_a\"')"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    fs::remove_all(dir_);
    fs::copy(kept, dir_, fs::copy_options::recursive);
    if (!c.sql.empty()) {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open((dir_ / "audit.db").c_str(), &db), SQLITE_OK);
      char* error = nullptr;
      const int rc = sqlite3_exec(db, c.sql.c_str(), nullptr, nullptr, &error);
      EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "");
      EXPECT_GT(sqlite3_total_changes(db), 0);
      sqlite3_free(error);
      sqlite3_close(db);
    }
    Reopen();
    const Drawn drawn = Scope("key_a");
    if (c.sql.empty()) {
      EXPECT_TRUE(drawn.ok && drawn.problems.empty()) << drawn.problems.front();
      EXPECT_EQ(drawn.seqs, before.seqs);
    } else {
      EXPECT_FALSE(drawn.ok && drawn.problems.empty())
          << "scoped " << drawn.seqs.size() << " entries";
    }
  }
  d_.reset();
  fs::remove_all(kept);
}

// A log whose latest checkpoint was signed by a version without counts: a scope by actor
// says it checked nothing (the caller verifies the whole log); once anything is logged, the
// next head counts every entry from the start and scopes are drawn by the index again.
TEST_F(AuditScopeTest, AHeadFromBeforeTheCountsSendsTheScopeToTheWholeLog) {
  for (int i = 0; i < 12; ++i) Log(i % 3 == 0 ? "key_a" : "key_b", i, false);
  const std::string note = LegacyHeadNote(*d_);
  ASSERT_FALSE(note.empty());
  d_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "audit.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* update = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "UPDATE audit_checkpoints SET note = ?, actors = ''", -1,
                               &update, nullptr),
            SQLITE_OK);
  sqlite3_bind_text(update, 1, note.c_str(), -1, SQLITE_TRANSIENT);
  EXPECT_EQ(sqlite3_step(update), SQLITE_DONE);
  sqlite3_finalize(update);
  sqlite3_close(db);
  Reopen();
  auto unchecked = d_->audit().ScopeActor("key_a", [](const AuditRow&) {
    ADD_FAILURE() << "nothing is drawn from a head without counts";
  });
  ASSERT_TRUE(unchecked.ok()) << unchecked.status().message();
  EXPECT_FALSE(unchecked->counted);
  Log("key_a", 40, false);
  const Drawn drawn = Scope("key_a");
  ASSERT_TRUE(drawn.ok && drawn.problems.empty()) << drawn.problems.front();
  EXPECT_EQ(drawn.seqs, Reference("key_a", d_->audit().LatestCheckpoint().value()->size));
  EXPECT_EQ(drawn.seqs.size(), 5u);
}

// The entry count per actor survives any actor name, and the entry's actor reads as a JSON
// parser reads it.
TEST(ActorCounts, AnyActorsCountsReadBackAndEntriesReadAsAParserReadsThem) {
  std::mt19937_64 rng(7);
  const std::vector<std::string> alphabet = {"a",  "b",  " ", "\"",       "\\",
                                             "\t", "\n", "/", "\xc3\xa9", std::string(1, '\x01')};
  for (int round = 0; round < 500; ++round) {
    ActorCounts counts;
    const int n = static_cast<int>(rng() % 6);
    for (int i = 0; i < n; ++i) {
      std::string actor;
      const int len = static_cast<int>(rng() % 8);
      for (int k = 0; k < len; ++k) actor += alphabet[rng() % alphabet.size()];
      counts[actor] = 1 + rng() % 1000;
      std::string entry = R"({"v":1,"seq":3,"time":"2026-12-03T10:00:00Z","actor":)";
      AppendJsonString(entry, actor);
      entry += R"(,"role":null,"action":"x"})";
      auto parsed = Poco::JSON::Parser().parse(entry).extract<Poco::JSON::Object::Ptr>();
      EXPECT_EQ(AuditEntryActor(entry), parsed->getValue<std::string>("actor")) << entry;
    }
    const std::string text = FormatActorCounts(counts);
    EXPECT_EQ(ParseActorCounts(text), counts) << text;
  }
  EXPECT_EQ(AuditEntryActor(R"({"v":1,"seq":3,"time":"t","actor":null,"role":"r"})"), std::nullopt);
  EXPECT_EQ(ParseActorCounts("0 \"a\"\n"), std::nullopt);           // no zero counts
  EXPECT_EQ(ParseActorCounts("1 \"b\"\n1 \"a\"\n"), std::nullopt);  // out of order
  EXPECT_EQ(ParseActorCounts("1 \"a\"\n1 \"a\"\n"), std::nullopt);  // twice
  EXPECT_EQ(ParseActorCounts("1 \"a\""), std::nullopt);             // cut short
  EXPECT_EQ(ParseActorCounts("x \"a\"\n"), std::nullopt);
}

}  // namespace
}  // namespace garde

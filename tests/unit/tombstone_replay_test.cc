// What a start re-applies from tombstones.log, against a small reference model: random
// sequences of grants, withdrawals and erasures on four customers, restarts, backups (the
// SQLite file copied while closed), restores of any earlier backup, lines torn by a crash, and
// withdrawals whose line the log could not take.
// After every start the vault must hold exactly what the model says — every erasure and every
// "no" ever given, and of the rest only what the database had — and the start must have
// checked the log from the mark the database carries: the previous start's end, or the mark a
// restored backup was taken with.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "deployment_fixture.h"
#include "garde/domain/consent_ledger.h"
#include "garde/domain/subject_requests.h"
#include "garde/domain/tombstone_log.h"
#include "gated_file_system.h"

namespace garde {
namespace {

namespace fs = std::filesystem;

// What the database holds, as the model sees it: each customer's consent event ids, and who
// is erased.
struct ModelVault {
  std::map<std::string, std::set<std::string>> events;
  std::set<std::string> erased;
  size_t mark = 0;     // how far the log had been applied when this state was started
  std::string marked;  // the log's text up to the mark, then
  // Where a start from this state must check from: the mark, while the log's text before it
  // is still what it was.
  size_t CheckFrom(const std::string& log) const {
    return mark <= log.size() && log.compare(0, mark, marked) == 0 ? mark : 0;
  }
};

class TombstoneReplay : public DeploymentFixture {
 protected:
  void SetUp() override {
    sqlite_ = true;
    DeploymentFixture::SetUp();
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::string LogPath() const { return Path("tombstones.log"); }
  std::string LogText() const {
    std::ifstream in(LogPath(), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  size_t LogSize() const { return fs::exists(LogPath()) ? fs::file_size(LogPath()) : 0; }

  // The service on the SQLite files, the log's appends and syncs through gate_.
  RequestDesk::Reapplied Start() {
    d_.reset();
    auto d = Deployment::Open(cfg_, [this](const Config& c) -> Result<DeploymentStores> {
      GARDE_ASSIGN_OR_RETURN(auto stores, OpenSqliteStores(c));
      auto files = std::make_unique<GatedFileSystem>("tombstones.log");
      gate_ = files.get();
      stores.files = std::move(files);
      return stores;
    });
    EXPECT_TRUE(d.ok()) << d.status().message();
    d_ = std::move(d.value());
    auto r = d_->requests().ReapplyTombstones();
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : RequestDesk::Reapplied{};
  }

  // The vault's files, copied while nothing has them open.
  void CopyVault(const std::string& from, const std::string& to) {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      fs::remove(to + suffix);
      if (fs::exists(from + suffix)) fs::copy_file(from + suffix, to + suffix);
    }
  }

  static std::string Email(int n) { return "replay" + std::to_string(n) + "@example.org"; }

  std::string NewCustomer(int n) {
    NewSubject s;
    s.kind = "person";
    s.source = "test";
    s.fields["email"] = FieldValue::String(Email(n));
    auto v = d_->vault().Create(operator_, s);
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() ? v->id : "";
  }

  std::string Consent(const std::string& id, const char* event) {
    ConsentRequest r{"marketing.email", "email", event, "2026-01", "web_form", ""};
    auto e = d_->consents().Record(operator_, id, r);
    EXPECT_TRUE(e.ok()) << e.status().message();
    return e.ok() ? e->id : "";
  }

  // A full erasure, or an objection to every marketing purpose (its "no"s, and the customer's
  // address on the suppression list).
  void Complete(const std::string& id, const char* type = "erasure") {
    NewRequest in;
    in.type = type;
    in.subject = id;
    auto opened = d_->requests().Open(operator_, in);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    ASSERT_TRUE(d_->requests().Verify(officer_, opened->row.id, "identity seen").ok());
    auto done = d_->requests().Complete(officer_, opened->row.id, "");
    ASSERT_TRUE(done.ok()) << done.status().message();
  }

  bool Suppressed(int n) {
    auto hit = d_->consents().Suppressed(
        Caller{"key_mkt", "marketing", {"marketing_email"}, "req_t", ""}, "email", {Email(n)});
    EXPECT_TRUE(hit.ok()) << hit.status().message();
    return hit.ok() && hit->at(0);
  }

  ModelVault Held(const std::vector<std::string>& ids) {
    ModelVault out;
    EXPECT_TRUE(d_->store()
                    .Read([&](ReadTx& tx) -> Status {
                      for (const auto& id : ids) {
                        GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
                        if (row && row->status == "erased") out.erased.insert(id);
                        GARDE_ASSIGN_OR_RETURN(auto events, tx.ConsentEventsOf(id));
                        for (const auto& e : events) out.events[id].insert(e.id);
                      }
                      return Status::Ok();
                    })
                    .ok());
    return out;
  }

  void RunSequence(uint32_t seed, int steps) {
    std::mt19937 rng(seed);
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    std::vector<std::string> ids;
    std::map<std::string, int> number;  // of each customer's address
    for (int i = 0; i < 4; ++i) {
      ids.push_back(NewCustomer(++made_));
      number[ids.back()] = made_;
    }
    std::set<std::string> objected;  // their addresses stay suppressed
    // Every "no" and erasure ever acknowledged: none may be lost by any restore.
    std::map<std::string, std::set<std::string>> said_no;
    std::set<std::string> erased_ever;
    ModelVault now;  // what the vault holds
    now.mark = Start().log_bytes;
    now.marked = LogText();
    std::vector<ModelVault> backups;
    std::ostringstream trace;
    for (int step = 0; step < steps && !HasFailure(); ++step) {
      const size_t op = pick(100);
      const std::string& id = ids[pick(ids.size())];
      const bool erased = now.erased.count(id) != 0;
      std::optional<size_t> expected_from;  // set when the step starts the service
      if (op < 25 && !erased) {
        trace << " grant";
        ++steps_["grant"];
        now.events[id].insert(Consent(id, "granted"));
      } else if (op < 45 && !erased) {
        trace << " withdraw";
        ++steps_["withdraw"];
        const std::string e = Consent(id, "withdrawn");
        now.events[id].insert(e);
        said_no[id].insert(e);
      } else if (op < 50 && !erased) {
        // The log cannot take the line (the process dies before writing it): the answer is an
        // error, and a "no" the database holds all the same is in force, never to be lost.
        trace << " lost";
        ++steps_["lost line"];
        gate_->LoseNextAppend();
        ConsentRequest r{"marketing.email", "email", "withdrawn", "2026-01", "web_form", ""};
        EXPECT_FALSE(d_->consents().Record(operator_, id, r).ok());
        ModelVault after = Held({id});
        for (const auto& e : after.events[id]) {
          if (now.events[id].insert(e).second) said_no[id].insert(e);
        }
      } else if (op < 54 && !erased) {
        trace << " object";
        ++steps_["object"];
        const std::set<std::string> before = Held({id}).events[id];
        Complete(id, "objection");
        ModelVault after = Held({id});
        for (const auto& e : after.events[id]) {
          if (before.count(e) == 0) said_no[id].insert(e);
          now.events[id].insert(e);
        }
        objected.insert(id);
      } else if (op < 60 && !erased) {
        trace << " erase";
        ++steps_["erase"];
        Complete(id);
        now.erased.insert(id);
        now.events.erase(id);
        erased_ever.insert(id);
        if (pick(3) == 0) {
          // A crash part-way through the erasure's line, its commit done: only the table
          // still has the erasure, and the start writes a whole line back.
          trace << " torn";
          ++steps_["torn erasure"];
          d_.reset();
          std::string text = LogText();
          const size_t last = text.rfind('\n', text.size() - 2) + 1;
          ASSERT_EQ(text.compare(last, id.size() + 1, id + " "), 0);
          text.resize(last + id.size() + 5);  // "sub_… req_"
          std::ofstream(LogPath(), std::ios::trunc) << text;
          expected_from = now.CheckFrom(text);
        }
      } else if (op < 70) {
        trace << " backup";
        ++steps_["backup"];
        d_.reset();
        CopyVault(Path("garde.db"), Path("backup" + std::to_string(backups.size()) + ".db"));
        backups.push_back(now);
        expected_from = now.CheckFrom(LogText());
      } else if (op < 82 && !backups.empty()) {
        const size_t k = pick(backups.size());
        trace << " restore" << k;
        ++steps_["restore"];
        d_.reset();
        CopyVault(Path("backup" + std::to_string(k) + ".db"), Path("garde.db"));
        now = backups[k];
        expected_from = now.CheckFrom(LogText());
      } else if (op < 88) {
        trace << " tear";
        ++steps_["tear"];
        d_.reset();
        std::ofstream(LogPath(), std::ios::app) << "consent cev_";  // a crash mid-line
        expected_from = now.CheckFrom(LogText());
      } else {
        trace << " restart";
        ++steps_["restart"];
        expected_from = now.CheckFrom(LogText());
      }
      {
        const std::string log = LogText();
        for (const auto& [who, events] : said_no) {
          for (const auto& e : events) {
            EXPECT_NE(log.find(" " + e + " "), std::string::npos)
                << "seed " << seed << ", " << who << ": " << e
                << " is not in the log:" << trace.str();
          }
        }
      }
      if (!expected_from) continue;
      const RequestDesk::Reapplied r = Start();
      EXPECT_EQ(r.checked_from, *expected_from) << "seed " << seed << ":" << trace.str();
      EXPECT_EQ(r.log_bytes, LogSize()) << "seed " << seed << ":" << trace.str();
      // What the start must have made of it: every erasure, every "no", and the rest as held.
      for (const auto& e : erased_ever) {
        now.erased.insert(e);
        now.events.erase(e);
      }
      for (const auto& [who, events] : said_no) {
        if (now.erased.count(who) == 0) now.events[who].insert(events.begin(), events.end());
      }
      now.mark = r.log_bytes;
      now.marked = LogText();
      const ModelVault held = Held(ids);
      for (const auto& who : ids) {
        EXPECT_EQ(Suppressed(number[who]), objected.count(who) != 0)
            << "seed " << seed << ", " << who << ":" << trace.str();
      }
      EXPECT_EQ(held.erased, now.erased) << "seed " << seed << ":" << trace.str();
      for (const auto& who : ids) {
        EXPECT_EQ(held.events.count(who) ? held.events.at(who) : std::set<std::string>(),
                  now.events.count(who) ? now.events.at(who) : std::set<std::string>())
            << "seed " << seed << ", " << who << ":" << trace.str();
      }
    }
  }

  Caller operator_{"key_op", "operator", {"customer_management", "marketing_email"}, "req_t", ""};
  Caller officer_{"key_officer", "officer", {}, "req_t", ""};
  int made_ = 0;
  std::map<std::string, int> steps_;  // how often each kind of step was taken
  GatedFileSystem* gate_ = nullptr;   // the files of the service Start opened
};

TEST_F(TombstoneReplay, StartsPutBackEveryNoAndErasureAndCheckOnlyFromTheirMark) {
  const char* env = std::getenv("GARDE_TOMBSTONE_SEQUENCES");
  const int sequences = env != nullptr ? std::atoi(env) : 4;
  for (int i = 0; i < sequences && !HasFailure(); ++i) {
    RunSequence(static_cast<uint32_t>(1 + i), 45);
  }
  // Every kind of step came up.
  for (const char* step : {"grant", "withdraw", "lost line", "object", "erase", "torn erasure",
                           "backup", "restore", "tear", "restart"}) {
    EXPECT_GT(steps_[step], 0) << step;
  }
}

// A "no" is in the log before it is in the database: while the log's fsync is held, no reader
// sees the withdrawal; a crash then would leave it in the log alone, and the next start applies
// it. Committed first and logged after, a crash in between left a "no" in force that a restore
// from an older backup lost.
TEST_F(TombstoneReplay, AWithdrawalIsInTheLogBeforeTheDatabaseCommitsIt) {
  Start();
  const std::string a = NewCustomer(1);
  const std::string yes = Consent(a, "granted");
  const int syncs = gate_->syncs_begun();
  gate_->Hold();
  std::string no;
  std::thread withdraw([&] { no = Consent(a, "withdrawn"); });
  while (gate_->syncs_begun() == syncs) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(Held({a}).events[a], std::set<std::string>{yes});  // the log's line comes first
  gate_->Let();
  withdraw.join();
  ASSERT_FALSE(no.empty());
  EXPECT_EQ(Held({a}).events[a], (std::set<std::string>{yes, no}));
  EXPECT_NE(LogText().find(" " + no + " "), std::string::npos);
}

// The log cannot take a withdrawal's line: the withdrawal fails and changes nothing (a "no"
// the database kept without its line would be lost by the next restore of an older backup).
// Asked again, it is kept, and a restore of the backup made before it keeps it too.
TEST_F(TombstoneReplay, AWithdrawalWhoseLineTheLogCannotTakeIsNotKept) {
  Start();
  const std::string a = NewCustomer(1);
  const std::string yes = Consent(a, "granted");
  d_.reset();
  CopyVault(Path("garde.db"), Path("before.db"));
  Start();
  gate_->LoseNextAppend();
  ConsentRequest r{"marketing.email", "email", "withdrawn", "2026-01", "web_form", ""};
  const auto failed = d_->consents().Record(operator_, a, r);
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(Held({a}).events[a], std::set<std::string>{yes});
  const std::string no = Consent(a, "withdrawn");
  d_.reset();
  CopyVault(Path("before.db"), Path("garde.db"));
  Start();
  EXPECT_EQ(Held({a}).events[a], (std::set<std::string>{yes, no}));
}

// The mark holds only for the text it was made over: a log whose earlier lines were rewritten
// (or replaced by another) is checked from its first line.
TEST_F(TombstoneReplay, ALogRewrittenBeforeTheMarkIsCheckedWhole) {
  const std::string a = NewCustomer(1), b = NewCustomer(2);
  const std::string no_a = Consent(a, "withdrawn");
  const std::string no_b = Consent(b, "withdrawn");
  const std::string refused_a = Consent(a, "refused");
  ASSERT_EQ(Start().checked_from, 0u);
  const RequestDesk::Reapplied again = Start();
  ASSERT_EQ(again.checked_from, LogSize());
  ASSERT_GT(again.checked_from, 0u);
  // The database loses b's "no" behind the mark's back: a start that trusts the mark leaves it.
  ASSERT_TRUE(d_->store().Write([&](WriteTx& tx) { return tx.DeleteConsentEventsOf(b); }).ok());
  EXPECT_EQ(Start().checked_from, LogSize());
  EXPECT_EQ(Held({b}).events.count(b), 0u);
  // Its second and third lines swapped: the same log (its first line names it), but no longer
  // the text the mark saw.
  std::string text = LogText();
  const size_t second = text.find('\n') + 1, third = text.find('\n', second) + 1;
  ASSERT_EQ(text.size(), LogSize());
  ASSERT_EQ(text.find('\n', third) + 1, text.size());
  const std::string name = TombstoneLog::NameOf(text);
  text = text.substr(0, second) + text.substr(third) + text.substr(second, third - second);
  ASSERT_EQ(TombstoneLog::NameOf(text), name);
  d_.reset();
  std::ofstream(LogPath(), std::ios::trunc) << text;
  const RequestDesk::Reapplied whole = Start();
  EXPECT_EQ(whole.checked_from, 0u);
  EXPECT_EQ(whole.subjects, 1u);
  EXPECT_EQ(Held({b}).events[b], std::set<std::string>{no_b});
  EXPECT_EQ(Held({a}).events[a], (std::set<std::string>{no_a, refused_a}));
}

// A crash between an erasure's commit and its line, or part-way through the line: the
// tombstones table has the erasure, a torn line is no record of it, and the next start writes
// a whole line back, so that a later restore re-applies it too.
TEST_F(TombstoneReplay, AnErasureWhoseLineWasLostOrTornIsWrittenBackFromTheTable) {
  for (const bool torn : {false, true}) {
    SCOPED_TRACE(torn ? "torn" : "lost");
    const std::string a = NewCustomer(torn ? 3 : 1), b = NewCustomer(torn ? 4 : 2);
    Consent(b, "withdrawn");
    Complete(a);
    Start();
    std::string text = LogText();
    const size_t line = text.find(a + " ");
    ASSERT_NE(line, std::string::npos);
    ASSERT_EQ(text.find('\n', line) + 1, text.size());  // the last line
    if (torn) {
      text.resize(line + a.size() + 5);  // "sub_… req_"
    } else {
      text.resize(line);
    }
    d_.reset();
    std::ofstream(LogPath(), std::ios::trunc) << text;
    const RequestDesk::Reapplied r = Start();
    EXPECT_EQ(r.log_bytes, LogSize());
    size_t whole_lines = 0;
    for (const auto& e : TombstoneLog::Parse(LogText()).erasures) whole_lines += e.subject_id == a;
    EXPECT_EQ(whole_lines, 1u);
    EXPECT_EQ(Start().checked_from, LogSize());
  }
}

TEST(TombstoneLogMarks, HoldOnlyOverTheTextTheyWereMadeOverAndAtALineEnd) {
  const std::string text = "sub_a req_1 10\nconsent x\n";
  const TombstoneLogMark mark = TombstoneLog::MarkOf(text);
  EXPECT_EQ(mark.applied_to, static_cast<int64_t>(text.size()));
  EXPECT_EQ(mark.log, TombstoneLog::NameOf(text));
  EXPECT_EQ(TombstoneLog::NameOf(text), TombstoneLog::NameOf("sub_a req_1 10\nother\n"));
  EXPECT_NE(TombstoneLog::NameOf(text), TombstoneLog::NameOf("sub_b req_1 10\n"));
  EXPECT_EQ(TombstoneLog::NameOf("no whole line"), "");
  EXPECT_EQ(TombstoneLog::AppliedTo(text, mark), text.size());
  EXPECT_EQ(TombstoneLog::AppliedTo(text + "more\n", mark), text.size());
  EXPECT_EQ(TombstoneLog::AppliedTo(text, std::nullopt), 0u);
  EXPECT_EQ(TombstoneLog::AppliedTo("sub_a req_1 11\nconsent x\n", mark), 0u);    // rewritten
  EXPECT_EQ(TombstoneLog::AppliedTo(text.substr(0, text.size() - 1), mark), 0u);  // shorter
  TombstoneLogMark mid = TombstoneLog::MarkOf("sub_a req");
  EXPECT_EQ(TombstoneLog::AppliedTo(text, mid), 0u);  // not at a line's end
  TombstoneLogMark wild = mark;
  wild.applied_to = -5;
  EXPECT_EQ(TombstoneLog::AppliedTo(text, wild), 0u);
}

// Parse reads back what Format writes, whatever the mix, and skips what it cannot read.
TEST(TombstoneLogLines, ParseReadsBackWhatFormatWritesAndSkipsTornLines) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    TombstoneEntries in;
    const int n = static_cast<int>(rng() % 6);
    for (int i = 0; i < n; ++i) {
      const std::string sub = "sub_" + std::string(26, static_cast<char>('0' + rng() % 10));
      TombstoneRow t{sub, "req_" + std::to_string(rng()), static_cast<int64_t>(rng()), {}};
      if (rng() % 2) t.kept = {"invoice", "customer_number"};
      in.erasures.push_back(t);
      ConsentTombstone c{"cev_" + std::string(26, static_cast<char>('0' + rng() % 10)),
                         sub,
                         "marketing.email",
                         rng() % 2 ? "email" : "",
                         "withdrawn",
                         "web_form",
                         rng() % 2 ? "key_1" : "",
                         "2026-01",
                         static_cast<int64_t>(rng())};
      in.consents.push_back(c);
      in.suppressions.push_back({rng() % 2 ? "email" : "phone", Bytes(16, static_cast<uint8_t>(i)),
                                 "objection", static_cast<int64_t>(rng())});
    }
    auto text = TombstoneLog::Format(in);
    ASSERT_TRUE(text.ok());
    // A torn line at the end and a blank one inside change nothing else.
    const TombstoneEntries out = TombstoneLog::Parse("\n" + text.value() + "consent cev_x sub_");
    ASSERT_EQ(out.erasures, in.erasures);
    ASSERT_EQ(out.consents.size(), in.consents.size());
    for (size_t i = 0; i < in.consents.size(); ++i) {
      EXPECT_EQ(out.consents[i].event_id, in.consents[i].event_id);
      EXPECT_EQ(out.consents[i].subject_id, in.consents[i].subject_id);
      EXPECT_EQ(out.consents[i].channel, in.consents[i].channel);
      EXPECT_EQ(out.consents[i].actor, in.consents[i].actor);
      EXPECT_EQ(out.consents[i].at, in.consents[i].at);
    }
    ASSERT_EQ(out.suppressions.size(), in.suppressions.size());
    for (size_t i = 0; i < in.suppressions.size(); ++i) {
      EXPECT_EQ(out.suppressions[i].digest, in.suppressions[i].digest);
      EXPECT_EQ(out.suppressions[i].kind, in.suppressions[i].kind);
    }
  }
  // A time that is not a number, or trails letters, leaves its line out.
  EXPECT_TRUE(TombstoneLog::Parse("sub_00000000000000000000000000 req_1 12x\n").erasures.empty());
}

}  // namespace
}  // namespace garde

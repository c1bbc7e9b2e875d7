#include "garde/domain/audit_log.h"

#include <Poco/JSON/Parser.h>
#include <sodium.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>

#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/base/log.h"
#include "garde/base/thread_name.h"

namespace garde {
namespace {

Bytes ToBytes(const Hash& h) { return Bytes(h.begin(), h.end()); }

// The seq member of a canonical entry, read without a JSON parser: entries begin
// {"v":1,"seq":N, by construction.
std::optional<uint64_t> EmbeddedSeq(const std::string& entry) {
  static const std::string prefix = "{\"v\":1,\"seq\":";
  if (entry.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  uint64_t v = 0;
  size_t i = prefix.size();
  if (i >= entry.size() || entry[i] < '0' || entry[i] > '9') return std::nullopt;
  for (; i < entry.size() && entry[i] >= '0' && entry[i] <= '9'; ++i) {
    v = v * 10 + static_cast<uint64_t>(entry[i] - '0');
  }
  return v;
}

// The "subject" member an entry holds for its search column, encoded as the entry encodes it
// (a column written before values were made canonical may hold any bytes).
std::string SubjectMember(const std::string& subject) {
  std::string member = "\"subject\":";
  if (subject.empty()) return member + "null";
  AppendJsonString(member, subject);
  return member;
}

// A JSON string token's value: the bytes between the quotes when nothing is escaped (as in
// every actor Garde logs), the parser's reading otherwise.
std::optional<std::string> JsonStringValue(std::string_view token) {
  if (token.size() < 2 || token.front() != '"' || token.back() != '"') return std::nullopt;
  const std::string_view inner = token.substr(1, token.size() - 2);
  if (inner.find('\\') == std::string_view::npos) {
    if (inner.find('"') != std::string_view::npos) return std::nullopt;
    return std::string(inner);
  }
  try {
    Poco::JSON::Parser parser;
    auto array = parser.parse("[" + std::string(token) + "]").extract<Poco::JSON::Array::Ptr>();
    if (array.isNull() || array->size() != 1 || !array->get(0).isString()) return std::nullopt;
    return array->getElement<std::string>(0);
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
}

// One past the closing quote of the JSON string token opening at `at`.
size_t StringTokenEnd(std::string_view s, size_t at) {
  for (size_t i = at + 1; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

}  // namespace

std::optional<std::string> AuditEntryActor(std::string_view entry) {
  // The first occurrence is the member: v, seq and time, before it, cannot hold the text.
  static constexpr std::string_view kMember = ",\"actor\":";
  const size_t at = entry.find(kMember);
  if (at == std::string_view::npos) return std::nullopt;
  const size_t start = at + kMember.size();
  if (start >= entry.size() || entry[start] != '"') return std::nullopt;  // null
  const size_t end = StringTokenEnd(entry, start);
  if (end == std::string_view::npos) return std::nullopt;
  return JsonStringValue(entry.substr(start, end - start));
}

std::string FormatActorCounts(const ActorCounts& counts) {
  std::string out;
  for (const auto& [actor, count] : counts) {
    out += std::to_string(count);
    out += ' ';
    AppendJsonString(out, actor);
    out += '\n';
  }
  return out;
}

std::optional<ActorCounts> ParseActorCounts(std::string_view text) {
  ActorCounts counts;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    if (end == std::string_view::npos) return std::nullopt;
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    uint64_t count = 0;
    const auto [ptr, ec] = std::from_chars(line.data(), line.data() + space, count);
    if (ec != std::errc() || ptr != line.data() + space || count == 0) return std::nullopt;
    auto actor = JsonStringValue(line.substr(space + 1));
    if (!actor || (!counts.empty() && *actor <= counts.rbegin()->first)) return std::nullopt;
    counts.emplace_hint(counts.end(), std::move(*actor), count);
  }
  return counts;
}

Hash ActorCountsDigest(std::string_view text) {
  Hash h;
  crypto_hash_sha256(h.data(), reinterpret_cast<const uint8_t*>(text.data()), text.size());
  return h;
}

std::string AuditLog::Encode(uint64_t seq, int64_t time, const Caller& caller,
                             const AccessEvent& e) {
  JsonWriter w;
  w.BeginObject()
      .Int("v", 1)
      .Int("seq", static_cast<int64_t>(seq))
      .String("time", FormatRfc3339(time))
      .StringOrNull("actor", caller.key_id)
      .StringOrNull("role", caller.role)
      .String("action", e.action)
      .StringOrNull("subject", e.subject_id)
      .StringOrNull("activity", e.activity)
      .StringOrNull("request_id", caller.request_id)
      .String("outcome", e.outcome)
      .BeginArray("fields");
  for (const auto& f : e.fields) w.String(f);
  w.EndArray().Int("count", e.count).StringOrNull("client", caller.client).EndObject();
  return w.Take();
}

namespace {

constexpr char kEntryHead[] = "{\"v\":1,\"seq\":";
constexpr size_t kPendingBatch = 4096;  // pending vault rows taken per audit transaction

// The entry without its head and position: everything after {"v":1,"seq":N.
std::string EncodeTail(int64_t time, const Caller& caller, const AccessEvent& event) {
  std::string full = AuditLog::Encode(0, time, caller, event);
  return full.substr(sizeof(kEntryHead) - 1 + 1);  // the head and the digit 0
}

// The last two nodes stored at each level during one pass: a node just made pairs with the
// one made before it at its level (its left sibling), so that a pass reads from the store only
// the nodes of earlier passes — not one per pair of leaves.
class Frontier {
 public:
  void Made(unsigned level, uint64_t index, const Hash& hash) {
    if (last_.size() <= level) last_.resize(level + 1);
    last_[level].previous = last_[level].latest;
    last_[level].latest = {index, hash, true};
  }
  Result<Hash> Node(WriteTx& tx, unsigned level, uint64_t index) const {
    if (level < last_.size()) {
      for (const Known& k : {last_[level].latest, last_[level].previous}) {
        if (k.known && k.index == index) return k.hash;
      }
    }
    return ToHash(tx.AuditNode(level, index));
  }

 private:
  struct Known {
    uint64_t index = 0;
    Hash hash{};
    bool known = false;
  };
  struct Level {
    Known latest, previous;
  };
  std::vector<Level> last_;
};

// Appends one entry at position `seq` with the subtree hashes it completes.
Status AppendEntry(WriteTx& tx, Frontier& frontier, uint64_t seq, const std::string& subject,
                   const std::string& tail) {
  std::string entry = kEntryHead + std::to_string(seq) + tail;
  Hash node = LeafHash(entry);
  frontier.Made(0, seq, node);
  if (auto actor = AuditEntryActor(entry)) GARDE_RETURN_IF_ERROR(tx.InsertAuditActor(*actor, seq));
  GARDE_RETURN_IF_ERROR(tx.InsertAuditEntry({seq, std::move(entry), ToBytes(node), subject}));
  // Store each perfect subtree this leaf completes: leaf seq closes the subtree at level L
  // when (seq + 1) is a multiple of 2^L.
  uint64_t index = seq;
  for (unsigned level = 1; ((seq + 1) & ((uint64_t{1} << level) - 1)) == 0; ++level) {
    GARDE_ASSIGN_OR_RETURN(auto left, frontier.Node(tx, level - 1, index - 1));
    node = NodeHash(left, node);
    index /= 2;
    frontier.Made(level, index, node);
    GARDE_RETURN_IF_ERROR(tx.InsertAuditNode(level, index, ToBytes(node)));
  }
  return Status::Ok();
}

// An entry on its way into the log, from a journal, the vault or the caller.
struct Incoming {
  int64_t at_ns;
  std::string subject, tail;
};

// Appends entries in the order they were recorded (a read and a change logged in one pass
// keep their order; ties keep their source order).
Status AppendInOrder(WriteTx& tx, std::vector<Incoming>& entries) {
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Incoming& a, const Incoming& b) { return a.at_ns < b.at_ns; });
  GARDE_ASSIGN_OR_RETURN(auto size, tx.AuditSize());
  uint64_t seq = size;
  std::vector<std::pair<std::string, uint64_t>> postings;
  postings.reserve(entries.size());
  Frontier frontier;
  for (const auto& e : entries) {
    if (!e.subject.empty()) postings.emplace_back(e.subject, seq);
    GARDE_RETURN_IF_ERROR(AppendEntry(tx, frontier, seq++, e.subject, e.tail));
  }
  return tx.AppendAuditSubjectRun(std::move(postings));
}

int64_t WallNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

AuditLog::~AuditLog() { Stop(); }

Status AuditLog::Record(WriteTx* tx, const Caller& caller, const AccessEvent& event) {
  const AuditValues& values = options_.values;
  if (values.IsCanonical(caller, event)) return RecordCanonical(tx, caller, event);
  return RecordCanonical(tx, values.Canonical(caller), values.Canonical(event));
}

Status AuditLog::RecordCanonical(WriteTx* tx, const Caller& caller, const AccessEvent& event) {
  if (tx != nullptr) {
    GARDE_RETURN_IF_ERROR(tx->InsertPendingAudit(
        {0, WallNanos(), event.subject_id, EncodeTail(clock_.Now(), caller, event)}));
    tx->AfterCommit([this] { Kick(); });
    return Status::Ok();
  }
  // One record per entry: nanoseconds TAB subject TAB tail (no tab in an id or a tail).
  const std::string tail = EncodeTail(clock_.Now(), caller, event);
  std::string text = std::to_string(WallNanos());
  text.reserve(text.size() + event.subject_id.size() + tail.size() + 2);
  text.append(1, '\t').append(event.subject_id).append(1, '\t').append(tail);
  bool appended = false;
  {
    ReaderLock lock(&journal_mu_);
    appended = !stopping_ && journal_ && journal_->Append(text);
  }
  // Lock order: mu_ before journal_mu_ (Stop takes both), so the importer is started only
  // once journal_mu_ is released.
  if (appended) {
    EnsureImporter();
    return Status::Ok();
  }
  std::shared_ptr<AuditJournal> full;  // retired here: its pages are given back below
  {
    WriterLock lock(&journal_mu_);
    if (stopping_) {
      // After Stop there is no journal: log the entry in a transaction of its own.
      return log_.Write([&](WriteTx& own) -> Status {
        std::vector<Incoming> entry{{0, event.subject_id, tail}};
        return AppendInOrder(own, entry);
      });
    }
    if (!journal_ || !journal_->Append(text)) {  // none yet, or full: the next one
      if (journal_) {
        full = journal_;
        retired_.push_back(std::move(journal_));
      }
      if (spare_) {
        journal_ = std::move(spare_);
      } else {  // the first, or the maker is behind: unpopulated, so as not to hold the lock
        GARDE_ASSIGN_OR_RETURN(
            auto made, AuditJournal::Create(fs(), options_.journal_dir, options_.journal_bytes,
                                            /*populate=*/false));
        journal_ = std::move(made);
      }
      if (!journal_->Append(text)) return Internal("audit entry larger than a journal");
    }
  }
  // Outside the lock (dropping 8 MiB of pages takes a moment): every append to it is over,
  // and the importer reading it meanwhile reads the same bytes back from the file.
  if (full) full->Evict();
  {
    MutexLock lock(&mu_);
    spare_taken_ = true;
  }
  spare_cv_.notify_one();
  EnsureImporter();
  return Status::Ok();
}

size_t AuditLog::JournalBacklog() const {
  ReaderLock lock(&journal_mu_);
  return retired_.size();
}

void AuditLog::Kick() {
  {
    MutexLock lock(&mu_);
    if (stopping_) return;  // logged by Stop, or at the next start
    kicked_ = true;
  }
  EnsureImporter();
}

void AuditLog::EnsureImporter() {
  if (importer_started_.load(std::memory_order_acquire)) return;
  MutexLock lock(&mu_);
  if (stopping_ || importer_.joinable()) return;
  importer_ = std::thread([this] {
    NameThisThread("garde-audit-in");
    ImporterLoop();
  });
  journal_maker_ = std::thread([this] {
    NameThisThread("garde-journals");
    JournalMakerLoop();
  });
  importer_started_.store(true, std::memory_order_release);
}

void AuditLog::JournalMakerLoop() {
  MutexLock lock(&mu_);
  for (;;) {
    while (!stopping_ && !spare_taken_) spare_cv_.wait(lock.native());
    if (stopping_) return;
    spare_taken_ = false;
    lock.Unlock();
    PrepareSpare();
    lock.Relock();
  }
}

void AuditLog::ImporterLoop() {
  // Background work: request threads come first when the cores are busy (a lower priority
  // shifts when entries reach the log, never whether they do). Not lower than 10: an
  // unprivileged process cannot raise it again, and under a long full load the importer
  // must still get some CPU; the checkpointer catches up beyond that (serve_command.cc).
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  // Every interval, whatever arrived; without news, still look for pending entries of other
  // processes (CLI commands) about once a second.
  const auto interval = std::chrono::milliseconds(std::max(1, options_.import_interval_ms));
  auto idle = std::chrono::milliseconds(0);
  MutexLock lock(&mu_);
  while (!stopping_) {
    const auto until = std::chrono::steady_clock::now() + interval;
    while (!stopping_ && wake_cv_.wait_until(lock.native(), until) != std::cv_status::timeout) {
    }
    if (stopping_) break;
    idle += interval;
    const bool pending = kicked_ || idle >= std::chrono::seconds(1);
    if (pending) idle = std::chrono::milliseconds(0);
    kicked_ = false;
    lock.Unlock();
    const Status s = ImportPass(pending);
    if (!s.ok()) LogLine(spdlog::level::err, "audit import failed").Str("error", s.message());
    MergeSubjectRuns();
    TrimPending(false);
    lock.Relock();
  }
}

namespace {

// Parses one journal record (nanoseconds TAB subject TAB tail) into `out`. A record that
// does not parse is left out (the journal is ours, so that would be damage, not input).
void ParseRecord(std::string_view text, std::vector<Incoming>& out) {
  static constexpr std::string_view kTailStart = ",\"time\":\"";
  const size_t tab1 = text.find('\t');
  const size_t tab2 = tab1 == std::string_view::npos ? tab1 : text.find('\t', tab1 + 1);
  if (tab2 == std::string_view::npos || text.substr(tab2 + 1, kTailStart.size()) != kTailStart ||
      text.back() != '}') {
    LogLine(spdlog::level::err, "audit journal record skipped")
        .Int("bytes", static_cast<int64_t>(text.size()));
    return;
  }
  int64_t at_ns = 0;
  std::from_chars(text.data(), text.data() + tab1, at_ns);
  out.push_back({at_ns, std::string(text.substr(tab1 + 1, tab2 - tab1 - 1)),
                 std::string(text.substr(tab2 + 1))});
}

// Reads a live journal's complete records from its recorded position; returns the new one.
Result<int64_t> ReadJournal(WriteTx& tx, const AuditJournal& journal, std::vector<Incoming>& out) {
  GARDE_ASSIGN_OR_RETURN(auto from, tx.JournalImportedTo(journal.name()));
  return journal.Read(from, [&](std::string_view text) { ParseRecord(text, out); });
}

// Forgets a journal whose every record is in the log: the file first, then its row (a row
// without a file is harmless; a file without its row would be imported again).
void RemoveJournal(FileSystem& fs, Store& log, const std::string& path, const std::string& name) {
  fs.Remove(path).IgnoreError();
  log.Write([&](WriteTx& tx) { return tx.ForgetJournal(name); }).IgnoreError();
}

}  // namespace

void AuditLog::PrepareSpare() {
  {
    ReaderLock lock(&journal_mu_);
    if (spare_ || stopping_) return;
  }
  auto made = AuditJournal::Create(fs(), options_.journal_dir, options_.journal_bytes);
  if (!made.ok()) return;  // Record makes one when it needs it, and reports the error
  std::shared_ptr<AuditJournal> spare = std::move(made).value();
  WriterLock lock(&journal_mu_);
  if (!spare_ && !stopping_) {
    spare_ = std::move(spare);
  } else {
    spare->Remove();
  }
}

Status AuditLog::LoadIntakeMark() {
  int64_t mark = 0;
  GARDE_RETURN_IF_ERROR(log_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto read, tx.AuditIntakeMark());
    mark = read;
    return Status::Ok();
  }));
  intake_mark_ = mark;
  return Status::Ok();
}

Status AuditLog::ImportPass(bool pending) {
  MutexLock guard(&import_mu_);
  for (;;) {
    if (pending && intake_mark_ < 0) GARDE_RETURN_IF_ERROR(LoadIntakeMark());
    std::vector<PendingAuditRow> rows;
    if (pending) {
      const int64_t after = intake_mark_;
      GARDE_RETURN_IF_ERROR(vault_.Read([&](ReadTx& tx) -> Status {
        GARDE_ASSIGN_OR_RETURN(auto list, tx.ListPendingAudit(after, kPendingBatch));
        rows = std::move(list);
        return Status::Ok();
      }));
    }
    // Retired journals are written to no more (they were retired under the exclusive
    // lock, after every append to them had finished): this pass covers them whole.
    std::shared_ptr<AuditJournal> current;
    std::vector<std::shared_ptr<AuditJournal>> retired;
    {
      ReaderLock lock(&journal_mu_);
      current = journal_;
      retired = retired_;
    }
    // The oldest retired journal alone, and the current one once none is left: a pass holds
    // its entries in memory and their pages in one transaction. An importer that fell
    // behind by many journals under load once read them all at once (870 MB of the heap at
    // a million subjects).
    if (!retired.empty()) {
      retired.resize(1);
      current = nullptr;
    }
    const bool fresh =
        current && (current.get() != imported_ || current->HasRecordAt(imported_to_));
    if (rows.empty() && retired.empty() && !fresh) return Status::Ok();
    int64_t mark_after = intake_mark_;
    int64_t current_to = 0;
    // Entries leave the vault and the journals only once this commit is on stable storage.
    Status s = log_.Write(
        [&](WriteTx& tx) -> Status {
          GARDE_ASSIGN_OR_RETURN(auto mark, tx.AuditIntakeMark());
          std::vector<Incoming> entries;
          int64_t m = mark;
          for (auto& row : rows) {
            if (row.id <= m) continue;  // another process logged it
            entries.push_back({row.at_ns, std::move(row.subject), std::move(row.tail)});
            m = row.id;
          }
          std::vector<std::pair<const AuditJournal*, int64_t>> read_to;
          for (const auto& j : retired) {
            GARDE_ASSIGN_OR_RETURN(auto to, ReadJournal(tx, *j, entries));
            read_to.emplace_back(j.get(), to);
          }
          if (current) {
            GARDE_ASSIGN_OR_RETURN(auto to, ReadJournal(tx, *current, entries));
            read_to.emplace_back(current.get(), to);
            current_to = to;
          }
          GARDE_RETURN_IF_ERROR(AppendInOrder(tx, entries));
          CountImported(entries.size());
          for (const auto& [j, to] : read_to) {
            GARDE_RETURN_IF_ERROR(tx.SetJournalImported(j->name(), to));
          }
          if (m != mark) GARDE_RETURN_IF_ERROR(tx.SetAuditIntakeMark(m));
          mark_after = m;
          return Status::Ok();
        },
        Durability::kImmediate);
    if (!s.ok()) return s;  // nothing moved: the next pass starts from the same places
    runs_added_.store(true, std::memory_order_relaxed);
    intake_mark_ = std::max(intake_mark_, mark_after);
    if (current) {
      imported_ = current.get();
      imported_to_ = current_to;
    }
    if (!retired.empty()) {
      {
        WriterLock lock(&journal_mu_);
        retired_.erase(retired_.begin(),
                       retired_.begin() + static_cast<std::ptrdiff_t>(retired.size()));
      }
      for (const auto& j : retired) RemoveJournal(fs(), log_, j->path(), j->name());
    }
    if (rows.size() < kPendingBatch && retired.empty()) return Status::Ok();
  }
}

Status AuditLog::Recover() {
  GARDE_ASSIGN_OR_RETURN(auto listed, fs().List(options_.journal_dir));
  std::vector<std::string> names;
  for (const auto& name : listed) {
    if (AuditJournal::IsJournalName(name)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  MutexLock guard(&import_mu_);
  for (const auto& name : names) {
    const std::string path = options_.journal_dir + "/" + name;
    Status unread = Status::Ok();
    Status s = log_.Write(
        [&](WriteTx& tx) -> Status {
          GARDE_ASSIGN_OR_RETURN(auto from, tx.JournalImportedTo(name));
          std::vector<Incoming> entries;
          auto to = ReadOrphanJournal(fs(), path, from,
                                      [&](std::string_view text) { ParseRecord(text, entries); });
          if (!to.ok()) {
            unread = to.status();  // kConflict: its process is running
            return Status::Ok();
          }
          GARDE_RETURN_IF_ERROR(AppendInOrder(tx, entries));
          CountImported(entries.size());
          return tx.SetJournalImported(name, to.value());
        },
        Durability::kImmediate);
    GARDE_RETURN_IF_ERROR(s);
    if (unread.code() == Code::kConflict) continue;
    if (!unread.ok() && unread.code() != Code::kNotFound) {
      LogLine(spdlog::level::err, "audit journal left unread")
          .Str("journal", name)
          .Str("error", unread.message());
      continue;  // kept for the next start
    }
    RemoveJournal(fs(), log_, path, name);
    LogLine(spdlog::level::warn, "audit journal of an earlier process imported")
        .Str("journal", name);
  }
  GARDE_RETURN_IF_ERROR(LoadIntakeMark());
  if (intake_mark_ == 0) return Status::Ok();
  const int64_t logged_up_to = intake_mark_;
  return vault_.Write([&](WriteTx& tx) { return tx.ReservePendingAuditIds(logged_up_to); });
}

void AuditLog::TrimPending(bool force) {
  int64_t up_to = 0;
  {
    MutexLock guard(&import_mu_);
    up_to = intake_mark_;
  }
  if (up_to <= trimmed_to_) return;
  const auto now = std::chrono::steady_clock::now();
  // One small vault write per period at most.
  if (!force && now - last_trim_ < std::chrono::milliseconds(200)) return;
  last_trim_ = now;
  Status s = vault_.Write([&](WriteTx& tx) { return tx.DeletePendingAudit(up_to); },
                          Durability::kDeferred);
  if (s.ok()) trimmed_to_ = up_to;
}

Status AuditLog::Flush() { return ImportPass(true); }

void AuditLog::MergeSubjectRuns() {
  // One level per transaction, lowest first, until no level is full: each merge's result may
  // fill the level above.
  if (!runs_added_.exchange(false, std::memory_order_relaxed)) return;
  for (;;) {
    bool merged = false;
    const auto start = std::chrono::steady_clock::now();
    const Status s = log_.Write([&](WriteTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto m, tx.MergeAuditSubjectRuns());
      merged = m;
      return Status::Ok();
    });
    if (!s.ok()) {
      LogLine(spdlog::level::err, "audit subject index merge failed").Str("error", s.message());
      return;
    }
    if (!merged) return;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    if (ms >= 1000) LogLine(spdlog::level::info, "audit subject index merged").Int("ms", ms);
  }
}

void AuditLog::Stop() {
  {
    MutexLock lock(&mu_);
    WriterLock journal(&journal_mu_);
    if (stopping_) return;
    stopping_ = true;  // Record logs directly from now on
  }
  wake_cv_.notify_all();
  spare_cv_.notify_all();
  if (importer_.joinable()) importer_.join();
  if (journal_maker_.joinable()) journal_maker_.join();
  if (!Flush().ok()) return;  // the journals stay, and are imported at the next start
  TrimPending(true);
  MutexLock guard(&import_mu_);
  WriterLock lock(&journal_mu_);
  if (journal_) RemoveJournal(fs(), log_, journal_->path(), journal_->name());
  if (spare_) spare_->Remove();
  journal_.reset();
  spare_.reset();
}

Result<uint64_t> AuditLog::Size() {
  GARDE_RETURN_IF_ERROR(Flush());
  uint64_t n = 0;
  GARDE_RETURN_IF_ERROR(log_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto s, tx.AuditSize());
    n = s;
    return Status::Ok();
  }));
  return n;
}

Result<Hash> AuditLog::Root(uint64_t size) {
  Result<Hash> out = Internal("unset");
  GARDE_RETURN_IF_ERROR(log_.Read([&](ReadTx& tx) -> Status {
    MerkleTree tree([&](unsigned l, uint64_t i) { return ToHash(tx.AuditNode(l, i)); });
    out = tree.Root(size);
    return out.status();
  }));
  return out;
}

Result<std::vector<Hash>> AuditLog::InclusionProof(uint64_t index, uint64_t size) {
  Result<std::vector<Hash>> out = Internal("unset");
  GARDE_RETURN_IF_ERROR(log_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto n, tx.AuditSize());
    if (size > n || index >= size) {
      return Unprocessable("need index < size <= " + std::to_string(n));
    }
    MerkleTree tree([&](unsigned l, uint64_t i) { return ToHash(tx.AuditNode(l, i)); });
    out = tree.InclusionProof(index, size);
    return out.status();
  }));
  return out;
}

Result<std::vector<Hash>> AuditLog::ConsistencyProof(uint64_t from, uint64_t to) {
  Result<std::vector<Hash>> out = Internal("unset");
  GARDE_RETURN_IF_ERROR(log_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto n, tx.AuditSize());
    if (to > n || from > to) {
      return Unprocessable("need from <= to <= " + std::to_string(n));
    }
    MerkleTree tree([&](unsigned l, uint64_t i) { return ToHash(tx.AuditNode(l, i)); });
    out = tree.ConsistencyProof(from, to);
    return out.status();
  }));
  return out;
}

Result<CheckpointRow> AuditLog::Checkpoint(bool import_first) {
  if (import_first) GARDE_RETURN_IF_ERROR(FlushEverywhere());
  CheckpointRow row;
  GARDE_RETURN_IF_ERROR(log_.Write([&](WriteTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto latest, tx.LatestCheckpoint());
    GARDE_ASSIGN_OR_RETURN(auto n, tx.AuditSize());
    if (latest && latest->size == n) {
      row = *latest;
      return Status::Ok();
    }
    MerkleTree tree([&](unsigned l, uint64_t i) { return ToHash(tx.AuditNode(l, i)); });
    GARDE_ASSIGN_OR_RETURN(auto root, tree.Root(n));
    GARDE_ASSIGN_OR_RETURN(auto actors, ActorCountsAt(tx, latest, n));
    SignedHead head{n, root, clock_.Now(), ActorCountsDigest(actors)};
    row = {head.size, ToBytes(head.root), head.time, signer_.Sign(head), actors};
    return tx.InsertCheckpoint(row);
  }));
  return row;
}

Result<std::string> AuditLog::ActorCountsAt(ReadTx& tx, const std::optional<CheckpointRow>& latest,
                                            uint64_t size) const {
  ActorCounts counts;
  uint64_t from = 0;
  if (latest) {
    auto signed_head = ParseCheckpoint(latest->note, signer_.public_key(), signer_.origin());
    if (signed_head.ok() && signed_head->actors) {
      auto parsed = ParseActorCounts(latest->actors);
      if (!parsed || ActorCountsDigest(latest->actors) != *signed_head->actors) {
        return Damaged(
            "the latest checkpoint's actor counts differ from those it signed "
            "(run garde audit verify)");
      }
      counts = std::move(*parsed);
      from = latest->size;
    }
  }
  // The entries since; the whole log when the latest head counted none (signed before
  // checkpoints carried counts: once after an upgrade).
  GARDE_RETURN_IF_ERROR(tx.ScanAudit(from, size, [&](const AuditRow& row) {
    if (auto actor = AuditEntryActor(row.entry)) ++counts[*actor];
    return true;
  }));
  return FormatActorCounts(counts);
}

Result<AuditLog::ActorScope> AuditLog::ScopeActor(
    const std::string& actor, const std::function<void(const AuditRow&)>& each) {
  GARDE_ASSIGN_OR_RETURN(auto prior, LatestCheckpoint());
  GARDE_ASSIGN_OR_RETURN(auto signed_now, Checkpoint());
  ActorScope scope;
  scope.head = std::move(signed_now);
  const uint64_t size = scope.head.size;
  auto problem = [&](std::string what) { scope.problems.push_back(std::move(what)); };
  auto head = ParseCheckpoint(scope.head.note, signer_.public_key(), signer_.origin());
  if (!head.ok()) {
    return Internal("the head just signed does not parse: " + head.status().message());
  }
  if (!head->actors) {
    scope.counted = false;
    return scope;
  }
  uint64_t expected = 0;
  if (ActorCountsDigest(scope.head.actors) != *head->actors) {
    problem("the signed head's actor counts differ from those stored with it");
  } else if (auto counts = ParseActorCounts(scope.head.actors); !counts) {
    problem("the signed head's actor counts do not parse");
  } else if (auto it = counts->find(actor); it != counts->end()) {
    expected = it->second;
  }
  GARDE_RETURN_IF_ERROR(log_.Read([&](ReadTx& tx) -> Status {
    MerkleTree tree([&](unsigned l, uint64_t i) { return ToHash(tx.AuditNode(l, i)); });
    // The tree now extends the one the previous head signed: entries before it are as signed.
    if (prior && prior->size > 0 && prior->size < size) {
      const CheckpointRow& before = *prior;
      auto earlier = ParseCheckpoint(before.note, signer_.public_key(), signer_.origin());
      auto proof = tree.ConsistencyProof(before.size, size);
      if (!earlier.ok() || earlier->size != before.size) {
        problem("the checkpoint at size " + std::to_string(before.size) + " does not verify");
      } else if (!proof.ok() ||
                 !VerifyConsistency(before.size, size, earlier->root, head->root, proof.value())) {
        problem("the log is not an extension of its checkpoint at size " +
                std::to_string(before.size));
      }
    }
    GARDE_ASSIGN_OR_RETURN(auto seqs, tx.AuditSeqsOfActor(actor, size));
    for (const uint64_t seq : seqs) {
      bool found = false;
      GARDE_RETURN_IF_ERROR(tx.ScanAudit(seq, seq + 1, [&](const AuditRow& row) {
        found = true;
        const Hash leaf = LeafHash(row.entry);
        auto proof = tree.InclusionProof(seq, size);
        if (EmbeddedSeq(row.entry) != seq) {
          problem("entry " + std::to_string(seq) + " holds another position's record");
        } else if (!proof.ok() || !VerifyInclusion(leaf, seq, size, proof.value(), head->root)) {
          problem("entry " + std::to_string(seq) + " is not the one the signed tree holds");
        } else if (AuditEntryActor(row.entry) != actor) {
          problem("the actor index lists entry " + std::to_string(seq) + " of another actor");
        } else if (row.entry.find(SubjectMember(row.subject)) == std::string::npos) {
          problem("entry " + std::to_string(seq) + ": its search column names another subject");
        } else {
          ++scope.entries;
          if (each) each(row);
        }
        return false;
      }));
      if (!found) problem("entry " + std::to_string(seq) + " is missing");
      if (scope.problems.size() > 10) break;
    }
    return Status::Ok();
  }));
  if (scope.problems.empty() && scope.entries != expected) {
    problem("the signed head counts " + std::to_string(expected) + " entries of this actor; " +
            std::to_string(scope.entries) + " are in the log and its index");
  }
  return scope;
}

Result<std::optional<CheckpointRow>> AuditLog::LatestCheckpoint() {
  std::optional<CheckpointRow> out;
  GARDE_RETURN_IF_ERROR(log_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto latest, tx.LatestCheckpoint());
    out = std::move(latest);
    return Status::Ok();
  }));
  return out;
}

Status AuditLog::FlushEverywhere() {
  // Other nodes' journals first (they import into the same log), then this one's. A node that
  // does not answer in time leaves its latest reads to its own importer: logged, not lost.
  vault_.AskPeers(PeerEvent::kAuditFlush, std::chrono::seconds(2)).IgnoreError();
  return Flush();
}

Result<std::vector<AuditRow>> AuditLog::Query(const AuditQuery& query) {
  GARDE_RETURN_IF_ERROR(FlushEverywhere());
  return QueryLogged(query);
}

Result<std::vector<AuditRow>> AuditLog::QueryLogged(const AuditQuery& query) {
  std::vector<AuditRow> out;
  GARDE_RETURN_IF_ERROR(log_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto rows, tx.QueryAudit(query));
    out = std::move(rows);
    return Status::Ok();
  }));
  return out;
}

Status AuditLog::Scan(uint64_t from, uint64_t to, const std::function<bool(const AuditRow&)>& fn) {
  GARDE_RETURN_IF_ERROR(FlushEverywhere());
  return log_.Read([&](ReadTx& tx) { return tx.ScanAudit(from, to, fn); });
}

Result<Hash> ToHash(const Result<Bytes>& b) {
  if (!b.ok()) return b.status();
  if (b.value().size() != 32) return Damaged("audit tree node has the wrong length");
  Hash h;
  std::copy(b.value().begin(), b.value().end(), h.begin());
  return h;
}

AuditVerification VerifyAuditLog(Store& store, const PublicKey& key, const std::string& origin,
                                 const std::vector<std::string>& extra_checkpoints,
                                 const std::function<void(uint64_t)>& progress,
                                 const std::function<void(const AuditRow&)>& each) {
  AuditVerification report;
  // Every signed head we know of, by size. Two different roots for one size is itself proof
  // of tampering (a fork).
  std::map<uint64_t, Hash> heads;
  auto add_head = [&](const std::string& note, const std::string& where) {
    auto head = ParseCheckpoint(note, key, origin);
    if (!head.ok()) {
      report.problems.push_back(where + ": " + head.status().message());
      return;
    }
    auto [it, inserted] = heads.emplace(head->size, head->root);
    if (!inserted && it->second != head->root) {
      report.problems.push_back(where + ": two different signed roots for tree size " +
                                std::to_string(head->size));
    }
    ++report.checkpoints;
  };
  std::vector<CheckpointRow> stored;
  Status read = store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto list, tx.ListCheckpoints());
    stored = std::move(list);
    return Status::Ok();
  });
  if (!read.ok()) {
    report.problems.push_back("cannot read checkpoints: " + read.message());
    return report;
  }
  // The actor counts each stored head signed, by size: checked against the entries below.
  std::map<uint64_t, std::string> signed_counts;
  for (const auto& c : stored) {
    const std::string where = "checkpoint at size " + std::to_string(c.size);
    add_head(c.note, where);
    auto parsed = ParseCheckpoint(c.note, key, origin);
    if (parsed.ok() && (parsed->size != c.size || ToBytes(parsed->root) != c.root)) {
      report.problems.push_back(where + ": stored columns differ from the signed note");
    }
    if (parsed.ok() && parsed->actors) {
      if (ActorCountsDigest(c.actors) != *parsed->actors) {
        report.problems.push_back(where + ": stored actor counts differ from the signed ones");
      } else {
        signed_counts.emplace(c.size, c.actors);
      }
    }
  }
  for (size_t i = 0; i < extra_checkpoints.size(); ++i) {
    add_head(extra_checkpoints[i], "checkpoint file " + std::to_string(i + 1));
  }

  MerkleAccumulator acc;
  uint64_t expected = 0;
  bool first_bad_reported = false;
  std::unordered_map<std::string, uint64_t> actors;  // entries per actor so far
  auto check_heads = [&]() {
    auto it = heads.find(acc.size());
    if (it != heads.end() && it->second != acc.Root()) {
      report.problems.push_back("the first " + std::to_string(acc.size()) +
                                " entries do not match the signed checkpoint of that size");
    }
    auto counted = signed_counts.find(acc.size());
    if (counted != signed_counts.end() &&
        FormatActorCounts(ActorCounts(actors.begin(), actors.end())) != counted->second) {
      report.problems.push_back("the first " + std::to_string(acc.size()) +
                                " entries do not hold the actor counts signed at that size");
    }
  };
  check_heads();  // size 0
  read = store.Read([&](ReadTx& tx) {
    return tx.ScanAudit(0, UINT64_MAX, [&](const AuditRow& row) {
      const Hash leaf = LeafHash(row.entry);  // once per entry: the bulk of the work
      if (!first_bad_reported) {
        if (row.seq != expected) {
          report.problems.push_back("entry " + std::to_string(expected) + " is missing");
          first_bad_reported = true;
        } else if (EmbeddedSeq(row.entry) != row.seq) {
          report.problems.push_back("entry " + std::to_string(row.seq) +
                                    " holds another position's record (moved or inserted)");
          first_bad_reported = true;
        } else if (row.leaf_hash.size() != leaf.size() ||
                   !std::equal(leaf.begin(), leaf.end(), row.leaf_hash.begin())) {
          report.problems.push_back("entry " + std::to_string(row.seq) +
                                    " was changed after it was written");
          first_bad_reported = true;
        } else if (row.entry.find(SubjectMember(row.subject)) == std::string::npos) {
          report.problems.push_back("entry " + std::to_string(row.seq) +
                                    ": its search column names another subject");
          first_bad_reported = true;
        }
      }
      acc.Add(leaf);
      if (auto actor = AuditEntryActor(row.entry)) ++actors[*actor];
      if (each) each(row);
      expected = row.seq + 1;
      check_heads();
      ++report.entries;
      if (progress && report.entries % 100000 == 0) progress(report.entries);
      return true;
    });
  });
  if (!read.ok()) report.problems.push_back("cannot read the log: " + read.message());
  if (!heads.empty() && heads.rbegin()->first > acc.size()) {
    report.problems.push_back("the log holds " + std::to_string(acc.size()) +
                              " entries but a signed checkpoint covers " +
                              std::to_string(heads.rbegin()->first) + " (truncated)");
  }
  if (progress) progress(report.entries);
  return report;
}

}  // namespace garde

// The audit log: every access event appended as an RFC 6962 Merkle-tree leaf, with signed
// checkpoints and proofs. The log lives in its own database (audit.db), fed by one importer per
// process.
//
//   AuditLog audit(vault_store, audit_store, clock, signer);
//   audit.Record(&tx, caller, event);   // with a change: committed in its transaction
//   audit.Record(nullptr, caller, event);  // a read or refusal: logged before it returns
//   Result<CheckpointRow> head = audit.Checkpoint();
//   Result<std::vector<Hash>> p = audit.InclusionProof(index, size);
//
// How an entry gets in:
// - With a change (tx given): the entry, without its position, is inserted into the vault's
//   audit_pending table in the change's own transaction, so the change and its entry commit
//   or roll back together. After the commit it is moved into the log (an entry survives a
//   crash in between: it is still pending at the next start).
// - Without a change (reads, refusals): copied into this process's read journal (see
//   audit_journal.h: a memory-mapped file beside the databases, no system call, no lock)
//   before Record returns: no answer leaves before its entry is on file, and a crash of the
//   process loses nothing. Neither database is written on the read path.
// The importer thread moves journal and pending entries into the log every
// `import_interval_ms`, in one transaction of the audit database that also records how far
// each source is logged (so that nothing is logged twice), in the order they were recorded;
// the journal's entries reach stable storage with that commit. Queries import first, so an
// access is in the log as soon as its call has answered. Journals a crashed process left
// are imported at the next start.
//
// Entry encoding (the bytes hashed into the tree): one JSON object, no white space, members
// in this order: v, seq, time, actor, role, action, subject, activity, request_id, outcome,
// fields, count, client. Strings escaped as in RFC 8259 with only '"', '\\' and control
// characters escaped; absent values are null. See docs/audit.md.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "garde/base/clock.h"
#include "garde/base/mutex.h"
#include "garde/crypto/checkpoint_signer.h"
#include "garde/crypto/merkle.h"
#include "garde/domain/access_journal.h"
#include "garde/domain/audit_journal.h"
#include "garde/domain/audit_values.h"
#include "garde/store/store.h"

namespace garde {

class AuditLog final : public AccessJournal {
 public:
  struct Options {
    std::string journal_dir;          // where read journals are kept (the data directory)
    int import_interval_ms = 50;      // how often entries move into the log
    int64_t journal_bytes = 8 << 20;  // size of one read journal (about 25k entries)
    // What the log keeps of client-supplied values (audit_values.h).
    AuditValues values{nullptr, nullptr};
    FileSystem* fs = nullptr;  // where the journals are (null: the machine's files)
  };
  // `vault` holds the pending entries of changes; `log` is the audit database.
  AuditLog(Store& vault, Store& log, const Clock& clock, const CheckpointSigner& signer,
           Options options)
      : vault_(vault), log_(log), clock_(clock), signer_(signer), options_(std::move(options)) {}
  ~AuditLog() override;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Records `event` with its client-supplied values made canonical (audit_values.h): no
  // request, whatever its bytes, can keep its entry out of the log or break verification.
  Status Record(WriteTx* tx, const Caller& caller, const AccessEvent& event) override;
  // The canonical entry bytes.
  static std::string Encode(uint64_t seq, int64_t time, const Caller& caller,
                            const AccessEvent& event);

  // At start: imports the read journals of processes that ended without doing so (a
  // crash; journals of running processes are locked and left to them), and keeps new
  // pending ids above those already logged (a vault restored from an older backup would
  // number them from where the backup stood, and they would look logged).
  Status Recover();
  // Logs every entry recorded so far: this process's journal and the vault's pending
  // entries (also those of other processes, such as CLI commands run beside the service).
  Status Flush();
  // The most entries one import pass has appended: a pass takes at most one full journal
  // (and a batch of the vault's pending entries), however far the importer fell behind.
  size_t largest_import() const { return largest_import_.load(std::memory_order_relaxed); }
  // Flush, after every other node sharing the database has flushed its own journals (the
  // officer's queries, Query and Scan, and the checkpoints they fetch see every node's reads).
  Status FlushEverywhere();
  // Merges the full levels of the subject index once entries came in since the last time
  // (the importer does so after each pass; docs/audit.md).
  void MergeSubjectRuns();
  // Logs everything recorded, stops the importer and removes the journal. Idempotent.
  void Stop();

  Result<uint64_t> Size();
  // Full read journals waiting for the importer (8 MiB of entries each by default).
  size_t JournalBacklog() const;
  // Signs the current tree head unless the latest checkpoint already covers it; first
  // imports what the journals hold, unless `import_first` is false (the background
  // checkpointer, which signs what the importer has logged so far).
  Result<CheckpointRow> Checkpoint(bool import_first = true);
  Result<std::optional<CheckpointRow>> LatestCheckpoint();
  Result<Hash> Root(uint64_t size);
  Result<std::vector<Hash>> InclusionProof(uint64_t index, uint64_t size);
  Result<std::vector<Hash>> ConsistencyProof(uint64_t from, uint64_t to);
  // Imports what every node's journals hold (FlushEverywhere), then QueryLogged.
  Result<std::vector<AuditRow>> Query(const AuditQuery& query);
  // What the log holds now, importing nothing: for use inside a transaction of the vault,
  // where an import (which reads and trims the vault's pending entries under the importer's
  // lock) would take the locks in the opposite order. Flush before the transaction.
  Result<std::vector<AuditRow>> QueryLogged(const AuditQuery& query);
  Status Scan(uint64_t from, uint64_t to, const std::function<bool(const AuditRow&)>& fn);

  // Every entry of one actor, found through the actor index and each checked against a head
  // signed now: its bytes by an inclusion proof, the head by a consistency proof from the
  // previous signed head, and their number against the head's signed count for that actor.
  // An entry removed from the log or from its index, moved or changed, is a problem rather
  // than a shorter list; no other entry is read (docs/audit.md, "Scoping by actor").
  struct ActorScope {
    CheckpointRow head;
    // False when the head signs no counts (one signed by an earlier version, and nothing
    // logged since): nothing was checked, the whole log must be (VerifyAuditLog).
    bool counted = true;
    uint64_t entries = 0;               // the actor's entries checked
    std::vector<std::string> problems;  // empty when the scope is complete and untampered
  };
  // `each` is called with every entry checked, in log order.
  Result<ActorScope> ScopeActor(const std::string& actor,
                                const std::function<void(const AuditRow&)>& each);

  const CheckpointSigner& signer() const { return signer_; }
  const AuditValues& values() const { return options_.values; }

 private:
  Status RecordCanonical(WriteTx* tx, const Caller& caller, const AccessEvent& event);
  FileSystem& fs() const { return options_.fs != nullptr ? *options_.fs : PosixFileSystem(); }
  // One import: the journals' complete records and (when `pending`) the vault's pending
  // entries, in one audit transaction. Serialised by import_mu_.
  Status ImportPass(bool pending) EXCLUDES(import_mu_);
  Status LoadIntakeMark() REQUIRES(import_mu_);  // reads intake_mark_ from the log
  void ImporterLoop();
  void Kick();            // pending entries were committed: wake the importer
  void EnsureImporter();  // starts the importer and the journal maker once
  // Keeps the next journal made and populated ahead of need, so that the append that fills
  // a journal only swaps pointers. Its own thread at normal priority: under a full load the
  // importer (nice 10) may not run for seconds, and a request making a journal itself would
  // hold every other request's append meanwhile.
  void JournalMakerLoop();
  void PrepareSpare();
  // Removes pending vault rows already in the log (importer thread or Stop only: never
  // inside a vault write).
  void TrimPending(bool force);
  // The entry count per actor at `size` (FormatActorCounts): those the latest checkpoint
  // signed plus the entries after it. Damaged when they differ from what it signed.
  Result<std::string> ActorCountsAt(ReadTx& tx, const std::optional<CheckpointRow>& latest,
                                    uint64_t size) const;

  Store& vault_;
  Store& log_;
  const Clock& clock_;
  const CheckpointSigner& signer_;
  const Options options_;

  // Lock order: import_mu_, then mu_, then journal_mu_ (no code takes them the other way; a
  // ThreadSanitizer run of the suite checks it, and clang checks the annotations below).
  Mutex import_mu_;                                                // one import at a time
  const AuditJournal* imported_ GUARDED_BY(import_mu_) = nullptr;  // imported last, and how far
  int64_t imported_to_ GUARDED_BY(import_mu_) = 0;
  int64_t intake_mark_ GUARDED_BY(import_mu_) = -1;  // last pending id logged (-1: not read)
  int64_t trimmed_to_ = 0;  // pending rows deleted up to here (importer thread, Stop)
  std::chrono::steady_clock::time_point last_trim_{};

  Mutex mu_;
  std::condition_variable wake_cv_;          // the importer waits on it
  std::condition_variable spare_cv_;         // the journal maker waits on it
  bool spare_taken_ GUARDED_BY(mu_) = true;  // the journal maker has a spare to make
  bool kicked_ GUARDED_BY(mu_) = false;
  // Written under mu_ and journal_mu_ together (Stop), so either one suffices to read it.
  bool stopping_ = false;

  // The journals. Record holds it shared; rotating to a new journal when one is full takes
  // it exclusively.
  mutable SharedMutex journal_mu_;
  std::shared_ptr<AuditJournal> journal_ GUARDED_BY(journal_mu_);  // appended to by Record
  std::shared_ptr<AuditJournal> spare_ GUARDED_BY(journal_mu_);    // the next, made ahead
  // Full, not yet imported whole.
  std::vector<std::shared_ptr<AuditJournal>> retired_ GUARDED_BY(journal_mu_);
  std::atomic<bool> importer_started_{false};
  std::atomic<bool> runs_added_{false};  // the subject index got runs since the last merge
  // Notes an import transaction of n entries (largest_import).
  void CountImported(size_t n) {
    if (n > largest_import_.load(std::memory_order_relaxed)) {
      largest_import_.store(n, std::memory_order_relaxed);
    }
  }
  std::atomic<size_t> largest_import_{0};
  std::thread importer_;
  std::thread journal_maker_;
};

// The decoded actor member of a canonical entry; nullopt when null or unreadable.
std::optional<std::string> AuditEntryActor(std::string_view entry);

// The log's entry count per actor at one tree size, as a checkpoint keeps it: a line per
// actor in byte order, "<count> <actor as a JSON string>\n". The checkpoint's note signs its
// SHA-256 (ActorCountsDigest) on its actors line.
using ActorCounts = std::map<std::string, uint64_t>;
std::string FormatActorCounts(const ActorCounts& counts);
std::optional<ActorCounts> ParseActorCounts(std::string_view text);
Hash ActorCountsDigest(std::string_view text);

// A stored tree node (ReadTx::AuditNode) as a hash; Damaged when it is not 32 bytes.
Result<Hash> ToHash(const Result<Bytes>& stored);

struct AuditVerification {
  uint64_t entries = 0;
  uint64_t checkpoints = 0;
  std::vector<std::string> problems;  // empty when the log verifies
  bool ok() const { return problems.empty(); }
};

// Offline verification: recomputes every leaf and the tree, checks each stored checkpoint's
// signature and root (and any extra checkpoint notes given), detects changed, missing,
// moved, inserted and truncated entries. `progress` is called with entries read so far;
// `each`, when given, with every entry as it is checked (a scope drawn in the same pass).
AuditVerification VerifyAuditLog(Store& store, const PublicKey& key, const std::string& origin,
                                 const std::vector<std::string>& extra_checkpoints,
                                 const std::function<void(uint64_t)>& progress,
                                 const std::function<void(const AuditRow&)>& each = nullptr);

}  // namespace garde

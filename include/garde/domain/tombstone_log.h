// The facts a restore must never undo, kept in an append-only file outside the database
// (beside the keyring, `data_dir/tombstones.log`): erasures (with the fields an erasure kept
// under a legal hold), the consent events that say no (withdrawn, refused, objected) and
// suppression-list entries. A database restored from an older backup has lost them; at start
// the service re-applies the lines the database has not taken yet (RequestDesk::
// ReapplyTombstones): the database keeps a mark of how far it has applied the log, with a
// digest of that much of it, and a start re-checks the lines after the mark (all of them when
// there is no mark, or when the log's text before the mark is not what the mark saw).
//
//   TombstoneLog log(dir + "/tombstones.log");
//   TombstoneEntries add;
//   add.consents.push_back(ConsentTombstone::From(row));
//   TombstoneLog::WriteAhead(tx, add);      // in the write: durable before its commit
//   log.Append(erasures);                   // after an erasure's commit; durable when it returns
//   auto all = log.Read();                  // unreadable lines are skipped, never fatal
//   std::string text = log.ReadText().value();
//   size_t from = TombstoneLog::AppliedTo(text, mark);  // 0, or the end of the marked lines
//   TombstoneEntries fresh = TombstoneLog::Parse(std::string_view(text).substr(from));
//
// One line per fact, ids, names, keyed digests and times only — never a value:
//   sub_… req_… 1764000000[ kept,fields]              an erasure (the original format)
//   consent cev_… sub_… purpose channel|- event at method actor notice|-
//   suppress kind hex-digest at reason
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "garde/base/batch_queue.h"
#include "garde/base/encoding.h"
#include "garde/base/file_system.h"
#include "garde/base/status.h"
#include "garde/store/store.h"

namespace garde {

struct ConsentTombstone {
  std::string event_id, subject_id, purpose, channel, event, method, actor, notice_version;
  int64_t at = 0;
  // The events a restore re-applies: those that take permission away.
  static bool Kept(const ConsentEventRow& row);
  static ConsentTombstone From(const ConsentEventRow& row);
};

struct SuppressionTombstone {
  std::string kind;  // "email" | "phone"
  Bytes digest;      // the suppression hash, as stored
  std::string reason;
  int64_t at = 0;
};

struct TombstoneEntries {
  std::vector<TombstoneRow> erasures;
  std::vector<ConsentTombstone> consents;
  std::vector<SuppressionTombstone> suppressions;
  bool empty() const { return erasures.empty() && consents.empty() && suppressions.empty(); }
  // The erasures alone: their lines follow the commit, the rest go ahead of it (WriteAhead).
  TombstoneEntries ErasuresOnly() const {
    TombstoneEntries out;
    out.erasures = erasures;
    return out;
  }
};

class TombstoneLog {
 public:
  explicit TombstoneLog(std::string path, FileSystem& fs = PosixFileSystem())
      : path_(std::move(path)), fs_(fs) {}
  const std::string& path() const { return path_; }
  // Hands the lines of the entries' consent events and suppressions to tx (WriteTx::WriteAhead):
  // on disk before tx commits, so that no crash leaves a "no" in force that the log lacks (one
  // whose commit then fails is applied by the next start: a "no" asked for, never lost).
  // Erasures are left out: an erasure's line follows its commit (Append), and the tombstones
  // table covers a crash in between.
  static Status WriteAhead(WriteTx& tx, const TombstoneEntries& entries);
  // Appends the entries; they are on disk when it returns Ok. Appends that arrive while one is
  // being written wait, and the first of them writes all of theirs with one write and one
  // fsync (each withdrawal used to pay an fsync of its own). A path of "" keeps nothing.
  Status Append(const TombstoneEntries& entries) const;
  // Appends text as it is: at start, the line break a line torn by a crash lacks, so that the
  // next append does not run on from it.
  Status AppendText(const std::string& text) const;
  Result<TombstoneEntries> Read() const;
  // The whole file ("" when nothing was ever logged).
  Result<std::string> ReadText() const;

  // The entries of text that begins at a line; lines that cannot be read are skipped.
  static TombstoneEntries Parse(std::string_view text);
  // The subjects of text's erasure lines, sorted (views into text): a start reads no more of the
  // lines a mark covers.
  static std::vector<std::string_view> ErasedIn(std::string_view text);
  // The lines Append writes for entries.
  static Result<std::string> Format(const TombstoneEntries& entries);
  // A log's name in the database's marks: a digest of its first line, which holds a random id
  // ("" while the log has no whole line).
  static std::string NameOf(std::string_view text);
  // Where the lines a mark has not covered start: the mark's offset when the text before it is
  // the text the mark was made over (and ends a line), else 0.
  static size_t AppliedTo(std::string_view text, const std::optional<TombstoneLogMark>& mark);
  // The mark saying that all of text is applied.
  static TombstoneLogMark MarkOf(std::string_view text);

 private:
  struct PendingAppend {
    const std::string* text = nullptr;
    Status result;
  };
  Status WriteAndSync(const std::string& text) const;

  std::string path_;
  FileSystem& fs_;
  // Appends that arrive while one is written wait, then go out together: one write, one fsync.
  mutable BatchQueue<PendingAppend> appends_{
      std::numeric_limits<size_t>::max(),
      [this](const std::vector<PendingAppend*>& batch, const std::function<void()>&) {
        std::string all;
        for (const PendingAppend* p : batch) all += *p->text;
        const Status written = WriteAndSync(all);
        for (PendingAppend* p : batch) p->result = written;
      }};
};

}  // namespace garde

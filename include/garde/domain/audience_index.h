// What audiences need of every subject, in columns held in memory and kept current by the
// vault's change log: the decrypted values of the fields they filter on, and the fields they
// output sealed again under a key of the index's own (XChaCha20-Poly1305; all of a subject's
// output fields in one box bound to the subject, so one nonce and tag a subject, not a field). An
// audience after the first reads nothing from the database but what changed since, and opens only
// its members' output fields. On disk it exists only as a SealedSnapshot (the index's key inside
// it), whose key any erasure destroys.
//
// Why a key of its own rather than each subject's wrapped data key beside the vault's boxes:
// the wrapping was 75 of the ~260 bytes a subject's record took (75 MB at a million
// subjects); a member's output then opens with one decryption instead of an unwrap and one.
// A reader of the process's memory or of the snapshot and its key gains nothing it could not
// have before: the root key that unwraps every data key is in the same memory, and the
// snapshot's key is wrapped by it.
//
//   AudienceIndex index(store, open, 1000000);
//   index.Refresh({"gender", "postal_code"}, {"email"});  // rebuilds, or applies the changes
//   const auto* gender = index.Column("gender");           // one value per entry, null if unset
//   for (size_t i = 0; i < index.size(); ++i)
//     if (index.eligible(i) && (*gender)[i].text() == "F") index.OpenKept(i, {"email"});
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "garde/base/byte_codec.h"
#include "garde/crypto/secret.h"
#include "garde/domain/consent_decision.h"
#include "garde/domain/field_value.h"
#include "garde/domain/sealed_snapshot.h"
#include "garde/store/store.h"

namespace garde {

class AudienceIndex {
 public:
  // Opens `fields` of one subject from its sealed boxes (kDamaged when they fail). The index
  // opens the fields it filters on and those it outputs of every active subject it reads.
  using Opener = std::function<Result<FieldMap>(const SubjectRow&, const std::vector<SealedField>&,
                                                const std::set<std::string>&)>;

  // A field's value as an entry holds it: a view into the entry's record (16 bytes, where a
  // FieldValue takes 56 and a copy of its text).
  class Value {
   public:
    FieldValue::Type type() const { return static_cast<FieldValue::Type>(type_); }
    bool is_null() const { return type() == FieldValue::Type::kNull; }
    std::string_view text() const { return {at_, size_}; }  // a string's (empty otherwise)
    double number() const;                                  // a number's (0 otherwise)
    bool boolean() const { return boolean_; }
    FieldValue ToFieldValue() const;

   private:
    friend class AudienceIndex;
    const char* at_ = nullptr;  // a string's bytes, or a number's eight
    uint32_t size_ = 0;
    uint8_t type_ = 0;
    bool boolean_ = false;
  };

  // The size of the blocks a compaction writes records into, and a rebuild at most (a smaller
  // vault's id ranges take about their share); applied changes write theirs into blocks a
  // sixteenth of it.
  static constexpr size_t kBlockBytes = size_t{4} << 20;

  // Keeps the index between refreshes while it holds at most `capacity` subjects.
  AudienceIndex(Store& store, Opener open, size_t capacity, size_t block_bytes = kBlockBytes)
      : store_(store),
        open_(std::move(open)),
        capacity_(capacity),
        whole_block_(block_bytes),
        change_block_(std::max<size_t>(block_bytes / 16, 1)),
        key_(SecretKey::Random()) {}

  // Makes the index hold the values of `open` and the `sealed` fields in a box (and what it
  // held) for every subject as of now: applies the changes committed since the last refresh,
  // or rebuilds (16 id ranges on two threads) when it is empty, lacks a field, or too much
  // changed.
  // Not thread-safe: one caller at a time.
  Status Refresh(const std::set<std::string>& open, const std::set<std::string>& sealed);
  // Applies the changes committed since the last refresh; false (nothing done) when the
  // index is not complete or too much changed, which only a rebuild can follow.
  Result<bool> CatchUp();
  // Drops everything if the index holds more subjects than it may keep.
  void Trim();
  // Memory the entries' records live in (defined in the .cc): few large blocks rather than
  // several small allocations per subject, wiped when released.
  class Arena;
  // The bytes of the blocks an index's records live in, while any of them is alive (a
  // capture may keep some after the index let them go), and the most they came to at once.
  struct BlockBytes {
    std::atomic<size_t> now{0};
    std::atomic<size_t> peak{0};
  };
  // The content of a snapshot: taken under the caller's lock, written without it (the
  // records stay as they are until Release: replaced ones are wiped only then).
  struct Capture {
    std::vector<size_t> counts;  // entries per chunk
    std::string head;            // with the index's key: wiped by Release
    std::vector<std::string_view> records;
    std::vector<std::shared_ptr<Arena>> arenas;  // the blocks they live in
    int64_t position = 0;
    int64_t shreds = 0;
    uint64_t generation = 0;
  };
  // Catches up, then takes the whole index to write; nothing when there is nothing to
  // write (not complete, too much changed, or unchanged since the last snapshot).
  Result<std::optional<Capture>> TakeCapture();
  // Seals a capture into `snapshot` (no lock needed); false when data was destroyed since
  // it was read.
  static Result<bool> Write(const Capture& capture, SealedSnapshot& snapshot);
  // Ends a capture: wipes what was replaced meanwhile, and its head (the index's key);
  // `kept` marks the index saved.
  void Release(Capture& capture, bool kept);
  // Takes the snapshot's content when the index is empty; the next Refresh applies what
  // changed since. false when there is no usable snapshot (then the index stays empty).
  Result<bool> LoadFrom(SealedSnapshot& snapshot);
  // Times the live records were copied together (CompactIfWasteful).
  uint64_t compactions() const { return compactions_; }
  // Times the columns were full when changes added subjects, and so copied to grow.
  uint64_t column_growths() const { return column_growths_; }
  // Rebuilt, and no snapshot written since.
  bool Unsaved() const { return complete_ && saved_position_ < 0; }

  size_t size() const { return all_.records.size(); }
  std::string_view id(size_t i) const { return IdOf(all_.records[i]); }
  // Active, and its boxes open: a restricted, erased or damaged subject is never a member.
  bool eligible(size_t i) const { return all_.eligible[i] != 0; }
  // One value per entry (null when unset), or null if the field is not held.
  const std::vector<Value>* Column(const std::string& field) const;
  // The consent facts of entry i, unpacked from its record (a fresh copy each time, not
  // kept: a million unpacked facts beside their records and the consent ledger's own would
  // be the largest thing in the process). Null when the record has none (the caller reads
  // them from the ledger). Thread-safe.
  std::shared_ptr<const ConsentFacts> Facts(size_t i) const;
  // Opens `fields` (all held sealed) of entry i; kDamaged if they fail (the caller then
  // reads the vault).
  Result<FieldMap> OpenKept(size_t i, const std::set<std::string>& fields) const;
  // Memory the index holds: its records' blocks and the entries' columns.
  size_t bytes() const;
  // What the records' blocks hold now, and the most they have held at once.
  size_t block_bytes() const { return block_bytes_->now; }
  size_t peak_block_bytes() const { return block_bytes_->peak; }
  // The columns' share of bytes(), per entry held: a fixed cost, paid for every subject.
  size_t column_bytes() const;

 private:
  // Entries in id order. Each is one record — id, eligibility, the values of fields_, one
  // box of the fields of sealed_ (under key_), the consent facts (the snapshot's form) — in
  // an arena. Only what every audience scans is a column (the values, as views into the
  // record); the box and the facts are read from the record for members alone.
  // The parallel vectors are all a subject costs beside its record: 33 bytes with one
  // filter field. The blocks are the part's, not each entry's: an entry moved to another
  // part is moved with Adopt of its blocks (Extend does it).
  struct Part {
    std::vector<std::string_view> records;  // the id first: id(i) reads it
    std::vector<uint8_t> eligible;
    std::vector<std::vector<Value>> columns;     // parallel to fields_
    std::vector<std::shared_ptr<Arena>> blocks;  // where its records live
    std::shared_ptr<Arena> open_arena;           // where the next records go
    size_t arena_block = 0;                      // the size of a new arena (0: each record its own)
    std::shared_ptr<BlockBytes> arena_bytes;     // the index's count of its blocks' bytes
    int64_t position = 0;                        // every change of the log up to here is reflected

    // Calls fn(v) for each of the parallel vectors above (each column in turn), of a part
    // or a const one.
    template <typename P, typename Fn>
    static void Each(P& part, Fn fn);
    // Calls fn(mine, other's) for each of them.
    template <typename Fn>
    void Zip(Part& other, Fn fn);
    void Append(Part& other, size_t j);         // moves other's entry j to the end
    void Extend(Part& other);                   // moves all of other's entries to the end
    void Adopt(Part& other);                    // takes other's blocks (and so its records)
    void Put(size_t i, Part& other, size_t j);  // replaces entry i (same id) by other's j
    size_t size() const { return records.size(); }
    void Reserve(size_t n);
    void Resize(size_t n);
    // Reads the record at r's position (in one of the blocks) as entry i; false if it is
    // damaged.
    bool Set(size_t i, ByteReader& r);
    size_t bytes() const;  // the columns' capacity
    // Copies `record` into the open arena and adds it as the last entry.
    bool Add(std::string_view record);
  };
  // The parts of entry i's record beyond its columns.
  struct Tail {
    std::string_view box;    // the fields of sealed_ (empty: none set)
    std::string_view facts;  // as recorded (empty: none), unpacked by Facts()
  };
  bool ReadTail(size_t i, Tail* out) const;  // false if the record does not read back
  // Reads a value at r's position as a view into r's input; false if it is damaged.
  static bool ReadValue(ByteReader& r, Value* v);
  // Reads what follows the values (the output box, the facts) into *out, r then holding
  // that one record; with out null, checks and skips it. False if it is damaged.
  static bool ReadTailFrom(ByteReader& r, Tail* out);
  static std::string_view IdOf(std::string_view record);
  Part Empty() const;  // with a column for each field held
  Status Rebuild(const std::set<std::string>& open, const std::set<std::string>& sealed);
  Status ScanInto(ReadTx& tx, const std::string& from, const std::string& before, Part* out) const;
  // Reads the changed subjects (a few thousand per read transaction), then applies them.
  Status ApplyChanges(const std::vector<std::pair<int64_t, std::string>>& changes);
  // Adds one subject, from its row, sealed boxes and consent facts (recorded in its record;
  // null: read when first needed), at the end of `out`.
  Status ReadOne(SubjectRow&& row, std::vector<SealedField> sealed,
                 std::shared_ptr<const ConsentFacts> facts, Part* out) const;
  bool Wanted(std::string_view field) const;  // held open or sealed
  void Clear();
  // The snapshot form: a head chunk (fields, position, entries per chunk) then chunks of
  // records.
  std::string SerializeHead(const std::vector<size_t>& counts) const;
  // Entry i is replaced or gone: its values are wiped now, its record once no capture
  // holds it.
  void Retire(size_t i);
  void WipeRetired();
  // Before all_ is replaced by entries in blocks of their own: its blocks go now (a block
  // wipes itself as it goes), or once no capture holds the retired records in them.
  void DropBlocks();
  // Once the records replaced since the last rebuild or compaction take more than an eighth
  // of what the live ones do, copies the live ones together, one old block at a time, each
  // freed once its live records are copied out: the copy costs a block more than the index
  // holds, not the index twice.
  void CompactIfWasteful();

  Store& store_;
  const Opener open_;
  const size_t capacity_;
  const size_t whole_block_;
  const size_t change_block_;
  std::vector<std::string> fields_;  // sorted
  std::set<std::string> fields_set_;
  std::vector<std::string> sealed_;   // sorted
  std::set<std::string> opened_set_;  // fields_ and sealed_: what a subject read opens
  // Seals the output boxes in the records. Replaced only with all of them: a rebuild
  // makes a new one, a snapshot read brings its own.
  SecretKey key_;
  Part all_;
  bool complete_ = false;
  int64_t shreds_ = 0;           // the store's shred count before the content was read
  int64_t saved_position_ = -1;  // the position of the last snapshot written or read
  uint64_t generation_ = 0;      // changes whenever the index is rebuilt, read or dropped
  int captures_ = 0;             // taken and not released
  size_t retired_bytes_ = 0;     // records replaced or removed since the entries were packed
  uint64_t compactions_ = 0;
  uint64_t column_growths_ = 0;
  std::vector<std::string_view> retired_;  // in all_.blocks or retired_blocks_
  std::vector<std::shared_ptr<Arena>> retired_blocks_;
  std::shared_ptr<BlockBytes> block_bytes_ = std::make_shared<BlockBytes>();
};

}  // namespace garde

#include "garde/domain/audience_index.h"

#include <sodium.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iterator>
#include <limits>
#include <mutex>
#include <numeric>
#include <thread>

#include "garde/base/byte_codec.h"
#include "garde/base/splice.h"
#include "garde/base/thread_name.h"
#include "garde/crypto/envelope.h"
#include "garde/domain/consent_ledger.h"

namespace garde {
namespace {

// More changes than this since the last refresh, or than an eighth of the index, whichever
// is more: rebuild rather than apply them one by one. Applying a change reads one subject;
// a rebuild reads them all, on both cores (6-8 s at a million idle). Under mixed load at a
// million subjects, a minute of changes (~80 000) was applied in 2-4 s where a rebuild
// took 13-25 s.
constexpr size_t kMaxChanges = 8192;
constexpr size_t kMaxChangesShare = 8;
// Changed subjects read per read transaction when applying changes.
constexpr size_t kChangesPerRead = 2048;

// Room in the columns for n entries and 2 % more: the subjects added later by applying
// changes go in without a copy of the columns to grow them.
size_t WithRoom(size_t n) { return n + n / 50 + 16; }

// Ids are "sub_" and random Crockford base32: these bounds cut them into 16 ranges of
// about the same size ("" below the first and above the last: any id falls in exactly one).
// Ids come in runs of 1 024 sharing their first characters (encoding.h): a vault of a
// million subjects holds about a thousand runs, some sixty a range.
// More ranges than cores, taken in turn, keep both cores busy to the end of a rebuild.
const char* const kBounds[] = {"",      "sub_2", "sub_4", "sub_6", "sub_8", "sub_a",
                               "sub_c", "sub_e", "sub_g", "sub_j", "sub_m", "sub_p",
                               "sub_r", "sub_t", "sub_w", "sub_y", ""};
constexpr size_t kRanges = std::size(kBounds) - 1;

// The "DEK version" an index box is bound to: no data key of the vault has it, so a box of
// the index and one of the vault can never stand for each other.
constexpr uint32_t kIndexBinding = 0;
// The field name a subject's output box is bound to: it holds all of sealed_.
constexpr std::string_view kOutputBox = "audience output";

// The index's key as SealField and OpenField take one, on the stack and wiped on return.
void CopyKey(const SecretKey& from, ScopedKey* to) {
  std::memcpy(to->data(), from.data(), kKeyBytes);
}

std::span<const uint8_t> BytesOf(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

class AudienceIndex::Arena {
 public:
  // Blocks of 2 MiB and more are mapped on their own and may use transparent huge pages:
  // a million subjects' records fault in a few hundred pages rather than ~80 000.
  // `counted` (may be null) adds the block's bytes while it lives.
  Arena(size_t capacity, std::shared_ptr<BlockBytes> counted)
      : capacity_(capacity), counted_(std::move(counted)) {
    if (capacity_ >= kHuge) {
      capacity_ = (capacity_ + kHuge - 1) / kHuge * kHuge;
      void* p =
          ::mmap(nullptr, capacity_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p != MAP_FAILED) {
        ::madvise(p, capacity_, MADV_HUGEPAGE);
        data_ = static_cast<char*>(p);
        mapped_ = true;
      }
    }
    if (data_ == nullptr) {
      owned_ = std::make_unique<char[]>(capacity_);
      data_ = owned_.get();
    }
    if (counted_) {
      const size_t now = counted_->now += capacity_;
      size_t peak = counted_->peak;
      while (now > peak && !counted_->peak.compare_exchange_weak(peak, now)) {
      }
    }
  }
  ~Arena() {
    sodium_memzero(data_, used_);
    if (mapped_) ::munmap(data_, capacity_);
    if (counted_) counted_->now -= capacity_;
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  size_t room() const { return capacity_ - used_; }
  const char* begin() const { return data_; }
  bool Holds(const char* p) const { return p >= data_ && p < data_ + used_; }
  // A copy of `bytes` at the end (bytes.size() <= room()).
  std::string_view Append(std::string_view bytes) {
    char* at = data_ + used_;
    std::memcpy(at, bytes.data(), bytes.size());
    used_ += bytes.size();
    return {at, bytes.size()};
  }

 private:
  static constexpr size_t kHuge = size_t{2} << 20;
  size_t capacity_;
  size_t used_ = 0;
  char* data_ = nullptr;
  bool mapped_ = false;
  std::unique_ptr<char[]> owned_;
  std::shared_ptr<BlockBytes> counted_;
};

namespace {

void WriteValue(ByteWriter& w, const FieldValue& v) {
  w.U8(static_cast<uint8_t>(v.type));
  switch (v.type) {
    case FieldValue::Type::kNumber: w.F64(v.number); break;
    case FieldValue::Type::kBool: w.U8(v.boolean ? 1 : 0); break;
    case FieldValue::Type::kNull: break;
    default: w.VStr(v.text); break;
  }
}

void WriteFacts(ByteWriter& w, const ConsentFacts* f) {
  w.U8(f != nullptr ? 1 : 0);
  if (f != nullptr) WriteConsentFacts(w, *f);
}

// Reads recorded facts into *out, or only checks and skips them when out is null.
bool ReadFacts(ByteReader& r, std::shared_ptr<const ConsentFacts>* out) {
  if (r.U8() == 0) return !r.failed();
  if (out == nullptr) return ReadConsentFacts(r, nullptr);
  auto f = std::make_shared<ConsentFacts>();
  if (!ReadConsentFacts(r, f.get())) return false;
  *out = std::move(f);
  return true;
}

}  // namespace

double AudienceIndex::Value::number() const {
  if (type() != FieldValue::Type::kNumber) return 0;
  ByteReader r(std::string_view(at_, sizeof(double)));
  return r.F64();
}

FieldValue AudienceIndex::Value::ToFieldValue() const {
  FieldValue v;
  v.type = type();
  switch (v.type) {
    case FieldValue::Type::kNumber: v.number = number(); break;
    case FieldValue::Type::kBool: v.boolean = boolean_; break;
    case FieldValue::Type::kNull: break;
    default: v.text = text(); break;
  }
  return v;
}

bool AudienceIndex::ReadValue(ByteReader& r, Value* v) {
  *v = Value();
  v->type_ = r.U8();
  if (v->type_ > static_cast<uint8_t>(FieldValue::Type::kComposite)) return false;
  switch (v->type()) {
    case FieldValue::Type::kNumber:
      v->at_ = r.input().data() + r.at();
      r.F64();
      break;
    case FieldValue::Type::kBool: v->boolean_ = r.U8() != 0; break;
    case FieldValue::Type::kNull: break;
    default: {
      const std::string_view text = r.VStr();
      v->at_ = text.data();
      v->size_ = static_cast<uint32_t>(text.size());
      break;
    }
  }
  return !r.failed();
}

bool AudienceIndex::ReadTailFrom(ByteReader& r, Tail* out) {
  const std::string_view box = r.VStr();
  if (out != nullptr) out->box = box;
  const size_t facts_at = r.at();
  // Skipping the facts checks them; a reader of them unpacks, and so checks, them anyway.
  if (out == nullptr) return ReadFacts(r, nullptr) && !r.failed();
  if (r.failed() || facts_at >= r.input().size()) return false;
  out->facts = r.input()[facts_at] != 0 ? r.input().substr(facts_at) : std::string_view();
  return true;
}

std::string_view AudienceIndex::IdOf(std::string_view record) {
  ByteReader r(record);
  return r.VStr();
}

template <typename P, typename Fn>
void AudienceIndex::Part::Each(P& part, Fn fn) {
  fn(part.records);
  fn(part.eligible);
  for (auto& column : part.columns) fn(column);
}

template <typename Fn>
void AudienceIndex::Part::Zip(Part& other, Fn fn) {
  fn(records, other.records);
  fn(eligible, other.eligible);
  for (size_t k = 0; k < columns.size(); ++k) fn(columns[k], other.columns[k]);
}

size_t AudienceIndex::Part::bytes() const {
  size_t n = 0;
  Each(*this, [&n](const auto& v) { n += v.capacity() * sizeof(v[0]); });
  return n;
}

void AudienceIndex::Part::Append(Part& other, size_t j) {
  Zip(other, [j](auto& to, auto& from) { to.push_back(std::move(from[j])); });
}

void AudienceIndex::Part::Extend(Part& other) {
  Zip(other, [](auto& to, auto& from) {
    to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
  });
  Adopt(other);
}

void AudienceIndex::Part::Adopt(Part& other) {
  blocks.insert(blocks.end(), std::make_move_iterator(other.blocks.begin()),
                std::make_move_iterator(other.blocks.end()));
  other.blocks.clear();
}

void AudienceIndex::Part::Put(size_t i, Part& other, size_t j) {
  Zip(other, [i, j](auto& to, auto& from) { to[i] = std::move(from[j]); });
}

namespace {

// Reserves room for n elements and, when that is a large block, asks for transparent huge
// pages before anything touches it: a million entries' columns then fault in a few hundred
// pages rather than ~75 000 (each fault is expensive in a virtual machine).
template <typename V>
void ReserveHuge(V& v, size_t n) {
  v.reserve(n);
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<uintptr_t>(v.data() + v.size());
  const auto end = reinterpret_cast<uintptr_t>(v.data() + v.capacity());
  const uintptr_t from = (begin + kHuge - 1) & ~(kHuge - 1), to = end & ~(kHuge - 1);
  if (to > from) ::madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE);
}

}  // namespace

void AudienceIndex::Part::Reserve(size_t n) {
  Each(*this, [n](auto& v) { ReserveHuge(v, n); });
}

void AudienceIndex::Part::Resize(size_t n) {
  Each(*this, [n](auto& v) { v.resize(n); });
}

bool AudienceIndex::Part::Set(size_t i, ByteReader& r) {
  const size_t begin = r.at();
  r.VStr();  // the id
  eligible[i] = r.U8();
  for (auto& column : columns) {
    if (!ReadValue(r, &column[i])) return false;
  }
  if (!ReadTailFrom(r, nullptr)) return false;
  records[i] = r.input().substr(begin, r.at() - begin);
  return true;
}

bool AudienceIndex::ReadTail(size_t i, Tail* out) const {
  ByteReader r(all_.records[i]);
  r.VStr();  // the id
  r.U8();    // eligibility
  Value skipped;
  for (size_t k = 0; k < fields_.size(); ++k) {
    if (!ReadValue(r, &skipped)) return false;
  }
  return ReadTailFrom(r, out);
}

bool AudienceIndex::Part::Add(std::string_view record) {
  if (open_arena == nullptr || open_arena->room() < record.size()) {
    open_arena = std::make_shared<Arena>(std::max(record.size(), arena_block), arena_bytes);
    blocks.push_back(open_arena);
  }
  ByteReader r(open_arena->Append(record));
  Resize(records.size() + 1);
  return Set(records.size() - 1, r);
}

AudienceIndex::Part AudienceIndex::Empty() const {
  Part p;
  p.columns.resize(fields_.size());
  p.arena_bytes = block_bytes_;
  return p;
}

size_t AudienceIndex::bytes() const { return block_bytes_->now + all_.bytes(); }

size_t AudienceIndex::column_bytes() const { return size() == 0 ? 0 : all_.bytes() / size(); }

const std::vector<AudienceIndex::Value>* AudienceIndex::Column(const std::string& field) const {
  auto it = std::lower_bound(fields_.begin(), fields_.end(), field);
  if (it == fields_.end() || *it != field) return nullptr;
  return &all_.columns[static_cast<size_t>(it - fields_.begin())];
}

Result<FieldMap> AudienceIndex::OpenKept(size_t i, const std::set<std::string>& fields) const {
  Tail tail;
  if (!ReadTail(i, &tail)) return Damaged("an audience index record does not read back");
  FieldMap out;
  if (tail.box.empty()) return out;  // none of the output fields is set
  ScopedKey key;
  CopyKey(key_, &key);
  std::string plain;
  Status failed = OpenFieldInto(key, {id(i), kOutputBox, kIndexBinding}, BytesOf(tail.box), &plain);
  // The box holds each field of sealed_ in order: a presence byte, then the encoded value.
  ByteReader r(plain);
  for (size_t k = 0; k < sealed_.size() && failed.ok(); ++k) {
    if (r.U8() == 0) continue;  // unset
    const std::string_view encoded = r.VStr();
    if (r.failed()) break;
    if (!fields.contains(sealed_[k])) continue;
    std::optional<FieldValue> value = DecodeFieldValue(encoded);
    if (!value) {
      failed = Damaged("an audience index box does not read back");
      break;
    }
    out[sealed_[k]] = std::move(*value);
  }
  if (failed.ok() && (r.failed() || !r.done())) {
    failed = Damaged("an audience index box does not read back");
  }
  sodium_memzero(plain.data(), plain.size());
  if (failed.ok()) return out;
  for (auto& [_, v] : out) sodium_memzero(v.text.data(), v.text.size());
  return failed;
}

void AudienceIndex::Clear() {
  DropBlocks();
  all_ = Empty();
  retired_bytes_ = 0;
  complete_ = false;
  ++generation_;
}

void AudienceIndex::Trim() {
  if (size() > capacity_) Clear();
}

Status AudienceIndex::Refresh(const std::set<std::string>& open,
                              const std::set<std::string>& sealed) {
  bool covered = complete_;
  for (const auto& f : open) covered &= std::binary_search(fields_.begin(), fields_.end(), f);
  for (const auto& f : sealed) covered &= std::binary_search(sealed_.begin(), sealed_.end(), f);
  std::set<std::string> all_open(fields_.begin(), fields_.end());
  std::set<std::string> all_sealed(sealed_.begin(), sealed_.end());
  if (!covered) {
    all_open.insert(open.begin(), open.end());
    all_sealed.insert(sealed.begin(), sealed.end());
    return Rebuild(all_open, all_sealed);
  }
  GARDE_ASSIGN_OR_RETURN(auto caught_up, CatchUp());
  if (!caught_up) return Rebuild(all_open, all_sealed);
  return Status::Ok();
}

Result<bool> AudienceIndex::CatchUp() {
  if (!complete_) return false;
  int64_t shreds = 0;
  std::optional<ChangeTail> tail;
  Status s = store_.Read([&](ReadTx& tx) -> Status {
    // Read first: once the changes are applied, the index reflects every erasure counted.
    GARDE_ASSIGN_OR_RETURN(auto counted, tx.ShredCount());
    shreds = counted;
    GARDE_ASSIGN_OR_RETURN(
        auto t, tx.ChangesAfter(all_.position, std::max(kMaxChanges, size() / kMaxChangesShare)));
    tail = std::move(t);
    return Status::Ok();
  });
  if (s.ok() && !tail->complete) return false;  // only a rebuild can follow
  if (s.ok() && tail->last_seq > all_.position) s = ApplyChanges(tail->changes);
  if (!s.ok()) {
    Clear();
    return s;
  }
  all_.position = std::max(all_.position, tail->last_seq);
  shreds_ = shreds;
  CompactIfWasteful();
  return true;
}

void AudienceIndex::CompactIfWasteful() {
  constexpr size_t kWasteShare = 8;  // compacts once an eighth of the live bytes is replaced
  if (retired_bytes_ < whole_block_ / 64) return;  // 64 KiB: not worth a pass
  size_t live = 0;
  for (const auto& r : all_.records) live += r.size();
  if (retired_bytes_ * kWasteShare < live) return;
  // Which block each live record is in (the blocks sorted by address).
  auto& blocks = all_.blocks;
  std::vector<size_t> by_address(blocks.size());
  std::iota(by_address.begin(), by_address.end(), size_t{0});
  std::sort(by_address.begin(), by_address.end(),
            [&](size_t a, size_t b) { return blocks[a]->begin() < blocks[b]->begin(); });
  std::vector<uint32_t> in_block(size());
  std::vector<size_t> first(blocks.size() + 1, 0);  // where each block's entries start in order
  for (size_t i = 0; i < size(); ++i) {
    const char* p = all_.records[i].data();
    auto it = std::upper_bound(by_address.begin(), by_address.end(), p,
                               [&](const char* q, size_t b) { return q < blocks[b]->begin(); });
    if (it == by_address.begin() || !blocks[*(it - 1)]->Holds(p)) return;  // in no block
    in_block[i] = static_cast<uint32_t>(*(it - 1));
    ++first[in_block[i] + 1];
  }
  // The entries grouped by block, in id order within each (a counting sort).
  std::partial_sum(first.begin(), first.end(), first.begin());
  std::vector<uint32_t> order(size());
  {
    std::vector<size_t> next(first.begin(), first.end() - 1);
    for (size_t i = 0; i < size(); ++i) order[next[in_block[i]]++] = static_cast<uint32_t>(i);
  }
  in_block = {};
  // One block at a time: its live records copied into the new blocks, then it goes (wiping
  // itself), or once no capture holds the retired records in it.
  std::vector<std::shared_ptr<Arena>> packed;
  std::vector<std::shared_ptr<Arena>> kept;  // a record that did not read back stays
  for (size_t b = 0; b < blocks.size(); ++b) {
    bool moved = true;
    for (size_t k = first[b]; k < first[b + 1]; ++k) {
      const size_t i = order[k];
      const std::string_view record = all_.records[i];
      if (packed.empty() || packed.back()->room() < record.size()) {
        packed.push_back(
            std::make_shared<Arena>(std::max(record.size(), whole_block_), block_bytes_));
      }
      // Each record read back once already: it reads back again. Should it not, it stays
      // where it is, and so does its block.
      ByteReader copy(packed.back()->Append(record));
      if (!all_.Set(i, copy)) {
        ByteReader again(record);
        all_.Set(i, again);
        moved = false;
      }
    }
    if (!moved) {
      kept.push_back(std::move(blocks[b]));
      continue;
    }
    if (captures_ > 0) retired_blocks_.push_back(std::move(blocks[b]));
    blocks[b].reset();
  }
  if (captures_ == 0) retired_.clear();  // wiped with the blocks that held them
  blocks = std::move(kept);
  blocks.insert(blocks.end(), packed.begin(), packed.end());
  all_.open_arena = packed.empty() ? nullptr : packed.back();  // not an old block: it is gone
  retired_bytes_ = 0;
  ++compactions_;
}

Status AudienceIndex::Rebuild(const std::set<std::string>& open,
                              const std::set<std::string>& sealed) {
  fields_.assign(open.begin(), open.end());
  fields_set_ = open;
  sealed_.assign(sealed.begin(), sealed.end());
  opened_set_ = open;
  opened_set_.insert(sealed.begin(), sealed.end());
  Clear();
  key_ = SecretKey::Random();  // no record sealed under the last one is left
  saved_position_ = -1;
  int64_t count = 0, shreds = 0;
  GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
    // Before any range is read: an erasure after this may be missing from what they read.
    GARDE_ASSIGN_OR_RETURN(auto counted, tx.ShredCount());
    shreds = counted;
    GARDE_ASSIGN_OR_RETURN(auto n, tx.CountSubjects());
    count = n;
    return Status::Ok();
  }));
  // Room for everyone up front: growing columns of a million entries copies them, and
  // every fresh page costs a fault.
  const auto n = static_cast<size_t>(count);
  std::vector<Part> parts(kRanges);
  std::vector<Status> results(kRanges, Status::Ok());
  // The first range becomes the whole index: room for everyone there (reserved, not
  // touched), for about its share in the others. Each range writes its records into blocks
  // of about its share too (a record takes ~200 bytes): with blocks of 4 MiB whatever the
  // vault, the index of 28 000 subjects counted 55.5 MB for ~6 MB of records.
  const size_t range_block = std::clamp<size_t>(n / kRanges * 256, whole_block_ / 64, whole_block_);
  for (size_t i = 0; i < kRanges; ++i) {
    parts[i] = Empty();
    parts[i].arena_block = range_block;
    parts[i].Reserve(i == 0 ? WithRoom(n) : n / kRanges + n / (kRanges * 8) + 16);
  }
  // Two threads, each on its own connection, take the ranges in turn. A range read is
  // appended to the index as soon as every range before it is: one thread appends while
  // the other reads on, so little is left to do once the last range is read.
  Part whole;
  std::mutex merge_mu;
  std::vector<bool> read(kRanges, false);
  size_t appended = 0;
  bool appending = false;
  auto append_ready = [&](size_t finished) {
    std::unique_lock<std::mutex> lock(merge_mu);
    read[finished] = true;
    if (appending) return;  // the thread appending will take this one too
    appending = true;
    while (appended < kRanges && read[appended]) {
      const size_t k = appended;
      lock.unlock();
      if (k == 0) {
        whole = std::move(parts[0]);
      } else {
        whole.position = std::min(whole.position, parts[k].position);
        whole.Extend(parts[k]);
        parts[k] = Part();  // its memory back before the next is moved
      }
      lock.lock();
      ++appended;
    }
    appending = false;
  };
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < kRanges;) {
      results[i] = store_.Read(
          [&](ReadTx& tx) { return ScanInto(tx, kBounds[i], kBounds[i + 1], &parts[i]); });
      if (!results[i].ok()) {
        next = kRanges;  // no point in reading the rest
        return;
      }
      append_ready(i);
    }
  };
  std::thread helper([&] {
    NameThisThread("garde-helper");
    work();
  });
  work();
  helper.join();
  for (const auto& r : results) GARDE_RETURN_IF_ERROR(r);
  // Every range was appended: the last one read was appended by the thread that read it.
  // The ranges were read in different snapshots: changes after the oldest are applied next
  // time, which re-reads a subject a newer one already saw (harmless).
  all_ = std::move(whole);
  complete_ = true;
  shreds_ = shreds;
  return Status::Ok();
}

bool AudienceIndex::Wanted(std::string_view field) const {
  return std::binary_search(fields_.begin(), fields_.end(), field) ||
         std::binary_search(sealed_.begin(), sealed_.end(), field);
}

Status AudienceIndex::ScanInto(ReadTx& tx, const std::string& from, const std::string& before,
                               Part* out) const {
  GARDE_ASSIGN_OR_RETURN(auto at, tx.ChangesAfter(std::numeric_limits<int64_t>::max(), 0));
  out->position = at.last_seq;
  // The consent facts come with the rows (one pass over the facts index per page), so that
  // the first audience decides consent without a look-up per subject either.
  GARDE_ASSIGN_OR_RETURN(auto suppressed, tx.SuppressedContactsIn(from, before));
  size_t next_suppressed = 0;
  std::string after = from;
  for (;;) {
    auto rows = tx.ScanSubjects(after, 1000);
    if (!rows.ok()) return rows.status();
    auto& page = rows.value();
    if (!before.empty()) {
      page.erase(
          std::lower_bound(page.begin(), page.end(), before,
                           [](const SubjectRow& r, const std::string& id) { return r.id < id; }),
          page.end());
    }
    if (page.empty()) return Status::Ok();
    // The page's boxes in one pass over the fields table, matched to its rows in id order.
    std::vector<std::vector<SealedField>> sealed(page.size());
    if (!fields_.empty() || !sealed_.empty()) {
      size_t k = 0;
      GARDE_RETURN_IF_ERROR(tx.ScanFields(
          page.front().id, page.back().id,
          [&](std::string_view subject, std::string_view field, const uint8_t* box, size_t n) {
            const size_t row_at = SeekSubjectRow(page, &k, subject);
            if (row_at == page.size() || !Wanted(field)) return;
            if (sealed[row_at].empty()) sealed[row_at].reserve(fields_.size() + sealed_.size());
            sealed[row_at].push_back({std::string(field), Bytes(box, box + n)});
          }));
    }
    GARDE_ASSIGN_OR_RETURN(auto facts,
                           ConsentLedger::FactsOfPage(tx, page, suppressed, &next_suppressed));
    for (size_t i = 0; i < page.size(); ++i) {
      after = page[i].id;
      GARDE_RETURN_IF_ERROR(
          ReadOne(std::move(page[i]), std::move(sealed[i]), std::move(facts[i]), out));
    }
  }
}

Status AudienceIndex::ReadOne(SubjectRow&& row, std::vector<SealedField> sealed,
                              std::shared_ptr<const ConsentFacts> facts, Part* out) const {
  // Restricted and erased subjects are not processed: nothing of theirs is opened.
  bool eligible = row.status == "active";
  FieldMap values;
  if (eligible && !opened_set_.empty()) {
    auto opened = open_(row, sealed, opened_set_);
    if (opened.ok()) {
      values = std::move(opened).value();
    } else if (opened.status().code() == Code::kDamaged) {
      eligible = false;  // never in a campaign
    } else {
      return opened.status();
    }
  }
  // The record, as a snapshot holds it; nothing but the id of an ineligible subject.
  ByteWriter w;
  w.VStr(row.id).U8(eligible ? 1 : 0);
  for (const auto& f : fields_) {
    auto it = values.find(f);
    WriteValue(w, eligible && it != values.end() ? it->second : FieldValue{});
  }
  // The output fields sealed again, together in one box under the index's key: each field
  // of sealed_ in order, a presence byte then its encoded value. No box when none is set
  // (nothing of an ineligible subject).
  ByteWriter plain;
  bool any = false;
  for (const auto& name : sealed_) {
    auto it = values.find(name);
    const bool set = eligible && it != values.end() && !it->second.is_null();
    plain.U8(set ? 1 : 0);
    if (!set) continue;
    std::string encoded = EncodeFieldValue(it->second);
    plain.VStr(encoded);
    sodium_memzero(encoded.data(), encoded.size());
    any = true;
  }
  if (any) {
    ScopedKey key;
    CopyKey(key_, &key);
    const Bytes box = SealField(key, {row.id, kOutputBox, kIndexBinding}, plain.data());
    w.VStr(AsStringView(box));
  } else {
    w.VStr("");
  }
  sodium_memzero(plain.data().data(), plain.data().size());
  WriteFacts(w, eligible ? facts.get() : nullptr);
  for (auto& [_, v] : values) sodium_memzero(v.text.data(), v.text.size());
  const bool added = out->Add(w.data());
  sodium_memzero(w.data().data(), w.data().size());
  if (!added) return Internal("an audience index record does not read back");
  return Status::Ok();
}

Status AudienceIndex::ApplyChanges(const std::vector<std::pair<int64_t, std::string>>& changes) {
  std::set<std::string> changed;
  for (const auto& c : changes) changed.insert(c.second);
  Part fresh = Empty();  // the changed subjects still on file, as read now
  fresh.arena_block = change_block_;
  std::vector<std::pair<size_t, bool>> targets;  // per fresh entry: its index, and if present
  std::vector<size_t> removed;                   // ascending
  // A few thousand subjects per read transaction: one that lasts seconds keeps the WAL
  // from being checkpointed past its snapshot while writers go on. A subject read in a
  // later snapshot than the changes were listed in is only more current.
  auto next = changed.begin();
  while (next != changed.end()) {
    GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
      for (size_t n = 0; n < kChangesPerRead && next != changed.end(); ++n, ++next) {
        const std::string& id = *next;
        auto at = std::lower_bound(
            all_.records.begin(), all_.records.end(), id,
            [](std::string_view record, const std::string& key) { return IdOf(record) < key; });
        const bool present = at != all_.records.end() && IdOf(*at) == id;
        const auto i = static_cast<size_t>(at - all_.records.begin());
        GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
        if (!row) {
          if (present) removed.push_back(i);
          continue;
        }
        GARDE_ASSIGN_OR_RETURN(auto sealed, tx.GetFields(id));
        // The facts with the record, as a rebuild has them: an audience then decides a
        // changed subject without a read of its own, and leaves the ledger's cache alone
        // (under mixed load at a million subjects, reading them while evaluating took
        // 10-15 s against 3-4 s after a rebuild).
        std::shared_ptr<const ConsentFacts> facts;
        if (row->status == "active") {
          GARDE_ASSIGN_OR_RETURN(auto read, ConsentLedger::LoadFacts(tx, *row));
          facts = std::move(read);
        }
        GARDE_RETURN_IF_ERROR(
            ReadOne(std::move(*row), std::move(sealed), std::move(facts), &fresh));
        targets.emplace_back(i, present);
      }
      return Status::Ok();
    }));
  }
  Part added = Empty();  // subjects new to the index, in id order
  for (size_t k = 0; k < targets.size(); ++k) {
    if (targets[k].second) {
      Retire(targets[k].first);
      all_.Put(targets[k].first, fresh, k);
    } else {
      added.Append(fresh, k);
    }
  }
  all_.Adopt(fresh);  // the entries put in place, and the added ones, live in its blocks
  for (size_t i : removed) Retire(i);
  WipeRetired();
  if (removed.empty() && added.size() == 0) return Status::Ok();
  // Where each added subject lands among those kept, in id order.
  std::vector<size_t> at(added.size());
  for (size_t j = 0, i = 0, next_removed = 0, kept = 0; j < added.size(); ++j) {
    for (; i < size() && id(i) < IdOf(added.records[j]); ++i) {
      if (next_removed < removed.size() && removed[next_removed] == i) {
        ++next_removed;
      } else {
        ++kept;
      }
    }
    at[j] = kept + j;
  }
  // The columns changed in place: a copy beside them would be tens of megabytes more at a
  // million subjects. They grow, with room for more, only when they are full.
  const size_t total = size() - removed.size() + added.size();
  if (total > all_.records.capacity()) {
    all_.Reserve(WithRoom(total));
    ++column_growths_;
  }
  all_.Zip(added, [&](auto& to, auto& from) { SpliceInPlace(to, removed, from, at); });
  return Status::Ok();
}

namespace {

// Snapshot form version; a snapshot of another version is rebuilt from the vault.
// 2: consent facts in WriteConsentFacts' compact form. 3: lengths and key versions in
// records as varints (18 bytes a subject fewer). 4: output fields under the index's key,
// which the head carries, instead of each subject's wrapped data key (75 bytes fewer).
// 5: a subject's output fields in one box (a nonce and a tag per subject, not per field).
// 6: the usual purposes, channels and contacts of consent facts one byte each.
constexpr uint32_t kSnapshotFormat = 6;
constexpr size_t kEntriesPerChunk = 8192;  // ~2.5 MB: both threads busy to the end

}  // namespace

std::string AudienceIndex::SerializeHead(const std::vector<size_t>& counts) const {
  ByteWriter w;
  w.U32(kSnapshotFormat).Str({reinterpret_cast<const char*>(key_.data()), kKeyBytes});
  w.U32(static_cast<uint32_t>(fields_.size()));
  for (const auto& f : fields_) w.Str(f);
  w.U32(static_cast<uint32_t>(sealed_.size()));
  for (const auto& f : sealed_) w.Str(f);
  w.I64(all_.position).U32(static_cast<uint32_t>(counts.size()));
  for (size_t n : counts) w.U32(static_cast<uint32_t>(n));
  return std::move(w.data());
}

void AudienceIndex::Retire(size_t i) {
  retired_bytes_ += all_.records[i].size();
  if (!all_.records[i].empty()) retired_.push_back(all_.records[i]);
  // The values are views into the record, wiped with it.
  for (auto& c : all_.columns) c[i] = Value();
}

void AudienceIndex::WipeRetired() {
  if (captures_ > 0) return;  // a snapshot being written may still read them
  // The arena is this index's own memory: its records are written once, then only wiped.
  for (auto record : retired_) sodium_memzero(const_cast<char*>(record.data()), record.size());
  retired_.clear();
  retired_blocks_.clear();
}

void AudienceIndex::DropBlocks() {
  if (captures_ == 0) {
    retired_.clear();  // wiped with the blocks that hold them
    retired_blocks_.clear();
    return;
  }
  for (auto& b : all_.blocks) retired_blocks_.push_back(std::move(b));
  all_.blocks.clear();
}

std::shared_ptr<const ConsentFacts> AudienceIndex::Facts(size_t i) const {
  Tail tail;
  if (!ReadTail(i, &tail) || tail.facts.empty()) return nullptr;
  std::shared_ptr<const ConsentFacts> unpacked;
  ByteReader r(tail.facts);
  if (!ReadFacts(r, &unpacked)) return nullptr;  // read from the ledger then
  return unpacked;
}

Result<std::optional<AudienceIndex::Capture>> AudienceIndex::TakeCapture() {
  // First what changed since the last audience: an erasure among it would keep this
  // content from being given a key.
  GARDE_ASSIGN_OR_RETURN(auto caught_up, CatchUp());
  if (!caught_up || all_.position == saved_position_) return std::optional<Capture>();
  Capture c;
  for (size_t from = 0; from < size(); from += kEntriesPerChunk) {
    c.counts.push_back(std::min(kEntriesPerChunk, size() - from));
  }
  c.head = SerializeHead(c.counts);
  c.records = all_.records;
  c.arenas = all_.blocks;
  c.position = all_.position;
  c.shreds = shreds_;
  c.generation = generation_;
  ++captures_;
  return std::optional<Capture>(std::move(c));
}

Result<bool> AudienceIndex::Write(const Capture& c, SealedSnapshot& snapshot) {
  return snapshot.Save(
      c.counts.size() + 1,
      [&](size_t i) {
        if (i == 0) return c.head;
        const size_t from = (i - 1) * kEntriesPerChunk, to = from + c.counts[i - 1];
        size_t n = 0;
        for (size_t k = from; k < to; ++k) n += c.records[k].size();
        std::string out;
        out.reserve(n);
        for (size_t k = from; k < to; ++k) out.append(c.records[k]);
        return out;
      },
      c.shreds);
}

void AudienceIndex::Release(Capture& c, bool kept) {
  sodium_memzero(c.head.data(), c.head.size());  // it holds the index's key
  --captures_;
  WipeRetired();
  if (kept && c.generation == generation_) saved_position_ = c.position;
}

Result<bool> AudienceIndex::LoadFrom(SealedSnapshot& snapshot) {
  if (complete_ || size() != 0) return false;
  auto opened = snapshot.Open();
  if (!opened.ok()) {
    if (opened.status().code() == Code::kNotFound) return false;
    return opened.status();
  }
  const SealedSnapshot::Reader& reader = *opened.value();
  Bytes head_box;
  std::string head;
  if (!reader.Chunk(0, &head_box, &head).ok()) return false;
  struct Wipe {
    std::string& s;
    ~Wipe() { sodium_memzero(s.data(), s.size()); }
  } wipe_head{head};  // it holds the index's key
  ByteReader r(head);
  std::vector<std::string> fields, sealed;
  std::vector<size_t> counts, starts;
  if (r.U32() != kSnapshotFormat) return false;
  const std::string_view key = r.Str();
  if (key.size() != kKeyBytes) return false;
  for (uint32_t n = r.U32(); n > 0 && !r.failed(); --n) fields.emplace_back(r.Str());
  for (uint32_t n = r.U32(); n > 0 && !r.failed(); --n) sealed.emplace_back(r.Str());
  const int64_t position = r.I64();
  const uint32_t chunks = r.U32();
  size_t total = 0;
  for (uint32_t n = 0; n < chunks && !r.failed(); ++n) {
    starts.push_back(total);
    counts.push_back(r.U32());
    total += counts.back();
  }
  if (r.failed() || !r.done() || chunks + 1 != reader.count() || total > capacity_ ||
      !std::is_sorted(fields.begin(), fields.end()) ||
      !std::is_sorted(sealed.begin(), sealed.end())) {
    return false;
  }
  fields_ = std::move(fields);
  fields_set_ = std::set<std::string>(fields_.begin(), fields_.end());
  sealed_ = std::move(sealed);
  opened_set_ = fields_set_;
  opened_set_.insert(sealed_.begin(), sealed_.end());
  key_ = SecretKey::FromBytes(reinterpret_cast<const uint8_t*>(key.data()));
  DropBlocks();
  all_ = Empty();
  all_.blocks.resize(chunks);  // chunk i's, filled by whichever thread reads it
  {
    // Every page of the columns is faulted in here: the columns on one thread, the rest on
    // this one.
    auto columns = std::move(all_.columns);
    std::thread sizing([&] {
      NameThisThread("garde-helper");
      for (auto& c : columns) {
        ReserveHuge(c, WithRoom(total));
        c.resize(total);
      }
    });
    all_.Reserve(WithRoom(total));
    all_.Resize(total);
    sizing.join();
    all_.columns = std::move(columns);
  }
  // Two threads take the chunks in turn, each filling its own entries.
  std::atomic<size_t> next{0};
  std::atomic<bool> good{true};
  auto work = [&] {
    Bytes box;
    std::string plain;
    for (size_t i; good && (i = next.fetch_add(1)) < chunks;) {
      if (!reader.Chunk(i + 1, &box, &plain).ok()) {
        good = false;
        break;
      }
      // The chunk's records stay where they are: the entries point into its arena.
      auto arena = std::make_shared<Arena>(plain.size(), block_bytes_);
      ByteReader records(arena->Append(plain));
      all_.blocks[i] = std::move(arena);
      for (size_t k = starts[i]; k < starts[i] + counts[i] && good; ++k) {
        if (!all_.Set(k, records) || (k > starts[i] && !(id(k - 1) < id(k)))) {
          good = false;
        }
      }
      if (!records.done()) good = false;
    }
    sodium_memzero(plain.data(), plain.size());
  };
  std::thread helper([&] {
    NameThisThread("garde-helper");
    work();
  });
  work();
  helper.join();
  // Chunks in id order, each in order: the whole must be too.
  for (size_t i = 1; good && i < chunks; ++i) {
    if (counts[i - 1] > 0 && counts[i] > 0 && !(id(starts[i] - 1) < id(starts[i]))) {
      good = false;
    }
  }
  if (!good) {
    Clear();
    return false;
  }
  all_.position = position;
  shreds_ = reader.shreds();
  saved_position_ = position;
  complete_ = true;
  ++generation_;
  return true;
}

}  // namespace garde

#include "garde/domain/sealed_snapshot.h"

#include <sodium.h>

#include "garde/base/byte_codec.h"
#include "garde/base/encoding.h"
#include "garde/crypto/envelope.h"

namespace garde {
namespace {

// Layout: magic | key id (u32 length, text) | chunk count n (u32) | n + 1 absolute offsets
// (u64) | the n sealed chunks. Each chunk is a field box bound to the key id and to
// "chunk i of n", so chunks cannot be swapped, dropped or moved to another snapshot.
constexpr std::string_view kMagic = "GARDE-SNAPSHOT-1";

std::string SnapshotSubject(const std::string& key_id) { return "snapshot:" + key_id; }
std::string ChunkName(size_t i, size_t n) {
  return "chunk " + std::to_string(i) + " of " + std::to_string(n);
}

}  // namespace

SealedSnapshot::Reader::~Reader() = default;

Status SealedSnapshot::Reader::Chunk(size_t i, Bytes* box, std::string* plain) const {
  if (i >= count()) return Damaged("no such snapshot chunk");
  const uint64_t from = offsets_[i], to = offsets_[i + 1];
  if (to - from > (uint64_t{1} << 31)) return Damaged("the snapshot file is damaged");
  box->resize(static_cast<size_t>(to - from));
  if (!file_->ReadAt(from, box->size(), box->data()).ok()) {
    return Damaged("the snapshot file is truncated");
  }
  return OpenFieldInto(key_, {SnapshotSubject(key_id_), ChunkName(i, count()), 1}, *box, plain);
}

Result<bool> SealedSnapshot::Save(size_t count, const std::function<std::string(size_t)>& chunk,
                                  int64_t shreds) {
  const auto ring = keys_.Current();
  ScopedKey key;
  key.Randomize();
  const std::string key_id = RandomId("snk_");
  GARDE_ASSIGN_OR_RETURN(auto wrapped,
                         WrapDataKey(*ring, ring->current_version(), SnapshotSubject(key_id), key));

  const std::string temp = path_ + ".new";
  GARDE_ASSIGN_OR_RETURN(auto file, fs_.Open(temp, FileSystem::Mode::kCreate));
  auto fail = [&](Status s) {
    file.reset();
    fs_.Remove(temp).IgnoreError();
    return s;
  };
  ByteWriter head;
  head.data().append(kMagic);
  head.Str(key_id).U32(static_cast<uint32_t>(count));
  std::vector<uint64_t> offsets{head.data().size() + 8 * (count + 1)};
  for (size_t i = 0; i < count; ++i) {
    std::string plain = chunk(i);
    Bytes box = SealField(key, {SnapshotSubject(key_id), ChunkName(i, count), 1}, plain);
    sodium_memzero(plain.data(), plain.size());
    Status s = file->WriteAt(offsets.back(), AsStringView(box));
    if (!s.ok()) return fail(s);
    offsets.push_back(offsets.back() + box.size());
  }
  for (uint64_t o : offsets) head.I64(static_cast<int64_t>(o));
  Status s = file->WriteAt(0, head.data());
  if (s.ok()) s = file->Sync();
  if (!s.ok()) return fail(s);
  file.reset();
  if (Status renamed = fs_.Rename(temp, path_); !renamed.ok()) {
    fs_.Remove(temp).IgnoreError();
    return renamed;
  }
  bool kept = false;
  GARDE_RETURN_IF_ERROR(store_.Write([&](WriteTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(
        auto put, tx.PutSnapshotKey({name_, key_id, ring->current_version(), wrapped}, shreds));
    kept = put;
    return Status::Ok();
  }));
  if (!kept) Remove();
  return kept;
}

Result<std::unique_ptr<SealedSnapshot::Reader>> SealedSnapshot::Open() {
  std::optional<SnapshotKeyRow> row;
  std::unique_ptr<Reader> r(new Reader());  // private constructor
  GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto shreds, tx.ShredCount());
    r->shreds_ = shreds;
    GARDE_ASSIGN_OR_RETURN(auto key, tx.GetSnapshotKey(name_));
    row = std::move(key);
    return Status::Ok();
  }));
  if (!row) {
    Remove();  // its key is gone (or never was): the file is noise
    return NotFound("no snapshot key");
  }
  const auto ring = keys_.Current();
  Status unwrapped = UnwrapDataKey(*ring, row->root_key_version, SnapshotSubject(row->key_id),
                                   row->wrapped_key, &r->key_);
  if (!unwrapped.ok()) return NotFound("the snapshot key cannot be opened: " + unwrapped.message());
  r->key_id_ = row->key_id;
  auto file = fs_.Open(path_, FileSystem::Mode::kRead);
  if (!file.ok()) return NotFound("no snapshot file");
  r->file_ = std::move(file).value();
  // The header: magic, key id, count, offsets.
  std::string head(kMagic.size() + 4 + 64 + 4, '\0');
  if (!r->file_->ReadAt(0, head.size(), head.data()).ok()) {
    return NotFound("the snapshot file is too short");
  }
  ByteReader in(std::string_view(head).substr(kMagic.size()));
  const std::string_view key_id = in.Str();
  const uint32_t count = in.U32();
  if (head.compare(0, kMagic.size(), kMagic) != 0 || in.failed() || key_id != row->key_id ||
      count == 0 || count > 1 << 20) {
    Remove();
    return NotFound("the snapshot file is not the key's");
  }
  const size_t table_at = kMagic.size() + 4 + key_id.size() + 4;
  std::string table(8 * (count + size_t{1}), '\0');
  if (!r->file_->ReadAt(table_at, table.size(), table.data()).ok()) {
    return NotFound("the snapshot file is truncated");
  }
  ByteReader offsets(table);
  for (size_t i = 0; i <= count; ++i) {
    const auto o = static_cast<uint64_t>(offsets.I64());
    if (!r->offsets_.empty() && o < r->offsets_.back())
      return NotFound("the snapshot file is damaged");
    r->offsets_.push_back(o);
  }
  return r;
}

void SealedSnapshot::Remove() { fs_.Remove(path_).IgnoreError(); }

}  // namespace garde

#include "garde/domain/sealed_snapshot.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "garde/base/byte_codec.h"
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

Status WriteAll(int fd, const void* data, size_t n, off_t at) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Unavailable(std::string("cannot write the snapshot: ") + std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
    at += w;
  }
  return Status::Ok();
}

bool ReadAll(int fd, void* data, size_t n, off_t at) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, at);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
    at += r;
  }
  return true;
}

}  // namespace

SealedSnapshot::Reader::~Reader() {
  if (fd_ >= 0) ::close(fd_);
}

Status SealedSnapshot::Reader::Chunk(size_t i, Bytes* box, std::string* plain) const {
  if (i >= count()) return Damaged("no such snapshot chunk");
  const uint64_t from = offsets_[i], to = offsets_[i + 1];
  if (to - from > (uint64_t{1} << 31)) return Damaged("the snapshot file is damaged");
  box->resize(static_cast<size_t>(to - from));
  if (!ReadAll(fd_, box->data(), box->size(), static_cast<off_t>(from))) {
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
  auto wrapped = WrapDataKey(*ring, ring->current_version(), SnapshotSubject(key_id), key);
  if (!wrapped.ok()) return wrapped.status();

  const std::string temp = path_ + ".new";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot create " + temp + ": " + std::strerror(errno));
  auto fail = [&](Status s) {
    ::close(fd);
    ::unlink(temp.c_str());
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
    Status s = WriteAll(fd, box.data(), box.size(), static_cast<off_t>(offsets.back()));
    if (!s.ok()) return fail(s);
    offsets.push_back(offsets.back() + box.size());
  }
  for (uint64_t o : offsets) head.I64(static_cast<int64_t>(o));
  Status s = WriteAll(fd, head.data().data(), head.data().size(), 0);
  if (!s.ok()) return fail(s);
  if (::fsync(fd) != 0) return fail(Unavailable("cannot sync " + temp));
  ::close(fd);
  if (::rename(temp.c_str(), path_.c_str()) != 0) {
    ::unlink(temp.c_str());
    return Unavailable("cannot rename " + temp + ": " + std::strerror(errno));
  }
  bool kept = false;
  GARDE_RETURN_IF_ERROR(store_.Write([&](WriteTx& tx) -> Status {
    auto put = tx.PutSnapshotKey({name_, key_id, ring->current_version(), wrapped.value()}, shreds);
    if (!put.ok()) return put.status();
    kept = put.value();
    return Status::Ok();
  }));
  if (!kept) Remove();
  return kept;
}

Result<std::unique_ptr<SealedSnapshot::Reader>> SealedSnapshot::Open() {
  std::optional<SnapshotKeyRow> row;
  std::unique_ptr<Reader> r(new Reader());  // private constructor
  GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
    auto shreds = tx.ShredCount();
    if (!shreds.ok()) return shreds.status();
    r->shreds_ = shreds.value();
    auto key = tx.GetSnapshotKey(name_);
    if (!key.ok()) return key.status();
    row = std::move(key).value();
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
  r->fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (r->fd_ < 0) return NotFound("no snapshot file");
  // The header: magic, key id, count, offsets.
  std::string head(kMagic.size() + 4 + 64 + 4, '\0');
  if (!ReadAll(r->fd_, head.data(), head.size(), 0)) return NotFound("the snapshot file is too short");
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
  if (!ReadAll(r->fd_, table.data(), table.size(), static_cast<off_t>(table_at))) {
    return NotFound("the snapshot file is truncated");
  }
  ByteReader offsets(table);
  for (size_t i = 0; i <= count; ++i) {
    const auto o = static_cast<uint64_t>(offsets.I64());
    if (!r->offsets_.empty() && o < r->offsets_.back()) return NotFound("the snapshot file is damaged");
    r->offsets_.push_back(o);
  }
  return r;
}

void SealedSnapshot::Remove() {
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

}  // namespace garde

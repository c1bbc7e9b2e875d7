#include "garde/app/backups.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "garde/app/deployment.h"
#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/file_system.h"
#include "garde/base/json_writer.h"
#include "garde/crypto/checkpoint_signer.h"
#include "garde/crypto/keyring.h"
#include "garde/crypto/merkle.h"
#include "garde/domain/audit_log.h"
#include "garde/store/sqlite_store.h"

namespace garde {

// Backups here are of the SQLite files; a PostgreSQL database is backed up with its own tools,
// and erasures are re-applied after its restore from the tombstone log (docs/operations.md).
static Status PostgresBackupRefusal() {
  return Unprocessable(
      "the data is in PostgreSQL (database is set): back it up with pg_dump or base backups; "
      "garde backup and restore handle the SQLite files of data_dir");
}

namespace fs = std::filesystem;
namespace {

constexpr char kMagic[8] = {'G', 'A', 'R', 'D', 'E', 'B', 'K', '1'};
constexpr size_t kChunk = 1 << 20;
constexpr const char* kSuffix = ".gbak";
constexpr const char* kFiles[] = {"garde.db", "audit.db"};
using Stream = crypto_secretstream_xchacha20poly1305_state;
constexpr size_t kStreamExtra = crypto_secretstream_xchacha20poly1305_ABYTES;

// "20261202T071500Z", for ids and file names that sort by time.
std::string CompactTime(int64_t t) {
  std::string s = FormatRfc3339(t);  // 2026-12-02T07:15:00Z
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '-' || c == ':'; }), s.end());
  return s;
}

std::string HexOf(const uint8_t* p, size_t n) { return HexEncode(p, n); }

Status WriteAll(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Unavailable("cannot write the backup: " + std::string(strerror(errno)));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

bool ReadExactly(std::ifstream& in, void* out, size_t n) {
  in.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
  return static_cast<size_t>(in.gcount()) == n;
}

void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t GetU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// One sealed message: its ciphertext length (4 bytes, little-endian), then the ciphertext.
class SealedWriter {
 public:
  SealedWriter(int fd, const uint8_t* key) : fd_(fd), key_(key) {}
  Status Begin(const std::string& header) {
    uint8_t len[4];
    PutU32(len, static_cast<uint32_t>(header.size()));
    uint8_t stream_header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    crypto_secretstream_xchacha20poly1305_init_push(&state_, stream_header, key_);
    GARDE_RETURN_IF_ERROR(WriteAll(fd_, kMagic, sizeof kMagic));
    GARDE_RETURN_IF_ERROR(WriteAll(fd_, len, sizeof len));
    GARDE_RETURN_IF_ERROR(WriteAll(fd_, header.data(), header.size()));
    ad_ = std::string(kMagic, sizeof kMagic) + header;
    return WriteAll(fd_, stream_header, sizeof stream_header);
  }
  // The first message carries the clear header as associated data, binding it.
  Status Push(const uint8_t* data, size_t n, uint8_t tag) {
    buf_.resize(n + kStreamExtra + 4);
    unsigned long long out_len = 0;
    const auto* ad = reinterpret_cast<const uint8_t*>(ad_.data());
    crypto_secretstream_xchacha20poly1305_push(&state_, buf_.data() + 4, &out_len, data, n, ad,
                                               ad_.size(), tag);
    ad_.clear();
    PutU32(buf_.data(), static_cast<uint32_t>(out_len));
    GARDE_RETURN_IF_ERROR(WriteAll(fd_, buf_.data(), static_cast<size_t>(out_len) + 4));
    written_ += static_cast<off_t>(out_len) + 4;
    WriteBehind();
    return Status::Ok();
  }

 private:
  // Paces the file's writing (kPaceBytesPerSecond): at full speed the disk's queue filled and
  // the service's own small writes (read journals, audit imports) waited behind it.
  void WriteBehind() {
    constexpr off_t kStep = 8 << 20;
    if (written_ - started_ < kStep) return;
    ::sync_file_range(fd_, started_, written_ - started_, SYNC_FILE_RANGE_WRITE);
    started_ = written_;
    const auto due =
        pace_start_ + std::chrono::microseconds(written_ * 1000000 / kPaceBytesPerSecond);
    std::this_thread::sleep_until(due);
  }
  static constexpr int64_t kPaceBytesPerSecond = 100ll << 20;
  const std::chrono::steady_clock::time_point pace_start_ = std::chrono::steady_clock::now();

  off_t written_ = 0;  // bytes written so far
  off_t started_ = 0;  // write-back started up to here
  int fd_;
  const uint8_t* key_;
  Stream state_{};
  std::string ad_;
  std::vector<uint8_t> buf_;
};

class SealedReader {
 public:
  // Reads the clear header; false when the file is not a backup.
  bool Open(const std::string& path, std::string* header) {
    in_.open(path, std::ios::binary);
    char magic[8];
    uint8_t len[4];
    if (!in_ || !ReadExactly(in_, magic, 8) || std::memcmp(magic, kMagic, 8) != 0 ||
        !ReadExactly(in_, len, 4) || GetU32(len) > 65536) {
      return false;
    }
    header->resize(GetU32(len));
    if (!ReadExactly(in_, header->data(), header->size())) return false;
    ad_ = std::string(kMagic, sizeof kMagic) + *header;
    return ReadExactly(in_, stream_header_, sizeof stream_header_);
  }
  bool Start(const uint8_t* key) {
    return crypto_secretstream_xchacha20poly1305_init_pull(&state_, stream_header_, key) == 0;
  }
  // The next message; false when it is missing, cut short or altered.
  bool Pull(std::vector<uint8_t>* out, uint8_t* tag) {
    uint8_t len[4];
    if (!ReadExactly(in_, len, 4)) return false;
    const uint32_t n = GetU32(len);
    if (n < kStreamExtra || n > kChunk + kStreamExtra) return false;
    buf_.resize(n);
    if (!ReadExactly(in_, buf_.data(), n)) return false;
    out->resize(n - kStreamExtra);
    unsigned long long out_len = 0;
    const auto* ad = reinterpret_cast<const uint8_t*>(ad_.data());
    const bool ok = crypto_secretstream_xchacha20poly1305_pull(&state_, out->data(), &out_len, tag,
                                                               buf_.data(), n, ad, ad_.size()) == 0;
    ad_.clear();
    out->resize(static_cast<size_t>(out_len));
    return ok;
  }

 private:
  std::ifstream in_;
  uint8_t stream_header_[crypto_secretstream_xchacha20poly1305_HEADERBYTES]{};
  Stream state_{};
  std::string ad_;
  std::vector<uint8_t> buf_;
};

Result<std::string> FileBlake2b(const std::string& path, int64_t* bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Unavailable("cannot read " + path);
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 32);
  std::vector<char> buf(kChunk);
  *bytes = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = in.gcount();
    if (n <= 0) break;
    crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>(buf.data()),
                              static_cast<size_t>(n));
    *bytes += n;
  }
  uint8_t out[32];
  crypto_generichash_final(&st, out, sizeof out);
  return HexOf(out, sizeof out);
}

// Size and root of an audit database.
Status AuditHead(Store& log, uint64_t* size, Hash* root, std::optional<uint64_t> at = {}) {
  return log.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto n, tx.AuditSize());
    *size = n;
    const uint64_t want = at.value_or(n);
    if (want > n) return NotFound("the log is shorter");
    MerkleTree tree([&](unsigned l, uint64_t i) { return ToHash(tx.AuditNode(l, i)); });
    GARDE_ASSIGN_OR_RETURN(auto r, tree.Root(want));
    *root = r;
    return Status::Ok();
  });
}

Result<std::unique_ptr<SqliteStore>> OpenCopy(const std::string& path, SqliteSchema schema) {
  SqliteOptions o;
  o.path = path;
  o.schema = schema;
  o.max_connections = 1;
  return SqliteStore::Open(o);
}

// The facts a manifest states, read from the two copies in `dir`.
Status Describe(const std::string& dir, BackupInfo* info) {
  {
    GARDE_ASSIGN_OR_RETURN(auto vault, OpenCopy(dir + "/garde.db", SqliteSchema::kVault));
    GARDE_RETURN_IF_ERROR(vault->Read([&](ReadTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto n, tx.CountSubjects());
      info->subjects = n;
      GARDE_ASSIGN_OR_RETURN(auto t, tx.ListTombstones(0));
      info->tombstones = static_cast<int64_t>(t.size());
      return Status::Ok();
    }));
  }
  GARDE_ASSIGN_OR_RETURN(auto log, OpenCopy(dir + "/audit.db", SqliteSchema::kAudit));
  Hash root{};
  GARDE_RETURN_IF_ERROR(AuditHead(*log, &info->audit_size, &root));
  info->audit_root = HexOf(root.data(), root.size());
  return Status::Ok();
}

std::string ManifestJson(const BackupInfo& b) {
  JsonWriter w;
  w.BeginObject()
      .Int("format", 1)
      .String("id", b.id)
      .String("created_at", FormatRfc3339(b.created_at))
      .Int("subjects", b.subjects)
      .Int("tombstones", b.tombstones)
      .BeginObject("audit")
      .Int("size", static_cast<int64_t>(b.audit_size))
      .String("root", b.audit_root)
      .EndObject()
      .BeginArray("files");
  for (const auto& f : b.files) {
    w.BeginObject()
        .String("name", f.name)
        .Int("bytes", f.bytes)
        .String("blake2b", f.blake2b)
        .EndObject();
  }
  w.EndArray().EndObject();
  return w.Take();
}

bool ParseManifest(const std::string& text, BackupInfo* b) {
  try {
    Poco::JSON::Parser parser;
    auto o = parser.parse(text).extract<Poco::JSON::Object::Ptr>();
    b->id = o->getValue<std::string>("id");
    auto t = ParseRfc3339(o->getValue<std::string>("created_at"));
    if (!t || b->id.rfind("bk_", 0) != 0) return false;
    b->created_at = *t;
    b->subjects = o->getValue<int64_t>("subjects");
    b->tombstones = o->getValue<int64_t>("tombstones");
    auto audit = o->getObject("audit");
    b->audit_size = audit->getValue<uint64_t>("size");
    b->audit_root = audit->getValue<std::string>("root");
    auto files = o->getArray("files");
    b->files.clear();
    for (size_t i = 0; i < files->size(); ++i) {
      auto f = files->getObject(static_cast<unsigned>(i));
      b->files.push_back({f->getValue<std::string>("name"), f->getValue<int64_t>("bytes"),
                          f->getValue<std::string>("blake2b")});
    }
    if (b->files.size() != std::size(kFiles)) return false;
    for (size_t i = 0; i < b->files.size(); ++i) {
      if (b->files[i].name != kFiles[i] || b->files[i].bytes < 0) return false;
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::shared_ptr<SecretKey> BackupKey(const Keyring& ring) {
  return std::make_shared<SecretKey>(ring.Derive(KeyContext::kBackup));
}

Result<std::shared_ptr<SecretKey>> BackupKeyOf(const Config& config) {
  auto ring = Keyring::Load(config.keyring_path());
  if (!ring.ok()) {
    return Unavailable(
        "no usable keyring at " + config.keyring_path() +
        " (backups open with the keyring kept apart from them): " + ring.status().message());
  }
  return BackupKey(*ring.value());
}

// Opens a backup and reads its manifest; the reader stands after it.
Status OpenBackup(const std::string& path, const SecretKey& key, SealedReader* reader,
                  BackupInfo* info) {
  std::string header;
  if (!reader->Open(path, &header)) return Damaged(path + " is not a garde backup");
  if (!reader->Start(key.data())) return Damaged(path + ": damaged stream header");
  std::vector<uint8_t> manifest;
  uint8_t tag = 0;
  if (!reader->Pull(&manifest, &tag)) {
    return Damaged(path +
                   " does not open with this keyring's backup key (another keyring, or "
                   "the file was altered)");
  }
  if (!ParseManifest(std::string(manifest.begin(), manifest.end()), info)) {
    return Damaged(path + ": unreadable manifest");
  }
  info->path = path;
  std::error_code ec;
  info->bytes = static_cast<int64_t>(fs::file_size(path, ec));
  return Status::Ok();
}

// Decrypts every file of the backup into `dir` and checks their digests.
Status Unseal(const std::string& path, const SecretKey& key, const std::string& dir,
              BackupInfo* info) {
  SealedReader reader;
  GARDE_RETURN_IF_ERROR(OpenBackup(path, key, &reader, info));
  std::vector<uint8_t> chunk;
  uint8_t tag = 0;
  for (const auto& f : info->files) {
    const std::string out_path = dir + "/" + f.name;
    const int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Unavailable("cannot write " + out_path);
    crypto_generichash_state st;
    crypto_generichash_init(&st, nullptr, 0, 32);
    int64_t left = f.bytes;
    Status s = Status::Ok();
    while (left > 0 && s.ok()) {
      if (!reader.Pull(&chunk, &tag) || tag != 0 || static_cast<int64_t>(chunk.size()) > left) {
        s = Damaged(path + ": " + f.name + " is cut short or altered");
        break;
      }
      crypto_generichash_update(&st, chunk.data(), chunk.size());
      s = WriteAll(fd, chunk.data(), chunk.size());
      left -= static_cast<int64_t>(chunk.size());
    }
    if (s.ok() && ::fsync(fd) != 0) s = Unavailable("cannot sync " + out_path);
    ::close(fd);
    GARDE_RETURN_IF_ERROR(s);
    uint8_t digest[32];
    crypto_generichash_final(&st, digest, sizeof digest);
    if (HexOf(digest, sizeof digest) != f.blake2b) {
      return Damaged(path + ": " + f.name + " does not match its digest");
    }
  }
  if (!reader.Pull(&chunk, &tag) || tag != crypto_secretstream_xchacha20poly1305_TAG_FINAL ||
      !chunk.empty()) {
    return Damaged(path + " is cut short (no final message)");
  }
  return Status::Ok();
}

// A scratch directory removed with everything in it when it goes out of scope.
class Scratch {
 public:
  explicit Scratch(std::string path) : path_(std::move(path)) {
    std::error_code ec;
    fs::remove_all(path_, ec);
    ok_ = fs::create_directories(path_, ec);
    if (ok_) fs::permissions(path_, fs::perms::owner_all, ec);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool ok_ = false;
};

// Moves a SQLite file and its -wal / -shm companions.
void MoveDatabase(const std::string& from, const std::string& to) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (fs::exists(from + suffix)) fs::rename(from + suffix, to + suffix, ec);
  }
}

// Held exclusively by a restore: refused while any `garde serve` holds serve.lock shared.
class ExclusiveUse {
 public:
  explicit ExclusiveUse(const std::string& data_dir) {
    fd_ = ::open((data_dir + "/" + kServeLock).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    held_ = fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) == 0;
  }
  ~ExclusiveUse() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool held() const { return held_; }

 private:
  int fd_ = -1;
  bool held_ = false;
};

int64_t DayOf(int64_t t) { return t >= 0 ? t / 86400 : (t - 86399) / 86400; }

}  // namespace

std::vector<size_t> SelectKept(const std::vector<int64_t>& created, const KeepPolicy& policy) {
  std::vector<size_t> order(created.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // Newest first; equal times by index, so the choice is deterministic.
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return created[a] != created[b] ? created[a] > created[b] : a > b;
  });
  std::set<size_t> kept;
  for (size_t k = 0; k < order.size() && k < static_cast<size_t>(std::max(policy.last, 0)); ++k) {
    kept.insert(order[k]);
  }
  // For each period kind: the newest backup of each of the most recent `count` periods.
  auto keep_newest_per = [&](int count, const auto& period_of) {
    std::set<int64_t> seen;
    for (size_t i : order) {
      if (static_cast<int>(seen.size()) >= count) break;
      if (seen.insert(period_of(created[i])).second) kept.insert(i);
    }
  };
  keep_newest_per(policy.daily, [](int64_t t) { return DayOf(t); });
  // ISO weeks start on Monday; 1970-01-01 was a Thursday.
  keep_newest_per(policy.weekly, [](int64_t t) {
    const int64_t d = DayOf(t) + 3;
    return d >= 0 ? d / 7 : (d - 6) / 7;
  });
  keep_newest_per(policy.monthly, [](int64_t t) {
    const CivilDate c = CivilFromDays(DayOf(t));
    return static_cast<int64_t>(c.year) * 12 + (c.month - 1);
  });
  return {kept.begin(), kept.end()};
}

Backups::Backups(Deployment& deployment, std::string directory)
    : d_(deployment), dir_(std::move(directory)) {}

Result<BackupInfo> Backups::Create(const std::function<void(int64_t, int64_t)>& progress) {
  if (d_.config().postgres()) return PostgresBackupRefusal();
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (!fs::is_directory(dir_)) return Unavailable("cannot create the backup directory " + dir_);
  fs::permissions(dir_, fs::perms::owner_all, ec);
  BackupInfo info;
  info.created_at = d_.clock().Now();
  uint8_t random[4];
  randombytes_buf(random, sizeof random);
  info.id = "bk_" + CompactTime(info.created_at) + "_" + HexOf(random, sizeof random);
  // The databases' copies live only until sealed: in memory (/dev/shm) when it has room, so
  // that the only disk writes are the sealed file's, paced.
  std::string scratch_root = dir_;
  struct statvfs shm {};
  int64_t needed = 0;
  for (const std::string& f : {d_.config().database_path(), d_.config().audit_database_path()}) {
    needed += static_cast<int64_t>(fs::file_size(f, ec));
  }
  if (::statvfs("/dev/shm", &shm) == 0 &&
      static_cast<int64_t>(shm.f_bavail) * static_cast<int64_t>(shm.f_frsize) >
          2 * needed + (256 << 20)) {
    scratch_root = "/dev/shm";
  }
  Scratch scratch(scratch_root + "/.garde-partial-" + info.id);
  if (!scratch.ok()) return Unavailable("cannot create a scratch directory in " + dir_);
  // The vault first, then the log: every change in the vault copy has its entry in the log
  // copy (the entries a read recorded in a journal are logged first as well).
  GARDE_RETURN_IF_ERROR(d_.store().CopyTo(scratch.path() + "/garde.db"));
  GARDE_RETURN_IF_ERROR(d_.audit().Flush());
  GARDE_RETURN_IF_ERROR(d_.audit_store().CopyTo(scratch.path() + "/audit.db"));
  GARDE_RETURN_IF_ERROR(Describe(scratch.path(), &info));
  for (const char* name : kFiles) {
    BackupFile f;
    f.name = name;
    GARDE_ASSIGN_OR_RETURN(auto digest, FileBlake2b(scratch.path() + "/" + name, &f.bytes));
    f.blake2b = digest;
    info.files.push_back(f);
  }

  const std::string partial = dir_ + "/.partial-" + info.id + kSuffix;
  info.path = dir_ + "/garde-" + CompactTime(info.created_at) + "-" + HexOf(random, sizeof random) +
              kSuffix;
  const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot write " + partial);
  const auto key = BackupKey(*d_.keys().Current());
  Status s = [&]() -> Status {
    SealedWriter out(fd, key->data());
    JsonWriter header;
    header.BeginObject()
        .Int("format", 1)
        .String("id", info.id)
        .String("created_at", FormatRfc3339(info.created_at))
        .EndObject();
    GARDE_RETURN_IF_ERROR(out.Begin(header.Take()));
    const std::string manifest = ManifestJson(info);
    GARDE_RETURN_IF_ERROR(
        out.Push(reinterpret_cast<const uint8_t*>(manifest.data()), manifest.size(), 0));
    std::vector<char> buf(kChunk);
    int64_t total = 0, sealed = 0;
    for (const auto& f : info.files) total += f.bytes;
    for (const auto& f : info.files) {
      std::ifstream in(scratch.path() + "/" + f.name, std::ios::binary);
      int64_t left = f.bytes;
      while (left > 0) {
        in.read(buf.data(), static_cast<std::streamsize>(std::min<int64_t>(left, kChunk)));
        const auto n = in.gcount();
        if (n <= 0) return Unavailable("the copy of " + f.name + " changed while sealed");
        GARDE_RETURN_IF_ERROR(
            out.Push(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(n), 0));
        left -= n;
        sealed += n;
        if (progress) progress(sealed, total);
      }
    }
    GARDE_RETURN_IF_ERROR(out.Push(nullptr, 0, crypto_secretstream_xchacha20poly1305_TAG_FINAL));
    if (::fsync(fd) != 0) return Unavailable("cannot sync the backup");
    // Synced: its pages need not push the service's hot pages out of the page cache.
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    return Status::Ok();
  }();
  ::close(fd);
  if (s.ok() && ::rename(partial.c_str(), info.path.c_str()) != 0) {
    s = Unavailable("cannot name the backup " + info.path);
  }
  if (!s.ok()) {
    fs::remove(partial, ec);
    return s;
  }
  SyncDirectory(dir_).IgnoreError();
  info.bytes = static_cast<int64_t>(fs::file_size(info.path, ec));
  const Caller system{"garde", "system", {}, "backup", ""};
  GARDE_RETURN_IF_ERROR(d_.journal().Record(
      nullptr, system, {"backup.create", "", "", "ok", {info.id}, info.subjects}));
  return info;
}

Result<std::vector<std::string>> Backups::Prune(const KeepPolicy& policy) {
  GARDE_ASSIGN_OR_RETURN(auto listed, ListBackups(d_.config(), dir_));
  std::vector<int64_t> created;
  std::vector<const ListedBackup*> good;
  for (const auto& b : listed) {
    if (!b.error.empty()) continue;  // never deleted by policy: an officer looks at it
    created.push_back(b.info.created_at);
    good.push_back(&b);
  }
  // What a killed backup left behind (here, and its copies in /dev/shm), once surely no
  // longer being written.
  std::error_code ec;
  const auto stale = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (const std::string& where : {dir_, std::string("/dev/shm")}) {
    for (const auto& entry : fs::directory_iterator(where, ec)) {
      const std::string name = entry.path().filename().string();
      if ((name.rfind(".partial-", 0) == 0 || name.rfind(".verify-", 0) == 0 ||
           name.rfind(".garde-partial-", 0) == 0) &&
          entry.last_write_time(ec) < stale) {
        fs::remove_all(entry.path(), ec);
      }
    }
  }
  const auto keep = SelectKept(created, policy);
  const std::set<size_t> kept(keep.begin(), keep.end());
  std::vector<std::string> removed;
  for (size_t i = 0; i < good.size(); ++i) {
    if (kept.count(i) != 0) continue;
    if (fs::remove(good[i]->info.path, ec)) removed.push_back(good[i]->info.id);
  }
  if (!removed.empty()) {
    SyncDirectory(dir_).IgnoreError();
    const Caller system{"garde", "system", {}, "backup", ""};
    GARDE_RETURN_IF_ERROR(d_.journal().Record(
        nullptr, system,
        {"backup.prune", "", "", "ok", removed, static_cast<int64_t>(removed.size())}));
  }
  return removed;
}

Result<std::vector<ListedBackup>> ListBackups(const Config& config, const std::string& directory) {
  GARDE_ASSIGN_OR_RETURN(auto key, BackupKeyOf(config));
  std::vector<ListedBackup> out;
  std::error_code ec;
  if (!fs::is_directory(directory)) return out;
  for (const auto& entry : fs::directory_iterator(directory, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || name.size() <= std::strlen(kSuffix) ||
        name.compare(name.size() - std::strlen(kSuffix), std::string::npos, kSuffix) != 0) {
      continue;  // ".partial-…": interrupted, never a backup
    }
    ListedBackup b;
    SealedReader reader;
    Status s = OpenBackup(entry.path().string(), *key, &reader, &b.info);
    if (!s.ok()) {
      b.info.path = entry.path().string();
      b.error = s.message();
    }
    out.push_back(std::move(b));
  }
  std::sort(out.begin(), out.end(), [](const ListedBackup& a, const ListedBackup& b) {
    return a.info.created_at != b.info.created_at ? a.info.created_at > b.info.created_at
                                                  : a.info.path > b.info.path;
  });
  return out;
}

Result<BackupCheck> VerifyBackup(const Config& config, const std::string& path) {
  GARDE_ASSIGN_OR_RETURN(auto key, BackupKeyOf(config));
  BackupCheck check;
  const std::string parent = fs::path(path).parent_path().string();
  uint8_t random[4];
  randombytes_buf(random, sizeof random);
  Scratch scratch((parent.empty() ? "." : parent) + "/.verify-" + HexOf(random, sizeof random));
  if (!scratch.ok()) return Unavailable("cannot create a scratch directory beside " + path);
  Status s = Unseal(path, *key, scratch.path(), &check.info);
  if (!s.ok()) {
    check.info.path = path;
    check.problems.push_back(s.message());
    return check;
  }
  // SQLite's own check of each copy.
  for (const char* name : kFiles) {
    auto store =
        OpenCopy(scratch.path() + "/" + name,
                 std::string(name) == "audit.db" ? SqliteSchema::kAudit : SqliteSchema::kVault);
    if (!store.ok()) {
      check.problems.push_back(std::string(name) + ": " + store.status().message());
    }
  }
  for (const char* name : kFiles) {
    sqlite3* db = nullptr;
    const std::string p = scratch.path() + "/" + name;
    if (sqlite3_open_v2(p.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        if (text == nullptr || std::string(text) != "ok") {
          check.problems.push_back(std::string(name) + ": integrity check failed");
        }
      }
      sqlite3_finalize(st);
    } else {
      check.problems.push_back(std::string(name) + ": cannot open");
    }
    sqlite3_close_v2(db);
  }
  // The audit log copy: every entry, the tree and the signed checkpoints, then the manifest.
  GARDE_ASSIGN_OR_RETURN(auto ring, Keyring::Load(config.keyring_path()));
  CheckpointSigner signer(ring->Derive(KeyContext::kSigning), config.audit_origin);
  auto log = OpenCopy(scratch.path() + "/audit.db", SqliteSchema::kAudit);
  if (log.ok()) {
    AuditVerification v =
        VerifyAuditLog(*log.value(), signer.public_key(), signer.origin(), {}, [](uint64_t) {});
    for (const auto& p : v.problems) check.problems.push_back("audit log: " + p);
    uint64_t size = 0;
    Hash root{};
    if (AuditHead(*log.value(), &size, &root).ok() &&
        (size != check.info.audit_size ||
         HexOf(root.data(), root.size()) != check.info.audit_root)) {
      check.problems.push_back("the audit log copy does not match the manifest's tree head");
    }
  }
  return check;
}

Status RestoreBackup(const Config& config, const std::string& path, const std::string& reason,
                     RestoreReport* report) {
  *report = {};
  if (config.postgres()) return PostgresBackupRefusal();
  std::error_code ec;
  if (!fs::exists(config.keyring_path())) {
    return Unavailable("no keyring in " + config.data_dir +
                       ": copy the keyring and tombstones.log, kept apart from the backups, "
                       "into it first");
  }
  auto key = BackupKeyOf(config);
  if (!key.ok()) return key.status();
  ExclusiveUse exclusive(config.data_dir);
  if (!exclusive.held()) {
    return Conflict("a garde service is using " + config.data_dir + "; stop it first");
  }
  Scratch scratch(config.data_dir + "/.restore");
  if (!scratch.ok()) return Unavailable("cannot create a scratch directory in " + config.data_dir);
  GARDE_RETURN_IF_ERROR(Unseal(path, *key.value(), scratch.path(), &report->backup));

  // The audit log: keep the live one when it extends the backup's.
  const std::string live_log = config.audit_database_path();
  const int64_t now = SystemClock().Now();
  bool keep_live = false;
  if (fs::exists(live_log)) {
    auto live = OpenCopy(live_log, SqliteSchema::kAudit);
    if (!live.ok()) return live.status();
    uint64_t live_size = 0;
    Hash at_backup{}, live_root{};
    GARDE_RETURN_IF_ERROR(AuditHead(*live.value(), &live_size, &live_root));
    report->live_audit_size = live_size;
    const uint64_t n = report->backup.audit_size;
    uint64_t ignored = 0;
    if (live_size >= n && AuditHead(*live.value(), &ignored, &at_backup, n).ok() &&
        HexOf(at_backup.data(), at_backup.size()) == report->backup.audit_root) {
      // Shown, not assumed: the consistency proof from the backup's head to the live one.
      Status proved =
          n == 0 || n == live_size ? Status::Ok() : live.value()->Read([&](ReadTx& tx) -> Status {
            MerkleTree tree([&](unsigned l, uint64_t i) { return ToHash(tx.AuditNode(l, i)); });
            auto proof = tree.ConsistencyProof(n, live_size);
            if (!proof.ok()) return proof.status();
            return VerifyConsistency(n, live_size, at_backup, live_root, proof.value())
                       ? Status::Ok()
                       : Damaged("the consistency proof does not verify");
          });
      keep_live = proved.ok();
    }
    if (!keep_live && reason.empty()) {
      return Conflict("the live audit log does not extend the backup's (" +
                      std::to_string(live_size) + " entries, backup " + std::to_string(n) +
                      "): give --reason to continue from the backup's log, the live one kept "
                      "aside");
    }
  }
  std::string why = reason;
  if (!keep_live) {
    if (fs::exists(live_log)) {
      report->forked_log = live_log + ".forked-" + CompactTime(now);
      MoveDatabase(live_log, report->forked_log);
    } else if (why.empty()) {
      why = "no live audit log";
    }
    MoveDatabase(scratch.path() + "/audit.db", live_log);
  }
  report->audit_consistent = keep_live;
  if (fs::exists(config.database_path())) {
    report->replaced_vault = config.database_path() + ".replaced-" + CompactTime(now);
    MoveDatabase(config.database_path(), report->replaced_vault);
  }
  MoveDatabase(scratch.path() + "/garde.db", config.database_path());
  fs::remove(config.audience_snapshot_path(), ec);  // sealed for the vault it replaced
  SyncDirectory(config.data_dir).IgnoreError();

  // Started on the restored files: erasures and "no"s made after the backup come back.
  GARDE_ASSIGN_OR_RETURN(auto d, Deployment::Open(config));
  GARDE_ASSIGN_OR_RETURN(auto reapplied, d->requests().ReapplyTombstones());
  report->reapplied = reapplied.subjects;
  // A backup from before a master-key rotation holds look-up digests under a master that may
  // be gone: they are computed again, from the fields, under the current one. Its API keys
  // cannot be (only their holders know them): they are counted for the administrator.
  GARDE_ASSIGN_OR_RETURN(auto reindexed, d->vault().ReindexAll(500));
  report->reindexed = reindexed;
  GARDE_ASSIGN_OR_RETURN(auto api_keys, d->api_keys().List());
  const uint32_t master = d->lookup().Current()->master;
  for (const auto& k : api_keys) {
    report->keys_under_old_master += k.revoked_at == 0 && k.hash_master != master ? 1 : 0;
  }
  // The reason is the administrator's text: it goes to restores.log beside the data, and
  // its digest into the audit entry, which binds the two.
  JsonWriter line;
  line.BeginObject()
      .String("at", FormatRfc3339(now))
      .String("backup", report->backup.id)
      .Int("backup_audit_size", static_cast<int64_t>(report->backup.audit_size))
      .Int("live_audit_size", static_cast<int64_t>(report->live_audit_size))
      .String("audit", keep_live ? "consistent" : "forked")
      .String("reason", why)
      .EndObject();
  const std::string text = line.Take();
  {
    std::ofstream out(config.data_dir + "/restores.log", std::ios::app);
    out << text << "\n";
    if (!out) return Unavailable("cannot write restores.log");
  }
  uint8_t digest[32];
  crypto_generichash(digest, sizeof digest, reinterpret_cast<const uint8_t*>(text.data()),
                     text.size(), nullptr, 0);
  const Caller system{"garde", "system", {}, "restore", ""};
  std::vector<std::string> facts = {
      report->backup.id, "backup_size:" + std::to_string(report->backup.audit_size),
      "live_size:" + std::to_string(report->live_audit_size), "restores_log:" + HexOf(digest, 16)};
  GARDE_RETURN_IF_ERROR(
      d->journal().Record(nullptr, system,
                          {"backup.restore", "", "", keep_live ? "consistent" : "forked", facts,
                           static_cast<int64_t>(report->reapplied)}));
  return d->audit().Flush();
}

}  // namespace garde

#include "garde/store/sqlite_wal_vfs.h"

#include <sqlite3.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace garde {
namespace {

constexpr int kFrameHeaderBytes = 24;  // SQLite's WAL frame header
// The default VFS writes at most 128 KiB - 1 bytes a pwrite call (and fails a write of a
// multiple of 128 KiB): a buffer flushed below that is one call. 31 frames of 4 KiB pages.
constexpr size_t kBufferLimit = 0x1ffff;

std::atomic<uint64_t> g_asked{0}, g_made{0};
sqlite3_vfs* g_base = nullptr;  // set once, before the VFS is registered

// A -wal file: the default VFS's file (in the bytes right after this struct) and the writes
// gathered for it.
struct WalFile {
  sqlite3_file base;  // pMethods: kMethods
  sqlite3_file* real;
  bool gather;      // false: every call goes straight through
  bool committing;  // a commit frame's header was written: write through until the
                    // next transaction's first frame
  char* buf;        // kBufferLimit bytes once the first write is gathered
  size_t len;
  sqlite3_int64 start;  // the file offset of buf[0]
};

WalFile* Self(sqlite3_file* file) { return reinterpret_cast<WalFile*>(file); }

int WriteThrough(WalFile* f, const void* data, int amount, sqlite3_int64 offset) {
  g_made.fetch_add(1, std::memory_order_relaxed);
  return f->real->pMethods->xWrite(f->real, data, amount, offset);
}

int Flush(WalFile* f) {
  if (f->len == 0) return SQLITE_OK;
  const int n = static_cast<int>(f->len);
  f->len = 0;
  return WriteThrough(f, f->buf, n, f->start);
}

uint32_t BigEndian32(const unsigned char* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

int Write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  WalFile* f = Self(file);
  g_asked.fetch_add(1, std::memory_order_relaxed);
  if (!f->gather) return WriteThrough(f, data, amount, offset);
  if (amount == kFrameHeaderBytes) {
    // Bytes 4-7 of a frame header: the database's size in pages after a commit, 0 in every
    // other frame. A commit's header and page are its transaction's last writes (or, when
    // SQLite rewrites checksums after overwriting frames in place, its header is): they go
    // out at once, after everything gathered before them.
    f->committing = BigEndian32(static_cast<const unsigned char*>(data) + 4) != 0;
  }
  const auto n = static_cast<size_t>(amount);
  const sqlite3_int64 end = f->start + static_cast<sqlite3_int64>(f->len);
  if (f->len > 0 && (f->committing || offset != end || f->len + n > kBufferLimit)) {
    const int rc = Flush(f);
    if (rc != SQLITE_OK) return rc;
  }
  if (f->committing || n > kBufferLimit) return WriteThrough(f, data, amount, offset);
  if (f->buf == nullptr) {
    f->buf = static_cast<char*>(std::malloc(kBufferLimit));
    if (f->buf == nullptr) return WriteThrough(f, data, amount, offset);
  }
  if (f->len == 0) f->start = offset;
  std::memcpy(f->buf + f->len, data, n);
  f->len += n;
  return SQLITE_OK;
}

int Close(sqlite3_file* file) {
  WalFile* f = Self(file);
  const int flushed = Flush(f);
  const int closed = f->real->pMethods->xClose(f->real);
  std::free(f->buf);
  f->buf = nullptr;
  return flushed != SQLITE_OK ? flushed : closed;
}

int Read(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  WalFile* f = Self(file);
  const int rc = Flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, amount, offset);
}

int Truncate(sqlite3_file* file, sqlite3_int64 size) {
  WalFile* f = Self(file);
  if (f->len > 0 && f->start >= size) f->len = 0;  // all of it past the new end
  const int rc = Flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

int Sync(sqlite3_file* file, int flags) {
  WalFile* f = Self(file);
  const int rc = Flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

int FileSize(sqlite3_file* file, sqlite3_int64* size) {
  WalFile* f = Self(file);
  const int rc = Flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

int FileControl(sqlite3_file* file, int op, void* arg) {
  WalFile* f = Self(file);
  const int rc = Flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

int Fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  WalFile* f = Self(file);
  const int rc = Flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, offset, amount, out);
}

// The rest as the default VFS does them.
int Lock(sqlite3_file* file, int level) {
  return Self(file)->real->pMethods->xLock(Self(file)->real, level);
}
int Unlock(sqlite3_file* file, int level) {
  return Self(file)->real->pMethods->xUnlock(Self(file)->real, level);
}
int CheckReservedLock(sqlite3_file* file, int* out) {
  return Self(file)->real->pMethods->xCheckReservedLock(Self(file)->real, out);
}
int SectorSize(sqlite3_file* file) {
  return Self(file)->real->pMethods->xSectorSize(Self(file)->real);
}
int DeviceCharacteristics(sqlite3_file* file) {
  return Self(file)->real->pMethods->xDeviceCharacteristics(Self(file)->real);
}
int ShmMap(sqlite3_file* file, int region, int size, int extend, void volatile** out) {
  return Self(file)->real->pMethods->xShmMap(Self(file)->real, region, size, extend, out);
}
int ShmLock(sqlite3_file* file, int offset, int n, int flags) {
  return Self(file)->real->pMethods->xShmLock(Self(file)->real, offset, n, flags);
}
void ShmBarrier(sqlite3_file* file) { Self(file)->real->pMethods->xShmBarrier(Self(file)->real); }
int ShmUnmap(sqlite3_file* file, int delete_flag) {
  return Self(file)->real->pMethods->xShmUnmap(Self(file)->real, delete_flag);
}
int Unfetch(sqlite3_file* file, sqlite3_int64 offset, void* p) {
  return Self(file)->real->pMethods->xUnfetch(Self(file)->real, offset, p);
}

const sqlite3_io_methods kMethods = {
    3,  // iVersion: with the shared-memory and mmap methods
    Close,       Read,       Write,
    Truncate,    Sync,       FileSize,
    Lock,        Unlock,     CheckReservedLock,
    FileControl, SectorSize, DeviceCharacteristics,
    ShmMap,      ShmLock,    ShmBarrier,
    ShmUnmap,    Fetch,      Unfetch,
};

int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  (void)vfs;
  // Not a -wal file: the default VFS's own, in the same bytes.
  if ((flags & SQLITE_OPEN_WAL) == 0) return g_base->xOpen(g_base, name, file, flags, out_flags);
  WalFile* f = Self(file);
  f->real = reinterpret_cast<sqlite3_file*>(f + 1);
  f->base.pMethods = nullptr;  // SQLite closes nothing if the open fails
  const int rc = g_base->xOpen(g_base, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK) return rc;
  const sqlite3_io_methods* real = f->real->pMethods;
  if (real->iVersion < 3) {
    // Forwarding would call methods the file lacks: hand it back whole instead.
    real->xClose(f->real);
    return g_base->xOpen(g_base, name, file, flags, out_flags);
  }
  // SQLite pads commits to a sector boundary without power-safe overwrite: not gathered then.
  f->gather = (real->xDeviceCharacteristics(f->real) & SQLITE_IOCAP_POWERSAFE_OVERWRITE) != 0;
  f->committing = false;
  f->buf = nullptr;
  f->len = 0;
  f->start = 0;
  f->base.pMethods = &kMethods;
  return SQLITE_OK;
}

sqlite3_vfs* Register() {
  static sqlite3_vfs vfs;
  sqlite3_initialize();
  g_base = sqlite3_vfs_find(nullptr);
  if (g_base == nullptr) return nullptr;
  vfs = *g_base;  // every method but xOpen is the default's (they see its pAppData too)
  vfs.zName = "garde-wal";
  vfs.szOsFile = static_cast<int>(sizeof(WalFile)) + g_base->szOsFile;
  vfs.xOpen = Open;
  vfs.pNext = nullptr;
  if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK) return nullptr;
  return &vfs;
}

}  // namespace

const char* CoalescingWalVfs() {
  static sqlite3_vfs* vfs = Register();
  return vfs == nullptr ? nullptr : vfs->zName;
}

WalWriteCounts CoalescingWalWriteCounts() {
  return {g_asked.load(std::memory_order_relaxed), g_made.load(std::memory_order_relaxed)};
}

}  // namespace garde

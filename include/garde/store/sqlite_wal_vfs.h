// A SQLite VFS over the default one ("unix") that writes each transaction's WAL frames with
// one system call instead of two per page. SQLite writes a frame as two pwrite calls (its
// 24-byte header, then the page), one after the other in the file: this VFS gathers
// consecutive writes to a -wal file in a buffer and writes them together when
//   - the commit frame's page has been written (the last write of a commit: its header
//     carries the database size, zero in every other frame), so that a committed
//     transaction is in the file before SQLite publishes it to readers in the wal-index;
//   - anything else touches the file: a write elsewhere (SQLite overwrites a frame of the
//     open transaction in place, or restarts the log), a read, a sync, a size or truncation,
//     a close; or the buffer is full (128 KiB, what the default VFS writes in one call).
// Every other file (the database, -shm, temporary files) is the default VFS's own, untouched.
// On a device without power-safe overwrite (SQLite then pads a commit to a sector boundary)
// the -wal file is not buffered either.
//
//   sqlite3_open_v2(path, &db, flags, CoalescingWalVfs());
#pragma once

#include <cstdint>

namespace garde {

// Registers the VFS once (not as the default) and returns its name.
const char* CoalescingWalVfs();

// Writes that reached the default VFS from -wal files, and writes SQLite made to them: a
// test's measure of the gathering.
struct WalWriteCounts {
  uint64_t asked = 0, made = 0;
};
WalWriteCounts CoalescingWalWriteCounts();

}  // namespace garde

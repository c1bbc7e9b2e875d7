// A request body kept on disk while it arrives instead of in memory (a spreadsheet upload),
// sealed under a key that exists only in this object: libsodium's secretstream
// (XChaCha20-Poly1305, each 64 KiB chunk authenticated, their order and the end checked). The
// file has no name (O_TMPFILE in `dir`; where the file system lacks it, a name removed at
// once) and goes with the object: nothing readable is left behind, not even after a crash.
//
//   auto spool = SealedSpool::Create(data_dir);
//   spool.value()->Append(bytes); ...; spool.value()->Finish();
//   importer.Run(..., *spool.value(), ...);          // read back as a ByteSource, rewindable
#pragma once

#include <sodium.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "garde/base/csv_reader.h"
#include "garde/base/status.h"

namespace garde {

class SealedSpool : public ByteSource {
 public:
  static Result<std::unique_ptr<SealedSpool>> Create(const std::string& dir);
  ~SealedSpool() override;
  SealedSpool(const SealedSpool&) = delete;
  SealedSpool& operator=(const SealedSpool&) = delete;

  // Takes more of the body; a sealed chunk is written for each 64 KiB.
  Status Append(std::string_view bytes);
  // The body is whole: the last chunk is written, marked final. Reading may start.
  Status Finish();
  int64_t size() const { return size_; }
  // The file it is kept in (for tests: what is on disk).
  int fd() const { return fd_; }

  // Reading back, after Finish(). kDamaged when the file was changed, cut or reordered.
  Result<size_t> Read(char* out, size_t n) override;
  Status Rewind() override;

 private:
  SealedSpool(int fd);
  Status WriteChunk(unsigned char tag);
  Status NextChunk();

  int fd_ = -1;
  unsigned char key_[crypto_secretstream_xchacha20poly1305_KEYBYTES];
  unsigned char header_[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
  crypto_secretstream_xchacha20poly1305_state state_;
  std::string plain_;     // the chunk being filled, or the one being read
  size_t plain_pos_ = 0;  // reading: bytes of plain_ handed out
  int64_t size_ = 0;      // body bytes taken
  int64_t file_end_ = 0;  // bytes written to the file
  int64_t read_at_ = 0;   // reading: the next chunk's offset
  bool finished_ = false;
  bool final_read_ = false;  // reading: the final chunk was opened
};

}  // namespace garde

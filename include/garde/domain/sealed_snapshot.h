// An encrypted file that keeps an in-memory view (the audience index) between runs, so a
// restarted service need not decrypt the whole vault again. The file is sealed in chunks
// under a key of its own; that key is kept in the vault, wrapped by the root key, and every
// erasure deletes it in the erasure's transaction (store trigger): from then on the file
// cannot be opened, and crypto-shredding holds for what the view held.
//
//   SealedSnapshot snap(store, keys, data_dir + "/audience.snapshot", "audience");
//   Result<bool> kept = snap.Save(n, [&](size_t i) { return ChunkText(i); }, shreds);
//   auto r = snap.Open();  // then r.value()->Chunk(i), from any thread
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "garde/base/file_system.h"
#include "garde/base/status.h"
#include "garde/crypto/keyring_source.h"
#include "garde/crypto/secret.h"
#include "garde/store/store.h"

namespace garde {

class SealedSnapshot {
 public:
  SealedSnapshot(Store& store, const KeyringSource& keys, std::string path, std::string name,
                 FileSystem& fs = PosixFileSystem())
      : store_(store), keys_(keys), path_(std::move(path)), name_(std::move(name)), fs_(fs) {}

  // Seals `count` chunks, made one at a time by `chunk`, under a fresh key into the file,
  // then keeps the key if no data was destroyed since the shred count was `shreds` (read
  // before the content was). false: it was, and the file is removed.
  Result<bool> Save(size_t count, const std::function<std::string(size_t)>& chunk, int64_t shreds);

  class Reader {
   public:
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    size_t count() const { return offsets_.size() - 1; }
    // The plaintext of chunk i into *plain, read through *box (both reused from call to
    // call: large chunks cost no fresh memory); kDamaged when it fails authentication.
    // Thread-safe with buffers of each caller's own.
    Status Chunk(size_t i, Bytes* box, std::string* plain) const;
    // The shred count when the snapshot was opened: its content reflects every erasure
    // up to it.
    int64_t shreds() const { return shreds_; }

   private:
    friend class SealedSnapshot;
    Reader() = default;
    std::unique_ptr<FileSystem::File> file_;
    std::string key_id_;
    ScopedKey key_;
    std::vector<uint64_t> offsets_;  // chunk i spans [offsets_[i], offsets_[i + 1])
    int64_t shreds_ = 0;
  };
  // kNotFound when there is no snapshot, its key was destroyed or its root key retired, or
  // the file is not the one the key was made for (then the file is removed too).
  Result<std::unique_ptr<Reader>> Open();
  void Remove();

 private:
  Store& store_;
  const KeyringSource& keys_;
  const std::string path_;
  const std::string name_;
  FileSystem& fs_;
};

}  // namespace garde

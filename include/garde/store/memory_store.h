// An in-memory Store: every aggregate of store.h in ordered maps, nothing on disk. The domain's
// unit tests run on it (milliseconds, no files), `garde serve --database memory` tries the
// service without writing a database, and the store conformance suite holds it to the same
// answers as SQLite (tests/unit/store_conformance_test.cc).
//
//   auto store = std::make_unique<MemoryStore>();
//   store->Write([](WriteTx& tx) { return tx.InsertSubject(row); });
//
// Transactions: one writer at a time, readers alongside each other; a write changes the tables
// in place and keeps an undo list, replayed backwards when it fails, so a failed write leaves
// no trace (as SQLite's SAVEPOINT does). A Read called from inside a Write on the same thread
// sees that write's changes (SQLite would show the snapshot before it): the domain does not
// rely on either.
#pragma once

#include <atomic>
#include <memory>
#include <shared_mutex>

#include "garde/store/store.h"

namespace garde {

class MemoryStore final : public Store {
 public:
  MemoryStore();
  ~MemoryStore() override;

  Status Read(const std::function<Status(ReadTx&)>& fn) override;
  Status Write(const std::function<Status(WriteTx&)>& fn,
               Durability durability = Durability::kImmediate) override;
  // Runs fn, undoes it, and runs it again: the domain's tests hold each rerunnable write to
  // what WriteRerunnable asks of it.
  Status WriteRerunnable(const std::function<Status(WriteTx&)>& fn,
                         Durability durability = Durability::kImmediate) override;
  Status Ping() override { return Status::Ok(); }
  uint64_t ChangeEpoch() override { return epoch_.load(std::memory_order_acquire); }
  // Nothing to copy to a file: kUnavailable (backups need a store on disk).
  Status CopyTo(const std::string& path) override;

  struct Tables;  // in memory_store.cc

 private:
  // Runs fn `runs` times under the write lock, all but the last undone.
  Status Run(const std::function<Status(WriteTx&)>& fn, int runs);
  std::shared_mutex mu_;
  std::unique_ptr<Tables> tables_;  // guarded by mu_ (shared: read, exclusive: write)
  std::atomic<uint64_t> epoch_{1};
};

}  // namespace garde

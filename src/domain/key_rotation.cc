#include "garde/domain/key_rotation.h"

#include "garde/crypto/envelope.h"

namespace garde {

Result<int64_t> KeyRotation::RewrapAll(size_t batch, const std::function<void(int64_t)>& progress) {
  const auto ring = keys_.Current();
  const uint32_t target = ring->current_version();
  int64_t done = 0;
  for (;;) {
    int64_t in_batch = 0;
    int64_t skipped = 0;
    Status s = store_.Write([&](WriteTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto rows, tx.SubjectsNotWrappedBy(target, batch));
      for (const auto& row : rows) {
        ScopedKey dek;
        Status unwrapped =
            UnwrapDataKey(*ring, row.root_key_version, row.id, row.wrapped_dek, &dek);
        if (!unwrapped.ok()) return unwrapped;
        GARDE_ASSIGN_OR_RETURN(auto wrapped, WrapDataKey(*ring, target, row.id, dek));
        GARDE_ASSIGN_OR_RETURN(auto swapped,
                               tx.RewrapDataKey(row.id, row.root_key_version, target, wrapped));
        if (swapped) {
          ++in_batch;
        } else {
          ++skipped;
        }
      }
      return Status::Ok();
    });
    if (!s.ok()) return s;
    done += in_batch;
    if (progress) progress(done);
    if (in_batch == 0 && skipped == 0) return done;
  }
}

Result<std::map<uint32_t, int64_t>> KeyRotation::Usage() {
  std::map<uint32_t, int64_t> out;
  GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto r, tx.CountByRootKeyVersion());
    out = std::move(r);
    return Status::Ok();
  }));
  return out;
}

}  // namespace garde

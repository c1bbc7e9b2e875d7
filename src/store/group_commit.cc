#include "garde/store/group_commit.h"

namespace garde {

Status RunWrite(PendingWrite& w, WriteTx& tx,
                const std::function<void(std::vector<std::function<void()>>*)>& set_hooks) {
  Status s;
  set_hooks(&w.after_commit);
  try {
    s = (*w.fn)(tx);
  } catch (const std::exception& e) {
    s = Internal(std::string("write failed: ") + e.what());
  }
  set_hooks(nullptr);
  return s;
}

void RunInSavepoints(const std::vector<PendingWrite*>& batch, WriteTx& tx, const SavepointSql& sql,
                     const std::function<void(std::vector<std::function<void()>>*)>& set_hooks) {
  for (PendingWrite* w : batch) {
    Status s = sql.begin();
    if (s.ok()) {
      s = RunWrite(*w, tx, set_hooks);
      if (s.ok()) s = sql.release();
      if (!s.ok()) {
        sql.rollback().IgnoreError();
        sql.release().IgnoreError();
        w->after_commit.clear();
      }
    }
    w->result = s;
  }
}

void FinishBatch(const std::vector<PendingWrite*>& batch, const Status& committed) {
  for (PendingWrite* w : batch) {
    if (!committed.ok() && w->result.ok()) w->result = committed;
    if (committed.ok()) {
      for (auto& fn : w->after_commit) fn();
    }
    w->after_commit.clear();
  }
}

}  // namespace garde

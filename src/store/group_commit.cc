#include "garde/store/group_commit.h"

namespace garde {

Status RunWrite(PendingWrite& w, WriteTx& tx, const std::function<void(PendingWrite*)>& set_write) {
  Status s;
  w.Reset();  // of an earlier run
  set_write(&w);
  try {
    s = (*w.fn)(tx);
  } catch (const std::exception& e) {
    s = Internal(std::string("write failed: ") + e.what());
  }
  set_write(nullptr);
  return s;
}

void RunInSavepoints(const std::vector<PendingWrite*>& batch, WriteTx& tx, const SavepointSql& sql,
                     const std::function<void(PendingWrite*)>& set_write) {
  for (PendingWrite* w : batch) {
    Status s = sql.begin();
    if (s.ok()) {
      s = RunWrite(*w, tx, set_write);
      if (s.ok()) s = sql.release();
      if (!s.ok()) {
        sql.rollback().IgnoreError();
        sql.release().IgnoreError();
        w->Reset();
      }
    }
    w->result = s;
  }
}

std::string AheadLines(const std::vector<PendingWrite*>& batch) {
  std::string lines;
  for (const PendingWrite* w : batch) {
    if (w->result.ok()) lines += w->ahead;
  }
  return lines;
}

void FinishBatch(const std::vector<PendingWrite*>& batch, const Status& committed) {
  for (PendingWrite* w : batch) {
    if (!committed.ok() && w->result.ok()) w->result = committed;
    if (committed.ok()) {
      for (auto& fn : w->after_commit) fn();
    }
    w->Reset();
  }
}

}  // namespace garde

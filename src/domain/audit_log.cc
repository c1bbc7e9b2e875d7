#include "garde/domain/audit_log.h"

#include <map>

#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"

namespace garde {
namespace {

Bytes ToBytes(const Hash& h) { return Bytes(h.begin(), h.end()); }

Result<Hash> ToHash(const Result<Bytes>& b) {
  if (!b.ok()) return b.status();
  if (b.value().size() != 32) return Damaged("audit tree node has the wrong length");
  Hash h;
  std::copy(b.value().begin(), b.value().end(), h.begin());
  return h;
}

// The seq member of a canonical entry, read without a JSON parser: entries begin
// {"v":1,"seq":N, by construction.
std::optional<uint64_t> EmbeddedSeq(const std::string& entry) {
  static const std::string prefix = "{\"v\":1,\"seq\":";
  if (entry.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  uint64_t v = 0;
  size_t i = prefix.size();
  if (i >= entry.size() || entry[i] < '0' || entry[i] > '9') return std::nullopt;
  for (; i < entry.size() && entry[i] >= '0' && entry[i] <= '9'; ++i) {
    v = v * 10 + static_cast<uint64_t>(entry[i] - '0');
  }
  return v;
}

}  // namespace

std::string AuditLog::Encode(uint64_t seq, int64_t time, const Caller& caller,
                             const AccessEvent& e) {
  JsonWriter w;
  w.BeginObject()
      .Key("v").Int(1)
      .Key("seq").Int(static_cast<int64_t>(seq))
      .Key("time").String(FormatRfc3339(time))
      .Key("actor").StringOrNull(caller.key_id)
      .Key("role").StringOrNull(caller.role)
      .Key("action").String(e.action)
      .Key("subject").StringOrNull(e.subject_id)
      .Key("activity").StringOrNull(e.activity)
      .Key("request_id").StringOrNull(caller.request_id)
      .Key("outcome").String(e.outcome)
      .Key("fields").BeginArray();
  for (const auto& f : e.fields) w.String(f);
  w.EndArray().Key("count").Int(e.count).EndObject();
  return w.Take();
}

Status AuditLog::Append(WriteTx& tx, const Caller& caller, const AccessEvent& event) {
  auto size = tx.AuditSize();
  if (!size.ok()) return size.status();
  const uint64_t seq = size.value();
  const std::string entry = Encode(seq, clock_.Now(), caller, event);
  Hash node = LeafHash(entry);
  GARDE_RETURN_IF_ERROR(tx.InsertAuditEntry({seq, entry, ToBytes(node), event.subject_id}));
  // Store each perfect subtree this leaf completes: leaf seq closes the subtree at level L
  // when (seq + 1) is a multiple of 2^L.
  uint64_t index = seq;
  for (unsigned level = 1; ((seq + 1) & ((uint64_t{1} << level) - 1)) == 0; ++level) {
    auto left = ToHash(tx.AuditNode(level - 1, index - 1));
    if (!left.ok()) return left.status();
    node = NodeHash(left.value(), node);
    index /= 2;
    GARDE_RETURN_IF_ERROR(tx.InsertAuditNode(level, index, ToBytes(node)));
  }
  return Status::Ok();
}

Status AuditLog::Record(WriteTx* tx, const Caller& caller, const AccessEvent& event) {
  if (tx != nullptr) return Append(*tx, caller, event);
  // An event with no change of its own (a read, a refusal) is committed at once and reaches
  // stable storage within the store's deferred-sync window; see docs/audit.md.
  return store_.Write([&](WriteTx& own) { return Append(own, caller, event); },
                      Durability::kDeferred);
}

Result<uint64_t> AuditLog::Size() {
  uint64_t n = 0;
  GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
    auto s = tx.AuditSize();
    if (!s.ok()) return s.status();
    n = s.value();
    return Status::Ok();
  }));
  return n;
}

Result<Hash> AuditLog::Root(uint64_t size) {
  Result<Hash> out = Internal("unset");
  GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
    MerkleTree tree([&](unsigned l, uint64_t i) { return ToHash(tx.AuditNode(l, i)); });
    out = tree.Root(size);
    return out.status();
  }));
  return out;
}

Result<std::vector<Hash>> AuditLog::InclusionProof(uint64_t index, uint64_t size) {
  Result<std::vector<Hash>> out = Internal("unset");
  GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
    auto n = tx.AuditSize();
    if (!n.ok()) return n.status();
    if (size > n.value() || index >= size) {
      return Unprocessable("need index < size <= " + std::to_string(n.value()));
    }
    MerkleTree tree([&](unsigned l, uint64_t i) { return ToHash(tx.AuditNode(l, i)); });
    out = tree.InclusionProof(index, size);
    return out.status();
  }));
  return out;
}

Result<std::vector<Hash>> AuditLog::ConsistencyProof(uint64_t from, uint64_t to) {
  Result<std::vector<Hash>> out = Internal("unset");
  GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
    auto n = tx.AuditSize();
    if (!n.ok()) return n.status();
    if (to > n.value() || from > to) {
      return Unprocessable("need from <= to <= " + std::to_string(n.value()));
    }
    MerkleTree tree([&](unsigned l, uint64_t i) { return ToHash(tx.AuditNode(l, i)); });
    out = tree.ConsistencyProof(from, to);
    return out.status();
  }));
  return out;
}

Result<CheckpointRow> AuditLog::Checkpoint() {
  CheckpointRow row;
  GARDE_RETURN_IF_ERROR(store_.Write([&](WriteTx& tx) -> Status {
    auto latest = tx.LatestCheckpoint();
    if (!latest.ok()) return latest.status();
    auto n = tx.AuditSize();
    if (!n.ok()) return n.status();
    if (latest.value() && latest.value()->size == n.value()) {
      row = *latest.value();
      return Status::Ok();
    }
    MerkleTree tree([&](unsigned l, uint64_t i) { return ToHash(tx.AuditNode(l, i)); });
    auto root = tree.Root(n.value());
    if (!root.ok()) return root.status();
    SignedHead head{n.value(), root.value(), clock_.Now()};
    row = {head.size, ToBytes(head.root), head.time, signer_.Sign(head)};
    return tx.InsertCheckpoint(row);
  }));
  return row;
}

Result<std::optional<CheckpointRow>> AuditLog::LatestCheckpoint() {
  std::optional<CheckpointRow> out;
  GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
    auto latest = tx.LatestCheckpoint();
    if (!latest.ok()) return latest.status();
    out = std::move(latest.value());
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<AuditRow>> AuditLog::Query(const AuditQuery& query) {
  std::vector<AuditRow> out;
  GARDE_RETURN_IF_ERROR(store_.Read([&](ReadTx& tx) -> Status {
    auto rows = tx.QueryAudit(query);
    if (!rows.ok()) return rows.status();
    out = std::move(rows.value());
    return Status::Ok();
  }));
  return out;
}

Status AuditLog::Scan(uint64_t from, uint64_t to,
                      const std::function<bool(const AuditRow&)>& fn) {
  return store_.Read([&](ReadTx& tx) { return tx.ScanAudit(from, to, fn); });
}

AuditVerification VerifyAuditLog(Store& store, const PublicKey& key, const std::string& origin,
                                 const std::vector<std::string>& extra_checkpoints,
                                 const std::function<void(uint64_t)>& progress) {
  AuditVerification report;
  // Every signed head we know of, by size. Two different roots for one size is itself proof
  // of tampering (a fork).
  std::map<uint64_t, Hash> heads;
  auto add_head = [&](const std::string& note, const std::string& where) {
    auto head = ParseCheckpoint(note, key, origin);
    if (!head.ok()) {
      report.problems.push_back(where + ": " + head.status().message());
      return;
    }
    auto [it, inserted] = heads.emplace(head->size, head->root);
    if (!inserted && it->second != head->root) {
      report.problems.push_back(where + ": two different signed roots for tree size " +
                                std::to_string(head->size));
    }
    ++report.checkpoints;
  };
  std::vector<CheckpointRow> stored;
  Status read = store.Read([&](ReadTx& tx) -> Status {
    auto list = tx.ListCheckpoints();
    if (!list.ok()) return list.status();
    stored = std::move(list.value());
    return Status::Ok();
  });
  if (!read.ok()) {
    report.problems.push_back("cannot read checkpoints: " + read.message());
    return report;
  }
  for (const auto& c : stored) {
    const std::string where = "checkpoint at size " + std::to_string(c.size);
    add_head(c.note, where);
    auto parsed = ParseCheckpoint(c.note, key, origin);
    if (parsed.ok() && (parsed->size != c.size || ToBytes(parsed->root) != c.root)) {
      report.problems.push_back(where + ": stored columns differ from the signed note");
    }
  }
  for (size_t i = 0; i < extra_checkpoints.size(); ++i) {
    add_head(extra_checkpoints[i], "checkpoint file " + std::to_string(i + 1));
  }

  MerkleAccumulator acc;
  uint64_t expected = 0;
  bool first_bad_reported = false;
  auto check_heads = [&]() {
    auto it = heads.find(acc.size());
    if (it != heads.end() && it->second != acc.Root()) {
      report.problems.push_back("the first " + std::to_string(acc.size()) +
                                " entries do not match the signed checkpoint of that size");
    }
  };
  check_heads();  // size 0
  read = store.Read([&](ReadTx& tx) {
    return tx.ScanAudit(0, UINT64_MAX, [&](const AuditRow& row) {
      if (!first_bad_reported) {
        if (row.seq != expected) {
          report.problems.push_back("entry " + std::to_string(expected) + " is missing");
          first_bad_reported = true;
        } else if (EmbeddedSeq(row.entry) != row.seq) {
          report.problems.push_back("entry " + std::to_string(row.seq) +
                                    " holds another position's record (moved or inserted)");
          first_bad_reported = true;
        } else if (ToBytes(LeafHash(row.entry)) != row.leaf_hash) {
          report.problems.push_back("entry " + std::to_string(row.seq) +
                                    " was changed after it was written");
          first_bad_reported = true;
        } else if (row.entry.find(row.subject.empty() ? std::string("\"subject\":null")
                                                      : "\"subject\":\"" + row.subject + "\"") ==
                   std::string::npos) {
          report.problems.push_back("entry " + std::to_string(row.seq) +
                                    ": its search column names another subject");
          first_bad_reported = true;
        }
      }
      acc.Add(LeafHash(row.entry));
      expected = row.seq + 1;
      check_heads();
      ++report.entries;
      if (progress && report.entries % 100000 == 0) progress(report.entries);
      return true;
    });
  });
  if (!read.ok()) report.problems.push_back("cannot read the log: " + read.message());
  if (!heads.empty() && heads.rbegin()->first > acc.size()) {
    report.problems.push_back("the log holds " + std::to_string(acc.size()) +
                              " entries but a signed checkpoint covers " +
                              std::to_string(heads.rbegin()->first) + " (truncated)");
  }
  if (progress) progress(report.entries);
  return report;
}

}  // namespace garde

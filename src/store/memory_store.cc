#include "garde/store/memory_store.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <set>
#include <tuple>

namespace garde {

// Each table as SQLite keys it, so that ordered scans come out in the same order.
struct MemoryStore::Tables {
  // Vault.
  std::map<std::string, SubjectRow> subjects;
  std::map<std::pair<std::string, std::string>, Bytes> fields;  // (subject, field) -> box
  // Blind indexes: (field, digest, subject) -> master, and (subject, field) -> digest (one row
  // per subject and field: PutIndex replaces).
  std::map<std::tuple<std::string, Bytes, std::string>, uint32_t> index;
  std::map<std::pair<std::string, std::string>, Bytes> index_of;
  std::map<int64_t, std::string> changes;  // seq -> subject, the last kChangeLogKeep
  int64_t change_seq = 0;
  int64_t shreds = 0;
  std::map<std::string, SnapshotKeyRow> snapshot_keys;
  std::map<int64_t, InteractionRow> interactions;                       // by seq
  std::map<std::pair<std::string, std::string>, ContactLinkRow> links;  // (organisation, person)
  std::map<std::pair<std::string, int64_t>, std::string> import_rows;

  // API keys, and console sessions by cookie hash.
  std::map<std::string, ApiKeyRow> api_keys;
  std::map<Bytes, ConsoleSessionRow> console_sessions;

  // Consent and suppression. Events keyed by (subject, insertion number): SQLite's rowid
  // breaks ties of `at`.
  std::map<std::pair<std::string, int64_t>, ConsentEventRow> consent_events;
  std::map<std::string, std::pair<std::string, int64_t>> consent_event_ids;
  int64_t consent_rowid = 0;
  std::map<std::string, ConsentConfirmationRow> confirmations;
  std::map<std::pair<std::string, Bytes>, int64_t> suppressions;  // (kind, digest) -> at

  // Requests, tombstones, merges, and the officer's records.
  std::map<std::string, RequestRow> requests;
  std::map<std::string, TombstoneRow> tombstones;
  std::map<std::string, TombstoneLogMark> tombstone_log_marks;
  std::map<std::string, std::pair<int64_t, MergeRow>> merges;  // id -> (insertion, row)
  int64_t merge_rowid = 0;
  std::map<std::string, IncidentRow> incidents;
  std::map<std::string, SegmentRow> segments;
  std::map<int64_t, PolicyVersionRow> policy_versions;
  std::map<int64_t, RetentionRunRow> retention_runs;  // by seq
  int64_t retention_seq = 0;

  // Outbox and webhooks.
  std::map<int64_t, OutboxRow> outbox;
  std::set<std::string> outbox_ids;
  std::map<std::string, int64_t> webhook_marks;
  std::map<int64_t, DeliveryRow> deliveries;
  std::set<std::pair<std::string, std::string>> delivery_keys;  // (endpoint, event id)
  int64_t delivery_seq = 0;

  // Audit: pending entries (vault side) and the log (audit side).
  std::map<int64_t, PendingAuditRow> pending_audit;
  int64_t pending_seq = 0;
  int64_t intake_mark = 0;
  std::map<std::string, int64_t> journals;
  std::map<uint64_t, AuditRow> audit_log;
  std::map<std::pair<unsigned, uint64_t>, Bytes> audit_nodes;
  std::map<uint64_t, CheckpointRow> checkpoints;
  std::set<std::pair<std::string, uint64_t>> audit_subjects;  // the subject index, one run
  std::set<std::pair<std::string, uint64_t>> audit_actors;    // the actor index
};

namespace {

template <typename T>
Result<std::optional<T>> Found(const T* row) {
  return row == nullptr ? std::optional<T>() : std::optional<T>(*row);
}

template <typename Map, typename Key>
const typename Map::mapped_type* Lookup(const Map& map, const Key& key) {
  auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

template <typename Map, typename Key, typename Value>
Value ValueOr(const Map& map, const Key& key, Value if_none) {
  const auto* v = Lookup(map, key);
  return v == nullptr ? if_none : *v;
}

// A top-level member of an audit entry as text, as SQLite's json_extract compares it; nullopt
// when absent, null or not a string.
std::optional<std::string> EntryMember(const std::string& entry, const std::string& name) {
  try {
    Poco::JSON::Parser parser;
    auto object = parser.parse(entry).extract<Poco::JSON::Object::Ptr>();
    if (object.isNull() || !object->has(name) || object->isNull(name)) return std::nullopt;
    const Poco::Dynamic::Var v = object->get(name);
    if (!v.isString()) return std::nullopt;
    return v.convert<std::string>();
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
}

class MemoryTx final : public WriteTx {
 public:
  // `undo` is null for a read transaction.
  MemoryTx(MemoryStore::Tables& t, std::vector<std::function<void()>>* undo,
           std::vector<std::function<void()>>* hooks, std::string* ahead = nullptr)
      : t_(t), undo_(undo), hooks_(hooks), ahead_(ahead) {}

  // ---- Vault ----

  Result<std::optional<SubjectRow>> GetSubject(const std::string& id) override {
    return Found(Lookup(t_.subjects, id));
  }

  Result<std::vector<SealedField>> GetFields(const std::string& id) override {
    std::vector<SealedField> out;
    for (auto it = t_.fields.lower_bound({id, ""}); it != t_.fields.end() && it->first.first == id;
         ++it) {
      out.push_back({it->first.second, it->second});
    }
    return out;
  }

  Status ScanFields(const std::string& first_id, const std::string& last_id,
                    const SealedVisitor& fn) override {
    for (auto it = t_.fields.lower_bound({first_id, ""});
         it != t_.fields.end() && it->first.first <= last_id; ++it) {
      fn(it->first.first, it->first.second, it->second.data(), it->second.size());
    }
    return Status::Ok();
  }

  Result<std::vector<std::string>> FindByIndex(const std::string& field,
                                               const Bytes& digest) override {
    std::vector<std::string> out;
    for (auto it = t_.index.lower_bound({field, digest, ""});
         it != t_.index.end() && std::get<0>(it->first) == field &&
         std::get<1>(it->first) == digest && out.size() < 1000;
         ++it) {
      out.push_back(std::get<2>(it->first));
    }
    return out;
  }

  static bool Stale(uint32_t row_master, uint32_t master) {
    return row_master != 0 && row_master != master;
  }
  uint32_t MasterOf(const std::string& subject, const std::string& field, const Bytes& digest) {
    return t_.index.at({field, digest, subject});
  }

  Result<std::vector<std::string>> SubjectsWithStaleIndexes(uint32_t master,
                                                            const std::string& after_id,
                                                            size_t limit) override {
    std::vector<std::string> out;
    for (auto it = t_.index_of.upper_bound({after_id, "\xff\xff"});
         it != t_.index_of.end() && out.size() < limit; ++it) {
      const auto& [subject, field] = it->first;
      if (subject <= after_id || (!out.empty() && out.back() == subject)) continue;
      if (Stale(MasterOf(subject, field, it->second), master)) out.push_back(subject);
    }
    return out;
  }

  Result<std::vector<std::string>> StaleIndexesOf(const std::string& subject_id,
                                                  uint32_t master) override {
    std::vector<std::string> out;
    for (auto it = t_.index_of.lower_bound({subject_id, ""});
         it != t_.index_of.end() && it->first.first == subject_id; ++it) {
      if (Stale(MasterOf(subject_id, it->first.second, it->second), master)) {
        out.push_back(it->first.second);
      }
    }
    return out;
  }

  Result<int64_t> CountStaleIndexes(uint32_t master) override {
    int64_t n = 0;
    for (const auto& [key, row_master] : t_.index) n += Stale(row_master, master) ? 1 : 0;
    return n;
  }

  Result<std::vector<DuplicatePair>> SharedMatchKeys(const std::string& after_first,
                                                     const std::string& after_second,
                                                     size_t limit) override {
    // Match-key rows are named "=<rule>": the range ['=', '>') holds them all.
    std::map<std::pair<std::string, std::string>, std::set<std::string>> pairs;
    auto it = t_.index.lower_bound({"=", Bytes(), ""});
    while (it != t_.index.end() && std::get<0>(it->first) < ">") {
      auto end = it;
      while (end != t_.index.end() && std::get<0>(end->first) == std::get<0>(it->first) &&
             std::get<1>(end->first) == std::get<1>(it->first)) {
        ++end;
      }
      for (auto a = it; a != end; ++a) {
        for (auto b = std::next(a); b != end; ++b) {
          std::pair<std::string, std::string> pair{std::get<2>(a->first), std::get<2>(b->first)};
          if (pair > std::make_pair(after_first, after_second)) {
            pairs[pair].insert(std::get<0>(it->first).substr(1));
          }
        }
      }
      it = end;
    }
    std::vector<DuplicatePair> out;
    for (auto& [pair, rules] : pairs) {
      if (out.size() == limit) break;
      out.push_back({pair.first, pair.second, {rules.begin(), rules.end()}});
    }
    return out;
  }

  Result<std::vector<SubjectRow>> SubjectsNotWrappedBy(uint32_t version, size_t limit) override {
    std::vector<SubjectRow> out;
    for (const auto& [id, row] : t_.subjects) {
      if (out.size() == limit) break;
      if (row.root_key_version != version) out.push_back(row);
    }
    return out;
  }

  Result<std::map<uint32_t, int64_t>> CountByRootKeyVersion() override {
    std::map<uint32_t, int64_t> out;
    for (const auto& [id, row] : t_.subjects) ++out[row.root_key_version];
    return out;
  }

  Result<int64_t> CountSubjects() override { return static_cast<int64_t>(t_.subjects.size()); }

  Result<std::vector<SubjectRow>> ScanSubjects(const std::string& after_id, size_t limit) override {
    std::vector<SubjectRow> out;
    for (auto it = t_.subjects.upper_bound(after_id); it != t_.subjects.end() && out.size() < limit;
         ++it) {
      out.push_back(it->second);
    }
    return out;
  }

  Result<std::vector<Bytes>> IndexDigestsOf(const std::string& subject_id,
                                            const std::string& field) override {
    const Bytes* digest = Lookup(t_.index_of, std::make_pair(subject_id, field));
    return digest == nullptr ? std::vector<Bytes>() : std::vector<Bytes>{*digest};
  }

  Result<ChangeTail> ChangesAfter(int64_t after_seq, size_t limit) override {
    ChangeTail tail;
    tail.last_seq = t_.change_seq;
    if (tail.last_seq <= after_seq) return tail;
    if (static_cast<uint64_t>(tail.last_seq - after_seq) > limit) {
      tail.complete = false;
      return tail;
    }
    for (auto it = t_.changes.upper_bound(after_seq); it != t_.changes.end(); ++it) {
      tail.changes.emplace_back(it->first, it->second);
    }
    tail.complete = !tail.changes.empty() && tail.changes.front().first == after_seq + 1 &&
                    tail.changes.back().first == tail.last_seq;
    return tail;
  }

  Result<int64_t> ShredCount() override { return t_.shreds; }

  Result<std::optional<SnapshotKeyRow>> GetSnapshotKey(const std::string& name) override {
    return Found(Lookup(t_.snapshot_keys, name));
  }

  Result<std::vector<InteractionRow>> InteractionsOf(const std::string& subject_id,
                                                     int64_t since) override {
    std::vector<InteractionRow> out;
    for (const auto& [seq, row] : t_.interactions) {
      if (row.subject_id == subject_id && row.at >= since) out.push_back(row);
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const InteractionRow& a, const InteractionRow& b) { return a.at < b.at; });
    return out;
  }

  Result<std::vector<std::string>> PurchasersBetween(int64_t since, int64_t until,
                                                     const std::string& after_id,
                                                     size_t limit) override {
    std::set<std::string> ids;
    for (const auto& [seq, row] : t_.interactions) {
      if (row.kind == "purchase" && row.at >= since && row.at < until &&
          row.subject_id > after_id) {
        ids.insert(row.subject_id);
      }
    }
    std::vector<std::string> out;
    for (const auto& id : ids) {
      if (out.size() == limit) break;
      out.push_back(id);
    }
    return out;
  }

  Result<std::vector<ContactLinkRow>> LinksOf(const std::string& subject_id) override {
    std::vector<ContactLinkRow> out;
    for (const auto& [key, row] : t_.links) {
      if (key.first == subject_id || key.second == subject_id) out.push_back(row);
    }
    std::sort(out.begin(), out.end(), [](const ContactLinkRow& a, const ContactLinkRow& b) {
      return std::tie(a.created_at, a.person_id) < std::tie(b.created_at, b.person_id);
    });
    return out;
  }

  Result<std::map<int64_t, std::string>> ImportedRows(const std::string& import_id) override {
    std::map<int64_t, std::string> out;
    for (auto it = t_.import_rows.lower_bound({import_id, INT64_MIN});
         it != t_.import_rows.end() && it->first.first == import_id; ++it) {
      out[it->first.second] = it->second;
    }
    return out;
  }

  Status InsertSubject(const SubjectRow& row) override {
    if (t_.subjects.count(row.id) != 0) return Conflict("constraint violated: write");
    Put(t_.subjects, row.id, row);
    LogChange(row.id);
    return Status::Ok();
  }

  Status UpdateSubject(const SubjectRow& row) override {
    auto it = t_.subjects.find(row.id);
    if (it == t_.subjects.end()) return Status::Ok();  // as an UPDATE of no row
    const bool erased = row.status == "erased" && it->second.status != "erased";
    Keep(t_.subjects, row.id);
    it->second.status = row.status;
    it->second.source = row.source;
    it->second.updated_at = row.updated_at;
    it->second.last_interaction_at = row.last_interaction_at;
    LogChange(row.id);
    if (erased) Shred();
    return Status::Ok();
  }

  Status PutField(const std::string& subject_id, const SealedField& field) override {
    const auto key = std::make_pair(subject_id, field.field);
    Put(t_.fields, key, field.box);
    return Status::Ok();
  }

  Status DeleteField(const std::string& subject_id, const std::string& field) override {
    const auto key = std::make_pair(subject_id, field);
    if (t_.fields.count(key) == 0) return Status::Ok();
    Keep(t_.fields, key);
    t_.fields.erase(key);
    Shred();
    return Status::Ok();
  }

  Status PutIndex(const std::string& subject_id, const IndexEntry& entry) override {
    GARDE_RETURN_IF_ERROR(DeleteIndex(subject_id, entry.field));
    const auto key = std::make_tuple(entry.field, entry.digest, subject_id);
    const auto of = std::make_pair(subject_id, entry.field);
    Keep(t_.index, key);
    Keep(t_.index_of, of);
    t_.index[key] = entry.master;
    t_.index_of[of] = entry.digest;
    return Status::Ok();
  }

  Status DeleteIndex(const std::string& subject_id, const std::string& field) override {
    const auto of = std::make_pair(subject_id, field);
    const Bytes* digest = Lookup(t_.index_of, of);
    if (digest == nullptr) return Status::Ok();
    const auto key = std::make_tuple(field, *digest, subject_id);
    Keep(t_.index, key);
    Keep(t_.index_of, of);
    t_.index.erase(key);
    t_.index_of.erase(of);
    return Status::Ok();
  }

  Status DeleteIndexesOf(const std::string& subject_id) override {
    std::vector<std::string> fields;
    for (auto it = t_.index_of.lower_bound({subject_id, ""});
         it != t_.index_of.end() && it->first.first == subject_id; ++it) {
      fields.push_back(it->first.second);
    }
    for (const auto& f : fields) GARDE_RETURN_IF_ERROR(DeleteIndex(subject_id, f));
    return Status::Ok();
  }

  Result<bool> PutSnapshotKey(const SnapshotKeyRow& key, int64_t shreds) override {
    if (t_.shreds != shreds) return false;
    Put(t_.snapshot_keys, key.name, key);
    return true;
  }

  Status ShredDataKey(const std::string& subject_id) override {
    auto it = t_.subjects.find(subject_id);
    if (it == t_.subjects.end()) return Status::Ok();
    Keep(t_.subjects, subject_id);
    it->second.wrapped_dek.clear();
    return Status::Ok();
  }

  Result<bool> RewrapDataKey(const std::string& subject_id, uint32_t from_version,
                             uint32_t to_version, const Bytes& wrapped) override {
    auto it = t_.subjects.find(subject_id);
    if (it == t_.subjects.end() || it->second.root_key_version != from_version) return false;
    Keep(t_.subjects, subject_id);
    it->second.root_key_version = to_version;
    it->second.wrapped_dek = wrapped;
    return true;
  }

  Result<bool> ReplaceDataKey(const std::string& subject_id, uint32_t from_dek, uint32_t root,
                              uint32_t dek, const Bytes& wrapped) override {
    auto it = t_.subjects.find(subject_id);
    if (it == t_.subjects.end() || it->second.dek_version != from_dek) return false;
    Keep(t_.subjects, subject_id);
    it->second.root_key_version = root;
    it->second.dek_version = dek;
    it->second.wrapped_dek = wrapped;
    if (dek != from_dek) {  // vault migration 22
      LogChange(subject_id);
      Shred();
    }
    return true;
  }

  Status ResealInteraction(int64_t seq, const Bytes& sealed_amount) override {
    auto it = t_.interactions.find(seq);
    if (it == t_.interactions.end()) return Status::Ok();
    Keep(t_.interactions, seq);
    it->second.sealed_amount = sealed_amount;
    return Status::Ok();
  }

  Result<int64_t> InsertInteraction(const InteractionRow& row) override {
    // INTEGER PRIMARY KEY: one past the largest seq in use.
    const int64_t seq = t_.interactions.empty() ? 1 : t_.interactions.rbegin()->first + 1;
    Keep(t_.interactions, seq);
    InteractionRow stored = row;
    stored.seq = seq;
    t_.interactions[seq] = std::move(stored);
    return seq;
  }

  Status DeleteInteraction(int64_t seq) override {
    Keep(t_.interactions, seq);
    t_.interactions.erase(seq);
    return Status::Ok();
  }

  Status DeleteInteractionsOf(const std::string& subject_id) override {
    std::vector<int64_t> seqs;
    for (const auto& [seq, row] : t_.interactions) {
      if (row.subject_id == subject_id) seqs.push_back(seq);
    }
    for (int64_t seq : seqs) GARDE_RETURN_IF_ERROR(DeleteInteraction(seq));
    return Status::Ok();
  }

  Status PutLink(const ContactLinkRow& row) override {
    const auto key = std::make_pair(row.organisation_id, row.person_id);
    Keep(t_.links, key);
    auto it = t_.links.find(key);
    if (it != t_.links.end()) {
      it->second.role = row.role;
    } else {
      t_.links[key] = row;
    }
    return Status::Ok();
  }

  Result<bool> DeleteLink(const std::string& organisation_id,
                          const std::string& person_id) override {
    const auto key = std::make_pair(organisation_id, person_id);
    if (t_.links.count(key) == 0) return false;
    Keep(t_.links, key);
    t_.links.erase(key);
    return true;
  }

  Status DeleteLinksOf(const std::string& subject_id) override {
    std::vector<std::pair<std::string, std::string>> keys;
    for (const auto& [key, row] : t_.links) {
      if (key.first == subject_id || key.second == subject_id) keys.push_back(key);
    }
    for (const auto& key : keys) {
      Keep(t_.links, key);
      t_.links.erase(key);
    }
    return Status::Ok();
  }

  Status InsertImportRow(const std::string& import_id, int64_t row,
                         const std::string& subject_id) override {
    const auto key = std::make_pair(import_id, row);
    if (t_.import_rows.count(key) != 0) return Conflict("constraint violated: write");
    Put(t_.import_rows, key, subject_id);
    return Status::Ok();
  }

  // ---- API keys ----

  Result<std::optional<ApiKeyRow>> FindApiKeyByHash(const Bytes& hash) override {
    for (const auto& [id, row] : t_.api_keys) {
      if (row.key_hash == hash) return std::optional<ApiKeyRow>(row);
    }
    return std::optional<ApiKeyRow>();
  }

  Result<std::vector<ApiKeyRow>> ListApiKeys() override {
    std::vector<ApiKeyRow> out;
    for (const auto& [id, row] : t_.api_keys) out.push_back(row);
    std::sort(out.begin(), out.end(), [](const ApiKeyRow& a, const ApiKeyRow& b) {
      return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id);
    });
    return out;
  }

  Status InsertApiKey(const ApiKeyRow& row) override {
    if (t_.api_keys.count(row.id) != 0 || HashInUse(row.key_hash)) {
      return Conflict("constraint violated: write");
    }
    Put(t_.api_keys, row.id, row);
    return Status::Ok();
  }

  Status RevokeApiKey(const std::string& id, int64_t at) override {
    auto it = t_.api_keys.find(id);
    if (it == t_.api_keys.end() || it->second.revoked_at != 0) {
      return NotFound("no active API key " + id);
    }
    Keep(t_.api_keys, id);
    it->second.revoked_at = at;
    return Status::Ok();
  }

  Result<bool> RehashApiKey(const std::string& id, const Bytes& from, const Bytes& to,
                            uint32_t master) override {
    auto it = t_.api_keys.find(id);
    if (it == t_.api_keys.end() || it->second.key_hash != from) return false;
    if (to != from && HashInUse(to)) return Conflict("constraint violated: write");
    Keep(t_.api_keys, id);
    it->second.key_hash = to;
    it->second.hash_master = master;
    return true;
  }

  Result<std::optional<ConsoleSessionRow>> GetConsoleSession(const Bytes& cookie_hash) override {
    auto it = t_.console_sessions.find(cookie_hash);
    if (it == t_.console_sessions.end()) return std::optional<ConsoleSessionRow>();
    return std::optional<ConsoleSessionRow>(it->second);
  }

  Result<int64_t> CountConsoleSessions() override {
    return static_cast<int64_t>(t_.console_sessions.size());
  }

  Status PutConsoleSession(const ConsoleSessionRow& row) override {
    Put(t_.console_sessions, row.cookie_hash, row);
    return Status::Ok();
  }

  Status DeleteConsoleSession(const Bytes& cookie_hash) override {
    if (t_.console_sessions.count(cookie_hash) != 0) {
      Keep(t_.console_sessions, cookie_hash);
      t_.console_sessions.erase(cookie_hash);
    }
    return Status::Ok();
  }

  Status DeleteExpiredConsoleSessions(int64_t idle_before, int64_t signed_in_before) override {
    std::vector<Bytes> expired;
    for (const auto& [hash, row] : t_.console_sessions) {
      if (row.last_seen < idle_before || row.signed_in_at < signed_in_before) {
        expired.push_back(hash);
      }
    }
    for (const Bytes& hash : expired) GARDE_RETURN_IF_ERROR(DeleteConsoleSession(hash));
    return Status::Ok();
  }

  // ---- Consent and suppression ----

  Result<std::vector<ConsentEventRow>> ConsentEventsOf(const std::string& subject_id) override {
    std::vector<std::pair<int64_t, const ConsentEventRow*>> rows;  // (rowid, row)
    for (auto it = t_.consent_events.lower_bound({subject_id, INT64_MIN});
         it != t_.consent_events.end() && it->first.first == subject_id; ++it) {
      rows.emplace_back(it->first.second, &it->second);
    }
    std::stable_sort(rows.begin(), rows.end(),
                     [](const auto& a, const auto& b) { return a.second->at < b.second->at; });
    std::vector<ConsentEventRow> out;
    for (const auto& [rowid, row] : rows) out.push_back(*row);
    return out;
  }

  Status ScanConsentFacts(const std::string& first_id, const std::string& last_id,
                          const FactVisitor& fn) override {
    auto it = t_.consent_events.lower_bound({first_id, INT64_MIN});
    while (it != t_.consent_events.end() && it->first.first <= last_id) {
      const std::string& subject = it->first.first;
      std::vector<const ConsentEventRow*> rows;
      for (; it != t_.consent_events.end() && it->first.first == subject; ++it) {
        rows.push_back(&it->second);
      }
      std::stable_sort(
          rows.begin(), rows.end(),
          [](const ConsentEventRow* a, const ConsentEventRow* b) { return a->at < b->at; });
      for (const ConsentEventRow* r : rows) {
        fn(r->subject_id, ConsentFactRow{r->purpose, r->channel, r->event, r->at, r->expires_at});
      }
    }
    return Status::Ok();
  }

  Result<std::optional<ConsentConfirmationRow>> GetConsentConfirmation(
      const std::string& id) override {
    return Found(Lookup(t_.confirmations, id));
  }

  Result<std::vector<ConsentConfirmationRow>> PendingConfirmationsOf(
      const std::string& subject_id) override {
    std::vector<ConsentConfirmationRow> out;
    for (const auto& [id, row] : t_.confirmations) {
      if (row.subject_id == subject_id && row.status == "pending") out.push_back(row);
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const ConsentConfirmationRow& a, const ConsentConfirmationRow& b) {
                       return a.requested_at < b.requested_at;
                     });
    return out;
  }

  Result<std::vector<std::string>> ObjectedPurposesOf(const std::string& subject_id) override {
    std::set<std::string> purposes;
    for (auto it = t_.consent_events.lower_bound({subject_id, INT64_MIN});
         it != t_.consent_events.end() && it->first.first == subject_id; ++it) {
      if (it->second.event == "objected") purposes.insert(it->second.purpose);
    }
    return std::vector<std::string>(purposes.begin(), purposes.end());
  }

  Result<bool> IsSuppressed(const std::string& kind, const Bytes& digest) override {
    return t_.suppressions.count({kind, digest}) != 0;
  }

  Result<std::vector<std::string>> SuppressedContactsOf(const std::string& subject_id) override {
    std::vector<std::string> out;
    for (auto it = t_.index_of.lower_bound({subject_id, "~"});
         it != t_.index_of.end() && it->first.first == subject_id && it->first.second < "\x7f";
         ++it) {
      const std::string kind = it->first.second.substr(1);
      if (t_.suppressions.count({kind, it->second}) != 0) out.push_back(kind);
    }
    return out;
  }

  Result<std::vector<std::pair<std::string, std::string>>> SuppressedContactsIn(
      const std::string& from_id, const std::string& before_id) override {
    std::set<std::pair<std::string, std::string>> found;
    for (const auto& [key, at] : t_.suppressions) {
      const std::string field = "~" + key.first;
      for (auto it = t_.index.lower_bound({field, key.second, ""});
           it != t_.index.end() && std::get<0>(it->first) == field &&
           std::get<1>(it->first) == key.second;
           ++it) {
        const std::string& subject = std::get<2>(it->first);
        if (subject >= from_id && (before_id.empty() || subject < before_id)) {
          found.emplace(subject, key.first);
        }
      }
    }
    return std::vector<std::pair<std::string, std::string>>(found.begin(), found.end());
  }

  Status InsertConsentEvent(const ConsentEventRow& row) override {
    if (t_.consent_event_ids.count(row.id) != 0) return Conflict("constraint violated: write");
    const auto key = std::make_pair(row.subject_id, ++t_.consent_rowid);
    Keep(t_.consent_events, key);
    Keep(t_.consent_event_ids, row.id);
    t_.consent_events[key] = row;
    t_.consent_event_ids[row.id] = key;
    LogChange(row.subject_id);
    return Status::Ok();
  }

  Status PutConsentConfirmation(const ConsentConfirmationRow& row) override {
    Put(t_.confirmations, row.id, row);
    return Status::Ok();
  }

  Status PutSuppression(const std::string& kind, const Bytes& digest, const std::string& reason,
                        int64_t at) override {
    (void)reason;  // not read back
    const auto key = std::make_pair(kind, digest);
    if (t_.suppressions.count(key) != 0) return Status::Ok();  // INSERT OR IGNORE
    Put(t_.suppressions, key, at);
    const std::string field = "~" + kind;
    std::vector<std::string> subjects;
    for (auto it = t_.index.lower_bound({field, digest, ""});
         it != t_.index.end() && std::get<0>(it->first) == field &&
         std::get<1>(it->first) == digest;
         ++it) {
      subjects.push_back(std::get<2>(it->first));
    }
    for (const auto& s : subjects) LogChange(s);
    return Status::Ok();
  }

  Status DeleteConsentEventsOf(const std::string& subject_id) override {
    std::vector<std::pair<std::string, int64_t>> keys;
    for (auto it = t_.consent_events.lower_bound({subject_id, INT64_MIN});
         it != t_.consent_events.end() && it->first.first == subject_id; ++it) {
      keys.push_back(it->first);
    }
    for (const auto& key : keys) {
      const std::string id = t_.consent_events.at(key).id;
      Keep(t_.consent_events, key);
      Keep(t_.consent_event_ids, id);
      t_.consent_events.erase(key);
      t_.consent_event_ids.erase(id);
      LogChange(subject_id);
    }
    std::vector<std::string> confirmations;
    for (const auto& [id, row] : t_.confirmations) {
      if (row.subject_id == subject_id) confirmations.push_back(id);
    }
    for (const auto& id : confirmations) {
      Keep(t_.confirmations, id);
      t_.confirmations.erase(id);
    }
    return Status::Ok();
  }

  // ---- Requests, tombstones, merges, records ----

  Result<std::optional<RequestRow>> GetRequest(const std::string& id) override {
    const RequestRow* row = Lookup(t_.requests, id);
    if (row == nullptr) return std::optional<RequestRow>();
    RequestRow out = *row;
    out.package_bytes = static_cast<int64_t>(out.package.size());
    return std::optional<RequestRow>(std::move(out));
  }

  Result<std::vector<RequestRow>> QueryRequests(const RequestQuery& q) override {
    std::vector<RequestRow> out;
    for (const auto& [id, row] : t_.requests) {
      if (!q.statuses.empty() &&
          std::find(q.statuses.begin(), q.statuses.end(), row.status) == q.statuses.end()) {
        continue;
      }
      if (!q.type.empty() && row.type != q.type) continue;
      if (!q.subject.empty() && row.subject_id != q.subject) continue;
      if (q.due_before != 0 && !(row.due_at < q.due_before)) continue;
      if (q.after && !(std::tie(row.due_at, row.id) > std::tie(q.after->first, q.after->second))) {
        continue;
      }
      RequestRow listed = row;
      listed.package_bytes = static_cast<int64_t>(row.package.size());
      listed.package.clear();  // lists leave the packages out
      out.push_back(std::move(listed));
    }
    std::sort(out.begin(), out.end(), [](const RequestRow& a, const RequestRow& b) {
      return std::tie(a.due_at, a.id) < std::tie(b.due_at, b.id);
    });
    if (out.size() > q.limit) out.resize(q.limit);
    return out;
  }

  Result<std::pair<int64_t, int64_t>> CountOpenRequests(int64_t now) override {
    int64_t open = 0, overdue = 0;
    for (const auto& [id, row] : t_.requests) {
      if (row.status == "completed" || row.status == "rejected") continue;
      ++open;
      if (row.due_at < now) ++overdue;
    }
    return std::make_pair(open, overdue);
  }

  Status InsertRequest(const RequestRow& row) override {
    if (t_.requests.count(row.id) != 0) return Conflict("constraint violated: write");
    Keep(t_.requests, row.id);
    RequestRow stored = row;
    stored.package_bytes = 0;
    t_.requests[row.id] = std::move(stored);
    return Status::Ok();
  }

  Status UpdateRequest(const RequestRow& row) override {
    auto it = t_.requests.find(row.id);
    if (it == t_.requests.end()) return NotFound("no request " + row.id);
    Keep(t_.requests, row.id);
    RequestRow& r = it->second;
    r.status = row.status;
    r.jurisdiction = row.jurisdiction;
    r.opened_by = row.opened_by;
    r.verification = row.verification;
    r.verified_at = row.verified_at;
    r.due_at = row.due_at;
    r.completed_at = row.completed_at;
    r.extended = row.extended;
    r.sealed = row.sealed;
    r.package = row.package;
    r.result = row.result;
    return Status::Ok();
  }

  Status ReassignRequest(const std::string& id, const std::string& subject_id, const Bytes& sealed,
                         const Bytes& package) override {
    auto it = t_.requests.find(id);
    if (it == t_.requests.end()) return NotFound("no request " + id);
    Keep(t_.requests, id);
    it->second.subject_id = subject_id;
    it->second.sealed = sealed;
    it->second.package = package;
    return Status::Ok();
  }

  Result<std::vector<TombstoneRow>> ListTombstones(int64_t since) override {
    std::vector<TombstoneRow> out;
    for (const auto& [id, row] : t_.tombstones) {
      if (row.at >= since) out.push_back(row);
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const TombstoneRow& a, const TombstoneRow& b) { return a.at < b.at; });
    return out;
  }

  Status InsertTombstone(const TombstoneRow& row) override {
    Put(t_.tombstones, row.subject_id, row);
    return Status::Ok();
  }

  Result<std::optional<TombstoneLogMark>> GetTombstoneLogMark(const std::string& log) override {
    auto it = t_.tombstone_log_marks.find(log);
    return Found(it == t_.tombstone_log_marks.end() ? nullptr : &it->second);
  }

  Status PutTombstoneLogMark(const TombstoneLogMark& mark) override {
    Put(t_.tombstone_log_marks, mark.log, mark);
    return Status::Ok();
  }

  Result<std::optional<MergeRow>> GetMerge(const std::string& id) override {
    auto it = t_.merges.find(id);
    if (it == t_.merges.end()) return std::optional<MergeRow>();
    return std::optional<MergeRow>(it->second.second);
  }

  // Merges matching `keep`, ordered by (created_at, insertion).
  template <typename Pred>
  std::vector<MergeRow> MergesWhere(Pred keep) {
    std::vector<std::pair<int64_t, const MergeRow*>> rows;
    for (const auto& [id, entry] : t_.merges) {
      if (keep(entry.second)) rows.emplace_back(entry.first, &entry.second);
    }
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
      return std::tie(a.second->created_at, a.first) < std::tie(b.second->created_at, b.first);
    });
    std::vector<MergeRow> out;
    for (const auto& [rowid, row] : rows) out.push_back(*row);
    return out;
  }

  Result<std::vector<MergeRow>> MergesOf(const std::string& merged_id) override {
    auto out = MergesWhere([&](const MergeRow& m) { return m.merged_id == merged_id; });
    std::reverse(out.begin(), out.end());  // newest first
    return out;
  }

  Result<std::vector<MergeRow>> MergesInto(const std::string& into_id) override {
    return MergesWhere([&](const MergeRow& m) { return m.into_id == into_id; });
  }

  Result<std::vector<MergeRow>> OpenMergesBefore(int64_t before, size_t limit) override {
    auto out = MergesWhere(
        [&](const MergeRow& m) { return m.state == "merged" && m.created_at < before; });
    if (out.size() > limit) out.resize(limit);
    return out;
  }

  Status PutMerge(const MergeRow& row) override {
    Keep(t_.merges, row.id);
    auto it = t_.merges.find(row.id);
    if (it == t_.merges.end()) {
      t_.merges[row.id] = {++t_.merge_rowid, row};
      return Status::Ok();
    }
    MergeRow& m = it->second.second;
    m.state = row.state;
    m.finished_at = row.finished_at;
    m.record = row.record;
    m.sealed = row.sealed;
    return Status::Ok();
  }

  Result<std::optional<IncidentRow>> GetIncident(const std::string& id) override {
    return Found(Lookup(t_.incidents, id));
  }

  Result<std::vector<IncidentRow>> ListIncidents() override {
    std::vector<IncidentRow> out;
    for (const auto& [id, row] : t_.incidents) out.push_back(row);
    std::stable_sort(out.begin(), out.end(), [](const IncidentRow& a, const IncidentRow& b) {
      return a.authority_due_at < b.authority_due_at;
    });
    return out;
  }

  Status PutIncident(const IncidentRow& row) override {
    Put(t_.incidents, row.id, row);
    return Status::Ok();
  }

  Result<std::optional<SegmentRow>> GetSegment(const std::string& name) override {
    return Found(Lookup(t_.segments, name));
  }

  Result<std::vector<SegmentRow>> ListSegments() override {
    std::vector<SegmentRow> out;
    for (const auto& [name, row] : t_.segments) out.push_back(row);
    return out;
  }

  Status PutSegment(const SegmentRow& row) override {
    Keep(t_.segments, row.name);
    auto it = t_.segments.find(row.name);
    if (it == t_.segments.end()) {
      t_.segments[row.name] = row;
    } else {
      it->second.definition = row.definition;
      it->second.updated_at = row.updated_at;
    }
    return Status::Ok();
  }

  Result<bool> DeleteSegment(const std::string& name) override {
    if (t_.segments.count(name) == 0) return false;
    Keep(t_.segments, name);
    t_.segments.erase(name);
    return true;
  }

  Result<std::vector<PolicyVersionRow>> ListPolicyVersions(size_t limit) override {
    std::vector<PolicyVersionRow> out;
    for (auto it = t_.policy_versions.rbegin();
         it != t_.policy_versions.rend() && out.size() < limit; ++it) {
      out.push_back(it->second);
    }
    return out;
  }

  Status InsertPolicyVersion(const PolicyVersionRow& row) override {
    const int64_t seq = t_.policy_versions.empty() ? 1 : t_.policy_versions.rbegin()->first + 1;
    Keep(t_.policy_versions, seq);
    PolicyVersionRow stored = row;
    stored.seq = seq;
    t_.policy_versions[seq] = std::move(stored);
    return Status::Ok();
  }

  Result<std::vector<RetentionRunRow>> ListRetentionRuns(int64_t before_seq,
                                                         size_t limit) override {
    std::vector<RetentionRunRow> out;
    for (auto it = t_.retention_runs.rbegin(); it != t_.retention_runs.rend() && out.size() < limit;
         ++it) {
      if (before_seq == 0 || it->first < before_seq) out.push_back(it->second);
    }
    return out;
  }

  Result<std::optional<RetentionRunRow>> GetRetentionRun(const std::string& id) override {
    for (const auto& [seq, row] : t_.retention_runs) {
      if (row.id == id) return std::optional<RetentionRunRow>(row);
    }
    return std::optional<RetentionRunRow>();
  }

  Status PutRetentionRun(const RetentionRunRow& row) override {
    for (auto& [seq, run] : t_.retention_runs) {
      if (run.id != row.id) continue;
      Keep(t_.retention_runs, seq);
      run.finished_at = row.finished_at;
      run.cursor = row.cursor;
      run.report = row.report;
      return Status::Ok();
    }
    KeepValue(t_.retention_seq);
    const int64_t seq = ++t_.retention_seq;
    Keep(t_.retention_runs, seq);
    RetentionRunRow stored = row;
    stored.seq = seq;
    t_.retention_runs[seq] = std::move(stored);
    return Status::Ok();
  }

  // ---- Outbox and webhooks ----

  Result<std::vector<OutboxRow>> ListOutbox(int64_t after_seq, size_t limit) override {
    std::vector<OutboxRow> out;
    for (auto it = t_.outbox.upper_bound(after_seq); it != t_.outbox.end() && out.size() < limit;
         ++it) {
      out.push_back(it->second);
    }
    return out;
  }

  Status InsertOutbox(const OutboxRow& row) override {
    if (t_.outbox_ids.count(row.id) != 0) return Conflict("constraint violated: write");
    const int64_t seq = t_.outbox.empty() ? 1 : t_.outbox.rbegin()->first + 1;
    Keep(t_.outbox, seq);
    KeepMember(t_.outbox_ids, row.id);
    OutboxRow stored = row;
    stored.seq = seq;
    t_.outbox[seq] = std::move(stored);
    t_.outbox_ids.insert(row.id);
    return Status::Ok();
  }

  Result<int64_t> WebhookMark(const std::string& endpoint) override {
    return ValueOr(t_.webhook_marks, endpoint, int64_t{0});
  }

  Status SetWebhookMark(const std::string& endpoint, int64_t outbox_seq) override {
    Put(t_.webhook_marks, endpoint, outbox_seq);
    return Status::Ok();
  }

  Result<std::vector<DeliveryRow>> DueDeliveries(int64_t now, size_t limit) override {
    std::vector<DeliveryRow> out;
    std::set<std::pair<std::string, std::string>> waiting;  // (endpoint, subject) seen pending
    for (const auto& [id, row] : t_.deliveries) {
      if (out.size() == limit) break;
      if (row.status != "pending") continue;
      const bool behind =
          !row.subject.empty() && !waiting.emplace(row.endpoint, row.subject).second;
      if (row.next_at <= now && !behind) out.push_back(row);
    }
    return out;
  }

  Result<std::vector<DeliveryRow>> QueryDeliveries(const DeliveryQuery& q) override {
    std::vector<DeliveryRow> out;
    for (auto it = t_.deliveries.upper_bound(q.after_id);
         it != t_.deliveries.end() && out.size() < q.limit; ++it) {
      if (!q.status.empty() && it->second.status != q.status) continue;
      if (!q.endpoint.empty() && it->second.endpoint != q.endpoint) continue;
      out.push_back(it->second);
    }
    return out;
  }

  Result<std::optional<DeliveryRow>> GetDelivery(int64_t id) override {
    return Found(Lookup(t_.deliveries, id));
  }

  Result<std::map<std::string, int64_t>> CountDeliveries() override {
    std::map<std::string, int64_t> out;
    for (const auto& [id, row] : t_.deliveries) ++out[row.status];
    return out;
  }

  Status InsertDelivery(const DeliveryRow& row) override {
    const auto key = std::make_pair(row.endpoint, row.event_id);
    // INSERT OR IGNORE: an ignored row still uses up its number, as in SQLite (and as a
    // PostgreSQL sequence would).
    KeepValue(t_.delivery_seq);
    const int64_t id = ++t_.delivery_seq;
    if (t_.delivery_keys.count(key) != 0) return Status::Ok();
    Keep(t_.deliveries, id);
    KeepMember(t_.delivery_keys, key);
    DeliveryRow stored = row;
    stored.id = id;
    stored.last_error.clear();
    stored.delivered_at = 0;
    t_.deliveries[id] = std::move(stored);
    t_.delivery_keys.insert(key);
    return Status::Ok();
  }

  Status UpdateDelivery(const DeliveryRow& row) override {
    auto it = t_.deliveries.find(row.id);
    if (it == t_.deliveries.end()) return Status::Ok();
    Keep(t_.deliveries, row.id);
    DeliveryRow& d = it->second;
    d.status = row.status;
    d.attempts = row.attempts;
    d.next_at = row.next_at;
    d.last_error = row.last_error;
    d.delivered_at = row.delivered_at;
    d.created_at = row.created_at;
    return Status::Ok();
  }

  // ---- Audit ----

  Result<uint64_t> AuditSize() override {
    return t_.audit_log.empty() ? uint64_t{0} : t_.audit_log.rbegin()->first + 1;
  }

  Result<Bytes> AuditNode(unsigned level, uint64_t index) override {
    if (level == 0) {
      const AuditRow* row = Lookup(t_.audit_log, index);
      if (row != nullptr) return row->leaf_hash;
    } else if (const Bytes* hash = Lookup(t_.audit_nodes, std::make_pair(level, index))) {
      return *hash;
    }
    return NotFound("no audit tree node " + std::to_string(level) + "/" + std::to_string(index));
  }

  Result<std::vector<AuditRow>> QueryAudit(const AuditQuery& q) override {
    auto matches = [](const std::string& entry, const char* name, const std::string& want,
                      int sign) {
      if (want.empty()) return true;
      auto v = EntryMember(entry, name);
      if (!v) return false;
      return sign == 0 ? *v == want : sign > 0 ? *v >= want : *v <= want;
    };
    std::vector<AuditRow> out;
    auto consider = [&](const AuditRow& row) {
      if (q.after_seq && row.seq <= *q.after_seq) return;
      if (matches(row.entry, "actor", q.actor, 0) && matches(row.entry, "action", q.action, 0) &&
          matches(row.entry, "activity", q.activity, 0) && matches(row.entry, "time", q.since, 1) &&
          matches(row.entry, "time", q.until, -1)) {
        out.push_back({row.seq, row.entry, row.leaf_hash, ""});
      }
    };
    if (!q.subject.empty()) {
      for (auto it = t_.audit_subjects.lower_bound({q.subject, 0});
           it != t_.audit_subjects.end() && it->first == q.subject && out.size() < q.limit; ++it) {
        if (const AuditRow* row = Lookup(t_.audit_log, it->second)) consider(*row);
      }
      return out;
    }
    for (const auto& [seq, row] : t_.audit_log) {
      if (out.size() == q.limit) break;
      consider(row);
    }
    return out;
  }

  Status ScanAudit(uint64_t from_seq, uint64_t to_seq,
                   const std::function<bool(const AuditRow&)>& fn) override {
    for (auto it = t_.audit_log.lower_bound(from_seq);
         it != t_.audit_log.end() && it->first < to_seq; ++it) {
      if (!fn(it->second)) break;
    }
    return Status::Ok();
  }

  Result<std::vector<CheckpointRow>> ListCheckpoints() override {
    std::vector<CheckpointRow> out;
    for (const auto& [size, row] : t_.checkpoints) out.push_back(row);
    return out;
  }

  Result<std::vector<uint64_t>> AuditSeqsOfActor(const std::string& actor,
                                                 uint64_t below) override {
    std::vector<uint64_t> out;
    for (auto it = t_.audit_actors.lower_bound({actor, 0});
         it != t_.audit_actors.end() && it->first == actor && it->second < below; ++it) {
      out.push_back(it->second);
    }
    return out;
  }

  Result<std::optional<CheckpointRow>> LatestCheckpoint() override {
    if (t_.checkpoints.empty()) return std::optional<CheckpointRow>();
    return std::optional<CheckpointRow>(t_.checkpoints.rbegin()->second);
  }

  Status InsertAuditEntry(const AuditRow& row) override {
    if (t_.audit_log.count(row.seq) != 0) return Conflict("constraint violated: write");
    Put(t_.audit_log, row.seq, row);
    return Status::Ok();
  }

  Status InsertAuditNode(unsigned level, uint64_t index, const Bytes& hash) override {
    const auto key = std::make_pair(level, index);
    if (t_.audit_nodes.count(key) != 0) return Conflict("constraint violated: write");
    Put(t_.audit_nodes, key, hash);
    return Status::Ok();
  }

  Status InsertAuditActor(const std::string& actor, uint64_t seq) override {
    auto posting = std::make_pair(actor, seq);
    if (t_.audit_actors.count(posting) != 0) return Conflict("constraint violated: write");
    KeepMember(t_.audit_actors, posting);
    t_.audit_actors.insert(std::move(posting));
    return Status::Ok();
  }

  // One run for everything: sorted runs are SQLite's answer to a B-tree on disk; a set in
  // memory is already that.
  Status AppendAuditSubjectRun(std::vector<std::pair<std::string, uint64_t>> postings) override {
    for (auto& posting : postings) {
      if (t_.audit_subjects.count(posting) != 0) continue;
      KeepMember(t_.audit_subjects, posting);
      t_.audit_subjects.insert(std::move(posting));
    }
    return Status::Ok();
  }

  Result<bool> MergeAuditSubjectRuns() override { return false; }

  Status InsertCheckpoint(const CheckpointRow& row) override {
    if (t_.checkpoints.count(row.size) != 0) return Status::Ok();  // INSERT OR IGNORE
    Put(t_.checkpoints, row.size, row);
    return Status::Ok();
  }

  Result<int64_t> CountPendingAudit() override {
    return static_cast<int64_t>(t_.pending_audit.size());
  }

  Result<std::vector<PendingAuditRow>> ListPendingAudit(int64_t after_id, size_t limit) override {
    std::vector<PendingAuditRow> out;
    for (auto it = t_.pending_audit.upper_bound(after_id);
         it != t_.pending_audit.end() && out.size() < limit; ++it) {
      out.push_back(it->second);
    }
    return out;
  }

  Status InsertPendingAudit(const PendingAuditRow& row) override {
    KeepValue(t_.pending_seq);
    const int64_t id = ++t_.pending_seq;
    Keep(t_.pending_audit, id);
    PendingAuditRow stored = row;
    stored.id = id;
    t_.pending_audit[id] = std::move(stored);
    return Status::Ok();
  }

  Status DeletePendingAudit(int64_t up_to_id) override {
    std::vector<int64_t> ids;
    for (auto it = t_.pending_audit.begin(); it != t_.pending_audit.end() && it->first <= up_to_id;
         ++it) {
      ids.push_back(it->first);
    }
    for (int64_t id : ids) {
      Keep(t_.pending_audit, id);
      t_.pending_audit.erase(id);
    }
    return Status::Ok();
  }

  Status ReservePendingAuditIds(int64_t id) override {
    if (t_.pending_seq >= id) return Status::Ok();
    KeepValue(t_.pending_seq);
    t_.pending_seq = id;
    return Status::Ok();
  }

  Result<int64_t> AuditIntakeMark() override { return t_.intake_mark; }

  Status SetAuditIntakeMark(int64_t id) override {
    KeepValue(t_.intake_mark);
    t_.intake_mark = id;
    return Status::Ok();
  }

  Result<int64_t> JournalImportedTo(const std::string& name) override {
    return ValueOr(t_.journals, name, int64_t{0});
  }

  Status SetJournalImported(const std::string& name, int64_t offset) override {
    Put(t_.journals, name, offset);
    return Status::Ok();
  }

  Status ForgetJournal(const std::string& name) override {
    Keep(t_.journals, name);
    t_.journals.erase(name);
    return Status::Ok();
  }

  void AfterCommit(std::function<void()> fn) override {
    if (hooks_ != nullptr) hooks_->push_back(std::move(fn));
  }
  void WriteAhead(std::string lines) override {
    if (ahead_ != nullptr) *ahead_ += lines;
  }

 private:
  // Undo records: how to put back what a write is about to change.
  template <typename Map, typename Key, typename Value>
  void Put(Map& map, const Key& key, Value&& value) {
    Keep(map, key);
    map[key] = std::forward<Value>(value);
  }
  template <typename Map, typename Key>
  void Keep(Map& map, const Key& key) {
    auto it = map.find(key);
    if (it == map.end()) {
      undo_->push_back([&map, key] { map.erase(key); });
    } else {
      undo_->push_back([&map, key, old = it->second] { map[key] = old; });
    }
  }
  template <typename Set, typename Key>
  void KeepMember(Set& set, const Key& key) {
    if (set.count(key) == 0) {
      undo_->push_back([&set, key] { set.erase(key); });
    } else {
      undo_->push_back([&set, key] { set.insert(key); });
    }
  }
  template <typename T>
  void KeepValue(T& value) {
    undo_->push_back([&value, old = value] { value = old; });
  }

  bool HashInUse(const Bytes& hash) const {
    for (const auto& [id, row] : t_.api_keys) {
      if (row.key_hash == hash) return true;
    }
    return false;
  }

  // The vault change log (SQLite's triggers of vault migration 7).
  void LogChange(const std::string& subject) {
    KeepValue(t_.change_seq);
    const int64_t seq = ++t_.change_seq;
    Put(t_.changes, seq, subject);
    const int64_t trim = seq - kChangeLogKeep;
    if (trim >= 1 && t_.changes.count(trim) != 0) {
      Keep(t_.changes, trim);
      t_.changes.erase(trim);
    }
  }

  // Personal data destroyed: every snapshot key goes, the count moves (vault migration 9).
  void Shred() {
    KeepValue(t_.shreds);
    KeepValue(t_.snapshot_keys);
    ++t_.shreds;
    t_.snapshot_keys.clear();
  }

  MemoryStore::Tables& t_;
  std::vector<std::function<void()>>* undo_;
  std::vector<std::function<void()>>* hooks_;
  std::string* ahead_;
};

// The store whose write this thread is running, if any.
thread_local const MemoryStore* tls_writing = nullptr;

}  // namespace

MemoryStore::MemoryStore() : tables_(std::make_unique<Tables>()) {}
MemoryStore::~MemoryStore() = default;

Status MemoryStore::Read(const std::function<Status(ReadTx&)>& fn) {
  std::shared_lock lock(mu_, std::defer_lock);
  // A read from inside this thread's own write sees that write (it holds the lock already).
  if (tls_writing != this) lock.lock();
  MemoryTx tx(*tables_, nullptr, nullptr);
  try {
    return fn(tx);
  } catch (const std::exception& e) {
    return Internal(std::string("read failed: ") + e.what());
  }
}

Status MemoryStore::Write(const std::function<Status(WriteTx&)>& fn, Durability durability) {
  (void)durability;  // nothing to make durable
  return Run(fn, 1);
}

Status MemoryStore::WriteRerunnable(const std::function<Status(WriteTx&)>& fn,
                                    Durability durability) {
  (void)durability;
  return Run(fn, 2);
}

Status MemoryStore::Run(const std::function<Status(WriteTx&)>& fn, int runs) {
  std::vector<std::function<void()>> hooks;
  Status s = Status::Ok();
  {
    std::unique_lock lock(mu_);
    for (int run = 1; run <= runs; ++run) {
      std::vector<std::function<void()>> undo;
      std::string ahead;
      hooks.clear();
      MemoryTx tx(*tables_, &undo, &hooks, &ahead);
      tls_writing = this;
      try {
        s = fn(tx);
      } catch (const std::exception& e) {
        s = Internal(std::string("write failed: ") + e.what());
      }
      tls_writing = nullptr;
      if (s.ok() && run == runs) s = WriteAheadOf(ahead);  // kept only once written
      if (s.ok() && run == runs) {
        if (!undo.empty()) epoch_.fetch_add(1, std::memory_order_acq_rel);
      } else {
        for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
      }
    }
  }
  if (!s.ok()) return s;
  for (auto& hook : hooks) hook();
  return s;
}

Status MemoryStore::CopyTo(const std::string& path) {
  return Unavailable("an in-memory store cannot be copied to " + path);
}

}  // namespace garde

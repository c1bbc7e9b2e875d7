#include "garde/domain/subject_vault.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "garde/base/await.h"
#include "garde/base/byte_codec.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/crypto/envelope.h"
#include "garde/domain/match_keys.h"

namespace garde {
namespace {

constexpr size_t kMaxSearchResults = 100;

bool ValidSource(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

bool SameValue(const std::string& a, const std::string& b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::vector<std::string> Names(const FieldMap& m) {
  std::vector<std::string> out;
  for (const auto& [k, _] : m) out.push_back(k);
  return out;
}

}  // namespace

Bytes SuppressionDigest(const KeyedHash& key, const std::string& kind, const std::string& value) {
  std::string msg = kind;
  msg += '\0';
  msg += value;
  return key.Digest(msg, 32);
}

const char* SuppressionKind(FieldType type) {
  if (type == FieldType::kEmail) return "email";
  if (type == FieldType::kPhone) return "phone";
  return "";
}

const FieldSpec* SubjectVault::SpecOf(const PolicySet& policies, const std::string& field) const {
  if (field == kExternalIdField) return &external_id_spec_;
  return policies.schema().Find(field);
}

void SubjectVault::Audit(WriteTx* tx, const Caller& caller, AccessEvent event) const {
  d_.journal.Record(tx, caller, event).IgnoreError();
}

Status SubjectVault::Validate(const PolicySet& policies, const std::string& kind,
                              const FieldMap& fields, const std::optional<FieldValue>& external_id,
                              bool creating, Prepared* out) const {
  Status invalid(Code::kUnprocessable, "the subject is not valid; nothing was stored");
  for (const auto& [name, value] : fields) {
    const std::string path = "fields." + name;
    const FieldSpec* spec = policies.schema().Find(name);
    if (spec == nullptr) {
      invalid.AddError(path, "is not a field of the schema");
      continue;
    }
    if (spec->kinds.count(kind) == 0) {
      invalid.AddError(path, "is not a field of a " + kind);
      continue;
    }
    if (value.is_null()) {
      if (spec->required) {
        invalid.AddError(path, "is required and cannot be removed");
      } else if (!creating) {
        out->removed.push_back(name);
      }
      continue;
    }
    std::string why;
    auto normalised = d_.standard.Normalize(*spec, value, &why);
    if (!normalised) {
      invalid.AddError(path, why);
      continue;
    }
    out->values[name] = std::move(*normalised);
  }
  if (external_id) {
    if (external_id->is_null()) {
      if (!creating) out->removed.push_back(kExternalIdField);
    } else {
      std::string why;
      auto normalised = d_.standard.Normalize(external_id_spec_, *external_id, &why);
      if (normalised) {
        out->values[kExternalIdField] = std::move(*normalised);
      } else {
        invalid.AddError(kExternalIdField, why);
      }
    }
  }
  if (creating) {
    for (const auto& spec : policies.schema().fields()) {
      if (spec.required && spec.kinds.count(kind) != 0 && out->values.count(spec.name) == 0) {
        invalid.AddError("fields." + spec.name, "is required");
      }
    }
  }
  return invalid.errors().empty() ? Status::Ok() : invalid;
}

Status SubjectVault::UnwrapFor(const SubjectRow& row, ScopedKey* dek) const {
  auto ring = d_.keys.Current();
  if (!ring->Usable(row.root_key_version) && d_.keys.RefreshIfChanged()) {
    ring = d_.keys.Current();  // a rotation added a version since we loaded
  }
  Status s = UnwrapDataKey(*ring, row.root_key_version, row.id, row.wrapped_dek, dek);
  if (s.code() == Code::kDamaged) return Damaged("the record of subject " + row.id + " is damaged");
  return s;
}

Result<std::optional<FieldValue>> SubjectVault::OpenOne(ReadTx& tx, const SubjectRow& row,
                                                        const std::string& field) const {
  GARDE_ASSIGN_OR_RETURN(auto fields, tx.GetFields(row.id));
  for (const auto& sealed : fields) {
    if (sealed.field != field) continue;
    ScopedKey dek;
    GARDE_RETURN_IF_ERROR(UnwrapFor(row, &dek));
    auto plain = OpenField(dek, {row.id, field, row.dek_version}, sealed.box);
    if (!plain.ok()) return plain.status();
    auto value = DecodeFieldValue(plain.value());
    sodium_memzero(plain.value().data(), plain.value().size());
    if (!value) return Damaged("field " + field + " is damaged");
    return std::optional<FieldValue>(std::move(*value));
  }
  return std::optional<FieldValue>();
}

Status SubjectVault::CheckUnique(WriteTx& tx, const PolicySet& policies, const std::string& self_id,
                                 const FieldMap& values) const {
  GARDE_ASSIGN_OR_RETURN(auto holder, UniqueHolderIn(tx, policies, self_id, values, &tx));
  if (!holder) return Status::Ok();
  return Conflict("field '" + holder->field + "' already belongs to another subject")
      .AddError("fields." + holder->field, "already belongs to another subject")
      .AddExtra("existing_id", holder->id);
}

Result<std::optional<SubjectVault::UniqueHolder>> SubjectVault::UniqueHolderIn(
    ReadTx& tx, const PolicySet& policies, const std::string& self_id, const FieldMap& values,
    WriteTx* write) const {
  for (const auto& [name, value] : values) {
    const FieldSpec* spec = SpecOf(policies, name);
    if (spec == nullptr || !spec->unique) continue;
    const std::string text = IndexText(value);
    const std::vector<Bytes> digests = LookupDigests(name, text, spec->blind_index_bytes);
    if (write != nullptr) {
      // Usually no other subject has the digest: one question, which a store may answer later.
      GARDE_ASSIGN_OR_RETURN(auto held, write->IndexHeldByOthers(name, digests, self_id));
      if (!held) continue;
    }
    GARDE_ASSIGN_OR_RETURN(auto ids, FindByDigests(tx, name, digests));
    for (const auto& id : ids) {
      if (id == self_id) continue;
      GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
      if (!row || row->status == "erased") continue;
      // A truncated digest can collide: compare the real values, in constant time.
      auto other = OpenOne(tx, *row, name);
      if (!other.ok()) continue;  // a damaged candidate cannot prove a duplicate
      if (other.value() && SameValue(IndexText(*other.value()), text)) {
        return std::optional<UniqueHolder>(UniqueHolder{name, id});
      }
    }
  }
  return std::optional<UniqueHolder>();
}

Result<std::vector<std::optional<SubjectVault::UniqueHolder>>> SubjectVault::UniqueHoldersOf(
    const std::vector<const FieldMap*>& each) const {
  const auto policies = d_.policies.Current();
  std::vector<std::optional<UniqueHolder>> out(each.size());
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    for (size_t i = 0; i < each.size(); ++i) {
      GARDE_ASSIGN_OR_RETURN(out[i], UniqueHolderIn(tx, *policies, "", *each[i], nullptr));
    }
    return Status::Ok();
  }));
  return out;
}

std::vector<std::string> SubjectVault::UniqueKeysOf(const FieldMap& values) const {
  const auto policies = d_.policies.Current();
  const auto keys = d_.lookup.Current();
  std::vector<std::string> out;
  for (const auto& [name, value] : values) {
    const FieldSpec* spec = SpecOf(*policies, name);
    if (spec == nullptr || !spec->unique) continue;
    const Bytes digest = keys->index.Digest(name, IndexText(value), spec->blind_index_bytes);
    out.push_back(name + '\0' + std::string(digest.begin(), digest.end()));
  }
  return out;
}

std::vector<Bytes> SubjectVault::LookupDigests(const std::string& field, const std::string& text,
                                               size_t bytes) const {
  // Under the current master and, while a master rotation runs, the previous one: a subject's
  // digest is under one of them.
  return d_.lookup.Current()->Digests(field, text, bytes);
}

Result<std::vector<std::string>> SubjectVault::FindByIndex(ReadTx& tx, const std::string& field,
                                                           const std::string& text,
                                                           size_t bytes) const {
  return FindByDigests(tx, field, LookupDigests(field, text, bytes));
}

Result<std::vector<std::string>> SubjectVault::FindByDigests(ReadTx& tx, const std::string& field,
                                                             const std::vector<Bytes>& digests) {
  std::vector<std::string> ids;
  for (const Bytes& digest : digests) {
    GARDE_ASSIGN_OR_RETURN(auto found, tx.FindByIndex(field, digest));
    for (auto& id : found) {
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(std::move(id));
    }
  }
  return ids;
}

Status SubjectVault::PutMatchKeys(WriteTx& tx, const PolicySet& policies, const std::string& id,
                                  const FieldMap& values, bool fresh) const {
  if (!fresh) {
    for (const auto& rule : MatchRules()) GARDE_RETURN_IF_ERROR(tx.DeleteIndex(id, "=" + rule));
  }
  std::vector<IndexEntry> entries;
  MatchKeyEntries(policies, values, &entries);  // none while off: the keys it had are gone
  for (const IndexEntry& e : entries) GARDE_RETURN_IF_ERROR(tx.PutIndex(id, e));
  return Status::Ok();
}

void SubjectVault::MatchKeyEntries(const PolicySet& policies, const FieldMap& values,
                                   std::vector<IndexEntry>* out) const {
  if (!policies.matching().enabled) return;
  const auto keys = d_.lookup.Current();
  for (const MatchKey& k : MatchKeysOf(policies.matching(), values)) {
    std::string field = "=" + k.rule;
    Bytes digest = keys->index.Digest(field, k.key, kMatchKeyBytes);
    out->push_back({std::move(field), std::move(digest), keys->master});
  }
}

Status SubjectVault::RefreshMatchKeys(WriteTx& tx, const PolicySet& policies,
                                      const SubjectRow& row) const {
  FieldMap values;
  for (const std::string& field : policies.matching().fields()) {
    GARDE_ASSIGN_OR_RETURN(auto value, OpenOne(tx, row, field));
    if (value) values[field] = std::move(*value);
  }
  return PutMatchKeys(tx, policies, row.id, values, /*fresh=*/false);
}

Status SubjectVault::PutIndexes(WriteTx& tx, const PolicySet& policies, const std::string& id,
                                const std::string& name, const FieldValue& value) const {
  std::vector<IndexEntry> entries;
  IndexEntries(policies, name, value, &entries);
  for (const IndexEntry& e : entries) GARDE_RETURN_IF_ERROR(tx.PutIndex(id, e));
  return Status::Ok();
}

void SubjectVault::IndexEntries(const PolicySet& policies, const std::string& name,
                                const FieldValue& value, std::vector<IndexEntry>* out) const {
  const FieldSpec* spec = SpecOf(policies, name);
  if (spec == nullptr) return;
  if (spec->blind_index_bytes > 0) {
    const auto keys = d_.lookup.Current();
    out->push_back(
        {name, keys->index.Digest(name, IndexText(value), spec->blind_index_bytes), keys->master});
  }
  const std::string kind = SuppressionKind(spec->type);
  if (!kind.empty()) {
    out->push_back({"~" + name, SuppressionDigest(d_.suppression, kind, IndexText(value))});
  }
}

Status SubjectVault::CheckNewInto(const PolicySet& policies, const NewSubject& in,
                                  Prepared* prepared) const {
  Status invalid(Code::kUnprocessable, "the subject is not valid; nothing was stored");
  if (in.kind != "person" && in.kind != "organization") {
    invalid.AddError("kind", "must be \"person\" or \"organization\"");
  }
  if (!ValidSource(in.source)) {
    invalid.AddError("source", "must be 1 to 64 letters, digits, '_', '-' or '.'");
  }
  std::optional<FieldValue> external_id;
  if (in.external_id) external_id = FieldValue::String(*in.external_id);
  if (invalid.errors().empty()) {
    Status s = Validate(policies, in.kind, in.fields, external_id, true, prepared);
    for (const auto& e : s.errors()) invalid.AddError(e.field, e.message);
  }
  return invalid.errors().empty() ? Status::Ok() : invalid;
}

Status SubjectVault::CheckNew(const NewSubject& in, FieldMap* normalised) const {
  Prepared prepared;
  Status s = CheckNewInto(*d_.policies.Current(), in, &prepared);
  if (s.ok() && normalised != nullptr) *normalised = std::move(prepared.values);
  return s;
}

Result<std::unique_ptr<SubjectVault::PendingCreate>> SubjectVault::PrepareCreate(
    const Caller& caller, const NewSubject& in) const {
  auto p = std::make_unique<PendingCreate>();
  p->policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*p->policies, caller, "subjects.write"));
  Status invalid = CheckNewInto(*p->policies, in, &p->prepared);
  if (!invalid.ok()) {
    Audit(nullptr, caller, {"subject.create", "", "", "invalid", {}, 0});
    return invalid;
  }
  const auto ring = d_.keys.Current();
  SubjectRow& row = p->row;
  row.id = subject_ids_.Next();
  row.kind = in.kind;
  row.status = "active";
  row.source = in.source;
  row.created_at = row.updated_at = row.last_interaction_at = d_.clock.Now();
  row.root_key_version = ring->current_version();
  row.dek_version = 1;
  p->dek.Randomize();
  GARDE_ASSIGN_OR_RETURN(auto wrapped, WrapDataKey(*ring, row.root_key_version, row.id, p->dek));
  row.wrapped_dek = std::move(wrapped);
  for (const auto& [name, value] : p->prepared.values) {
    std::string plain = EncodeFieldValue(value);
    p->sealed.push_back({name, SealField(p->dek, {row.id, name, row.dek_version}, plain)});
    sodium_memzero(plain.data(), plain.size());
    IndexEntries(*p->policies, name, value, &p->indexes);
  }
  MatchKeyEntries(*p->policies, p->prepared.values, &p->indexes);
  p->import_mark = in.import_mark;
  p->has_external_id = in.external_id.has_value();
  return p;
}

Status SubjectVault::WriteCreates(WriteTx& tx, const Caller& caller,
                                  std::vector<std::unique_ptr<PendingCreate>>& pending,
                                  std::vector<Status>& outcome) const {
  // Rerunnable: each run sets every outcome again and writes only through tx.
  outcome.assign(pending.size(), Status::Ok());
  for (size_t i = 0; i < pending.size(); ++i) {
    PendingCreate& p = *pending[i];
    const SubjectRow& row = p.row;
    // Checked first, before anything of this one is written: a conflict fails it alone.
    outcome[i] = CheckUnique(tx, *p.policies, row.id, p.prepared.values);
    if (outcome[i].code() == Code::kConflict) continue;
    GARDE_RETURN_IF_ERROR(outcome[i]);
    GARDE_RETURN_IF_ERROR(tx.InsertSubject(row));
    if (p.import_mark) {
      GARDE_RETURN_IF_ERROR(
          tx.InsertImportRow(p.import_mark->import_id, p.import_mark->row, row.id));
    }
    GARDE_RETURN_IF_ERROR(tx.PutNewSubjectRows(row.id, p.sealed, p.indexes));
    GARDE_RETURN_IF_ERROR(d_.journal.Record(
        &tx, caller, {"subject.create", row.id, "", "ok", Names(p.prepared.values), 0}));
  }
  return Status::Ok();
}

std::vector<Result<SubjectView>> SubjectVault::CreatedViews(
    const Caller& caller, std::vector<std::unique_ptr<PendingCreate>>& pending,
    const std::vector<Status>& outcome, const Status& written) const {
  std::vector<Result<SubjectView>> results;
  results.reserve(pending.size());
  for (size_t i = 0; i < pending.size(); ++i) {
    PendingCreate& p = *pending[i];
    const Status s = written.ok() && i < outcome.size() ? outcome[i] : written;
    if (!s.ok()) {
      Audit(nullptr, caller,
            {"subject.create", "", "", s.code() == Code::kConflict ? "conflict" : "error", {}, 0});
      results.emplace_back(s);
      continue;
    }
    const SubjectRow& row = p.row;
    SubjectView view{
        row.id,
        row.kind,
        row.status,
        row.source,
        row.created_at,
        row.updated_at,
        row.last_interaction_at,
        p.has_external_id ? p.prepared.values[kExternalIdField].text : std::optional<std::string>(),
        {}};
    p.prepared.values.erase(kExternalIdField);
    view.fields = std::move(p.prepared.values);
    results.emplace_back(std::move(view));
  }
  return results;
}

std::vector<Result<SubjectView>> SubjectVault::CommitCreates(
    const Caller& caller, std::vector<std::unique_ptr<PendingCreate>>& pending) {
  std::vector<Status> outcome;
  const Status written = d_.store.WriteRerunnable(
      [&](WriteTx& tx) -> Status { return WriteCreates(tx, caller, pending, outcome); });
  return CreatedViews(caller, pending, outcome, written);
}

Result<SubjectView> SubjectVault::Create(const Caller& caller, const NewSubject& in) {
  return Await<Result<SubjectView>>([&](std::function<void(Result<SubjectView>)> done) {
    CreateThen(caller, in, std::move(done));
  });
}

void SubjectVault::CreateThen(const Caller& caller, const NewSubject& in,
                              std::function<void(Result<SubjectView>)> done) {
  auto prepared = PrepareCreate(caller, in);
  if (!prepared.ok()) {
    done(prepared.status());
    return;
  }
  // What the write needs, kept until it has committed.
  struct Write {
    Caller caller;
    std::vector<std::unique_ptr<PendingCreate>> one;
    std::vector<Status> outcome;
  };
  auto w = std::make_shared<Write>();
  w->caller = caller;
  w->one.push_back(std::move(prepared).value());
  d_.store.WriteThen(
      [this, w](WriteTx& tx) -> Status { return WriteCreates(tx, w->caller, w->one, w->outcome); },
      Durability::kImmediate, /*rerunnable=*/true,
      [this, w, done = std::move(done)](Status written) {
        done(std::move(CreatedViews(w->caller, w->one, w->outcome, written).front()));
      });
}

Result<SubjectView> SubjectVault::Rectify(const Caller& caller, const std::string& id,
                                          const SubjectChanges& changes) {
  return Await<Result<SubjectView>>([&](std::function<void(Result<SubjectView>)> done) {
    RectifyThen(caller, id, changes, std::move(done));
  });
}

void SubjectVault::RectifyThen(const Caller& caller, const std::string& id,
                               const SubjectChanges& changes,
                               std::function<void(Result<SubjectView>)> done) {
  // What the write needs, kept until it has committed.
  struct Write {
    std::shared_ptr<const PolicySet> policies;
    Caller caller;
    std::string id;
    SubjectChanges changes;
    std::optional<SubjectView> result;
  };
  auto w = std::make_shared<Write>(Write{d_.policies.Current(), caller, id, changes, {}});
  Status allowed = AccessGate::Require(*w->policies, caller, "subjects.write");
  if (!allowed.ok()) {
    done(std::move(allowed));
    return;
  }
  d_.store.WriteThen(
      [this, w](WriteTx& tx) -> Status {
        w->result.reset();  // a run again starts afresh
        GARDE_ASSIGN_OR_RETURN(auto view,
                               RectifyIn(tx, *w->policies, w->caller, w->id, w->changes));
        w->result = std::move(view);
        return Status::Ok();
      },
      Durability::kImmediate, /*rerunnable=*/true,
      [this, w, done = std::move(done)](Status written) {
        if (!written.ok()) {
          const char* outcome = written.code() == Code::kNotFound        ? "not_found"
                                : written.code() == Code::kUnprocessable ? "invalid"
                                : written.code() == Code::kConflict      ? "conflict"
                                                                         : "error";
          Audit(nullptr, w->caller, {"subject.rectify", w->id, "", outcome, {}, 0});
          done(std::move(written));
          return;
        }
        done(std::move(*w->result));
      });
}

Status SubjectVault::CheckChanges(const std::string& kind, const SubjectChanges& changes) const {
  auto policies = d_.policies.Current();
  Prepared prepared;
  return Validate(*policies, kind, changes.fields, changes.external_id, false, &prepared);
}

Result<SubjectView> SubjectVault::RectifyIn(WriteTx& tx, const PolicySet& policies,
                                            const Caller& caller, const std::string& id,
                                            const SubjectChanges& changes) {
  GARDE_ASSIGN_OR_RETURN(auto found, tx.GetSubject(id));
  if (!found) return NotFound("no such subject");
  SubjectRow row = *found;
  GARDE_RETURN_IF_ERROR(RefuseGone(row));
  Prepared prepared;
  GARDE_RETURN_IF_ERROR(
      Validate(policies, row.kind, changes.fields, changes.external_id, false, &prepared));
  GARDE_RETURN_IF_ERROR(CheckUnique(tx, policies, row.id, prepared.values));
  ScopedKey dek;
  GARDE_RETURN_IF_ERROR(UnwrapFor(row, &dek));
  std::vector<std::string> touched;
  for (const auto& [name, value] : prepared.values) {
    std::string plain = EncodeFieldValue(value);
    Bytes box = SealField(dek, {row.id, name, row.dek_version}, plain);
    sodium_memzero(plain.data(), plain.size());
    GARDE_RETURN_IF_ERROR(tx.PutField(row.id, {name, std::move(box)}));
    GARDE_RETURN_IF_ERROR(PutIndexes(tx, policies, row.id, name, value));
    touched.push_back(name);
  }
  for (const auto& name : prepared.removed) {
    GARDE_RETURN_IF_ERROR(tx.DeleteField(row.id, name));
    GARDE_RETURN_IF_ERROR(tx.DeleteIndex(row.id, name));
    GARDE_RETURN_IF_ERROR(tx.DeleteIndex(row.id, "~" + name));
    touched.push_back(name);
  }
  const auto matched = policies.matching().fields();
  if (std::any_of(touched.begin(), touched.end(), [&](const std::string& name) {
        return std::find(matched.begin(), matched.end(), name) != matched.end();
      })) {
    GARDE_RETURN_IF_ERROR(RefreshMatchKeys(tx, policies, row));
  }
  row.updated_at = d_.clock.Now();
  GARDE_RETURN_IF_ERROR(tx.UpdateSubject(row));
  GARDE_RETURN_IF_ERROR(
      d_.journal.Record(&tx, caller, {"subject.rectify", row.id, "", "ok", touched, 0}));
  // Art. 19: recipients are told which fields changed; they read the values with their own
  // activity's key, where minimisation applies.
  JsonWriter event;
  event.BeginObject().String("subject", row.id).BeginArray("fields");
  for (const auto& name : touched) event.String(name);
  event.EndArray().String("at", FormatRfc3339(row.updated_at)).EndObject();
  GARDE_RETURN_IF_ERROR(EmitEvent(tx, "subject.rectified", event.Take(), row.updated_at));
  SubjectView view{row.id,
                   row.kind,
                   row.status,
                   row.source,
                   row.created_at,
                   row.updated_at,
                   row.last_interaction_at,
                   std::nullopt,
                   {}};
  auto ext = prepared.values.find(kExternalIdField);
  if (ext != prepared.values.end()) {
    view.external_id = ext->second.text;
    prepared.values.erase(ext);
  }
  view.fields = std::move(prepared.values);
  for (const auto& name : prepared.removed) {
    if (name != kExternalIdField) view.fields[name] = FieldValue::Null();
  }
  return view;
}

Result<SubjectView> SubjectVault::OpenAll(ReadTx& tx, const SubjectRow& row) const {
  std::set<std::string> all;
  GARDE_ASSIGN_OR_RETURN(auto sealed, tx.GetFields(row.id));
  for (const auto& f : sealed) all.insert(f.field);
  return DecryptSealed(row, Refs(sealed), all);
}

FieldMap ValuesWithExternalId(const SubjectView& subject) {
  FieldMap out = subject.fields;
  if (subject.external_id) out[kExternalIdField] = FieldValue::String(*subject.external_id);
  return out;
}

SubjectChanges ChangesOf(FieldMap values) {
  SubjectChanges c;
  auto ext = values.find(kExternalIdField);
  if (ext != values.end()) {
    c.external_id = std::move(ext->second);
    values.erase(ext);
  }
  c.fields = std::move(values);
  return c;
}

Status RefuseGone(const SubjectRow& row) {
  if (row.status == "erased") return Conflict("subject " + row.id + " has been erased");
  if (row.status == "merged") {
    return Conflict("subject " + row.id + " has been merged into another (see GET /v1/subjects/" +
                    row.id + ")");
  }
  return Status::Ok();
}

Status SubjectVault::RestoreIndexesIn(WriteTx& tx, const PolicySet& policies,
                                      const SubjectRow& row) const {
  GARDE_ASSIGN_OR_RETURN(auto view, OpenAll(tx, row));
  const FieldMap values = ValuesWithExternalId(view);
  GARDE_RETURN_IF_ERROR(CheckUnique(tx, policies, row.id, values));
  GARDE_RETURN_IF_ERROR(tx.DeleteIndexesOf(row.id));
  for (const auto& [name, value] : values) {
    GARDE_RETURN_IF_ERROR(PutIndexes(tx, policies, row.id, name, value));
  }
  return PutMatchKeys(tx, policies, row.id, values, /*fresh=*/true);
}

Result<Bytes> SubjectVault::SealFor(const SubjectRow& row, const std::string& label,
                                    std::string_view plaintext) const {
  ScopedKey dek;
  GARDE_RETURN_IF_ERROR(UnwrapFor(row, &dek));
  return SealField(dek, {row.id, "~" + label, row.dek_version}, plaintext);
}

Result<std::string> SubjectVault::OpenFor(const SubjectRow& row, const std::string& label,
                                          const Bytes& box) const {
  ScopedKey dek;
  GARDE_RETURN_IF_ERROR(UnwrapFor(row, &dek));
  auto plain = OpenField(dek, {row.id, "~" + label, row.dek_version}, box);
  if (!plain.ok()) return Damaged("sealed " + label + " of subject " + row.id + " is damaged");
  return plain;
}

Status SubjectVault::EraseIn(WriteTx& tx, const SubjectRow& row,
                             const std::set<std::string>& keep) const {
  GARDE_ASSIGN_OR_RETURN(auto sealed, tx.GetFields(row.id));
  for (const auto& f : sealed) {
    if (keep.count(f.field) == 0) GARDE_RETURN_IF_ERROR(tx.DeleteField(row.id, f.field));
  }
  GARDE_RETURN_IF_ERROR(tx.DeleteIndexesOf(row.id));
  GARDE_RETURN_IF_ERROR(tx.DeleteInteractionsOf(row.id));  // when the customer bought: gone too
  GARDE_RETURN_IF_ERROR(tx.DeleteLinksOf(row.id));         // whose contact the person was: gone too
  if (keep.empty()) GARDE_RETURN_IF_ERROR(tx.ShredDataKey(row.id));
  return Status::Ok();
}

namespace {

// An active subject of `kind`, inside a write transaction.
Result<SubjectRow> ActiveOfKind(WriteTx& tx, const std::string& id, const std::string& kind) {
  GARDE_ASSIGN_OR_RETURN(auto found, tx.GetSubject(id));
  if (!found) return NotFound("no subject " + id);
  const SubjectRow& row = *found;
  GARDE_RETURN_IF_ERROR(RefuseGone(row));
  if (row.status == "restricted") {
    return Conflict("subject " + id + " is restricted (Art. 18): nothing new is recorded");
  }
  if (row.kind != kind) {
    return Status(Code::kUnprocessable, "subject " + id + " is not a " + kind)
        .AddError(kind == "person" ? "person" : "organisation", "must be a " + kind);
  }
  return row;
}

bool IsContactRole(const std::string& role) {
  if (role.empty() || role.size() > 40) return false;
  return std::all_of(role.begin(), role.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

}  // namespace

Status SubjectVault::LinkContact(const Caller& caller, const std::string& organisation_id,
                                 const std::string& person_id, const std::string& role) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "subjects.write"));
  if (!IsContactRole(role)) {
    return Status(Code::kUnprocessable, "the role is not valid")
        .AddError("role", "1 to 40 of a-z, '_' and '-', e.g. buyer or accounting");
  }
  return d_.store.Write([&](WriteTx& tx) -> Status {
    auto org = ActiveOfKind(tx, organisation_id, "organization");
    if (!org.ok()) return org.status();
    auto person = ActiveOfKind(tx, person_id, "person");
    if (!person.ok()) return person.status();
    GARDE_RETURN_IF_ERROR(tx.PutLink({organisation_id, person_id, role, d_.clock.Now()}));
    return d_.journal.Record(&tx, caller, {"contact.link", person_id, "", "ok", {"role"}, 0});
  });
}

Status SubjectVault::UnlinkContact(const Caller& caller, const std::string& organisation_id,
                                   const std::string& person_id) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "subjects.write"));
  bool deleted = false;
  GARDE_RETURN_IF_ERROR(d_.store.Write([&](WriteTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto r, tx.DeleteLink(organisation_id, person_id));
    deleted = r;
    if (!deleted) return Status::Ok();
    return d_.journal.Record(&tx, caller, {"contact.unlink", person_id, "", "ok", {}, 0});
  }));
  return deleted ? Status::Ok()
                 : NotFound("subject " + person_id + " is not a contact of " + organisation_id);
}

Result<std::vector<ContactLinkRow>> SubjectVault::Contacts(const Caller& caller,
                                                           const std::string& id) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "subjects.write"));
  std::vector<ContactLinkRow> links;
  bool known = false;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
    known = row.has_value();
    GARDE_ASSIGN_OR_RETURN(auto r, tx.LinksOf(id));
    links = std::move(r);
    return Status::Ok();
  }));
  if (!known) return NotFound("no subject " + id);
  Audit(nullptr, caller, {"contact.list", id, "", "ok", {}, static_cast<int64_t>(links.size())});
  return links;
}

const std::set<std::string>& InteractionKinds() {
  static const std::set<std::string> kKinds = {"purchase", "contact", "visit", "support", "other"};
  return kKinds;
}

namespace {

constexpr int64_t kSpendWindow = 30 * 86400;
constexpr const char* kAmountLabel = kInteractionAmountLabel;

bool InSchema(const PolicySet& policies, const char* field, FieldType type) {
  const FieldSpec* f = policies.schema().Find(field);
  return f != nullptr && f->type == type;
}

}  // namespace

Result<bool> SubjectVault::RefreshSpendIn(WriteTx& tx, const PolicySet& policies,
                                          const Caller& caller, const SubjectRow& row,
                                          int64_t now) {
  if (!InSchema(policies, "spend_30d", FieldType::kNumber) || row.wrapped_dek.empty()) {
    return false;
  }
  GARDE_ASSIGN_OR_RETURN(auto recent, tx.InteractionsOf(row.id, now - kSpendWindow));
  double spend = 0;
  for (const auto& i : recent) {
    if (i.kind != "purchase" || i.sealed_amount.empty() || i.at > now) continue;
    GARDE_ASSIGN_OR_RETURN(auto text, OpenFor(row, kAmountLabel, i.sealed_amount));
    spend += std::strtod(text.c_str(), nullptr);
  }
  spend = std::round(spend * 100) / 100;
  GARDE_ASSIGN_OR_RETURN(auto current, Decrypt(tx, row, {"spend_30d"}));
  auto it = current.fields.find("spend_30d");
  if (it != current.fields.end() && it->second.type == FieldValue::Type::kNumber &&
      it->second.number == spend) {
    return false;
  }
  SubjectChanges changes;
  changes.fields["spend_30d"] = FieldValue::Number(spend);
  auto done = RectifyIn(tx, policies, caller, row.id, changes);
  if (!done.ok()) return done.status();
  return true;
}

Result<SubjectView> SubjectVault::RecordInteractions(const Caller& caller, const std::string& id,
                                                     const std::vector<Interaction>& list) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "subjects.write"));
  const int64_t now = d_.clock.Now();
  std::optional<SubjectView> result;
  Status written = d_.store.Write([&](WriteTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto found, tx.GetSubject(id));
    if (!found) return NotFound("no such subject");
    SubjectRow row = *found;
    GARDE_RETURN_IF_ERROR(RefuseGone(row));
    if (row.status == "restricted") {
      return Conflict("subject " + id + " is restricted (Art. 18): nothing new is recorded");
    }
    double added = 0;
    int64_t last_purchase = 0;
    bool purchases = false;
    for (const auto& i : list) {
      InteractionRow r{row.id, i.kind, i.at, {}};
      if (i.amount) {
        char text[64];
        std::snprintf(text, sizeof text, "%.2f", *i.amount);
        GARDE_ASSIGN_OR_RETURN(auto sealed, SealFor(row, kAmountLabel, text));
        r.sealed_amount = std::move(sealed);
        added += *i.amount;
      }
      GARDE_RETURN_IF_ERROR(tx.InsertInteraction(r).status());
      row.last_interaction_at = std::max(row.last_interaction_at, std::min(i.at, now));
      if (i.kind == "purchase") {
        purchases = true;
        last_purchase = std::max(last_purchase, i.at);
      }
    }
    row.updated_at = now;
    GARDE_RETURN_IF_ERROR(tx.UpdateSubject(row));
    std::vector<std::string> kinds;
    for (const auto& i : list) kinds.push_back(i.kind);
    GARDE_RETURN_IF_ERROR(d_.journal.Record(
        &tx, caller,
        {"subject.interaction", row.id, "", "ok", kinds, static_cast<int64_t>(list.size())}));
    if (purchases) {
      // The aggregates the schema declares: a running total, the last purchase date, and the
      // spending of the last 30 days recomputed from the purchases themselves.
      SubjectChanges changes;
      GARDE_ASSIGN_OR_RETURN(auto current, Decrypt(tx, row, {"total_spend", "last_purchase"}));
      if (InSchema(*policies, "total_spend", FieldType::kNumber)) {
        auto it = current.fields.find("total_spend");
        const double before =
            it != current.fields.end() && it->second.type == FieldValue::Type::kNumber
                ? it->second.number
                : 0;
        changes.fields["total_spend"] =
            FieldValue::Number(std::round((before + added) * 100) / 100);
      }
      if (InSchema(*policies, "last_purchase", FieldType::kDate)) {
        const std::string date = FormatRfc3339(last_purchase).substr(0, 10);
        auto it = current.fields.find("last_purchase");
        if (it == current.fields.end() || it->second.text < date) {
          changes.fields["last_purchase"] = FieldValue::String(date);
        }
      }
      for (auto& [_, v] : current.fields) sodium_memzero(v.text.data(), v.text.size());
      if (!changes.fields.empty()) {
        auto done = RectifyIn(tx, *policies, caller, row.id, changes);
        if (!done.ok()) return done.status();
      }
      GARDE_ASSIGN_OR_RETURN(auto fresh, tx.GetSubject(row.id));
      auto refreshed = RefreshSpendIn(tx, *policies, caller, *fresh, now);
      if (!refreshed.ok()) return refreshed.status();
    }
    GARDE_ASSIGN_OR_RETURN(auto fresh, tx.GetSubject(row.id));
    SubjectView view{row.id,
                     row.kind,
                     row.status,
                     row.source,
                     row.created_at,
                     fresh->updated_at,
                     fresh->last_interaction_at,
                     std::nullopt,
                     {}};
    result = std::move(view);
    return Status::Ok();
  });
  if (!written.ok()) return written;
  return std::move(*result);
}

Result<SubjectView> SubjectVault::Decrypt(ReadTx& tx, const SubjectRow& row,
                                          const std::set<std::string>& allowed) const {
  GARDE_ASSIGN_OR_RETURN(auto sealed, tx.GetFields(row.id));
  return DecryptSealed(row, Refs(sealed), allowed);
}

Result<SubjectView> SubjectVault::DecryptSealed(const SubjectRow& row,
                                                const std::vector<SealedRef>& sealed,
                                                const std::set<std::string>& allowed) const {
  SubjectView view{row.id,
                   row.kind,
                   row.status,
                   row.source,
                   row.created_at,
                   row.updated_at,
                   row.last_interaction_at,
                   std::nullopt,
                   {}};
  std::set<std::string> wanted = allowed;
  wanted.insert(kExternalIdField);
  GARDE_ASSIGN_OR_RETURN(auto fields, OpenRefs(row, sealed, wanted));
  view.fields = std::move(fields);
  auto external = view.fields.find(kExternalIdField);
  if (external != view.fields.end()) {
    view.external_id = std::move(external->second.text);
    view.fields.erase(external);
  }
  return view;
}

Result<FieldMap> SubjectVault::OpenFields(const SubjectRow& row,
                                          const std::vector<SealedField>& sealed,
                                          const std::set<std::string>& fields) const {
  return OpenRefs(row, Refs(sealed), fields);
}

Result<FieldMap> SubjectVault::OwnFields(const std::string& id,
                                         const std::set<std::string>& fields) {
  FieldMap out;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
    if (!row || row->status == "erased") return Status::Ok();
    GARDE_ASSIGN_OR_RETURN(auto sealed, tx.GetFields(id));
    GARDE_ASSIGN_OR_RETURN(auto open, OpenFields(*row, sealed, fields));
    out = std::move(open);
    return Status::Ok();
  }));
  return out;
}

std::vector<SubjectVault::SealedRef> SubjectVault::Refs(const std::vector<SealedField>& sealed) {
  std::vector<SealedRef> out;
  out.reserve(sealed.size());
  for (const auto& f : sealed) out.push_back({f.field, f.box});
  return out;
}

std::string SubjectVault::SealedRecord::Pack(const std::vector<SealedField>& sealed) {
  std::string out;
  for (const auto& f : sealed) {
    const auto name = static_cast<uint8_t>(std::min<size_t>(f.field.size(), 255));
    const auto box = static_cast<uint32_t>(f.box.size());
    out.push_back(static_cast<char>(name));
    out.append(f.field, 0, name);
    out.append(reinterpret_cast<const char*>(&box), sizeof box);
    out.append(reinterpret_cast<const char*>(f.box.data()), f.box.size());
  }
  return out;
}

std::vector<SubjectVault::SealedRef> SubjectVault::SealedRecord::Unpack() const {
  std::vector<SealedRef> out;
  size_t at = 0;
  while (at < packed.size()) {
    const size_t name = static_cast<uint8_t>(packed[at++]);
    const std::string_view field(packed.data() + at, name);
    at += name;
    uint32_t box = 0;
    std::memcpy(&box, packed.data() + at, sizeof box);
    at += sizeof box;
    out.push_back({field, {reinterpret_cast<const uint8_t*>(packed.data() + at), box}});
    at += box;
  }
  return out;
}

std::string SubjectVault::SealedRecord::Encode() const {
  ByteWriter w;
  w.VStr(row.kind).VStr(row.status).VStr(row.source);
  w.SVar(row.created_at).SVar(row.updated_at).SVar(row.last_interaction_at);
  w.Var(row.root_key_version).Var(row.dek_version);
  w.VStr({reinterpret_cast<const char*>(row.wrapped_dek.data()), row.wrapped_dek.size()});
  w.data().append(packed);
  return std::move(w.data());
}

bool SubjectVault::SealedRecord::Decode(const std::string& id, std::string_view bytes) {
  ByteReader r(bytes);
  row.id = id;
  row.kind = r.VStr();
  row.status = r.VStr();
  row.source = r.VStr();
  row.created_at = r.SVar();
  row.updated_at = r.SVar();
  row.last_interaction_at = r.SVar();
  const uint64_t root = r.Var(), dek = r.Var();
  const std::string_view wrapped = r.VStr();
  if (r.failed() || root > UINT32_MAX || dek > UINT32_MAX) return false;
  row.root_key_version = static_cast<uint32_t>(root);
  row.dek_version = static_cast<uint32_t>(dek);
  row.wrapped_dek.assign(wrapped.begin(), wrapped.end());
  packed.assign(bytes.substr(r.at()));
  return true;
}

Result<FieldMap> SubjectVault::OpenRefs(const SubjectRow& row, const std::vector<SealedRef>& sealed,
                                        const std::set<std::string>& fields) const {
  FieldMap out;
  ScopedKey dek;
  bool unwrapped = false;
  for (const auto& f : sealed) {
    const std::string name(f.field);
    if (fields.count(name) == 0) continue;  // data minimisation
    if (!unwrapped) {
      GARDE_RETURN_IF_ERROR(UnwrapFor(row, &dek));
      unwrapped = true;
    }
    auto plain = OpenField(dek, {row.id, f.field, row.dek_version}, f.box);
    if (!plain.ok()) {
      return Damaged("the record of subject " + row.id + " is damaged (field " + name +
                     " fails authentication)")
          .AddError("fields." + name,
                    "fails authentication; the stored value was altered "
                    "or belongs to another record");
    }
    auto value = DecodeFieldValue(plain.value());
    sodium_memzero(plain.value().data(), plain.value().size());
    if (!value) return Damaged("the record of subject " + row.id + " is damaged");
    out.emplace(name, std::move(*value));
  }
  return out;
}

// Art. 18: a restricted subject's data is only stored, or used where the law obliges.
bool SubjectVault::MayProcess(const SubjectRow& subject, const Activity& activity) {
  // Art. 18(2): while restricted, the data is only stored; it is processed only for legal
  // claims (activities flagged legal_claims), never merely because an obligation exists.
  return subject.status != "restricted" || activity.legal_claims;
}

Status SubjectVault::ConsentAllows(const PolicySet& policies, const std::string& id,
                                   const Activity& activity, ReadTx* tx) const {
  if (consent_ == nullptr || !ActivityNeedsConsent(policies, activity)) return Status::Ok();
  GARDE_ASSIGN_OR_RETURN(auto decision, consent_->PermitsActivity(policies, id, activity, tx));
  if (decision.allowed) return Status::Ok();
  // SPEC §3.4: a consent-based activity reads only subjects whose consent allows it;
  // Art. 21(3): an objection to direct marketing is absolute.
  return PermissionDenied("activity '" + activity.id +
                          "' rests on the subject's consent or "
                          "choice, which does not allow it (" +
                          decision.reason + ")");
}

Result<SubjectView> SubjectVault::Read(const Caller& caller, const std::string& id,
                                       const std::string& activity_id) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "subjects.read"));
  auto activity = AccessGate::BindPurpose(*policies, caller, activity_id);
  if (!activity.ok()) return activity.status();  // refusals are audited at the edge
  std::optional<SubjectView> result;
  const char* refusal = "restricted";  // the outcome audited for a 403
  // The record kept is used when nothing has been committed since it was read; should it
  // not open (a key re-wrapped since, and its old root version retired), it is read again.
  Status s = Status::Ok();
  // Decoded here, its strings' capacity reused from one read to the next: ciphertext only.
  thread_local SealedRecord r;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool kept = false;
    s = Record(id, attempt == 0, &kept, &r);
    if (!s.ok()) break;
    if (r.row.status == "merged") {
      s = Status(Code::kMoved, "subject " + id + " has been merged into another record");
      break;
    }
    if (!MayProcess(r.row, *activity.value())) {
      s = PermissionDenied(
          "processing of this subject is restricted (GDPR Art. 18): only "
          "activities flagged for legal claims may read it");
      break;
    }
    s = ConsentAllows(*policies, id, *activity.value());
    if (!s.ok()) {
      refusal = "no_consent";
      break;
    }
    auto view = DecryptSealed(r.row, r.Unpack(), activity.value()->fields);
    if (view.ok()) {
      result = std::move(view).value();
      s = Status::Ok();
      break;
    }
    s = view.status();
    if (!kept) break;  // read just now: the answer stands
  }
  if (!s.ok()) {
    Audit(nullptr, caller,
          {"subject.read",
           id,
           activity_id,
           s.code() == Code::kNotFound           ? "not_found"
           : s.code() == Code::kDamaged          ? "damaged"
           : s.code() == Code::kPermissionDenied ? refusal
                                                 : "error",
           {},
           0});
    return s;
  }
  // No personal data leaves without its audit entry: if the entry cannot be written, the
  // read fails.
  GARDE_RETURN_IF_ERROR(d_.journal.Record(
      nullptr, caller, {"subject.read", id, activity_id, "ok", Names(result->fields), 1}));
  return std::move(*result);
}

Result<size_t> SubjectVault::WarmUp() {
  return records_.Fill(
      d_.store,
      [](ReadTx& tx,
         const std::vector<SubjectRow>& page) -> Result<std::vector<std::optional<std::string>>> {
        // The page's boxes in one pass over the fields table, as Record reads one subject's.
        std::vector<std::vector<SealedField>> sealed(page.size());
        size_t k = 0;
        GARDE_RETURN_IF_ERROR(tx.ScanFields(
            page.front().id, page.back().id,
            [&](std::string_view subject, std::string_view field, const uint8_t* box, size_t n) {
              const size_t at = SeekSubjectRow(page, &k, subject);
              if (at < page.size()) sealed[at].push_back({std::string(field), Bytes(box, box + n)});
            }));
        std::vector<std::optional<std::string>> out;
        out.reserve(page.size());
        for (size_t i = 0; i < page.size(); ++i) {
          out.emplace_back(SealedRecord{page[i], SealedRecord::Pack(sealed[i])}.Encode());
        }
        return out;
      });
}

Status SubjectVault::Record(const std::string& id, bool use_kept, bool* kept, SealedRecord* out) {
  const uint64_t epoch = d_.store.ChangeEpoch();
  auto decode = [&](std::string_view bytes) { return out->Decode(id, bytes); };
  *kept = use_kept && records_.CurrentAt(epoch) && records_.Find(id, decode);
  if (*kept) return Status::Ok();
  // The connection is held only to copy the row and its boxes out: opening them happens
  // after, so that other readers do not queue behind the decryption.
  return d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto position, records_.Sync(tx, epoch));
    // Synced: a kept record the changes since did not concern is current too.
    *kept = use_kept && records_.Find(id, decode);
    if (*kept) return Status::Ok();
    GARDE_ASSIGN_OR_RETURN(auto found, tx.GetSubject(id));
    if (!found) return NotFound("no such subject");
    GARDE_ASSIGN_OR_RETURN(auto boxes, tx.GetFields(id));
    out->row = std::move(*found);
    out->packed = SealedRecord::Pack(boxes);
    records_.Keep(position, id, out->Encode());
    return Status::Ok();
  });
}

Status SubjectVault::RekeyIn(WriteTx& tx, const SubjectRow& row) const {
  ScopedKey old_dek, new_dek;
  GARDE_RETURN_IF_ERROR(UnwrapFor(row, &old_dek));
  new_dek.Randomize();
  const auto ring = d_.keys.Current();
  const uint32_t root = ring->current_version();
  const uint32_t version = row.dek_version + 1;
  GARDE_ASSIGN_OR_RETURN(auto wrapped, WrapDataKey(*ring, root, row.id, new_dek));
  // `bound`: what the box is sealed for (a field's name, or "~" and a SealFor label).
  auto reseal = [&](const std::string& bound, const Bytes& box) -> Result<Bytes> {
    if (box.empty()) return Bytes{};
    auto plain = OpenField(old_dek, {row.id, bound, row.dek_version}, box);
    if (!plain.ok()) return Damaged("a sealed value of subject " + row.id + " is damaged");
    Bytes sealed = SealField(new_dek, {row.id, bound, version}, plain.value());
    sodium_memzero(plain.value().data(), plain.value().size());
    return sealed;
  };
  GARDE_ASSIGN_OR_RETURN(auto fields, tx.GetFields(row.id));
  for (const SealedField& f : fields) {
    GARDE_ASSIGN_OR_RETURN(auto box, reseal(f.field, f.box));
    GARDE_RETURN_IF_ERROR(tx.PutField(row.id, {f.field, std::move(box)}));
  }
  GARDE_ASSIGN_OR_RETURN(auto interactions, tx.InteractionsOf(row.id, 0));
  for (const InteractionRow& i : interactions) {
    if (i.sealed_amount.empty()) continue;
    GARDE_ASSIGN_OR_RETURN(auto box,
                           reseal(std::string("~") + kInteractionAmountLabel, i.sealed_amount));
    GARDE_RETURN_IF_ERROR(tx.ResealInteraction(i.seq, box));
  }
  RequestQuery q;
  q.subject = row.id;
  q.limit = 100000;  // a subject's requests (as a merge moves them)
  GARDE_ASSIGN_OR_RETURN(auto requests, tx.QueryRequests(q));
  for (const RequestRow& listed : requests) {
    auto full = tx.GetRequest(listed.id);  // with its package
    if (!full.ok()) return full.status();
    if (!full.value()) continue;
    const RequestRow& r = *full.value();
    GARDE_ASSIGN_OR_RETURN(auto notes, reseal("~" + RequestNotesLabel(r.id), r.sealed));
    GARDE_ASSIGN_OR_RETURN(auto package, reseal("~" + RequestPackageLabel(r.id), r.package));
    GARDE_RETURN_IF_ERROR(tx.ReassignRequest(r.id, row.id, notes, package));
  }
  GARDE_ASSIGN_OR_RETURN(auto merges, tx.MergesInto(row.id));
  for (MergeRow m : merges) {
    if (m.sealed.empty()) continue;
    GARDE_ASSIGN_OR_RETURN(auto values, reseal("~" + MergeValuesLabel(m.id), m.sealed));
    m.sealed = std::move(values);
    GARDE_RETURN_IF_ERROR(tx.PutMerge(m));
  }
  GARDE_ASSIGN_OR_RETURN(auto replaced,
                         tx.ReplaceDataKey(row.id, row.dek_version, root, version, wrapped));
  if (!replaced) return Conflict("subject " + row.id + " was re-keyed meanwhile");
  return Status::Ok();
}

Result<SubjectVault::RekeyOutcome> SubjectVault::Rekey(const Caller& caller,
                                                       const std::vector<std::string>& ids) {
  // A few subjects per transaction: one flush for them, and other writers wait little.
  constexpr size_t kPerTransaction = 32;
  RekeyOutcome total;
  for (size_t start = 0; start < ids.size(); start += kPerTransaction) {
    const size_t end = std::min(ids.size(), start + kPerTransaction);
    RekeyOutcome part;
    GARDE_RETURN_IF_ERROR(d_.store.Write([&](WriteTx& tx) -> Status {
      part = {};
      for (size_t i = start; i < end; ++i) {
        GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(ids[i]));
        if (!row) {
          ++part.unknown;
        } else if (row->wrapped_dek.empty()) {
          ++part.erased;  // crypto-shredded: nothing is left under any key
        } else {
          GARDE_RETURN_IF_ERROR(RekeyIn(tx, *row));
          GARDE_RETURN_IF_ERROR(
              d_.journal.Record(&tx, caller, {"subject.rekey", ids[i], "", "ok", {}, 0}));
          ++part.rekeyed;
        }
      }
      return Status::Ok();
    }));
    total.rekeyed += part.rekeyed;
    total.erased += part.erased;
    total.unknown += part.unknown;
  }
  return total;
}

Result<std::vector<SubjectVault::LikelyDuplicate>> SubjectVault::LikelyDuplicatesOf(
    const FieldMap& values, const std::string& self) const {
  std::vector<LikelyDuplicate> out;
  const std::vector<MatchKey> keys = MatchKeysOf(d_.policies.Current()->matching(), values);
  if (keys.empty()) return out;
  std::map<std::string, std::set<std::string>> rules_of;  // subject -> rules
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    for (const MatchKey& k : keys) {
      GARDE_ASSIGN_OR_RETURN(auto ids, FindByIndex(tx, "=" + k.rule, k.key, kMatchKeyBytes));
      for (const auto& id : ids) {
        if (id != self) rules_of[id].insert(k.rule);
      }
    }
    return Status::Ok();
  }));
  for (auto& [id, rules] : rules_of) out.push_back({id, {rules.begin(), rules.end()}});
  return out;
}

Result<std::vector<DuplicatePair>> SubjectVault::Duplicates(const Caller& caller,
                                                            const std::string& after_first,
                                                            const std::string& after_second,
                                                            size_t limit) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "duplicates.read"));
  std::vector<DuplicatePair> pairs;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto found, tx.SharedMatchKeys(after_first, after_second, limit));
    pairs = std::move(found);
    return Status::Ok();
  }));
  Audit(nullptr, caller, {"duplicates.list", "", "", "ok", {}, static_cast<int64_t>(pairs.size())});
  return pairs;
}

Result<std::string> SubjectVault::ReindexAfter(const std::string& after_id, size_t limit,
                                               int64_t* digests) {
  const auto policies = d_.policies.Current();
  const auto keys = d_.lookup.Current();
  std::string last;
  int64_t written = 0;
  GARDE_RETURN_IF_ERROR(d_.store.Write([&](WriteTx& tx) -> Status {
    last.clear();
    written = 0;
    GARDE_ASSIGN_OR_RETURN(auto ids, tx.SubjectsWithStaleIndexes(keys->master, after_id, limit));
    for (const std::string& id : ids) {
      last = id;
      GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
      GARDE_ASSIGN_OR_RETURN(auto fields, tx.StaleIndexesOf(id, keys->master));
      bool match_keys = false;
      for (const std::string& field : fields) {
        if (field.rfind('=', 0) == 0) {  // match keys: computed again together, below
          match_keys = true;
          continue;
        }
        const FieldSpec* spec = SpecOf(*policies, field);
        std::optional<FieldValue> value;
        if (row && spec != nullptr && spec->blind_index_bytes > 0) {
          auto opened = OpenOne(tx, *row, field);
          // A damaged field cannot be found by its value any more: its digest goes.
          if (!opened.ok() && opened.status().code() != Code::kDamaged) return opened.status();
          if (opened.ok()) value = std::move(opened.value());
        }
        if (!value) {
          // No longer indexed (the schema changed) or no longer held: nothing to find.
          GARDE_RETURN_IF_ERROR(tx.DeleteIndex(id, field));
          continue;
        }
        GARDE_RETURN_IF_ERROR(tx.PutIndex(
            id, {field, keys->index.Digest(field, IndexText(*value), spec->blind_index_bytes),
                 keys->master}));
        ++written;
      }
      if (match_keys) {
        // A damaged field, or a subject no longer held, leaves no match key (like a digest
        // above): PutMatchKeys of no values deletes them.
        Status refreshed =
            row ? RefreshMatchKeys(tx, *policies, *row) : Status(Code::kDamaged, "no subject");
        if (refreshed.code() == Code::kDamaged) {
          refreshed = PutMatchKeys(tx, *policies, id, {}, /*fresh=*/false);
        }
        GARDE_RETURN_IF_ERROR(refreshed);
        if (row) ++written;
      }
    }
    return Status::Ok();
  }));
  *digests += written;
  return last;
}

Result<int64_t> SubjectVault::ReindexAll(size_t batch,
                                         const std::function<void(int64_t)>& progress) {
  int64_t digests = 0;
  std::string after;
  do {
    GARDE_ASSIGN_OR_RETURN(auto last, ReindexAfter(after, batch, &digests));
    after = last;
    if (progress) progress(digests);
  } while (!after.empty());
  return digests;
}

Result<std::vector<SubjectView>> SubjectVault::Search(const Caller& caller,
                                                      const std::string& activity_id,
                                                      const FieldMap& criteria) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "subjects.read"));
  auto activity = AccessGate::BindPurpose(*policies, caller, activity_id);
  if (!activity.ok()) return activity.status();  // refusals are audited at the edge
  Status invalid(Code::kUnprocessable, "the search is not valid");
  if (criteria.empty()) invalid.AddError("", "name at least one blind-indexed field");
  FieldMap wanted;
  for (const auto& [name, value] : criteria) {
    const FieldSpec* spec = SpecOf(*policies, name);
    if (spec == nullptr || spec->blind_index_bytes == 0) {
      invalid.AddError(name, "is not a searchable (blind-indexed) field");
      continue;
    }
    std::string why;
    auto normalised = d_.standard.Normalize(*spec, value, &why);
    if (!normalised) {
      invalid.AddError(name, why);
      continue;
    }
    wanted[name] = std::move(*normalised);
  }
  if (!invalid.errors().empty()) return invalid;

  std::vector<SubjectView> results;
  Status s = d_.store.Read([&](ReadTx& tx) -> Status {
    std::vector<std::string> candidates;
    bool first = true;
    for (const auto& [name, value] : wanted) {
      const FieldSpec* spec = SpecOf(*policies, name);
      GARDE_ASSIGN_OR_RETURN(auto ids,
                             FindByIndex(tx, name, IndexText(value), spec->blind_index_bytes));
      std::sort(ids.begin(), ids.end());
      if (first) {
        candidates = std::move(ids);
        first = false;
      } else {
        std::vector<std::string> both;
        std::set_intersection(candidates.begin(), candidates.end(), ids.begin(), ids.end(),
                              std::back_inserter(both));
        candidates = std::move(both);
      }
    }
    for (const auto& id : candidates) {
      if (results.size() >= kMaxSearchResults) break;
      GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
      if (!row || row->status == "erased" || !MayProcess(*row, *activity.value()) ||
          !ConsentAllows(*policies, id, *activity.value(), &tx).ok()) {
        continue;
      }
      // Confirm every criterion on the decrypted value: truncated digests can collide.
      bool match = true;
      for (const auto& [name, value] : wanted) {
        auto actual = OpenOne(tx, *row, name);
        if (!actual.ok() || !actual.value() ||
            !SameValue(IndexText(*actual.value()), IndexText(value))) {
          match = false;
          break;
        }
      }
      if (!match) continue;
      GARDE_ASSIGN_OR_RETURN(auto view, Decrypt(tx, *row, activity.value()->fields));
      results.push_back(std::move(view));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  GARDE_RETURN_IF_ERROR(d_.store.Write(
      [&](WriteTx& tx) -> Status {
        for (const auto& r : results) {
          GARDE_RETURN_IF_ERROR(d_.journal.Record(
              &tx, caller, {"subject.read", r.id, activity_id, "ok", Names(r.fields), 1}));
        }
        return d_.journal.Record(&tx, caller,
                                 {"subject.search", "", activity_id, "ok", Names(criteria),
                                  static_cast<int64_t>(results.size())});
      },
      Durability::kDeferred));
  return results;
}

void WriteSubjectJson(JsonWriter& w, const SubjectView& s) {
  w.BeginObject()
      .String("id", s.id)
      .String("kind", s.kind)
      .String("status", s.status)
      .String("source", s.source);
  if (s.external_id) w.String("external_id", *s.external_id);
  w.BeginObject("fields");
  for (const auto& [name, value] : s.fields) {
    w.Key(name);
    WriteFieldValue(w, value);
  }
  w.EndObject()
      .String("created_at", FormatRfc3339(s.created_at))
      .String("updated_at", FormatRfc3339(s.updated_at))
      .String("last_interaction_at", FormatRfc3339(s.last_interaction_at))
      .EndObject();
}

}  // namespace garde

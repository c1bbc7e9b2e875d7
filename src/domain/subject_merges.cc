#include "garde/domain/subject_merges.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Parser.h>
#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "garde/base/byte_codec.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/domain/access_gate.h"

namespace garde {
namespace {

constexpr int kMaxMergeHops = 16;  // merges of merges followed by SurvivorOf

// A link moved by a merge: where it was, and whether the merge created the survivor's.
struct MovedLink {
  std::string organisation, person, role;  // before the merge
  bool created = false;                    // false: the survivor already had that link
};

// What a merge did, without personal data (the `record` column).
struct MergeRecord {
  std::vector<std::string> filled, replaced;
  std::vector<std::string> consent_events;
  int64_t consent_at = 0;
  // The survivor's events of that same second recorded before the merge (time alone cannot
  // tell them from later ones).
  std::vector<std::string> consent_before;
  std::vector<std::string> requests;
  std::vector<MovedLink> links;
  std::vector<int64_t> interactions;  // their seqs on the survivor

  std::string Json() const {
    JsonWriter w;
    auto list = [&w](const char* key, const std::vector<std::string>& items) {
      w.BeginArray(key);
      for (const auto& i : items) w.String(i);
      w.EndArray();
    };
    w.BeginObject();
    list("fields_filled", filled);
    list("fields_replaced", replaced);
    list("consent_events", consent_events);
    w.Int("consent_at", consent_at);
    list("consent_before", consent_before);
    list("requests", requests);
    w.BeginArray("interactions");
    for (int64_t seq : interactions) w.Int(seq);
    w.EndArray();
    w.BeginArray("links");
    for (const auto& l : links) {
      w.BeginObject()
          .String("organisation", l.organisation)
          .String("person", l.person)
          .String("role", l.role)
          .Bool("created", l.created)
          .EndObject();
    }
    w.EndArray().EndObject();
    return w.Take();
  }

  static Result<MergeRecord> Parse(const std::string& text) {
    MergeRecord r;
    try {
      Poco::JSON::Parser parser;
      auto o = parser.parse(text).extract<Poco::JSON::Object::Ptr>();
      auto list = [&o](const char* key) {
        std::vector<std::string> out;
        auto a = o->getArray(key);
        for (unsigned i = 0; a && i < a->size(); ++i) out.push_back(a->getElement<std::string>(i));
        return out;
      };
      r.filled = list("fields_filled");
      r.replaced = list("fields_replaced");
      r.consent_events = list("consent_events");
      r.consent_at = o->getValue<int64_t>("consent_at");
      r.consent_before = list("consent_before");
      r.requests = list("requests");
      auto seqs = o->getArray("interactions");
      for (unsigned i = 0; seqs && i < seqs->size(); ++i)
        r.interactions.push_back(seqs->getElement<int64_t>(i));
      auto links = o->getArray("links");
      for (unsigned i = 0; links && i < links->size(); ++i) {
        auto l = links->getObject(i);
        r.links.push_back({l->getValue<std::string>("organisation"),
                           l->getValue<std::string>("person"), l->getValue<std::string>("role"),
                           l->getValue<bool>("created")});
      }
    } catch (const Poco::Exception&) {
      return Damaged("a merge record is damaged");
    } catch (const std::exception&) {
      return Damaged("a merge record is damaged");
    }
    return r;
  }
};

// The survivor's values the merge changed, sealed under the survivor's key: for each field,
// its value before (absent when the merge filled a gap) and the value the merge wrote, as
// EncodeFieldValue gives them, in byte_codec's form.
struct ChangedValues {
  struct Change {
    std::optional<FieldValue> before;
    FieldValue after;
  };
  std::map<std::string, Change> fields;

  std::string Pack() const {
    ByteWriter w;
    for (const auto& [name, c] : fields) {
      w.Str(name).U8(c.before ? 1 : 0);
      if (c.before) w.Str(EncodeFieldValue(*c.before));
      w.Str(EncodeFieldValue(c.after));
    }
    return std::move(w.data());
  }

  static Result<ChangedValues> Unpack(std::string_view in) {
    ChangedValues v;
    ByteReader r(in);
    while (!r.done() && !r.failed()) {
      const std::string name(r.Str());
      Change c;
      if (r.U8() != 0) {
        auto before = DecodeFieldValue(r.Str());
        if (!before) break;
        c.before = std::move(*before);
      }
      auto after = DecodeFieldValue(r.Str());
      if (!after || r.failed()) break;
      c.after = std::move(*after);
      v.fields.emplace(name, std::move(c));
    }
    if (r.failed() || !r.done()) return Damaged("the values of a merge are damaged");
    return v;
  }
};

bool SameValue(const FieldValue& a, const FieldValue& b) {
  return EncodeFieldValue(a) == EncodeFieldValue(b);
}

Result<SubjectRow> MustGet(ReadTx& tx, const std::string& id) {
  GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
  if (!row) return NotFound("no subject " + id);
  return *row;
}

// Moves a request from one subject to another, its sealed parts sealed again for it.
Status MoveRequest(WriteTx& tx, const SubjectVault& vault, const std::string& id,
                   const SubjectRow& from, const SubjectRow& to) {
  GARDE_ASSIGN_OR_RETURN(auto found, tx.GetRequest(id));
  if (!found || found->subject_id != from.id) return Status::Ok();
  const RequestRow& r = *found;
  auto reseal = [&](const std::string& label, const Bytes& box) -> Result<Bytes> {
    if (box.empty()) return Bytes{};
    auto plain = vault.OpenFor(from, label, box);
    if (!plain.ok()) return plain.status();
    auto sealed = vault.SealFor(to, label, plain.value());
    sodium_memzero(plain.value().data(), plain.value().size());
    return sealed;
  };
  GARDE_ASSIGN_OR_RETURN(auto sealed, reseal(RequestNotesLabel(r.id), r.sealed));
  GARDE_ASSIGN_OR_RETURN(auto package, reseal(RequestPackageLabel(r.id), r.package));
  return tx.ReassignRequest(r.id, to.id, sealed, package);
}

// Moves interactions to another subject, their amounts sealed again for it; the new seqs.
Result<std::vector<int64_t>> MoveInteractions(WriteTx& tx, const SubjectVault& vault,
                                              const std::vector<InteractionRow>& rows,
                                              const SubjectRow& from, const SubjectRow& to) {
  std::vector<int64_t> seqs;
  for (const InteractionRow& r : rows) {
    InteractionRow moved{to.id, r.kind, r.at, {}, 0};
    if (!r.sealed_amount.empty()) {
      GARDE_ASSIGN_OR_RETURN(auto amount,
                             vault.OpenFor(from, kInteractionAmountLabel, r.sealed_amount));
      GARDE_ASSIGN_OR_RETURN(auto sealed, vault.SealFor(to, kInteractionAmountLabel, amount));
      moved.sealed_amount = std::move(sealed);
    }
    GARDE_ASSIGN_OR_RETURN(auto seq, tx.InsertInteraction(moved));
    GARDE_RETURN_IF_ERROR(tx.DeleteInteraction(r.seq));
    seqs.push_back(seq);
  }
  return seqs;
}

// The purchase aggregates the vault keeps (RecordInteractions): combined, not copied.
bool IsAggregate(const std::string& field) {
  return field == "total_spend" || field == "last_purchase" || field == "spend_30d";
}

bool HasLink(const std::vector<ContactLinkRow>& links, const std::string& organisation,
             const std::string& person) {
  return std::any_of(links.begin(), links.end(), [&](const ContactLinkRow& l) {
    return l.organisation_id == organisation && l.person_id == person;
  });
}

Status Emit(WriteTx& tx, const char* topic, const MergeRow& m, int64_t at) {
  JsonWriter event;
  event.BeginObject()
      .String("merge", m.id)
      .String("merged", m.merged_id)
      .String("into", m.into_id)
      .String("at", FormatRfc3339(at))
      .EndObject();
  return EmitEvent(tx, topic, event.Take(), at);
}

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

void WriteMergeJson(JsonWriter& w, const MergeRow& m) {
  w.BeginObject()
      .String("id", m.id)
      .String("merged", m.merged_id)
      .String("into", m.into_id)
      .String("state", m.state)
      .String("created_at", FormatRfc3339(m.created_at))
      .Key("finished_at");
  if (m.finished_at != 0) {
    w.String(FormatRfc3339(m.finished_at));
  } else {
    w.Null();
  }
  w.Raw("record", m.record).EndObject();
}

Result<MergeRow> SubjectMerges::Change(const Caller& caller, const Step& step) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "subjects.merge"));
  MergeRow m;
  TombstoneEntries kept;
  Status done = d_.store.Write([&](WriteTx& tx) -> Status {
    kept = {};
    m = {};
    GARDE_RETURN_IF_ERROR(step(tx, *policies, m, kept));
    return TombstoneLog::WriteAhead(tx, kept);
  });
  if (!done.ok()) return done;
  GARDE_RETURN_IF_ERROR(d_.consents.KeepTombstones(kept.ErasuresOnly()));
  return m;
}

Result<MergeRow> SubjectMerges::Merge(const Caller& caller, const std::string& merged_id,
                                      const MergeRequest& request) {
  Status invalid(Code::kUnprocessable, "the merge is not valid; nothing was changed");
  if (!IsRandomId(request.into, "sub_")) {
    invalid.AddError("into", "must be the id of the subject to merge into");
  } else if (request.into == merged_id) {
    invalid.AddError("into", "must be another subject");
  }
  for (const auto& [field, side] : request.prefer) {
    if (side != "merged" && side != "survivor") {
      invalid.AddError("prefer." + field, "must be \"merged\" or \"survivor\"");
    }
  }
  if (!invalid.errors().empty()) return invalid;

  return Change(
      caller,
      [&](WriteTx& tx, const PolicySet& policies, MergeRow& m, TombstoneEntries& kept) -> Status {
        const int64_t now = d_.clock.Now();
        GARDE_ASSIGN_OR_RETURN(auto b, MustGet(tx, merged_id));
        auto a = tx.GetSubject(request.into);
        if (!a.ok()) return a.status();
        if (!a.value()) {
          return Status(Code::kUnprocessable, "the merge is not valid; nothing was changed")
              .AddError("into", "no such subject");
        }
        SubjectRow survivor = *a.value(), merged = b;
        for (const SubjectRow* s : {&merged, &survivor}) {
          if (s->status != "active") {
            return Conflict("subject " + s->id + " is " + s->status +
                            ": only active subjects are merged");
          }
        }
        if (survivor.kind != merged.kind) {
          return Status(Code::kUnprocessable, "the merge is not valid; nothing was changed")
              .AddError("into", "must be a " + merged.kind + " like the merged subject");
        }
        for (const auto& [field, side] : request.prefer) {
          if (field != kExternalIdField && policies.schema().Find(field) == nullptr) {
            return Status(Code::kUnprocessable, "the merge is not valid; nothing was changed")
                .AddError("prefer." + field, "is not a field of a " + merged.kind);
          }
        }
        m.id = RandomId("mrg_");
        m.merged_id = merged.id;
        m.into_id = survivor.id;
        m.state = "merged";
        m.actor = caller.key_id;
        m.created_at = now;
        MergeRecord record;

        // Fields: the survivor's stay; what it lacks (or what `prefer` names) comes over.
        GARDE_ASSIGN_OR_RETURN(auto vs, d_.vault.OpenAll(tx, survivor));
        GARDE_ASSIGN_OR_RETURN(auto vm, d_.vault.OpenAll(tx, merged));
        const FieldMap mine = ValuesWithExternalId(vs), theirs = ValuesWithExternalId(vm);
        ChangedValues changed;
        FieldMap writes;
        for (const auto& [name, value] : theirs) {
          auto own = mine.find(name);
          auto pref = request.prefer.find(name);
          const bool have = own != mine.end() && !own->second.is_null();
          if (IsAggregate(name)) {  // spending adds up; the last purchase is the later one
            std::optional<FieldValue> combined;
            if (name == "total_spend" && value.type == FieldValue::Type::kNumber) {
              const double before =
                  have && own->second.type == FieldValue::Type::kNumber ? own->second.number : 0;
              combined = FieldValue::Number(std::round((before + value.number) * 100) / 100);
            } else if (name == "last_purchase" && (!have || own->second.text < value.text)) {
              combined = value;
            }
            if (combined) {
              changed.fields[name] = {have ? std::optional<FieldValue>(own->second) : std::nullopt,
                                      *combined};
              (have ? record.replaced : record.filled).push_back(name);
              writes[name] = *combined;
            }
            continue;
          }
          if (!have) {
            changed.fields[name] = {std::nullopt, value};
            record.filled.push_back(name);
            writes[name] = value;
          } else if (pref != request.prefer.end() && pref->second == "merged" &&
                     !SameValue(own->second, value)) {
            changed.fields[name] = {own->second, value};
            record.replaced.push_back(name);
            writes[name] = value;
          }
        }
        // The merged record stops being found (and stops holding its unique values).
        GARDE_RETURN_IF_ERROR(tx.DeleteIndexesOf(merged.id));
        if (!writes.empty()) {
          auto rectified = d_.vault.RectifyIn(tx, policies, caller, survivor.id, ChangesOf(writes));
          if (!rectified.ok()) return rectified.status();
        }
        if (!changed.fields.empty()) {
          std::string packed = changed.Pack();
          auto sealed = d_.vault.SealFor(survivor, MergeValuesLabel(m.id), packed);
          sodium_memzero(packed.data(), packed.size());
          if (!sealed.ok()) return sealed.status();
          m.sealed = std::move(sealed).value();
        }

        // Consent: the most protective of the two, as corrections on the survivor.
        GARDE_ASSIGN_OR_RETURN(auto es, tx.ConsentEventsOf(survivor.id));
        GARDE_ASSIGN_OR_RETURN(auto em, tx.ConsentEventsOf(merged.id));
        int64_t at = now;
        for (const auto* events : {&es, &em}) {
          for (const auto& e : *events) at = std::max(at, e.at);
        }
        record.consent_at = at;
        for (const auto& e : es) {
          if (e.at == at) record.consent_before.push_back(e.id);
        }
        GARDE_RETURN_IF_ERROR(d_.consents.RecordCorrectionsIn(
            tx, policies, survivor.id, MergeCorrections(es, em, policies), "merge", caller.key_id,
            at, &record.consent_events, &kept));

        // Purchases and visits follow the customer; the last 30 days' spending is counted again.
        GARDE_ASSIGN_OR_RETURN(auto interactions, tx.InteractionsOf(merged.id, 0));
        if (!interactions.empty()) {
          GARDE_ASSIGN_OR_RETURN(auto moved,
                                 MoveInteractions(tx, d_.vault, interactions, merged, survivor));
          record.interactions = std::move(moved);
          GARDE_ASSIGN_OR_RETURN(auto fresh, MustGet(tx, survivor.id));
          SubjectRow s = fresh;
          s.last_interaction_at = std::max(s.last_interaction_at, merged.last_interaction_at);
          GARDE_RETURN_IF_ERROR(tx.UpdateSubject(s));
          auto refreshed = d_.vault.RefreshSpendIn(tx, policies, caller, s, now);
          if (!refreshed.ok()) return refreshed.status();
        }

        // Requests and contact links follow the customer.
        RequestQuery q;
        q.subject = merged.id;
        q.limit = 100000;
        GARDE_ASSIGN_OR_RETURN(auto requests, tx.QueryRequests(q));
        for (const auto& r : requests) {
          GARDE_RETURN_IF_ERROR(MoveRequest(tx, d_.vault, r.id, merged, survivor));
          record.requests.push_back(r.id);
        }
        GARDE_ASSIGN_OR_RETURN(auto links, tx.LinksOf(merged.id));
        GARDE_ASSIGN_OR_RETURN(auto own_links, tx.LinksOf(survivor.id));
        for (const auto& l : links) {
          const bool as_person = l.person_id == merged.id;
          const std::string org = as_person ? l.organisation_id : survivor.id;
          const std::string person = as_person ? survivor.id : l.person_id;
          const bool create = org != person && !HasLink(own_links, org, person);
          if (create) GARDE_RETURN_IF_ERROR(tx.PutLink({org, person, l.role, now}));
          auto removed = tx.DeleteLink(l.organisation_id, l.person_id);
          if (!removed.ok()) return removed.status();
          record.links.push_back({l.organisation_id, l.person_id, l.role, create});
        }

        merged.status = "merged";
        merged.updated_at = now;
        GARDE_RETURN_IF_ERROR(tx.UpdateSubject(merged));
        m.record = record.Json();
        GARDE_RETURN_IF_ERROR(tx.PutMerge(m));
        GARDE_RETURN_IF_ERROR(Emit(tx, "subject.merged", m, now));
        const auto fields = Concat(record.filled, record.replaced);
        GARDE_RETURN_IF_ERROR(
            d_.journal.Record(&tx, caller, {"subject.merge", merged.id, "", "ok", fields, 1}));
        return d_.journal.Record(&tx, caller, {"subject.merge", survivor.id, "", "ok", fields, 1});
      });
}

Result<MergeRow> SubjectMerges::Revert(const Caller& caller, const std::string& merge_id) {
  return Change(
      caller,
      [&](WriteTx& tx, const PolicySet& policies, MergeRow& m, TombstoneEntries& kept) -> Status {
        const int64_t now = d_.clock.Now();
        auto found = tx.GetMerge(merge_id);
        if (!found.ok()) return found.status();
        if (!found.value()) return NotFound("no merge " + merge_id);
        m = *found.value();
        if (m.state != "merged")
          return Conflict("the merge is " + m.state + ": it cannot be reverted");
        auto record = MergeRecord::Parse(m.record);
        if (!record.ok()) return record.status();
        GARDE_ASSIGN_OR_RETURN(auto a, MustGet(tx, m.into_id));
        GARDE_ASSIGN_OR_RETURN(auto b, MustGet(tx, m.merged_id));
        SubjectRow survivor = a, merged = b;
        GARDE_RETURN_IF_ERROR(RefuseGone(survivor));

        // Fields the merge wrote and nothing has changed since go back.
        if (!m.sealed.empty()) {
          auto plain = d_.vault.OpenFor(survivor, MergeValuesLabel(m.id), m.sealed);
          if (!plain.ok()) return plain.status();
          auto changed = ChangedValues::Unpack(plain.value());
          sodium_memzero(plain.value().data(), plain.value().size());
          if (!changed.ok()) return changed.status();
          GARDE_ASSIGN_OR_RETURN(auto now_values, d_.vault.OpenAll(tx, survivor));
          const FieldMap current = ValuesWithExternalId(now_values);
          FieldMap writes;
          for (const auto& [name, c] : changed->fields) {
            auto cur = current.find(name);
            if (cur == current.end() || !SameValue(cur->second, c.after)) continue;
            writes[name] = c.before ? *c.before : FieldValue::Null();
          }
          if (!writes.empty()) {
            auto rectified =
                d_.vault.RectifyIn(tx, policies, caller, survivor.id, ChangesOf(writes));
            if (!rectified.ok()) return rectified.status();
          }
        }
        // The merged record is found again (409 when one of its unique values is now taken).
        merged.status = "active";
        merged.updated_at = now;
        GARDE_RETURN_IF_ERROR(d_.vault.RestoreIndexesIn(tx, policies, merged));
        GARDE_RETURN_IF_ERROR(tx.UpdateSubject(merged));

        GARDE_ASSIGN_OR_RETURN(auto events, tx.ConsentEventsOf(survivor.id));
        int64_t at = now;
        for (const auto& e : events) at = std::max(at, e.at);
        const std::set<std::string> ids(record->consent_events.begin(),
                                        record->consent_events.end());
        std::vector<std::string> recorded;
        GARDE_RETURN_IF_ERROR(d_.consents.RecordCorrectionsIn(
            tx, policies, survivor.id,
            RevertCorrections(events, record->consent_at,
                              {record->consent_before.begin(), record->consent_before.end()}, ids,
                              policies),
            "merge_reverted", caller.key_id, at, &recorded, &kept));

        for (const auto& id : record->requests) {
          GARDE_RETURN_IF_ERROR(MoveRequest(tx, d_.vault, id, survivor, merged));
        }
        if (!record->interactions.empty()) {
          GARDE_ASSIGN_OR_RETURN(auto all, tx.InteractionsOf(survivor.id, 0));
          const std::set<int64_t> seqs(record->interactions.begin(), record->interactions.end());
          std::vector<InteractionRow> back;
          for (const auto& r : all) {
            if (seqs.count(r.seq) != 0) back.push_back(r);
          }
          auto moved = MoveInteractions(tx, d_.vault, back, survivor, merged);
          if (!moved.ok()) return moved.status();
          GARDE_ASSIGN_OR_RETURN(auto fresh, MustGet(tx, survivor.id));
          auto refreshed = d_.vault.RefreshSpendIn(tx, policies, caller, fresh, now);
          if (!refreshed.ok()) return refreshed.status();
        }
        for (const auto& l : record->links) {
          const bool as_person = l.person == merged.id;
          const std::string org = as_person ? l.organisation : survivor.id;
          const std::string person = as_person ? survivor.id : l.person;
          if (l.created) {
            auto removed = tx.DeleteLink(org, person);
            if (!removed.ok()) return removed.status();
          }
          GARDE_RETURN_IF_ERROR(tx.PutLink({l.organisation, l.person, l.role, now}));
        }

        m.state = "reverted";
        m.finished_at = now;
        m.sealed.clear();
        GARDE_RETURN_IF_ERROR(tx.PutMerge(m));
        GARDE_RETURN_IF_ERROR(Emit(tx, "subject.merge_reverted", m, now));
        GARDE_RETURN_IF_ERROR(
            d_.journal.Record(&tx, caller, {"subject.merge_revert", merged.id, "", "ok", {}, 1}));
        return d_.journal.Record(&tx, caller,
                                 {"subject.merge_revert", survivor.id, "", "ok", {}, 1});
      });
}

namespace {

// Destroys the merged record's data; its row stays, `merged`, for the redirect.
Status CompleteOne(WriteTx& tx, const SubjectVault& vault, MergeRow& m, int64_t now,
                   bool erase_history, TombstoneEntries* kept) {
  GARDE_ASSIGN_OR_RETURN(auto merged, MustGet(tx, m.merged_id));
  GARDE_RETURN_IF_ERROR(vault.EraseIn(tx, merged, {}));
  if (erase_history) GARDE_RETURN_IF_ERROR(tx.DeleteConsentEventsOf(m.merged_id));
  SubjectRow row = merged;
  row.wrapped_dek.clear();
  row.updated_at = now;
  GARDE_RETURN_IF_ERROR(tx.UpdateSubject(row));
  const TombstoneRow tombstone{m.merged_id, m.id, now, {}};
  GARDE_RETURN_IF_ERROR(tx.InsertTombstone(tombstone));
  kept->erasures.push_back(tombstone);
  m.state = "completed";
  m.finished_at = now;
  m.sealed.clear();  // the survivor's values before: no longer needed
  return tx.PutMerge(m);
}

}  // namespace

Status SubjectMerges::CompleteIn(WriteTx& tx, const SubjectVault& vault, MergeRow merge,
                                 int64_t now, TombstoneEntries* kept) {
  return CompleteOne(tx, vault, merge, now, /*erase_history=*/false, kept);
}

Status SubjectMerges::CompleteMergesIn(WriteTx& tx, const SubjectVault& vault,
                                       const std::string& into, int64_t now, bool erase_history,
                                       TombstoneEntries* kept) {
  GARDE_ASSIGN_OR_RETURN(auto merges, tx.MergesInto(into));
  for (MergeRow& m : merges) {
    if (m.state == "merged")
      GARDE_RETURN_IF_ERROR(CompleteOne(tx, vault, m, now, erase_history, kept));
  }
  return Status::Ok();
}

Result<MergeRow> SubjectMerges::Complete(const Caller& caller, const std::string& merge_id) {
  return Change(
      caller,
      [&](WriteTx& tx, const PolicySet& /*policies*/, MergeRow& m,
          TombstoneEntries& kept) -> Status {
        GARDE_ASSIGN_OR_RETURN(auto found, tx.GetMerge(merge_id));
        if (!found) return NotFound("no merge " + merge_id);
        if (found->state != "merged") {
          return Conflict("the merge is " + found->state + ": there is nothing to complete");
        }
        m = *found;
        GARDE_RETURN_IF_ERROR(
            CompleteOne(tx, d_.vault, m, d_.clock.Now(), /*erase_history=*/false, &kept));
        return d_.journal.Record(&tx, caller,
                                 {"subject.merge_complete", m.merged_id, "", "ok", {}, 1});
      });
}

Result<MergeRow> SubjectMerges::Get(const Caller& caller, const std::string& merge_id) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "subjects.merge"));
  std::optional<MergeRow> m;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto found, tx.GetMerge(merge_id));
    m = found;
    return Status::Ok();
  }));
  if (!m) return NotFound("no merge " + merge_id);
  GARDE_RETURN_IF_ERROR(
      d_.journal.Record(nullptr, caller, {"subject.merge_read", m->merged_id, "", "ok", {}, 1}));
  return *m;
}

Result<std::optional<std::string>> SubjectMerges::SurvivorOf(const std::string& id) {
  std::optional<std::string> survivor;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    for (int hop = 0; hop < kMaxMergeHops; ++hop) {
      GARDE_ASSIGN_OR_RETURN(auto merges, tx.MergesOf(survivor.value_or(id)));
      auto live = std::find_if(merges.begin(), merges.end(),
                               [](const MergeRow& m) { return m.state != "reverted"; });
      if (live == merges.end()) break;
      survivor = live->into_id;
    }
    return Status::Ok();
  }));
  return survivor;
}

}  // namespace garde

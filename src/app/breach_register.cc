#include "garde/app/breach_register.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "garde/app/deployment.h"
#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/crypto/envelope.h"
#include "garde/domain/audit_log.h"

namespace garde {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

Object::Ptr ParseFacts(const std::string& json) {
  try {
    Poco::JSON::Parser parser;
    auto v = parser.parse(json);
    if (v.type() == typeid(Object::Ptr)) return v.extract<Object::Ptr>();
  } catch (const std::exception&) {
  }
  return new Object;  // Poco owns and counts it
}

std::string Stringify(const Object::Ptr& o) {
  std::ostringstream out;
  o->stringify(out);
  return out.str();
}

// A fact given as text or as {lang: text}, in `lang` (else English, else any).
std::string TextIn(const Object& facts, const std::string& key, const std::string& lang) {
  if (!facts.has(key)) return "";
  const auto v = facts.get(key);
  if (v.type() == typeid(Object::Ptr)) {
    const auto texts = v.extract<Object::Ptr>();
    for (const std::string& l : {lang, std::string("en")}) {
      if (texts->has(l)) return texts->get(l).toString();
    }
    return texts->size() == 0 ? "" : texts->begin()->second.toString();
  }
  return v.isEmpty() ? "" : v.toString();
}

const char* Sheet(const std::string& lang, const char* en, const char* fr) {
  return lang == "fr" ? fr : en;
}

}  // namespace

// The facts are sealed like a field (crypto/envelope.h): XChaCha20-Poly1305 under the
// register's sub-key, bound to the incident's id, so a box moved to another incident fails.
void BreachRegister::SealingKey(ScopedKey* key) const {
  const SecretKey derived = d_.keys().Current()->Derive(KeyContext::kIncident);
  std::memcpy(key->data(), derived.data(), kKeyBytes);
}

Bytes BreachRegister::Seal(const std::string& id, const std::string& facts) const {
  ScopedKey key;
  SealingKey(&key);
  return SealField(key, {id, "incident", 1}, facts);
}

Result<std::string> BreachRegister::Unseal(const IncidentRow& row) const {
  ScopedKey key;
  SealingKey(&key);
  auto facts = OpenField(key, {row.id, "incident", 1}, row.sealed);
  if (!facts.ok()) return Damaged("incident " + row.id + " is damaged");
  return facts;
}

Result<IncidentView> BreachRegister::Load(const std::string& id) {
  std::optional<IncidentRow> row;
  GARDE_RETURN_IF_ERROR(d_.store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto got, tx.GetIncident(id));
    row = std::move(got);
    return Status::Ok();
  }));
  if (!row) return NotFound("no such incident");
  GARDE_ASSIGN_OR_RETURN(auto facts, Unseal(*row));
  return IncidentView{std::move(*row), std::move(facts)};
}

Result<IncidentView> BreachRegister::Save(const Caller& caller, IncidentRow row,
                                          const std::string& facts, const char* action,
                                          std::vector<std::string> details) {
  row.sealed = Seal(row.id, facts);
  row.updated_at = d_.clock().Now();
  details.insert(details.begin(), row.id);
  GARDE_RETURN_IF_ERROR(d_.store().Write([&](WriteTx& tx) -> Status {
    GARDE_RETURN_IF_ERROR(tx.PutIncident(row));
    return d_.journal().Record(&tx, caller, {action, "", "", "ok", details, 1});
  }));
  return IncidentView{std::move(row), facts};
}

Result<IncidentView> BreachRegister::Open(const Caller& caller, const std::string& facts,
                                          int64_t detected_at, int64_t aware_at) {
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*d_.policies().Current(), caller, "incidents.manage"));
  IncidentRow row;
  row.id = RandomId("inc_");
  row.status = "open";
  row.detected_at = detected_at;
  row.aware_at = aware_at;
  row.authority_due_at = aware_at + kAuthorityDeadline;  // Art. 33(1): from awareness
  row.created_at = d_.clock().Now();
  return Save(caller, std::move(row), facts, "incident.open", {});
}

Result<std::vector<IncidentView>> BreachRegister::List(const Caller& caller,
                                                       const IncidentQuery& q) {
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*d_.policies().Current(), caller, "incidents.manage"));
  std::vector<IncidentRow> rows;
  GARDE_RETURN_IF_ERROR(d_.store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto got, tx.ListIncidents());
    rows = std::move(got);
    return Status::Ok();
  }));
  const int64_t now = d_.clock().Now();
  std::vector<IncidentView> out;
  for (auto& row : rows) {
    if (!q.status.empty() && row.status != q.status) continue;
    const bool waiting = row.authority_notified_at == 0 && row.status == "open";
    if (q.overdue && !(waiting && row.authority_due_at < now)) continue;
    if (q.due_within >= 0 && !(waiting && row.authority_due_at <= now + q.due_within)) continue;
    GARDE_ASSIGN_OR_RETURN(auto facts, Unseal(row));
    out.push_back({std::move(row), std::move(facts)});
  }
  return out;
}

Result<IncidentView> BreachRegister::Get(const Caller& caller, const std::string& id) {
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*d_.policies().Current(), caller, "incidents.manage"));
  return Load(id);
}

Result<IncidentView> BreachRegister::Update(const Caller& caller, const std::string& id,
                                            const std::string& changes,
                                            int64_t authority_notified_at, bool close) {
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*d_.policies().Current(), caller, "incidents.manage"));
  GARDE_ASSIGN_OR_RETURN(auto view, Load(id));
  auto facts = ParseFacts(view.facts);
  auto patch = ParseFacts(changes);
  std::vector<std::string> changed;
  for (const auto& [k, v] : *patch) {
    facts->set(k, v);
    changed.push_back(k);
  }
  IncidentRow row = view.row;
  if (authority_notified_at != 0) {
    if (authority_notified_at < row.detected_at) {
      return Status(Code::kUnprocessable, "the change is not valid; nothing was stored")
          .AddError("authority_notified_at", "is before the breach was detected (detected_at)");
    }
    row.authority_notified_at = authority_notified_at;
    changed.push_back("authority_notified_at");
  }
  if (close && row.status != "closed") {
    row.status = "closed";
    row.closed_at = d_.clock().Now();
    changed.push_back("status");
  }
  return Save(caller, std::move(row), Stringify(facts), "incident.update", std::move(changed));
}

Result<IncidentView> BreachRegister::Scope(const Caller& caller, const std::string& id,
                                           const BreachScope& scope) {
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*d_.policies().Current(), caller, "incidents.manage"));
  GARDE_ASSIGN_OR_RETURN(auto view, Load(id));
  // Everything logged so far under a head signed now. A key's or user's scope reads their
  // entries alone, through the actor index, each proved against that head and counted
  // against the head's signed count for the actor (AuditLog::ScopeActor); other scopes check
  // the whole log against the head and draw the scope in the same pass.
  CheckpointRow head;
  uint64_t verified_entries = 0;
  uint64_t head_size = UINT64_MAX;  // entries at or past it came after the head
  struct Reach {
    std::set<std::string> fields, activities, actions;
    int64_t entries = 0;
    std::string first, last;
    std::vector<uint64_t> at;  // the entries' indexes in the log: the evidence, with proofs
  };
  std::map<std::string, Reach> reached;
  std::map<std::string, int64_t> by_field;
  int64_t entries = 0;
  const std::string since = scope.since == 0 ? "" : FormatRfc3339(scope.since);
  const std::string until = scope.until == 0 ? "" : FormatRfc3339(scope.until);
  // A cheap look at the entry's bytes first (the canonical form writes members this way),
  // then the parsed entry decides.
  const std::string client = d_.audit().values().Client(scope.client);
  std::string member;
  if (!scope.actor.empty()) {
    member = "\"actor\":";
    AppendJsonString(member, scope.actor);
  } else if (!client.empty()) {
    member = "\"client\":";
    AppendJsonString(member, client);
  } else {
    member = "\"activity\":";
    AppendJsonString(member, scope.activity);
  }
  auto draw = [&](const AuditRow& row) {
    if (row.seq >= head_size || row.subject.empty() ||
        row.entry.find(member) == std::string::npos) {
      return;
    }
    auto entry = ParseFacts(row.entry);
    if ((!scope.actor.empty() && entry->optValue<std::string>("actor", "") != scope.actor) ||
        (!scope.activity.empty() &&
         entry->optValue<std::string>("activity", "") != scope.activity) ||
        (!client.empty() && entry->optValue<std::string>("client", "") != client) ||
        entry->optValue<std::string>("outcome", "") != "ok") {
      return;
    }
    const std::string time = entry->optValue<std::string>("time", "");
    if ((!since.empty() && time < since) || (!until.empty() && time > until)) return;
    Reach& r = reached[row.subject];
    ++r.entries;
    r.at.push_back(row.seq);
    ++entries;
    if (r.first.empty()) r.first = time;
    r.last = time;
    r.actions.insert(entry->optValue<std::string>("action", ""));
    const std::string activity = entry->optValue<std::string>("activity", "");
    if (!activity.empty()) r.activities.insert(activity);
    if (auto fields = entry->getArray("fields")) {
      for (size_t i = 0; i < fields->size(); ++i) {
        const std::string f = fields->getElement<std::string>(static_cast<unsigned>(i));
        if (r.fields.insert(f).second) ++by_field[f];
      }
    }
  };
  auto refused = [](size_t problems, const std::string& first) {
    return Conflict("the audit log does not verify (" + std::to_string(problems) +
                    " problems, first: " + first +
                    "; run garde audit verify): no scope can be drawn from it");
  };
  bool drawn = false;
  if (!scope.actor.empty()) {
    GARDE_ASSIGN_OR_RETURN(auto checked, d_.audit().ScopeActor(scope.actor, draw));
    if (!checked.problems.empty()) {
      return refused(checked.problems.size(), checked.problems.front());
    }
    drawn = checked.counted;
    if (drawn) {
      head = std::move(checked.head);
      verified_entries = checked.entries;
    }
  }
  if (!drawn) {
    GARDE_ASSIGN_OR_RETURN(auto signed_now, d_.audit().Checkpoint());
    head = std::move(signed_now);
    head_size = head.size;
    const AuditVerification verified = VerifyAuditLog(
        d_.audit_store(), d_.signer().public_key(), d_.signer().origin(), {}, [](uint64_t) {},
        draw);
    if (!verified.ok()) return refused(verified.problems.size(), verified.problems.front());
    verified_entries = verified.entries;
  }
  Object::Ptr result = new Object;
  result->set("actor", scope.actor);
  result->set("activity", scope.activity);
  result->set("client", scope.client);
  result->set("since", since);
  result->set("until", until);
  result->set("verified_entries", static_cast<int64_t>(verified_entries));
  result->set("checkpoint_size", static_cast<int64_t>(head.size));
  // The signed tree head every entry below is proved against (GET .../evidence).
  result->set("checkpoint", head.note);
  result->set("entries", entries);
  Array::Ptr subjects = new Array;
  for (const auto& [subject, r] : reached) {
    Object::Ptr s = new Object;
    s->set("subject", subject);
    Array::Ptr fields = new Array;
    for (const auto& f : r.fields) fields->add(f);
    Array::Ptr activities = new Array;
    for (const auto& a : r.activities) activities->add(a);
    Array::Ptr actions = new Array;
    for (const auto& a : r.actions) actions->add(a);
    s->set("fields", fields);
    s->set("activities", activities);
    s->set("actions", actions);
    s->set("entries", r.entries);
    s->set("first", r.first);
    s->set("last", r.last);
    Array::Ptr at = new Array;
    for (uint64_t i : r.at) at->add(static_cast<Poco::UInt64>(i));
    s->set("entries_at", at);
    subjects->add(s);
  }
  result->set("subjects", subjects);
  Object::Ptr counts = new Object;
  for (const auto& [f, n] : by_field) counts->set(f, n);
  result->set("subjects_by_field", counts);
  auto facts = ParseFacts(view.facts);
  facts->set("scope", result);
  return Save(caller, view.row, Stringify(facts), "incident.scope",
              {scope.actor, std::to_string(reached.size())});
}

Result<std::string> BreachRegister::Evidence(const Caller& caller, const std::string& id,
                                             const std::string& subject) {
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*d_.policies().Current(), caller, "incidents.manage"));
  GARDE_ASSIGN_OR_RETURN(auto view, Load(id));
  auto facts = ParseFacts(view.facts);
  Object::Ptr scope = facts->getObject("scope");
  if (!scope || !scope->has("checkpoint")) {
    return Conflict("incident " + id + " has no scope with evidence yet: scope it first");
  }
  const auto size = scope->getValue<uint64_t>("checkpoint_size");
  Array::Ptr at;
  if (Array::Ptr subjects = scope->getArray("subjects")) {
    for (size_t i = 0; i < subjects->size() && !at; ++i) {
      Object::Ptr s = subjects->getObject(static_cast<unsigned>(i));
      if (s->optValue<std::string>("subject", "") == subject) at = s->getArray("entries_at");
    }
  }
  if (!at) return NotFound("subject " + subject + " is not in the incident's scope");
  auto root = d_.audit().Root(size);
  if (!root.ok()) return root.status();
  JsonWriter w;
  w.BeginObject()
      .String("incident", id)
      .String("subject", subject)
      .String("checkpoint", scope->getValue<std::string>("checkpoint"))
      .Int("size", static_cast<int64_t>(size))
      .String("root_hash", Base64Encode(root.value().data(), root.value().size()))
      .BeginArray("entries");
  for (size_t i = 0; i < at->size(); ++i) {
    const uint64_t index = at->getElement<uint64_t>(static_cast<unsigned>(i));
    std::string entry;
    Bytes leaf;
    GARDE_RETURN_IF_ERROR(d_.audit().Scan(index, index + 1, [&](const AuditRow& r) {
      entry = r.entry;
      leaf = r.leaf_hash;
      return false;
    }));
    auto proof = d_.audit().InclusionProof(index, size);
    if (!proof.ok()) return proof.status();
    // The entry's exact bytes (what was hashed), its leaf hash, and the path to the root.
    w.BeginObject()
        .Int("index", static_cast<int64_t>(index))
        .String("entry", entry)
        .String("leaf_hash", Base64Encode(leaf))
        .BeginArray("proof");
    for (const auto& h : proof.value()) w.String(Base64Encode(h.data(), h.size()));
    w.EndArray().EndObject();
  }
  w.EndArray().EndObject();
  GARDE_RETURN_IF_ERROR(d_.journal().Record(
      nullptr, caller,
      {"incident.evidence", subject, "", "ok", {id}, static_cast<int64_t>(at->size())}));
  return w.Take();
}

Result<IncidentView> BreachRegister::RevokeKey(const Caller& caller, const std::string& id,
                                               const std::string& key_id) {
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*d_.policies().Current(), caller, "incidents.manage"));
  GARDE_ASSIGN_OR_RETURN(auto view, Load(id));
  GARDE_RETURN_IF_ERROR(d_.api_keys().Revoke(key_id));
  GARDE_RETURN_IF_ERROR(
      d_.journal().Record(nullptr, caller, {"apikey.revoke", "", "", "ok", {key_id, id}, 1}));
  return AddContainment(caller, view, "revoked API key " + key_id);
}

Result<IncidentView> BreachRegister::RekeySubjects(const Caller& caller, const std::string& id) {
  GARDE_ASSIGN_OR_RETURN(auto view, LoadForContainment(caller, id));
  auto facts = ParseFacts(view.facts);
  auto scope = facts->getObject("scope");
  if (!scope) return Conflict("draw the incident's scope first (:scope)");
  std::vector<std::string> ids;
  if (auto subjects = scope->getArray("subjects")) {
    for (size_t i = 0; i < subjects->size(); ++i) {
      auto entry = subjects->getObject(static_cast<unsigned>(i));
      if (entry) ids.push_back(entry->optValue<std::string>("subject", ""));
    }
  }
  GARDE_ASSIGN_OR_RETURN(auto done, d_.vault().Rekey(caller, ids));
  std::string action =
      "re-keyed the data keys of " + std::to_string(done.rekeyed) + " subject(s) of the scope";
  if (done.erased + done.unknown > 0) {
    action += " (" + std::to_string(done.erased + done.unknown) +
              " erased or gone: nothing left to re-key)";
  }
  return AddContainment(caller, view, action);
}

Result<IncidentView> BreachRegister::AddContainment(const Caller& caller, const IncidentView& view,
                                                    const std::string& action) {
  auto facts = ParseFacts(view.facts);
  Array::Ptr containment = facts->getArray("containment");
  if (!containment) containment = new Array;
  Object::Ptr step = new Object;
  step->set("at", FormatRfc3339(d_.clock().Now()));
  step->set("action", action);
  containment->add(step);
  facts->set("containment", containment);
  return Save(caller, view.row, Stringify(facts), "incident.update", {"containment"});
}

Result<IncidentView> BreachRegister::LoadForContainment(const Caller& caller,
                                                        const std::string& id) {
  const PolicySet& policies = *d_.policies().Current();
  if (!AccessGate::Require(policies, caller, "keys.manage").ok()) {
    GARDE_RETURN_IF_ERROR(AccessGate::Require(policies, caller, "incidents.manage"));
  }
  return Load(id);
}

Status BreachRegister::CheckContainment(const Caller& caller, const std::string& id) {
  return LoadForContainment(caller, id).status();
}

Result<IncidentView> BreachRegister::RecordContainment(const Caller& caller, const std::string& id,
                                                       const std::string& action) {
  GARDE_ASSIGN_OR_RETURN(auto view, LoadForContainment(caller, id));
  return AddContainment(caller, view, action);
}

Result<IncidentView> BreachRegister::NotifySubjects(const Caller& caller, const std::string& id) {
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*d_.policies().Current(), caller, "incidents.manage"));
  GARDE_ASSIGN_OR_RETURN(auto view, Load(id));
  auto facts = ParseFacts(view.facts);
  auto scope = facts->getObject("scope");
  if (!scope) return Conflict("draw the incident's scope first (:scope)");
  if (TextIn(*facts, "nature", "en").empty() || TextIn(*facts, "consequences", "en").empty() ||
      TextIn(*facts, "measures", "en").empty()) {
    return Status(Code::kUnprocessable,
                  "Art. 34(2): the notice needs the breach's nature, likely "
                  "consequences and measures")
        .AddError("nature", "describe the breach in clear and plain language");
  }
  const int64_t now = d_.clock().Now();
  Array::Ptr told = new Array;
  IncidentRow row = view.row;
  row.subjects_notified_at = now;
  auto subjects = scope->getArray("subjects");
  GARDE_RETURN_IF_ERROR(d_.store().Write([&](WriteTx& tx) -> Status {
    told = new Array;
    for (size_t i = 0; subjects && i < subjects->size(); ++i) {
      const std::string subject =
          subjects->getObject(static_cast<unsigned>(i))->optValue<std::string>("subject", "");
      GARDE_ASSIGN_OR_RETURN(auto s, tx.GetSubject(subject));
      if (!s || s->status == "erased") continue;
      JsonWriter payload;
      payload.BeginObject()
          .String("notice", "breach_notice")
          .String("subject", subject)
          .String("incident", row.id)
          .EndObject();
      GARDE_RETURN_IF_ERROR(EmitEvent(tx, "subject.notice", payload.Take(), now));
      Object::Ptr t = new Object;
      t->set("subject", subject);
      t->set("at", FormatRfc3339(now));
      told->add(t);
    }
    return Status::Ok();
  }));
  facts->set("subjects_notified", told);
  return Save(caller, std::move(row), Stringify(facts), "incident.notify_subjects",
              {std::to_string(told->size())});
}

Result<std::vector<std::string>> BreachRegister::NoticeTexts(const std::string& id,
                                                             const std::string& lang) {
  GARDE_ASSIGN_OR_RETURN(auto view, Load(id));
  auto facts = ParseFacts(view.facts);
  return std::vector<std::string>{TextIn(*facts, "nature", lang),
                                  TextIn(*facts, "consequences", lang),
                                  TextIn(*facts, "measures", lang)};
}

std::string IncidentSheetHtml(const IncidentView& incident, const std::string& controller,
                              const std::string& dpo_contact, const std::string& lang) {
  auto facts = ParseFacts(incident.facts);
  const auto& r = incident.row;
  auto row = [&](const char* en, const char* fr, const std::string& value) {
    return "<tr><th scope=\"row\">" + HtmlEscape(Sheet(lang, en, fr)) + "</th><td>" +
           HtmlEscape(value) + "</td></tr>";
  };
  auto date = [](int64_t t) { return t == 0 ? std::string("—") : FormatRfc3339(t); };
  auto list = [&](const char* key) {
    std::string out;
    if (auto arr = facts->getArray(key)) {
      for (size_t i = 0; i < arr->size(); ++i) {
        out += (out.empty() ? "" : ", ") + arr->get(static_cast<unsigned>(i)).toString();
      }
    }
    return out;
  };
  std::string subjects =
      facts->has("approx_subjects") ? facts->get("approx_subjects").toString() : "";
  std::string records = facts->has("approx_records") ? facts->get("approx_records").toString() : "";
  if (auto scope = facts->getObject("scope")) {
    if (auto s = scope->getArray("subjects")) {
      subjects += (subjects.empty() ? "" : " ; ") +
                  std::string(Sheet(lang, "from the audit log: ", "d'après le journal : ")) +
                  std::to_string(s->size());
    }
    records += (records.empty() ? "" : " ; ") +
               std::string(Sheet(lang, "entries read: ", "accès : ")) +
               scope->get("entries").toString();
  }
  std::string body = "<table>";
  body += "<caption>" + HtmlEscape(Sheet(lang, "The incident", "L'incident")) + "</caption>";
  body += row("Reference", "Référence", r.id);
  body += row("Controller", "Responsable du traitement", controller);
  body += row("Title", "Intitulé", TextIn(*facts, "title", lang));
  body += row("Detected on", "Date de détection", date(r.detected_at));
  body += row("Aware since (72-hour clock starts)",
              "Date de prise de connaissance (début du délai de 72 h)", date(r.aware_at));
  body += row("Authority to be notified by", "Notification à l'autorité au plus tard le",
              date(r.authority_due_at));
  body += row("Authority notified on", "Notifiée à l'autorité le", date(r.authority_notified_at));
  body += row("Reasons for any delay (Art. 33(1))", "Motifs du retard éventuel (art. 33.1)",
              TextIn(*facts, "delay_reasons", lang));
  body += "</table><table><caption>" +
          HtmlEscape(Sheet(lang, "(a) Nature of the breach", "(a) Nature de la violation")) +
          "</caption>";
  body += row("Description", "Description", TextIn(*facts, "nature", lang));
  body += row("Categories of data subjects", "Catégories de personnes concernées",
              list("categories_of_subjects"));
  body += row("Approximate number of data subjects", "Nombre approximatif de personnes concernées",
              subjects);
  body += row("Categories of personal data", "Catégories de données concernées",
              list("categories_of_data"));
  body += row("Approximate number of records", "Nombre approximatif d'enregistrements", records);
  body += "</table><table><caption>" +
          HtmlEscape(Sheet(lang, "(b) Contact point", "(b) Point de contact")) + "</caption>";
  body +=
      row("Data protection officer or other contact",
          "Délégué à la protection des données ou autre contact",
          TextIn(*facts, "contact", lang).empty() ? dpo_contact : TextIn(*facts, "contact", lang));
  body += "</table><table><caption>" +
          HtmlEscape(Sheet(lang, "(c) Likely consequences", "(c) Conséquences probables")) +
          "</caption>";
  body += row("Consequences", "Conséquences", TextIn(*facts, "consequences", lang));
  body += "</table><table><caption>" +
          HtmlEscape(
              Sheet(lang, "(d) Measures taken or proposed", "(d) Mesures prises ou envisagées")) +
          "</caption>";
  body += row("Measures, including to mitigate adverse effects",
              "Mesures, y compris pour atténuer les éventuelles conséquences négatives",
              TextIn(*facts, "measures", lang));
  body += row("Customers informed on (Art. 34)", "Personnes informées le (art. 34)",
              date(r.subjects_notified_at));
  body += "</table>";
  return body;
}

}  // namespace garde

#include "garde/domain/consent_ledger.h"

#include <algorithm>
#include <thread>

#include "garde/base/await.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/base/thread_name.h"
#include "garde/domain/subject_vault.h"

namespace garde {

namespace {

// Art. 19 and downstream suppression: every consent event, told to the outbox.
Status EmitConsentChanged(WriteTx& tx, const ConsentEventRow& e) {
  JsonWriter w;
  w.BeginObject()
      .String("subject", e.subject_id)
      .String("purpose", e.purpose)
      .StringOrNull("channel", e.channel)
      .String("event", e.event)
      .String("method", e.method)
      .String("event_id", e.id)
      .String("at", FormatRfc3339(e.at))
      .EndObject();
  return EmitEvent(tx, "consent.changed", w.Take(), e.at);
}

}  // namespace

namespace {

constexpr size_t kMaxBatch = 10000;

// Which contact field a channel reaches, for the suppression check.
const char* ContactFieldFor(const std::string& channel) {
  if (channel == "email") return "email";
  if (channel == "sms" || channel == "phone") return "phone";
  return nullptr;
}

bool IsChannelOf(const Purpose& p, const std::string& channel) {
  return std::find(p.channels.begin(), p.channels.end(), channel) != p.channels.end();
}

}  // namespace

// Builds an event with its signed receipt (ISO/IEC TS 27560 / Kantara CR v1.1 fields,
// Ed25519 over the exact receipt bytes, which travel base64url-encoded beside it).
ConsentEventRow ConsentLedger::MakeEvent(const PolicySet& policies, const Purpose& purpose,
                                         const std::string& subject_id, const std::string& channel,
                                         ConsentEventType type, const std::string& notice_version,
                                         const std::string& method, const std::string& actor,
                                         int64_t at, const std::string& id, int64_t requested_at,
                                         std::optional<int64_t> expires_at) const {
  ConsentEventRow e;
  e.id = id.empty() ? event_ids_.Next() : id;
  e.subject_id = subject_id;
  e.purpose = purpose.id;
  e.channel = channel;
  e.event = ConsentEventName(type);
  e.legal_basis = LegalBasisName(purpose.legal_basis);
  e.notice_version = notice_version;
  e.method = method;
  e.actor = actor;
  e.at = at;
  if (expires_at) {
    e.expires_at = *expires_at;
  } else if (type == ConsentEventType::kGranted && !purpose.validity.empty()) {
    e.expires_at = AddIsoDuration(at, purpose.validity).value_or(0);
  }
  JsonWriter r;
  r.BeginObject()
      .String("version", "garde-consent-receipt/1")
      .String("record_id", e.id)
      .String("subject", e.subject_id)
      .BeginObject("controller")
      .String("name", policies.controller_name())
      .String("contact", policies.controller_contact())
      .EndObject()
      .String("purpose", e.purpose)
      .String("purpose_title", purpose.title)
      .StringOrNull("channel", e.channel)
      .String("event", e.event)
      .String("legal_basis", e.legal_basis)
      .StringOrNull("notice_version", e.notice_version)
      .String("collection_method", e.method)
      .String("collected_at", FormatRfc3339(e.at))
      .Key("expires_at");
  if (e.expires_at != 0) {
    r.String(FormatRfc3339(e.expires_at));
  } else {
    r.Null();
  }
  if (requested_at != 0) {
    // Double opt-in: the grant was asked for, then confirmed from the address on file.
    r.BeginObject("confirmation")
        .String("method", "double_opt_in")
        .String("requested_at", FormatRfc3339(requested_at))
        .String("confirmed_at", FormatRfc3339(e.at))
        .EndObject();
  }
  r.String("withdrawal_method",
           "the preference centre link in every message, one-click unsubscribe, or the "
           "controller's contact above")
      .EndObject();
  const std::string payload = r.Take();
  const auto sig = d_.signer.SignBytes(payload);
  JsonWriter full;
  full.BeginObject()
      .Raw("receipt", payload)
      .BeginObject("signature")
      .String("alg", "Ed25519")
      .String("key_id", d_.signer.key_id_hex())
      .String("signed", Base64UrlEncode(AsBytes(payload)))
      .String("value", Base64Encode(sig.data(), sig.size()))
      .EndObject()
      .EndObject();
  e.receipt = full.Take();
  return e;
}

ConsentEvent ConsentEventFromRow(const ConsentEventRow& r) {
  ConsentEvent e;
  e.id = r.id;
  e.subject_id = r.subject_id;
  e.purpose = r.purpose;
  e.channel = r.channel;
  ParseConsentEventType(r.event, &e.type);
  e.legal_basis = r.legal_basis;
  e.notice_version = r.notice_version;
  e.method = r.method;
  e.actor = r.actor;
  e.at = r.at;
  e.expires_at = r.expires_at;
  e.receipt = r.receipt;
  return e;
}

Status ConsentLedger::ValidatePurposeChannel(const PolicySet& policies, const std::string& purpose,
                                             const std::string& channel,
                                             const Purpose** out) const {
  Status invalid(Code::kUnprocessable, "the consent request is not valid");
  const Purpose* p = policies.FindPurpose(purpose);
  if (p == nullptr) {
    invalid.AddError("purpose", "is not a purpose of the catalogue");
  } else if (!channel.empty() && !IsChannelOf(*p, channel)) {
    std::string list;
    for (const auto& c : p->channels) list += (list.empty() ? "" : ", ") + c;
    invalid.AddError("channel", "is not a channel of " + purpose +
                                    (list.empty() ? " (it has none)" : " (one of: " + list + ")"));
  }
  if (!invalid.errors().empty()) return invalid;
  *out = p;
  return Status::Ok();
}

Result<ConsentEvent> ConsentLedger::Record(const Caller& caller, const std::string& subject_id,
                                           const ConsentRequest& req) {
  return Await<Result<ConsentEvent>>([&](std::function<void(Result<ConsentEvent>)> done) {
    RecordThen(caller, subject_id, req, std::move(done));
  });
}

void ConsentLedger::RecordThen(const Caller& caller, const std::string& subject_id,
                               const ConsentRequest& req,
                               std::function<void(Result<ConsentEvent>)> done) {
  auto policies = d_.policies.Current();
  if (Status may = AccessGate::Require(*policies, caller, "consents.write"); !may.ok()) {
    done(may);
    return;
  }
  const Purpose* purpose = nullptr;
  Status invalid(Code::kUnprocessable, "the consent event is not valid; nothing was stored");
  Status pc = ValidatePurposeChannel(*policies, req.purpose, req.channel, &purpose);
  for (const auto& e : pc.errors()) invalid.AddError(e.field, e.message);
  ConsentEventType type = ConsentEventType::kGranted;
  if (!ParseConsentEventType(req.event, &type)) {
    invalid.AddError("event", "must be granted, withdrawn, refused or objected");
  }
  if (std::find_if(std::begin(kCollectionMethods), std::end(kCollectionMethods),
                   [&](const char* m) { return req.method == m; }) ==
      std::end(kCollectionMethods)) {
    std::string list;
    for (const char* m : kCollectionMethods) list += (list.empty() ? "" : ", ") + std::string(m);
    invalid.AddError("method", "must be one of: " + list);
  }
  int64_t at = d_.clock.Now();
  if (!req.collected_at.empty()) {
    auto t = ParseRfc3339(req.collected_at);
    if (!t || *t > at + 300) {
      invalid.AddError("collected_at", "must be an RFC 3339 time, not in the future");
    } else {
      at = *t;
    }
  }
  if (purpose != nullptr) {
    const bool known =
        std::any_of(purpose->notices.begin(), purpose->notices.end(),
                    [&](const NoticeVersion& n) { return n.version == req.notice_version; });
    std::string versions;
    for (const NoticeVersion& n : purpose->notices) {
      versions += (versions.empty() ? "" : ", ") + n.version;
    }
    versions = versions.empty() ? " (it has none)" : " (one of: " + versions + ")";
    if (!req.notice_version.empty() && !known) {
      invalid.AddError("notice_version", "is not a notice version of " + purpose->id + versions);
    } else if (req.notice_version.empty() && type == ConsentEventType::kGranted &&
               purpose->legal_basis == LegalBasis::kConsent) {
      invalid.AddError("notice_version", "a grant must name the notice version shown" + versions);
    }
  }
  if (!invalid.errors().empty()) {
    done(invalid);
    return;
  }

  // What the write needs, kept until it has committed (it may run again: Store::WriteRerunnable).
  struct Write {
    std::shared_ptr<const PolicySet> policies;
    const Purpose* purpose;  // of `policies`
    Caller caller;
    std::string subject_id;
    ConsentRequest req;
    int64_t at;
    ConsentEvent e;
    ConsentEventRow row;
    TombstoneEntries kept;
  };
  auto w =
      std::make_shared<Write>(Write{policies, purpose, caller, subject_id, req, at, {}, {}, {}});
  // Either write's answer: the event as recorded (or asked to be confirmed), or why not.
  auto answer = [w, done = std::move(done)](Status written) {
    if (!written.ok()) {
      done(written);
    } else {
      done(std::move(w->e));
    }
  };
  if (type == ConsentEventType::kGranted && NeedsConfirmation(*purpose, req.channel, req.method)) {
    ConsentEvent& pending = w->e;
    pending.subject_id = subject_id;
    pending.purpose = purpose->id;
    pending.channel = req.channel;
    pending.type = type;
    pending.legal_basis = LegalBasisName(purpose->legal_basis);
    pending.notice_version = req.notice_version;
    pending.method = req.method;
    pending.actor = caller.key_id;
    pending.at = at;
    d_.store.WriteThen(
        [this, w](WriteTx& tx) -> Status {
          GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(w->subject_id));
          if (!row) return NotFound("no such subject");
          GARDE_RETURN_IF_ERROR(RefuseGone(*row));
          GARDE_ASSIGN_OR_RETURN(
              auto confirmation,
              AskConfirmationIn(tx, w->caller, *w->purpose, w->subject_id, w->req.channel,
                                w->req.notice_version, w->req.method, "", w->at));
          w->e.confirmation_id = confirmation.id;
          w->e.confirmation_expires_at = confirmation.expires_at;
          return Status::Ok();
        },
        Durability::kImmediate, /*rerunnable=*/false, std::move(answer));
    return;
  }
  w->row = MakeEvent(*policies, *purpose, subject_id, req.channel, type, req.notice_version,
                     req.method, caller.key_id, at);
  w->e = ConsentEventFromRow(w->row);
  d_.store.WriteThen(
      [this, w](WriteTx& tx) -> Status {
        w->kept = {};
        GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(w->subject_id));
        if (!row) return NotFound("no such subject");
        GARDE_RETURN_IF_ERROR(RefuseGone(*row));
        GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(w->row));
        GARDE_RETURN_IF_ERROR(EmitConsentChanged(tx, w->row));
        if (ConsentTombstone::Kept(w->row)) {
          w->kept.consents.push_back(ConsentTombstone::From(w->row));
        }
        if (w->e.type == ConsentEventType::kObjected && w->purpose->marketing) {
          GARDE_RETURN_IF_ERROR(
              SuppressContactsIn(tx, w->subject_id, "objection", w->e.at, &w->kept.suppressions));
        }
        GARDE_RETURN_IF_ERROR(TombstoneLog::WriteAhead(tx, w->kept));
        return d_.journal.Record(&tx, w->caller,
                                 {"consent.record",
                                  w->subject_id,
                                  "",
                                  "ok",
                                  {w->e.purpose, ConsentEventName(w->e.type)},
                                  1});
      },
      Durability::kImmediate, /*rerunnable=*/true, std::move(answer));
}

bool ConsentLedger::NeedsConfirmation(const Purpose& purpose, const std::string& channel,
                                      const std::string& method) {
  if (!purpose.double_opt_in || method == "import") return false;
  if (channel == "email") return true;
  return channel.empty() && std::find(purpose.channels.begin(), purpose.channels.end(), "email") !=
                                purpose.channels.end();
}

Result<ConsentConfirmationRow> ConsentLedger::AskConfirmationIn(
    WriteTx& tx, const Caller& caller, const Purpose& purpose, const std::string& subject_id,
    const std::string& channel, const std::string& notice_version, const std::string& method,
    const std::string& lang, int64_t at) const {
  ConsentConfirmationRow c;
  c.id = RandomId("ccf_");
  c.subject_id = subject_id;
  c.purpose = purpose.id;
  c.channel = channel;
  c.notice_version = notice_version;
  c.method = method;
  c.actor = caller.key_id;
  c.status = "pending";
  c.requested_at = at;
  c.expires_at = d_.clock.Now() + kConfirmationTtl;
  GARDE_RETURN_IF_ERROR(tx.PutConsentConfirmation(c));
  // For the mailer (subject.notice): the link is minted when the message is sent.
  JsonWriter w;
  w.BeginObject()
      .String("notice", "consent_confirm")
      .String("subject", subject_id)
      .String("confirmation", c.id)
      .String("purpose", purpose.id)
      .String("notice_version", notice_version)
      .String("link_expires_at", FormatRfc3339(c.expires_at));
  if (!lang.empty()) w.String("lang", lang);
  w.EndObject();
  GARDE_RETURN_IF_ERROR(EmitEvent(tx, "subject.notice", w.Take(), d_.clock.Now()));
  GARDE_RETURN_IF_ERROR(d_.journal.Record(
      &tx, caller, {"consent.ask_confirmation", subject_id, "", "ok", {purpose.id, c.id}, 1}));
  return c;
}

Result<ConsentConfirmationRow> ConsentLedger::Confirmation(const SubjectTokenClaims& claims) {
  std::optional<ConsentConfirmationRow> found;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto row, tx.GetConsentConfirmation(claims.scope));
    found = std::move(row);
    return Status::Ok();
  }));
  if (claims.use != "confirm" || !found || found->subject_id != claims.subject) {
    return NotFound("this link is not valid or has expired");
  }
  return std::move(*found);
}

Result<ConsentEvent> ConsentLedger::Confirm(const SubjectTokenClaims& claims,
                                            const RequestOrigin& origin) {
  auto policies = d_.policies.Current();
  const Caller subject = SubjectCallerFrom(claims.subject, origin);
  const int64_t now = d_.clock.Now();
  std::optional<ConsentEvent> out;
  Status done = d_.store.Write([&](WriteTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto found, tx.GetConsentConfirmation(claims.scope));
    if (claims.use != "confirm" || !found || found->subject_id != claims.subject) {
      return NotFound("this link is not valid or has expired");
    }
    ConsentConfirmationRow c = *found;
    if (c.status != "pending" || c.expires_at < now) {
      return Conflict("this confirmation link has already been used or has expired");
    }
    GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(c.subject_id));
    if (!row) return Conflict("the subject has been erased");
    GARDE_RETURN_IF_ERROR(RefuseGone(*row));
    const Purpose* purpose = policies->FindPurpose(c.purpose);
    if (purpose == nullptr) return Conflict("the purpose is no longer offered");
    const ConsentEventRow e =
        MakeEvent(*policies, *purpose, c.subject_id, c.channel, ConsentEventType::kGranted,
                  c.notice_version, c.method, c.actor, now, "", c.requested_at);
    GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(e));
    GARDE_RETURN_IF_ERROR(EmitConsentChanged(tx, e));
    c.status = "confirmed";
    c.confirmed_at = now;
    c.event_id = e.id;
    GARDE_RETURN_IF_ERROR(tx.PutConsentConfirmation(c));
    out = ConsentEventFromRow(e);
    return d_.journal.Record(
        &tx, subject, {"consent.confirm", c.subject_id, "", "ok", {c.purpose, c.id, e.id}, 1});
  });
  if (!done.ok()) return done;
  return std::move(*out);
}

Status ConsentLedger::KeepTombstones(const TombstoneEntries& entries) const {
  // Committed already: should this fail, the answer says so, the change stands, and the next
  // start copies the erasure out of the tombstones table.
  if (d_.tombstones == nullptr) return Status::Ok();
  return d_.tombstones->Append(entries);
}

Status ConsentLedger::SuppressContactsIn(WriteTx& tx, const std::string& subject_id,
                                         const std::string& reason, int64_t at,
                                         std::vector<SuppressionTombstone>* kept) {
  // Art. 21(3): the contacts are never used for direct marketing again, even after the
  // record is erased. The digests were computed when the contacts were written.
  std::vector<std::string> kinds;
  for (const char* field : {"email", "phone"}) {
    GARDE_ASSIGN_OR_RETURN(auto digests, tx.IndexDigestsOf(subject_id, "~" + std::string(field)));
    bool added = false;
    for (const auto& digest : digests) {
      GARDE_ASSIGN_OR_RETURN(auto already, tx.IsSuppressed(field, digest));
      if (already) continue;  // told once, when it was first suppressed
      GARDE_RETURN_IF_ERROR(tx.PutSuppression(field, digest, reason, at));
      if (kept != nullptr) kept->push_back({field, digest, reason, at});
      added = true;
    }
    if (added) kinds.push_back(field);
  }
  if (kinds.empty()) return Status::Ok();
  JsonWriter w;
  w.BeginObject().String("subject", subject_id).BeginArray("contacts");
  for (const auto& k : kinds) w.String(k);
  w.EndArray().String("reason", reason).String("at", FormatRfc3339(at)).EndObject();
  return EmitEvent(tx, "suppression.added", w.Take(), at);
}

Result<bool> ConsentLedger::Reinstate(WriteTx& tx, const PolicySet& policies,
                                      const ConsentTombstone& t) const {
  const Purpose* p = policies.FindPurpose(t.purpose);
  ConsentEventType type = ConsentEventType::kWithdrawn;
  if (p == nullptr || !ParseConsentEventType(t.event, &type)) return false;
  ConsentEventRow row = MakeEvent(policies, *p, t.subject_id, t.channel, type, t.notice_version,
                                  t.method, t.actor, t.at, t.event_id);
  GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(row));
  return true;
}

Status ConsentLedger::ObjectIn(WriteTx& tx, const PolicySet& policies,
                               const std::string& subject_id,
                               const std::vector<const Purpose*>& purposes,
                               const std::string& method, const std::string& actor, int64_t at,
                               TombstoneEntries* kept) const {
  bool marketing = false;
  for (const Purpose* p : purposes) {
    const ConsentEventRow row =
        MakeEvent(policies, *p, subject_id, "", ConsentEventType::kObjected, "", method, actor, at);
    GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(row));
    GARDE_RETURN_IF_ERROR(EmitConsentChanged(tx, row));
    kept->consents.push_back(ConsentTombstone::From(row));
    marketing |= p->marketing;
  }
  if (marketing) {
    GARDE_RETURN_IF_ERROR(SuppressContactsIn(tx, subject_id, "objection", at, &kept->suppressions));
  }
  return Status::Ok();
}

Status ConsentLedger::RecordCorrectionsIn(WriteTx& tx, const PolicySet& policies,
                                          const std::string& subject_id,
                                          const std::vector<ConsentCorrection>& corrections,
                                          const std::string& method, const std::string& actor,
                                          int64_t at, std::vector<std::string>* ids,
                                          TombstoneEntries* kept) const {
  bool suppress = false;
  for (const ConsentCorrection& c : corrections) {
    const Purpose* purpose = policies.FindPurpose(c.purpose);
    if (purpose == nullptr) return Internal("a correction names an unknown purpose");
    const ConsentEventRow row = MakeEvent(
        policies, *purpose, subject_id, c.channel, c.type, c.notice_version, method, actor, at, "",
        0,
        c.type == ConsentEventType::kGranted ? std::optional<int64_t>(c.expires_at) : std::nullopt);
    GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(row));
    GARDE_RETURN_IF_ERROR(EmitConsentChanged(tx, row));
    if (ConsentTombstone::Kept(row)) kept->consents.push_back(ConsentTombstone::From(row));
    ids->push_back(row.id);
    suppress |= c.type == ConsentEventType::kObjected && purpose->marketing;
  }
  if (suppress) {
    GARDE_RETURN_IF_ERROR(SuppressContactsIn(tx, subject_id, "objection", at, &kept->suppressions));
  }
  return Status::Ok();
}

Result<std::vector<ConsentEvent>> ConsentLedger::History(const Caller& caller,
                                                         const std::string& subject_id) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "consents.read"));
  std::vector<ConsentEvent> out;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(subject_id));
    if (!row) return NotFound("no such subject");
    GARDE_ASSIGN_OR_RETURN(auto events, tx.ConsentEventsOf(subject_id));
    for (const auto& r : events) out.push_back(ConsentEventFromRow(r));
    return Status::Ok();
  }));
  GARDE_RETURN_IF_ERROR(d_.journal.Record(
      nullptr, caller,
      {"consent.history", subject_id, "", "ok", {}, static_cast<int64_t>(out.size())}));
  return out;
}

ConsentAnswer ConsentLedger::DecideFrom(const ConsentFacts* facts, const PolicySet& policies,
                                        const std::string& id, const Purpose& purpose,
                                        const std::string& channel, int64_t now) {
  if (facts == nullptr) {
    ConsentAnswer a{id, purpose.id, channel, {}};
    a.decision.reason = "not_found";
    a.decision.basis = LegalBasisName(purpose.legal_basis);
    return a;
  }
  const ConsentFacts& f = *facts;
  const char* contact = ContactFieldFor(channel);
  const bool suppressed =
      contact != nullptr && std::find(f.suppressed_contacts.begin(), f.suppressed_contacts.end(),
                                      contact) != f.suppressed_contacts.end();
  return {id, purpose.id, channel,
          Decide(f.status, suppressed, f.events, policies, purpose, channel, now)};
}

Result<std::vector<ConsentLedger::RateAt>> ConsentLedger::RatesOver(
    const Caller& caller, const std::string& purpose_id, const std::string& channel,
    const std::vector<int64_t>& instants) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "reports.read"));
  const Purpose* purpose = nullptr;
  GARDE_RETURN_IF_ERROR(ValidatePurposeChannel(*policies, purpose_id, channel, &purpose));
  std::vector<RateAt> out;
  for (int64_t t : instants) out.push_back({t, 0, 0});
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto suppressed, tx.SuppressedContactsIn("", ""));
    size_t next_suppressed = 0;
    ConsentFacts then;
    for (std::string after;;) {
      GARDE_ASSIGN_OR_RETURN(auto page, tx.ScanSubjects(after, 1000));
      if (page.empty()) return Status::Ok();
      GARDE_ASSIGN_OR_RETURN(auto facts, FactsOfPage(tx, page, suppressed, &next_suppressed));
      for (size_t i = 0; i < page.size(); ++i) {
        const SubjectRow& row = page[i];
        after = row.id;
        if (row.status != "active" && row.status != "restricted") continue;
        const ConsentFacts& now = *facts[i];
        for (RateAt& r : out) {
          if (row.created_at > r.at) continue;
          then.status = now.status;
          then.suppressed_contacts = now.suppressed_contacts;
          then.events.clear();
          for (const auto& e : now.events) {
            if (e.at <= r.at) then.events.push_back(e);
          }
          ++r.customers;
          r.allowed +=
              DecideFrom(&then, *policies, row.id, *purpose, channel, r.at).decision.allowed;
        }
      }
    }
  }));
  GARDE_RETURN_IF_ERROR(d_.journal.Record(nullptr, caller,
                                          {"report.consent_rates",
                                           "",
                                           "",
                                           "ok",
                                           {purpose_id, channel},
                                           out.empty() ? 0 : out.back().customers}));
  return out;
}

ConsentLedger::FactsPtr ConsentLedger::MakeFacts(const std::string& status,
                                                 std::vector<std::string> suppressed,
                                                 std::vector<ConsentFactRow> rows) {
  // Most active subjects have no event and nothing suppressed: they share one object.
  static const FactsPtr kActiveBlank =
      std::make_shared<ConsentFacts>(ConsentFacts{"active", {}, {}});
  if (status == "active" && suppressed.empty() && rows.empty()) return kActiveBlank;
  auto facts = std::make_shared<ConsentFacts>();
  facts->status = status;
  facts->suppressed_contacts = std::move(suppressed);
  facts->events.reserve(rows.size());
  for (auto& r : rows) {
    ConsentFact e;
    e.purpose = std::move(r.purpose);
    e.channel = std::move(r.channel);
    ParseConsentEventType(r.event, &e.type);
    e.at = r.at;
    e.expires_at = r.expires_at;
    facts->events.push_back(std::move(e));
  }
  return facts;
}

Result<ConsentLedger::FactsPtr> ConsentLedger::LoadFacts(ReadTx& tx, const SubjectRow& row) {
  GARDE_ASSIGN_OR_RETURN(auto suppressed, tx.SuppressedContactsOf(row.id));
  GARDE_ASSIGN_OR_RETURN(auto events, tx.ConsentFactsOf(row.id));
  return MakeFacts(row.status, std::move(suppressed), std::move(events));
}

Result<std::vector<ConsentLedger::FactsPtr>> ConsentLedger::FactsOfPage(
    ReadTx& tx, const std::vector<SubjectRow>& page,
    const std::vector<std::pair<std::string, std::string>>& suppressed, size_t* next_suppressed) {
  if (page.empty()) return std::vector<FactsPtr>{};
  std::vector<std::vector<ConsentFactRow>> events(page.size());
  size_t k = 0;
  GARDE_RETURN_IF_ERROR(tx.ScanConsentFacts(page.front().id, page.back().id,
                                            [&](std::string_view subject, ConsentFactRow&& row) {
                                              const size_t at = SeekSubjectRow(page, &k, subject);
                                              if (at < page.size())
                                                events[at].push_back(std::move(row));
                                            }));
  std::vector<FactsPtr> out;
  out.reserve(page.size());
  size_t& next = *next_suppressed;
  for (size_t i = 0; i < page.size(); ++i) {
    std::vector<std::string> contacts;
    while (next < suppressed.size() && suppressed[next].first < page[i].id) ++next;
    while (next < suppressed.size() && suppressed[next].first == page[i].id) {
      contacts.push_back(suppressed[next++].second);
    }
    out.push_back(MakeFacts(page[i].status, std::move(contacts), std::move(events[i])));
  }
  return out;
}

namespace {

std::string Pack(const ConsentFacts& facts) {
  ByteWriter w;
  WriteConsentFacts(w, facts);
  return std::move(w.data());
}

std::optional<std::string> Pack(const ConsentLedger::FactsPtr& facts) {
  if (facts == nullptr) return std::nullopt;
  return Pack(*facts);
}

bool Unpack(std::string_view packed, ConsentFacts* out) {
  ByteReader r(packed);
  return ReadConsentFacts(r, out) && r.done();
}

// Where a decision unpacks kept facts: one per thread, its strings and vectors reused.
ConsentFacts& Scratch() {
  thread_local ConsentFacts facts;
  return facts;
}

}  // namespace

Result<size_t> ConsentLedger::WarmUp() {
  // The suppressed contacts once (the query walks the whole list whatever the range asked),
  // then pages of subjects with their facts; what is suppressed after `read_at` reaches the
  // kept facts as a change of the subject, like any other.
  std::vector<std::pair<std::string, std::string>> suppressed;
  int64_t read_at = 0;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto position, facts_.Sync(tx));
    read_at = position;
    GARDE_ASSIGN_OR_RETURN(auto list, tx.SuppressedContactsIn("", ""));
    suppressed = std::move(list);
    return Status::Ok();
  }));
  size_t next_suppressed = 0;  // pages come in id order, and so does the list
  return facts_.Fill(
      d_.store,
      [&](ReadTx& tx,
          const std::vector<SubjectRow>& page) -> Result<std::vector<std::optional<std::string>>> {
        GARDE_ASSIGN_OR_RETURN(auto facts, FactsOfPage(tx, page, suppressed, &next_suppressed));
        std::vector<std::optional<std::string>> packed;
        packed.reserve(facts.size());
        for (const auto& f : facts) packed.push_back(Pack(f));
        return packed;
      },
      read_at);
}

bool ConsentLedger::FindKeptInto(const std::string& id, ConsentFacts* out) const {
  return facts_.Find(id, [&](std::string_view kept) { return Unpack(kept, out); });
}

Result<bool> ConsentLedger::KeptFactsInto(ReadTx& tx, int64_t position, const std::string& id,
                                          ConsentFacts* out) {
  bool unreadable = false;
  if (facts_.Find(id, [&](std::string_view kept) {
        unreadable = !Unpack(kept, out);
        return true;
      })) {
    if (unreadable) return Internal("kept consent facts do not read back");
    return true;
  }
  GARDE_ASSIGN_OR_RETURN(auto found, tx.GetSubject(id));
  if (!found) return false;
  GARDE_ASSIGN_OR_RETURN(auto facts, LoadFacts(tx, *found));
  if (facts == nullptr) return false;
  facts_.Keep(position, id, Pack(*facts));
  *out = *facts;
  return true;
}

Result<ConsentLedger::FactsPtr> ConsentLedger::KeptFacts(ReadTx& tx, int64_t position,
                                                         const std::string& id) {
  auto facts = std::make_shared<ConsentFacts>();
  GARDE_ASSIGN_OR_RETURN(auto found, KeptFactsInto(tx, position, id, facts.get()));
  if (!found) return FactsPtr();
  return FactsPtr(std::move(facts));
}

Result<ConsentAnswer> ConsentLedger::DecideKept(ReadTx& tx, int64_t position,
                                                const PolicySet& policies, const std::string& id,
                                                const Purpose& purpose, const std::string& channel,
                                                int64_t now) {
  ConsentFacts& facts = Scratch();
  GARDE_ASSIGN_OR_RETURN(auto found, KeptFactsInto(tx, position, id, &facts));
  return DecideFrom(found ? &facts : nullptr, policies, id, purpose, channel, now);
}

ConsentDecision ConsentLedger::DecideActivityFrom(const ConsentFacts* facts,
                                                  const PolicySet& policies,
                                                  const Activity& activity, int64_t now) {
  std::optional<ConsentDecision> refusal;
  for (const auto& id : activity.purposes) {
    const Purpose* p = policies.FindPurpose(id);
    if (p == nullptr) continue;
    ConsentDecision d = ShownDecision(facts, policies, *p, now);
    if (d.allowed) return d;
    if (!refusal) refusal = d;
  }
  if (refusal) return *refusal;
  ConsentDecision none;
  none.reason = "no_consent";
  return none;
}

Result<ConsentDecision> ConsentLedger::PermitsActivity(const PolicySet& policies,
                                                       const std::string& subject_id,
                                                       const Activity& activity,
                                                       ReadTx* caller_tx) {
  const int64_t now = d_.clock.Now();
  const uint64_t epoch = d_.store.ChangeEpoch();
  ConsentFacts& facts = Scratch();
  if (facts_.CurrentAt(epoch) && FindKeptInto(subject_id, &facts)) {
    return DecideActivityFrom(&facts, policies, activity, now);
  }
  ConsentDecision out;
  // The epoch marks the kept facts current only for a transaction begun after it was read.
  auto decide = [&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto position,
                           caller_tx != nullptr ? facts_.Sync(tx) : facts_.Sync(tx, epoch));
    GARDE_ASSIGN_OR_RETURN(auto found, KeptFactsInto(tx, position, subject_id, &facts));
    if (!found) return NotFound("no such subject");
    out = DecideActivityFrom(&facts, policies, activity, now);
    return Status::Ok();
  };
  GARDE_RETURN_IF_ERROR(caller_tx != nullptr ? decide(*caller_tx) : d_.store.Read(decide));
  return out;
}

Result<ConsentAnswer> ConsentLedger::Check(const Caller& caller, const std::string& subject_id,
                                           const std::string& purpose_id,
                                           const std::string& channel) {
  GARDE_ASSIGN_OR_RETURN(auto batch, CheckMany(caller, {subject_id}, purpose_id, channel));
  if (batch.front().decision.reason == "not_found") return NotFound("no such subject");
  return batch.front();
}

Result<std::vector<ConsentAnswer>> ConsentLedger::CheckMany(const Caller& caller,
                                                            const std::vector<std::string>& ids,
                                                            const std::string& purpose_id,
                                                            const std::string& channel) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "consent.check"));
  const Purpose* purpose = nullptr;
  GARDE_RETURN_IF_ERROR(ValidatePurposeChannel(*policies, purpose_id, channel, &purpose));
  if (ids.size() > kMaxBatch) {
    return Status(Code::kPayloadTooLarge,
                  "check at most " + std::to_string(kMaxBatch) + " subjects at once");
  }
  const int64_t now = d_.clock.Now();
  std::vector<ConsentAnswer> out(ids.size());
  // Decides ids [from, to): from the kept facts while nothing has been committed since
  // they were last brought up to date, the rest in one read transaction.
  auto decide_range = [&](size_t from, size_t to) {
    const uint64_t epoch = d_.store.ChangeEpoch();
    if (facts_.CurrentAt(epoch)) {
      ConsentFacts& facts = Scratch();
      for (; from < to; ++from) {
        if (!FindKeptInto(ids[from], &facts)) break;
        out[from] = DecideFrom(&facts, *policies, ids[from], *purpose, channel, now);
      }
      if (from == to) return Status::Ok();
    }
    return d_.store.Read([&](ReadTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto position, facts_.Sync(tx, epoch));
      for (size_t i = from; i < to; ++i) {
        GARDE_ASSIGN_OR_RETURN(auto a,
                               DecideKept(tx, position, *policies, ids[i], *purpose, channel, now));
        out[i] = std::move(a);
      }
      return Status::Ok();
    });
  };
  // A large batch is decided in two halves on two connections at once (a campaign list is
  // no transaction: each answer is as of the moment it is decided).
  constexpr size_t kSplitAt = 2000;
  if (ids.size() < kSplitAt) {
    GARDE_RETURN_IF_ERROR(decide_range(0, ids.size()));
  } else {
    const size_t half = ids.size() / 2;
    Status second = Status::Ok();
    std::thread helper([&] {
      NameThisThread("garde-helper");
      second = decide_range(half, ids.size());
    });
    Status first = decide_range(0, half);
    helper.join();
    GARDE_RETURN_IF_ERROR(first);
    GARDE_RETURN_IF_ERROR(second);
  }
  int64_t allowed = 0;
  for (const auto& a : out) allowed += a.decision.allowed ? 1 : 0;
  GARDE_RETURN_IF_ERROR(
      d_.journal.Record(nullptr, caller,
                        {"consent.check",
                         ids.size() == 1 ? ids.front() : "",
                         purpose_id,
                         "ok",
                         {channel.empty() ? "*" : channel, "allowed:" + std::to_string(allowed)},
                         static_cast<int64_t>(out.size())}));
  return out;
}

namespace {

// The subject a token names, if it is still on file (an erased subject's links stop working).
Result<SubjectRow> TokenSubject(ReadTx& tx, const SubjectTokenClaims& claims) {
  GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(claims.subject));
  if (!row || row->status == "erased") {
    return NotFound("this link is not valid or has expired");
  }
  return *row;
}

}  // namespace

Result<int> ConsentLedger::UnsubscribeByToken(const SubjectTokenClaims& claims,
                                              const RequestOrigin& origin) {
  auto policies = d_.policies.Current();
  const Caller subject = SubjectCallerFrom(claims.subject, origin);
  std::vector<const Purpose*> purposes;
  for (const auto& p : policies->purposes()) {
    if (p.marketing && (claims.scope == "*" || claims.scope == p.id)) purposes.push_back(&p);
  }
  if (purposes.empty()) return NotFound("this link is not valid or has expired");
  int recorded = 0;
  const int64_t now = d_.clock.Now();
  TombstoneEntries kept;
  Status s = d_.store.Write([&](WriteTx& tx) -> Status {
    recorded = 0;
    kept = {};
    GARDE_ASSIGN_OR_RETURN(auto row, TokenSubject(tx, claims));
    GARDE_ASSIGN_OR_RETURN(auto facts, LoadFacts(tx, row));
    for (const Purpose* p : purposes) {
      // Idempotent (a mail client may POST twice): nothing to record once no channel is open.
      // A purpose-wide withdrawal overrides every earlier channel grant.
      if (!ConsentOpenOnAnyChannel(facts->events, *policies, *p, now)) continue;
      const ConsentEventRow e =
          MakeEvent(*policies, *p, claims.subject, "", ConsentEventType::kWithdrawn, "",
                    "one_click_unsubscribe", "subject-token", now);
      GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(e));
      GARDE_RETURN_IF_ERROR(EmitConsentChanged(tx, e));
      kept.consents.push_back(ConsentTombstone::From(e));
      GARDE_RETURN_IF_ERROR(d_.journal.Record(
          &tx, subject, {"consent.unsubscribe", claims.subject, "", "ok", {p->id}, 1}));
      ++recorded;
    }
    return TombstoneLog::WriteAhead(tx, kept);
  });
  if (!s.ok()) return s;
  return recorded;
}

ConsentDecision ConsentLedger::ShownDecision(const ConsentFacts* facts, const PolicySet& policies,
                                             const Purpose& purpose, int64_t now) {
  std::optional<ConsentDecision> whole;
  for (const auto& channel : DecisionChannels(purpose)) {
    ConsentDecision d = DecideFrom(facts, policies, "", purpose, channel, now).decision;
    if (d.allowed) return d;
    if (!whole) whole = d;
  }
  return *whole;
}

Result<std::vector<ConsentLedger::Preference>> ConsentLedger::Preferences(
    const SubjectTokenClaims& claims) {
  auto policies = d_.policies.Current();
  std::vector<Preference> out;
  const int64_t now = d_.clock.Now();
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto row, TokenSubject(tx, claims));
    GARDE_ASSIGN_OR_RETURN(auto facts, LoadFacts(tx, row));
    auto events = tx.ConsentEventsOf(claims.subject);
    if (!events.ok()) return events.status();
    GARDE_ASSIGN_OR_RETURN(auto pending, tx.PendingConfirmationsOf(claims.subject));
    for (const auto& p : policies->purposes()) {
      if (!p.marketing) continue;
      Preference pref{&p, ShownDecision(facts.get(), *policies, p, now), "", false};
      if (pref.decision.allowed) {
        // The notice of the latest grant of the purpose (events are in recording order).
        for (const auto& e : events.value()) {
          if (e.purpose == p.id && e.event == "granted") pref.notice_version = e.notice_version;
        }
      }
      for (const auto& c : pending) {
        pref.pending |= c.purpose == p.id && c.expires_at >= now;
      }
      out.push_back(std::move(pref));
    }
    return Status::Ok();
  }));
  return out;
}

Result<int> ConsentLedger::ApplyPreferences(const SubjectTokenClaims& claims,
                                            const std::map<std::string, bool>* wanted, bool gpc,
                                            const RequestOrigin& origin, const std::string& lang,
                                            int* asked) {
  auto policies = d_.policies.Current();
  const Caller subject = SubjectCallerFrom(claims.subject, origin);
  const int64_t now = d_.clock.Now();
  int recorded = 0;
  if (asked != nullptr) *asked = 0;
  TombstoneEntries kept;
  Status s = d_.store.Write([&](WriteTx& tx) -> Status {
    recorded = 0;
    if (asked != nullptr) *asked = 0;
    kept = {};
    GARDE_ASSIGN_OR_RETURN(auto row, TokenSubject(tx, claims));
    GARDE_ASSIGN_OR_RETURN(auto facts, LoadFacts(tx, row));
    GARDE_ASSIGN_OR_RETURN(auto pending, tx.PendingConfirmationsOf(claims.subject));
    for (const auto& p : policies->purposes()) {
      if (!p.marketing) continue;
      // "On" while any channel is open: turning a purpose off (or a GPC signal) withdraws it
      // as a whole, which overrides channel grants; turning it on grants it as a whole.
      const bool allowed = ConsentOpenOnAnyChannel(facts->events, *policies, p, now);
      bool want = allowed;
      std::string method = "preference_centre";
      if (wanted != nullptr) {
        auto it = wanted->find(p.id);
        want = it != wanted->end() && it->second;
      }
      if (gpc && p.gpc_opt_out) {
        want = false;  // the browser's Global Privacy Control signal is an opt-out
        method = "gpc";
      }
      if (want == allowed) continue;
      std::string notice;
      if (want && p.legal_basis == LegalBasis::kConsent) {
        const NoticeVersion* shown = p.NoticeAt(FormatRfc3339(now).substr(0, 10));
        if (shown == nullptr) continue;  // nothing to consent to without a notice
        notice = shown->version;
      }
      if (want && NeedsConfirmation(p, "", method)) {
        // Asked once: a second save before the click sends no second message.
        const bool waiting =
            std::any_of(pending.begin(), pending.end(), [&](const ConsentConfirmationRow& c) {
              return c.purpose == p.id && c.expires_at >= now;
            });
        if (waiting) continue;
        auto confirmation =
            AskConfirmationIn(tx, subject, p, claims.subject, "", notice, method, lang, now);
        if (!confirmation.ok()) return confirmation.status();
        if (asked != nullptr) ++*asked;
        continue;
      }
      const ConsentEventRow e =
          MakeEvent(*policies, p, claims.subject, "",
                    want ? ConsentEventType::kGranted : ConsentEventType::kWithdrawn, notice,
                    method, "subject-token", now);
      GARDE_RETURN_IF_ERROR(tx.InsertConsentEvent(e));
      GARDE_RETURN_IF_ERROR(EmitConsentChanged(tx, e));
      if (ConsentTombstone::Kept(e)) kept.consents.push_back(ConsentTombstone::From(e));
      GARDE_RETURN_IF_ERROR(d_.journal.Record(
          &tx, subject, {"consent.preferences", claims.subject, "", "ok", {p.id, e.event}, 1}));
      ++recorded;
    }
    return TombstoneLog::WriteAhead(tx, kept);
  });
  if (!s.ok()) return s;
  return recorded;
}

Result<std::vector<bool>> ConsentLedger::Suppressed(const Caller& caller, const std::string& kind,
                                                    const std::vector<std::string>& values) {
  auto policies = d_.policies.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "suppressions.check"));
  const FieldSpec* spec = policies->schema().Find(kind);
  std::vector<bool> out(values.size(), false);
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    for (size_t i = 0; i < values.size(); ++i) {
      if (spec == nullptr) continue;
      std::string why;
      auto norm = d_.standard.Normalize(*spec, FieldValue::String(values[i]), &why);
      if (!norm) continue;
      GARDE_ASSIGN_OR_RETURN(
          auto hit, tx.IsSuppressed(kind, SuppressionDigest(d_.suppression, kind, norm->text)));
      out[i] = hit;
    }
    return Status::Ok();
  }));
  GARDE_RETURN_IF_ERROR(d_.journal.Record(
      nullptr, caller,
      {"suppression.check", "", "", "ok", {kind}, static_cast<int64_t>(values.size())}));
  return out;
}

}  // namespace garde

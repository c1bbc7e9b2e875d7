#include "garde/domain/subject_requests.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Parser.h>
#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/domain/subject_merges.h"

namespace garde {

// What a request carries that may be personal data, sealed under the subject's data key.
struct RequestDesk::Texts {
  std::string note, verification_note, extension_reason, rejection_reason;
  // Rectification: encoded field values (EncodeFieldValue); nullopt removes the field.
  std::map<std::string, std::optional<std::string>> changes;
  std::vector<std::string> purposes;
  bool suppress = false;
  bool destroyed = false;  // the subject's key is gone: nothing can be opened or sealed
};

namespace {

constexpr size_t kAuditPage = 1000;

using S = RequestState;
using Step = RequestStep;
// The lifecycle (SPEC §2.5): each step, the state it may start from, and where it leads. A
// step from any other state is refused.
struct Move {
  RequestStep step;
  RequestState from, to;
};
constexpr Move kLifecycle[] = {
    {Step::kVerify, S::kReceived, S::kVerified},
    {Step::kStart, S::kVerified, S::kInProgress},
    {Step::kExtend, S::kReceived, S::kReceived},
    {Step::kExtend, S::kVerified, S::kVerified},
    {Step::kExtend, S::kInProgress, S::kInProgress},
    {Step::kReject, S::kReceived, S::kRejected},
    {Step::kReject, S::kVerified, S::kRejected},
    {Step::kReject, S::kInProgress, S::kRejected},
    {Step::kComplete, S::kVerified, S::kCompleted},
    {Step::kComplete, S::kInProgress, S::kCompleted},
};
constexpr const char* kStateNames[] = {"received", "verified", "in_progress", "completed",
                                       "rejected"};

// Why `step` is refused from `from`.
std::string Refusal(RequestState from, RequestStep step) {
  if (from == S::kReceived) return "verify the requester's identity first";
  const std::string state = NameOf(from);
  if (step == Step::kVerify) return "the request is " + state + ", not awaiting verification";
  if (step == Step::kExtend) return "the request is " + state + "; it cannot be extended";
  return "the request is " + state + (IsOpen(from) ? "" : " already");
}

std::string Sha256Hex(std::string_view data) {
  uint8_t digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const uint8_t*>(data.data()), data.size());
  return HexEncode(digest, sizeof digest);
}

std::string EncodeTexts(const RequestDesk::Texts& t);

// The member `key` of a JSON object text, as JSON ("null" when absent or unparsable).
std::string MemberJson(const std::string& json, const char* key) {
  try {
    Poco::JSON::Parser parser;
    auto obj = parser.parse(json).extract<Poco::JSON::Object::Ptr>();
    if (obj.isNull() || !obj->has(key)) return "null";
    std::ostringstream out;
    Poco::JSON::Stringifier::stringify(obj->get(key), out);
    return out.str();
  } catch (const Poco::Exception&) {
    return "null";
  } catch (const std::exception&) {
    return "null";
  }
}

// "P10Y after last_purchase" -> ("P10Y", "last_purchase"); "P3Y" -> ("P3Y", "").
std::pair<std::string, std::string> SplitRetention(const std::string& retention) {
  const size_t at = retention.find(" after ");
  if (at == std::string::npos) return {retention, ""};
  return {retention.substr(0, at), retention.substr(at + 7)};
}

}  // namespace

const char* NameOf(RequestState state) { return kStateNames[static_cast<int>(state)]; }

std::optional<RequestState> ParseRequestState(std::string_view name) {
  for (int i = 0; i < static_cast<int>(std::size(kStateNames)); ++i) {
    if (name == kStateNames[i]) return static_cast<RequestState>(i);
  }
  return std::nullopt;
}

bool IsOpen(RequestState state) {
  return state == S::kReceived || state == S::kVerified || state == S::kInProgress;
}

bool IsOpenStatus(std::string_view status) {
  const auto state = ParseRequestState(status);
  return !state || IsOpen(*state);
}

Result<RequestState> Transition(std::string_view from, RequestStep step) {
  const auto state = ParseRequestState(from);
  if (!state) return Damaged("a request in the unknown state '" + std::string(from) + "'");
  for (const Move& m : kLifecycle) {
    if (m.step == step && m.from == *state) return m.to;
  }
  return Conflict(Refusal(*state, step));
}

Result<std::vector<Jurisdiction>> ParseJurisdictions(const std::string& spec) {
  std::vector<Jurisdiction> out;
  size_t start = 0;
  while (start < spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = spec.substr(start, comma - start);
    const size_t eq = item.find('=');
    const size_t plus = item.find('+');
    if (eq == std::string::npos || eq == 0 || plus == std::string::npos || plus < eq) {
      return Unprocessable("'" + item + "' is not NAME=DEADLINE+EXTENSION (e.g. gdpr=P1M+P2M)");
    }
    Jurisdiction j{item.substr(0, eq), item.substr(eq + 1, plus - eq - 1), item.substr(plus + 1)};
    if (!AddIsoDuration(0, j.deadline) || !AddIsoDuration(0, j.extension)) {
      return Unprocessable("'" + item + "': deadline and extension must be ISO 8601 durations");
    }
    out.push_back(std::move(j));
    start = comma + 1;
  }
  if (out.empty()) return Unprocessable("no jurisdiction given");
  return out;
}

std::optional<int64_t> DueAt(int64_t received_at, const Jurisdiction& j) {
  return AddIsoDuration(received_at, j.deadline);
}

Result<int64_t> ExtendedDue(const RequestRow& r, const Jurisdiction& j, const std::string& by,
                            int64_t now) {
  GARDE_RETURN_IF_ERROR(Transition(r.status, RequestStep::kExtend).status());
  if (r.extended)
    return Conflict("the request was extended already; only one extension is allowed");
  if (now >= r.due_at) {
    return Conflict("the deadline has passed; an extension must be decided before it");
  }
  const auto extended = AddIsoDuration(r.due_at, by);
  const auto longest = AddIsoDuration(r.due_at, j.extension);
  if (!extended || *extended <= r.due_at) {
    return Status(Code::kUnprocessable, "the extension is not valid")
        .AddError("by", "must be an ISO 8601 duration such as P1M or P2M");
  }
  if (!longest || *extended > *longest) {
    return Status(Code::kUnprocessable, "the extension is too long")
        .AddError("by", "may be at most " + j.extension + " under " + j.name);
  }
  return *extended;
}

namespace {

// Keeps a rectification's values, encoded, until the request is completed.
void KeepChanges(const SubjectChanges& changes, RequestDesk::Texts* t) {
  auto encode = [](const FieldValue& v) {
    return v.is_null() ? std::nullopt : std::optional<std::string>(EncodeFieldValue(v));
  };
  for (const auto& [field, value] : changes.fields) t->changes[field] = encode(value);
  if (changes.external_id) t->changes[kExternalIdField] = encode(*changes.external_id);
}

std::string EncodeTexts(const RequestDesk::Texts& t) {
  JsonWriter w;
  w.BeginObject()
      .String("note", t.note)
      .String("verification_note", t.verification_note)
      .String("extension_reason", t.extension_reason)
      .String("rejection_reason", t.rejection_reason)
      .BeginObject("changes");
  for (const auto& [field, value] : t.changes) {
    w.Key(field);
    if (value) {
      w.String(*value);
    } else {
      w.Null();
    }
  }
  w.EndObject().BeginArray("purposes");
  for (const auto& p : t.purposes) w.String(p);
  w.EndArray().Bool("suppress", t.suppress).EndObject();
  return w.Take();
}

Status DecodeTexts(const std::string& json, RequestDesk::Texts* t) {
  try {
    Poco::JSON::Parser parser;
    auto o = parser.parse(json).extract<Poco::JSON::Object::Ptr>();
    t->note = o->optValue<std::string>("note", "");
    t->verification_note = o->optValue<std::string>("verification_note", "");
    t->extension_reason = o->optValue<std::string>("extension_reason", "");
    t->rejection_reason = o->optValue<std::string>("rejection_reason", "");
    t->suppress = o->optValue<bool>("suppress", false);
    if (auto changes = o->getObject("changes")) {
      for (const auto& [k, v] : *changes) {
        if (v.isEmpty()) {
          t->changes[k] = std::nullopt;
        } else {
          t->changes[k] = v.convert<std::string>();
        }
      }
    }
    if (auto purposes = o->getArray("purposes")) {
      for (size_t i = 0; i < purposes->size(); ++i) {
        t->purposes.push_back(purposes->getElement<std::string>(static_cast<unsigned>(i)));
      }
    }
  } catch (const std::exception&) {
    return Damaged("the sealed texts of a request are damaged");
  }
  return Status::Ok();
}

}  // namespace

void WriteRequestJson(JsonWriter& w, const RequestView& v, int64_t now) {
  const RequestRow& r = v.row;
  auto time_or_null = [&](int64_t t) -> JsonWriter& {
    return t == 0 ? w.Null() : w.String(FormatRfc3339(t));
  };
  w.BeginObject()
      .String("id", r.id)
      .String("type", r.type)
      .String("subject", r.subject_id)
      .String("status", r.status)
      .String("jurisdiction", r.jurisdiction)
      .String("received_at", FormatRfc3339(r.received_at))
      .Key("verified_at");
  time_or_null(r.verified_at);
  w.String("due_at", FormatRfc3339(r.due_at))
      .Bool("extended", r.extended)
      .Bool("overdue", IsOpenStatus(r.status) && now > r.due_at)
      .Key("completed_at");
  time_or_null(r.completed_at);
  w.String("opened_by", r.opened_by).StringOrNull("verification", r.verification);
  auto text = [&](const char* key, const std::string& value) {
    if (!value.empty()) w.String(key, value);
  };
  text("note", v.note);
  text("verification_note", v.verification_note);
  text("extension_reason", v.extension_reason);
  text("rejection_reason", v.rejection_reason);
  if (v.texts_destroyed) w.Bool("texts_destroyed", true);
  w.Raw("result", r.result.empty() ? "null" : r.result);
  w.EndObject();
}

const Jurisdiction* RequestDesk::FindJurisdiction(const std::string& name) const {
  for (const auto& j : d_.jurisdictions) {
    if (j.name == name) return &j;
  }
  return nullptr;
}

Status RequestDesk::Load(ReadTx& tx, const Caller& caller, const std::string& id, RequestRow* out,
                         SubjectRow* subject) const {
  GARDE_ASSIGN_OR_RETURN(auto row, tx.GetRequest(id));
  // A customer never learns whether another subject's request exists.
  if (!row || (caller.is_subject() && row->subject_id != caller.subject)) {
    return NotFound("no such request");
  }
  *out = *row;
  GARDE_ASSIGN_OR_RETURN(auto s, tx.GetSubject(out->subject_id));
  if (!s) return Internal("request " + id + " names a missing subject");
  *subject = *s;
  return Status::Ok();
}

Result<RequestView> RequestDesk::ForNotice(const std::string& id) {
  std::optional<RequestView> out;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto row, tx.GetRequest(id));
    if (!row) return NotFound("no such request");
    GARDE_ASSIGN_OR_RETURN(auto subject, tx.GetSubject(row->subject_id));
    GARDE_ASSIGN_OR_RETURN(auto view, ViewOf(*row, subject ? &*subject : nullptr));
    out = std::move(view);
    return Status::Ok();
  }));
  return std::move(*out);
}

Result<RequestView> RequestDesk::ViewOf(const RequestRow& row, const SubjectRow* subject) const {
  RequestView v;
  v.row = row;
  if (row.sealed.empty() || subject == nullptr || subject->wrapped_dek.empty()) {
    v.texts_destroyed = !row.sealed.empty() || (subject != nullptr && subject->wrapped_dek.empty());
    return v;
  }
  auto plain = d_.vault.OpenFor(*subject, RequestNotesLabel(row.id), row.sealed);
  if (!plain.ok()) return plain.status();
  Texts t;
  GARDE_RETURN_IF_ERROR(DecodeTexts(plain.value(), &t));
  sodium_memzero(plain.value().data(), plain.value().size());
  v.note = t.note;
  v.verification_note = t.verification_note;
  v.extension_reason = t.extension_reason;
  v.rejection_reason = t.rejection_reason;
  return v;
}

Result<RequestView> RequestDesk::Open(const Caller& caller, const NewRequest& in) {
  auto policies = d_.policies.Current();
  if (!caller.is_subject()) {
    GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "requests.open"));
  }
  Status invalid(Code::kUnprocessable, "the request is not valid; nothing was stored");
  if (std::none_of(std::begin(kRequestTypes), std::end(kRequestTypes),
                   [&](const char* t) { return in.type == t; })) {
    invalid.AddError("type",
                     "must be access, portability, rectification, erasure, restriction "
                     "or objection");
  }
  const std::string subject_id =
      caller.is_subject() && in.subject.empty() ? caller.subject : in.subject;
  if (caller.is_subject() && subject_id != caller.subject) {
    return PermissionDenied("a subject link opens requests for its own subject only");
  }
  if (!IsRandomId(subject_id, "sub_")) invalid.AddError("subject", "must be a subject id");
  const std::string jname = in.jurisdiction.empty() ? d_.default_jurisdiction : in.jurisdiction;
  const Jurisdiction* j = FindJurisdiction(jname);
  if (j == nullptr) {
    std::string names;
    for (const auto& k : d_.jurisdictions) names += (names.empty() ? "" : ", ") + k.name;
    invalid.AddError("jurisdiction", "must be one of: " + names);
  }
  if (in.note.size() > 4000) invalid.AddError("note", "must be at most 4000 bytes");
  if (in.changes && in.changes->fields.empty() && !in.changes->external_id) {
    invalid.AddError("changes", "names no field to change");
  }
  if (in.type != "rectification" && in.changes) {
    invalid.AddError("changes", "only a rectification carries changes");
  }
  if (in.type != "objection" && !in.purposes.empty()) {
    invalid.AddError("purposes", "only an objection names purposes");
  }
  if (in.type != "erasure" && in.suppress) {
    invalid.AddError("suppress", "only an erasure asks for suppression");
  }
  for (size_t i = 0; i < in.purposes.size(); ++i) {
    const Purpose* p = policies->FindPurpose(in.purposes[i]);
    const std::string at = "purposes[" + std::to_string(i) + "]";
    if (p == nullptr) {
      invalid.AddError(at, "is not a purpose of the catalogue");
    } else if (!p->marketing && p->legal_basis != LegalBasis::kLegitimateInterests &&
               p->legal_basis != LegalBasis::kPublicTask) {
      invalid.AddError(at,
                       "an objection (Art. 21) applies to direct marketing and to "
                       "processing on legitimate interests or a public task");
    }
  }
  const int64_t now = d_.clock.Now();
  constexpr int64_t kClockSkew = 300;
  if (in.received_at && *in.received_at > now + kClockSkew) {
    invalid.AddError("received_at", "must not be in the future");
  }
  if (!invalid.errors().empty()) return invalid;

  RequestRow row;
  row.id = RandomId("dsr_");
  row.type = in.type;
  row.subject_id = subject_id;
  row.jurisdiction = j->name;
  row.received_at = std::min(in.received_at.value_or(now), now);
  row.due_at = DueAt(row.received_at, *j).value_or(row.received_at);
  row.opened_by = caller.is_subject() ? "subject" : caller.key_id;
  // Every request waits for verification: a link that opens a request (a preference link in
  // every newsletter, easily forwarded) proves nothing about who holds it now. A customer's
  // request is confirmed through a fresh, single-use link sent to the contact on file (the
  // notice below), an operator's through the link it sends or an officer's check.
  row.status = NameOf(RequestState::kReceived);
  Texts texts;
  texts.note = in.note;
  texts.purposes = in.purposes;
  texts.suppress = in.suppress;
  std::optional<RequestView> view;
  Status written = d_.store.Write([&](WriteTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto s, tx.GetSubject(subject_id));
    if (!s) return NotFound("no such subject");
    const SubjectRow& subject = *s;
    GARDE_RETURN_IF_ERROR(RefuseGone(subject));
    if (in.changes) {
      Status bad = d_.vault.CheckChanges(subject.kind, *in.changes);
      if (!bad.ok()) return bad;
      KeepChanges(*in.changes, &texts);
    }
    std::string plain = EncodeTexts(texts);
    auto sealed = d_.vault.SealFor(subject, RequestNotesLabel(row.id), plain);
    sodium_memzero(plain.data(), plain.size());
    if (!sealed.ok()) return sealed.status();
    row.sealed = std::move(sealed.value());
    GARDE_RETURN_IF_ERROR(tx.InsertRequest(row));
    // Art. 12: the customer hears of a request made for them; one they made themselves is
    // confirmed from the address on file first.
    GARDE_RETURN_IF_ERROR(
        Notify(tx, row, caller.is_subject() ? "verify_request" : "request_received"));
    GARDE_RETURN_IF_ERROR(d_.journal.Record(
        &tx, caller, {"request.open", subject_id, "", "ok", {row.id, row.type, row.status}, 1}));
    RequestView v;
    v.row = row;
    v.note = in.note;
    view = std::move(v);
    return Status::Ok();
  });
  if (!written.ok()) {
    d_.journal
        .Record(nullptr, caller,
                {"request.open",
                 IsRandomId(subject_id, "sub_") ? subject_id : "",
                 "",
                 written.code() == Code::kNotFound ? "not_found" : "refused",
                 {in.type},
                 0})
        .IgnoreError();
    return written;
  }
  return std::move(*view);
}

Result<RequestView> RequestDesk::Get(const Caller& caller, const std::string& id) {
  auto policies = d_.policies.Current();
  if (!caller.is_subject()) {
    GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "requests.manage"));
  }
  std::optional<RequestView> view;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    RequestRow row;
    SubjectRow subject;
    GARDE_RETURN_IF_ERROR(Load(tx, caller, id, &row, &subject));
    GARDE_ASSIGN_OR_RETURN(auto v, ViewOf(row, &subject));
    view = std::move(v);
    return Status::Ok();
  }));
  return std::move(*view);
}

Result<std::vector<RequestRow>> RequestDesk::List(const Caller& caller, const RequestQuery& q) {
  auto policies = d_.policies.Current();
  RequestQuery query = q;
  if (caller.is_subject()) {
    query.subject = caller.subject;
  } else {
    GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "requests.manage"));
  }
  std::vector<RequestRow> out;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto rows, tx.QueryRequests(query));
    out = std::move(rows);
    return Status::Ok();
  }));
  return out;
}

Result<RequestView> RequestDesk::Step(
    const Caller& caller, const std::string& id, const char* action,
    const std::function<Status(WriteTx&, RequestRow&, SubjectRow&, Texts&)>& fn) {
  auto policies = d_.policies.Current();
  if (!caller.is_subject()) {
    GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "requests.manage"));
  }
  std::optional<RequestView> view;
  std::string subject_id;
  Status written = d_.store.Write([&](WriteTx& tx) -> Status {
    RequestRow row;
    SubjectRow subject;
    GARDE_RETURN_IF_ERROR(Load(tx, caller, id, &row, &subject));
    subject_id = row.subject_id;
    Texts texts;
    if (subject.wrapped_dek.empty()) {
      texts.destroyed = true;
    } else if (!row.sealed.empty()) {
      auto plain = d_.vault.OpenFor(subject, RequestNotesLabel(row.id), row.sealed);
      if (!plain.ok()) return plain.status();
      GARDE_RETURN_IF_ERROR(DecodeTexts(plain.value(), &texts));
      sodium_memzero(plain.value().data(), plain.value().size());
    }
    GARDE_RETURN_IF_ERROR(fn(tx, row, subject, texts));
    if (texts.destroyed) {
      row.sealed.clear();
    } else {
      std::string plain = EncodeTexts(texts);
      auto sealed = d_.vault.SealFor(subject, RequestNotesLabel(row.id), plain);
      sodium_memzero(plain.data(), plain.size());
      if (!sealed.ok()) return sealed.status();
      row.sealed = std::move(sealed.value());
    }
    GARDE_RETURN_IF_ERROR(tx.UpdateRequest(row));
    GARDE_RETURN_IF_ERROR(d_.journal.Record(
        &tx, caller, {action, row.subject_id, "", "ok", {row.id, row.type, row.status}, 1}));
    RequestView v;
    v.row = row;
    v.note = texts.note;
    v.verification_note = texts.verification_note;
    v.extension_reason = texts.extension_reason;
    v.rejection_reason = texts.rejection_reason;
    v.texts_destroyed = texts.destroyed;
    view = std::move(v);
    return Status::Ok();
  });
  if (!written.ok()) {
    const char* outcome = written.code() == Code::kNotFound        ? "not_found"
                          : written.code() == Code::kConflict      ? "conflict"
                          : written.code() == Code::kUnprocessable ? "invalid"
                                                                   : "error";
    d_.journal.Record(nullptr, caller, {action, subject_id, "", outcome, {id}, 0}).IgnoreError();
    return written;
  }
  return std::move(*view);
}

Result<RequestView> RequestDesk::Verify(const Caller& caller, const std::string& id,
                                        const std::string& note) {
  if (note.size() > 4000) {
    return Status(Code::kUnprocessable, "the note is too long")
        .AddError("note", "at most 4000 bytes");
  }
  return Step(
      caller, id, "request.verify", [&](WriteTx&, RequestRow& r, SubjectRow&, Texts& t) -> Status {
        GARDE_ASSIGN_OR_RETURN(const RequestState next, Transition(r.status, RequestStep::kVerify));
        r.status = NameOf(next);
        r.verification = "officer";
        r.verified_at = d_.clock.Now();
        t.verification_note = note;
        return Status::Ok();
      });
}

Result<RequestView> RequestDesk::VerifyByLink(const SubjectTokenClaims& claims,
                                              const RequestOrigin& origin) {
  const Caller subject = SubjectCallerFrom(claims.subject, origin);
  // Single use: the link only ever moves its request from received to verified.
  return Step(subject, claims.scope, "request.verify",
              [&](WriteTx&, RequestRow& r, SubjectRow&, Texts&) -> Status {
                auto next = Transition(r.status, RequestStep::kVerify);
                if (!next.ok()) return Conflict("this request is already confirmed");
                r.status = NameOf(*next);
                r.verification = "subject_link";
                r.verified_at = d_.clock.Now();
                return Status::Ok();
              });
}

Result<RequestView> RequestDesk::Start(const Caller& caller, const std::string& id) {
  return Step(
      caller, id, "request.start", [&](WriteTx&, RequestRow& r, SubjectRow&, Texts&) -> Status {
        GARDE_ASSIGN_OR_RETURN(const RequestState next, Transition(r.status, RequestStep::kStart));
        r.status = NameOf(next);
        return Status::Ok();
      });
}

Result<RequestView> RequestDesk::Extend(const Caller& caller, const std::string& id,
                                        const std::string& by, const std::string& reason) {
  if (reason.empty() || reason.size() > 4000) {
    return Status(Code::kUnprocessable, "an extension needs a reason to give the requester")
        .AddError("reason", "is required (at most 4000 bytes)");
  }
  return Step(caller, id, "request.extend",
              [&](WriteTx& tx, RequestRow& r, SubjectRow&, Texts& t) -> Status {
                const Jurisdiction* j = FindJurisdiction(r.jurisdiction);
                if (j == nullptr)
                  return Conflict("jurisdiction " + r.jurisdiction + " is no longer configured");
                // Without `by`, the longest extension the jurisdiction allows.
                GARDE_ASSIGN_OR_RETURN(
                    auto due, ExtendedDue(r, *j, by.empty() ? j->extension : by, d_.clock.Now()));
                r.due_at = due;
                r.extended = true;
                t.extension_reason = reason;
                // Art. 12(3): the subject is told of the extension and its reasons.
                return Notify(tx, r, "request_extended");
              });
}

Result<RequestView> RequestDesk::Reject(const Caller& caller, const std::string& id,
                                        const std::string& reason) {
  if (reason.empty() || reason.size() > 4000) {
    return Status(Code::kUnprocessable, "a rejection needs a reason to give the requester")
        .AddError("reason", "is required (at most 4000 bytes)");
  }
  return Step(caller, id, "request.reject",
              [&](WriteTx& tx, RequestRow& r, SubjectRow&, Texts& t) -> Status {
                GARDE_ASSIGN_OR_RETURN(const RequestState next,
                                       Transition(r.status, RequestStep::kReject));
                r.status = NameOf(next);
                r.completed_at = d_.clock.Now();
                t.rejection_reason = reason;
                r.result = "{\"rejected\":true}";
                // Art. 12(4): the subject is told why, and of the right to complain to a
                // supervisory authority and to seek a judicial remedy (on the linked page).
                return Notify(tx, r, "request_rejected");
              });
}

Result<RequestView> RequestDesk::Lift(const Caller& caller, const std::string& id) {
  return Step(
      caller, id, "request.lift", [&](WriteTx& tx, RequestRow& r, SubjectRow& s, Texts&) -> Status {
        if (r.type != "restriction" || r.status != NameOf(RequestState::kCompleted)) {
          return Conflict("only a completed restriction request can be lifted");
        }
        if (s.status != "restricted") return Conflict("the subject is not restricted");
        // Art. 18(3): the subject is told before the restriction is lifted. The first
        // call sends the notice; the restriction is lifted by a call after it.
        if (r.result.find("\"lift_notified_at\"") == std::string::npos) {
          r.result = "{\"restricted\":true,\"lift_notified_at\":\"" +
                     FormatRfc3339(d_.clock.Now()) + "\"}";
          return Notify(tx, r, "restriction_lifting");
        }
        s.status = "active";
        s.updated_at = d_.clock.Now();
        GARDE_RETURN_IF_ERROR(tx.UpdateSubject(s));
        GARDE_RETURN_IF_ERROR(EmitEvent(tx, "subject.restriction_lifted",
                                        "{\"subject\":\"" + s.id + "\",\"request\":\"" + r.id +
                                            "\",\"at\":\"" + FormatRfc3339(s.updated_at) + "\"}",
                                        s.updated_at));
        r.result = "{\"restricted\":false,\"lifted_at\":\"" + FormatRfc3339(s.updated_at) + "\"}";
        return Status::Ok();
      });
}

Result<RequestView> RequestDesk::Complete(const Caller& caller, const std::string& id,
                                          const std::string& note,
                                          const std::optional<SubjectChanges>& given) {
  if (note.size() > 4000) {
    return Status(Code::kUnprocessable, "the note is too long")
        .AddError("note", "at most 4000 bytes");
  }
  auto policies = d_.policies.Current();
  // A package lists the subject's accesses up to now: every journal is imported first, outside
  // the transaction (checked below only where a package is built).
  const Status imported = d_.journal.FlushEverywhere();
  TombstoneEntries tombstones;
  auto done = Step(
      caller, id, "request.complete",
      [&](WriteTx& tx, RequestRow& r, SubjectRow& s, Texts& t) -> Status {
        tombstones = {};
        GARDE_ASSIGN_OR_RETURN(const RequestState next,
                               Transition(r.status, RequestStep::kComplete));
        if (given && r.type != "rectification") {
          return Status(Code::kUnprocessable, "only a rectification carries changes")
              .AddError("changes", "not allowed for a " + r.type + " request");
        }
        if (s.status == "erased")
          return Conflict("the subject has been erased; nothing is left to do");
        const int64_t now = d_.clock.Now();
        if (!note.empty()) t.note = t.note.empty() ? note : t.note + "\n" + note;
        JsonWriter result;
        if (r.type == "access" || r.type == "portability") {
          r.completed_at = now;  // the package says when it was delivered
          GARDE_RETURN_IF_ERROR(imported);
          auto package = BuildPackage(tx, *policies, r, s);
          if (!package.ok()) return package.status();
          GARDE_ASSIGN_OR_RETURN(auto sealed,
                                 d_.vault.SealFor(s, RequestPackageLabel(r.id), package.value()));
          r.package = std::move(sealed);
          result.BeginObject()
              .String("package_sha256", Sha256Hex(package.value()))
              .Int("package_bytes", static_cast<int64_t>(package.value().size()))
              .EndObject();
          sodium_memzero(package.value().data(), package.value().size());
        } else if (r.type == "rectification") {
          if (given) {
            if (!t.changes.empty()) {
              return Conflict(
                  "the request already names its changes; complete it without new ones");
            }
            KeepChanges(*given, &t);
          }
          FieldMap values;
          for (const auto& [field, encoded] : t.changes) {
            FieldValue v;
            if (encoded) {
              auto decoded = DecodeFieldValue(*encoded);
              if (!decoded) return Damaged("the sealed changes of " + r.id + " are damaged");
              v = std::move(*decoded);
            }
            values[field] = std::move(v);
          }
          auto view = d_.vault.RectifyIn(tx, *policies, caller, s.id, ChangesOf(std::move(values)));
          if (!view.ok()) return view.status();
          result.BeginObject().BeginArray("rectified_fields");
          for (const auto& [field, _] : t.changes) result.String(field);
          result.EndArray().EndObject();
        } else if (r.type == "erasure") {
          std::string summary;
          std::vector<std::string> kept;
          // Records merged into this one are the same customer's data: erased with it.
          GARDE_RETURN_IF_ERROR(SubjectMerges::CompleteMergesIn(
              tx, d_.vault, s.id, now, /*erase_history=*/true, &tombstones));
          GARDE_RETURN_IF_ERROR(Erase(tx, *policies, caller, r, s, t.suppress, &summary, &kept,
                                      &tombstones.suppressions));
          t.destroyed = s.wrapped_dek.empty();
          // Every erasure, full or held, leaves a tombstone that a restore re-applies.
          tombstones.erasures.push_back(TombstoneRow{s.id, r.id, now, std::move(kept)});
          result.Raw(summary);
        } else if (r.type == "restriction") {
          s.status = "restricted";
          s.updated_at = now;
          GARDE_RETURN_IF_ERROR(tx.UpdateSubject(s));
          GARDE_RETURN_IF_ERROR(EmitEvent(tx, "subject.restricted",
                                          "{\"subject\":\"" + s.id + "\",\"request\":\"" + r.id +
                                              "\",\"at\":\"" + FormatRfc3339(now) + "\"}",
                                          now));
          result.BeginObject().Bool("restricted", true).EndObject();
        } else if (r.type == "objection") {
          std::vector<const Purpose*> purposes;
          if (t.purposes.empty()) {
            for (const auto& p : policies->purposes()) {
              if (p.marketing) purposes.push_back(&p);
            }
          } else {
            for (const auto& id2 : t.purposes) {
              const Purpose* p = policies->FindPurpose(id2);
              if (p == nullptr)
                return Conflict("purpose " + id2 + " is no longer in the catalogue");
              purposes.push_back(p);
            }
          }
          GARDE_RETURN_IF_ERROR(d_.consents.ObjectIn(tx, *policies, s.id, purposes,
                                                     "data_subject_request", caller.key_id, now,
                                                     &tombstones));
          result.BeginObject().BeginArray("objected");
          bool marketing = false;
          for (const Purpose* p : purposes) {
            result.String(p->id);
            marketing |= p->marketing;
          }
          result.EndArray().Bool("contacts_suppressed", marketing).EndObject();
        }
        r.status = NameOf(next);
        r.completed_at = now;
        r.result = result.Take();
        // The answer, and for access and portability the only link that downloads the package.
        if (!t.destroyed) GARDE_RETURN_IF_ERROR(Notify(tx, r, "request_completed"));
        GARDE_RETURN_IF_ERROR(EmitEvent(tx, "request.completed",
                                        "{\"request\":\"" + r.id + "\",\"type\":\"" + r.type +
                                            "\",\"subject\":\"" + s.id + "\",\"completed_at\":\"" +
                                            FormatRfc3339(now) + "\"}",
                                        now));
        // The "no"s and suppressions reach the log before the commit.
        return TombstoneLog::WriteAhead(tx, tombstones);
      });
  if (done.ok() && !tombstones.erasures.empty() && d_.tombstones != nullptr) {
    // Committed; an erasure also goes outside the database. Should this fail, it is still in
    // the tombstones table and the next start copies it out.
    GARDE_RETURN_IF_ERROR(d_.tombstones->Append(tombstones.ErasuresOnly()));
  }
  return done;
}

Status RequestDesk::Notify(WriteTx& tx, const RequestRow& r, const char* notice) const {
  // Ids and dates only: the mailer reads the reasons and mints the link when it sends, so no
  // bearer link sits in the database (or its backups).
  JsonWriter w;
  w.BeginObject()
      .String("notice", notice)
      .String("subject", r.subject_id)
      .String("request", r.id)
      .String("type", r.type)
      .String("status", r.status)
      .String("due_at", FormatRfc3339(r.due_at))
      .EndObject();
  return EmitEvent(tx, "subject.notice", w.Take(), d_.clock.Now());
}

Result<RequestDesk::Reapplied> RequestDesk::ReapplyTombstones() {
  // Both sources: the log survives a database restored from backup; the table covers a log
  // line lost to a crash between commit and append.
  std::string text;
  if (d_.tombstones != nullptr) {
    GARDE_ASSIGN_OR_RETURN(auto read, d_.tombstones->ReadText());
    text = std::move(read);
    if (!text.empty() && text.back() != '\n') {
      // A line torn by a crash: ended here, so that the next append starts a line of its own.
      GARDE_RETURN_IF_ERROR(d_.tombstones->AppendText("\n"));
      text += '\n';
    }
  }
  std::optional<TombstoneLogMark> mark;
  std::vector<TombstoneRow> in_db;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto rows, tx.ListTombstones(0));
    in_db = std::move(rows);
    const std::string name = TombstoneLog::NameOf(text);
    if (name.empty()) return Status::Ok();
    GARDE_ASSIGN_OR_RETURN(auto found, tx.GetTombstoneLogMark(name));
    mark = std::move(found);
    return Status::Ok();
  }));
  // The lines before the mark are in this database already: an erasure's line is written
  // after its commit, a "no"'s before it (one whose commit then failed is applied here, as a
  // "no" the database lacks), and the mark is moved only here, once every line before it was
  // applied. A database restored from a backup brings the mark it had then.
  Reapplied result;
  result.checked_from = TombstoneLog::AppliedTo(text, mark);
  TombstoneEntries logged = TombstoneLog::Parse(std::string_view(text).substr(result.checked_from));
  std::map<std::string, TombstoneRow> all;
  for (auto& t : logged.erasures) all[t.subject_id] = std::move(t);
  TombstoneEntries missing;
  {
    const std::vector<std::string_view> in_log = TombstoneLog::ErasedIn(text);  // views of text
    for (const auto& t : in_db) {
      if (!std::binary_search(in_log.begin(), in_log.end(), t.subject_id) &&
          all.emplace(t.subject_id, t).second) {
        missing.erasures.push_back(t);
      }
    }
  }
  if (d_.tombstones != nullptr && !missing.empty()) {
    GARDE_ASSIGN_OR_RETURN(auto lines, TombstoneLog::Format(missing));
    GARDE_RETURN_IF_ERROR(d_.tombstones->AppendText(lines));
    text += lines;  // applied below with the rest
  }
  result.log_bytes = text.size();
  const Caller system{"garde", "system", {}, "startup", ""};
  auto policies = d_.policies.Current();
  size_t& reapplied = result.subjects;
  // Suppressions first: an erasure below destroys the digests a later objection would need.
  if (!logged.suppressions.empty()) {
    GARDE_RETURN_IF_ERROR(d_.store.Write([&](WriteTx& tx) -> Status {
      for (const auto& s : logged.suppressions) {
        GARDE_RETURN_IF_ERROR(tx.PutSuppression(s.kind, s.digest, s.reason, s.at));
      }
      return Status::Ok();
    }));
  }
  // The "no"s given after the backup: put back every one the database lost.
  std::map<std::string, std::vector<const ConsentTombstone*>> by_subject;
  for (const auto& c : logged.consents) {
    if (all.count(c.subject_id) == 0) by_subject[c.subject_id].push_back(&c);
  }
  for (const auto& entry : by_subject) {
    const std::string& id = entry.first;
    const std::vector<const ConsentTombstone*>& events = entry.second;
    GARDE_RETURN_IF_ERROR(d_.store.Write([&](WriteTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
      if (!row || row->status == "erased") return Status::Ok();
      GARDE_ASSIGN_OR_RETURN(auto have, tx.ConsentEventsOf(id));
      std::set<std::string> ids;
      for (const auto& e : have) ids.insert(e.id);
      int64_t put_back = 0;
      for (const ConsentTombstone* c : events) {
        if (ids.count(c->event_id) != 0) continue;
        GARDE_ASSIGN_OR_RETURN(auto done, d_.consents.Reinstate(tx, *policies, *c));
        put_back += done ? 1 : 0;
      }
      if (put_back == 0) return Status::Ok();
      ++reapplied;
      return d_.journal.Record(&tx, system, {"consent.reapply", id, "", "reapplied", {}, put_back});
    }));
  }
  for (const auto& entry : all) {
    const std::string& id = entry.first;
    const TombstoneRow& t = entry.second;
    GARDE_RETURN_IF_ERROR(d_.store.Write([&](WriteTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
      if (!row) return Status::Ok();
      SubjectRow s = *row;
      GARDE_ASSIGN_OR_RETURN(auto fields, tx.GetFields(id));
      // What the erasure kept under a legal hold stays (if still there); nothing else.
      std::set<std::string> keep;
      bool extra = false;
      for (const auto& f : fields) {
        if (std::find(t.kept.begin(), t.kept.end(), f.field) != t.kept.end()) {
          keep.insert(f.field);
        } else {
          extra = true;
        }
      }
      GARDE_ASSIGN_OR_RETURN(auto events, tx.ConsentFactsOf(id));
      const bool applied =
          keep.empty() ? s.status == "erased" && s.wrapped_dek.empty() : s.status == "restricted";
      if (applied && !extra && events.empty()) return Status::Ok();
      GARDE_RETURN_IF_ERROR(d_.vault.EraseIn(tx, s, keep));
      GARDE_RETURN_IF_ERROR(tx.DeleteConsentEventsOf(id));
      if (keep.empty()) s.wrapped_dek.clear();
      s.status = keep.empty() ? "erased" : "restricted";
      s.updated_at = d_.clock.Now();
      GARDE_RETURN_IF_ERROR(tx.UpdateSubject(s));
      GARDE_RETURN_IF_ERROR(tx.InsertTombstone(t));
      ++reapplied;
      return d_.journal.Record(&tx, system,
                               {"subject.erase", id, "", "reapplied", {t.request_id}, 0});
    }));
  }
  // Everything up to here is in the database: the next start checks only what follows. A
  // start that found nothing after its mark (the usual restart) leaves the mark as it is.
  const bool unmoved = mark.has_value() && result.checked_from == text.size();
  if (!text.empty() && !unmoved) {
    GARDE_RETURN_IF_ERROR(d_.store.Write(
        [&](WriteTx& tx) -> Status { return tx.PutTombstoneLogMark(TombstoneLog::MarkOf(text)); }));
  }
  return result;
}

Status RequestDesk::Erase(WriteTx& tx, const PolicySet& policies, const Caller& caller,
                          RequestRow& request, SubjectRow& subject, bool suppress,
                          std::string* summary, std::vector<std::string>* kept,
                          std::vector<SuppressionTombstone>* suppressed) const {
  const int64_t now = d_.clock.Now();
  auto sealed = tx.GetFields(subject.id);
  if (!sealed.ok()) return sealed.status();
  std::set<std::string> present;
  for (const auto& f : sealed.value()) present.insert(f.field);

  // Legal holds: fields an activity must keep under a legal obligation whose retention has
  // not run out. A retention is "DURATION after ANCHOR"; the anchor is last_interaction,
  // created, or a date field of the subject. Other anchors are criteria Garde cannot
  // evaluate for one subject and hold nothing.
  struct Hold {
    std::string activity;
    int64_t until = 0;
  };
  std::map<std::string, Hold> holds;
  std::optional<SubjectView> plain;
  // When the retention `rule` of a field runs out for this subject; nullopt: it holds nothing.
  auto runs_until = [&](const std::string& rule) -> Result<std::optional<int64_t>> {
    auto [duration, anchor] = SplitRetention(rule);
    std::optional<int64_t> from;
    if (anchor.empty() || anchor == "last_interaction") {
      from = subject.last_interaction_at;
    } else if (anchor == "created") {
      from = subject.created_at;
    } else if (const FieldSpec* spec = policies.schema().Find(anchor);
               spec != nullptr && spec->type == FieldType::kDate && present.count(anchor)) {
      if (!plain) {
        GARDE_ASSIGN_OR_RETURN(auto opened, d_.vault.OpenAll(tx, subject));
        plain = std::move(opened);
      }
      auto it = plain->fields.find(anchor);
      if (it != plain->fields.end()) {
        if (auto date = ParseIsoDate(it->second.text)) from = DaysFromCivil(*date) * 86400;
      }
    }
    if (!from) return std::optional<int64_t>();
    return AddIsoDuration(*from, duration);
  };
  // The activity's own rule says whether the obligation applies to this subject at all (no
  // purchase: no accounting record); a category's rule may end its hold sooner.
  for (const auto& a : policies.activities()) {
    if (a.legal_basis != LegalBasis::kLegalObligation || a.retention.empty()) continue;
    GARDE_ASSIGN_OR_RETURN(auto main_until, runs_until(a.retention));
    if (!main_until || *main_until <= now) continue;
    for (const auto& field : a.fields) {
      if (present.count(field) == 0) continue;
      int64_t until = *main_until;
      const FieldSpec* spec = policies.schema().Find(field);
      if (const std::string& rule = a.RetentionFor(spec != nullptr ? spec->category : "");
          rule != a.retention) {
        GARDE_ASSIGN_OR_RETURN(auto shorter, runs_until(rule));
        if (shorter) until = std::min(until, *shorter);
      }
      if (until <= now) continue;
      Hold& h = holds[field];
      if (until > h.until) h = {a.id, until};
    }
  }
  if (plain) {
    for (auto& [_, v] : plain->fields) sodium_memzero(v.text.data(), v.text.size());
  }

  // Contacts that must never be contacted again go to the suppression list before their
  // digests are destroyed.
  bool objected = suppress;
  GARDE_ASSIGN_OR_RETURN(auto objections, tx.ObjectedPurposesOf(subject.id));
  for (const auto& purpose : objections) {
    const Purpose* p = policies.FindPurpose(purpose);
    objected |= p != nullptr && p->marketing;
  }
  if (objected) {
    GARDE_RETURN_IF_ERROR(
        ConsentLedger::SuppressContactsIn(tx, subject.id, "erasure", now, suppressed));
  }

  std::set<std::string> keep;
  for (const auto& [field, _] : holds) keep.insert(field);
  GARDE_RETURN_IF_ERROR(d_.vault.EraseIn(tx, subject, keep));
  GARDE_RETURN_IF_ERROR(tx.DeleteConsentEventsOf(subject.id));
  std::vector<std::string> erased;
  for (const auto& f : present) {
    if (keep.count(f) == 0) erased.push_back(f);
  }
  subject.updated_at = now;
  subject.status = keep.empty() ? "erased" : "restricted";
  GARDE_RETURN_IF_ERROR(tx.UpdateSubject(subject));
  if (keep.empty()) {
    subject.wrapped_dek.clear();  // shredded in the store: nothing may be sealed under it now
    request.package.clear();
  }
  kept->assign(keep.begin(), keep.end());
  GARDE_RETURN_IF_ERROR(tx.InsertTombstone({subject.id, request.id, now, *kept}));
  // Art. 19: recipients of the data are told, through the outbox.
  JsonWriter event;
  event.BeginObject()
      .String("subject", subject.id)
      .String("request", request.id)
      .String("erased_at", FormatRfc3339(now))
      .BeginArray("activities");
  for (const auto& a : policies.activities()) {
    if (std::any_of(present.begin(), present.end(),
                    [&](const std::string& f) { return a.fields.count(f) != 0; })) {
      event.String(a.id);
    }
  }
  event.EndArray().Bool("fully_erased", keep.empty()).EndObject();
  GARDE_RETURN_IF_ERROR(EmitEvent(tx, "subject.erased", event.Take(), now));
  GARDE_RETURN_IF_ERROR(d_.journal.Record(
      &tx, caller,
      {"subject.erase", subject.id, "", "ok", erased, static_cast<int64_t>(keep.size())}));

  JsonWriter w;
  w.BeginObject().BeginArray("erased_fields");
  for (const auto& f : erased) w.String(f);
  w.EndArray().BeginArray("kept");
  for (const auto& [field, hold] : holds) {
    w.BeginObject()
        .String("field", field)
        .String("activity", hold.activity)
        .String("reason", "kept under a legal obligation (" + hold.activity +
                              ") until its retention runs out; restricted meanwhile")
        .String("until", FormatRfc3339(hold.until))
        .EndObject();
  }
  w.EndArray()
      .Bool("data_key_destroyed", keep.empty())
      .String("subject_status", subject.status)
      .Bool("contacts_suppressed", objected)
      .EndObject();
  *summary = w.Take();
  return Status::Ok();
}

Result<std::string> RequestDesk::BuildPackage(ReadTx& tx, const PolicySet& policies,
                                              const RequestRow& request,
                                              const SubjectRow& subject) const {
  GARDE_ASSIGN_OR_RETURN(auto view, d_.vault.OpenAll(tx, subject));
  const int64_t now = request.completed_at != 0 ? request.completed_at : d_.clock.Now();
  JsonWriter w;
  if (request.type == "portability") {
    // Art. 20: what the subject provided (schema `provided_by_subject`; not what the business
    // derived), processed under consent or contract.
    std::set<std::string> portable;
    for (const auto& a : policies.activities()) {
      bool basis = a.legal_basis == LegalBasis::kConsent || a.legal_basis == LegalBasis::kContract;
      for (const auto& pid : a.purposes) {
        const Purpose* p = policies.FindPurpose(pid);
        basis |= p != nullptr && (p->legal_basis == LegalBasis::kConsent ||
                                  p->legal_basis == LegalBasis::kContract);
      }
      if (!basis) continue;
      for (const auto& f : a.fields) {
        const FieldSpec* spec = policies.schema().Find(f);
        if (spec != nullptr && spec->provided_by_subject) {
          portable.insert(f);
        }
      }
    }
    w.BeginObject()
        .String("format", "garde-portability/1")
        .String("request", request.id)
        .String("subject", subject.id)
        .String("kind", subject.kind)
        .String("generated_at", FormatRfc3339(now))
        .BeginObject("fields");
    for (const auto& [name, value] : view.fields) {
      if (portable.count(name) == 0) continue;
      w.Key(name);
      WriteFieldValue(w, value);
    }
    w.EndObject().EndObject();
    return w.Take();
  }

  // Art. 15(1)(a)-(h).
  w.BeginObject()
      .String("format", "garde-access-package/1")
      .String("request", request.id)
      .String("generated_at", FormatRfc3339(now))
      .Raw("organisation", policies.organisation_json())
      .Key("subject");
  WriteSubjectJson(w, view);
  // Purchases and contacts recorded for the subject, with their amounts.
  w.BeginArray("interactions");
  GARDE_ASSIGN_OR_RETURN(auto interactions, tx.InteractionsOf(subject.id, INT64_MIN));
  for (const auto& i : interactions) {
    w.BeginObject().String("kind", i.kind).String("occurred_at", FormatRfc3339(i.at));
    if (!i.sealed_amount.empty()) {
      auto amount = d_.vault.OpenFor(subject, "interaction.amount", i.sealed_amount);
      if (!amount.ok()) return amount.status();
      w.Number("amount", std::strtod(amount.value().c_str(), nullptr));
    }
    w.EndObject();
  }
  w.EndArray();
  // The organisations the subject is a contact of (or, for an organisation, its contacts).
  w.BeginArray("contact_links");
  GARDE_ASSIGN_OR_RETURN(auto links, tx.LinksOf(subject.id));
  for (const auto& l : links) {
    w.BeginObject()
        .String("organisation", l.organisation_id)
        .String("person", l.person_id)
        .String("role", l.role)
        .String("since", FormatRfc3339(l.created_at))
        .EndObject();
  }
  w.EndArray();
  w.BeginArray("consents");
  GARDE_ASSIGN_OR_RETURN(auto events, tx.ConsentEventsOf(subject.id));
  for (const auto& e : events) {
    w.BeginObject()
        .String("purpose", e.purpose)
        .StringOrNull("channel", e.channel)
        .String("event", e.event)
        .String("legal_basis", e.legal_basis)
        .String("method", e.method)
        .String("at", FormatRfc3339(e.at))
        .Key("expires_at");
    if (e.expires_at == 0) {
      w.Null();
    } else {
      w.String(FormatRfc3339(e.expires_at));
    }
    w.Raw("receipt", e.receipt.empty() ? "null" : e.receipt).EndObject();
  }
  w.EndArray().BeginArray("processing");
  for (const auto& a : policies.activities()) {
    std::vector<std::string> used;
    for (const auto& [name, _] : view.fields) {
      if (a.fields.count(name)) used.push_back(name);
    }
    if (used.empty()) continue;
    w.BeginObject()
        .String("activity", a.id)
        .String("name", a.name)
        .String("legal_basis", LegalBasisName(a.legal_basis))
        .BeginArray("purposes");
    for (const auto& pid : a.purposes) {
      const Purpose* p = policies.FindPurpose(pid);
      w.BeginObject().String("id", pid);
      if (p != nullptr) {
        w.String("title", p->title).String("legal_basis", LegalBasisName(p->legal_basis));
      }
      w.EndObject();
    }
    w.EndArray().BeginArray("fields");
    for (const auto& f : used) w.String(f);
    w.EndArray()
        .Raw("recipients", MemberJson(a.json, "recipients"))
        .Raw("transfers", MemberJson(a.json, "transfers"))
        .String("retention", a.retention)
        .BeginObject("retention_by_category");
    for (const auto& [category, rule] : a.category_retention) w.String(category, rule);
    w.EndObject().String("source", subject.source).EndObject();
  }
  w.EndArray().BeginArray("requests");
  RequestQuery rq;
  rq.subject = subject.id;
  rq.limit = 1000;
  GARDE_ASSIGN_OR_RETURN(auto requests, tx.QueryRequests(rq));
  for (const auto& r : requests) {
    w.BeginObject()
        .String("id", r.id)
        .String("type", r.type)
        .String("status", r.id == request.id ? "completed" : r.status)
        .String("received_at", FormatRfc3339(r.received_at))
        .String("due_at", FormatRfc3339(r.due_at))
        .EndObject();
  }
  w.EndArray();
  // Art. 15(1)(e): the rights the subject has, and where to exercise them.
  w.BeginArray("rights");
  for (const auto& [right, article] :
       std::vector<std::pair<const char*, const char*>>{{"rectification", "Art. 16"},
                                                        {"erasure", "Art. 17"},
                                                        {"restriction", "Art. 18"},
                                                        {"objection", "Art. 21"},
                                                        {"portability", "Art. 20"},
                                                        {"withdraw_consent", "Art. 7(3)"}}) {
    w.BeginObject().String("right", right).String("article", article).EndObject();
  }
  w.EndArray()
      .BeginObject("exercise_with")
      .String("controller", policies.controller_name())
      .String("contact", policies.controller_contact())
      .EndObject();
  // Art. 15(1)(f), Art. 77: the right to lodge a complaint with a supervisory authority.
  const auto& authority = policies.supervisory_authority();
  w.BeginObject("complaint")
      .String("article", "Art. 77")
      .String("authority", authority.name)
      .String("address", authority.address)
      .String("url", authority.url)
      .EndObject();
  // Art. 15(1)(h), Art. 22: automated decision-making, including profiling, with meaningful
  // information about its logic and its significance, for the activities that use the data.
  w.BeginArray("automated_decisions");
  for (const auto& a : policies.activities()) {
    if (a.automated_decision.logic.empty()) continue;
    const bool uses = std::any_of(view.fields.begin(), view.fields.end(),
                                  [&](const auto& f) { return a.fields.count(f.first) != 0; });
    if (!uses) continue;
    w.BeginObject()
        .String("activity", a.id)
        .String("name", a.name)
        .String("logic", a.automated_decision.logic)
        .String("significance", a.automated_decision.significance)
        .EndObject();
  }
  w.EndArray();
  // Who accessed the data, when and for which activity: the audit entries about the subject
  // (they hold no personal data, and each can be proven against a signed tree head).
  w.BeginArray("accesses");
  AuditQuery aq;
  aq.subject = subject.id;
  aq.limit = kAuditPage;
  for (;;) {
    auto page = d_.journal.QueryLogged(aq);  // imported before the transaction began
    if (!page.ok()) return page.status();
    for (const auto& row : page.value()) w.Raw(row.entry);
    if (page.value().size() < kAuditPage) break;
    aq.after_seq = page.value().back().seq;
  }
  w.EndArray().EndObject();
  for (auto& [_, v] : view.fields) sodium_memzero(v.text.data(), v.text.size());
  return w.Take();
}

Result<std::string> RequestDesk::Package(const Caller& caller, const std::string& id) {
  auto policies = d_.policies.Current();
  if (!caller.is_subject()) {
    GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "requests.manage"));
  } else if (caller.link_use != "dsr" || caller.link_scope != id) {
    // A preference link, or a rights-page link, may have been forwarded: only the link sent
    // for this request opens its package.
    return PermissionDenied("open the package with the link sent for this request");
  }
  std::string package;
  std::string subject_id;
  const Status imported = d_.journal.FlushEverywhere();  // for a preview, as in Complete
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    RequestRow row;
    SubjectRow subject;
    GARDE_RETURN_IF_ERROR(Load(tx, caller, id, &row, &subject));
    subject_id = row.subject_id;
    if (row.type != "access" && row.type != "portability") {
      return Conflict("a " + row.type + " request has no package");
    }
    if (row.status == NameOf(RequestState::kCompleted)) {
      if (row.package.empty() || subject.wrapped_dek.empty()) {
        return Conflict("the package was destroyed with the subject's data");
      }
      GARDE_ASSIGN_OR_RETURN(auto plain,
                             d_.vault.OpenFor(subject, RequestPackageLabel(row.id), row.package));
      package = std::move(plain);
      return Status::Ok();
    }
    if (caller.is_subject()) return Conflict("the package is not ready yet");
    // A preview for officers while the request could be completed.
    GARDE_RETURN_IF_ERROR(Transition(row.status, RequestStep::kComplete).status());
    GARDE_RETURN_IF_ERROR(RefuseGone(subject));
    GARDE_RETURN_IF_ERROR(imported);
    GARDE_ASSIGN_OR_RETURN(auto built, BuildPackage(tx, *policies, row, subject));
    package = std::move(built);
    return Status::Ok();
  }));
  GARDE_RETURN_IF_ERROR(d_.journal.Record(nullptr, caller,
                                          {"request.package",
                                           subject_id,
                                           "",
                                           "ok",
                                           {id, "sha256:" + Sha256Hex(package)},
                                           static_cast<int64_t>(package.size())}));
  return package;
}

}  // namespace garde

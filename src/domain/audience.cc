#include "garde/domain/audience.h"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/log.h"
#include "garde/base/thread_name.h"

namespace garde {
namespace {

using Kind = Predicate::Kind;

void CollectFields(const Predicate& p, std::set<std::string>* out) {
  if (!p.field.empty()) out->insert(p.field);
  for (const auto& c : p.children) CollectFields(c, out);
}

// Normalises the predicate's literal values like stored values, so "f" matches "F" and
// "75 011" style spellings match; reports problems by path.
void Prepare(Predicate& p, const PolicySet& policies, const EntryStandard& standard,
             const std::string& path, Status* problems) {
  for (size_t i = 0; i < p.children.size(); ++i) {
    Prepare(p.children[i], policies, standard, path + "." + std::to_string(i), problems);
  }
  if (p.field.empty()) return;
  const FieldSpec* spec = policies.schema().Find(p.field);
  if (spec == nullptr) {
    problems->AddError(path, "'" + p.field + "' is not a field of the schema");
    return;
  }
  if (p.kind == Kind::kWithin) {
    if (spec->type != FieldType::kDate) problems->AddError(path, "within needs a date field");
    if (!AddIsoDuration(0, p.duration))
      problems->AddError(path, "within needs an ISO 8601 duration");
    return;
  }
  if (p.kind == Kind::kPrefix) {
    if (p.values.size() != 1 || p.values[0].type != FieldValue::Type::kString) {
      problems->AddError(path, "prefix needs one string");
    }
    return;
  }
  const bool range =
      p.kind == Kind::kGt || p.kind == Kind::kGte || p.kind == Kind::kLt || p.kind == Kind::kLte;
  if (range && spec->type != FieldType::kNumber && spec->type != FieldType::kDate) {
    problems->AddError(path, "ranges need a number or date field");
    return;
  }
  for (auto& v : p.values) {
    std::string why;
    FieldSpec loose = *spec;  // comparison values need not respect min/max
    loose.min.reset();
    loose.max.reset();
    loose.required = false;
    auto n = standard.Normalize(loose, v, &why);
    if (!n) {
      problems->AddError(path, "value " + why);
      continue;
    }
    v = *n;
  }
}

using Value = AudienceIndex::Value;

// An entry's value against one of the request's.
int Compare(const Value& a, const FieldValue& b) {
  if (a.type() == FieldValue::Type::kNumber && b.type == FieldValue::Type::kNumber) {
    const double x = a.number();
    return x < b.number ? -1 : x > b.number ? 1 : 0;
  }
  const int c = a.text().compare(b.text);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

bool Same(const Value& a, const FieldValue& b) {
  return a.type() == b.type && Compare(a, b) == 0 && a.boolean() == b.boolean;
}

}  // namespace

struct BoundPredicate {
  const Predicate* p = nullptr;
  const std::vector<Value>* column = nullptr;  // leaves: the field's values
  std::string cutoff, today;                   // kWithin: the dates it accepts
  std::vector<BoundPredicate> children;
};

namespace {

BoundPredicate Bind(const Predicate& p, const AudienceIndex& index, int64_t now) {
  BoundPredicate b;
  b.p = &p;
  if (!p.field.empty()) b.column = index.Column(p.field);
  if (p.kind == Kind::kWithin) {
    const int64_t span = AddIsoDuration(now, p.duration).value_or(now) - now;
    b.cutoff = FormatIsoDate(CivilFromDays((now - span) / 86400));
    b.today = FormatIsoDate(CivilFromDays(now / 86400));
  }
  for (const auto& c : p.children) b.children.push_back(Bind(c, index, now));
  return b;
}

// Whether entry i of the index satisfies the predicate.
bool Eval(const BoundPredicate& b, size_t i) {
  const Predicate& p = *b.p;
  switch (p.kind) {
    case Kind::kAll:
      return std::all_of(b.children.begin(), b.children.end(),
                         [&](const BoundPredicate& c) { return Eval(c, i); });
    case Kind::kAny:
      return std::any_of(b.children.begin(), b.children.end(),
                         [&](const BoundPredicate& c) { return Eval(c, i); });
    case Kind::kNot: return !b.children.empty() && !Eval(b.children[0], i);
    default: break;
  }
  if (b.column == nullptr) return false;
  const Value& v = (*b.column)[i];
  if (v.is_null()) return false;  // a missing value matches no comparison
  switch (p.kind) {
    case Kind::kEq: return Same(v, p.values[0]);
    case Kind::kIn:
      return std::any_of(p.values.begin(), p.values.end(),
                         [&](const FieldValue& x) { return Same(v, x); });
    case Kind::kPrefix:
      return v.type() == FieldValue::Type::kString && v.text().rfind(p.values[0].text, 0) == 0;
    case Kind::kGt: return v.type() == p.values[0].type && Compare(v, p.values[0]) > 0;
    case Kind::kGte: return v.type() == p.values[0].type && Compare(v, p.values[0]) >= 0;
    case Kind::kLt: return v.type() == p.values[0].type && Compare(v, p.values[0]) < 0;
    case Kind::kLte: return v.type() == p.values[0].type && Compare(v, p.values[0]) <= 0;
    case Kind::kWithin: return v.text() >= b.cutoff && v.text() <= b.today;
    default: return false;
  }
}

}  // namespace

AudienceBuilder::AudienceBuilder(Store& store, SubjectVault& vault, ConsentLedger& ledger,
                                 const PolicyHolder& policies, const EntryStandard& standard,
                                 AccessJournal& journal, const Clock& clock, size_t kept_subjects,
                                 std::unique_ptr<SealedSnapshot> snapshot)
    : store_(store),
      vault_(vault),
      ledger_(ledger),
      policies_(policies),
      standard_(standard),
      journal_(journal),
      clock_(clock),
      index_(
          store,
          [&vault](const SubjectRow& row, const std::vector<SealedField>& sealed,
                   const std::set<std::string>& fields) {
            return vault.OpenFields(row, sealed, fields);
          },
          kept_subjects),
      snapshot_(std::move(snapshot)) {}

namespace {

// "audience snapshot written" / "read" with its size and time; a failure as a warning.
void LogSnapshotStep(const std::string& step, const Result<bool>& done, size_t subjects,
                     std::chrono::steady_clock::time_point started) {
  if (!done.ok()) {
    LogLine(spdlog::level::warn, "audience snapshot not " + step)
        .Str("error", done.status().message());
  } else if (done.value()) {
    LogLine(spdlog::level::info, "audience snapshot " + step)
        .Int("subjects", static_cast<int64_t>(subjects))
        .Int("ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count());
  }
}

}  // namespace

AudienceBuilder::~AudienceBuilder() {
  if (saver_.joinable()) saver_.join();
}

void AudienceBuilder::SaveSnapshot() {
  if (snapshot_ == nullptr) return;
  MutexLock saving(&save_mu_);  // one writer of the file at a time
  std::optional<AudienceIndex::Capture> content;
  {
    // Audiences wait only while the records are taken, not while they are written.
    MutexLock lock(&mu_);
    auto taken = index_.TakeCapture();
    if (!taken.ok()) {
      LogLine(spdlog::level::warn, "audience snapshot not written")
          .Str("error", taken.status().message());
      return;
    }
    content = std::move(taken).value();
  }
  if (!content) return;
  const auto started = std::chrono::steady_clock::now();
  auto written = AudienceIndex::Write(*content, *snapshot_);
  {
    MutexLock lock(&mu_);
    index_.Release(*content, written.ok() && written.value());
  }
  LogSnapshotStep("written", written, content->records.size(), started);
}

void AudienceBuilder::ReadSnapshotOnce() {
  if (snapshot_ == nullptr || snapshot_tried_) return;
  snapshot_tried_ = true;
  const auto started = std::chrono::steady_clock::now();
  auto read = index_.LoadFrom(*snapshot_);
  LogSnapshotStep("read", read, index_.size(), started);
  CountKept();
}

void AudienceBuilder::WarmUp() {
  MutexLock lock(&mu_);
  ReadSnapshotOnce();
}

Result<FieldMap> AudienceBuilder::OpenFromVault(ReadTx& tx, const std::string& id,
                                                const std::set<std::string>& fields) const {
  GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
  if (!row || row->status != "active") return NotFound("no such active subject");
  GARDE_ASSIGN_OR_RETURN(auto sealed, tx.GetFields(id));
  return vault_.OpenFields(*row, sealed, fields);
}

Status AudienceBuilder::Evaluate(const Scan& scan, size_t begin, size_t end, Audience* out,
                                 std::vector<uint32_t>* at) {
  return store_.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto facts_at, ledger_.SyncFacts(tx));
    for (size_t i = begin; i < end; ++i) {
      ++out->scanned;
      if (!index_.eligible(i) || !Eval(scan.where, i)) continue;
      ++out->matched;
      const std::string id(index_.id(i));
      // The facts as the index read them with the subject (unpacked from its record, not
      // kept); else, for a record without them, from the ledger.
      std::shared_ptr<const ConsentFacts> facts = index_.Facts(i);
      if (facts == nullptr) {
        GARDE_ASSIGN_OR_RETURN(auto read, ledger_.KeptFacts(tx, facts_at, id));
        if (read == nullptr) continue;  // gone meanwhile
        facts = std::move(read);
      }
      const auto decision = ConsentLedger::DecideFrom(facts.get(), scan.policies, id, scan.purpose,
                                                      scan.channel, scan.now);
      if (!decision.decision.allowed) continue;
      AudienceMember m{id, {}};
      if (!scan.output_only.empty()) {
        // Contacts and other output fields are opened for members only (the index keeps
        // them sealed under its own key).
        auto more = index_.OpenKept(i, scan.output_only);
        if (!more.ok() && more.status().code() == Code::kDamaged) {
          more = OpenFromVault(tx, id, scan.output_only);  // the vault's copy, then
        }
        if (!more.ok()) {
          if (more.status().code() == Code::kDamaged) continue;   // never in a campaign
          if (more.status().code() == Code::kNotFound) continue;  // changed meanwhile
          return more.status();
        }
        m.fields = std::move(more).value();
      }
      for (const auto& f : scan.fields) {
        const auto* column = index_.Column(f);
        if (column != nullptr && !(*column)[i].is_null()) m.fields[f] = (*column)[i].ToFieldValue();
      }
      at->push_back(static_cast<uint32_t>(i));
      if (scan.text == nullptr) {
        out->members.push_back(std::move(m));
        continue;
      }
      scan.text->member(scan.fields, m, &out->text);
      for (auto& [_, v] : m.fields) sodium_memzero(v.text.data(), v.text.size());
    }
    return Status::Ok();
  });
}
Result<Audience> AudienceBuilder::Build(const Caller& caller, const AudienceRequest& in) {
  return Run(caller, in, nullptr);
}

Result<Audience> AudienceBuilder::BuildText(const Caller& caller, const AudienceRequest& in,
                                            const AudienceText& text) {
  return Run(caller, in, &text);
}

Result<Audience> AudienceBuilder::Run(const Caller& caller, const AudienceRequest& in,
                                      const AudienceText* text) {
  auto policies = policies_.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "audiences.build"));
  auto activity = AccessGate::BindPurpose(*policies, caller, in.activity);
  if (!activity.ok()) return activity.status();
  Status problems(Code::kUnprocessable, "the audience request is not valid");
  const Purpose* purpose = policies->FindPurpose(in.purpose);
  if (purpose == nullptr ||
      std::find(activity.value()->purposes.begin(), activity.value()->purposes.end(), in.purpose) ==
          activity.value()->purposes.end()) {
    problems.AddError("purpose", "must be one of the activity's purposes");
  } else if (!in.channel.empty() && std::find(purpose->channels.begin(), purpose->channels.end(),
                                              in.channel) == purpose->channels.end()) {
    problems.AddError("channel", "is not a channel of " + in.purpose);
  }
  Audience out;
  out.fields = in.fields;
  if (out.fields.empty())
    out.fields.assign(activity.value()->fields.begin(), activity.value()->fields.end());
  for (const auto& f : out.fields) {
    if (activity.value()->fields.count(f) == 0) {
      problems.AddError("fields", "'" + f + "' is not declared by activity " + in.activity);
    }
  }
  Predicate where = in.where;
  Prepare(where, *policies, standard_, "where", &problems);
  std::set<std::string> filter_fields;
  CollectFields(where, &filter_fields);
  for (const auto& f : filter_fields) {
    // Filtering on a field is processing it: the activity must declare it.
    if (activity.value()->fields.count(f) == 0 && policies->schema().Find(f) != nullptr) {
      problems.AddError("where", "'" + f + "' is not declared by activity " + in.activity);
    }
  }
  if (!problems.errors().empty()) return problems;

  std::set<std::string> output_only;
  for (const auto& f : out.fields) {
    if (filter_fields.count(f) == 0) output_only.insert(f);
  }
  MutexLock lock(&mu_);
  const auto started = std::chrono::steady_clock::now();
  ReadSnapshotOnce();
  if (Status refreshed = index_.Refresh(filter_fields, output_only); !refreshed.ok()) {
    CountKept();  // a failed rebuild has let the old index go
    return refreshed;
  }
  const auto refreshed = std::chrono::steady_clock::now();
  const int64_t now = clock_.Now();
  const BoundPredicate bound = Bind(where, index_, now);
  Scan scan{*policies, *purpose, in.channel, bound, output_only, out.fields, now, text};
  if (text != nullptr) out.text = text->head(out.fields);
  // Two halves of the index on two connections and cores at once. Like a batch consent
  // check, a campaign list is no transaction: each half is decided as it is read then.
  const size_t half = index_.size() / 2;
  Audience upper;
  std::vector<uint32_t> lower_at, upper_at;  // the members' entries: ids in order
  Status upper_status = Status::Ok();
  std::thread helper([&] {
    NameThisThread("garde-helper");
    upper_status = Evaluate(scan, half, index_.size(), &upper, &upper_at);
  });
  Status lower_status = Evaluate(scan, 0, half, &out, &lower_at);
  helper.join();
  out.count = static_cast<int64_t>(lower_at.size() + upper_at.size());
  // The list's hash, read before the index may be trimmed below. Its entries are in id order,
  // the lower half's before the upper's: the ids come sorted.
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  for (const auto* half_at : {&lower_at, &upper_at}) {
    for (uint32_t i : *half_at) {
      const std::string_view id = index_.id(i);
      crypto_hash_sha256_update(&st, reinterpret_cast<const uint8_t*>(id.data()), id.size());
      crypto_hash_sha256_update(&st, reinterpret_cast<const uint8_t*>("\n"), 1);
    }
  }
  const auto evaluated = std::chrono::steady_clock::now();
  LogLine(spdlog::level::info, "audience built")
      .Int("subjects", static_cast<int64_t>(index_.size()))
      .Int("refresh_ms",
           std::chrono::duration_cast<std::chrono::milliseconds>(refreshed - started).count())
      .Int("evaluate_ms",
           std::chrono::duration_cast<std::chrono::milliseconds>(evaluated - refreshed).count())
      .Int("index_bytes", static_cast<int64_t>(index_.bytes()))
      .Int("compactions", static_cast<int64_t>(index_.compactions()));
  index_.Trim();
  CountKept();
  if (snapshot_ != nullptr && index_.Unsaved()) {
    // Rebuilt: the next run should not have to do it again. Written once this build has
    // answered (the saver waits for the lock); a saver still waiting writes this state.
    if (!saving_.exchange(true)) {
      if (saver_.joinable()) saver_.join();  // finished: it no longer needs the lock
      saver_ = std::thread([this] {
        NameThisThread("garde-aud-save");
        SaveSnapshot();
        saving_ = false;
      });
    }
  }
  GARDE_RETURN_IF_ERROR(lower_status);
  GARDE_RETURN_IF_ERROR(upper_status);
  out.scanned += upper.scanned;
  out.matched += upper.matched;
  out.members.insert(out.members.end(), std::make_move_iterator(upper.members.begin()),
                     std::make_move_iterator(upper.members.end()));
  out.text.reserve(out.text.size() + upper.text.size());  // not twice what it holds
  out.text.append(upper.text);
  sodium_memzero(upper.text.data(), upper.text.size());
  uint8_t digest[32];
  crypto_hash_sha256_final(&st, digest);
  out.list_sha256 = HexEncode(digest, sizeof digest);
  std::vector<std::string> details = out.fields;
  details.push_back("purpose:" + in.purpose);
  details.push_back("list_sha256:" + out.list_sha256);
  GARDE_RETURN_IF_ERROR(journal_.Record(
      nullptr, caller, {"audience.build", "", in.activity, "ok", details, out.count}));
  return out;
}

}  // namespace garde

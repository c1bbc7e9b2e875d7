#include "garde/domain/audience.h"

#include <sodium.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"

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
    if (!AddIsoDuration(0, p.duration)) problems->AddError(path, "within needs an ISO 8601 duration");
    return;
  }
  if (p.kind == Kind::kPrefix) {
    if (p.values.size() != 1 || p.values[0].type != FieldValue::Type::kString) {
      problems->AddError(path, "prefix needs one string");
    }
    return;
  }
  const bool range = p.kind == Kind::kGt || p.kind == Kind::kGte || p.kind == Kind::kLt ||
                     p.kind == Kind::kLte;
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

int Compare(const FieldValue& a, const FieldValue& b) {
  if (a.type == FieldValue::Type::kNumber && b.type == FieldValue::Type::kNumber) {
    return a.number < b.number ? -1 : a.number > b.number ? 1 : 0;
  }
  return a.text < b.text ? -1 : a.text > b.text ? 1 : 0;
}

bool Same(const FieldValue& a, const FieldValue& b) {
  return a.type == b.type && Compare(a, b) == 0 && a.boolean == b.boolean;
}

bool Eval(const Predicate& p, const FieldMap& f, int64_t now) {
  switch (p.kind) {
    case Kind::kAll:
      return std::all_of(p.children.begin(), p.children.end(),
                         [&](const Predicate& c) { return Eval(c, f, now); });
    case Kind::kAny:
      return std::any_of(p.children.begin(), p.children.end(),
                         [&](const Predicate& c) { return Eval(c, f, now); });
    case Kind::kNot:
      return !p.children.empty() && !Eval(p.children[0], f, now);
    default:
      break;
  }
  auto it = f.find(p.field);
  if (it == f.end()) return false;  // a missing value matches no comparison
  const FieldValue& v = it->second;
  switch (p.kind) {
    case Kind::kEq: return Same(v, p.values[0]);
    case Kind::kIn:
      return std::any_of(p.values.begin(), p.values.end(),
                         [&](const FieldValue& x) { return Same(v, x); });
    case Kind::kPrefix:
      return v.type == FieldValue::Type::kString && v.text.rfind(p.values[0].text, 0) == 0;
    case Kind::kGt: return v.type == p.values[0].type && Compare(v, p.values[0]) > 0;
    case Kind::kGte: return v.type == p.values[0].type && Compare(v, p.values[0]) >= 0;
    case Kind::kLt: return v.type == p.values[0].type && Compare(v, p.values[0]) < 0;
    case Kind::kLte: return v.type == p.values[0].type && Compare(v, p.values[0]) <= 0;
    case Kind::kWithin: {
      const int64_t span = AddIsoDuration(now, p.duration).value_or(now) - now;
      const std::string cutoff = FormatIsoDate(CivilFromDays((now - span) / 86400));
      const std::string today = FormatIsoDate(CivilFromDays(now / 86400));
      return v.text >= cutoff && v.text <= today;
    }
    default: return false;
  }
}

}  // namespace

Result<AudienceBuilder::KeptPtr> AudienceBuilder::KeptValues(
    int64_t position, const std::string& id, const std::set<std::string>& fields,
    const std::function<Result<FieldMap>(const std::set<std::string>&)>& open) {
  auto kept = kept_.Find(id);
  std::set<std::string> wanted = fields;
  if (kept != nullptr) {
    bool covered = true;
    for (const auto& f : fields) covered &= kept->opened.count(f) != 0;
    if (covered) return kept;
    wanted.insert(kept->opened.begin(), kept->opened.end());  // keep what it held, too
  }
  auto values = open(wanted);
  if (!values.ok()) return values.status();
  auto fresh = std::make_shared<KeptFilterValues>();
  fresh->opened = std::move(wanted);
  fresh->values = std::move(values).value();
  kept_.Keep(position, id, fresh);
  return KeptPtr(std::move(fresh));
}

Status AudienceBuilder::ScanRange(const Scan& scan, const std::string& from,
                                  const std::string& before, Audience* out) {
  return store_.Read([&](ReadTx& tx) -> Status {
    auto facts_at = ledger_.SyncFacts(tx);
    if (!facts_at.ok()) return facts_at.status();
    auto kept_at = kept_.Sync(tx);
    if (!kept_at.ok()) return kept_at.status();
    std::string after = from;
    for (;;) {
      auto rows = tx.ScanSubjects(after, 1000);
      if (!rows.ok()) return rows.status();
      if (rows->empty()) return Status::Ok();
      for (const auto& row : rows.value()) {
        if (!before.empty() && row.id >= before) return Status::Ok();
        ++out->scanned;
        if (row.status != "active") continue;
        // The boxes are read at most once per subject, and only when needed.
        std::optional<std::vector<SealedField>> sealed;
        auto open = [&](const std::set<std::string>& names) -> Result<FieldMap> {
          if (!sealed) {
            auto got = tx.GetFields(row.id);
            if (!got.ok()) return got.status();
            sealed = std::move(got).value();
          }
          return vault_.OpenFields(row, *sealed, names);
        };
        auto values = KeptValues(kept_at.value(), row.id, scan.filter_fields, open);
        if (!values.ok()) {
          if (values.status().code() == Code::kDamaged) continue;  // never in a campaign
          return values.status();
        }
        if (!Eval(scan.where, values.value()->values, scan.now)) continue;
        ++out->matched;
        auto decision = ledger_.DecideKept(tx, facts_at.value(), scan.policies, row,
                                           scan.purpose, scan.channel, scan.now);
        if (!decision.ok()) return decision.status();
        if (!decision->decision.allowed) continue;
        AudienceMember m{row.id, {}};
        if (!scan.output_only.empty()) {
          auto more = open(scan.output_only);
          if (!more.ok()) {
            if (more.status().code() == Code::kDamaged) continue;
            return more.status();
          }
          m.fields = std::move(more).value();
        }
        for (const auto& f : scan.fields) {
          auto it = values.value()->values.find(f);
          if (it != values.value()->values.end()) m.fields[f] = it->second;
        }
        out->members.push_back(std::move(m));
      }
      after = rows->back().id;
    }
  });
}

Result<Audience> AudienceBuilder::Build(const Caller& caller, const AudienceRequest& in) {
  auto policies = policies_.Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "audiences.build"));
  auto activity = AccessGate::BindPurpose(*policies, caller, in.activity);
  if (!activity.ok()) return activity.status();
  Status problems(Code::kUnprocessable, "the audience request is not valid");
  const Purpose* purpose = policies->FindPurpose(in.purpose);
  if (purpose == nullptr ||
      std::find(activity.value()->purposes.begin(), activity.value()->purposes.end(),
                in.purpose) == activity.value()->purposes.end()) {
    problems.AddError("purpose", "must be one of the activity's purposes");
  } else if (!in.channel.empty() &&
             std::find(purpose->channels.begin(), purpose->channels.end(), in.channel) ==
                 purpose->channels.end()) {
    problems.AddError("channel", "is not a channel of " + in.purpose);
  }
  Audience out;
  out.fields = in.fields;
  if (out.fields.empty()) out.fields.assign(activity.value()->fields.begin(), activity.value()->fields.end());
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

  Scan scan{*policies, *purpose, in.channel, where, filter_fields, {}, out.fields, clock_.Now()};
  for (const auto& f : out.fields) {
    if (filter_fields.count(f) == 0) scan.output_only.insert(f);
  }
  // Two halves of the id space on two connections and cores at once (ids are "sub_" and
  // random Crockford base32, so "sub_g" splits them evenly; any id is still scanned once).
  // Like a batch consent check, a campaign list is no transaction: each half is as of the
  // moment it is read.
  const std::string split = "sub_g";
  Audience upper;
  Status upper_status = Status::Ok();
  std::thread helper([&] { upper_status = ScanRange(scan, split, "", &upper); });
  Status lower_status = ScanRange(scan, "", split, &out);
  helper.join();
  GARDE_RETURN_IF_ERROR(lower_status);
  GARDE_RETURN_IF_ERROR(upper_status);
  out.scanned += upper.scanned;
  out.matched += upper.matched;
  out.members.insert(out.members.end(), std::make_move_iterator(upper.members.begin()),
                     std::make_move_iterator(upper.members.end()));
  std::vector<std::string> ids;
  for (const auto& m : out.members) ids.push_back(m.id);
  std::sort(ids.begin(), ids.end());
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  for (const auto& id : ids) {
    crypto_hash_sha256_update(&st, reinterpret_cast<const uint8_t*>(id.data()), id.size());
    crypto_hash_sha256_update(&st, reinterpret_cast<const uint8_t*>("\n"), 1);
  }
  uint8_t digest[32];
  crypto_hash_sha256_final(&st, digest);
  out.list_sha256 = HexEncode(digest, sizeof digest);
  std::vector<std::string> details = out.fields;
  details.push_back("purpose:" + in.purpose);
  details.push_back("list_sha256:" + out.list_sha256);
  GARDE_RETURN_IF_ERROR(journal_.Record(
      nullptr, caller,
      {"audience.build", "", in.activity, "ok", details, static_cast<int64_t>(ids.size())}));
  return out;
}

}  // namespace garde

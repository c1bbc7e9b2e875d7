#include "garde/domain/retention.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <sodium.h>

#include <algorithm>
#include <climits>

#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/domain/subject_merges.h"
#include "garde/domain/subject_requests.h"

namespace garde {
namespace {

using Anchor = RetentionRule::Anchor;

// When the rule runs out for this subject; nullopt when its anchor is absent (no purchase
// date, no closed request, consent never given): the rule then keeps nothing.
std::optional<int64_t> Until(const RetentionRule& rule, const Activity& a,
                             const RetentionFacts& f) {
  std::optional<int64_t> from;
  switch (rule.anchor) {
    case Anchor::kCreated: from = f.created_at; break;
    case Anchor::kLastInteraction:
      from = f.last_interaction_at != 0 ? f.last_interaction_at : f.created_at;
      break;
    case Anchor::kDateField:
      if (auto it = f.dates.find(rule.field); it != f.dates.end()) from = it->second;
      break;
    case Anchor::kRequestClosed: from = f.request_closed_at; break;
    case Anchor::kConsentEnded: {
      auto it = f.consent_ended.find(a.id);
      if (it == f.consent_ended.end()) return std::nullopt;
      if (it->second == RetentionFacts::kStillGiven) return INT64_MAX;
      from = it->second;
      break;
    }
  }
  if (!from) return std::nullopt;
  return AddIsoDuration(*from, rule.duration);
}

// The counts a run reports, by activity and rule. No personal data: ids never appear.
struct Counts {
  int64_t scanned = 0, subjects_erased = 0, holds_released = 0, fields_erased = 0,
          skipped_restricted = 0, consents_expired = 0, requests_due_soon = 0, requests_overdue = 0,
          spend_refreshed = 0, merges_completed = 0;
  struct PerActivity {
    int64_t subjects_erased = 0, holds_released = 0;
    std::map<std::string, int64_t> fields;
  };
  std::map<std::string, PerActivity> by_activity;

  std::string Json(const PolicySet& policies) const {
    JsonWriter w;
    w.BeginObject()
        .Int("subjects_scanned", scanned)
        .Int("subjects_erased", subjects_erased)
        .Int("holds_released", holds_released)
        .Int("fields_erased", fields_erased)
        .Int("skipped_restricted", skipped_restricted)
        .Int("consents_expired", consents_expired)
        .Int("requests_due_soon", requests_due_soon)
        .Int("requests_overdue", requests_overdue)
        .Int("spend_refreshed", spend_refreshed)
        .Int("merges_completed", merges_completed)
        .BeginObject("by_activity");
    for (const auto& [id, c] : by_activity) {
      const Activity* a = policies.FindActivity(id);
      w.BeginObject(id)
          .String("rule", a != nullptr ? a->retention : "")
          .Int("subjects_erased", c.subjects_erased)
          .Int("holds_released", c.holds_released)
          .BeginObject("fields");
      for (const auto& [field, n] : c.fields) w.Int(field, n);
      w.EndObject().EndObject();
    }
    w.EndObject().EndObject();
    return w.Take();
  }

  static Counts FromJson(const std::string& text) {
    Counts c;
    try {
      Poco::JSON::Parser p;
      auto o = p.parse(text).extract<Poco::JSON::Object::Ptr>();
      auto get = [&](const char* k) { return o->optValue<int64_t>(k, 0); };
      c.scanned = get("subjects_scanned");
      c.subjects_erased = get("subjects_erased");
      c.holds_released = get("holds_released");
      c.fields_erased = get("fields_erased");
      c.skipped_restricted = get("skipped_restricted");
      c.consents_expired = get("consents_expired");
      c.requests_due_soon = get("requests_due_soon");
      c.requests_overdue = get("requests_overdue");
      c.spend_refreshed = get("spend_refreshed");
      c.merges_completed = get("merges_completed");
      if (auto acts = o->getObject("by_activity")) {
        for (const auto& name : acts->getNames()) {
          auto a = acts->getObject(name);
          PerActivity& pa = c.by_activity[name];
          pa.subjects_erased = a->optValue<int64_t>("subjects_erased", 0);
          pa.holds_released = a->optValue<int64_t>("holds_released", 0);
          if (auto fields = a->getObject("fields")) {
            for (const auto& f : fields->getNames()) pa.fields[f] = fields->getValue<int64_t>(f);
          }
        }
      }
    } catch (const std::exception&) {
    }
    return c;
  }
};

// What the sweep needs to know, for one run, about which facts to read per subject.
struct Needs {
  std::set<std::string> date_fields;
  bool consent = false;
  bool requests = false;
};

Needs NeedsOf(const PolicySet& policies) {
  Needs n;
  auto note = [&](const std::string& text) {
    std::string problem;
    auto rule = ParseRetentionRule(text, policies.schema(), &problem);
    if (!rule) return;
    if (rule->anchor == Anchor::kDateField) n.date_fields.insert(rule->field);
    n.consent |= rule->anchor == Anchor::kConsentEnded;
    n.requests |= rule->anchor == Anchor::kRequestClosed;
  };
  for (const auto& a : policies.activities()) {
    note(a.retention);
    for (const auto& [_, rule] : a.category_retention) note(rule);
  }
  return n;
}

// When the consent of each activity ended for a subject: still given while the latest event of
// some purpose (and channel) of it is an unexpired grant; else the latest refusal, withdrawal,
// objection or expiry; absent when none of its purposes was ever granted.
void ConsentEnds(const PolicySet& policies, const std::vector<ConsentFactRow>& events, int64_t at,
                 RetentionFacts* f) {
  for (const auto& a : policies.activities()) {
    int64_t ended = 0;
    bool given = false, open = false;
    for (const auto& p : a.purposes) {
      std::map<std::string, const ConsentFactRow*> latest;  // by channel
      for (const auto& e : events) {
        if (e.purpose != p) continue;
        given |= e.event == "granted";
        const ConsentFactRow*& slot = latest[e.channel];
        if (slot == nullptr || e.at >= slot->at) slot = &e;
      }
      for (const auto& [_, e] : latest) {
        if (e->event != "granted") {
          ended = std::max(ended, e->at);
        } else if (e->expires_at != 0 && e->expires_at <= at) {
          ended = std::max(ended, e->expires_at);
        } else {
          open = true;
        }
      }
    }
    if (open) {
      f->consent_ended[a.id] = RetentionFacts::kStillGiven;
    } else if (given) {
      f->consent_ended[a.id] = ended;
    }
  }
}

}  // namespace

bool ActivityConcerns(const PolicySet& policies, const Activity& activity,
                      const std::string& kind) {
  bool specific = false;
  for (const auto& field : activity.fields) {
    const FieldSpec* spec = policies.schema().Find(field);
    if (spec == nullptr || spec->kinds.size() != 1) continue;  // both kinds: says nothing
    if (spec->kinds.count(kind) != 0) return true;
    specific = true;
  }
  return !specific;
}

std::map<std::string, Justification> JustifiedFields(const PolicySet& policies,
                                                     const RetentionFacts& facts) {
  std::map<std::string, Justification> out;
  for (const auto& a : policies.activities()) {
    if (facts.held_erasure && a.legal_basis != LegalBasis::kLegalObligation) continue;
    if (!ActivityConcerns(policies, a, facts.kind)) continue;
    std::string problem;
    auto rule = ParseRetentionRule(a.retention, policies.schema(), &problem);
    // Criteria Garde cannot evaluate keep everything they cover: lint warns of them.
    const std::optional<int64_t> main = rule ? Until(*rule, a, facts) : INT64_MAX;
    for (const auto& field : a.fields) {
      if (facts.fields.count(field) == 0) continue;
      std::optional<int64_t> until = main;
      const FieldSpec* spec = policies.schema().Find(field);
      const std::string& own = a.RetentionFor(spec != nullptr ? spec->category : "");
      if (until && own != a.retention) {
        // A category's own rule may end the activity's hold on it sooner.
        if (auto r = ParseRetentionRule(own, policies.schema(), &problem)) {
          auto shorter = Until(*r, a, facts);
          until = shorter ? std::min(*until, *shorter) : std::optional<int64_t>();
        }
      }
      if (!until) continue;
      Justification& j = out[field];
      if (*until > j.until) j = {*until, a.id};
    }
  }
  return out;
}

RetentionPlan PlanRetention(const PolicySet& policies, const RetentionFacts& facts, int64_t at) {
  RetentionPlan plan;
  if (facts.status == "erased") return plan;
  if (facts.status == "restricted" && !facts.held_erasure) return plan;  // Art. 18: kept as is
  const auto justified = JustifiedFields(policies, facts);
  std::string last;  // the activity whose rule runs out last
  int64_t last_until = INT64_MIN;
  for (const auto& field : facts.fields) {
    auto it = justified.find(field);
    if (it != justified.end() && it->second.until > last_until) {
      last_until = it->second.until;
      last = it->second.activity;
    }
    if (it == justified.end() || it->second.until <= at) {
      plan.erase.insert(field);
      plan.because[field] = it == justified.end() ? "" : it->second.activity;
    }
  }
  if (plan.erase.empty()) return plan;
  if (plan.erase.size() == facts.fields.size()) {
    plan.action = facts.held_erasure ? RetentionPlan::Action::kReleaseHold
                                     : RetentionPlan::Action::kEraseSubject;
    plan.because["*"] = last;
  } else {
    plan.action = RetentionPlan::Action::kEraseFields;
  }
  return plan;
}

Result<std::vector<RetentionRunRow>> RetentionSweep::List(int64_t before_seq, size_t limit) {
  Result<std::vector<RetentionRunRow>> out = std::vector<RetentionRunRow>();
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    out = tx.ListRetentionRuns(before_seq, limit);
    return out.status();
  }));
  return out;
}

Result<std::optional<RetentionRunRow>> RetentionSweep::Get(const std::string& id) {
  Result<std::optional<RetentionRunRow>> out = std::optional<RetentionRunRow>();
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    out = tx.GetRetentionRun(id);
    return out.status();
  }));
  return out;
}

Result<RetentionRunRow> RetentionSweep::Run(const RetentionRunOptions& options) {
  std::unique_lock<std::mutex> one_at_a_time(running_, std::try_to_lock);
  if (!one_at_a_time.owns_lock()) return Conflict("a retention sweep is running; try again later");
  auto policies = d_.policies.Current();
  const int64_t now = d_.clock.Now();
  const Caller system{"garde", "system", {}, "retention", ""};
  const Needs needs = NeedsOf(*policies);

  // Resume the newest run a crash interrupted, with its own time; else start one.
  RetentionRunRow run;
  int64_t previous_at = 0;     // the last completed real run: events are raised once per window
  std::set<std::string> held;  // subjects restricted by an erasure that kept fields
  int64_t total = 0;
  GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto runs, tx.ListRetentionRuns(0, 50));
    for (const auto& r : runs) {
      if (r.finished_at == 0 && r.dry_run == options.dry_run && run.id.empty() &&
          (options.at == 0 || options.at == r.at)) {
        run = r;
      }
      if (r.finished_at != 0 && !r.dry_run && previous_at == 0) previous_at = r.at;
    }
    GARDE_ASSIGN_OR_RETURN(auto tombstones, tx.ListTombstones(0));
    for (const auto& t : tombstones) {
      if (!t.kept.empty()) held.insert(t.subject_id);
    }
    GARDE_ASSIGN_OR_RETURN(auto n, tx.CountSubjects());
    total = n;
    return Status::Ok();
  }));
  if (run.id.empty()) {
    run.id = RandomId("ret_");
    run.started_at = now;
    run.at = options.at != 0 ? options.at : now;
    run.dry_run = options.dry_run;
    run.report = Counts{}.Json(*policies);
    GARDE_RETURN_IF_ERROR(d_.store.Write([&](WriteTx& tx) { return tx.PutRetentionRun(run); }));
  }
  const int64_t at = run.at;
  Counts counts = Counts::FromJson(run.report);

  // The facts of one subject, read in `tx`.
  auto facts_of = [&](ReadTx& tx, const SubjectRow& row) -> Result<RetentionFacts> {
    RetentionFacts f;
    f.status = row.status;
    f.kind = row.kind;
    f.held_erasure = row.status == "restricted" && held.count(row.id) != 0;
    f.created_at = row.created_at;
    f.last_interaction_at = row.last_interaction_at;
    GARDE_ASSIGN_OR_RETURN(auto sealed, tx.GetFields(row.id));
    bool dates = false;
    for (const auto& s : sealed) {
      if (s.field == kExternalIdField) continue;
      f.fields.insert(s.field);
      dates |= needs.date_fields.count(s.field) != 0;
    }
    if (dates && !row.wrapped_dek.empty()) {
      GARDE_ASSIGN_OR_RETURN(auto opened, d_.vault.OpenAll(tx, row));
      for (auto& [name, value] : opened.fields) {
        if (needs.date_fields.count(name) != 0) {
          if (auto d = ParseIsoDate(value.text)) f.dates[name] = DaysFromCivil(*d) * 86400;
        }
        sodium_memzero(value.text.data(), value.text.size());
      }
    }
    if (needs.consent) {
      GARDE_ASSIGN_OR_RETURN(auto events, tx.ConsentFactsOf(row.id));
      ConsentEnds(*policies, events, at, &f);
    }
    if (needs.requests) {
      RequestQuery q;
      q.subject = row.id;
      q.statuses = {"completed", "rejected"};
      q.limit = 1000;
      GARDE_ASSIGN_OR_RETURN(auto closed, tx.QueryRequests(q));
      for (const auto& r : closed) {
        f.request_closed_at = std::max(f.request_closed_at.value_or(0), r.completed_at);
      }
    }
    return f;
  };

  // Art. 19: recipients hear of each erasure (outbox); the audit log records it.
  auto announce = [&](WriteTx& tx, const std::string& id, const RetentionPlan& plan,
                      const char* outcome) -> Status {
    const std::vector<std::string> fields(plan.erase.begin(), plan.erase.end());
    JsonWriter event;
    event.BeginObject()
        .String("subject", id)
        .String("reason", "retention")
        .String("erased_at", FormatRfc3339(now))
        .BeginArray("fields");
    for (const auto& field : fields) event.String(field);
    event.EndArray()
        .Bool("fully_erased", plan.action != RetentionPlan::Action::kEraseFields)
        .EndObject();
    GARDE_RETURN_IF_ERROR(EmitEvent(tx, "subject.erased", event.Take(), now));
    return d_.journal.Record(&tx, system, {"retention.erase", id, "", outcome, fields, 0});
  };

  for (;;) {
    std::vector<SubjectRow> page;
    std::vector<std::string> due;  // subjects with something to do
    int64_t expired = 0;
    std::vector<std::pair<std::string, ConsentFactRow>> expiring;
    GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto rows, tx.ScanSubjects(run.cursor, options.page));
      page = std::move(rows);
      for (const auto& row : page) {
        if (row.status == "restricted" && held.count(row.id) == 0) ++counts.skipped_restricted;
        if (row.status == "erased") continue;
        GARDE_ASSIGN_OR_RETURN(auto f, facts_of(tx, row));
        if (PlanRetention(*policies, f, at).action != RetentionPlan::Action::kNothing) {
          due.push_back(row.id);
        }
      }
      if (page.empty()) return Status::Ok();
      // Grants whose validity ended since the last run, told once.
      return tx.ScanConsentFacts(page.front().id, page.back().id,
                                 [&](std::string_view subject, ConsentFactRow&& e) {
                                   if (e.event == "granted" && e.expires_at != 0 &&
                                       e.expires_at <= at && e.expires_at > previous_at) {
                                     ++expired;
                                     expiring.emplace_back(std::string(subject), std::move(e));
                                   }
                                 });
    }));
    if (page.empty()) break;
    counts.scanned += static_cast<int64_t>(page.size());
    counts.consents_expired += expired;
    run.cursor = page.back().id;

    TombstoneEntries none;  // what a restore must not bring back
    Status applied = d_.store.Write([&](WriteTx& tx) -> Status {
      none = {};
      for (const auto& id : due) {
        GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
        if (!row) continue;
        SubjectRow s = *row;
        auto f = facts_of(tx, s);  // again, inside the write: nothing changed unseen
        if (!f.ok()) return f.status();
        const RetentionPlan plan = PlanRetention(*policies, f.value(), at);
        using Action = RetentionPlan::Action;
        if (plan.action == Action::kNothing) continue;
        for (const auto& [field, activity] : plan.because) {
          if (field != "*")
            ++counts.by_activity[activity.empty() ? "(none)" : activity].fields[field];
        }
        counts.fields_erased += static_cast<int64_t>(plan.erase.size());
        const std::string& last = plan.because.count("*") ? plan.because.at("*") : "";
        if (plan.action == Action::kEraseFields) {
          if (options.dry_run) continue;
          for (const auto& field : plan.erase) {
            GARDE_RETURN_IF_ERROR(tx.DeleteField(s.id, field));
            GARDE_RETURN_IF_ERROR(tx.DeleteIndex(s.id, field));
            GARDE_RETURN_IF_ERROR(tx.DeleteIndex(s.id, "~" + field));
          }
          s.updated_at = now;
          GARDE_RETURN_IF_ERROR(tx.UpdateSubject(s));
          GARDE_RETURN_IF_ERROR(announce(tx, s.id, plan, "fields"));
          continue;
        }
        auto& per = counts.by_activity[last.empty() ? "(none)" : last];
        if (plan.action == Action::kReleaseHold) {
          ++counts.holds_released;
          ++per.holds_released;
        } else {
          ++counts.subjects_erased;
          ++per.subjects_erased;
        }
        if (options.dry_run) continue;
        // The whole subject: its data key is destroyed, as for an erasure request.
        GARDE_ASSIGN_OR_RETURN(auto objected, tx.ObjectedPurposesOf(s.id));
        bool marketing = false;
        for (const auto& p : objected) {
          const Purpose* purpose = policies->FindPurpose(p);
          marketing |= purpose != nullptr && purpose->marketing;
        }
        if (marketing) {
          GARDE_RETURN_IF_ERROR(
              ConsentLedger::SuppressContactsIn(tx, s.id, "retention", now, &none.suppressions));
        }
        GARDE_RETURN_IF_ERROR(SubjectMerges::CompleteMergesIn(tx, d_.vault, s.id, now,
                                                              /*erase_history=*/true, &none));
        GARDE_RETURN_IF_ERROR(d_.vault.EraseIn(tx, s, {}));
        GARDE_RETURN_IF_ERROR(tx.DeleteConsentEventsOf(s.id));
        s.status = "erased";
        s.wrapped_dek.clear();
        s.updated_at = now;
        GARDE_RETURN_IF_ERROR(tx.UpdateSubject(s));
        const TombstoneRow tombstone{s.id, run.id, now, {}};
        GARDE_RETURN_IF_ERROR(tx.InsertTombstone(tombstone));
        none.erasures.push_back(tombstone);
        GARDE_RETURN_IF_ERROR(announce(
            tx, s.id, plan, plan.action == Action::kReleaseHold ? "hold_released" : "subject"));
      }
      if (!options.dry_run) {
        for (const auto& [subject, e] : expiring) {
          JsonWriter event;
          event.BeginObject()
              .String("subject", subject)
              .String("purpose", e.purpose)
              .StringOrNull("channel", e.channel)
              .String("expired_at", FormatRfc3339(e.expires_at))
              .EndObject();
          GARDE_RETURN_IF_ERROR(EmitEvent(tx, "consent.expired", event.Take(), now));
        }
      }
      run.report = counts.Json(*policies);
      return tx.PutRetentionRun(run);  // the cursor moves with the page's work
    });
    GARDE_RETURN_IF_ERROR(applied);
    // Committed; outside the database too (a lost line is copied from the tombstones table
    // at the next start).
    if (d_.tombstones != nullptr) GARDE_RETURN_IF_ERROR(d_.tombstones->Append(none));
    if (options.progress) options.progress(counts.scanned, total);
  }

  // Spending of the last 30 days, as purchases leave the window: every purchaser of the window
  // and of the days before it since the last run, or every purchaser at the first run
  // (unchanged values are not written).
  if (!options.dry_run) {
    const int64_t since =
        previous_at != 0 ? std::min(previous_at, at - 86400) - 30 * 86400 : INT64_MIN;
    std::string after;
    for (;;) {
      std::vector<std::string> ids;
      GARDE_RETURN_IF_ERROR(d_.store.Read([&](ReadTx& tx) -> Status {
        GARDE_ASSIGN_OR_RETURN(auto got, tx.PurchasersBetween(since, at + 1, after, options.page));
        ids = std::move(got);
        return Status::Ok();
      }));
      if (ids.empty()) break;
      after = ids.back();
      GARDE_RETURN_IF_ERROR(d_.store.Write([&](WriteTx& tx) -> Status {
        for (const auto& id : ids) {
          GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
          if (!row || row->status != "active") continue;
          GARDE_ASSIGN_OR_RETURN(auto changed,
                                 d_.vault.RefreshSpendIn(tx, *policies, system, *row, at));
          counts.spend_refreshed += changed ? 1 : 0;
        }
        return Status::Ok();
      }));
    }
  }

  // Merges past their revert period: the merged record's data goes (crypto-shredding).
  for (bool more = true; more;) {
    TombstoneEntries done;
    GARDE_RETURN_IF_ERROR(d_.store.Write([&](WriteTx& tx) -> Status {
      done = {};
      GARDE_ASSIGN_OR_RETURN(auto open,
                             tx.OpenMergesBefore(at - d_.merge_revert_period, options.page));
      more = open.size() == options.page && !options.dry_run;
      for (const auto& m : open) {
        ++counts.merges_completed;
        if (options.dry_run) continue;
        GARDE_RETURN_IF_ERROR(SubjectMerges::CompleteIn(tx, d_.vault, m, now, &done));
        GARDE_RETURN_IF_ERROR(d_.journal.Record(
            &tx, system, {"subject.merge_complete", m.merged_id, "", "ok", {m.id}, 1}));
      }
      return Status::Ok();
    }));
    if (d_.tombstones != nullptr && !done.empty())
      GARDE_RETURN_IF_ERROR(d_.tombstones->Append(done));
  }

  // Requests near or past their deadline since the last run, told once.
  GARDE_RETURN_IF_ERROR(d_.store.Write([&](WriteTx& tx) -> Status {
    RequestQuery q;
    q.due_before = at + d_.due_warning + 1;
    q.limit = 100000;
    GARDE_ASSIGN_OR_RETURN(auto open, tx.QueryRequests(q));
    for (const auto& r : open) {
      if (!IsOpenStatus(r.status)) continue;
      const bool overdue = r.due_at <= at;
      const int64_t flagged_at = overdue ? r.due_at : r.due_at - d_.due_warning;
      if (flagged_at <= previous_at) continue;
      ++(overdue ? counts.requests_overdue : counts.requests_due_soon);
      if (options.dry_run) continue;
      JsonWriter event;
      event.BeginObject()
          .String("request", r.id)
          .String("type", r.type)
          .String("subject", r.subject_id)
          .String("due_at", FormatRfc3339(r.due_at))
          .EndObject();
      GARDE_RETURN_IF_ERROR(
          EmitEvent(tx, overdue ? "request.overdue" : "request.due_soon", event.Take(), now));
    }
    run.finished_at = d_.clock.Now();
    run.report = counts.Json(*policies);
    GARDE_RETURN_IF_ERROR(tx.PutRetentionRun(run));
    return d_.journal.Record(&tx, system,
                             {"retention.run",
                              "",
                              "",
                              options.dry_run ? "dry_run" : "ok",
                              {run.id},
                              counts.subjects_erased + counts.holds_released});
  }));
  return run;
}

}  // namespace garde

#include "garde/app/policy_reload.h"

#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include "garde/base/json_writer.h"
#include "garde/base/log.h"
#include "garde/policy/register_lint.h"

namespace garde {
namespace {

// What identifies each item of a policy set, and what it says (to tell changes apart).
using Items = std::map<std::string, std::string>;

Items ActivitiesOf(const PolicySet& p) {
  Items out;
  for (const auto& a : p.activities()) out[a.id] = a.json;
  return out;
}

Items PurposesOf(const PolicySet& p) {
  Items out;
  for (const auto& x : p.purposes()) {
    std::string s = x.title + "|" + x.description + "|" + LegalBasisName(x.legal_basis) + "|" +
                    x.validity + "|" + (x.marketing ? "m" : "") + (x.gpc_opt_out ? "g" : "");
    for (const auto& c : x.channels) s += "|c:" + c;
    for (const auto& n : x.notices) s += "|n:" + n.valid_from + ":" + n.url + ":" + n.text;
    out[x.id] = s;
  }
  return out;
}

Items RolesOf(const PolicySet& p) {
  Items out;
  for (const auto& [name, r] : p.roles()) {
    std::string s = r.personal_data ? "pd" : "";
    for (const auto& c : r.capabilities) s += "|" + c;
    out[name] = s;
  }
  return out;
}

Items FieldsOf(const PolicySet& p) {
  Items out;
  for (const auto& f : p.schema().fields()) {
    std::string s = f.category + "|" + std::to_string(static_cast<int>(f.type));
    for (const auto& k : f.kinds) s += "|" + k;
    out[f.name] = s + (f.required ? "|r" : "") + (f.unique ? "|u" : "");
  }
  return out;
}

// {"added":[…],"removed":[…],"changed":[…]}; appends "+x", "-x", "~x" to `marks`.
void Diff(JsonWriter& w, const char* kind, const Items& before, const Items& after,
          std::vector<std::string>* marks) {
  std::vector<std::string> added, removed, changed;
  for (const auto& [id, v] : after) {
    auto it = before.find(id);
    if (it == before.end()) {
      added.push_back(id);
    } else if (it->second != v) {
      changed.push_back(id);
    }
  }
  for (const auto& [id, _] : before) {
    if (after.count(id) == 0) removed.push_back(id);
  }
  w.BeginObject(kind);
  for (auto [name, list, mark] :
       {std::tuple{"added", &added, "+"}, std::tuple{"removed", &removed, "-"},
        std::tuple{"changed", &changed, "~"}}) {
    w.BeginArray(name);
    for (const auto& id : *list) {
      w.String(id);
      marks->push_back(std::string(mark) + kind + ":" + id);
    }
    w.EndArray();
  }
  w.EndObject();
}

std::string Summary(const PolicySet& before, const PolicySet& after,
                    std::vector<std::string>* marks) {
  JsonWriter w;
  w.BeginObject();
  Diff(w, "activities", ActivitiesOf(before), ActivitiesOf(after), marks);
  Diff(w, "purposes", PurposesOf(before), PurposesOf(after), marks);
  Diff(w, "roles", RolesOf(before), RolesOf(after), marks);
  Diff(w, "fields", FieldsOf(before), FieldsOf(after), marks);
  w.EndObject();
  return w.Take();
}

std::mutex g_reload_mu;  // one reload at a time

Result<ReloadResult> ReloadHere(Deployment& d, const Caller& caller, const std::string& source) {
  std::lock_guard<std::mutex> lock(g_reload_mu);
  auto current = d.policies().Current();
  auto loaded = LoadPolicies(d.config().policies_dir);
  Status refused(Code::kUnprocessable,
                 "the new policies have errors; the running policies stay in force");
  if (!loaded.ok()) {
    for (const auto& e : loaded.status().errors()) refused.AddError(e.field, e.message);
    if (refused.errors().empty()) refused.AddError("policies", loaded.status().message());
  } else {
    for (const auto& f : LintRegister(*loaded.value())) {
      if (f.severity == "error") refused.AddError(f.location, f.message + " [" + f.rule + "]");
    }
  }
  if (!refused.errors().empty()) {
    d.journal()
        .Record(nullptr, caller,
                {"policies.reload",
                 "",
                 "",
                 "refused",
                 {"before:" + current->content_hash(), "source:" + source},
                 static_cast<int64_t>(refused.errors().size())})
        .IgnoreError();
    return refused;
  }
  ReloadResult r;
  r.before = current->content_hash();
  r.after = loaded.value()->content_hash();
  r.changed = r.before != r.after;
  std::vector<std::string> marks{"before:" + r.before, "after:" + r.after, "source:" + source};
  r.summary = Summary(*current, *loaded.value(), &marks);
  GARDE_RETURN_IF_ERROR(d.store().Write([&](WriteTx& tx) -> Status {
    if (r.changed) {
      // Each node of a deployment reloads: the version is recorded once, by the first.
      GARDE_ASSIGN_OR_RETURN(auto last, tx.ListPolicyVersions(1));
      if (last.empty() || last.front().content_hash != r.after) {
        GARDE_RETURN_IF_ERROR(
            tx.InsertPolicyVersion({0, r.after, d.clock().Now(), source, r.summary}));
      }
    }
    return d.journal().Record(&tx, caller,
                              {"policies.reload", "", "", r.changed ? "ok" : "unchanged", marks,
                               static_cast<int64_t>(loaded.value()->activities().size())});
  }));
  // Swapped after the audit entry commits: every request that starts from now on is judged
  // by the new register (an activity removed stops authorising reads at once).
  d.policies().Replace(loaded.value());
  return r;
}

}  // namespace

Result<ReloadResult> ReloadPolicies(Deployment& d, const Caller& caller,
                                    const std::string& source) {
  auto r = ReloadHere(d, caller, source);
  if (!r.ok() || source == "peer") return r;
  // Every other node reloads too before this answers: a removed activity stops authorising
  // reads on all of them at once. (Outside the lock: two nodes may be asking each other.)
  const Status everywhere =
      d.store().AskPeers(PeerEvent::kPoliciesReloaded, std::chrono::seconds(5));
  if (!everywhere.ok()) {
    LogLine(spdlog::level::warn, "policy reload not confirmed by every node")
        .Str("detail", everywhere.message());
  }
  return r;
}

Status RecordStartingPolicies(Deployment& d) {
  auto current = d.policies().Current();
  return d.store().Write([&](WriteTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto last, tx.ListPolicyVersions(1));
    if (!last.empty() && last.front().content_hash == current->content_hash()) {
      return Status::Ok();
    }
    return tx.InsertPolicyVersion(
        {0, current->content_hash(), d.clock().Now(), "start",
         last.empty() ? "{\"first\":true}" : "{\"changed_offline\":true}"});
  });
}

}  // namespace garde

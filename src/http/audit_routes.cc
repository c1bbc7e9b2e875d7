// /v1/audit (search, entries, checkpoint, proofs) and /v1/keys/public.
#include <sstream>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/json_writer.h"
#include "garde/http/http_service.h"

namespace garde {
namespace {

std::string B64(const Hash& h) { return Base64Encode(h.data(), h.size()); }

Status RequireAuditor(Deployment& d, Exchange& x) { return RequireCapability(d, x, "audit.read"); }

// A query parameter as an unsigned number; `present` tells whether it was given.
Status NumberParam(const Exchange& x, const char* name, uint64_t* out, bool* present) {
  auto it = x.query.find(name);
  *present = it != x.query.end() && !it->second.empty();
  if (!*present) return Status::Ok();
  const std::string& v = it->second;
  if (v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos) {
    return Status(Code::kUnprocessable, "query parameter is not valid")
        .AddError(name, "must be a whole number");
  }
  *out = std::stoull(v);
  return Status::Ok();
}

Status SearchAudit(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireAuditor(d, x));
  AuditQuery q;
  Status invalid(Code::kUnprocessable, "the audit search is not valid");
  auto text = [&](const char* name, std::string* out) {
    auto it = x.query.find(name);
    if (it == x.query.end()) return;
    if (it->second.size() > 200) invalid.AddError(name, "is too long");
    *out = it->second;
  };
  text("subject", &q.subject);
  text("actor", &q.actor);
  text("action", &q.action);
  text("activity", &q.activity);
  for (const char* name : {"since", "until"}) {
    auto it = x.query.find(name);
    if (it == x.query.end() || it->second.empty()) continue;
    auto t = ParseRfc3339(it->second);
    if (!t) {
      invalid.AddError(name, "must be an RFC 3339 time");
      continue;
    }
    (std::string(name) == "since" ? q.since : q.until) = FormatRfc3339(*t);
  }
  auto cursor = x.query.find("cursor");
  if (cursor != x.query.end() && !cursor->second.empty()) {
    auto raw = Base64UrlDecode(cursor->second);
    std::string s = raw ? std::string(AsStringView(*raw)) : "";
    if (s.rfind("a:", 0) != 0 || s.size() < 3 ||
        s.find_first_not_of("0123456789", 2) != std::string::npos || s.size() > 22) {
      invalid.AddError("cursor", "is not a cursor this service issued");
    } else {
      q.after_seq = std::stoull(s.substr(2));
    }
  }
  const size_t limit = PageLimit(x, &invalid);
  if (!invalid.errors().empty()) return invalid;
  q.limit = limit + 1;  // one more tells whether there is a next page
  GARDE_ASSIGN_OR_RETURN(auto rows, d.audit().Query(q));
  const bool more = rows.size() > limit;
  if (more) rows.pop_back();
  GARDE_RETURN_IF_ERROR(d.journal().Record(
      nullptr, *x.caller,
      {"audit.search", q.subject, "", "ok", {}, static_cast<int64_t>(rows.size())}));
  JsonWriter w;
  w.BeginObject().BeginArray("items");
  for (const auto& r : rows) w.Raw(r.entry);
  w.EndArray().Key("next_cursor");
  if (more) {
    w.String(Base64UrlEncode(AsBytes("a:" + std::to_string(rows.back().seq))));
  } else {
    w.Null();
  }
  w.EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

// The exact entry bytes, one per line, for independent verifiers.
Status ExportEntries(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireAuditor(d, x));
  uint64_t start = 0, end = 0;
  bool has_start = false, has_end = false;
  GARDE_RETURN_IF_ERROR(NumberParam(x, "start", &start, &has_start));
  GARDE_RETURN_IF_ERROR(NumberParam(x, "end", &end, &has_end));
  GARDE_ASSIGN_OR_RETURN(auto size, d.audit().Size());
  if (!has_end || end > size) end = size;
  if (end < start || end - start > 100000) {
    return Status(Code::kUnprocessable, "ask for at most 100000 entries, start <= end")
        .AddError("end", "out of range");
  }
  std::string out;
  GARDE_RETURN_IF_ERROR(d.audit().Scan(start, end, [&](const AuditRow& r) {
    out += r.entry;
    out += '\n';
    return true;
  }));
  GARDE_RETURN_IF_ERROR(d.journal().Record(
      nullptr, *x.caller, {"audit.export", "", "", "ok", {}, static_cast<int64_t>(end - start)}));
  x.status = 200;
  x.reply_type = "application/x-ndjson";
  x.reply = std::move(out);
  return Status::Ok();
}

void WriteCheckpoint(JsonWriter& w, const CheckpointRow& c) {
  w.BeginObject()
      .Int("size", static_cast<int64_t>(c.size))
      .String("root_hash", Base64Encode(c.root))
      .String("time", FormatRfc3339(c.time))
      .String("checkpoint", c.note)
      .EndObject();
}

Status GetCheckpoint(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireAuditor(d, x));
  auto head = d.audit().Checkpoint();  // signs the current head if the tree has grown
  if (!head.ok()) return head.status();
  JsonWriter w;
  WriteCheckpoint(w, head.value());
  x.Json(200, w.Take());
  return Status::Ok();
}

Status InclusionProof(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireAuditor(d, x));
  uint64_t index = 0, size = 0;
  bool has_index = false, has_size = false;
  GARDE_RETURN_IF_ERROR(NumberParam(x, "index", &index, &has_index));
  GARDE_RETURN_IF_ERROR(NumberParam(x, "size", &size, &has_size));
  if (!has_index || !has_size) {
    return Status(Code::kUnprocessable, "index and size are required")
        .AddError(has_index ? "size" : "index", "is required");
  }
  auto proof = d.audit().InclusionProof(index, size);
  if (!proof.ok()) return proof.status();
  GARDE_ASSIGN_OR_RETURN(auto root, d.audit().Root(size));
  std::string leaf_hash;
  GARDE_RETURN_IF_ERROR(d.audit().Scan(index, index + 1, [&](const AuditRow& r) {
    leaf_hash = Base64Encode(r.leaf_hash);
    return false;
  }));
  JsonWriter w;
  w.BeginObject()
      .Int("index", static_cast<int64_t>(index))
      .Int("size", static_cast<int64_t>(size))
      .String("leaf_hash", leaf_hash)
      .String("root_hash", B64(root))
      .BeginArray("proof");
  for (const auto& h : proof.value()) w.String(B64(h));
  w.EndArray().EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

Status ConsistencyProof(Deployment& d, Exchange& x) {
  GARDE_RETURN_IF_ERROR(RequireAuditor(d, x));
  uint64_t from = 0, to = 0;
  bool has_from = false, has_to = false;
  GARDE_RETURN_IF_ERROR(NumberParam(x, "from", &from, &has_from));
  GARDE_RETURN_IF_ERROR(NumberParam(x, "to", &to, &has_to));
  if (!has_from || !has_to) {
    return Status(Code::kUnprocessable, "from and to are required")
        .AddError(has_from ? "to" : "from", "is required");
  }
  auto proof = d.audit().ConsistencyProof(from, to);
  if (!proof.ok()) return proof.status();
  auto from_root = d.audit().Root(from);
  auto to_root = d.audit().Root(to);
  if (!from_root.ok()) return from_root.status();
  if (!to_root.ok()) return to_root.status();
  JsonWriter w;
  w.BeginObject()
      .Int("from", static_cast<int64_t>(from))
      .Int("to", static_cast<int64_t>(to))
      .String("from_root", B64(from_root.value()))
      .String("to_root", B64(to_root.value()))
      .BeginArray("proof");
  for (const auto& h : proof.value()) w.String(B64(h));
  w.EndArray().EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

Status PublicKeys(Deployment& d, Exchange& x) {
  const CheckpointSigner& s = d.signer();
  JsonWriter w;
  w.BeginObject()
      .String("algorithm", "Ed25519")
      .String("public_key", Base64Encode(s.public_key().data(), s.public_key().size()))
      .String("key_id", s.key_id_hex())
      .String("origin", s.origin())
      .String("verifier_key", s.verifier_key())
      .BeginArray("uses")
      .String("audit checkpoints")
      .String("consent receipts")
      .EndArray()
      .EndObject();
  x.Json(200, w.Take());
  return Status::Ok();
}

}  // namespace

void AddAuditRoutes(Router& router, Deployment& d) {
  router.Add("GET", "/v1/audit", [&d](Exchange& x) { return SearchAudit(d, x); });
  router.Add("GET", "/v1/audit/entries", [&d](Exchange& x) { return ExportEntries(d, x); });
  router.Add("GET", "/v1/audit/checkpoint", [&d](Exchange& x) { return GetCheckpoint(d, x); });
  router.Add("GET", "/v1/audit/proof/inclusion",
             [&d](Exchange& x) { return InclusionProof(d, x); });
  router.Add("GET", "/v1/audit/proof/consistency",
             [&d](Exchange& x) { return ConsistencyProof(d, x); });
  router.Add("GET", "/v1/keys/public", [&d](Exchange& x) { return PublicKeys(d, x); });
}

}  // namespace garde

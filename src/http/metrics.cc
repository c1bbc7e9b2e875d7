#include "garde/http/metrics.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "garde/app/deployment.h"

namespace garde {
namespace {

// Label values are route patterns and fixed words; escaped anyway as the format asks.
std::string Label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string Number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", v);
  return text;
}

class Exposition {
 public:
  explicit Exposition(std::string* out) : out_(*out) {}
  Exposition& Family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
    return *this;
  }
  // labels: already formatted, e.g. method="GET",route="/x"; may be empty.
  Exposition& Sample(std::string_view name, std::string_view labels, double value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += Number(value);
    out_ += '\n';
    return *this;
  }

 private:
  std::string& out_;
};

int64_t FileBytes(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

// The second field of /proc/self/statm: resident pages (0 where there is no such file).
int64_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long long size = 0, resident = 0;
  const bool read = std::fscanf(f, "%lld %lld", &size, &resident) == 2;
  std::fclose(f);
  return read ? resident * ::sysconf(_SC_PAGESIZE) : 0;
}

}  // namespace

RequestMetrics::RequestMetrics(size_t routes) {
  for (size_t i = 0; i <= routes; ++i) slots_.push_back(std::make_unique<Slot>());
}

void RequestMetrics::Record(int route_index, int status, double seconds) {
  const size_t i = route_index >= 0 && static_cast<size_t>(route_index) + 1 < slots_.size()
                       ? static_cast<size_t>(route_index)
                       : slots_.size() - 1;
  Slot& slot = *slots_[i];
  if (status >= 100 && status < 600) {
    slot.by_status[static_cast<size_t>(status)].fetch_add(1, std::memory_order_relaxed);
  }
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  slot.buckets[b].fetch_add(1, std::memory_order_relaxed);
  slot.nanoseconds.fetch_add(static_cast<uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

void RequestMetrics::Write(const std::vector<Route>& routes, std::string* out) const {
  // The slot after the routes counts requests that matched none: its method is not a label
  // (a client chooses it), its route is "(none)".
  auto labels = [&](size_t i) {
    return i < routes.size() ? "method=\"" + Label(routes[i].method) + "\",route=\"" +
                                   Label(routes[i].pattern) + "\""
                             : std::string("method=\"\",route=\"(none)\"");
  };
  Exposition e(out);
  e.Family("garde_http_requests_total", "counter",
           "Requests answered on the public listener, by route and status.");
  for (size_t i = 0; i < slots_.size(); ++i) {
    for (size_t status = 100; status < 600; ++status) {
      const uint64_t n = slots_[i]->by_status[status].load(std::memory_order_relaxed);
      if (n == 0) continue;
      e.Sample("garde_http_requests_total",
               labels(i) + ",status=\"" + std::to_string(status) + "\"", static_cast<double>(n));
    }
  }
  e.Family("garde_http_request_duration_seconds", "histogram",
           "Time from the whole request read to the whole answer ready, by route.");
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& slot = *slots_[i];
    uint64_t counts[kBuckets.size() + 1];
    uint64_t total = 0;
    for (size_t b = 0; b <= kBuckets.size(); ++b) {
      counts[b] = slot.buckets[b].load(std::memory_order_relaxed);
      total += counts[b];
    }
    if (total == 0) continue;
    const std::string l = labels(i);
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kBuckets.size(); ++b) {
      cumulative += counts[b];
      e.Sample("garde_http_request_duration_seconds_bucket",
               l + ",le=\"" + Number(kBuckets[b]) + "\"", static_cast<double>(cumulative));
    }
    e.Sample("garde_http_request_duration_seconds_bucket", l + ",le=\"+Inf\"",
             static_cast<double>(total));
    e.Sample("garde_http_request_duration_seconds_sum", l,
             static_cast<double>(slot.nanoseconds.load(std::memory_order_relaxed)) / 1e9);
    e.Sample("garde_http_request_duration_seconds_count", l, static_cast<double>(total));
  }
}

std::string MetricsText(Deployment& d, const RequestMetrics& requests,
                        const std::vector<Route>& routes) {
  std::string out;
  Exposition e(&out);
  e.Family("garde_build_info", "gauge", "The running version.")
      .Sample("garde_build_info", "version=\"" + Label(GARDE_VERSION) + "\"", 1);
  requests.Write(routes, &out);

  const int64_t now = d.clock().Now();
  std::pair<int64_t, int64_t> open{0, 0};
  std::map<std::string, int64_t> deliveries;
  int64_t backlog = 0, stale = 0;
  std::map<uint32_t, int64_t> by_root;
  const auto ring = d.keys().Current();
  const uint32_t master = d.lookup().Current()->master;
  Status vault = d.store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto r, tx.CountOpenRequests(now));
    open = r;
    GARDE_ASSIGN_OR_RETURN(auto w, tx.CountDeliveries());
    deliveries = std::move(w);
    GARDE_ASSIGN_OR_RETURN(auto p, tx.CountPendingAudit());
    backlog = p;
    GARDE_ASSIGN_OR_RETURN(auto k, tx.CountByRootKeyVersion());
    by_root = std::move(k);
    GARDE_ASSIGN_OR_RETURN(auto s, tx.CountStaleIndexes(master));
    stale = s;
    return Status::Ok();
  });
  uint64_t log_size = 0;
  std::optional<CheckpointRow> checkpoint;
  Status audit = d.audit_store().Read([&](ReadTx& tx) -> Status {
    GARDE_ASSIGN_OR_RETURN(auto n, tx.AuditSize());
    log_size = n;
    GARDE_ASSIGN_OR_RETURN(auto c, tx.LatestCheckpoint());
    checkpoint = std::move(c);
    return Status::Ok();
  });
  e.Family("garde_state_up", "gauge",
           "1 when the service's state below was read from both databases, 0 otherwise.")
      .Sample("garde_state_up", "", vault.ok() && audit.ok() ? 1 : 0);
  if (vault.ok()) {
    e.Family("garde_dsr_requests_open", "gauge",
             "Data-subject requests neither completed nor rejected.")
        .Sample("garde_dsr_requests_open", "", static_cast<double>(open.first));
    e.Family("garde_dsr_requests_overdue", "gauge",
             "Open data-subject requests past their due date.")
        .Sample("garde_dsr_requests_overdue", "", static_cast<double>(open.second));
    e.Family("garde_webhook_deliveries", "gauge",
             "Webhook deliveries by status: pending is the outbox's depth, dead its failures.");
    for (const char* status : {"pending", "delivered", "dead"}) {
      auto it = deliveries.find(status);
      e.Sample("garde_webhook_deliveries", std::string("status=\"") + status + "\"",
               static_cast<double>(it == deliveries.end() ? 0 : it->second));
    }
    e.Family("garde_audit_intake_backlog", "gauge",
             "Audit entries committed with their change and not yet appended to the log.")
        .Sample("garde_audit_intake_backlog", "", static_cast<double>(backlog));
    e.Family("garde_subjects_by_root_key", "gauge",
             "Subjects whose data key each root-key version wraps (rotation progress).");
    for (const auto& [version, n] : by_root) {
      e.Sample("garde_subjects_by_root_key", "version=\"" + std::to_string(version) + "\"",
               static_cast<double>(n));
    }
    e.Family("garde_lookup_digests_stale", "gauge",
             "Blind-index digests still under an earlier master key (master rotation progress).")
        .Sample("garde_lookup_digests_stale", "", static_cast<double>(stale));
  }
  e.Family("garde_root_key_version", "gauge", "The current root-key version.")
      .Sample("garde_root_key_version", "", ring->current_version());
  e.Family("garde_master_key_version", "gauge", "The current master-key version.")
      .Sample("garde_master_key_version", "", master);
  if (audit.ok()) {
    e.Family("garde_audit_log_entries", "gauge", "Entries in the audit log.")
        .Sample("garde_audit_log_entries", "", static_cast<double>(log_size));
    if (checkpoint) {
      e.Family("garde_audit_checkpoint_age_seconds", "gauge",
               "Seconds since the newest signed checkpoint of the audit log.")
          .Sample("garde_audit_checkpoint_age_seconds", "",
                  static_cast<double>(now - checkpoint->time));
    }
  }
  // Memory: the process as the kernel counts it, and what holds most of it.
  e.Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
      .Sample("process_resident_memory_bytes", "", static_cast<double>(ResidentBytes()));
  using ByCache = std::vector<std::pair<const char*, size_t>>;
  auto by_cache = [&](const char* family, const char* help, const ByCache& values) {
    e.Family(family, "gauge", help);
    for (const auto& [cache, value] : values) {
      e.Sample(family, "cache=\"" + std::string(cache) + "\"", static_cast<double>(value));
    }
  };
  by_cache("garde_kept_subjects",
           "Subjects whose data each in-memory view keeps: consent facts (checks), sealed "
           "records (reads), the audience index.",
           {{"consent_facts", d.consents().kept_facts()},
            {"sealed_records", d.vault().kept_records()},
            {"audience_index", d.audiences().kept_subjects()}});
  by_cache("garde_kept_bytes",
           "Memory the per-subject caches hold: the kept values with their ids, and their "
           "tables' slots.",
           {{"consent_facts", d.consents().kept_facts_bytes()},
            {"sealed_records", d.vault().kept_records_bytes()}});
  e.Family("garde_audience_index_bytes", "gauge",
           "Memory the audience index holds (its records and columns), as of the last audience.")
      .Sample("garde_audience_index_bytes", "", static_cast<double>(d.audiences().kept_bytes()));
  const Config& cfg = d.config();
  if (cfg.postgres()) return out;  // no files here: PostgreSQL's own statistics tell its size
  e.Family("garde_database_bytes", "gauge", "Size of each database file.");
  for (const auto& [file, path] :
       {std::pair<std::string, std::string>{"garde.db", cfg.database_path()},
        {"garde.db-wal", cfg.database_path() + "-wal"},
        {"audit.db", cfg.audit_database_path()},
        {"audit.db-wal", cfg.audit_database_path() + "-wal"}}) {
    e.Sample("garde_database_bytes", "file=\"" + file + "\"", static_cast<double>(FileBytes(path)));
  }
  e.Family("garde_sqlite_cache_bytes", "gauge",
           "Memory the connections to each database file hold in their page caches.");
  e.Sample("garde_sqlite_cache_bytes", "file=\"garde.db\"",
           static_cast<double>(d.store().CacheBytes()));
  e.Sample("garde_sqlite_cache_bytes", "file=\"audit.db\"",
           static_cast<double>(d.audit_store().CacheBytes()));
  return out;
}

}  // namespace garde

#include "garde/app/importer.h"

#include <sodium.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "garde/app/deployment.h"
#include "garde/base/clock.h"
#include "garde/base/csv_reader.h"
#include "garde/base/encoding.h"
#include "garde/http/csv.h"

namespace garde {
namespace {

std::string At(const YAML::Node& n, const std::string& name) {
  return name + ":" + std::to_string(n.Mark().line + 1);
}

// The known member names of a mapping block; anything else is reported with its line.
void CheckKeys(const YAML::Node& node, std::initializer_list<const char*> known,
               const std::string& name, Status* problems) {
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    bool ok = false;
    for (const char* k : known) ok |= key == k;
    if (!ok) problems->AddError(At(kv.first, name), "unknown key '" + key + "'");
  }
}

bool IsTrue(std::string_view v) {
  const std::string lower = AsciiLower(v);
  for (const char* t : {"1", "true", "yes", "y", "oui", "o", "vrai", "x"}) {
    if (lower == t) return true;
  }
  return false;
}
bool IsFalse(std::string_view v) {
  const std::string lower = AsciiLower(v);
  for (const char* f : {"0", "false", "no", "n", "non", "faux"}) {
    if (lower == f) return true;
  }
  return false;
}

std::string Trimmed(std::string s) {
  // Spaces, tabs and the no-break spaces spreadsheets put around numbers.
  for (;;) {
    if (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
      s.pop_back();
    } else if (s.size() >= 2 && s.compare(s.size() - 2, 2, "\xC2\xA0") == 0) {
      s.resize(s.size() - 2);
    } else {
      break;
    }
  }
  size_t start = 0;
  for (;;) {
    if (start < s.size() && (s[start] == ' ' || s[start] == '\t')) {
      ++start;
    } else if (s.compare(start, 2, "\xC2\xA0") == 0) {
      start += 2;
    } else {
      break;
    }
  }
  return s.substr(start);
}

// A number as spreadsheets write it: "1 234,50", "1234.5", "12,5" (a lone comma is the
// decimal separator unless the column says otherwise).
std::optional<double> ParseNumber(std::string cell, char decimal) {
  std::string digits;
  for (size_t i = 0; i < cell.size(); ++i) {
    if (cell[i] == ' ' || cell[i] == '\'') continue;
    if (cell.compare(i, 2, "\xC2\xA0") == 0) {
      ++i;
      continue;
    }
    if (cell.compare(i, 3, "\xE2\x80\xAF") == 0) {  // narrow no-break space (fr-FR)
      i += 2;
      continue;
    }
    digits += cell[i];
  }
  const size_t commas = static_cast<size_t>(std::count(digits.begin(), digits.end(), ','));
  const size_t dots = static_cast<size_t>(std::count(digits.begin(), digits.end(), '.'));
  char sep = decimal;
  if (sep == 0) {
    if (commas == 1 && dots == 0)
      sep = ',';
    else if (commas == 0)
      sep = '.';
    else
      return std::nullopt;  // "1,234.5" or "1.234,5": say which in the mapping
  }
  const char thousands = sep == ',' ? '.' : ',';
  std::string plain;
  for (char c : digits) {
    if (c == thousands) continue;
    plain += c == sep ? '.' : c;
  }
  if (plain.empty() || plain.find_first_not_of("+-0123456789.eE") != std::string::npos) {
    return std::nullopt;
  }
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(plain.c_str(), &end);
  if (errno != 0 || end != plain.c_str() + plain.size()) return std::nullopt;
  return v;
}

// A date in the column's strptime format, as ISO 8601.
std::optional<std::string> ParseDate(const std::string& cell, const std::string& format) {
  struct tm tm {};
  const char* end = ::strptime(cell.c_str(), format.c_str(), &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  if (tm.tm_year < -1900 || tm.tm_year > 8099) return std::nullopt;
  char iso[40];
  std::snprintf(iso, sizeof iso, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  if (!ParseIsoDate(iso)) return std::nullopt;  // strptime takes 31/02
  return std::string(iso);
}

// One trimmed, non-empty cell as the schema field's value; an error names the column,
// never the value.
std::optional<FieldValue> CellValue(const ImportColumn& col, const FieldSpec* spec,
                                    const std::string& cell, std::string* why) {
  const FieldType type = spec == nullptr ? FieldType::kString : spec->type;
  switch (type) {
    case FieldType::kNumber: {
      auto n = ParseNumber(cell, col.decimal);
      if (!n) {
        *why = "is not a number";
        return std::nullopt;
      }
      return FieldValue::Number(*n);
    }
    case FieldType::kBool:
      if (IsTrue(cell)) return FieldValue::Bool(true);
      if (IsFalse(cell)) return FieldValue::Bool(false);
      *why = "is not yes or no";
      return std::nullopt;
    case FieldType::kDate:
      if (!col.date_format.empty()) {
        auto d = ParseDate(cell, col.date_format);
        if (!d) {
          *why = "is not a date written " + col.date_format;
          return std::nullopt;
        }
        return FieldValue::String(*d);
      }
      return FieldValue::String(cell);
    default: return FieldValue::String(cell);
  }
}

// A source that also digests what is read through it: the import's id is a digest of the
// mapping and the file's bytes, so that running the same import again resumes it.
class DigestingSource : public ByteSource {
 public:
  DigestingSource(ByteSource& inner, const std::string& mapping_text) : inner_(inner) {
    crypto_generichash_init(&state_, nullptr, 0, 16);
    crypto_generichash_update(&state_, reinterpret_cast<const uint8_t*>(mapping_text.data()),
                              mapping_text.size());
    const uint8_t separator = 0;
    crypto_generichash_update(&state_, &separator, 1);
  }
  Result<size_t> Read(char* out, size_t n) override {
    auto got = inner_.Read(out, n);
    if (got.ok()) {
      crypto_generichash_update(&state_, reinterpret_cast<const uint8_t*>(out), got.value());
    }
    return got;
  }
  Status Rewind() override { return Unavailable("a digest is read once"); }
  // Once the whole file was read.
  std::string Id() {
    uint8_t digest[16];
    crypto_generichash_final(&state_, digest, sizeof digest);
    return "imp_" + HexEncode(digest, sizeof digest);
  }

 private:
  ByteSource& inner_;
  crypto_generichash_state state_;
};

struct Row {
  size_t line = 0;
  std::vector<std::string> cells;
};

}  // namespace

Result<ImportMapping> ParseImportMapping(const std::string& name, const std::string& text,
                                         const Schema& schema) {
  ImportMapping m;
  m.name = name;
  m.text = text;
  Status problems(Code::kUnprocessable, "the import mapping " + name + " is not valid");
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Unprocessable(name + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML");
  }
  if (!root.IsMap()) return Unprocessable(name + ": expected a mapping of keys");
  CheckKeys(root,
            {"kind", "source", "encoding", "delimiter", "on_existing", "columns", "constants"},
            name, &problems);
  auto text_of = [&](const char* key, std::string* out) {
    if (!root[key]) return;
    if (!root[key].IsScalar()) {
      problems.AddError(At(root[key], name), std::string(key) + " must be a text");
      return;
    }
    *out = root[key].as<std::string>();
  };
  text_of("kind", &m.kind);
  text_of("source", &m.source);
  text_of("encoding", &m.encoding);
  std::string delimiter, on_existing = "update";
  text_of("delimiter", &delimiter);
  text_of("on_existing", &on_existing);
  bool known_kind = false;
  for (const char* k : kSubjectKinds) known_kind |= m.kind == k;
  if (!known_kind) problems.AddError(At(root["kind"], name), "kind must be person or organization");
  if (m.encoding != "auto" && m.encoding != "utf-8" && m.encoding != "windows-1252") {
    problems.AddError(At(root["encoding"], name), "encoding must be auto, utf-8 or windows-1252");
  }
  if (delimiter == "," || delimiter == ";") {
    m.delimiter = delimiter[0];
  } else if (!delimiter.empty() && delimiter != "auto") {
    problems.AddError(At(root["delimiter"], name), "delimiter must be ',', ';' or auto");
  }
  if (on_existing != "update" && on_existing != "skip") {
    problems.AddError(At(root["on_existing"], name), "on_existing must be update or skip");
  }
  m.update_existing = on_existing == "update";
  if (m.source.empty() || m.source.size() > 100) {
    problems.AddError(At(root["source"], name), "source must be 1 to 100 characters");
  }

  std::set<std::string> mapped;
  auto check_field = [&](const std::string& field, const YAML::Node& at) {
    if (field == kExternalIdField) return;
    const FieldSpec* spec = schema.Find(field);
    if (spec == nullptr) {
      problems.AddError(At(at, name), "'" + field + "' is not a field of the schema");
    } else if (spec->kinds.count(m.kind) == 0) {
      problems.AddError(At(at, name), "'" + field + "' is not a field of a " + m.kind);
    }
    if (!mapped.insert(field).second) {
      problems.AddError(At(at, name), "'" + field + "' is filled twice");
    }
  };
  const YAML::Node columns = root["columns"];
  if (!columns || !columns.IsMap() || columns.size() == 0) {
    problems.AddError(name, "columns must map at least one column to a field");
  } else {
    for (const auto& kv : columns) {
      ImportColumn col;
      col.column = kv.first.as<std::string>("");
      if (kv.second.IsScalar()) {
        col.field = kv.second.as<std::string>();
      } else if (kv.second.IsMap()) {
        CheckKeys(kv.second, {"field", "date_format", "decimal"}, name, &problems);
        col.field = kv.second["field"] ? kv.second["field"].as<std::string>("") : "";
        col.date_format =
            kv.second["date_format"] ? kv.second["date_format"].as<std::string>("") : "";
        const std::string decimal =
            kv.second["decimal"] ? kv.second["decimal"].as<std::string>("") : "";
        if (decimal == "," || decimal == ".") {
          col.decimal = decimal[0];
        } else if (!decimal.empty()) {
          problems.AddError(At(kv.second["decimal"], name), "decimal must be ',' or '.'");
        }
      } else {
        problems.AddError(At(kv.second, name),
                          "a column maps to a field name or {field, date_format, decimal}");
        continue;
      }
      if (col.column.empty()) problems.AddError(At(kv.first, name), "a column needs its header");
      check_field(col.field, kv.second);
      if (!col.date_format.empty()) {
        const FieldSpec* spec = schema.Find(col.field);
        if (spec == nullptr || spec->type != FieldType::kDate) {
          problems.AddError(At(kv.second, name), "date_format is for date fields");
        }
      }
      m.columns.push_back(std::move(col));
    }
  }
  if (const YAML::Node constants = root["constants"]) {
    if (!constants.IsMap()) {
      problems.AddError(At(constants, name), "constants must map fields to values");
    } else {
      for (const auto& kv : constants) {
        const std::string field = kv.first.as<std::string>("");
        check_field(field, kv.first);
        m.constants[field] = kv.second.as<std::string>("");
      }
    }
  }
  if (!problems.errors().empty()) return problems;
  return m;
}

Result<ImportMapping> LoadImportMapping(const std::string& path, const Schema& schema,
                                        const std::string& name) {
  const std::string shown = name.empty() ? path : name;
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read the import mapping " + shown);
  std::stringstream text;
  text << in.rdbuf();
  return ParseImportMapping(shown, text.str(), schema);
}

Result<ImportSummary> Importer::Run(const Caller& caller, const ImportMapping& mapping,
                                    std::string_view file, const ImportOptions& options,
                                    const std::function<void(const ImportRowResult&)>& on_row) {
  auto source = StringSource(file);
  return Run(caller, mapping, *source, options, on_row);
}

Result<ImportSummary> Importer::Run(const Caller& caller, const ImportMapping& mapping,
                                    ByteSource& file, const ImportOptions& options,
                                    const std::function<void(const ImportRowResult&)>& on_row) {
  auto policies = d_.policies().Current();
  GARDE_RETURN_IF_ERROR(AccessGate::Require(*policies, caller, "subjects.write"));
  // Two passes over the file, a chunk at a time. The first reads it whole before anything is
  // written (a malformed file changes nothing): its digest (the import's id), whether it is
  // UTF-8, its header, how many rows. The second reads the rows a window at a time.
  DigestingSource digesting(file, mapping.text);
  std::vector<std::string> header;
  int64_t total_rows = 0;
  bool utf8 = true, bom = false;
  char delimiter = mapping.delimiter;
  {
    CsvStream csv(digesting);
    GARDE_ASSIGN_OR_RETURN(auto first, csv.Start());
    if (delimiter == 0) delimiter = CsvReader::Detect(first);
    csv.set_delimiter(delimiter);
    std::vector<std::string> cells;
    if (!csv.Next(&header)) {
      GARDE_RETURN_IF_ERROR(csv.read_status());
      return Unprocessable(csv.error().empty() ? "the file is empty" : csv.error());
    }
    utf8 = IsValidUtf8(csv.raw());
    while (csv.Next(&cells)) {
      ++total_rows;
      if (utf8) utf8 = IsValidUtf8(csv.raw());
    }
    GARDE_RETURN_IF_ERROR(csv.read_status());
    if (!csv.error().empty()) return Unprocessable("the file is not valid CSV: " + csv.error());
    bom = csv.bom();
  }
  GARDE_ASSIGN_OR_RETURN(auto is_windows_1252, IsWindows1252(mapping.encoding, bom, utf8));
  const bool windows_1252 = is_windows_1252;
  auto decode = [&](std::vector<std::string>& cells) -> Status {
    if (!windows_1252) return Status::Ok();
    for (auto& cell : cells) {
      GARDE_ASSIGN_OR_RETURN(auto text, Utf8FromWindows1252(cell));
      cell = std::move(text);
    }
    return Status::Ok();
  };
  GARDE_RETURN_IF_ERROR(decode(header));
  for (auto& h : header) h = Trimmed(h);
  // Where each mapped column is; all must be there.
  std::vector<std::pair<const ImportColumn*, size_t>> where;
  Status missing(Code::kUnprocessable, "the file's header lacks columns the mapping names");
  for (const auto& col : mapping.columns) {
    auto it = std::find(header.begin(), header.end(), col.column);
    if (it == header.end()) {
      missing.AddError(col.column, "no such column");
    } else {
      where.emplace_back(&col, static_cast<size_t>(it - header.begin()));
    }
  }
  if (!missing.errors().empty()) return missing;
  // Only the mapped columns' cells are kept while a window waits (a wide sheet's other
  // columns would otherwise make a window of rows as large as the file).
  std::vector<bool> kept(header.size(), false);
  for (const auto& [col, index] : where) kept[index] = true;

  ImportSummary summary;
  summary.id = digesting.Id();
  summary.dry_run = options.dry_run;
  summary.rows = total_rows;
  std::map<int64_t, std::string> earlier;
  if (!options.dry_run) {
    GARDE_RETURN_IF_ERROR(d_.store().Read([&](ReadTx& tx) -> Status {
      GARDE_ASSIGN_OR_RETURN(auto done, tx.ImportedRows(summary.id));
      earlier = std::move(done);
      return Status::Ok();
    }));
  }

  // A row read into a subject, before anything is written.
  struct Prepared {
    ImportRowResult result;
    NewSubject in;
    Status invalid = Status::Ok();
    std::unique_ptr<SubjectVault::PendingCreate> pending;  // ready to be written
    Status conflict = Status::Ok();  // refused as a duplicate of an existing subject
    FieldMap values;  // normalised, as stored: what likely duplicates are looked for with
  };
  auto prepare = [&](int64_t number, const Row& row) {
    Prepared p;
    p.result.row = number;
    p.result.line = row.line;
    if (auto it = earlier.find(number); it != earlier.end()) {
      p.result.outcome = "created";
      p.result.id = it->second;
      p.result.earlier = true;
      return p;
    }
    p.in.kind = mapping.kind;
    p.in.source = mapping.source;
    Status invalid(Code::kUnprocessable, "the row is not valid; nothing was stored for it");
    if (row.cells.size() > header.size()) {
      invalid.AddError("row", "has " + std::to_string(row.cells.size()) + " cells, the header " +
                                  std::to_string(header.size()));
    }
    for (const auto& [col, index] : where) {
      if (index >= row.cells.size()) continue;
      const std::string cell = Trimmed(row.cells[index]);
      if (cell.empty()) continue;
      std::string why;
      const FieldSpec* spec = policies->schema().Find(col->field);
      auto v = CellValue(*col, spec, cell, &why);
      if (!v) {
        invalid.AddError("fields." + col->field, "column '" + col->column + "' " + why);
      } else if (col->field == kExternalIdField) {
        p.in.external_id = v->text;
      } else {
        p.in.fields[col->field] = std::move(*v);
      }
    }
    for (const auto& [field, value] : mapping.constants) {
      if (field == kExternalIdField) {
        p.in.external_id = value;
      } else if (p.in.fields.count(field) == 0) {
        std::string why;
        const ImportColumn constant{"constants." + field, field, "", 0};
        auto v = CellValue(constant, policies->schema().Find(field), Trimmed(value), &why);
        if (v)
          p.in.fields[field] = std::move(*v);
        else
          invalid.AddError("fields." + field, "constant " + why);
      }
    }
    if (!invalid.errors().empty()) {
      // Name every problem of the row at once: the fields' own checks too.
      const Status checked = d_.vault().CheckNew(p.in);
      for (const auto& e : checked.errors()) {
        bool named = false;
        for (const auto& have : invalid.errors()) named |= have.field == e.field;
        if (!named) invalid.AddError(e.field, e.message);
      }
      p.invalid = invalid;
      return p;
    }
    return p;
  };

  // The outcome of a row whose create was refused as a duplicate of `existing`: reported as
  // such, or an update of that subject (on_existing: update).
  auto settle_conflict = [&](Prepared& p, Status outcome) -> Status {
    ImportRowResult& r = p.result;
    for (const auto& [k, v] : outcome.extras()) {
      if (k == "existing_id") r.id = v;
    }
    if (r.id.empty()) {
      r.outcome = "failed";
      return outcome;
    }
    if (!mapping.update_existing) {
      r.outcome = "duplicate";
      return Status::Ok();
    }
    SubjectChanges changes;
    changes.fields = p.in.fields;
    if (p.in.external_id) changes.external_id = FieldValue::String(*p.in.external_id);
    auto updated = d_.vault().Rectify(caller, r.id, changes);
    r.outcome = updated.ok() ? "updated" : "failed";
    return updated.status();
  };
  auto finish = [](ImportRowResult& r, const Status& outcome) {
    if (outcome.ok()) return;
    if (r.outcome.empty() || r.outcome == "valid") {
      r.outcome = outcome.code() == Code::kUnprocessable ? "invalid" : "failed";
    }
    r.detail = outcome.message();
    r.errors = outcome.errors();
  };
  // A dry run writes nothing, so a unique value repeated in the file is not met as a write
  // would meet it (the first row creates, the later ones update it or are its duplicates):
  // the rows are followed in file order by eight bytes of hash of their values' keyed digests
  // (UniqueKeysOf), never the values. Earlier windows' keys are one sorted array, 16 bytes a
  // value (a node-based map took about 50); the window's own go in a small map meanwhile.
  std::vector<std::pair<uint64_t, int64_t>> earlier_keys;  // (hash, first row), sorted
  auto predict_repeats = [&](std::vector<Prepared>& window) -> Status {
    // What the writes would meet first: customers already there holding a unique value.
    std::vector<Prepared*> valid;
    std::vector<const FieldMap*> values;
    for (Prepared& p : window) {
      if (p.result.outcome != "valid") continue;
      valid.push_back(&p);
      values.push_back(&p.values);
    }
    GARDE_ASSIGN_OR_RETURN(auto holders, d_.vault().UniqueHoldersOf(values));
    for (size_t i = 0; i < valid.size(); ++i) {
      if (!holders[i]) continue;
      valid[i]->result.outcome = mapping.update_existing ? "updated" : "duplicate";
      valid[i]->result.id = holders[i]->id;
    }
    std::unordered_map<uint64_t, int64_t> added;
    auto first_row = [&](uint64_t hash) -> int64_t {
      auto at = std::lower_bound(earlier_keys.begin(), earlier_keys.end(),
                                 std::make_pair(hash, int64_t{0}));
      if (at != earlier_keys.end() && at->first == hash) return at->second;
      auto here = added.find(hash);
      return here == added.end() ? 0 : here->second;
    };
    for (Prepared& p : window) {
      ImportRowResult& r = p.result;
      if (r.outcome != "valid" && r.outcome != "updated" && r.outcome != "duplicate") continue;
      const std::vector<std::string> keys = d_.vault().UniqueKeysOf(p.values);
      if (r.outcome == "valid") {
        for (const std::string& key : keys) {
          const int64_t row = first_row(std::hash<std::string>{}(key));
          if (row == 0) continue;
          r.outcome = mapping.update_existing ? "updated" : "duplicate";
          r.detail = "the same " + key.substr(0, key.find('\0')) + " as row " + std::to_string(row);
          break;
        }
      }
      if (r.outcome == "duplicate") continue;  // skipped: its values are written nowhere
      for (const std::string& key : keys) {
        const uint64_t hash = std::hash<std::string>{}(key);
        if (first_row(hash) == 0) added.emplace(hash, r.row);
      }
    }
    const auto middle = static_cast<std::ptrdiff_t>(earlier_keys.size());
    earlier_keys.insert(earlier_keys.end(), added.begin(), added.end());
    std::sort(earlier_keys.begin() + middle, earlier_keys.end());
    std::inplace_merge(earlier_keys.begin(), earlier_keys.begin() + middle, earlier_keys.end());
    return Status::Ok();
  };
  // Not the same unique value, but perhaps the same customer (Rob / Robert, one address):
  // among the subjects there before the row, as row by row would find them
  // (created_in_window: the subjects the row's window created, id -> row number).
  std::map<std::string, int64_t> created_in_window;
  auto look_for_likely = [&](Prepared& p) {
    ImportRowResult& r = p.result;
    if (r.outcome != "created" && r.outcome != "valid") return;
    auto likely = d_.vault().LikelyDuplicatesOf(p.values, r.id);
    if (!likely.ok()) return;
    for (const auto& candidate : likely.value()) {
      auto later = created_in_window.find(candidate.id);
      if (later != created_in_window.end() && later->second > r.row) continue;
      r.likely_duplicate_of = candidate.id;
      r.likely_rules = candidate.rules;
      return;
    }
  };

  // Windows of rows: their creates prepared on several threads (validation, normalisation,
  // a data key each), then written in one transaction in file order (one commit and one
  // flush for the window), then the rows refused as duplicates settled one by one in file
  // order, so that a value twice in the file creates once and then updates, as row by row.
  const size_t window_rows = std::max<size_t>(1, options.window);
  const size_t workers = std::clamp<size_t>(
      options.workers != 0 ? options.workers : std::thread::hardware_concurrency(), 1, 64);
  auto parallel = [&](std::vector<Prepared>& items, const std::function<void(Prepared&)>& fn) {
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i = next++; i < items.size(); i = next++) fn(items[i]);
    };
    std::vector<std::thread> threads;
    for (size_t w = 1; w < std::min(workers, items.size()); ++w) threads.emplace_back(work);
    work();
    for (auto& t : threads) t.join();
  };
  GARDE_RETURN_IF_ERROR(file.Rewind());
  CsvStream csv(file);
  if (auto first = csv.Start(); !first.ok()) return first.status();
  csv.set_delimiter(delimiter);
  std::vector<std::string> skipped_header;
  csv.Next(&skipped_header);
  // The next window is read and prepared on a thread of its own while this one is written,
  // its duplicates settled and its likely duplicates looked for: the writer's transaction and
  // the preparation (validation, normalisation, encryption) each keep a core busy.
  struct Window {
    Status status = Status::Ok();
    std::vector<Prepared> rows;  // empty: the file is done
    int64_t end = 0;             // rows read up to and with this window
  };
  int64_t read_rows = 0;
  auto read_window = [&]() -> Window {
    Window w;
    std::vector<Row> rows;
    std::vector<std::string> cells;
    while (rows.size() < window_rows && csv.Next(&cells)) {
      for (size_t i = 0; i < cells.size(); ++i) {
        if (i >= kept.size() || !kept[i]) std::string().swap(cells[i]);
      }
      w.status = decode(cells);
      if (!w.status.ok()) return w;
      rows.push_back({csv.line(), std::move(cells)});
    }
    w.status = csv.read_status();
    if (!w.status.ok()) return w;
    // The file changed between the passes (it was read whole and checked first).
    if (!csv.error().empty()) {
      w.status = Unavailable("the file changed while it was imported");
      return w;
    }
    const int64_t start = read_rows;
    read_rows += static_cast<int64_t>(rows.size());
    w.end = read_rows;
    for (size_t i = 0; i < rows.size(); ++i) {
      w.rows.push_back(prepare(start + static_cast<int64_t>(i) + 1, rows[i]));
    }
    parallel(w.rows, [&](Prepared& p) {
      if (p.result.earlier || !p.invalid.ok()) return;
      if (options.dry_run) {
        p.invalid = d_.vault().CheckNew(p.in, &p.values);
        p.result.outcome = p.invalid.ok() ? "valid" : "invalid";
        return;
      }
      p.in.import_mark = ImportMark{summary.id, p.result.row};
      auto pending = d_.vault().PrepareCreate(caller, p.in);
      if (pending.ok())
        p.pending = std::move(pending.value());
      else
        p.invalid = pending.status();
    });
    return w;
  };
  std::future<Window> ahead = std::async(std::launch::async, read_window);
  for (;;) {
    Window next = ahead.get();
    GARDE_RETURN_IF_ERROR(next.status);
    if (next.rows.empty()) break;
    // Joined before csv and the rest read_window uses go out of scope (declared after them).
    ahead = std::async(std::launch::async, read_window);
    std::vector<Prepared>& window = next.rows;
    const int64_t end = next.end;
    std::vector<std::unique_ptr<SubjectVault::PendingCreate>> pending;
    std::vector<Prepared*> owners;
    for (auto& p : window) {
      if (p.pending) {
        pending.push_back(std::move(p.pending));
        owners.push_back(&p);
      }
    }
    if (!pending.empty()) {
      auto created = d_.vault().CommitCreates(caller, pending);
      for (size_t i = 0; i < owners.size(); ++i) {
        Prepared& p = *owners[i];
        if (created[i].ok()) {
          p.result.outcome = "created";
          p.result.id = created[i]->id;
          p.values = std::move(created[i]->fields);
        } else if (created[i].status().code() == Code::kConflict) {
          p.conflict = created[i].status();
        } else {
          p.invalid = created[i].status();
        }
      }
    }
    for (auto& p : window) {
      if (p.result.earlier) continue;
      Status outcome = p.invalid;
      if (!p.conflict.ok()) outcome = settle_conflict(p, p.conflict);
      finish(p.result, outcome);
    }
    if (options.dry_run) GARDE_RETURN_IF_ERROR(predict_repeats(window));
    created_in_window.clear();
    for (const auto& p : window) {
      if (p.result.outcome == "created" && !p.result.earlier)
        created_in_window[p.result.id] = p.result.row;
    }
    parallel(window, look_for_likely);
    for (const auto& p : window) {
      const ImportRowResult& r = p.result;
      if (r.earlier) ++summary.resumed;
      if (!r.likely_duplicate_of.empty()) ++summary.likely_duplicates;
      if (r.outcome == "created" || r.outcome == "valid")
        ++summary.created;
      else if (r.outcome == "updated")
        ++summary.updated;
      else if (r.outcome == "duplicate")
        ++summary.duplicates;
      else if (r.outcome == "invalid")
        ++summary.invalid;
      else
        ++summary.failed;
      if (on_row) on_row(r);
    }
    if (options.progress) options.progress(end, summary.rows);
  }
  d_.journal()
      .Record(nullptr, caller,
              {options.dry_run ? "import.check" : "import.run", "", "", "ok", {}, summary.rows})
      .IgnoreError();
  return summary;
}

std::string ImportReportCsvHeader() {
  return "row,line,outcome,id,detail,errors,likely_duplicate_of\r\n";
}

std::string ImportReportCsvLine(const ImportRowResult& r) {
  std::string errors;
  for (const auto& e : r.errors)
    errors += (errors.empty() ? "" : "; ") + e.field + ": " + e.message;
  std::string likely = r.likely_duplicate_of;
  for (size_t i = 0; i < r.likely_rules.size(); ++i) {
    likely +=
        (i == 0 ? " (" : ", ") + r.likely_rules[i] + (i + 1 == r.likely_rules.size() ? ")" : "");
  }
  return std::to_string(r.row) + "," + std::to_string(r.line) + "," + CsvCell(r.outcome) + "," +
         CsvCell(r.id) + "," + CsvCell(r.detail) + "," + CsvCell(errors) + "," + CsvCell(likely) +
         "\r\n";
}

}  // namespace garde

// Spreadsheet imports: reading CSV as spreadsheets write it, the mapping's checks, and the
// importer against an independent reference model of row outcomes on random files (same
// e-mail in several spellings, rows that fail, windows of concurrent writers).
#include "garde/app/importer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "deployment_fixture.h"
#include "garde/base/csv_reader.h"

namespace garde {
namespace {

std::vector<std::vector<std::string>> ReadAll(const std::string& text, char delimiter,
                                              std::string* error = nullptr) {
  CsvReader csv(text, delimiter);
  std::vector<std::vector<std::string>> out;
  std::vector<std::string> cells;
  while (csv.Next(&cells)) out.push_back(cells);
  if (error != nullptr) *error = csv.error();
  return out;
}

TEST(CsvReader, ReadsWhatSpreadsheetsWrite) {
  const std::string text =
      "Nom;Ville;Note\r\n"
      "\"Dupré; Hélène\";Paris;\"dit \"\"bonjour\"\"\"\r\n"
      "\r\n"
      "Martin;;\"deux\nlignes\"\r\n"
      "Noël;Lyon\n";
  EXPECT_EQ(CsvReader::Detect(text), ';');
  EXPECT_EQ(CsvReader::Detect("a,b;c,d\n"), ',');
  CsvReader csv(text, ';');
  std::vector<std::string> cells;
  ASSERT_TRUE(csv.Next(&cells));
  EXPECT_EQ(cells, (std::vector<std::string>{"Nom", "Ville", "Note"}));
  ASSERT_TRUE(csv.Next(&cells));
  EXPECT_EQ(cells, (std::vector<std::string>{"Dupré; Hélène", "Paris", "dit \"bonjour\""}));
  EXPECT_EQ(csv.line(), 2u);
  ASSERT_TRUE(csv.Next(&cells));  // the blank line is skipped
  EXPECT_EQ(cells, (std::vector<std::string>{"Martin", "", "deux\nlignes"}));
  EXPECT_EQ(csv.line(), 4u);
  ASSERT_TRUE(csv.Next(&cells));
  EXPECT_EQ(cells, (std::vector<std::string>{"Noël", "Lyon"}));
  EXPECT_EQ(csv.line(), 6u);
  EXPECT_FALSE(csv.Next(&cells));
  EXPECT_TRUE(csv.error().empty());
}

TEST(CsvReader, RefusesAnUnclosedQuoteAndTextAfterAClosingQuote) {
  std::string error;
  ReadAll("a,b\n1,\"open\n2,3\n", ',', &error);
  EXPECT_EQ(error, "line 2: a quoted cell is never closed");
  ReadAll("a,b\n\"x\"y,2\n", ',', &error);
  EXPECT_EQ(error, "line 2: text after a closing quote");
}

// A source that hands out a few bytes at a time: records and quoted cells cut anywhere.
class ChoppySource : public ByteSource {
 public:
  ChoppySource(std::string bytes, uint64_t seed)
      : bytes_(std::move(bytes)), inner_(StringSource(bytes_)), rng_(seed) {}
  Result<size_t> Read(char* out, size_t n) override {
    return inner_->Read(out, std::min(n, static_cast<size_t>(1 + rng_() % 9)));
  }
  Status Rewind() override { return inner_->Rewind(); }

 private:
  std::string bytes_;
  std::unique_ptr<ByteSource> inner_;
  std::mt19937_64 rng_;
};

// CsvStream, reading chunk by chunk, splits every file as CsvReader does over the whole text:
// the same records, lines and raw bytes, the same error — on 5 000 random files with quotes,
// doubled quotes, line breaks in cells, CRLF, blank lines, a byte-order mark, and malformed
// records.
TEST(CsvStream, ReadsChunkByChunkAsTheWholeTextReads) {
  std::mt19937_64 rng(20261203);
  const std::vector<std::string> pieces = {"a",    "Zoë",    ",",         ";",          "\n",
                                           "\r\n", "\"q\"",  "\"x,\ny\"", "\"d\"\"q\"", " ",
                                           "\"",   "\"o\"t", "\n\n",      "é"};
  for (int round = 0; round < 5000; ++round) {
    std::string file = rng() % 8 == 0 ? "\xEF\xBB\xBF" : "";
    for (size_t n = rng() % 40; n > 0; --n) file += pieces[rng() % pieces.size()];
    const char delimiter = rng() % 2 == 0 ? ',' : ';';
    const bool bom = file.rfind("\xEF\xBB\xBF", 0) == 0;
    const std::string text = bom ? file.substr(3) : file;
    CsvReader whole(text, delimiter);
    ChoppySource source(file, rng());
    CsvStream stream(source, 1 << 20);
    ASSERT_TRUE(stream.Start().ok());
    stream.set_delimiter(delimiter);
    std::vector<std::string> a, b;
    size_t records = 0;
    for (;;) {
      const size_t before = whole.consumed();
      const bool got_a = whole.Next(&a);
      const bool got_b = stream.Next(&b);
      ASSERT_EQ(got_a, got_b) << "round " << round << " record " << records << " in "
                              << ::testing::PrintToString(file) << ": " << stream.error();
      if (!got_a) break;
      ASSERT_EQ(a, b) << "round " << round << " record " << records;
      ASSERT_EQ(whole.line(), stream.line()) << "round " << round;
      ASSERT_EQ(std::string_view(text).substr(before, whole.consumed() - before), stream.raw());
      ++records;
    }
    EXPECT_EQ(whole.error(), stream.error()) << "round " << round;
    EXPECT_EQ(stream.bom(), bom);
  }
}

TEST(CsvStream, RefusesARecordLongerThanItsBound) {
  const std::string file = "a,b\n\"" + std::string(5000, 'x') + "\"\n";
  auto source = StringSource(file);
  CsvStream stream(*source, 1000);
  std::vector<std::string> cells;
  ASSERT_TRUE(stream.Next(&cells));
  EXPECT_FALSE(stream.Next(&cells));
  EXPECT_EQ(stream.error(), "line 2: a record longer than 1000 bytes");
}

TEST(SpreadsheetText, DecodesBomUtf8AndWindows1252) {
  EXPECT_EQ(SpreadsheetText("\xEF\xBB\xBFNo\xC3\xABl", "auto").value(), "No\xC3\xABl");
  // Windows-1252: é (0xE9), € (0x80), œ (0x9C).
  EXPECT_EQ(SpreadsheetText("caf\xE9 \x80 \x9C", "auto").value(),
            "caf\xC3\xA9 \xE2\x82\xAC \xC5\x93");
  EXPECT_EQ(SpreadsheetText("caf\xE9", "windows-1252").value(), "caf\xC3\xA9");
  EXPECT_EQ(SpreadsheetText("caf\xE9", "utf-8").status().code(), Code::kUnprocessable);
  // An overlong encoding is not UTF-8: read as Windows-1252, never passed on as is.
  EXPECT_EQ(SpreadsheetText("\xC0\xAF", "auto").value(), "\xC3\x80\xC2\xAF");
}

Schema TestSchema() {
  Schema s;
  auto add = [&](const std::string& name, FieldType type, bool unique = false) {
    FieldSpec f;
    f.name = name;
    f.type = type;
    f.kinds = {"person"};
    f.unique = unique;
    s.by_name_[name] = s.fields_.size();
    s.fields_.push_back(f);
  };
  add("email", FieldType::kEmail, true);
  add("birth_date", FieldType::kDate);
  add("total_spend", FieldType::kNumber);
  add("legal_name", FieldType::kString);
  s.fields_.back().kinds = {"organization"};
  return s;
}

TEST(ImportMapping, ProblemsComeWithTheirLine) {
  const Schema schema = TestSchema();
  auto m = ParseImportMapping("m.yaml",
                              "kind: person\n"
                              "on_existing: merge\n"
                              "columns:\n"
                              "  Mail: email\n"
                              "  Courriel: email\n"
                              "  Nom: nom\n"
                              "  Raison: legal_name\n"
                              "  Total: {field: total_spend, date_format: '%d'}\n"
                              "colour: blue\n",
                              schema);
  ASSERT_FALSE(m.ok());
  std::set<std::string> got;
  for (const auto& e : m.status().errors()) got.insert(e.field + " " + e.message);
  EXPECT_EQ(got, (std::set<std::string>{
                     "m.yaml:2 on_existing must be update or skip",
                     "m.yaml:5 'email' is filled twice",
                     "m.yaml:6 'nom' is not a field of the schema",
                     "m.yaml:7 'legal_name' is not a field of a person",
                     "m.yaml:8 date_format is for date fields",
                     "m.yaml:9 unknown key 'colour'",
                 }));
  auto ok = ParseImportMapping(
      "m.yaml",
      "columns:\n  Mail: email\n  Né: {field: birth_date, date_format: '%d/%m/%Y'}\n"
      "  Total: {field: total_spend, decimal: ','}\n",
      schema);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->columns.size(), 3u);
  EXPECT_EQ(ok->columns[2].decimal, ',');
  EXPECT_TRUE(ok->update_existing);
}

class ImporterTest : public DeploymentFixture {};

TEST_F(ImporterTest, CellsBecomeNormalisedFieldsAndEveryProblemOfARowIsNamed) {
  auto mapping = ParseImportMapping("m.yaml",
                                    "source: crm\ncolumns:\n  Courriel: email\n"
                                    "  Né le: {field: birth_date, date_format: '%d/%m/%Y'}\n"
                                    "  Achats: total_spend\n  Ville: city\n",
                                    d_->policies().Current()->schema());
  ASSERT_TRUE(mapping.ok()) << mapping.status().message();
  const std::string file =
      "Courriel;Né le;Achats;Ville\r\n"
      " Ana@Example.ORG ;03/04/1985;1\xC2\xA0"
      "234,50;Paris\r\n"
      "bad-address;31/02/1990;douze;Lyon\r\n";
  Caller op{"k", "operator", {"customer_management"}, "r", ""};
  std::vector<ImportRowResult> rows;
  auto summary = Importer(*d_).Run(op, mapping.value(), file, {},
                                   [&](const ImportRowResult& r) { rows.push_back(r); });
  ASSERT_TRUE(summary.ok()) << summary.status().message();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].outcome, "created");
  auto stored = d_->vault().OwnFields(rows[0].id, {"email", "birth_date", "total_spend", "city"});
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  ASSERT_EQ(stored->size(), 4u);
  EXPECT_EQ(stored->at("email").text, "ana@example.org");
  EXPECT_EQ(stored->at("birth_date").text, "1985-04-03");
  EXPECT_EQ(stored->at("total_spend").number, 1234.5);
  EXPECT_EQ(stored->at("city").text, "Paris");
  auto view = d_->vault().Read(op, rows[0].id, "customer_management");
  ASSERT_TRUE(view.ok()) << view.status().message();
  EXPECT_EQ(view->source, "crm");
  EXPECT_EQ(rows[1].outcome, "invalid");
  std::set<std::string> fields;
  for (const auto& e : rows[1].errors) {
    fields.insert(e.field);
    for (const char* value : {"bad-address", "douze", "31/02/1990"}) {
      EXPECT_EQ(e.message.find(value), std::string::npos) << e.message;  // never echoed
    }
  }
  EXPECT_EQ(fields,
            (std::set<std::string>{"fields.email", "fields.birth_date", "fields.total_spend"}));
}

TEST_F(ImporterTest, ANonCsvFileOrAMissingColumnWritesNothing) {
  auto mapping = ParseImportMapping("m.yaml", "columns:\n  Email: email\n  City: city\n",
                                    d_->policies().Current()->schema());
  ASSERT_TRUE(mapping.ok());
  Caller op{"k", "operator", {}, "r", ""};
  Importer importer(*d_);
  auto missing =
      importer.Run(op, mapping.value(), "Email,Town\na@example.org,Paris\n", {}, nullptr);
  EXPECT_EQ(missing.status().code(), Code::kUnprocessable);
  ASSERT_EQ(missing.status().errors().size(), 1u);
  EXPECT_EQ(missing.status().errors()[0].field, "City");
  auto broken = importer.Run(
      op, mapping.value(), "Email,City\na@example.org,Paris\n\"b@example.org,Lyon\n", {}, nullptr);
  EXPECT_EQ(broken.status().code(), Code::kUnprocessable);
  int64_t count = -1;
  ASSERT_TRUE(d_->store()
                  .Read([&](ReadTx& tx) {
                    count = tx.CountSubjects().value();
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(count, 0);  // the good first row was not written either
}

// The reference: rows in file order, each either invalid (a bad cell), or of a customer
// already there (`known`: updated / duplicate of that subject), or the first with its e-mail
// (created), or a later one (updated / duplicate of the first's subject).
struct ModelRow {
  std::string outcome;
  int first = -1;        // the row whose subject it is
  std::string known_id;  // or the subject already there
};
std::vector<ModelRow> Model(const std::vector<std::pair<int, bool>>& rows, bool update,
                            const std::map<int, std::string>& known = {}) {
  std::vector<ModelRow> out;
  std::map<int, int> first;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto [person, bad] = rows[i];
    if (bad) {
      out.push_back({"invalid", -1, ""});
      continue;
    }
    if (auto k = known.find(person); k != known.end()) {
      out.push_back({update ? "updated" : "duplicate", -1, k->second});
      continue;
    }
    auto [it, fresh] = first.emplace(person, static_cast<int>(i));
    out.push_back({fresh ? "created" : (update ? "updated" : "duplicate"), it->second, ""});
  }
  return out;
}

// A file of `count` rows over `people` customers of `round`, each address in a random
// spelling, one row in ten with a bad amount; `rows` gets (person, bad) for each.
std::string RandomFile(std::mt19937& rng, int round, int people, int count,
                       std::vector<std::pair<int, bool>>* rows) {
  std::string file = "Email;Spend\r\n";
  for (int i = 0; i < count; ++i) {
    const int person = static_cast<int>(rng() % static_cast<unsigned>(people));
    const bool bad = rng() % 10 == 0;
    std::string email = "r" + std::to_string(round) + "p" + std::to_string(person) + "@Example.org";
    if (rng() % 2)
      for (auto& c : email) c = static_cast<char>(std::toupper(c));
    if (rng() % 3 == 0) email = "  " + email + " ";
    file += email + ";" + (bad ? "n/a" : std::to_string(rng() % 100) + ",5") + "\r\n";
    rows->emplace_back(person, bad);
  }
  return file;
}

TEST_F(ImporterTest, OutcomesMatchAReferenceModelOnRandomFiles) {
  std::mt19937 rng(20261202);
  ImportOptions dry_run;
  dry_run.dry_run = true;
  Caller op{"k", "operator", {}, "r", ""};
  for (int round = 0; round < 6; ++round) {
    const bool update = round % 2 == 0;
    auto mapping = ParseImportMapping(
        "m.yaml",
        std::string("on_existing: ") + (update ? "update" : "skip") +
            "\ncolumns:\n  Email: email\n  Spend: {field: total_spend, decimal: ','}\n",
        d_->policies().Current()->schema());
    ASSERT_TRUE(mapping.ok());
    // 1 500 rows over a small population (so addresses repeat, within and across the
    // 1 024-row windows), each address in a random spelling, some rows with a bad amount.
    const int people = 200 + round * 100;
    std::vector<std::pair<int, bool>> rows;
    const std::string file = RandomFile(rng, round, people, 1500, &rows);
    const auto want = Model(rows, update);
    // A dry run first: it writes nothing and foresees each row's outcome, a created row
    // being "valid".
    std::vector<ImportRowResult> foreseen;
    auto dry = Importer(*d_).Run(op, mapping.value(), file, dry_run,
                                 [&](const ImportRowResult& r) { foreseen.push_back(r); });
    ASSERT_TRUE(dry.ok()) << dry.status().message();
    ASSERT_EQ(foreseen.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(foreseen[i].outcome, want[i].outcome == "created" ? "valid" : want[i].outcome)
          << "dry run, round " << round << ", row " << i + 1;
    }
    std::vector<ImportRowResult> got;
    auto summary = Importer(*d_).Run(op, mapping.value(), file, {},
                                     [&](const ImportRowResult& r) { got.push_back(r); });
    ASSERT_TRUE(summary.ok()) << summary.status().message();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(got[i].row, static_cast<int64_t>(i + 1));
      ASSERT_EQ(got[i].outcome, want[i].outcome) << "round " << round << ", row " << i + 1;
      if (want[i].first >= 0) {
        ASSERT_EQ(got[i].id, got[static_cast<size_t>(want[i].first)].id) << "row " << i + 1;
      }
    }
    // The same import again: every created row is known, nobody is created twice.
    std::vector<ImportRowResult> again;
    auto resumed = Importer(*d_).Run(op, mapping.value(), file, {},
                                     [&](const ImportRowResult& r) { again.push_back(r); });
    ASSERT_TRUE(resumed.ok());
    EXPECT_EQ(resumed->resumed, summary->created);
    for (size_t i = 0; i < want.size(); ++i) {
      if (want[i].outcome == "created") {
        EXPECT_TRUE(again[i].earlier);
        EXPECT_EQ(again[i].id, got[i].id);
      }
    }

    // Another file over those customers and some new ones: the dry run names the subject
    // already there that a row would update (or duplicate), and the import that follows does
    // what it foresaw, row by row.
    std::map<int, std::string> known;
    for (size_t i = 0; i < want.size(); ++i) {
      if (want[i].outcome == "created") known[rows[i].first] = got[i].id;
    }
    std::vector<std::pair<int, bool>> rows2;
    const std::string file2 = RandomFile(rng, round, people + 50, 1500, &rows2);
    const auto want2 = Model(rows2, update, known);
    std::vector<ImportRowResult> foreseen2, got2;
    ASSERT_TRUE(Importer(*d_)
                    .Run(op, mapping.value(), file2, dry_run,
                         [&](const ImportRowResult& r) { foreseen2.push_back(r); })
                    .ok());
    ASSERT_TRUE(Importer(*d_)
                    .Run(op, mapping.value(), file2, {},
                         [&](const ImportRowResult& r) { got2.push_back(r); })
                    .ok());
    ASSERT_EQ(foreseen2.size(), want2.size());
    ASSERT_EQ(got2.size(), want2.size());
    for (size_t i = 0; i < want2.size(); ++i) {
      const std::string where =
          "second file, round " + std::to_string(round) + ", row " + std::to_string(i + 1);
      ASSERT_EQ(got2[i].outcome, want2[i].outcome) << where;
      ASSERT_EQ(foreseen2[i].outcome, want2[i].outcome == "created" ? "valid" : want2[i].outcome)
          << where;
      if (!want2[i].known_id.empty()) {
        ASSERT_EQ(foreseen2[i].id, want2[i].known_id) << where;
        ASSERT_EQ(got2[i].id, want2[i].known_id) << where;
      }
    }
  }
}

}  // namespace
}  // namespace garde

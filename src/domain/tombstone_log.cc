#include "garde/domain/tombstone_log.h"

#include <sodium.h>

#include <algorithm>
#include <charconv>

namespace garde {
namespace {

// Tokens written to the log never hold spaces or line breaks; "-" stands for empty.
bool IsWord(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c > 0x7e) return false;
  }
  return true;
}
std::string Word(const std::string& s) { return s.empty() ? "-" : s; }
std::string Unword(const std::string& s) { return s == "-" ? "" : s; }

std::vector<std::string> SplitCommas(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    const size_t comma = s.find(',');
    const std::string_view part = s.substr(0, comma);
    if (!part.empty()) out.emplace_back(part);
    s.remove_prefix(comma == std::string_view::npos ? s.size() : comma + 1);
  }
  return out;
}

// The words of a line, separated by any run of blanks.
class Words {
 public:
  explicit Words(std::string_view line) : rest_(line) {}

  bool Next(std::string_view* word) {
    const size_t begin = rest_.find_first_not_of(kBlanks);
    if (begin == std::string_view::npos) return false;
    rest_.remove_prefix(begin);
    const size_t end = std::min(rest_.find_first_of(kBlanks), rest_.size());
    *word = rest_.substr(0, end);
    rest_.remove_prefix(end);
    return true;
  }
  bool Next(std::string* word) {
    std::string_view w;
    if (!Next(&w)) return false;
    word->assign(w);
    return true;
  }
  bool Next(int64_t* value) {
    std::string_view w;
    if (!Next(&w)) return false;
    const auto [end, ec] = std::from_chars(w.data(), w.data() + w.size(), *value);
    return ec == std::errc() && end == w.data() + w.size();
  }
  template <typename... T>
  bool All(T*... out) {
    return (Next(out) && ...);
  }

 private:
  static constexpr std::string_view kBlanks = " \t\r\v\f";
  std::string_view rest_;
};

Bytes DigestOf(std::string_view text, size_t bytes) {
  Bytes out(bytes);
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const uint8_t*>(text.data()),
                     text.size(), nullptr, 0);
  return out;
}

}  // namespace

bool ConsentTombstone::Kept(const ConsentEventRow& row) {
  return row.event == "withdrawn" || row.event == "refused" || row.event == "objected";
}

ConsentTombstone ConsentTombstone::From(const ConsentEventRow& row) {
  return {row.id,     row.subject_id, row.purpose,        row.channel, row.event,
          row.method, row.actor,      row.notice_version, row.at};
}

Result<std::string> TombstoneLog::Format(const TombstoneEntries& entries) {
  std::string text;
  for (const auto& t : entries.erasures) {
    text += t.subject_id + " " + t.request_id + " " + std::to_string(t.at);
    for (size_t i = 0; i < t.kept.size(); ++i) text += (i == 0 ? " " : ",") + t.kept[i];
    text += "\n";
  }
  for (const auto& c : entries.consents) {
    const std::string words[] = {c.event_id, c.subject_id,   c.purpose,     Word(c.channel),
                                 c.event,    Word(c.method), Word(c.actor), Word(c.notice_version)};
    bool ok = true;
    for (const auto& w : words) ok &= IsWord(w);
    if (!ok) return Internal("a consent event cannot be written to the tombstone log");
    text += "consent " + words[0] + " " + words[1] + " " + words[2] + " " + words[3] + " " +
            words[4] + " " + std::to_string(c.at) + " " + words[5] + " " + words[6] + " " +
            words[7] + "\n";
  }
  for (const auto& s : entries.suppressions) {
    text += "suppress " + s.kind + " " + HexEncode(s.digest) + " " + std::to_string(s.at) + " " +
            Word(s.reason) + "\n";
  }
  return text;
}

Status TombstoneLog::WriteAhead(WriteTx& tx, const TombstoneEntries& entries) {
  if (entries.consents.empty() && entries.suppressions.empty()) return Status::Ok();
  TombstoneEntries ahead;
  ahead.consents = entries.consents;
  ahead.suppressions = entries.suppressions;
  GARDE_ASSIGN_OR_RETURN(auto text, Format(ahead));
  tx.WriteAhead(std::move(text));
  return Status::Ok();
}

Status TombstoneLog::Append(const TombstoneEntries& entries) const {
  if (path_.empty() || entries.empty()) return Status::Ok();
  GARDE_ASSIGN_OR_RETURN(auto text, Format(entries));
  return AppendText(text);
}

Status TombstoneLog::AppendText(const std::string& text) const {
  if (path_.empty() || text.empty()) return Status::Ok();
  PendingAppend me;
  me.text = &text;
  appends_.Run(&me);
  return me.result;
}

Status TombstoneLog::WriteAndSync(const std::string& text) const {
  GARDE_ASSIGN_OR_RETURN(auto file, fs_.Open(path_, FileSystem::Mode::kAppend));
  GARDE_RETURN_IF_ERROR(file->Append(text));
  return file->Sync();
}

Result<std::string> TombstoneLog::ReadText() const {
  if (path_.empty()) return std::string();
  auto all = fs_.ReadAll(path_);
  if (!all.ok() && all.status().code() == Code::kNotFound) return std::string();  // none yet
  return all;
}

Result<TombstoneEntries> TombstoneLog::Read() const {
  GARDE_ASSIGN_OR_RETURN(auto text, ReadText());
  return Parse(text);
}

TombstoneEntries TombstoneLog::Parse(std::string_view text) {
  TombstoneEntries out;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    Words words(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    std::string_view first;
    if (!words.Next(&first)) continue;
    if (first == "consent") {
      ConsentTombstone c;
      std::string channel, method, actor, notice;
      if (!words.All(&c.event_id, &c.subject_id, &c.purpose, &channel, &c.event, &c.at, &method,
                     &actor, &notice)) {
        continue;  // a line cut short by a crash
      }
      if (!IsRandomId(c.subject_id, "sub_") || !IsRandomId(c.event_id, "cev_")) continue;
      c.channel = Unword(channel);
      c.method = Unword(method);
      c.actor = Unword(actor);
      c.notice_version = Unword(notice);
      out.consents.push_back(std::move(c));
    } else if (first == "suppress") {
      SuppressionTombstone s;
      std::string hex, reason;
      if (!words.All(&s.kind, &hex, &s.at, &reason)) continue;
      auto digest = HexDecode(hex);
      if (!digest || digest->empty() || (s.kind != "email" && s.kind != "phone")) continue;
      s.digest = std::move(*digest);
      s.reason = Unword(reason);
      out.suppressions.push_back(std::move(s));
    } else if (IsRandomId(first, "sub_")) {
      TombstoneRow t;
      t.subject_id = first;
      if (!words.All(&t.request_id, &t.at)) continue;
      std::string_view kept;  // absent for a full erasure (and in logs written before holds)
      if (words.Next(&kept)) t.kept = SplitCommas(kept);
      out.erasures.push_back(std::move(t));
    }
  }
  return out;
}

std::vector<std::string_view> TombstoneLog::ErasedIn(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    Words words(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    // As Parse reads an erasure: a line cut short by a crash does not count as logged.
    std::string_view subject, request;
    int64_t at = 0;
    if (words.All(&subject, &request, &at) && IsRandomId(subject, "sub_")) {
      out.push_back(subject);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string TombstoneLog::NameOf(std::string_view text) {
  const size_t end = text.find('\n');
  if (end == std::string_view::npos) return "";
  return HexEncode(DigestOf(text.substr(0, end), 16));
}

size_t TombstoneLog::AppliedTo(std::string_view text, const std::optional<TombstoneLogMark>& mark) {
  if (!mark || mark->applied_to <= 0 || static_cast<uint64_t>(mark->applied_to) > text.size()) {
    return 0;
  }
  const auto to = static_cast<size_t>(mark->applied_to);
  if (text[to - 1] != '\n' || DigestOf(text.substr(0, to), 32) != mark->digest) return 0;
  return to;
}

TombstoneLogMark TombstoneLog::MarkOf(std::string_view text) {
  return {NameOf(text), static_cast<int64_t>(text.size()), DigestOf(text, 32)};
}

}  // namespace garde

#include "garde/domain/tombstone_log.h"

#include <sstream>

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

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
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

Status TombstoneLog::Append(const TombstoneEntries& entries) const {
  if (path_.empty() || entries.empty()) return Status::Ok();
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
  PendingAppend me;
  me.text = &text;
  appends_.Run(&me, [this](const std::vector<PendingAppend*>& batch, const std::function<void()>&) {
    std::string all;
    for (const PendingAppend* p : batch) all += *p->text;
    const Status written = WriteAndSync(all);
    for (PendingAppend* p : batch) p->result = written;
  });
  return me.result;
}

Status TombstoneLog::WriteAndSync(const std::string& text) const {
  GARDE_ASSIGN_OR_RETURN(auto file, fs_.Open(path_, FileSystem::Mode::kAppend));
  GARDE_RETURN_IF_ERROR(file->Append(text));
  return file->Sync();
}

Result<TombstoneEntries> TombstoneLog::Read() const {
  TombstoneEntries out;
  if (path_.empty()) return out;
  auto all = fs_.ReadAll(path_);
  if (!all.ok()) {
    if (all.status().code() == Code::kNotFound) return out;  // nothing erased yet
    return all.status();
  }
  std::istringstream in(all.value());
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string first;
    if (!(words >> first)) continue;
    if (first == "consent") {
      ConsentTombstone c;
      std::string channel, method, actor, notice;
      if (!(words >> c.event_id >> c.subject_id >> c.purpose >> channel >> c.event >> c.at >>
            method >> actor >> notice)) {
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
      if (!(words >> s.kind >> hex >> s.at >> reason)) continue;
      auto digest = HexDecode(hex);
      if (!digest || digest->empty() || (s.kind != "email" && s.kind != "phone")) continue;
      s.digest = std::move(*digest);
      s.reason = Unword(reason);
      out.suppressions.push_back(std::move(s));
    } else if (IsRandomId(first, "sub_")) {
      TombstoneRow t;
      t.subject_id = first;
      std::string kept;
      if (!(words >> t.request_id >> t.at)) continue;
      words >> kept;  // absent for a full erasure (and in logs written before holds had one)
      t.kept = SplitCommas(kept);
      out.erasures.push_back(std::move(t));
    }
  }
  return out;
}

}  // namespace garde

#include "garde/domain/audit_values.h"

#include "garde/base/encoding.h"

namespace garde {

bool AuditValues::IsPlainToken(std::string_view value) {
  if (value.empty() || value.size() > 128) return false;
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    // '@' too: no e-mail address is ever kept, even where only names are expected.
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '@') return false;
  }
  return true;
}

std::string AuditValues::Marked(std::string_view marker, std::string_view value) const {
  std::string out(marker);
  if (digest_ != nullptr) out += HexEncode(digest_->Digest(value, 16)).substr(0, 16);
  return out;
}

std::string AuditValues::Subject(std::string_view value) const {
  if (value.empty() || IsRandomId(value, "sub_")) return std::string(value);
  return Marked("malformed:", value);
}

std::string AuditValues::Activity(std::string_view value) const {
  if (value.empty()) return "";
  // Activity ids are plain tokens; the register decides whether this one exists.
  if (IsPlainToken(value) && (declared_ ? declared_(value) : true)) return std::string(value);
  return Marked("undeclared:", value);
}

std::string AuditValues::Token(std::string_view value) const {
  if (value.empty() || IsPlainToken(value)) return std::string(value);
  return Marked("malformed:", value);
}

bool AuditValues::IsCanonical(const AccessEvent& e) const {
  auto plain = [](const std::string& v) { return v.empty() || IsPlainToken(v); };
  if (!plain(e.action) || !plain(e.outcome)) return false;
  if (!e.subject_id.empty() && !IsRandomId(e.subject_id, "sub_")) return false;
  if (!e.activity.empty() &&
      (!IsPlainToken(e.activity) || (declared_ && !declared_(e.activity)))) {
    return false;
  }
  for (const auto& f : e.fields) {
    if (!plain(f)) return false;
  }
  return true;
}

AccessEvent AuditValues::Canonical(const AccessEvent& event) const {
  AccessEvent out;
  out.action = Token(event.action);
  out.subject_id = Subject(event.subject_id);
  out.activity = Activity(event.activity);
  out.outcome = Token(event.outcome);
  out.fields.reserve(event.fields.size());
  for (const auto& f : event.fields) out.fields.push_back(Token(f));
  out.count = event.count;
  return out;
}

}  // namespace garde

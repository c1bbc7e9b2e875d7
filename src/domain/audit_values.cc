#include "garde/domain/audit_values.h"

#include <algorithm>

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

bool AuditValues::TokenKept(std::string_view v) { return v.empty() || IsPlainToken(v); }
bool AuditValues::SubjectKept(std::string_view v) { return v.empty() || IsRandomId(v, "sub_"); }
bool AuditValues::ActivityKept(std::string_view v) const {
  // Activity ids are plain tokens; the register decides whether this one exists.
  return v.empty() || (IsPlainToken(v) && (!declared_ || declared_(v)));
}

std::string AuditValues::Subject(std::string_view value) const {
  return SubjectKept(value) ? std::string(value) : Marked("malformed:", value);
}

std::string AuditValues::Activity(std::string_view value) const {
  return ActivityKept(value) ? std::string(value) : Marked("undeclared:", value);
}

std::string AuditValues::Client(std::string_view address) const {
  return address.empty() ? std::string() : Marked("", address);
}

std::string AuditValues::Token(std::string_view value) const {
  return TokenKept(value) ? std::string(value) : Marked("malformed:", value);
}

bool AuditValues::IsCanonical(const Caller& caller, const AccessEvent& e) const {
  return TokenKept(caller.key_id) && TokenKept(caller.role) && TokenKept(caller.request_id) &&
         TokenKept(caller.client) && TokenKept(e.action) && TokenKept(e.outcome) &&
         SubjectKept(e.subject_id) && ActivityKept(e.activity) &&
         std::all_of(e.fields.begin(), e.fields.end(),
                     [](const std::string& f) { return TokenKept(f); });
}

Caller AuditValues::Canonical(const Caller& caller) const {
  Caller out = caller;
  out.key_id = Token(caller.key_id);
  out.role = Token(caller.role);
  out.request_id = Token(caller.request_id);
  out.client = Token(caller.client);
  return out;
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

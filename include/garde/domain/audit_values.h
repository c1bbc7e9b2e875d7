// What the audit log keeps of values that reach it from a request (SPEC §2.6): a subject id
// that is well formed and an activity the register declares are kept as given; anything else
// (an e-mail typed where an id goes, a quote, a tab, bytes that are not UTF-8) is kept only as
// "malformed:" or "undeclared:" followed by a keyed digest of it. So probing stays on record
// and can be correlated, no personal data enters the permanent log, and every entry is
// printable ASCII that the canonical encoding carries byte for byte.
//
//   AuditValues values(&digest_key, [&](std::string_view a) { return IsDeclared(a); });
//   AccessEvent safe = values.Canonical(event);  // safe.subject_id: "sub_…", "" or "malformed:…"
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "garde/crypto/keyed_hash.h"
#include "garde/domain/access_journal.h"

namespace garde {

class AuditValues {
 public:
  using ActivityCheck = std::function<bool(std::string_view)>;
  // `digest` keys the digests of refused values (null: the marker alone); `declared` says
  // whether an activity id is in the register (null: any activity-shaped id is kept).
  AuditValues(const KeyedHash* digest, ActivityCheck declared)
      : digest_(digest), declared_(std::move(declared)) {}

  // The event as the log may keep it: subject, activity and field names canonical.
  AccessEvent Canonical(const AccessEvent& event) const;
  // The caller as the log may keep it: key id, role, request id and client canonical.
  Caller Canonical(const Caller& caller) const;
  // Whether both Canonical would change nothing (the common case, checked without copying).
  bool IsCanonical(const Caller& caller, const AccessEvent& event) const;
  // A caller's request id, key id and role: printable ASCII of bounded length, or a marker.
  std::string Token(std::string_view value) const;
  // "" and "sub_" + 26 base32 characters as given; anything else "malformed:<16 hex>".
  std::string Subject(std::string_view value) const;
  // "" and declared activities as given; anything else "undeclared:<16 hex>".
  std::string Activity(std::string_view value) const;

  // What the log keeps of a client address (its canonical text, "203.0.113.7" or "2001:db8::1"):
  // 16 hex of its keyed digest, "" for "". An address may be personal data; the digest lets an
  // officer find what a given address did without the log holding any address.
  std::string Client(std::string_view address) const;

  // True for the values the log keeps as given in a field name or token: 1-128 bytes of
  // printable ASCII without '"', '\\' and '@'.
  static bool IsPlainToken(std::string_view value);

 private:
  // Whether a value of each kind is kept as given.
  static bool TokenKept(std::string_view value);
  static bool SubjectKept(std::string_view value);
  bool ActivityKept(std::string_view value) const;
  std::string Marked(std::string_view marker, std::string_view value) const;
  const KeyedHash* digest_;
  ActivityCheck declared_;
};

}  // namespace garde

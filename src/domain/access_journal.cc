#include "garde/domain/access_journal.h"

#include "garde/base/log.h"

namespace garde {

Status LogJournal::Record(WriteTx* /*tx*/, const Caller& caller, const AccessEvent& e) {
  JsonWriter fields;
  fields.BeginArray();
  for (const auto& f : e.fields) fields.String(f);
  fields.EndArray();
  LogLine(spdlog::level::info, "access")
      .Str("action", e.action)
      .Str("actor", caller.key_id)
      .Str("role", caller.role)
      .Str("request_id", caller.request_id)
      .Str("subject", e.subject_id)
      .Str("activity", e.activity)
      .Str("outcome", e.outcome)
      .Raw("fields", fields.str())
      .Int("count", e.count);
  return Status::Ok();
}

}  // namespace garde

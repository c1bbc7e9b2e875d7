// The single hook every access passes through: reads of personal data, writes, refusals.
// Writes record their event inside the same transaction as the change (tx != nullptr).
//
//   journal.Record(&tx, caller, {.action = "subject.create", .subject_id = id, ...});
#pragma once

#include <string>
#include <vector>

#include "garde/base/status.h"
#include "garde/domain/access_gate.h"
#include "garde/store/store.h"

namespace garde {

struct AccessEvent {
  std::string action;               // "subject.create", "subject.read", "apikey.create", ...
  std::string subject_id;           // opaque id, never personal data
  std::string activity;             // X-Purpose, when the call named one
  std::string outcome;              // "ok", "denied", "not_found", "invalid", "conflict", "damaged"
  std::vector<std::string> fields;  // field names touched, never values
  int64_t count = 0;                // rows, for batch and search calls
};

class AccessJournal {
 public:
  virtual ~AccessJournal() = default;
  // Records one event; `tx` is the transaction of the change it belongs to, or null for reads
  // and refusals.
  virtual Status Record(WriteTx* tx, const Caller& caller, const AccessEvent& event) = 0;
};

}  // namespace garde

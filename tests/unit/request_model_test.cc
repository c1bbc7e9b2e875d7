// The request lifecycle (SPEC §2.5) against a small reference model: random sequences of
// openings, verifications, starts, extensions, rejections, completions and lifts on two
// customers, with the clock moved by days between them. After every step the desk's answer
// (done, 409 or 422) and every request's status, deadline and extension, and each customer's
// state, must be what the model says.
//
// The model knows only the rules: received -> verified -> in_progress -> completed | rejected;
// the deadline is one calendar month after receipt (the day clamped to the month's end); one
// extension of at most two months, counted from the deadline and decided before it; an erased
// customer's requests can no longer be completed and no new one opened; a completed
// restriction is lifted in two calls (the customer is told first, Art. 18(3)).
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "deployment_fixture.h"
#include "garde/domain/subject_requests.h"

namespace garde {
namespace {

// Civil calendar, UTC (days since 1970-01-01 <-> year, month, day).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}
void CivilFromDays(int64_t z, int64_t* y, int64_t* m, int64_t* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yoe + era * 400 + (*m <= 2);
}
int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

int64_t AddMonths(int64_t t, int64_t months) {
  const int64_t days = FloorDiv(t, 86400), seconds = t - days * 86400;
  int64_t y, m, d;
  CivilFromDays(days, &y, &m, &d);
  const int64_t index = y * 12 + (m - 1) + months;
  y = FloorDiv(index, 12);
  m = index - y * 12 + 1;
  const int64_t month_days =
      DaysFromCivil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) - DaysFromCivil(y, m, 1);
  return DaysFromCivil(y, m, std::min(d, month_days)) * 86400 + seconds;
}

enum class Outcome { kDone, kConflict, kInvalid };
const char* Name(Outcome o) {
  return o == Outcome::kDone ? "done" : o == Outcome::kConflict ? "409" : "422";
}
Outcome OutcomeOf(const Status& s) {
  if (s.ok()) return Outcome::kDone;
  if (s.code() == Code::kConflict) return Outcome::kConflict;
  if (s.code() == Code::kUnprocessable) return Outcome::kInvalid;
  ADD_FAILURE() << "unexpected answer: " << s.message();
  return Outcome::kInvalid;
}

struct ModelRequest {
  std::string id, type, subject;
  std::string status = "received";
  int64_t due = 0;
  bool extended = false;
  bool lift_told = false;  // restriction: the customer was told it is about to be lifted
};

// An extension's length: what the desk is sent, and the deadline it gives (0: not valid).
struct Extension {
  const char* by;
  int64_t (*apply)(int64_t due);
  bool too_long;
};
const Extension kExtensions[] = {
    {"", [](int64_t due) { return AddMonths(due, 2); }, false},  // the longest allowed
    {"P1M", [](int64_t due) { return AddMonths(due, 1); }, false},
    {"P2M", [](int64_t due) { return AddMonths(due, 2); }, false},
    {"P45D", [](int64_t due) { return due + 45 * 86400; }, false},
    {"P3M", [](int64_t) { return int64_t{0}; }, true},
    {"P70D", [](int64_t) { return int64_t{0}; }, true},
    {"soon", [](int64_t) { return int64_t{0}; }, false},
};

class RequestModel : public DeploymentFixture {
 protected:
  Caller Operator() {
    return Caller{"key_model_operator", "operator", {"customer_management"}, "req_model", ""};
  }
  Caller Officer() { return Caller{"key_model_officer", "officer", {}, "req_model", ""}; }

  std::string NewCustomer(int n) {
    NewSubject s;
    s.kind = "person";
    s.source = "test";
    s.fields["email"] = FieldValue::String("request-model" + std::to_string(n) + "@example.org");
    s.fields["first_name"] = FieldValue::String("Camille");
    auto v = d_->vault().Create(Operator(), s);
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() ? v->id : "";
  }

  std::string SubjectStatus(const std::string& id) {
    std::string status;
    EXPECT_TRUE(d_->store()
                    .Read([&](ReadTx& tx) -> Status {
                      GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));
                      if (row) status = row->status;
                      return Status::Ok();
                    })
                    .ok());
    return status;
  }

  // One random sequence of `steps` steps; fails at the first difference, with the steps so far.
  void RunSequence(uint32_t seed, int steps) {
    std::mt19937 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
    std::map<std::string, std::string> customers;  // id -> active | restricted | erased
    for (int i = 0; i < 2; ++i) customers[NewCustomer(++customers_made_)] = "active";
    std::vector<std::string> ids;
    for (const auto& [id, _] : customers) ids.push_back(id);
    std::vector<ModelRequest> requests;
    std::ostringstream trace;
    for (int step = 0; step < steps && !HasFailure(); ++step) {
      const int64_t now = d_->clock().Now();
      const int op = pick(100);
      Outcome expected = Outcome::kDone, got = Outcome::kDone;
      const char* verb = "clock";
      if (op < 20 || requests.empty()) {
        static const char* const kTypes[] = {"access",  "portability", "rectification",
                                             "erasure", "restriction", "objection"};
        ModelRequest m;
        m.type = kTypes[pick(6)];
        m.subject = ids[static_cast<size_t>(pick(2))];
        // Received up to 40 days ago, half a day off the hour the clock shows, so that no
        // deadline falls within the seconds a step takes.
        const int64_t received = now - pick(41) * 86400 - 43200;
        NewRequest in;
        in.type = m.type;
        in.subject = m.subject;
        in.received_at = received;
        if (m.type == "rectification") {
          in.changes = SubjectChanges{{{"first_name", FieldValue::String("Dominique")}}, {}};
        }
        expected = customers[m.subject] == "erased" ? Outcome::kConflict : Outcome::kDone;
        auto opened = d_->requests().Open(Operator(), in);
        got = OutcomeOf(opened.status());
        verb = "open";
        trace << "open " << m.type << " for customer " << (m.subject == ids[0] ? 0 : 1)
              << " received " << (now - received) / 86400 << " days ago";
        if (opened.ok()) {
          m.id = opened->row.id;
          m.due = AddMonths(received, 1);
          requests.push_back(m);
        }
      } else if (op < 90) {
        ModelRequest& m = requests[static_cast<size_t>(pick(static_cast<int>(requests.size())))];
        std::string& customer = customers[m.subject];
        const bool open =
            m.status == "received" || m.status == "verified" || m.status == "in_progress";
        trace << "request " << m.type << " (" << m.status << "): ";
        if (op < 35) {
          verb = "verify";
          trace << "verify";
          expected = m.status == "received" ? Outcome::kDone : Outcome::kConflict;
          got = OutcomeOf(d_->requests().Verify(Officer(), m.id, "identity seen").status());
          if (expected == Outcome::kDone) m.status = "verified";
        } else if (op < 47) {
          verb = "start";
          trace << "start";
          expected = m.status == "verified" ? Outcome::kDone : Outcome::kConflict;
          got = OutcomeOf(d_->requests().Start(Officer(), m.id).status());
          if (expected == Outcome::kDone) m.status = "in_progress";
        } else if (op < 59) {
          const Extension& e = kExtensions[pick(static_cast<int>(std::size(kExtensions)))];
          verb = "extend";
          trace << "extend by '" << e.by << "' with " << (m.due - now) / 86400 << " days left"
                << (m.extended ? ", extended before" : "");
          const int64_t due = e.apply(m.due);
          expected = !open || m.extended || now >= m.due ? Outcome::kConflict
                     : due == 0                          ? Outcome::kInvalid
                                                         : Outcome::kDone;
          got = OutcomeOf(
              d_->requests().Extend(Officer(), m.id, e.by, "more time to gather it").status());
          if (expected == Outcome::kDone) {
            m.due = due;
            m.extended = true;
          }
        } else if (op < 67) {
          verb = "reject";
          trace << "reject";
          expected = open ? Outcome::kDone : Outcome::kConflict;
          got = OutcomeOf(d_->requests().Reject(Officer(), m.id, "not the customer").status());
          if (expected == Outcome::kDone) m.status = "rejected";
        } else if (op < 82) {
          verb = "complete";
          trace << "complete (customer " << customer << ")";
          expected = m.status != "verified" && m.status != "in_progress" ? Outcome::kConflict
                     : customer == "erased"                              ? Outcome::kConflict
                                                                         : Outcome::kDone;
          got = OutcomeOf(d_->requests().Complete(Officer(), m.id, "").status());
          if (expected == Outcome::kDone) {
            m.status = "completed";
            if (m.type == "erasure") customer = "erased";
            if (m.type == "restriction") customer = "restricted";
          }
        } else {
          verb = "lift";
          trace << "lift (customer " << customer << (m.lift_told ? ", told" : "") << ")";
          expected = m.type != "restriction" || m.status != "completed" ? Outcome::kConflict
                     : customer != "restricted"                         ? Outcome::kConflict
                                                                        : Outcome::kDone;
          got = OutcomeOf(d_->requests().Lift(Officer(), m.id).status());
          if (expected == Outcome::kDone) {
            if (m.lift_told) customer = "active";
            m.lift_told = !m.lift_told;
          }
        }
      } else {
        const int days = 1 + pick(20);
        trace << "clock +" << days << " days";
        d_->AdvanceClockForTests(days * 86400);
        advanced_ += days * 86400;
      }
      trace << " -> " << Name(got) << "\n";
      ++seen_[std::string(verb) + " " + Name(got)];
      ASSERT_EQ(std::string(Name(got)), Name(expected)) << "seed " << seed << ", steps:\n"
                                                        << trace.str();
      for (const auto& m : requests) {
        auto view = d_->requests().Get(Officer(), m.id);
        ASSERT_TRUE(view.ok()) << view.status().message();
        EXPECT_EQ(view->row.status, m.status) << "seed " << seed << ", steps:\n" << trace.str();
        EXPECT_EQ(view->row.due_at, m.due) << "seed " << seed << ", steps:\n" << trace.str();
        EXPECT_EQ(view->row.extended, m.extended) << "seed " << seed << ":\n" << trace.str();
      }
      for (const auto& [id, state] : customers) {
        EXPECT_EQ(SubjectStatus(id), state) << "seed " << seed << ", steps:\n" << trace.str();
      }
    }
    d_->AdvanceClockForTests(-advanced_);  // each sequence starts at the real time
    advanced_ = 0;
  }

  std::map<std::string, int> seen_;  // "extend 422" -> how many steps answered so
  int customers_made_ = 0;
  int64_t advanced_ = 0;
};

TEST_F(RequestModel, TheDeskAnswersAsTheModelOverRandomSequences) {
  const char* env = std::getenv("GARDE_REQUEST_MODEL_SEQUENCES");
  const int sequences = env != nullptr ? std::atoi(env) : 300;
  for (int i = 0; i < sequences && !HasFailure(); ++i) {
    RunSequence(static_cast<uint32_t>(1000 + i), 30);
  }
  // Every rule was put to the test: each answer below came up.
  std::ostringstream counts;
  for (const auto& [what, n] : seen_) counts << what << ": " << n << "\n";
  std::cout << counts.str();
  for (const char* what :
       {"open done", "open 409", "verify done", "verify 409", "start done", "start 409",
        "extend done", "extend 409", "extend 422", "reject done", "reject 409", "complete done",
        "complete 409", "lift done", "lift 409"}) {
    EXPECT_GT(seen_[what], 0) << what << " never came up:\n" << counts.str();
  }
}

// The model's calendar, checked on the cases SPEC names.
TEST(RequestModelCalendar, OneMonthClampsToTheMonthsEnd) {
  const int64_t jan31 = DaysFromCivil(2026, 1, 31) * 86400 + 9 * 3600;
  EXPECT_EQ(AddMonths(jan31, 1), DaysFromCivil(2026, 2, 28) * 86400 + 9 * 3600);
  EXPECT_EQ(AddMonths(DaysFromCivil(2028, 1, 31) * 86400, 1), DaysFromCivil(2028, 2, 29) * 86400);
  EXPECT_EQ(AddMonths(DaysFromCivil(2026, 11, 30) * 86400, 2), DaysFromCivil(2027, 1, 30) * 86400);
  EXPECT_EQ(AddMonths(DaysFromCivil(2026, 12, 31) * 86400, 2), DaysFromCivil(2027, 2, 28) * 86400);
}

// The listings' filter of open statuses, the lifecycle's open states and the check on a stored
// status (retention's warnings, the console, `overdue`) name the same states.
TEST(RequestStates, TheOpenStatusesAreTheOpenStatesAndADamagedStatusCountsAsOpen) {
  std::vector<std::string> open;
  for (RequestState s :
       {RequestState::kReceived, RequestState::kVerified, RequestState::kInProgress,
        RequestState::kCompleted, RequestState::kRejected}) {
    EXPECT_EQ(ParseRequestState(NameOf(s)), s);
    EXPECT_EQ(IsOpenStatus(NameOf(s)), IsOpen(s)) << NameOf(s);
    if (IsOpen(s)) open.push_back(NameOf(s));
  }
  EXPECT_EQ(open, std::vector<std::string>(std::begin(kOpenStatuses), std::end(kOpenStatuses)));
  EXPECT_FALSE(IsOpenStatus("completed"));
  EXPECT_FALSE(IsOpenStatus("rejected"));
  EXPECT_TRUE(IsOpenStatus("Completed"));  // no state of the lifecycle: not taken as done
  EXPECT_TRUE(IsOpenStatus(""));
}

}  // namespace
}  // namespace garde

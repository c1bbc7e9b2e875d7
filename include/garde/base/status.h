// Status and Result<T>: expected failures travel as values, not exceptions.
//
//   GARDE_ASSIGN_OR_RETURN(Subject s, vault.Read(caller, id, activity));
//   Use(s);
//
// Each Code maps to one HTTP status and one problem+json type (see http/problem.h).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace garde {

enum class Code {
  kOk,
  kBadRequest,            // malformed syntax (400)
  kUnauthenticated,       // missing or unknown credentials (401)
  kPermissionDenied,      // role or activity does not allow the call (403)
  kNotFound,              // unknown id or path (404)
  kMoved,                 // the resource lives at another id now (308)
  kMethodNotAllowed,      // known path, other method (405)
  kConflict,              // unique value already used, state conflict (409)
  kDamaged,               // stored record fails authentication (409)
  kPayloadTooLarge,       // body or batch over its limit (413)
  kHeaderTooLarge,        // request line and headers over their limit (431)
  kRequestTimeout,        // the request did not arrive whole in time (408)
  kNotImplemented,        // a method the service does not know (501)
  kVersionNotSupported,   // an HTTP major version other than 1 (505)
  kUnsupportedMediaType,  // wrong Content-Type (415)
  kUnprocessable,         // well-formed but invalid content (422)
  kUnavailable,           // database or keys not usable right now (503)
  kInternal,              // a bug or an environment failure (500)
};

// One field-level problem, named by its JSON path ("fields.email").
struct FieldError {
  std::string field;
  std::string message;
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::vector<FieldError>& errors() const { return errors_; }
  // Extra top-level members for the problem document, e.g. {"existing_id", "sub_..."}.
  const std::vector<std::pair<std::string, std::string>>& extras() const { return extras_; }

  Status& AddError(std::string field, std::string message) {
    errors_.push_back({std::move(field), std::move(message)});
    return *this;
  }
  Status& AddExtra(std::string key, std::string value) {
    extras_.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  // Marks a status as deliberately ignored.
  void IgnoreError() const {}

 private:
  Code code_ = Code::kOk;
  std::string message_;
  std::vector<FieldError> errors_;
  std::vector<std::pair<std::string, std::string>> extras_;
};

inline Status BadRequest(std::string m) { return {Code::kBadRequest, std::move(m)}; }
inline Status Unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status Conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
inline Status Damaged(std::string m) { return {Code::kDamaged, std::move(m)}; }
inline Status Unprocessable(std::string m) { return {Code::kUnprocessable, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

#define GARDE_CONCAT_INNER(a, b) a##b
#define GARDE_CONCAT(a, b) GARDE_CONCAT_INNER(a, b)
// Returns the status of `expr` from the enclosing function unless it is Ok. The variable is
// named after the line so that nested uses (inside a lambda) do not shadow each other.
#define GARDE_RETURN_IF_ERROR(expr) \
  GARDE_RETURN_IF_ERROR_IMPL(GARDE_CONCAT(garde_status_, __LINE__), expr)
#define GARDE_RETURN_IF_ERROR_IMPL(var, expr) \
  do {                                        \
    ::garde::Status var = (expr);             \
    if (!var.ok()) return var;                \
  } while (0)

// Declares `lhs` from the value of the Result `expr`, or returns its status from the enclosing
// function:   GARDE_ASSIGN_OR_RETURN(auto row, tx.GetSubject(id));   // row: the value itself
// Several statements: a declaration, not usable as the body of an unbraced `if`.
#define GARDE_ASSIGN_OR_RETURN(lhs, ...) \
  GARDE_ASSIGN_OR_RETURN_IMPL(GARDE_CONCAT(garde_result_, __LINE__), lhs, __VA_ARGS__)
#define GARDE_ASSIGN_OR_RETURN_IMPL(result, lhs, ...) \
  auto result = (__VA_ARGS__);                        \
  if (!result.ok()) return result.status();           \
  lhs = std::move(result).value()

}  // namespace garde

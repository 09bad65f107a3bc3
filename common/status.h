// Status and StatusOr<T>: the result type at every component boundary.
//
// A Status is either OK or carries a code and a message with context
// ("store get users/e: connection refused"). Both types are [[nodiscard]]:
// ignoring one is a compile warning; a deliberate ignore is spelled
// `status.IgnoreError()` so it can be grepped. Cheap to copy when OK (no
// allocation); thread-compatible.
#pragma once

#include <cassert>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace seg {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string_view message);

  static Status OK() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  std::string_view message() const { return rep_ ? std::string_view(rep_->message) : ""; }
  // "UNAVAILABLE: connection refused" or "OK".
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context`: "context: msg".
  Status WithContext(std::string_view context) const;

  // Marks a status as deliberately ignored.
  void IgnoreError() const {}

  bool operator==(const Status& other) const {
    return code() == other.code() && message() == other.message();
  }

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const Rep> rep_;
};

std::ostream& operator<<(std::ostream& os, const Status& status);

Status InvalidArgumentError(std::string_view message);
Status NotFoundError(std::string_view message);
Status UnavailableError(std::string_view message);
Status InternalError(std::string_view message);
Status DeadlineExceededError(std::string_view message);
Status FailedPreconditionError(std::string_view message);
Status ResourceExhaustedError(std::string_view message);
Status AlreadyExistsError(std::string_view message);
Status AbortedError(std::string_view message);
Status OutOfRangeError(std::string_view message);
Status UnimplementedError(std::string_view message);
Status DataLossError(std::string_view message);
Status CancelledError(std::string_view message);
Status PermissionDeniedError(std::string_view message);
Status UnauthenticatedError(std::string_view message);

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : status_(status) {  // NOLINT: implicit by design
    assert(!status.ok() && "StatusOr built from OK status without a value");
    if (status_.ok()) status_ = InternalError("StatusOr built from OK status");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  void IgnoreError() const {}

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace seg

#define SEG_STATUS_CONCAT_INNER(a, b) a##b
#define SEG_STATUS_CONCAT(a, b) SEG_STATUS_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` yields a non-OK Status.
#define SEG_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::seg::Status _seg_status = (expr);        \
    if (!_seg_status.ok()) return _seg_status; \
  } while (0)

// `SEG_ASSIGN_OR_RETURN(auto x, Foo());` assigns the value or returns the error.
#define SEG_ASSIGN_OR_RETURN(lhs, expr) \
  SEG_ASSIGN_OR_RETURN_IMPL(SEG_STATUS_CONCAT(_seg_statusor_, __LINE__), lhs, expr)
#define SEG_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#include "common/status.h"

namespace seg {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kCancelled:
      return "CANCELLED";
    case StatusCode::kUnknown:
      return "UNKNOWN";
    case StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case StatusCode::kNotFound:
      return "NOT_FOUND";
    case StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case StatusCode::kAborted:
      return "ABORTED";
    case StatusCode::kOutOfRange:
      return "OUT_OF_RANGE";
    case StatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case StatusCode::kInternal:
      return "INTERNAL";
    case StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case StatusCode::kDataLoss:
      return "DATA_LOSS";
    case StatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

Status::Status(StatusCode code, std::string_view message) {
  if (code != StatusCode::kOk) rep_ = std::make_shared<Rep>(Rep{code, std::string(message)});
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code()));
  out += ": ";
  out += message();
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message();
  return Status(code(), msg);
}

std::ostream& operator<<(std::ostream& os, const Status& status) { return os << status.ToString(); }

#define SEG_DEFINE_ERROR(Name, Code) \
  Status Name(std::string_view message) { return Status(StatusCode::Code, message); }
SEG_DEFINE_ERROR(InvalidArgumentError, kInvalidArgument)
SEG_DEFINE_ERROR(NotFoundError, kNotFound)
SEG_DEFINE_ERROR(UnavailableError, kUnavailable)
SEG_DEFINE_ERROR(InternalError, kInternal)
SEG_DEFINE_ERROR(DeadlineExceededError, kDeadlineExceeded)
SEG_DEFINE_ERROR(FailedPreconditionError, kFailedPrecondition)
SEG_DEFINE_ERROR(ResourceExhaustedError, kResourceExhausted)
SEG_DEFINE_ERROR(AlreadyExistsError, kAlreadyExists)
SEG_DEFINE_ERROR(AbortedError, kAborted)
SEG_DEFINE_ERROR(OutOfRangeError, kOutOfRange)
SEG_DEFINE_ERROR(UnimplementedError, kUnimplemented)
SEG_DEFINE_ERROR(DataLossError, kDataLoss)
SEG_DEFINE_ERROR(CancelledError, kCancelled)
SEG_DEFINE_ERROR(PermissionDeniedError, kPermissionDenied)
SEG_DEFINE_ERROR(UnauthenticatedError, kUnauthenticated)
#undef SEG_DEFINE_ERROR

}  // namespace seg

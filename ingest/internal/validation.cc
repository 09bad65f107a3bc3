// Decoding and validation of raw events, and their encoding as store cells.
#include <google/protobuf/util/json_util.h>

#include <string>

#include "common/event_codec.h"
#include "ingest/ingest.h"
#include "proto/events.pb.h"

namespace seg::ingest {
namespace {

bool LooksLikeJson(std::string_view bytes) {
  // A protobuf Event never starts with '{' (field 15, wire type 3: invalid),
  // so a leading '{' is unambiguous. Leading blanks are only tried after
  // protobuf failed, because '\n' is the tag byte of field 1 (user_id).
  size_t i = 0;
  while (i < bytes.size() &&
         (bytes[i] == ' ' || bytes[i] == '\t' || bytes[i] == '\r' || bytes[i] == '\n')) {
    ++i;
  }
  return i < bytes.size() && bytes[i] == '{';
}

std::string Printable(std::string_view s, size_t max = 64) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace

Status ValidationOptions::LoadFrom(Config& config, std::string_view prefix) {
  std::string p(prefix);
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_event_bytes", &max_event_bytes));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_user_id_bytes", &max_user_id_bytes));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_future_ms", &max_future_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".retention_ms", &retention_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".json_ignore_unknown_fields", &json_ignore_unknown_fields));
  if (max_event_bytes <= 0 || max_user_id_bytes <= 0 || max_future_ms < 0 || retention_ms <= 0) {
    return InvalidArgumentError(config.source() + ": " + p + ": limits must be positive");
  }
  return Status::OK();
}

Status ParseJsonEvent(std::string_view json, bool ignore_unknown_fields, Event* event) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = ignore_unknown_fields;
  event->Clear();
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), event, options);
  if (!status.ok()) return InvalidArgumentError("json: " + std::string(status.message()));
  return Status::OK();
}

std::optional<Rejection> Validate(const Event& event, const ValidationOptions& options,
                                  int64_t now_ms) {
  const std::string& user = event.user_id();
  if (user.empty()) return Rejection{reason::kMissingUserId, "empty user_id"};
  if (static_cast<int64_t>(user.size()) > options.max_user_id_bytes) {
    return Rejection{reason::kUserIdTooLong, "user_id of " + std::to_string(user.size()) +
                                                 " bytes > " +
                                                 std::to_string(options.max_user_id_bytes)};
  }
  for (char ch : user) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) {
      return Rejection{reason::kUserIdControlChars, "user_id '" + Printable(user) + "'"};
    }
  }
  int64_t t = event.event_time_ms();
  if (t > now_ms + options.max_future_ms) {
    return Rejection{reason::kTimeInFuture, "event_time_ms " + std::to_string(t) + " is " +
                                                std::to_string(t - now_ms) + " ms ahead of now " +
                                                std::to_string(now_ms)};
  }
  if (t < now_ms - options.retention_ms) {
    return Rejection{reason::kTimeTooOld, "event_time_ms " + std::to_string(t) +
                                              " is older than the retention of " +
                                              std::to_string(options.retention_ms) + " ms"};
  }
  if (event.type() == EVENT_TYPE_UNSPECIFIED || !EventType_IsValid(event.type())) {
    return Rejection{reason::kUnknownType, "type " + std::to_string(event.type())};
  }
  if (!event.ip().empty()) {
    uint32_t v4;
    std::string v6;
    if (!ParseIp(event.ip(), &v4, &v6)) {
      return Rejection{reason::kBadIp, "ip '" + Printable(event.ip()) + "'"};
    }
  }
  return std::nullopt;
}

std::optional<Rejection> DecodeAndValidate(std::string_view bytes, const ValidationOptions& options,
                                           int64_t now_ms, Event* event) {
  if (static_cast<int64_t>(bytes.size()) > options.max_event_bytes) {
    return Rejection{reason::kOversized, std::to_string(bytes.size()) + " bytes > " +
                                             std::to_string(options.max_event_bytes)};
  }
  bool decoded = false;
  std::string detail;
  if (!bytes.empty() && bytes[0] == '{') {
    Status s = ParseJsonEvent(bytes, options.json_ignore_unknown_fields, event);
    decoded = s.ok();
    if (!decoded) detail = std::string(s.message());
  } else {
    event->Clear();
    decoded = event->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    if (!decoded) {
      detail = "not a protobuf seg.Event";
      if (LooksLikeJson(bytes)) {
        Status s = ParseJsonEvent(bytes, options.json_ignore_unknown_fields, event);
        decoded = s.ok();
        if (!decoded) detail = std::string(s.message());
      }
    }
  }
  if (!decoded) return Rejection{reason::kUndecodable, detail};
  return Validate(*event, options, now_ms);
}

Status EncodeEventCell(const Event& event, std::string_view family, store::Cell* cell) {
  cell->family.assign(family);
  cell->qualifier.clear();
  EncodeEventQualifier(event.event_time_ms(), EventDigest(event), event.type(), &cell->qualifier);
  cell->timestamp = event.event_time_ms();
  return EncodeEventValue(event, &cell->value);
}

}  // namespace seg::ingest

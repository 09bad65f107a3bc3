// Event codec: how one event becomes one cell in family `e` of the user's
// row, and back.
//
// Qualifier (17 bytes): event time ms as 8-byte big-endian (so cells sort by
// time and a time range is a qualifier range), then an 8-byte digest of the
// event id (or, when the event has no id, of its content), then the 1-byte
// type code. A re-delivered event produces the same qualifier and overwrites
// its own cell: ingest is idempotent. Two different events of one user in
// the same millisecond differ in the digest.
//
//   time 1700000000123 ms, id "ev-42", PAGE_VIEW ->
//   00 00 01 8b cf e8 8c 7b | <MurmurHash64A("ev-42")> | 01
//
// Value: a seg.StoredEvent protobuf (ip as an integer, type as a code). The
// decoder reads the protobuf wire format directly into an EventView whose
// strings point into the value bytes: no allocation per event beyond the
// attributes vector. Thread-safe (stateless).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/event.h"
#include "common/status.h"

namespace seg {

class Event;  // proto/events.proto

inline constexpr size_t kEventQualifierSize = 17;

// 8-byte digest of the event id, or of the content when the id is empty.
uint64_t EventDigest(const Event& event);

// Appends the 17-byte qualifier to `out`.
void EncodeEventQualifier(int64_t time_ms, uint64_t digest, int32_t type, std::string* out);

// Parses a qualifier; InvalidArgument when it is not 17 bytes.
Status DecodeEventQualifier(std::string_view qualifier, int64_t* time_ms, uint64_t* digest,
                            int32_t* type);

// Serializes the StoredEvent value for `event` into `out` (replacing it).
// `ip` text is parsed to an integer (IPv4) or 16 bytes (IPv6); an
// unparseable ip is InvalidArgument.
Status EncodeEventValue(const Event& event, std::string* out);

// Decodes a cell into `view` (strings point into `value`, which must outlive
// `view`). DataLoss when the value is not a valid StoredEvent.
Status DecodeEventCell(std::string_view qualifier, std::string_view value, EventView* view);

// Parses dotted IPv4 / IPv6 text. Returns false when neither.
bool ParseIp(std::string_view text, uint32_t* ipv4, std::string* ipv6);

// Event type names as scripts, script fixtures and segtool spell them: the
// value names of seg.EventType in proto/events.proto, lower-cased, without
// the enum's own prefix (PAGE_VIEW -> "page_view", EVENT_TYPE_UNSPECIFIED ->
// "unspecified"). Built once from the generated descriptor, so the proto is
// the only list; the Lua runtime gets it from the script host (HOST.types).

// The name of type code `type`; empty when the proto has no such value.
std::string_view EventTypeName(int32_t type);

// The code of a type an event can have (not "unspecified"); -1 when `name`
// is none of them.
int32_t EventTypeFromName(std::string_view name);

// Every type an event can have, as (name, code), by code.
const std::vector<std::pair<std::string, int32_t>>& EventTypes();

}  // namespace seg

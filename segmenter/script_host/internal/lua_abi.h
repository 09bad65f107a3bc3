// The memory layout shared between the host and lua/script_runtime.lua,
// which reads it through the LuaJIT FFI (`ffi.cdef` there must match these
// structs field by field; LuaState checks sizes and offsets at start-up).
//
// Per user the host fills one FfiUser: the events in time order as a flat
// FfiEvent array (url and search query lower-cased: the caller's bytes when
// already lower-case, else a copy in an arena; host and path located inside
// the url), the raw strings for materialising events,
// the attributes, and per-type index lists. The helpers scan these arrays
// without creating Lua strings; string tests call the matchers below.
// Pointers are never null (empty strings point at ""). Single-threaded.
#pragma once

#include <cstddef>
#include <cstdint>

namespace seg::segmenter::internal {

inline constexpr int kMaxTypeCode = 7;  // form_submit; see proto/events.proto

struct FfiEvent {
  double time_ms;
  int32_t type;
  uint32_t ipv4;
  const char* url;  // lower-cased
  int32_t url_len;
  int32_t host_off;
  int32_t host_len;
  int32_t path_off;
  int32_t path_len;
  int32_t query_len;
  const char* query;  // lower-cased search query
  int32_t attr_begin;
  int32_t attr_end;
  int32_t index;  // position in the caller's span
  int32_t pad;
};

struct FfiText {
  const char* ptr;
  int64_t len;
};

struct FfiEventRaw {
  FfiText url, referrer, user_agent, query, source, event_id;
};

struct FfiAttr {
  const char* key;
  int32_t key_len;
  int32_t value_len;
  const char* value;
};

struct FfiUser {
  const FfiEvent* ev;
  const FfiEventRaw* raw;  // filled on demand: read it through seg_event_raw()
  const FfiAttr* attrs;
  const int32_t* by_type;                // unused (null); kept for the layout
  int32_t type_begin[kMaxTypeCode + 3];  // unused
  int32_t n;
  int32_t explain;
  double now_ms;
  const char* id;
  int64_t id_len;
  int32_t* out;  // segment numbers returned by the script (0-based)
  int32_t out_cap;
  int32_t matched_n;
  int32_t* matched;  // explain: FfiEvent::index of matched events
  int32_t matched_cap;
  int32_t scratch_cap;  // >= n
  int32_t* scratch;     // seg_scan's collected event numbers
  void* host_data;      // the UserData behind this struct (opaque to Lua)
  // Set to 1 by the runtime when the current script call reads times whose
  // use the host cannot follow (user:days_since, now_ms, first, last,
  // events, `where`): its due time becomes now + opaque_time_recheck_ms.
  // The host clears it before each call.
  int32_t opaque;
  int32_t pad2;
};

inline constexpr int kMaxFilterAttrs = 8;
inline constexpr int kMaxFilterNets = 8;

// A compiled filter (the runtime builds one per filter{} / helper call).
// Needle lists are ids from seg_needles(); -1 = key absent.
struct FfiFilter {
  int32_t typemask;     // bit per type code; 0 = any type
  int32_t single_type;  // the only type, or 0
  double lo_ms;         // time >= lo_ms (since_ms; -inf when absent)
  double hi_ms;         // time <= hi_ms (until_ms; +inf when absent)
  double within_ms;     // > 0: time >= now - within_ms
  double older_ms;      // > 0: time <= now - older_ms
  int32_t host, url, path, query, query_all, text, source;
  int32_t attr_n;
  int32_t attr_key[kMaxFilterAttrs];   // needle list with the key
  int32_t attr_vals[kMaxFilterAttrs];  // accepted values, -1 = present
  int32_t net_n;
  uint32_t net[kMaxFilterNets];
  uint32_t mask[kMaxFilterNets];
  // Explicit tail padding: the scan memo hashes and compares filters as
  // bytes, and a copy of a struct need not preserve its padding bytes.
  int32_t pad;
};

// seg_scan flags.
inline constexpr int32_t kScanReverse = 1;  // newest first
inline constexpr int32_t kScanStop = 2;     // stop at the first match
inline constexpr int32_t kScanCollect = 4;  // write event numbers to user->scratch
inline constexpr int32_t kScanRecord = 8;   // explain: record matches
inline constexpr int32_t kScanUnion = 16;   // also add the matches to the distinct set

// seg_distinct fields.
inline constexpr int32_t kDistinctDay = 1;  // UTC day of the event time
inline constexpr int32_t kDistinctHost = 2;
inline constexpr int32_t kDistinctQuery = 3;
inline constexpr int32_t kDistinctUrl = 4;

// Registers a needle list (lower-cased by the runtime) with the state's scan
// context; identical lists share an id. Returns the id, or -1 when the
// context is full (kMaxNeedleLists).
extern "C" int32_t seg_needles(void* ctx, const char** ptrs, const int32_t* lens, int32_t n);
// Counts (and optionally collects) the events of `user` matching `f`.
extern "C" int32_t seg_scan(void* ctx, FfiUser* user, const FfiFilter* f, int32_t flags);
// Number of distinct non-empty values of `field` (kDistinct*) over the
// events added by kScanUnion scans since the last call; empties the set.
// field 0 only empties it.
extern "C" int32_t seg_distinct(FfiUser* user, int32_t field);
// The original strings of event k (time order), for materialising it; the
// pointer is valid until the next call.
extern "C" const FfiEventRaw* seg_event_raw(FfiUser* user, int32_t k);

// String tests used by the helpers. Haystacks are lower-cased by the host,
// needles by the runtime. Return 1 or 0.
extern "C" {
int32_t seg_contains(const char* hay, int32_t hay_len, const char* needle, int32_t needle_len);
// host equals `domain` or is a subdomain of it ("www.auto.ru" is "auto.ru").
int32_t seg_host_is(const char* host, int32_t host_len, const char* domain, int32_t domain_len);
int32_t seg_has_prefix(const char* s, int32_t s_len, const char* prefix, int32_t prefix_len);
int32_t seg_equals(const char* a, int32_t a_len, const char* b, int32_t b_len);
// ASCII case-insensitive equality (attribute values).
int32_t seg_equals_nocase(const char* a, int32_t a_len, const char* b, int32_t b_len);
}

}  // namespace seg::segmenter::internal

// UserData and the scan: turn one user's EventViews into the flat arrays the
// Lua helpers see (lua_abi.h) and evaluate helper filters over them in C++.
//
// The idea. A script helper call (`user:count{type = "page_view",
// url_contains = {"cat", "kitten"}, within_days = 30}`) becomes one FFI call
// seg_scan(filter): the runtime compiles the filter table into an FfiFilter
// once (filter{...} at load) or per call, registering its needle lists with
// the state's ScanContext. The scan narrows the events by type (per-type
// index lists) and time (binary search: events are in time order), then
// tests the rest. Substring tests dominate, so each event carries a lazily
// computed 256-bit Bloom signature of the byte bigrams of its url and of its
// query; a needle whose bigram signature is not a subset of the event's
// cannot occur in it and is rejected with four AND/compare pairs, without
// touching the string. Only survivors run memchr+memcmp.
//
// Layout. Per user (reused buffers, no allocation once warm): FfiEvent[n]
// (lower-cased url and query in one arena, host/path offsets), FfiEventRaw[n]
// (original strings for materialising events), FfiAttr[], by-type lists,
// Bloom signatures for url and query (+ a "computed" flag per event).
// Per state: needle lists with their signatures, deduplicated by content.
//
// Worked example. url "https://koshki.ru/porody" has bigrams ht tt tp ...
// ko os sh hk ki ... ; needle "cats" needs {ca, at, ts}; "ca" is absent, so
// (probably) one of its three bits is clear in the url's signature and the
// needle is rejected without memchr. A url of 40 bytes sets ~35 of the 256
// bits, so a 4-byte needle passes by chance with probability ~(35/256)^3.
//
// Measured (bench/script_host_bench.cc, Release, CPU time per user, 20
// scripts x 200 events): helpers scanning in Lua with one FFI matcher call
// per (event, needle): ~700 us (1.4k users/s); this C++ scan: ~200 us; plus
// hand-written url splitting: ~115 us (~9k users/s, rows in cache). What is
// left: building UserData ~20%, scans ~30% (Bloom tests and memcmp),
// signatures ~9%, the Lua side (pcall, helper glue) ~20%. Next step: a
// per-user inverted index bigram -> bitmap of events, so that a needle list
// is tested against all events with a few bitmap ANDs.
//
// Single-threaded, like the ScriptHost that owns it.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/event.h"
#include "segmenter/internal/lua_abi.h"

namespace seg::segmenter::internal {

using Bloom = std::array<uint64_t, 4>;

Bloom BigramBloom(const char* s, size_t n);

// Needle lists of one Lua state.
class ScanContext {
 public:
  static constexpr int32_t kMaxNeedleLists = 65536;
  struct NeedleList {
    std::vector<std::string> needles;
    std::vector<Bloom> blooms;
  };
  int32_t Add(const char** ptrs, const int32_t* lens, int32_t n);
  const NeedleList& list(int32_t id) const { return lists_[id]; }

 private:
  std::vector<NeedleList> lists_;
  std::unordered_map<std::string, int32_t> ids_;  // joined content -> id
};

class UserData {
 public:
  // Fills `user` (all pointers into this object and into `events`, which
  // must outlive the evaluation).
  void Build(std::string_view user_id, std::span<const EventView> events, int64_t now_ms,
             bool explain, FfiUser* user);

  // The Bloom signature of event k's url (query when `query`).
  const Bloom& Signature(int32_t k, bool query);

 private:
  std::vector<int32_t> order_;
  std::vector<FfiEvent> events_;
  std::vector<FfiEventRaw> raw_;
  std::vector<FfiAttr> attrs_;
  std::vector<int32_t> by_type_;
  std::vector<int32_t> matched_;
  std::vector<int32_t> scratch_;
  std::vector<Bloom> url_bloom_, query_bloom_;
  std::vector<uint8_t> bloom_done_;  // bit 0: url, bit 1: query
  std::string arena_;
};

// Lower-cases ASCII and Cyrillic (UTF-8 А-Я, Ё) in place.
void LowerInPlace(char* s, size_t n);

// Host and path of a lower-cased url: "https://www.auto.ru:443/a/b?x" ->
// host "www.auto.ru", path "/a/b". Offsets into `url`.
void SplitUrl(std::string_view url, int32_t* host_off, int32_t* host_len, int32_t* path_off,
              int32_t* path_len);

}  // namespace seg::segmenter::internal

// The event index and scan (UserData): turn one user's EventViews into the flat arrays the
// Lua helpers see (lua_abi.h) and evaluate helper filters over them in C++.
//
// The idea. A script helper call (`user:count{type = "page_view",
// url_contains = {"cat", "kitten"}, within_days = 30}`) becomes one FFI call
// seg_scan(filter): the runtime compiles the filter table into an FfiFilter
// once (filter{...} at load) or per call, registering its needle lists with
// the state's ScanContext (identical lists share an id). The scan works on
// bitmaps over the user's events (time order, one bit per event) and keeps
// the result of every distinct filter for the rest of the user: the 20
// scripts of a set share one set of per-user indexes and a filter evaluated
// by two scripts (or twice by one) is evaluated once.
//
// Per-user indexes, built lazily (only when a filter needs them):
//   - type bitmaps (one per type code) and "has a query": at Build();
//   - a bigram index per text field (url, query): for each of 256 bigram
//     buckets, the bitmap of events whose text contains a bigram of that
//     bucket (only events some text filter has as candidates get indexed). A needle's candidates
//     are the AND of its buckets' bitmaps (a 40-byte url fills ~35 buckets, so a 4-byte needle
//     keeps a non-matching event with probability ~(35/256)^3); only candidates run memchr+memcmp;
//   - a host dictionary: event -> small host id, so `host = {...}` tests
//     each distinct host once, not each event.
// Time windows are a binary search (events are in time order) giving a word
// range, so the bitmap loops touch only the words of the window.
//
// Worked example. count{type = "page_view", within_days = 30,
// url_contains = {"/cats", "koshki"}} over 200 events: range [140, 200) ->
// words 2..3; AND page_view bitmap; for "/cats" AND buckets(/c ca at ts) ->
// usually 0 candidates; for "koshki" -> the koshki.ru urls (+ rare false
// positives), verified with memcmp; popcount. Stored under the filter's
// bytes; the replica script's identical filter is a memo hit.
//
// Due times. Each distinct filter also yields the earliest epoch ms at
// which its answer could change as "now" moves (script_host.h, "The due
// time"), computed once with its bitmap and kept in its memo entry, so a
// memo hit contributes too; Scan() folds it into a per-call minimum
// (BeginCall() / call_due_ms()). The scan always evaluates the whole bitmap
// (kScanStop only stops the emitting loop), so for any/first/last the oldest
// match is known exactly: for a within_* window it is the first set bit
// (one word search). For older_than_days the due time is exact too: the
// same filter without its moving edges, evaluated over (now - bound,
// until_ms], gives the events that will enter; the first one's time + bound
// (one extra evaluation, only for such filters, which are rare). With
// `where` these are the candidates before the Lua predicate: a superset, so
// the time is early, never late. Measured cost (script_host_bench,
// BM_Segmentation budget:1, Release, pinned under SCHED_FIFO, same run as
// the previous build): 37.2k -> 36.5k segmentations/s with rows in cache,
// 30.3k -> 29.8k over 256 users (~2%).
//
// Layout. Per user (reused buffers, no allocation once warm): FfiEvent[n]
// (lower-cased url and query: the caller's bytes, or a copy in one arena
// when they have upper case; host/path offsets),
// FfiEventRaw[n] (original strings for materialising events), FfiAttr[],
// the bitmaps above and the memo (filter bytes -> result bitmap).
//
// Measured (bench/script_host_bench.cc, Release, 20 scripts x 200 events,
// rows in cache, same run against the previous per-event Bloom scan, on the
// shared 2-core box under SCHED_FIFO so that CPU time is not preemption):
// 6.1k -> 17.0k segmentations/s with the budget checks, 8.6k -> 16.0k
// without (the two differ by noise only), 15.1k with row decoding. Where
// the time goes now: building the user (lower-casing, url split, bigram
// index: ~35%, mostly first touches of the event strings), the Lua side
// (~30%: 20 pcalls, helper glue, result tables, GC), scans (~15%).
//
// Single-threaded, like the ScriptHost that owns it.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/event.h"
#include "segmenter/script_host/internal/lua_abi.h"

namespace seg::segmenter::internal {

// Number of bigram buckets of the per-user text indexes.
inline constexpr int kBigramBuckets = 256;

// The bucket of a byte pair given as its 16-bit little-endian load
// (x | y << 8 for the pair x, y): the index loop reads each pair with one load.
inline uint32_t BigramBucket16(uint16_t pair) { return (pair * 2654435761u) >> 24; }
// The bucket of the byte pair (x, y).
inline uint32_t BigramBucket(unsigned char x, unsigned char y) {
  return BigramBucket16(static_cast<uint16_t>(x | (static_cast<uint32_t>(y) << 8)));
}

// Needle lists of one Lua state.
class ScanContext {
 public:
  static constexpr int32_t kMaxNeedleLists = 65536;
  struct NeedleList {
    std::vector<std::string> needles;
    std::vector<std::vector<uint8_t>> buckets;  // distinct bigram buckets per needle
    // The same without the buckets of scheme bigrams (UrlSchemeSkip()): what
    // the url index can answer for.
    std::vector<std::vector<uint8_t>> url_buckets;
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
  // must outlive the evaluation). Forgets the previous user's memo.
  void Build(std::string_view user_id, std::span<const EventView> events, int64_t now_ms,
             bool explain, FfiUser* user);

  // seg_scan: see lua_abi.h.
  int32_t Scan(const ScanContext& ctx, FfiUser* u, const FfiFilter& f, int32_t flags);

  // Starts a script call: forgets the previous call's due time.
  void BeginCall() { call_due_ms_ = kNoDue; }
  // Epoch ms: min of the due times of the filters scanned since BeginCall();
  // kNoDue when none has a moving time edge.
  int64_t call_due_ms() const { return call_due_ms_; }
  static constexpr int64_t kNoDue = std::numeric_limits<int64_t>::max();

  // seg_event_raw: see lua_abi.h.
  const FfiEventRaw* Raw(int32_t k);
  // seg_distinct: see lua_abi.h.
  int32_t Distinct(int32_t field);

  // Filters evaluated / answered from the memo since Build() (tests).
  int64_t filters_evaluated() const { return filters_evaluated_; }
  int64_t memo_hits() const { return memo_hits_; }

 private:
  struct TextIndex {
    bool built = false;
    std::vector<uint64_t> bits;     // words_ x kBigramBuckets: bit k%64 of [k/64][bucket]
    std::vector<uint64_t> indexed;  // events indexed so far
  };
  struct MemoEntry {
    uint64_t hash;
    FfiFilter filter;
    size_t bits_off;  // into memo_bits_
    int32_t count;
    int32_t wb, we;  // nonzero words are in [wb, we)
    int64_t due_ms;  // see Due(); kNoDue when no time edge moves
  };
  static constexpr size_t kMaxMemoEntries = 1024;

  // Evaluates `f` into dst (words_ words); returns the word range.
  void Evaluate(const ScanContext& ctx, const FfiFilter& f, uint64_t* dst, int32_t* wb,
                int32_t* we);
  void TimeRange(const FfiFilter& f, double now_ms, int32_t* b, int32_t* e) const;
  // The due time of `f` whose result is bits[wb, we) (see "Due times").
  int64_t Due(const ScanContext& ctx, const FfiFilter& f, const uint64_t* bits, int32_t wb,
              int32_t we);
  const TextIndex& Index(bool query, const uint64_t* dst, int32_t wb, int32_t we);
  void BuildHosts();
  // dst &= events whose field contains any (all when `all`) of the list.
  void Contains(const ScanContext::NeedleList& list, bool query, bool all, uint64_t* dst,
                int32_t wb, int32_t we);
  bool MatchesRest(const ScanContext& ctx, const FfiFilter& f, int32_t k) const;

  size_t n_ = 0, words_ = 0;
  std::vector<int32_t> order_;
  std::vector<FfiEvent> events_;
  std::span<const EventView> input_;  // the caller's events (Build)
  std::vector<FfiEventRaw> raw_;      // filled on demand by Raw()
  std::vector<FfiAttr> attrs_;
  std::vector<int32_t> matched_;
  std::vector<int32_t> scratch_;
  std::string arena_;
  std::vector<uint64_t> type_bits_;  // 32 x words_: events of type code t (0..31)
  std::vector<uint64_t> has_query_;  // words_
  TextIndex url_index_, query_index_;
  bool hosts_built_ = false;
  std::vector<int32_t> host_id_;     // per event, -1 = no host
  std::vector<int32_t> host_event_;  // per host id: an event with that host
  std::vector<int32_t> host_table_;  // open addressing: host id + 1, 0 = empty
  std::vector<uint8_t> host_ok_;
  std::vector<MemoEntry> memo_;
  std::vector<uint64_t> memo_hashes_;  // memo_[i].hash: the lookup scans 8 bytes per entry
  std::vector<uint64_t> memo_bits_;
  std::vector<uint64_t> result_, tmp_, tmp2_, cand_, acc_;  // words_ each
  std::vector<uint64_t> pending_;                           // words_: Due()'s not-yet-old events
  std::vector<uint64_t> union_;                             // kScanUnion matches
  std::vector<std::string_view> values_;                    // Distinct() scratch
  double user_now_ms_ = 0;
  int64_t call_due_ms_ = kNoDue;
  int64_t filters_evaluated_ = 0, memo_hits_ = 0;
};

// Bigrams at the start of a url that the url index leaves out: 7 for
// "https://" (ht tt tp ps s: :/ //), 6 for "http://", else 0. Every url has
// them, so they select nothing and were ~18% of the index's work. A needle's
// url candidates therefore ignore the buckets of these bigrams: a needle
// bigram found only inside the skipped prefix is one of them.
int32_t UrlSchemeSkip(const char* url, int32_t len);

// Lower-cases ASCII and Cyrillic (UTF-8 А-Я, Ё) in place.
void LowerInPlace(char* s, size_t n);

// Host and path of a lower-cased url: "https://www.auto.ru:443/a/b?x" ->
// host "www.auto.ru", path "/a/b". Offsets into `url`.
void SplitUrl(std::string_view url, int32_t* host_off, int32_t* host_len, int32_t* path_off,
              int32_t* path_len);

}  // namespace seg::segmenter::internal

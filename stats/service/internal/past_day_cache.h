// PastDayCache: raw HLL strings of segment-days that are over, kept for a
// short time so a query over many past days fetches only the recent ones.
//
// Why it is safe enough: a day's sketch changes only while events for that
// day still arrive. Only days before yesterday (UTC, by the server's clock)
// are cached, and each entry lives `ttl_ms` after it was fetched, so a late
// event for an old day shows up in answers at most `ttl_ms` later. A cached
// absent key (nullptr) is cached the same way. Entries are the strings Redis
// returned (12 KB dense at most); at `max_keys` new keys are not cached until
// expired ones are dropped. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"
#include "stats/writer/stats_writer.h"

namespace seg::stats::internal {

using SharedSketch = std::shared_ptr<const std::string>;  // nullptr: key absent

class PastDayCache {
 public:
  // ttl_ms <= 0 disables the cache (every call misses, Put keeps nothing).
  PastDayCache(int64_t ttl_ms, size_t max_keys, Clock* clock);

  bool enabled() const { return ttl_ms_ > 0; }
  // True when a sketch of `day` may be cached now (day before yesterday or older).
  bool Cacheable(Day day) const;
  // The same for an HllKey (its last ':' field is the day); false if it has none.
  bool CacheableKey(std::string_view key) const;
  // The cached string (nullptr = cached as absent), or nullopt on a miss.
  std::optional<SharedSketch> Find(const std::string& key);
  void Put(const std::string& key, SharedSketch value);
  size_t size();

 private:
  struct Entry {
    SharedSketch value;
    int64_t expires_ms = 0;
  };
  void DropExpiredLocked(int64_t now_ms);

  const int64_t ttl_ms_;
  const size_t max_keys_;
  Clock* const clock_;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace seg::stats::internal

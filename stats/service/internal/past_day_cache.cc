#include "stats/service/internal/past_day_cache.h"

namespace seg::stats::internal {

PastDayCache::PastDayCache(int64_t ttl_ms, size_t max_keys, Clock* clock)
    : ttl_ms_(ttl_ms), max_keys_(max_keys), clock_(clock ? clock : Clock::Real()) {}

bool PastDayCache::Cacheable(Day day) const {
  if (!enabled()) return false;
  const int64_t today = DayToEpochDays(DayFromUnixMs(clock_->NowMs()));
  return DayToEpochDays(day) < today - 1;
}

bool PastDayCache::CacheableKey(std::string_view key) const {
  if (!enabled()) return false;
  const size_t colon = key.rfind(':');
  if (colon == std::string_view::npos) return false;
  auto day = ParseDay(key.substr(colon + 1));
  return day.ok() && Cacheable(*day);
}

std::optional<SharedSketch> PastDayCache::Find(const std::string& key) {
  if (!enabled()) return std::nullopt;
  const int64_t now = clock_->NowMs();
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  if (it->second.expires_ms <= now) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.value;
}

void PastDayCache::Put(const std::string& key, SharedSketch value) {
  if (!enabled()) return;
  const int64_t now = clock_->NowMs();
  std::lock_guard<std::mutex> lock(mutex_);
  if (entries_.size() >= max_keys_ && !entries_.contains(key)) {
    DropExpiredLocked(now);
    if (entries_.size() >= max_keys_) return;
  }
  entries_[key] = Entry{std::move(value), now + ttl_ms_};
}

size_t PastDayCache::size() {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}

void PastDayCache::DropExpiredLocked(int64_t now_ms) {
  std::erase_if(entries_, [now_ms](const auto& kv) { return kv.second.expires_ms <= now_ms; });
}

}  // namespace seg::stats::internal

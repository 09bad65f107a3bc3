// QueryEngine: the computations behind seg-stats, independent of gRPC
// transport (the service adapter in stats_service.cc maps Status to gRPC
// codes). Internal to stats/.
//
// Every method borrows a RedisRouter from the pool at its first Redis round
// trip and keeps it for the call, reads sketches of past days through the
// PastDayCache, checks `cancelled` between round trips, and returns estimates with
// their 95% intervals. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "proto/stats.pb.h"
#include "stats/hll/hll.h"
#include "stats/service/internal/past_day_cache.h"
#include "stats/service/stats_service.h"
#include "stats/writer/stats_writer.h"

namespace seg::stats::internal {

namespace v1 = ::seg::stats::v1;

// True once the caller's deadline passed or it went away.
using CancelCheck = std::function<bool()>;

// Days of an inclusive range (empty `to` = `from`). INVALID_ARGUMENT for a
// malformed day, from after to, or more than `max_days` days.
StatusOr<std::vector<Day>> ResolveDays(const v1::DayRange& range, int max_days);

// Per-shard pieces of a total: users are disjoint across shards, so values
// add and the (independent) errors add in quadrature, each side of the
// interval separately (joint-MLE intervals are asymmetric).
class ShardSum {
 public:
  void Add(double value, double low, double high);
  double value() const { return value_; }
  // Fills value, std_error, ci95_low/high.
  void Fill(v1::Estimate* out) const;

 private:
  double value_ = 0, low_dev2_ = 0, high_dev2_ = 0;
};

// Pool of routers: a call takes one (or connects a new one) and gives it back
// unless its connection failed.
class RouterPool {
 public:
  RouterPool(RedisRouterOptions options, int max_idle)
      : options_(std::move(options)), max_idle_(max_idle) {}
  StatusOr<std::unique_ptr<RedisRouter>> Acquire();
  void Release(std::unique_ptr<RedisRouter> router, bool healthy);

 private:
  RedisRouterOptions options_;
  int max_idle_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<RedisRouter>> idle_;
};

class QueryEngine {
 public:
  explicit QueryEngine(StatsQueryOptions options);

  StatusOr<v1::Estimate> SegmentSize(const v1::SegmentSizeRequest& request,
                                     const CancelCheck& cancelled);
  StatusOr<v1::Estimate> Union(const v1::SegmentSetRequest& request, const CancelCheck& cancelled);
  StatusOr<v1::Estimate> Intersection(const v1::SegmentSetRequest& request,
                                      const CancelCheck& cancelled);
  StatusOr<v1::SizeSeriesReply> SizeSeries(const v1::SegmentSizeRequest& request,
                                           const CancelCheck& cancelled);
  // `today` is the day whose size is reported.
  StatusOr<v1::ListSegmentsReply> ListSegments(Day today, const CancelCheck& cancelled);

  const StatsQueryOptions& options() const { return options_; }

 private:
  class Call;  // one request's borrowed router and helpers

  // The days of a one-segment request; INVALID_ARGUMENT without a segment.
  StatusOr<std::vector<Day>> SegmentDays(const v1::SegmentSizeRequest& request) const;

  StatsQueryOptions options_;
  RouterPool pool_;
  PastDayCache cache_;  // off when options_.past_day_cache_ms is 0
  std::mutex registry_mutex_;
  std::map<std::string, std::string> registry_;  // segment -> "script@version"
};

}  // namespace seg::stats::internal

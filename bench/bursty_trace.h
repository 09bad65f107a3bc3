// Bursty change-notice traces for benchmarks of the segmenter pipeline.
//
// What real user-changes traffic looks like, in a deterministic generator:
// - Humans with heavy-tailed activity: sessions per user follow a Pareto law
//   (most users one session in the horizon, a few dozens); a session is a few
//   page loads separated by exponential think times; every page load fires a
//   burst of events within about a second (the page, trackers, background
//   tabs refreshing), so one user yields many notices within ~1 s.
// - Ingest writes in micro-batches: the events of one user that fall in one
//   flush interval become one write and one ChangeNotice (event_count = n),
//   acknowledged a few ms after the flush.
// - The notice reaches the segmenter after a transport lag (coprocessor
//   bridge + Kafka): log-normal, median ~30 ms, a tail to seconds.
// - Bots (a fraction of users) at very high, steady rates for a while.
// The trace is sorted by delivery time (a consumer reads in that order).
// Header-only so the pipeline benchmarks can reuse it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace seg::bench {

struct BurstyTraceOptions {
  uint64_t seed = 42;
  int64_t start_ms = 1'700'000'000'000;  // wall clock of the first event
  int64_t duration_ms = 600'000;         // events are generated in [start, start + duration)
  uint32_t users = 100'000;              // humans + bots
  double bot_fraction = 0.05;            // of users
  // Humans.
  double sessions_pareto_alpha = 1.5;   // sessions per user ~ Pareto(1, alpha), capped
  uint32_t max_sessions = 12;           // in the horizon; more is a bot
  double page_loads_per_session = 4;    // geometric mean
  double think_time_mean_ms = 15'000;   // between page loads of one session
  double burst_events_mean = 8;         // events per page load (1 + geometric)
  double burst_spread_mean_ms = 300;    // event offsets in a burst: exponential,
  int64_t burst_spread_max_ms = 1'500;  // ... capped
  // Bots.
  double bot_rate_min_per_s = 3;  // events per second, uniform in [min, max]
  double bot_rate_max_per_s = 30;
  double bot_active_mean_ms = 120'000;  // how long a bot runs (exponential)
  // Ingest and transport.
  int64_t ingest_flush_ms = 20;  // ingest micro-batch: one write per user per flush
  int64_t store_ack_min_ms = 2;  // store write latency, uniform
  int64_t store_ack_max_ms = 10;
  double transport_median_ms = 30;  // ack -> delivered to the segmenter, log-normal
  double transport_sigma = 0.8;
  int64_t transport_max_ms = 5'000;
};

struct TraceNotice {
  uint32_t user;
  uint32_t event_count;
  int64_t acked_at_ms;  // when the store acknowledged the write
  int64_t deliver_ms;   // when the segmenter can consume the notice
};

struct BurstyTrace {
  std::vector<TraceNotice> notices;  // sorted by deliver_ms
  std::vector<uint8_t> is_bot;       // per user
  uint64_t events = 0;
};

// A stable user id string for user number `u`.
inline std::string TraceUserId(uint32_t u) {
  char buf[24];
  int n = std::snprintf(buf, sizeof(buf), "user-%010u", u);
  return std::string(buf, static_cast<size_t>(n));
}

inline BurstyTrace GenerateBurstyTrace(const BurstyTraceOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto exponential = [&](double mean) { return -mean * std::log(1.0 - unit(rng)); };
  auto geometric_at_least_1 = [&](double mean) {
    // 1 + Geometric with the given mean (mean >= 1).
    const double p = 1.0 / mean;
    return 1 + static_cast<uint32_t>(std::floor(std::log(1.0 - unit(rng)) / std::log(1.0 - p)));
  };
  std::lognormal_distribution<double> transport(std::log(o.transport_median_ms), o.transport_sigma);

  BurstyTrace trace;
  trace.is_bot.assign(o.users, 0);
  std::vector<int64_t> event_times;
  const int64_t end_ms = o.start_ms + o.duration_ms;
  for (uint32_t u = 0; u < o.users; ++u) {
    event_times.clear();
    const bool bot = unit(rng) < o.bot_fraction;
    trace.is_bot[u] = bot ? 1 : 0;
    if (bot) {
      const double rate =
          o.bot_rate_min_per_s + unit(rng) * (o.bot_rate_max_per_s - o.bot_rate_min_per_s);
      double t = o.start_ms + unit(rng) * o.duration_ms;
      const double stop = std::min<double>(end_ms, t + exponential(o.bot_active_mean_ms));
      while ((t += exponential(1000.0 / rate)) < stop)
        event_times.push_back(static_cast<int64_t>(t));
    } else {
      const double pareto = std::pow(1.0 - unit(rng), -1.0 / o.sessions_pareto_alpha);
      const uint32_t sessions = std::min<uint32_t>(o.max_sessions, static_cast<uint32_t>(pareto));
      for (uint32_t s = 0; s < sessions; ++s) {
        double t = o.start_ms + unit(rng) * o.duration_ms;
        const uint32_t loads = geometric_at_least_1(o.page_loads_per_session);
        for (uint32_t p = 0; p < loads && t < end_ms; ++p) {
          const uint32_t events = geometric_at_least_1(o.burst_events_mean);
          for (uint32_t e = 0; e < events; ++e) {
            const double offset = std::min<double>(
                o.burst_spread_max_ms, e == 0 ? 0 : exponential(o.burst_spread_mean_ms));
            if (t + offset < end_ms) event_times.push_back(static_cast<int64_t>(t + offset));
          }
          t += exponential(o.think_time_mean_ms);
        }
      }
    }
    trace.events += event_times.size();
    std::sort(event_times.begin(), event_times.end());
    // One write per (user, ingest flush); acknowledged after the flush. A
    // user's notices share a partition, so they arrive in order.
    int64_t prev_deliver = 0;
    for (size_t i = 0; i < event_times.size();) {
      const int64_t flush = (event_times[i] / o.ingest_flush_ms + 1) * o.ingest_flush_ms;
      uint32_t count = 0;
      while (i < event_times.size() && event_times[i] < flush) ++i, ++count;
      TraceNotice n;
      n.user = u;
      n.event_count = count;
      n.acked_at_ms = flush + o.store_ack_min_ms +
                      static_cast<int64_t>(rng() % static_cast<uint64_t>(o.store_ack_max_ms -
                                                                         o.store_ack_min_ms + 1));
      n.deliver_ms = std::max(
          prev_deliver, n.acked_at_ms + std::min<int64_t>(o.transport_max_ms,
                                                          static_cast<int64_t>(transport(rng))));
      prev_deliver = n.deliver_ms;
      trace.notices.push_back(n);
    }
  }
  std::stable_sort(
      trace.notices.begin(), trace.notices.end(),
      [](const TraceNotice& a, const TraceNotice& b) { return a.deliver_ms < b.deliver_ms; });
  return trace;
}

}  // namespace seg::bench

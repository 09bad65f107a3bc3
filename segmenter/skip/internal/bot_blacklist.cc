// BotBlacklistTable: see segmenter/skip/bot_blacklist.h for the design.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "segmenter/skip/internal/bot_blacklist_table.h"

namespace seg::segmenter {
namespace {

Status OutOfRange(std::string_view what, const std::string& value, std::string_view range) {
  return InvalidArgumentError("bot blacklist: " + std::string(what) + " " + value + " outside " +
                              std::string(range));
}

// Seeds of the row-signal hashes (any constants; distinct from the id hash).
constexpr uint64_t kAgentSeed = 0xA6E7;
constexpr uint64_t kUrlSeed = 0x0B1E;
// Distinct URLs are estimated by linear counting on a 4096-bit map (512
// bytes on the stack): within ~2% for the <= 1024 events analysed by default.
constexpr int kUrlBits = 4096;
constexpr int kMaxAgents = 16;
constexpr int kMaxIps = 32;

}  // namespace

Status BotOptions::Validate() const {
  using internal::BotBlacklistTable;
  if (window_ms < BotBlacklist::kSubWindows || window_ms / BotBlacklist::kSubWindows > int64_t{1}
                                                                                           << 40) {
    return OutOfRange("window_ms", std::to_string(window_ms), "[6, 6 * 2^40]");
  }
  if (threshold_events == 0 ||
      threshold_events > BotBlacklist::kSubWindows * BotBlacklistTable::kMaxSubCount) {
    return OutOfRange(
        "threshold_events", std::to_string(threshold_events),
        "[1, " + std::to_string(BotBlacklist::kSubWindows * BotBlacklistTable::kMaxSubCount) + "]");
  }
  if (sustain_ms < 0 || sustain_ms > int64_t{1} << 40) {
    return OutOfRange("sustain_ms", std::to_string(sustain_ms), "[0, 2^40]");
  }
  // Blacklistings end on whole seconds held in 32 bits.
  if (blacklist_ms <= 0 || blacklist_ms > int64_t{1000} << 31) {
    return OutOfRange("blacklist_ms", std::to_string(blacklist_ms), "[1, 2^31 s]");
  }
  if (capacity_bytes < BotBlacklistTable::kBucketBytes) {
    return OutOfRange("capacity_bytes", std::to_string(capacity_bytes),
                      "[128, ...] (one bucket of 4 users)");
  }
  if (row_window_ms <= 0)
    return OutOfRange("row_window_ms", std::to_string(row_window_ms), "[1, ...]");
  if (row_max_events < 2 || row_max_events > 65536) {
    return OutOfRange("row_max_events", std::to_string(row_max_events), "[2, 65536]");
  }
  if (rotation_min_events < 1) {
    return OutOfRange("rotation_min_events", std::to_string(rotation_min_events), "[1, ...]");
  }
  if (max_user_agents < 0 || max_user_agents > kMaxAgents) {
    return OutOfRange("max_user_agents", std::to_string(max_user_agents), "[0, 16]");
  }
  if (max_ips < 0 || max_ips > kMaxIps) {
    return OutOfRange("max_ips", std::to_string(max_ips), "[0, 32]");
  }
  if (crawl_min_events < 3) {
    return OutOfRange("crawl_min_events", std::to_string(crawl_min_events), "[3, ...]");
  }
  if (crawl_min_span_ms < 0) {
    return OutOfRange("crawl_min_span_ms", std::to_string(crawl_min_span_ms), "[0, ...]");
  }
  if (!(crawl_min_distinct_url_ratio >= 0 && crawl_min_distinct_url_ratio <= 1)) {
    return OutOfRange("crawl_min_distinct_url_ratio", std::to_string(crawl_min_distinct_url_ratio),
                      "[0, 1]");
  }
  if (!(crawl_min_regular_share >= 0)) {
    return OutOfRange("crawl_min_regular_share", std::to_string(crawl_min_regular_share),
                      "[0, ...] (above 1 = rule off)");
  }
  if (!(crawl_gap_tolerance >= 0 && crawl_gap_tolerance <= 1)) {
    return OutOfRange("crawl_gap_tolerance", std::to_string(crawl_gap_tolerance), "[0, 1]");
  }
  if (crawl_min_median_gap_ms < 0) {
    return OutOfRange("crawl_min_median_gap_ms", std::to_string(crawl_min_median_gap_ms),
                      "[0, ...]");
  }
  return Status::OK();
}

Status BotOptions::LoadFrom(Config& config, std::string_view prefix,
                            std::string_view legacy_prefix) {
  // Integers go through int64 so a negative value is reported, not wrapped.
  auto load = [&](std::string_view base) -> Status {
    const std::string p = std::string(base) + ".";
    int64_t threshold = threshold_events;
    int64_t capacity_users = static_cast<int64_t>(capacity_bytes / 32);
    SEG_RETURN_IF_ERROR(config.Get(p + "enabled", &enabled));
    SEG_RETURN_IF_ERROR(config.Get(p + "window_ms", &window_ms));
    SEG_RETURN_IF_ERROR(config.Get(p + "threshold_events", &threshold));
    SEG_RETURN_IF_ERROR(config.Get(p + "blacklist_ms", &blacklist_ms));
    SEG_RETURN_IF_ERROR(config.Get(p + "capacity_users", &capacity_users));
    if (threshold < 0 || threshold > std::numeric_limits<uint32_t>::max()) {
      return InvalidArgumentError(config.source() + ": " + p + "threshold_events " +
                                  std::to_string(threshold) + " out of range");
    }
    if (capacity_users < 4 || capacity_users > (int64_t{1} << 40)) {
      return InvalidArgumentError(config.source() + ": " + p + "capacity_users " +
                                  std::to_string(capacity_users) + " outside [4, 2^40]");
    }
    threshold_events = static_cast<uint32_t>(threshold);
    capacity_bytes = static_cast<size_t>(capacity_users) * 32;
    return Status::OK();
  };
  if (!legacy_prefix.empty()) SEG_RETURN_IF_ERROR(load(legacy_prefix));
  SEG_RETURN_IF_ERROR(load(prefix));
  const std::string p = std::string(prefix) + ".";
  SEG_RETURN_IF_ERROR(config.Get(p + "sustain_ms", &sustain_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + "row_signals", &row_signals));
  SEG_RETURN_IF_ERROR(config.Get(p + "row_window_ms", &row_window_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + "row_max_events", &row_max_events));
  SEG_RETURN_IF_ERROR(config.Get(p + "rotation_min_events", &rotation_min_events));
  SEG_RETURN_IF_ERROR(config.Get(p + "max_user_agents", &max_user_agents));
  SEG_RETURN_IF_ERROR(config.Get(p + "max_ips", &max_ips));
  SEG_RETURN_IF_ERROR(config.Get(p + "crawl_min_events", &crawl_min_events));
  SEG_RETURN_IF_ERROR(config.Get(p + "crawl_min_span_ms", &crawl_min_span_ms));
  SEG_RETURN_IF_ERROR(
      config.Get(p + "crawl_min_distinct_url_ratio", &crawl_min_distinct_url_ratio));
  SEG_RETURN_IF_ERROR(config.Get(p + "crawl_min_regular_share", &crawl_min_regular_share));
  SEG_RETURN_IF_ERROR(config.Get(p + "crawl_gap_tolerance", &crawl_gap_tolerance));
  SEG_RETURN_IF_ERROR(config.Get(p + "crawl_min_median_gap_ms", &crawl_min_median_gap_ms));
  Status valid = Validate();
  if (!valid.ok()) {
    return InvalidArgumentError(config.source() + ": " + std::string(prefix) + ": " +
                                std::string(valid.message()));
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<BotBlacklist>> BotBlacklist::Create(const BotOptions& options,
                                                             Clock* clock) {
  using internal::BotBlacklistTable;
  if (clock == nullptr) return InvalidArgumentError("bot blacklist: null clock");
  SEG_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<BotBlacklist>(std::make_unique<BotBlacklistTable>(options, clock));
}

namespace internal {
namespace {

metrics::Labels WithSignal(metrics::Labels labels, const char* signal) {
  labels["signal"] = signal;
  return labels;
}

}  // namespace

BotBlacklistTable::BotBlacklistTable(const BotOptions& options, Clock* clock)
    : options_(options),
      sub_window_ms_(options.window_ms / kSubWindows),
      threshold_(options.threshold_events),
      sustain_ticks_(
          static_cast<uint32_t>((options.sustain_ms + sub_window_ms_ - 1) / sub_window_ms_)),
      blacklist_ms_(options.blacklist_ms),
      seed_(options.hash_seed),
      num_buckets_(options.capacity_bytes / kBucketBytes),
      clock_(clock),
      base_ms_(clock->MonotonicUs() / 1000),
      buckets_(new Bucket[num_buckets_]),
      gaps_(static_cast<size_t>(options.row_max_events)),
      blacklisted_counter_(metrics::GetCounter("seg_segmenter_bot_blacklisted_total",
                                               "Users newly blacklisted as bots",
                                               options.metrics_labels)),
      skipped_counter_(metrics::GetCounter("seg_segmenter_bot_skipped_notices_total",
                                           "Change notices skipped: user blacklisted",
                                           options.metrics_labels)),
      evictions_counter_(metrics::GetCounter("seg_segmenter_bot_evictions_total",
                                             "Bot window entries replaced by another user",
                                             options.metrics_labels)),
      by_agents_counter_(metrics::GetCounter("seg_segmenter_bot_row_blacklisted_total",
                                             "Users blacklisted from their row, by signal",
                                             WithSignal(options.metrics_labels, "user_agents"))),
      by_ips_counter_(metrics::GetCounter("seg_segmenter_bot_row_blacklisted_total",
                                          "Users blacklisted from their row, by signal",
                                          WithSignal(options.metrics_labels, "ips"))),
      by_crawl_counter_(metrics::GetCounter("seg_segmenter_bot_row_blacklisted_total",
                                            "Users blacklisted from their row, by signal",
                                            WithSignal(options.metrics_labels, "crawl"))) {
  std::memset(static_cast<void*>(buckets_.get()), 0, num_buckets_ * kBucketBytes);
}

BotBlacklistTable::~BotBlacklistTable() { FlushMetrics(); }

void BotBlacklistTable::FlushMetrics() {
  blacklisted_counter_.Flush();
  skipped_counter_.Flush();
  evictions_counter_.Flush();
  by_agents_counter_.Flush();
  by_ips_counter_.Flush();
  by_crawl_counter_.Flush();
  ops_since_flush_ = 0;
}

inline void BotBlacklistTable::CountOp() {
  if (++ops_since_flush_ >= kFlushEvery) FlushMetrics();
}

int64_t BotBlacklistTable::NowRelMs() const {
  return std::max<int64_t>(0, clock_->MonotonicUs() / 1000 - base_ms_);
}

uint32_t BotBlacklistTable::Estimate(const Entry& e, uint32_t tick) {
  if (tick < e.tick) tick = e.tick;
  const uint32_t age = tick - e.tick;
  if (age >= static_cast<uint32_t>(kSubWindows)) return 0;
  // Sub-windows e.tick, e.tick - 1, ..., tick - 5 are still inside the window.
  uint32_t sum = 0;
  uint32_t idx = e.tick % kSubWindows;
  for (uint32_t k = age; k < static_cast<uint32_t>(kSubWindows); ++k) {
    sum += e.counts[idx];
    idx = idx == 0 ? kSubWindows - 1 : idx - 1;
  }
  return sum;
}

BotBlacklistTable::Entry* BotBlacklistTable::Find(uint64_t hash) const {
  const uint64_t key = KeyOf(hash);
  for (Entry& e : BucketOf(hash).entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

BotBlacklistTable::Entry* BotBlacklistTable::Insert(Bucket& b, uint64_t key, uint32_t tick,
                                                    int64_t now_ms) {
  Entry* victim = nullptr;
  for (Entry& e : b.entries) {
    if (e.key == 0) {
      victim = &e;
      break;
    }
  }
  if (victim == nullptr) {
    // Quietest unblocked entry (smallest estimate, then oldest tick); when
    // every entry is blocked, the one whose blacklisting ends first.
    auto rank = [&](const Entry& e) {
      const bool blocked = Blocked(e, now_ms);
      return std::make_tuple(blocked ? 1 : 0, blocked ? e.blocked_until_s : 0u,
                             blocked ? 0u : Estimate(e, tick), e.tick);
    };
    victim = &b.entries[0];
    for (Entry& e : b.entries) {
      if (rank(e) < rank(*victim)) victim = &e;
    }
    ++stats_.evictions;
    evictions_counter_.Add();
    if (Blocked(*victim, now_ms)) ++stats_.evicted_blacklisted;
  } else {
    ++size_;
  }
  std::memset(static_cast<void*>(victim), 0, sizeof(Entry));
  victim->key = key;
  victim->tick = tick;
  return victim;
}

void BotBlacklistTable::Block(Entry& e, int64_t now_ms) {
  // Rounded up, so a blacklisting never ends before blacklist_ms.
  const int64_t until_s = (now_ms + blacklist_ms_ + 999) / 1000;
  e.blocked_until_s =
      static_cast<uint32_t>(std::clamp<int64_t>(until_s, 1, std::numeric_limits<uint32_t>::max()));
  e.streak = 0;
  ++stats_.newly_blacklisted;
  blacklisted_counter_.Add();
}

BotBlacklist::Decision BotBlacklistTable::OnNoticeHash(uint64_t hash, uint32_t event_count) {
  CountOp();
  ++stats_.notices;
  const int64_t now_ms = NowRelMs();
  const uint32_t tick = static_cast<uint32_t>(now_ms / sub_window_ms_);
  const uint64_t key = KeyOf(hash);
  Bucket& b = BucketOf(hash);
  Entry* entry = nullptr;
  for (Entry& e : b.entries) {
    if (e.key == key) {
      entry = &e;
      break;
    }
  }
  if (entry == nullptr) {
    entry = Insert(b, key, tick, now_ms);
  } else if (entry->blocked_until_s != 0) {
    if (Blocked(*entry, now_ms)) {
      ++stats_.skipped_notices;
      skipped_counter_.Add();
      return Decision::kBlacklisted;
    }
    // Expired: start over with an empty window.
    std::memset(static_cast<void*>(entry), 0, sizeof(Entry));
    entry->key = key;
    entry->tick = tick;
  }
  // A whole sub-window without notices: the rate was not held.
  if (tick > entry->tick + 1) entry->streak = 0;
  // Slide the ring to `tick`, clearing sub-windows that left the window.
  if (tick > entry->tick) {
    const uint32_t clear = std::min<uint32_t>(tick - entry->tick, kSubWindows);
    for (uint32_t s = tick - clear + 1; s != tick + 1; ++s) entry->counts[s % kSubWindows] = 0;
    entry->tick = tick;
  }
  uint16_t& slot = entry->counts[tick % kSubWindows];
  slot = static_cast<uint16_t>(
      std::min<uint32_t>(kMaxSubCount, uint32_t{slot} + std::min(event_count, kMaxSubCount)));
  if (Estimate(*entry, tick) < threshold_) {
    entry->streak = 0;
    return Decision::kProcess;
  }
  if (entry->streak == 0) entry->streak = tick + 1;
  if (tick - (entry->streak - 1) < sustain_ticks_) return Decision::kProcess;
  Block(*entry, now_ms);
  ++stats_.by_rate;
  return Decision::kNewlyBlacklisted;
}

BotBlacklistTable::RowVerdict BotBlacklistTable::AnalyseRow(std::span<const EventView> events,
                                                            int64_t now_ms) {
  const BotOptions& o = options_;
  // The newest events of the window: rows come oldest first.
  const int64_t oldest_ms = now_ms - o.row_window_ms;
  const size_t end = events.size();
  size_t begin = end;
  const size_t cap = static_cast<size_t>(o.row_max_events);
  while (begin > 0 && end - begin < cap && events[begin - 1].time_ms >= oldest_ms) --begin;
  const size_t n = end - begin;
  if (n < static_cast<size_t>(std::min(o.rotation_min_events, o.crawl_min_events))) {
    return RowVerdict::kHuman;
  }
  ++stats_.rows_analysed;

  uint64_t agents[kMaxAgents];
  uint32_t ips[kMaxIps];
  int num_agents = 0, num_ips = 0;
  std::string_view last_agent;
  uint32_t last_ip = 0;
  for (size_t i = begin; i < end; ++i) {
    const EventView& e = events[i];
    gaps_[i - begin] = e.time_ms;
    // Consecutive events mostly share the client: compare before hashing.
    if (!e.user_agent.empty() && e.user_agent != last_agent && num_agents < kMaxAgents) {
      last_agent = e.user_agent;
      const uint64_t h = HashUserId(e.user_agent, kAgentSeed);
      if (std::find(agents, agents + num_agents, h) == agents + num_agents)
        agents[num_agents++] = h;
    }
    if (e.ipv4 != 0 && e.ipv4 != last_ip && num_ips < kMaxIps) {
      last_ip = e.ipv4;
      if (std::find(ips, ips + num_ips, e.ipv4) == ips + num_ips) ips[num_ips++] = e.ipv4;
    }
  }
  if (n >= static_cast<size_t>(o.rotation_min_events)) {
    if (o.max_user_agents > 0 && num_agents >= o.max_user_agents) return RowVerdict::kUserAgents;
    if (o.max_ips > 0 && num_ips >= o.max_ips) return RowVerdict::kIps;
  }

  if (n < static_cast<size_t>(o.crawl_min_events) || o.crawl_min_regular_share > 1) {
    return RowVerdict::kHuman;
  }
  const int64_t span_ms = gaps_[n - 1] - gaps_[0];
  const bool window_overflows = begin > 0 && events[begin - 1].time_ms >= oldest_ms;
  if (span_ms < o.crawl_min_span_ms && !window_overflows) return RowVerdict::kHuman;
  // Times -> gaps in place (times are ascending: rows are in time order).
  const size_t num_gaps = n - 1;
  for (size_t k = 0; k < num_gaps; ++k) gaps_[k] = gaps_[k + 1] - gaps_[k];
  auto mid = gaps_.begin() + static_cast<ptrdiff_t>(num_gaps / 2);
  std::nth_element(gaps_.begin(), mid, gaps_.begin() + static_cast<ptrdiff_t>(num_gaps));
  const int64_t median = *mid;
  // Most events come in bursts, as page loads do.
  if (median < std::max<int64_t>(1, o.crawl_min_median_gap_ms)) return RowVerdict::kHuman;
  const double tolerance = o.crawl_gap_tolerance * static_cast<double>(median);
  size_t regular = 0;
  for (size_t k = 0; k < num_gaps; ++k) {
    regular += std::abs(static_cast<double>(gaps_[k] - median)) <= tolerance ? 1 : 0;
  }
  if (static_cast<double>(regular) < o.crawl_min_regular_share * static_cast<double>(num_gaps)) {
    return RowVerdict::kHuman;
  }
  // Last, as the dearest test (a hash per URL): steady, but does it visit
  // new pages (a crawl) or the same few (a dashboard refreshing)?
  uint64_t url_bits[kUrlBits / 64] = {};
  for (size_t i = begin; i < end; ++i) {
    const uint64_t bit = HashUserId(events[i].url, kUrlSeed) >> 52;  // top 12 bits: 0..4095
    url_bits[bit / 64] |= uint64_t{1} << (bit % 64);
  }
  int zero_bits = kUrlBits;
  for (uint64_t word : url_bits) zero_bits -= std::popcount(word);
  // Linear counting; a full map means "more distinct than it can tell".
  const double distinct =
      zero_bits == 0 ? static_cast<double>(n)
                     : -double{kUrlBits} * std::log(static_cast<double>(zero_bits) / kUrlBits);
  return distinct >= o.crawl_min_distinct_url_ratio * static_cast<double>(n) ? RowVerdict::kCrawl
                                                                             : RowVerdict::kHuman;
}

BotBlacklist::Decision BotBlacklistTable::ObserveRowHash(uint64_t hash,
                                                         std::span<const EventView> events,
                                                         int64_t now_ms) {
  CountOp();
  ++stats_.rows_observed;
  const int64_t rel_ms = NowRelMs();
  Entry* entry = Find(hash);
  if (entry != nullptr && Blocked(*entry, rel_ms)) return Decision::kBlacklisted;
  if (!options_.row_signals) return Decision::kProcess;
  const RowVerdict verdict = AnalyseRow(events, now_ms);
  if (verdict == RowVerdict::kHuman) return Decision::kProcess;
  // Only now does the user take an entry: rows of people cost no table space.
  if (entry == nullptr) {
    entry =
        Insert(BucketOf(hash), KeyOf(hash), static_cast<uint32_t>(rel_ms / sub_window_ms_), rel_ms);
  }
  Block(*entry, rel_ms);
  switch (verdict) {
    case RowVerdict::kUserAgents:
      ++stats_.by_user_agents;
      by_agents_counter_.Add();
      break;
    case RowVerdict::kIps:
      ++stats_.by_ips;
      by_ips_counter_.Add();
      break;
    default:
      ++stats_.by_crawl;
      by_crawl_counter_.Add();
      break;
  }
  return Decision::kNewlyBlacklisted;
}

bool BotBlacklistTable::IsBlacklistedHash(uint64_t hash) const {
  const Entry* e = Find(hash);
  return e != nullptr && Blocked(*e, NowRelMs());
}

int64_t BotBlacklistTable::EstimateForTest(uint64_t hash) const {
  const uint32_t tick = static_cast<uint32_t>(NowRelMs() / sub_window_ms_);
  const Entry* e = Find(hash);
  return e == nullptr ? -1 : Estimate(*e, tick);
}

}  // namespace internal
}  // namespace seg::segmenter

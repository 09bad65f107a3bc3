// The segmenter node's batch loop (docs/ARCHITECTURE.md steps):
//   poll: 1. bot blacklist; under the leading-edge read policy the batch's
//   users not read lately (and with nothing queued) are processed at once
//   (2-7 below, with whatever else is due); the rest of the batch waits out
//   its read delay in a queue while polling goes on. When due (several due
//   batches together):
//   2. skip cache, 3. one multi-get for the survivors, 4. scripts, 5. results
//   to Kafka, 6. stats to Redis, then the membership state back to family
//   `s`, the skip cache, and 7. the offsets of every batch in the group.
// Membership over time: notices of kind DEFINITION_CHANGE (a backfill) and
// FORGET bypass the blacklist and the skip cache; every evaluation stores a
// due time (membership.h DueRowKey), and FireDue() re-segments the owned
// partitions' due users between polls (reason SCHEDULE). Backfills and
// schedules publish only when the membership changed.
// The skip decisions (1, 2) are made once; a failure in 3-6 retries those
// steps with backoff: results and HLL adds are idempotent for a replay, the
// state is written only after both were acknowledged, and offsets only after
// the state. Batches are processed in poll order, so offsets stay in order;
// a revocation processes the whole queue before the partitions go.
#include <glog/logging.h>

#include <algorithm>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "common/backoff.h"
#include "common/event_codec.h"
#include "common/ingest_watermark.h"
#include "common/metrics.h"
#include "proto/segmentation.pb.h"
#include "segmenter/internal/append_log.h"
#include "segmenter/internal/due_scanner.h"
#include "segmenter/internal/membership.h"
#include "segmenter/internal/read_policy.h"
#include "segmenter/segmenter.h"
#include "segmenter/skip/bot_blacklist.h"
#include "segmenter/skip/skip_cache.h"
#include "stats/writer/stats_writer.h"
#include "store/store.h"

namespace seg::segmenter {
namespace {

constexpr int64_t kDayMs = 86'400'000;

// Event-to-result and dwell times sit around the read delay: 100 ms steps
// up to 2 s, so p99 against a 1 s target is read off a bucket edge, not
// interpolated across 1..2.5 s.
const std::vector<double>& DelayBucketsSeconds() {
  static const std::vector<double> buckets = {0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6,
                                              0.7,  0.8,   0.9,  1,   1.1, 1.2, 1.3, 1.4, 1.5,
                                              1.75, 2,     2.5,  3,   5,   10,  30,  60,  300};
  return buckets;
}

struct NodeMetrics {
  metrics::Counter notices = metrics::GetCounter("seg_segmenter_notices_total", "Notices consumed");
  metrics::Counter malformed = metrics::GetCounter(
      "seg_segmenter_decisions_total", "Notices by decision", {{"decision", "malformed"}});
  metrics::Counter skipped_cache = metrics::GetCounter(
      "seg_segmenter_decisions_total", "Notices by decision", {{"decision", "skipped_by_cache"}});
  metrics::Counter skipped_bot = metrics::GetCounter(
      "seg_segmenter_decisions_total", "Notices by decision", {{"decision", "skipped_as_bot"}});
  metrics::Counter segmented = metrics::GetCounter(
      "seg_segmenter_decisions_total", "Notices by decision", {{"decision", "segmented"}});
  metrics::Counter results =
      metrics::GetCounter("seg_segmenter_results_total", "Results published");
  metrics::Counter batch_failures =
      metrics::GetCounter("seg_segmenter_batch_failures_total", "Batch attempts that failed");
  metrics::Counter bad_cells =
      metrics::GetCounter("seg_segmenter_bad_cells_total", "Undecodable event cells skipped");
  // Row length read per evaluation: the capacity model's cells per read.
  metrics::Counter cells_read = metrics::GetCounter("seg_segmenter_event_cells_read_total",
                                                    "Event cells read for evaluations");
  metrics::Histogram dwell = metrics::GetHistogram(
      "seg_segmenter_dwell_seconds", "Now minus the notice's Kafka timestamp at consumption", {},
      DelayBucketsSeconds());
  metrics::Histogram e2e = metrics::GetHistogram("seg_segmenter_event_to_result_seconds",
                                                 "Result acknowledged minus newest event time", {},
                                                 DelayBucketsSeconds());
  metrics::Histogram store_latency =
      metrics::GetHistogram("seg_segmenter_store_seconds", "Multi-get latency per batch");
  metrics::Histogram stats_latency =
      metrics::GetHistogram("seg_segmenter_stats_seconds", "Stats write latency per batch");
  metrics::Histogram batch_latency =
      metrics::GetHistogram("seg_segmenter_batch_seconds", "Whole batch processing time");
  metrics::Gauge lag = metrics::GetGauge("seg_segmenter_consumer_lag", "Notices behind");
  metrics::Counter scheduled = metrics::GetCounter(
      "seg_segmenter_decisions_total", "Notices by decision", {{"decision", "scheduled"}});
  metrics::Counter definition = metrics::GetCounter(
      "seg_segmenter_decisions_total", "Notices by decision", {{"decision", "definition_change"}});
  metrics::Counter forgotten = metrics::GetCounter(
      "seg_segmenter_decisions_total", "Notices by decision", {{"decision", "forgotten"}});
  metrics::Counter bot_exits = metrics::GetCounter("seg_segmenter_bot_exits_total",
                                                   "BOT results for newly blacklisted users");
  metrics::Counter stale = metrics::GetCounter(
      "seg_segmenter_stale_memberships_total",
      "Evaluations that kept a failing script's membership beyond scripts.max_stale_ms");
  metrics::Counter recounts = metrics::GetCounter(
      "seg_segmenter_stats_recounts_total",
      "Users counted again because their counted marks' stats epoch was void (Redis lost data)");
  metrics::Counter due_scan_failures = metrics::GetCounter(
      "seg_segmenter_due_scan_failures_total", "Due-table scans or their processing that failed");
  metrics::Gauge due_hold = metrics::GetGauge(
      "seg_segmenter_due_hold_seconds",
      "How far behind now due users fire: the ingest watermark's delay (0 when caught up)");
  metrics::Counter due_hold_capped =
      metrics::GetCounter("seg_segmenter_due_hold_capped_total",
                          "Due rounds that fired past a watermark older than max_hold_ms");
  metrics::Histogram schedule_lateness =
      metrics::GetHistogram("seg_segmenter_schedule_lateness_seconds",
                            "Due user fired minus its due time", {}, DelayBucketsSeconds());
  // The read delay as the policy chose it (adaptive: per user, from its notices' age).
  metrics::Gauge read_delay = metrics::GetGauge(
      "seg_segmenter_read_delay_seconds",
      "Wait the last polled batch got before its read (0: every user read at once)");
  metrics::Histogram follow_up_wait = metrics::GetHistogram(
      "seg_segmenter_follow_up_wait_seconds",
      "Wait of a user read lately until its follow-up read, as scheduled at poll "
      "(leading_edge and adaptive policies)",
      {}, DelayBucketsSeconds());
};

// Why a user is in the group being processed (bits; several may merge).
enum PendingKind : uint8_t {
  kWrite = 1,       // a plain change notice: new events
  kDefinition = 2,  // the script set changed (backfill)
  kSchedule = 4,    // its due time passed
  kForget = 8,      // delete everything about the user
  kBotExit = 16,    // newly blacklisted: exit its segments
};

// One user that survived the blacklist; the skip cache is asked when its
// batch is due, after the reads of the batches queued before it.
struct PendingUser {
  std::string_view user_id;  // view into the Kafka batch (or the due scan's ids)
  int64_t newest_event_ms = 0;
  int64_t newest_appended_tick = 0;  // AppendLog's order of events
  int64_t notices = 0;
  int32_t partition = -1;            // of user-changes: where its due row goes
  uint8_t kinds = 0;                 // PendingKind bits
  int64_t oldest_acked_ms = kNever;  // of its notices' writes (the adaptive read policy)

  void Add(const PendingUser& other) {
    newest_event_ms = std::max(newest_event_ms, other.newest_event_ms);
    oldest_acked_ms = std::min(oldest_acked_ms, other.oldest_acked_ms);
    newest_appended_tick = std::max(newest_appended_tick, other.newest_appended_tick);
    notices += other.notices;
    if (other.partition >= 0) partition = other.partition;
    kinds |= other.kinds;
  }
  // Only the skip cache's business when new events are all it brings.
  bool WriteOnly() const { return kinds == kWrite; }
};

// One message for the results topic.
struct ResultMessage {
  std::string key;
  std::string value;
  bool tombstone = false;  // null value (forget)
};

// A polled batch waiting out its read delay (NodeOptions::read_delay_ms).
struct QueuedBatch {
  kafka::Batch batch;
  std::vector<PendingUser> pending;  // deduplicated within the batch; read when due
  std::vector<PendingUser> lead;     // leading edge: read at once (with the next group)
  bool lead_done = true;
  std::deque<std::string> unkeyed_ids;  // user ids of notices without a key
  int64_t due_ms = 0;
  int64_t malformed = 0;
  int64_t skipped_bot = 0;
};

class NodeImpl : public Node {
 public:
  NodeImpl(const NodeOptions& options, store::Store* store, Evaluator* evaluator, StatsSink* stats,
           Clock* clock)
      : options_(options),
        store_(store),
        evaluator_(evaluator),
        stats_(stats),
        clock_(clock),
        follow_up_rule_(options),
        due_scanner_(store, DueScanOptions{options.due_table, options.due_family,
                                           options.due_batch_users, options.batch_max_notices}) {}

  // The consumer's close fires the rebalance callback, which needs the queue
  // and the rest of this object: close before any member goes.
  ~NodeImpl() override { Close().IgnoreError(); }

  Status Init() {
    SEG_ASSIGN_OR_RETURN(producer_, kafka::Producer::Create(options_.kafka));
    SEG_ASSIGN_OR_RETURN(consumer_,
                         kafka::Consumer::Create(
                             options_.kafka, options_.group_id,
                             [this](const kafka::RebalanceEvent& event) { OnRebalance(event); }));
    SEG_RETURN_IF_ERROR(consumer_->Subscribe({options_.notices_topic}));
    if (options_.skip_cache_enabled) {
      SkipCache::Options o;
      o.capacity_bytes = static_cast<size_t>(options_.skip_cache_bytes);
      // Both sides of the rule are ticks of this node's counter (AppendLog).
      o.skew_margin_ms = 0;
      SEG_ASSIGN_OR_RETURN(skip_cache_, SkipCache::Create(o));
    }
    if (options_.bots.enabled) {
      SEG_ASSIGN_OR_RETURN(blacklist_, BotBlacklist::Create(options_.bots, clock_));
    }
    return Status::OK();
  }

  StatusOr<int> RunOnce() override {
    MaybeReload();
    if (queued_notices_ < options_.max_queued_notices) {
      // Wait for notices no longer than until the oldest queued batch is due.
      int64_t wait_ms = options_.batch_max_ms;
      if (!queue_.empty()) {
        wait_ms = std::clamp<int64_t>(queue_.front().due_ms - clock_->NowMs(), 0, wait_ms);
      }
      // Nor past the next due scan: a backlog of due users drains without
      // waiting out a poll on a quiet topic each round.
      if (options_.schedule_enabled && !owned_.empty()) {
        wait_ms = std::clamp<int64_t>(next_due_scan_ms_ - clock_->NowMs(), 0, wait_ms);
      }
      SEG_ASSIGN_OR_RETURN(
          kafka::Batch batch,
          consumer_->PollBatch(options_.batch_max_notices, std::chrono::milliseconds(wait_ms)));
      SampleWatermarks();
      if (!batch.empty()) Enqueue(std::move(batch));
    } else {
      // Queue full: nothing to fetch until its oldest batch is due. Capped,
      // so a clock step cannot stall the loop (and stop requests) for long.
      const int64_t wait_ms =
          std::min<int64_t>(queue_.front().due_ms - clock_->NowMs(), options_.batch_max_ms);
      if (wait_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      SampleWatermarks();
    }
    MaybeReload();  // a DEFINITION_CHANGE notice just polled may have asked for it
    int handled = 0;
    while (!queue_.empty() && (leads_queued_ > 0 || queue_.front().due_ms <= clock_->NowMs())) {
      SEG_ASSIGN_OR_RETURN(int n, ProcessQueued(/*all=*/false, /*commit=*/true));
      handled += n;
    }
    if (options_.schedule_enabled && !owned_.empty() && clock_->NowMs() >= next_due_scan_ms_) {
      handled += FireDue();
    }
    // Stored offsets a failed commit left behind (e.g. a commit during a
    // rebalance) are committed within a second, not at the next batch.
    if (handled == 0) AwaitDueDeletes();
    if (handled == 0 && clock_->MonotonicUs() / 1000 - last_commit_mono_ms_ >= 1000) {
      CommitStored();
    }
    return handled;
  }

  Status Run() override {
    while (!stop_.load()) {
      auto n = RunOnce();
      if (!n.ok()) LOG(ERROR) << "segmenter: " << n.status();
    }
    return Close();
  }

  void RequestStop() override { stop_ = true; }
  void RequestReload() override { reload_ = true; }
  NodeStats stats() const override {
    NodeStats stats = stats_snapshot_;
    stats.queued_notices = queued_notices_;
    return stats;
  }

  Status Close() override {
    if (closed_ || consumer_ == nullptr || producer_ == nullptr) return Status::OK();
    closed_ = true;
    stop_ = true;  // one attempt per queued batch, no retrying at shutdown
    // What is queued is processed now (the consumer's close commits it);
    // what fails is left uncommitted for the partitions' next owner.
    Status drained = DrainQueue(/*commit=*/false);
    AwaitDueDeletes();
    due_scanner_.DropPrefetch();
    Status flush = producer_->Flush(std::chrono::seconds(10));
    Status close = consumer_->Close();
    DropQueue();  // the batches' buffers go before their consumer
    if (!drained.ok()) return drained;
    if (!flush.ok()) return flush;
    return close;
  }

 private:
  // Partitions are leaving: finish every queued batch now, so the offsets
  // the adapter commits after this callback cover them and the next owner
  // does not segment the same users at the same time.
  void OnRebalance(const kafka::RebalanceEvent& event) {
    // The due rows a node fires are those of the partitions it owns.
    for (const kafka::TopicPartition& tp : event.partitions) {
      if (tp.topic != options_.notices_topic) continue;
      if (event.kind == kafka::RebalanceEvent::Kind::kAssigned) {
        owned_.insert(tp.partition);
        next_due_scan_ms_ = 0;  // a new owner fires what is already due at once
      } else {
        owned_.erase(tp.partition);
        due_scanner_.Forget(tp.partition);  // another owner may fire and write meanwhile
        append_log_.Forget(tp.partition);
      }
    }
    if (event.kind == kafka::RebalanceEvent::Kind::kAssigned || queue_.empty()) return;
    if (event.kind == kafka::RebalanceEvent::Kind::kLost) {
      // Already someone else's: they re-read what was queued; processing it
      // here would only race their state writes.
      LOG(WARNING) << "partitions lost: dropping " << queued_notices_ << " queued notices";
      DropQueue();
      return;
    }
    Status s = DrainQueue(/*commit=*/false);
    if (!s.ok()) LOG(WARNING) << "queued notices left to the partitions' next owner: " << s;
  }

  // Waits for the due deletes in flight, if any; a failure is counted and
  // logged (the rows fire again, early and harmlessly).
  void AwaitDueDeletes() {
    if (!due_delete_.valid()) return;
    Status s = due_delete_.get();
    if (!s.ok()) {
      metrics_.due_scan_failures.Inc();
      LOG_EVERY_N(WARNING, 10) << "due delete: " << s;
    }
  }

  void MaybeReload() {
    if (!reload_.exchange(false)) return;
    Status s = evaluator_->Reload();
    if (!s.ok()) LOG(ERROR) << "script reload failed, keeping the previous set: " << s;
  }

  // The consumer's view of each owned partition's high watermark, read at
  // a new tick (after the poll: the polled messages were received before it).
  void SampleWatermarks() {
    ++tick_;
    for (int32_t partition : owned_) {
      append_log_.Record(partition,
                         consumer_->CachedHighWatermark(options_.notices_topic, partition), tick_);
    }
  }

  void DropQueue() {
    queue_.clear();
    queued_notices_ = 0;
    leads_queued_ = 0;
    follow_ups_.clear();
  }

  Status DrainQueue(bool commit) {
    while (!queue_.empty()) {
      SEG_RETURN_IF_ERROR(ProcessQueued(/*all=*/true, commit).status());
    }
    return Status::OK();
  }

  // Applies the bot blacklist to every notice, deduplicates the rest per
  // user and queues the batch until its newest write has settled.
  void Enqueue(kafka::Batch batch) {
    const int64_t now = clock_->NowMs();
    QueuedBatch& q = queue_.emplace_back();
    pending_index_.clear();
    int64_t newest_ack_ms = 0;
    for (const kafka::Message& msg : batch) {
      if (!notice_.ParseFromArray(msg.value().data(), static_cast<int>(msg.value().size())) ||
          notice_.user_id().empty()) {
        ++q.malformed;
        LOG_EVERY_N(WARNING, 1000) << "malformed notice at " << msg.topic() << "/"
                                   << msg.partition() << "@" << msg.offset();
        continue;
      }
      if (msg.timestamp_ms() > 0) metrics_.dwell.Observe((now - msg.timestamp_ms()) / 1e3);
      // The user id as a view into the Kafka message keeps the batch allocation-free.
      std::string_view user = msg.key();
      if (user.empty()) {  // unkeyed: the id must outlive notice_'s next parse
        user = q.unkeyed_ids.emplace_back(notice_.user_id());
      }
      PendingUser add{user,
                      notice_.newest_event_time_ms(),
                      append_log_.AppendedBy(msg.partition(), msg.offset(), tick_),
                      1,
                      msg.partition(),
                      kWrite,
                      notice_.acked_at_ms() > 0 ? notice_.acked_at_ms() : now};
      if (notice_.kind() == NOTICE_FORGET) {
        add.kinds = kForget;
      } else if (notice_.kind() == NOTICE_DEFINITION_CHANGE) {
        // Not an event: the blacklist neither counts it nor lets a bot in.
        if (blacklist_ && blacklist_->IsBlacklisted(user)) {
          ++q.skipped_bot;
          continue;
        }
        add.kinds = kDefinition;
        // Started for a set this node has not loaded yet (its sync is
        // behind): reload before the batch is due. The backfill's start
        // delay (backfill.start_delay_ms) makes this rare.
        if (!notice_.script_set_version().empty() &&
            notice_.script_set_version() != evaluator_->ScriptSetVersion()) {
          reload_ = true;
        }
      } else if (blacklist_) {
        auto decision = blacklist_->OnNotice(user, notice_.event_count());
        if (decision == BotBlacklist::Decision::kNewlyBlacklisted) {
          add.kinds = kBotExit;  // read its state, exit its segments once
          ++q.skipped_bot;
        } else if (decision != BotBlacklist::Decision::kProcess) {
          ++q.skipped_bot;
          continue;
        }
      }
      newest_ack_ms = std::max(newest_ack_ms, notice_.acked_at_ms());
      auto [it, inserted] = pending_index_.emplace(user, q.pending.size());
      if (inserted) {
        q.pending.push_back(add);
      } else {
        q.pending[it->second].Add(add);
      }
    }
    if (options_.read_policy != NodeOptions::ReadPolicy::kDelay) {
      SplitLeadingEdge(q, now);
    } else {
      // Let the newest write's burst settle. Clamp, so a notice stamped by a
      // clock far ahead cannot stall the node.
      q.due_ms = q.pending.empty() ? now : std::min(newest_ack_ms, now) + options_.read_delay_ms;
    }
    metrics_.read_delay.Set(static_cast<double>(std::max<int64_t>(q.due_ms - now, 0)) / 1e3);
    queued_notices_ += static_cast<int64_t>(batch.size());
    q.batch = std::move(batch);
  }

  // Leading edge and adaptive: users with new events only, not read within
  // the rule's window and with nothing queued, go to q.lead (read with the
  // next group, i.e. at once); the others stay in q.pending, due when the
  // follow-up of each is (FollowUpRule: read_delay_ms after its last read,
  // or adaptive). A user with something queued waits
  // behind it, so one user's notices are still processed in poll order.
  void SplitLeadingEdge(QueuedBatch& q, int64_t now) {
    q.due_ms = now;
    size_t kept = 0;
    for (PendingUser& p : q.pending) {
      const uint64_t key = FollowKey(p.user_id);
      const bool queued = follow_ups_.count(key) > 0;
      const int64_t last_read_ms = queued ? -1 : LastReadMs(p.user_id);
      const bool recent = last_read_ms >= 0 && now - last_read_ms < follow_up_rule_.window_ms();
      if (p.WriteOnly() && !queued && !recent) {
        q.lead.push_back(p);
        continue;
      }
      if (recent) {
        const int64_t due = follow_up_rule_.FollowUpDueMs(now, last_read_ms, p.oldest_acked_ms);
        metrics_.follow_up_wait.Observe(static_cast<double>(std::max<int64_t>(due - now, 0)) / 1e3);
        q.due_ms = std::max(q.due_ms, due);
      }
      ++follow_ups_[key];
      q.pending[kept++] = p;
    }
    q.pending.resize(kept);
    if (!q.lead.empty()) {
      q.lead_done = false;
      ++leads_queued_;
    }
  }

  static uint64_t FollowKey(std::string_view user_id) {
    return std::hash<std::string_view>{}(user_id);
  }

  // When the user's last successful read began (this node's clock), or -1
  // when unknown or older than the read starts kept (read_starts_).
  int64_t LastReadMs(std::string_view user_id) const {
    if (!skip_cache_) return -1;
    const int64_t tick = skip_cache_->LastRead(user_id);
    if (tick < 0) return -1;
    auto it = std::lower_bound(read_starts_.begin(), read_starts_.end(), tick,
                               [](const ReadStart& r, int64_t t) { return r.tick < t; });
    return it != read_starts_.end() && it->tick == tick ? it->ms : -1;
  }

  // Drops the follow-up marks of a processed or dropped batch's users.
  void ReleaseFollowUps(const QueuedBatch& q) {
    if (options_.read_policy == NodeOptions::ReadPolicy::kDelay) return;
    for (const PendingUser& p : q.pending) {
      auto it = follow_ups_.find(FollowKey(p.user_id));
      if (it != follow_ups_.end() && --it->second <= 0) follow_ups_.erase(it);
    }
  }

  // Processes the due batches at the head of the queue (every batch when
  // `all`) as one group of at most batch_max_notices notices (at least one
  // batch, if the head is due) together with the leading edges not read
  // yet: one skip pass, one read, one publish, then the group's offsets.
  StatusOr<int> ProcessQueued(bool all, bool commit) {
    const int64_t now = clock_->NowMs();
    size_t group = 0;
    int64_t notices = 0;
    for (; group < queue_.size(); ++group) {
      const int64_t size = static_cast<int64_t>(queue_[group].batch.size());
      if ((!all && queue_[group].due_ms > now) ||
          (group > 0 && notices + size > options_.batch_max_notices)) {
        break;
      }
      notices += size;
    }
    SelectSurvivors(group);
    Backoff backoff(BackoffOptions{100, 5000});
    int epoch_redos = 0;
    while (true) {
      int64_t start_us = clock_->MonotonicUs();
      Status s = ProcessSurvivors(now);
      if (s.ok()) {
        metrics_.batch_latency.Observe((clock_->MonotonicUs() - start_us) / 1e6);
        break;
      }
      // Redis lost data under the batch's decisions: again at once, now
      // counting its users afresh (a repeat beyond that waits like a failure).
      if (stats::IsEpochChange(s) && epoch_redos++ < 2) {
        LOG(WARNING) << "batch of " << notices << " notices segmented again: " << s;
        continue;
      }
      ++stats_snapshot_.failed_batches;
      metrics_.batch_failures.Inc();
      if (stop_.load()) return s.WithContext("batch abandoned at shutdown, will be redelivered");
      int64_t delay = backoff.NextDelayMs();
      LOG(WARNING) << "batch of " << notices << " notices failed (attempt " << backoff.attempts()
                   << "), retrying in " << delay << " ms: " << s;
      // Waiting out a failed dependency: nothing to synchronise with.
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    }
    for (QueuedBatch& q : queue_) q.lead_done = true;
    leads_queued_ = 0;
    int64_t malformed = 0, skipped_bot = 0;
    for (size_t i = 0; i < group; ++i) {
      SEG_RETURN_IF_ERROR(consumer_->StoreOffsets(queue_[i].batch));
      malformed += queue_[i].malformed;
      skipped_bot += queue_[i].skipped_bot;
    }
    for (size_t i = 0; i < group; ++i) {
      ReleaseFollowUps(queue_.front());
      queue_.pop_front();
    }
    queued_notices_ -= notices;
    stats_snapshot_.notices += notices;
    stats_snapshot_.malformed_notices += malformed;
    stats_snapshot_.skipped_as_bot += skipped_bot;
    if (group == 0) return 0;  // leading edges only: no batch finished
    ++stats_snapshot_.batches;
    metrics_.notices.Inc(static_cast<double>(notices));
    metrics_.malformed.Inc(static_cast<double>(malformed));
    metrics_.skipped_bot.Inc(static_cast<double>(skipped_bot));
    metrics_.lag.Set(static_cast<double>(consumer_->Lag()));
    if (commit) CommitStored();
    return static_cast<int>(notices);
  }

  // Asynchronous; a failure leaves the offsets stored for the idle commit.
  void CommitStored() {
    last_commit_mono_ms_ = clock_->MonotonicUs() / 1000;
    Status s = consumer_->Commit(/*sync=*/false);
    if (!s.ok()) {
      LOG_EVERY_N(WARNING, 10) << "segmenter: commit: " << s;
    }
  }

  // The first `group` queued batches' users, merged across batches, minus
  // those whose every write the last read of the user already saw.
  void SelectSurvivors(size_t group) {
    pending_.clear();
    pending_index_.clear();
    fired_due_.clear();
    auto add = [&](const std::vector<PendingUser>& users) {
      for (const PendingUser& u : users) {
        auto [it, inserted] = pending_index_.emplace(u.user_id, pending_.size());
        if (inserted) {
          pending_.push_back(u);
        } else {
          pending_[it->second].Add(u);
        }
      }
    };
    for (size_t b = 0; b < group; ++b) add(queue_[b].pending);
    // Leading edges of batches not yet due (the one just polled) join this read.
    if (leads_queued_ > 0) {
      for (const QueuedBatch& q : queue_) {
        if (!q.lead_done) add(q.lead);
      }
    }
    int64_t skipped_cache = 0;
    if (skip_cache_) {
      auto kept = std::remove_if(pending_.begin(), pending_.end(), [&](const PendingUser& p) {
        if (!p.WriteOnly() || !skip_cache_->ShouldSkip(p.user_id, p.newest_appended_tick)) {
          return false;
        }
        skipped_cache += p.notices;
        return true;
      });
      pending_.erase(kept, pending_.end());
    }
    stats_snapshot_.skipped_by_cache += skipped_cache;
    metrics_.skipped_cache.Inc(static_cast<double>(skipped_cache));
  }

  // Reads, segments and publishes the users in pending_; safe to retry.
  // Write order: HLL adds, forgotten rows, new due rows and results (side
  // by side), states, then old and fired due rows. A crash in between leaves an extra due row
  // (an early, harmless re-evaluation), never a missing one.
  Status ProcessSurvivors(int64_t now) {
    // The skip rule's order (AppendLog): taken before the multi-get.
    const int64_t read_started_tick = ++tick_;
    if (options_.read_policy != NodeOptions::ReadPolicy::kDelay && !pending_.empty()) {
      // The leading-edge policy's clock for each read tick, kept a while.
      read_starts_.push_back(ReadStart{read_started_tick, now});
      while (read_starts_.size() > 1 &&
             read_starts_.front().ms < now - follow_up_rule_.window_ms() - kReadStartsKeptMs) {
        read_starts_.pop_front();
      }
    }
    if (!pending_.empty()) SEG_RETURN_IF_ERROR(ReadRows(now));
    results_.clear();
    updates_.clear();
    state_puts_.clear();
    due_puts_.clear();
    due_deletes_.clear();
    user_deletes_.clear();
    batch_counts_ = {};
    for (size_t i = 0; i < pending_.size(); ++i) SEG_RETURN_IF_ERROR(SegmentUser(i, now));
    // The previous group's due deletes ran during this group's reads and
    // scripts; they finish before this group writes due rows.
    AwaitDueDeletes();

    if (!updates_.empty()) {
      int64_t t0 = clock_->MonotonicUs();
      SEG_RETURN_IF_ERROR(stats_->Write(updates_).WithContext("stats write"));
      metrics_.stats_latency.Observe((clock_->MonotonicUs() - t0) / 1e6);
    }
    if (!user_deletes_.empty()) {
      SEG_RETURN_IF_ERROR(store_->Delete(options_.table, user_deletes_).WithContext("forget"));
    }
    // The new due rows are written while the results are acked: both land
    // before the states that point at them. (A return below waits for it.)
    std::future<Status> due_put;
    if (!due_puts_.empty()) {
      due_put = std::async(std::launch::async, [this] {
        return store_->Put(options_.due_table, due_puts_).WithContext("due write");
      });
    }
    for (const ResultMessage& r : results_) {
      SEG_RETURN_IF_ERROR(r.tombstone ? producer_->ProduceTombstone(options_.results_topic, r.key)
                                      : producer_->Produce(options_.results_topic, r.key, r.value));
    }
    SEG_RETURN_IF_ERROR(producer_->Flush(std::chrono::seconds(30)).WithContext("results"));
    if (due_put.valid()) SEG_RETURN_IF_ERROR(due_put.get());
    if (!state_puts_.empty()) {
      SEG_RETURN_IF_ERROR(store_->Put(options_.table, state_puts_).WithContext("state write"));
    }
    due_deletes_.insert(due_deletes_.end(), fired_due_.begin(), fired_due_.end());
    if (!due_deletes_.empty()) {
      // A fired row is also the previous due row of its user: delete it
      // once, as the exact cell the scan read (a whole-row delete is a read
      // and a delete in the store; the exact one only a delete).
      auto by_row = [](const store::RowDelete& a, const store::RowDelete& b) {
        return a.row < b.row || (a.row == b.row && a.columns.size() > b.columns.size());
      };
      std::sort(due_deletes_.begin(), due_deletes_.end(), by_row);
      due_deletes_.erase(std::unique(due_deletes_.begin(), due_deletes_.end(),
                                     [](const store::RowDelete& a, const store::RowDelete& b) {
                                       return a.row == b.row;
                                     }),
                         due_deletes_.end());
      // Off the critical path: a delete that fails or never happens (crash)
      // leaves a row that fires early, which is harmless.
      recently_fired_[1] = std::move(recently_fired_[0]);
      recently_fired_[0].clear();
      for (const store::RowDelete& d : due_deletes_) recently_fired_[0].push_back(d.row);
      due_delete_ = std::async(std::launch::async, [store = store_, table = options_.due_table,
                                                    rows = std::move(due_deletes_)] {
        return store->Delete(table, rows);
      });
      due_deletes_.clear();
    }
    const int64_t done_ms = clock_->NowMs();
    for (const PendingUser& p : pending_) {
      if (skip_cache_) {
        if (p.kinds & kForget) {
          skip_cache_->Forget(p.user_id);
        } else if (!(p.kinds & kBotExit)) {
          skip_cache_->RecordRead(p.user_id, read_started_tick);
        }
      }
      if ((p.kinds & kWrite) && p.newest_event_ms > 0) {
        metrics_.e2e.Observe((done_ms - p.newest_event_ms) / 1e3);
      }
    }

    stats_snapshot_.bots_flagged += batch_counts_.bot_exits;
    stats_snapshot_.forgotten += batch_counts_.forgotten;
    stats_snapshot_.definition_changes += batch_counts_.definition;
    stats_snapshot_.scheduled += batch_counts_.scheduled;
    stats_snapshot_.stale_memberships += batch_counts_.stale;
    stats_snapshot_.stats_recounts += batch_counts_.recounted;
    metrics_.recounts.Inc(static_cast<double>(batch_counts_.recounted));
    stats_snapshot_.segmented += batch_counts_.segmented;
    stats_snapshot_.results_published += static_cast<int64_t>(results_.size());
    stats_snapshot_.stats_updates += static_cast<int64_t>(updates_.size());
    metrics_.segmented.Inc(static_cast<double>(batch_counts_.segmented));
    metrics_.results.Inc(static_cast<double>(results_.size()));
    metrics_.bot_exits.Inc(static_cast<double>(batch_counts_.bot_exits));
    metrics_.forgotten.Inc(static_cast<double>(batch_counts_.forgotten));
    metrics_.definition.Inc(static_cast<double>(batch_counts_.definition));
    metrics_.scheduled.Inc(static_cast<double>(batch_counts_.scheduled));
    metrics_.stale.Inc(static_cast<double>(batch_counts_.stale));
    return Status::OK();
  }

  // Re-segments the owned partitions' users whose due time has passed, at
  // most due_batch_users per partition; their due rows go once processed,
  // so a failure or a crash fires them again. Returns the users fired.
  int FireDue() {
    const int64_t now = clock_->NowMs();
    next_due_scan_ms_ = now + options_.due_scan_interval_ms;
    pending_.clear();
    pending_index_.clear();
    fired_due_.clear();
    due_ids_.clear();
    const int64_t fire_until = FireHorizon(now);
    DueRound round = due_scanner_.Next(fire_until, owned_);
    bool more = round.partitions_left;
    bool capped = false;
    DueOutcome outcome;
    for (DueRound::Partition& part : round.partitions) {
      if (!part.status.ok()) {
        metrics_.due_scan_failures.Inc();
        LOG_EVERY_N(WARNING, 10) << "due scan of partition " << part.partition << ": "
                                 << part.status;
        continue;
      }
      more |= part.more;
      const std::string* last = nullptr;
      for (const store::RowResult& row : part.rows) {
        if (pending_.size() >= static_cast<size_t>(options_.batch_max_notices)) {
          capped = more = true;  // a group as large as a notice group; the rest next round
          break;
        }
        last = &row.row();
        // Fired by one of the last two rounds, its delete not yet seen by
        // the scan (it may have read before the delete landed).
        if (RecentlyFired(row.row())) continue;
        int32_t p = 0;
        int64_t due_ms = 0;
        std::string_view user;
        FireRow(row);
        if (!ParseDueRowKey(row.row(), &p, &due_ms, &user)) continue;  // not ours: dropped
        metrics_.schedule_lateness.Observe((now - due_ms) / 1e3);
        // While blacklisted a bot has no membership to move; its next
        // event after the blacklist re-evaluates it.
        if (blacklist_ && blacklist_->IsBlacklisted(user)) continue;
        const std::string& id = due_ids_.emplace_back(user);
        auto [it, inserted] = pending_index_.emplace(id, pending_.size());
        PendingUser add{id, 0, 0, 0, p, kSchedule};
        if (inserted) {
          pending_.push_back(add);
        } else {
          pending_[it->second].Add(add);
        }
      }
      if (!part.more && !capped) {
        outcome.complete.push_back(part.partition);
      } else if (last != nullptr) {
        outcome.last_processed[part.partition] = *last;
      }
    }
    // A backlog: scan the next round while this one is processed.
    if (more) due_scanner_.Prefetch(round.now, outcome, owned_, fire_until);
    Status s = fired_due_.empty() ? Status::OK() : ProcessSurvivors(now);
    if (stats::IsEpochChange(s)) s = ProcessSurvivors(now);  // counting them afresh
    if (!s.ok()) {
      due_scanner_.DropPrefetch();
      metrics_.due_scan_failures.Inc();
      LOG(WARNING) << "due users not processed, retrying at the next scan: " << s;
      return 0;
    }
    due_scanner_.Apply(round.now, outcome);
    if (more) next_due_scan_ms_ = now;  // a backlog: go on after the next poll
    return static_cast<int>(pending_.size());
  }

  // Due rows fire up to this time: now, held back to the ingest watermark
  // (an event that arrived before it is stored), but never more than
  // due_max_hold_ms. The watermark row is read at most every 200 ms.
  int64_t FireHorizon(int64_t now) {
    constexpr int64_t kRefreshMs = 200;
    if (options_.due_max_hold_ms == 0) return now;
    if (now - horizon_read_ms_ >= kRefreshMs) {
      store::GetRequest get;
      get.row.assign(kIngestWatermarkRow);
      get.families = {options_.due_family};
      StatusOr<store::RowResult> row = store_->Get(options_.due_table, get);
      if (row.ok()) {
        horizon_read_ms_ = now;
        std::vector<std::pair<std::string_view, std::string_view>> cells;
        for (store::CellView cell : *row) cells.emplace_back(cell.qualifier, cell.value);
        ingest_horizon_ = ComputeIngestHorizon(cells);
      } else {
        metrics_.due_scan_failures.Inc();
        LOG_EVERY_N(WARNING, 10) << "ingest watermark: " << row.status();  // the last one holds
      }
    }
    int64_t until = now;
    if (ingest_horizon_.published) {
      const int64_t horizon = ingest_horizon_.ms == std::numeric_limits<int64_t>::min()
                                  ? ingest_horizon_.ms
                                  : ingest_horizon_.ms - options_.due_allowed_lateness_ms;
      until = std::min(now, horizon);
      if (until < now - options_.due_max_hold_ms) {
        until = now - options_.due_max_hold_ms;
        metrics_.due_hold_capped.Inc();
        LOG_EVERY_N(WARNING, 60) << "due users fire past the ingest watermark: it is "
                                 << (ingest_horizon_.missing.empty()
                                         ? std::to_string((now - ingest_horizon_.ms) / 1000) +
                                               " s old"
                                         : "missing for " + ingest_horizon_.missing)
                                 << ", beyond segmenter.schedule.max_hold_ms "
                                 << options_.due_max_hold_ms << " (is ingest down?)";
      }
    }
    metrics_.due_hold.Set(double(now - until) / 1e3);
    return until;
  }

  // Deletes the cell the scan read once its user is processed; a cell
  // rewritten since (a newer version) stays.
  void FireRow(const store::RowResult& row) {
    store::RowDelete& d = fired_due_.emplace_back();
    d.row = row.row();
    if (row.size() != 1) return;  // not the one cell the node writes: the whole row
    store::CellView cell = row.cell(0);
    store::DeleteColumn& column = d.columns.emplace_back();
    column.family.assign(cell.family);
    column.qualifier.emplace(cell.qualifier);
    column.timestamp = cell.timestamp;
    column.all_versions = false;
  }

  bool RecentlyFired(const std::string& row) const {
    for (const std::vector<std::string>& fired : recently_fired_) {
      if (std::binary_search(fired.begin(), fired.end(), row)) return true;
    }
    return false;
  }

  // One multi-get: per user, the newest events of the history window and the state cell.
  Status ReadRows(int64_t now) {
    gets_.resize(pending_.size() * 2);
    for (size_t i = 0; i < pending_.size(); ++i) {
      store::GetRequest& events = gets_[2 * i];
      events.row.assign(pending_[i].user_id);
      events.families = {options_.events_family};
      events.time_range.min = now - int64_t{options_.history_days} * kDayMs;
      // Forget and a bot's exit need only the state; one cell keeps a bot's
      // huge row off the wire.
      events.newest_cells =
          (pending_[i].kinds & (kForget | kBotExit)) ? 1 : options_.max_events_per_user;
      store::GetRequest& state = gets_[2 * i + 1];
      state.row.assign(pending_[i].user_id);
      state.families = {options_.state_family};
      state.qualifiers = {std::string(kStateQualifier)};
    }
    int64_t t0 = clock_->MonotonicUs();
    if (options_.unbatched_reads) {
      // Benchmark baseline (NodeOptions::unbatched_reads): a round trip per user.
      rows_.resize(gets_.size());
      for (size_t i = 0; i < gets_.size(); ++i) {
        SEG_ASSIGN_OR_RETURN(rows_[i], store_->Get(options_.table, gets_[i]));
      }
    } else {
      SEG_RETURN_IF_ERROR(store_->MultiGet(options_.table, gets_, &rows_).WithContext("multi-get"));
    }
    metrics_.store_latency.Observe((clock_->MonotonicUs() - t0) / 1e6);
    return Status::OK();
  }

  Status SegmentUser(size_t i, int64_t now) {
    const PendingUser& p = pending_[i];
    SegmentState previous;
    const store::RowResult& state_row = rows_[2 * i + 1];
    if (!state_row.empty()) {
      store::CellView cell = state_row.cell(0);
      if (!previous.ParseFromArray(cell.value.data(), static_cast<int>(cell.value.size()))) {
        LOG_EVERY_N(WARNING, 100) << "unreadable state for a user; treating as new";
        previous.Clear();
      }
    }
    if (p.kinds & kForget) return Forget(p, previous, now);
    if (p.kinds & kBotExit) return ExitBot(p, previous, now);

    const store::RowResult& event_row = rows_[2 * i];
    if (!(p.kinds & kWrite) && event_row.empty() && state_row.empty()) {
      return Status::OK();  // nothing stored (e.g. forgotten since): nothing to recreate
    }
    events_.resize(event_row.size());
    metrics_.cells_read.Inc(double(event_row.size()));
    size_t n = 0;
    int64_t watermark = 0;
    int64_t oldest = kNever;
    for (store::CellView cell : event_row) {
      if (!DecodeEventCell(cell.qualifier, cell.value, &events_[n]).ok()) {
        metrics_.bad_cells.Inc();
        continue;
      }
      watermark = std::max(watermark, events_[n].time_ms);
      oldest = std::min(oldest, events_[n].time_ms);
      ++n;
    }
    // Cells come in qualifier order, which is time order (common/event_codec.h).
    std::span<const EventView> history(events_.data(), n);
    // Behaviour only a row shows (client rotation, crawl cadence); a
    // scheduled or backfill evaluation brings no new behaviour.
    if (blacklist_ && (p.kinds & kWrite)) {
      auto decision = blacklist_->ObserveRow(p.user_id, history, now);
      if (decision == BotBlacklist::Decision::kNewlyBlacklisted) {
        pending_[i].kinds |= kBotExit;  // a retried batch goes straight to ExitBot
        return ExitBot(pending_[i], previous, now);
      }
      if (decision == BotBlacklist::Decision::kBlacklisted) return Status::OK();
    }
    evaluation_.segments.clear();
    evaluation_.failed_scripts.clear();
    evaluation_.failed_segments.clear();
    evaluation_.next_change_ms = kNever;
    SEG_RETURN_IF_ERROR(evaluator_->Evaluate(p.user_id, history, now, &evaluation_));
    ++batch_counts_.segmented;
    if (p.kinds & kSchedule) ++batch_counts_.scheduled;
    if (p.kinds & kDefinition) ++batch_counts_.definition;

    // Marks counted under another (or an unknown) stats epoch are void
    // (Redis lost data): count again.
    const std::optional<std::string_view> epoch = stats_->Epoch(p.user_id);
    std::vector<std::string> void_marks;
    if (epoch && (epoch->empty() || previous.counted_epoch() != *epoch) &&
        previous.counted_size() > 0) {
      void_marks = TakeVoidMarks(&previous);
      ++batch_counts_.recounted;
    }
    // A failed script keeps what it said before: no exit (or entry) from a failure.
    const std::vector<std::string> current =
        KeepFailedSegments(previous, evaluation_.segments, evaluation_.failed_segments);
    MembershipChange change = DiffMembership(previous, current, DayOf(now));
    const bool is_new = state_row.empty();
    // New events follow publish_every_segmentation; time and definitions
    // speak only when they moved the membership.
    const bool publish = (p.kinds & kWrite)
                             ? (options_.publish_every_segmentation || is_new || change.changed())
                             : change.changed();
    SegmentState next = NextState(previous, current, change, DayOf(now));
    if (epoch) next.set_counted_epoch(std::string(*epoch));
    next.set_seq(previous.seq());
    if (publish) {
      SegmentationResult result;
      result.set_user_id(std::string(p.user_id));
      for (const auto& s : current) result.add_segments(s);
      for (const auto& s : change.entered) result.add_entered(s);
      for (const auto& s : change.exited) result.add_exited(s);
      result.set_data_watermark_ms(watermark);
      result.set_segmented_at_ms(now);
      result.set_script_set_version(evaluator_->ScriptSetVersion());
      result.set_reason((p.kinds & kWrite)        ? SEGMENTED
                        : (p.kinds & kDefinition) ? DEFINITION_CHANGE
                                                  : SCHEDULE);
      for (const auto& s : evaluation_.failed_scripts) result.add_failed_scripts(s);
      next.set_seq(NextSeq(previous.seq(), now));
      result.set_seq(next.seq());
      results_.push_back(ResultMessage{std::string(p.user_id), result.SerializeAsString()});
    }
    if (!change.to_count.empty() || !void_marks.empty()) {
      StatsUpdate& update = updates_.emplace_back();
      update.user_id.assign(p.user_id);
      for (const auto& segment : change.to_count)
        update.segment_days.emplace_back(segment, DayOf(now));
      RecountVoidMarks(void_marks, DayOf(now), &next, &update.segment_days);
    } else if (epoch && next.counted_size() > 0) {
      updates_.emplace_back().user_id.assign(p.user_id);  // its epoch is checked
    }
    TrackStaleness(p, previous, now, &next);
    next.set_script_set_version(evaluator_->ScriptSetVersion());
    next.set_segmented_at_ms(now);
    next.set_data_watermark_ms(std::max(watermark, previous.data_watermark_ms()));

    // When could this answer change with no new event? The scripts' windows,
    // the oldest event leaving the history, a failed script's next try.
    int64_t due = evaluation_.next_change_ms;
    if (oldest != kNever) {
      due = std::min(due, oldest + int64_t{options_.history_days} * kDayMs);
    }
    if (!evaluation_.failed_scripts.empty()) due = std::min(due, now + options_.failure_recheck_ms);
    if (due != kNever) due = std::max(due, now + options_.min_due_delay_ms);
    SetDue(p, previous, due, now, &next);

    PutState(p.user_id, next, now);
    return Status::OK();
  }

  // Failing scripts' first failure times; past max_stale_ms the kept
  // membership is counted and logged for an alert.
  void TrackStaleness(const PendingUser& p, const SegmentState& previous, int64_t now,
                      SegmentState* next) {
    next->clear_stale_since_ms();
    for (const std::string& script : evaluation_.failed_scripts) {
      auto it = previous.stale_since_ms().find(script);
      const int64_t since = it == previous.stale_since_ms().end() ? now : it->second;
      (*next->mutable_stale_since_ms())[script] = since;
      if (now - since > options_.max_stale_ms) {
        ++batch_counts_.stale;
        LOG_EVERY_N(WARNING, 100) << "stale membership: script " << script
                                  << " has failed for user " << p.user_id << " since " << since
                                  << " (" << (now - since) / 1000 << " s, scripts.max_stale_ms "
                                  << options_.max_stale_ms << ")";
      }
    }
  }

  void PutState(std::string_view user_id, const SegmentState& state, int64_t now) {
    store::RowPut& put = state_puts_.emplace_back();
    put.row.assign(user_id);
    put.cells.push_back(store::Cell{options_.state_family, std::string(kStateQualifier), now,
                                    state.SerializeAsString()});
  }

  // The user's due row that `state` records.
  void DeleteDueRow(const SegmentState& state, std::string_view user_id) {
    due_deletes_.push_back(
        store::RowDelete{DueRowKey(state.due_partition(), state.due_ms(), user_id), {}});
  }

  // Replaces the user's due row (if it moved) and records it in `next`.
  void SetDue(const PendingUser& p, const SegmentState& previous, int64_t due, int64_t now,
              SegmentState* next) {
    const int32_t partition = p.partition >= 0 ? p.partition : previous.due_partition();
    const bool had = previous.due_ms() > 0;
    // An earlier due row still in the future stays: early only costs one
    // evaluation, while moving it costs a put and a delete (a script using
    // now_ms would otherwise move it on every notice).
    const bool keep_earlier = had && due != kNever && previous.due_ms() <= due &&
                              previous.due_ms() > now && partition == previous.due_partition();
    const bool same =
        keep_earlier || (had && due == previous.due_ms() && partition == previous.due_partition());
    if (same) {
      next->set_due_ms(previous.due_ms());
      next->set_due_partition(previous.due_partition());
      return;
    }
    if (had) DeleteDueRow(previous, p.user_id);
    if (due == kNever || partition < 0) {
      next->clear_due_ms();
      next->clear_due_partition();
      return;
    }
    store::RowPut& put = due_puts_.emplace_back();
    put.row = DueRowKey(partition, due, p.user_id);
    put.cells.push_back(store::Cell{options_.due_family, "u", store::kLatestTimestamp, ""});
    next->set_due_ms(due);
    next->set_due_partition(partition);
  }

  // A newly blacklisted user leaves its segments once (reason BOT) and its
  // state says so; while blacklisted it gets no results and fires no due
  // time; its next segmentation afterwards enters it again.
  Status ExitBot(const PendingUser& p, const SegmentState& previous, int64_t now) {
    ++batch_counts_.bot_exits;
    SegmentationResult result;
    result.set_user_id(std::string(p.user_id));
    result.set_bot(true);
    result.set_reason(BOT);
    result.set_segmented_at_ms(now);
    result.set_data_watermark_ms(previous.data_watermark_ms());
    result.set_script_set_version(evaluator_->ScriptSetVersion());
    for (const auto& s : previous.segments()) result.add_exited(s);
    SegmentState next = previous;
    next.clear_segments();
    next.set_bot(true);
    next.set_segmented_at_ms(now);
    next.set_seq(NextSeq(previous.seq(), now));
    result.set_seq(next.seq());
    results_.push_back(ResultMessage{std::string(p.user_id), result.SerializeAsString()});
    SetDue(p, previous, kNever, now, &next);
    PutState(p.user_id, next, now);
    return Status::OK();
  }

  // Deletes the user's row (every family) and due row, drops its cache
  // entry (after the writes) and publishes a tombstone. Cells written later
  // with older timestamps stay masked on HBase until a major compaction.
  Status Forget(const PendingUser& p, const SegmentState& previous, int64_t now) {
    ++batch_counts_.forgotten;
    user_deletes_.push_back(store::RowDelete{std::string(p.user_id), {}, now});
    if (previous.due_ms() > 0) DeleteDueRow(previous, p.user_id);
    if (options_.forget_tombstones) {
      results_.push_back(ResultMessage{std::string(p.user_id), "", /*tombstone=*/true});
    }
    return Status::OK();
  }

  NodeOptions options_;
  store::Store* store_;
  Evaluator* evaluator_;
  StatsSink* stats_;
  Clock* clock_;
  FollowUpRule follow_up_rule_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::unique_ptr<SkipCache> skip_cache_;
  std::unique_ptr<BotBlacklist> blacklist_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> reload_{false};
  bool closed_ = false;
  NodeStats stats_snapshot_;
  NodeMetrics metrics_;

  std::deque<QueuedBatch> queue_;  // poll order
  int64_t queued_notices_ = 0;
  // Leading edge: batches whose q.lead is not read yet; users (by FollowKey,
  // a collision only delays a user) queued in some q.pending, with counts;
  // the clock time of recent read ticks, tick order.
  int leads_queued_ = 0;
  std::unordered_map<uint64_t, int32_t> follow_ups_;
  struct ReadStart {
    int64_t tick;
    int64_t ms;
  };
  static constexpr int64_t kReadStartsKeptMs = 1000;
  std::deque<ReadStart> read_starts_;
  int64_t last_commit_mono_ms_ = 0;
  // Reused across batches so steady state allocates little.
  ChangeNotice notice_;
  std::vector<PendingUser> pending_;  // the group being processed
  std::unordered_map<std::string_view, size_t> pending_index_;
  std::vector<store::GetRequest> gets_;
  std::vector<store::RowResult> rows_;
  std::vector<EventView> events_;
  Evaluation evaluation_;
  std::vector<ResultMessage> results_;
  std::vector<StatsUpdate> updates_;
  std::vector<store::RowPut> state_puts_;
  std::vector<store::RowPut> due_puts_;
  std::vector<store::RowDelete> due_deletes_;
  std::future<Status> due_delete_;  // the last group's due deletes, in flight
  std::vector<store::RowDelete> user_deletes_;
  struct BatchCounts {
    int64_t segmented = 0, scheduled = 0, definition = 0, forgotten = 0, bot_exits = 0, stale = 0,
            recounted = 0;
  } batch_counts_;

  // Schedule: the user-changes partitions this node owns and their due scan.
  std::set<int32_t> owned_;
  int64_t next_due_scan_ms_ = 0;
  IngestHorizon ingest_horizon_;                                       // as last read
  int64_t horizon_read_ms_ = std::numeric_limits<int64_t>::min() / 2;  // when
  DueScanner due_scanner_;
  AppendLog append_log_;  // when each owned partition's notices were known appended
  int64_t tick_ = 1;      // AppendLog's order: watermark samples and read starts
  // The due rows the last two rounds fired, sorted: their deletes may still
  // be in flight when a scan reads (prefetched one round ahead).
  std::vector<std::string> recently_fired_[2];
  std::deque<std::string> due_ids_;          // ids of fired users (pending_ views them)
  std::vector<store::RowDelete> fired_due_;  // due rows to delete once processed
};

}  // namespace

StatusOr<std::unique_ptr<Node>> CreateNode(const NodeOptions& options, store::Store* store,
                                           Evaluator* evaluator, StatsSink* stats, Clock* clock) {
  if (store == nullptr || evaluator == nullptr || stats == nullptr) {
    return InvalidArgumentError("segmenter node needs a store, an evaluator and a stats sink");
  }
  auto node =
      std::make_unique<NodeImpl>(options, store, evaluator, stats, clock ? clock : Clock::Real());
  SEG_RETURN_IF_ERROR(node->Init());
  return std::unique_ptr<Node>(std::move(node));
}

}  // namespace seg::segmenter

// The ingest loop: one batch at a time, offsets committed only after the
// store, the change notices and the dead letters are all acknowledged.
//
// Order inside a batch (see ingest.h for the contract):
//   poll -> decode/validate -> produce dead letters (in flight meanwhile)
//   -> Put (retry forever with backoff) -> Publish notices (retry)
//   -> wait for dead-letter acks (re-produce failures) -> store offsets,
//   commit.
// A stop request during a retry returns Cancelled before the commit, so the
// batch is re-read by whoever consumes the partitions next.
#include <glog/logging.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "coprocessor-bridge/bridge.h"
#include "ingest/ingest.h"
#include "ingest/internal/watermark.h"
#include "proto/events.pb.h"

namespace seg::ingest {
namespace {
Status CheckOptions(const IngestOptions& o);
}  // namespace

Status IngestOptions::LoadFrom(Config& config) {
  SEG_RETURN_IF_ERROR(kafka.LoadFrom(config, "kafka"));
  SEG_RETURN_IF_ERROR(config.Get("topics.events", &events_topic));
  SEG_RETURN_IF_ERROR(config.Get("topics.deadletter", &deadletter_topic));
  SEG_RETURN_IF_ERROR(config.Get("topics.changes", &changes_topic));
  SEG_RETURN_IF_ERROR(config.Get("ingest.group_id", &group_id));
  SEG_RETURN_IF_ERROR(config.Get("ingest.batch_max_events", &batch_max_events));
  SEG_RETURN_IF_ERROR(config.Get("ingest.batch_max_ms", &batch_max_ms));
  SEG_RETURN_IF_ERROR(config.Get("ingest.batch_idle_ms", &batch_idle_ms));
  SEG_RETURN_IF_ERROR(config.Get("tables.users.name", &table));
  SEG_RETURN_IF_ERROR(config.Get("tables.users.events_family", &family));
  SEG_RETURN_IF_ERROR(config.Get("ingest.max_poll_interval_ms", &max_poll_interval_ms));
  SEG_RETURN_IF_ERROR(config.Get("ingest.produce_timeout_ms", &produce_timeout_ms));
  SEG_RETURN_IF_ERROR(config.Get("ingest.sync_commit", &sync_commit));
  SEG_RETURN_IF_ERROR(config.Get("ingest.max_batches_in_flight", &max_batches_in_flight));
  SEG_RETURN_IF_ERROR(config.Get("ingest.store_put_parallelism", &store_put_parallelism));
  SEG_RETURN_IF_ERROR(config.Get("ingest.store_backoff.initial_ms", &store_backoff.initial_ms));
  SEG_RETURN_IF_ERROR(config.Get("ingest.store_backoff.max_ms", &store_backoff.max_ms));
  SEG_RETURN_IF_ERROR(config.Get("ingest.shutdown_timeout_ms", &shutdown_timeout_ms));
  SEG_RETURN_IF_ERROR(config.Get("ingest.notices.enabled", &notices_enabled));
  SEG_RETURN_IF_ERROR(config.Get("ingest.watermark.enabled", &watermark_enabled));
  SEG_RETURN_IF_ERROR(config.Get("ingest.watermark.interval_ms", &watermark_interval_ms));
  SEG_RETURN_IF_ERROR(config.Get("tables.due.name", &watermark_table));
  SEG_RETURN_IF_ERROR(config.Get("tables.due.family", &watermark_family));
  SEG_RETURN_IF_ERROR(validation.LoadFrom(config, "ingest.validation"));
  return CheckOptions(*this).WithContext(config.source());
}

namespace {

Status CheckOptions(const IngestOptions& o) {
  if (o.events_topic.empty() || o.deadletter_topic.empty() || o.changes_topic.empty()) {
    return InvalidArgumentError("ingest: topic names must not be empty");
  }
  if (o.group_id.empty()) return InvalidArgumentError("ingest: empty group_id");
  if (o.batch_max_events <= 0 || o.batch_max_ms <= 0 || o.batch_idle_ms < 0) {
    return InvalidArgumentError(
        "ingest: batch_max_events and batch_max_ms must be positive, batch_idle_ms >= 0");
  }
  if (o.table.empty() || o.family.empty()) {
    return InvalidArgumentError("ingest: empty table or family");
  }
  if (o.watermark_enabled &&
      (o.watermark_interval_ms <= 0 || o.watermark_table.empty() || o.watermark_family.empty())) {
    return InvalidArgumentError(
        "ingest.watermark: interval_ms must be positive, table and family non-empty");
  }
  return Status::OK();
}

// Store errors worth retrying as a whole batch; InvalidArgument is the
// request's fault and gets isolated per row instead.
bool IsRetryable(const Status& s) { return s.code() != StatusCode::kInvalidArgument; }

struct DeadLetterItem {
  size_t message = 0;  // index into the batch's flat message list
  std::string_view reason;
  std::string detail;
};

// One row being built: cells plus the messages that produced them.
struct RowBuild {
  store::RowPut put;
  std::vector<size_t> messages;
};

class IngesterImpl : public Ingester {
 public:
  IngesterImpl(const IngestOptions& options, store::Store* store, const Clock* clock)
      : options_(options),
        store_(store),
        clock_(clock ? clock : Clock::Real()),
        events_in_(metrics::GetCounter("seg_ingest_events_in_total", "Messages consumed")),
        events_written_(metrics::GetCounter("seg_ingest_events_written_total",
                                            "Event cells acknowledged by the store")),
        store_retries_(metrics::GetCounter("seg_ingest_store_retries_total",
                                           "Failed store writes (each retried)")),
        kafka_retries_(metrics::GetCounter("seg_ingest_kafka_retries_total",
                                           "Failed notice/dead-letter deliveries (retried)")),
        commit_failures_(
            metrics::GetCounter("seg_ingest_commit_failures_total", "Offset commits that failed")),
        pauses_(metrics::GetCounter("seg_ingest_consumer_pauses_total",
                                    "Times the consumer was paused while retrying (backpressure)")),
        store_latency_(metrics::GetHistogram("seg_ingest_store_latency_seconds",
                                             "Store Put latency per batch (successful calls)")),
        notice_latency_(metrics::GetHistogram("seg_ingest_produce_latency_seconds",
                                              "Until Kafka acknowledged what a batch produced",
                                              {{"what", "notices"}})),
        deadletter_latency_(metrics::GetHistogram("seg_ingest_produce_latency_seconds",
                                                  "Until Kafka acknowledged what a batch produced",
                                                  {{"what", "deadletters"}})),
        batch_latency_(metrics::GetHistogram("seg_ingest_batch_latency_seconds",
                                             "Poll-to-commit time of a batch")),
        poll_latency_(metrics::GetHistogram(
            "seg_ingest_poll_latency_seconds",
            "Filling a batch, from its first message to the last (bounded by batch_max_ms)")),
        decode_latency_(metrics::GetHistogram("seg_ingest_decode_latency_seconds",
                                              "Decoding, validating and encoding a batch")),
        batch_events_(metrics::GetHistogram(
            "seg_ingest_batch_events", "Messages per batch", {},
            {1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000})),
        batch_rows_(metrics::GetHistogram(
            "seg_ingest_batch_rows", "Rows (users) per store Put", {},
            {1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000})),
        lag_(metrics::GetGauge("seg_ingest_consumer_lag_messages",
                               "Messages behind the high watermark of events")) {}

  ~IngesterImpl() override { Close().IgnoreError(); }  // Close logs its own failures

  Status Init() {
    SEG_RETURN_IF_ERROR(CheckOptions(options_));
    kafka::KafkaOptions consumer_options = options_.kafka;
    // User-given properties win; ours are the defaults.
    consumer_options.properties.emplace("max.poll.interval.ms",
                                        std::to_string(options_.max_poll_interval_ms));
    consumer_options.client_id = options_.kafka.client_id + "-ingest";
    SEG_ASSIGN_OR_RETURN(consumer_, kafka::Consumer::Create(consumer_options, options_.group_id,
                                                            [this](const kafka::RebalanceEvent& e) {
                                                              OnRebalance(e);
                                                            }));
    SEG_RETURN_IF_ERROR(consumer_->Subscribe({options_.events_topic}));
    if (options_.watermark_enabled) {
      SEG_ASSIGN_OR_RETURN(
          watermark_,
          WatermarkPublisher::Create(
              WatermarkOptions{options_.events_topic, options_.watermark_table,
                               options_.watermark_family, options_.watermark_interval_ms},
              consumer_options, consumer_.get(), store_, clock_));
      watermark_->Start();
    }

    // A batch's dead letters and notices are produced at once and then
    // waited for: lingering (the producer's default 5 ms) only delays the
    // acknowledgement. User-given properties win.
    kafka::KafkaOptions dl_options = options_.kafka;
    dl_options.properties.emplace("linger.ms", "1");
    dl_options.client_id = options_.kafka.client_id + "-deadletter";
    SEG_ASSIGN_OR_RETURN(deadletter_producer_, kafka::Producer::Create(dl_options));
    Status prepared = deadletter_producer_->PrepareTopic(
        options_.deadletter_topic,
        std::chrono::milliseconds(std::min<int64_t>(options_.produce_timeout_ms, 2000)));
    if (!prepared.ok()) LOG(WARNING) << "ingest: " << prepared << " (dead letters are retried)";

    kafka::KafkaOptions notice_options = options_.kafka;
    notice_options.properties.emplace("linger.ms", "1");
    notice_options.client_id = options_.kafka.client_id + "-notices";
    bridge::BridgeOptions bridge_options;
    bridge_options.topic = options_.changes_topic;
    bridge_options.publish_timeout_ms = options_.produce_timeout_ms;
    SEG_ASSIGN_OR_RETURN(notifier_,
                         bridge::ChangeNotifier::Create(notice_options, bridge_options, clock_));
    return Status::OK();
  }

  StatusOr<size_t> RunOnce(std::stop_token stop) override {
    if (closed_) return FailedPreconditionError("ingest: closed");
    if (abandoned_) {
      // The consumer's position is past a batch that was never committed;
      // going on would commit over it. The caller must Close() and start a
      // new Ingester (which re-reads from the committed offsets).
      return FailedPreconditionError("ingest: a batch was abandoned; recreate the ingester");
    }
    StatusOr<size_t> result = ProcessBatch(stop);
    if (!result.ok() && in_batch_) abandoned_ = true;
    in_batch_ = false;
    return result;
  }

 private:
  StatusOr<size_t> ProcessBatch(std::stop_token stop) {
    // ---- 1. poll a batch bounded by count and time
    std::vector<kafka::Batch> polled;
    std::vector<const kafka::Message*> messages;
    int64_t start_us = clock_->MonotonicUs();
    auto poll_start = std::chrono::steady_clock::now();
    auto poll_deadline = poll_start + std::chrono::milliseconds(options_.batch_max_ms);
    bool first = true;
    SEG_RETURN_IF_ERROR(ResumeIfPaused());
    // Messages polled ahead during the last write, or while the consumer
    // was paused, come first.
    for (kafka::Batch& carried : carry_) {
      for (const kafka::Message& m : carried) messages.push_back(&m);
      polled.push_back(std::move(carried));
      first = false;
    }
    carry_.clear();
    while (messages.size() < static_cast<size_t>(options_.batch_max_events)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          poll_deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      if (!messages.empty() && options_.batch_idle_ms > 0) {
        left = std::min(left, std::chrono::milliseconds(options_.batch_idle_ms));
      }
      SEG_ASSIGN_OR_RETURN(kafka::Batch batch,
                           consumer_->PollBatch(options_.batch_max_events - messages.size(), left));
      if (batch.empty()) break;
      if (first) {
        // The time bound counts from the first message, not from the wait.
        first = false;
        poll_deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.batch_max_ms);
        start_us = clock_->MonotonicUs();
      }
      for (const kafka::Message& m : batch) messages.push_back(&m);
      polled.push_back(std::move(batch));
    }
    lag_.Set(double(consumer_->Lag()));
    if (messages.empty()) {
      // Idle: finish what is in flight so a quiet stream still commits.
      SEG_RETURN_IF_ERROR(FinishAll(stop));
      return size_t{0};
    }
    in_batch_ = true;
    events_in_.Inc(double(messages.size()));
    batch_events_.Observe(double(messages.size()));

    // ---- 2. decode, validate, encode
    int64_t decode_start_us = clock_->MonotonicUs();
    poll_latency_.Observe(double(decode_start_us - start_us) / 1e6);
    int64_t now_ms = clock_->NowMs();
    std::vector<DeadLetterItem> dead;
    std::vector<RowBuild> rows;
    std::unordered_map<std::string, size_t> row_index;
    Event event;
    store::Cell cell;
    for (size_t i = 0; i < messages.size(); ++i) {
      std::optional<Rejection> rejection =
          DecodeAndValidate(messages[i]->value(), options_.validation, now_ms, &event);
      if (!rejection) {
        Status s = EncodeEventCell(event, options_.family, &cell);
        if (!s.ok()) rejection = Rejection{reason::kBadIp, std::string(s.message())};
      }
      if (rejection) {
        dead.push_back({i, rejection->reason, std::move(rejection->detail)});
        continue;
      }
      auto [it, inserted] = row_index.try_emplace(event.user_id(), rows.size());
      if (inserted) {
        rows.emplace_back();
        rows.back().put.row = event.user_id();
      }
      RowBuild& row = rows[it->second];
      row.put.cells.push_back(std::move(cell));
      row.messages.push_back(i);
      cell = store::Cell();
    }
    // Duplicates inside one batch collapse onto one cell (same qualifier).
    for (RowBuild& row : rows) DedupeCells(&row.put.cells);
    decode_latency_.Observe(double(clock_->MonotonicUs() - decode_start_us) / 1e6);

    // ---- 3. dead letters go out first and fly while the store works
    auto batch = std::make_unique<InFlight>();
    batch->start_us = start_us;
    SEG_RETURN_IF_ERROR(ProduceDeadLetters(messages, dead, stop, &batch->dl_tags));

    // ---- 4. the store write, retried until acknowledged; the previous
    //         batches are finished (and committed) right after it, beyond
    //         max_batches_in_flight, or as soon as the write has to be retried
    SEG_RETURN_IF_ERROR(
        WriteRows(messages, &rows, &dead, &batch->dl_tags, stop, &batch->committed));
    batch->acked_at_ms = clock_->NowMs();
    if (watermark_) {
      // Every message of the batch is stored or dead-lettered: either way
      // nothing below it can still change a row.
      std::map<int32_t, int64_t> next;
      for (const kafka::Message* m : messages) {
        int64_t& n = next[m->partition()];
        n = std::max(n, m->offset() + 1);
      }
      for (const auto& [partition, offset] : next) watermark_->OnStored(partition, offset);
    }
    while (!in_flight_.empty() &&
           static_cast<int32_t>(in_flight_.size()) >= options_.max_batches_in_flight) {
      SEG_RETURN_IF_ERROR(FinishOldest(stop));
    }

    // ---- 5. notices of this batch start flying; steps 6-7 happen in
    //         FinishOldest, during the next batches' writes
    if (options_.notices_enabled && !batch->committed.empty()) {
      auto pending = notifier_->StartPublish(batch->committed, batch->acked_at_ms);
      if (pending.ok()) {
        batch->notices = std::move(pending).value();
      } else {
        LOG_EVERY_N(WARNING, 100) << "ingest: " << pending.status();  // retried in Finish
      }
    }
    batch->polled = std::move(polled);
    batch->messages = std::move(messages);
    batch->dead = std::move(dead);
    size_t n = batch->messages.size();
    in_flight_.push_back(std::move(batch));
    stats_events_in_ += static_cast<int64_t>(n);
    // Fully synchronous mode: finish now.
    if (options_.max_batches_in_flight <= 0) SEG_RETURN_IF_ERROR(FinishAll(stop));
    return n;
  }

  Status FinishAll(std::stop_token stop) {
    while (!in_flight_.empty()) SEG_RETURN_IF_ERROR(FinishOldest(stop));
    return Status::OK();
  }

  // Steps 6-7 of the oldest batch in flight: its notices and dead letters
  // acknowledged (retried until they are), then its offsets stored and
  // committed. Batches finish in order, so commits only move forward.
  Status FinishOldest(std::stop_token stop) {
    if (in_flight_.empty()) return Status::OK();
    InFlight& f = *in_flight_.front();
    if (options_.notices_enabled && !f.committed.empty()) {
      int64_t t0 = clock_->MonotonicUs();
      Status s = f.notices ? f.notices->Wait(std::chrono::milliseconds(wait_limit_ms_))
                           : UnavailableError("notices not produced");
      if (!s.ok() && stop.stop_requested()) {
        // Shutting down: no blocking re-publish; the batch stays uncommitted.
        return CancelledError("ingest: stopped before the change notices were acknowledged: " +
                              std::string(s.message()));
      }
      if (!s.ok()) {
        kafka_retries_.Inc();
        stats_kafka_retries_++;
        LOG_EVERY_N(WARNING, 10) << "ingest: change notices: " << s << "; publishing again";
        SEG_RETURN_IF_ERROR(Retry(stop, options_.kafka_backoff, "publish change notices",
                                  &kafka_retries_, &stats_kafka_retries_,
                                  [&] { return notifier_->Publish(f.committed, f.acked_at_ms); }));
      }
      f.notices.reset();
      notice_latency_.Observe(double(clock_->MonotonicUs() - t0) / 1e6);
      std::unordered_set<std::string_view> users;
      for (const auto& c : f.committed) users.insert(c.row);
      stats_notices_ += static_cast<int64_t>(users.size());
    }
    SEG_RETURN_IF_ERROR(AwaitDeadLetters(f.messages, f.dead, stop, &f.dl_tags));
    for (const kafka::Batch& b : f.polled) {
      Status s = consumer_->StoreOffsets(b);
      if (!s.ok()) LOG(WARNING) << "ingest: store offsets: " << s;
    }
    Status commit = consumer_->Commit(options_.sync_commit);
    if (!commit.ok()) {
      // The stored offsets stay; the next commit (or the revoke) covers them.
      commit_failures_.Inc();
      stats_commit_failures_++;
      LOG_EVERY_N(WARNING, 100) << "ingest: " << commit;
    }
    batch_latency_.Observe(double(clock_->MonotonicUs() - f.start_us) / 1e6);
    stats_batches_++;
    in_flight_.pop_front();
    return Status::OK();
  }

 public:
  Status Run(std::stop_token stop) override {
    while (!stop.stop_requested()) {
      StatusOr<size_t> n = RunOnce(stop);
      if (!n.ok()) {
        if (n.status().code() == StatusCode::kCancelled) break;
        LOG(ERROR) << "ingest: " << n.status();
        Close().IgnoreError();  // Close logs its own failures
        return n.status();
      }
    }
    return Close();
  }

  Status Close() override {
    if (closed_) return Status::OK();
    closed_ = true;
    auto started = std::chrono::steady_clock::now();
    if (!in_flight_.empty() && consumer_) {
      // Finish the batches in flight (their messages precede any abandoned
      // one). One attempt, no retries, within half the shutdown budget; the
      // rest is for the commit and leaving the group.
      wait_limit_ms_ = std::max<int64_t>(
          1, std::min(options_.produce_timeout_ms, options_.shutdown_timeout_ms / 2));
      std::stop_source give_up;
      give_up.request_stop();
      Status s = FinishAll(give_up.get_token());
      if (!s.ok()) LOG(WARNING) << "ingest: last batch left uncommitted (re-read later): " << s;
    }
    carry_.clear();                      // uncommitted: re-read by the next owner
    if (watermark_) watermark_->Stop();  // it asks the consumer, which goes next
    Status commit = consumer_ ? consumer_->Commit(/*sync=*/true) : Status::OK();
    if (!commit.ok()) LOG(WARNING) << "ingest: final commit: " << commit;
    Status close = consumer_ ? consumer_->Close() : Status::OK();
    LOG(INFO) << "ingest: closed in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - started)
                     .count()
              << " ms";
    return commit.ok() ? close : commit;
  }

  IngestStats stats() const override {
    IngestStats s;
    s.batches = stats_batches_.load();
    s.events_in = stats_events_in_.load();
    s.events_written = stats_events_written_.load();
    s.dead_lettered = stats_dead_lettered_.load();
    s.notices = stats_notices_.load();
    s.store_retries = stats_store_retries_.load();
    s.kafka_retries = stats_kafka_retries_.load();
    s.commit_failures = stats_commit_failures_.load();
    s.rebalances = stats_rebalances_.load();
    s.ever_assigned = ever_assigned_.load();
    return s;
  }

 private:
  static void DedupeCells(std::vector<store::Cell>* cells) {
    if (cells->size() < 2) return;
    std::stable_sort(cells->begin(), cells->end(), [](const store::Cell& a, const store::Cell& b) {
      return a.qualifier < b.qualifier;
    });
    // Keep the last of equal qualifiers (the latest delivery).
    size_t out = 0;
    for (size_t i = 0; i < cells->size(); ++i) {
      if (i + 1 < cells->size() && (*cells)[i + 1].qualifier == (*cells)[i].qualifier) continue;
      if (out != i) (*cells)[out] = std::move((*cells)[i]);
      ++out;
    }
    cells->resize(out);
  }

  void OnRebalance(const kafka::RebalanceEvent& e) {
    // Batches still in flight commit when they finish (the adapter commits
    // stored offsets on revoke); a revoked partition's uncommitted messages
    // are re-read by its next owner (rewriting them is harmless: same
    // qualifiers).
    VLOG(1) << "ingest: rebalance kind " << static_cast<int>(e.kind) << " " << e.partitions.size()
            << " partitions";
    if (assigned_once_ && !closed_) stats_rebalances_++;  // not the leave in Close()
    assigned_once_ = true;
    if (e.kind == kafka::RebalanceEvent::Kind::kAssigned) {
      ever_assigned_ = true;
      return;
    }
    // Messages polled ahead for partitions that leave: their next owner
    // reads them from the committed offset; writing them here too would
    // only duplicate cells and notices.
    auto leaving = [&e](const kafka::Message& m) {
      for (const kafka::TopicPartition& tp : e.partitions) {
        if (tp.partition == m.partition() && tp.topic == m.topic()) return true;
      }
      return false;
    };
    size_t dropped = 0;
    for (kafka::Batch& b : carry_) dropped += b.EraseIf(leaving);
    std::erase_if(carry_, [](const kafka::Batch& b) { return b.empty(); });
    if (dropped > 0) {
      LOG(INFO) << "ingest: dropped " << dropped
                << " polled-ahead messages of partitions that left (re-read by their owner)";
    }
  }

  // Runs `fn` until OK, sleeping with backoff in between; Cancelled when
  // `stop` is requested. Never gives up otherwise: data must not be lost.
  template <typename Fn>
  Status Retry(std::stop_token stop, const BackoffOptions& backoff_options, std::string_view what,
               metrics::Counter* counter, std::atomic<int64_t>* stat, Fn fn) {
    Backoff backoff(backoff_options);
    while (true) {
      Status s = fn();
      if (s.ok()) return s;
      if (!IsRetryable(s)) return s;
      counter->Inc();
      stat->fetch_add(1);
      int64_t delay = backoff.NextDelayMs();
      LOG_EVERY_N(WARNING, 10) << "ingest: " << what << " failed (attempt " << backoff.attempts()
                               << "), retrying in " << delay << " ms: " << s;
      if (!SleepFor(stop, delay))
        return CancelledError("ingest: stopped while retrying " + std::string(what));
    }
  }

  // Waits `ms` between retries; false when `stop` was requested. Backpressure:
  // the consumer's partitions are paused (until the next batch's poll) and
  // polled meanwhile, so a store or Kafka outage of any length keeps the
  // member in the group (max.poll.interval.ms) without fetching more.
  bool SleepFor(std::stop_token stop, int64_t ms) {
    if (stop.stop_requested()) return false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    if (!closed_ && consumer_ && !consumer_->paused()) {
      Status p = consumer_->Pause();
      if (p.ok()) {
        pauses_.Inc();
        LOG(INFO) << "ingest: consumer paused while retrying";
      } else {
        LOG(WARNING) << "ingest: " << p;
      }
    }
    while (!stop.stop_requested()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return true;
      if (closed_ || !consumer_ || !consumer_->paused()) {
        std::unique_lock<std::mutex> lock(sleep_mu_);
        sleep_cv_.wait_for(lock, stop, left, [] { return false; });
        continue;
      }
      // Serves rebalances and resets the poll interval; returns messages
      // only from a fetch that raced the pause: they are kept for the next
      // batch (the consumer position is already past them).
      auto batch = consumer_->PollBatch(size_t(options_.batch_max_events),
                                        std::min(left, std::chrono::milliseconds(100)));
      if (!batch.ok()) {
        LOG_EVERY_N(WARNING, 10) << "ingest: poll while paused: " << batch.status();
        std::unique_lock<std::mutex> lock(sleep_mu_);
        sleep_cv_.wait_for(lock, stop, std::min(left, std::chrono::milliseconds(100)),
                           [] { return false; });
      } else if (!batch->empty()) {
        carry_.push_back(std::move(batch).value());
      }
    }
    return false;
  }

  // Polls the next batch's messages into carry_ until the store has
  // answered every chunk in `writes` (or a batch is full): the poll then
  // costs the batch cycle nothing. A rebalance served here is handled as in
  // any poll (OnRebalance drops carried messages of partitions that leave).
  void PollAhead(const std::vector<std::pair<size_t, std::future<Status>>>& writes) {
    if (!consumer_ || consumer_->paused()) return;
    auto writing = [&writes] {
      for (const auto& [chunk, f] : writes) {
        if (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return true;
      }
      return false;
    };
    size_t have = 0;
    for (const kafka::Batch& b : carry_) have += b.size();
    const size_t limit = static_cast<size_t>(options_.batch_max_events);
    while (have < limit && writing()) {
      auto batch = consumer_->PollBatch(limit - have, std::chrono::milliseconds(1));
      if (!batch.ok()) {
        LOG_EVERY_N(WARNING, 10) << "ingest: poll ahead: " << batch.status();
        return;  // the next batch's own poll reports it
      }
      if (batch->empty()) continue;
      have += batch->size();
      carry_.push_back(std::move(batch).value());
    }
  }

  Status ResumeIfPaused() {
    if (!consumer_ || !consumer_->paused()) return Status::OK();
    LOG(INFO) << "ingest: consumer resumed";
    return consumer_->Resume();
  }

  Status ProduceOneDeadLetter(const kafka::Message& m, const DeadLetterItem& item, uint64_t tag) {
    DeadLetter letter;
    letter.set_original(m.value().data(), m.value().size());
    letter.set_reason(std::string(item.reason));
    letter.set_detail(item.detail);
    letter.set_topic(std::string(m.topic()));
    letter.set_partition(m.partition());
    letter.set_offset(m.offset());
    letter.set_rejected_at_ms(clock_->NowMs());
    std::string value;
    letter.SerializeToString(&value);
    kafka::HeaderView headers[] = {{"reason", item.reason}};
    dl_tracked_.insert(tag);
    Status s =
        deadletter_producer_->Produce(options_.deadletter_topic, m.key(), value, headers, tag);
    if (!s.ok()) dl_tracked_.erase(tag);
    return s;
  }

  // Produces dead letters dead[from..]; tags[i] belongs to dead[i].
  Status ProduceDeadLetters(const std::vector<const kafka::Message*>& messages,
                            const std::vector<DeadLetterItem>& dead, std::stop_token stop,
                            std::vector<uint64_t>* tags) {
    for (size_t i = tags->size(); i < dead.size(); ++i) {
      uint64_t tag = ++next_tag_;
      SEG_RETURN_IF_ERROR(
          Retry(stop, options_.kafka_backoff, "produce dead letter", &kafka_retries_,
                &stats_kafka_retries_,
                [&] { return ProduceOneDeadLetter(*messages[dead[i].message], dead[i], tag); }));
      tags->push_back(tag);
    }
    return Status::OK();
  }

  // Waits until every dead letter of the batch is acknowledged,
  // re-producing failed ones.
  Status AwaitDeadLetters(const std::vector<const kafka::Message*>& messages,
                          const std::vector<DeadLetterItem>& dead, std::stop_token stop,
                          std::vector<uint64_t>* tags) {
    if (dead.empty()) return Status::OK();
    int64_t t0 = clock_->MonotonicUs();
    std::unordered_map<uint64_t, size_t> waiting;  // tag -> index into dead
    for (size_t i = 0; i < tags->size(); ++i) waiting.emplace((*tags)[i], i);
    Backoff backoff(options_.kafka_backoff);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_limit_ms_);
    while (!waiting.empty()) {
      // Reports of every batch's dead letters arrive on one queue: stash them.
      for (const kafka::DeliveryReport& r :
           deadletter_producer_->PollDeliveries(std::chrono::milliseconds(1))) {
        if (dl_tracked_.erase(r.tag)) dl_reports_[r.tag] = r.status;
      }
      std::vector<size_t> failed;
      for (auto it = waiting.begin(); it != waiting.end();) {
        auto report = dl_reports_.find(it->first);
        if (report == dl_reports_.end()) {
          ++it;
          continue;
        }
        if (report->second.ok()) {
          const DeadLetterItem& item = dead[it->second];
          metrics::GetCounter("seg_ingest_deadletters_total",
                              "Messages delivered to the dead-letter topic, by reason",
                              {{"reason", std::string(item.reason)}})
              .Inc();
          stats_dead_lettered_++;
        } else {
          LOG_EVERY_N(WARNING, 100) << "ingest: dead letter delivery failed: " << report->second;
          failed.push_back(it->second);
        }
        dl_reports_.erase(report);
        it = waiting.erase(it);
      }
      if (std::chrono::steady_clock::now() >= deadline && !waiting.empty() &&
          stop.stop_requested()) {
        for (const auto& [tag, index] : waiting) dl_tracked_.erase(tag);
        return CancelledError("ingest: stopped before the dead letters were acknowledged");
      }
      if (std::chrono::steady_clock::now() >= deadline && !waiting.empty()) {
        // Still unacknowledged: produce them again (the old attempts'
        // reports are dropped; a duplicate dead letter is harmless).
        for (const auto& [tag, index] : waiting) {
          dl_tracked_.erase(tag);
          failed.push_back(index);
        }
        waiting.clear();
        deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_limit_ms_);
      }
      if (failed.empty()) continue;
      kafka_retries_.Inc(double(failed.size()));
      stats_kafka_retries_ += static_cast<int64_t>(failed.size());
      if (!SleepFor(stop, backoff.NextDelayMs())) {
        for (const auto& [tag, index] : waiting) dl_tracked_.erase(tag);
        return CancelledError("ingest: stopped retrying dead letters");
      }
      for (size_t index : failed) {
        uint64_t tag = ++next_tag_;
        SEG_RETURN_IF_ERROR(Retry(stop, options_.kafka_backoff, "produce dead letter",
                                  &kafka_retries_, &stats_kafka_retries_, [&] {
                                    return ProduceOneDeadLetter(*messages[dead[index].message],
                                                                dead[index], tag);
                                  }));
        waiting.emplace(tag, index);
      }
    }
    deadletter_latency_.Observe(double(clock_->MonotonicUs() - t0) / 1e6);
    return Status::OK();
  }

  // Writes the rows, retrying retryable failures forever. Rows the store
  // rejects as invalid become dead letters (reason store_rejected). Fills
  // *committed with what the store acknowledged.
  Status WriteRows(const std::vector<const kafka::Message*>& messages, std::vector<RowBuild>* rows,
                   std::vector<DeadLetterItem>* dead, std::vector<uint64_t>* dl_tags,
                   std::stop_token stop, std::vector<bridge::CommittedRow>* committed) {
    if (rows->empty()) return Status::OK();
    batch_rows_.Observe(double(rows->size()));
    // Rows are split into a few chunks written concurrently (each row stays
    // atomic; a batch across rows never was): the store serves each
    // connection on its own thread, so the write uses more than one core.
    size_t parallel = options_.unbatched_puts ? 1 : std::max(1, options_.store_put_parallelism);
    if (rows->size() < 256) parallel = 1;
    size_t per = (rows->size() + parallel - 1) / parallel;
    parallel = (rows->size() + per - 1) / per;
    std::vector<std::vector<store::RowPut>> chunks(parallel);
    for (size_t g = 0; g < rows->size(); ++g) chunks[g / per].push_back(std::move((*rows)[g].put));
    auto row_at = [&](size_t g) -> const store::RowPut& { return chunks[g / per][g % per]; };

    auto put_one = [&](const std::vector<store::RowPut>& batch) -> Status {
      if (!options_.unbatched_puts) return store_->Put(options_.table, batch);
      std::vector<store::RowPut> one(1);
      for (const store::RowPut& p : batch) {
        for (const store::Cell& c : p.cells) {
          one[0].row = p.row;
          one[0].cells.assign(1, c);
          SEG_RETURN_IF_ERROR(store_->Put(options_.table, one));
        }
      }
      return Status::OK();
    };
    std::vector<bool> chunk_done(parallel, false);
    // The first attempt writes every chunk on other threads while this one
    // finishes the batches beyond max_batches_in_flight (waits for their
    // notices, commits) and then polls the next batch's messages: both used
    // to follow the write. Retries write chunk 0 here.
    const bool overlap = options_.max_batches_in_flight > 0 &&
                         static_cast<int32_t>(in_flight_.size()) >= options_.max_batches_in_flight;
    bool first_attempt = true;
    Status overlapped;
    auto put_chunks = [&]() -> Status {
      int64_t t0 = clock_->MonotonicUs();
      std::vector<std::pair<size_t, std::future<Status>>> futures;
      for (size_t c = first_attempt ? 0 : 1; c < parallel; ++c) {
        if (chunk_done[c]) continue;
        futures.emplace_back(c, std::async(std::launch::async,
                                           [&put_one, &chunks, c] { return put_one(chunks[c]); }));
      }
      Status first;
      if (first_attempt) {
        first_attempt = false;
        while (overlap && overlapped.ok() && !in_flight_.empty() &&
               static_cast<int32_t>(in_flight_.size()) >= options_.max_batches_in_flight) {
          overlapped = FinishOldest(stop);
        }
        PollAhead(futures);
      } else if (!chunk_done[0]) {
        first = put_one(chunks[0]);
        chunk_done[0] = first.ok();
      }
      for (auto& [c, f] : futures) {
        Status r = f.get();
        chunk_done[c] = r.ok();
        if (!r.ok() && first.ok()) first = r;
      }
      if (first.ok()) store_latency_.Observe(double(clock_->MonotonicUs() - t0) / 1e6);
      return first;
    };

    Status s = Retry(stop, options_.store_backoff, "store put", &store_retries_,
                     &stats_store_retries_, [&] {
                       Status r = put_chunks();
                       if (!r.ok() && IsRetryable(r) && !in_flight_.empty()) {
                         // Do not hold the previous batches hostage to
                         // this outage: finish and commit them now.
                         Status f = FinishAll(stop);
                         if (!f.ok()) {
                           LOG_EVERY_N(WARNING, 10) << "ingest: " << f;
                         }
                       }
                       return r;
                     });
    // Written, but an older batch could not be finished (stopping): the
    // caller abandons this one uncommitted, as when finishing follows.
    if (s.ok() && !overlapped.ok()) return overlapped;
    std::vector<bool> rejected(rows->size(), false);
    if (!s.ok() && s.code() == StatusCode::kInvalidArgument) {
      // Some row is invalid for the store: isolate it, write the others.
      LOG(WARNING) << "ingest: store rejected the batch, writing rows one by one: " << s;
      for (size_t g = 0; g < rows->size(); ++g) {
        if (chunk_done[g / per]) continue;
        std::vector<store::RowPut> one{row_at(g)};
        Status r = Retry(stop, options_.store_backoff, "store put (row)", &store_retries_,
                         &stats_store_retries_, [&] { return put_one(one); });
        if (r.ok()) continue;
        if (r.code() != StatusCode::kInvalidArgument) return r;  // Cancelled
        rejected[g] = true;
        for (size_t m : (*rows)[g].messages) {
          dead->push_back({m, reason::kStoreRejected, std::string(r.message())});
        }
      }
      SEG_RETURN_IF_ERROR(ProduceDeadLetters(messages, *dead, stop, dl_tags));
    } else if (!s.ok()) {
      return s;
    }
    committed->reserve(rows->size());
    for (size_t g = 0; g < rows->size(); ++g) {
      if (rejected[g]) continue;
      const store::RowPut& p = row_at(g);
      int64_t newest = 0;
      for (const store::Cell& c : p.cells) newest = std::max(newest, c.timestamp);
      committed->push_back({p.row, newest, static_cast<int64_t>(p.cells.size())});
      events_written_.Inc(double(p.cells.size()));
      stats_events_written_ += static_cast<int64_t>(p.cells.size());
    }
    return Status::OK();
  }

  const IngestOptions options_;
  store::Store* store_;
  const Clock* clock_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::unique_ptr<kafka::Producer> deadletter_producer_;
  std::unique_ptr<WatermarkPublisher> watermark_;  // before consumer_'s close
  std::unique_ptr<bridge::ChangeNotifier> notifier_;
  // The batch whose store write is acknowledged and whose notices and
  // dead letters may still be in flight (pipelining); committed by
  // FinishOldest.
  struct InFlight {
    std::vector<kafka::Batch> polled;  // owns the messages below
    std::vector<const kafka::Message*> messages;
    std::vector<DeadLetterItem> dead;
    std::vector<uint64_t> dl_tags;
    std::vector<bridge::CommittedRow> committed;
    int64_t acked_at_ms = 0;
    int64_t start_us = 0;
    std::unique_ptr<bridge::PendingPublish> notices;
  };
  std::deque<std::unique_ptr<InFlight>> in_flight_;  // oldest first
  // Dead-letter delivery reports: tags still expected, and reports that
  // arrived for a batch other than the one being awaited.
  std::unordered_set<uint64_t> dl_tracked_;
  std::unordered_map<uint64_t, Status> dl_reports_;
  // Messages polled ahead of their batch (PollAhead, SleepFor), oldest first.
  std::vector<kafka::Batch> carry_;
  // Bound of each wait for notice/dead-letter acknowledgements (ms);
  // shortened by Close() to fit the shutdown budget.
  int64_t wait_limit_ms_ = options_.produce_timeout_ms;
  bool closed_ = false;
  bool in_batch_ = false;   // messages polled, batch not finished
  bool abandoned_ = false;  // a batch failed after its messages were polled
  uint64_t next_tag_ = 0;
  std::mutex sleep_mu_;
  std::condition_variable_any sleep_cv_;

  std::atomic<int64_t> stats_batches_{0}, stats_events_in_{0}, stats_events_written_{0},
      stats_dead_lettered_{0}, stats_notices_{0}, stats_store_retries_{0}, stats_kafka_retries_{0},
      stats_commit_failures_{0}, stats_rebalances_{0};
  bool assigned_once_ = false;
  std::atomic<bool> ever_assigned_{false};

  metrics::Counter events_in_, events_written_, store_retries_, kafka_retries_, commit_failures_,
      pauses_;
  metrics::Histogram store_latency_, notice_latency_, deadletter_latency_, batch_latency_,
      poll_latency_, decode_latency_, batch_events_, batch_rows_;
  metrics::Gauge lag_;
};

}  // namespace

StatusOr<std::unique_ptr<Ingester>> Ingester::Create(const IngestOptions& options,
                                                     store::Store* store, const Clock* clock) {
  if (store == nullptr) return InvalidArgumentError("ingest: null store");
  auto impl = std::make_unique<IngesterImpl>(options, store, clock);
  SEG_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Ingester>(std::move(impl));
}

}  // namespace seg::ingest

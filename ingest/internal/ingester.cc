// The Ingester's life: options, Init (consumer, producers, notifier),
// Run/Close and rebalances. The batch itself: ingester_impl.h.
#include <glog/logging.h>

#include <algorithm>
#include <chrono>

#include "ingest/internal/ingester_impl.h"

namespace seg::ingest {
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

namespace internal {

IngesterImpl::IngesterImpl(const IngestOptions& options, store::Store* store, const Clock* clock)
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
      batch_events_(
          metrics::GetHistogram("seg_ingest_batch_events", "Messages per batch", {},
                                {1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000})),
      batch_rows_(
          metrics::GetHistogram("seg_ingest_batch_rows", "Rows (users) per store Put", {},
                                {1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000})),
      lag_(metrics::GetGauge("seg_ingest_consumer_lag_messages",
                             "Messages behind the high watermark of events")) {
  for (std::string_view r : reason::kAll) DeadLetterCounter(r);
}

IngesterImpl::~IngesterImpl() { Close().IgnoreError(); }  // Close logs its own failures

Status IngesterImpl::Init() {
  SEG_RETURN_IF_ERROR(CheckOptions(options_));
  kafka::KafkaOptions consumer_options = options_.kafka;
  // User-given properties win; ours are the defaults.
  consumer_options.properties.emplace("max.poll.interval.ms",
                                      std::to_string(options_.max_poll_interval_ms));
  consumer_options.client_id = options_.kafka.client_id + "-ingest";
  SEG_ASSIGN_OR_RETURN(consumer_, kafka::Consumer::Create(
                                      consumer_options, options_.group_id,
                                      [this](const kafka::RebalanceEvent& e) { OnRebalance(e); }));
  SEG_RETURN_IF_ERROR(consumer_->Subscribe({options_.events_topic}));
  if (options_.watermark_enabled) {
    SEG_ASSIGN_OR_RETURN(
        watermark_, WatermarkPublisher::Create(
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

StatusOr<size_t> IngesterImpl::RunOnce(std::stop_token stop) {
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

Status IngesterImpl::Run(std::stop_token stop) {
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

Status IngesterImpl::Close() {
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

IngestStats IngesterImpl::stats() const {
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

void IngesterImpl::OnRebalance(const kafka::RebalanceEvent& e) {
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

}  // namespace internal

StatusOr<std::unique_ptr<Ingester>> Ingester::Create(const IngestOptions& options,
                                                     store::Store* store, const Clock* clock) {
  if (store == nullptr) return InvalidArgumentError("ingest: null store");
  auto impl = std::make_unique<internal::IngesterImpl>(options, store, clock);
  SEG_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Ingester>(std::move(impl));
}

}  // namespace seg::ingest

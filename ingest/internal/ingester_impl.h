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
//
// One class, its steps in files:
//   ingester.cc              options, Init (consumer, producers, notifier),
//                            Run/Close, rebalances
//   ingester_batch.cc        a batch: poll, decode and group into rows,
//                            then finish it (notices, offsets, commit)
//   ingester_store_write.cc  the store write in parallel chunks, retried;
//                            the consumer paused and polled while retrying
//   ingester_deadletters.cc  dead letters produced and awaited
#pragma once

#include <glog/logging.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/kafka.h"
#include "common/metrics.h"
#include "coprocessor-bridge/bridge.h"
#include "ingest/ingest.h"
#include "ingest/internal/watermark.h"

namespace seg::ingest::internal {

// Store errors worth retrying as a whole batch; InvalidArgument is the
// request's fault and gets isolated per row instead.
inline bool IsRetryable(const Status& s) { return s.code() != StatusCode::kInvalidArgument; }

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

// seg_ingest_deadletters_total{reason}: every reason's series is created at
// 0 with the ingester, so a scrape (and a rate() over it) sees it before
// the first dead letter of that kind.
metrics::Counter DeadLetterCounter(std::string_view reason);

class IngesterImpl : public Ingester {
 public:
  IngesterImpl(const IngestOptions& options, store::Store* store, const Clock* clock);
  ~IngesterImpl() override;

  Status Init();
  StatusOr<size_t> RunOnce(std::stop_token stop) override;
  Status Run(std::stop_token stop) override;
  Status Close() override;
  IngestStats stats() const override;

 private:
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

  // ingester_batch.cc
  StatusOr<size_t> ProcessBatch(std::stop_token stop);
  Status FinishAll(std::stop_token stop);
  // Steps 6-7 of the oldest batch in flight: its notices and dead letters
  // acknowledged (retried until they are), then its offsets stored and
  // committed. Batches finish in order, so commits only move forward.
  Status FinishOldest(std::stop_token stop);

  // ingester.cc
  void OnRebalance(const kafka::RebalanceEvent& e);

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

  // ingester_store_write.cc
  // Waits `ms` between retries; false when `stop` was requested. Backpressure:
  // the consumer's partitions are paused (until the next batch's poll) and
  // polled meanwhile, so a store or Kafka outage of any length keeps the
  // member in the group (max.poll.interval.ms) without fetching more.
  bool SleepFor(std::stop_token stop, int64_t ms);
  // Polls the next batch's messages into carry_ until the store has
  // answered every chunk in `writes` (or a batch is full): the poll then
  // costs the batch cycle nothing. A rebalance served here is handled as in
  // any poll (OnRebalance drops carried messages of partitions that leave).
  void PollAhead(const std::vector<std::pair<size_t, std::future<Status>>>& writes);
  Status ResumeIfPaused();
  // Writes the rows, retrying retryable failures forever. Rows the store
  // rejects as invalid become dead letters (reason store_rejected). Fills
  // *committed with what the store acknowledged.
  Status WriteRows(const std::vector<const kafka::Message*>& messages, std::vector<RowBuild>* rows,
                   std::vector<DeadLetterItem>* dead, std::vector<uint64_t>* dl_tags,
                   std::stop_token stop, std::vector<bridge::CommittedRow>* committed);

  // ingester_deadletters.cc
  Status ProduceOneDeadLetter(const kafka::Message& m, const DeadLetterItem& item, uint64_t tag);
  // Produces dead letters dead[from..]; tags[i] belongs to dead[i].
  Status ProduceDeadLetters(const std::vector<const kafka::Message*>& messages,
                            const std::vector<DeadLetterItem>& dead, std::stop_token stop,
                            std::vector<uint64_t>* tags);
  // Waits until every dead letter of the batch is acknowledged,
  // re-producing failed ones.
  Status AwaitDeadLetters(const std::vector<const kafka::Message*>& messages,
                          const std::vector<DeadLetterItem>& dead, std::stop_token stop,
                          std::vector<uint64_t>* tags);

  const IngestOptions options_;
  store::Store* store_;
  const Clock* clock_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::unique_ptr<kafka::Producer> deadletter_producer_;
  std::unique_ptr<WatermarkPublisher> watermark_;  // before consumer_'s close
  std::unique_ptr<bridge::ChangeNotifier> notifier_;
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

}  // namespace seg::ingest::internal

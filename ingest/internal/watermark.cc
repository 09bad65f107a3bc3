#include "ingest/internal/watermark.h"

#include <glog/logging.h>

#include <algorithm>

#include "common/ingest_watermark.h"

namespace seg::ingest {
namespace {

constexpr std::chrono::milliseconds kKafkaTimeout{5000};
// Samples kept per partition while the pipeline is behind; past it every
// other one goes (the watermark then advances in coarser steps).
constexpr size_t kMaxSamples = 4096;
constexpr int kCountRefreshRounds = 100;  // partitions can be added to a topic

}  // namespace

StatusOr<std::unique_ptr<WatermarkPublisher>> WatermarkPublisher::Create(
    WatermarkOptions options, const kafka::KafkaOptions& kafka, kafka::Consumer* consumer,
    store::Store* store, const Clock* clock) {
  SEG_ASSIGN_OR_RETURN(auto offsets, kafka::OffsetReader::Create(kafka));
  return std::unique_ptr<WatermarkPublisher>(
      new WatermarkPublisher(std::move(options), std::move(offsets), consumer, store, clock));
}

WatermarkPublisher::WatermarkPublisher(WatermarkOptions options,
                                       std::unique_ptr<kafka::OffsetReader> offsets,
                                       kafka::Consumer* consumer, store::Store* store,
                                       const Clock* clock)
    : options_(std::move(options)),
      offsets_(std::move(offsets)),
      consumer_(consumer),
      store_(store),
      clock_(clock),
      lag_seconds_(metrics::GetGauge(
          "seg_ingest_watermark_lag_seconds",
          "Now minus the oldest ingest watermark this ingester published (its pipeline delay)")),
      failures_(metrics::GetCounter("seg_ingest_watermark_failures_total",
                                    "Watermark rounds that failed (retried next interval)")) {}

void WatermarkPublisher::Start() {
  thread_ = std::jthread([this](std::stop_token stop) {
    while (!stop.stop_requested()) {
      Status s = RunOnce();
      if (!s.ok()) {
        failures_.Inc();
        LOG_EVERY_N(WARNING, 50) << "ingest watermark: " << s;
      }
      std::unique_lock lock(wake_mu_);
      // A pacing wait, woken early by Stop().
      wake_.wait_for(lock, stop, std::chrono::milliseconds(options_.interval_ms),
                     [] { return false; });
    }
  });
}

void WatermarkPublisher::Stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  wake_.notify_all();
  thread_.join();
}

void WatermarkPublisher::OnStored(int32_t partition, int64_t next_offset) {
  std::lock_guard lock(mu_);
  PartitionState& p = partitions_[partition];
  p.stored = std::max(p.stored, next_offset);
}

Status WatermarkPublisher::RunOnce() {
  // The time first: every event appended before it is below the high
  // watermarks asked for after it.
  const int64_t at_ms = clock_->NowMs();
  SEG_ASSIGN_OR_RETURN(std::vector<kafka::TopicPartition> assigned, consumer_->Assignment());
  std::erase_if(assigned,
                [&](const kafka::TopicPartition& tp) { return tp.topic != options_.topic; });
  if (assigned.empty()) return Status::OK();
  if (partition_count_ <= 0 || ++rounds_ % kCountRefreshRounds == 0) {
    SEG_ASSIGN_OR_RETURN(partition_count_, offsets_->PartitionCount(options_.topic, kKafkaTimeout));
  }
  SEG_ASSIGN_OR_RETURN(
      auto highs, offsets_->Offsets(assigned, kafka::OffsetReader::Which::kLatest, kKafkaTimeout));

  // Where the group started reading each partition: all below was stored
  // by an earlier owner (ingest commits only after the store acknowledged).
  std::vector<kafka::TopicPartition> unknown;
  {
    std::lock_guard lock(mu_);
    for (const auto& tp : assigned) {
      if (partitions_[tp.partition].base < 0) unknown.push_back(tp);
    }
  }
  std::map<kafka::TopicPartition, int64_t> committed, earliest;
  if (!unknown.empty()) {
    SEG_ASSIGN_OR_RETURN(committed, consumer_->Committed(unknown, kKafkaTimeout));
    SEG_ASSIGN_OR_RETURN(
        earliest, offsets_->Offsets(unknown, kafka::OffsetReader::Which::kEarliest, kKafkaTimeout));
  }

  std::vector<store::RowPut> puts(1);
  store::RowPut& put = puts[0];
  put.row.assign(kIngestWatermarkRow);
  int64_t oldest = -1;
  {
    std::lock_guard lock(mu_);
    for (const auto& tp : assigned) {
      PartitionState& p = partitions_[tp.partition];
      const int64_t high = highs[tp];
      if (p.base < 0) {
        auto c = committed.find(tp);
        auto e = earliest.find(tp);
        p.base =
            std::max(c == committed.end() ? -1 : c->second, e == earliest.end() ? -1 : e->second);
      }
      if (!p.samples.empty() && p.samples.back().high == high) {
        p.samples.back().at_ms = at_ms;  // same H, later time: it says more
      } else {
        p.samples.push_back({at_ms, high});
      }
      if (p.samples.size() > kMaxSamples) {
        for (size_t i = 1; i < p.samples.size(); ++i) p.samples.erase(p.samples.begin() + i);
      }
      const int64_t processed = std::max(p.base, p.stored);
      int64_t w = -1;
      while (!p.samples.empty() && p.samples.front().high <= processed) {
        w = p.samples.front().at_ms;
        p.samples.pop_front();
      }
      if (w > p.published) {
        p.published = w;
        put.cells.push_back(store::Cell{options_.family,
                                        IngestWatermarkQualifier(options_.topic, tp.partition), w,
                                        std::to_string(w)});
      }
      if (p.published >= 0) oldest = oldest < 0 ? p.published : std::min(oldest, p.published);
    }
  }
  if (oldest >= 0) lag_seconds_.Set(double(clock_->NowMs() - oldest) / 1e3);
  if (put.cells.empty()) return Status::OK();
  put.cells.push_back(store::Cell{options_.family, IngestPartitionCountQualifier(options_.topic),
                                  store::kLatestTimestamp, std::to_string(partition_count_)});
  return store_->Put(options_.table, puts).WithContext("ingest watermark");
}

}  // namespace seg::ingest

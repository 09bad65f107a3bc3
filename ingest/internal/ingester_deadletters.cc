// Dead letters: a rejected message, its reason and where it came from, to
// the dead-letter topic; produced while the store works, awaited (and
// re-produced when delivery fails) before the batch commits.
#include <glog/logging.h>

#include <chrono>
#include <unordered_map>

#include "ingest/internal/ingester_impl.h"
#include "proto/events.pb.h"

namespace seg::ingest::internal {

metrics::Counter DeadLetterCounter(std::string_view reason) {
  return metrics::GetCounter("seg_ingest_deadletters_total",
                             "Messages delivered to the dead-letter topic, by reason",
                             {{"reason", std::string(reason)}});
}

Status IngesterImpl::ProduceOneDeadLetter(const kafka::Message& m, const DeadLetterItem& item,
                                          uint64_t tag) {
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
  Status s = deadletter_producer_->Produce(options_.deadletter_topic, m.key(), value, headers, tag);
  if (!s.ok()) dl_tracked_.erase(tag);
  return s;
}

Status IngesterImpl::ProduceDeadLetters(const std::vector<const kafka::Message*>& messages,
                                        const std::vector<DeadLetterItem>& dead,
                                        std::stop_token stop, std::vector<uint64_t>* tags) {
  for (size_t i = tags->size(); i < dead.size(); ++i) {
    uint64_t tag = ++next_tag_;
    SEG_RETURN_IF_ERROR(Retry(
        stop, options_.kafka_backoff, "produce dead letter", &kafka_retries_, &stats_kafka_retries_,
        [&] { return ProduceOneDeadLetter(*messages[dead[i].message], dead[i], tag); }));
    tags->push_back(tag);
  }
  return Status::OK();
}

Status IngesterImpl::AwaitDeadLetters(const std::vector<const kafka::Message*>& messages,
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
        DeadLetterCounter(item.reason).Inc();
        stats_dead_lettered_++;
      } else {
        LOG_EVERY_N(WARNING, 100) << "ingest: dead letter delivery failed: " << report->second;
        failed.push_back(it->second);
      }
      dl_reports_.erase(report);
      it = waiting.erase(it);
    }
    if (std::chrono::steady_clock::now() >= deadline && !waiting.empty() && stop.stop_requested()) {
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
      SEG_RETURN_IF_ERROR(Retry(
          stop, options_.kafka_backoff, "produce dead letter", &kafka_retries_,
          &stats_kafka_retries_,
          [&] { return ProduceOneDeadLetter(*messages[dead[index].message], dead[index], tag); }));
      waiting.emplace(tag, index);
    }
  }
  deadletter_latency_.Observe(double(clock_->MonotonicUs() - t0) / 1e6);
  return Status::OK();
}

}  // namespace seg::ingest::internal

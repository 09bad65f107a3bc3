// ChangeNotifier over the Kafka adapter's producer.
//
// Every produced notice carries a tag; a map tag -> Pending tells the
// delivery callback what to do with the report: for Publish() (client-side)
// it decrements the call's Ticket and records a failure; for Enqueue()
// (store-side) a failure puts the notice on a retry list that the
// background thread re-produces with backoff. The mutex is never held while
// calling into the producer, because the delivery callback (which takes it)
// can run inside Produce.
#include <glog/logging.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "coprocessor-bridge/bridge.h"
#include "proto/segmentation.pb.h"

namespace seg::bridge {

std::vector<ChangeNotice> Coalesce(std::span<const CommittedRow> rows, int64_t acked_at_ms) {
  std::vector<ChangeNotice> out;
  std::unordered_map<std::string_view, size_t> index;
  index.reserve(rows.size());
  for (const CommittedRow& r : rows) {
    if (r.row.empty()) continue;
    auto [it, inserted] = index.emplace(r.row, out.size());
    if (inserted) {
      ChangeNotice& n = out.emplace_back();
      n.set_user_id(r.row);
      n.set_newest_event_time_ms(r.newest_timestamp_ms);
      n.set_acked_at_ms(acked_at_ms);
      n.set_event_count(0);
    }
    ChangeNotice& n = out[it->second];
    n.set_newest_event_time_ms(std::max(n.newest_event_time_ms(), r.newest_timestamp_ms));
    uint64_t count = uint64_t(n.event_count()) + uint64_t(std::max<int64_t>(r.cell_count, 0));
    n.set_event_count(
        static_cast<uint32_t>(std::min<uint64_t>(count, std::numeric_limits<uint32_t>::max())));
  }
  return out;
}

namespace {

// One Publish() call: how many notices are still unacknowledged.
struct Ticket {
  std::atomic<int64_t> outstanding{0};
  std::mutex mu;
  Status failure;  // first failed delivery
};

struct Pending {
  std::shared_ptr<Ticket> ticket;  // Publish(); null for Enqueue()
  std::string key;                 // kept for Enqueue() retries only
  std::string value;
};

struct Retry {
  int64_t due_us;
  std::string key;
  std::string value;
};

class NotifierImpl;

class PendingImpl : public PendingPublish {
 public:
  PendingImpl(NotifierImpl* notifier, std::shared_ptr<Ticket> ticket, int64_t count);
  Status Wait(std::chrono::milliseconds timeout) override;
  int64_t notices() const override { return count_; }

 private:
  NotifierImpl* notifier_;
  std::shared_ptr<Ticket> ticket_;
  int64_t count_;
  int64_t start_us_;
};

class NotifierImpl : public ChangeNotifier {
 public:
  NotifierImpl(const BridgeOptions& options, const Clock* clock)
      : options_(options),
        clock_(clock ? clock : Clock::Real()),
        produced_(metrics::GetCounter("seg_bridge_notices_produced_total",
                                      "Change notices handed to Kafka (retries included)")),
        delivered_(metrics::GetCounter("seg_bridge_notices_delivered_total",
                                       "Change notices acknowledged by Kafka")),
        failures_(metrics::GetCounter("seg_bridge_delivery_failures_total",
                                      "Change notice deliveries that failed (then retried)")),
        dropped_(metrics::GetCounter("seg_bridge_notices_dropped_total",
                                     "Store-side notices dropped over max_pending")),
        pending_gauge_(metrics::GetGauge("seg_bridge_pending_notices",
                                         "Change notices produced and not yet acknowledged")),
        publish_latency_(
            metrics::GetHistogram("seg_bridge_publish_latency_seconds",
                                  "Publish(): from produce to the last acknowledgement")) {}

  ~NotifierImpl() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (producer_) {
      Status s = producer_->Flush(std::chrono::milliseconds(5000));
      if (!s.ok()) LOG(WARNING) << "bridge: notices undelivered at shutdown: " << s;
    }
  }

  Status Init(const kafka::KafkaOptions& kafka) {
    SEG_ASSIGN_OR_RETURN(
        producer_,
        kafka::Producer::Create(kafka, [this](const kafka::DeliveryReport& r) { OnDelivery(r); }));
    // Without this the first notices after a quiet start waited up to a
    // second for the client's periodic topic scan. Kafka being down is no
    // reason not to start: deliveries are retried anyway.
    Status s = producer_->PrepareTopic(options_.topic, std::chrono::milliseconds(std::min<int64_t>(
                                                           options_.publish_timeout_ms, 2000)));
    if (!s.ok()) LOG(WARNING) << "bridge: " << s << " (notices are retried)";
    return Status::OK();
  }

  Status Publish(std::span<const CommittedRow> rows, int64_t acked_at_ms) override {
    SEG_ASSIGN_OR_RETURN(std::unique_ptr<PendingPublish> pending, StartPublish(rows, acked_at_ms));
    return pending->Wait(std::chrono::milliseconds(options_.publish_timeout_ms));
  }

  StatusOr<std::unique_ptr<PendingPublish>> StartPublish(std::span<const CommittedRow> rows,
                                                         int64_t acked_at_ms) override {
    std::vector<ChangeNotice> notices = Coalesce(rows, acked_at_ms);
    auto ticket = std::make_shared<Ticket>();
    ticket->outstanding = static_cast<int64_t>(notices.size());
    std::string value;
    for (const ChangeNotice& n : notices) {
      n.SerializeToString(&value);
      uint64_t tag = Track(Pending{ticket, {}, {}});
      Status s = producer_->Produce(options_.topic, n.user_id(), value, {}, tag);
      if (!s.ok()) {
        Untrack(tag);
        // Notices already produced stay tracked; their reports find the
        // ticket through the shared_ptr after we return.
        return s.WithContext("bridge: produce notice for " + n.user_id());
      }
      produced_.Inc();
      n_produced_.fetch_add(1);
    }
    return std::unique_ptr<PendingPublish>(std::make_unique<PendingImpl>(
        this, std::move(ticket), static_cast<int64_t>(notices.size())));
  }

  void Enqueue(std::span<const CommittedRow> rows, int64_t acked_at_ms) override {
    std::vector<ChangeNotice> notices = Coalesce(rows, acked_at_ms);
    if (notices.empty()) return;
    EnsureThread();
    for (const ChangeNotice& n : notices) {
      std::string value;
      n.SerializeToString(&value);
      ProduceAsync(n.user_id(), std::move(value));
    }
  }

  Status Flush(std::chrono::milliseconds timeout) override {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      int64_t left;
      {
        std::lock_guard<std::mutex> lock(mu_);
        left = static_cast<int64_t>(pending_.size() + retries_.size());
      }
      if (left == 0) return Status::OK();
      if (std::chrono::steady_clock::now() >= deadline) {
        return DeadlineExceededError("bridge flush: " + std::to_string(left) +
                                     " notices undelivered");
      }
      producer_->PollDeliveries(std::chrono::milliseconds(5));
    }
  }

  NotifierStats stats() const override {
    NotifierStats s;
    s.notices_produced = n_produced_.load();
    s.notices_delivered = n_delivered_.load();
    s.delivery_failures = n_failures_.load();
    s.notices_dropped = n_dropped_.load();
    std::lock_guard<std::mutex> lock(mu_);
    s.pending = static_cast<int64_t>(pending_.size() + retries_.size());
    return s;
  }

  const Clock* clock() const override { return clock_; }

 private:
  friend class PendingImpl;

  uint64_t Track(Pending p) {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t tag = ++next_tag_;
    pending_.emplace(tag, std::move(p));
    pending_gauge_.Set(double(pending_.size()));
    return tag;
  }
  void Untrack(uint64_t tag) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.erase(tag);
  }

  // Store-side produce: bounded, never throws the notice away silently.
  void ProduceAsync(const std::string& key, std::string value) {
    uint64_t tag;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (static_cast<int64_t>(pending_.size() + retries_.size()) >= options_.max_pending) {
        dropped_.Inc();
        if (n_dropped_.fetch_add(1) % 10000 == 0) {
          LOG(ERROR) << "bridge: over " << options_.max_pending
                     << " notices pending (Kafka down?); dropping notice for " << key;
        }
        return;
      }
      tag = ++next_tag_;
      pending_.emplace(tag, Pending{nullptr, key, value});
    }
    Status s = producer_->Produce(options_.topic, key, value, {}, tag);
    if (s.ok()) {
      produced_.Inc();
      n_produced_.fetch_add(1);
      return;
    }
    LOG_EVERY_N(WARNING, 1000) << "bridge: produce notice failed, will retry: " << s;
    std::lock_guard<std::mutex> lock(mu_);
    pending_.erase(tag);
    retries_.push_back(
        Retry{clock_->MonotonicUs() + options_.retry_initial_ms * 1000, key, std::move(value)});
    cv_.notify_all();
  }

  void OnDelivery(const kafka::DeliveryReport& report) {
    Pending p;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = pending_.find(report.tag);
      if (it == pending_.end()) return;  // untracked (produce failed synchronously)
      p = std::move(it->second);
      pending_.erase(it);
      pending_gauge_.Set(double(pending_.size()));
      if (!report.status.ok() && !p.ticket) {
        retries_.push_back(Retry{clock_->MonotonicUs() + NextRetryDelayMs() * 1000,
                                 std::move(p.key), std::move(p.value)});
        cv_.notify_all();
      }
    }
    if (report.status.ok()) {
      delivered_.Inc();
      n_delivered_.fetch_add(1);
      retry_backoff_reset_.store(true);
    } else {
      failures_.Inc();
      n_failures_.fetch_add(1);
      LOG_EVERY_N(WARNING, 1000) << "bridge: notice delivery failed: " << report.status;
    }
    if (p.ticket) {
      if (!report.status.ok()) {
        std::lock_guard<std::mutex> lock(p.ticket->mu);
        if (p.ticket->failure.ok()) p.ticket->failure = report.status;
      }
      p.ticket->outstanding.fetch_sub(1);
    }
  }

  // Called with mu_ held.
  int64_t NextRetryDelayMs() {
    if (retry_backoff_reset_.exchange(false)) backoff_.Reset();
    return backoff_.NextDelayMs();
  }

  void EnsureThread() {
    std::lock_guard<std::mutex> lock(mu_);
    if (thread_started_) return;
    thread_started_ = true;
    thread_ = std::thread([this] { BackgroundLoop(); });
  }

  // Serves delivery reports and re-produces failed store-side notices.
  void BackgroundLoop() {
    while (true) {
      producer_->PollDeliveries(std::chrono::milliseconds(20));
      std::vector<Retry> due;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
        int64_t now = clock_->MonotonicUs();
        while (!retries_.empty() && retries_.front().due_us <= now) {
          due.push_back(std::move(retries_.front()));
          retries_.pop_front();
        }
      }
      for (Retry& r : due) ProduceAsync(r.key, std::move(r.value));
    }
  }

  const BridgeOptions options_;
  const Clock* clock_;
  std::unique_ptr<kafka::Producer> producer_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  uint64_t next_tag_ = 0;
  std::unordered_map<uint64_t, Pending> pending_;
  std::deque<Retry> retries_;
  Backoff backoff_{BackoffOptions{options_.retry_initial_ms, options_.retry_max_ms}};
  bool stopping_ = false;
  bool thread_started_ = false;
  std::thread thread_;

  std::atomic<bool> retry_backoff_reset_{false};
  std::atomic<int64_t> n_produced_{0}, n_delivered_{0}, n_failures_{0}, n_dropped_{0};
  metrics::Counter produced_, delivered_, failures_, dropped_;
  metrics::Gauge pending_gauge_;
  metrics::Histogram publish_latency_;
};

PendingImpl::PendingImpl(NotifierImpl* notifier, std::shared_ptr<Ticket> ticket, int64_t count)
    : notifier_(notifier),
      ticket_(std::move(ticket)),
      count_(count),
      start_us_(notifier->clock_->MonotonicUs()) {}

Status PendingImpl::Wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (ticket_->outstanding.load() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceededError("bridge: " + std::to_string(ticket_->outstanding.load()) +
                                   " of " + std::to_string(count_) +
                                   " notices unacknowledged after " +
                                   std::to_string(timeout.count()) + " ms");
    }
    notifier_->producer_->PollDeliveries(std::chrono::milliseconds(1));
  }
  notifier_->publish_latency_.Observe(double(notifier_->clock_->MonotonicUs() - start_us_) / 1e6);
  std::lock_guard<std::mutex> lock(ticket_->mu);
  return ticket_->failure;
}

}  // namespace

StatusOr<std::unique_ptr<ChangeNotifier>> ChangeNotifier::Create(const kafka::KafkaOptions& kafka,
                                                                 const BridgeOptions& options,
                                                                 const Clock* clock) {
  if (options.topic.empty()) return InvalidArgumentError("bridge: empty notice topic");
  auto impl = std::make_unique<NotifierImpl>(options, clock);
  SEG_RETURN_IF_ERROR(impl->Init(kafka));
  return std::unique_ptr<ChangeNotifier>(std::move(impl));
}

}  // namespace seg::bridge

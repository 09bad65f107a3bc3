// Producer over rd_kafka_producev. Delivery reports arrive through dr_msg_cb
// while some thread is inside rd_kafka_poll/flush; they are counted for Flush,
// then handed to the caller's callback or queued for PollDeliveries.
#include <glog/logging.h>

#include <atomic>
#include <mutex>

#include "common/internal/kafka_util.h"
#include "common/kafka.h"
#include "common/metrics.h"

namespace seg::kafka {

using internal::ErrorStatus;

struct Producer::Impl {
  internal::HandlePtr rk;
  DeliveryCallback on_delivery;
  int64_t queue_full_wait_ms = 0;

  std::mutex mu;  // guards reports, first_failure
  std::vector<DeliveryReport> reports;
  Status first_failure;
  std::atomic<int64_t> failed_since_flush{0};

  metrics::Counter produced =
      metrics::GetCounter("seg_kafka_produced_messages_total", "Messages acknowledged by Kafka");
  metrics::Counter failed = metrics::GetCounter("seg_kafka_delivery_failures_total",
                                                "Messages Kafka finally failed to deliver");
  metrics::Histogram queue_full_wait =
      metrics::GetHistogram("seg_kafka_produce_queue_full_wait_seconds",
                            "Time Produce waited for room in a full local queue");

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    DeliveryReport report;
    report.tag = reinterpret_cast<uintptr_t>(msg->_private);
    report.partition = msg->partition;
    report.offset = msg->offset;
    if (msg->err) {
      report.status =
          ErrorStatus(msg->err, std::string("kafka deliver to ") + rd_kafka_topic_name(msg->rkt));
      self->failed.Inc();
      self->failed_since_flush.fetch_add(1);
      std::lock_guard<std::mutex> lock(self->mu);
      if (self->first_failure.ok()) self->first_failure = report.status;
    } else {
      self->produced.Inc();
    }
    if (self->on_delivery) {
      self->on_delivery(report);
    } else {
      std::lock_guard<std::mutex> lock(self->mu);
      self->reports.push_back(std::move(report));
    }
  }
};

Producer::Producer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Producer::~Producer() {
  if (impl_ && impl_->rk) {
    // Give in-flight messages a short chance; anything left is lost and said so.
    rd_kafka_flush(impl_->rk.get(), 2000);
    int left = rd_kafka_outq_len(impl_->rk.get());
    if (left > 0) LOG(WARNING) << "kafka producer destroyed with " << left << " undelivered";
  }
}

StatusOr<std::unique_ptr<Producer>> Producer::Create(const KafkaOptions& options,
                                                     DeliveryCallback on_delivery) {
  auto impl = std::make_unique<Impl>();
  impl->on_delivery = std::move(on_delivery);
  impl->queue_full_wait_ms = options.queue_full_wait_ms;
  SEG_ASSIGN_OR_RETURN(auto conf,
                       internal::BuildConf(options, {
                                                        {"enable.idempotence", "true"},
                                                        {"acks", "all"},
                                                        {"partitioner", "murmur2_random"},
                                                        {"linger.ms", "5"},
                                                    }));
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Impl::OnDelivery);
  rd_kafka_conf_set_opaque(conf.get(), impl.get());
  SEG_ASSIGN_OR_RETURN(impl->rk, internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf)));
  return std::unique_ptr<Producer>(new Producer(std::move(impl)));
}

Status Producer::Produce(std::string_view topic, std::string_view key, std::string_view value,
                         std::span<const HeaderView> headers, uint64_t tag) {
  rd_kafka_t* rk = impl_->rk.get();
  std::string topic_name(topic);
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(impl_->queue_full_wait_ms);
  std::chrono::steady_clock::time_point wait_start{};
  while (true) {
    rd_kafka_headers_t* hdrs = nullptr;
    if (!headers.empty()) {
      hdrs = rd_kafka_headers_new(headers.size());
      for (const auto& h : headers) {
        rd_kafka_header_add(hdrs, h.key.data(), h.key.size(), h.value.data(), h.value.size());
      }
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic_name.c_str()),
        RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(tag))), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (wait_start != std::chrono::steady_clock::time_point{}) {
        impl_->queue_full_wait.Observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - wait_start).count());
      }
      rd_kafka_poll(rk, 0);  // keep delivery reports moving
      return Status::OK();
    }
    if (hdrs) rd_kafka_headers_destroy(hdrs);  // not taken on failure
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char buf[512];
      rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));
      return InternalError("kafka produce to " + topic_name + ": fatal " + rd_kafka_err2name(orig) +
                           ": " + buf);
    }
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      return ErrorStatus(err, "kafka produce to " + topic_name);
    }
    auto now = std::chrono::steady_clock::now();
    if (wait_start == std::chrono::steady_clock::time_point{}) wait_start = now;
    if (now >= deadline) {
      return ErrorStatus(err, "kafka produce to " + topic_name + ": still full after " +
                                  std::to_string(impl_->queue_full_wait_ms) + " ms");
    }
    // Serving reports is what frees queue space; this blocks until one arrives.
    rd_kafka_poll(rk, 100);
  }
}

std::vector<DeliveryReport> Producer::PollDeliveries(std::chrono::milliseconds timeout) {
  rd_kafka_poll(impl_->rk.get(), static_cast<int>(timeout.count()));
  std::vector<DeliveryReport> out;
  std::lock_guard<std::mutex> lock(impl_->mu);
  out.swap(impl_->reports);
  return out;
}

Status Producer::PrepareTopic(std::string_view topic, std::chrono::milliseconds timeout) {
  std::string name(topic);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(impl_->rk.get(), name.c_str(), nullptr);
  if (rkt == nullptr) {
    return ErrorStatus(rd_kafka_last_error(), "kafka: topic handle for " + name);
  }
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(impl_->rk.get(), 0, rkt, &md, static_cast<int>(timeout.count()));
  if (md != nullptr) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return ErrorStatus(err, "kafka: metadata for " + name);
  return Status::OK();
}

Status Producer::Flush(std::chrono::milliseconds timeout) {
  rd_kafka_flush(impl_->rk.get(), static_cast<int>(timeout.count()));
  int64_t failed = impl_->failed_since_flush.exchange(0);
  int64_t left = rd_kafka_outq_len(impl_->rk.get());
  Status first;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    first = impl_->first_failure;
    impl_->first_failure = Status::OK();
  }
  if (failed == 0 && left == 0) return Status::OK();
  std::string message = "kafka flush: " + std::to_string(failed) + " messages failed, " +
                        std::to_string(left) + " still undelivered after " +
                        std::to_string(timeout.count()) + " ms";
  if (!first.ok()) message += "; first failure: " + first.ToString();
  return left > 0 ? DeadlineExceededError(message) : UnavailableError(message);
}

int64_t Producer::InFlight() const { return rd_kafka_outq_len(impl_->rk.get()); }

}  // namespace seg::kafka

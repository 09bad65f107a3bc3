// Consumer-group consumer over rd_kafka_consumer_poll. Rebalances are
// handled in our rebalance_cb (cooperative: incremental assign/unassign) and
// forwarded to the caller; offsets are stored explicitly and committed on
// demand and on revocation.
#include <glog/logging.h>

#include <cstring>

#include "common/internal/kafka_util.h"
#include "common/kafka.h"
#include "common/metrics.h"

namespace seg::kafka {

using internal::ErrorStatus;
using internal::PartitionListPtr;

namespace {
const rd_kafka_message_t* Raw(const void* p) { return static_cast<const rd_kafka_message_t*>(p); }
}  // namespace

// ---------------------------------------------------------------- Message, Batch

std::string_view Message::topic() const { return rd_kafka_topic_name(Raw(raw_)->rkt); }
int32_t Message::partition() const { return Raw(raw_)->partition; }
int64_t Message::offset() const { return Raw(raw_)->offset; }
std::string_view Message::key() const {
  const auto* m = Raw(raw_);
  return m->key ? std::string_view(static_cast<const char*>(m->key), m->key_len) : "";
}
std::string_view Message::value() const {
  const auto* m = Raw(raw_);
  return m->payload ? std::string_view(static_cast<const char*>(m->payload), m->len) : "";
}
bool Message::is_tombstone() const { return Raw(raw_)->payload == nullptr; }
int64_t Message::timestamp_ms() const {
  rd_kafka_timestamp_type_t type;
  return rd_kafka_message_timestamp(Raw(raw_), &type);
}
std::optional<std::string_view> Message::header(std::string_view key) const {
  rd_kafka_headers_t* hdrs = nullptr;
  // Headers are parsed lazily into the message; the cast is librdkafka's API.
  if (rd_kafka_message_headers(Raw(raw_), &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  std::string name(key);
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(hdrs, name.c_str(), &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return std::nullopt;
  }
  return value ? std::string_view(static_cast<const char*>(value), size) : std::string_view();
}
std::vector<HeaderView> Message::headers() const {
  std::vector<HeaderView> out;
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(Raw(raw_), &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
  const char* name;
  const void* value;
  size_t size;
  for (size_t i = 0;
       rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
    out.push_back({name, value ? std::string_view(static_cast<const char*>(value), size) : ""});
  }
  return out;
}

Batch::~Batch() { Release(); }
Batch::Batch(Batch&& other) noexcept : messages_(std::move(other.messages_)) {
  other.messages_.clear();
}
Batch& Batch::operator=(Batch&& other) noexcept {
  if (this != &other) {
    Release();
    messages_ = std::move(other.messages_);
    other.messages_.clear();
  }
  return *this;
}
void Batch::Release() {
  for (const Message& m : messages_) {
    rd_kafka_message_destroy(const_cast<rd_kafka_message_t*>(Raw(m.raw_)));
  }
  messages_.clear();
}

size_t Batch::EraseIf(const std::function<bool(const Message&)>& drop) {
  size_t kept = 0;
  for (size_t i = 0; i < messages_.size(); ++i) {
    if (drop(messages_[i])) {
      rd_kafka_message_destroy(const_cast<rd_kafka_message_t*>(Raw(messages_[i].raw_)));
    } else {
      messages_[kept++] = messages_[i];
    }
  }
  size_t dropped = messages_.size() - kept;
  messages_.erase(messages_.begin() + static_cast<std::ptrdiff_t>(kept), messages_.end());
  return dropped;
}

// ---------------------------------------------------------------- Consumer

struct Consumer::Impl {
  internal::HandlePtr rk;
  std::string group_id;
  RebalanceCallback on_rebalance;
  bool closed = false;
  bool paused = false;  // Pause() in force: new partitions are paused too
  bool subscribed = false;
  bool first_assignment_seen = false;  // the sticky assignor has its state

  metrics::Counter consumed;
  metrics::Counter errors;
  metrics::Gauge lag;

  explicit Impl(const std::string& group)
      : group_id(group),
        consumed(metrics::GetCounter("seg_kafka_consumed_messages_total",
                                     "Messages returned by PollBatch", {{"group", group}})),
        errors(metrics::GetCounter("seg_kafka_consumer_errors_total",
                                   "Transient consumer errors (retried by librdkafka)",
                                   {{"group", group}})),
        lag(metrics::GetGauge("seg_kafka_consumer_lag_messages",
                              "Messages behind the high watermark over the assignment",
                              {{"group", group}})) {}

  void Notify(RebalanceEvent::Kind kind, const rd_kafka_topic_partition_list_t* parts) {
    if (!on_rebalance) return;
    on_rebalance(RebalanceEvent{kind, internal::ToVector(parts)});
  }

  void OnRebalance(rd_kafka_t* handle, rd_kafka_resp_err_t err,
                   rd_kafka_topic_partition_list_t* parts) {
    // NULL while the member has no protocol yet (closed mid-join).
    const char* protocol = rd_kafka_rebalance_protocol(handle);
    bool cooperative = protocol != nullptr && std::strcmp(protocol, "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      first_assignment_seen = true;
      LOG(INFO) << "kafka group " << group_id << ": assigned " << parts->cnt << " partitions";
      Status s = cooperative ? ErrorStatus(rd_kafka_incremental_assign(handle, parts), "assign")
                             : ErrorStatus(rd_kafka_assign(handle, parts), "assign");
      if (!s.ok()) LOG(ERROR) << "kafka group " << group_id << ": " << s;
      if (paused) {
        Status p = ErrorStatus(rd_kafka_pause_partitions(handle, parts), "pause");
        if (!p.ok()) LOG(ERROR) << "kafka group " << group_id << ": " << p;
      }
      Notify(RebalanceEvent::Kind::kAssigned, parts);
      return;
    }
    bool lost = rd_kafka_assignment_lost(handle);
    LOG(INFO) << "kafka group " << group_id << ": " << (lost ? "lost " : "revoked ") << parts->cnt
              << " partitions";
    Notify(lost ? RebalanceEvent::Kind::kLost : RebalanceEvent::Kind::kRevoked, parts);
    if (!lost) {
      // Last chance to commit what the caller stored for these partitions.
      // Asynchronous while closing: a synchronous commit inside
      // rd_kafka_consumer_close can wait forever for a reply the terminating
      // group never serves; the close still waits for outstanding commits.
      rd_kafka_resp_err_t cerr = rd_kafka_commit(handle, nullptr, /*async=*/closed ? 1 : 0);
      if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        LOG(WARNING) << ErrorStatus(cerr, "kafka group " + group_id + ": commit on revoke");
      }
    }
    Status s = cooperative ? ErrorStatus(rd_kafka_incremental_unassign(handle, parts), "unassign")
                           : ErrorStatus(rd_kafka_assign(handle, nullptr), "unassign");
    if (!s.ok()) LOG(ERROR) << "kafka group " << group_id << ": " << s;
  }

  // Before rd_kafka_consumer_close: see the workaround notes below.
  void SettleJoinBeforeClose();
  void LeaveBeforeClose();

  static void RebalanceTrampoline(rd_kafka_t* handle, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t* parts, void* opaque) {
    static_cast<Impl*>(opaque)->OnRebalance(handle, err, parts);
  }
};

Consumer::Consumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Consumer::~Consumer() {
  if (impl_ && impl_->rk) Close().IgnoreError();  // Close logs its own failures
}

StatusOr<std::unique_ptr<Consumer>> Consumer::Create(const KafkaOptions& options,
                                                     const std::string& group_id,
                                                     RebalanceCallback on_rebalance) {
  if (group_id.empty()) return InvalidArgumentError("kafka consumer: empty group id");
  auto impl = std::make_unique<Impl>(group_id);
  impl->on_rebalance = std::move(on_rebalance);
  SEG_ASSIGN_OR_RETURN(
      auto conf,
      internal::BuildConf(options, {
                                       {"group.id", group_id},
                                       // Eager: librdkafka 2.0.2's cooperative-sticky assignor can
                                       // abort on close during a rebalance (#4312; kafka.h).
                                       {"partition.assignment.strategy", "roundrobin"},
                                       {"enable.auto.offset.store", "false"},
                                       {"enable.auto.commit", "false"},
                                       {"auto.offset.reset", "earliest"},
                                       {"enable.partition.eof", "false"},
                                   }));
  rd_kafka_conf_set_rebalance_cb(conf.get(), &Impl::RebalanceTrampoline);
  rd_kafka_conf_set_opaque(conf.get(), impl.get());
  SEG_ASSIGN_OR_RETURN(impl->rk, internal::NewHandle(RD_KAFKA_CONSUMER, std::move(conf)));
  // One queue for messages, rebalances and errors, served by PollBatch.
  rd_kafka_poll_set_consumer(impl->rk.get());
  return std::unique_ptr<Consumer>(new Consumer(std::move(impl)));
}

Status Consumer::Subscribe(const std::vector<std::string>& topics) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const auto& t : topics) {
    rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  }
  Status status = ErrorStatus(rd_kafka_subscribe(impl_->rk.get(), list.get()), "kafka subscribe");
  if (status.ok()) impl_->subscribed = true;
  return status;
}

StatusOr<Batch> Consumer::PollBatch(size_t max_messages, std::chrono::milliseconds timeout) {
  if (impl_->closed) return FailedPreconditionError("kafka consumer: closed");
  Batch batch;
  batch.messages_.reserve(max_messages);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // Polled at least once, even with no time left: a 0 ms call still serves
  // rebalances and returns what is already fetched.
  for (bool first = true; batch.messages_.size() < max_messages; first = false) {
    int wait_ms = 0;
    if (batch.messages_.empty()) {
      auto left = deadline - std::chrono::steady_clock::now();
      if (left.count() <= 0 && !first) break;
      // Rounded up: a 0 ms poll in the last sub-millisecond would spin
      // (clock reads and queue locks) until the deadline passes.
      if (left.count() > 0) {
        wait_ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
      }
    }
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(impl_->rk.get(), wait_ms);
    if (msg == nullptr) {
      if (!batch.messages_.empty() || std::chrono::steady_clock::now() >= deadline) break;
      continue;  // a rebalance or other event was served; keep waiting
    }
    if (msg->err) {
      rd_kafka_resp_err_t err = msg->err;
      std::string what = rd_kafka_message_errstr(msg);
      rd_kafka_message_destroy(msg);
      if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
      Status status = ErrorStatus(err, "kafka consume (" + what + ")");
      if (err == RD_KAFKA_RESP_ERR__FATAL || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
          err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
          err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
          err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
        return status;  // the caller must decide; batch messages are released
      }
      impl_->errors.Inc();
      LOG(WARNING) << status;
      continue;
    }
    batch.messages_.push_back(Message(msg));
  }
  impl_->consumed.Inc(static_cast<double>(batch.messages_.size()));
  return batch;
}

Status Consumer::StoreOffsets(std::span<const Message> messages) {
  if (messages.empty()) return Status::OK();
  // Highest offset per partition; one store call for the lot.
  std::map<TopicPartition, int64_t> next;
  for (const Message& m : messages) {
    int64_t& v = next[TopicPartition{std::string(m.topic()), m.partition()}];
    v = std::max(v, m.offset() + 1);
  }
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(next.size())));
  for (const auto& [tp, offset] : next) {
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset = offset;
  }
  rd_kafka_resp_err_t err = rd_kafka_offsets_store(impl_->rk.get(), list.get());
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::OK();
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    if (e.err == RD_KAFKA_RESP_ERR__STATE) {
      VLOG(1) << "kafka store offset " << e.topic << "/" << e.partition << ": not assigned";
    } else if (e.err) {
      return ErrorStatus(
          e.err, "kafka store offset " + std::string(e.topic) + "/" + std::to_string(e.partition));
    }
  }
  return Status::OK();
}

Status Consumer::Commit(bool sync) {
  rd_kafka_resp_err_t err = rd_kafka_commit(impl_->rk.get(), nullptr, sync ? 0 : 1);
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) return Status::OK();
  return ErrorStatus(err, "kafka commit group " + impl_->group_id);
}

StatusOr<std::map<TopicPartition, int64_t>> Consumer::Committed(
    const std::vector<TopicPartition>& partitions, std::chrono::milliseconds timeout) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const auto& tp : partitions) {
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition);
  }
  SEG_RETURN_IF_ERROR(ErrorStatus(
      rd_kafka_committed(impl_->rk.get(), list.get(), static_cast<int>(timeout.count())),
      "kafka committed offsets of group " + impl_->group_id));
  std::map<TopicPartition, int64_t> out;
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    SEG_RETURN_IF_ERROR(ErrorStatus(e.err, "kafka committed offset " + std::string(e.topic)));
    out[{e.topic, e.partition}] = e.offset;
  }
  return out;
}

StatusOr<std::vector<TopicPartition>> Consumer::Assignment() {
  rd_kafka_topic_partition_list_t* raw = nullptr;
  SEG_RETURN_IF_ERROR(ErrorStatus(rd_kafka_assignment(impl_->rk.get(), &raw), "kafka assignment"));
  PartitionListPtr list(raw);
  return internal::ToVector(list.get());
}

int64_t Consumer::Lag() {
  rd_kafka_topic_partition_list_t* raw = nullptr;
  if (rd_kafka_assignment(impl_->rk.get(), &raw) != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
  PartitionListPtr list(raw);
  rd_kafka_position(impl_->rk.get(), list.get());
  int64_t total = 0;
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    int64_t low = 0, high = 0;
    if (rd_kafka_get_watermark_offsets(impl_->rk.get(), e.topic, e.partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0 || e.offset < 0) {
      // Nothing fetched or nothing returned from this partition yet: the
      // position is unknown without a committed-offset request, so skip it.
      continue;
    }
    if (high > e.offset) total += high - e.offset;
  }
  impl_->lag.Set(static_cast<double>(total));
  return total;
}

int64_t Consumer::CachedHighWatermark(const std::string& topic, int32_t partition) {
  int64_t low = -1, high = -1;
  if (rd_kafka_get_watermark_offsets(impl_->rk.get(), topic.c_str(), partition, &low, &high) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return -1;
  }
  return high;
}

namespace {

Status PauseOrResume(rd_kafka_t* rk, bool pause) {
  rd_kafka_topic_partition_list_t* raw = nullptr;
  SEG_RETURN_IF_ERROR(ErrorStatus(rd_kafka_assignment(rk, &raw), "kafka assignment"));
  PartitionListPtr list(raw);
  if (list->cnt == 0) return Status::OK();
  return ErrorStatus(pause ? rd_kafka_pause_partitions(rk, list.get())
                           : rd_kafka_resume_partitions(rk, list.get()),
                     pause ? "kafka pause" : "kafka resume");
}

}  // namespace

Status Consumer::Pause() {
  if (impl_->closed) return FailedPreconditionError("kafka consumer: closed");
  impl_->paused = true;
  return PauseOrResume(impl_->rk.get(), true);
}

Status Consumer::Resume() {
  if (impl_->closed) return FailedPreconditionError("kafka consumer: closed");
  impl_->paused = false;
  return PauseOrResume(impl_->rk.get(), false);
}

bool Consumer::paused() const { return impl_->paused; }

namespace {

// librdkafka < 2.2.1 aborts in rd_kafka_sticky_assignor_state_destroy
// (librdkafka #4312) when a cooperative-sticky member is closed after its
// JoinGroup response set the assignor but before the SyncGroup assignment
// gave the assignor its state. A member id means a JoinGroup was answered;
// then let the join finish (the first assignment sets the state) before
// closing. Bounded: a join that never settles falls back to a plain close.
constexpr auto kJoinSettleWait = std::chrono::seconds(10);

bool JoinAnswered(rd_kafka_t* rk) {
  char* member = rd_kafka_memberid(rk);
  bool answered = member != nullptr && member[0] != '\0';
  if (member != nullptr) rd_kafka_mem_free(rk, member);
  return answered;
}

}  // namespace

void Consumer::Impl::SettleJoinBeforeClose() {
  if (!subscribed || first_assignment_seen || !JoinAnswered(rk.get())) {
    return;
  }
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + kJoinSettleWait;
  while (!first_assignment_seen && std::chrono::steady_clock::now() < deadline) {
    // Messages fetched in this window were never returned to the caller, so
    // they are never stored: dropping them commits nothing for them.
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk.get(), 100);
    if (msg != nullptr) rd_kafka_message_destroy(msg);
  }
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  if (first_assignment_seen) {
    LOG(INFO) << "kafka group " << group_id << ": close waited " << waited.count()
              << " ms for the pending join to settle";
  } else {
    LOG(WARNING) << "kafka group " << group_id << ": join did not settle within " << waited.count()
                 << " ms; closing anyway";
  }
}

// librdkafka 2.0.2 can abort in rd_kafka_cgrp_terminated ("assert:
// !rd_kafka_assignment_in_progress") when a cooperative member is closed
// while the group is still moving partitions (seen under load: a member
// closed right after handing partitions over). Unsubscribing first and
// serving the revocation before the close leaves nothing in progress for the
// termination to trip over (the known mitigation, librdkafka #4792).
// Bounded: after kLeaveWait the plain close follows.
constexpr auto kLeaveWait = std::chrono::seconds(5);

void Consumer::Impl::LeaveBeforeClose() {
  if (!subscribed || !first_assignment_seen) return;
  rd_kafka_resp_err_t err = rd_kafka_unsubscribe(rk.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    LOG(WARNING) << ErrorStatus(err, "kafka group " + group_id + ": unsubscribe before close");
    return;
  }
  auto deadline = std::chrono::steady_clock::now() + kLeaveWait;
  while (std::chrono::steady_clock::now() < deadline) {
    rd_kafka_topic_partition_list_t* raw = nullptr;
    if (rd_kafka_assignment(rk.get(), &raw) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      PartitionListPtr list(raw);
      if (list->cnt == 0) return;
    }
    // Serves the revocation (the caller's callback, then the commit of what
    // it stored). Messages fetched meanwhile were never returned, never
    // stored: the next owner reads them.
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk.get(), 50);
    if (msg != nullptr) rd_kafka_message_destroy(msg);
  }
  LOG(WARNING) << "kafka group " << group_id << ": partitions not revoked within "
               << std::chrono::duration_cast<std::chrono::milliseconds>(kLeaveWait).count()
               << " ms of unsubscribing; closing anyway";
}

Status Consumer::Close() {
  if (impl_->closed) return Status::OK();
  impl_->closed = true;
  impl_->SettleJoinBeforeClose();
  impl_->LeaveBeforeClose();
  Status status = ErrorStatus(rd_kafka_consumer_close(impl_->rk.get()),
                              "kafka consumer close group " + impl_->group_id);
  if (!status.ok()) LOG(WARNING) << status;
  return status;  // the handle lives until the destructor, so late calls fail cleanly
}

}  // namespace seg::kafka

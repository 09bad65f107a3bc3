// kafka::OffsetReader: ListOffsets and metadata on a handle of its own.
#include <librdkafka/rdkafka.h>

#include "common/internal/kafka_util.h"
#include "common/kafka.h"

namespace seg::kafka {

struct OffsetReader::Impl {
  internal::HandlePtr rk;
};

OffsetReader::OffsetReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OffsetReader::~OffsetReader() = default;

StatusOr<std::unique_ptr<OffsetReader>> OffsetReader::Create(const KafkaOptions& options) {
  auto impl = std::make_unique<Impl>();
  KafkaOptions own = options;
  own.client_id += "-offsets";
  SEG_ASSIGN_OR_RETURN(auto conf, internal::BuildConf(own, {}));
  // A producer handle: no group, no fetches; it only ever sends requests.
  SEG_ASSIGN_OR_RETURN(impl->rk, internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf)));
  return std::unique_ptr<OffsetReader>(new OffsetReader(std::move(impl)));
}

StatusOr<std::map<TopicPartition, int64_t>> OffsetReader::Offsets(
    const std::vector<TopicPartition>& partitions, Which which, std::chrono::milliseconds timeout) {
  std::map<TopicPartition, int64_t> out;
  if (partitions.empty()) return out;
  internal::PartitionListPtr list(
      rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const TopicPartition& tp : partitions) {
    // ListOffsets' special timestamps: -1 the end, -2 the beginning.
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset =
        which == Which::kLatest ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
  }
  SEG_RETURN_IF_ERROR(internal::ErrorStatus(
      rd_kafka_offsets_for_times(impl_->rk.get(), list.get(), static_cast<int>(timeout.count())),
      "kafka list offsets"));
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    SEG_RETURN_IF_ERROR(internal::ErrorStatus(
        e.err,
        "kafka list offsets of " + std::string(e.topic) + "/" + std::to_string(e.partition)));
    out[{e.topic, e.partition}] = e.offset;
  }
  return out;
}

StatusOr<int32_t> OffsetReader::PartitionCount(const std::string& topic,
                                               std::chrono::milliseconds timeout) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(impl_->rk.get(), topic.c_str(), nullptr);
  if (rkt == nullptr) {
    return internal::ErrorStatus(rd_kafka_last_error(), "kafka: topic handle for " + topic);
  }
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(impl_->rk.get(), 0, rkt, &md, static_cast<int>(timeout.count()));
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return internal::ErrorStatus(err, "kafka: metadata for " + topic);
  }
  int32_t count = 0;
  rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (topic == md->topics[i].topic) {
      count = md->topics[i].partition_cnt;
      topic_err = md->topics[i].err;
    }
  }
  rd_kafka_metadata_destroy(md);
  if (topic_err == RD_KAFKA_RESP_ERR_NO_ERROR && count <= 0) {
    topic_err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
  }
  if (topic_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return internal::ErrorStatus(topic_err, "kafka: partitions of " + topic);
  }
  return count;
}

}  // namespace seg::kafka

// Shared pieces of the librdkafka adapter: building rd_kafka_conf_t from
// KafkaOptions, routing librdkafka logs to glog, error -> Status. Internal to
// common/kafka.*; thread-safe (stateless).
#pragma once

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/kafka.h"
#include "common/status.h"

namespace seg::kafka::internal {

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

// A conf with bootstrap.servers, client.id, glog logging, then `defaults`,
// then options.properties (the caller's word wins).
StatusOr<ConfPtr> BuildConf(const KafkaOptions& options,
                            const std::map<std::string, std::string>& defaults);

// rd_kafka_new that returns a Status; takes ownership of `conf` on success
// and on failure.
StatusOr<HandlePtr> NewHandle(rd_kafka_type_t type, ConfPtr conf);

// Maps a librdkafka error to a StatusCode and prefixes `context`.
Status ErrorStatus(rd_kafka_resp_err_t err, std::string_view context);
// Same for an rd_kafka_error_t (destroys it).
Status ErrorStatus(rd_kafka_error_t* error, std::string_view context);

std::vector<TopicPartition> ToVector(const rd_kafka_topic_partition_list_t* list);

}  // namespace seg::kafka::internal

// CreateTopics through the librdkafka Admin API (real clusters only).
#include <glog/logging.h>

#include "common/internal/kafka_util.h"
#include "common/kafka.h"

namespace seg::kafka {

using internal::ErrorStatus;

Status CreateTopics(const KafkaOptions& options, const std::vector<TopicSpec>& topics,
                    std::chrono::milliseconds timeout) {
  if (topics.empty()) return Status::OK();
  SEG_ASSIGN_OR_RETURN(auto conf, internal::BuildConf(options, {}));
  SEG_ASSIGN_OR_RETURN(auto rk, internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf)));

  std::vector<rd_kafka_NewTopic_t*> new_topics;
  auto cleanup = [&] { rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size()); };
  char err[512];
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt =
        rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, t.replication_factor, err, sizeof(err));
    if (nt == nullptr) {
      cleanup();
      return InvalidArgumentError("kafka create topic " + t.name + ": " + err);
    }
    new_topics.push_back(nt);
  }

  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk.get());
  rd_kafka_AdminOptions_t* admin =
      rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(admin, static_cast<int>(timeout.count()), err,
                                              sizeof(err));
  rd_kafka_AdminOptions_set_request_timeout(admin, static_cast<int>(timeout.count()), err,
                                            sizeof(err));
  rd_kafka_CreateTopics(rk.get(), new_topics.data(), new_topics.size(), admin, queue);
  rd_kafka_AdminOptions_destroy(admin);
  cleanup();

  // The request has its own timeout; a little slack so its answer wins.
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 5000);
  Status status;
  if (event == nullptr) {
    status = DeadlineExceededError("kafka create topics: no answer");
  } else if (rd_kafka_event_error(event)) {
    status = ErrorStatus(rd_kafka_event_error(event),
                         std::string("kafka create topics: ") + rd_kafka_event_error_string(event));
  } else {
    const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event);
    size_t n = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &n);
    for (size_t i = 0; i < n && status.ok(); ++i) {
      rd_kafka_resp_err_t terr = rd_kafka_topic_result_error(results[i]);
      if (terr == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;
      const char* msg = rd_kafka_topic_result_error_string(results[i]);
      status = ErrorStatus(terr, std::string("kafka create topic ") +
                                     rd_kafka_topic_result_name(results[i]) +
                                     (msg ? std::string(" (") + msg + ")" : ""));
    }
    if (status.ok()) LOG(INFO) << "kafka: created " << n << " topics";
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  return status;
}

}  // namespace seg::kafka

#include "tests/harness/kafka_cluster.h"

#include <glog/logging.h>
#include <librdkafka/rdkafka_mock.h>

#include <cstdlib>

namespace seg::testing {
namespace {

Status MockStatus(rd_kafka_resp_err_t err, const std::string& what) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::OK();
  return InternalError("mock kafka " + what + ": " + rd_kafka_err2str(err));
}

}  // namespace

StatusOr<std::unique_ptr<MockKafkaCluster>> MockKafkaCluster::Start(int brokers) {
  if (brokers < 1) return InvalidArgumentError("mock kafka: need at least one broker");
  std::unique_ptr<MockKafkaCluster> self(new MockKafkaCluster());
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the cluster; it never talks to a broker.
  // It warns about the missing bootstrap.servers; nothing else to say.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  rd_kafka_conf_set(conf, "client.id", "mock-cluster", err, sizeof(err));
  // The mock brokers take their socket options from this handle: without
  // TCP_NODELAY every response waited out the client's delayed ACK (~40 ms).
  rd_kafka_conf_set(conf, "socket.nagle.disable", "true", err, sizeof(err));
  self->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (self->rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    return InternalError(std::string("mock kafka: rd_kafka_new: ") + err);
  }
  self->cluster_ = rd_kafka_mock_cluster_new(self->rk_, brokers);
  if (self->cluster_ == nullptr)
    return InternalError("mock kafka: rd_kafka_mock_cluster_new failed");
  self->bootstrap_ = rd_kafka_mock_cluster_bootstraps(self->cluster_);
  self->brokers_ = brokers;
  LOG(INFO) << "mock kafka cluster with " << brokers << " brokers at " << self->bootstrap_;
  return self;
}

MockKafkaCluster::~MockKafkaCluster() {
  if (cluster_) rd_kafka_mock_cluster_destroy(cluster_);
  if (rk_) rd_kafka_destroy(rk_);
}

std::string TestAssignmentStrategy() {
  const char* strategy = std::getenv("SEG_TEST_ASSIGNMENT_STRATEGY");
  return strategy != nullptr ? std::string(strategy) : std::string();
}

void ApplyTestAssignmentStrategy(kafka::KafkaOptions* options) {
  std::string strategy = TestAssignmentStrategy();
  if (!strategy.empty()) options->properties["partition.assignment.strategy"] = strategy;
}

kafka::KafkaOptions MockKafkaCluster::ClientOptions(const std::string& client_id) const {
  kafka::KafkaOptions options;
  options.bootstrap_servers = bootstrap_;
  options.client_id = client_id;
  options.properties["reconnect.backoff.ms"] = "20";
  options.properties["reconnect.backoff.max.ms"] = "200";
  options.properties["retry.backoff.ms"] = "20";
  // Not a divisor of the mock coordinator's 3000/5000 ms join timers. At
  // 1000 ms the periodic refresh phase-locked with them: a refresh landing
  // while the leader awaits its assignor metadata makes librdkafka 2.0.2
  // rejoin (rd_kafka_cgrp_metadata_update_check), 5 s per round, and a
  // group stayed unassigned for 30 s in CI.
  options.properties["topic.metadata.refresh.interval.ms"] = "1117";
  // librdkafka's own debug contexts (e.g. "cgrp,protocol"), shown at GLOG_v=1.
  if (const char* debug = std::getenv("SEG_TEST_KAFKA_DEBUG")) options.properties["debug"] = debug;
  return options;
}

Status MockKafkaCluster::CreateTopic(const std::string& name, int partitions, int replication) {
  return MockStatus(rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, replication),
                    "create topic " + name);
}

Status MockKafkaCluster::BrokerDown(int32_t id) {
  return MockStatus(rd_kafka_mock_broker_set_down(cluster_, id),
                    "broker " + std::to_string(id) + " down");
}

Status MockKafkaCluster::BrokerUp(int32_t id) {
  return MockStatus(rd_kafka_mock_broker_set_up(cluster_, id),
                    "broker " + std::to_string(id) + " up");
}

Status MockKafkaCluster::SetBrokerRtt(int32_t id, int rtt_ms) {
  return MockStatus(rd_kafka_mock_broker_set_rtt(cluster_, id, rtt_ms),
                    "broker " + std::to_string(id) + " rtt");
}

Status MockKafkaCluster::SetGroupCoordinator(const std::string& group, int32_t broker_id) {
  return MockStatus(rd_kafka_mock_coordinator_set(cluster_, "group", group.c_str(), broker_id),
                    "set coordinator of group " + group);
}

Status MockKafkaCluster::SetPartitionLeader(const std::string& topic, int32_t partition,
                                            int32_t broker_id) {
  return MockStatus(
      rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker_id),
      "set leader of " + topic + "/" + std::to_string(partition));
}

void MockKafkaCluster::PushRequestErrors(KafkaApi api,
                                         const std::vector<rd_kafka_resp_err_t>& errors) {
  rd_kafka_mock_push_request_errors_array(cluster_, static_cast<int16_t>(api), errors.size(),
                                          errors.data());
}

void MockKafkaCluster::ClearRequestErrors(KafkaApi api) {
  rd_kafka_mock_clear_request_errors(cluster_, static_cast<int16_t>(api));
}

void MockKafkaCluster::SetTopicError(const std::string& topic, rd_kafka_resp_err_t err) {
  rd_kafka_mock_topic_set_error(cluster_, topic.c_str(), err);
}

}  // namespace seg::testing

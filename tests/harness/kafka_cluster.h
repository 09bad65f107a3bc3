// MockKafkaCluster: librdkafka's in-process mock Kafka cluster (real Kafka
// protocol over 127.0.0.1 TCP listeners, one thread) with fault injection,
// for integration tests and `kafka-local`.
//
// Broker ids are 1..N. Topics must be created explicitly (CreateTopic); the
// mock does not implement the CreateTopics admin request. Consumer groups on
// the mock rebalance only after about a session timeout, so tests with
// several members should use session.timeout.ms ~6000.
//
// Thread-safe: the rd_kafka_mock_* calls lock the cluster internally.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/kafka.h"
#include "common/status.h"

struct rd_kafka_mock_cluster_s;

namespace seg::testing {

// Kafka protocol request types, for PushRequestErrors.
enum class KafkaApi : int16_t {
  kProduce = 0,
  kFetch = 1,
  kListOffsets = 2,
  kMetadata = 3,
  kOffsetCommit = 8,
  kOffsetFetch = 9,
  kFindCoordinator = 10,
  kJoinGroup = 11,
  kHeartbeat = 12,
  kSyncGroup = 14,
  kInitProducerId = 22,
};

// The consumer assignment strategy tests run with: SEG_TEST_ASSIGNMENT_STRATEGY
// when set and non-empty (e.g. "cooperative-sticky", see
// tools/stress-kafka.sh), else "" for the product default (eager roundrobin).
std::string TestAssignmentStrategy();
// Sets partition.assignment.strategy in `options` when the environment asks
// for one; leaves the product default otherwise. Call it in the tests'
// consumer factories.
void ApplyTestAssignmentStrategy(kafka::KafkaOptions* options);

class MockKafkaCluster {
 public:
  // Starts `brokers` brokers listening on ephemeral loopback ports.
  static StatusOr<std::unique_ptr<MockKafkaCluster>> Start(int brokers = 3);
  ~MockKafkaCluster();
  MockKafkaCluster(const MockKafkaCluster&) = delete;
  MockKafkaCluster& operator=(const MockKafkaCluster&) = delete;

  // "127.0.0.1:port,..." for bootstrap.servers.
  const std::string& bootstrap_servers() const { return bootstrap_; }
  int broker_count() const { return brokers_; }

  // Client options pointing at this cluster, with short reconnect backoffs so
  // that fault-injection tests recover quickly.
  kafka::KafkaOptions ClientOptions(const std::string& client_id = "test") const;

  Status CreateTopic(const std::string& name, int partitions, int replication = 1);

  // Disconnects broker `id` (-1: all) and refuses new connections. Partition
  // leadership does not move.
  Status BrokerDown(int32_t id);
  Status BrokerUp(int32_t id);
  // Delays every response of broker `id` by `rtt_ms`.
  Status SetBrokerRtt(int32_t id, int rtt_ms);
  Status SetPartitionLeader(const std::string& topic, int32_t partition, int32_t broker_id);
  // Makes broker `id` the coordinator of consumer group `group`.
  Status SetGroupCoordinator(const std::string& group, int32_t broker_id);

  // The next errors.size() requests of type `api` (any broker) fail with these
  // errors in order. RD_KAFKA_RESP_ERR__TRANSPORT disconnects the client.
  void PushRequestErrors(KafkaApi api, const std::vector<rd_kafka_resp_err_t>& errors);
  void ClearRequestErrors(KafkaApi api);
  // Error returned for `topic` in Metadata responses (NO_ERROR clears it).
  void SetTopicError(const std::string& topic, rd_kafka_resp_err_t err);

 private:
  MockKafkaCluster() = default;
  rd_kafka_t* rk_ = nullptr;  // owns the cluster's bookkeeping
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  std::string bootstrap_;
  int brokers_ = 0;
};

}  // namespace seg::testing

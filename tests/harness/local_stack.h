// LocalStack: the whole product on one machine for end-to-end tests, every
// part real and on 127.0.0.1 with free ports:
//   1. the librdkafka mock cluster (in this process; 3 brokers) with the
//      topics events, events-deadletter, user-changes, segmentation-results;
//   2. redis-server (LocalRedis);
//   3. seg-store (the binary, RocksDB in a TempDir);
//   4. seg-ingest;  5. two seg-segmenter processes;  6. seg-stats.
// Started in that order, each after the previous one is ready (port file
// written or TCP port accepting; consumers also hold partitions); Start() fails with the log tail
// of the part that did not come up. The destructor stops the processes in reverse order (SIGTERM,
// then SIGKILL after `stop_grace`) and removes the temp dir.
//
//   LocalStackOptions options;
//   options.segmenter_overrides = {"segmenter.read_delay_ms=100"};
//   SEG_ASSIGN_OR_RETURN(auto stack, LocalStack::Start(options));
//   kafka::Producer::Create(stack->KafkaClientOptions("loadgen")) ...
//
// Binaries come from BinaryDir() (SEG_BINARY_DIR, set by ctest). Not
// thread-safe: drive one LocalStack from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/kafka.h"
#include "common/status.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"

namespace seg::testing {

struct LocalStackOptions {
  int kafka_brokers = 3;
  int partitions = 8;  // of events, user-changes and segmentation-results
  int deadletter_partitions = 2;
  int segmenters = 2;
  // Segment scripts; empty = SourceDir()/scripts.
  std::string scripts_dir;
  // Extra "key.path=value" config overrides (--set) per process.
  std::vector<std::string> store_overrides;
  std::vector<std::string> ingest_overrides;
  std::vector<std::string> segmenter_overrides;
  std::vector<std::string> stats_overrides;
  std::chrono::milliseconds ready_timeout{60000};  // per process
  std::chrono::milliseconds stop_grace{10000};     // SIGTERM -> SIGKILL
  // Real Apache Kafka (one KRaft node) and HBase + Thrift2 from
  // tools/services, started in this stack's directory and stopped with it,
  // instead of the mock cluster and seg-store. kafka() is then unusable.
  bool real_services = false;
  // With real_services: the change notices come from HBase's NoticeEndpoint
  // (coprocessor-bridge/hbase, SEG_HBASE_NOTICES=1) and ingest sends none.
  bool hbase_notices = false;
};

class LocalStack {
 public:
  static StatusOr<std::unique_ptr<LocalStack>> Start(LocalStackOptions options = {});
  ~LocalStack();
  LocalStack(const LocalStack&) = delete;
  LocalStack& operator=(const LocalStack&) = delete;

  MockKafkaCluster& kafka() { return *kafka_; }  // not with real_services
  const std::string& bootstrap_servers() const { return bootstrap_; }
  // Client options for the mock cluster (short reconnect backoffs).
  kafka::KafkaOptions KafkaClientOptions(const std::string& client_id) const;
  int redis_port() const { return redis_->port(); }
  int store_port() const { return store_port_; }  // seg-store's, or HBase's Thrift2 gateway
  int stats_port() const { return stats_port_; }
  std::string stats_target() const { return "127.0.0.1:" + std::to_string(stats_port_); }
  int ingest_metrics_port() const { return ingest_metrics_port_; }
  const std::vector<int>& segmenter_metrics_ports() const { return segmenter_metrics_ports_; }
  const std::string& dir() const { return dir_.path(); }

  // Names of the child processes that are no longer running (empty = all up).
  std::vector<std::string> Exited();
  // The last bytes of a process's log ("store", "ingest", "segmenter1", ...).
  std::string LogTail(const std::string& name, size_t max_bytes = 3000) const;

  // Messages of `topic` not yet committed by consumer group `group`, summed
  // over partitions (a partition without a commit counts from its low
  // watermark). Asks the brokers: OffsetFetch + ListOffsets.
  StatusOr<int64_t> GroupLag(const std::string& group, const std::string& topic,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // High watermark (next offset) of every partition of `topic`.
  StatusOr<std::vector<int64_t>> EndOffsets(
      const std::string& topic, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Stops every process, newest first; returns their exit codes in start
  // order. Idempotent; the destructor calls it.
  std::vector<int> Stop();

 private:
  struct Child {
    std::string name;
    ChildProcess process;
  };
  explicit LocalStack(LocalStackOptions options) : options_(std::move(options)) {}
  Status StartAll();
  StatusOr<Child*> Launch(const std::string& name, std::vector<std::string> argv);
  Status WaitPortFile(Child* child, const std::string& path, int* port);
  Status WaitPort(Child* child, int port);
  // Polls the child's log for `needle` (e.g. its consumer's "assigned").
  Status WaitLog(Child* child, const std::string& needle);

  LocalStackOptions options_;
  TempDir dir_;
  Status StartRealServices();
  void StopRealServices();

  std::unique_ptr<MockKafkaCluster> kafka_;
  std::string bootstrap_;
  bool services_up_ = false;
  std::unique_ptr<LocalRedis> redis_;
  std::vector<std::unique_ptr<Child>> children_;
  int store_port_ = 0;
  int stats_port_ = 0;
  int ingest_metrics_port_ = 0;
  std::vector<int> segmenter_metrics_ports_;
};

}  // namespace seg::testing

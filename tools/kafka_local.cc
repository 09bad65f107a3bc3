// kafka-local: runs librdkafka's mock Kafka cluster as its own process so that
// several local processes (ingest, segmenters, kcat) share one "Kafka".
//
//   kafka-local --brokers 3 --topics events:8,user-changes:8 [--port-file F]
//
// Prints "bootstrap.servers=HOST:PORT,..." on stdout once the topics exist,
// writes the same bootstrap list to --port-file (atomically) if given, and
// exits 0 on SIGINT/SIGTERM. Data lives in memory only.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <glog/logging.h>

#include "common/logging.h"

namespace {

struct TopicArg {
  std::string name;
  int partitions;
};

// "events:8,user-changes" -> {events,8}, {user-changes,1}.
bool ParseTopics(const std::vector<std::string>& specs, std::vector<TopicArg>* out,
                 std::string* error) {
  for (const auto& spec : specs) {
    if (spec.empty()) continue;
    auto colon = spec.find(':');
    TopicArg t{spec.substr(0, colon), 1};
    if (colon != std::string::npos) {
      try {
        t.partitions = std::stoi(spec.substr(colon + 1));
      } catch (const std::exception&) {
        t.partitions = 0;
      }
    }
    if (t.name.empty() || t.partitions < 1) {
      *error = "bad topic spec '" + spec + "' (want name[:partitions])";
      return false;
    }
    out->push_back(t);
  }
  return true;
}

bool WritePortFile(const std::string& path, const std::string& bootstrap) {
  // Write then rename, so a reader polling for the file never sees half of it.
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << bootstrap << "\n";
    if (!f) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"Runs an in-memory mock Kafka cluster (librdkafka) until SIGINT/SIGTERM"};
  int brokers = 3;
  int replication = 0;
  std::vector<std::string> topic_specs;
  std::string port_file;
  app.add_option("--brokers", brokers, "Number of brokers")->check(CLI::Range(1, 64));
  app.add_option("--topics", topic_specs, "Topics to create, name:partitions,...")->delimiter(',');
  app.add_option("--replication", replication,
                 "Replication factor of the topics (default: min(3, brokers))");
  app.add_option("--port-file", port_file, "Write the bootstrap servers to this file");
  CLI11_PARSE(app, argc, argv);

  std::vector<TopicArg> topics;
  std::string error;
  if (!ParseTopics(topic_specs, &topics, &error)) {
    std::cerr << "kafka-local: " << error << "\n";
    return 2;
  }
  if (replication <= 0) replication = std::min(3, brokers);
  if (replication > brokers) {
    std::cerr << "kafka-local: replication " << replication << " > brokers " << brokers << "\n";
    return 2;
  }

  // Block the stop signals before librdkafka starts threads, so they inherit
  // the mask and sigwait below is the only receiver.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "client.id", "kafka-local", err, sizeof(err));
  // The host handle warns about the missing bootstrap.servers; it needs none.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  // The mock brokers take their socket options from this handle: without
  // TCP_NODELAY each response waits out the client's delayed ACK (~40 ms).
  rd_kafka_conf_set(conf, "socket.nagle.disable", "true", err, sizeof(err));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    LOG(ERROR) << "rd_kafka_new: " << err;
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, brokers);
  if (cluster == nullptr) {
    LOG(ERROR) << "could not start the mock cluster";
    rd_kafka_destroy(rk);
    return 1;
  }
  int rc = 0;
  for (const auto& t : topics) {
    rd_kafka_resp_err_t e =
        rd_kafka_mock_topic_create(cluster, t.name.c_str(), t.partitions, replication);
    if (e) {
      LOG(ERROR) << "create topic " << t.name << ": " << rd_kafka_err2str(e);
      rc = 1;
    }
  }
  std::string bootstrap = rd_kafka_mock_cluster_bootstraps(cluster);
  if (rc == 0 && !port_file.empty() && !WritePortFile(port_file, bootstrap)) {
    LOG(ERROR) << "cannot write " << port_file;
    rc = 1;
  }
  if (rc == 0) {
    std::cout << "bootstrap.servers=" << bootstrap << std::endl;
    LOG(INFO) << "mock kafka: " << brokers << " brokers, " << topics.size()
              << " topics; SIGINT/SIGTERM to stop";
    int sig = 0;
    sigwait(&stop_signals, &sig);
    LOG(INFO) << "signal " << sig << ", stopping";
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  if (rc == 0 && !port_file.empty()) std::remove(port_file.c_str());
  return rc;
}

// kafka-local: runs librdkafka's mock Kafka cluster as its own process so that
// several local processes (ingest, segmenters, kcat) share one "Kafka".
//
//   kafka-local --brokers 3 --topics events:8,user-changes:8 [--port-file F]
//               [--control FIFO]
//
// Prints "bootstrap.servers=HOST:PORT,..." on stdout once the topics exist,
// writes the same bootstrap list to --port-file (atomically) if given, and
// exits 0 on SIGINT/SIGTERM. Data lives in memory only.
//
// --control FIFO: fault injection from outside (tools/chaos.py). The named
// pipe is created, and each line written to it is one command:
//   down ID | up ID              broker ID (1..brokers) refuses / serves again
//   errors API COUNT ERR[,ERR]   the next COUNT requests of API (produce,
//                                fetch, offset_commit, heartbeat, ... or its
//                                number) fail with ERR (a librdkafka error
//                                name such as NOT_LEADER_FOR_PARTITION or
//                                _TRANSPORT, or its number), cycling the list
//   rtt ID MS                    broker ID answers MS later
// Each command is logged ("control: ..."), a bad one with the reason; the
// log line is the acknowledgement.
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
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

// Kafka protocol API keys by the names --control accepts.
const std::map<std::string, int16_t>& ApiKeys() {
  static const std::map<std::string, int16_t> keys = {
      {"produce", 0},       {"fetch", 1},           {"list_offsets", 2}, {"metadata", 3},
      {"offset_commit", 8}, {"offset_fetch", 9},    {"find_coordinator", 10},
      {"join_group", 11},   {"heartbeat", 12},      {"leave_group", 13}, {"sync_group", 14},
      {"init_producer_id", 22}};
  return keys;
}

bool ParseInt(const std::string& text, long long* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtoll(text.c_str(), &end, 10);
  return errno == 0 && *end == '\0';
}

// "NOT_LEADER_FOR_PARTITION", "_TRANSPORT" or a number.
bool ParseError(const std::string& text, rd_kafka_resp_err_t* out) {
  long long n = 0;
  if (ParseInt(text, &n)) {
    *out = static_cast<rd_kafka_resp_err_t>(n);
    return true;
  }
  const struct rd_kafka_err_desc* descs = nullptr;
  size_t count = 0;
  rd_kafka_get_err_descs(&descs, &count);
  for (size_t i = 0; i < count; ++i) {
    if (descs[i].name != nullptr && text == descs[i].name) {
      *out = descs[i].code;
      return true;
    }
  }
  return false;
}

// Runs one --control command; "" when done, else what was wrong with it.
std::string RunControl(rd_kafka_mock_cluster_t* cluster, int brokers, const std::string& line) {
  std::istringstream in(line);
  std::string verb;
  in >> verb;
  std::vector<std::string> args;
  for (std::string a; in >> a;) args.push_back(a);
  long long id = 0;
  auto broker_ok = [&](const std::string& text) {
    return ParseInt(text, &id) && id >= 1 && id <= brokers;
  };
  if ((verb == "down" || verb == "up") && args.size() == 1) {
    if (!broker_ok(args[0])) return "no broker " + args[0];
    rd_kafka_resp_err_t e = verb == "down"
                                ? rd_kafka_mock_broker_set_down(cluster, static_cast<int32_t>(id))
                                : rd_kafka_mock_broker_set_up(cluster, static_cast<int32_t>(id));
    return e ? rd_kafka_err2str(e) : "";
  }
  if (verb == "rtt" && args.size() == 2) {
    long long ms = 0;
    if (!broker_ok(args[0])) return "no broker " + args[0];
    if (!ParseInt(args[1], &ms) || ms < 0 || ms > 60'000) return "bad rtt " + args[1];
    rd_kafka_resp_err_t e =
        rd_kafka_mock_broker_set_rtt(cluster, static_cast<int32_t>(id), static_cast<int>(ms));
    return e ? rd_kafka_err2str(e) : "";
  }
  if (verb == "errors" && args.size() == 3) {
    long long api = 0, count = 0;
    auto it = ApiKeys().find(args[0]);
    if (it != ApiKeys().end()) {
      api = it->second;
    } else if (!ParseInt(args[0], &api) || api < 0 || api > 100) {
      return "unknown api " + args[0];
    }
    if (!ParseInt(args[1], &count) || count < 1 || count > 100'000) return "bad count " + args[1];
    std::vector<rd_kafka_resp_err_t> codes;
    std::stringstream list(args[2]);
    for (std::string name; std::getline(list, name, ',');) {
      rd_kafka_resp_err_t code;
      if (!ParseError(name, &code)) return "unknown error " + name;
      codes.push_back(code);
    }
    if (codes.empty()) return "no error codes";
    std::vector<rd_kafka_resp_err_t> errors;
    for (long long i = 0; i < count; ++i) errors.push_back(codes[i % codes.size()]);
    rd_kafka_mock_push_request_errors_array(cluster, static_cast<int16_t>(api), errors.size(),
                                            errors.data());
    return "";
  }
  return "unknown command (down ID | up ID | errors API COUNT ERR[,ERR] | rtt ID MS)";
}

// Reads commands from the FIFO until `stop`. Opened read-write so that it
// never sees end-of-file between writers.
void ServeControl(const std::string& path, rd_kafka_mock_cluster_t* cluster, int brokers,
                  const std::atomic<bool>* stop) {
  int fd = open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    LOG(ERROR) << "control: cannot open " << path << ": " << std::strerror(errno);
    return;
  }
  std::string pending;
  char buf[4096];
  while (!stop->load()) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) continue;
    pending.append(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line.empty()) continue;
      std::string error = RunControl(cluster, brokers, line);
      if (error.empty()) {
        LOG(INFO) << "control: " << line;
      } else {
        LOG(WARNING) << "control: '" << line << "' refused: " << error;
      }
    }
  }
  close(fd);
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
  std::string control;
  app.add_option("--control", control, "Create this FIFO and take fault commands from it");
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
  // The control FIFO exists before the port file says the cluster is up.
  std::atomic<bool> stop{false};
  std::thread control_thread;
  if (rc == 0 && !control.empty()) {
    std::remove(control.c_str());
    if (mkfifo(control.c_str(), 0600) != 0) {
      LOG(ERROR) << "control: mkfifo " << control << ": " << std::strerror(errno);
      rc = 1;
    } else {
      control_thread = std::thread(ServeControl, control, cluster, brokers, &stop);
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
  stop = true;
  if (control_thread.joinable()) control_thread.join();
  if (!control.empty()) std::remove(control.c_str());
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  if (rc == 0 && !port_file.empty()) std::remove(port_file.c_str());
  return rc;
}

#include "tests/harness/local_stack.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <glog/logging.h>

namespace seg::testing {
namespace {

using Clock = std::chrono::steady_clock;

// What common/internal/kafka_consumer.cc logs when a member gets partitions.
constexpr const char* kAssigned = "assigned";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void AddOverrides(const std::vector<std::string>& overrides, std::vector<std::string>* argv) {
  for (const auto& o : overrides) {
    argv->push_back("--set");
    argv->push_back(o);
  }
}

// A librdkafka consumer handle that never subscribes: enough for OffsetFetch
// and ListOffsets on behalf of any group without joining it.
struct AdminHandle {
  rd_kafka_t* rk = nullptr;
  ~AdminHandle() {
    if (rk != nullptr) rd_kafka_destroy(rk);
  }
};

Status OpenAdmin(const std::string& bootstrap, const std::string& group, AdminHandle* out) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return InternalError(std::string("kafka conf: ") + err);
  }
  out->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (out->rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return InternalError(std::string("rd_kafka_new: ") + err);
  }
  return Status::OK();
}

StatusOr<int> PartitionCount(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
  rd_kafka_topic_destroy(t);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return UnavailableError("metadata for " + topic + ": " + rd_kafka_err2str(err));
  }
  int n = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR
              ? md->topics[0].partition_cnt
              : -1;
  rd_kafka_metadata_destroy(md);
  if (n <= 0) return NotFoundError("topic " + topic + " has no partitions");
  return n;
}

}  // namespace

StatusOr<std::unique_ptr<LocalStack>> LocalStack::Start(LocalStackOptions options) {
  std::unique_ptr<LocalStack> stack(new LocalStack(std::move(options)));
  SEG_RETURN_IF_ERROR(stack->StartAll());
  return stack;
}

LocalStack::~LocalStack() { Stop(); }

kafka::KafkaOptions LocalStack::KafkaClientOptions(const std::string& client_id) const {
  if (kafka_) return kafka_->ClientOptions(client_id);
  kafka::KafkaOptions options;
  options.bootstrap_servers = bootstrap_;
  options.client_id = client_id;
  return options;
}

// tools/services/services.sh up|down kafka hbase, in this stack's directory.
static Status RunServices(const std::string& dir, const std::string& verb,
                          std::chrono::milliseconds timeout, bool hbase_notices) {
  std::vector<std::string> env = {"SEG_SERVICES_DIR=" + dir + "/services",
                                  "SEG_BUILD_DIR=" + BinaryDir()};
  if (hbase_notices) env.push_back("SEG_HBASE_NOTICES=1");
  SEG_ASSIGN_OR_RETURN(
      ChildProcess services,
      ChildProcess::Start({SourceDir() + "/tools/services/services.sh", verb, "kafka", "hbase"},
                          dir + "/services.log", env));
  SEG_ASSIGN_OR_RETURN(int code, services.Wait(timeout));
  if (code != 0) {
    std::string log = ReadFile(dir + "/services.log");
    if (log.size() > 3000) log = log.substr(log.size() - 3000);
    return UnavailableError("services.sh " + verb + " exited " + std::to_string(code) + ":\n" +
                            log);
  }
  return Status::OK();
}

Status LocalStack::StartRealServices() {
  services_up_ = true;  // from here on Stop() brings them down
  SEG_RETURN_IF_ERROR(
      RunServices(dir_.path(), "up", std::chrono::minutes(6), options_.hbase_notices));
  // services.env: `export KEY=VALUE` lines.
  std::map<std::string, std::string> env;
  std::istringstream lines(ReadFile(dir_.path() + "/services/services.env"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("export ", 0) != 0) continue;
    const size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(7, eq - 7)] = line.substr(eq + 1);
  }
  bootstrap_ = env["KAFKA_BOOTSTRAP"];
  store_port_ = std::atoi(env["HBASE_THRIFT_PORT"].c_str());
  if (bootstrap_.empty() || store_port_ <= 0) {
    return InternalError("services.env lacks KAFKA_BOOTSTRAP or HBASE_THRIFT_PORT");
  }
  return Status::OK();
}

void LocalStack::StopRealServices() {
  if (!services_up_) return;
  services_up_ = false;
  Status s = RunServices(dir_.path(), "down", std::chrono::minutes(2), options_.hbase_notices);
  if (!s.ok()) LOG(WARNING) << "local stack: " << s;
}

StatusOr<LocalStack::Child*> LocalStack::Launch(const std::string& name,
                                                std::vector<std::string> argv) {
  auto child = std::make_unique<Child>();
  child->name = name;
  SEG_ASSIGN_OR_RETURN(child->process, ChildProcess::Start(argv, dir_.path() + "/" + name + ".log",
                                                           {"GLOG_logtostderr=1"}));
  children_.push_back(std::move(child));
  return children_.back().get();
}

Status LocalStack::WaitPortFile(Child* child, const std::string& path, int* port) {
  const auto deadline = Clock::now() + options_.ready_timeout;
  while (Clock::now() < deadline) {
    std::string text = ReadFile(path);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (!text.empty()) {
      *port = std::atoi(text.c_str());
      if (*port > 0) return WaitForTcpPort(*port, options_.ready_timeout);
    }
    if (!child->process.running()) {
      return UnavailableError(child->name + " exited before it was ready; log:\n" +
                              LogTail(child->name));
    }
    // Polling a file the child writes once it serves: nothing to wait on.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return DeadlineExceededError(child->name + " wrote no port file; log:\n" + LogTail(child->name));
}

Status LocalStack::WaitPort(Child* child, int port) {
  const auto deadline = Clock::now() + options_.ready_timeout;
  while (Clock::now() < deadline) {
    if (WaitForTcpPort(port, std::chrono::milliseconds(200)).ok()) return Status::OK();
    if (!child->process.running()) {
      return UnavailableError(child->name + " exited before it was ready; log:\n" +
                              LogTail(child->name));
    }
  }
  return DeadlineExceededError(child->name + " not listening on " + std::to_string(port) +
                               "; log:\n" + LogTail(child->name));
}

Status LocalStack::WaitLog(Child* child, const std::string& needle) {
  const auto deadline = Clock::now() + options_.ready_timeout;
  while (Clock::now() < deadline) {
    if (ReadFile(dir_.path() + "/" + child->name + ".log").find(needle) != std::string::npos) {
      return Status::OK();
    }
    if (!child->process.running()) {
      return UnavailableError(child->name + " exited before it was ready; log:\n" +
                              LogTail(child->name));
    }
    // Polling the child's log for its readiness line: nothing to wait on.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return DeadlineExceededError(child->name + " never logged '" + needle + "'; log:\n" +
                               LogTail(child->name));
}

Status LocalStack::StartAll() {
  const std::string bin = BinaryDir();
  const std::string scripts =
      options_.scripts_dir.empty() ? SourceDir() + "/scripts" : options_.scripts_dir;

  // 1. Kafka.
  if (options_.real_services) {
    SEG_RETURN_IF_ERROR(StartRealServices());
    std::vector<kafka::TopicSpec> topics;
    for (const char* topic : {"events", "user-changes", "segmentation-results"}) {
      topics.push_back({topic, options_.partitions, 1});
    }
    topics.push_back({"events-deadletter", options_.deadletter_partitions, 1});
    SEG_RETURN_IF_ERROR(kafka::CreateTopics(KafkaClientOptions("seg-local-stack-admin"), topics));
  } else {
    SEG_ASSIGN_OR_RETURN(kafka_, MockKafkaCluster::Start(options_.kafka_brokers));
    for (const char* topic : {"events", "user-changes", "segmentation-results"}) {
      SEG_RETURN_IF_ERROR(kafka_->CreateTopic(topic, options_.partitions));
    }
    SEG_RETURN_IF_ERROR(kafka_->CreateTopic("events-deadletter", options_.deadletter_partitions));
    bootstrap_ = kafka_->bootstrap_servers();
  }
  const std::string& bootstrap = bootstrap_;
  // Child clients: short backoffs against the mock, and group timeouts the
  // mock rebalances with (kafka_cluster.h).
  const std::vector<std::string> kafka_overrides = {
      "kafka.bootstrap_servers=" + bootstrap,          "kafka.properties.reconnect.backoff.ms=20",
      "kafka.properties.reconnect.backoff.max.ms=200", "kafka.properties.retry.backoff.ms=20",
      "kafka.properties.session.timeout.ms=6000",      "kafka.properties.heartbeat.interval.ms=500",
  };

  // 2. Redis.
  SEG_ASSIGN_OR_RETURN(redis_, LocalRedis::Start());

  // 3. The store (a real HBase's Thrift2 gateway is already up).
  if (!options_.real_services) {
    std::vector<std::string> argv = {bin + "/store/seg-store",
                                     "--data-dir",
                                     dir_.path() + "/store",
                                     "--port",
                                     "0",
                                     "--port-file",
                                     dir_.path() + "/store.port"};
    AddOverrides(options_.store_overrides, &argv);
    SEG_ASSIGN_OR_RETURN(Child * store, Launch("store", argv));
    SEG_RETURN_IF_ERROR(WaitPortFile(store, dir_.path() + "/store.port", &store_port_));
  }

  // 4. Ingest.
  {
    ingest_metrics_port_ = PickFreePort();
    std::vector<std::string> argv = {bin + "/ingest/seg-ingest", "--metrics-port",
                                     std::to_string(ingest_metrics_port_)};
    AddOverrides(kafka_overrides, &argv);
    AddOverrides({"store.backend=thrift", "store.thrift.host=127.0.0.1",
                  "store.thrift.port=" + std::to_string(store_port_)},
                 &argv);
    if (options_.hbase_notices) AddOverrides({"ingest.notices.enabled=false"}, &argv);
    AddOverrides(options_.ingest_overrides, &argv);
    SEG_ASSIGN_OR_RETURN(Child * ingest, Launch("ingest", argv));
    SEG_RETURN_IF_ERROR(WaitPort(ingest, ingest_metrics_port_));
    SEG_RETURN_IF_ERROR(WaitLog(ingest, kAssigned));
  }

  // 5. Segmenters.
  for (int i = 1; i <= options_.segmenters; ++i) {
    int port = PickFreePort();
    std::vector<std::string> argv = {bin + "/segmenter/seg-segmenter",
                                     "--store",
                                     "127.0.0.1:" + std::to_string(store_port_),
                                     "--redis",
                                     "127.0.0.1:" + std::to_string(redis_->port()),
                                     "--scripts",
                                     scripts,
                                     "--metrics-port",
                                     std::to_string(port)};
    AddOverrides(kafka_overrides, &argv);
    AddOverrides(options_.segmenter_overrides, &argv);
    SEG_ASSIGN_OR_RETURN(Child * segmenter, Launch("segmenter" + std::to_string(i), argv));
    SEG_RETURN_IF_ERROR(WaitPort(segmenter, port));
    segmenter_metrics_ports_.push_back(port);
  }
  // Every segmenter holds partitions: the group settled, so traffic sent
  // now is not split by a rebalance (blacklist counts are per node).
  for (auto& child : children_) {
    if (child->name.rfind("segmenter", 0) == 0)
      SEG_RETURN_IF_ERROR(WaitLog(child.get(), kAssigned));
  }

  // 6. Stats.
  {
    std::vector<std::string> argv = {bin + "/stats/seg-stats", "--port", "0", "--port-file",
                                     dir_.path() + "/stats.port"};
    AddOverrides(
        {"stats.redis.host=127.0.0.1", "stats.redis.port=" + std::to_string(redis_->port()),
         "stats.user_lookup=true", "store.thrift.host=127.0.0.1",
         "store.thrift.port=" + std::to_string(store_port_)},
        &argv);
    AddOverrides(options_.stats_overrides, &argv);
    SEG_ASSIGN_OR_RETURN(Child * stats, Launch("stats", argv));
    SEG_RETURN_IF_ERROR(WaitPortFile(stats, dir_.path() + "/stats.port", &stats_port_));
  }
  LOG(INFO) << "local stack up in " << dir_.path() << ": kafka " << bootstrap << ", redis "
            << redis_->port() << ", store " << store_port_ << ", stats " << stats_port_;
  return Status::OK();
}

std::vector<std::string> LocalStack::Exited() {
  std::vector<std::string> out;
  for (auto& child : children_) {
    if (!child->process.running()) out.push_back(child->name);
  }
  return out;
}

std::string LocalStack::LogTail(const std::string& name, size_t max_bytes) const {
  std::string text = ReadFile(dir_.path() + "/" + name + ".log");
  return text.size() > max_bytes ? text.substr(text.size() - max_bytes) : text;
}

StatusOr<std::vector<int64_t>> LocalStack::EndOffsets(const std::string& topic,
                                                      std::chrono::milliseconds timeout) {
  AdminHandle admin;
  SEG_RETURN_IF_ERROR(OpenAdmin(bootstrap_, "seg-local-stack-admin", &admin));
  const int timeout_ms = static_cast<int>(timeout.count());
  SEG_ASSIGN_OR_RETURN(int partitions, PartitionCount(admin.rk, topic, timeout_ms));
  std::vector<int64_t> ends(partitions);
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(admin.rk, topic.c_str(), p, &low, &high, timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return UnavailableError("watermarks of " + topic + ": " + rd_kafka_err2str(err));
    }
    ends[p] = high;
  }
  return ends;
}

StatusOr<int64_t> LocalStack::GroupLag(const std::string& group, const std::string& topic,
                                       std::chrono::milliseconds timeout) {
  AdminHandle admin;
  SEG_RETURN_IF_ERROR(OpenAdmin(bootstrap_, group, &admin));
  const int timeout_ms = static_cast<int>(timeout.count());
  SEG_ASSIGN_OR_RETURN(int partitions, PartitionCount(admin.rk, topic, timeout_ms));
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  rd_kafka_resp_err_t err = rd_kafka_committed(admin.rk, list, timeout_ms);
  int64_t lag = 0;
  for (int i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && i < list->cnt; ++i) {
    int64_t low = 0, high = 0;
    err = rd_kafka_query_watermark_offsets(admin.rk, topic.c_str(), list->elems[i].partition, &low,
                                           &high, timeout_ms);
    const int64_t committed = list->elems[i].offset;
    lag += high - (committed >= 0 ? committed : low);
  }
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return UnavailableError("lag of " + group + " on " + topic + ": " + rd_kafka_err2str(err));
  }
  return lag;
}

std::vector<int> LocalStack::Stop() {
  std::vector<int> codes(children_.size(), -1);
  // SIGTERM to all (newest first) so they drain in parallel, then reap.
  for (size_t i = children_.size(); i-- > 0;) {
    if (children_[i]->process.running()) children_[i]->process.Signal(SIGTERM);
  }
  for (size_t i = children_.size(); i-- > 0;) {
    codes[i] = children_[i]->process.Stop(options_.stop_grace);
  }
  StopRealServices();
  return codes;
}

}  // namespace seg::testing

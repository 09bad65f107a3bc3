#include "common/internal/kafka_util.h"

#include <glog/logging.h>

#include <cstring>

namespace seg::kafka::internal {
namespace {

void LogCallback(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  // syslog levels: 0-3 error, 4 warning, 5-6 notice/info, 7 debug.
  const char* name = rk ? rd_kafka_name(rk) : "rdkafka";
  // Connection failures come at error level but librdkafka retries them.
  if (level <= 3 && std::strcmp(fac, "FAIL") != 0) {
    LOG(ERROR) << name << " " << fac << ": " << buf;
  } else if (level <= 4) {
    LOG(WARNING) << name << " " << fac << ": " << buf;
  } else if (level <= 6) {
    LOG(INFO) << name << " " << fac << ": " << buf;
  } else {
    VLOG(1) << name << " " << fac << ": " << buf;
  }
}

void ErrorCallback(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));
    LOG(ERROR) << rd_kafka_name(rk) << " fatal error " << rd_kafka_err2name(orig) << ": " << buf;
    return;
  }
  // Broker disconnects and the like: librdkafka retries on its own.
  LOG(WARNING) << rd_kafka_name(rk) << " " << rd_kafka_err2name(code) << ": " << reason;
}

StatusCode CodeFor(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return StatusCode::kOk;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
      return StatusCode::kDeadlineExceeded;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      return StatusCode::kResourceExhausted;
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
      return StatusCode::kInvalidArgument;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
      return StatusCode::kNotFound;
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
      return StatusCode::kAlreadyExists;
    case RD_KAFKA_RESP_ERR__STATE:
      return StatusCode::kFailedPrecondition;
    case RD_KAFKA_RESP_ERR__FATAL:
      return StatusCode::kInternal;
    case RD_KAFKA_RESP_ERR__NOT_IMPLEMENTED:
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
      return StatusCode::kUnimplemented;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
      return StatusCode::kPermissionDenied;
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
      return StatusCode::kUnauthenticated;
    default:
      // Most broker-side errors are transient (leader moves, disconnects).
      return StatusCode::kUnavailable;
  }
}

}  // namespace

StatusOr<ConfPtr> BuildConf(const KafkaOptions& options,
                            const std::map<std::string, std::string>& defaults) {
  ConfPtr conf(rd_kafka_conf_new());
  char err[512];
  auto set = [&](const std::string& key, const std::string& value) -> Status {
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
      return InvalidArgumentError("kafka property " + key + "=" + value + ": " + err);
    }
    return Status::OK();
  };
  SEG_RETURN_IF_ERROR(set("bootstrap.servers", options.bootstrap_servers));
  SEG_RETURN_IF_ERROR(set("client.id", options.client_id));
  for (const auto& [key, value] : defaults) SEG_RETURN_IF_ERROR(set(key, value));
  for (const auto& [key, value] : options.properties) SEG_RETURN_IF_ERROR(set(key, value));
  rd_kafka_conf_set_log_cb(conf.get(), LogCallback);
  rd_kafka_conf_set_error_cb(conf.get(), ErrorCallback);
  return conf;
}

StatusOr<HandlePtr> NewHandle(rd_kafka_type_t type, ConfPtr conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof(err));
  if (rk == nullptr) return InvalidArgumentError(std::string("kafka client: ") + err);
  conf.release();  // rd_kafka_new took it
  return HandlePtr(rk);
}

Status ErrorStatus(rd_kafka_resp_err_t err, std::string_view context) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::OK();
  std::string message(context);
  message += ": ";
  message += rd_kafka_err2name(err);
  message += " (";
  message += rd_kafka_err2str(err);
  message += ")";
  return Status(CodeFor(err), message);
}

Status ErrorStatus(rd_kafka_error_t* error, std::string_view context) {
  if (error == nullptr) return Status::OK();
  std::string message(context);
  message += ": ";
  message += rd_kafka_error_name(error);
  message += " (";
  message += rd_kafka_error_string(error);
  message += ")";
  Status status(
      rd_kafka_error_is_fatal(error) ? StatusCode::kInternal : CodeFor(rd_kafka_error_code(error)),
      message);
  rd_kafka_error_destroy(error);
  return status;
}

std::vector<TopicPartition> ToVector(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartition> out;
  if (list == nullptr) return out;
  out.reserve(list->cnt);
  for (int i = 0; i < list->cnt; ++i) {
    out.push_back({list->elems[i].topic, list->elems[i].partition});
  }
  return out;
}

}  // namespace seg::kafka::internal

namespace seg::kafka {

Status KafkaOptions::LoadFrom(Config& config, std::string_view prefix) {
  std::string p(prefix);
  if (!p.empty()) p += ".";
  SEG_RETURN_IF_ERROR(config.Get(p + "bootstrap_servers", &bootstrap_servers));
  SEG_RETURN_IF_ERROR(config.Get(p + "client_id", &client_id));
  SEG_RETURN_IF_ERROR(config.Get(p + "queue_full_wait_ms", &queue_full_wait_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + "properties", &properties));
  return Status::OK();
}

}  // namespace seg::kafka

#include "tools/segctl/forget.h"

#include <glog/logging.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>

#include "common/clock.h"
#include "common/config.h"
#include "common/config_keys.h"
#include "proto/segmentation.pb.h"

namespace seg::tools {

using namespace std::chrono_literals;

StatusOr<std::vector<std::string>> ReadUserIdFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open " + path);
  std::vector<std::string> ids;
  std::string line;
  while (std::getline(in, line)) {
    size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    size_t last = line.find_last_not_of(" \t\r");
    ids.push_back(line.substr(first, last - first + 1));
  }
  if (in.bad()) return UnavailableError("reading " + path + " failed");
  return ids;
}

Status ForgetUsers(const std::vector<std::string>& user_ids, const ForgetOptions& options,
                   ForgetReport* report) {
  *report = ForgetReport();
  std::vector<std::string> users;
  std::set<std::string> seen;
  for (const auto& u : user_ids) {
    if (u.empty()) return InvalidArgumentError("forget: empty user id");
    if (seen.insert(u).second) users.push_back(u);
  }
  report->requested = static_cast<int64_t>(users.size());
  if (users.empty()) return Status::OK();

  const Clock* clock = options.clock ? options.clock : Clock::Real();
  SEG_ASSIGN_OR_RETURN(std::unique_ptr<kafka::Producer> producer,
                       kafka::Producer::Create(options.kafka));
  const auto flush_timeout = std::chrono::milliseconds(options.flush_timeout_ms);
  Status prepared = producer->PrepareTopic(options.topic, std::min(flush_timeout, 10'000ms));
  if (!prepared.ok()) LOG(WARNING) << "forget: " << prepared << " (producing anyway)";

  auto drain = [&](std::chrono::milliseconds wait) {
    for (const kafka::DeliveryReport& r : producer->PollDeliveries(wait)) {
      if (r.status.ok()) {
        ++report->sent;
      } else {
        ++report->failed;
        LOG(ERROR) << "forget: notice for user #" << r.tag << " failed: " << r.status;
      }
    }
  };

  ChangeNotice notice;
  std::string value;
  for (size_t i = 0; i < users.size(); ++i) {
    notice.Clear();
    notice.set_user_id(users[i]);
    notice.set_kind(NOTICE_FORGET);
    notice.set_acked_at_ms(clock->NowMs());
    notice.SerializeToString(&value);
    while (true) {
      Status s = producer->Produce(options.topic, users[i], value, {}, i);
      if (s.ok()) break;
      if (s.code() != StatusCode::kResourceExhausted) {
        (void)producer->Flush(flush_timeout);
        drain(0ms);
        return s.WithContext("forget: produce for user " + users[i]);
      }
      drain(100ms);  // the broker is slow: wait for room
    }
    if ((i & 1023) == 1023) drain(0ms);
  }
  Status flush = producer->Flush(flush_timeout);
  drain(0ms);
  if (report->failed > 0) {
    return UnavailableError("forget: " + std::to_string(report->failed) + " of " +
                            std::to_string(report->requested) + " notices failed to reach Kafka");
  }
  if (!flush.ok()) return flush.WithContext("forget");
  if (report->sent != report->requested) {
    return DeadlineExceededError("forget: only " + std::to_string(report->sent) + " of " +
                                 std::to_string(report->requested) + " notices acknowledged");
  }
  return Status::OK();
}

int ForgetMain(int argc, char** argv) {
  CLI::App app{
      "Delete everything the segmenters keep about users: one NOTICE_FORGET per user on the "
      "notices topic (the user's partition owner deletes its rows and publishes a tombstone)"};
  app.name("segctl forget");
  std::vector<std::string> users, overrides;
  std::string file, bootstrap, topic, config_path;
  int64_t timeout_ms = 60'000;
  app.add_option("users", users, "user ids");
  app.add_option("--file", file, "one user id per line ('#' comments and blank lines skipped)");
  app.add_option("--bootstrap", bootstrap, "Kafka bootstrap servers (kafka.bootstrap_servers)");
  app.add_option("--topic", topic, "change-notice topic (default topics.changes, user-changes)");
  app.add_option("--config", config_path, "YAML config (kafka.*, topics.changes)");
  app.add_option("--set", overrides, "key=value override (repeatable)")->allow_extra_args(false);
  app.add_option("--timeout-ms", timeout_ms, "wait at most this long for the acks")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!file.empty()) {
    auto from_file = ReadUserIdFile(file);
    if (!from_file.ok()) {
      std::fprintf(stderr, "segctl forget: %s\n", from_file.status().ToString().c_str());
      return 2;
    }
    users.insert(users.end(), from_file->begin(), from_file->end());
  }
  if (users.empty()) {
    std::fprintf(stderr, "segctl forget: no user ids (give USER... or --file F)\n");
    return 2;
  }

  ForgetOptions options;
  options.flush_timeout_ms = timeout_ms;
  auto config = LoadBinaryConfig(config_path, overrides);
  if (!config.ok()) {
    std::fprintf(stderr, "segctl forget: %s\n", config.status().ToString().c_str());
    return 2;
  }
  // The file every binary reads: their keys are ignored, a typo is an error.
  Status s = options.kafka.LoadFrom(*config, "kafka");
  if (s.ok()) s = config->Get("topics.changes", &options.topic);
  if (s.ok()) s = CheckConfigKeys(*config);
  if (!s.ok()) {
    std::fprintf(stderr, "segctl forget: config: %s\n", s.ToString().c_str());
    return 2;
  }
  if (!bootstrap.empty()) options.kafka.bootstrap_servers = bootstrap;
  if (!topic.empty()) options.topic = topic;
  options.kafka.client_id = "segctl-forget";

  ForgetReport report;
  Status status = ForgetUsers(users, options, &report);
  std::printf("forget: %lld notice(s) sent to %s for %lld user(s)%s\n",
              static_cast<long long>(report.sent), options.topic.c_str(),
              static_cast<long long>(report.requested),
              report.failed ? (", " + std::to_string(report.failed) + " FAILED").c_str() : "");
  if (!status.ok()) {
    std::fprintf(stderr, "segctl forget: %s\n", status.ToString().c_str());
    return status.code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

}  // namespace seg::tools

// `segctl topics create`: the product's Kafka topics on a real cluster, with
// the partition counts the local stack uses (user-changes' partitions bound
// how many segmenters share the work). Topics that exist are left as they
// are. librdkafka's mock cluster has no CreateTopics: kafka-local makes its
// own topics.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <sstream>

#include "common/config.h"
#include "common/config_keys.h"
#include "common/kafka.h"
#include "tools/segctl/forget.h"

namespace seg::tools {

constexpr char kDefaultTopics[] =
    "events:8,events-deadletter:2,user-changes:8,segmentation-results:8";

int TopicsMain(int argc, char** argv) {
  CLI::App app{"The product's Kafka topics"};
  app.name("segctl topics");
  app.require_subcommand(1);
  std::string config_path, bootstrap, topics = kDefaultTopics;
  std::vector<std::string> overrides;
  int replication = -1;
  int timeout_ms = 30'000;
  auto* create = app.add_subcommand("create", "create the topics that do not exist yet");
  create->add_option("--config", config_path, "YAML config (kafka.*)");
  create->add_option("--set", overrides, "key=value override (repeatable)")
      ->allow_extra_args(false);
  create->add_option("--bootstrap", bootstrap, "brokers (kafka.bootstrap_servers)");
  create->add_option("--topics", topics, "NAME:PARTITIONS,... ")->capture_default_str();
  create->add_option("--replication-factor", replication, "-1: the brokers' default")
      ->capture_default_str();
  create->add_option("--timeout-ms", timeout_ms, "for the whole request")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  kafka::KafkaOptions options;
  auto config = LoadBinaryConfig(config_path, overrides);
  Status s = config.ok() ? options.LoadFrom(*config, "kafka") : config.status();
  if (s.ok()) s = CheckConfigKeys(*config);
  if (!s.ok()) {
    std::fprintf(stderr, "segctl topics: config: %s\n", s.ToString().c_str());
    return 2;
  }
  if (!bootstrap.empty()) options.bootstrap_servers = bootstrap;
  if (options.bootstrap_servers.empty()) {
    std::fprintf(stderr, "segctl topics: no brokers (--bootstrap or kafka.bootstrap_servers)\n");
    return 2;
  }
  std::vector<kafka::TopicSpec> specs;
  std::stringstream list(topics);
  for (std::string item; std::getline(list, item, ',');) {
    const size_t colon = item.rfind(':');
    kafka::TopicSpec spec;
    spec.name = item.substr(0, colon);
    spec.replication_factor = replication;
    try {
      spec.partitions = colon == std::string::npos ? 1 : std::stoi(item.substr(colon + 1));
    } catch (const std::exception&) {
      spec.partitions = 0;
    }
    if (spec.name.empty() || spec.partitions <= 0) {
      std::fprintf(stderr, "segctl topics: bad topic '%s' (want NAME:PARTITIONS)\n", item.c_str());
      return 2;
    }
    specs.push_back(spec);
  }
  s = kafka::CreateTopics(options, specs, std::chrono::milliseconds(timeout_ms));
  if (!s.ok()) {
    std::fprintf(stderr, "segctl topics: %s\n", s.ToString().c_str());
    return 1;
  }
  for (const auto& spec : specs) {
    std::printf("%s: created with %d partitions, or already there\n", spec.name.c_str(),
                spec.partitions);
  }
  return 0;
}

}  // namespace seg::tools

// seg-loadgen: realistic synthetic traffic into the `events` topic.
//
//   seg-loadgen --bootstrap HOST:PORT --users 10000 --rate 20000 --duration 60
//               [--events N] [--seed 7] [--truth-out truth.jsonl]
//               [--linger-ms 20] [--messages-out sent.tsv]
//               [-X security.protocol=SASL_SSL -X ...]
//               [--config seg.yaml] [--set kafka.properties.client.rack=a]
//               [--check-config]
//
// From the shared config (config/seg.example.yaml) it reads kafka.* (flags
// win) and topics.events (--topic wins); other binaries' keys are
// ignored, a key no binary knows is an error.
// --rate 0 sends as fast as the producer takes them. Deterministic from
// --seed (message content; pacing follows the wall clock). Prints a summary
// line with the counts; the truth file has one JSON object per user:
// {"user": ..., "bot": ..., "bot_kind": "none"|"proxy_rotator"|"agent_rotator"|
//  "steady_crawler", "interests": [...], "decided_segments": [...],
//  "messages": n, "duplicates": n, "malformed": n} (see UserProfile).
// The messages file (tools/chaos.py's ground truth) has one line per message
// the brokers acknowledged, tab-separated: send time (ms), user index (-1:
// none), the dead-letter reason ingest must give it ("-" when valid), key
// and value in hex.
#include <glog/logging.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>
#include <unordered_map>

#include "common/cli.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/config_keys.h"
#include "common/kafka.h"
#include "common/logging.h"
#include "tools/loadgen/traffic.h"

namespace {
std::atomic<bool> g_stop{false};  // set by the signal thread
}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"seg-loadgen: synthetic user events into Kafka"};
  seg::kafka::KafkaOptions kafka;
  std::string topic = "events", truth_out, messages_out;
  seg::loadgen::TrafficOptions traffic;
  double rate = 10'000, duration_s = 10;
  int64_t max_events = 0;
  int linger_ms = 20;
  std::vector<std::string> kafka_properties;
  std::string config_path, bootstrap, topic_flag;
  std::vector<std::string> overrides;
  bool check_config = false;
  app.add_option("--config", config_path, "YAML config file (kafka.*, topics.events)");
  app.add_option("--set", overrides, "key=value override (repeatable)");
  app.add_flag("--check-config", check_config, "load and validate the config, then exit");
  app.add_option("--bootstrap", bootstrap,
                 "Kafka bootstrap servers (kafka.bootstrap_servers, default 127.0.0.1:9092)");
  app.add_option("--topic", topic_flag, "Topic to produce to (topics.events, events)");
  app.add_option("--users", traffic.users, "Number of users");
  app.add_option("--seed", traffic.seed, "Random seed");
  app.add_option("--bot-share", traffic.bot_share, "Share of users that are bots");
  app.add_option("--bot-traffic-share", traffic.bot_traffic_share,
                 "Share of all events sent by bots");
  app.add_option("--bot-rate-spread", traffic.bot_rate_spread,
                 "Fastest over slowest bot rate (1 = all alike)");
  app.add_option("--malformed-share", traffic.malformed_share, "Share of malformed messages");
  app.add_option("--duplicate-share", traffic.duplicate_share, "Share of duplicate events");
  app.add_option("--late-share", traffic.late_share, "Share of events minutes..hours late");
  app.add_option("--history-share", traffic.history_share,
                 "Share of human sessions dated 1..45 days back");
  app.add_option("--rate", rate, "Events per second (0 = as fast as possible)");
  app.add_option("--duration", duration_s, "Seconds to run (0 = until --events or Ctrl-C)");
  app.add_option("--events", max_events, "Stop after this many messages (0 = no limit)");
  app.add_option("--truth-out", truth_out, "Write per-user ground truth (JSON lines) here");
  app.add_option("--messages-out", messages_out,
                 "Write every acknowledged message (TSV: ms, user, reason, key, value hex)");
  // Fewer, larger message sets: every produce request costs the brokers (and
  // librdkafka's mock broker scans its log per message set). 20 ms (50 before
  // issue #18) keeps that cost small while the linger stays a small part of
  // the event-to-result latency it is counted in.
  app.add_option("--linger-ms", linger_ms, "Producer linger.ms (batching delay)");
  app.add_option("-X,--kafka-property", kafka_properties,
                 "librdkafka property KEY=VALUE (SASL/TLS etc.; repeatable)");
  SEG_CLI_PARSE(app, argc, argv);
  auto config = seg::LoadBinaryConfig(config_path, overrides);
  seg::Status loaded = config.ok() ? kafka.LoadFrom(*config, "kafka") : config.status();
  if (loaded.ok()) loaded = config->Get("topics.events", &topic);
  if (loaded.ok()) loaded = seg::CheckConfigKeys(*config);
  if (check_config) return seg::cli::ConfigChecked("seg-loadgen", loaded);
  if (!loaded.ok()) return seg::cli::Fail("seg-loadgen", loaded, seg::cli::kExitConfig);
  if (!bootstrap.empty()) kafka.bootstrap_servers = bootstrap;
  if (!topic_flag.empty()) topic = topic_flag;
  seg::cli::StopSignals stop_signals;  // before the producer's threads
  std::thread signal_thread([&] {
    stop_signals.Wait();
    g_stop = true;
  });
  // Every return below first wakes and joins the signal thread.
  struct JoinSignalThread {
    std::thread& t;
    ~JoinSignalThread() {
      if (!g_stop.exchange(true)) seg::cli::StopSignals::Raise();
      t.join();
    }
  } join_signal_thread{signal_thread};

  kafka.properties["linger.ms"] = std::to_string(linger_ms);
  kafka.properties["batch.num.messages"] = "10000";
  for (const std::string& kv : kafka_properties) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "seg-loadgen: -X wants KEY=VALUE, got '%s'\n", kv.c_str());
      return 2;
    }
    kafka.properties[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  auto producer = seg::kafka::Producer::Create(kafka);
  if (!producer.ok()) {
    LOG(ERROR) << "seg-loadgen: " << producer.status();
    return 1;
  }
  // --messages-out: each message waits here until the brokers acknowledge it.
  std::ofstream messages_file;
  if (!messages_out.empty()) {
    messages_file.open(messages_out, std::ios::trunc);
    if (!messages_file) {
      std::fprintf(stderr, "seg-loadgen: cannot write %s\n", messages_out.c_str());
      return 2;
    }
  }
  std::unordered_map<uint64_t, std::string> unacked;  // tag -> its line
  int64_t undelivered = 0;
  auto serve_reports = [&] {
    for (const seg::kafka::DeliveryReport& r : (*producer)->PollDeliveries()) {
      auto it = unacked.find(r.tag);
      if (!r.status.ok()) {
        ++undelivered;
        LOG_EVERY_N(WARNING, 100) << "delivery: " << r.status;
      } else if (it != unacked.end()) {
        messages_file << it->second;
      }
      if (it != unacked.end()) unacked.erase(it);
    }
  };
  auto hex = [](std::string_view bytes) {
    static const char* kHex = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
    return out;
  };
  seg::loadgen::TrafficGenerator generator(traffic);
  seg::Clock* clock = seg::Clock::Real();
  const int64_t start_us = clock->MonotonicUs();
  const int64_t deadline_us =
      duration_s > 0 ? start_us + static_cast<int64_t>(duration_s * 1e6) : INT64_MAX;
  seg::loadgen::GeneratedMessage msg;
  int64_t sent = 0, malformed = 0, duplicates = 0, failed = 0;
  while (!g_stop && clock->MonotonicUs() < deadline_us && (max_events == 0 || sent < max_events)) {
    if (rate > 0) {
      // Pace against the schedule so short stalls are caught up, not lost.
      int64_t due_us = start_us + static_cast<int64_t>(sent * 1e6 / rate);
      int64_t wait_us = due_us - clock->MonotonicUs();
      if (wait_us > 1000) {
        std::this_thread::sleep_for(std::chrono::microseconds(wait_us));
        continue;
      }
    }
    const int64_t now_ms = clock->NowMs();
    generator.Next(now_ms, &msg);
    seg::Status s =
        (*producer)->Produce(topic, msg.key, msg.value, {}, static_cast<uint64_t>(sent));
    if (!s.ok()) {
      ++failed;
      LOG_EVERY_N(WARNING, 1000) << "produce: " << s;
      continue;
    }
    if (messages_file.is_open()) {
      unacked[static_cast<uint64_t>(sent)] =
          std::to_string(now_ms) + "\t" + std::to_string(msg.user_index) + "\t" +
          (msg.malformed_reason.empty() ? "-" : msg.malformed_reason) + "\t" + hex(msg.key) + "\t" +
          hex(msg.value) + "\n";
    }
    ++sent;
    malformed += msg.malformed_reason.empty() ? 0 : 1;
    duplicates += msg.duplicate ? 1 : 0;
    if ((sent & 1023) == 0) serve_reports();
  }
  seg::Status flushed = (*producer)->Flush(std::chrono::seconds(30));
  serve_reports();
  if (messages_file.is_open()) {
    messages_file.close();
    if (!messages_file) LOG(ERROR) << "seg-loadgen: writing " << messages_out << " failed";
  }
  double elapsed = (clock->MonotonicUs() - start_us) / 1e6;
  std::printf(
      "seg-loadgen: sent=%lld malformed=%lld duplicates=%lld failed=%lld undelivered=%lld in "
      "%.1fs (%.0f/s)\n",
      static_cast<long long>(sent), static_cast<long long>(malformed),
      static_cast<long long>(duplicates), static_cast<long long>(failed),
      static_cast<long long>(undelivered), elapsed, sent / std::max(elapsed, 1e-9));
  if (!truth_out.empty()) {
    std::ofstream out(truth_out);
    for (const auto& user : generator.users()) {
      out << "{\"user\":\"" << user.id << "\",\"bot\":" << (user.bot ? "true" : "false")
          << ",\"bot_kind\":\"" << seg::loadgen::BotKindName(user.bot_kind) << "\",\"interests\":[";
      auto names = seg::loadgen::TrafficGenerator::InterestNames(user.interests);
      for (size_t i = 0; i < names.size(); ++i) out << (i ? "," : "") << '"' << names[i] << '"';
      out << "],\"decided_segments\":[";
      for (size_t i = 0; i < user.decided_segments.size(); ++i) {
        out << (i ? "," : "") << '"' << user.decided_segments[i] << '"';
      }
      out << "],\"messages\":" << user.messages << ",\"duplicates\":" << user.duplicates
          << ",\"malformed\":" << user.malformed << "}\n";
    }
  }
  if (!flushed.ok()) {
    LOG(ERROR) << "seg-loadgen: " << flushed;
    return 1;
  }
  return 0;
}

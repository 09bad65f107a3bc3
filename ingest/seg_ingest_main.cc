// seg-ingest: consumes `events`, writes family `e` of the users table,
// publishes change notices, dead-letters bad input.
//
//   seg-ingest --config seg.yaml --metrics-port 9102
//              --set kafka.bootstrap_servers=127.0.0.1:9092 --set store.thrift.port=9090
//
// Config keys (all optional; config/seg.example.yaml lists them): kafka.*,
// ingest.*, topics.*, tables.*, store.* (store/store_options.h), ingest.metrics_host (127.0.0.1)
// and ingest.metrics_port (-1 = off), clock.offset_ms (tests: this process's
// clock off the machine's). Other binaries' keys are ignored; a key no binary
// knows is an error. --check-config validates and exits (0 or 2).
// SIGINT/SIGTERM: finish the batches in flight, commit, leave the group,
// exit 0, all within ingest.shutdown_timeout_ms (default 4 s); a watchdog
// exits 0 shortly after that budget if Kafka or the store hang (what was
// not committed is re-read by the group: at-least-once).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <stop_token>
#include <thread>

#include <glog/logging.h>

#include "common/cli.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/config_keys.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "ingest/ingest.h"
#include "store/store.h"
#include "store/store_options.h"

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"seg-ingest: events topic -> store -> change notices"};
  std::string config_path;
  std::vector<std::string> overrides;
  int metrics_port = -1;
  std::string metrics_host;
  app.add_option("--config", config_path, "YAML config file");
  app.add_option("--set", overrides, "key=value override (repeatable)");
  app.add_option("--metrics-port", metrics_port,
                 "serve /metrics on this port, 0: any, -1: off (ingest.metrics_port)");
  app.add_option("--metrics-host", metrics_host,
                 "address /metrics binds to (ingest.metrics_host, default 127.0.0.1)");
  bool check_config = false;
  app.add_flag("--check-config", check_config, "load and validate the config, then exit");
  SEG_CLI_PARSE(app, argc, argv);
  if (metrics_port >= 0) overrides.push_back("ingest.metrics_port=" + std::to_string(metrics_port));
  if (!metrics_host.empty()) overrides.push_back("ingest.metrics_host=" + metrics_host);

  // Blocked in every thread from here; one thread waits for them.
  seg::cli::StopSignals signals;
  constexpr std::string_view kName = "seg-ingest";

  auto config = seg::LoadBinaryConfig(config_path, overrides);
  if (!config.ok()) return seg::cli::Fail(kName, config.status(), seg::cli::kExitConfig);
  seg::ingest::IngestOptions options;
  seg::store::StoreOptions store_options;
  store_options.backend = seg::store::StoreOptions::Backend::kThrift;
  seg::metrics::MetricsListenOptions metrics;
  seg::Status s = options.LoadFrom(*config);
  if (s.ok()) s = store_options.LoadFrom(*config, "store");
  if (s.ok()) s = metrics.LoadFrom(*config, "ingest");
  if (s.ok()) s = seg::ApplyClockOffset(*config);
  if (s.ok()) s = seg::CheckConfigKeys(*config);
  if (check_config) return seg::cli::ConfigChecked(kName, s);
  if (!s.ok()) return seg::cli::Fail(kName, s.WithContext("config"), seg::cli::kExitConfig);

  auto metrics_server = seg::metrics::StartMetricsServer(metrics);
  if (!metrics_server.ok()) return seg::cli::Fail(kName, metrics_server.status());
  if (*metrics_server) {
    LOG(INFO) << "metrics on " << metrics.host << ":" << (*metrics_server)->port() << "/metrics";
  }

  auto store = seg::store::OpenStore(store_options);
  if (!store.ok()) return seg::cli::Fail(kName, store.status().WithContext("store"));
  auto ingester = seg::ingest::Ingester::Create(options, store->get());
  if (!ingester.ok()) return seg::cli::Fail(kName, ingester.status(), seg::cli::kExitConfig);

  std::stop_source stop;
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  std::thread signal_thread([&] {
    int sig = signals.Wait();
    if (sig != 0) LOG(INFO) << "signal " << sig << ": stopping";
    stop.request_stop();
    // Watchdog: a broker or store that hangs must not hold the exit.
    std::unique_lock<std::mutex> lock(done_mu);
    auto budget = std::chrono::milliseconds(options.shutdown_timeout_ms + 700);
    if (!done_cv.wait_for(lock, budget, [&] { return done; })) {
      LOG(WARNING) << "seg-ingest: not closed " << budget.count()
                   << " ms after the signal; exiting (uncommitted input is re-read)";
      google::FlushLogFiles(google::INFO);
      _exit(0);
    }
  });
  LOG(INFO) << "seg-ingest: " << options.events_topic << " -> " << options.table << "/"
            << options.family << ", group " << options.group_id;
  seg::Status result = (*ingester)->Run(stop.get_token());
  seg::ingest::IngestStats stats = (*ingester)->stats();
  LOG(INFO) << "seg-ingest: " << stats.events_in << " in, " << stats.events_written << " written, "
            << stats.dead_lettered << " dead-lettered";
  if (result.ok() && !stats.ever_assigned) {
    // Never assigned: nothing was consumed, so nothing is left to commit or
    // deliver. librdkafka 2.0's cooperative-sticky assignor aborts when such
    // a consumer is destroyed (librdkafka#4312, fixed in 2.3.0): skip it.
    LOG(INFO) << "seg-ingest: stopped before the first assignment";
    google::FlushLogFiles(google::INFO);
    std::_Exit(0);
  }
  ingester->reset();  // producers flush here, within the budget
  store->reset();
  {
    std::lock_guard<std::mutex> lock(done_mu);
    done = true;
  }
  done_cv.notify_all();
  if (!stop.stop_requested()) {
    // Run ended on its own (an error): wake the signal thread.
    seg::cli::StopSignals::Raise();
  }
  signal_thread.join();
  if (!result.ok()) return seg::cli::Fail(kName, result);
  return seg::cli::kExitOk;
}

// seg-ingest: consumes `events`, writes family `e` of the users table,
// publishes change notices, dead-letters bad input.
//
//   seg-ingest --config seg.yaml --metrics-port 9102
//              --set kafka.bootstrap_servers=127.0.0.1:9092 --set store.thrift.port=9090
//
// Config keys (all optional; see docs/ingest.md): kafka.*, ingest.*,
// store.backend (thrift|embedded), store.thrift.{host,port,transport,
// protocol,call_timeout_ms}, store.embedded.data_dir, ingest.metrics_host
// (127.0.0.1) and ingest.metrics_port (-1 = off), clock.offset_ms (tests:
// this process's clock off the machine's). Unknown keys are an
// error. SIGINT/SIGTERM: finish the batches in flight, commit, leave the
// group, exit 0, all within ingest.shutdown_timeout_ms (default 4 s); a
// watchdog exits 0 shortly after that budget if Kafka or the store hang
// (what was not committed is re-read by the group: at-least-once).
#include <signal.h>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <stop_token>
#include <thread>

#include <glog/logging.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "ingest/ingest.h"
#include "store/store.h"

namespace {

seg::Status LoadStoreOptions(seg::Config& config, seg::store::StoreOptions* out) {
  std::string backend = "thrift";
  SEG_RETURN_IF_ERROR(config.Get("store.backend", &backend));
  if (backend == "thrift") {
    out->backend = seg::store::StoreOptions::Backend::kThrift;
  } else if (backend == "embedded") {
    out->backend = seg::store::StoreOptions::Backend::kEmbedded;
  } else {
    return seg::InvalidArgumentError(config.source() + ": store.backend: expected thrift or " +
                                     "embedded, got '" + backend + "'");
  }
  auto& t = out->thrift;
  SEG_RETURN_IF_ERROR(config.Get("store.thrift.host", &t.host));
  SEG_RETURN_IF_ERROR(config.Get("store.thrift.port", &t.port));
  SEG_RETURN_IF_ERROR(config.Get("store.thrift.call_timeout_ms", &t.call_timeout_ms));
  SEG_RETURN_IF_ERROR(config.Get("store.thrift.max_connections", &t.max_connections));
  std::string transport = "buffered", protocol = "binary";
  SEG_RETURN_IF_ERROR(config.Get("store.thrift.transport", &transport));
  SEG_RETURN_IF_ERROR(config.Get("store.thrift.protocol", &protocol));
  if (transport != "buffered" && transport != "framed") {
    return seg::InvalidArgumentError("store.thrift.transport: buffered or framed");
  }
  if (protocol != "binary" && protocol != "compact") {
    return seg::InvalidArgumentError("store.thrift.protocol: binary or compact");
  }
  t.transport = transport == "framed" ? seg::store::ThriftTransport::kFramed
                                      : seg::store::ThriftTransport::kBuffered;
  t.protocol = protocol == "compact" ? seg::store::ThriftProtocol::kCompact
                                     : seg::store::ThriftProtocol::kBinary;
  SEG_RETURN_IF_ERROR(config.Get("store.embedded.data_dir", &out->embedded.data_dir));
  if (out->backend == seg::store::StoreOptions::Backend::kEmbedded &&
      out->embedded.data_dir.empty()) {
    return seg::InvalidArgumentError("store.embedded.data_dir is required for backend embedded");
  }
  return seg::Status::OK();
}

}  // namespace

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
  CLI11_PARSE(app, argc, argv);
  if (metrics_port >= 0) overrides.push_back("ingest.metrics_port=" + std::to_string(metrics_port));
  if (!metrics_host.empty()) overrides.push_back("ingest.metrics_host=" + metrics_host);

  // Block the stop signals in every thread; one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto config = seg::Config::Load(config_path, overrides);
  if (!config.ok()) {
    LOG(ERROR) << config.status();
    return 2;
  }
  seg::ingest::IngestOptions options;
  seg::store::StoreOptions store_options;
  seg::metrics::MetricsListenOptions metrics;
  seg::Status s = options.LoadFrom(*config);
  if (s.ok()) s = LoadStoreOptions(*config, &store_options);
  if (s.ok()) s = metrics.LoadFrom(*config, "ingest");
  if (s.ok()) s = seg::ApplyClockOffset(*config);
  if (s.ok()) s = config->CheckNoUnknownKeys();
  if (!s.ok()) {
    LOG(ERROR) << "config: " << s;
    return 2;
  }

  auto metrics_server = seg::metrics::StartMetricsServer(metrics);
  if (!metrics_server.ok()) {
    LOG(ERROR) << metrics_server.status();
    return 2;
  }
  if (*metrics_server) {
    LOG(INFO) << "metrics on " << metrics.host << ":" << (*metrics_server)->port() << "/metrics";
  }

  auto store = seg::store::OpenStore(store_options);
  if (!store.ok()) {
    LOG(ERROR) << "store: " << store.status();
    return 2;
  }
  auto ingester = seg::ingest::Ingester::Create(options, store->get());
  if (!ingester.ok()) {
    LOG(ERROR) << ingester.status();
    return 2;
  }

  std::stop_source stop;
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
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
    pthread_kill(signal_thread.native_handle(), SIGTERM);
  }
  signal_thread.join();
  if (!result.ok()) {
    LOG(ERROR) << result;
    return 1;
  }
  return 0;
}

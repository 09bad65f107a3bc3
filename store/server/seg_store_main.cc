// seg-store: the embedded store served over HBase's Thrift2 protocol.
//
//   seg-store --data-dir /var/lib/seg/store --port 9090
//   seg-store --data-dir DIR --port 0 --port-file DIR/port   # tests
//   seg-store --data-dir DIR --notify-kafka 127.0.0.1:9092    # store-side notices
//
// Flags override the config file (--config FILE, YAML; other binaries' keys
// are ignored, a key no binary knows is an error; config/seg.example.yaml
// lists every key; --check-config validates and exits):
//   store: {data_dir, sync: process_crash_safe|fsync_every_write,
//           block_cache_mb, write_buffer_mb, background_jobs,
//           tables: {<table>: {<family>: {max_versions, ttl_seconds}}},
//           server: {bind_address (127.0.0.1), port, transport: buffered|framed,
//                    protocol: binary|compact, max_connections (1024),
//                    client_idle_timeout_ms (60000), request_timeout_ms (60000),
//                    max_message_bytes (256 MB), max_string_bytes (10 MB),
//                    max_rows_per_request (10000), scanner_lease_ms,
//                    metrics_host (127.0.0.1), metrics_port (-1 = off)},
//           notify: {kafka: {..}, max_pending, tables, families}}
//   topics.changes: where store-side notices go (user-changes)
// Every listener binds loopback unless its address key says otherwise.
// Without store.tables it serves table `users` with families `e` (60-day
// TTL) and `s`, 3 versions each. SIGTERM/SIGINT stop it cleanly.
#include <glog/logging.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/cli.h"
#include "common/config.h"
#include "common/config_keys.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "coprocessor-bridge/store_observer/store_observer_adapter.h"
#include "store/server/store_server.h"

namespace {

constexpr std::string_view kName = "seg-store";

int Fail(const seg::Status& s) { return seg::cli::Fail(kName, s); }
int FailConfig(const seg::Status& s) { return seg::cli::Fail(kName, s, seg::cli::kExitConfig); }

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"seg-store: the embedded wide-row store over HBase Thrift2 (THBaseService)"};
  std::string config_path, data_dir, port_file, transport, protocol, bind, metrics_host;
  int port = -1;
  int metrics_port = -1;
  std::string notify_kafka;
  app.add_option("--config", config_path, "YAML config file");
  app.add_option("--data-dir", data_dir, "RocksDB directory (store.data_dir)");
  app.add_option("--port", port, "THBaseService port, 0 = pick a free one (store.server.port)");
  app.add_option("--port-file", port_file, "write the bound port to this file once serving");
  app.add_option("--bind", bind, "listen address (store.server.bind_address, default 127.0.0.1)");
  app.add_option("--transport", transport, "buffered|framed (store.server.transport)");
  app.add_option("--protocol", protocol, "binary|compact (store.server.protocol)");
  app.add_option("--metrics-port", metrics_port,
                 "serve /metrics on this port, 0 = a free port (store.server.metrics_port)");
  app.add_option("--metrics-host", metrics_host,
                 "address /metrics binds to (store.server.metrics_host, default 127.0.0.1)");
  app.add_option("--notify-kafka", notify_kafka,
                 "store-side change notices: every put to users/e produces a ChangeNotice on "
                 "user-changes at this bootstrap (store.notify.kafka.bootstrap_servers)");
  std::vector<std::string> overrides;
  app.add_option("--set", overrides, "key=value override (repeatable)");
  bool check_config = false;
  app.add_flag("--check-config", check_config, "load and validate the config, then exit");
  SEG_CLI_PARSE(app, argc, argv);
  // Blocked in every thread from here; main waits for them below.
  seg::cli::StopSignals stop_signals;
  signal(SIGPIPE, SIG_IGN);  // a vanished client must not kill the server

  // Flags win over the file and --set: they are the last overrides.
  if (port >= 0) overrides.push_back("store.server.port=" + std::to_string(port));
  if (!bind.empty()) overrides.push_back("store.server.bind_address=" + bind);
  if (!transport.empty()) overrides.push_back("store.server.transport=" + transport);
  if (!protocol.empty()) overrides.push_back("store.server.protocol=" + protocol);
  if (metrics_port >= 0)
    overrides.push_back("store.server.metrics_port=" + std::to_string(metrics_port));
  if (!metrics_host.empty()) overrides.push_back("store.server.metrics_host=" + metrics_host);
  if (!notify_kafka.empty())
    overrides.push_back("store.notify.kafka.bootstrap_servers=" + notify_kafka);
  auto config = seg::LoadBinaryConfig(config_path, overrides);
  if (!config.ok()) return FailConfig(config.status());

  seg::store::StoreServerOptions options;
  seg::metrics::MetricsListenOptions metrics;
  seg::bridge::StoreNotifyConfig notify;
  seg::Status s = seg::store::LoadStoreServerOptions(*config, &options);
  if (!data_dir.empty()) options.store.data_dir = data_dir;  // a path, not YAML
  if (s.ok()) s = metrics.LoadFrom(*config, "store.server");
  if (s.ok()) s = seg::bridge::LoadStoreNotifyConfig(*config, &notify);
  if (s.ok()) s = seg::CheckConfigKeys(*config);
  if (s.ok() && options.store.data_dir.empty()) {
    s = seg::InvalidArgumentError("--data-dir (store.data_dir) is required");
  }
  if (check_config) return seg::cli::ConfigChecked(kName, s);
  if (!s.ok()) return FailConfig(s);

  auto metrics_server = seg::metrics::StartMetricsServer(metrics);
  if (!metrics_server.ok()) return Fail(metrics_server.status());
  if (*metrics_server) {
    LOG(INFO) << "seg-store: /metrics on " << metrics.host << ":" << (*metrics_server)->port();
  }

  auto server = seg::store::StoreServer::Create(options);
  if (!server.ok()) return FailConfig(server.status());
  // Store-side mode of the coprocessor bridge (like an HBase RegionObserver).
  std::shared_ptr<seg::bridge::StoreObserverAdapter> notifier;
  if (notify.enabled) {
    auto observer =
        seg::bridge::MakeKafkaNotifyObserver(notify.kafka, notify.bridge, notify.observer);
    if (!observer.ok()) return FailConfig(observer.status());
    notifier = std::static_pointer_cast<seg::bridge::StoreObserverAdapter>(*observer);
    (*server)->AddObserver(*observer);
  }
  s = (*server)->Start();
  if (!s.ok()) return Fail(s);
  std::printf("seg-store listening on %s:%d\n", options.bind_address.c_str(), (*server)->port());
  std::fflush(stdout);
  if (!port_file.empty()) {
    if (auto w = seg::cli::WritePortFile(port_file, (*server)->port()); !w.ok()) return Fail(w);
  }

  int sig = stop_signals.Wait();
  LOG(INFO) << "seg-store: signal " << sig << ", shutting down";
  (*server)->Stop();
  if (notifier) {
    // Bounded: notices still undelivered are logged; their writes are durable.
    seg::Status f = notifier->notifier()->Flush(std::chrono::seconds(3));
    if (!f.ok()) LOG(WARNING) << "seg-store: change notices: " << f;
  }
  return seg::cli::kExitOk;
}

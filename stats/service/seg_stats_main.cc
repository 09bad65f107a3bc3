// seg-stats: the segment statistics gRPC server (stats/service/stats_service.h).
//
//   seg-stats [--config seg.yaml] [--set stats.redis.port=6380 ...]
//             [--host 127.0.0.1] [--port 7710|0] [--port-file F]
//             [--metrics-port N] [--metrics-host 127.0.0.1]
//
// Config keys (all optional; config/seg.example.yaml lists them): stats.*
// (keyspace, limits, stats.redis.*, stats.server.*), stats.user_lookup
// (answer User from the store: store.*, tables.users.name/state_family).
// Other binaries' keys are ignored; a key no binary knows is an error.
// --check-config validates and exits.
// SIGINT/SIGTERM stop it gracefully.
#include <glog/logging.h>

#include <CLI/CLI.hpp>
#include "common/cli.h"
#include "common/config.h"
#include "common/config_keys.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "stats/service/stats_service.h"
#include "stats/writer/stats_writer.h"
#include "store/store.h"
#include "store/store_options.h"

namespace {

constexpr std::string_view kName = "seg-stats";

int Fail(const seg::Status& s) { return seg::cli::Fail(kName, s); }
int FailConfig(const seg::Status& s) { return seg::cli::Fail(kName, s, seg::cli::kExitConfig); }

// stats.store.backend (none|thrift|embedded) became stats.user_lookup plus
// the shared store.backend; the old key loads for one release.
seg::Status ApplyOldStoreBackend(seg::Config& config) {
  if (!config.Has("stats.store.backend")) return seg::Status::OK();
  std::string backend;
  SEG_RETURN_IF_ERROR(config.Get("stats.store.backend", &backend));
  LOG(WARNING) << config.source() << ": stats.store.backend is replaced by stats.user_lookup "
               << "(true/false) and store.backend; the old key goes in the next release";
  if (backend == "none") return config.ApplyOverride("stats.user_lookup=false");
  if (backend != "thrift" && backend != "embedded") {
    return seg::InvalidArgumentError("stats.store.backend: expected none, thrift or embedded");
  }
  SEG_RETURN_IF_ERROR(config.ApplyOverride("stats.user_lookup=true"));
  return config.ApplyOverride("store.backend=" + backend);
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"seg-stats: segment sizes, unions, intersections over gRPC"};
  std::string config_path, host, port_file, metrics_host;
  std::vector<std::string> overrides;
  int port = -1, metrics_port = -1;
  app.add_option("--config", config_path, "YAML config file");
  app.add_option("--set", overrides, "config override key=value (repeatable)");
  app.add_option("--host", host, "bind address (default stats.server.host, 127.0.0.1)");
  app.add_option("--port", port, "gRPC port; 0 = a free port (default stats.server.port, 7710)");
  app.add_option("--port-file", port_file, "write the bound port to this file once serving");
  app.add_option("--metrics-port", metrics_port,
                 "serve /metrics on this port, 0 = free port (stats.server.metrics_port)");
  app.add_option("--metrics-host", metrics_host,
                 "address /metrics binds to (stats.server.metrics_host, default 127.0.0.1)");
  bool check_config = false;
  app.add_flag("--check-config", check_config, "load and validate the config, then exit");
  SEG_CLI_PARSE(app, argc, argv);
  // Blocked before gRPC starts its threads; waited for below.
  seg::cli::StopSignals stop_signals;
  if (metrics_port >= 0) {
    overrides.push_back("stats.server.metrics_port=" + std::to_string(metrics_port));
  }
  if (!metrics_host.empty()) overrides.push_back("stats.server.metrics_host=" + metrics_host);
  if (!host.empty()) overrides.push_back("stats.server.host=" + host);
  if (port >= 0) overrides.push_back("stats.server.port=" + std::to_string(port));

  auto config = seg::LoadBinaryConfig(config_path, overrides);
  if (!config.ok()) return FailConfig(config.status());
  seg::stats::StatsQueryOptions query;
  seg::stats::StatsServerOptions server;
  seg::stats::StatsWriterOptions writer_keys;  // shares the `stats` section; validated only
  seg::metrics::MetricsListenOptions metrics;
  bool user_lookup = false;
  seg::store::StoreOptions store_options;
  store_options.backend = seg::store::StoreOptions::Backend::kThrift;
  std::string table = "users", family = "s";
  auto load = [&]() -> seg::Status {
    SEG_RETURN_IF_ERROR(ApplyOldStoreBackend(*config));
    SEG_RETURN_IF_ERROR(query.LoadFrom(*config, "stats"));
    SEG_RETURN_IF_ERROR(writer_keys.LoadFrom(*config, "stats"));
    SEG_RETURN_IF_ERROR(server.LoadFrom(*config, "stats.server"));
    SEG_RETURN_IF_ERROR(metrics.LoadFrom(*config, "stats.server"));
    SEG_RETURN_IF_ERROR(config->Get("stats.user_lookup", &user_lookup));
    if (user_lookup) {
      SEG_RETURN_IF_ERROR(store_options.LoadFrom(*config, "store"));
      SEG_RETURN_IF_ERROR(config->Get("tables.users.name", &table));
      SEG_RETURN_IF_ERROR(config->Get("tables.users.state_family", &family));
    }
    return seg::CheckConfigKeys(*config);
  };
  seg::Status loaded = load();
  if (check_config) return seg::cli::ConfigChecked(kName, loaded);
  if (!loaded.ok()) return FailConfig(loaded);

  std::shared_ptr<seg::stats::UserStateLookup> users;
  std::unique_ptr<seg::store::Store> store;
  if (user_lookup) {
    auto opened = seg::store::OpenStore(store_options);
    if (!opened.ok()) return Fail(opened.status().WithContext("store"));
    store = std::move(opened).value();
    users = seg::stats::NewStoreUserStateLookup(store.get(), table, family);
  }

  auto metrics_server = seg::metrics::StartMetricsServer(metrics);
  if (!metrics_server.ok()) return Fail(metrics_server.status().WithContext("metrics"));
  if (*metrics_server) {
    LOG(INFO) << "metrics on " << metrics.host << ":" << (*metrics_server)->port() << "/metrics";
  }

  auto running = seg::stats::StartStatsServer(server, query, users);
  if (!running.ok()) return Fail(running.status());
  if (!port_file.empty()) {
    if (auto s = seg::cli::WritePortFile(port_file, (*running)->port()); !s.ok()) return Fail(s);
  }
  int sig = stop_signals.Wait();
  LOG(INFO) << "seg-stats: signal " << sig << ", shutting down";
  (*running)->Shutdown(2000);
  (*running)->Wait();
  return seg::cli::kExitOk;
}

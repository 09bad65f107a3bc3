// seg-stats: the segment statistics gRPC server (stats/stats_service.h).
//
//   seg-stats [--config seg.yaml] [--set stats.redis.port=6380 ...]
//             [--host 127.0.0.1] [--port 7710|0] [--port-file F]
//             [--metrics-port N] [--metrics-host 127.0.0.1]
//
// Config keys (all optional): stats.shards, stats.key_prefix,
// stats.registry_key, stats.max_days, stats.server_side_merge,
// stats.intersection_estimator, stats.redis.{cluster,seeds,host,port,
// username,password,...}, stats.server.{host,port,tls_cert_file,tls_key_file,
// bearer_token,allow_insecure_remote,max_message_bytes,max_request_bytes,
// metrics_host,metrics_port}, stats.max_union_segments,
// stats.max_intersection_segments, stats.store.{backend: none|thrift|
// embedded, table, thrift.host, thrift.port, embedded.data_dir}.
// SIGINT/SIGTERM stop it gracefully.
#include <glog/logging.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "common/config.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "stats/stats_service.h"
#include "stats/stats_writer.h"
#ifdef SEG_STATS_HAVE_STORE
#include "store/store.h"
#endif

namespace {

int Fail(const seg::Status& s) {
  std::cerr << "seg-stats: " << s << "\n";
  return 1;
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
  CLI11_PARSE(app, argc, argv);
  if (metrics_port >= 0) {
    overrides.push_back("stats.server.metrics_port=" + std::to_string(metrics_port));
  }
  if (!metrics_host.empty()) overrides.push_back("stats.server.metrics_host=" + metrics_host);

  auto config = seg::Config::Load(config_path, overrides);
  if (!config.ok()) return Fail(config.status());
  seg::stats::StatsQueryOptions query;
  seg::stats::StatsServerOptions server;
  seg::stats::StatsWriterOptions writer_keys;  // shares the `stats` section; validated only
  if (auto s = query.LoadFrom(*config, "stats"); !s.ok()) return Fail(s);
  if (auto s = writer_keys.LoadFrom(*config, "stats"); !s.ok()) return Fail(s);
  if (auto s = server.LoadFrom(*config, "stats.server"); !s.ok()) return Fail(s);
  seg::metrics::MetricsListenOptions metrics;
  if (auto s = metrics.LoadFrom(*config, "stats.server"); !s.ok()) return Fail(s);
  if (!host.empty()) server.host = host;
  if (port >= 0) server.port = port;

  std::shared_ptr<seg::stats::UserStateLookup> users;
  std::string store_backend = "none";
  if (auto s = config->Get("stats.store.backend", &store_backend); !s.ok()) return Fail(s);
#ifdef SEG_STATS_HAVE_STORE
  std::unique_ptr<seg::store::Store> store;
  std::string table = "users";
  if (auto s = config->Get("stats.store.table", &table); !s.ok()) return Fail(s);
  seg::store::StoreOptions store_options;
  if (auto s = config->Get("stats.store.thrift.host", &store_options.thrift.host); !s.ok())
    return Fail(s);
  if (auto s = config->Get("stats.store.thrift.port", &store_options.thrift.port); !s.ok())
    return Fail(s);
  if (auto s = config->Get("stats.store.embedded.data_dir", &store_options.embedded.data_dir);
      !s.ok())
    return Fail(s);
  if (store_backend == "thrift" || store_backend == "embedded") {
    store_options.backend = store_backend == "thrift"
                                ? seg::store::StoreOptions::Backend::kThrift
                                : seg::store::StoreOptions::Backend::kEmbedded;
    auto opened = seg::store::OpenStore(store_options);
    if (!opened.ok()) return Fail(opened.status().WithContext("store"));
    store = std::move(opened).value();
    users = seg::stats::NewStoreUserStateLookup(store.get(), table);
  } else if (store_backend != "none") {
    return Fail(
        seg::InvalidArgumentError("stats.store.backend: expected none, thrift or embedded"));
  }
#else
  if (store_backend != "none") {
    return Fail(seg::InvalidArgumentError("stats.store.backend: this build has no store library"));
  }
#endif
  if (auto s = config->CheckNoUnknownKeys(); !s.ok()) return Fail(s);

  // Block the stop signals before gRPC starts its threads; wait for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto metrics_server = seg::metrics::StartMetricsServer(metrics);
  if (!metrics_server.ok()) return Fail(metrics_server.status().WithContext("metrics"));
  if (*metrics_server) {
    LOG(INFO) << "metrics on " << metrics.host << ":" << (*metrics_server)->port() << "/metrics";
  }

  auto running = seg::stats::StartStatsServer(server, query, users);
  if (!running.ok()) return Fail(running.status());
  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << (*running)->port() << "\n";
    }
    std::rename(tmp.c_str(), port_file.c_str());  // readers never see a partial file
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  LOG(INFO) << "seg-stats: signal " << sig << ", shutting down";
  (*running)->Shutdown(2000);
  (*running)->Wait();
  return 0;
}

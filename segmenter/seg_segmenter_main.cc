// seg-segmenter: one segmenter node process.
//
//   seg-segmenter --config seg.yaml [--set segmenter.batch_max_ms=20 ...]
//       [--bootstrap HOST:PORT] [--store HOST:PORT] [--redis HOST:PORT]
//       [--scripts DIR] [--metrics-port N]
//
// SIGHUP reloads the scripts between batches; SIGTERM/SIGINT finish the
// current batch, commit, leave the group and exit 0.
#include <glog/logging.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <thread>

#include "common/config.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "segmenter/script_host.h"
#include "segmenter/segmenter.h"
#include "stats/stats_writer.h"
#include "store/store.h"

namespace {

std::atomic<int> g_signal{0};
void OnSignal(int sig) { g_signal = sig; }

bool SplitHostPort(const std::string& text, std::string* host, int32_t* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  *host = text.substr(0, colon);
  *port = std::atoi(text.c_str() + colon + 1);
  return *port > 0;
}

int Fail(const seg::Status& s) {
  LOG(ERROR) << "seg-segmenter: " << s;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"seg-segmenter: a segmenter node"};
  std::string config_file, bootstrap, store_addr, redis_addr, scripts_dir;
  std::vector<std::string> overrides;
  int metrics_port = -1;
  app.add_option("--config", config_file, "YAML config file");
  app.add_option("--set", overrides, "Override a config key: key.path=value");
  app.add_option("--bootstrap", bootstrap, "Kafka bootstrap servers (kafka.bootstrap_servers)");
  app.add_option("--store", store_addr, "Thrift2 store HOST:PORT (store.thrift.host/port)");
  app.add_option("--redis", redis_addr, "Redis HOST:PORT (stats.redis.host/port)");
  app.add_option("--scripts", scripts_dir, "Segment scripts directory (scripts.dir)");
  app.add_option("--metrics-port", metrics_port, "Serve /metrics on 127.0.0.1:PORT (0 = free)");
  CLI11_PARSE(app, argc, argv);

  auto config = seg::Config::Load(config_file, overrides);
  if (!config.ok()) return Fail(config.status());
  if (!bootstrap.empty()) (void)config->ApplyOverride("kafka.bootstrap_servers=" + bootstrap).ok();
  if (!scripts_dir.empty()) (void)config->ApplyOverride("scripts.dir=" + scripts_dir).ok();

  seg::segmenter::NodeOptions node_options;
  if (auto s = node_options.LoadFrom(*config); !s.ok()) return Fail(s);

  seg::store::StoreOptions store_options;
  store_options.backend = seg::store::StoreOptions::Backend::kThrift;
  if (!store_addr.empty() &&
      !SplitHostPort(store_addr, &store_options.thrift.host, &store_options.thrift.port)) {
    return Fail(seg::InvalidArgumentError("--store expects HOST:PORT, got " + store_addr));
  }
  if (auto s = config->Get("store.thrift.host", &store_options.thrift.host); !s.ok())
    return Fail(s);
  if (auto s = config->Get("store.thrift.port", &store_options.thrift.port); !s.ok())
    return Fail(s);

  seg::stats::StatsWriterOptions stats_options;
  if (!redis_addr.empty()) {
    std::string host;
    int32_t port = 0;
    if (!SplitHostPort(redis_addr, &host, &port)) {
      return Fail(seg::InvalidArgumentError("--redis expects HOST:PORT, got " + redis_addr));
    }
    (void)config->ApplyOverride("stats.redis.host=" + host).ok();
    (void)config->ApplyOverride("stats.redis.port=" + std::to_string(port)).ok();
  }
  if (auto s = stats_options.LoadFrom(*config, "stats"); !s.ok()) return Fail(s);

  seg::segmenter::ScriptHostOptions host_options;
  host_options.scripts_dir = "scripts";
  if (auto s = config->Get("scripts.dir", &host_options.scripts_dir); !s.ok()) return Fail(s);
  if (auto s = config->Get("scripts.cpu_budget_ms", &host_options.cpu_budget_ms); !s.ok())
    return Fail(s);
  if (auto s = config->Get("scripts.memory_limit_mb", &host_options.memory_limit_mb); !s.ok())
    return Fail(s);
  // 0: reload only on SIGHUP (no directory polling).
  if (auto s =
          config->Get("scripts.reload_check_interval_ms", &host_options.reload_check_interval_ms);
      !s.ok())
    return Fail(s);
  if (auto s = config->CheckNoUnknownKeys(); !s.ok()) return Fail(s);

  std::unique_ptr<seg::metrics::MetricsServer> metrics_server;
  if (metrics_port >= 0) {
    auto server = seg::metrics::StartMetricsServer("127.0.0.1:" + std::to_string(metrics_port));
    if (!server.ok()) return Fail(server.status());
    metrics_server = std::move(*server);
    LOG(INFO) << "metrics on 127.0.0.1:" << metrics_server->port();
  }

  auto store = seg::store::OpenStore(store_options);
  if (!store.ok()) return Fail(store.status());
  auto host = seg::segmenter::ScriptHost::Create(host_options);
  if (!host.ok()) return Fail(host.status());
  auto writer = seg::stats::NewStatsWriter(stats_options);
  if (!writer.ok()) return Fail(writer.status());
  if (auto s = (*writer)->LoadProcedures(); !s.ok()) return Fail(s);
  if (auto s = seg::segmenter::RegisterScriptSegments(**host, writer->get()); !s.ok()) {
    // The evaluator retries when it sees the script set unregistered.
    LOG(WARNING) << "segment registry not updated: " << s;
  }

  auto evaluator = seg::segmenter::NewScriptHostEvaluator(host->get(), writer->get());
  auto sink = seg::segmenter::NewStatsWriterSink(writer->get());
  auto node = seg::segmenter::CreateNode(node_options, store->get(), evaluator.get(), sink.get());
  if (!node.ok()) return Fail(node.status());

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGHUP, OnSignal);
  LOG(INFO) << "seg-segmenter running: scripts " << (*host)->script_set_version() << ", group "
            << node_options.group_id;
  while (true) {
    int sig = g_signal.exchange(0);
    if (sig == SIGHUP) {
      (*node)->RequestReload();
    } else if (sig != 0) {
      break;
    }
    auto handled = (*node)->RunOnce();
    if (!handled.ok()) LOG(ERROR) << "seg-segmenter: " << handled.status();
  }
  seg::Status closed = (*node)->Close();
  auto st = (*node)->stats();
  LOG(INFO) << "seg-segmenter stopped: notices=" << st.notices << " segmented=" << st.segmented
            << " skipped_by_cache=" << st.skipped_by_cache
            << " skipped_as_bot=" << st.skipped_as_bot;
  return closed.ok() ? 0 : Fail(closed);
}

// seg-segmenter: one segmenter node process.
//
//   seg-segmenter --config seg.yaml [--set segmenter.batch_max_ms=20 ...]
//       [--bootstrap HOST:PORT] [--store HOST:PORT] [--redis HOST:PORT]
//       [--scripts DIR] [--metrics-port N]
//
// Scripts (scripts.source):
//   store (default): the script set is cluster-wide data in the store
//     (segmenter/script_set/script_set.h). At start the first node of an empty store
//     pushes its scripts.dir (bootstrap); every other node adopts the stored
//     set, whatever its own scripts.dir holds. A sync thread polls the stored
//     version every scripts.sync_interval_ms and, on a change, materializes
//     it under scripts.cache_dir and reloads. SIGHUP, and a change of the
//     files in scripts.dir while running (when reload_check_interval_ms > 0),
//     push scripts.dir if it differs from the stored set (dev convenience).
//     A backfill thread runs the re-evaluation job of each new version
//     (segmenter/script_set/internal/backfill.h) when it gets the job's lease.
//   dir: each node loads scripts.dir itself; SIGHUP reloads it.
// Config keys: config/seg.example.yaml (kafka.*, topics.*, tables.*, store.*, segmenter.*,
// scripts.*, backfill.*, stats.*); other binaries' keys are ignored, a key no
// binary knows is an error. --check-config validates and exits.
// SIGTERM/SIGINT finish the current batch, commit, leave the group and exit 0.
#include <glog/logging.h>
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <tuple>

#include "common/cli.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/config_keys.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "segmenter/script_host/script_host.h"
#include "segmenter/script_set/internal/backfill.h"
#include "segmenter/script_set/script_set.h"
#include "segmenter/segmenter.h"
#include "stats/writer/stats_writer.h"
#include "store/store.h"
#include "store/store_options.h"

namespace {

constexpr std::string_view kName = "seg-segmenter";

int Fail(const seg::Status& s) { return seg::cli::Fail(kName, s); }
int FailConfig(const seg::Status& s) { return seg::cli::Fail(kName, s, seg::cli::kExitConfig); }

// Stops the helper threads: a flag and a condition variable their waits use.
struct Stopper {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  bool push_local = false;  // SIGHUP in store mode

  // Waits up to `ms`; true when stopping.
  bool WaitFor(int64_t ms) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop || push_local; });
    return stop;
  }
  void Stop() {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  }
  void RequestPushLocal() {
    std::lock_guard<std::mutex> lock(mu);
    push_local = true;
    cv.notify_all();
  }
  bool TakePushLocal() {
    std::lock_guard<std::mutex> lock(mu);
    return std::exchange(push_local, false);
  }
};

// Names, sizes and mtimes of the *.lua files of `dir`: a cheap "did the
// local scripts change" check (content is read only when it changed).
std::string LocalStamp(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> parts;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".lua") continue;
    auto mtime = it->last_write_time(ec).time_since_epoch().count();
    parts.push_back(it->path().filename().string() + "/" + std::to_string(it->file_size(ec)) + "/" +
                    std::to_string(mtime));
  }
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const auto& p : parts) out += p + ";";
  return out;
}

// Store mode: keeps this node on the stored script set, and pushes the local
// directory when asked (SIGHUP) or when its files change while running.
class ScriptSync {
 public:
  ScriptSync(seg::segmenter::ScriptSet* set, std::string local_dir, std::string cache_dir,
             bool watch_local, std::string adopted, std::string local_stamp, bool prune_cache)
      : set_(set),
        local_dir_(std::move(local_dir)),
        cache_dir_(std::move(cache_dir)),
        watch_local_(watch_local),
        adopted_(std::move(adopted)),
        local_stamp_(std::move(local_stamp)),
        prune_cache_(prune_cache) {}

  void Run(Stopper* stopper, int64_t interval_ms, seg::segmenter::Node* node) {
    while (!stopper->WaitFor(interval_ms)) {
      if (stopper->TakePushLocal()) {
        PushLocal("SIGHUP");
      } else if (watch_local_) {
        std::string stamp = LocalStamp(local_dir_);
        if (stamp != local_stamp_) {
          local_stamp_ = std::move(stamp);
          PushLocal("change in " + local_dir_);
        }
      }
      Adopt(node);
    }
  }

 private:
  void PushLocal(const std::string& why) {
    auto pushed = set_->Push(local_dir_);
    if (!pushed.ok() && pushed.status().code() == seg::StatusCode::kAborted) {
      // Lost a race, typically to another node on the same machine watching
      // the same directory: nothing to say if the winner pushed our files.
      auto local = seg::segmenter::ScriptSet::ReadDir(local_dir_);
      auto stored = set_->FetchVersion();
      if (local.ok() && stored.ok() && local->version == *stored) return;
    }
    if (!pushed.ok()) {
      // A broken local edit never replaces the stored set.
      LOG(ERROR) << "scripts: not pushing " << local_dir_ << " (" << why
                 << "): " << pushed.status();
    } else if (pushed->changed) {
      LOG(INFO) << "scripts: pushed " << local_dir_ << " (" << why << "): version "
                << pushed->version;
    }
  }

  void Adopt(seg::segmenter::Node* node) {
    auto version = set_->FetchVersion();
    if (!version.ok()) {
      LOG_EVERY_N(WARNING, 10) << "scripts: stored version unreadable: " << version.status();
      return;
    }
    if (version->empty() || *version == adopted_) return;
    auto files = set_->Fetch();
    if (!files.ok()) {
      LOG(ERROR) << "scripts: cannot fetch version " << *version << ": " << files.status();
      return;
    }
    auto path = seg::segmenter::ScriptSet::Materialize(*files, cache_dir_);
    if (!path.ok()) {
      LOG(ERROR) << "scripts: cannot materialize version " << files->version << ": "
                 << path.status();
      return;
    }
    LOG(INFO) << "scripts: stored version " << adopted_ << " -> " << files->version
              << ", reloading from " << *path;
    // A private cache keeps the new set and the one it replaces (a reload
    // in progress may still be reading it); older ones go. A shared cache
    // (scripts.cache_dir set) is left alone: another node may be on them.
    if (prune_cache_ && !adopted_.empty() && !previous_.empty() && previous_ != files->version) {
      std::error_code ec;
      std::filesystem::remove_all(std::filesystem::path(cache_dir_) / previous_, ec);
    }
    previous_ = adopted_;
    adopted_ = files->version;
    node->RequestReload();
  }

  seg::segmenter::ScriptSet* set_;
  const std::string local_dir_;
  const std::string cache_dir_;
  const bool watch_local_;
  std::string adopted_;
  std::string previous_;  // the version adopted before adopted_
  std::string local_stamp_;
  const bool prune_cache_;
};

// Steps the backfill job until stopped; waits as each step suggests.
void RunBackfill(seg::segmenter::internal::Backfill* backfill, int64_t users_per_s, int64_t idle_ms,
                 Stopper* stopper) {
  using State = seg::segmenter::internal::Backfill::Step::State;
  // A step sends at most ~100 ms worth of users (what the rate bucket
  // holds), so a stop or a lost lease is noticed quickly.
  const int64_t step_users = users_per_s > 0 ? std::max<int64_t>(1, users_per_s / 10) : 5000;
  while (true) {
    auto step = backfill->RunSome(step_users);
    int64_t wait_ms = idle_ms;
    if (!step.ok()) {
      LOG_EVERY_N(WARNING, 10) << "backfill step failed (retried from the saved cursor): "
                               << step.status();
    } else if (step->state == State::kProgress) {
      wait_ms = 0;
    } else if (step->state == State::kRateLimited || step->state == State::kLeasedElsewhere ||
               step->state == State::kStarting) {
      wait_ms = std::min(step->wait_ms, idle_ms);
    }
    std::unique_lock<std::mutex> lock(stopper->mu);
    if (wait_ms > 0) {
      stopper->cv.wait_for(lock, std::chrono::milliseconds(wait_ms),
                           [stopper] { return stopper->stop; });
    }
    if (stopper->stop) break;
  }
  if (auto s = backfill->Release(); !s.ok()) LOG(WARNING) << "backfill lease release: " << s;
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"seg-segmenter: a segmenter node"};
  std::string config_file, bootstrap, store_addr, redis_addr, scripts_dir, metrics_host;
  std::vector<std::string> overrides;
  int metrics_port = -1;
  bool check_config = false;
  app.add_option("--config", config_file, "YAML config file");
  app.add_option("--set", overrides, "Override a config key: key.path=value");
  app.add_option("--bootstrap", bootstrap, "Kafka bootstrap servers (kafka.bootstrap_servers)");
  app.add_option("--store", store_addr, "Thrift2 store HOST:PORT (store.thrift.host/port)");
  app.add_option("--redis", redis_addr, "Redis HOST:PORT (stats.redis.host/port)");
  app.add_option("--scripts", scripts_dir, "Segment scripts directory (scripts.dir)");
  app.add_option("--metrics-port", metrics_port,
                 "Serve /metrics on this port, 0 = free (segmenter.metrics_port)");
  app.add_option("--metrics-host", metrics_host,
                 "Address /metrics binds to (segmenter.metrics_host, default 127.0.0.1)");
  app.add_flag("--check-config", check_config, "Load and validate the config, then exit");
  SEG_CLI_PARSE(app, argc, argv);
  // Blocked in every thread from here (threads inherit the mask); the main
  // loop polls them between batches.
  seg::cli::StopSignals signals(/*with_sighup=*/true);

  // Flags are overrides, applied after --set.
  if (metrics_port >= 0)
    overrides.push_back("segmenter.metrics_port=" + std::to_string(metrics_port));
  if (!metrics_host.empty()) overrides.push_back("segmenter.metrics_host=" + metrics_host);
  if (!bootstrap.empty()) overrides.push_back("kafka.bootstrap_servers=" + bootstrap);
  if (!scripts_dir.empty()) overrides.push_back("scripts.dir=" + scripts_dir);
  for (auto [flag, addr, key] : {std::tuple{"--store", &store_addr, "store.thrift"},
                                 std::tuple{"--redis", &redis_addr, "stats.redis"}}) {
    if (addr->empty()) continue;
    std::string host;
    int32_t port = 0;
    if (auto s = seg::cli::SplitHostPort(*addr, flag, &host, &port); !s.ok()) return FailConfig(s);
    overrides.push_back(std::string(key) + ".host=" + host);
    overrides.push_back(std::string(key) + ".port=" + std::to_string(port));
    if (addr == &store_addr) overrides.push_back("store.backend=thrift");
  }

  auto config = seg::LoadBinaryConfig(config_file, overrides);
  if (!config.ok()) return FailConfig(config.status());

  seg::segmenter::NodeOptions node_options;
  seg::store::StoreOptions store_options;
  store_options.backend = seg::store::StoreOptions::Backend::kThrift;
  seg::stats::StatsWriterOptions stats_options;
  seg::segmenter::ScriptHostOptions host_options;
  host_options.scripts_dir = "scripts";
  // Where the scripts come from (see the top of this file).
  std::string scripts_source = "store";
  std::string cache_dir;            // "" = a per-process temp dir, removed at exit
  int64_t sync_interval_ms = 2000;  // how often the stored version is polled
  bool backfill_enabled = true;
  seg::segmenter::internal::BackfillOptions backfill_options;
  seg::metrics::MetricsListenOptions metrics;
  auto load = [&]() -> seg::Status {
    SEG_RETURN_IF_ERROR(node_options.LoadFrom(*config));
    SEG_RETURN_IF_ERROR(store_options.LoadFrom(*config, "store"));
    SEG_RETURN_IF_ERROR(stats_options.LoadFrom(*config, "stats"));
    SEG_RETURN_IF_ERROR(host_options.LoadFrom(*config, "scripts"));
    SEG_RETURN_IF_ERROR(config->Get("scripts.source", &scripts_source));
    SEG_RETURN_IF_ERROR(config->Get("scripts.cache_dir", &cache_dir));
    SEG_RETURN_IF_ERROR(config->Get("scripts.sync_interval_ms", &sync_interval_ms));
    SEG_RETURN_IF_ERROR(config->Get("backfill.enabled", &backfill_enabled));
    SEG_RETURN_IF_ERROR(config->Get("backfill.users_per_s", &backfill_options.users_per_s));
    SEG_RETURN_IF_ERROR(config->Get("backfill.lease_ms", &backfill_options.lease_ms));
    SEG_RETURN_IF_ERROR(config->Get("backfill.start_delay_ms", &backfill_options.start_delay_ms));
    SEG_RETURN_IF_ERROR(metrics.LoadFrom(*config, "segmenter"));
    // Tests only: this node's wall clock off the machine's (clock skew).
    SEG_RETURN_IF_ERROR(seg::ApplyClockOffset(*config));
    SEG_RETURN_IF_ERROR(seg::CheckConfigKeys(*config));
    if (scripts_source != "store" && scripts_source != "dir") {
      return seg::InvalidArgumentError(
          config->source() + ": scripts.source must be store or dir, got " + scripts_source);
    }
    if (sync_interval_ms <= 0 || backfill_options.users_per_s < 0 ||
        backfill_options.lease_ms < 1000) {
      return seg::InvalidArgumentError(
          config->source() +
          ": scripts.sync_interval_ms must be > 0, backfill.users_per_s >= 0 and "
          "backfill.lease_ms >= 1000");
    }
    return seg::Status::OK();
  };
  seg::Status loaded = load();
  if (check_config) return seg::cli::ConfigChecked(kName, loaded);
  if (!loaded.ok()) return FailConfig(loaded);
  const bool from_store = scripts_source == "store";

  auto metrics_server = seg::metrics::StartMetricsServer(metrics);
  if (!metrics_server.ok()) return Fail(metrics_server.status());
  if (*metrics_server)
    LOG(INFO) << "metrics on " << metrics.host << ":" << (*metrics_server)->port();

  auto store = seg::store::OpenStore(store_options);
  if (!store.ok()) return Fail(store.status());

  // Store mode: bootstrap or adopt the stored set and load it from the cache.
  seg::segmenter::ScriptSetOptions set_options;
  set_options.cpu_budget_ms = host_options.cpu_budget_ms;
  set_options.memory_limit_mb = host_options.memory_limit_mb;
  seg::segmenter::ScriptSet script_set(store->get(), set_options);
  const std::string local_scripts_dir = host_options.scripts_dir;
  bool temp_cache = false;
  std::string adopted;
  std::string local_stamp;
  if (from_store) {
    if (cache_dir.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      cache_dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/seg-segmenter-scripts." +
                  std::to_string(getpid());
      temp_cache = true;
    }
    // Only an empty store takes the local directory; otherwise the stored
    // set wins, so a node started later with an older checkout cannot roll
    // the cluster back.
    // Taken before the bootstrap read: an edit from then on is a change.
    local_stamp = LocalStamp(local_scripts_dir);
    auto boot = script_set.Bootstrap(local_scripts_dir);
    if (!boot.ok()) return Fail(boot.status());
    auto files = script_set.Fetch();
    if (!files.ok()) return Fail(files.status());
    auto path = seg::segmenter::ScriptSet::Materialize(*files, cache_dir);
    if (!path.ok()) return Fail(path.status());
    adopted = files->version;
    LOG(INFO) << "scripts: " << (boot->changed ? "bootstrapped the store with " : "adopted ")
              << "version " << adopted << " (" << files->files.size() << " files) into " << *path;
    // The host reads <cache>/current, a symlink the sync thread swaps.
    host_options.scripts_dir = cache_dir + "/current";
  }
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

  Stopper stopper;
  std::vector<std::thread> helpers;
  std::unique_ptr<ScriptSync> sync;
  std::unique_ptr<seg::kafka::Producer> backfill_producer;
  std::unique_ptr<seg::segmenter::internal::Backfill> backfill;
  if (from_store) {
    sync = std::make_unique<ScriptSync>(&script_set, local_scripts_dir, cache_dir,
                                        host_options.reload_check_interval_ms > 0, adopted,
                                        local_stamp, /*prune_cache=*/temp_cache);
    helpers.emplace_back([&] { sync->Run(&stopper, sync_interval_ms, node->get()); });
    if (backfill_enabled) {
      seg::kafka::KafkaOptions kafka_options = node_options.kafka;
      kafka_options.client_id += "-backfill";
      auto producer = seg::kafka::Producer::Create(kafka_options);
      if (!producer.ok()) return Fail(producer.status());
      backfill_producer = std::move(*producer);
      backfill_options.users_table = node_options.table;
      backfill_options.state_family = node_options.state_family;
      backfill_options.notices_topic = node_options.notices_topic;
      backfill = std::make_unique<seg::segmenter::internal::Backfill>(
          store->get(), backfill_producer.get(), backfill_options);
      LOG(INFO) << "backfill runner " << backfill->owner_id() << ": "
                << backfill_options.users_per_s << " users/s";
      helpers.emplace_back([&] {
        RunBackfill(backfill.get(), backfill_options.users_per_s, sync_interval_ms, &stopper);
      });
    }
  }

  LOG(INFO) << "seg-segmenter running: scripts " << (*host)->script_set_version() << " ("
            << scripts_source << "), group " << node_options.group_id;
  while (true) {
    int sig = signals.Poll();
    if (sig == SIGHUP) {
      if (from_store) {
        stopper.RequestPushLocal();  // the sync thread pushes, then adopts
      } else {
        (*node)->RequestReload();
      }
    } else if (sig != 0) {
      break;
    }
    auto handled = (*node)->RunOnce();
    if (!handled.ok()) LOG(ERROR) << "seg-segmenter: " << handled.status();
  }
  stopper.Stop();
  for (auto& t : helpers) t.join();
  if (backfill_producer) {
    (void)backfill_producer->Flush(std::chrono::seconds(5)).ok();
  }
  seg::Status closed = (*node)->Close();
  if (temp_cache) {
    std::error_code ec;
    std::filesystem::remove_all(cache_dir, ec);
  }
  auto st = (*node)->stats();
  LOG(INFO) << "seg-segmenter stopped: notices=" << st.notices << " segmented=" << st.segmented
            << " skipped_by_cache=" << st.skipped_by_cache
            << " skipped_as_bot=" << st.skipped_as_bot;
  return closed.ok() ? 0 : Fail(closed);
}

// ingest_bench: end-to-end ingest throughput, Kafka -> store -> notices.
//
// In one process: librdkafka's mock cluster (real Kafka protocol over
// loopback), the store served over Thrift2 by StoreServer (the same server
// as seg-store; the ingester talks to it through the Thrift2 client), and
// the Ingester library. Events are produced before the clock starts; the
// clock runs from the end of the first batch (group join excluded) until
// every event is consumed, written, notified and committed.
//
// Baseline in the same run: the same pipeline with one store Put per event
// (IngestOptions::unbatched_puts) on a separate topic and group.
//
// For the capacity model (tools/capacity.py): the CPU of producing the
// batched run's events (client + mock broker), and the store's SST bytes per
// stored event after a full compaction (seg-store's RocksDB, LZ4 / ZSTD at
// the bottom level).
//
//   ingest_bench [--events 300000] [--unbatched-events 20000] [--users 50000]
//                [--batch 5000] [--in-flight N] [--json-out FILE]
// For the "2 cores" figure: taskset -c 0,1 ingest_bench ...
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <sys/resource.h>

#include <glog/logging.h>

#include "common/clock.h"
#include "common/kafka.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "ingest/ingest.h"
#include "proto/events.pb.h"
#include "store/internal/embedded_store.h"
#include "store/server/store_server.h"
#include "store/store.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/process.h"

namespace {

using Clk = std::chrono::steady_clock;
using seg::ingest::Ingester;
using seg::ingest::IngestOptions;

// User + system CPU of the whole process: a steadier yardstick than wall time
// on a machine shared with builds.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

struct RunResult {
  int64_t events = 0;
  double seconds = 0;
  double cpu_seconds = 0;  // whole process: broker, store server, ingester
  int64_t batches = 0;
  int64_t notices = 0;
};

void Die(const seg::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "ingest_bench: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

void ProduceEvents(seg::testing::MockKafkaCluster& cluster, const std::string& topic, int n,
                   int users, uint64_t seed) {
  auto producer = seg::kafka::Producer::Create(cluster.ClientOptions("bench-producer"));
  Die(producer.status(), "producer");
  std::mt19937_64 rng(seed);
  int64_t now = seg::Clock::Real()->NowMs();
  seg::Event e;
  std::string value;
  for (int i = 0; i < n; ++i) {
    e.Clear();
    e.set_user_id("user-" + std::to_string(rng() % users));
    e.set_event_time_ms(now - static_cast<int64_t>(rng() % (7ull * 86400000)));
    e.set_type(static_cast<seg::EventType>(1 + rng() % 7));
    e.set_url("https://example.com/catalog/item/" + std::to_string(rng() % 100000));
    e.set_referrer("https://search.example.com/?q=" + std::to_string(rng() % 1000));
    e.set_ip("10." + std::to_string(rng() % 256) + "." + std::to_string(rng() % 256) + ".1");
    e.set_user_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari");
    e.set_event_id("ev-" + std::to_string(seed) + "-" + std::to_string(i));
    e.SerializeToString(&value);
    Die((*producer)->Produce(topic, e.user_id(), value), "produce");
    if (i % 5000 == 0) (*producer)->PollDeliveries();
  }
  Die((*producer)->Flush(std::chrono::seconds(120)), "flush");
}

RunResult Ingest(seg::testing::MockKafkaCluster& cluster, seg::store::Store* store,
                 const std::string& topic, const std::string& group, int n, int batch,
                 bool unbatched, int parallelism, int in_flight) {
  IngestOptions options;
  options.kafka = cluster.ClientOptions("bench-" + group);
  options.kafka.properties["session.timeout.ms"] = "6000";
  options.events_topic = topic;
  options.group_id = group;
  options.batch_max_events = batch;
  options.batch_max_ms = 100;
  options.unbatched_puts = unbatched;
  options.store_put_parallelism = parallelism;
  options.max_batches_in_flight = in_flight;
  auto ingester = Ingester::Create(options, store);
  Die(ingester.status(), "ingester");
  // Wait for the group join and the first batch; then start the clock.
  auto deadline = Clk::now() + std::chrono::seconds(60);
  int64_t first = 0;
  while (first == 0 && Clk::now() < deadline) {
    auto r = (*ingester)->RunOnce();
    Die(r.status(), "first batch");
    first = static_cast<int64_t>(*r);
  }
  auto start = Clk::now();
  double cpu_start = ProcessCpuSeconds();
  deadline = start + std::chrono::seconds(600);
  while ((*ingester)->stats().events_in < n && Clk::now() < deadline) {
    Die((*ingester)->RunOnce().status(), "batch");
  }
  RunResult result;
  result.seconds = std::chrono::duration<double>(Clk::now() - start).count();
  result.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  auto stats = (*ingester)->stats();
  result.events = stats.events_in - first;
  result.batches = stats.batches;
  result.notices = stats.notices;
  Die((*ingester)->Close(), "close");
  if (stats.events_in < n) {
    std::fprintf(stderr, "ingest_bench: only %lld of %d events ingested\n",
                 static_cast<long long>(stats.events_in), n);
    std::exit(1);
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"End-to-end ingest benchmark (Kafka -> Thrift2 store -> notices)"};
  int events = 300'000, unbatched_events = 20'000, users = 50'000, batch = 5000;
  int parallelism = IngestOptions().store_put_parallelism;
  int in_flight = IngestOptions().max_batches_in_flight;
  int packed_prefix = -1;
  std::string json_out;
  app.add_option("--events", events, "events for the batched run");
  app.add_option("--unbatched-events", unbatched_events, "events for the per-event-put baseline");
  app.add_option("--users", users, "distinct users");
  app.add_option("--batch", batch, "batch_max_events");
  app.add_option("--put-parallelism", parallelism, "store_put_parallelism");
  app.add_option("--in-flight", in_flight, "max_batches_in_flight");
  app.add_option("--json-out", json_out, "write figures as JSON here");
  app.add_option("--store-packed-prefix", packed_prefix,
                 "family e packed_prefix_bytes (-1: the store's default; 0: one key per cell)");
  CLI11_PARSE(app, argc, argv);

  auto cluster = seg::testing::MockKafkaCluster::Start(3);
  Die(cluster.status(), "mock cluster");
  // The mock broker keeps ~5 MB per partition (older message sets are
  // trimmed), so all events are spread over enough partitions to stay in.
  for (const char* t : {"events", "events-unbatched", "events-deadletter", "user-changes"}) {
    Die((*cluster)->CreateTopic(t, 32, 1), "create topic");
  }
  seg::testing::TempDir dir;
  seg::store::StoreServerOptions server_options;
  server_options.port = 0;
  server_options.store.data_dir = dir.path() + "/store";
  if (packed_prefix >= 0) {
    server_options.store.tables = seg::store::DefaultTables();
    for (auto& f : server_options.store.tables[0].families) {
      if (f.name == "e") f.packed_prefix_bytes = packed_prefix;
    }
  }
  auto server = seg::store::StoreServer::Create(server_options);
  Die(server.status(), "store server");
  Die((*server)->Start(), "store server start");
  seg::store::StoreOptions client_options;
  client_options.backend = seg::store::StoreOptions::Backend::kThrift;
  client_options.thrift.port = (*server)->port();
  auto store = seg::store::OpenStore(client_options);
  Die(store.status(), "store client");

  std::fprintf(stderr, "producing %d + %d events...\n", events, unbatched_events);
  double produce_cpu = ProcessCpuSeconds();
  ProduceEvents(**cluster, "events", events, users, 1);
  produce_cpu = ProcessCpuSeconds() - produce_cpu;
  ProduceEvents(**cluster, "events-unbatched", unbatched_events, users, 2);

  RunResult batched = Ingest(**cluster, store->get(), "events", "bench-batched", events, batch,
                             /*unbatched=*/false, parallelism, in_flight);
  RunResult unbatched = Ingest(**cluster, store->get(), "events-unbatched", "bench-unbatched",
                               unbatched_events, batch, /*unbatched=*/true, 1, in_flight);
  double rate = batched.events / batched.seconds;
  double base = unbatched.events / unbatched.seconds;
  std::printf("batched:   %lld events in %.2f s = %.0f events/s (%lld batches, %lld notices)\n",
              static_cast<long long>(batched.events), batched.seconds, rate,
              static_cast<long long>(batched.batches), static_cast<long long>(batched.notices));
  std::printf("unbatched: %lld events in %.2f s = %.0f events/s\n",
              static_cast<long long>(unbatched.events), unbatched.seconds, base);
  std::printf("per CPU-second (whole process): batched %.0f, unbatched %.0f events\n",
              batched.events / batched.cpu_seconds, unbatched.events / unbatched.cpu_seconds);
  std::printf("ratio batched/unbatched: %.1fx\n", rate / base);
  // Where a batch's time goes (sums over both runs), from the histograms;
  // busy chunks the store folded.
  std::istringstream text(seg::metrics::RenderText());
  for (std::string line; std::getline(text, line);) {
    if ((line.rfind("seg_ingest_", 0) == 0 && line.find("_sum") != std::string::npos) ||
        line.rfind("seg_store_packed_folds_total", 0) == 0) {
      std::printf("  %s\n", line.c_str());
    }
  }
  // Reading back the rows ingest wrote (every user, 100 rows per multi-get
  // through Thrift2, client + server CPU): rows written over many batches,
  // as the segmenters read them, before any compaction folded them.
  double read_cpu = ProcessCpuSeconds();
  int64_t read_rows = 0, read_cells = 0;
  {
    std::vector<seg::store::GetRequest> gets;
    std::vector<seg::store::RowResult> results;
    for (int u = 0; u < users; u += 100) {
      gets.clear();
      for (int k = u; k < std::min(users, u + 100); ++k) {
        seg::store::GetRequest g;
        g.row = "user-" + std::to_string(k);
        g.families = {"e"};
        gets.push_back(std::move(g));
      }
      Die((*store)->MultiGet("users", gets, &results), "read back");
      for (const auto& r : results) {
        read_rows += r.empty() ? 0 : 1;
        read_cells += static_cast<int64_t>(r.size());
      }
    }
  }
  read_cpu = ProcessCpuSeconds() - read_cpu;
  // Disk per stored event: every event is a distinct cell (event time +
  // id digest), so the store holds events + unbatched_events cells.
  auto* embedded = dynamic_cast<seg::store::internal::EmbeddedStore*>((*server)->store());
  if (embedded == nullptr) Die(seg::InternalError("not an embedded store"), "compact");
  double compact_cpu = ProcessCpuSeconds();
  Die(embedded->CompactAllForTest(), "compact");
  compact_cpu = ProcessCpuSeconds() - compact_cpu;
  int64_t sst_bytes = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir.path() + "/store")) {
    if (f.is_regular_file() && f.path().extension() == ".sst") sst_bytes += f.file_size();
  }
  double bytes_per_event = double(sst_bytes) / double(events + unbatched_events);
  double produce_per_cpu_s = events / std::max(produce_cpu, 1e-9);
  std::printf("produce: %.0f events per CPU-second (client + mock broker)\n", produce_per_cpu_s);
  std::printf("stored: %lld SST bytes after full compaction = %.1f bytes per event\n",
              static_cast<long long>(sst_bytes), bytes_per_event);
  double read_row_us = read_cpu * 1e6 / std::max<int64_t>(read_rows, 1);
  double cells_per_row = double(read_cells) / double(std::max<int64_t>(read_rows, 1));
  double compact_us = compact_cpu * 1e6 / double(events + unbatched_events);
  std::printf("read back: %lld rows, %.1f cells per row, %.1f us CPU per row\n",
              static_cast<long long>(read_rows), cells_per_row, read_row_us);
  std::printf("full compaction: %.2f us CPU per stored event\n", compact_us);
  if (!json_out.empty()) {
    std::ofstream out(json_out);
    out << "{\"ingest_events_per_s\": " << rate << ", \"ingest_unbatched_events_per_s\": " << base
        << ", \"batched_vs_unbatched\": " << rate / base
        << ", \"ingest_events_per_cpu_s\": " << batched.events / batched.cpu_seconds
        << ", \"ingest_unbatched_events_per_cpu_s\": " << unbatched.events / unbatched.cpu_seconds
        << ", \"events\": " << batched.events << ", \"unbatched_events\": " << unbatched.events
        << ", \"batch_max_events\": " << batch << ", \"users\": " << users
        << ", \"batches\": " << batched.batches << ", \"notices\": " << batched.notices
        << ", \"produce_events_per_cpu_s\": " << produce_per_cpu_s
        << ", \"stored_sst_bytes_per_event\": " << bytes_per_event
        << ", \"readback_cpu_us_per_row\": " << read_row_us
        << ", \"readback_cells_per_row\": " << cells_per_row
        << ", \"compaction_cpu_us_per_event\": " << compact_us << "}\n";
  }
  (*server)->Stop();
  return 0;
}

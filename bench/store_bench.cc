// store_bench: cells/s for batched puts and rows/s for multi-gets of
// 200-cell rows, in process (embedded engine) and through Thrift2 (a
// seg-store child process on a free port), in one run, with the ratios.
//
//   store_bench [--json-out FILE] [--rows N] [--threads T] [--seg-store PATH]
//               [--packed-prefix K]
//
// Workload: the `users` schema. Each row gets 200 event cells in family `e`
// (qualifier = 8-byte big-endian event time + 8-byte id digest, value 64
// bytes, timestamp = event time within the TTL), written in batches of 5
// rows (1,000 cells). Multi-gets ask for 100 random rows per call, all
// cells of family `e`. Thrift runs use T client threads (default 2, one per
// core) because a single blocking client leaves the server idle during
// each round trip. --packed-prefix K sets family `e`'s layout on both
// backends (default 5, the default schema; 0 = one RocksDB key per cell,
// the layout before packing) for a same-machine comparison.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/seg_store_child.h"
#include "common/clock.h"
#include "common/logging.h"
#include "store/store.h"

extern char** environ;

namespace {

using seg::store::Cell;
using seg::store::GetRequest;
using seg::store::RowPut;
using seg::store::RowResult;
using seg::store::Store;

constexpr int kCellsPerRow = 200;
constexpr int kRowsPerBatch = 5;
constexpr int kRowsPerMultiGet = 100;

std::string RowKey(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "user-%08d", i);
  return buf;
}

// The batches, built once so both backends write identical bytes and the
// timing excludes building them.
std::vector<std::vector<RowPut>> BuildBatches(int rows, int64_t now_ms) {
  std::vector<std::vector<RowPut>> batches;
  std::mt19937_64 rng(42);
  std::string value(64, 'x');
  for (int r = 0; r < rows; r += kRowsPerBatch) {
    std::vector<RowPut> batch;
    for (int k = r; k < std::min(rows, r + kRowsPerBatch); ++k) {
      RowPut p;
      p.row = RowKey(k);
      p.cells.reserve(kCellsPerRow);
      for (int c = 0; c < kCellsPerRow; ++c) {
        int64_t t = now_ms - 86'400'000 + c * 1000 + k;
        std::string q(16, '\0');
        for (int b = 0; b < 8; ++b) q[b] = static_cast<char>((t >> (56 - 8 * b)) & 0xFF);
        uint64_t digest = rng();
        std::memcpy(q.data() + 8, &digest, 8);
        for (int b = 0; b < 8; ++b) value[b] = static_cast<char>(rng());
        p.cells.push_back(Cell{"e", std::move(q), t, value});
      }
      batch.push_back(std::move(p));
    }
    batches.push_back(std::move(batch));
  }
  return batches;
}

// CPU seconds used so far by this process / by another process (server).
double SelfCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}
// Throughput per wall second and per CPU second (client + server), the
// latter stable when other work shares the machine.
struct Rate {
  double per_s = 0;
  double per_cpu_s = 0;
};
template <typename Fn>
Rate Measure(double units, pid_t server, Fn&& fn) {
  double cpu0 = SelfCpuSeconds() + seg::bench::ProcessCpuSeconds(server);
  double wall = fn();
  double cpu = SelfCpuSeconds() + seg::bench::ProcessCpuSeconds(server) - cpu0;
  return Rate{units / wall, cpu > 0 ? units / cpu : 0};
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Writes all batches, one writer thread per store; returns seconds.
double RunPuts(const std::vector<Store*>& stores, const std::vector<std::vector<RowPut>>& batches) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (Store* s : stores) {
    threads.emplace_back([&, s] {
      for (size_t i = next++; i < batches.size(); i = next++) {
        seg::Status st = s->Put("users", batches[i]);
        if (!st.ok()) {
          std::fprintf(stderr, "put failed: %s\n", st.ToString().c_str());
          failed = true;
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = Seconds(start);
  if (failed) std::exit(1);
  return secs;
}

// Multi-gets `total_rows` random rows in calls of 100; returns seconds.
double RunMultiGets(const std::vector<Store*>& stores, int rows, int total_rows) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  const int calls = total_rows / kRowsPerMultiGet;
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < stores.size(); ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) + 1);
      std::vector<GetRequest> gets(kRowsPerMultiGet);
      for (auto& g : gets) g.families = {"e"};
      std::vector<RowResult> results;
      while (next++ < calls) {
        for (auto& g : gets) g.row = RowKey(static_cast<int>(rng() % rows));
        seg::Status st = stores[t]->MultiGet("users", gets, &results);
        if (!st.ok() || results.size() != gets.size() || results[0].size() != kCellsPerRow) {
          std::fprintf(stderr, "multi-get failed: %s\n", st.ToString().c_str());
          failed = true;
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = Seconds(start);
  if (failed) std::exit(1);
  return secs;
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  std::string json_out, seg_store = seg::bench::DefaultSegStore(argv[0]);
  int rows = 5000;  // 1,000,000 cells
  int threads = 2;
  int write_buffer_mb = 64;  // in-process memtable size (seg-store uses its default)
  int packed_prefix = 5;     // family e's layout (0 = a key per cell)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--json-out") {
      json_out = next();
    } else if (a == "--rows") {
      rows = std::atoi(next().c_str());
    } else if (a == "--threads") {
      threads = std::atoi(next().c_str());
    } else if (a == "--write-buffer-mb") {
      write_buffer_mb = std::atoi(next().c_str());
    } else if (a == "--packed-prefix") {
      packed_prefix = std::atoi(next().c_str());
    } else if (a == "--seg-store") {
      seg_store = next();
    } else {
      std::fprintf(stderr,
                   "usage: store_bench [--json-out FILE] [--rows N] [--threads T] "
                   "[--write-buffer-mb MB] [--seg-store PATH] [--packed-prefix K]\n");
      return 2;
    }
  }
  rows = std::max(rows, kRowsPerBatch);
  char tmpl[] = "/tmp/store-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  std::string dir = tmpl;

  const int64_t now = seg::Clock::Real()->NowMs();
  auto batches = BuildBatches(rows, now);
  const int get_rows = 40000;

  // In process.
  const double cells = static_cast<double>(batches.size()) * kRowsPerBatch * kCellsPerRow;
  Rate put_inproc, get_inproc;
  {
    seg::store::StoreOptions o;
    o.embedded.data_dir = dir + "/inproc";
    o.embedded.write_buffer_bytes = static_cast<int64_t>(write_buffer_mb) << 20;
    for (auto& t : o.embedded.tables) {
      for (auto& f : t.families) {
        if (f.name == "e") f.packed_prefix_bytes = packed_prefix;
      }
    }
    auto store = seg::store::OpenStore(o);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      return 1;
    }
    put_inproc = Measure(cells, 0, [&] { return RunPuts({store->get()}, batches); });
    get_inproc = Measure(get_rows, 0, [&] { return RunMultiGets({store->get()}, rows, get_rows); });
  }

  // Through Thrift2 to a seg-store child.
  Rate put_thrift, get_thrift;
  {
    // The default schema, with family e's layout as asked.
    std::string config = dir + "/seg-store.yaml";
    std::ofstream(config)
        << "store:\n  tables:\n    users:\n"
        << "      e: {max_versions: 3, ttl_seconds: 5184000, packed_prefix_bytes: " << packed_prefix
        << "}\n      s: {max_versions: 3}\n";
    seg::bench::SegStoreChild child;
    if (!child.Start(seg_store, dir, {"--config", config})) return 1;
    const int port = child.port();
    std::vector<std::unique_ptr<Store>> clients;
    std::vector<Store*> raw;
    for (int t = 0; t < std::max(1, threads); ++t) {
      seg::store::StoreOptions o;
      o.backend = seg::store::StoreOptions::Backend::kThrift;
      o.thrift.port = port;
      clients.push_back(std::move(*seg::store::OpenStore(o)));
      raw.push_back(clients.back().get());
    }
    put_thrift = Measure(cells, child.pid(), [&] { return RunPuts(raw, batches); });
    get_thrift = Measure(get_rows, child.pid(), [&] { return RunMultiGets(raw, rows, get_rows); });
  }
  std::filesystem::remove_all(dir);

  std::printf("%-36s %14s %14s %8s\n", "", "in-process", "thrift2", "ratio");
  std::printf("%-36s %14.0f %14.0f %8.2f\n", "put cells/s (batches of 1000)", put_inproc.per_s,
              put_thrift.per_s, put_thrift.per_s / put_inproc.per_s);
  std::printf("%-36s %14.0f %14.0f %8.2f\n", "multi-get rows/s (200 cells, x100)", get_inproc.per_s,
              get_thrift.per_s, get_thrift.per_s / get_inproc.per_s);
  std::printf("%-36s %14.0f %14.0f %8.2f\n", "put cells per CPU-second", put_inproc.per_cpu_s,
              put_thrift.per_cpu_s, put_thrift.per_cpu_s / put_inproc.per_cpu_s);
  std::printf("%-36s %14.0f %14.0f %8.2f\n", "multi-get rows per CPU-second", get_inproc.per_cpu_s,
              get_thrift.per_cpu_s, get_thrift.per_cpu_s / get_inproc.per_cpu_s);
  std::printf(
      "targets: put in-process >= 300000, put thrift >= 100000, multi-get thrift >= 20000\n");

  if (!json_out.empty()) {
    std::ofstream out(json_out);
    char buf[2048];
    std::snprintf(
        buf, sizeof(buf),
        "{\n  \"put_cells_per_s_inproc\": %.0f,\n  \"put_cells_per_s_thrift\": %.0f,\n"
        "  \"multiget_rows_per_s_thrift\": %.0f,\n  \"multiget_rows_per_s_inproc\": %.0f,\n"
        "  \"put_thrift_to_inproc_ratio\": %.3f,\n  \"multiget_thrift_to_inproc_ratio\": %.3f,\n"
        "  \"put_cells_per_cpu_s_inproc\": %.0f,\n  \"put_cells_per_cpu_s_thrift\": %.0f,\n"
        "  \"multiget_rows_per_cpu_s_inproc\": %.0f,\n"
        "  \"multiget_rows_per_cpu_s_thrift\": %.0f,\n  \"thrift_client_threads\": %d,\n"
        "  \"rows\": %d,\n  \"cells_per_row\": %d,\n  \"packed_prefix_bytes\": %d\n}\n",
        put_inproc.per_s, put_thrift.per_s, get_thrift.per_s, get_inproc.per_s,
        put_thrift.per_s / put_inproc.per_s, get_thrift.per_s / get_inproc.per_s,
        put_inproc.per_cpu_s, put_thrift.per_cpu_s, get_inproc.per_cpu_s, get_thrift.per_cpu_s,
        threads, rows, kCellsPerRow, packed_prefix);
    out << buf;
    if (!out) return 1;
  }
  return 0;
}

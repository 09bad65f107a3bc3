// store_traffic_bench: seg-store's CPU per unit of the traffic the pipeline
// sends it, for the capacity model (tools/capacity.py).
//
//   store_traffic_bench [--events 2000000] [--users 50000] [--batch 5000]
//                       [--events-per-seed 500000] [--evaluations-per-event 0.15]
//                       [--read-users 300] [--json-out FILE] [--seg-store PATH]
//
// store_bench measures puts of 200-cell rows written in key order and reads
// of those rows; the pipeline's store sees something else: seg-loadgen's
// events (Pareto-active users, page-load bursts, history; a new seed every
// --events-per-seed events, as the pipeline benchmark starts a seg-loadgen
// per window), one cell each, written by ingest in batches of up to --batch
// events over random users, so every row grows batch by batch as merge
// operands over several LSM levels; per evaluation the segmenter's
// multi-get of two rows (the user's newest events of 60 days, its state
// cell) and a state put (humans only: the bot blacklist keeps bots' rows
// unread); and a store that runs long enough to flush and compact.
//
// It drives a seg-store child process (the same binary, default config)
// from one thread, one Thrift2 connection per kind of call (event puts,
// reads, state puts), and reads the CPU of each connection's server thread
// (/proc schedstat, ns), of RocksDB's flush and compaction threads and of
// the whole process; the client's own CPU per call (thread CPU clock)
// beside it. Event generation is not timed. A read's cost is fitted per
// user and per event cell returned over calls of varied size, each also
// repeated with one event cell per user (as the node reads a bot's exit).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/seg_store_child.h"
#include "common/clock.h"
#include "common/logging.h"
#include "ingest/ingest.h"
#include "proto/events.pb.h"
#include "store/store.h"
#include "tools/loadgen/traffic.h"

extern char** environ;

namespace {

using seg::store::GetRequest;
using seg::store::RowPut;
using seg::store::RowResult;
using seg::store::Store;

constexpr int64_t kDayMs = 86'400'000;

double ThreadCpuUs() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e6 + double(t.tv_nsec) / 1e3;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Task ids of `pid`.
std::set<int> Tasks(pid_t pid) {
  std::set<int> out;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    out.insert(std::atoi(e.path().filename().c_str()));
  }
  return out;
}

// CPU of one thread in us (schedstat: ns on CPU).
double TaskCpuUs(pid_t pid, int tid) {
  std::istringstream in(
      ReadFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/schedstat"));
  double ns = 0;
  in >> ns;
  return ns / 1e3;
}

std::string TaskName(pid_t pid, int tid) {
  std::string s =
      ReadFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/comm");
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// Sum over the process's threads whose name starts with "rocksdb:" (flush, compaction).
double BackgroundCpuUs(pid_t pid) {
  double us = 0;
  for (int tid : Tasks(pid)) {
    if (TaskName(pid, tid).rfind("rocksdb:", 0) == 0) us += TaskCpuUs(pid, tid);
  }
  return us;
}

void Die(const seg::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "store_traffic_bench: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

// One kind of call on its own connection: client CPU, server thread CPU.
struct Lane {
  std::unique_ptr<Store> store;
  int server_tid = -1;
  double client_us = 0;
  double server_us0 = 0;
  int64_t calls = 0;
};

// One multi-get: users, event cells returned, server and client CPU (us).
struct ReadCall {
  double users, cells, server_us, client_us;
};

// Least squares us = a * users + b * cells over the calls (no intercept: a
// call's own cost is small beside hundreds of users). Returns {a, b}.
std::pair<double, double> FitRead(const std::vector<ReadCall>& calls, bool server) {
  double suu = 0, suc = 0, scc = 0, suy = 0, scy = 0;
  for (const ReadCall& c : calls) {
    const double y = server ? c.server_us : c.client_us;
    suu += c.users * c.users;
    suc += c.users * c.cells;
    scc += c.cells * c.cells;
    suy += c.users * y;
    scy += c.cells * y;
  }
  const double det = suu * scc - suc * suc;
  if (det == 0) return {0, 0};
  return {(suy * scc - scy * suc) / det, (suu * scy - suc * suy) / det};
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  std::string json_out, seg_store = seg::bench::DefaultSegStore(argv[0]);
  int64_t events = 2'000'000;
  int users = 50'000, batch = 5000, read_users = 300;
  int64_t events_per_seed = 500'000;
  double evaluations_per_event = 0.15;
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
    } else if (a == "--events") {
      events = std::atoll(next().c_str());
    } else if (a == "--users") {
      users = std::atoi(next().c_str());
    } else if (a == "--batch") {
      batch = std::atoi(next().c_str());
    } else if (a == "--evaluations-per-event") {
      evaluations_per_event = std::atof(next().c_str());
    } else if (a == "--events-per-seed") {
      events_per_seed = std::atoll(next().c_str());
    } else if (a == "--read-users") {
      read_users = std::atoi(next().c_str());
    } else if (a == "--seg-store") {
      seg_store = next();
    } else {
      std::fprintf(stderr,
                   "usage: store_traffic_bench [--events N] [--users N] [--batch N] "
                   "[--evaluations-per-event X] [--read-users N] [--json-out FILE] "
                   "[--seg-store PATH]\n");
      return 2;
    }
  }
  char tmpl[] = "/tmp/store-traffic-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;

  // seg-store with its default config (the schema local-stack.sh serves).
  seg::bench::SegStoreChild child;
  if (!child.Start(seg_store, dir)) return 1;
  const int port = child.port();

  // Three connections; each one's server thread is the task that appears
  // when it makes its first call.
  enum { kEventPut = 0, kRead = 1, kStatePut = 2 };
  Lane lanes[3];
  for (Lane& lane : lanes) {
    std::set<int> before = Tasks(child.pid());
    seg::store::StoreOptions o;
    o.backend = seg::store::StoreOptions::Backend::kThrift;
    o.thrift.port = port;
    auto store = seg::store::OpenStore(o);
    Die(store.status(), "client");
    lane.store = std::move(*store);
    std::vector<RowResult> rows;
    GetRequest g;
    g.row = "warm-up";
    Die(lane.store->MultiGet("users", {g}, &rows), "first call");
    for (int tid : Tasks(child.pid())) {
      if (!before.count(tid)) lane.server_tid = tid;
    }
    if (lane.server_tid < 0) {
      std::fprintf(stderr, "no server thread appeared for a connection\n");
      return 1;
    }
  }

  // The pipeline benchmark starts a seg-loadgen, with the next seed, per
  // measuring window: each window has its own heavy users and bots. So here.
  seg::loadgen::TrafficOptions traffic;
  traffic.users = users;
  traffic.seed = 7;
  auto generator = std::make_unique<seg::loadgen::TrafficGenerator>(traffic);
  std::set<std::string> bots;
  auto note_bots = [&] {
    bots.clear();
    for (const auto& u : generator->users()) {
      if (u.bot) bots.insert(u.id);
    }
  };
  note_bots();
  std::vector<ReadCall> read_calls;
  seg::loadgen::GeneratedMessage msg;
  seg::Event event;
  std::mt19937_64 rng(11);

  const double process0 = seg::bench::ProcessCpuSeconds(child.pid()) * 1e6;
  const double background0 = BackgroundCpuUs(child.pid());
  for (Lane& lane : lanes) lane.server_us0 = TaskCpuUs(child.pid(), lane.server_tid);
  int64_t cells = 0, evaluations = 0, cells_read = 0, batches = 0;
  double evaluation_credit = 0;
  const auto start = std::chrono::steady_clock::now();
  std::map<std::string, RowPut> by_user;
  std::vector<RowPut> puts, state_puts;
  std::vector<GetRequest> gets, probe;
  double probe_server_us = 0, probe_client_us = 0;
  std::vector<RowResult> rows;
  std::string state_value(60, 's');
  int64_t generated = 0;
  while (cells < events) {
    // One ingest batch: up to `batch` events, one RowPut per user.
    by_user.clear();
    const int64_t now = seg::Clock::Real()->NowMs();
    int in_batch = 0;
    while (in_batch < batch) {
      if (events_per_seed > 0 && generated > 0 && generated % events_per_seed == 0) {
        ++traffic.seed;
        generator = std::make_unique<seg::loadgen::TrafficGenerator>(traffic);
        note_bots();
      }
      generator->Next(now, &msg);
      ++generated;
      if (!msg.malformed_reason.empty() || !event.ParseFromString(msg.value)) continue;
      RowPut& put = by_user[event.user_id()];
      put.row = event.user_id();
      put.cells.emplace_back();
      Die(seg::ingest::EncodeEventCell(event, "e", &put.cells.back()), "encode");
      ++in_batch;
    }
    puts.clear();
    for (auto& [user, put] : by_user) puts.push_back(std::move(put));
    // Two calls, as ingest's store_put_parallelism 2 splits a batch.
    const size_t half = puts.size() / 2;
    for (int part = 0; part < 2; ++part) {
      std::vector<RowPut> slice(std::make_move_iterator(puts.begin() + (part ? half : 0)),
                                std::make_move_iterator(part ? puts.end() : puts.begin() + half));
      const double t0 = ThreadCpuUs();
      Die(lanes[kEventPut].store->Put("users", slice), "event put");
      lanes[kEventPut].client_us += ThreadCpuUs() - t0;
      ++lanes[kEventPut].calls;
    }
    cells += in_batch;
    ++batches;
    // The evaluations this batch causes: users it wrote, read and given a state.
    evaluation_credit += evaluations_per_event * in_batch;
    // Humans only: the bot blacklist keeps bots' rows unread (skipped_as_bot).
    std::vector<const std::string*> written;
    for (const auto& [user, put] : by_user) {
      if (!bots.count(user)) written.push_back(&user);
    }
    std::shuffle(written.begin(), written.end(), rng);
    size_t taken = 0;
    while (evaluation_credit >= 1 && taken < written.size()) {
      // Calls of varied size, so the fit below tells a user's fixed cost from a cell's.
      const size_t n =
          std::min<size_t>({static_cast<size_t>(read_users / 4 + rng() % read_users),
                            static_cast<size_t>(evaluation_credit), written.size() - taken});
      gets.clear();
      state_puts.clear();
      for (size_t k = taken; k < taken + n; ++k) {
        GetRequest& e = gets.emplace_back();
        e.row = *written[k];
        e.families = {"e"};
        e.time_range.min = now - 60 * kDayMs;
        e.newest_cells = 2000;
        GetRequest& s = gets.emplace_back();
        s.row = *written[k];
        s.families = {"s"};
        s.qualifiers = {"m"};
        RowPut& p = state_puts.emplace_back();
        p.row = *written[k];
        for (char& c : state_value) c = static_cast<char>('a' + rng() % 26);
        p.cells.push_back(seg::store::Cell{"s", "m", now, state_value});
      }
      // The same users once more with one event cell each (as the node reads
      // a bot's exit): tells a user's fixed cost from its cells' in the fit.
      probe = gets;
      for (size_t k = 0; k < probe.size(); k += 2) probe[k].newest_cells = 1;
      {
        const double p0 = TaskCpuUs(child.pid(), lanes[kRead].server_tid);
        const double c0 = ThreadCpuUs();
        Die(lanes[kRead].store->MultiGet("users", probe, &rows), "probe multi-get");
        const double client = ThreadCpuUs() - c0;
        int64_t probe_cells = 0;
        for (size_t k = 0; k < rows.size(); k += 2)
          probe_cells += static_cast<int64_t>(rows[k].size());
        read_calls.push_back(ReadCall{double(n), double(probe_cells),
                                      TaskCpuUs(child.pid(), lanes[kRead].server_tid) - p0,
                                      client});
        probe_server_us += read_calls.back().server_us;
        probe_client_us += client;
      }
      const double server0 = TaskCpuUs(child.pid(), lanes[kRead].server_tid);
      double t0 = ThreadCpuUs();
      Die(lanes[kRead].store->MultiGet("users", gets, &rows), "multi-get");
      const double client = ThreadCpuUs() - t0;
      lanes[kRead].client_us += client;
      ++lanes[kRead].calls;
      int64_t call_cells = 0;
      for (size_t k = 0; k < rows.size(); k += 2)
        call_cells += static_cast<int64_t>(rows[k].size());
      cells_read += call_cells;
      read_calls.push_back(ReadCall{double(n), double(call_cells),
                                    TaskCpuUs(child.pid(), lanes[kRead].server_tid) - server0,
                                    client});
      t0 = ThreadCpuUs();
      Die(lanes[kStatePut].store->Put("users", state_puts), "state put");
      lanes[kStatePut].client_us += ThreadCpuUs() - t0;
      ++lanes[kStatePut].calls;
      taken += n;
      evaluations += static_cast<int64_t>(n);
      evaluation_credit -= static_cast<double>(n);
    }
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double server[3];
  for (int k = 0; k < 3; ++k)
    server[k] = TaskCpuUs(child.pid(), lanes[k].server_tid) - lanes[k].server_us0;
  // The probes are not evaluations: out of the read lane's totals (kept in
  // the process's, a small share).
  server[kRead] -= probe_server_us;
  lanes[kRead].client_us -= probe_client_us;
  const double background = BackgroundCpuUs(child.pid()) - background0;
  const double process = seg::bench::ProcessCpuSeconds(child.pid()) * 1e6 - process0;
  const double other = process - server[0] - server[1] - server[2] - background - probe_server_us;
  child.Stop();
  std::filesystem::remove_all(dir);

  const double per_cell = 1.0 / double(cells),
               per_eval = 1.0 / double(std::max<int64_t>(evaluations, 1));
  const double cells_per_read = double(cells_read) * per_eval;
  std::printf("%lld event cells in %lld batches, %lld evaluations (%.1f cells read each), %.1f s\n",
              static_cast<long long>(cells), static_cast<long long>(batches),
              static_cast<long long>(evaluations), cells_per_read, wall);
  std::printf("event put:   server %.2f + client %.2f us per cell\n", server[0] * per_cell,
              lanes[0].client_us * per_cell);
  std::printf("flush+compaction (rocksdb threads): %.2f us per event cell\n",
              background * per_cell);
  std::printf("seg-store, rest of the process: %.2f us per event cell\n", other * per_cell);
  std::printf("evaluation read (2 rows): server %.2f + client %.2f us\n", server[1] * per_eval,
              lanes[1].client_us * per_eval);
  std::printf("state put:   server %.2f + client %.2f us per evaluation\n", server[2] * per_eval,
              lanes[2].client_us * per_eval);
  std::printf("seg-store process: %.2f us per event cell (all of it)\n", process * per_cell);
  const auto [read_user_us, read_cell_us] = FitRead(read_calls, true);
  const auto [read_user_client_us, read_cell_client_us] = FitRead(read_calls, false);
  std::printf("read fit (server): %.2f us per user + %.3f us per event cell; client %.2f + %.3f\n",
              read_user_us, read_cell_us, read_user_client_us, read_cell_client_us);
  if (!json_out.empty()) {
    std::ofstream out(json_out);
    char buf[2048];
    std::snprintf(
        buf, sizeof(buf),
        "{\"event_put_server_us_per_cell\": %.3f, \"event_put_client_us_per_cell\": %.3f,\n"
        " \"flush_compaction_us_per_cell\": %.3f, \"store_other_us_per_cell\": %.3f,\n"
        " \"read_server_us_per_evaluation\": %.3f, \"read_client_us_per_evaluation\": %.3f,\n"
        " \"state_put_server_us_per_evaluation\": %.3f,\n"
        " \"state_put_client_us_per_evaluation\": %.3f,\n"
        " \"cells_per_read\": %.2f, \"store_process_us_per_cell\": %.3f,\n"
        " \"event_cells\": %lld, \"batches\": %lld, \"evaluations\": %lld, \"users\": %d,\n"
        " \"batch_max_events\": %d, \"read_users_per_call\": %d, \"wall_s\": %.1f,\n"
        " \"read_server_us_per_user\": %.3f, \"read_server_us_per_cell\": %.4f,\n"
        " \"read_client_us_per_user\": %.3f, \"read_client_us_per_cell\": %.4f}\n",
        server[0] * per_cell, lanes[0].client_us * per_cell, background * per_cell,
        other * per_cell, server[1] * per_eval, lanes[1].client_us * per_eval, server[2] * per_eval,
        lanes[2].client_us * per_eval, cells_per_read, process * per_cell,
        static_cast<long long>(cells), static_cast<long long>(batches),
        static_cast<long long>(evaluations), users, batch, read_users, wall, read_user_us,
        read_cell_us, read_user_client_us, read_cell_client_us);
    out << buf;
    if (!out) return 1;
  }
  return 0;
}

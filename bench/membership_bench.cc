// membership_bench: membership over time at the node level (issue
// "Membership that stays true over time", Benchmarks), in one process on
// real parts: librdkafka's mock cluster, seg-store's Thrift2 server
// (store::StoreServer on a loopback port, the node talks to it through the
// Thrift2 client), a local redis-server, the shipped scripts (scripts/) in
// the LuaJIT script host, and the node itself on the real clock.
//
// The `due` table holds --due-rows synthetic due rows (far in the future,
// spread over the user-changes partitions) for the whole run, so every due
// scan seeks through a big table. Measured users have real rows: events in
// `e` (common/event_codec.h) and, after a first unmeasured pass, a state.
//
//   1. RSS: seg-segmenter (the binary) against the same store/Kafka/Redis
//      with 100k, then 1M due rows in the table; VmRSS read after it fired a
//      batch of --rss-users due users (on a topic of its own).
//   2. notice_users_per_s: one write notice per user (--users), queued in
//      Kafka before the clock starts; clock until all are segmented.
//   3. backfill_users_per_s: one NOTICE_DEFINITION_CHANGE notice per user.
//   4. due_users_fired_per_s: a car-service search placed so that
//      looks_for_car_service's 14-day window ends at one instant for every
//      user; after that instant, clock until every user was fired (SCHEDULE).
//   5. exit lateness: --late-users users whose windows end at known instants
//      spread over --late-window-s of real time, while write notices arrive
//      at --load-fraction of the notice rate; lateness = the SCHEDULE
//      result's Kafka timestamp minus the user's stored due time; also the
//      node's seg_segmenter_schedule_lateness_seconds (fire time) histogram.
//
// Steps 2-4 run --rounds times in turn (medians reported: the machine is
// shared). The node's store, script host and stats sink are wrapped in
// pass-through timers, so each phase prints where its wall time went
// ("other" = Kafka polls, produce and flush, the node's own work).
// --batch-max-ms / --due-batch-users set those node options for what-if runs.
//
//   membership_bench [--users 20000] [--due-rows 1000000] [--rounds 3] [--json-out FILE] ...
//   (tools/dev bench membership runs it with the defaults.)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <glog/logging.h>

#include "common/clock.h"
#include "common/event_codec.h"
#include "common/kafka.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "proto/events.pb.h"
#include "proto/segmentation.pb.h"
#include "segmenter/internal/membership.h"
#include "segmenter/script_host/script_host.h"
#include "segmenter/segmenter.h"
#include "stats/writer/stats_writer.h"
#include "store/server/store_server.h"
#include "store/store.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/served_store.h"

namespace {

using Clk = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kCarServiceWindowMs = 14 * kDayMs;  // scripts/looks_for_car_service.lua

#define CHECK_OK(expr)                               \
  do {                                               \
    ::seg::Status _s = (expr);                       \
    if (!_s.ok()) LOG(FATAL) << #expr << ": " << _s; \
  } while (0)

int64_t NowMs() { return seg::Clock::Real()->NowMs(); }
double Since(Clk::time_point t0) { return std::chrono::duration<double>(Clk::now() - t0).count(); }

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

// "VmRSS" / "VmHWM" of a process, in MB (-1 if unreadable).
double ProcStatusMb(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::stod(line.substr(field.size() + 1)) / 1024.0;  // kB
    }
  }
  return -1;
}

// One metric line's value from a /metrics endpoint (-1 if absent).
double ScrapeMetric(int port, const std::string& name) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string body;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) body.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// Sums and counts of the node's histograms, and the lateness buckets, from
// this process's registry (phases are deltas of two snapshots).
struct MetricsSnapshot {
  std::map<std::string, double> values;  // "name_sum" / "name_count" / bucket lines
  static MetricsSnapshot Take() {
    MetricsSnapshot s;
    std::istringstream text(seg::metrics::RenderText());
    for (std::string line; std::getline(text, line);) {
      if (line.empty() || line[0] == '#') continue;
      if (line.rfind("seg_segmenter_", 0) != 0 && line.rfind("seg_store_", 0) != 0) continue;
      size_t sp = line.rfind(' ');
      if (sp == std::string::npos) continue;
      s.values[line.substr(0, sp)] = std::atof(line.c_str() + sp + 1);
    }
    return s;
  }
  double Get(const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? 0 : it->second;
  }
};

// Quantile (ms) of the schedule-lateness histogram between two snapshots,
// interpolated within the bucket.
double LatenessQuantileMs(const MetricsSnapshot& a, const MetricsSnapshot& b, double q) {
  const std::string prefix = "seg_segmenter_schedule_lateness_seconds_bucket{le=\"";
  std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
  for (const auto& [key, value] : b.values) {
    if (key.rfind(prefix, 0) != 0) continue;
    std::string le = key.substr(prefix.size());
    le = le.substr(0, le.find('"'));
    double bound = le == "+Inf" ? INFINITY : std::atof(le.c_str());
    buckets.emplace_back(bound, value - a.Get(key));
  }
  std::sort(buckets.begin(), buckets.end());
  if (buckets.empty() || buckets.back().second <= 0) return -1;
  const double target = q * buckets.back().second;
  double prev_le = 0, prev_count = 0;
  for (const auto& [le, count] : buckets) {
    if (count >= target) {
      if (std::isinf(le)) return prev_le * 1000;
      const double frac = count > prev_count ? (target - prev_count) / (count - prev_count) : 1;
      return (prev_le + frac * (le - prev_le)) * 1000;
    }
    prev_le = le;
    prev_count = count;
  }
  return prev_le * 1000;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(q * v.size())) - 1;
  return v[std::min(i, v.size() - 1)];
}

// An event cell as ingest writes it.
seg::store::Cell EventCell(const seg::Event& e) {
  seg::store::Cell cell;
  cell.family = "e";
  seg::EncodeEventQualifier(e.event_time_ms(), seg::EventDigest(e), e.type(), &cell.qualifier);
  cell.timestamp = e.event_time_ms();
  CHECK_OK(seg::EncodeEventValue(e, &cell.value));
  return cell;
}

// Background activity that no shipped script's window turns on a day's
// scale: news and shop page views, clicks, everyday searches, within the
// last day (the nearest window edge they set is >= 13 days away).
void WriteBaseEvents(seg::store::Store* store, const std::vector<std::string>& users, int per_user,
                     int64_t now, std::mt19937_64& rng) {
  static const char* kUrls[] = {
      "https://news.example.com/article/", "https://shop.example.com/p/",
      "https://weather.example.com/city/", "https://video.example.com/v/",
      "https://cats.example.com/photo/",   "https://mail.example.com/inbox/"};
  static const char* kQueries[] = {"погода завтра",  "рецепт борща",     "курс доллара",
                                   "новости спорта", "купить кроссовки", "расписание электричек"};
  std::vector<seg::store::RowPut> puts;
  for (const std::string& user : users) {
    seg::store::RowPut& put = puts.emplace_back();
    put.row = user;
    for (int k = 0; k < per_user; ++k) {
      seg::Event e;
      e.set_user_id(user);
      e.set_event_time_ms(now - 3'600'000 - static_cast<int64_t>(rng() % (20 * 3'600'000ull)));
      switch (rng() % 4) {
        case 0:
          e.set_type(seg::SEARCH);
          e.set_search_query(kQueries[rng() % 6]);
          break;
        case 1:
          e.set_type(seg::CLICK);
          e.set_url(std::string(kUrls[rng() % 6]) + std::to_string(rng() % 100000));
          break;
        default:
          e.set_type(seg::PAGE_VIEW);
          e.set_url(std::string(kUrls[rng() % 6]) + std::to_string(rng() % 100000));
          e.set_referrer("https://www.example.com/");
      }
      e.set_ip("192.0.2." + std::to_string(rng() % 250 + 1));
      e.set_user_agent("Mozilla/5.0 (X11; Linux x86_64) bench");
      put.cells.push_back(EventCell(e));
    }
    if (puts.size() >= 1000) {
      CHECK_OK(store->Put("users", puts));
      puts.clear();
    }
  }
  if (!puts.empty()) CHECK_OK(store->Put("users", puts));
}

// The one event that makes `user` a looks_for_car_service member until `edge_ms`.
void WriteEdgeEvents(seg::store::Store* store, const std::vector<std::string>& users,
                     const std::vector<int64_t>& edge_ms) {
  std::vector<seg::store::RowPut> puts;
  for (size_t i = 0; i < users.size(); ++i) {
    seg::Event e;
    e.set_user_id(users[i]);
    e.set_event_time_ms(edge_ms[i] - kCarServiceWindowMs);
    e.set_type(seg::SEARCH);
    e.set_search_query("автосервис рядом");
    seg::store::RowPut& put = puts.emplace_back();
    put.row = users[i];
    put.cells.push_back(EventCell(e));
    if (puts.size() >= 1000) {
      CHECK_OK(store->Put("users", puts));
      puts.clear();
    }
  }
  if (!puts.empty()) CHECK_OK(store->Put("users", puts));
}

// Synthetic due rows [from, to): users that are not stored, due a year
// from now and later, spread over the partitions.
void WriteSyntheticDueRows(seg::store::Store* store, int64_t from, int64_t to, int partitions,
                           int64_t now) {
  std::vector<seg::store::RowPut> puts;
  char id[32];
  for (int64_t i = from; i < to; ++i) {
    std::snprintf(id, sizeof id, "syn%08lld", static_cast<long long>(i));
    seg::store::RowPut& put = puts.emplace_back();
    put.row = seg::segmenter::DueRowKey(static_cast<int32_t>(i % partitions),
                                        now + 365 * kDayMs + i * 7, id);
    put.cells.push_back(seg::store::Cell{"d", "u", seg::store::kLatestTimestamp, ""});
    if (puts.size() >= 5000) {  // under seg-store's store.server.max_rows_per_request
      CHECK_OK(store->Put("due", puts));
      puts.clear();
    }
  }
  if (!puts.empty()) CHECK_OK(store->Put("due", puts));
}

std::vector<std::string> Ids(const char* prefix, int n) {
  std::vector<std::string> out;
  char id[32];
  for (int i = 0; i < n; ++i) {
    std::snprintf(id, sizeof id, "%s%06d", prefix, i);
    out.emplace_back(id);
  }
  return out;
}

void ProduceNotices(seg::kafka::Producer* producer, const std::string& topic,
                    const std::vector<std::string>& users, seg::NoticeKind kind) {
  seg::ChangeNotice n;
  std::string value;
  for (const std::string& user : users) {
    const int64_t now = NowMs();
    n.set_user_id(user);
    n.set_acked_at_ms(now);
    n.set_newest_event_time_ms(now - 1000);
    n.set_event_count(kind == seg::NOTICE_WRITE ? 1 : 0);
    n.set_kind(kind);
    n.SerializeToString(&value);
    CHECK_OK(producer->Produce(topic, user, value));
  }
  CHECK_OK(producer->Flush(std::chrono::seconds(30)));
}

// The stored states of `users` (one multi-get per 1000).
std::vector<seg::SegmentState> States(seg::store::Store* store,
                                      const std::vector<std::string>& users) {
  std::vector<seg::SegmentState> out(users.size());
  for (size_t off = 0; off < users.size(); off += 1000) {
    std::vector<seg::store::GetRequest> gets;
    for (size_t i = off; i < std::min(users.size(), off + 1000); ++i) {
      seg::store::GetRequest& g = gets.emplace_back();
      g.row = users[i];
      g.families = {"s"};
      g.qualifiers = {std::string(seg::segmenter::kStateQualifier)};
    }
    std::vector<seg::store::RowResult> rows;
    CHECK_OK(store->MultiGet("users", gets, &rows));
    for (size_t j = 0; j < rows.size(); ++j) {
      if (!rows[j].empty()) {
        auto v = rows[j].cell(0).value;
        out[off + j].ParseFromArray(v.data(), static_cast<int>(v.size()));
      }
    }
  }
  return out;
}

// Results as a partner reads them, on a thread of their own: SCHEDULE
// results per user (Kafka timestamp) and counts by reason.
class ResultReader {
 public:
  explicit ResultReader(seg::kafka::KafkaOptions options) : options_(std::move(options)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~ResultReader() {
    stop_ = true;
    thread_.join();
  }
  bool WaitAssigned(int seconds) {
    auto deadline = Clk::now() + std::chrono::seconds(seconds);
    while (!assigned_ && Clk::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
    return assigned_;
  }
  int64_t count(seg::ResultReason reason) {
    std::lock_guard<std::mutex> lock(mu_);
    return by_reason_[reason];
  }
  int64_t exits() {
    std::lock_guard<std::mutex> lock(mu_);
    return exits_;
  }
  // Kafka timestamps of SCHEDULE results per user with this id prefix.
  std::unordered_map<std::string, int64_t> ScheduleTimes(const std::string& prefix) {
    std::lock_guard<std::mutex> lock(mu_);
    std::unordered_map<std::string, int64_t> out;
    for (const auto& [user, ts] : schedule_ts_) {
      if (user.rfind(prefix, 0) == 0) out.emplace(user, ts);
    }
    return out;
  }

 private:
  void Loop() {
    auto consumer = seg::kafka::Consumer::Create(
        options_, "partner", [this](const seg::kafka::RebalanceEvent& e) {
          if (e.kind == seg::kafka::RebalanceEvent::Kind::kAssigned) assigned_ = true;
        });
    if (!consumer.ok()) LOG(FATAL) << consumer.status();
    CHECK_OK((*consumer)->Subscribe({"segmentation-results"}));
    seg::SegmentationResult r;
    while (!stop_) {
      auto batch = (*consumer)->PollBatch(5000, milliseconds(100));
      if (!batch.ok()) continue;
      std::lock_guard<std::mutex> lock(mu_);
      for (const seg::kafka::Message& m : *batch) {
        if (m.is_tombstone() ||
            !r.ParseFromArray(m.value().data(), static_cast<int>(m.value().size()))) {
          continue;
        }
        ++by_reason_[r.reason()];
        if (r.reason() == seg::SCHEDULE) {
          if (r.exited_size() > 0) ++exits_;
          schedule_ts_.emplace(std::string(m.key()), m.timestamp_ms());  // first one counts
        }
      }
    }
    (*consumer)->Close().IgnoreError();
  }

  seg::kafka::KafkaOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> assigned_{false};
  std::mutex mu_;
  std::map<int, int64_t> by_reason_;
  int64_t exits_ = 0;
  std::unordered_map<std::string, int64_t> schedule_ts_;
  std::thread thread_;
};

// Wall time of the node's calls into its collaborators, per operation
// ("put due", "multiget users", ...), for the phases' breakdowns. The node
// runs on one thread; the mutex only guards snapshots from main.
class Timings {
 public:
  struct Entry {
    double seconds = 0;
    int64_t calls = 0;
    int64_t items = 0;
  };
  void Add(const std::string& op, Clk::time_point t0, int64_t items) {
    const double s = Since(t0);
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = entries_[op];
    e.seconds += s;
    ++e.calls;
    e.items += items;
  }
  std::map<std::string, Entry> Snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
};
Timings g_timings;

class TimingScanner : public seg::store::Scanner {
 public:
  TimingScanner(std::unique_ptr<seg::store::Scanner> inner, std::string op)
      : inner_(std::move(inner)), op_(std::move(op)) {}
  seg::Status NextBatch(std::vector<seg::store::RowResult>* rows) override {
    auto t0 = Clk::now();
    seg::Status s = inner_->NextBatch(rows);
    g_timings.Add(op_, t0, static_cast<int64_t>(rows->size()));
    return s;
  }
  seg::Status Close() override {
    auto t0 = Clk::now();
    seg::Status s = inner_->Close();
    g_timings.Add(op_ + " close", t0, 0);
    return s;
  }

 private:
  std::unique_ptr<seg::store::Scanner> inner_;
  std::string op_;
};

// The node's store: the Thrift2 client, timed per call.
class TimingStore : public seg::store::Store {
 public:
  explicit TimingStore(seg::store::Store* inner) : inner_(inner) {}
  seg::Status Put(std::string_view table, const std::vector<seg::store::RowPut>& rows) override {
    auto t0 = Clk::now();
    seg::Status s = inner_->Put(table, rows);
    g_timings.Add("put " + std::string(table), t0, static_cast<int64_t>(rows.size()));
    return s;
  }
  seg::StatusOr<seg::store::RowResult> Get(std::string_view table,
                                           const seg::store::GetRequest& get) override {
    auto t0 = Clk::now();
    auto r = inner_->Get(table, get);
    g_timings.Add("get " + std::string(table), t0, 1);
    return r;
  }
  seg::Status MultiGet(std::string_view table, const std::vector<seg::store::GetRequest>& gets,
                       std::vector<seg::store::RowResult>* results) override {
    auto t0 = Clk::now();
    seg::Status s = inner_->MultiGet(table, gets, results);
    g_timings.Add("multiget " + std::string(table), t0, static_cast<int64_t>(gets.size()));
    return s;
  }
  seg::StatusOr<bool> Exists(std::string_view table, const seg::store::GetRequest& get) override {
    return inner_->Exists(table, get);
  }
  seg::Status Delete(std::string_view table,
                     const std::vector<seg::store::RowDelete>& rows) override {
    auto t0 = Clk::now();
    seg::Status s = inner_->Delete(table, rows);
    g_timings.Add("delete " + std::string(table), t0, static_cast<int64_t>(rows.size()));
    return s;
  }
  seg::StatusOr<bool> CheckAndMutate(std::string_view table, const seg::store::Condition& condition,
                                     const seg::store::RowMutations& mutations) override {
    return inner_->CheckAndMutate(table, condition, mutations);
  }
  seg::StatusOr<std::unique_ptr<seg::store::Scanner>> OpenScanner(
      std::string_view table, const seg::store::ScanRequest& scan) override {
    auto t0 = Clk::now();
    auto r = inner_->OpenScanner(table, scan);
    g_timings.Add("scan " + std::string(table) + " open", t0, 0);
    if (!r.ok()) return r.status();
    return std::unique_ptr<seg::store::Scanner>(
        std::make_unique<TimingScanner>(std::move(*r), "scan " + std::string(table)));
  }

  seg::Status ScanFirst(std::string_view table, const seg::store::ScanRequest& scan,
                        std::vector<seg::store::RowResult>* rows) override {
    auto t0 = Clk::now();
    seg::Status s = inner_->ScanFirst(table, scan, rows);
    g_timings.Add("scan-first " + std::string(table), t0, static_cast<int64_t>(rows->size()));
    return s;
  }

 private:
  seg::store::Store* inner_;
};

// The script host, timed per evaluation.
class TimingEvaluator : public seg::segmenter::Evaluator {
 public:
  explicit TimingEvaluator(seg::segmenter::Evaluator* inner) : inner_(inner) {}
  seg::Status Evaluate(std::string_view user_id, std::span<const seg::EventView> events,
                       int64_t now_ms, seg::segmenter::Evaluation* out) override {
    auto t0 = Clk::now();
    seg::Status s = inner_->Evaluate(user_id, events, now_ms, out);
    g_timings.Add("scripts", t0, 1);
    return s;
  }
  std::string ScriptSetVersion() override { return inner_->ScriptSetVersion(); }
  seg::Status Reload() override { return inner_->Reload(); }

 private:
  seg::segmenter::Evaluator* inner_;
};

class TimingSink : public seg::segmenter::StatsSink {
 public:
  explicit TimingSink(seg::segmenter::StatsSink* inner) : inner_(inner) {}
  seg::Status Write(std::span<const seg::segmenter::StatsUpdate> updates) override {
    auto t0 = Clk::now();
    seg::Status s = inner_->Write(updates);
    g_timings.Add("stats write", t0, static_cast<int64_t>(updates.size()));
    return s;
  }

 private:
  seg::segmenter::StatsSink* inner_;
};

struct Phase {
  double seconds = 0;
  double cpu_seconds = 0;
  int64_t users = 0;
  MetricsSnapshot before, after;
  std::map<std::string, Timings::Entry> t_before, t_after;
  void Start() {
    before = MetricsSnapshot::Take();
    t_before = g_timings.Snapshot();
  }
  void Stop() {
    after = MetricsSnapshot::Take();
    t_after = g_timings.Snapshot();
  }
  // Per operation: seconds, calls, items in this phase; "other" = the rest
  // of the wall time (Kafka polls, produce and flush, the node's own work).
  std::string Breakdown() const {
    std::ostringstream out;
    double accounted = 0;
    for (const auto& [op, e] : t_after) {
      Timings::Entry b;
      if (auto it = t_before.find(op); it != t_before.end()) b = it->second;
      const double sec = e.seconds - b.seconds;
      if (e.calls == b.calls) continue;
      accounted += sec;
      out << op << " " << std::fixed;
      out.precision(3);
      out << sec << " s/" << (e.calls - b.calls) << " calls/" << (e.items - b.items) << "; ";
    }
    out.precision(3);
    out << "other " << (seconds - accounted) << " s";
    return out.str();
  }
  double rate() const { return seconds > 0 ? users / seconds : 0; }
  // Where the node's time went (store multi-gets, stats writes), seconds.
  double Delta(const std::string& key) const { return after.Get(key) - before.Get(key); }
};

void PrintPhase(const char* name, const Phase& p) {
  std::printf("%-10s %s\n", "", p.Breakdown().c_str());
  std::printf(
      "%-10s %7lld users in %6.2f s = %8.0f users/s | process CPU %.2f s | multi-get %.2f s "
      "(%g calls) | stats write %.2f s | queued-batch time %.2f s\n",
      name, static_cast<long long>(p.users), p.seconds, p.rate(), p.cpu_seconds,
      p.Delta("seg_segmenter_store_seconds_sum"), p.Delta("seg_segmenter_store_seconds_count"),
      p.Delta("seg_segmenter_stats_seconds_sum"), p.Delta("seg_segmenter_batch_seconds_sum"));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"Membership over time: due firing vs notices vs backfill, memory, exit lateness"};
  int users = 20000, late_users = 2000, rss_users = 1000, events_per_user = 20, partitions = 4;
  int64_t due_rows = 1'000'000, rss_small_rows = 100'000;
  double late_window_s = 20, load_fraction = 0.5;
  bool skip_rss = false;
  int rounds = 3;
  int batch_max_ms = -1, due_batch_users = -1;
  std::string json_out;
  app.add_option("--users", users, "users measured for notices, backfill and due firing");
  app.add_option("--due-rows", due_rows, "synthetic due rows in the table (far future)");
  app.add_option("--rss-small-rows", rss_small_rows, "due rows for the small RSS run");
  app.add_option("--rss-users", rss_users, "users the seg-segmenter process fires per RSS run");
  app.add_option("--late-users", late_users, "users with window edges spread over the window");
  app.add_option("--late-window-s", late_window_s, "real-clock interval of their edges");
  app.add_option("--load-fraction", load_fraction,
                 "write notices during the lateness phase, as a fraction of the notice rate");
  app.add_option("--events-per-user", events_per_user, "background events per user");
  app.add_option("--partitions", partitions, "user-changes partitions");
  app.add_flag("--skip-rss", skip_rss, "no seg-segmenter RSS runs");
  app.add_option("--rounds", rounds, "notice/backfill/due rounds (medians reported)")
      ->check(CLI::Range(1, 9));
  app.add_option("--batch-max-ms", batch_max_ms, "node option (what-if; default: the node's)");
  app.add_option("--due-batch-users", due_batch_users,
                 "node option schedule.batch_users (what-if; default: the node's)");
  app.add_option("--json-out", json_out, "write figures as JSON here");
  CLI11_PARSE(app, argc, argv);
  const auto bench_start = Clk::now();

  seg::testing::TempDir dir;
  auto kafka = seg::testing::MockKafkaCluster::Start(3);
  if (!kafka.ok()) LOG(FATAL) << kafka.status();
  for (const char* topic : {"user-changes", "rss-changes"}) {
    CHECK_OK((*kafka)->CreateTopic(topic, partitions));
  }
  CHECK_OK((*kafka)->CreateTopic("segmentation-results", 4));
  auto redis = seg::testing::LocalRedis::Start();
  if (!redis.ok()) LOG(FATAL) << redis.status();
  auto served = seg::testing::ServeStore(dir.path() + "/store");
  if (!served.ok()) LOG(FATAL) << served.status();
  seg::store::Store* store = served->client.get();
  const std::string scripts_dir = seg::testing::SourceDir() + "/scripts";

  // Kafka client settings of the local stack against the mock (README:
  // the mock holds an empty fetch for the whole fetch.wait.max.ms).
  auto client = [&](const std::string& id) {
    seg::kafka::KafkaOptions o = (*kafka)->ClientOptions(id);
    o.properties["session.timeout.ms"] = "6000";
    o.properties["heartbeat.interval.ms"] = "500";
    o.properties["fetch.wait.max.ms"] = "20";
    o.properties["socket.nagle.disable"] = "true";
    return o;
  };
  auto producer = seg::kafka::Producer::Create(client("bench-producer"));
  if (!producer.ok()) LOG(FATAL) << producer.status();
  CHECK_OK((*producer)->PrepareTopic("user-changes", std::chrono::seconds(10)));

  std::mt19937_64 rng(1);
  const std::vector<std::string> measured = Ids("u", users);
  const std::vector<std::string> late = Ids("late", late_users);
  const std::vector<std::string> rss = Ids("rss", rss_users);
  auto t = Clk::now();
  const int64_t setup_now = NowMs();
  WriteBaseEvents(store, measured, events_per_user, setup_now, rng);
  WriteBaseEvents(store, late, events_per_user, setup_now, rng);
  WriteBaseEvents(store, rss, events_per_user, setup_now, rng);
  std::printf("setup: %d+%d+%d users x %d events written in %.1f s\n", users, late_users, rss_users,
              events_per_user, Since(t));

  // 1. Memory of a seg-segmenter process with 100k and 1M due rows.
  double rss_small_mb = -1, rss_big_mb = -1, hwm_small_mb = -1, hwm_big_mb = -1;
  double rss_small_fired_s = -1, rss_big_fired_s = -1;
  const int64_t small_rows = std::min(rss_small_rows, due_rows);
  t = Clk::now();
  WriteSyntheticDueRows(store, 0, small_rows, partitions, setup_now);
  std::printf("setup: %lld synthetic due rows in %.1f s\n", static_cast<long long>(small_rows),
              Since(t));
  if (!skip_rss) {
    const std::string binary = seg::testing::BinaryDir() + "/segmenter/seg-segmenter";
    const std::string config = dir.path() + "/rss.yaml";
    std::ofstream(config) << "kafka:\n"
                             "  properties:\n"
                             "    session: {timeout: {ms: 6000}}\n"
                             "    heartbeat: {interval: {ms: 500}}\n"
                             "    fetch: {wait: {max: {ms: 20}}}\n"
                             "    socket: {nagle: {disable: true}}\n"
                             "topics:\n"
                             "  changes: rss-changes\n"
                             "scripts:\n"
                             "  reload_check_interval_ms: 0\n";
    for (int run = 0; run < 2; ++run) {
      if (run == 1) {
        t = Clk::now();
        WriteSyntheticDueRows(store, small_rows, due_rows, partitions, setup_now);
        std::printf("setup: %lld more synthetic due rows in %.1f s\n",
                    static_cast<long long>(due_rows - small_rows), Since(t));
      }
      // The users it fires: due a second ago.
      std::vector<seg::store::RowPut> puts;
      const int64_t due = NowMs() - 1000;
      for (int i = 0; i < rss_users; ++i) {
        seg::store::RowPut& put = puts.emplace_back();
        put.row = seg::segmenter::DueRowKey(i % partitions, due, rss[i]);
        put.cells.push_back(seg::store::Cell{"d", "u", seg::store::kLatestTimestamp, ""});
      }
      CHECK_OK(store->Put("due", puts));
      const int metrics_port = seg::testing::PickFreePort();
      auto child = seg::testing::ChildProcess::Start(
          {binary, "--config", config, "--set", "segmenter.group_id=rss-" + std::to_string(run),
           "--bootstrap", (*kafka)->bootstrap_servers(), "--store",
           "127.0.0.1:" + std::to_string(served->server->port()), "--redis",
           "127.0.0.1:" + std::to_string((*redis)->port()), "--scripts", scripts_dir,
           "--metrics-port", std::to_string(metrics_port)},
          dir.path() + "/rss-" + std::to_string(run) + ".log");
      if (!child.ok()) LOG(FATAL) << child.status();
      const auto started = Clk::now();
      const std::string scheduled = "seg_segmenter_decisions_total{decision=\"scheduled\"}";
      double fired = -1;
      while (Since(started) < 60 && child->running()) {
        fired = ScrapeMetric(metrics_port, scheduled);
        if (fired >= rss_users) break;
        std::this_thread::sleep_for(milliseconds(100));
      }
      if (fired < rss_users) {
        LOG(ERROR) << "seg-segmenter fired " << fired << " of " << rss_users
                   << " due users within 60 s; log " << dir.path() << "/rss-" << run << ".log";
      }
      std::this_thread::sleep_for(milliseconds(1500));  // one more due scan of the big table
      const double rss_mb = ProcStatusMb(child->pid(), "VmRSS");
      const double hwm_mb = ProcStatusMb(child->pid(), "VmHWM");
      (run == 0 ? rss_small_mb : rss_big_mb) = rss_mb;
      (run == 0 ? hwm_small_mb : hwm_big_mb) = hwm_mb;
      (run == 0 ? rss_small_fired_s : rss_big_fired_s) = Since(started);
      std::printf(
          "seg-segmenter with %lld due rows: fired %.0f users, VmRSS %.1f MB, VmHWM %.1f "
          "MB (%.1f s after start)\n",
          static_cast<long long>(run == 0 ? small_rows : due_rows), fired, rss_mb, hwm_mb,
          Since(started));
      std::fflush(stdout);
      child->Stop(milliseconds(10000));
    }
  } else {
    WriteSyntheticDueRows(store, small_rows, due_rows, partitions, setup_now);
  }

  // The node under test, in process, on the real clock, node defaults.
  seg::segmenter::ScriptHostOptions host_options;
  host_options.scripts_dir = scripts_dir;
  host_options.reload_check_interval_ms = 0;
  auto host = seg::segmenter::ScriptHost::Create(host_options);
  if (!host.ok()) LOG(FATAL) << host.status();
  seg::stats::StatsWriterOptions writer_options;
  writer_options.redis.node.port = (*redis)->port();
  auto writer = seg::stats::NewStatsWriter(writer_options);
  if (!writer.ok()) LOG(FATAL) << writer.status();
  CHECK_OK((*writer)->LoadProcedures());
  auto evaluator_inner = seg::segmenter::NewScriptHostEvaluator(host->get());
  auto sink_inner = seg::segmenter::NewStatsWriterSink(writer->get());
  // Pass-through wrappers that time each call (the phases' breakdowns).
  TimingStore timed_store(store);
  TimingEvaluator evaluator(evaluator_inner.get());
  TimingSink sink(sink_inner.get());
  seg::segmenter::NodeOptions options;
  options.kafka = client("segmenter");
  if (batch_max_ms > 0) options.batch_max_ms = batch_max_ms;
  if (due_batch_users > 0) options.due_batch_users = due_batch_users;
  auto node_or = seg::segmenter::CreateNode(options, &timed_store, &evaluator, &sink, nullptr);
  if (!node_or.ok()) LOG(FATAL) << node_or.status();
  seg::segmenter::Node* node = node_or->get();
  ResultReader reader(client("reader"));
  if (!reader.WaitAssigned(30)) LOG(FATAL) << "results reader not assigned within 30 s";

  // Runs the node until done() or the deadline; false on timeout.
  auto run_until = [&](auto done, double max_seconds) {
    auto deadline = Clk::now() + std::chrono::duration<double>(max_seconds);
    while (!done()) {
      if (Clk::now() > deadline) return false;
      auto n = node->RunOnce();
      if (!n.ok()) LOG(ERROR) << "RunOnce: " << n.status();
    }
    return true;
  };
  // One measured pass: notices queued in Kafka and settled past the read
  // delay before the clock starts (throughput, not latency); clock until
  // `counter` grew by the number of users.
  auto pass = [&](const char* name, seg::NoticeKind kind, auto counter) {
    const int64_t start_count = counter(node->stats());
    ProduceNotices(producer->get(), "user-changes", measured, kind);
    std::this_thread::sleep_for(milliseconds(options.read_delay_ms));
    Phase p;
    p.Start();
    const double cpu0 = ProcessCpuSeconds();
    const auto t0 = Clk::now();
    const bool ok = run_until([&] { return counter(node->stats()) - start_count >= users; }, 120);
    p.seconds = Since(t0);
    p.cpu_seconds = ProcessCpuSeconds() - cpu0;
    p.Stop();
    p.users = counter(node->stats()) - start_count;
    if (!ok) LOG(ERROR) << name << ": only " << p.users << " of " << users << " within 120 s";
    PrintPhase(name, p);
    return p;
  };
  auto segmented = [](const seg::segmenter::NodeStats& s) { return s.segmented; };

  // Warm-up (first segmentation: states and due rows created; group join).
  Phase warm = pass("first", seg::NOTICE_WRITE, segmented);
  // 2-4, `rounds` times in turn (the machine is shared: rates are the
  // medians, ratios the medians of each round's own ratio).
  std::vector<Phase> notices, backfills, preps, dues;
  int64_t due_at_edge = 0, due_results = 0;
  for (int round = 0; round < rounds; ++round) {
    std::printf("round %d\n", round + 1);
    // 2. Notices, 3. backfill.
    notices.push_back(pass("notice", seg::NOTICE_WRITE, segmented));
    backfills.push_back(
        pass("backfill", seg::NOTICE_DEFINITION_CHANGE,
             [](const seg::segmenter::NodeStats& s) { return s.definition_changes; }));

    // 4. Due firing: every measured user's car-service window ends at edge.
    const double est_s = users / std::max(notices.back().rate(), 1.0);
    const int64_t edge = NowMs() + static_cast<int64_t>(std::min(2 * est_s + 2, 60.0) * 1000);
    WriteEdgeEvents(store, measured, std::vector<int64_t>(measured.size(), edge));
    preps.push_back(pass("edge-prep", seg::NOTICE_WRITE, segmented));
    due_at_edge = 0;
    for (const auto& s : States(store, measured)) {
      due_at_edge += s.due_ms() >= edge && s.due_ms() <= edge + 1000;
    }
    std::printf("edge in %lld ms; %lld of %d users due at the edge\n",
                static_cast<long long>(edge - NowMs()), static_cast<long long>(due_at_edge), users);
    // The node idles (does not poll) until every measured user is due.
    while (NowMs() < edge + 20) std::this_thread::sleep_for(milliseconds(5));
    const int64_t scheduled0 = node->stats().scheduled;
    const int64_t results0 = node->stats().results_published;
    Phase& due = dues.emplace_back();
    due.Start();
    const double cpu0 = ProcessCpuSeconds();
    const auto t0 = Clk::now();
    const bool ok =
        run_until([&] { return node->stats().scheduled - scheduled0 >= due_at_edge; }, 120);
    due.seconds = Since(t0);
    due.cpu_seconds = ProcessCpuSeconds() - cpu0;
    due.Stop();
    due.users = node->stats().scheduled - scheduled0;
    due_results = node->stats().results_published - results0;
    if (!ok) LOG(ERROR) << "due: only " << due.users << " of " << due_at_edge << " within 120 s";
    PrintPhase("due", due);
    std::printf(
        "due: %lld SCHEDULE results published (membership changed); round ratios: due/notice "
        "%.2f, backfill/notice %.2f\n",
        static_cast<long long>(due_results), due.rate() / notices.back().rate(),
        backfills.back().rate() / notices.back().rate());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  auto rates = [](const std::vector<Phase>& ps) {
    std::vector<double> out;
    for (const Phase& p : ps) out.push_back(p.rate());
    return out;
  };
  auto ratios = [](const std::vector<Phase>& a, const std::vector<Phase>& b, bool cpu) {
    std::vector<double> out;
    for (size_t i = 0; i < a.size(); ++i) {
      out.push_back(cpu ? (b[i].cpu_seconds / b[i].users) / (a[i].cpu_seconds / a[i].users)
                        : a[i].rate() / b[i].rate());
    }
    return out;
  };
  const double notice_rate = median(rates(notices));
  const double due_rate = median(rates(dues));
  const double backfill_rate = median(rates(backfills));
  const double due_ratio = median(ratios(dues, notices, false));
  const double backfill_ratio = median(ratios(backfills, notices, false));
  // Process CPU (node + store server + mock Kafka) per user, notice over due.
  const double due_cpu_ratio = median(ratios(dues, notices, true));
  const double backfill_cpu_ratio = median(ratios(backfills, notices, true));
  std::ostringstream round_text;
  for (int r = 0; r < rounds; ++r) {
    round_text << (r ? "; " : "") << "round " << r + 1 << ": notice "
               << std::lround(notices[r].rate()) << ", backfill "
               << std::lround(backfills[r].rate()) << ", due " << std::lround(dues[r].rate())
               << " users/s";
  }
  const Phase& notice = notices.back();
  const Phase& backfill = backfills.back();
  const Phase& prep = preps.back();
  const Phase& due = dues.back();

  // 5. Exit lateness on the real clock, under write notices.
  const int64_t late_start =
      NowMs() +
      static_cast<int64_t>(
          std::clamp(3.0 * late_users / std::max(notice_rate, 1.0) + 2, 3.0, 60.0) * 1000);
  std::vector<int64_t> late_edges(late.size());
  for (size_t i = 0; i < late.size(); ++i) {
    late_edges[i] =
        late_start + static_cast<int64_t>(late_window_s * 1000 * static_cast<double>(i) /
                                          static_cast<double>(late.size()));
  }
  WriteEdgeEvents(store, late, late_edges);
  {
    const int64_t s0 = node->stats().segmented;
    ProduceNotices(producer->get(), "user-changes", late, seg::NOTICE_WRITE);
    if (!run_until([&] { return node->stats().segmented - s0 >= late_users; }, 60)) {
      LOG(ERROR) << "late users not segmented within 60 s";
    }
  }
  const std::vector<seg::SegmentState> late_states = States(store, late);
  std::unordered_map<std::string, int64_t> late_due;
  int64_t late_due_in_future = 0;
  const int64_t late_prepped_ms = NowMs();
  for (size_t i = 0; i < late.size(); ++i) {
    late_due[late[i]] = late_states[i].due_ms();
    late_due_in_future += late_states[i].due_ms() > late_prepped_ms;
  }
  std::printf("lateness: %lld of %d late users due in the future; edges %lld..%lld ms from now\n",
              static_cast<long long>(late_due_in_future), late_users,
              static_cast<long long>(late_start - late_prepped_ms),
              static_cast<long long>(late_edges.back() - late_prepped_ms));
  // Background write notices at load_fraction x the notice rate, paced per 10 ms.
  std::atomic<bool> load_stop{false};
  std::atomic<int64_t> load_sent{0};
  const double load_rate = load_fraction * notice_rate;
  const int64_t late_end = late_edges.back() + 3000;
  std::thread load([&] {
    auto p = seg::kafka::Producer::Create(client("bench-load"));
    if (!p.ok()) LOG(FATAL) << p.status();
    seg::ChangeNotice n;
    std::string value;
    const auto l0 = Clk::now();
    size_t next = 0;
    while (!load_stop && NowMs() < late_end) {
      const int64_t due_count = static_cast<int64_t>(Since(l0) * load_rate);
      while (load_sent < due_count) {
        const std::string& user = measured[next++ % measured.size()];
        const int64_t now = NowMs();
        n.set_user_id(user);
        n.set_acked_at_ms(now);
        n.set_newest_event_time_ms(now - 1000);
        n.set_event_count(1);
        n.set_kind(seg::NOTICE_WRITE);
        n.SerializeToString(&value);
        (void)(*p)->Produce("user-changes", user, value).ok();
        ++load_sent;
      }
      (void)(*p)->Flush(milliseconds(1000)).ok();
      std::this_thread::sleep_for(milliseconds(10));
    }
    (void)(*p)->Flush(std::chrono::seconds(10)).ok();
  });
  const MetricsSnapshot late_before = MetricsSnapshot::Take();
  const int64_t late_segmented0 = node->stats().segmented;
  std::unordered_map<std::string, int64_t> late_ts;
  run_until(
      [&] {
        if (NowMs() < late_end) return false;
        late_ts = reader.ScheduleTimes("late");
        return static_cast<int64_t>(late_ts.size()) >= late_due_in_future;
      },
      late_window_s + 60);
  load_stop = true;
  load.join();
  const MetricsSnapshot late_after = MetricsSnapshot::Take();
  late_ts = reader.ScheduleTimes("late");
  std::vector<double> lateness_ms;
  for (const auto& [user, ts] : late_ts) {
    auto it = late_due.find(user);
    if (it != late_due.end() && it->second > late_prepped_ms) {
      lateness_ms.push_back(static_cast<double>(ts - it->second));
    }
  }
  const double late_p50 = Percentile(lateness_ms, 0.50);
  const double late_p99 = Percentile(lateness_ms, 0.99);
  const double late_max = Percentile(lateness_ms, 1.0);
  const double fire_p50 = LatenessQuantileMs(late_before, late_after, 0.50);
  const double fire_p99 = LatenessQuantileMs(late_before, late_after, 0.99);
  const double load_segmented_per_s =
      (node->stats().segmented - late_segmented0) / (late_window_s + 3);
  std::printf(
      "lateness: %zu of %lld exits published; result - due p50 %.0f ms, p99 %.0f ms, "
      "max %.0f ms; node histogram (fire - due) p50 %.0f ms, p99 %.0f ms; background "
      "%lld notices (%.0f/s), %.0f segmentations/s\n",
      lateness_ms.size(), static_cast<long long>(late_due_in_future), late_p50, late_p99, late_max,
      fire_p50, fire_p99, static_cast<long long>(load_sent.load()), load_rate,
      load_segmented_per_s);

  CHECK_OK(node->Close());
  served->server->Stop();

  const double rss_ratio = rss_small_mb > 0 ? rss_big_mb / rss_small_mb : -1;
  auto met = [](bool b) { return b ? "met" : "MISSED"; };
  std::printf("\nfigure                      value        target\n");
  std::printf("notice_users_per_s          %8.0f     (baseline)\n", notice_rate);
  std::printf("due_users_fired_per_s       %8.0f     >= 0.8 x notice: %.2f  %s\n", due_rate,
              due_ratio, met(due_ratio >= 0.8));
  std::printf("backfill_users_per_s        %8.0f     >= 0.5 x notice: %.2f  %s\n", backfill_rate,
              backfill_ratio, met(backfill_ratio >= 0.5));
  std::printf("per process CPU second: due/notice %.2f, backfill/notice %.2f\n", due_cpu_ratio,
              backfill_cpu_ratio);
  std::printf("%s\n", round_text.str().c_str());
  std::printf("segmenter_rss_mb_100k_due   %8.1f\n", rss_small_mb);
  std::printf("segmenter_rss_mb_1m_due     %8.1f     within 20%%: %.3f  %s\n", rss_big_mb,
              rss_ratio, met(rss_ratio > 0 && rss_ratio <= 1.2 && rss_ratio >= 1 / 1.2));
  std::printf("exit_late_p50_ms            %8.0f\n", late_p50);
  std::printf("exit_late_p99_ms            %8.0f     <= 5000  %s\n", late_p99,
              met(late_p99 >= 0 && late_p99 <= 5000));
  std::printf("bench took %.0f s\n", Since(bench_start));

  if (!json_out.empty()) {
    std::ofstream out(json_out);
    out << "{\"figures\": {"
        << "\"due_users_fired_per_s\": " << std::lround(due_rate)
        << ", \"notice_users_per_s\": " << std::lround(notice_rate)
        << ", \"backfill_users_per_s\": " << std::lround(backfill_rate)
        << ", \"first_segmentation_users_per_s\": " << std::lround(warm.rate())
        << ", \"segmenter_rss_mb_100k_due\": " << rss_small_mb
        << ", \"segmenter_rss_mb_1m_due\": " << rss_big_mb
        << ", \"segmenter_hwm_mb_100k_due\": " << hwm_small_mb
        << ", \"segmenter_hwm_mb_1m_due\": " << hwm_big_mb << ", \"exit_late_p50_ms\": " << late_p50
        << ", \"exit_late_p99_ms\": " << late_p99 << ", \"exit_late_max_ms\": " << late_max
        << ", \"fire_late_p50_ms\": " << fire_p50 << ", \"fire_late_p99_ms\": " << fire_p99
        << ", \"due_rows\": " << due_rows << ", \"rss_small_due_rows\": " << small_rows
        << ", \"users\": " << users << ", \"due_users_at_edge\": " << due_at_edge
        << ", \"due_results\": " << due_results << ", \"late_users\": " << late_users
        << ", \"late_exits_measured\": " << lateness_ms.size()
        << ", \"late_load_notices_per_s\": " << std::lround(load_rate)
        << ", \"events_per_user\": " << events_per_user << ", \"partitions\": " << partitions
        << "}, \"ratios\": {"
        << "\"due_over_notice\": " << due_ratio << ", \"backfill_over_notice\": " << backfill_ratio
        << ", \"rss_1m_over_100k\": " << rss_ratio
        << ", \"due_over_notice_per_cpu_s\": " << due_cpu_ratio
        << ", \"backfill_over_notice_per_cpu_s\": " << backfill_cpu_ratio
        << "}, \"notes\": \"Targets: due firing >= 0.8x the notice rate: " << met(due_ratio >= 0.8)
        << "; backfill >= 0.5x: " << met(backfill_ratio >= 0.5)
        << "; segmenter RSS within 20% between " << small_rows << " and " << due_rows
        << " due rows: " << met(rss_ratio > 0 && rss_ratio <= 1.2 && rss_ratio >= 1 / 1.2)
        << "; exit_late_p99_ms <= 5000: " << met(late_p99 >= 0 && late_p99 <= 5000)
        << ". One process: librdkafka mock cluster, seg-store's Thrift2 server (StoreServer, "
           "Thrift2 client), local redis-server, shipped scripts, node defaults on the real "
           "clock. "
        << users << " users x " << events_per_user << " events; " << due_rows
        << " synthetic due rows a year out stay in the table. Rates: medians of " << rounds
        << " rounds (" << round_text.str() << "), ratios: medians of each round's ratio; "
        << "notices queued and "
           "settled past the read delay before the clock starts; due = every user's "
           "car-service window ends at one instant, clock from that instant. RSS: "
           "seg-segmenter process VmRSS after firing "
        << rss_users << " due users. Lateness: " << late_users << " window ends over "
        << late_window_s << " s under write notices at " << load_fraction
        << "x the notice rate; SCHEDULE result Kafka timestamp minus stored due time (fire_late_*: "
           "node histogram, fire minus due).\", \"breakdown\": {\"notice\": \""
        << notice.Breakdown() << "\", \"backfill\": \"" << backfill.Breakdown()
        << "\", \"edge_prep\": \"" << prep.Breakdown() << "\", \"due\": \"" << due.Breakdown()
        << "\"}}\n";
  }
  return 0;
}

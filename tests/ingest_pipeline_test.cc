// Integration tests of seg-ingest end to end: librdkafka's mock cluster (real
// Kafka protocol) + the real store served over Thrift2 (in-process
// StoreServer, or the seg-store binary where it must die), the ingest loop
// run in-process through its library API for determinism.
//
// Every wait polls a condition with a deadline; nothing sleeps to
// synchronise.
#include <glog/logging.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/event_codec.h"
#include "common/kafka.h"
#include "common/metrics.h"
#include "coprocessor-bridge/bridge.h"
#include "coprocessor-bridge/store_observer_adapter.h"
#include "ingest/ingest.h"
#include "proto/events.pb.h"
#include "proto/segmentation.pb.h"
#include "store/store.h"
#include "store/store_server.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/process.h"

namespace seg::ingest {
namespace {

using namespace std::chrono_literals;
using seg::testing::ChildProcess;
using seg::testing::MockKafkaCluster;
using seg::testing::TempDir;
using Clk = std::chrono::steady_clock;

constexpr int kEventPartitions = 8;

// Records every commit the store reports: per row, (commit time, newest ts).
class RecordingObserver : public store::WriteObserver {
 public:
  void OnCommitted(const std::vector<store::RowChange>& changes) override {
    int64_t now = Clock::Real()->NowMs();
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& c : changes) commits_[c.row].push_back({now, c.newest_timestamp});
  }
  // True when a commit of `row` covering `newest` happened at or before `acked_at`.
  bool CommittedBy(const std::string& row, int64_t newest, int64_t acked_at) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = commits_.find(row);
    if (it == commits_.end()) return false;
    for (const auto& [t, n] : it->second) {
      if (t <= acked_at && n >= newest) return true;
    }
    return false;
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::pair<int64_t, int64_t>>> commits_;
};

std::string Qualifier(const Event& e) {
  std::string q;
  EncodeEventQualifier(e.event_time_ms(), EventDigest(e), e.type(), &q);
  return q;
}

// Where each produced event landed, by tag.
struct Produced {
  std::vector<std::pair<int32_t, int64_t>> position;  // tag -> (partition, offset)
};

class IngestPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = MockKafkaCluster::Start(3);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(cluster).value();
    ASSERT_TRUE(cluster_->CreateTopic("events", kEventPartitions, 3).ok());
    ASSERT_TRUE(cluster_->CreateTopic("events-deadletter", 2, 3).ok());
    ASSERT_TRUE(cluster_->CreateTopic("user-changes", 8, 3).ok());
  }

  void StartInProcessStore(std::vector<std::shared_ptr<store::WriteObserver>> observers = {}) {
    store::StoreServerOptions options;
    options.port = 0;
    options.store.data_dir = data_dir_.path() + "/store";
    auto server = store::StoreServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    server_->AddObserver(observer_);
    for (auto& o : observers) server_->AddObserver(o);
    ASSERT_TRUE(server_->Start().ok());
    OpenClient(server_->port());
  }

  void OpenClient(int port) {
    store::StoreOptions options;
    options.backend = store::StoreOptions::Backend::kThrift;
    options.thrift.port = port;
    options.thrift.call_timeout_ms = 5000;
    options.thrift.connect_timeout_ms = 500;
    options.thrift.max_attempts = 1;  // ingest retries on its own
    auto client = store::OpenStore(options);
    ASSERT_TRUE(client.ok()) << client.status();
    store_ = std::move(client).value();
  }

  IngestOptions Options() {
    IngestOptions o;
    o.kafka = cluster_->ClientOptions("ingest");
    // The mock rebalances only after about a session timeout: keep it short
    // so a second ingester of the group gets the partitions quickly.
    o.kafka.properties["session.timeout.ms"] = "6000";
    o.kafka.properties["heartbeat.interval.ms"] = "500";
    o.batch_max_events = 5000;
    o.batch_max_ms = 50;
    o.store_backoff = {20, 300};
    o.kafka_backoff = {20, 300};
    o.sync_commit = true;
    return o;
  }

  std::unique_ptr<Ingester> MakeIngester(const IngestOptions& options) {
    auto ingester = Ingester::Create(options, store_.get());
    EXPECT_TRUE(ingester.ok()) << ingester.status();
    return ingester.ok() ? std::move(ingester).value() : nullptr;
  }

  // Produces raw values keyed by `keys`; records each one's partition/offset.
  Produced ProduceRaw(const std::vector<std::string>& keys, const std::vector<std::string>& values,
                      std::chrono::milliseconds timeout = 60s) {
    auto producer = kafka::Producer::Create(cluster_->ClientOptions("test-producer"));
    EXPECT_TRUE(producer.ok()) << producer.status();
    Produced out;
    out.position.assign(values.size(), {-1, -1});
    size_t acked = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      Status s = (*producer)->Produce("events", keys[i], values[i], {}, i);
      EXPECT_TRUE(s.ok()) << s;
      if (i % 1000 == 999) {
        for (auto& r : (*producer)->PollDeliveries()) {
          EXPECT_TRUE(r.status.ok()) << r.status;
          out.position[r.tag] = {r.partition, r.offset};
          ++acked;
        }
      }
    }
    auto deadline = Clk::now() + timeout;
    while (acked < values.size() && Clk::now() < deadline) {
      for (auto& r : (*producer)->PollDeliveries(50ms)) {
        EXPECT_TRUE(r.status.ok()) << r.status;
        out.position[r.tag] = {r.partition, r.offset};
        ++acked;
      }
    }
    EXPECT_EQ(acked, values.size());
    return out;
  }

  Produced ProduceEvents(const std::vector<Event>& events) {
    std::vector<std::string> keys, values;
    for (const Event& e : events) {
      keys.push_back(e.user_id());
      values.push_back(e.SerializeAsString());
    }
    return ProduceRaw(keys, values);
  }

  // Options for the test's own readers. The mock cluster waits up to a
  // session timeout for a member whose JoinGroup timed out under load, so
  // keep it short; roundrobin because librdkafka 2.0's cooperative-sticky
  // assignor asserts when a consumer is destroyed before its first
  // assignment (librdkafka#4312, fixed in 2.3.0).
  kafka::KafkaOptions ReaderOptions(const std::string& client_id) {
    kafka::KafkaOptions options = cluster_->ClientOptions(client_id);
    options.properties["session.timeout.ms"] = "6000";
    options.properties["heartbeat.interval.ms"] = "500";
    options.properties["partition.assignment.strategy"] = "roundrobin";
    if (getenv("SEG_TEST_KAFKA_DEBUG"))
      options.properties["debug"] = getenv("SEG_TEST_KAFKA_DEBUG");
    return options;
  }

  // Polls `cond` until true or the deadline; returns its last value.
  static bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
    auto deadline = Clk::now() + timeout;
    while (!cond() && Clk::now() < deadline) std::this_thread::sleep_for(1ms);
    return cond();
  }

  // Runs RunOnce until `done()` or the deadline.
  void RunUntil(Ingester& ingester, const std::function<bool()>& done,
                std::chrono::milliseconds timeout) {
    auto deadline = Clk::now() + timeout;
    while (!done() && Clk::now() < deadline) {
      auto n = ingester.RunOnce();
      ASSERT_TRUE(n.ok()) << n.status();
    }
    ASSERT_TRUE(done()) << "timed out";
  }

  // Reads `topic` with a fresh group until `want` messages or the deadline.
  template <typename Fn>
  size_t ReadTopic(const std::string& topic, size_t want, std::chrono::milliseconds timeout,
                   Fn on_message, const std::function<bool()>& done = nullptr) {
    auto consumer = kafka::Consumer::Create(ReaderOptions("reader"),
                                            "reader-" + topic + "-" + std::to_string(++readers_));
    EXPECT_TRUE(consumer.ok()) << consumer.status();
    EXPECT_TRUE((*consumer)->Subscribe({topic}).ok());
    size_t n = 0;
    auto deadline = Clk::now() + timeout;
    while (n < want && !(done && done()) && Clk::now() < deadline) {
      auto batch = (*consumer)->PollBatch(5000, 100ms);
      EXPECT_TRUE(batch.ok()) << batch.status();
      if (!batch.ok()) break;
      for (const kafka::Message& m : *batch) {
        on_message(m);
        ++n;
      }
    }
    return n;
  }

  // Committed offsets of the ingest group on `events`.
  std::map<int32_t, int64_t> CommittedOffsets() {
    auto consumer = kafka::Consumer::Create(ReaderOptions("probe"), "seg-ingest");
    EXPECT_TRUE(consumer.ok());
    std::vector<kafka::TopicPartition> parts;
    for (int p = 0; p < kEventPartitions; ++p) parts.push_back({"events", p});
    auto committed = (*consumer)->Committed(parts, 10s);
    EXPECT_TRUE(committed.ok()) << committed.status();
    std::map<int32_t, int64_t> out;
    if (committed.ok()) {
      for (const auto& [tp, off] : *committed) out[tp.partition] = off;
    }
    return out;
  }

  // Qualifiers stored in family e of each user's row.
  std::map<std::string, std::set<std::string>> ReadRows(const std::set<std::string>& users) {
    std::map<std::string, std::set<std::string>> out;
    std::vector<std::string> list(users.begin(), users.end());
    for (size_t i = 0; i < list.size(); i += 500) {
      std::vector<store::GetRequest> gets;
      for (size_t j = i; j < std::min(list.size(), i + 500); ++j) {
        store::GetRequest g;
        g.row = list[j];
        g.families = {"e"};
        gets.push_back(g);
      }
      std::vector<store::RowResult> rows;
      Status s = store_->MultiGet("users", gets, &rows);
      EXPECT_TRUE(s.ok()) << s;
      for (size_t k = 0; k < rows.size(); ++k) {
        auto& set = out[gets[k].row];
        for (store::CellView c : rows[k]) set.insert(std::string(c.qualifier));
      }
    }
    return out;
  }

  // Events for `users` users, `distinct` distinct events within the last
  // `days`, shuffled (out of order), then `dups` re-sends of random ones.
  static std::vector<Event> MakeEvents(int users, int distinct, int dups, uint64_t seed,
                                       const std::string& prefix = "user-") {
    std::mt19937_64 rng(seed);
    int64_t now = Clock::Real()->NowMs();
    std::vector<Event> events;
    events.reserve(distinct + dups);
    for (int i = 0; i < distinct; ++i) {
      Event e;
      e.set_user_id(prefix + std::to_string(i % users));
      e.set_event_time_ms(now - static_cast<int64_t>(rng() % (7ull * 24 * 3600 * 1000)));
      e.set_type(static_cast<EventType>(1 + rng() % 7));
      e.set_url("https://example.com/p/" + std::to_string(rng() % 1000));
      e.set_ip("10.0." + std::to_string(rng() % 256) + "." + std::to_string(rng() % 256));
      e.set_event_id(prefix + "ev-" + std::to_string(i));
      (*e.mutable_attributes())["k"] = std::to_string(i);
      events.push_back(std::move(e));
    }
    std::shuffle(events.begin(), events.end(), rng);
    for (int i = 0; i < dups; ++i) events.push_back(events[rng() % distinct]);
    std::shuffle(events.begin(), events.end(), rng);
    return events;
  }

  static std::map<std::string, std::set<std::string>> Expected(const std::vector<Event>& events) {
    std::map<std::string, std::set<std::string>> out;
    for (const Event& e : events) out[e.user_id()].insert(Qualifier(e));
    return out;
  }

  static std::set<std::string> Users(const std::map<std::string, std::set<std::string>>& m) {
    std::set<std::string> out;
    for (const auto& [u, _] : m) out.insert(u);
    return out;
  }

  TempDir data_dir_;
  std::unique_ptr<MockKafkaCluster> cluster_;
  std::shared_ptr<RecordingObserver> observer_ = std::make_shared<RecordingObserver>();
  std::unique_ptr<store::StoreServer> server_;
  std::unique_ptr<store::Store> store_;
  int readers_ = 0;
};

// ---------------------------------------------------------------------------

TEST_F(IngestPipelineTest, IngestsDistinctEventsIdempotentlyAndNotifiesAfterAck) {
  StartInProcessStore();
  // 100k events for 5k users: 90k distinct + 10% re-deliveries, out of order.
  std::vector<Event> events = MakeEvents(5000, 90'000, 10'000, 42);
  auto expected = Expected(events);
  ProduceEvents(events);

  // Notices are checked while ingest runs: each one must already be
  // readable, and its acked_at must not precede the store's commit.
  std::atomic<bool> stop_reader{false};
  std::atomic<int64_t> notices{0}, early{0}, unreadable{0}, read_checks{0};
  std::set<std::string> notified;
  std::mutex notified_mu;
  std::thread reader([&] {
    store::StoreOptions so;
    so.backend = store::StoreOptions::Backend::kThrift;
    so.thrift.port = server_->port();
    auto client = store::OpenStore(so);
    ASSERT_TRUE(client.ok());
    auto consumer = kafka::Consumer::Create(ReaderOptions("notice-reader"), "nr");
    ASSERT_TRUE(consumer.ok());
    ASSERT_TRUE((*consumer)->Subscribe({"user-changes"}).ok());
    auto deadline = Clk::now() + 120s;
    while (!stop_reader && Clk::now() < deadline) {
      auto batch = (*consumer)->PollBatch(2000, 50ms);
      ASSERT_TRUE(batch.ok());
      for (const kafka::Message& m : *batch) {
        ChangeNotice n;
        ASSERT_TRUE(n.ParseFromArray(m.value().data(), int(m.value().size())));
        EXPECT_EQ(m.key(), n.user_id());
        ++notices;
        if (!observer_->CommittedBy(n.user_id(), n.newest_event_time_ms(), n.acked_at_ms())) {
          ++early;
        }
        // Read-after-notice on a sample: the newest cell is already there.
        if (notices % 10 == 0) {
          store::GetRequest g;
          g.row = n.user_id();
          g.families = {"e"};
          EncodeEventQualifier(n.newest_event_time_ms(), 0, 0, &g.qualifier_start);
          EncodeEventQualifier(n.newest_event_time_ms() + 1, 0, 0, &g.qualifier_stop);
          auto row = (*client)->Get("users", g);
          ASSERT_TRUE(row.ok()) << row.status();
          ++read_checks;
          if (row->empty()) ++unreadable;
        }
        std::lock_guard<std::mutex> lock(notified_mu);
        notified.insert(n.user_id());
      }
    }
  });

  auto start = Clk::now();
  auto ingester = MakeIngester(Options());
  ASSERT_NE(ingester, nullptr);
  RunUntil(
      *ingester, [&] { return ingester->stats().events_in >= 100'000; }, 90s);
  double secs = std::chrono::duration<double>(Clk::now() - start).count();
  ASSERT_TRUE(ingester->Close().ok());  // finishes the batch in flight
  IngestStats stats = ingester->stats();
  EXPECT_EQ(stats.events_in, 100'000);
  EXPECT_EQ(stats.dead_lettered, 0);
  // Duplicates inside a batch collapse; across batches they rewrite a cell.
  EXPECT_GE(stats.events_written, 90'000);
  EXPECT_LE(stats.events_written, 100'000);
  LOG(INFO) << "ingested 100k events in " << secs << " s, " << stats.batches << " batches";

  // Each row holds exactly the distinct events.
  auto rows = ReadRows(Users(expected));
  ASSERT_EQ(rows.size(), 5000u);
  size_t mismatched = 0;
  for (const auto& [user, qualifiers] : expected) {
    if (rows[user] != qualifiers) ++mismatched;
  }
  EXPECT_EQ(mismatched, 0u);

  // Every user got a notice (wait for the reader to see them all).
  auto deadline = Clk::now() + 30s;
  while (Clk::now() < deadline) {
    std::lock_guard<std::mutex> lock(notified_mu);
    if (notified.size() >= 5000 && notices.load() >= stats.notices) break;
  }
  stop_reader = true;
  reader.join();
  EXPECT_EQ(notified.size(), 5000u);
  EXPECT_EQ(early.load(), 0);
  EXPECT_GT(read_checks.load(), 100);
  EXPECT_EQ(unreadable.load(), 0);
  EXPECT_EQ(stats.notices, notices.load());

  // All input committed.
  int64_t committed = 0;
  for (const auto& [p, off] : CommittedOffsets()) committed += std::max<int64_t>(off, 0);
  EXPECT_EQ(committed, 100'000);
}

TEST_F(IngestPipelineTest, EachBadInputKindIsDeadLetteredWhileTheBatchLands) {
  StartInProcessStore();
  int64_t now = Clock::Real()->NowMs();
  auto good = [&](const std::string& user) {
    Event e;
    e.set_user_id(user);
    e.set_event_time_ms(now - 60'000);
    e.set_type(PAGE_VIEW);
    e.set_url("https://example.com/" + user);
    e.set_ip("192.168.1.1");
    return e;
  };
  std::vector<std::string> keys, values;
  std::multiset<std::string> expected_reasons;
  auto bad = [&](std::string_view reason, const std::string& value) {
    keys.push_back("bad");
    values.push_back(value);
    expected_reasons.insert(std::string(reason));
  };
  Event e = good("");
  bad(reason::kMissingUserId, e.SerializeAsString());
  e = good(std::string(300, 'u'));
  bad(reason::kUserIdTooLong, e.SerializeAsString());
  e = good("tab\tuser");
  bad(reason::kUserIdControlChars, e.SerializeAsString());
  e = good("future");
  e.set_event_time_ms(now + 3600'000);
  bad(reason::kTimeInFuture, e.SerializeAsString());
  e = good("ancient");
  e.set_event_time_ms(now - 90ll * 24 * 3600 * 1000);
  bad(reason::kTimeTooOld, e.SerializeAsString());
  e = good("typeless");
  e.set_type(EVENT_TYPE_UNSPECIFIED);
  bad(reason::kUnknownType, e.SerializeAsString());
  bad(reason::kUndecodable, std::string("\xff\xfe\xfd not an event", 18));
  bad(reason::kUndecodable, "{\"userId\": broken json");
  e = good("huge");
  e.set_url(std::string(70 * 1024, 'x'));
  bad(reason::kOversized, e.SerializeAsString());
  e = good("badip");
  e.set_ip("999.1.2.3");
  bad(reason::kBadIp, e.SerializeAsString());
  // Good events of the same batch, one of them as JSON.
  std::set<std::string> good_users;
  for (int i = 0; i < 50; ++i) {
    Event g = good("good-" + std::to_string(i));
    keys.push_back(g.user_id());
    values.push_back(g.SerializeAsString());
    good_users.insert(g.user_id());
  }
  keys.push_back("json-user");
  values.push_back(R"({"userId":"json-user","eventTimeMs":")" + std::to_string(now) +
                   R"(","type":"SEARCH","searchQuery":"mortgage"})");
  good_users.insert("json-user");
  ProduceRaw(keys, values);

  auto ingester = MakeIngester(Options());
  ASSERT_NE(ingester, nullptr);
  size_t total = values.size();
  RunUntil(
      *ingester, [&] { return ingester->stats().events_in >= int64_t(total); }, 60s);
  ASSERT_TRUE(ingester->Close().ok());  // finishes the batch in flight
  EXPECT_EQ(ingester->stats().dead_lettered, int64_t(expected_reasons.size()));
  EXPECT_EQ(ingester->stats().events_written, int64_t(good_users.size()));

  std::multiset<std::string> reasons;
  std::set<std::string> originals(values.begin(), values.end());
  size_t n =
      ReadTopic("events-deadletter", expected_reasons.size(), 30s, [&](const kafka::Message& m) {
        DeadLetter letter;
        ASSERT_TRUE(letter.ParseFromArray(m.value().data(), int(m.value().size())));
        reasons.insert(letter.reason());
        EXPECT_EQ(m.header("reason"), std::optional<std::string_view>(letter.reason()));
        EXPECT_TRUE(originals.count(letter.original())) << letter.reason();
        EXPECT_EQ(letter.topic(), "events");
        EXPECT_GE(letter.offset(), 0);
        EXPECT_FALSE(letter.detail().empty());
      });
  EXPECT_EQ(n, expected_reasons.size());
  EXPECT_EQ(reasons, expected_reasons);

  auto rows = ReadRows(good_users);
  for (const auto& u : good_users) EXPECT_EQ(rows[u].size(), 1u) << u;
  for (auto r : {reason::kBadIp, reason::kOversized, reason::kUndecodable}) {
    double c = metrics::GetCounter("seg_ingest_deadletters_total", "", {{"reason", std::string(r)}})
                   .Value();
    EXPECT_GE(c, 1) << r;
  }
}

TEST_F(IngestPipelineTest, StoreKilledAndRestartedLosesNothingAndCommitsNothingUnwritten) {
  int port = seg::testing::PickFreePort();
  std::string bin = seg::testing::BinaryDir() + "/store/seg-store";
  std::string dir = data_dir_.path() + "/store";
  auto start_store = [&]() {
    auto child = ChildProcess::Start({bin, "--data-dir", dir, "--port", std::to_string(port)},
                                     data_dir_.path() + "/store.log");
    EXPECT_TRUE(child.ok()) << child.status();
    EXPECT_TRUE(seg::testing::WaitForTcpPort(port, 20s).ok());
    return std::move(child).value();
  };
  ChildProcess store_process = start_store();
  OpenClient(port);

  std::vector<Event> events = MakeEvents(500, 30'000, 0, 7);
  Produced produced = ProduceEvents(events);

  auto ingester = MakeIngester(Options());
  ASSERT_NE(ingester, nullptr);
  std::stop_source stop;
  std::thread runner([&] {
    Status s = ingester->Run(stop.get_token());
    EXPECT_TRUE(s.ok()) << s;
  });
  ASSERT_TRUE(WaitFor([&] { return ingester->stats().events_written >= 5000; }, 60s));
  store_process.Signal(SIGKILL);
  ASSERT_TRUE(store_process.Wait(10s).ok());
  // Ingest keeps retrying with backoff and does not move on.
  ASSERT_TRUE(WaitFor([&] { return ingester->stats().store_retries >= 3; }, 30s));
  int64_t written_at_stop = ingester->stats().events_written;
  stop.request_stop();
  runner.join();
  EXPECT_LT(written_at_stop, 30'000);
  std::map<int32_t, int64_t> committed = CommittedOffsets();

  // Back up: everything below the committed offsets is in the store.
  store_process = start_store();
  std::map<std::pair<int32_t, int64_t>, size_t> at;
  for (size_t i = 0; i < events.size(); ++i) at[produced.position[i]] = i;
  std::vector<Event> below;
  int64_t committed_total = 0;
  for (const auto& [p, off] : committed) committed_total += std::max<int64_t>(off, 0);
  for (const auto& [pos, i] : at) {
    auto it = committed.find(pos.first);
    if (it != committed.end() && pos.second < it->second) below.push_back(events[i]);
  }
  EXPECT_EQ(int64_t(below.size()), committed_total);
  EXPECT_GT(committed_total, 0);
  EXPECT_LT(committed_total, 30'000);
  auto want = Expected(below);
  auto rows = ReadRows(Users(want));
  for (const auto& [user, qualifiers] : want) {
    for (const auto& q : qualifiers) ASSERT_TRUE(rows[user].count(q)) << user;
  }

  // A new ingester picks up from the committed offsets and finishes.
  auto second = MakeIngester(Options());
  ASSERT_NE(second, nullptr);
  RunUntil(
      *second, [&] { return second->stats().events_in >= 30'000 - committed_total; }, 60s);
  auto all = Expected(events);
  rows = ReadRows(Users(all));
  size_t mismatched = 0;
  for (const auto& [user, qualifiers] : all) mismatched += rows[user] != qualifiers;
  EXPECT_EQ(mismatched, 0u);
  ASSERT_TRUE(second->Close().ok());
  store_process.Stop();
}

TEST_F(IngestPipelineTest, BrokerOutageLosesNothing) {
  StartInProcessStore();
  std::vector<Event> events = MakeEvents(300, 20'000, 2'000, 99);
  ProduceEvents(events);
  auto ingester = MakeIngester(Options());
  ASSERT_NE(ingester, nullptr);
  std::set<std::string> notified;
  std::thread reader([&] {
    ReadTopic(
        "user-changes", SIZE_MAX, 90s,
        [&](const kafka::Message& m) { notified.insert(std::string(m.key())); },
        [&] { return notified.size() >= 300; });
  });

  // Ingest a little, take broker 2 down (it leads some partitions of every
  // topic and maybe the group coordinator), keep ingesting through the
  // outage, bring it back.
  std::stop_source stop;
  std::thread runner([&] {
    Status s = ingester->Run(stop.get_token());
    EXPECT_TRUE(s.ok()) << s;
  });
  ASSERT_TRUE(WaitFor([&] { return ingester->stats().events_in >= 2000; }, 60s));
  ASSERT_TRUE(cluster_->BrokerDown(2).ok());
  int64_t in_at_down = ingester->stats().events_in;
  // The fault window: 3 s of outage (a duration, not a synchronisation).
  WaitFor([&] { return false; }, 3s);
  LOG(INFO) << "during the outage: " << ingester->stats().events_in - in_at_down << " events in";
  ASSERT_TRUE(cluster_->BrokerUp(2).ok());
  ASSERT_TRUE(WaitFor([&] { return ingester->stats().events_in >= 22'000; }, 90s));
  stop.request_stop();
  runner.join();

  auto all = Expected(events);
  auto rows = ReadRows(Users(all));
  size_t mismatched = 0;
  for (const auto& [user, qualifiers] : all) mismatched += rows[user] != qualifiers;
  EXPECT_EQ(mismatched, 0u);
  int64_t committed = 0;
  for (const auto& [p, off] : CommittedOffsets()) committed += std::max<int64_t>(off, 0);
  EXPECT_EQ(committed, 22'000);
  reader.join();
  EXPECT_EQ(notified.size(), 300u);
}

TEST_F(IngestPipelineTest, StoreSideModeNotifiesForADirectWrite) {
  auto observer = bridge::MakeKafkaNotifyObserver(cluster_->bootstrap_servers());
  ASSERT_TRUE(observer.ok()) << observer.status();
  StartInProcessStore({*observer});

  int64_t before = Clock::Real()->NowMs();
  Event e;
  e.set_user_id("direct-writer");
  e.set_event_time_ms(before - 5000);
  e.set_type(CLICK);
  store::RowPut put;
  put.row = e.user_id();
  store::Cell cell;
  ASSERT_TRUE(EncodeEventCell(e, "e", &cell).ok());
  put.cells.push_back(cell);
  ASSERT_TRUE(store_->Put("users", {put}).ok());

  ChangeNotice notice;
  size_t n = ReadTopic("user-changes", 1, 30s, [&](const kafka::Message& m) {
    ASSERT_TRUE(notice.ParseFromArray(m.value().data(), int(m.value().size())));
    EXPECT_EQ(m.key(), "direct-writer");
  });
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(notice.user_id(), "direct-writer");
  EXPECT_EQ(notice.newest_event_time_ms(), e.event_time_ms());
  EXPECT_EQ(notice.event_count(), 1u);
  EXPECT_GE(notice.acked_at_ms(), before);
  EXPECT_TRUE(observer_->CommittedBy("direct-writer", e.event_time_ms(), notice.acked_at_ms()));
}

}  // namespace
}  // namespace seg::ingest

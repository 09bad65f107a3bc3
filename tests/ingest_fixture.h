// The ingest integration-test fixture: librdkafka mock cluster (events,
// events-deadletter, user-changes), the store over Thrift2 (in-process
// StoreServer or a seg-store binary), producers, readers and row checks.
// Shared by ingest_pipeline_test.cc and ingest_process_test.cc.
#pragma once

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
#include "coprocessor-bridge/store_observer/store_observer_adapter.h"
#include "ingest/ingest.h"
#include "proto/events.pb.h"
#include "proto/segmentation.pb.h"
#include "store/server/store_server.h"
#include "store/store.h"
#include "tests/harness/consume.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"

namespace seg::ingest {

using namespace std::chrono_literals;

using seg::testing::ChildProcess;
using seg::testing::MockKafkaCluster;
using seg::testing::TempDir;
using Clk = std::chrono::steady_clock;

inline constexpr int kEventPartitions = 8;

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

inline std::string Qualifier(const Event& e) {
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
    SEG_ASSERT_OK(cluster);
    cluster_ = std::move(cluster).value();
    SEG_ASSERT_OK(cluster_->CreateTopic("events", kEventPartitions, 3));
    SEG_ASSERT_OK(cluster_->CreateTopic("events-deadletter", 2, 3));
    SEG_ASSERT_OK(cluster_->CreateTopic("user-changes", 8, 3));
  }

  void StartInProcessStore(std::vector<std::shared_ptr<store::WriteObserver>> observers = {}) {
    store::StoreServerOptions options;
    options.port = 0;
    options.store.data_dir = data_dir_.path() + "/store";
    auto server = store::StoreServer::Create(options);
    SEG_ASSERT_OK(server);
    server_ = std::move(server).value();
    server_->AddObserver(observer_);
    for (auto& o : observers) server_->AddObserver(o);
    SEG_ASSERT_OK(server_->Start());
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
    SEG_ASSERT_OK(client);
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
    SEG_EXPECT_OK(ingester);
    return ingester.ok() ? std::move(ingester).value() : nullptr;
  }

  // Produces raw values keyed by `keys`; records each one's partition/offset.
  Produced ProduceRaw(const std::vector<std::string>& keys, const std::vector<std::string>& values,
                      std::chrono::milliseconds timeout = 60s) {
    auto producer = kafka::Producer::Create(cluster_->ClientOptions("test-producer"));
    SEG_EXPECT_OK(producer);
    Produced out;
    out.position.assign(values.size(), {-1, -1});
    size_t acked = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      Status s = (*producer)->Produce("events", keys[i], values[i], {}, i);
      SEG_EXPECT_OK(s);
      if (i % 1000 == 999) {
        for (auto& r : (*producer)->PollDeliveries()) {
          SEG_EXPECT_OK(r.status);
          out.position[r.tag] = {r.partition, r.offset};
          ++acked;
        }
      }
    }
    EXPECT_TRUE(seg::testing::PollUntil(
        [&] {
          if (acked >= values.size()) return true;
          for (auto& r : (*producer)->PollDeliveries(50ms)) {
            SEG_EXPECT_OK(r.status);
            out.position[r.tag] = {r.partition, r.offset};
            ++acked;
          }
          return acked >= values.size();
        },
        timeout, std::to_string(values.size()) + " delivery reports", 0ms));
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

  // Runs RunOnce until `done()` or the deadline.
  void RunUntil(Ingester& ingester, const std::function<bool()>& done,
                std::chrono::milliseconds timeout) {
    bool finished = false;
    ASSERT_TRUE(seg::testing::PollUntil(
        [&] {
          if ((finished = done())) return true;
          auto n = ingester.RunOnce();
          SEG_EXPECT_OK(n);
          return !n.ok();  // stops at the first error, reported above
        },
        timeout, "the ingester's progress", 0ms));
    ASSERT_TRUE(finished) << "RunOnce failed";
  }

  // Reads `topic` with a fresh group until `want` messages (or `done()`);
  // fails when the deadline comes first. Returns how many were read.
  template <typename Fn>
  size_t ReadTopic(const std::string& topic, size_t want, std::chrono::milliseconds timeout,
                   Fn on_message, const std::function<bool()>& done = nullptr) {
    auto consumer = kafka::Consumer::Create(ReaderOptions("reader"),
                                            "reader-" + topic + "-" + std::to_string(++readers_));
    SEG_EXPECT_OK(consumer);
    if (!consumer.ok()) return 0;
    SEG_EXPECT_OK((*consumer)->Subscribe({topic}));
    size_t n = 0;
    EXPECT_TRUE(seg::testing::ConsumeUntil(
        **consumer, [&] { return n >= want || (done && done()); }, timeout,
        done ? "the awaited messages on " + topic : std::to_string(want) + " messages on " + topic,
        [&](const kafka::Message& m) {
          on_message(m);
          ++n;
        },
        {.max_messages = 5000, .wait = 100ms}));
    return n;
  }

  // Committed offsets of the ingest group on `events`.
  std::map<int32_t, int64_t> CommittedOffsets() {
    auto consumer = kafka::Consumer::Create(ReaderOptions("probe"), "seg-ingest");
    SEG_EXPECT_OK(consumer);
    std::vector<kafka::TopicPartition> parts;
    for (int p = 0; p < kEventPartitions; ++p) parts.push_back({"events", p});
    auto committed = (*consumer)->Committed(parts, 10s);
    SEG_EXPECT_OK(committed);
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
      SEG_EXPECT_OK(s);
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

}  // namespace seg::ingest

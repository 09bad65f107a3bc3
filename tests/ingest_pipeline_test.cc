// Integration tests of seg-ingest end to end: librdkafka's mock cluster (real
// Kafka protocol) + the real store served over Thrift2 (in-process
// StoreServer, or the seg-store binary where it must die), the ingest loop
// run in-process through its library API for determinism.
//
// Every wait polls a condition with a deadline; nothing sleeps to
// synchronise.
#include "common/ingest_watermark.h"
#include "tests/harness/status_matchers.h"
#include "tests/ingest_fixture.h"

namespace seg::ingest {
namespace {

using namespace std::chrono_literals;
using seg::testing::ChildProcess;

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
    SEG_ASSERT_OK(client);
    auto consumer = kafka::Consumer::Create(ReaderOptions("notice-reader"), "nr");
    SEG_ASSERT_OK(consumer);
    SEG_ASSERT_OK((*consumer)->Subscribe({"user-changes"}));
    auto deadline = Clk::now() + 120s;
    while (!stop_reader && Clk::now() < deadline) {
      auto batch = (*consumer)->PollBatch(2000, 50ms);
      SEG_ASSERT_OK(batch);
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
          SEG_ASSERT_OK(row);
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
  SEG_ASSERT_OK(ingester->Close());  // finishes the batch in flight
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
  EXPECT_TRUE(seg::testing::PollUntil(
      [&] {
        std::lock_guard<std::mutex> lock(notified_mu);
        return notified.size() >= 5000 && notices.load() >= stats.notices;
      },
      30s, "the reader to see every notice"));
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

// A scrape sees every dead-letter reason from the start, at 0: an alert on
// rate(seg_ingest_deadletters_total{reason="bad_ip"}) has a series to read,
// and metrics_scrape_test does not depend on a dead letter having happened.
TEST_F(IngestPipelineTest, EveryDeadLetterReasonIsServedBeforeTheFirstDeadLetter) {
  StartInProcessStore();
  auto ingester = Ingester::Create(Options(), store_.get());
  SEG_ASSERT_OK(ingester);
  const std::string text = metrics::RenderText();
  for (std::string_view r : reason::kAll) {
    EXPECT_NE(text.find("seg_ingest_deadletters_total{reason=\"" + std::string(r) + "\"}"),
              std::string::npos)
        << r;
  }
  SEG_ASSERT_OK((*ingester)->Close());
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
  // Neither protobuf (its first tag has wire type 7) nor JSON. Sized by the
  // compiler: a hand-counted 18 read past the 17-byte literal (ASan).
  static constexpr char kNotAnEvent[] = "\xff\xfe\xfd not an event";
  bad(reason::kUndecodable, std::string(kNotAnEvent, sizeof(kNotAnEvent) - 1));
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
  SEG_ASSERT_OK(ingester->Close());  // finishes the batch in flight
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
    SEG_EXPECT_OK(child);
    SEG_EXPECT_OK(seg::testing::WaitForTcpPort(port, 20s));
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
    SEG_EXPECT_OK(s);
  });
  ASSERT_TRUE(seg::testing::PollUntil([&] { return ingester->stats().events_written >= 5000; }, 60s,
                                      "ingester->stats().events_written >= 5000"));
  store_process.Signal(SIGKILL);
  SEG_ASSERT_OK(store_process.Wait(10s));
  // Ingest keeps retrying with backoff and does not move on.
  ASSERT_TRUE(seg::testing::PollUntil([&] { return ingester->stats().store_retries >= 3; }, 30s,
                                      "ingester->stats().store_retries >= 3"));
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
  SEG_ASSERT_OK(second->Close());
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
    SEG_EXPECT_OK(s);
  });
  ASSERT_TRUE(seg::testing::PollUntil([&] { return ingester->stats().events_in >= 2000; }, 60s,
                                      "ingester->stats().events_in >= 2000"));
  SEG_ASSERT_OK(cluster_->BrokerDown(2));
  int64_t in_at_down = ingester->stats().events_in;
  // The fault window: 3 s of outage (a duration, not a synchronisation).
  std::this_thread::sleep_for(3s);
  LOG(INFO) << "during the outage: " << ingester->stats().events_in - in_at_down << " events in";
  SEG_ASSERT_OK(cluster_->BrokerUp(2));
  ASSERT_TRUE(seg::testing::PollUntil([&] { return ingester->stats().events_in >= 22'000; }, 90s,
                                      "ingester->stats().events_in >= 22'000"));
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
  SEG_ASSERT_OK(observer);
  StartInProcessStore({*observer});

  int64_t before = Clock::Real()->NowMs();
  Event e;
  e.set_user_id("direct-writer");
  e.set_event_time_ms(before - 5000);
  e.set_type(CLICK);
  store::RowPut put;
  put.row = e.user_id();
  store::Cell cell;
  SEG_ASSERT_OK(EncodeEventCell(e, "e", &cell));
  put.cells.push_back(cell);
  SEG_ASSERT_OK(store_->Put("users", {put}));

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

// Passes calls through to a store; the third Put waits until the ingester
// finished (committed) a batch, and records whether that happened.
class GatedStore : public store::Store {
 public:
  explicit GatedStore(store::Store* inner) : inner_(inner) {}
  std::atomic<Ingester*> ingester{nullptr};
  std::atomic<bool> finished_during_third_put{false};

  Status Put(std::string_view table, const std::vector<store::RowPut>& rows) override {
    // Event writes only: the watermark publisher writes the due table.
    if (table == "users" && ++puts_ == 3) {
      finished_during_third_put = static_cast<bool>(seg::testing::PollUntil(
          [&] { return ingester.load()->stats().batches >= 1; }, 10s, "a finished batch", 1ms));
    }
    return inner_->Put(table, rows);
  }
  StatusOr<store::RowResult> Get(std::string_view t, const store::GetRequest& g) override {
    return inner_->Get(t, g);
  }
  Status MultiGet(std::string_view t, const std::vector<store::GetRequest>& g,
                  std::vector<store::RowResult>* r) override {
    return inner_->MultiGet(t, g, r);
  }
  StatusOr<bool> Exists(std::string_view t, const store::GetRequest& g) override {
    return inner_->Exists(t, g);
  }
  Status Delete(std::string_view t, const std::vector<store::RowDelete>& r) override {
    return inner_->Delete(t, r);
  }
  StatusOr<bool> CheckAndMutate(std::string_view t, const store::Condition& c,
                                const store::RowMutations& m) override {
    return inner_->CheckAndMutate(t, c, m);
  }
  StatusOr<std::unique_ptr<store::Scanner>> OpenScanner(std::string_view t,
                                                        const store::ScanRequest& s) override {
    return inner_->OpenScanner(t, s);
  }

 private:
  store::Store* inner_;
  std::atomic<int> puts_{0};
};

TEST_F(IngestPipelineTest, OlderBatchesAreFinishedWhileTheStoreWritesTheNext) {
  StartInProcessStore();
  std::vector<Event> events = MakeEvents(30, 30, 0, 7);
  auto expected = Expected(events);
  ProduceEvents(events);
  GatedStore gated(store_.get());
  IngestOptions options = Options();
  options.batch_max_events = 10;  // >= 3 batches, one Put each
  options.max_batches_in_flight = 2;
  auto ingester = Ingester::Create(options, &gated);
  SEG_ASSERT_OK(ingester);
  gated.ingester = ingester->get();
  RunUntil(
      **ingester, [&] { return (*ingester)->stats().events_in >= 30; }, 60s);
  SEG_ASSERT_OK((*ingester)->Close());
  // The third batch's write found the first batch finished: its notices
  // were awaited and its offsets committed during the write, not after it.
  EXPECT_TRUE(gated.finished_during_third_put);
  EXPECT_EQ((*ingester)->stats().events_written, 30);
  auto rows = ReadRows(Users(expected));
  for (const auto& [user, qualifiers] : expected) EXPECT_EQ(rows[user], qualifiers) << user;
}

// The ingest watermark (common/ingest_watermark.h) covers what is stored
// and nothing more: while a user's events wait unstored in their partition,
// that partition's watermark stays below the time they were appended, even
// as the other partitions' watermarks pass it; once stored, it passes too.
TEST_F(IngestPipelineTest, WatermarkCoversStoredEventsOnly) {
  StartInProcessStore();
  auto watermarks = [&] {
    std::map<int32_t, int64_t> out;
    store::GetRequest get;
    get.row.assign(kIngestWatermarkRow);
    get.families = {"d"};
    auto row = store_->Get("due", get);
    SEG_EXPECT_OK(row);
    if (!row.ok()) return out;
    for (int32_t p = 0; p < kEventPartitions; ++p) {
      const std::string q = IngestWatermarkQualifier("events", p);
      for (store::CellView c : *row) {
        if (c.qualifier == q) out[p] = std::stoll(std::string(c.value));
      }
    }
    return out;
  };
  auto horizon = [&] {
    auto w = watermarks();
    if (w.size() < static_cast<size_t>(kEventPartitions)) return int64_t{-1};
    int64_t h = INT64_MAX;
    for (const auto& [p, ms] : w) h = std::min(h, ms);
    return h;
  };

  std::vector<Event> first = MakeEvents(40, 200, 0, 11);
  ProduceEvents(first);
  const int64_t first_acked_ms = Clock::Real()->NowMs();
  IngestOptions options = Options();
  options.watermark_interval_ms = 20;
  auto ingester = MakeIngester(options);
  ASSERT_TRUE(ingester);
  RunUntil(
      *ingester, [&] { return ingester->stats().events_written >= 200; }, 60s);
  // Every partition, those with no event too, passes the first events.
  ASSERT_TRUE(seg::testing::PollUntil([&] { return horizon() > first_acked_ms; }, 30s,
                                      "horizon() > first_acked_ms"))
      << "horizon " << horizon() << " never passed " << first_acked_ms;

  // One user's events, unread: the ingester does not run meanwhile.
  std::vector<Event> second = MakeEvents(1, 20, 0, 12, "late-");
  Produced where = ProduceEvents(second);
  const int64_t second_acked_ms = Clock::Real()->NowMs();
  const int32_t partition = where.position[0].first;
  ASSERT_GE(partition, 0);
  // The other partitions' watermarks pass the second events' append time,
  // so the publisher has sampled since; this one's must not.
  ASSERT_TRUE(seg::testing::PollUntil(
      [&] {
        auto w = watermarks();
        for (const auto& [p, ms] : w) {
          if (p != partition && ms <= second_acked_ms) return false;
        }
        return w.size() == static_cast<size_t>(kEventPartitions);
      },
      30s, "the other partitions' watermarks past the second events"));
  EXPECT_LT(watermarks()[partition], second_acked_ms)
      << "the watermark covers events that are not stored";

  RunUntil(
      *ingester, [&] { return ingester->stats().events_written >= 220; }, 60s);
  EXPECT_TRUE(seg::testing::PollUntil([&] { return horizon() > second_acked_ms; }, 30s,
                                      "horizon() > second_acked_ms"));
  SEG_ASSERT_OK(ingester->Close());
}

// A batch closes once no event arrived for batch_idle_ms: a quiet stream's
// events are written long before batch_max_ms (here far beyond the run's
// deadline, so only the idle bound can close the batch in time).
TEST_F(IngestPipelineTest, AQuietStreamsBatchClosesAfterBatchIdleMs) {
  StartInProcessStore();
  std::vector<Event> events = MakeEvents(20, 20, 0, 3);
  auto expected = Expected(events);
  ProduceEvents(events);
  IngestOptions options = Options();
  options.batch_max_ms = 120'000;
  options.batch_idle_ms = 200;
  auto ingester = MakeIngester(options);
  ASSERT_NE(ingester, nullptr);
  const auto start = Clk::now();
  RunUntil(
      *ingester, [&] { return ingester->stats().events_written >= 20; }, 60s);
  EXPECT_LT(Clk::now() - start, 60s);  // a batch waiting out batch_max_ms takes 120 s
  SEG_ASSERT_OK(ingester->Close());
  auto rows = ReadRows(Users(expected));
  for (const auto& [user, qualifiers] : expected) EXPECT_EQ(rows[user], qualifiers) << user;
}

}  // namespace
}  // namespace seg::ingest

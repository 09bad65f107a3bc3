// The ingest processes as they run in production: the seg-store binary with
// store-side notices (--notify-kafka), the seg-ingest binary stopped with
// SIGTERM, and a store outage longer than max.poll.interval.ms (the
// consumer is paused and polled meanwhile, so the member stays).
//
// Every wait polls a condition with a deadline; the outage itself is a
// duration (the fault window), not a synchronisation.
#include <fstream>
#include <iterator>

#include "tests/harness/status_matchers.h"
#include "tests/ingest_fixture.h"

namespace seg::ingest {
namespace {

using namespace std::chrono_literals;

class IngestProcessTest : public IngestPipelineTest {
 protected:
  // Starts the seg-store binary on `port` (data under the test's dir).
  ChildProcess StartStoreBinary(int port, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {seg::testing::BinaryDir() + "/store/seg-store", "--data-dir",
                                     data_dir_.path() + "/store", "--port", std::to_string(port)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child = ChildProcess::Start(argv, data_dir_.path() + "/store.log");
    SEG_EXPECT_OK(child);
    SEG_EXPECT_OK(seg::testing::WaitForTcpPort(port, 20s));
    return child.ok() ? std::move(child).value() : ChildProcess();
  }

  // Notices on user-changes by key, read until `done` or the deadline.
  std::map<std::string, std::vector<ChangeNotice>> ReadNotices(
      const std::function<bool(const std::map<std::string, std::vector<ChangeNotice>>&)>& done,
      std::chrono::milliseconds timeout) {
    std::map<std::string, std::vector<ChangeNotice>> out;
    ReadTopic(
        "user-changes", SIZE_MAX, timeout,
        [&](const kafka::Message& m) {
          ChangeNotice n;
          EXPECT_TRUE(n.ParseFromArray(m.value().data(), int(m.value().size())));
          EXPECT_EQ(m.key(), n.user_id());
          out[n.user_id()].push_back(n);
        },
        [&] { return done(out); });
    return out;
  }

  static store::RowPut EventPut(const std::string& user, int64_t time_ms) {
    Event e;
    e.set_user_id(user);
    e.set_event_time_ms(time_ms);
    e.set_type(CLICK);
    store::RowPut put;
    put.row = user;
    store::Cell cell;
    SEG_EXPECT_OK(EncodeEventCell(e, "e", &cell));
    put.cells.push_back(cell);
    return put;
  }
};

// Store-side mode end to end over TCP: any writer's put to family e becomes
// a notice; a put to family s (what the segmenter writes) does not.
TEST_F(IngestProcessTest, SegStoreNotifyKafkaNotifiesFamilyEWritesOnly) {
  int port = seg::testing::PickFreePort();
  ChildProcess store_process =
      StartStoreBinary(port, {"--notify-kafka", cluster_->bootstrap_servers()});
  OpenClient(port);

  int64_t before = Clock::Real()->NowMs();
  int64_t e_time = before - 5000;
  SEG_ASSERT_OK(store_->Put("users", {EventPut("writer-e", e_time)}));
  // Family s first, then e, on one row: one producer, one key, one
  // partition, so a notice for the s write would be read before the e one.
  store::RowPut state;
  state.row = "writer-s";
  state.cells.push_back(store::Cell{"s", "segments", before - 1000, "seg-a"});
  SEG_ASSERT_OK(store_->Put("users", {state}));
  SEG_ASSERT_OK(store_->Put("users", {EventPut("writer-s", e_time - 1)}));

  auto notices =
      ReadNotices([](const auto& n) { return n.count("writer-e") && n.count("writer-s"); }, 60s);
  ASSERT_EQ(notices["writer-e"].size(), 1u);
  const ChangeNotice& e = notices["writer-e"][0];
  EXPECT_EQ(e.newest_event_time_ms(), e_time);
  EXPECT_EQ(e.event_count(), 1u);
  EXPECT_GE(e.acked_at_ms(), before);
  ASSERT_EQ(notices["writer-s"].size(), 1u) << "the family-s write produced a notice";
  EXPECT_EQ(notices["writer-s"][0].newest_event_time_ms(), e_time - 1);
  EXPECT_EQ(store_process.Stop(), 0);
}

// SIGTERM mid-stream: seg-ingest finishes what is in flight, commits,
// leaves the group and exits 0 within 5 s; everything below the committed
// offsets is in the store.
TEST_F(IngestProcessTest, SegIngestExitsCleanlyWithin5sOfSigterm) {
  int port = seg::testing::PickFreePort();
  ChildProcess store_process = StartStoreBinary(port);
  OpenClient(port);
  std::vector<Event> events = MakeEvents(2000, 60'000, 0, 11);
  Produced produced = ProduceEvents(events);

  auto ingest = ChildProcess::Start(
      {seg::testing::BinaryDir() + "/ingest/seg-ingest", "--set",
       "kafka.bootstrap_servers=" + cluster_->bootstrap_servers(), "--set",
       "store.thrift.port=" + std::to_string(port), "--set", "ingest.batch_max_events=2000"},
      data_dir_.path() + "/ingest.log");
  SEG_ASSERT_OK(ingest);
  // Mid-stream: some rows are written (sampled), not all events.
  std::set<std::string> sample;
  for (int u = 0; u < 2000; u += 50) sample.insert("user-" + std::to_string(u));
  ASSERT_TRUE(seg::testing::PollUntil(
      [&] {
        size_t filled = 0;
        for (const auto& [u, q] : ReadRows(sample)) filled += !q.empty();
        return filled >= sample.size() / 2;
      },
      60s, "half the sampled rows written"));
  auto signalled = Clk::now();
  ingest->Signal(SIGTERM);
  StatusOr<int> code = ingest->Wait(5s);
  SEG_ASSERT_OK(code) << "seg-ingest still running 5 s after SIGTERM";
  EXPECT_EQ(*code, 0);
  LOG(INFO) << "seg-ingest exited "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clk::now() - signalled).count()
            << " ms after SIGTERM";

  std::map<int32_t, int64_t> committed = CommittedOffsets();
  std::vector<Event> below;
  int64_t committed_total = 0;
  for (const auto& [p, off] : committed) committed_total += std::max<int64_t>(off, 0);
  for (size_t i = 0; i < events.size(); ++i) {
    auto it = committed.find(produced.position[i].first);
    if (it != committed.end() && produced.position[i].second < it->second) {
      below.push_back(events[i]);
    }
  }
  EXPECT_GT(committed_total, 0);
  EXPECT_EQ(int64_t(below.size()), committed_total);
  auto want = Expected(below);
  auto rows = ReadRows(Users(want));
  size_t missing = 0;
  for (const auto& [user, qualifiers] : want) {
    for (const auto& q : qualifiers) missing += !rows[user].count(q);
  }
  EXPECT_EQ(missing, 0u);
  store_process.Stop();
}

// SIGTERM right after start, before the group assigned anything: librdkafka
// 2.0's cooperative-sticky assignor asserts when such a consumer is
// destroyed (librdkafka#4312, fixed in 2.3.0): seg-ingest skips destroying a
// never-assigned consumer (nothing to commit), so the exit is still clean.
TEST_F(IngestProcessTest, SegIngestSigtermBeforeFirstAssignmentExitsCleanly) {
  int port = seg::testing::PickFreePort();
  ChildProcess store_process = StartStoreBinary(port);
  // Stopped while connecting, while joining, around the assignment (the
  // group join takes a few seconds on the mock cluster): no earlier signal
  // of those phases exists outside the process, so these are durations.
  for (auto delay : {300ms, 1500ms, 3000ms}) {
    auto ingest = ChildProcess::Start(
        {seg::testing::BinaryDir() + "/ingest/seg-ingest", "--set",
         "kafka.bootstrap_servers=" + cluster_->bootstrap_servers(), "--set",
         "store.thrift.port=" + std::to_string(port), "--set", "ingest.group_id=early-stop"},
        data_dir_.path() + "/ingest.log");
    SEG_ASSERT_OK(ingest);
    std::this_thread::sleep_for(delay);  // a duration (see above)
    ingest->Signal(SIGTERM);
    StatusOr<int> code = ingest->Wait(5s);
    SEG_ASSERT_OK(code) << "seg-ingest still running 5 s after SIGTERM (" << delay.count()
                        << " ms after start)";
    if (*code != 0) {
      std::ifstream log(data_dir_.path() + "/ingest.log");
      std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
      ADD_FAILURE() << "exit " << *code << ", stopped " << delay.count()
                    << " ms after start; log tail:\n"
                    << text.substr(text.size() > 3000 ? text.size() - 3000 : 0);
    }
  }
  store_process.Stop();
}

// Backpressure: the store is down for twice max.poll.interval.ms. The
// consumer is paused and polled while the write is retried, so the member
// is never thrown out: no rebalance, no re-delivery (events_in is exact),
// and every event lands once the store is back.
TEST_F(IngestProcessTest, StoreOutageLongerThanMaxPollIntervalKeepsTheMember) {
  int port = seg::testing::PickFreePort();
  ChildProcess store_process = StartStoreBinary(port);
  OpenClient(port);
  constexpr int kEvents = 30'000;
  std::vector<Event> events = MakeEvents(500, kEvents, 0, 5);
  ProduceEvents(events);

  IngestOptions options = Options();
  options.max_poll_interval_ms = 4000;
  options.kafka.properties["session.timeout.ms"] = "4000";
  options.batch_max_events = 2000;
  options.store_backoff = {50, 500};
  auto ingester = MakeIngester(options);
  ASSERT_NE(ingester, nullptr);
  std::stop_source stop;
  std::thread runner([&] {
    Status s = ingester->Run(stop.get_token());
    SEG_EXPECT_OK(s);
  });
  ASSERT_TRUE(seg::testing::PollUntil([&] { return ingester->stats().events_written >= 4000; }, 60s,
                                      "ingester->stats().events_written >= 4000"));
  store_process.Signal(SIGKILL);
  SEG_ASSERT_OK(store_process.Wait(10s));
  ASSERT_TRUE(seg::testing::PollUntil([&] { return ingester->stats().store_retries >= 1; }, 30s,
                                      "ingester->stats().store_retries >= 1"));
  int64_t in_at_outage = ingester->stats().events_in;
  // The fault window: twice max.poll.interval.ms.
  std::this_thread::sleep_for(8s);  // a duration, not a synchronisation
  EXPECT_EQ(ingester->stats().events_in, in_at_outage) << "kept fetching while the store was down";
  store_process = StartStoreBinary(port);

  ASSERT_TRUE(seg::testing::PollUntil([&] { return ingester->stats().events_in >= kEvents; }, 90s,
                                      "ingester->stats().events_in >= kEvents"));
  stop.request_stop();
  runner.join();
  IngestStats stats = ingester->stats();
  EXPECT_EQ(stats.events_in, kEvents) << "re-delivered: the member was thrown out";
  EXPECT_EQ(stats.rebalances, 0);
  EXPECT_GE(stats.store_retries, 3);
  EXPECT_GE(metrics::GetCounter("seg_ingest_consumer_pauses_total", "").Value(), 1);

  auto all = Expected(events);
  auto rows = ReadRows(Users(all));
  size_t mismatched = 0;
  for (const auto& [user, qualifiers] : all) mismatched += rows[user] != qualifiers;
  EXPECT_EQ(mismatched, 0u);
  int64_t committed = 0;
  for (const auto& [p, off] : CommittedOffsets()) committed += std::max<int64_t>(off, 0);
  EXPECT_EQ(committed, kEvents);
  store_process.Stop();
}

// clock.offset_ms (the chaos run's clock skew) moves the process's "now":
// seg-ingest an hour ahead stores an event stamped 50 min ahead of the
// machine's clock (without the offset it is past max_future_ms, 10 min) and
// dead-letters one stamped 75 min ahead (15 min ahead of its clock).
TEST_F(IngestProcessTest, ClockOffsetMovesSegIngestsNow) {
  int port = seg::testing::PickFreePort();
  ChildProcess store_process = StartStoreBinary(port);
  OpenClient(port);
  const int64_t now = Clock::Real()->NowMs();
  Event ahead, far;
  ahead.set_user_id("skew-ahead");
  ahead.set_event_time_ms(now + 50 * 60'000);
  ahead.set_type(CLICK);
  far.set_user_id("skew-far");
  far.set_event_time_ms(now + 75 * 60'000);
  far.set_type(CLICK);
  ProduceEvents({ahead, far});
  auto ingest = ChildProcess::Start(
      {seg::testing::BinaryDir() + "/ingest/seg-ingest", "--set",
       "kafka.bootstrap_servers=" + cluster_->bootstrap_servers(), "--set",
       "store.thrift.port=" + std::to_string(port), "--set", "clock.offset_ms=3600000"},
      data_dir_.path() + "/ingest.log");
  SEG_ASSERT_OK(ingest);
  std::vector<DeadLetter> letters;
  ReadTopic("events-deadletter", 1, 60s, [&](const kafka::Message& m) {
    DeadLetter d;
    EXPECT_TRUE(d.ParseFromArray(m.value().data(), int(m.value().size())));
    letters.push_back(d);
  });
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].reason(), reason::kTimeInFuture);
  EXPECT_NE(letters[0].original().find("skew-far"), std::string::npos);
  EXPECT_TRUE(seg::testing::PollUntil(
      [&] { return !ReadRows({"skew-ahead"})["skew-ahead"].empty(); }, 30s, "skew-ahead's row"));
  EXPECT_TRUE(ReadRows({"skew-far"})["skew-far"].empty());
  ingest->Signal(SIGTERM);
  SEG_EXPECT_OK(ingest->Wait(10s));
  store_process.Stop();
}

// An offset beyond a day is a config error naming the key (exit 2).
TEST_F(IngestProcessTest, ClockOffsetBeyondADayIsAConfigError) {
  std::string log = data_dir_.path() + "/ingest-bad.log";
  auto ingest = ChildProcess::Start({seg::testing::BinaryDir() + "/ingest/seg-ingest", "--set",
                                     "clock.offset_ms=90000000"},
                                    log);
  SEG_ASSERT_OK(ingest);
  StatusOr<int> code = ingest->Wait(10s);
  SEG_ASSERT_OK(code);
  EXPECT_EQ(*code, 2);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("clock.offset_ms"), std::string::npos) << text;
}

}  // namespace
}  // namespace seg::ingest

// Membership over time at the node level, on real parts (librdkafka's mock
// cluster, seg-store's Thrift2 server, redis-server, LuaJIT scripts written
// for each test) and a fake clock that both the script host and the node
// read, so window edges pass without waiting: a window lapses (SCHEDULE),
// the partition moves and its new owner fires the exit, a failing script
// keeps its membership, a bot exits once, a user is forgotten, the script set
// changes (DEFINITION_CHANGE). Every wait polls with a deadline.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>

#include "common/clock.h"
#include "common/event_codec.h"
#include "common/ingest_watermark.h"
#include "common/kafka.h"
#include "proto/events.pb.h"
#include "proto/segmentation.pb.h"
#include "segmenter/internal/membership.h"
#include "segmenter/script_host/script_host.h"
#include "segmenter/segmenter.h"
#include "stats/writer/stats_writer.h"
#include "store/server/store_server.h"
#include "store/store.h"
#include "tests/harness/consume.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/segmenter_group.h"
#include "tests/harness/status_matchers.h"
#include "tests/served_store.h"

namespace seg {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr int64_t kDayMs = 86'400'000;

// Member while it has a page view within 7 days.
constexpr char kRecentScript[] = R"(
local RECENT = filter { type = "page_view", within_days = 7 }
return segment_script {
  name = "recent", version = "1", segments = { "recent_visitor" },
  evaluate = function(user)
    if user:any(RECENT) then return { "recent_visitor" } end
    return {}
  end,
})";

// Member with any page view; runs away (over its CPU budget) once the user
// has visited a "spin" url.
constexpr char kSpinnerScript[] = R"(
return segment_script {
  name = "spinner", version = "1", segments = { "spin_ok" },
  evaluate = function(user)
    if user:any { url_contains = "spin" } then
      local x = 0
      while true do x = x + 1 end
    end
    if user:any { type = "page_view" } then return { "spin_ok" } end
    return {}
  end,
})";

// Member with any search (replaces `recent` in the definition-change test).
constexpr char kSearcherScript[] = R"(
return segment_script {
  name = "searcher", version = "1", segments = { "searcher" },
  evaluate = function(user)
    if user:any { type = "search" } then return { "searcher" } end
    return {}
  end,
})";

// A result as a partner reads it: a tombstone has no value.
struct Received {
  std::string key;
  std::optional<SegmentationResult> result;  // nullopt: tombstone
};

class MembershipNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto kafka = testing::MockKafkaCluster::Start(3);
    SEG_ASSERT_OK(kafka);
    kafka_ = std::move(*kafka);
    for (const char* topic : {"user-changes", "segmentation-results"}) {
      SEG_ASSERT_OK(kafka_->CreateTopic(topic, 4));
    }
    auto redis = testing::LocalRedis::Start(testing::LocalRedisOptions{});
    SEG_ASSERT_OK(redis);
    redis_ = std::move(*redis);
    auto served = testing::ServeStore(dir_.path() + "/store");
    SEG_ASSERT_OK(served);
    server_ = std::move(served->server);
    store_ = std::move(served->client);

    scripts_dir_ = dir_.path() + "/scripts";
    std::filesystem::create_directories(scripts_dir_);
    WriteScript("recent.lua", kRecentScript);
    WriteScript("spinner.lua", kSpinnerScript);
    segmenter::ScriptHostOptions host_options;
    host_options.scripts_dir = scripts_dir_;
    host_options.clock = &clock_;
    host_options.reload_check_interval_ms = 0;  // reloads only when a test asks
    auto host = segmenter::ScriptHost::Create(host_options);
    SEG_ASSERT_OK(host);
    host_ = std::move(*host);

    stats::StatsWriterOptions writer_options;
    writer_options.redis.node.port = redis_->port();
    auto writer = stats::NewStatsWriter(writer_options);
    SEG_ASSERT_OK(writer);
    writer_ = std::move(*writer);
    evaluator_ = segmenter::NewScriptHostEvaluator(host_.get());
    sink_ = segmenter::NewStatsWriterSink(writer_.get());
    node_ = NewNode("segmenter");
    ASSERT_TRUE(node_);

    auto producer = kafka::Producer::Create(kafka_->ClientOptions("test-producer"));
    SEG_ASSERT_OK(producer);
    producer_ = std::move(*producer);
    kafka::KafkaOptions reader = kafka_->ClientOptions("reader");
    reader.properties["session.timeout.ms"] = "6000";
    reader.properties["heartbeat.interval.ms"] = "500";
    ASSERT_NO_FATAL_FAILURE(
        testing::JoinResultsReader(reader, /*expect_no_results=*/false, &results_));
  }

  void TearDown() override {
    if (node_) node_->Close().IgnoreError();
    if (results_) results_->Close().IgnoreError();
  }

  void WriteScript(const std::string& name, const char* source) {
    std::ofstream(scripts_dir_ + "/" + name) << source;
  }

  std::unique_ptr<segmenter::Node> NewNode(const std::string& client) {
    segmenter::NodeOptions options;
    options.kafka = kafka_->ClientOptions(client);
    options.kafka.properties["session.timeout.ms"] = "6000";
    options.kafka.properties["heartbeat.interval.ms"] = "500";
    options.read_delay_ms = 0;
    options.bots.threshold_events = 50;
    options.bots.sustain_ms = 0;
    auto node =
        segmenter::CreateNode(options, store_.get(), evaluator_.get(), sink_.get(), &clock_);
    SEG_EXPECT_OK(node);
    return node.ok() ? std::move(*node) : nullptr;
  }

  // One event of `type` at `time_ms` for `user`, written as ingest would.
  void WriteEvent(const std::string& user, EventType type, int64_t time_ms,
                  const std::string& url = "https://news.example.com/a") {
    Event e;
    e.set_user_id(user);
    e.set_event_time_ms(time_ms);
    e.set_type(type);
    if (type == SEARCH) {
      e.set_search_query("cheap flights");
    } else {
      e.set_url(url);
    }
    e.set_event_id(user + "-" + std::to_string(time_ms) + url);
    store::RowPut put;
    put.row = user;
    store::Cell cell;
    cell.family = "e";
    EncodeEventQualifier(e.event_time_ms(), EventDigest(e), e.type(), &cell.qualifier);
    cell.timestamp = e.event_time_ms();
    SEG_ASSERT_OK(EncodeEventValue(e, &cell.value));
    put.cells.push_back(std::move(cell));
    SEG_ASSERT_OK(store_->Put("users", {put}));
  }

  void SendNotice(const std::string& user, NoticeKind kind = NOTICE_WRITE, uint32_t count = 1,
                  int64_t acked_at_ms = -1) {
    ChangeNotice n;
    n.set_user_id(user);
    n.set_acked_at_ms(acked_at_ms >= 0 ? acked_at_ms : clock_.NowMs());
    n.set_newest_event_time_ms(clock_.NowMs());
    n.set_event_count(count);
    n.set_kind(kind);
    SEG_ASSERT_OK(producer_->Produce("user-changes", user, n.SerializeAsString()));
    SEG_ASSERT_OK(producer_->Flush(std::chrono::seconds(10)));
  }

  template <typename Done>
  void RunUntil(segmenter::Node* node, Done done) {
    bool finished = false;  // done() is called once per round
    ASSERT_TRUE(testing::PollUntil(
        [&] {
          if ((finished = done())) return true;
          auto n = node->RunOnce();
          SEG_EXPECT_OK(n);
          return !n.ok();  // stops at the first error, reported above
        },
        std::chrono::seconds(60), "the node's progress", milliseconds(0)))
        << "node consumed " << node->stats().notices;
    ASSERT_TRUE(finished) << "RunOnce failed; node consumed " << node->stats().notices;
  }
  void RunUntilNotices(int64_t notices) {
    RunUntil(node_.get(), [&] { return node_->stats().notices >= notices; });
  }

  // Reads until `count` results arrived (30 s at most); the caller checks them.
  std::vector<Received> ReadResults(size_t count) {
    std::vector<Received> out;
    EXPECT_TRUE(CollectResults(count, milliseconds(30'000), &out));
    return out;
  }
  // What arrives within `window`, up to `at_most` results: for results that
  // must not come, so running out of time is the expected outcome.
  std::vector<Received> ReadResultsWithin(milliseconds window, size_t at_most) {
    std::vector<Received> out;
    (void)CollectResults(at_most, window, &out);
    return out;
  }
  ::testing::AssertionResult CollectResults(size_t count, milliseconds timeout,
                                            std::vector<Received>* out) {
    return testing::ConsumeUntil(
        *results_, [&] { return out->size() >= count; }, timeout,
        std::to_string(count) + " segmentation results",
        [&](const kafka::Message& m) {
          Received& r = out->emplace_back();
          r.key = std::string(m.key());
          if (!m.is_tombstone()) {
            r.result.emplace().ParseFromArray(m.value().data(), static_cast<int>(m.value().size()));
          }
        },
        {.max_messages = 100, .wait = milliseconds(200)});
  }

  // The user's due rows (any partition).
  std::vector<int64_t> DueTimes(const std::string& user) {
    std::vector<int64_t> out;
    store::ScanRequest scan;
    auto scanner = store_->OpenScanner("due", scan);
    SEG_EXPECT_OK(scanner);
    if (!scanner.ok()) return out;
    std::vector<store::RowResult> rows;
    while ((*scanner)->NextBatch(&rows).ok() && !rows.empty()) {
      for (const auto& row : rows) {
        int32_t partition = 0;
        int64_t due = 0;
        std::string_view id;
        if (segmenter::ParseDueRowKey(row.row(), &partition, &due, &id) && id == user) {
          out.push_back(due);
        }
      }
    }
    return out;
  }

  // The user's due times once they equal `want` or 10 s passed: the node
  // deletes replaced due rows off its critical path, and an idle round
  // waits for those deletes.
  std::vector<int64_t> SettledDueTimes(const std::string& user, const std::vector<int64_t>& want) {
    std::vector<int64_t> got = DueTimes(user);
    testing::PollUntil(
        [&] {
          if (got == want) return true;
          if (node_) {
            auto idle = node_->RunOnce();
            SEG_EXPECT_OK(idle);
          }
          got = DueTimes(user);
          return got == want;
        },
        std::chrono::seconds(10), "settled due rows", milliseconds(0));
    return got;  // the caller compares
  }

  // `user` enters recent_visitor with a page view a day old; returns its
  // due time (the page view leaving the 7-day window).
  int64_t EnterRecentVisitor(const std::string& user) {
    const int64_t event_ms = clock_.NowMs() - kDayMs;
    WriteEvent(user, PAGE_VIEW, event_ms);
    SendNotice(user);
    const int64_t before = node_->stats().notices;
    RunUntilNotices(before + 1);
    EXPECT_EQ(ReadResults(1).size(), 1u);
    const int64_t due_ms = event_ms + 7 * kDayMs;
    EXPECT_EQ(DueTimes(user), std::vector<int64_t>{due_ms});
    return due_ms;
  }

  // The ingest watermark row as ingesters write it (common/ingest_watermark.h):
  // one watermark per events partition given, of `partitions` in all.
  void PublishWatermarks(const std::vector<int64_t>& watermarks, int32_t partitions) {
    store::RowPut put;
    put.row.assign(kIngestWatermarkRow);
    for (size_t p = 0; p < watermarks.size(); ++p) {
      put.cells.push_back(store::Cell{"d", IngestWatermarkQualifier("events", int32_t(p)),
                                      watermarks[p], std::to_string(watermarks[p])});
    }
    put.cells.push_back(store::Cell{"d", IngestPartitionCountQualifier("events"),
                                    store::kLatestTimestamp, std::to_string(partitions)});
    SEG_ASSERT_OK(store_->Put("due", {put}));
  }

  SegmentState State(const std::string& user) {
    store::GetRequest get;
    get.row = user;
    get.families = {"s"};
    auto row = store_->Get("users", get);
    SegmentState state;
    if (row.ok() && !row->empty()) {
      state.ParseFromArray(row->cell(0).value.data(), static_cast<int>(row->cell(0).value.size()));
    }
    return state;
  }

  testing::TempDir dir_;
  FakeClock clock_{Clock::Real()->NowMs()};
  std::string scripts_dir_;
  std::unique_ptr<testing::MockKafkaCluster> kafka_;
  std::unique_ptr<testing::LocalRedis> redis_;
  std::unique_ptr<store::StoreServer> server_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<segmenter::ScriptHost> host_;
  std::unique_ptr<stats::StatsWriter> writer_;
  std::unique_ptr<segmenter::Evaluator> evaluator_;
  std::unique_ptr<segmenter::StatsSink> sink_;
  std::unique_ptr<segmenter::Node> node_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::Consumer> results_;
};

bool Has(const google::protobuf::RepeatedPtrField<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

TEST_F(MembershipNodeTest, WindowMemberExitsAtTheEdgeWithNoNewEvent) {
  const int64_t event_ms = clock_.NowMs() - kDayMs;
  WriteEvent("u1", PAGE_VIEW, event_ms);
  SendNotice("u1");
  RunUntilNotices(1);
  auto entered = ReadResults(1);
  ASSERT_EQ(entered.size(), 1u);
  ASSERT_TRUE(entered[0].result);
  EXPECT_TRUE(Has(entered[0].result->entered(), "recent_visitor"));
  // Due when the page view leaves the 7-day window, not later.
  EXPECT_EQ(DueTimes("u1"), std::vector<int64_t>{event_ms + 7 * kDayMs});

  clock_.AdvanceMs(6 * kDayMs - 1);  // one ms before the edge: nothing due
  for (int i = 0; i < 3; ++i) SEG_ASSERT_OK(node_->RunOnce());
  EXPECT_EQ(node_->stats().scheduled, 0);
  // The edge passes; the next due scan (one scan interval after the last)
  // fires the exit: at most that late.
  clock_.AdvanceMs(segmenter::NodeOptions().due_scan_interval_ms);
  RunUntil(node_.get(), [&] { return node_->stats().scheduled >= 1; });
  auto exited = ReadResults(1);
  ASSERT_EQ(exited.size(), 1u);
  ASSERT_TRUE(exited[0].result);
  const SegmentationResult& r = *exited[0].result;
  EXPECT_EQ(r.reason(), SCHEDULE);
  EXPECT_TRUE(Has(r.exited(), "recent_visitor"));
  EXPECT_FALSE(Has(r.segments(), "recent_visitor"));
  EXPECT_GT(r.seq(), entered[0].result->seq());
  // The fired row is gone; the next one is the history's end (60 days).
  EXPECT_EQ(SettledDueTimes("u1", {event_ms + 60 * kDayMs}),
            std::vector<int64_t>{event_ms + 60 * kDayMs});
}

// The pipeline is behind: an events partition's watermark is short of the
// user's due time, so a page view that arrived before it may still wait in
// Kafka. The node holds the user; once ingest has stored that page view
// (its notice still on the way) and the watermark passed, the due user
// fires, reads it and stays a member. Firing at the due time instead would
// have sent an exit that the page view takes back.
TEST_F(MembershipNodeTest, DueUserWaitsForTheIngestWatermarkAndSeesTheLateEvent) {
  const int64_t due_ms = EnterRecentVisitor("u1");

  PublishWatermarks({due_ms - 1, due_ms + kDayMs}, 2);
  const int64_t interval_ms = segmenter::NodeOptions().due_scan_interval_ms;
  clock_.AdvanceMs(due_ms - clock_.NowMs() + interval_ms);
  for (int i = 0; i < 3; ++i) SEG_ASSERT_OK(node_->RunOnce());
  EXPECT_EQ(node_->stats().scheduled, 0) << "fired ahead of the ingest watermark";

  const int64_t late_ms = due_ms - 1000;
  WriteEvent("u1", PAGE_VIEW, late_ms);
  PublishWatermarks({clock_.NowMs(), clock_.NowMs()}, 2);
  clock_.AdvanceMs(interval_ms);
  RunUntil(node_.get(), [&] { return node_->stats().scheduled >= 1; });
  SegmentState state = State("u1");
  EXPECT_EQ(state.segmented_at_ms(), clock_.NowMs());
  EXPECT_TRUE(Has(state.segments(), "recent_visitor")) << "a false exit";
  EXPECT_EQ(SettledDueTimes("u1", {late_ms + 7 * kDayMs}),
            std::vector<int64_t>{late_ms + 7 * kDayMs});
}

// An ingester that stopped publishing (here: one partition never had a
// watermark) holds exits for at most segmenter.schedule.max_hold_ms.
TEST_F(MembershipNodeTest, StuckIngestWatermarkHoldsExitsAtMostMaxHold) {
  const int64_t due_ms = EnterRecentVisitor("u2");
  PublishWatermarks({due_ms + kDayMs}, 2);  // partition 1 has none

  clock_.AdvanceMs(due_ms - clock_.NowMs() + segmenter::NodeOptions().due_scan_interval_ms);
  for (int i = 0; i < 3; ++i) SEG_ASSERT_OK(node_->RunOnce());
  EXPECT_EQ(node_->stats().scheduled, 0);

  clock_.AdvanceMs(segmenter::NodeOptions().due_max_hold_ms);
  RunUntil(node_.get(), [&] { return node_->stats().scheduled >= 1; });
  auto exited = ReadResults(1);
  ASSERT_EQ(exited.size(), 1u);
  ASSERT_TRUE(exited[0].result);
  EXPECT_EQ(exited[0].result->reason(), SCHEDULE);
  EXPECT_TRUE(Has(exited[0].result->exited(), "recent_visitor"));
}

TEST_F(MembershipNodeTest, NewOwnerFiresTheExitAfterTheRebalance) {
  const int64_t event_ms = clock_.NowMs() - kDayMs;
  WriteEvent("u2", PAGE_VIEW, event_ms);
  SendNotice("u2");
  RunUntilNotices(1);
  ASSERT_EQ(ReadResults(1).size(), 1u);
  SEG_ASSERT_OK(node_->Close());  // its partitions go to the next member
  node_.reset();

  clock_.AdvanceMs(6 * kDayMs + 1);
  auto next_owner = NewNode("segmenter-2");
  ASSERT_TRUE(next_owner);
  RunUntil(next_owner.get(), [&] { return next_owner->stats().scheduled >= 1; });
  auto exited = ReadResults(1);
  ASSERT_EQ(exited.size(), 1u);
  ASSERT_TRUE(exited[0].result);
  EXPECT_EQ(exited[0].result->reason(), SCHEDULE);
  EXPECT_TRUE(Has(exited[0].result->exited(), "recent_visitor"));
  SEG_ASSERT_OK(next_owner->Close());
}

TEST_F(MembershipNodeTest, ScriptOverBudgetKeepsThePreviousMembership) {
  WriteEvent("u3", PAGE_VIEW, clock_.NowMs() - 1000);
  SendNotice("u3");
  RunUntilNotices(1);
  auto first = ReadResults(1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(Has(first[0].result->segments(), "spin_ok"));

  clock_.AdvanceMs(1000);
  WriteEvent("u3", PAGE_VIEW, clock_.NowMs() - 10, "https://x.example.com/spin");
  SendNotice("u3");
  RunUntilNotices(2);
  auto second = ReadResults(1);
  ASSERT_EQ(second.size(), 1u);
  const SegmentationResult& r = *second[0].result;
  EXPECT_TRUE(Has(r.failed_scripts(), "spinner"));
  EXPECT_TRUE(Has(r.segments(), "spin_ok")) << "a failure must not exit the user";
  EXPECT_TRUE(r.exited().empty());
  EXPECT_TRUE(r.entered().empty());
  // Kept stale since now, and evaluated again within the failure recheck.
  SegmentState state = State("u3");
  EXPECT_TRUE(Has(state.segments(), "spin_ok"));
  EXPECT_EQ(state.stale_since_ms().at("spinner"), clock_.NowMs());
  EXPECT_LE(state.due_ms(), clock_.NowMs() + segmenter::NodeOptions().failure_recheck_ms);
}

TEST_F(MembershipNodeTest, NewlyBlacklistedBotExitsOnceAndStateMatches) {
  WriteEvent("u4", PAGE_VIEW, clock_.NowMs() - 1000);
  SendNotice("u4");
  RunUntilNotices(1);
  ASSERT_EQ(ReadResults(1).size(), 1u);
  for (int i = 0; i < 3; ++i) SendNotice("u4", NOTICE_WRITE, 40);  // 121 events > 50
  RunUntilNotices(4);
  // A notice polled before the threshold may still segment; one BOT result follows.
  auto results = ReadResultsWithin(milliseconds(3000), 3);
  int bots = 0;
  for (const Received& r : results) bots += r.result && r.result->reason() == BOT;
  ASSERT_EQ(bots, 1);
  ASSERT_TRUE(results.back().result);
  const SegmentationResult& r = *results.back().result;
  EXPECT_EQ(r.reason(), BOT);
  EXPECT_TRUE(r.bot());
  EXPECT_TRUE(r.segments().empty());
  EXPECT_TRUE(Has(r.exited(), "recent_visitor"));
  EXPECT_TRUE(Has(r.exited(), "spin_ok"));
  SegmentState state = State("u4");
  EXPECT_TRUE(state.segments().empty());
  EXPECT_TRUE(state.bot());
  EXPECT_TRUE(SettledDueTimes("u4", {}).empty()) << "a blacklisted bot has nothing to fire";
  EXPECT_EQ(node_->stats().bots_flagged, 1);
}

TEST_F(MembershipNodeTest, ForgetDeletesRowsDueAndCacheAndPublishesATombstone) {
  WriteEvent("u5", PAGE_VIEW, clock_.NowMs() - 1000);
  SendNotice("u5");
  RunUntilNotices(1);
  auto first = ReadResults(1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(DueTimes("u5").size(), 1u);

  clock_.AdvanceMs(1000);
  SendNotice("u5", NOTICE_FORGET);
  RunUntilNotices(2);
  auto tombstone = ReadResults(1);
  ASSERT_EQ(tombstone.size(), 1u);
  EXPECT_EQ(tombstone[0].key, "u5");
  EXPECT_FALSE(tombstone[0].result) << "a forget publishes a null value";
  store::GetRequest get;
  get.row = "u5";
  auto row = store_->Get("users", get);
  SEG_ASSERT_OK(row);
  EXPECT_TRUE(row->empty()) << "every family of the row is gone";
  EXPECT_TRUE(SettledDueTimes("u5", {}).empty());
  EXPECT_EQ(node_->stats().forgotten, 1);

  // An event after the forget: the user comes back, seq still increasing.
  // (The skip cache forgot the read, so a notice acknowledged before it
  // is not skipped.)
  clock_.AdvanceMs(1000);
  WriteEvent("u5", PAGE_VIEW, clock_.NowMs() - 10);
  SendNotice("u5", NOTICE_WRITE, 1, clock_.NowMs() - 5000);
  RunUntilNotices(3);
  auto again = ReadResults(1);
  ASSERT_EQ(again.size(), 1u);
  ASSERT_TRUE(again[0].result);
  EXPECT_TRUE(Has(again[0].result->entered(), "recent_visitor"));
  EXPECT_GT(again[0].result->seq(), first[0].result->seq());
}

TEST_F(MembershipNodeTest, DefinitionChangeResultsOnlyForChangedUsersAndRemovedSegmentsExit) {
  WriteEvent("viewer", PAGE_VIEW, clock_.NowMs() - 1000);
  WriteEvent("seeker", SEARCH, clock_.NowMs() - 1000);
  WriteEvent("clicker", CLICK, clock_.NowMs() - 1000);
  for (const char* user : {"viewer", "seeker", "clicker"}) SendNotice(user);
  RunUntilNotices(3);
  ASSERT_EQ(ReadResults(3).size(), 3u);

  // The set changes: `recent` removed, `searcher` added; spinner unchanged.
  ASSERT_EQ(std::remove((scripts_dir_ + "/recent.lua").c_str()), 0);
  WriteScript("searcher.lua", kSearcherScript);
  SEG_ASSERT_OK(evaluator_->Reload());
  clock_.AdvanceMs(1000);
  // Acknowledged long ago: the skip cache would drop them as writes.
  for (const char* user : {"viewer", "seeker", "clicker"}) {
    SendNotice(user, NOTICE_DEFINITION_CHANGE, 0, clock_.NowMs() - 60'000);
  }
  RunUntilNotices(6);
  EXPECT_EQ(node_->stats().definition_changes, 3);
  auto results = ReadResultsWithin(milliseconds(3000), 3);  // a third would be wrong
  ASSERT_EQ(results.size(), 2u);
  for (const Received& r : results) {
    ASSERT_TRUE(r.result);
    EXPECT_EQ(r.result->reason(), DEFINITION_CHANGE);
    if (r.key == "viewer") {
      EXPECT_TRUE(Has(r.result->exited(), "recent_visitor"));
    } else {
      EXPECT_EQ(r.key, "seeker");
      EXPECT_TRUE(Has(r.result->entered(), "searcher"));
    }
  }
}

// A user segmented before the upgrade has a state cell without a due time
// (the old segmenter wrote none) and no due row, so no window of its would
// ever fire. The backfill's DEFINITION_CHANGE notice re-evaluates it: the
// membership is unchanged (no result), but the due row appears, and the
// window's exit then comes on time.
TEST_F(MembershipNodeTest, PreUpgradeUserGetsADueRowFromTheBackfillNotice) {
  const int64_t event_ms = clock_.NowMs() - kDayMs;
  WriteEvent("old", PAGE_VIEW, event_ms);
  // The state as the old segmenter wrote it: segments, no due_ms.
  SegmentState old_state;
  old_state.add_segments("recent_visitor");
  old_state.add_segments("spin_ok");
  old_state.set_script_set_version("before-the-upgrade");
  old_state.set_segmented_at_ms(event_ms + 1000);
  old_state.set_data_watermark_ms(event_ms);
  old_state.add_counted(segmenter::CountedKey("recent_visitor", segmenter::DayOf(event_ms)));
  old_state.add_counted(segmenter::CountedKey("spin_ok", segmenter::DayOf(event_ms)));
  old_state.set_seq((event_ms + 1000) * 1000);
  store::RowPut put;
  put.row = "old";
  put.cells.push_back(store::Cell{"s", std::string(segmenter::kStateQualifier), event_ms + 1000,
                                  old_state.SerializeAsString()});
  SEG_ASSERT_OK(store_->Put("users", {put}));
  ASSERT_EQ(State("old").due_ms(), 0);
  ASSERT_TRUE(DueTimes("old").empty());

  // The backfill's notice, acknowledged long ago (a write that old would be skipped).
  SendNotice("old", NOTICE_DEFINITION_CHANGE, 0, clock_.NowMs() - 60'000);
  RunUntilNotices(1);
  EXPECT_EQ(node_->stats().definition_changes, 1);
  EXPECT_TRUE(ReadResultsWithin(milliseconds(3000), 1).empty()) << "the membership did not change";
  EXPECT_EQ(DueTimes("old"), std::vector<int64_t>{event_ms + 7 * kDayMs});
  SegmentState state = State("old");
  EXPECT_EQ(state.due_ms(), event_ms + 7 * kDayMs);
  EXPECT_TRUE(Has(state.segments(), "recent_visitor"));
  EXPECT_EQ(state.script_set_version(), evaluator_->ScriptSetVersion());

  // The window's edge passes: the exit fires from the new due row.
  clock_.AdvanceMs(6 * kDayMs + segmenter::NodeOptions().due_scan_interval_ms);
  RunUntil(node_.get(), [&] { return node_->stats().scheduled >= 1; });
  auto exited = ReadResults(1);
  ASSERT_EQ(exited.size(), 1u);
  ASSERT_TRUE(exited[0].result);
  EXPECT_EQ(exited[0].key, "old");
  EXPECT_EQ(exited[0].result->reason(), SCHEDULE);
  EXPECT_TRUE(Has(exited[0].result->exited(), "recent_visitor"));
  EXPECT_GT(exited[0].result->seq(), old_state.seq());
}

}  // namespace
}  // namespace seg

// segtool against real parts: the segtool binary itself, the seg-store
// binary over TCP, the librdkafka mock cluster, a local redis-server, and a
// real segmenter node producing the state, results and stats that a shadow
// run must leave alone. Every wait has a deadline; no sleeps.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/clock.h"
#include "common/event_codec.h"
#include "common/kafka.h"
#include "proto/events.pb.h"
#include "proto/segmentation.pb.h"
#include "segmenter/script_host/script_host.h"
#include "segmenter/segmenter.h"
#include "stats/writer/stats_writer.h"
#include "store/store.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"

namespace seg {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;

constexpr int64_t kDayMs = 86'400'000;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

struct ToolRun {
  int rc = -1;
  std::string output;
};

// Runs the segtool binary with a deadline; stdout and stderr together.
ToolRun RunSegtool(const std::vector<std::string>& args, const std::string& log,
                   std::chrono::milliseconds timeout = 60s) {
  std::vector<std::string> argv = {testing::BinaryDir() + "/tools/segtool"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::filesystem::remove(log);
  ToolRun run;
  auto child = ChildProcess::Start(argv, log);
  SEG_EXPECT_OK(child);
  if (!child.ok()) return run;
  auto rc = child->Wait(timeout);
  SEG_EXPECT_OK(rc) << "segtool did not finish";
  run.rc = rc.ok() ? *rc : -1;
  run.output = ReadAll(log);
  return run;
}

// ------------------------------------------------------------ segtool test

TEST(SegtoolTest, FailingFixtureFailsWithExpectedGotAndMatchedEvents) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() + "/tests");
  std::filesystem::copy_file(testing::SourceDir() + "/scripts/loves_cats.lua",
                             dir.path() + "/loves_cats.lua");
  // Two cat pages are one short of the script's 3: the expectation is wrong.
  WriteFile(dir.path() + "/tests/loves_cats.json", R"({
    "now_ms": 1700000000000,
    "cases": [
      {"name": "passes", "events": [], "expect": []},
      {"name": "two pages are not enough",
       "events": [
         {"type": "page_view", "url": "https://koshki.ru/porody", "ago_days": 5},
         {"type": "page_view", "url": "https://example.org/cats/funny", "ago_days": 2},
         {"type": "page_view", "url": "https://news.example/politics", "ago_days": 1}],
       "expect": ["loves_cats"]}
    ]})");
  ToolRun run = RunSegtool({"test", "--scripts", dir.path()}, dir.path() + "/out.log");
  EXPECT_EQ(run.rc, 1) << run.output;
  const std::string& out = run.output;
  EXPECT_NE(out.find("FAIL loves_cats / two pages are not enough"), std::string::npos) << out;
  EXPECT_EQ(out.find("FAIL loves_cats / passes"), std::string::npos) << out;
  EXPECT_NE(out.find("expected: [loves_cats]"), std::string::npos) << out;
  EXPECT_NE(out.find("got:      []"), std::string::npos) << out;
  // The matched events are the two cat pages, not the politics page.
  EXPECT_NE(out.find("events the helpers matched (2 of 3)"), std::string::npos) << out;
  EXPECT_NE(out.find("https://koshki.ru/porody"), std::string::npos) << out;
  EXPECT_EQ(out.find("politics"), std::string::npos) << out;
  EXPECT_NE(out.find("user:count(CAT_PAGES) = 2"), std::string::npos) << out;
  EXPECT_NE(out.find("`n >= 3` is false"), std::string::npos) << out;
  EXPECT_NE(out.find("1 failed"), std::string::npos) << out;

  // Fixed expectation: exit 0. A script without fixtures fails.
  std::string fixed = ReadAll(dir.path() + "/tests/loves_cats.json");
  fixed.replace(fixed.rfind("[\"loves_cats\"]"), 14, "[]");
  WriteFile(dir.path() + "/tests/loves_cats.json", fixed);
  run = RunSegtool({"test", dir.path() + "/loves_cats.lua"}, dir.path() + "/out.log");
  EXPECT_EQ(run.rc, 0) << run.output;
  std::filesystem::copy_file(testing::SourceDir() + "/scripts/woman.lua",
                             dir.path() + "/woman.lua");
  run = RunSegtool({"test", "--all", "--scripts", dir.path()}, dir.path() + "/out.log");
  EXPECT_EQ(run.rc, 1) << run.output;
  EXPECT_NE(run.output.find("FAIL woman: no fixture"), std::string::npos) << run.output;
}

// ------------------------------------------------- the store-backed tools

Event MakeEvent(const std::string& user, int64_t time_ms, EventType type, const std::string& url,
                const std::string& query = "") {
  Event e;
  e.set_user_id(user);
  e.set_event_time_ms(time_ms);
  e.set_type(type);
  if (!url.empty()) e.set_url(url);
  if (!query.empty()) e.set_search_query(query);
  e.set_event_id(user + "-" + std::to_string(time_ms) + url + query);
  return e;
}

class SegtoolStackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = testing::PickFreePort();
    auto child = ChildProcess::Start({testing::BinaryDir() + "/store/seg-store", "--data-dir",
                                      dir_.path() + "/store", "--port", std::to_string(port_)},
                                     dir_.path() + "/store.log");
    SEG_ASSERT_OK(child);
    store_process_ = std::move(*child);
    SEG_ASSERT_OK(testing::WaitForTcpPort(port_, 20s));
    store::StoreOptions client;
    client.backend = store::StoreOptions::Backend::kThrift;
    client.thrift.port = port_;
    auto store = store::OpenStore(client);
    SEG_ASSERT_OK(store);
    store_ = std::move(*store);
    now_ = Clock::Real()->NowMs();
  }

  void Put(const std::string& user, const std::vector<Event>& events) {
    store::RowPut put;
    put.row = user;
    for (const Event& e : events) {
      store::Cell cell;
      cell.family = "e";
      EncodeEventQualifier(e.event_time_ms(), EventDigest(e), e.type(), &cell.qualifier);
      cell.timestamp = e.event_time_ms();
      SEG_ASSERT_OK(EncodeEventValue(e, &cell.value));
      put.cells.push_back(std::move(cell));
    }
    SEG_ASSERT_OK(store_->Put("users", {put}));
  }

  std::vector<std::string> StoreArgs() {
    return {"--store", "127.0.0.1:" + std::to_string(port_), "--scripts",
            testing::SourceDir() + "/scripts"};
  }

  testing::TempDir dir_;
  int port_ = 0;
  ChildProcess store_process_;
  std::unique_ptr<store::Store> store_;
  int64_t now_ = 0;
};

TEST_F(SegtoolStackTest, ExplainNamesTheDecidingEventsAndCondition) {
  Put("u-cat", {MakeEvent("u-cat", now_ - 70 * kDayMs, PAGE_VIEW, "https://koshki.ru/too-old"),
                MakeEvent("u-cat", now_ - 5 * kDayMs, PAGE_VIEW, "https://koshki.ru/porody"),
                MakeEvent("u-cat", now_ - 3 * kDayMs, SEARCH, "", "котёнок спит"),
                MakeEvent("u-cat", now_ - 1 * kDayMs, PAGE_VIEW, "https://news.example/sport")});
  std::vector<std::string> args = StoreArgs();
  args.insert(args.end(), {"explain", "--user", "u-cat", "--segment", "loves_cats"});
  ToolRun run = RunSegtool(args, dir_.path() + "/explain.log");
  ASSERT_EQ(run.rc, 0) << run.output;
  const std::string& out = run.output;
  EXPECT_NE(out.find("user u-cat is OUT of segment loves_cats"), std::string::npos) << out;
  EXPECT_NE(out.find("script: loves_cats@1.2.0"), std::string::npos) << out;
  // The deciding condition, with the helper values that fed it.
  EXPECT_NE(out.find("`n >= 3` is false with n <- user:count(CAT_PAGES) = 1, n <- "
                     "user:count(CAT_SEARCHES) = 1"),
            std::string::npos)
      << out;
  // The events the helpers matched: the recent page and the search; the
  // 70-day-old page is outside the history window, the sport page unmatched.
  EXPECT_NE(out.find("events the helpers matched (2 of 3)"), std::string::npos) << out;
  EXPECT_NE(out.find("page_view https://koshki.ru/porody"), std::string::npos) << out;
  EXPECT_NE(out.find("search q=\"котёнок спит\""), std::string::npos) << out;
  EXPECT_EQ(out.find("too-old"), std::string::npos) << out;
  EXPECT_EQ(out.find("news.example"), std::string::npos) << out;

  // One more cat page: now in, and the condition is true.
  Put("u-cat", {MakeEvent("u-cat", now_ - 2 * kDayMs, PAGE_VIEW, "https://example.org/cats/1")});
  run = RunSegtool(args, dir_.path() + "/explain.log");
  ASSERT_EQ(run.rc, 0) << run.output;
  EXPECT_NE(run.output.find("user u-cat is IN segment loves_cats"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("`n >= 3` is true"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("events the helpers matched (3 of 4)"), std::string::npos)
      << run.output;

  // run: every script, with timings.
  args = StoreArgs();
  args.insert(args.end(), {"run", "--user", "u-cat"});
  run = RunSegtool(args, dir_.path() + "/run.log");
  ASSERT_EQ(run.rc, 0) << run.output;
  EXPECT_NE(run.output.find("loves_cats@1.2.0: [loves_cats]"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("woman@1.0.0: []"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find(" ms"), std::string::npos) << run.output;

  // An unknown segment is a clear error.
  args = StoreArgs();
  args.insert(args.end(), {"explain", "--user", "u-cat", "--segment", "no_such_segment"});
  run = RunSegtool(args, dir_.path() + "/explain.log");
  EXPECT_EQ(run.rc, 2) << run.output;
  EXPECT_NE(run.output.find("no script declares segment 'no_such_segment'"), std::string::npos)
      << run.output;
}

// The high watermark of every partition of `topic`.
std::vector<int64_t> HighWatermarks(const std::string& bootstrap, const std::string& topic,
                                    int partitions) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  std::vector<int64_t> out;
  for (int p = 0; p < partitions; ++p) {
    int64_t low = -1, high = -1;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 10000);
    out.push_back(e == RD_KAFKA_RESP_ERR_NO_ERROR ? high : -1);
  }
  rd_kafka_destroy(rk);
  return out;
}

// Every key's serialized value, so any change to any key shows.
std::string DumpAll(int port, const std::string& keys) {
  std::string out;
  std::stringstream lines(keys);
  for (std::string key; std::getline(lines, key);) {
    auto dump = testing::RedisCommandForTest(port, {"DUMP", key});
    out += key + "=" + (dump.ok() ? *dump : dump.status().ToString()) + "\n";
  }
  return out;
}

TEST_F(SegtoolStackTest, ShadowWritesNothingAndCountsMatchADirectEvaluation) {
  auto kafka = testing::MockKafkaCluster::Start(1);
  SEG_ASSERT_OK(kafka);
  constexpr int kPartitions = 2;
  for (const char* topic : {"user-changes", "segmentation-results"})
    SEG_ASSERT_OK((*kafka)->CreateTopic(topic, kPartitions));
  auto redis = testing::LocalRedis::Start();
  SEG_ASSERT_OK(redis);

  // 30 users: i % 3 == 0: 3 cat pages 20 days ago (in for the shipped script);
  // i % 3 == 1: 2 cat pages this week; i % 3 == 2: nothing about cats.
  std::vector<std::string> users;
  for (int i = 0; i < 30; ++i) {
    std::string u = "user-" + std::to_string(i);
    users.push_back(u);
    std::vector<Event> events = {MakeEvent(u, now_ - kDayMs, PAGE_VIEW, "https://news.example/")};
    int pages = i % 3 == 0 ? 3 : i % 3 == 1 ? 2 : 0;
    int64_t ago = i % 3 == 0 ? 20 * kDayMs : 2 * kDayMs;
    for (int p = 0; p < pages; ++p)
      events.push_back(
          MakeEvent(u, now_ - ago + p, PAGE_VIEW, "https://koshki.ru/" + std::to_string(p)));
    Put(u, events);
  }

  // The real pipeline first: a segmenter node in group "segmenter" segments
  // everyone with the shipped scripts, publishes results, writes stats and
  // state, and commits its offsets.
  auto producer = kafka::Producer::Create((*kafka)->ClientOptions("notices"));
  SEG_ASSERT_OK(producer);
  for (const auto& u : users) {
    ChangeNotice n;
    n.set_user_id(u);
    n.set_acked_at_ms(now_);
    n.set_newest_event_time_ms(now_);
    n.set_event_count(1);
    SEG_ASSERT_OK((*producer)->Produce("user-changes", u, n.SerializeAsString()));
  }
  SEG_ASSERT_OK((*producer)->Flush(10s));
  {
    segmenter::ScriptHostOptions host_options;
    host_options.scripts_dir = testing::SourceDir() + "/scripts";
    auto host = segmenter::ScriptHost::Create(host_options);
    SEG_ASSERT_OK(host);
    stats::StatsWriterOptions writer_options;
    writer_options.redis.node.port = (*redis)->port();
    auto writer = stats::NewStatsWriter(writer_options);
    SEG_ASSERT_OK(writer);
    auto evaluator = segmenter::NewScriptHostEvaluator(host->get());
    auto sink = segmenter::NewStatsWriterSink(writer->get());
    segmenter::NodeOptions options;
    options.kafka = (*kafka)->ClientOptions("segmenter");
    options.kafka.properties["session.timeout.ms"] = "6000";
    options.kafka.properties["heartbeat.interval.ms"] = "500";
    options.read_delay_ms = 0;
    auto node = segmenter::CreateNode(options, store_.get(), evaluator.get(), sink.get());
    SEG_ASSERT_OK(node);
    ASSERT_TRUE(testing::PollUntil(
        [&] {
          if ((*node)->stats().notices >= static_cast<int64_t>(users.size())) return true;
          auto ran = (*node)->RunOnce();
          SEG_EXPECT_OK(ran);
          return !ran.ok();
        },
        40s, "every user's notice consumed", 0ms));
    ASSERT_GE((*node)->stats().notices, static_cast<int64_t>(users.size()));
    SEG_ASSERT_OK((*node)->Close());
  }
  auto real_group = kafka::Consumer::Create((*kafka)->ClientOptions("checker"), "segmenter");
  SEG_ASSERT_OK(real_group);
  std::vector<kafka::TopicPartition> notice_partitions;
  for (int p = 0; p < kPartitions; ++p) notice_partitions.push_back({"user-changes", p});
  auto committed_before = (*real_group)->Committed(notice_partitions, 10s);
  SEG_ASSERT_OK(committed_before);
  int64_t committed_total = 0;
  for (const auto& [tp, offset] : *committed_before)
    committed_total += std::max<int64_t>(offset, 0);
  ASSERT_EQ(committed_total, static_cast<int64_t>(users.size()));
  const auto results_before =
      HighWatermarks((*kafka)->bootstrap_servers(), "segmentation-results", kPartitions);
  auto keys_before = testing::RedisCommandForTest((*redis)->port(), {"KEYS", "*"});
  SEG_ASSERT_OK(keys_before);
  ASSERT_FALSE(keys_before->empty());
  auto dump_before = DumpAll((*redis)->port(), *keys_before);

  // The candidate: two cat pages within 7 days. Users of the first kind
  // exit, users of the second kind enter.
  std::string candidate_dir = dir_.path() + "/candidate";
  std::filesystem::create_directories(candidate_dir);
  WriteFile(candidate_dir + "/loves_cats.lua", R"(
local RECENT_CAT_PAGES = filter { type = "page_view", within_days = 7, url_contains = { "/cats", "koshki" } }
return segment_script {
  name = "loves_cats", version = "2.0.0-rc1", segments = { "loves_cats" },
  evaluate = function(user)
    if user:count(RECENT_CAT_PAGES) >= 2 then return { "loves_cats" } end
    return {}
  end,
}
)");

  // The direct evaluation: the candidate over every user's stored row,
  // against the state the node wrote.
  int64_t expect_enter = 0, expect_exit = 0;
  {
    segmenter::ScriptHostOptions host_options;
    host_options.scripts_dir = candidate_dir;
    auto host = segmenter::ScriptHost::Create(host_options);
    SEG_ASSERT_OK(host);
    for (const auto& u : users) {
      store::GetRequest get;
      get.row = u;
      auto row = store_->Get("users", get);
      SEG_ASSERT_OK(row);
      std::vector<EventView> events;
      bool was_in = false;
      for (store::CellView cell : *row) {
        if (cell.family == "e") {
          SEG_ASSERT_OK(DecodeEventCell(cell.qualifier, cell.value, &events.emplace_back()));
        } else if (cell.family == "s") {
          SegmentState state;
          ASSERT_TRUE(state.ParseFromArray(cell.value.data(), static_cast<int>(cell.value.size())));
          for (const auto& s : state.segments()) was_in = was_in || s == "loves_cats";
        }
      }
      segmenter::EvaluationResult result;
      SEG_ASSERT_OK((*host)->EvaluateUser(u, events, &result));
      bool now_in = !result.segments.empty();
      expect_enter += now_in && !was_in;
      expect_exit += was_in && !now_in;
    }
  }
  ASSERT_EQ(expect_enter, 10);
  ASSERT_EQ(expect_exit, 10);

  ToolRun run =
      RunSegtool({"--store", "127.0.0.1:" + std::to_string(port_), "--bootstrap",
                  (*kafka)->bootstrap_servers(), "--scripts", testing::SourceDir() + "/scripts",
                  "shadow", candidate_dir + "/loves_cats.lua", "--offset-reset", "earliest",
                  "--count", std::to_string(users.size()), "--duration", "60"},
                 dir_.path() + "/shadow.log", 80s);
  ASSERT_EQ(run.rc, 0) << run.output;
  const std::string& out = run.output;
  EXPECT_NE(out.find("as group segtool-shadow-loves_cats-"), std::string::npos) << out;
  EXPECT_NE(out.find("final: notices=30 rows=0 evaluated=30 in_segment=10 would_enter=" +
                     std::to_string(expect_enter) + " would_exit=" + std::to_string(expect_exit) +
                     " errors=0"),
            std::string::npos)
      << out;

  // Untouched: the real group's offsets, the results topic, Redis.
  auto committed_after = (*real_group)->Committed(notice_partitions, 10s);
  SEG_ASSERT_OK(committed_after);
  EXPECT_EQ(*committed_after, *committed_before);
  EXPECT_EQ(HighWatermarks((*kafka)->bootstrap_servers(), "segmentation-results", kPartitions),
            results_before);
  auto keys_after = testing::RedisCommandForTest((*redis)->port(), {"KEYS", "*"});
  SEG_ASSERT_OK(keys_after);
  EXPECT_EQ(*keys_after, *keys_before);
  EXPECT_EQ(DumpAll((*redis)->port(), *keys_before), dump_before);
  (*real_group)->Close().IgnoreError();
  // The shadow group itself committed nothing either.
  size_t at = out.find("as group ");
  ASSERT_NE(at, std::string::npos);
  std::string shadow_group = out.substr(at + 9, out.find(' ', at + 9) - at - 9);
  auto shadow_checker = kafka::Consumer::Create((*kafka)->ClientOptions("checker2"), shadow_group);
  SEG_ASSERT_OK(shadow_checker);
  auto shadow_committed = (*shadow_checker)->Committed(notice_partitions, 10s);
  SEG_ASSERT_OK(shadow_committed);
  for (const auto& [tp, offset] : *shadow_committed) EXPECT_LT(offset, 0) << tp.partition;
  (*shadow_checker)->Close().IgnoreError();

  // By default the shadow group starts at the latest offset: the 30 old
  // notices (10 of them exits) are not read, only notices sent after it joined.
  std::string log = dir_.path() + "/shadow-latest.log";
  auto latest = ChildProcess::Start(
      {testing::BinaryDir() + "/tools/segtool", "--store", "127.0.0.1:" + std::to_string(port_),
       "--bootstrap", (*kafka)->bootstrap_servers(), "shadow", candidate_dir + "/loves_cats.lua",
       "--count", "3", "--duration", "60"},
      log);
  SEG_ASSERT_OK(latest);
  auto deadline = std::chrono::steady_clock::now() + 30s;
  bool exited = false;
  ASSERT_TRUE(testing::PollUntil(
      [&] {
        if (ReadAll(log).find("assigned 2 partitions") != std::string::npos) return true;
        // Waits for the log line, not for time: exiting before joining is a failure.
        exited = latest->Wait(100ms).ok();
        return exited;
      },
      30s, "shadow's assignment", 0ms))
      << ReadAll(log);
  ASSERT_FALSE(exited) << "shadow exited early: " << ReadAll(log);
  // Until it has taken 3: a notice at a time for users who would enter (the
  // first may land before the group resolved "latest").
  int i = 1;
  auto send_notice = [&] {
    ChangeNotice n;
    n.set_user_id(users[i % 30]);
    n.set_acked_at_ms(now_);
    i += 3;
    SEG_ASSERT_OK((*producer)->Produce("user-changes", n.user_id(), n.SerializeAsString()));
    SEG_ASSERT_OK((*producer)->Flush(10s));
  };
  ASSERT_TRUE(testing::PollUntil(
      [&] {
        send_notice();  // PollUntil stops at its fatal failure
        return !HasFatalFailure() && latest->Wait(1s).ok();
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline + 30s -
                                                            std::chrono::steady_clock::now()),
      "shadow to take 3 notices and exit", 0ms))
      << ReadAll(log);
  std::string latest_out = ReadAll(log);
  EXPECT_NE(latest_out.find("from latest"), std::string::npos) << latest_out;
  EXPECT_NE(latest_out.find("final: notices=3 rows=0 evaluated=3 in_segment=3 would_enter=3 "
                            "would_exit=0 errors=0"),
            std::string::npos)
      << latest_out;

  // preview over the stored history agrees with the same direct evaluation.
  run = RunSegtool({"--store", "127.0.0.1:" + std::to_string(port_), "preview",
                    candidate_dir + "/loves_cats.lua"},
                   dir_.path() + "/preview.log");
  ASSERT_EQ(run.rc, 0) << run.output;
  EXPECT_NE(run.output.find("evaluated=30 in_segment=10 would_enter=10 would_exit=10 errors=0"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("100% 30/30 rows"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace seg

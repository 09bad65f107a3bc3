#include "segmenter/skip/bot_blacklist.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>

#include "common/clock.h"
#include "common/config.h"
#include "segmenter/skip/internal/bot_blacklist_table.h"
#include "tests/harness/status_matchers.h"

namespace seg::segmenter {
namespace {

using Decision = BotBlacklist::Decision;

// Default options with one change.
template <typename F>
BotBlacklist::Options With(F mutate) {
  BotBlacklist::Options options;
  mutate(options);
  return options;
}

class BotBlacklistTest : public ::testing::Test {
 protected:
  std::unique_ptr<BotBlacklist> Make(BotBlacklist::Options options = {}) {
    if (options.capacity_bytes == BotBlacklist::Options{}.capacity_bytes) {
      options.capacity_bytes = 1 << 20;  // small tables keep tests fast
    }
    auto blacklist = BotBlacklist::Create(options, &clock_);
    SEG_EXPECT_OK(blacklist);
    return std::move(blacklist).value();
  }
  FakeClock clock_;
};

TEST_F(BotBlacklistTest, TriggersExactlyAtThresholdNotBefore) {
  auto bl = Make();  // 300 events per 60 s
  EXPECT_EQ(bl->OnNotice("bot", 299), Decision::kProcess);
  EXPECT_FALSE(bl->IsBlacklisted("bot"));
  EXPECT_EQ(bl->OnNotice("bot", 1), Decision::kNewlyBlacklisted);
  EXPECT_TRUE(bl->IsBlacklisted("bot"));

  auto one_by_one = Make();
  for (int i = 1; i < 300; ++i) {
    ASSERT_EQ(one_by_one->OnNotice("bot", 1), Decision::kProcess) << i;
    clock_.AdvanceMs(100);  // 30 s in all: inside one window
  }
  EXPECT_EQ(one_by_one->OnNotice("bot", 1), Decision::kNewlyBlacklisted);
}

TEST_F(BotBlacklistTest, NewlyBlacklistedOnlyOnceThenSkipsAndCounts) {
  auto bl = Make();
  ASSERT_EQ(bl->OnNotice("bot", 500), Decision::kNewlyBlacklisted);
  for (int i = 0; i < 100; ++i) {
    clock_.AdvanceMs(1'000);
    EXPECT_EQ(bl->OnNotice("bot", 50), Decision::kBlacklisted);
  }
  EXPECT_EQ(bl->stats().newly_blacklisted, 1u);
  EXPECT_EQ(bl->stats().skipped_notices, 100u);
  EXPECT_EQ(bl->OnNotice("human", 1), Decision::kProcess);
}

TEST_F(BotBlacklistTest, ExpiresAfterBlacklistTime) {
  auto bl = Make(With([](auto& o) { o.blacklist_ms = 3'600'000; }));
  ASSERT_EQ(bl->OnNotice("bot", 300), Decision::kNewlyBlacklisted);
  clock_.AdvanceMs(3'600'000 - 1);
  EXPECT_EQ(bl->OnNotice("bot", 1), Decision::kBlacklisted);
  clock_.AdvanceMs(1);
  EXPECT_FALSE(bl->IsBlacklisted("bot"));
  EXPECT_EQ(bl->OnNotice("bot", 1), Decision::kProcess);  // fresh window
  EXPECT_EQ(bl->OnNotice("bot", 298), Decision::kProcess);
  // Still a bot: blacklisted again, and the caller told again.
  EXPECT_EQ(bl->OnNotice("bot", 1), Decision::kNewlyBlacklisted);
}

TEST_F(BotBlacklistTest, WindowForgetsOldEvents) {
  auto bl = Make();
  EXPECT_EQ(bl->OnNotice("u", 200), Decision::kProcess);
  clock_.AdvanceMs(60'000);
  EXPECT_EQ(bl->OnNotice("u", 200), Decision::kProcess);
  clock_.AdvanceMs(60'000);
  EXPECT_EQ(bl->OnNotice("u", 299), Decision::kProcess);
}

TEST_F(BotBlacklistTest, BurstAcrossSubWindowBoundaryIsCaught) {
  auto bl = Make();
  clock_.AdvanceMs(9'900);
  EXPECT_EQ(bl->OnNotice("bot", 150), Decision::kProcess);
  clock_.AdvanceMs(200);  // next 10 s sub-window
  EXPECT_EQ(bl->OnNotice("bot", 150), Decision::kNewlyBlacklisted);
}

TEST_F(BotBlacklistTest, QuietUserIsNeverBlacklisted) {
  auto bl = Make();
  std::mt19937_64 rng(3);
  // Reader A: bursts of 299 events every 61 s: never 300 within 60 s.
  // Reader B: 4 events per second, steady (240 per minute).
  // Reader C: random bursts, at most 299 events in any 60 s.
  std::deque<std::pair<int64_t, int64_t>> c_recent;  // (second, events)
  int64_t c_sum = 0;
  for (int64_t s = 0; s < 3 * 3600; ++s) {
    {
      SCOPED_TRACE(s);
      if (s % 61 == 0) {
        ASSERT_EQ(bl->OnNotice("reader-a", 299), Decision::kProcess);
      }
      ASSERT_EQ(bl->OnNotice("reader-b", 4), Decision::kProcess);
      while (!c_recent.empty() && c_recent.front().first <= s - 60) {
        c_sum -= c_recent.front().second;
        c_recent.pop_front();
      }
      const int64_t burst = std::min<int64_t>(rng() % 40, 299 - c_sum);
      if (burst > 0) {
        c_recent.emplace_back(s, burst);
        c_sum += burst;
        ASSERT_EQ(bl->OnNotice("reader-c", static_cast<uint32_t>(burst)), Decision::kProcess);
      }
    }
    clock_.AdvanceMs(1'000);
  }
  EXPECT_EQ(bl->stats().newly_blacklisted, 0u);
}

TEST_F(BotBlacklistTest, MemoryBoundedUnderFloodOfDistinctUsers) {
  auto bl = Make(With([](auto& o) { o.capacity_bytes = 64 << 10; }));
  ASSERT_EQ(bl->capacity(), 2048u);
  const size_t bytes = bl->memory_bytes();
  int bot_newly = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    EXPECT_EQ(bl->OnNotice("flood-" + std::to_string(i), 1), Decision::kProcess);
    if (i % 1000 == 999) {
      // A bot among the flood: 10 events per notice, 30 notices reach 300.
      if (bl->OnNotice("bot", 10) == Decision::kNewlyBlacklisted) ++bot_newly;
    }
    if (i % 1000 == 0) clock_.AdvanceMs(1);
    ASSERT_LE(bl->size(), bl->capacity());
  }
  EXPECT_EQ(bl->memory_bytes(), bytes);
  EXPECT_EQ(bot_newly, 1);
  EXPECT_TRUE(bl->IsBlacklisted("bot"));
  EXPECT_GT(bl->stats().evictions, 900'000u);
  EXPECT_EQ(bl->stats().evicted_blacklisted, 0u);
}

TEST_F(BotBlacklistTest, HugeEventCountSaturatesAndBlacklists) {
  auto bl = Make();
  EXPECT_EQ(bl->OnNotice("bot", 0xFFFFFFFFu), Decision::kNewlyBlacklisted);
  EXPECT_EQ(bl->OnNotice("zero", 0), Decision::kProcess);
}

TEST_F(BotBlacklistTest, CreateRejectsBadOptions) {
  EXPECT_FALSE(BotBlacklist::Create({}, nullptr).ok());
  EXPECT_FALSE(BotBlacklist::Create(With([](auto& o) { o.window_ms = 5; }), &clock_).ok());
  EXPECT_FALSE(BotBlacklist::Create(With([](auto& o) { o.threshold_events = 0; }), &clock_).ok());
  EXPECT_FALSE(
      BotBlacklist::Create(With([](auto& o) { o.threshold_events = 6 * 65535 + 1; }), &clock_)
          .ok());
  EXPECT_FALSE(BotBlacklist::Create(With([](auto& o) { o.blacklist_ms = 0; }), &clock_).ok());
  EXPECT_FALSE(BotBlacklist::Create(With([](auto& o) { o.capacity_bytes = 127; }), &clock_).ok());
  SEG_EXPECT_OK(BotBlacklist::Create(With([](auto& o) { o.capacity_bytes = 128; }), &clock_));
}

TEST_F(BotBlacklistTest, ExportsCounters) {
  BotBlacklist::Options options;
  options.metrics_labels = {{"test", "BotBlacklistExportsCounters"}};
  auto bl = Make(options);
  ASSERT_EQ(bl->OnNotice("bot", 300), Decision::kNewlyBlacklisted);
  ASSERT_EQ(bl->OnNotice("bot", 1), Decision::kBlacklisted);
  bl->FlushMetrics();
  EXPECT_DOUBLE_EQ(
      metrics::GetCounter("seg_segmenter_bot_blacklisted_total", "", options.metrics_labels)
          .Value(),
      1);
  EXPECT_DOUBLE_EQ(
      metrics::GetCounter("seg_segmenter_bot_skipped_notices_total", "", options.metrics_labels)
          .Value(),
      1);
}

// -- Sustained rate (BotOptions) --

BotOptions Sustained() {
  BotOptions o;
  o.threshold_events = 300;  // per 60 s
  o.sustain_ms = 120'000;
  o.capacity_bytes = 1 << 20;
  return o;
}

TEST_F(BotBlacklistTest, RateMustBeHeldForSustainNotASpike) {
  auto bl = std::move(BotBlacklist::Create(Sustained(), &clock_)).value();
  // A spike of 1000 events, then quiet: never blacklisted.
  EXPECT_EQ(bl->OnNotice("spiky", 1000), Decision::kProcess);
  for (int s = 0; s < 600; ++s) {
    clock_.AdvanceMs(1'000);
    ASSERT_EQ(bl->OnNotice("spiky", 1), Decision::kProcess) << s;
  }
  // 10 events/s (600 a minute) held: blacklisted once 120 s have passed
  // since the window first reached 300 (t = 29 s, sub-window 2 -> 14).
  auto steady = std::move(BotBlacklist::Create(Sustained(), &clock_)).value();
  int64_t caught_s = -1;
  for (int s = 0; s < 600 && caught_s < 0; ++s) {
    if (steady->OnNotice("steady", 10) == Decision::kNewlyBlacklisted) caught_s = s;
    clock_.AdvanceMs(1'000);
  }
  EXPECT_GE(caught_s, 140);
  EXPECT_LE(caught_s, 149);
  EXPECT_EQ(steady->stats().by_rate, 1u);
  EXPECT_EQ(steady->OnNotice("steady", 10), Decision::kBlacklisted);
}

TEST_F(BotBlacklistTest, SustainStreakEndsWhenTheRateDrops) {
  auto bl = std::move(BotBlacklist::Create(Sustained(), &clock_)).value();
  // 100 s over the threshold, 70 s silent, 100 s over again: neither streak
  // lasts 120 s.
  for (int round = 0; round < 2; ++round) {
    for (int s = 0; s < 100; ++s) {
      ASSERT_EQ(bl->OnNotice("u", 20), Decision::kProcess) << round << " " << s;
      clock_.AdvanceMs(1'000);
    }
    clock_.AdvanceMs(70'000);
  }
  EXPECT_EQ(bl->stats().newly_blacklisted, 0u);
}

// -- Row rules --

// A user's row as the node would read it: EventViews into owned strings.
class Row {
 public:
  void Add(int64_t time_ms, std::string url, std::string agent, uint32_t ipv4) {
    urls_.push_back(std::move(url));
    agents_.push_back(std::move(agent));
    EventView& v = views_.emplace_back();
    v.time_ms = time_ms;
    v.type = 1;
    v.url = urls_.back();
    v.user_agent = agents_.back();
    v.ipv4 = ipv4;
  }
  std::span<const EventView> view() const { return views_; }

 private:
  std::deque<std::string> urls_, agents_;  // stable addresses
  std::vector<EventView> views_;
};

constexpr const char* kChrome =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36";

std::string Agent(int i) {
  return "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/12" +
         std::to_string(i) + ".0.0.0 Safari/537.36";
}

BotOptions RowDefaults() {
  BotOptions o;
  o.capacity_bytes = 1 << 20;
  return o;
}

// Feeds a crawler that requests a new page every `period_ms` (+-30% jitter)
// for `seconds`, calling ObserveRow after each event as the node would after
// a read; returns the seconds until kNewlyBlacklisted, or -1.
int64_t CrawlUntilCaught(BotBlacklist& bl, FakeClock& clock, int agents, int ips, int64_t period_ms,
                         int64_t seconds, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Row row;
  const int64_t start = clock.NowMs();
  for (int64_t page = 0; clock.NowMs() - start < seconds * 1000; ++page) {
    const int64_t gap =
        std::uniform_int_distribution<int64_t>(period_ms * 7 / 10, period_ms * 13 / 10)(rng);
    clock.AdvanceMs(gap);
    row.Add(clock.NowMs(), "https://www.market.example.com/p/" + std::to_string(100'000 + page * 3),
            agents == 1 ? std::string(kChrome) : Agent(static_cast<int>(rng() % agents)),
            0x2D3C0000u + static_cast<uint32_t>(rng() % ips));
    const Decision d = bl.ObserveRow("crawler", row.view(), clock.NowMs());
    if (d == Decision::kNewlyBlacklisted) return (clock.NowMs() - start) / 1000;
    EXPECT_EQ(d, Decision::kProcess);
  }
  return -1;
}

TEST_F(BotBlacklistTest, SteadyCrawlerWithRotatingIpsIsCaught) {
  auto bl = std::move(BotBlacklist::Create(RowDefaults(), &clock_)).value();
  // One browser agent, a proxy pool of 50: caught at the 20th event.
  const int64_t caught = CrawlUntilCaught(*bl, clock_, 1, 50, 2'000, 600, 1);
  EXPECT_GE(caught, 0);
  EXPECT_LE(caught, 60);
  EXPECT_EQ(bl->stats().by_ips, 1u);
  EXPECT_TRUE(bl->IsBlacklisted("crawler"));
  EXPECT_EQ(bl->OnNotice("crawler", 1), Decision::kBlacklisted);
}

TEST_F(BotBlacklistTest, SteadyCrawlerWithRotatingAgentsIsCaught) {
  auto bl = std::move(BotBlacklist::Create(RowDefaults(), &clock_)).value();
  const int64_t caught = CrawlUntilCaught(*bl, clock_, 6, 1, 2'000, 600, 2);
  EXPECT_GE(caught, 0);
  EXPECT_LE(caught, 60);
  EXPECT_EQ(bl->stats().by_user_agents, 1u);
}

TEST_F(BotBlacklistTest, SteadyCrawlerWithOneClientIsCaughtByCadenceAfterMinutes) {
  auto bl = std::move(BotBlacklist::Create(RowDefaults(), &clock_)).value();
  // Nothing but cadence and new URLs: caught once its events span 120 s.
  const int64_t caught = CrawlUntilCaught(*bl, clock_, 1, 1, 1'500, 600, 3);
  EXPECT_GE(caught, 120);
  EXPECT_LE(caught, 130);
  EXPECT_EQ(bl->stats().by_crawl, 1u);
}

TEST_F(BotBlacklistTest, BusyHumanLikeUserIsNeverBlacklisted) {
  BotOptions options = RowDefaults();
  auto bl = std::move(BotBlacklist::Create(options, &clock_)).value();
  std::mt19937_64 rng(5);
  Row row;
  // Two hours of heavy browsing, one laptop, one address: a page load every
  // ~3 s (exponential pauses) firing 1-6 events within 800 ms (page,
  // frames, trackers), half of them to pages seen before. ~4,000 events an
  // hour, in bursts the fixture's 300-a-minute spike rule would have to allow.
  std::vector<std::string> seen;
  std::exponential_distribution<double> pause(1.0 / 3'000);
  const int64_t end = clock_.NowMs() + 2 * 3'600'000;
  int64_t page = 0;
  while (clock_.NowMs() < end) {
    clock_.AdvanceMs(1 + static_cast<int64_t>(pause(rng)));
    std::string url;
    if (!seen.empty() && rng() % 2 == 0) {
      url = seen[rng() % seen.size()];
    } else {
      url = "https://news.example.com/story/" + std::to_string(page++);
      seen.push_back(url);
    }
    const int burst = 1 + static_cast<int>(rng() % 6);
    int64_t t = clock_.NowMs();
    for (int i = 0; i < burst; ++i) {
      row.Add(t, i == 0 ? url : url + "#tracker" + std::to_string(i), kChrome, 0x0A000007u);
      t += static_cast<int64_t>(rng() % 160);
    }
    clock_.AdvanceMs(t - clock_.NowMs());
    ASSERT_EQ(bl->OnNotice("human", static_cast<uint32_t>(burst)), Decision::kProcess);
    ASSERT_EQ(bl->ObserveRow("human", row.view(), clock_.NowMs()), Decision::kProcess)
        << "after " << page << " pages";
  }
  EXPECT_EQ(bl->stats().newly_blacklisted, 0u);
  EXPECT_GT(bl->stats().rows_analysed, 1000u);
  // A dashboard refreshing every 30 s: steady, but always the same page.
  Row dashboard;
  for (int i = 0; i < 240; ++i) {
    clock_.AdvanceMs(30'000);
    dashboard.Add(clock_.NowMs(), "https://grafana.example.com/d/ops", kChrome, 0x0A000008u);
    ASSERT_EQ(bl->ObserveRow("ops", dashboard.view(), clock_.NowMs()), Decision::kProcess) << i;
  }
}

TEST_F(BotBlacklistTest, RowRulesOnlyLookAtTheRecentWindow) {
  auto bl = std::move(BotBlacklist::Create(RowDefaults(), &clock_)).value();
  // 40 addresses over a month (travel, mobile): each day's few events come
  // from one address; never 8 within 10 minutes.
  Row row;
  for (int day = 0; day < 40; ++day) {
    for (int i = 0; i < 10; ++i) {
      clock_.AdvanceMs(60'000);
      row.Add(clock_.NowMs(), "https://mail.example.com/inbox", kChrome,
              0xC0A80000u + static_cast<uint32_t>(day));
      ASSERT_EQ(bl->ObserveRow("traveller", row.view(), clock_.NowMs()), Decision::kProcess);
    }
    clock_.AdvanceMs(86'400'000 - 600'000);
  }
  EXPECT_EQ(bl->stats().newly_blacklisted, 0u);
}

TEST_F(BotBlacklistTest, ThresholdsComeFromConfig) {
  auto config = Config::FromString(R"(
segmenter:
  bot_blacklist:
    threshold_events: 100
    window_ms: 30000
    capacity_users: 4096
  bots:
    window_ms: 12000
    sustain_ms: 0
    max_ips: 3
    max_user_agents: 0
    rotation_min_events: 5
    crawl_min_regular_share: 2
)",
                                   "test.yaml");
  SEG_ASSERT_OK(config);
  BotOptions options;
  SEG_ASSERT_OK(options.LoadFrom(*config));
  SEG_EXPECT_OK(config->CheckNoUnknownKeys());
  EXPECT_EQ(options.threshold_events, 100u);  // the old key, as an alias
  EXPECT_EQ(options.window_ms, 12'000);       // the new key wins
  EXPECT_EQ(options.capacity_bytes, 4096u * 32);
  EXPECT_EQ(options.sustain_ms, 0);
  EXPECT_EQ(options.max_ips, 3);

  // The loaded thresholds are the ones applied.
  auto bl = std::move(BotBlacklist::Create(options, &clock_)).value();
  EXPECT_EQ(bl->capacity(), 4096u);
  EXPECT_EQ(bl->OnNotice("spike", 100), Decision::kNewlyBlacklisted);  // sustain 0: at once
  Row row;
  for (int i = 0; i < 5; ++i) {
    clock_.AdvanceMs(1'000);
    row.Add(clock_.NowMs(), "https://a.example.com/", kChrome, 0x0A000001u + (i % 3));
  }
  EXPECT_EQ(bl->ObserveRow("three-ips", row.view(), clock_.NowMs()), Decision::kNewlyBlacklisted);
  auto defaults = std::move(BotBlacklist::Create(RowDefaults(), &clock_)).value();
  EXPECT_EQ(defaults->ObserveRow("three-ips", row.view(), clock_.NowMs()), Decision::kProcess);

  // Out of range: an error naming the key.
  auto bad = Config::FromString("segmenter:\n  bots:\n    max_ips: 99\n", "bad.yaml");
  SEG_ASSERT_OK(bad);
  BotOptions rejected;
  Status s = rejected.LoadFrom(*bad);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.ToString().find("max_ips"), std::string::npos) << s;
}

TEST_F(BotBlacklistTest, TableStaysBoundedWithRowRules) {
  BotOptions options = RowDefaults();
  options.capacity_bytes = 64 << 10;  // 2048 users
  auto bl = std::move(BotBlacklist::Create(options, &clock_)).value();
  const size_t bytes = bl->memory_bytes();
  Row human;
  human.Add(clock_.NowMs(), "https://news.example.com/", kChrome, 0x0A000001u);
  Row rotating;
  for (int i = 0; i < 20; ++i) {
    rotating.Add(clock_.NowMs() - 20 + i, "https://a.example.com/" + std::to_string(i), kChrome,
                 0x0A000000u + i);
  }
  int caught = 0;
  for (int i = 0; i < 200'000; ++i) {
    const std::string id = "u" + std::to_string(i);
    // People's rows take no entry; only notices and blacklistings do.
    ASSERT_EQ(bl->ObserveRow(id, human.view(), clock_.NowMs()), Decision::kProcess);
    if (i % 100 == 0) {
      caught += bl->ObserveRow("bot" + id, rotating.view(), clock_.NowMs()) ==
                Decision::kNewlyBlacklisted;
    } else {
      bl->OnNotice(id, 1);
    }
    ASSERT_LE(bl->size(), bl->capacity());
  }
  EXPECT_EQ(caught, 2000);
  EXPECT_EQ(bl->memory_bytes(), bytes);
  EXPECT_EQ(bl->size(), bl->capacity());
  EXPECT_GT(bl->stats().evictions, 100'000u);
  // Blacklisted entries are the last to go: the newest bots are still known.
  EXPECT_TRUE(bl->IsBlacklisted("botu199900"));
}

TEST_F(BotBlacklistTest, RowSignalsOffOnlyReportsEarlierBlacklistings) {
  BotOptions options = RowDefaults();
  options.row_signals = false;
  options.sustain_ms = 0;
  options.threshold_events = 300;
  auto bl = std::move(BotBlacklist::Create(options, &clock_)).value();
  Row rotating;
  for (int i = 0; i < 50; ++i) {
    rotating.Add(clock_.NowMs() - 50 + i, "https://a.example.com/" + std::to_string(i), Agent(i),
                 0x0A000000u + i);
  }
  EXPECT_EQ(bl->ObserveRow("u", rotating.view(), clock_.NowMs()), Decision::kProcess);
  ASSERT_EQ(bl->OnNotice("u", 300), Decision::kNewlyBlacklisted);
  EXPECT_EQ(bl->ObserveRow("u", rotating.view(), clock_.NowMs()), Decision::kBlacklisted);
}

}  // namespace
}  // namespace seg::segmenter

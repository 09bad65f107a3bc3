// Due times (EvaluationResult::next_change_ms) and quarantine expiry of the
// real ScriptHost, with scripts written to a temp dir and a FakeClock.
// The property test checks the "never late" guarantee: with the same events,
// membership is identical at every time before next_change_ms.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "common/clock.h"
#include "segmenter/script_host/internal/script_host_fixtures.h"
#include "segmenter/script_host/script_host.h"
#include "tests/harness/status_matchers.h"

namespace seg::segmenter {
namespace {

namespace fs = std::filesystem;
using internal::OwnedEvent;

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kDay = 86'400'000;
constexpr int64_t kHour = 3'600'000;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

std::string SourceDir() {
  const char* dir = std::getenv("SEG_SOURCE_DIR");
  return dir ? dir : ".";
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "script_host_due_test.XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(fs::path(path_) / name, std::ios::binary | std::ios::trunc) << text;
  }

 private:
  std::string path_;
};

// A script whose evaluate() body is `body`, declaring segment "x".
std::string BodyScript(const std::string& name, const std::string& body) {
  return "return segment_script { name = '" + name +
         "', version = '1', segments = {'x'},\n evaluate = function(user)\n" + body + "\nend }\n";
}

OwnedEvent Ev(const std::string& type, int64_t ago_ms, const std::string& url = "") {
  OwnedEvent e;
  e.type = internal::EventTypeFromName(type);
  e.time_ms = kNow - ago_ms;
  e.url = url;
  return e;
}

std::vector<EventView> Views(const std::vector<OwnedEvent>& events) {
  std::vector<EventView> v;
  for (const auto& e : events) v.push_back(e.View());
  return v;
}

class ScriptHostDueTest : public ::testing::Test {
 protected:
  std::unique_ptr<ScriptHost> MakeHost(int quarantine_after = 3, int64_t quarantine_ms = 600'000,
                                       int64_t recheck_ms = 86'400'000) {
    ScriptHostOptions o;
    o.scripts_dir = dir_.path();
    o.memory_limit_mb = 64;
    o.quarantine_after_failures = quarantine_after;
    o.quarantine_ms = quarantine_ms;
    o.opaque_time_recheck_ms = recheck_ms;
    o.clock = &clock_;
    o.reload_check_interval_ms = 0;
    auto host = ScriptHost::Create(o);
    SEG_EXPECT_OK(host);
    return host.ok() ? std::move(host).value() : nullptr;
  }

  EvaluationResult Eval(ScriptHost& host, const std::vector<OwnedEvent>& events,
                        const std::string& user = "u1") {
    EvaluationResult r;
    std::vector<EventView> views = Views(events);
    Status st = host.EvaluateUser(user, views, &r);
    SEG_EXPECT_OK(st);
    return r;
  }

  static const ScriptResult* Find(const EvaluationResult& r, const std::string& name) {
    for (const auto& s : r.scripts) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }

  TempDir dir_;
  FakeClock clock_{kNow};
};

TEST_F(ScriptHostDueTest, WindowWithOneMatchIsDueWhenItLeaves) {
  dir_.Write(
      "w.lua",
      BodyScript("w", "if user:any{type = 'page_view', within_days = 7} then return 'x' end"));
  auto host = MakeHost();
  std::vector<OwnedEvent> events = {Ev("page_view", 2 * kDay), Ev("click", 1 * kDay)};
  EvaluationResult r = Eval(*host, events);
  EXPECT_EQ(r.segments, std::vector<std::string>{"x"});
  EXPECT_EQ(r.next_change_ms, events[0].time_ms + 7 * kDay);
  ASSERT_EQ(r.scripts.size(), 1u);
  EXPECT_EQ(r.scripts[0].next_change_ms, r.next_change_ms);
}

TEST_F(ScriptHostDueTest, CountIsDueWhenTheOldestMatchLeaves) {
  dir_.Write("c.lua", BodyScript("c",
                                 "if user:count{type = 'page_view', within_days = 30, "
                                 "url_contains = 'cat'} >= 3 then return 'x' end"));
  auto host = MakeHost();
  std::vector<OwnedEvent> events = {
      Ev("page_view", 40 * kDay, "https://a.example/cat/1"),  // outside the window
      Ev("page_view", 28 * kDay, "https://a.example/dog"),    // in it, no match
      Ev("click", 27 * kDay, "https://a.example/cat/2"),      // wrong type
      Ev("page_view", 25 * kDay, "https://a.example/cat/3"),  // the oldest match
      Ev("page_view", 10 * kDay, "https://a.example/cat/4"),
      Ev("page_view", 3 * kDay, "https://a.example/cat/5"),
  };
  EvaluationResult r = Eval(*host, events);
  EXPECT_EQ(r.segments, std::vector<std::string>{"x"});
  EXPECT_EQ(r.next_change_ms, events[3].time_ms + 30 * kDay);
  // No match at all: nothing can leave, and nothing enters from below.
  std::vector<OwnedEvent> none = {Ev("page_view", 5 * kDay, "https://a.example/dog")};
  EXPECT_EQ(Eval(*host, none).next_change_ms, kNever);
}

TEST_F(ScriptHostDueTest, NoWindowAndNoOpaqueHelperIsNever) {
  dir_.Write("n.lua",
             BodyScript("n", "if user:count{type = 'page_view'} >= 1 and user:any{since_ms = " +
                                 std::to_string(kNow - 5 * kDay) +
                                 ", until_ms = " + std::to_string(kNow + 5 * kDay) +
                                 "} and user:distinct('host', {}) >= 1 then return 'x' end"));
  auto host = MakeHost();
  EvaluationResult r = Eval(*host, {Ev("page_view", 2 * kDay, "https://a.example/")});
  EXPECT_EQ(r.segments, std::vector<std::string>{"x"});
  EXPECT_EQ(r.next_change_ms, kNever);
  EXPECT_EQ(r.scripts[0].next_change_ms, kNever);
}

TEST_F(ScriptHostDueTest, OlderThanIsDueWhenTheNextMatchGetsOldEnough) {
  dir_.Write("o.lua", BodyScript("o",
                                 "if user:count{type = 'page_view', older_than_days = 10, "
                                 "url_contains = 'cat'} >= 3 then return 'x' end"));
  auto host = MakeHost();
  std::vector<OwnedEvent> events = {
      Ev("page_view", 15 * kDay, "https://a.example/cat/1"),  // old enough
      Ev("page_view", 12 * kDay, "https://a.example/cat/2"),  // old enough
      Ev("page_view", 9 * kDay, "https://a.example/dog"),     // never matches
      Ev("click", 9 * kDay, "https://a.example/cat/x"),       // never matches
      Ev("page_view", 8 * kDay, "https://a.example/cat/3"),   // old enough in 2 days
      Ev("page_view", 3 * kDay, "https://a.example/cat/4"),
  };
  EvaluationResult r = Eval(*host, events);
  EXPECT_TRUE(r.segments.empty());
  // Exact, not the type-mask bound (that would be the dog page: now + 1 day).
  EXPECT_EQ(r.next_change_ms, events[4].time_ms + 10 * kDay);
  // And indeed the user enters then, not a millisecond before.
  EvaluateOptions at;
  std::vector<EventView> views = Views(events);
  at.now_ms = r.next_change_ms - 1;
  SEG_ASSERT_OK(host->EvaluateUser("u1", views, at, &r));
  EXPECT_TRUE(r.segments.empty());
  at.now_ms += 1;
  SEG_ASSERT_OK(host->EvaluateUser("u1", views, at, &r));
  EXPECT_EQ(r.segments, std::vector<std::string>{"x"});
}

TEST_F(ScriptHostDueTest, OlderThanWithUntilBelowTheEdgeIsNever) {
  dir_.Write("o.lua",
             BodyScript("o", "if user:any{older_than_days = 10, until_ms = " +
                                 std::to_string(kNow - 20 * kDay) + "} then return 'x' end"));
  auto host = MakeHost();
  EXPECT_EQ(Eval(*host, {Ev("page_view", 5 * kDay), Ev("page_view", 30 * kDay)}).next_change_ms,
            kNever);
}

TEST_F(ScriptHostDueTest, OpaqueHelpersAreRecheckedAfterTheConfiguredTime) {
  struct Case {
    std::string body;
  } cases[] = {
      {"local d = user:days_since{type = 'click'}; if d and d < 3 then return 'x' end"},
      {"if user:now_ms() > 0 then return 'x' end"},
      {"if user:first{type = 'click'} then return 'x' end"},
      {"if user:last{type = 'click'} then return 'x' end"},
      {"if #user:events{type = 'click'} > 0 then return 'x' end"},
      {"if user:count{where = function(e) return true end} > 0 then return 'x' end"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    TempDir dir;
    dir.Write("d.lua", BodyScript("d", c.body));
    ScriptHostOptions o;
    o.scripts_dir = dir.path();
    o.clock = &clock_;
    o.opaque_time_recheck_ms = 6 * kHour;
    auto host = ScriptHost::Create(o);
    SEG_ASSERT_OK(host);
    EvaluationResult r = Eval(**host, {Ev("click", 1 * kDay)});
    EXPECT_EQ(r.segments, std::vector<std::string>{"x"});
    EXPECT_EQ(r.next_change_ms, kNow + 6 * kHour);
  }
  // Default 24 h; a window due earlier still wins; the flag is per call.
  dir_.Write("a.lua", BodyScript("a",
                                 "if user:days_since{} and user:any{within_hours = 2} then "
                                 "return 'x' end"));
  dir_.Write("b.lua", BodyScript("b", "if user:any{within_days = 30} then return 'x' end"));
  auto host = MakeHost();
  EvaluationResult r = Eval(*host, {Ev("click", 1 * kHour), Ev("click", 10 * kDay)});
  EXPECT_EQ(Find(r, "a")->next_change_ms, kNow + kHour);      // 1 h old + 2 h window
  EXPECT_EQ(Find(r, "b")->next_change_ms, kNow + 20 * kDay);  // not opaque: a's flag is gone
  EXPECT_EQ(r.next_change_ms, kNow + kHour);
  r = Eval(*host, {Ev("click", 10 * kDay)});
  EXPECT_EQ(Find(r, "a")->next_change_ms, kNow + kDay);  // recheck: days_since
}

TEST_F(ScriptHostDueTest, MemoHitStillContributes) {
  // Same filter bytes in both scripts (one inline, one filter{}): b's call is
  // answered from the per-user memo and must still report the due time.
  dir_.Write("a.lua", BodyScript("a",
                                 "if user:count{type = 'click', within_days = 7} > 0 then "
                                 "return 'x' end"));
  dir_.Write("b.lua", "local F = filter{type = 'click', within_days = 7}\n" +
                          BodyScript("b", "if user:any(F) then return 'x' end"));
  auto host = MakeHost();
  EvaluationResult r = Eval(*host, {Ev("click", 3 * kDay), Ev("click", 1 * kDay)});
  const int64_t due = kNow - 3 * kDay + 7 * kDay;
  EXPECT_EQ(Find(r, "a")->next_change_ms, due);
  EXPECT_EQ(Find(r, "b")->next_change_ms, due);
  EXPECT_EQ(r.next_change_ms, due);
}

TEST_F(ScriptHostDueTest, FailedScriptDoesNotContribute) {
  dir_.Write("a.lua", BodyScript("a", "if user:any{within_days = 7} then return 'x' end"));
  dir_.Write("b.lua", BodyScript("b", "user:any{within_hours = 1}; error('boom')"));
  auto host = MakeHost();
  EvaluationResult r = Eval(*host, {Ev("click", 30 * 60'000), Ev("click", 2 * kDay)});
  EXPECT_EQ(r.failed, std::vector<std::string>{"b"});
  EXPECT_EQ(Find(r, "b")->next_change_ms, kNever);
  EXPECT_EQ(r.next_change_ms, kNow - 2 * kDay + 7 * kDay);
}

TEST_F(ScriptHostDueTest, QuarantineLiftsAfterQuarantineMsAndOneFailureRequarantines) {
  dir_.Write("flaky.lua", BodyScript("flaky", "if user:id() ~= 'good' then error('boom') end"));
  auto host = MakeHost(/*quarantine_after=*/2, /*quarantine_ms=*/60'000);
  Eval(*host, {}, "bad");
  EXPECT_FALSE(host->scripts()[0].quarantined);
  EXPECT_EQ(host->scripts()[0].quarantined_until_ms, 0);
  Eval(*host, {}, "bad");
  ASSERT_TRUE(host->scripts()[0].quarantined);
  EXPECT_EQ(host->scripts()[0].quarantined_until_ms, kNow + 60'000);
  clock_.AdvanceMs(59'999);
  EXPECT_EQ(Eval(*host, {}, "good").quarantined, std::vector<std::string>{"flaky"});
  clock_.AdvanceMs(1);
  // Over: it runs again; one failure on probation quarantines it at once.
  EvaluationResult r = Eval(*host, {}, "bad");
  EXPECT_TRUE(r.quarantined.empty());
  EXPECT_EQ(r.failed, std::vector<std::string>{"flaky"});
  ASSERT_TRUE(host->scripts()[0].quarantined);
  EXPECT_EQ(host->scripts()[0].quarantined_until_ms, kNow + 120'000);
  EXPECT_EQ(Eval(*host, {}, "good").quarantined, std::vector<std::string>{"flaky"});
  // Over again; a success ends the probation, so one failure is not enough.
  clock_.AdvanceMs(60'000);
  r = Eval(*host, {}, "good");
  EXPECT_TRUE(r.quarantined.empty());
  EXPECT_EQ(r.segments, std::vector<std::string>{});
  ASSERT_NE(Find(r, "flaky"), nullptr);
  EXPECT_EQ(host->scripts()[0].consecutive_failures, 0);
  Eval(*host, {}, "bad");
  EXPECT_FALSE(host->scripts()[0].quarantined);
}

TEST_F(ScriptHostDueTest, QuarantineMsZeroLastsUntilReload) {
  dir_.Write("bad.lua", BodyScript("bad", "error('boom')"));
  auto host = MakeHost(/*quarantine_after=*/1, /*quarantine_ms=*/0);
  Eval(*host, {});
  ASSERT_TRUE(host->scripts()[0].quarantined);
  EXPECT_EQ(host->scripts()[0].quarantined_until_ms, kNever);
  clock_.AdvanceMs(365 * kDay);
  EXPECT_EQ(Eval(*host, {}).quarantined, std::vector<std::string>{"bad"});
  SEG_ASSERT_OK(host->Reload());
  EXPECT_FALSE(host->scripts()[0].quarantined);
  EXPECT_EQ(host->scripts()[0].quarantined_until_ms, 0);
}

TEST_F(ScriptHostDueTest, BadOptionsAreRejected) {
  ScriptHostOptions o;
  o.scripts_dir = dir_.path();
  o.quarantine_ms = -1;
  EXPECT_FALSE(ScriptHost::Create(o).ok());
  o.quarantine_ms = 0;
  o.opaque_time_recheck_ms = 0;
  EXPECT_FALSE(ScriptHost::Create(o).ok());
}

// ---------------------------------------------------------------- property

// Never late: for random histories drawn from the shipped fixtures' events
// (so the shipped filters match often) at random ages, every script that
// uses no opaque helper answers the same at every time before its
// next_change_ms. The shipped scripts plus older_than / hour-window shapes
// the shipped set lacks.
TEST(ScriptHostDuePropertyTest, MembershipIsStableBeforeTheDueTime) {
  TempDir dir;
  const std::string scripts = SourceDir() + "/scripts";
  std::vector<OwnedEvent> pool;
  for (const auto& entry : fs::directory_iterator(scripts)) {
    if (entry.path().extension() != ".lua") continue;
    std::ifstream in(entry.path());
    std::stringstream buf;
    buf << in.rdbuf();
    const std::string src = buf.str();
    // Opaque scripts (days_since, now_ms, first, last, events, where) get a
    // recheck policy, not a bound: they are outside the guarantee.
    bool opaque = false;
    for (const char* word : {"days_since", "now_ms", ":first", ":last", ":events", "where"}) {
      opaque = opaque || src.find(word) != std::string::npos;
    }
    if (!opaque) dir.Write(entry.path().filename().string(), src);
    auto fixture =
        internal::LoadScriptFixture(scripts + "/tests/" + entry.path().stem().string() + ".json");
    SEG_ASSERT_OK(fixture);
    for (const auto& c : fixture->cases) {
      for (const auto& e : c.events) pool.push_back(e);
    }
  }
  ASSERT_FALSE(pool.empty());
  dir.Write("zz_older.lua", R"LUA(
local OLD_PAGES = filter { type = "page_view", older_than_days = 5, within_days = 40 }
local OLD_SEARCH = filter { type = "search", older_than_days = 2 }
return segment_script {
  name = "zz_older", version = "1", segments = { "old_pages", "old_search", "hours" },
  evaluate = function(user)
    local out = {}
    if user:count(OLD_PAGES) >= 2 then out[#out + 1] = "old_pages" end
    if user:any(OLD_SEARCH) and not user:any { type = "search", within_hours = 12 } then
      out[#out + 1] = "old_search"
    end
    if user:distinct("day", { within_hours = 50 }) == 2 then out[#out + 1] = "hours" end
    return out
  end,
}
)LUA");
  FakeClock clock(kNow);
  ScriptHostOptions o;
  o.scripts_dir = dir.path();
  o.clock = &clock;
  o.reload_check_interval_ms = 0;
  o.quarantine_after_failures = 0;
  auto created = ScriptHost::Create(o);
  SEG_ASSERT_OK(created);
  ScriptHost& host = **created;
  ASSERT_GE(host.scripts().size(), 8u);

  std::mt19937_64 rng(20261205);
  EvaluationResult at_now, later;
  int finite = 0, checks = 0;
  for (int user = 0; user < 300; ++user) {
    std::vector<OwnedEvent> events;
    const int n = static_cast<int>(rng() % 25);
    for (int i = 0; i < n; ++i) {
      OwnedEvent e = pool[rng() % pool.size()];
      // Ages up to 130 days, a few a little in the future (clock skew).
      e.time_ms = kNow - static_cast<int64_t>(rng() % (130 * kDay)) + (rng() % 20 == 0 ? kHour : 0);
      events.push_back(std::move(e));
    }
    std::vector<EventView> views = Views(events);
    EvaluateOptions opts;
    opts.now_ms = kNow;
    SEG_ASSERT_OK(host.EvaluateUser("u", views, opts, &at_now));
    ASSERT_TRUE(at_now.failed.empty()) << at_now.failed[0];
    // Times to look at: before each script's due time (just before it, and
    // a few in between), and far ahead for scripts that are never due.
    std::vector<int64_t> times;
    for (const ScriptResult& s : at_now.scripts) {
      const int64_t due = s.next_change_ms;
      ASSERT_GT(due, kNow - 1) << s.name;
      const int64_t end = due == kNever ? kNow + 400 * kDay : due - 1;
      if (end < kNow) continue;  // due now: nothing to check
      times.push_back(end);
      for (int k = 0; k < 3; ++k) {
        times.push_back(kNow + static_cast<int64_t>(rng() % static_cast<uint64_t>(end - kNow + 1)));
      }
      if (due != kNever) ++finite;
    }
    for (int64_t t : times) {
      opts.now_ms = t;
      SEG_ASSERT_OK(host.EvaluateUser("u", views, opts, &later));
      ASSERT_EQ(later.scripts.size(), at_now.scripts.size());
      for (size_t i = 0; i < at_now.scripts.size(); ++i) {
        const ScriptResult& s = at_now.scripts[i];
        if (t >= s.next_change_ms) continue;
        ++checks;
        ASSERT_EQ(later.scripts[i].segments, s.segments)
            << "user " << user << ", script " << s.name << ": changed at now + " << (t - kNow)
            << " ms, before its due time now + " << (s.next_change_ms - kNow) << " ms";
      }
      if (t < at_now.next_change_ms) {
        ASSERT_EQ(later.segments, at_now.segments) << "user " << user;
      }
    }
  }
  // Not vacuous: most users have some finite due time.
  EXPECT_GT(finite, 300);
  EXPECT_GT(checks, 10000);
}

}  // namespace
}  // namespace seg::segmenter

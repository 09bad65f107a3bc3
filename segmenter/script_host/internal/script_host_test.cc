#include "segmenter/script_host/script_host.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/event_codec.h"
#include "common/metrics.h"
#include "segmenter/script_host/internal/event_index.h"
#include "segmenter/script_host/internal/script_host_fixtures.h"
#include "tests/harness/poll.h"
#include "tests/harness/status_matchers.h"

namespace seg::segmenter {
namespace {

namespace fs = std::filesystem;
using internal::OwnedEvent;

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kDay = 86'400'000;

std::string SourceDir() {
  const char* dir = std::getenv("SEG_SOURCE_DIR");
  return dir ? dir : ".";
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "script_host_test.XXXXXX").string();
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
  void Remove(const std::string& name) const { fs::remove(fs::path(path_) / name); }

 private:
  std::string path_;
};

// A script emitting `segment` for every user.
std::string AlwaysScript(const std::string& name, const std::string& segment) {
  return "return segment_script { name = '" + name + "', version = '1', segments = {'" + segment +
         "'}, evaluate = function(user) return {'" + segment + "'} end }\n";
}

// A script whose evaluate() body is `body`.
std::string BodyScript(const std::string& name, const std::string& body) {
  return "return segment_script { name = '" + name +
         "', version = '1', segments = {'x'},\n evaluate = function(user)\n" + body + "\nend }\n";
}

OwnedEvent Ev(const std::string& type, int64_t ago_ms, const std::string& url = "",
              const std::string& query = "") {
  OwnedEvent e;
  e.type = internal::EventTypeFromName(type);
  e.time_ms = kNow - ago_ms;
  e.url = url;
  e.query = query;
  return e;
}

std::vector<EventView> Views(const std::vector<OwnedEvent>& events) {
  std::vector<EventView> v;
  for (const auto& e : events) v.push_back(e.View());
  return v;
}

class ScriptHostTest : public ::testing::Test {
 protected:
  std::unique_ptr<ScriptHost> MakeHost(int quarantine = 3, int64_t memory_mb = 64) {
    ScriptHostOptions o;
    o.scripts_dir = dir_.path();
    o.cpu_budget_ms = 50;
    o.memory_limit_mb = memory_mb;
    o.quarantine_after_failures = quarantine;
    o.clock = &clock_;
    o.reload_check_interval_ms = 1000;
    auto host = ScriptHost::Create(o);
    SEG_EXPECT_OK(host);
    return host.ok() ? std::move(host).value() : nullptr;
  }

  EvaluationResult Eval(ScriptHost& host, const std::vector<OwnedEvent>& events = {},
                        const std::string& user = "u1") {
    EvaluationResult r;
    std::vector<EventView> views = Views(events);
    Status st = host.EvaluateUser(user, views, &r);
    SEG_EXPECT_OK(st);
    return r;
  }

  const ScriptResult* Find(const EvaluationResult& r, const std::string& name) {
    for (const auto& s : r.scripts) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }

  TempDir dir_;
  FakeClock clock_{kNow};
};

// ---------------------------------------------------------------- url parsing

TEST(SplitUrlTest, FindsHostAndPath) {
  struct Case {
    std::string_view url, host, path;
  } cases[] = {
      {"https://www.auto.ru:443/a/b?x=1#f", "www.auto.ru", "/a/b"},
      {"http://user:pw@host.example/p", "host.example", "/p"},
      {"https://host.example", "host.example", ""},
      {"https://host.example?q=1", "host.example", ""},
      {"//cdn.example/x.js", "cdn.example", "/x.js"},
      {"/relative/path?x", "", "/relative/path"},
      {"example.com/a", "example.com", "/a"},
      {"app://booking.com", "booking.com", ""},
      {"", "", ""},
  };
  for (const Case& c : cases) {
    int32_t ho, hl, po, pl;
    internal::SplitUrl(c.url, &ho, &hl, &po, &pl);
    EXPECT_EQ(c.url.substr(ho, hl), c.host) << c.url;
    EXPECT_EQ(c.url.substr(po, pl), c.path) << c.url;
  }
}

TEST(SplitUrlTest, LowerCasesAsciiAndCyrillic) {
  std::string s = "HTTPS://Пример.РФ/ЁЖ?Q=Ä";
  internal::LowerInPlace(s.data(), s.size());
  EXPECT_EQ(s, "https://пример.рф/ёж?q=Ä");
}

// ---------------------------------------------------------------- shipped scripts

TEST(ShippedScriptsTest, EveryScriptLoadsAndEveryFixturePasses) {
  const std::string scripts = SourceDir() + "/scripts";
  ScriptHostOptions o;
  o.scripts_dir = scripts;
  o.reload_check_interval_ms = 0;
  auto host = ScriptHost::Create(o);
  SEG_ASSERT_OK(host);
  std::vector<ScriptInfo> infos = (*host)->scripts();
  EXPECT_GE(infos.size(), 8u);
  for (const ScriptInfo& info : infos) {
    const std::string fixture_path = scripts + "/tests/" + info.name + ".json";
    SCOPED_TRACE(fixture_path);
    ASSERT_TRUE(fs::exists(fixture_path)) << "every shipped script needs a fixture";
    auto fixture = internal::LoadScriptFixture(fixture_path);
    SEG_ASSERT_OK(fixture);
    EXPECT_GE(fixture->cases.size(), 3u);
    auto outcomes = internal::RunScriptFixture(**host, *fixture);
    SEG_ASSERT_OK(outcomes);
    for (const auto& o : *outcomes) EXPECT_TRUE(o.passed) << o.name << ": " << o.detail;
  }
  // No fixture for a script that does not exist.
  for (const auto& entry : fs::directory_iterator(scripts + "/tests")) {
    std::string stem = entry.path().stem().string();
    bool found = false;
    for (const auto& info : infos) found = found || info.name == stem;
    EXPECT_TRUE(found) << "fixture without script: " << entry.path();
  }
}

TEST(ShippedScriptsTest, FixtureParserRejectsTyposAndBadTimes) {
  auto bad_key = internal::ParseScriptFixture(
      R"({"now_ms": 1, "cases": [{"name": "a", "events": [], "expcet": []}]})", "x.json");
  EXPECT_FALSE(bad_key.ok());
  auto two_times = internal::ParseScriptFixture(
      R"({"now_ms": 1, "cases": [{"events": [{"type": "click", "time_ms": 1, "ago_days": 1}],
          "expect": []}]})",
      "x.json");
  EXPECT_FALSE(two_times.ok());
  auto bad_type = internal::ParseScriptFixture(
      R"({"now_ms": 1, "cases": [{"events": [{"type": "pageview", "ago_ms": 1}], "expect": []}]})",
      "x.json");
  EXPECT_FALSE(bad_type.ok());
  EXPECT_NE(bad_type.status().message().find("pageview"), std::string_view::npos);
}

// ---------------------------------------------------------------- evaluation and helpers

TEST_F(ScriptHostTest, UnionIsSortedAndDedupedAndCarriesVersion) {
  dir_.Write("b.lua", AlwaysScript("b", "zeta"));
  dir_.Write("a.lua", AlwaysScript("a", "alpha"));
  dir_.Write("c.lua", AlwaysScript("c", "alpha"));
  auto host = MakeHost();
  EvaluationResult r = Eval(*host);
  EXPECT_EQ(r.segments, (std::vector<std::string>{"alpha", "zeta"}));
  ASSERT_EQ(r.scripts.size(), 3u);
  EXPECT_EQ(r.scripts[0].name, "a");  // load order = file name order
  EXPECT_EQ(r.script_set_version, host->script_set_version());
  EXPECT_EQ(r.script_set_version.size(), 12u);
  EXPECT_EQ(r.now_ms, kNow);
  EXPECT_EQ(r.user_id, "u1");
}

TEST_F(ScriptHostTest, HelpersSeeEventsInTimeOrderWithFilters) {
  dir_.Write("h.lua", R"LUA(
local ip = filter { ip_in = "10.1.0.0/16" }
return segment_script {
  name = "h", version = "1",
  segments = { "count_ok", "any_ok", "first_ok", "last_ok", "distinct_ok", "attr_ok",
               "values_ok", "days_ok", "host_ok", "path_ok", "ip_ok", "where_ok", "query_all_ok",
               "source_ok", "id_ok", "size_ok", "window_ok", "older_ok" },
  evaluate = function(user)
    local out = {}
    local function check(cond, seg) if cond then out[#out + 1] = seg end end
    check(user:count { type = "page_view" } == 3, "count_ok")
    check(user:any { type = "click" } and not user:any { type = "purchase" }, "any_ok")
    local f = user:first { type = "page_view" }
    check(f and f.url == "https://WWW.Shop.example/Cats/1?x=1" and f.host == "www.shop.example"
          and f.path == "/cats/1" and f.index == 2, "first_ok")
    local l = user:last {}
    check(l and l.type == "search" and l.query == "Kitten FOOD", "last_ok")
    check(user:distinct("host", { type = "page_view" }) == 2, "distinct_ok")
    check(user:attr("gender") == "f", "attr_ok")
    local v = user:attr_values("gender")
    check(v.f == 1 and v.m == 1, "values_ok")
    local d = user:days_since { type = "click" }
    check(d and math.abs(d - 2) < 1e-9, "days_ok")
    check(user:count { host = "shop.example" } == 2 and user:count { host = "hop.example" } == 0, "host_ok")
    check(user:count { path_prefix = "/cats" } == 2, "path_ok")
    check(user:count(ip) == 1, "ip_ok")
    check(user:count { where = function(e) return e.attrs.gender == "m" end } == 1, "where_ok")
    check(user:count { query_all = { "kitten", "food" } } == 1
          and user:count { query_all = { "kitten", "toys" } } == 0, "query_all_ok")
    check(user:count { source = "PartnerX" } == 2, "source_ok")
    check(user:id() == "user-7", "id_ok")
    check(user:size() == 7, "size_ok")
    check(user:count { within_days = 3 } == 2, "window_ok")
    check(user:count { older_than_days = 10 } == 2, "older_ok")
    return out
  end,
}
)LUA");
  auto host = MakeHost();
  // Deliberately out of order: the host sorts by time, positions stay.
  std::vector<OwnedEvent> events;
  events.push_back(Ev("page_view", 5 * kDay, "https://other.example/a"));               // 0
  events.push_back(Ev("page_view", 20 * kDay, "https://www.shop.example/cats/0"));      // 1
  events.push_back(Ev("page_view", 30 * kDay, "https://WWW.Shop.example/Cats/1?x=1"));  // 2
  events.push_back(Ev("click", 2 * kDay, "https://ads.example/c"));                     // 3
  events.push_back(Ev("search", 1 * kDay, "", "Kitten FOOD"));                          // 4
  OwnedEvent p1 = Ev("partner_signal", 8 * kDay);                                       // 5
  p1.attributes = {{"gender", "m"}};
  p1.source = "partnerx";
  p1.ipv4 = (10u << 24) | (1u << 16) | 77;
  events.push_back(p1);
  OwnedEvent p2 = Ev("partner_signal", 7 * kDay);  // newer: gender f                  6
  p2.attributes = {{"gender", "f"}};
  p2.source = "PartnerX";
  p2.ipv4 = (10u << 24) | (2u << 16) | 1;
  events.push_back(p2);
  EvaluationResult r = Eval(*host, events, "user-7");
  ASSERT_EQ(r.scripts.size(), 1u);
  EXPECT_EQ(r.scripts[0].error, "");
  EXPECT_EQ(r.segments,
            (std::vector<std::string>{"any_ok", "attr_ok", "count_ok", "days_ok", "distinct_ok",
                                      "first_ok", "host_ok", "id_ok", "ip_ok", "last_ok",
                                      "older_ok", "path_ok", "query_all_ok", "size_ok", "source_ok",
                                      "values_ok", "where_ok", "window_ok"}));
}

// Scripts know the event types by proto/events.proto's names (the host
// hands the runtime common/event_codec.h's EventTypes()): each name filters
// its own events and names them in event tables; another name is an error.
TEST_F(ScriptHostTest, EveryProtoEventTypeFiltersAndNamesItsEvents) {
  std::string body;
  std::vector<OwnedEvent> events;
  for (const auto& [name, code] : EventTypes()) {
    const std::string f = "{type = '" + name + "'}";
    body += "do local e = user:first" + f + "\n  if user:count" + f + " ~= 1 or e.type ~= '" +
            name + "' then error('" + name + "') end end\n";
    OwnedEvent e;
    e.type = code;
    e.time_ms = kNow - (code + 1) * kDay;
    events.push_back(e);
  }
  body += "return 'x'";
  dir_.Write("t.lua", BodyScript("t", body));
  dir_.Write("u.lua",
             BodyScript("u", "if user:count{type = 'no_such_type'} > 0 then return 'x' end"));
  auto host = MakeHost();
  ASSERT_NE(host, nullptr);
  EvaluationResult r = Eval(*host, events);
  const ScriptResult* t = Find(r, "t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->error, "");
  EXPECT_EQ(t->segments, std::vector<std::string>{"x"});
  const ScriptResult* u = Find(r, "u");
  ASSERT_NE(u, nullptr);
  EXPECT_NE(u->error.find("unknown event type 'no_such_type'"), std::string::npos) << u->error;
}

TEST_F(ScriptHostTest, ExplainRecordsMatchedEventPositions) {
  dir_.Write("e.lua", BodyScript("e", "if user:count{type='click'} > 0 then return 'x' end"));
  auto host = MakeHost();
  std::vector<OwnedEvent> events = {Ev("page_view", 3 * kDay), Ev("click", 2 * kDay),
                                    Ev("click", 1 * kDay)};
  std::vector<EventView> views = Views(events);
  EvaluationResult r;
  EvaluateOptions opts;
  opts.explain = true;
  SEG_ASSERT_OK(host->EvaluateUser("u", views, opts, &r));
  ASSERT_EQ(r.scripts.size(), 1u);
  EXPECT_EQ(r.scripts[0].matched_events, (std::vector<int32_t>{1, 2}));
  SEG_ASSERT_OK(host->EvaluateUser("u", views, &r));
  EXPECT_TRUE(r.scripts[0].matched_events.empty());  // off by default
}

TEST_F(ScriptHostTest, TimeWindowsFollowTheInjectedClock) {
  dir_.Write("w.lua", BodyScript("w", "if user:any{within_days = 1} then return 'x' end"));
  auto host = MakeHost();
  std::vector<OwnedEvent> events = {Ev("click", kDay / 2)};
  EXPECT_EQ(Eval(*host, events).segments, std::vector<std::string>{"x"});
  clock_.AdvanceMs(kDay);
  EXPECT_TRUE(Eval(*host, events).segments.empty());
}

// ---------------------------------------------------------------- contract errors

TEST_F(ScriptHostTest, UndeclaredSegmentFailsThatScriptOnly) {
  dir_.Write("bad.lua", BodyScript("bad", "return {'x', 'not_declared'}"));
  dir_.Write("good.lua", AlwaysScript("good", "g"));
  auto host = MakeHost();
  EvaluationResult r = Eval(*host);
  EXPECT_EQ(r.segments, std::vector<std::string>{"g"});
  EXPECT_EQ(r.failed, std::vector<std::string>{"bad"});
  const ScriptResult* bad = Find(r, "bad");
  ASSERT_NE(bad, nullptr);
  EXPECT_EQ(bad->error_kind, ScriptErrorKind::kUndeclaredSegment);
  EXPECT_NE(bad->error.find("not_declared"), std::string::npos);
  EXPECT_TRUE(bad->segments.empty());
}

TEST_F(ScriptHostTest, BadResultsAndHelperMisuseAreErrors) {
  dir_.Write("num.lua", BodyScript("num", "return 42"));
  dir_.Write("typo.lua", BodyScript("typo", "return user:count{url_contain = 'x'} > 0 and 'x'"));
  dir_.Write("ro.lua", BodyScript("ro", "user.count = nil"));
  auto host = MakeHost();
  EvaluationResult r = Eval(*host);
  EXPECT_EQ(Find(r, "num")->error_kind, ScriptErrorKind::kBadResult);
  EXPECT_NE(Find(r, "typo")->error.find("unknown filter key 'url_contain'"), std::string::npos);
  EXPECT_NE(Find(r, "typo")->error.find("typo.lua:3:"), std::string::npos)
      << Find(r, "typo")->error;
  EXPECT_NE(Find(r, "ro")->error.find("read-only"), std::string::npos);
}

TEST_F(ScriptHostTest, BadScriptAtStartIsAnErrorWithFileAndLine) {
  dir_.Write("ok.lua", AlwaysScript("ok", "a"));
  dir_.Write("broken.lua", "return segment_script {\n name = 'broken',\n version = = 1 }\n");
  ScriptHostOptions o;
  o.scripts_dir = dir_.path();
  auto host = ScriptHost::Create(o);
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(host.status().message().find("broken.lua:3:"), std::string_view::npos) << host.status();
}

TEST_F(ScriptHostTest, DeclarationIsValidated) {
  struct Case {
    const char* source;
    const char* error;
  } cases[] = {
      {"return 1", "must return segment_script"},
      {"return segment_script { name = 'Bad Name', version = '1', segments = {'x'}, "
       "evaluate = function() end }",
       "name must match"},
      {"return segment_script { name = 'n', version = '1', segments = {}, "
       "evaluate = function() end }",
       "non-empty list"},
      {"return segment_script { name = 'n', version = '1', segments = {'x'} }",
       "evaluate must be a function"},
      {"return segment_script { name = 'n', version = '1', segments = {'x'}, evaluate = "
       "function() end, extra = 1 }",
       "unknown field 'extra'"},
  };
  for (const Case& c : cases) {
    dir_.Write("s.lua", c.source);
    ScriptHostOptions o;
    o.scripts_dir = dir_.path();
    auto host = ScriptHost::Create(o);
    ASSERT_FALSE(host.ok()) << c.source;
    EXPECT_NE(host.status().message().find(c.error), std::string_view::npos) << host.status();
  }
  dir_.Write("s.lua", AlwaysScript("same", "a"));
  dir_.Write("t.lua", AlwaysScript("same", "b"));
  ScriptHostOptions o;
  o.scripts_dir = dir_.path();
  auto host = ScriptHost::Create(o);
  ASSERT_FALSE(host.ok());
  EXPECT_NE(host.status().message().find("duplicate script name"), std::string_view::npos);
}

TEST_F(ScriptHostTest, MissingDirectoryIsNotFound) {
  ScriptHostOptions o;
  o.scripts_dir = dir_.path() + "/nope";
  auto host = ScriptHost::Create(o);
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.status().code(), StatusCode::kNotFound);
}

// ---------------------------------------------------------------- sandbox

struct SandboxCase {
  const char* name;
  const char* body;
  ScriptErrorKind kind;
  const char* error;  // substring of the error
};

class SandboxTest : public ScriptHostTest, public ::testing::WithParamInterface<SandboxCase> {};

TEST_P(SandboxTest, IsContainedAndOthersStillRun) {
  const SandboxCase& c = GetParam();
  dir_.Write("a_good.lua", AlwaysScript("a_good", "first"));
  dir_.Write("m_evil.lua", BodyScript("evil", c.body));
  dir_.Write("z_good.lua",
             BodyScript("z_good", "if user:count{type='click'} == 1 then return 'x' end"));
  auto host = MakeHost(/*quarantine=*/0, /*memory_mb=*/16);
  std::vector<OwnedEvent> events = {Ev("click", 1000, "https://a.example/")};
  auto start = std::chrono::steady_clock::now();
  EvaluationResult r = Eval(*host, events);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds(5));  // wall time on a busy machine
  EXPECT_EQ(r.segments, (std::vector<std::string>{"first", "x"}));
  EXPECT_EQ(r.failed, std::vector<std::string>{"evil"});
  const ScriptResult* evil = Find(r, "evil");
  ASSERT_NE(evil, nullptr);
  EXPECT_EQ(evil->error_kind, c.kind) << evil->error;
  EXPECT_NE(evil->error.find(c.error), std::string::npos) << evil->error;
  // Healthy afterwards: the same state serves the next users.
  for (int i = 0; i < 3; ++i) {
    EvaluationResult again = Eval(*host, events, "u" + std::to_string(i));
    EXPECT_EQ(again.segments, (std::vector<std::string>{"first", "x"}));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Escapes, SandboxTest,
    ::testing::Values(
        SandboxCase{"os_execute", "os.execute('touch /tmp/pwned')", ScriptErrorKind::kError,
                    "global 'os'"},
        SandboxCase{"io_open", "io.open('/etc/passwd')", ScriptErrorKind::kError, "global 'io'"},
        SandboxCase{"require_ffi", "local ffi = require('ffi')", ScriptErrorKind::kError,
                    "global 'require'"},
        SandboxCase{"ffi_global", "ffi.C.system('id')", ScriptErrorKind::kError, "global 'ffi'"},
        SandboxCase{"load", "load('return 1')()", ScriptErrorKind::kError, "global 'load'"},
        SandboxCase{"loadstring", "loadstring('return 1')()", ScriptErrorKind::kError,
                    "global 'loadstring'"},
        SandboxCase{"dofile", "dofile('/etc/passwd')", ScriptErrorKind::kError, "global 'dofile'"},
        SandboxCase{"loadfile", "loadfile('/etc/passwd')", ScriptErrorKind::kError,
                    "global 'loadfile'"},
        SandboxCase{"debug", "debug.sethook()", ScriptErrorKind::kError, "global 'debug'"},
        SandboxCase{"string_dump", "string.dump(function() end)", ScriptErrorKind::kError,
                    "field 'dump'"},
        SandboxCase{"string_dump_method", "local s = ('x').dump(print)", ScriptErrorKind::kError,
                    "field 'dump'"},
        SandboxCase{"getfenv", "getfenv(0).os.exit()", ScriptErrorKind::kError, "global 'getfenv'"},
        SandboxCase{"setfenv", "setfenv(1, {})", ScriptErrorKind::kError, "global 'setfenv'"},
        SandboxCase{"collectgarbage", "collectgarbage('stop')", ScriptErrorKind::kError,
                    "global 'collectgarbage'"},
        SandboxCase{"string_metatable", "getmetatable('').__index.rep = nil",
                    ScriptErrorKind::kError, "index a nil value"},
        SandboxCase{"jit", "jit.off()", ScriptErrorKind::kError, "global 'jit'"},
        SandboxCase{"coroutine", "coroutine.wrap(function() end)()", ScriptErrorKind::kError,
                    "global 'coroutine'"},
        SandboxCase{"string_rep_1gb", "local s = string.rep('x', 1e9) return {}",
                    ScriptErrorKind::kError, "string.rep: result larger than the memory limit"},
        SandboxCase{"string_rep_method_1gb", "local s = ('x'):rep(2^30) return {}",
                    ScriptErrorKind::kError, "string.rep"},
        SandboxCase{"table_growth",
                    // 4 KiB per entry: the cap, not the 50 ms budget, must stop it
                    // on a slow machine too (12-number rows took ~90 ms to fill it).
                    "local t = {} local block = string.rep('x', 4096) "
                    "for i = 1, 1e9 do t[i] = {block .. i, i} end",
                    ScriptErrorKind::kMemoryLimit, "memory limit of 16 MiB exceeded"},
        SandboxCase{"concat_doubling", "local s = 'xxxxxxxx' while true do s = s .. s end",
                    ScriptErrorKind::kMemoryLimit, "memory limit"},
        SandboxCase{"while_true", "while true do end", ScriptErrorKind::kCpuBudget,
                    "cpu budget of 50 ms exceeded"},
        SandboxCase{"for_1e10", "local s = 0 for i = 1, 1e10 do s = s + i end return {}",
                    ScriptErrorKind::kCpuBudget, "cpu budget"},
        SandboxCase{"repeat_until_false", "repeat local x = 1 until false",
                    ScriptErrorKind::kCpuBudget, "cpu budget"},
        SandboxCase{"goto_loop", "::again:: goto again", ScriptErrorKind::kCpuBudget, "cpu budget"},
        SandboxCase{"tail_recursion", "local function f(n) return f(n + 1) end return f(1)",
                    ScriptErrorKind::kCpuBudget, "cpu budget"},
        SandboxCase{"infinite_recursion", "local function f(n) return 1 + f(n + 1) end f(1)",
                    ScriptErrorKind::kError, "stack overflow"},
        SandboxCase{"pcall_swallowing_budget",
                    "while true do pcall(function() while true do end end) end",
                    ScriptErrorKind::kCpuBudget, "cpu budget"},
        SandboxCase{"xpcall_swallowing_budget",
                    "for i = 1, 1e12 do xpcall(function() while true do end end, "
                    "function(e) return e end) end",
                    ScriptErrorKind::kCpuBudget, "cpu budget"},
        SandboxCase{"pcall_swallowing_memory",
                    "local keep = {} while true do pcall(function() keep[#keep + 1] = "
                    "string.rep('y', 1e6) .. #keep end) end",
                    ScriptErrorKind::kMemoryLimit, "memory limit"},
        SandboxCase{"catastrophic_pattern",
                    "return ('a'):rep(30):find(('a*'):rep(20) .. 'b') and 'x'",
                    ScriptErrorKind::kError, "pattern too complex"},
        SandboxCase{"helper_in_endless_loop", "while true do user:count{type = 'click'} end",
                    ScriptErrorKind::kCpuBudget, "cpu budget"},
        SandboxCase{"metamethod_loop",
                    "local t = setmetatable({}, {__index = function() while true do end end}) "
                    "return t.x",
                    ScriptErrorKind::kCpuBudget, "cpu budget"},
        SandboxCase{"sort_comparator_loop",
                    "table.sort({3, 2, 1}, function(a, b) while true do end end)",
                    ScriptErrorKind::kCpuBudget, "cpu budget"}),
    [](const ::testing::TestParamInfo<SandboxCase>& info) { return info.param.name; });

TEST_F(ScriptHostTest, RunawayTopLevelCodeFailsTheLoad) {
  dir_.Write("spin.lua", "while true do end\n" + AlwaysScript("spin", "a"));
  ScriptHostOptions o;
  o.scripts_dir = dir_.path();
  o.cpu_budget_ms = 50;
  auto host = ScriptHost::Create(o);
  ASSERT_FALSE(host.ok());
  EXPECT_NE(host.status().message().find("spin.lua: cpu budget exceeded while loading"),
            std::string_view::npos)
      << host.status();
}

TEST_F(ScriptHostTest, ScriptsDoNotShareGlobalsOrTheUserObject) {
  dir_.Write("a.lua", BodyScript("a",
                                 "leaked = 1 string.lower = nil rawset(user, 'count', "
                                 "function() return 99 end) return {}"));
  dir_.Write("b.lua", BodyScript("b",
                                 "if leaked == nil and string.lower('A') == 'a' and "
                                 "user:count{} == 0 then return 'x' end"));
  auto host = MakeHost();
  EvaluationResult r = Eval(*host);
  EXPECT_EQ(r.segments, std::vector<std::string>{"x"}) << (r.failed.empty() ? "" : r.failed[0]);
}

TEST_F(ScriptHostTest, BudgetIsNotChargedAcrossCalls) {
  // Each call uses ~30% of the budget; many calls in a row must all pass.
  dir_.Write("busy.lua", BodyScript("busy", R"(
    local s = 0
    for i = 1, 3e6 do s = s + i % 7 end
    return {})"));
  auto host = MakeHost();
  for (int i = 0; i < 20; ++i) {
    EvaluationResult r = Eval(*host);
    ASSERT_TRUE(r.failed.empty()) << Find(r, "busy")->error;
  }
}

// ---------------------------------------------------------------- quarantine

TEST_F(ScriptHostTest, QuarantinesAfterConsecutiveFailuresUntilReload) {
  dir_.Write("flaky.lua", BodyScript("flaky", "if user:id() ~= 'good' then error('boom') end"));
  dir_.Write("ok.lua", AlwaysScript("ok", "a"));
  auto host = MakeHost(/*quarantine=*/3);
  Eval(*host, {}, "bad1");
  Eval(*host, {}, "bad2");
  Eval(*host, {}, "good");  // a success resets the streak
  EXPECT_EQ(host->scripts()[0].consecutive_failures, 0);
  for (int i = 0; i < 2; ++i) {
    EvaluationResult r = Eval(*host, {}, "bad");
    EXPECT_EQ(r.failed, std::vector<std::string>{"flaky"});
    EXPECT_NE(Find(r, "flaky")->error.find("flaky.lua:3: boom"), std::string::npos)
        << Find(r, "flaky")->error;
  }
  EvaluationResult third = Eval(*host, {}, "bad");
  EXPECT_EQ(third.failed, std::vector<std::string>{"flaky"});
  EXPECT_TRUE(host->scripts()[0].quarantined);
  // Quarantined: skipped even for a user it would handle, others still run.
  EvaluationResult r = Eval(*host, {}, "good");
  EXPECT_EQ(r.quarantined, std::vector<std::string>{"flaky"});
  EXPECT_TRUE(r.failed.empty());
  EXPECT_EQ(Find(r, "flaky"), nullptr);
  EXPECT_EQ(r.segments, std::vector<std::string>{"a"});
  // Explicit single-script runs still reach it (fixtures, explain).
  EvaluateOptions only;
  only.only_script = "flaky";
  SEG_ASSERT_OK(host->EvaluateUser("good", {}, only, &r));
  ASSERT_EQ(r.scripts.size(), 1u);
  // A reload lifts the quarantine.
  SEG_ASSERT_OK(host->Reload());
  EXPECT_FALSE(host->scripts()[0].quarantined);
  r = Eval(*host, {}, "good");
  EXPECT_TRUE(r.quarantined.empty());
  ASSERT_NE(Find(r, "flaky"), nullptr);
}

TEST_F(ScriptHostTest, RunawayScriptIsQuarantinedAndCounted) {
  dir_.Write("spin.lua", BodyScript("spin", "while true do end"));
  auto host = MakeHost(/*quarantine=*/2);
  Eval(*host);
  Eval(*host);
  EXPECT_TRUE(host->scripts()[0].quarantined);
  std::string text = metrics::RenderText();
  EXPECT_NE(text.find("seg_segmenter_script_errors_total{kind=\"cpu_budget\",script=\"spin\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("seg_segmenter_script_quarantined_total{script=\"spin\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("seg_segmenter_script_runtime_seconds_count{script=\"spin\"} 2"),
            std::string::npos);
}

// ---------------------------------------------------------------- reload

TEST_F(ScriptHostTest, ReloadChangesResultsAndVersion) {
  dir_.Write("s.lua", AlwaysScript("s", "before"));
  auto host = MakeHost();
  std::string v1 = host->script_set_version();
  EXPECT_EQ(Eval(*host).segments, std::vector<std::string>{"before"});
  dir_.Write("s.lua", AlwaysScript("s", "after"));
  dir_.Write("t.lua", AlwaysScript("t", "new_script"));
  SEG_ASSERT_OK(host->Reload());
  EXPECT_NE(host->script_set_version(), v1);
  EvaluationResult r = Eval(*host);
  EXPECT_EQ(r.segments, (std::vector<std::string>{"after", "new_script"}));
  EXPECT_EQ(r.script_set_version, host->script_set_version());
  // Same bytes, same version.
  dir_.Write("s.lua", AlwaysScript("s", "before"));
  dir_.Remove("t.lua");
  SEG_ASSERT_OK(host->Reload());
  EXPECT_EQ(host->script_set_version(), v1);
}

TEST_F(ScriptHostTest, BadScriptOnReloadKeepsThePreviousSet) {
  dir_.Write("s.lua", AlwaysScript("s", "before"));
  auto host = MakeHost();
  std::string v1 = host->script_set_version();
  dir_.Write("s.lua", AlwaysScript("s", "after"));
  dir_.Write("z.lua", "return segment_script {\n name = 'z' version = '1' }");
  Status st = host->Reload();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("z.lua:2:"), std::string_view::npos) << st;
  EXPECT_EQ(host->last_reload_status(), st);
  EXPECT_EQ(host->script_set_version(), v1);
  EXPECT_EQ(Eval(*host).segments, std::vector<std::string>{"before"});
  dir_.Remove("z.lua");
  SEG_ASSERT_OK(host->Reload());
  SEG_EXPECT_OK(host->last_reload_status());
  EXPECT_EQ(Eval(*host).segments, std::vector<std::string>{"after"});
}

TEST_F(ScriptHostTest, NoticesChangedFilesOnTheClockInterval) {
  dir_.Write("s.lua", AlwaysScript("s", "before"));
  auto host = MakeHost();
  dir_.Write("s.lua", AlwaysScript("s", "after_change"));
  EXPECT_EQ(Eval(*host).segments, std::vector<std::string>{"before"});  // not yet checked
  clock_.AdvanceMs(1001);
  EXPECT_EQ(Eval(*host).segments, std::vector<std::string>{"after_change"});
  // A broken change is tried once, then the old set keeps serving quietly.
  dir_.Write("s.lua", "syntax error here");
  clock_.AdvanceMs(1001);
  EXPECT_EQ(Eval(*host).segments, std::vector<std::string>{"after_change"});
  EXPECT_FALSE(host->last_reload_status().ok());
}

// Evaluations run on this thread while another thread keeps requesting
// reloads and, part-way through, atomically replaces one script: every
// evaluation sees one whole set (its version, the script's version and the
// segments agree), never the old set after the new one, and the new set comes.
TEST_F(ScriptHostTest, RequestReloadFromAnotherThreadSwitchesWholeSetsBetweenUsers) {
  auto versioned = [](const std::string& version, const std::string& segment) {
    return "return segment_script { name = 's', version = '" + version + "', segments = {'" +
           segment + "'}, evaluate = function(user) return {'" + segment + "'} end }\n";
  };
  TempDir new_dir;  // the new set, to learn its version
  new_dir.Write("s.lua", versioned("2", "after"));
  new_dir.Write("t.lua", AlwaysScript("t", "always"));
  std::string v_new;
  {
    ScriptHostOptions o;
    o.scripts_dir = new_dir.path();
    auto probe = ScriptHost::Create(o);
    SEG_ASSERT_OK(probe);
    v_new = (*probe)->script_set_version();
  }
  dir_.Write("s.lua", versioned("1", "before"));
  dir_.Write("t.lua", AlwaysScript("t", "always"));
  auto host = MakeHost();
  ASSERT_NE(host, nullptr);
  const std::string v_old = host->script_set_version();
  ASSERT_NE(v_old, v_new);

  std::atomic<int> evaluations{0};
  std::atomic<bool> stop{false};
  std::atomic<int> requests{0};
  std::thread requester([&] {
    bool replaced = false;
    while (!stop.load()) {
      host->RequestReload();
      ++requests;
      if (!replaced && evaluations.load() >= 20) {
        // write-then-rename: the host's scan sees the old file or the new one
        new_dir.Write(".s.lua.tmp", versioned("2", "after"));
        fs::rename(fs::path(new_dir.path()) / ".s.lua.tmp", fs::path(dir_.path()) / "s.lua");
        replaced = true;
      }
      std::this_thread::yield();
    }
  });

  bool seen_new = false;
  int on_new = 0;
  auto evaluate_and_check = [&] {
    EvaluationResult r = Eval(*host);
    ++evaluations;
    std::vector<std::string> segments = r.segments;
    std::sort(segments.begin(), segments.end());
    const ScriptResult* s = Find(r, "s");
    std::string s_said = s && s->segments.size() == 1 ? s->segments[0] : "(no answer from s)";
    bool is_old = r.script_set_version == v_old && s_said == "before" &&
                  segments == std::vector<std::string>{"always", "before"};
    bool is_new = r.script_set_version == v_new && s_said == "after" &&
                  segments == std::vector<std::string>{"after", "always"};
    EXPECT_TRUE(is_old || is_new) << "torn set: version " << r.script_set_version << ", s said "
                                  << s_said << ", " << segments.size() << " segments";
    EXPECT_FALSE(seen_new && is_old) << "the old set came back after the new one";
    seen_new = seen_new || is_new;
    on_new += is_new;
    return on_new >= 20 || ::testing::Test::HasFailure();
  };
  EXPECT_TRUE(seg::testing::PollUntil(evaluate_and_check, std::chrono::seconds(60),
                                      "20 evaluations on the new set",
                                      std::chrono::milliseconds(0)))
      << requests.load() << " reload requests, " << evaluations.load() << " evaluations";
  stop = true;
  requester.join();
}

TEST_F(ScriptHostTest, EmptyDirectoryServesNoSegments) {
  auto host = MakeHost();
  EvaluationResult r = Eval(*host);
  EXPECT_TRUE(r.segments.empty());
  EXPECT_TRUE(r.scripts.empty());
}

}  // namespace
}  // namespace seg::segmenter

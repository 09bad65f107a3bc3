// Script host throughput: segmentations per second for 20 scripts over
// 200-event users (the shipped scripts/ replicated under new names), with
// and without the CPU-budget instrumentation, plus the cost of the budget
// check on a bare loop. Ratios against the uninstrumented baseline measured
// in the same run. BM_SegmentationWithDecode adds the row decoding the node
// does first (store cells -> EventViews, common/event_codec.h).
//
//   script_host_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>

#include "common/clock.h"
#include "common/event.h"
#include "common/event_codec.h"
#include "proto/events.pb.h"
#include "segmenter/script_host/script_host.h"

namespace {

namespace fs = std::filesystem;
using seg::EventView;
using seg::segmenter::EvaluationResult;
using seg::segmenter::ScriptHost;
using seg::segmenter::ScriptHostOptions;

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kDay = 86'400'000;
constexpr int kScripts = 20;
constexpr int kEventsPerUser = 200;
constexpr int kUsers = 256;

struct OwnedEvent {
  int64_t time_ms;
  int32_t type;
  std::string url, query;
  uint32_t ipv4 = 0;
  std::vector<std::pair<std::string, std::string>> attrs;
};

struct Corpus {
  std::vector<std::vector<OwnedEvent>> users;
  std::vector<std::vector<EventView>> views;
};

const Corpus& TheCorpus() {
  static const Corpus* corpus = [] {
    auto* c = new Corpus;
    std::mt19937_64 rng(42);
    const std::vector<std::string> hosts = {
        "www.example.com", "news.example.org",  "shop.example.net",   "www.cosmo.ru",
        "koshki.ru",       "habr.com",          "www.aviasales.ru",   "ngs.ru",
        "bank.example",    "avtoservis-sib.ru", "www.wildberries.ru", "m.tutu.ru"};
    const std::vector<std::string> paths = {"/",
                                            "/catalog/zhenshchinam/platya",
                                            "/ipoteka/calc",
                                            "/news/2023/11/14/article-about-things",
                                            "/search?q=shoes",
                                            "/cats/care",
                                            "/ru/articles/1234/"};
    const std::vector<std::string> queries = {
        "погода новосибирск",   "купить iphone 15",       "корм для кошек", "ипотека калькулятор",
        "kia rio 2012 колодки", "авиабилеты москва сочи", "рецепт борща",   "шиномонтаж рядом",
        "как выбрать ноутбук",  "смешные видео"};
    for (int u = 0; u < kUsers; ++u) {
      std::vector<OwnedEvent> events;
      for (int i = 0; i < kEventsPerUser; ++i) {
        OwnedEvent e;
        e.time_ms = kNow - static_cast<int64_t>(rng() % (90 * kDay));
        int r = static_cast<int>(rng() % 100);
        if (r < 60) {
          e.type = 1;  // page_view
          e.url = "https://" + hosts[rng() % hosts.size()] + paths[rng() % paths.size()];
        } else if (r < 80) {
          e.type = 2;  // search
          e.query = queries[rng() % queries.size()];
          e.url = "https://yandex.example/search?text=" + std::to_string(i);
        } else if (r < 90) {
          e.type = 3;  // click
          e.url = "https://ads.example/click/" + std::to_string(rng() % 1000);
        } else if (r < 95) {
          e.type = 4;  // partner_signal
          e.attrs = {{"gender", (rng() % 2) ? "f" : "m"},
                     {"car_year", std::to_string(2005 + rng() % 19)}};
        } else {
          e.type = 5;  // purchase
          e.url = "https://shop.example.net/pay";
          e.attrs = {{"category", (rng() % 2) ? "pet_food" : "flight"}, {"pet", "cat"}};
        }
        e.ipv4 = static_cast<uint32_t>(rng());
        events.push_back(std::move(e));
      }
      std::sort(events.begin(), events.end(),
                [](const OwnedEvent& a, const OwnedEvent& b) { return a.time_ms < b.time_ms; });
      c->users.push_back(std::move(events));
    }
    for (const auto& events : c->users) {
      std::vector<EventView> v;
      for (const auto& e : events) {
        EventView ev;
        ev.time_ms = e.time_ms;
        ev.type = e.type;
        ev.url = e.url;
        ev.search_query = e.query;
        ev.ipv4 = e.ipv4;
        for (const auto& [k, val] : e.attrs) ev.attributes.emplace_back(k, val);
        v.push_back(std::move(ev));
      }
      c->views.push_back(std::move(v));
    }
    return c;
  }();
  return *corpus;
}

// The corpus as store cells (qualifier, value), in qualifier (= time) order.
using Row = std::vector<std::pair<std::string, std::string>>;
const std::vector<Row>& TheRows() {
  static const std::vector<Row>* rows = [] {
    auto* out = new std::vector<Row>;
    for (const auto& events : TheCorpus().users) {
      Row row;
      for (const auto& e : events) {
        seg::Event ev;
        ev.set_event_time_ms(e.time_ms);
        ev.set_type(static_cast<seg::EventType>(e.type));
        ev.set_url(e.url);
        ev.set_search_query(e.query);
        ev.set_ip(std::to_string(e.ipv4 >> 24) + "." + std::to_string((e.ipv4 >> 16) & 255) + "." +
                  std::to_string((e.ipv4 >> 8) & 255) + "." + std::to_string(e.ipv4 & 255));
        for (const auto& [k, v] : e.attrs) (*ev.mutable_attributes())[k] = v;
        std::string qualifier, value;
        seg::EncodeEventQualifier(e.time_ms, seg::EventDigest(ev), e.type, &qualifier);
        if (!seg::EncodeEventValue(ev, &value).ok()) abort();
        row.emplace_back(std::move(qualifier), std::move(value));
      }
      std::sort(row.begin(), row.end());
      out->push_back(std::move(row));
    }
    return out;
  }();
  return *rows;
}

// 20 scripts: the shipped ones, replicated under new names.
std::string MakeScriptDir() {
  static std::string dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "script_host_bench.XXXXXX").string();
    std::string d = mkdtemp(tmpl.data());
    std::vector<fs::path> shipped;
    for (const auto& e : fs::directory_iterator(std::string(SEG_SOURCE_DIR) + "/scripts")) {
      if (e.path().extension() == ".lua") shipped.push_back(e.path());
    }
    std::sort(shipped.begin(), shipped.end());
    std::regex name_re("name = \"([a-z0-9_]+)\"");
    for (int i = 0; i < kScripts && !shipped.empty(); ++i) {
      std::ifstream in(shipped[i % shipped.size()]);
      std::stringstream buf;
      buf << in.rdbuf();
      std::string src =
          std::regex_replace(buf.str(), name_re, "name = \"$1_r" + std::to_string(i) + "\"",
                             std::regex_constants::format_first_only);
      std::ofstream(fs::path(d) / ("s" + std::to_string(100 + i) + ".lua")) << src;
    }
    return d;
  }();
  return dir;
}

std::unique_ptr<ScriptHost> MakeHost(const std::string& dir, bool instrument, seg::Clock* clock) {
  ScriptHostOptions o;
  o.scripts_dir = dir;
  o.cpu_budget_ms = 50;
  o.memory_limit_mb = 128;
  o.reload_check_interval_ms = 0;
  o.instrument_budget = instrument;
  o.clock = clock;
  auto host = ScriptHost::Create(o);
  if (!host.ok()) {
    fprintf(stderr, "script host: %s\n", host.status().ToString().c_str());
    abort();
  }
  return std::move(host).value();
}

// Segmentations/s: all 20 scripts over one 200-event user per iteration.
// users: 256 cycles through 11 MB of event data (cold caches, an upper
// bound); 8 keeps the rows in cache, like the node, which segments a row
// right after decoding it.
void BM_Segmentation(benchmark::State& state) {
  const bool instrument = state.range(0) != 0;
  const size_t users = static_cast<size_t>(state.range(1));
  const Corpus& corpus = TheCorpus();
  seg::FakeClock clock(kNow);
  auto host = MakeHost(MakeScriptDir(), instrument, &clock);
  if (host->scripts().size() != kScripts) state.SkipWithError("expected 20 scripts");
  EvaluationResult result;
  size_t u = 0;
  int64_t segments = 0, failures = 0;
  for (auto _ : state) {
    const auto& events = corpus.views[u++ % users];
    if (!host->EvaluateUser("user", events, &result).ok()) state.SkipWithError("evaluate failed");
    segments += static_cast<int64_t>(result.segments.size());
    failures += static_cast<int64_t>(result.failed.size());
  }
  if (std::getenv("SEG_BENCH_PER_SCRIPT") != nullptr) {
    // Per-script mean runtime over the corpus (diagnostics).
    std::map<std::string, std::pair<int64_t, int64_t>> per;
    for (const auto& events : corpus.views) {
      (void)host->EvaluateUser("user", events, &result);
      for (const auto& r : result.scripts) {
        per[r.name].first += r.runtime_us;
        per[r.name].second += 1;
      }
    }
    for (const auto& [name, v] : per) {
      fprintf(stderr, "  %-32s %6.1f us\n", name.c_str(), double(v.first) / double(v.second));
    }
  }
  state.counters["segmentations/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["segments/user"] =
      static_cast<double>(segments) / static_cast<double>(state.iterations());
  state.counters["failures"] = static_cast<double>(failures);
}
BENCHMARK(BM_Segmentation)
    ->ArgNames({"budget", "users"})
    ->Args({0, 8})
    ->Args({1, 8})
    ->Args({0, kUsers})
    ->Args({1, kUsers})
    ->Unit(benchmark::kMicrosecond);

// As BM_Segmentation, but each iteration first decodes the user's row from
// its store cells into reused EventViews, as the node does.
void BM_SegmentationWithDecode(benchmark::State& state) {
  const bool instrument = state.range(0) != 0;
  const size_t users = static_cast<size_t>(state.range(1));
  const std::vector<Row>& rows = TheRows();
  seg::FakeClock clock(kNow);
  auto host = MakeHost(MakeScriptDir(), instrument, &clock);
  if (host->scripts().size() != kScripts) state.SkipWithError("expected 20 scripts");
  EvaluationResult result;
  std::vector<EventView> views;
  size_t u = 0;
  int64_t segments = 0, failures = 0;
  for (auto _ : state) {
    const Row& row = rows[u++ % users];
    views.resize(row.size());
    size_t n = 0;
    for (const auto& [qualifier, value] : row) {
      if (seg::DecodeEventCell(qualifier, value, &views[n]).ok()) ++n;
    }
    std::span<const EventView> events(views.data(), n);
    if (!host->EvaluateUser("user", events, &result).ok()) state.SkipWithError("evaluate failed");
    segments += static_cast<int64_t>(result.segments.size());
    failures += static_cast<int64_t>(result.failed.size());
  }
  state.counters["segmentations/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["segments/user"] =
      static_cast<double>(segments) / static_cast<double>(state.iterations());
  state.counters["failures"] = static_cast<double>(failures);
}
BENCHMARK(BM_SegmentationWithDecode)
    ->ArgNames({"budget", "users"})
    ->Args({0, 8})
    ->Args({1, 8})
    ->Args({1, kUsers})
    ->Unit(benchmark::kMicrosecond);

// The floor: 20 scripts that call no helper (`return {"x"}`) over the same
// users: building the user's arrays plus 20 calls into Lua and back.
void BM_TrivialScripts(benchmark::State& state) {
  static std::string dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "script_host_bench_trivial.XXXXXX").string();
    std::string d = mkdtemp(tmpl.data());
    for (int i = 0; i < kScripts; ++i) {
      std::ofstream(fs::path(d) / ("t" + std::to_string(100 + i) + ".lua"))
          << "return segment_script { name = \"t" << i
          << "\", version = \"1\", segments = { \"x\" },\n"
             "  evaluate = function(user) return { \"x\" } end }\n";
    }
    return d;
  }();
  const Corpus& corpus = TheCorpus();
  seg::FakeClock clock(kNow);
  auto host = MakeHost(dir, true, &clock);
  EvaluationResult result;
  size_t u = 0;
  for (auto _ : state) {
    if (!host->EvaluateUser("user", corpus.views[u++ % 8], &result).ok() ||
        result.segments.size() != 1) {
      state.SkipWithError("trivial scripts failed");
    }
  }
  state.counters["segmentations/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TrivialScripts)->Unit(benchmark::kMicrosecond);

// Cost of the injected check on a tight loop (1e6 iterations per call).
void BM_BareLoop(benchmark::State& state) {
  const bool instrument = state.range(0) != 0;
  static std::string dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "script_host_bench_loop.XXXXXX").string();
    std::string d = mkdtemp(tmpl.data());
    std::ofstream(fs::path(d) / "loop.lua") << R"(
local function step(s, i) return s + i % 3 end
return segment_script {
  name = "loop", version = "1", segments = { "x" },
  evaluate = function(user)
    local s = 0
    for i = 1, 1e6 do s = step(s, i) end
    if s < 0 then return "x" end
  end,
})";
    return d;
  }();
  seg::FakeClock clock(kNow);
  auto host = MakeHost(dir, instrument, &clock);
  EvaluationResult result;
  for (auto _ : state) {
    if (!host->EvaluateUser("u", {}, &result).ok() || !result.failed.empty()) {
      state.SkipWithError("loop failed");
    }
  }
  state.counters["ns/iteration"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 1e6,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_BareLoop)->ArgName("budget")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

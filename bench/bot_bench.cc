// bots_bench: the bot blacklist's precision and recall on seg-loadgen
// traffic, the old rule (OnNotice only, the node's thresholds of before:
// 600 events per 60 s, at once) against the new one (BotOptions defaults:
// held rate + ObserveRow on the rows the segmenter reads), in the same run.
//
//   bots_bench [--users 3000] [--rate 1500] [--minutes 6] [--seeds 1,2,3]
//              [--bot-traffic-share 0.3] [--set segmenter.bots.KEY=VALUE ...]
//              [--json-out FILE]
//
// Per seed, simulated time on a FakeClock, deterministic: the generator's
// messages are stamped at `rate` per second; malformed ones are dropped (as
// ingest would); every 100 ms the batch is "written": each valid event
// becomes the cell the store would hold (common/event_codec.h: a re-sent
// event overwrites its own cell) and each user of the batch gets one notice
// with its event count, given to both blacklists as the node does at poll
// time. For every notice the new blacklist lets through, the user's row is
// read as the node reads it (cells of the last history_days, the newest
// max_events_per_user, decoded to EventViews) and given to ObserveRow.
// (The node reads once per read delay after the skip cache; reading every
// batch calls ObserveRow at least as often, so this is the harder case.)
//
// Reports, summed over seeds: active users (sent a valid event), real users
// blacklisted (count, % of active users and of active humans), generated
// bots caught (%), time from a bot's first event to its blacklisting
// (median, p90, max), blacklistings per rule, and ObserveRow's CPU cost.
// Goals: real users blacklisted <= 0.1% of active users, bots caught >= 90%.
// Prints one JSON object ({"figures", "ratios", "notes"}) on stdout, and to
// --json-out for tools/bench_report.py (tools/dev bench bots).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/event_codec.h"
#include "common/logging.h"
#include "proto/events.pb.h"
#include "segmenter/skip/bot_blacklist.h"
#include "tools/loadgen/traffic.h"

namespace {

using seg::segmenter::BotBlacklist;
using seg::segmenter::BotOptions;
using Decision = BotBlacklist::Decision;

constexpr int64_t kBatchMs = 100;
constexpr int64_t kHistoryDays = 60;         // NodeOptions::history_days
constexpr int32_t kMaxEventsPerUser = 2000;  // NodeOptions::max_events_per_user
constexpr int64_t kDayMs = 86'400'000;

struct Tally {
  int64_t active_users = 0, active_humans = 0, active_bots = 0;
  int64_t humans_blacklisted = 0, bots_caught = 0;
  int64_t by_rate = 0, by_user_agents = 0, by_ips = 0, by_crawl = 0;
  int64_t rows_observed = 0;
  double observe_cpu_ns = 0;
  std::vector<double> catch_s;  // per caught bot: seconds from its first event
  int64_t worst_seed_humans = 0;
  double worst_seed_recall = 1;
};

struct SeedResult {
  Tally old_rule, new_rule;
  double max_human_events_per_min = 0;  // busiest human's mean rate over the run
};

// -1 when `v` is empty (no bot caught).
double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

SeedResult RunSeed(int32_t users, double rate, double minutes, uint64_t seed,
                   double bot_traffic_share, const BotOptions& new_options_in) {
  seg::FakeClock clock;
  seg::loadgen::TrafficOptions traffic;
  traffic.users = users;
  traffic.seed = seed;
  traffic.bot_traffic_share = bot_traffic_share;
  traffic.bot_rate_spread = 4;  // slow and fast crawlers, 1.5..6 events/s at the defaults
  seg::loadgen::TrafficGenerator generator(traffic);

  BotBlacklist::Options old_options;  // the node's thresholds of before
  old_options.window_ms = 60'000;
  old_options.threshold_events = 600;
  old_options.capacity_bytes = size_t{1} << 20;
  BotOptions new_options = new_options_in;
  new_options.capacity_bytes = size_t{1} << 20;
  auto old_bl = std::move(BotBlacklist::Create(old_options, &clock)).value();
  auto new_bl = std::move(BotBlacklist::Create(new_options, &clock)).value();

  // The store: per user, cells by qualifier (time order, re-sends overwrite).
  std::vector<std::map<std::string, std::string>> rows(users);
  std::vector<int64_t> first_event_ms(users, -1), events_sent(users, 0);
  std::vector<int64_t> old_caught_ms(users, -1), new_caught_ms(users, -1);
  std::vector<uint32_t> batch_counts(users, 0);
  std::vector<int32_t> batch_users;
  std::vector<seg::EventView> views;
  seg::Event event;
  std::string qualifier, value;
  seg::loadgen::GeneratedMessage msg;
  double observe_ns = 0;
  int64_t rows_observed = 0;

  const int64_t start_ms = clock.NowMs();
  const int64_t total = static_cast<int64_t>(rate * minutes * 60);
  const int64_t per_batch = static_cast<int64_t>(rate * kBatchMs / 1000);
  for (int64_t sent = 0; sent < total;) {
    batch_users.clear();
    for (int64_t k = 0; k < per_batch && sent < total; ++k, ++sent) {
      const int64_t now = start_ms + static_cast<int64_t>(static_cast<double>(sent) * 1000 / rate);
      generator.Next(now, &msg);
      if (!msg.malformed_reason.empty() || msg.user_index < 0) continue;
      if (!event.ParseFromString(msg.value)) continue;
      qualifier.clear();
      seg::EncodeEventQualifier(event.event_time_ms(), seg::EventDigest(event), event.type(),
                                &qualifier);
      if (!seg::EncodeEventValue(event, &value).ok()) continue;
      const int32_t u = msg.user_index;
      rows[u][qualifier] = value;
      if (first_event_ms[u] < 0) first_event_ms[u] = now;
      ++events_sent[u];
      if (batch_counts[u]++ == 0) batch_users.push_back(u);
    }
    // The batch is written: time moves to its end, notices go out.
    clock.AdvanceMs(kBatchMs);
    const int64_t now = clock.NowMs();
    const auto& profiles = generator.users();
    for (int32_t u : batch_users) {
      const std::string& id = profiles[u].id;
      const uint32_t count = batch_counts[u];
      batch_counts[u] = 0;
      if (old_bl->OnNotice(id, count) == Decision::kNewlyBlacklisted && old_caught_ms[u] < 0) {
        old_caught_ms[u] = now;
      }
      Decision d = new_bl->OnNotice(id, count);
      if (d == Decision::kProcess) {
        // The node's read: the newest cells of the history window.
        const auto& row = rows[u];
        views.clear();
        views.reserve(row.size());
        const int64_t min_ms = now - kHistoryDays * kDayMs;
        auto it = row.end();
        std::vector<std::pair<const std::string*, const std::string*>> cells;
        while (it != row.begin() && static_cast<int32_t>(cells.size()) < kMaxEventsPerUser) {
          --it;
          int64_t t = 0;
          uint64_t digest = 0;
          int32_t type = 0;
          (void)seg::DecodeEventQualifier(it->first, &t, &digest, &type);
          if (t < min_ms) break;
          cells.emplace_back(&it->first, &it->second);
        }
        std::reverse(cells.begin(), cells.end());
        for (const auto& [q, v] : cells) {
          if (seg::DecodeEventCell(*q, *v, &views.emplace_back()).ok()) continue;
          views.pop_back();
        }
        const auto t0 = std::chrono::steady_clock::now();
        d = new_bl->ObserveRow(id, views, now);
        observe_ns +=
            std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
        ++rows_observed;
      }
      if (d == Decision::kNewlyBlacklisted && new_caught_ms[u] < 0) new_caught_ms[u] = now;
    }
  }

  SeedResult result;
  const double run_min = minutes;
  auto tally = [&](const std::vector<int64_t>& caught_ms, const BotBlacklist& bl, Tally* t) {
    for (int32_t u = 0; u < users; ++u) {
      if (events_sent[u] == 0) continue;
      const bool bot = generator.users()[u].bot;
      ++t->active_users;
      (bot ? t->active_bots : t->active_humans) += 1;
      if (caught_ms[u] < 0) continue;
      if (bot) {
        ++t->bots_caught;
        t->catch_s.push_back(static_cast<double>(caught_ms[u] - first_event_ms[u]) / 1000);
      } else {
        ++t->humans_blacklisted;
      }
    }
    const auto s = bl.stats();
    t->by_rate = static_cast<int64_t>(s.by_rate);
    t->by_user_agents = static_cast<int64_t>(s.by_user_agents);
    t->by_ips = static_cast<int64_t>(s.by_ips);
    t->by_crawl = static_cast<int64_t>(s.by_crawl);
  };
  tally(old_caught_ms, *old_bl, &result.old_rule);
  tally(new_caught_ms, *new_bl, &result.new_rule);
  for (int32_t u = 0; u < users; ++u) {
    const auto& p = generator.users()[u];
    if (p.bot && events_sent[u] > 0 && new_caught_ms[u] < 0) {
      std::fprintf(stderr, "seed %llu: missed bot %s (%s, %lld events, weight %.2f)\n",
                   static_cast<unsigned long long>(seed), p.id.c_str(),
                   seg::loadgen::BotKindName(p.bot_kind), static_cast<long long>(events_sent[u]),
                   p.weight);
    }
  }
  result.new_rule.rows_observed = rows_observed;
  result.new_rule.observe_cpu_ns = observe_ns;
  for (int32_t u = 0; u < users; ++u) {
    if (!generator.users()[u].bot) {
      result.max_human_events_per_min =
          std::max(result.max_human_events_per_min, static_cast<double>(events_sent[u]) / run_min);
    }
  }
  return result;
}

void Add(Tally* sum, const Tally& t) {
  sum->active_users += t.active_users;
  sum->active_humans += t.active_humans;
  sum->active_bots += t.active_bots;
  sum->humans_blacklisted += t.humans_blacklisted;
  sum->bots_caught += t.bots_caught;
  sum->by_rate += t.by_rate;
  sum->by_user_agents += t.by_user_agents;
  sum->by_ips += t.by_ips;
  sum->by_crawl += t.by_crawl;
  sum->rows_observed += t.rows_observed;
  sum->observe_cpu_ns += t.observe_cpu_ns;
  sum->catch_s.insert(sum->catch_s.end(), t.catch_s.begin(), t.catch_s.end());
  sum->worst_seed_humans = std::max(sum->worst_seed_humans, t.humans_blacklisted);
  sum->worst_seed_recall =
      std::min(sum->worst_seed_recall,
               t.active_bots ? static_cast<double>(t.bots_caught) / t.active_bots : 1.0);
}

void Figures(const std::string& p, const Tally& t, std::ostringstream& out) {
  auto pct = [](int64_t a, int64_t b) { return b ? 100.0 * static_cast<double>(a) / b : 0.0; };
  char line[2048];
  std::snprintf(
      line, sizeof line,
      "\"%sreal_users_blacklisted\": %lld, \"%sreal_users_blacklisted_pct_of_active_users\": %.4f, "
      "\"%sreal_users_blacklisted_pct_of_active_humans\": %.4f, \"%sbots_caught\": %lld, "
      "\"%sbots_caught_pct\": %.2f, \"%sworst_seed_real_users_blacklisted\": %lld, "
      "\"%sworst_seed_bots_caught_pct\": %.2f, \"%scatch_s_median\": %.1f, "
      "\"%scatch_s_p90\": %.1f, \"%scatch_s_max\": %.1f, \"%sby_rate\": %lld, "
      "\"%sby_user_agents\": %lld, \"%sby_ips\": %lld, \"%sby_crawl\": %lld",
      p.c_str(), static_cast<long long>(t.humans_blacklisted), p.c_str(),
      pct(t.humans_blacklisted, t.active_users), p.c_str(),
      pct(t.humans_blacklisted, t.active_humans), p.c_str(), static_cast<long long>(t.bots_caught),
      p.c_str(), pct(t.bots_caught, t.active_bots), p.c_str(),
      static_cast<long long>(t.worst_seed_humans), p.c_str(), 100 * t.worst_seed_recall, p.c_str(),
      Percentile(t.catch_s, 0.5), p.c_str(), Percentile(t.catch_s, 0.9), p.c_str(),
      Percentile(t.catch_s, 1.0), p.c_str(), static_cast<long long>(t.by_rate), p.c_str(),
      static_cast<long long>(t.by_user_agents), p.c_str(), static_cast<long long>(t.by_ips),
      p.c_str(), static_cast<long long>(t.by_crawl));
  out << line;
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"bots_bench: bot blacklist precision/recall on seg-loadgen traffic"};
  int32_t users = 3000;
  double rate = 1500, minutes = 6, bot_traffic_share = 0.30;
  std::vector<uint64_t> seeds = {1, 2, 3};
  std::string json_out;
  std::vector<std::string> overrides;
  app.add_option("--users", users, "Users of the generator");
  app.add_option("--set", overrides,
                 "segmenter.bots.KEY=VALUE for the new rules (repeatable; sensitivity runs)");
  app.add_option("--rate", rate, "Events per simulated second");
  app.add_option("--minutes", minutes, "Simulated minutes per seed");
  app.add_option("--bot-traffic-share", bot_traffic_share, "Share of events sent by bots");
  app.add_option("--seeds", seeds, "Generator seeds (one run each)")->delimiter(',');
  app.add_option("--json-out", json_out, "Also write the JSON here");
  CLI11_PARSE(app, argc, argv);
  BotOptions new_options;
  {
    auto config = seg::Config::Load("", overrides);
    seg::Status s = config.ok() ? new_options.LoadFrom(*config) : config.status();
    if (s.ok()) s = config->CheckNoUnknownKeys();
    if (!s.ok()) {
      std::fprintf(stderr, "bots_bench: %s\n", s.ToString().c_str());
      return 2;
    }
  }

  Tally old_sum, new_sum;
  double max_human_rate = 0;
  for (uint64_t seed : seeds) {
    SeedResult r = RunSeed(users, rate, minutes, seed, bot_traffic_share, new_options);
    Add(&old_sum, r.old_rule);
    Add(&new_sum, r.new_rule);
    max_human_rate = std::max(max_human_rate, r.max_human_events_per_min);
    std::fprintf(stderr,
                 "seed %llu: old humans=%lld bots=%lld/%lld | new humans=%lld bots=%lld/%lld "
                 "(rate %lld agents %lld ips %lld crawl %lld) | busiest human %.0f events/min\n",
                 static_cast<unsigned long long>(seed),
                 static_cast<long long>(r.old_rule.humans_blacklisted),
                 static_cast<long long>(r.old_rule.bots_caught),
                 static_cast<long long>(r.old_rule.active_bots),
                 static_cast<long long>(r.new_rule.humans_blacklisted),
                 static_cast<long long>(r.new_rule.bots_caught),
                 static_cast<long long>(r.new_rule.active_bots),
                 static_cast<long long>(r.new_rule.by_rate),
                 static_cast<long long>(r.new_rule.by_user_agents),
                 static_cast<long long>(r.new_rule.by_ips),
                 static_cast<long long>(r.new_rule.by_crawl), r.max_human_events_per_min);
  }
  std::ostringstream json;
  json << "{\"figures\": {";
  json << "\"seeds\": " << seeds.size() << ", \"users\": " << users
       << ", \"events_per_s\": " << rate << ", \"simulated_minutes\": " << minutes
       << ", \"active_users\": " << new_sum.active_users
       << ", \"active_bots\": " << new_sum.active_bots << ", ";
  Figures("old_", old_sum, json);
  json << ", ";
  Figures("new_", new_sum, json);
  char tail[512];
  std::snprintf(
      tail, sizeof tail, ", \"new_observe_row_ns\": %.0f, \"busiest_human_events_per_min\": %.0f}",
      new_sum.rows_observed ? new_sum.observe_cpu_ns / new_sum.rows_observed : 0.0, max_human_rate);
  json << tail;
  const double old_recall =
      old_sum.active_bots ? static_cast<double>(old_sum.bots_caught) / old_sum.active_bots : 0;
  const double new_recall =
      new_sum.active_bots ? static_cast<double>(new_sum.bots_caught) / new_sum.active_bots : 0;
  // Differences, not quotients: the old rule catches no bot of this traffic.
  json << ", \"ratios\": {\"new_minus_old_bots_caught_pct_points\": "
       << 100 * (new_recall - old_recall) << ", \"old_minus_new_real_users_blacklisted\": "
       << old_sum.humans_blacklisted - new_sum.humans_blacklisted << "}";
  json << ", \"notes\": \"seg-loadgen traffic (bots with browser agents and crawl URLs), " << users
       << " users, " << rate << " events/s, " << minutes << " simulated minutes per seed, "
       << seeds.size()
       << " seeds, summed; bot rates spread 4x (bot_rate_spread). old = OnNotice only, 600 events "
          "per 60 s at once (the node's "
          "thresholds before BotOptions); new = BotOptions defaults, OnNotice + ObserveRow on "
          "the row the node reads (60 days, newest 2000 events) every 100 ms batch. Goals: "
          "real users blacklisted <= 0.1% of active users, bots caught >= 90%. Catch time: "
          "from a bot's first event (-1 = none caught). observe_row_ns: wall time per ObserveRow, "
          "shared cores.\"}";
  const std::string text = json.str();
  std::printf("%s\n", text.c_str());
  if (!json_out.empty()) {
    std::ofstream(json_out) << text << "\n";
  }
  return 0;
}

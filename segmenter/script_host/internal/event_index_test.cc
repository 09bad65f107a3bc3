// Differential test of the bitmap scan (UserData::Scan / Distinct) against a
// naive per-event reference, over random users (0..300 events, so bitmaps of
// one to five words with partial words at both ends) and random filters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "segmenter/script_host/internal/event_index.h"

namespace seg::segmenter::internal {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kDay = 86'400'000;

const std::vector<std::string> kHosts = {"https://www.koshki.ru", "http://koshki.ru",
                                         "https://habr.com",      "https://m.habr.com",
                                         "https://a.NGS.ru:8080", "https://user@ipoteka.bank.ru",
                                         "https://catster.com",   ""};
const std::vector<std::string> kPaths = {
    "/", "/cats/care", "/Ipoteka/calc?x=1", "/zhenshchinam#top", "/search?q=Кошки", ""};
const std::vector<std::string> kQueries = {
    "", "корм для КОШЕК", "Kia Rio 2012", "ипотека калькулятор", "cats", "ПОГОДА в нск"};
const std::vector<std::string> kUrlNeedles = {
    "cat", "koshki", "/ipoteka", "ca", "k", "", "zz", "/zhenshchinam", "кошки", "habr.com/",
    // Across the scheme prefix the url index leaves out (UrlSchemeSkip).
    "https://www.k", "p://koshki", "//", "http", "s://h", "user@"};
const std::vector<std::string> kQueryNeedles = {"кошек", "kia", "2012", "ипотек", "a",
                                                "",      "xyz", "нск",  "cats"};
const std::vector<std::string> kHostNeedles = {"koshki.ru", "habr.com", "ngs.ru",
                                               "bank.ru",   "ru",       "catster.com"};
const std::vector<std::string> kPathNeedles = {"/cats", "/ipoteka", "/", "/search"};

struct Owned {
  int64_t time_ms;
  int32_t type;
  std::string url, query, source;
  uint32_t ipv4;
  std::vector<std::pair<std::string, std::string>> attrs;
};

std::string Lower(std::string s) {
  LowerInPlace(s.data(), s.size());
  return s;
}

bool HostIs(std::string_view host, std::string_view d) {
  if (d.empty() || host.size() < d.size() || !host.ends_with(d)) return false;
  return host.size() == d.size() || host[host.size() - d.size() - 1] == '.';
}

// The reference: one event, one filter, plain string operations.
struct RefFilter {
  uint32_t typemask = 0;
  double lo = -INFINITY, hi = INFINITY;
  std::vector<std::string> host, url, path, query, query_all, text, source;
  bool has_host = false, has_url = false, has_path = false, has_query = false,
       has_query_all = false, has_text = false, has_source = false;
  std::string attr_key;
  std::vector<std::string> attr_vals;  // empty + attr_key set: present
  bool has_attr = false;
  uint32_t net = 0, mask = 0;
  bool has_net = false;
};

bool RefMatches(const RefFilter& f, const Owned& e) {
  if (f.typemask && !(e.type >= 0 && e.type <= 30 && (f.typemask >> e.type) & 1)) return false;
  double t = static_cast<double>(e.time_ms);
  if (t < f.lo || t > f.hi) return false;
  std::string url = Lower(e.url), query = Lower(e.query);
  int32_t ho, hl, po, pl;
  SplitUrl(url, &ho, &hl, &po, &pl);
  std::string_view host(url.data() + ho, hl), path(url.data() + po, pl);
  auto any = [](const std::vector<std::string>& l, auto&& fn) {
    return std::any_of(l.begin(), l.end(), fn);
  };
  auto contains = [](std::string_view s, const std::string& n) {
    return s.find(n) != std::string_view::npos;
  };
  if (f.has_host &&
      (host.empty() || !any(f.host, [&](const std::string& d) { return HostIs(host, d); })))
    return false;
  if (f.has_url && !any(f.url, [&](const std::string& n) { return contains(url, n); }))
    return false;
  if (f.has_path && !any(f.path, [&](const std::string& n) { return path.starts_with(n); }))
    return false;
  if (f.has_query &&
      (query.empty() || !any(f.query, [&](const std::string& n) { return contains(query, n); })))
    return false;
  if (f.has_query_all &&
      (query.empty() || !std::all_of(f.query_all.begin(), f.query_all.end(),
                                     [&](const std::string& n) { return contains(query, n); })))
    return false;
  if (f.has_text && !any(f.text, [&](const std::string& n) {
        return contains(url, n) || (!query.empty() && contains(query, n));
      }))
    return false;
  if (f.has_source && !any(f.source, [&](const std::string& n) { return Lower(e.source) == n; }))
    return false;
  if (f.has_net && (e.ipv4 == 0 || (e.ipv4 & f.mask) != f.net)) return false;
  if (f.has_attr) {
    bool found = false;
    for (const auto& [k, v] : e.attrs) {
      if (k != f.attr_key) continue;
      found = f.attr_vals.empty() ||
              any(f.attr_vals, [&](const std::string& n) { return Lower(v) == n; });
      if (found) break;
    }
    if (!found) return false;
  }
  return true;
}

class ScanDifferentialTest : public ::testing::Test {
 protected:
  std::mt19937_64 rng_{20261123};

  size_t Pick(size_t n) { return static_cast<size_t>(rng_() % n); }
  bool Coin(int percent) { return static_cast<int>(rng_() % 100) < percent; }

  std::vector<Owned> RandomUser(size_t n) {
    std::vector<Owned> events;
    for (size_t i = 0; i < n; ++i) {
      Owned e;
      e.time_ms = kNow - static_cast<int64_t>(rng_() % (100 * kDay)) + (Coin(5) ? kDay : 0);
      e.type = static_cast<int32_t>(rng_() % 9);  // 8: unknown code
      e.url = kHosts[Pick(kHosts.size())] + kPaths[Pick(kPaths.size())];
      e.query = kQueries[Pick(kQueries.size())];
      e.source = Coin(50) ? "Partner-A" : "";
      e.ipv4 =
          Coin(20) ? 0 : (Coin(50) ? 0xC6336400u | static_cast<uint32_t>(Pick(256)) : 0x0A000001u);
      if (Coin(30)) e.attrs.push_back({"gender", Coin(50) ? "F" : "m"});
      if (Coin(30)) e.attrs.push_back({"category", "pet_food"});
      events.push_back(std::move(e));
    }
    if (Coin(50)) {
      std::stable_sort(events.begin(), events.end(),
                       [](const Owned& a, const Owned& b) { return a.time_ms < b.time_ms; });
    }
    return events;
  }

  std::vector<std::string> Subset(const std::vector<std::string>& pool) {
    std::vector<std::string> out;
    size_t n = 1 + Pick(3);
    for (size_t i = 0; i < n; ++i) out.push_back(Lower(pool[Pick(pool.size())]));
    return out;
  }

  int32_t Register(ScanContext& ctx, const std::vector<std::string>& list) {
    std::vector<const char*> ptrs;
    std::vector<int32_t> lens;
    for (const auto& s : list) {
      ptrs.push_back(s.data());
      lens.push_back(static_cast<int32_t>(s.size()));
    }
    return ctx.Add(ptrs.data(), lens.data(), static_cast<int32_t>(list.size()));
  }

  void RandomFilter(ScanContext& ctx, FfiFilter* f, RefFilter* r) {
    *f = FfiFilter{};
    *r = RefFilter{};
    f->lo_ms = -INFINITY;
    f->hi_ms = INFINITY;
    f->host = f->url = f->path = f->query = f->query_all = f->text = f->source = -1;
    if (Coin(60)) {
      uint32_t mask = 0;
      for (size_t i = 0, n = 1 + Pick(3); i < n; ++i) mask |= 1u << (1 + Pick(8));
      f->typemask = static_cast<int32_t>(mask);
      if (std::popcount(mask) == 1) f->single_type = std::countr_zero(mask);
      r->typemask = mask;
    }
    double lo = -INFINITY, hi = INFINITY;
    if (Coin(50)) {
      f->within_ms = static_cast<double>(1 + Pick(120)) * kDay;
      lo = std::max(lo, kNow - f->within_ms);
    }
    if (Coin(20)) {
      f->older_ms = static_cast<double>(Pick(60)) * kDay;
      if (f->older_ms > 0) hi = std::min(hi, kNow - f->older_ms);
    }
    if (Coin(10)) {
      f->lo_ms = static_cast<double>(kNow - static_cast<int64_t>(Pick(80)) * kDay);
      lo = std::max(lo, f->lo_ms);
    }
    r->lo = lo;
    r->hi = hi;
    auto list = [&](int percent, const std::vector<std::string>& pool, int32_t* id,
                    std::vector<std::string>* ref, bool* has) {
      if (!Coin(percent)) return;
      *ref = Subset(pool);
      *id = Register(ctx, *ref);
      *has = true;
    };
    list(25, kHostNeedles, &f->host, &r->host, &r->has_host);
    list(30, kUrlNeedles, &f->url, &r->url, &r->has_url);
    list(15, kPathNeedles, &f->path, &r->path, &r->has_path);
    list(30, kQueryNeedles, &f->query, &r->query, &r->has_query);
    list(10, kQueryNeedles, &f->query_all, &r->query_all, &r->has_query_all);
    list(20, kUrlNeedles, &f->text, &r->text, &r->has_text);
    if (Coin(10)) {
      r->source = {"partner-a"};
      f->source = Register(ctx, r->source);
      r->has_source = true;
    }
    if (Coin(10)) {
      f->net_n = 1;
      f->net[0] = r->net = 0xC6336400u;
      f->mask[0] = r->mask = 0xFFFFFF80u;
      r->has_net = true;
    }
    if (Coin(20)) {
      r->has_attr = true;
      r->attr_key = Coin(50) ? "gender" : "category";
      f->attr_n = 1;
      f->attr_key[0] = Register(ctx, {r->attr_key});
      f->attr_vals[0] = -1;
      if (Coin(70)) {
        r->attr_vals = {Coin(50) ? "f" : "pet_food"};
        f->attr_vals[0] = Register(ctx, r->attr_vals);
      }
    }
  }
};

std::vector<EventView> Views(const std::vector<Owned>& events) {
  std::vector<EventView> out;
  for (const auto& e : events) {
    EventView v;
    v.time_ms = e.time_ms;
    v.type = e.type;
    v.url = e.url;
    v.search_query = e.query;
    v.source = e.source;
    v.ipv4 = e.ipv4;
    for (const auto& [k, val] : e.attrs) v.attributes.emplace_back(k, val);
    out.push_back(std::move(v));
  }
  return out;
}

TEST_F(ScanDifferentialTest, BitmapScanAgreesWithNaiveReference) {
  ScanContext ctx;
  UserData data;
  FfiUser user{};
  int nonempty = 0, empty = 0;  // the random filters must test both outcomes
  for (int round = 0; round < 60; ++round) {
    size_t n = round < 6 ? std::vector<size_t>{0, 1, 63, 64, 65, 128}[round] : Pick(300);
    std::vector<Owned> events = RandomUser(n);
    std::vector<EventView> views = Views(events);
    data.Build("u", views, kNow, /*explain=*/true, &user);
    // Time-ordered positions (stable), as the host orders them.
    std::vector<int32_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return events[a].time_ms < events[b].time_ms; });
    for (int q = 0; q < 40; ++q) {
      FfiFilter f;
      RefFilter r;
      RandomFilter(ctx, &f, &r);
      std::vector<int32_t> want;  // original positions, time order
      for (int32_t i : order) {
        if (RefMatches(r, events[i])) want.push_back(i);
      }
      ++(want.empty() ? empty : nonempty);
      SCOPED_TRACE("round " + std::to_string(round) + " filter " + std::to_string(q));
      for (int pass = 0; pass < 2; ++pass) {  // second pass: from the memo
        EXPECT_EQ(data.Scan(ctx, &user, f, 0), static_cast<int32_t>(want.size()));
        int32_t got = data.Scan(ctx, &user, f, kScanCollect);
        ASSERT_EQ(got, static_cast<int32_t>(want.size()));
        for (int32_t k = 0; k < got; ++k) EXPECT_EQ(user.ev[user.scratch[k]].index, want[k]);
        got = data.Scan(ctx, &user, f, kScanCollect | kScanReverse | kScanStop);
        ASSERT_EQ(got, want.empty() ? 0 : 1);
        if (got == 1) {
          EXPECT_EQ(user.ev[user.scratch[0]].index, want.back());
        }
        user.matched_n = 0;
        got = data.Scan(ctx, &user, f, kScanStop | kScanRecord);
        ASSERT_EQ(user.matched_n, got);
        if (got == 1) {
          EXPECT_EQ(user.matched[0], want.front());
        }
      }
    }
    EXPECT_GT(data.memo_hits(), 0);
  }
  EXPECT_GT(nonempty, 300);
  EXPECT_GT(empty, 300);
}

TEST_F(ScanDifferentialTest, DistinctOverTheUnionOfFilters) {
  ScanContext ctx;
  UserData data;
  FfiUser user{};
  for (int round = 0; round < 30; ++round) {
    std::vector<Owned> events = RandomUser(Pick(250));
    std::vector<EventView> views = Views(events);
    data.Build("u", views, kNow, false, &user);
    FfiFilter f1, f2;
    RefFilter r1, r2;
    RandomFilter(ctx, &f1, &r1);
    RandomFilter(ctx, &f2, &r2);
    std::set<double> days;
    std::set<std::string> hosts, queries, urls;
    for (const Owned& e : events) {
      if (!RefMatches(r1, e) && !RefMatches(r2, e)) continue;
      days.insert(std::floor(static_cast<double>(e.time_ms) / kDay));
      std::string url = Lower(e.url);
      int32_t ho, hl, po, pl;
      SplitUrl(url, &ho, &hl, &po, &pl);
      if (hl > 0) hosts.insert(url.substr(ho, hl));
      if (!e.query.empty()) queries.insert(Lower(e.query));
      if (!url.empty()) urls.insert(url);
    }
    const std::pair<int32_t, size_t> cases[] = {{kDistinctDay, days.size()},
                                                {kDistinctHost, hosts.size()},
                                                {kDistinctQuery, queries.size()},
                                                {kDistinctUrl, urls.size()}};
    for (const auto& [field, want] : cases) {
      data.Scan(ctx, &user, f1, kScanUnion);
      data.Scan(ctx, &user, f2, kScanUnion);
      EXPECT_EQ(data.Distinct(field), static_cast<int32_t>(want)) << "field " << field;
    }
    EXPECT_EQ(data.Distinct(kDistinctDay), 0);  // the set was emptied
  }
}

}  // namespace
}  // namespace seg::segmenter::internal

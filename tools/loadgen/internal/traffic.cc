#include "tools/loadgen/traffic.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string_view>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "ingest/ingest.h"
#include "proto/events.pb.h"

namespace seg::loadgen {
namespace {

constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kDayMs = 24 * 60 * kMinuteMs;

// One kind of event an interest produces. `url` ending in '/' gets a page
// number appended. `decides` names the segments this event alone puts the
// user in (see UserProfile::decided_segments), comma-separated.
struct Signal {
  Interest interest;
  int weight;  // relative frequency among the interest's signals
  EventType type;
  const char* url;
  const char* query = nullptr;
  const char* key1 = nullptr;
  const char* value1 = nullptr;
  const char* key2 = nullptr;
  const char* value2 = nullptr;
  const char* decides = nullptr;
};

constexpr const char* kSearchUrl = "https://search.example.com/?q=";
constexpr const char* kShopUrl = "https://shop.example.com/checkout/";

// Written against scripts/*.lua: each interest produces the hosts, URL parts,
// queries, purchase categories and partner attributes its script matches,
// in amounts that reach the script's thresholds for the more active users.
const Signal kSignals[] = {
    {kCats, 3, PAGE_VIEW, "https://pets.example.com/cats/"},
    {kCats, 1, PAGE_VIEW, "https://kotiki.example.com/koshki/"},
    {kCats, 1, SEARCH, kSearchUrl, "котики смешные видео"},
    {kCats, 1, SEARCH, kSearchUrl, "cat food for kittens"},
    {kCatOwner, 1, PURCHASE, kShopUrl, nullptr, "category", "pet_food", "pet", "cat",
     "pet_owner,cat_owner"},
    {kCatOwner, 2, SEARCH, kSearchUrl, "корм для кошек с индейкой"},
    {kCatOwner, 1, SEARCH, kSearchUrl, "наполнитель для кошачьего туалета"},
    {kDogOwner, 1, PURCHASE, kShopUrl, nullptr, "category", "pet_supplies", "pet", "dog",
     "pet_owner,dog_owner"},
    {kDogOwner, 2, SEARCH, kSearchUrl, "корм для собак крупных пород"},
    {kDogOwner, 1, SEARCH, kSearchUrl, "поводок рулетка"},
    {kCarService, 2, SEARCH, kSearchUrl, "замена масла рядом"},
    {kCarService, 1, SEARCH, kSearchUrl, "car repair near me"},
    {kCarService, 2, PAGE_VIEW, "https://autoservice.example.com/remont-avto/"},
    {kCarService, 1, FORM_SUBMIT, "https://autoservice.example.com/booking/service/"},
    {kOldCar, 1, PARTNER_SIGNAL, "", nullptr, "car_year", "2015", nullptr, nullptr,
     "car_older_than_3_years"},
    {kOldCar, 1, SEARCH, kSearchUrl, "kia rio 2012 колодки"},
    {kOldCar, 1, SEARCH, kSearchUrl, "лада гранта замена ремня грм"},
    {kOldCar, 1, PAGE_VIEW, "https://auto.example.com/parts/"},
    {kMortgage, 2, SEARCH, kSearchUrl, "ипотека калькулятор"},
    {kMortgage, 1, SEARCH, kSearchUrl, "mortgage rates"},
    {kMortgage, 2, PAGE_VIEW, "https://bank.example.com/ipoteka/"},
    {kMortgage, 1, FORM_SUBMIT, "https://bank.example.com/mortgage/apply/"},
    {kPregnancy, 1, SEARCH, kSearchUrl, "тест на беременность"},
    {kPregnancy, 1, SEARCH, kSearchUrl, "токсикоз первый триместр"},
    {kPregnancy, 2, PAGE_VIEW, "https://www.babyblog.ru/community/"},
    {kPregnancy, 1, PAGE_VIEW, "https://moms.example.com/pregnancy/"},
    {kPregnancy, 1, PURCHASE, kShopUrl, nullptr, "category", "prenatal_vitamins"},
    {kPregnancy, 1, PARTNER_SIGNAL, "", nullptr, "life_stage", "expecting", nullptr, nullptr,
     "pregnant"},
    {kTravel, 2, PAGE_VIEW, "https://www.aviasales.ru/search/"},
    {kTravel, 1, PAGE_VIEW, "https://ostrovok.ru/hotel/"},
    {kTravel, 1, APP_OPEN, "https://www.rzd.ru/"},
    {kTravel, 1, SEARCH, kSearchUrl, "авиабилеты москва сочи"},
    {kTravel, 1, SEARCH, kSearchUrl, "hotel in istanbul"},
    {kTravel, 1, PURCHASE, kShopUrl, nullptr, "category", "flight"},
    {kTech, 2, PAGE_VIEW, "https://habr.com/ru/articles/"},
    {kTech, 1, PAGE_VIEW, "https://www.ixbt.com/news/"},
    {kTech, 1, APP_OPEN, "https://4pda.to/forum/"},
    {kTech, 1, SEARCH, kSearchUrl, "rtx 4070 обзор"},
    {kTech, 1, SEARCH, kSearchUrl, "ноутбук для программиста"},
    {kTech, 1, SEARCH, kSearchUrl, "mechanical keyboard"},
    {kWoman, 1, PARTNER_SIGNAL, "", nullptr, "gender", "f", nullptr, nullptr, "woman"},
    {kWoman, 2, PAGE_VIEW, "https://www.woman.ru/beauty/"},
    {kWoman, 1, PAGE_VIEW, "https://shop.example.com/women/dresses/"},
    {kWoman, 1, PAGE_VIEW, "https://goldapple.ru/makeup/"},
    {kNovosibirsk, 1, PARTNER_SIGNAL, "", nullptr, "city", "novosibirsk", nullptr, nullptr,
     "lives_in_novosibirsk"},
    {kNovosibirsk, 1, SEARCH, kSearchUrl, "погода новосибирск"},
    {kNovosibirsk, 1, SEARCH, kSearchUrl, "академгородок кафе"},
    {kNovosibirsk, 2, PAGE_VIEW, "https://ngs.ru/news/"},
};

struct InterestInfo {
  Interest interest;
  const char* name;
  double share;  // of human users having it
};

constexpr InterestInfo kInterests[] = {
    {kCats, "cats", 0.20},
    {kCatOwner, "cat_owner", 0.12},
    {kDogOwner, "dog_owner", 0.10},
    {kCarService, "car_service", 0.15},
    {kOldCar, "old_car", 0.15},
    {kMortgage, "mortgage", 0.10},
    {kPregnancy, "pregnancy", 0.06},
    {kTravel, "travel", 0.20},
    {kTech, "tech", 0.20},
    {kWoman, "woman", 0.45},
    {kNovosibirsk, "novosibirsk", 0.10},
};

// Map fields (attributes) serialize in hash order unless asked otherwise; the
// same seed must give the same bytes.
void SerializeDeterministic(const Event& event, std::string* out) {
  out->clear();
  google::protobuf::io::StringOutputStream stream(out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  event.SerializeToCodedStream(&coded);
}

const char* kNeutralUrls[] = {"https://news.example.com/", "https://mail.example.com/inbox",
                              "https://video.example.com/watch", "https://shop.example.com/"};

// Browser user agents, shared by humans (one each, by user index) and bots,
// so the string itself tells nothing.
const char* kBrowserAgents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36",
};

// What bots crawl: listing-and-item sites whose paths none of scripts/
// matches (a bot must stay in no segment). Item ids never repeat per bot.
const char* kCrawlUrls[] = {"https://www.market.example.com/p/",
                            "https://news.example.com/article/", "https://forum.example.com/t/",
                            "https://realty.example.com/flat/"};

// Proxy IPs stay out of the ranges lives_in_novosibirsk.lua matches.
constexpr int kProxyPool = 64;
constexpr double kBotJitter = 0.3;  // a bot's turn is 1/weight * U(0.7, 1.3)
}  // namespace

const char* BotKindName(BotKind kind) {
  switch (kind) {
    case BotKind::kNone:
      return "none";
    case BotKind::kProxyRotator:
      return "proxy_rotator";
    case BotKind::kAgentRotator:
      return "agent_rotator";
    case BotKind::kSteadyCrawler:
      return "steady_crawler";
  }
  return "?";
}

TrafficGenerator::TrafficGenerator(const TrafficOptions& options)
    : options_(options), rng_(options.seed) {
  std::uniform_real_distribution<double> u(0, 1);
  users_.resize(options_.users);
  std::vector<double> weights;
  for (int32_t i = 0; i < options_.users; ++i) {
    UserProfile& p = users_[i];
    p.id = "u" + std::to_string(options_.seed) + "-" + std::to_string(i);
    p.bot = u(rng_) < options_.bot_share;
    if (p.bot) {
      // Kinds in turn, so every kind is a third of the bots at any size.
      p.bot_kind = static_cast<BotKind>(1 + bots_.size() % 3);
      // Rates log-uniform over bot_rate_spread, around 1.
      p.weight = std::pow(std::max(1.0, options_.bot_rate_spread), u(rng_) - 0.5);
      // First turns spread over one stride, so bots do not start in step.
      bot_turns_.emplace_back(u(rng_) / p.weight, static_cast<int32_t>(bots_.size()));
      bots_.push_back(i);
      bot_pages_.push_back(std::uniform_int_distribution<int64_t>(10'000, 900'000)(rng_));
      continue;
    }
    // Each interest independently, so overlaps exist.
    for (const auto& info : kInterests) {
      if (u(rng_) < info.share) p.interests |= info.interest;
    }
    // Pregnancy implies the woman signal more often than not: real overlap.
    if ((p.interests & kPregnancy) && u(rng_) < 0.8) p.interests |= kWoman;
    p.weight = std::pow(1.0 - u(rng_), -1.0 / options_.pareto_alpha);
    humans_.push_back(i);
    weights.push_back(p.weight);
  }
  if (weights.empty()) weights.push_back(1);
  human_pick_ = std::discrete_distribution<int32_t>(weights.begin(), weights.end());
  std::make_heap(bot_turns_.begin(), bot_turns_.end(), std::greater<>());
}

int32_t TrafficGenerator::NextBot() {
  std::pop_heap(bot_turns_.begin(), bot_turns_.end(), std::greater<>());
  auto& [turn, bot] = bot_turns_.back();
  const int32_t user = bots_[bot];
  const double jitter =
      std::uniform_real_distribution<double>(1 - kBotJitter, 1 + kBotJitter)(rng_);
  turn += jitter / users_[user].weight;
  std::push_heap(bot_turns_.begin(), bot_turns_.end(), std::greater<>());
  return user;
}

std::vector<std::string> TrafficGenerator::InterestNames(uint32_t interests) {
  std::vector<std::string> names;
  for (const auto& info : kInterests) {
    if (interests & info.interest) names.emplace_back(info.name);
  }
  return names;
}

int32_t TrafficGenerator::PickUser(bool bot) {
  if (bot && !bots_.empty()) return NextBot();
  if (humans_.empty()) return 0;
  return humans_[human_pick_(rng_)];
}

void TrafficGenerator::Next(int64_t now_ms, GeneratedMessage* out) {
  std::uniform_real_distribution<double> u(0, 1);
  out->duplicate = false;
  out->malformed_reason.clear();
  double r = u(rng_);
  if (r < options_.malformed_share) {
    MakeMalformed(now_ms, out);
    if (out->user_index >= 0) ++users_[out->user_index].malformed;
    return;
  }
  if (r < options_.malformed_share + options_.duplicate_share && last_user_ >= 0) {
    out->key = last_key_;
    out->value = last_value_;
    out->user_index = last_user_;
    out->duplicate = true;
    ++users_[last_user_].messages;
    ++users_[last_user_].duplicates;
    return;
  }
  int32_t user;
  int64_t time_ms = now_ms;
  // Bots first, so bot_traffic_share is their share of all events; their
  // events interleave with the humans' page-load bursts.
  if (!bots_.empty() && u(rng_) < options_.bot_traffic_share) {
    user = PickUser(true);
  } else if (burst_left_ > 0) {
    user = burst_user_;
    --burst_left_;
    // Spread over the burst's second, but never after `now`: an event sent
    // before it happened would flatter every event-to-result latency.
    time_ms = std::min(burst_time_ms_ + std::uniform_int_distribution<int64_t>(0, 1000)(rng_),
                       std::max(now_ms, burst_time_ms_));
  } else {
    user = PickUser(false);
    burst_user_ = user;
    burst_left_ = std::uniform_int_distribution<int32_t>(0, 5)(rng_);
    burst_time_ms_ = now_ms;
    // A session from the user's past (a replayed history or partner backfill).
    if (u(rng_) < options_.history_share) {
      burst_time_ms_ -= std::uniform_int_distribution<int64_t>(kDayMs, 45 * kDayMs)(rng_);
    }
    time_ms = burst_time_ms_;
  }
  if (u(rng_) < options_.late_share) {
    time_ms -= std::uniform_int_distribution<int64_t>(kMinuteMs, 180 * kMinuteMs)(rng_);
  }
  MakeEvent(user, time_ms, out);
  ++users_[user].messages;
  last_key_ = out->key;
  last_value_ = out->value;
  last_user_ = user;
}

void TrafficGenerator::Decide(int32_t user, const char* segments) {
  std::vector<std::string>& decided = users_[user].decided_segments;
  std::string_view rest(segments);
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string name(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    auto it = std::lower_bound(decided.begin(), decided.end(), name);
    if (it == decided.end() || *it != name) decided.insert(it, std::move(name));
  }
}

void TrafficGenerator::MakeEvent(int32_t user, int64_t time_ms, GeneratedMessage* out) {
  const UserProfile& p = users_[user];
  std::uniform_real_distribution<double> u(0, 1);
  Event e;
  e.set_user_id(p.id);
  e.set_event_time_ms(time_ms);
  e.set_event_id("e" + std::to_string(options_.seed) + "-" + std::to_string(next_event_id_++));
  e.set_source("web");
  if (p.bot) {
    MakeBotEvent(user, &e);
    out->key = p.id;
    out->user_index = user;
    SerializeDeterministic(e, &out->value);
    return;
  }
  // Novosibirsk users browse from the ranges lives_in_novosibirsk.lua lists.
  const std::string net = (p.interests & kNovosibirsk) ? "198.51.100." : "10.";
  e.set_ip((p.interests & kNovosibirsk) ? net + std::to_string(user % 250)
                                        : net + std::to_string(user % 250) + "." +
                                              std::to_string((user / 250) % 250) + ".7");
  e.set_user_agent(kBrowserAgents[user % std::size(kBrowserAgents)]);
  const Signal* signal = nullptr;
  if (p.interests != 0 && u(rng_) < 0.7) {
    // One of the user's signals, by weight.
    int total = 0;
    for (const auto& s : kSignals) total += (p.interests & s.interest) ? s.weight : 0;
    int pick = std::uniform_int_distribution<int>(0, total - 1)(rng_);
    for (const auto& s : kSignals) {
      if (!(p.interests & s.interest)) continue;
      pick -= s.weight;
      if (pick < 0) {
        signal = &s;
        break;
      }
    }
  }
  int page = std::uniform_int_distribution<int>(1, 500)(rng_);
  if (signal == nullptr) {
    e.set_type(u(rng_) < 0.8 ? PAGE_VIEW : CLICK);
    e.set_url(std::string(kNeutralUrls[page % std::size(kNeutralUrls)]) + std::to_string(page));
  } else {
    e.set_type(signal->type);
    std::string url = signal->url;
    if (!url.empty() && url.back() == '/') url += std::to_string(page);
    if (signal->type == SEARCH) url += std::to_string(page);
    e.set_url(std::move(url));
    if (signal->query != nullptr) e.set_search_query(signal->query);
    if (signal->key1 != nullptr) (*e.mutable_attributes())[signal->key1] = signal->value1;
    if (signal->key2 != nullptr) (*e.mutable_attributes())[signal->key2] = signal->value2;
    if (signal->type == PAGE_VIEW) e.set_referrer("https://search.example.com/");
    if (signal->decides != nullptr) Decide(user, signal->decides);
  }
  out->key = p.id;
  out->user_index = user;
  SerializeDeterministic(e, &out->value);
}

void TrafficGenerator::MakeBotEvent(int32_t user, Event* e) {
  const UserProfile& p = users_[user];
  const size_t bot =
      static_cast<size_t>(std::lower_bound(bots_.begin(), bots_.end(), user) - bots_.begin());
  const int32_t net = static_cast<int32_t>(bot);
  std::string ip =
      "100.64." + std::to_string(net % 250) + "." + std::to_string(1 + net / 250 % 250);
  std::string_view agent = kBrowserAgents[(user * 7 + 3) % std::size(kBrowserAgents)];
  if (p.bot_kind == BotKind::kProxyRotator) {
    const int proxy = std::uniform_int_distribution<int>(0, kProxyPool - 1)(rng_);
    ip = "45." + std::to_string(60 + net % 120) + "." + std::to_string(proxy) + "." +
         std::to_string(10 + net / 120 % 200);
  } else if (p.bot_kind == BotKind::kAgentRotator) {
    agent = kBrowserAgents[std::uniform_int_distribution<size_t>(
        0, std::size(kBrowserAgents) - 1)(rng_)];
  }
  e->set_ip(std::move(ip));
  e->set_user_agent(std::string(agent));
  // A crawl: the next item of the bot's site, found on a listing page; ids
  // advance by a small stride, so no URL repeats.
  const std::string host = kCrawlUrls[bot % std::size(kCrawlUrls)];
  int64_t& page = bot_pages_[bot];
  page += 1 + static_cast<int64_t>(bot % 5);
  e->set_type(PAGE_VIEW);
  e->set_url(host + std::to_string(page));
  e->set_referrer(host + "?page=" + std::to_string(page / 40));
}

void TrafficGenerator::MakeMalformed(int64_t now_ms, GeneratedMessage* out) {
  Event e;
  int32_t user = PickUser(false);
  e.set_user_id(users_[user].id);
  e.set_event_time_ms(now_ms);
  e.set_type(PAGE_VIEW);
  e.set_url("https://news.example.com/");
  e.set_event_id("bad" + std::to_string(next_event_id_++));
  out->user_index = user;
  switch (std::uniform_int_distribution<int>(0, 5)(rng_)) {
    case 0:
      e.clear_user_id();
      out->malformed_reason = ingest::reason::kMissingUserId;
      out->user_index = -1;
      break;
    case 1:
      e.set_event_time_ms(now_ms + 7 * 24 * 3600 * 1000LL);
      out->malformed_reason = ingest::reason::kTimeInFuture;
      break;
    case 2:
      e.set_event_time_ms(now_ms - 400LL * 24 * 3600 * 1000);
      out->malformed_reason = ingest::reason::kTimeTooOld;
      break;
    case 3:
      e.set_type(EVENT_TYPE_UNSPECIFIED);
      out->malformed_reason = ingest::reason::kUnknownType;
      break;
    case 4:
      e.set_user_id(std::string("bad\x01user") + std::to_string(user));
      out->malformed_reason = ingest::reason::kUserIdControlChars;
      out->user_index = -1;
      break;
    default:
      out->key = users_[user].id;
      out->value = "\xff\xfe not a protobuf \x00\x01";
      out->malformed_reason = ingest::reason::kUndecodable;
      return;
  }
  out->key = e.user_id();
  SerializeDeterministic(e, &out->value);
}

}  // namespace seg::loadgen

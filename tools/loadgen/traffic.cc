#include "tools/loadgen/traffic.h"

#include <cmath>

#include "ingest/ingest.h"
#include "proto/events.pb.h"

namespace seg::loadgen {
namespace {

constexpr int64_t kMinuteMs = 60'000;

struct InterestVocabulary {
  Interest interest;
  const char* name;
  const char* url_prefix;     // page views and clicks
  const char* search;         // search queries
  const char* attribute_key;  // partner signal attribute (or null)
  const char* attribute_value;
};

// Must agree with the shipped scripts in scripts/: each interest produces the
// signals its script looks for.
constexpr InterestVocabulary kVocabulary[] = {
    {kCats, "cats", "https://pets.example.com/cats/", "cat food for kittens", nullptr, nullptr},
    {kCarService, "car_service", "https://auto.example.com/service/", "car service near me",
     nullptr, nullptr},
    {kOldCar, "old_car", "https://auto.example.com/parts/", "used car repair", "car_year", "2015"},
    {kMortgage, "mortgage", "https://bank.example.com/mortgage/", "mortgage rates calculator",
     nullptr, nullptr},
    {kPregnancy, "pregnancy", "https://moms.example.com/pregnancy/", "pregnancy week by week",
     nullptr, nullptr},
    {kTravel, "travel", "https://travel.example.com/flights/", "cheap flights", nullptr, nullptr},
    {kTech, "tech", "https://tech.example.com/reviews/", "best laptop 2026", nullptr, nullptr},
    {kWoman, "woman", "https://fashion.example.com/women/", "dresses", "gender", "f"},
    {kNovosibirsk, "novosibirsk", "https://city.example.com/novosibirsk/", "weather novosibirsk",
     "city", "novosibirsk"},
};

const char* kNeutralUrls[] = {"https://news.example.com/", "https://mail.example.com/inbox",
                              "https://video.example.com/watch", "https://shop.example.com/"};

}  // namespace

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
      bots_.push_back(i);
      continue;
    }
    // Each interest independently, 10-25% of users each, so overlaps exist.
    for (size_t k = 0; k < std::size(kVocabulary); ++k) {
      if (u(rng_) < 0.10 + 0.15 * u(rng_)) p.interests |= kVocabulary[k].interest;
    }
    // Pregnancy implies the woman signal more often than not: real overlap.
    if ((p.interests & kPregnancy) && u(rng_) < 0.8) p.interests |= kWoman;
    p.weight = std::pow(1.0 - u(rng_), -1.0 / options_.pareto_alpha);
    humans_.push_back(i);
    weights.push_back(p.weight);
  }
  if (weights.empty()) weights.push_back(1);
  human_pick_ = std::discrete_distribution<int32_t>(weights.begin(), weights.end());
}

std::vector<std::string> TrafficGenerator::InterestNames(uint32_t interests) {
  std::vector<std::string> names;
  for (const auto& v : kVocabulary) {
    if (interests & v.interest) names.emplace_back(v.name);
  }
  return names;
}

int32_t TrafficGenerator::PickUser(bool bot) {
  if (bot && !bots_.empty()) {
    return bots_[std::uniform_int_distribution<size_t>(0, bots_.size() - 1)(rng_)];
  }
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
    return;
  }
  if (r < options_.malformed_share + options_.duplicate_share && last_user_ >= 0) {
    out->key = last_key_;
    out->value = last_value_;
    out->user_index = last_user_;
    out->duplicate = true;
    return;
  }
  int32_t user;
  int64_t time_ms = now_ms;
  if (burst_left_ > 0) {
    user = burst_user_;
    --burst_left_;
    time_ms = burst_time_ms_ + std::uniform_int_distribution<int64_t>(0, 1000)(rng_);
  } else if (u(rng_) < options_.bot_traffic_share) {
    user = PickUser(true);
  } else {
    user = PickUser(false);
    burst_user_ = user;
    burst_left_ = std::uniform_int_distribution<int32_t>(0, 5)(rng_);
    burst_time_ms_ = now_ms;
  }
  if (u(rng_) < options_.late_share) {
    time_ms -= std::uniform_int_distribution<int64_t>(kMinuteMs, 180 * kMinuteMs)(rng_);
  }
  MakeEvent(user, time_ms, out);
  last_key_ = out->key;
  last_value_ = out->value;
  last_user_ = user;
}

void TrafficGenerator::MakeEvent(int32_t user, int64_t time_ms, GeneratedMessage* out) {
  const UserProfile& p = users_[user];
  std::uniform_real_distribution<double> u(0, 1);
  Event e;
  e.set_user_id(p.id);
  e.set_event_time_ms(time_ms);
  e.set_event_id("e" + std::to_string(options_.seed) + "-" + std::to_string(next_event_id_++));
  e.set_source(p.bot ? "crawler" : "web");
  e.set_ip("10." + std::to_string(user % 250) + "." + std::to_string((user / 250) % 250) + ".7");
  e.set_user_agent(p.bot ? "python-requests/2.31" : "Mozilla/5.0 (X11; Linux x86_64)");
  const InterestVocabulary* v = nullptr;
  if (p.interests != 0 && u(rng_) < 0.7) {
    // One of the user's interests, uniformly.
    std::vector<const InterestVocabulary*> mine;
    for (const auto& voc : kVocabulary) {
      if (p.interests & voc.interest) mine.push_back(&voc);
    }
    v = mine[std::uniform_int_distribution<size_t>(0, mine.size() - 1)(rng_)];
  }
  double kind = u(rng_);
  int page = std::uniform_int_distribution<int>(1, 500)(rng_);
  if (v == nullptr) {
    e.set_type(kind < 0.8 ? PAGE_VIEW : CLICK);
    e.set_url(std::string(kNeutralUrls[page % std::size(kNeutralUrls)]) + std::to_string(page));
  } else if (v->attribute_key != nullptr && kind < 0.25) {
    e.set_type(PARTNER_SIGNAL);
    (*e.mutable_attributes())[v->attribute_key] = v->attribute_value;
  } else if (kind < 0.45) {
    e.set_type(SEARCH);
    e.set_url("https://search.example.com/?q=" + std::to_string(page));
    e.set_search_query(v->search);
  } else {
    e.set_type(kind < 0.85 ? PAGE_VIEW : CLICK);
    e.set_url(std::string(v->url_prefix) + std::to_string(page));
    e.set_referrer("https://search.example.com/");
  }
  out->key = p.id;
  out->user_index = user;
  e.SerializeToString(&out->value);
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
  e.SerializeToString(&out->value);
}

}  // namespace seg::loadgen

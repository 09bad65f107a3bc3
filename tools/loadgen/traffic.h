// TrafficGenerator: realistic synthetic user events, deterministic from a seed.
//
// The model, so that segments, skips and the blacklist all have something
// real to do:
//   - N users with heavy-tailed activity (Pareto weights: a few users make
//     most of the traffic, most users appear a few times);
//   - each user has an interest profile (cats, a cat or a dog to feed, car
//     service, an old car, mortgage, pregnancy, travel, tech, gender, city)
//     that decides which URLs, searches, purchases and partner signals it
//     produces. The vocabulary (traffic.cc) is written against the shipped
//     scripts in scripts/, so every segment they declare gets members;
//   - sessions: a page load fires a burst of 1-6 events within ~1 s
//     (background tabs, trackers), followed by a click chain;
//   - history: a share of events is dated days back (up to 45 days), so the
//     scripts' "on N distinct days" rules have something to count;
//   - ~5% bots with no interests that pass for browsers: a browser user
//     agent, real-looking URLs, source "web" like everyone else. Only their
//     behaviour gives them away, as it does in production: each crawls
//     pages it has not seen before at a steady, lightly jittered cadence,
//     sustained for as long as the generator runs, and by kind (BotKind)
//     either rotates its IP through a proxy pool, rotates its user agent, or
//     keeps both fixed (then cadence and never-revisited URLs are all there
//     is). Bots are scheduled by stride scheduling (each has a rate weight;
//     the bot whose next turn is earliest sends), so a bot's events are
//     evenly spaced whatever the overall rate;
//   - late and out-of-order events (event time minutes to hours in the
//     past), exact duplicates (re-sent with the same event id), and a small
//     share of malformed messages of every kind ingest must reject.
// Ground truth per user (interests, bot flag, message counts and the
// segments its events decide on their own) is kept so tests and benchmarks
// can check what the pipeline should have concluded.
// Not thread-safe: one generator per producing thread.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace seg {
class Event;  // proto/events.proto
}

namespace seg::loadgen {

struct TrafficOptions {
  int32_t users = 10'000;
  uint64_t seed = 1;
  double bot_share = 0.05;          // users that are bots
  double bot_traffic_share = 0.30;  // of all events, produced by bots
  // Fastest over slowest bot rate (log-uniform between); 1 = all bots send
  // alike (what tests counting each bot's messages expect).
  double bot_rate_spread = 1;
  double malformed_share = 0.002;  // messages that must be dead-lettered
  double duplicate_share = 0.05;   // events sent twice (same id)
  double late_share = 0.02;        // events minutes..hours old
  double history_share = 0.10;     // human events dated 1..45 days back
  double pareto_alpha = 1.2;       // activity tail; lower = heavier
};

enum Interest : uint32_t {
  kCats = 1 << 0,
  kCarService = 1 << 1,
  kOldCar = 1 << 2,
  kMortgage = 1 << 3,
  kPregnancy = 1 << 4,
  kTravel = 1 << 5,
  kTech = 1 << 6,
  kWoman = 1 << 7,
  kNovosibirsk = 1 << 8,
  kCatOwner = 1 << 9,  // buys cat food and litter
  kDogOwner = 1 << 10,
};

// How a bot hides (UserProfile::bot_kind). Every kind crawls new URLs at a
// steady cadence with a browser user agent.
enum class BotKind : uint8_t {
  kNone = 0,       // a human
  kProxyRotator,   // one user agent, a different proxy IP per request (pool of 64)
  kAgentRotator,   // one IP, a user agent picked per request from a pool of browser agents
  kSteadyCrawler,  // one user agent, one IP
};
const char* BotKindName(BotKind kind);

struct UserProfile {
  std::string id;
  uint32_t interests = 0;  // Interest bits
  bool bot = false;        // ground truth: the generator made this user a bot
  BotKind bot_kind = BotKind::kNone;
  double weight = 1;  // relative activity (bots: relative rate among bots)
  // Ground truth counted while generating.
  int64_t messages = 0;    // valid messages sent for this user, duplicates included
  int64_t duplicates = 0;  // of which re-sends
  int64_t malformed = 0;   // malformed messages carrying this user's id
  // Segments that one of the user's events decides by itself, whatever else
  // arrives: a partner signal (car_year, gender, city; the generator never
  // sends a contradicting one) or a pet purchase. Sorted names. Holds while
  // that event is among the user's newest events the segmenter reads
  // (max_events_per_user, history_days); window-based rules are left to a
  // direct evaluation of the scripts.
  std::vector<std::string> decided_segments;
};

struct GeneratedMessage {
  std::string key;               // user id (may be empty for malformed)
  std::string value;             // serialized seg.Event, or junk when malformed
  std::string malformed_reason;  // ingest::reason of its dead letter; empty when valid
  int32_t user_index = -1;       // into users(); -1 for malformed without a user
  bool duplicate = false;        // a re-send of an earlier event
};

class TrafficGenerator {
 public:
  explicit TrafficGenerator(const TrafficOptions& options);

  // The next message, with event times around `now_ms`.
  void Next(int64_t now_ms, GeneratedMessage* out);

  const std::vector<UserProfile>& users() const { return users_; }
  static std::vector<std::string> InterestNames(uint32_t interests);

 private:
  int32_t PickUser(bool bot);
  // The bot whose turn is earliest (stride scheduling), advanced by one turn.
  int32_t NextBot();
  void MakeEvent(int32_t user, int64_t time_ms, GeneratedMessage* out);
  void MakeBotEvent(int32_t user, Event* e);
  void MakeMalformed(int64_t now_ms, GeneratedMessage* out);
  void Decide(int32_t user, const char* segment);

  TrafficOptions options_;
  std::mt19937_64 rng_;
  std::vector<UserProfile> users_;
  std::vector<int32_t> humans_, bots_;
  std::discrete_distribution<int32_t> human_pick_;
  // Stride scheduling of bots: a min-heap of (next turn, index into bots_);
  // a turn advances by 1 / weight, jittered +-30%.
  std::vector<std::pair<double, int32_t>> bot_turns_;
  std::vector<int64_t> bot_pages_;  // per bots_ entry: pages crawled so far
  // Burst state: remaining events of the current page load and its user.
  int32_t burst_user_ = -1;
  int32_t burst_left_ = 0;
  int64_t burst_time_ms_ = 0;
  uint64_t next_event_id_ = 1;
  std::string last_value_, last_key_;
  int32_t last_user_ = -1;
};

}  // namespace seg::loadgen

// seg-loadgen's ground truth agrees with ingest and with the shipped scripts:
// every message it labels malformed is rejected by ingest's validator with
// that very reason, every message it labels valid is accepted, and its
// interest vocabulary gives every segment the scripts declare some members.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/event_codec.h"
#include "ingest/ingest.h"
#include "proto/events.pb.h"
#include "segmenter/script_host/script_host.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"
#include "tools/loadgen/traffic.h"

namespace seg {
namespace {

TEST(LoadgenTest, MalformedLabelsMatchIngestRejections) {
  loadgen::TrafficOptions options;
  options.users = 2000;
  options.seed = 11;
  options.malformed_share = 0.2;
  loadgen::TrafficGenerator generator(options);
  ingest::ValidationOptions validation;
  const int64_t now = 1'790'000'000'000;
  loadgen::GeneratedMessage msg;
  std::map<std::string, int> rejected_by_reason;
  int valid = 0;
  for (int i = 0; i < 20'000; ++i) {
    generator.Next(now, &msg);
    Event event;
    auto rejection = ingest::DecodeAndValidate(msg.value, validation, now, &event);
    if (msg.malformed_reason.empty()) {
      ASSERT_FALSE(rejection.has_value()) << rejection->reason << ": " << rejection->detail;
      ++valid;
    } else {
      ASSERT_TRUE(rejection.has_value()) << "accepted a message labelled " << msg.malformed_reason;
      EXPECT_EQ(rejection->reason, msg.malformed_reason) << rejection->detail;
      ++rejected_by_reason[msg.malformed_reason];
    }
  }
  EXPECT_GT(valid, 10'000);
  EXPECT_EQ(rejected_by_reason.size(), 6u);  // every malformed kind was generated
}

TEST(LoadgenTest, SameSeedSameTraffic) {
  loadgen::TrafficOptions options;
  options.users = 500;
  options.seed = 5;
  loadgen::TrafficGenerator a(options), b(options);
  loadgen::GeneratedMessage ma, mb;
  for (int i = 0; i < 5000; ++i) {
    a.Next(1'790'000'000'000, &ma);
    b.Next(1'790'000'000'000, &mb);
    ASSERT_EQ(ma.key, mb.key);
    ASSERT_EQ(ma.value, mb.value);
    ASSERT_EQ(ma.malformed_reason, mb.malformed_reason);
  }
  for (size_t u = 0; u < a.users().size(); ++u) {
    EXPECT_EQ(a.users()[u].decided_segments, b.users()[u].decided_segments);
  }
}

// 5k users' traffic, evaluated directly by the script host: every declared
// segment has members, and every segment the generator says an event decided
// is among the user's segments.
TEST(LoadgenTest, EverySegmentGetsMembersAndDecidedSegmentsHold) {
  loadgen::TrafficOptions options;
  options.users = 5000;
  options.seed = 3;
  loadgen::TrafficGenerator generator(options);
  ingest::ValidationOptions validation;
  const int64_t now = 1'790'000'000'000;
  // Distinct valid events per user, as the store keeps them (keyed by qualifier).
  std::vector<std::map<std::string, std::string>> cells(options.users);
  loadgen::GeneratedMessage msg;
  for (int i = 0; i < 150'000; ++i) {
    generator.Next(now, &msg);
    if (!msg.malformed_reason.empty()) continue;
    Event event;
    ASSERT_FALSE(ingest::DecodeAndValidate(msg.value, validation, now, &event).has_value());
    std::string qualifier, value;
    EncodeEventQualifier(event.event_time_ms(), EventDigest(event), event.type(), &qualifier);
    SEG_ASSERT_OK(EncodeEventValue(event, &value));
    cells[msg.user_index][qualifier] = value;
  }

  segmenter::ScriptHostOptions host_options;
  host_options.scripts_dir = testing::SourceDir() + "/scripts";
  host_options.reload_check_interval_ms = 0;
  auto host = segmenter::ScriptHost::Create(host_options);
  SEG_ASSERT_OK(host);
  std::map<std::string, int> members;
  for (const auto& script : (*host)->scripts()) {
    for (const auto& segment : script.segments) members[segment] = 0;
  }
  ASSERT_GE(members.size(), 10u);

  segmenter::EvaluateOptions evaluate;
  evaluate.now_ms = now;
  segmenter::EvaluationResult result;
  std::vector<EventView> views;
  for (int32_t u = 0; u < options.users; ++u) {
    views.clear();
    for (const auto& [qualifier, value] : cells[u]) {
      SEG_ASSERT_OK(DecodeEventCell(qualifier, value, &views.emplace_back()));
    }
    const loadgen::UserProfile& user = generator.users()[u];
    SEG_ASSERT_OK((*host)->EvaluateUser(user.id, views, evaluate, &result));
    ASSERT_TRUE(result.failed.empty()) << result.failed[0];
    std::set<std::string> got(result.segments.begin(), result.segments.end());
    for (const auto& s : got) ++members[s];
    for (const auto& decided : user.decided_segments) {
      EXPECT_TRUE(got.count(decided)) << user.id << " should be in " << decided;
    }
    if (user.bot) {
      EXPECT_TRUE(got.empty()) << user.id << " is a bot with segments";
    }
  }
  for (const auto& [segment, n] : members) {
    EXPECT_GE(n, 20) << segment << " has too few members among 5000 users";
    EXPECT_LE(n, 4000) << segment << " holds nearly everyone";
  }
}

}  // namespace
}  // namespace seg

// seg-loadgen's ground truth agrees with ingest: every message it labels
// malformed is rejected by ingest's validator with that very reason, and
// every message it labels valid is accepted.
#include <gtest/gtest.h>

#include <map>

#include "ingest/ingest.h"
#include "proto/events.pb.h"
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

}  // namespace
}  // namespace seg

// Unit tests of decoding, validation and cell encoding (no Kafka, no store).
#include <gtest/gtest.h>

#include "common/event_codec.h"
#include "ingest/ingest.h"
#include "proto/events.pb.h"
#include "tests/harness/status_matchers.h"

namespace seg::ingest {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;

Event GoodEvent() {
  Event e;
  e.set_user_id("user-1");
  e.set_event_time_ms(kNow - 1000);
  e.set_type(PAGE_VIEW);
  e.set_url("https://example.com/cats");
  e.set_ip("10.1.2.3");
  return e;
}

std::optional<Rejection> Check(const Event& e, ValidationOptions options = {}) {
  Event out;
  return DecodeAndValidate(e.SerializeAsString(), options, kNow, &out);
}

TEST(ValidationTest, AcceptsGoodProtobufEvent) {
  Event out;
  auto r = DecodeAndValidate(GoodEvent().SerializeAsString(), {}, kNow, &out);
  EXPECT_FALSE(r.has_value()) << r->reason << ": " << r->detail;
  EXPECT_EQ(out.user_id(), "user-1");
}

TEST(ValidationTest, AcceptsJsonEvent) {
  Event out;
  std::string json = R"({"userId":"u-9","eventTimeMs":")" + std::to_string(kNow) +
                     R"(","type":"SEARCH","searchQuery":"car service","ip":"::1"})";
  auto r = DecodeAndValidate(json, {}, kNow, &out);
  ASSERT_FALSE(r.has_value()) << r->reason << ": " << r->detail;
  EXPECT_EQ(out.user_id(), "u-9");
  EXPECT_EQ(out.type(), SEARCH);
  EXPECT_EQ(out.search_query(), "car service");
  // Leading blanks are fine too.
  r = DecodeAndValidate("  \n" + json, {}, kNow, &out);
  EXPECT_FALSE(r.has_value());
}

TEST(ValidationTest, RejectsEachBadInputWithItsReason) {
  Event e = GoodEvent();
  e.set_user_id("");
  EXPECT_EQ(Check(e)->reason, reason::kMissingUserId);
  e = GoodEvent();
  e.set_user_id(std::string(257, 'x'));
  EXPECT_EQ(Check(e)->reason, reason::kUserIdTooLong);
  e.set_user_id(std::string(256, 'x'));
  EXPECT_FALSE(Check(e).has_value());
  e.set_user_id("bad\nid");
  EXPECT_EQ(Check(e)->reason, reason::kUserIdControlChars);
  e = GoodEvent();
  e.set_event_time_ms(kNow + 11 * 60 * 1000);
  EXPECT_EQ(Check(e)->reason, reason::kTimeInFuture);
  e.set_event_time_ms(kNow + 9 * 60 * 1000);
  EXPECT_FALSE(Check(e).has_value());
  e.set_event_time_ms(kNow - 61ll * 24 * 3600 * 1000);
  EXPECT_EQ(Check(e)->reason, reason::kTimeTooOld);
  e = GoodEvent();
  e.set_type(EVENT_TYPE_UNSPECIFIED);
  EXPECT_EQ(Check(e)->reason, reason::kUnknownType);
  e.set_type(static_cast<EventType>(99));
  EXPECT_EQ(Check(e)->reason, reason::kUnknownType);
  e = GoodEvent();
  e.set_ip("300.1.1.1");
  EXPECT_EQ(Check(e)->reason, reason::kBadIp);
  e = GoodEvent();
  e.set_url(std::string(70 * 1024, 'u'));
  EXPECT_EQ(Check(e)->reason, reason::kOversized);

  Event out;
  EXPECT_EQ(DecodeAndValidate("\xff\xff\xff garbage", {}, kNow, &out)->reason,
            reason::kUndecodable);
  EXPECT_EQ(DecodeAndValidate("{not json", {}, kNow, &out)->reason, reason::kUndecodable);
  EXPECT_EQ(DecodeAndValidate(R"({"userId":"u","bogusField":1})", {}, kNow, &out)->reason,
            reason::kUndecodable);
  ValidationOptions lenient;
  lenient.json_ignore_unknown_fields = true;
  std::string json = R"({"userId":"u","eventTimeMs":)" + std::to_string(kNow) +
                     R"(,"type":"CLICK","bogusField":1})";
  EXPECT_FALSE(DecodeAndValidate(json, lenient, kNow, &out).has_value());
}

TEST(ValidationTest, CellIsIdempotentAndTimeOrdered) {
  Event e = GoodEvent();
  store::Cell a, b;
  SEG_ASSERT_OK(EncodeEventCell(e, "e", &a));
  SEG_ASSERT_OK(EncodeEventCell(e, "e", &b));
  EXPECT_EQ(a.qualifier, b.qualifier);
  EXPECT_EQ(a.value, b.value);
  EXPECT_EQ(a.family, "e");
  EXPECT_EQ(a.timestamp, e.event_time_ms());
  EXPECT_EQ(a.qualifier.size(), kEventQualifierSize);
  e.set_event_time_ms(e.event_time_ms() + 1);
  SEG_ASSERT_OK(EncodeEventCell(e, "e", &b));
  EXPECT_LT(a.qualifier, b.qualifier);
  EventView view;
  SEG_ASSERT_OK(DecodeEventCell(a.qualifier, a.value, &view));
  EXPECT_EQ(view.url, "https://example.com/cats");
  EXPECT_EQ(view.ipv4, (10u << 24) | (1u << 16) | (2u << 8) | 3u);
}

}  // namespace
}  // namespace seg::ingest

// Rolling upgrade at the message level: old and new segmenters (and old
// partners) exchange ChangeNotice, SegmentationResult and the family-`s`
// SegmentState. proto3 keeps unknown fields, so
//   * new bytes parse with the old schema (tests/old_segmentation.proto,
//     package seg.v1: the schema before kind, seq, due, stale, bot),
//   * an old binary that parses, edits and re-serialises a message keeps the
//     new fields it does not know (an old segmenter rewriting family `s` does
//     not drop seq/due),
//   * old bytes parse with the new schema with defaults (kind = NOTICE_WRITE,
//     seq = 0, no due).
#include <gtest/gtest.h>

#include "proto/segmentation.pb.h"
#include "tests/old_segmentation.pb.h"

namespace seg {
namespace {

template <typename To, typename From>
To Reparse(const From& from) {
  To to;
  EXPECT_TRUE(to.ParseFromString(from.SerializeAsString()));
  return to;
}

TEST(RollingUpgradeCompatTest, NewResultParsesWithOldSchemaAndKeepsSeqWhenRewritten) {
  SegmentationResult r;
  r.set_user_id("u1");
  r.add_segments("cats");
  r.add_exited("dogs");
  r.set_segmented_at_ms(1'800'000'000'000);
  r.set_reason(DEFINITION_CHANGE);
  r.add_failed_scripts("pets.lua");
  r.set_seq(1'800'000'000'000'000);

  auto old = Reparse<v1::SegmentationResult>(r);
  EXPECT_EQ(old.user_id(), "u1");
  EXPECT_EQ(old.segments(0), "cats");
  EXPECT_EQ(old.exited(0), "dogs");
  EXPECT_EQ(old.reason(), v1::SCRIPTS_CHANGED);  // renamed, same value 3
  EXPECT_EQ(old.failed_scripts(0), "pets.lua");
  EXPECT_FALSE(old.GetReflection()->GetUnknownFields(old).empty());  // seq, kept unknown

  // A new reason value an old consumer does not know: parsed, kept as is.
  r.set_reason(SCHEDULE);
  old = Reparse<v1::SegmentationResult>(r);
  EXPECT_EQ(static_cast<int>(old.reason()), 4);
  old.add_entered("birds");  // the old code edits and re-serialises
  auto back = Reparse<SegmentationResult>(old);
  EXPECT_EQ(back.seq(), 1'800'000'000'000'000);
  EXPECT_EQ(back.reason(), SCHEDULE);
  EXPECT_EQ(back.entered(0), "birds");
}

TEST(RollingUpgradeCompatTest, NewNoticeParsesWithOldSchemaAndRoundTripsItsKind) {
  ChangeNotice n;
  n.set_user_id("u2");
  n.set_acked_at_ms(42);
  n.set_kind(NOTICE_FORGET);
  n.set_script_set_version("v7");
  auto old = Reparse<v1::ChangeNotice>(n);
  EXPECT_EQ(old.user_id(), "u2");
  EXPECT_EQ(old.acked_at_ms(), 42);
  EXPECT_EQ(old.event_count(), 0u);
  // An old segmenter sees a notice without events (it re-evaluates the user;
  // the forget itself needs a new segmenter). Forwarded, the kind survives.
  auto back = Reparse<ChangeNotice>(old);
  EXPECT_EQ(back.kind(), NOTICE_FORGET);
  EXPECT_EQ(back.script_set_version(), "v7");
}

TEST(RollingUpgradeCompatTest, OldSegmenterRewritingFamilySKeepsSeqAndDue) {
  SegmentState s;
  s.add_segments("cats");
  s.set_script_set_version("v1");
  s.add_counted("cats:20261205");
  s.set_seq(1'800'000'000'000'123);
  s.set_due_ms(1'800'000'600'000);
  s.set_due_partition(5);
  (*s.mutable_stale_since_ms())["pets.lua"] = 1'799'000'000'000;
  s.set_bot(true);

  auto old = Reparse<v1::SegmentState>(s);
  EXPECT_EQ(old.segments(0), "cats");
  EXPECT_EQ(old.counted(0), "cats:20261205");
  // The old segmenter updates its fields and writes the state back.
  old.clear_segments();
  old.add_segments("dogs");
  old.add_counted("dogs:20261205");
  old.set_segmented_at_ms(1'800'000'001'000);
  auto back = Reparse<SegmentState>(old);
  EXPECT_EQ(back.segments(0), "dogs");
  EXPECT_EQ(back.counted_size(), 2);
  EXPECT_EQ(back.seq(), 1'800'000'000'000'123);
  EXPECT_EQ(back.due_ms(), 1'800'000'600'000);
  EXPECT_EQ(back.due_partition(), 5);
  EXPECT_EQ(back.stale_since_ms().at("pets.lua"), 1'799'000'000'000);
  EXPECT_TRUE(back.bot());
}

TEST(RollingUpgradeCompatTest, OldBytesParseWithNewSchemaWithDefaults) {
  v1::ChangeNotice n;
  n.set_user_id("u3");
  n.set_newest_event_time_ms(7);
  n.set_event_count(2);
  auto nn = Reparse<ChangeNotice>(n);
  EXPECT_EQ(nn.user_id(), "u3");
  EXPECT_EQ(nn.event_count(), 2u);
  EXPECT_EQ(nn.kind(), NOTICE_WRITE);
  EXPECT_EQ(nn.script_set_version(), "");

  v1::SegmentationResult r;
  r.set_user_id("u3");
  r.set_reason(v1::SCRIPTS_CHANGED);
  auto nr = Reparse<SegmentationResult>(r);
  EXPECT_EQ(nr.reason(), DEFINITION_CHANGE);
  EXPECT_EQ(nr.seq(), 0);

  v1::SegmentState s;
  s.add_segments("cats");
  s.set_segmented_at_ms(9);
  auto ns = Reparse<SegmentState>(s);
  EXPECT_EQ(ns.segments(0), "cats");
  EXPECT_EQ(ns.seq(), 0);
  EXPECT_EQ(ns.due_ms(), 0);  // 0 = no row in the due table
  EXPECT_EQ(ns.due_partition(), 0);
  EXPECT_TRUE(ns.stale_since_ms().empty());
  EXPECT_FALSE(ns.bot());
}

}  // namespace
}  // namespace seg

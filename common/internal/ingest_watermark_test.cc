#include "common/ingest_watermark.h"

#include <gtest/gtest.h>

namespace seg {
namespace {

using Cells = std::vector<std::pair<std::string_view, std::string_view>>;

TEST(IngestWatermarkTest, NoCellsMeansNoIngesterPublishes) {
  IngestHorizon h = ComputeIngestHorizon({});
  EXPECT_FALSE(h.published);
}

TEST(IngestWatermarkTest, HorizonIsTheSmallestOnceEveryPartitionHasOne) {
  const std::string n = IngestPartitionCountQualifier("events");
  const std::string w0 = IngestWatermarkQualifier("events", 0);
  const std::string w1 = IngestWatermarkQualifier("events", 1);
  const std::string w2 = IngestWatermarkQualifier("events", 2);
  IngestHorizon partial = ComputeIngestHorizon(Cells{{n, "3"}, {w0, "500"}, {w2, "700"}});
  EXPECT_TRUE(partial.published);
  EXPECT_EQ(partial.ms, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(partial.missing, "events/1");

  IngestHorizon full = ComputeIngestHorizon(Cells{{n, "3"}, {w0, "500"}, {w1, "450"}, {w2, "700"}});
  EXPECT_EQ(full.ms, 450);
  EXPECT_TRUE(full.missing.empty());
}

TEST(IngestWatermarkTest, EveryTopicCountsAndAPartitionCountIsRequired) {
  const std::string na = IngestPartitionCountQualifier("a");
  const std::string a0 = IngestWatermarkQualifier("a", 0);
  const std::string b0 = IngestWatermarkQualifier("b:x", 0);  // a colon in the name
  IngestHorizon no_count = ComputeIngestHorizon(Cells{{na, "1"}, {a0, "900"}, {b0, "100"}});
  EXPECT_EQ(no_count.ms, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(no_count.missing, "b:x (no partition count)");
  const std::string nb = IngestPartitionCountQualifier("b:x");
  EXPECT_EQ(ComputeIngestHorizon(Cells{{na, "1"}, {a0, "900"}, {nb, "1"}, {b0, "100"}}).ms, 100);
}

TEST(IngestWatermarkTest, UnreadableCellsAreIgnored) {
  const std::string n = IngestPartitionCountQualifier("events");
  const std::string w0 = IngestWatermarkQualifier("events", 0);
  IngestHorizon h = ComputeIngestHorizon(Cells{{n, "1"}, {w0, "12x"}, {"other", "5"}});
  EXPECT_EQ(h.missing, "events/0");
  EXPECT_EQ(ComputeIngestHorizon(Cells{{n, "1"}, {w0, "12"}, {"w:bad", "5"}}).ms, 12);
}

}  // namespace
}  // namespace seg

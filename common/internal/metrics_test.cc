#include "common/metrics.h"
#include "tests/harness/status_matchers.h"

#include <gtest/gtest.h>

namespace seg::metrics {
namespace {

TEST(MetricsTest, SameNameAndLabelsShareOneSeries) {
  Counter a = GetCounter("seg_test_events_total", "test", {{"reason", "x"}});
  Counter b = GetCounter("seg_test_events_total", "test", {{"reason", "x"}});
  a.Inc();
  b.Inc(2);
  EXPECT_DOUBLE_EQ(a.Value(), 3);
}

TEST(MetricsTest, RenderedTextHasCountersAndHistograms) {
  GetCounter("seg_test_render_total", "rendered", {{"k", "v"}}).Inc(5);
  GetHistogram("seg_test_latency_seconds", "latency").Observe(0.003);
  std::string text = RenderText();
  EXPECT_NE(text.find("seg_test_render_total{k=\"v\"} 5"), std::string::npos) << text;
  EXPECT_NE(text.find("seg_test_latency_seconds_bucket"), std::string::npos);
}

TEST(MetricsTest, ServerBindsFreeLoopbackPort) {
  auto server = StartMetricsServer("127.0.0.1:0");
  SEG_ASSERT_OK(server);
  EXPECT_GT((*server)->port(), 0);
}

}  // namespace
}  // namespace seg::metrics

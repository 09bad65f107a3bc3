// segctl: rendering (tables, JSON, sparkline, SVG) and the binary against a
// real seg-stats server on loopback.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "stats/service/stats_service.h"
#include "stats/writer/stats_writer.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"
#include "tools/segctl/render.h"

namespace seg::segctl {
namespace {

v1::Estimate MakeEstimate(double value, double half, const std::string& method) {
  v1::Estimate e;
  e.set_value(value);
  e.set_ci95_low(value - half);
  e.set_ci95_high(value + half);
  e.set_std_error(half / 1.96);
  e.set_method(method);
  return e;
}

TEST(SegctlRenderTest, FormatsCountsWithThousandsSeparators) {
  EXPECT_EQ(FormatCount(0), "0");
  EXPECT_EQ(FormatCount(999.4), "999");
  EXPECT_EQ(FormatCount(1234567.4), "1,234,567");
  EXPECT_EQ(FormatCount(-1000), "-1,000");
}

TEST(SegctlRenderTest, EstimateTableShowsIntervalAndNote) {
  v1::Estimate e = MakeEstimate(12345, 196, "hll");
  std::string t = RenderEstimateTable("cats 2024-05-01", e);
  EXPECT_NE(t.find("12,345"), std::string::npos) << t;
  EXPECT_NE(t.find("[12,149 .. 12,541]"), std::string::npos) << t;
  EXPECT_NE(t.find("hll"), std::string::npos) << t;
  e.set_too_uncertain(true);
  e.set_note("overlap too small");
  t = RenderEstimateTable("x", e);
  EXPECT_NE(t.find("too uncertain"), std::string::npos) << t;
  EXPECT_NE(t.find("note: overlap too small"), std::string::npos) << t;
}

TEST(SegctlRenderTest, SparklineScalesFromMinToMax) {
  EXPECT_EQ(Sparkline({}), "");
  EXPECT_EQ(Sparkline({1, 8}), "▁█");
  EXPECT_EQ(Sparkline({0, 7, 14}), "▁▅█");
  EXPECT_EQ(Sparkline({5, 5}), "▄▄");
}

TEST(SegctlRenderTest, SeriesSvgHasLineBandAndLabels) {
  v1::SizeSeriesReply s;
  for (int d = 1; d <= 5; ++d) {
    auto* p = s.add_points();
    p->set_day("2024-05-0" + std::to_string(d));
    *p->mutable_estimate() = MakeEstimate(1000 * d, 50, "hll");
  }
  std::string svg = RenderSeriesSvg("cats <all>", s);
  EXPECT_TRUE(svg.starts_with("<svg")) << svg;
  EXPECT_NE(svg.find("class=\"ci95\""), std::string::npos);
  EXPECT_NE(svg.find("<polyline class=\"size\""), std::string::npos);
  EXPECT_NE(svg.find("2024-05-01"), std::string::npos);
  EXPECT_NE(svg.find("2024-05-05"), std::string::npos);
  EXPECT_NE(svg.find("cats &lt;all&gt;"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  std::string table = RenderSeriesTable("cats", s);
  EXPECT_NE(table.find("▁"), std::string::npos) << table;
  EXPECT_NE(table.find("█"), std::string::npos) << table;
}

TEST(SegctlRenderTest, JsonUsesProtoFieldNames) {
  std::string j = RenderJson(MakeEstimate(10, 1, "hll"));
  EXPECT_NE(j.find("\"ci95_low\":9"), std::string::npos) << j;
  EXPECT_NE(j.find("\"too_uncertain\":false"), std::string::npos) << j;
}

// Runs a command, returns its exit status and stdout.
std::pair<int, std::string> RunCommand(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int rc = pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

TEST(SegctlBinaryTest, EveryCommandAgainstARealServer) {
  std::string segctl = testing::BinaryDir() + "/tools/segctl";
  ASSERT_EQ(access(segctl.c_str(), X_OK), 0) << "segctl not built at " << segctl;
  auto redis = testing::LocalRedis::Start();
  SEG_ASSERT_OK(redis);
  stats::StatsWriterOptions wo;
  wo.redis.node.port = (*redis)->port();
  wo.hll_retention_days = 0;  // days of 2024: past the default retention
  auto writer = stats::NewStatsWriter(wo);
  SEG_ASSERT_OK(writer);
  std::vector<stats::UserUpdate> users;
  for (int i = 0; i < 3000; ++i) {
    stats::UserUpdate u;
    u.user_id = "u" + std::to_string(i);
    u.adds.push_back({"cats", static_cast<stats::Day>(20240501 + i % 3)});
    if (i % 2 == 0) u.adds.push_back({"dogs", 20240501});
    users.push_back(std::move(u));
  }
  SEG_ASSERT_OK((*writer)->WriteBatch(users));
  SEG_ASSERT_OK((*writer)->RegisterSegments({{"cats", "pets.lua@1"}}));
  stats::StatsQueryOptions q;
  q.redis.node.port = (*redis)->port();
  stats::StatsServerOptions so;
  so.port = 0;
  auto server = stats::StartStatsServer(so, q, nullptr);
  SEG_ASSERT_OK(server);
  std::string base = segctl + " --target 127.0.0.1:" + std::to_string((*server)->port()) + " ";

  auto [rc, out] = RunCommand(base + "size cats --from 2024-05-01 --to 2024-05-03");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("95% interval"), std::string::npos) << out;
  std::tie(rc, out) = RunCommand(base + "--json size cats --from 2024-05-01 --to 2024-05-03");
  EXPECT_EQ(rc, 0) << out;
  size_t at = out.find("\"value\":");
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_NEAR(std::stod(out.substr(at + 8)), 3000, 100) << out;
  std::tie(rc, out) = RunCommand(base + "--json union cats dogs --from 2024-05-01");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"method\":\"hll-union\""), std::string::npos) << out;
  std::tie(rc, out) = RunCommand(base + "overlap cats dogs --from 2024-05-01");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("joint-mle"), std::string::npos) << out;

  testing::TempDir dir;
  std::string svg = dir.path() + "/cats.svg";
  std::tie(rc, out) =
      RunCommand(base + "series cats --from 2024-05-01 --to 2024-05-03 --svg " + svg);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("2024-05-03"), std::string::npos) << out;
  std::ifstream in(svg);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_NE(content.str().find("class=\"ci95\""), std::string::npos);

  std::tie(rc, out) = RunCommand(base + "segments");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("pets.lua@1"), std::string::npos) << out;

  std::tie(rc, out) = RunCommand(base + "size unicorns --from 2024-05-01");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("NOT_FOUND"), std::string::npos) << out;
  std::tie(rc, out) = RunCommand(base + "user u1");  // no store configured
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("UNIMPLEMENTED"), std::string::npos) << out;
  std::tie(rc, out) = RunCommand(base + "overlap cats");  // needs two segments
  EXPECT_EQ(rc, 2) << out;
}

}  // namespace
}  // namespace seg::segctl

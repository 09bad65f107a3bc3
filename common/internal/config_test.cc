#include "common/config.h"
#include "tests/harness/status_matchers.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace seg {
namespace {

TEST(ConfigTest, ReadsTypedValuesAndKeepsDefaultsForMissingKeys) {
  auto config = Config::FromString(
      "kafka:\n  bootstrap_servers: 127.0.0.1:9092\n  batch: 500\nstats:\n  shards: 4\n"
      "  enabled: true\n  ratio: 0.5\n  topics: [a, b]\n",
      "test.yaml");
  SEG_ASSERT_OK(config);
  std::string bootstrap;
  int64_t batch = 0;
  int32_t shards = 0, missing = 42;
  bool enabled = false;
  double ratio = 0;
  std::vector<std::string> topics;
  SEG_ASSERT_OK(config->Get("kafka.bootstrap_servers", &bootstrap));
  SEG_ASSERT_OK(config->Get("kafka.batch", &batch));
  SEG_ASSERT_OK(config->Get("stats.shards", &shards));
  SEG_ASSERT_OK(config->Get("stats.enabled", &enabled));
  SEG_ASSERT_OK(config->Get("stats.ratio", &ratio));
  SEG_ASSERT_OK(config->Get("stats.topics", &topics));
  SEG_ASSERT_OK(config->Get("stats.missing", &missing));
  EXPECT_EQ(bootstrap, "127.0.0.1:9092");
  EXPECT_EQ(batch, 500);
  EXPECT_EQ(shards, 4);
  EXPECT_TRUE(enabled);
  EXPECT_DOUBLE_EQ(ratio, 0.5);
  EXPECT_EQ(topics, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(missing, 42);
  SEG_EXPECT_OK(config->CheckNoUnknownKeys());
}

TEST(ConfigTest, BadValueNamesKeyAndFile) {
  auto config = Config::FromString("store:\n  port: abc\n", "seg.yaml");
  SEG_ASSERT_OK(config);
  int32_t port = 9090;
  Status s = config->Get("store.port", &port);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("seg.yaml"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("store.port"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("'abc'"), std::string_view::npos) << s;
  EXPECT_EQ(port, 9090);
}

TEST(ConfigTest, UnknownKeyNamesKeyAndFile) {
  auto config = Config::FromString("store:\n  port: 1\n  prot: 2\n", "seg.yaml");
  SEG_ASSERT_OK(config);
  int32_t port = 0;
  SEG_ASSERT_OK(config->Get("store.port", &port));
  Status s = config->CheckNoUnknownKeys();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("seg.yaml"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("'store.prot'"), std::string_view::npos) << s;
}

TEST(ConfigTest, OverrideWinsOverFileAndCreatesPaths) {
  auto config = Config::FromString("store:\n  port: 1\n", "seg.yaml");
  SEG_ASSERT_OK(config);
  SEG_ASSERT_OK(config->ApplyOverride("store.port=9191"));
  SEG_ASSERT_OK(config->ApplyOverride("kafka.properties.security.protocol=SASL_SSL"));
  int32_t port = 0;
  SEG_ASSERT_OK(config->Get("store.port", &port));
  EXPECT_EQ(port, 9191);
  std::map<std::string, std::string> props;
  SEG_ASSERT_OK(config->Get("kafka.properties", &props));
  EXPECT_EQ(props["security.protocol"], "SASL_SSL");
  SEG_EXPECT_OK(config->CheckNoUnknownKeys());
  EXPECT_FALSE(config->ApplyOverride("novalue").ok());
}

TEST(ConfigTest, LoadAppliesOverridesInOrderAndNamesABadOne) {
  std::string path = ::testing::TempDir() + "/load.yaml";
  std::ofstream(path) << "store:\n  port: 1\n";
  auto config = Config::Load(path, {"store.port=2", "store.port=3"});
  SEG_ASSERT_OK(config);
  int32_t port = 0;
  SEG_ASSERT_OK(config->Get("store.port", &port));
  EXPECT_EQ(port, 3);
  auto bad = Config::Load(path, {"store.port=4", "novalue"});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("--set novalue"), std::string_view::npos) << bad.status();
  std::remove(path.c_str());
}

TEST(ConfigTest, FileErrorsAreClear) {
  auto missing = Config::LoadFile("/nonexistent/seg.yaml");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  std::string path = ::testing::TempDir() + "/broken.yaml";
  std::ofstream(path) << "store: [unclosed\n";
  auto broken = Config::LoadFile(path);
  EXPECT_EQ(broken.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(broken.status().message().find(path), std::string_view::npos);
  std::remove(path.c_str());
}

// librdkafka properties are written as dotted keys inside a map
// (config/stack-production-example.yaml); nested maps flatten to the same names.
TEST(ConfigTest, PropertyMapKeepsDottedKeysAndFlattensNestedOnes) {
  auto config = Config::FromString(
      "kafka:\n  properties:\n    client.rack: rack-a\n    socket:\n      timeout.ms: 30\n",
      "props.yaml");
  SEG_ASSERT_OK(config);
  std::map<std::string, std::string> props;
  Status s = config->Get("kafka.properties", &props);
  SEG_ASSERT_OK(s);
  EXPECT_EQ(props, (std::map<std::string, std::string>{{"client.rack", "rack-a"},
                                                       {"socket.timeout.ms", "30"}}));
  SEG_EXPECT_OK(config->CheckNoUnknownKeys());
  auto listed = Config::FromString("kafka:\n  properties:\n    bad.key: [a, b]\n", "l.yaml");
  SEG_ASSERT_OK(listed);
  s = listed->Get("kafka.properties", &props);
  EXPECT_NE(s.message().find("kafka.properties.bad.key: expected a scalar, got a list"),
            std::string_view::npos)
      << s;
}

}  // namespace
}  // namespace seg

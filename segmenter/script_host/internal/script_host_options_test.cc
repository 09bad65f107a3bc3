#include <gtest/gtest.h>

#include "common/config_keys.h"
#include "segmenter/script_host/script_host.h"
#include "tests/harness/status_matchers.h"

namespace seg::segmenter {
namespace {

TEST(ScriptHostOptionsTest, LoadsEveryScriptsKey) {
  auto config = Config::FromString(
      "scripts: {dir: /s, cpu_budget_ms: 7, memory_limit_mb: 9, quarantine_after_failures: 2,\n"
      "          quarantine_ms: 11, opaque_time_recheck_ms: 13, reload_check_interval_ms: 0}\n",
      "seg.yaml");
  SEG_ASSERT_OK(config);
  ScriptHostOptions o;
  SEG_ASSERT_OK(o.LoadFrom(*config, "scripts"));
  EXPECT_EQ(o.scripts_dir, "/s");
  EXPECT_EQ(o.cpu_budget_ms, 7);
  EXPECT_EQ(o.memory_limit_mb, 9);
  EXPECT_EQ(o.quarantine_after_failures, 2);
  EXPECT_EQ(o.quarantine_ms, 11);
  EXPECT_EQ(o.opaque_time_recheck_ms, 13);
  EXPECT_EQ(o.reload_check_interval_ms, 0);
  SEG_EXPECT_OK(CheckConfigKeys(*config));
}

TEST(ScriptHostOptionsTest, RejectsOutOfRangeValues) {
  for (const char* yaml : {"scripts: {dir: ''}", "scripts: {cpu_budget_ms: 0}",
                           "scripts: {memory_limit_mb: -1}", "scripts: {quarantine_ms: -5}"}) {
    auto config = Config::FromString(yaml, "seg.yaml");
    SEG_ASSERT_OK(config);
    ScriptHostOptions o;
    o.scripts_dir = "scripts";
    EXPECT_EQ(o.LoadFrom(*config, "scripts").code(), StatusCode::kInvalidArgument) << yaml;
  }
}

}  // namespace
}  // namespace seg::segmenter

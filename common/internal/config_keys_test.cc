#include "common/config_keys.h"
#include "tests/harness/status_matchers.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>

namespace seg {
namespace {

TEST(ConfigKeysTest, AnotherBinarysKeyIsIgnoredAndATypoNamesTheNearestKey) {
  auto config = Config::FromString(
      "kafka: {bootstrap_servers: b:1}\n"
      "ingest: {events_topic: e}\n"      // known, not read here: ignored
      "segmenter: {notices_topc: x}\n",  // nobody's
      "seg.yaml");
  SEG_ASSERT_OK(config);
  std::string bootstrap;
  SEG_ASSERT_OK(config->Get("kafka.bootstrap_servers", &bootstrap));
  Status s = CheckConfigKeys(*config);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("unknown key 'segmenter.notices_topc' (did you mean "
                             "'segmenter.notices_topic'?)"),
            std::string::npos)
      << s;
  EXPECT_EQ(s.message().find("ingest.events_topic"), std::string::npos) << s;
}

TEST(ConfigKeysTest, WildcardsMatchNamesAndSuggestWithTheKeysOwnNames) {
  EXPECT_TRUE(IsKnownConfigKey("store.tables.users.e.max_versions"));
  EXPECT_TRUE(IsKnownConfigKey("kafka.properties.client.rack"));
  EXPECT_TRUE(IsKnownConfigKey("kafka.properties"));
  EXPECT_FALSE(IsKnownConfigKey("store.tables.users.e.max_verions"));
  EXPECT_FALSE(IsKnownConfigKey("kafka"));
  EXPECT_EQ(NearestConfigKey("store.tables.users.e.max_verions"),
            "store.tables.users.e.max_versions");
  EXPECT_EQ(NearestConfigKey("stats.redis.prot"), "stats.redis.port");
}

TEST(ConfigKeysTest, AKeyReadButNotListedIsAnInternalError) {
  auto config = Config::FromString("", "seg.yaml");
  SEG_ASSERT_OK(config);
  int64_t v = 0;
  SEG_ASSERT_OK(config->Get("ingest.not_a_listed_key", &v));
  EXPECT_EQ(CheckConfigKeys(*config).code(), StatusCode::kInternal);
}

TEST(ConfigKeysTest, RenamedKeyMovesToItsNewNameAndBothNamesSetIsAnError) {
  auto config =
      Config::FromString("store: {embedded: {data_dir: /d}}\ningest: {family: f}\n", "seg.yaml");
  SEG_ASSERT_OK(config);
  SEG_ASSERT_OK(ApplyRenamedKeys(*config));
  std::string dir, family;
  SEG_ASSERT_OK(config->Get("store.data_dir", &dir));
  SEG_ASSERT_OK(config->Get("ingest.events_family", &family));
  EXPECT_EQ(dir, "/d");
  EXPECT_EQ(family, "f");
  EXPECT_FALSE(config->Has("store.embedded"));  // no empty map left behind
  SEG_EXPECT_OK(CheckConfigKeys(*config));

  auto both = Config::FromString("ingest: {family: f, events_family: g}\n", "seg.yaml");
  SEG_ASSERT_OK(both);
  Status s = ApplyRenamedKeys(*both);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("ingest.events_family"), std::string::npos) << s;
}

// config/seg.example.yaml documents exactly the listed keys: each of its
// leaves is listed, and each listed key appears in it.
TEST(ConfigKeysTest, ExampleFileListsEveryKey) {
  const char* source_dir = std::getenv("SEG_SOURCE_DIR");
  if (source_dir == nullptr) source_dir = SEG_SOURCE_DIR_DEFAULT;
  auto example = Config::LoadFile(std::string(source_dir) + "/config/seg.example.yaml");
  SEG_ASSERT_OK(example);
  std::vector<std::string> leaves = example->Leaves();
  for (const auto& leaf : leaves) EXPECT_TRUE(IsKnownConfigKey(leaf)) << "not listed: " << leaf;
  for (std::string_view pattern : AllConfigKeys()) {
    // A free-form map ("a.b.**") is listed as the map itself ({} is fine).
    bool found = pattern.ends_with(".**") && example->Has(pattern.substr(0, pattern.size() - 3));
    for (const auto& leaf : leaves) found = found || ConfigKeyMatches(pattern, leaf);
    EXPECT_TRUE(found) << "config/seg.example.yaml lacks " << pattern;
  }
}

}  // namespace
}  // namespace seg

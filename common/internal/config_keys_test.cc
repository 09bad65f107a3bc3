#include "common/config_keys.h"
#include "tests/harness/status_matchers.h"

#include <gtest/gtest.h>

#include <glog/logging.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>

namespace seg {
namespace {

TEST(ConfigKeysTest, AnotherBinarysKeyIsIgnoredAndATypoNamesTheNearestKey) {
  auto config = Config::FromString(
      "kafka: {bootstrap_servers: b:1}\n"
      "ingest: {group_id: e}\n"  // known, not read here: ignored
      "topics: {change: x}\n",   // nobody's
      "seg.yaml");
  SEG_ASSERT_OK(config);
  std::string bootstrap;
  SEG_ASSERT_OK(config->Get("kafka.bootstrap_servers", &bootstrap));
  Status s = CheckConfigKeys(*config);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("unknown key 'topics.change' (did you mean 'topics.changes'?)"),
            std::string::npos)
      << s;
  EXPECT_EQ(s.message().find("ingest.group_id"), std::string::npos) << s;
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

// Collects the WARNING lines logged while it lives.
class WarningLog : public google::LogSink {
 public:
  WarningLog() { google::AddLogSink(this); }
  ~WarningLog() override { google::RemoveLogSink(this); }
  void send(google::LogSeverity severity, const char*, const char*, int,
            const google::LogMessageTime&, const char* message, size_t length) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (severity == google::GLOG_WARNING) text_.append(message, length).append("\n");
  }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::string text_;
};

TEST(ConfigKeysTest, RenamedKeyMovesToItsNewNameAndBothNamesSetIsAnError) {
  auto config =
      Config::FromString("store: {embedded: {data_dir: /d}}\ningest: {family: f}\n", "seg.yaml");
  SEG_ASSERT_OK(config);
  SEG_ASSERT_OK(ApplyRenamedKeys(*config));
  std::string dir, family;
  SEG_ASSERT_OK(config->Get("store.data_dir", &dir));
  SEG_ASSERT_OK(config->Get("tables.users.events_family", &family));
  EXPECT_EQ(dir, "/d");
  EXPECT_EQ(family, "f");
  EXPECT_FALSE(config->Has("store.embedded"));  // no empty map left behind
  EXPECT_FALSE(config->Has("ingest"));
  SEG_EXPECT_OK(CheckConfigKeys(*config));

  auto both =
      Config::FromString("ingest: {family: f}\ntables: {users: {events_family: g}}\n", "seg.yaml");
  SEG_ASSERT_OK(both);
  Status s = ApplyRenamedKeys(*both);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("ingest.family is 'f' but tables.users.events_family is 'g'"),
            std::string::npos)
      << s;
}

// The new key a renamed key's value lands on: the name itself, or for a
// renamed subtree ("server") one listed key under it ("store.server.port").
std::string ListedKeyUnder(std::string_view new_name) {
  for (std::string_view key : AllConfigKeys()) {
    if (key.find('*') != std::string_view::npos) continue;
    if (key == new_name || (key.starts_with(new_name) && key[new_name.size()] == '.')) {
      return std::string(key);
    }
  }
  return "";
}

// Every old name still loads: its value moves to the new key, the old key
// is gone (no unknown-key error), and a WARNING names both.
TEST(ConfigKeysTest, EveryOldKeyLoadsWithAWarningUnderItsNewKey) {
  ASSERT_FALSE(RenamedConfigKeys().empty());
  for (const RenamedConfigKey& r : RenamedConfigKeys()) {
    SCOPED_TRACE(std::string(r.old_name) + " -> " + std::string(r.new_name));
    const std::string new_key = ListedKeyUnder(r.new_name);
    ASSERT_FALSE(new_key.empty()) << "no listed key under " << r.new_name;
    const std::string old_key = std::string(r.old_name) + new_key.substr(r.new_name.size());
    EXPECT_FALSE(IsKnownConfigKey(old_key)) << "an old name is listed as current";
    auto config = Config::FromString("", "old.yaml");
    SEG_ASSERT_OK(config);
    SEG_ASSERT_OK(config->ApplyOverride(old_key + "=old-value"));
    WarningLog log;
    SEG_ASSERT_OK(ApplyRenamedKeys(*config));
    std::string value;
    SEG_ASSERT_OK(config->Get(new_key, &value));
    EXPECT_EQ(value, "old-value");
    EXPECT_FALSE(config->Has(old_key));
    SEG_EXPECT_OK(CheckConfigKeys(*config));
    EXPECT_NE(log.text().find("old.yaml: " + std::string(r.old_name) + " is renamed " +
                              std::string(r.new_name)),
              std::string::npos)
        << log.text();
  }
}

// Two names of one setting (the new and an old one, or two old ones that
// each binary had) must agree: equal values load, different ones are
// rejected naming both keys.
TEST(ConfigKeysTest, NamesOfOneSettingMustAgree) {
  std::map<std::string_view, std::vector<std::string_view>> old_names;  // new -> old
  for (const RenamedConfigKey& r : RenamedConfigKeys()) old_names[r.new_name].push_back(r.old_name);
  int shared = 0;
  for (const auto& [new_name, olds] : old_names) {
    const std::string new_key = ListedKeyUnder(new_name);
    const std::string suffix = new_key.substr(new_name.size());
    std::vector<std::string> names = {new_key};
    for (std::string_view old_name : olds) names.push_back(std::string(old_name) + suffix);
    shared += olds.size() > 1;
    for (size_t i = 0; i < names.size(); ++i) {
      for (size_t j = i + 1; j < names.size(); ++j) {
        SCOPED_TRACE(names[i] + " and " + names[j]);
        auto agree = Config::FromString("", "seg.yaml");
        SEG_ASSERT_OK(agree);
        SEG_ASSERT_OK(agree->ApplyOverride(names[i] + "=same"));
        SEG_ASSERT_OK(agree->ApplyOverride(names[j] + "=same"));
        SEG_ASSERT_OK(ApplyRenamedKeys(*agree));
        std::string value;
        SEG_ASSERT_OK(agree->Get(new_key, &value));
        EXPECT_EQ(value, "same");
        SEG_EXPECT_OK(CheckConfigKeys(*agree));

        auto differ = Config::FromString("", "seg.yaml");
        SEG_ASSERT_OK(differ);
        SEG_ASSERT_OK(differ->ApplyOverride(names[i] + "=one"));
        SEG_ASSERT_OK(differ->ApplyOverride(names[j] + "=two"));
        Status s = ApplyRenamedKeys(*differ);
        EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
        EXPECT_NE(s.message().find(names[i]), std::string::npos) << s;
        EXPECT_NE(s.message().find(names[j]), std::string::npos) << s;
      }
    }
  }
  EXPECT_GE(shared, 5);  // topics.changes, tables.users.name, ... have several old names
}

TEST(ConfigKeysTest, TwoOldNamesNameTheKeyTheyConflictThrough) {
  auto config = Config::FromString("ingest: {table: a}\nsegmenter: {table: b}\n", "seg.yaml");
  SEG_ASSERT_OK(config);
  Status s = ApplyRenamedKeys(*config);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("segmenter.table is 'b' but tables.users.name (set as ingest.table) "
                             "is 'a'"),
            std::string::npos)
      << s;
}

// A renamed subtree merges with keys already under the new name.
TEST(ConfigKeysTest, RenamedSubtreeMergesWithTheNewOne) {
  auto config = Config::FromString(
      "server: {port: 1, max_connections: 5}\nstore: {server: {bind_address: 0.0.0.0, port: 1}}\n"
      "notify: {kafka: {properties: {client.rack: r}}}\n",
      "seg.yaml");
  SEG_ASSERT_OK(config);
  SEG_ASSERT_OK(ApplyRenamedKeys(*config));
  int32_t port = 0, max_connections = 0;
  std::string bind;
  std::map<std::string, std::string> properties;
  SEG_ASSERT_OK(config->Get("store.server.port", &port));
  SEG_ASSERT_OK(config->Get("store.server.max_connections", &max_connections));
  SEG_ASSERT_OK(config->Get("store.server.bind_address", &bind));
  SEG_ASSERT_OK(config->Get("store.notify.kafka.properties", &properties));
  EXPECT_EQ(port, 1);
  EXPECT_EQ(max_connections, 5);
  EXPECT_EQ(bind, "0.0.0.0");
  EXPECT_EQ(properties, (std::map<std::string, std::string>{{"client.rack", "r"}}));
  EXPECT_FALSE(config->Has("server"));
  EXPECT_FALSE(config->Has("notify"));
}

// --set takes old names too (renamed, warned) and wins over the file under
// either name; two names of one setting in --set must agree.
TEST(ConfigKeysTest, OverridesAreRenamedAndWinOverTheFile) {
  const std::string path = ::testing::TempDir() + "/renamed_overrides.yaml";
  std::ofstream(path) << "tables: {users: {name: from-file}}\nserver: {port: 7}\n";
  WarningLog log;
  auto config = LoadBinaryConfig(path, {"segmenter.table=from-set", "server.port=8"});
  SEG_ASSERT_OK(config);
  std::string table;
  int32_t port = 0;
  SEG_ASSERT_OK(config->Get("tables.users.name", &table));
  SEG_ASSERT_OK(config->Get("store.server.port", &port));
  EXPECT_EQ(table, "from-set");
  EXPECT_EQ(port, 8);
  EXPECT_NE(log.text().find("--set segmenter.table: segmenter.table is renamed tables.users.name"),
            std::string::npos)
      << log.text();

  auto agree = LoadBinaryConfig("", {"ingest.table=t", "segmenter.table=t", "tables.users.name=t"});
  SEG_EXPECT_OK(agree);
  auto differ = LoadBinaryConfig("", {"ingest.table=a", "segmenter.table=b"});
  EXPECT_EQ(differ.status().code(), StatusCode::kInvalidArgument) << differ.status();
  EXPECT_NE(differ.status().message().find("--set ingest.table=a and --set segmenter.table=b"),
            std::string::npos)
      << differ.status();
  auto repeated = LoadBinaryConfig("", {"tables.users.name=a", "tables.users.name=b"});
  SEG_ASSERT_OK(repeated);
  SEG_ASSERT_OK(repeated->Get("tables.users.name", &table));
  EXPECT_EQ(table, "b");  // one name given twice: the last wins, as always
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

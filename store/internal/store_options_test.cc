#include "store/store_options.h"

#include <gtest/gtest.h>

#include "common/config_keys.h"
#include "tests/harness/status_matchers.h"

namespace seg::store {
namespace {

TEST(StoreOptionsTest, EveryClientKeyLoadsUnderOnePrefix) {
  auto config = Config::FromString(
      "store:\n"
      "  backend: thrift\n"
      "  thrift: {host: h, port: 9191, transport: framed, protocol: compact,\n"
      "           max_connections: 4, connect_timeout_ms: 100, call_timeout_ms: 200,\n"
      "           max_attempts: 2, backoff_initial_ms: 5, backoff_max_ms: 50,\n"
      "           max_message_bytes: 1024}\n"
      "  data_dir: /d\n"
      "  sync: fsync_every_write\n"
      "  tables: {t: {f: {max_versions: 2, ttl_seconds: 10}}}\n",
      "seg.yaml");
  SEG_ASSERT_OK(config);
  StoreOptions o;
  SEG_ASSERT_OK(o.LoadFrom(*config, "store"));
  EXPECT_EQ(o.backend, StoreOptions::Backend::kThrift);
  EXPECT_EQ(o.thrift.host, "h");
  EXPECT_EQ(o.thrift.port, 9191);
  EXPECT_EQ(o.thrift.transport, ThriftTransport::kFramed);
  EXPECT_EQ(o.thrift.protocol, ThriftProtocol::kCompact);
  EXPECT_EQ(o.thrift.max_connections, 4);
  EXPECT_EQ(o.thrift.connect_timeout_ms, 100);
  EXPECT_EQ(o.thrift.call_timeout_ms, 200);
  EXPECT_EQ(o.thrift.max_attempts, 2);
  EXPECT_EQ(o.thrift.max_message_bytes, 1024);
  EXPECT_EQ(o.embedded.data_dir, "/d");
  EXPECT_EQ(o.embedded.sync, SyncPolicy::kFsyncEveryWrite);
  ASSERT_EQ(o.embedded.tables.size(), 1u);
  EXPECT_EQ(o.embedded.tables[0].families[0].ttl_ms, 10000);
  // Every key read is on the global list, and none is left over.
  SEG_EXPECT_OK(CheckConfigKeys(*config));
}

TEST(StoreOptionsTest, BadValuesNameTheKey) {
  for (const char* yaml : {"store: {backend: hbase}", "store: {thrift: {transport: zlib}}",
                           "store: {thrift: {protocol: json}}", "store: {thrift: {port: 0}}",
                           "store: {sync: sometimes}", "store: {backend: embedded}"}) {
    auto config = Config::FromString(yaml, "seg.yaml");
    SEG_ASSERT_OK(config);
    StoreOptions o;
    Status s = o.LoadFrom(*config, "store");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << yaml;
    EXPECT_NE(s.message().find("store."), std::string::npos) << s;
  }
}

TEST(StoreOptionsTest, OldEmbeddedDataDirLoadsUnderItsNewName) {
  auto config =
      Config::FromString("store: {backend: embedded, embedded: {data_dir: /old}}", "seg.yaml");
  SEG_ASSERT_OK(config);
  SEG_ASSERT_OK(ApplyRenamedKeys(*config));
  StoreOptions o;
  SEG_ASSERT_OK(o.LoadFrom(*config, "store"));
  EXPECT_EQ(o.embedded.data_dir, "/old");
  SEG_EXPECT_OK(CheckConfigKeys(*config));
}

}  // namespace
}  // namespace seg::store

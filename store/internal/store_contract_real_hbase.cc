// The contract suite against a real HBase through its Thrift2 gateway and
// our Thrift2 client: HBase is the reference for seg-store's semantics.
// ctest label `real`; the fixture `real_hbase` (store/CMakeLists.txt) starts
// HBase with tools/services/services.sh and stops it afterwards. The gateway
// is SEG_REAL_HBASE=HOST:PORT, else HBASE_THRIFT_HOST/PORT from the
// launcher's env file. No reachable HBase is a failure, never a skip.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>

#include "common/clock.h"
#include "store/hbase_admin.h"
#include "store/internal/raw_wire_contract.h"
#include "store/internal/store_contract.h"
#include "tests/harness/status_matchers.h"

#ifndef SEG_REAL_SERVICES_DIR
#define SEG_REAL_SERVICES_DIR ""
#endif

namespace seg::store::testing {
namespace {

// host:port of the gateway, or an error saying where we looked.
StatusOr<std::pair<std::string, int>> Gateway() {
  std::string hp;
  if (const char* e = std::getenv("SEG_REAL_HBASE"); e && *e) hp = e;
  std::string env_file;
  if (hp.empty()) {
    const char* d = std::getenv("SEG_SERVICES_DIR");
    env_file = std::string(d && *d ? d : SEG_REAL_SERVICES_DIR) + "/services.env";
    std::ifstream in(env_file);
    std::string line, host, port;
    while (std::getline(in, line)) {
      auto take = [&](const char* key, std::string* out) {
        std::string k = std::string("export ") + key + "=";
        if (line.rfind(k, 0) == 0) *out = line.substr(k.size());
      };
      take("HBASE_THRIFT_HOST", &host);
      take("HBASE_THRIFT_PORT", &port);
    }
    if (!host.empty() && !port.empty()) hp = host + ":" + port;
  }
  auto colon = hp.rfind(':');
  if (hp.empty() || colon == std::string::npos) {
    return FailedPreconditionError(
        "no real HBase: set SEG_REAL_HBASE=HOST:PORT or run `tools/dev services up hbase` "
        "(looked in " +
        env_file + ")");
  }
  return std::make_pair(hp.substr(0, colon), std::atoi(hp.c_str() + colon + 1));
}

// Tables created once per binary; the first error is remembered.
Status EnsureTables(const std::string& host, int port) {
  static std::once_flag once;
  static Status status;
  std::call_once(once, [&] {
    AdminOptions a;
    a.host = host;
    a.port = port;
    auto created = CreateTables(a, ContractTables());
    status = created.status();
  });
  return status;
}

class RealHBaseEnv : public StoreEnv {
 public:
  RealHBaseEnv() {
    auto gw = Gateway();
    if (!gw.ok()) {
      ADD_FAILURE() << gw.status();
      return;
    }
    Status t = EnsureTables(gw->first, gw->second);
    if (!t.ok()) {
      ADD_FAILURE() << "creating tables on " << gw->first << ":" << gw->second << ": " << t;
      return;
    }
    StoreOptions o;
    o.backend = StoreOptions::Backend::kThrift;
    o.thrift.host = gw->first;
    o.thrift.port = gw->second;
    o.thrift.call_timeout_ms = 60000;
    auto s = OpenStore(o);
    SEG_EXPECT_OK(s);
    if (s.ok()) store_ = std::move(*s);
  }
  Store* store() override { return store_.get(); }
  int64_t NowMs() override { return Clock::Real()->NowMs(); }
  std::string RowPrefix() override {
    // One prefix per process run: HBase keeps rows (and delete markers)
    // between runs against a long-lived server.
    static const std::string p = std::to_string(Clock::Real()->NowMs()) + "|";
    return p;
  }

 private:
  std::unique_ptr<Store> store_;
};

TEST(RealHBaseWireTest, DeleteTypeAppliesToFamilyOnlyColumns) {
  auto gw = Gateway();
  SEG_ASSERT_OK(gw);
  SEG_ASSERT_OK(EnsureTables(gw->first, gw->second));
  ExpectDeleteTypeAppliesToFamilyOnlyColumns(
      gw->first, gw->second, "raw-delete-type|" + std::to_string(Clock::Real()->NowMs()));
}

INSTANTIATE_TEST_SUITE_P(
    RealHBase, StoreContractTest,
    ::testing::Values(StoreBackend{"hbase", [] { return std::make_unique<RealHBaseEnv>(); }}),
    [](const ::testing::TestParamInfo<StoreBackend>& info) { return info.param.name; });

}  // namespace
}  // namespace seg::store::testing

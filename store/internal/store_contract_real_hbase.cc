// The contract suite against a real HBase through its Thrift2 gateway and
// our Thrift2 client: HBase is the reference for seg-store's semantics.
// ctest label `real`; the fixture `real_hbase` (store/CMakeLists.txt) starts
// HBase with tools/services/services.sh and stops it afterwards. The gateway
// is SEG_REAL_HBASE=HOST:PORT, else HBASE_THRIFT_HOST/PORT from the
// launcher's env file. No reachable HBase is a failure, never a skip.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "common/clock.h"
#include "store/admin/hbase_admin.h"
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

// TCP states (/proc/net/tcp "st") of this process's sockets to `port`.
std::vector<int> OwnSocketStates(int port) {
  std::set<std::string> inodes;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
  }
  std::vector<int> states;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, st, queues, tr, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode;
      auto colon = remote.rfind(':');
      if (colon == std::string::npos || !inodes.count(inode)) continue;
      if (std::stoi(remote.substr(colon + 1), nullptr, 16) == port) {
        states.push_back(std::stoi(st, nullptr, 16));
      }
    }
  }
  return states;
}

// HBase's gateway closes a connection idle for its read timeout (60 s by
// default, 15 s in this tier); the pooled connection is then dead on our
// side (CLOSE_WAIT) and the next call must go through on a new one.
TEST(RealHBaseWireTest, ClientRecoversAfterGatewayClosesIdleConnection) {
  constexpr int kEstablished = 0x01, kCloseWait = 0x08;
  auto gw = Gateway();
  ASSERT_TRUE(gw.ok()) << gw.status();
  ASSERT_TRUE(EnsureTables(gw->first, gw->second).ok());
  StoreOptions o;
  o.backend = StoreOptions::Backend::kThrift;
  o.thrift.host = gw->first;
  o.thrift.port = gw->second;
  o.thrift.max_connections = 1;
  auto store = OpenStore(o);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string row = "idle-close|" + std::to_string(Clock::Real()->NowMs());
  const std::string table = "users", family = "s";  // ContractTables(): s keeps 3 versions
  RowPut put;
  put.row = row;
  put.cells.push_back(Cell{family, "q", Clock::Real()->NowMs(), "before"});
  ASSERT_TRUE((*store)->Put(table, {put}).ok());
  std::vector<int> states = OwnSocketStates(gw->second);
  ASSERT_EQ(states, std::vector<int>{kEstablished}) << "one pooled connection after the put";

  // Wait (polling, 120 s at most) for the gateway to close it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (OwnSocketStates(gw->second) != std::vector<int>{kCloseWait}) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "the gateway did not close the idle connection in 120 s";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }

  put.cells[0].value = "after";
  put.cells[0].timestamp += 1;
  ASSERT_TRUE((*store)->Put(table, {put}).ok()) << "a put after the gateway closed the connection";
  GetRequest get;
  get.row = row;
  auto got = (*store)->Get(table, get);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_GE(got->size(), 1u);
  EXPECT_EQ((*got->begin()).value, "after");  // newest version first
}

// HBase's gateway forgets a scanner idle for its
// hbase.client.scanner.timeout.period (60 s by default; this tier's gateway
// runs with SEG_HBASE_THRIFT_SCANNER_MS, written to the env file): the
// client resumes the scan after the last row it received.
TEST(RealHBaseWireTest, ScanResumesAfterTheGatewayForgetsItsScanner) {
  auto gw = Gateway();
  ASSERT_TRUE(gw.ok()) << gw.status();
  ASSERT_TRUE(EnsureTables(gw->first, gw->second).ok());
  int64_t scanner_ms = 0;
  {
    const char* d = std::getenv("SEG_SERVICES_DIR");
    std::ifstream in(std::string(d && *d ? d : SEG_REAL_SERVICES_DIR) + "/services.env");
    std::string line;
    const std::string key = "export HBASE_THRIFT_SCANNER_MS=";
    while (std::getline(in, line)) {
      if (line.rfind(key, 0) == 0) scanner_ms = std::stoll(line.substr(key.size()));
    }
  }
  ASSERT_GT(scanner_ms, 0) << "the services env file does not name the gateway's scanner timeout";
  ASSERT_LE(scanner_ms, 20000) << "start the tier's HBase with SEG_HBASE_THRIFT_SCANNER_MS "
                                  "(store/CMakeLists.txt) so this test does not idle 60 s";
  StoreOptions o;
  o.backend = StoreOptions::Backend::kThrift;
  o.thrift.host = gw->first;
  o.thrift.port = gw->second;
  auto store = OpenStore(o);
  ASSERT_TRUE(store.ok()) << store.status();
  ExpectScanResumesAfterScannerExpiry(store->get(), "users", "s",
                                      "scan-expiry|" + std::to_string(Clock::Real()->NowMs()) + "|",
                                      std::chrono::milliseconds(scanner_ms + 2000));
}

INSTANTIATE_TEST_SUITE_P(
    RealHBase, StoreContractTest,
    ::testing::Values(StoreBackend{"hbase", [] { return std::make_unique<RealHBaseEnv>(); }}),
    [](const ::testing::TestParamInfo<StoreBackend>& info) { return info.param.name; });

}  // namespace
}  // namespace seg::store::testing

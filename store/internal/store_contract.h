// The Store contract suite: one set of behaviour tests run against every
// backend (the embedded engine in-process, and the Thrift2 client talking to
// a real seg-store process over each transport/protocol combination).
// Backends instantiate StoreContractTest with a StoreBackend.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "store/store.h"

namespace seg::store::testing {

// One backend under test; destroyed after each test.
class StoreEnv {
 public:
  virtual ~StoreEnv() = default;
  virtual Store* store() = 0;
  // The backend's notion of now (fake clock in-process, real for servers).
  virtual int64_t NowMs() = 0;
  // Non-null when the test may move the backend's clock.
  virtual FakeClock* fake_clock() { return nullptr; }
  // Put before every row key: a backend whose data outlives the test binary
  // (a real HBase) gives a per-run prefix so runs do not see each other.
  virtual std::string RowPrefix() { return ""; }
};

struct StoreBackend {
  std::string name;
  std::function<std::unique_ptr<StoreEnv>()> make;
};
inline void PrintTo(const StoreBackend& b, std::ostream* os) { *os << b.name; }

// Tables every backend must serve: users (e: 60 d TTL, packed; s), t (a: 5
// versions, packed; b: 3 versions, 1 h TTL).
std::vector<TableOptions> ContractTables();
// The same as seg-store YAML config.
std::string ContractTablesYaml();

class StoreContractTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override;
  void TearDown() override { env_.reset(); }
  // A row key unique to this test (servers are shared between tests).
  std::string R(std::string_view name) const { return prefix_ + std::string(name); }
  Store* store() { return env_->store(); }

  std::unique_ptr<StoreEnv> env_;
  std::string prefix_;
};

// For Thrift backends whose server forgets idle scanners: writes five rows
// under `prefix` in `table` (family `family`), reads two through a scanner
// of two-row batches, stays idle for `idle` (longer than the server's
// scanner lease: the wait is the condition under test), then expects the
// scan to resume on a new scanner and return the other three rows once,
// in order.
void ExpectScanResumesAfterScannerExpiry(Store* store, const std::string& table,
                                         const std::string& family, const std::string& prefix,
                                         std::chrono::milliseconds idle);

// Cases that move the backend's clock: instantiated only for backends whose
// StoreEnv has a fake_clock() (a seg-store process runs on the real clock; its
// TTL is covered by the old-timestamp cases of StoreContractTest).
class StoreClockContractTest : public StoreContractTest {};

}  // namespace seg::store::testing

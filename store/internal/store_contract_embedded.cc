// The contract suite against the embedded engine, in-process with a
// FakeClock.
#include "store/internal/embedded_store.h"
#include "store/internal/store_contract.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"

namespace seg::store::testing {
namespace {

class EmbeddedEnv : public StoreEnv {
 public:
  explicit EmbeddedEnv(bool packed) {
    EmbeddedOptions o;
    o.data_dir = dir_.path() + "/db";
    o.tables = ContractTables();
    if (!packed) {
      for (auto& t : o.tables) {
        for (auto& f : t.families) f.packed_prefix_bytes = 0;
      }
    }
    o.clock = &clock_;
    o.write_buffer_bytes = 8 << 20;
    o.block_cache_bytes = 8 << 20;
    auto s = internal::EmbeddedStore::Open(o);
    SEG_EXPECT_OK(s);
    if (s.ok()) store_ = std::move(*s);
  }
  Store* store() override { return store_.get(); }
  int64_t NowMs() override { return clock_.NowMs(); }
  FakeClock* fake_clock() override { return &clock_; }

 private:
  seg::testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<internal::EmbeddedStore> store_;
};

const auto kEmbeddedBackends = ::testing::Values(
    StoreBackend{"embedded", [] { return std::make_unique<EmbeddedEnv>(true); }},
    StoreBackend{"embedded_cells", [] { return std::make_unique<EmbeddedEnv>(false); }});
std::string BackendName(const ::testing::TestParamInfo<StoreBackend>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Embedded, StoreContractTest, kEmbeddedBackends, BackendName);
INSTANTIATE_TEST_SUITE_P(Embedded, StoreClockContractTest, kEmbeddedBackends, BackendName);

}  // namespace
}  // namespace seg::store::testing

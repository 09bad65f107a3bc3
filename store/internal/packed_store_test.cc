// The packed layout (packed_cells.h) beyond the contract suite: merges of
// many small puts, compaction of TTL and versions inside chunk values,
// deletes across pending merge operands, and the layout marker that stops
// a config change from misreading a family.
#include <gtest/gtest.h>

#include "common/metrics.h"
#include "store/internal/embedded_store.h"
#include "store/internal/packed_cells.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"

namespace seg::store::internal {
namespace {

std::vector<std::pair<std::string, int64_t>> Cells(const RowResult& r) {
  std::vector<std::pair<std::string, int64_t>> out;
  for (CellView c : r) out.emplace_back(std::string(c.qualifier), c.timestamp);
  return out;
}

class PackedStoreTest : public ::testing::Test {
 protected:
  EmbeddedOptions Options(int32_t prefix = 1) {
    EmbeddedOptions o;
    o.data_dir = dir_.path() + "/db";
    o.clock = &clock_;
    o.tables = {TableOptions{"t", {FamilyOptions{"p", 2, 1000, prefix}}}};
    o.write_buffer_bytes = 4 << 20;
    o.block_cache_bytes = 4 << 20;
    return o;
  }
  std::unique_ptr<EmbeddedStore> Open(EmbeddedOptions o) {
    auto s = EmbeddedStore::Open(o);
    SEG_EXPECT_OK(s);
    return s.ok() ? std::move(*s) : nullptr;
  }
  GetRequest AllVersions() {
    GetRequest g;
    g.row = "r";
    g.max_versions = 10;
    return g;
  }
  seg::testing::TempDir dir_;
  FakeClock clock_;
};

TEST(PackedCellsTest, MergeKeepsOrderNewestRunWinsAndCapsVersions) {
  std::vector<PackedCell> a = {{"y", 5, "old"}, {"x", 1, "1"}, {"x", 3, "3"}};
  std::vector<PackedCell> b = {{"x", 2, "2"}, {"y", 5, "new"}, {"x", 4, "4"}};
  std::string ra, rb, merged;
  EncodePackedRun(&a, &ra);
  EncodePackedRun(&b, &rb);
  ASSERT_TRUE(MergePackedRuns({ra, rb}, 3, &merged));
  PackedReader reader(merged);
  PackedCell c;
  std::vector<std::string> got;
  while (reader.Next(&c)) {
    got.push_back(std::string(c.qualifier) + "@" + std::to_string(c.timestamp) + "=" +
                  std::string(c.value));
  }
  SEG_EXPECT_OK(reader);
  EXPECT_EQ(got, (std::vector<std::string>{"x@4=4", "x@3=3", "x@2=2", "y@5=new"}));
  EXPECT_FALSE(MergePackedRuns({ra, "\x01\xff"}, 3, &merged));  // malformed run
}

TEST_F(PackedStoreTest, ManySmallPutsReadAsOneOrderedRow) {
  auto store = Open(Options());
  ASSERT_NE(store, nullptr);
  int64_t now = clock_.NowMs();
  // One cell per put, out of order, across chunks "a" and "b": merge operands.
  for (int i = 0; i < 40; ++i) {
    std::string q = std::string(1, i % 2 ? 'b' : 'a') + std::to_string(100 - i);
    SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"p", q, now - i, "v"}}}}));
  }
  auto r = store->Get("t", AllVersions());
  SEG_ASSERT_OK(r);
  ASSERT_EQ(r->size(), 40u);
  for (size_t i = 1; i < r->size(); ++i) {
    EXPECT_LT(r->cell(i - 1).qualifier, r->cell(i).qualifier) << i;
  }
  EXPECT_EQ(*store->CountRawKeysForTest("t", "p"), 40);
}

TEST_F(PackedStoreTest, CompactionDropsExpiredCellsAndExtraVersions) {
  auto store = Open(Options());
  ASSERT_NE(store, nullptr);
  int64_t now = clock_.NowMs();
  for (int i = 0; i < 4; ++i) {
    SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"p", "q", now - i, "v"}}}}));
  }
  SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"p", "z", now - 900, "old"}}}}));
  SEG_ASSERT_OK(store->CompactAllForTest());
  EXPECT_EQ(*store->CountRawKeysForTest("t", "p"), 3);  // q: 2 versions kept, z
  clock_.AdvanceMs(200);                                // z expires (ttl 1000)
  EXPECT_EQ(Cells(*store->Get("t", AllVersions())),
            (std::vector<std::pair<std::string, int64_t>>{{"q", now}, {"q", now - 1}}));
  SEG_ASSERT_OK(store->CompactAllForTest());
  EXPECT_EQ(*store->CountRawKeysForTest("t", "p"), 2);
  clock_.AdvanceMs(2000);
  SEG_ASSERT_OK(store->CompactAllForTest());
  EXPECT_EQ(*store->CountRawKeysForTest("t", "p"), 0);
}

TEST_F(PackedStoreTest, DeletesSeePendingOperandsAndEachOther) {
  auto store = Open(Options());
  ASSERT_NE(store, nullptr);
  int64_t now = clock_.NowMs();
  SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"p", "q1", now, "v"}, Cell{"p", "q2", now, "v"}}}}));
  SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"p", "q3", now, "v"}}}}));
  // Two columns of the same chunk in one row delete: both go.
  DeleteColumn d1{"p", std::string("q1")};
  DeleteColumn d3{"p", std::string("q3")};
  SEG_ASSERT_OK(store->Delete("t", {{"r", {d1, d3}}}));
  EXPECT_EQ(Cells(*store->Get("t", AllVersions())),
            (std::vector<std::pair<std::string, int64_t>>{{"q2", now}}));
  // A put after the rewrite merges on top of it.
  SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"p", "q0", now, "v"}}}}));
  EXPECT_EQ(store->Get("t", AllVersions())->size(), 2u);
  SEG_ASSERT_OK(store->Delete("t", {{"r", {}}}));
  EXPECT_TRUE(store->Get("t", AllVersions())->empty());
  EXPECT_EQ(*store->CountRawKeysForTest("t", "p"), 0);
}

TEST_F(PackedStoreTest, BusyChunkIsFoldedAndReadsTheSame) {
  auto store = Open(Options());
  ASSERT_NE(store, nullptr);
  auto folds = [] {
    return metrics::GetCounter("seg_store_packed_folds_total",
                               "Busy packed chunks rewritten merged instead of merged on read")
        .Value();
  };
  double folds_before = folds();
  int64_t now = clock_.NowMs();
  std::vector<std::pair<std::string, int64_t>> want;
  // 40 single-cell puts into chunk "a": every 16th merge is written merged.
  for (int i = 0; i < 40; ++i) {
    std::string q = "a" + std::to_string(10 + i);
    SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"p", q, now, "v"}}}}));
    want.emplace_back(q, now);
  }
  EXPECT_GE(folds() - folds_before, 2);
  // Re-delivery rewrites its cell; versions beyond the family's 2 are hidden.
  SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"p", "a15", now, "again"}}}}));
  for (int v = 1; v <= 3; ++v) {
    SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"p", "a20", now - v, "old"}}}}));
  }
  want.insert(want.begin() + 11, {"a20", now - 1});
  auto r = store->Get("t", AllVersions());
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r), want);
  EXPECT_EQ(r->cell(5).value, "again");
  // The same row twice in one put around a fold: both cells land.
  for (int i = 0; i < 15; ++i) {
    SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"p", "b" + std::to_string(i), now, "v"}}}}));
  }
  SEG_ASSERT_OK(
      store->Put("t", {{"r", {Cell{"p", "bx", now, "v"}}}, {"r", {Cell{"p", "by", now, "v"}}}}));
  EXPECT_EQ(store->Get("t", AllVersions())->size(), want.size() + 17);
  store.reset();  // and after a reopen (WAL replay)
  store = Open(Options());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Get("t", AllVersions())->size(), want.size() + 17);
}

TEST_F(PackedStoreTest, LayoutIsFixedWhenTheFamilyIsCreated) {
  {
    auto store = Open(Options(1));
    ASSERT_NE(store, nullptr);
    SEG_ASSERT_OK(store->Put("t", {{"r", {Cell{"p", "q", clock_.NowMs(), "v"}}}}));
  }
  auto other = EmbeddedStore::Open(Options(2));
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument);
  auto cells = EmbeddedStore::Open(Options(0));
  EXPECT_EQ(cells.status().code(), StatusCode::kInvalidArgument);
  auto same = Open(Options(1));
  ASSERT_NE(same, nullptr);
  EXPECT_EQ(same->Get("t", AllVersions())->size(), 1u);
}

}  // namespace
}  // namespace seg::store::internal

// The Store contract (see store_contract.h): HBase semantics every backend
// must show. Row keys carry a per-test prefix, so backends may share a
// server between tests.
#include "store/internal/store_contract.h"

#include <algorithm>
#include <map>
#include <thread>

#include "common/metrics.h"
#include "tests/harness/status_matchers.h"

namespace seg::store::testing {
namespace {

constexpr int64_t kDayMs = 24ll * 3600 * 1000;

Cell C(std::string family, std::string qualifier, int64_t ts, std::string value) {
  return Cell{std::move(family), std::move(qualifier), ts, std::move(value)};
}

struct Got {
  std::string family, qualifier, value;
  int64_t ts;
  bool operator==(const Got& o) const {
    return family == o.family && qualifier == o.qualifier && value == o.value && ts == o.ts;
  }
};
std::ostream& operator<<(std::ostream& os, const Got& g) {
  return os << g.family << ":" << ::testing::PrintToString(g.qualifier) << "@" << g.ts << "="
            << ::testing::PrintToString(g.value);
}

std::vector<Got> Cells(const RowResult& r) {
  std::vector<Got> out;
  for (CellView c : r) {
    out.push_back(
        {std::string(c.family), std::string(c.qualifier), std::string(c.value), c.timestamp});
  }
  return out;
}

GetRequest G(std::string row, std::vector<std::string> families = {}) {
  GetRequest g;
  g.row = std::move(row);
  g.families = std::move(families);
  return g;
}

}  // namespace

std::vector<TableOptions> ContractTables() {
  auto tables = DefaultTables();
  TableOptions t;
  t.name = "t";
  // `a` packed (1-byte chunks: many chunks per row), `b` one key per cell.
  t.families.push_back(FamilyOptions{"a", 5, 0, 1});
  t.families.push_back(FamilyOptions{"b", 3, 3600 * 1000});
  tables.push_back(t);
  return tables;
}

std::string ContractTablesYaml() {
  return "store:\n"
         "  tables:\n"
         "    users:\n"
         "      e: {max_versions: 3, ttl_seconds: 5184000, packed_prefix_bytes: 5}\n"
         "      s: {max_versions: 3}\n"
         "    t:\n"
         "      a: {max_versions: 5, packed_prefix_bytes: 1}\n"
         "      b: {max_versions: 3, ttl_seconds: 3600}\n";
}

void StoreContractTest::SetUp() {
  env_ = GetParam().make();
  ASSERT_NE(env_, nullptr);
  // A backend that cannot open (e.g. no real server) fails here, not in a crash.
  ASSERT_NE(env_->store(), nullptr) << "the backend did not open";
  prefix_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
  prefix_ = env_->RowPrefix() + prefix_.substr(0, prefix_.find('/')) + "|";
}

TEST_P(StoreContractTest, GetReturnsNewestVersionUnlessMoreAsked) {
  int64_t now = env_->NowMs();
  SEG_ASSERT_OK(store()->Put("t", {{R("r"),
                                    {C("a", "q", now - 3, "v1"), C("a", "q", now - 2, "v2"),
                                     C("a", "q", now - 1, "v3")}}}));
  auto r = store()->Get("t", G(R("r")));
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r), (std::vector<Got>{{"a", "q", "v3", now - 1}}));
  EXPECT_EQ(r->row(), R("r"));
  GetRequest g = G(R("r"));
  g.max_versions = 2;
  r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r), (std::vector<Got>{{"a", "q", "v3", now - 1}, {"a", "q", "v2", now - 2}}));
}

TEST_P(StoreContractTest, VersionsComeNewestFirstCappedByFamilyMax) {
  int64_t now = env_->NowMs();
  RowPut p{R("r"), {}};
  for (int i = 0; i < 6; ++i)
    p.cells.push_back(C("b", "q", now - 100 + i, "v" + std::to_string(i)));
  SEG_ASSERT_OK(store()->Put("t", {p}));
  GetRequest g = G(R("r"), {"b"});
  g.max_versions = 10;
  auto r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  // Family b keeps 3 versions.
  EXPECT_EQ(Cells(*r), (std::vector<Got>{{"b", "q", "v5", now - 95},
                                         {"b", "q", "v4", now - 96},
                                         {"b", "q", "v3", now - 97}}));
}

TEST_P(StoreContractTest, SameTimestampOverwrites) {
  SEG_ASSERT_OK(store()->Put("t", {{R("r"), {C("a", "q", 1000, "old")}}}));
  SEG_ASSERT_OK(store()->Put("t", {{R("r"), {C("a", "q", 1000, "new")}}}));
  GetRequest g = G(R("r"));
  g.max_versions = 5;
  auto r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r), (std::vector<Got>{{"a", "q", "new", 1000}}));
}

// The store may reorder a batch's rows (it writes them in key order); a row
// given twice must still end with its later cell.
TEST_P(StoreContractTest, RowGivenTwiceInOneBatchKeepsTheLaterCell) {
  SEG_ASSERT_OK(store()->Put("t", {{R("z"), {C("a", "q", 1000, "old")}},
                                   {R("a"), {C("a", "q", 1000, "other")}},
                                   {R("z"), {C("a", "q", 1000, "new")}}}));
  auto r = store()->Get("t", G(R("z")));
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r), (std::vector<Got>{{"a", "q", "new", 1000}}));
}

TEST_P(StoreContractTest, LatestTimestampMeansServerNow) {
  int64_t before = env_->NowMs();
  SEG_ASSERT_OK(store()->Put("t", {{R("r"), {C("a", "q", kLatestTimestamp, "v")}}}));
  auto r = store()->Get("t", G(R("r")));
  SEG_ASSERT_OK(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_GE(r->cell(0).timestamp, before);
  EXPECT_LE(r->cell(0).timestamp, before + 60000);
}

TEST_P(StoreContractTest, FamiliesAndQualifiersSortBytewise) {
  std::vector<std::string> quals = {
      "b", "a",  std::string("\xff", 1), std::string("\x00", 1), std::string("a\x00", 2),
      "",  "ab", std::string("\x01", 1)};
  RowPut p{R("r"), {}};
  for (const auto& q : quals) {
    p.cells.push_back(C("b", q, 10, "x"));
    p.cells.push_back(C("a", q, 10, "y"));
  }
  SEG_ASSERT_OK(store()->Put("t", {p}));
  auto r = store()->Get("t", G(R("r")));
  SEG_ASSERT_OK(r);
  std::vector<std::string> sorted = quals;
  std::sort(sorted.begin(), sorted.end());
  std::vector<Got> want;
  for (const auto& q : sorted) want.push_back({"a", q, "y", 10});
  // Family b has a 1 h TTL: timestamp 10 is long expired there.
  EXPECT_EQ(Cells(*r), want);
  int64_t now = env_->NowMs();
  SEG_ASSERT_OK(store()->Put("t", {{R("r2"), {C("b", "z", now, "1"), C("a", "z", now, "2")}}}));
  r = store()->Get("t", G(R("r2")));
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r), (std::vector<Got>{{"a", "z", "2", now}, {"b", "z", "1", now}}));
}

TEST_P(StoreContractTest, TimeRangeIsHalfOpen) {
  RowPut p{R("r"), {}};
  for (int64_t ts = 100; ts < 105; ++ts) p.cells.push_back(C("a", "q", ts, std::to_string(ts)));
  SEG_ASSERT_OK(store()->Put("t", {p}));
  GetRequest g = G(R("r"));
  g.max_versions = 5;
  g.time_range = {101, 104};
  auto r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  EXPECT_EQ(
      Cells(*r),
      (std::vector<Got>{{"a", "q", "103", 103}, {"a", "q", "102", 102}, {"a", "q", "101", 101}}));
  g.max_versions = 1;
  r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r), (std::vector<Got>{{"a", "q", "103", 103}}));
}

TEST_P(StoreContractTest, QualifierRangeIsHalfOpen) {
  RowPut p{R("r"), {}};
  for (char c = 'a'; c <= 'f'; ++c) p.cells.push_back(C("a", std::string(1, c), 5, "v"));
  SEG_ASSERT_OK(store()->Put("t", {p}));
  GetRequest g = G(R("r"), {"a"});
  g.qualifier_start = "b";
  g.qualifier_stop = "e";
  auto r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r),
            (std::vector<Got>{{"a", "b", "v", 5}, {"a", "c", "v", 5}, {"a", "d", "v", 5}}));
  g.qualifier_stop.clear();
  r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  EXPECT_EQ(r->size(), 5u);
  g.qualifier_start.clear();
  g.qualifier_stop = "c";
  r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  EXPECT_EQ(r->size(), 2u);
}

TEST_P(StoreContractTest, ExactQualifiers) {
  SEG_ASSERT_OK(store()->Put(
      "t", {{R("r"), {C("a", "x", 5, "1"), C("a", "y", 5, "2"), C("a", "z", 5, "3")}}}));
  GetRequest g = G(R("r"), {"a"});
  g.qualifiers = {"z", "x", "missing"};
  auto r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r), (std::vector<Got>{{"a", "x", "1", 5}, {"a", "z", "3", 5}}));
}

TEST_P(StoreContractTest, NewestCellsKeepsLatestEventsInOrder) {
  RowPut p{R("r"), {}};
  // Qualifiers in time order, as the event family's are.
  for (int i = 0; i < 10; ++i) p.cells.push_back(C("a", "q" + std::to_string(i), 100 + i, "v"));
  SEG_ASSERT_OK(store()->Put("t", {p}));
  GetRequest g = G(R("r"));
  g.newest_cells = 3;
  auto r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r), (std::vector<Got>{
                           {"a", "q7", "v", 107}, {"a", "q8", "v", 108}, {"a", "q9", "v", 109}}));
}

TEST_P(StoreContractTest, TtlHidesCellsOlderThanFamilyTtl) {
  int64_t now = env_->NowMs();
  SEG_ASSERT_OK(store()->Put(
      "users", {{R("u"),
                 {C("e", "old", now - 61 * kDayMs, "x"), C("e", "new", now - 59 * kDayMs, "y"),
                  C("s", "state", now - 400 * kDayMs, "z")}}}));
  auto r = store()->Get("users", G(R("u")));
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r), (std::vector<Got>{{"e", "new", "y", now - 59 * kDayMs},
                                         {"s", "state", "z", now - 400 * kDayMs}}));
  auto e = store()->Exists("users", G(R("u"), {"e"}));
  SEG_ASSERT_OK(e);
  EXPECT_TRUE(*e);
}

// Linked into the Thrift test binary too, where no backend has a fake clock.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StoreClockContractTest);

TEST_P(StoreClockContractTest, TtlExpiryIsImmediateWhenClockMoves) {
  FakeClock* clock = env_->fake_clock();
  ASSERT_NE(clock, nullptr) << "instantiate StoreClockContractTest only with a FakeClock";
  int64_t now = env_->NowMs();
  SEG_ASSERT_OK(store()->Put("t", {{R("r"), {C("b", "q", now, "v")}}}));
  // As HBase: expired once ts < now - ttl.
  clock->AdvanceMs(3600 * 1000);
  EXPECT_EQ(store()->Get("t", G(R("r")))->size(), 1u);
  clock->AdvanceMs(1);
  EXPECT_EQ(store()->Get("t", G(R("r")))->size(), 0u);
}

TEST_P(StoreContractTest, RowWith100kCells) {
  constexpr int kCells = 100000;
  RowPut p{R("big"), {}};
  p.cells.reserve(kCells);
  for (int i = 0; i < kCells; ++i) {
    char q[16];
    std::snprintf(q, sizeof(q), "%08d", i);
    p.cells.push_back(C("a", q, 7, "value-" + std::to_string(i)));
  }
  SEG_ASSERT_OK(store()->Put("t", {p}));
  auto r = store()->Get("t", G(R("big")));
  SEG_ASSERT_OK(r);
  ASSERT_EQ(r->size(), static_cast<size_t>(kCells));
  EXPECT_EQ(r->cell(0).qualifier, "00000000");
  EXPECT_EQ(r->cell(kCells - 1).value, "value-99999");
  GetRequest g = G(R("big"));
  g.newest_cells = 10;
  g.qualifier_start = "00050000";
  r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  EXPECT_EQ(r->size(), 10u);
}

TEST_P(StoreContractTest, BinaryRowKeysKeepByteOrder) {
  std::vector<std::string> rows = {R("a"),
                                   R(std::string("a\x00", 2)),
                                   R(std::string("a\x00\x00", 3)),
                                   R(std::string("a\x00\x01", 3)),
                                   R(std::string("a\x01", 2)),
                                   R(std::string("a\xff", 2)),
                                   R("aa"),
                                   R(std::string("\xff\xff", 2))};
  std::vector<RowPut> puts;
  for (size_t i = 0; i < rows.size(); ++i)
    puts.push_back({rows[i], {C("a", "q", 5, std::to_string(i))}});
  SEG_ASSERT_OK(store()->Put("t", puts));
  for (size_t i = 0; i < rows.size(); ++i) {
    auto r = store()->Get("t", G(rows[i]));
    SEG_ASSERT_OK(r);
    ASSERT_EQ(r->size(), 1u) << i;
    EXPECT_EQ(r->cell(0).value, std::to_string(i));
  }
  ScanRequest s;
  s.start_row = prefix_;
  s.stop_row = prefix_ + "\xff\xff\xff";
  s.batch_rows = 3;
  auto scanner = store()->OpenScanner("t", s);
  SEG_ASSERT_OK(scanner);
  std::vector<std::string> seen;
  std::vector<RowResult> batch;
  do {
    SEG_ASSERT_OK((*scanner)->NextBatch(&batch));
    for (auto& r : batch) seen.push_back(r.row());
  } while (!batch.empty());
  std::vector<std::string> want = rows;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(seen, want);
}

TEST_P(StoreContractTest, MultiGetOf1000RowsKeepsOrderAndEmptyForMissing) {
  std::vector<RowPut> puts;
  for (int i = 0; i < 1000; i += 2) {
    puts.push_back({R("m" + std::to_string(i)), {C("a", "q", 9, std::to_string(i))}});
  }
  SEG_ASSERT_OK(store()->Put("t", puts));
  std::vector<GetRequest> gets;
  for (int i = 999; i >= 0; --i) gets.push_back(G(R("m" + std::to_string(i))));
  std::vector<RowResult> results;
  SEG_ASSERT_OK(store()->MultiGet("t", gets, &results));
  ASSERT_EQ(results.size(), 1000u);
  for (int k = 0; k < 1000; ++k) {
    int i = 999 - k;
    EXPECT_EQ(results[k].row(), R("m" + std::to_string(i)));
    if (i % 2 == 0) {
      ASSERT_EQ(results[k].size(), 1u) << i;
      EXPECT_EQ(results[k].cell(0).value, std::to_string(i));
    } else {
      EXPECT_TRUE(results[k].empty()) << i;
    }
  }
}

TEST_P(StoreContractTest, ScanAcrossManyRowsInBatches) {
  std::vector<RowPut> puts;
  for (int i = 0; i < 2500; ++i) {
    char row[16];
    std::snprintf(row, sizeof(row), "%05d", i);
    puts.push_back({R(row), {C("a", "q", 9, "v"), C("b", "old", 9, "expired")}});
  }
  SEG_ASSERT_OK(store()->Put("t", puts));
  ScanRequest s;
  s.start_row = R("00100");
  s.stop_row = R("02100");
  s.batch_rows = 128;
  auto scanner = store()->OpenScanner("t", s);
  SEG_ASSERT_OK(scanner);
  std::vector<RowResult> batch;
  int rows = 0;
  std::string last;
  while (true) {
    SEG_ASSERT_OK((*scanner)->NextBatch(&batch));
    if (batch.empty()) break;
    EXPECT_LE(batch.size(), 128u);
    for (auto& r : batch) {
      EXPECT_GT(r.row(), last);
      last = r.row();
      ASSERT_EQ(r.size(), 1u);  // b's cells are past its TTL
      ++rows;
    }
  }
  EXPECT_EQ(rows, 2000);
  EXPECT_EQ(last, R("02099"));
  SEG_EXPECT_OK((*scanner)->Close());
}

TEST_P(StoreContractTest, ScanFirstReturnsTheFirstRowsOfTheRangeOnly) {
  std::vector<RowPut> puts;
  for (int i = 0; i < 50; ++i) {
    char row[16];
    std::snprintf(row, sizeof(row), "%03d", i);
    puts.push_back({R(row), {C("a", "q", 9, std::to_string(i))}});
  }
  SEG_ASSERT_OK(store()->Put("t", puts));
  ScanRequest s;
  s.start_row = R("010");
  s.stop_row = R("040");
  s.batch_rows = 7;
  std::vector<RowResult> rows;
  SEG_ASSERT_OK(store()->ScanFirst("t", s, &rows));
  ASSERT_EQ(rows.size(), 7u);
  for (int i = 0; i < 7; ++i) {
    char row[16];
    std::snprintf(row, sizeof(row), "%03d", 10 + i);
    EXPECT_EQ(rows[i].row(), R(row));
    ASSERT_EQ(rows[i].size(), 1u);
    EXPECT_EQ(rows[i].cell(0).value, std::to_string(10 + i));
  }
  s.start_row = R("045");
  s.stop_row = R("999");
  SEG_ASSERT_OK(store()->ScanFirst("t", s, &rows));
  EXPECT_EQ(rows.size(), 5u);  // fewer than asked: all of them
  s.start_row = R("100");
  SEG_ASSERT_OK(store()->ScanFirst("t", s, &rows));
  EXPECT_TRUE(rows.empty());
}

// The due path deletes thousands of rows per call: whole rows, families and
// columns mixed, a row named twice, in no particular order.
TEST_P(StoreContractTest, ManyRowsDeletedInOneCallEachAsAsked) {
  auto row = [this](int i) {
    char b[16];
    std::snprintf(b, sizeof(b), "d%04d", i);
    return R(b);
  };
  const int64_t now = env_->NowMs();
  std::vector<RowPut> puts;
  for (int i = 0; i < 300; ++i) {
    puts.push_back({row(i),
                    {C("a", "q", 1, "old"), C("a", "q", 2, "new"), C("a", "k", 1, "k"),
                     C("b", "x", now, "b")}});
  }
  SEG_ASSERT_OK(store()->Put("t", puts));
  std::vector<RowDelete> deletes;
  for (int i = 99; i >= 0; --i) deletes.push_back(RowDelete{row(i), {}});
  deletes.push_back(RowDelete{row(5), {}});
  DeleteColumn family_a;
  family_a.family = "a";
  for (int i = 100; i < 200; ++i) deletes.push_back(RowDelete{row(i), {family_a}});
  DeleteColumn newest_q;
  newest_q.family = "a";
  newest_q.qualifier = "q";
  newest_q.all_versions = false;
  for (int i = 200; i < 250; ++i) deletes.push_back(RowDelete{row(i), {newest_q}});
  SEG_ASSERT_OK(store()->Delete("t", deletes));
  for (int i = 0; i < 300; ++i) {
    GetRequest g = G(row(i));
    g.max_versions = 5;
    auto r = store()->Get("t", g);
    SEG_ASSERT_OK(r);
    std::vector<Got> want;
    if (i < 100) {
      want = {};
    } else if (i < 200) {
      want = {{"b", "x", "b", now}};
    } else if (i < 250) {
      want = {{"a", "k", "k", 1}, {"a", "q", "old", 1}, {"b", "x", "b", now}};
    } else {
      want = {{"a", "k", "k", 1}, {"a", "q", "new", 2}, {"a", "q", "old", 1}, {"b", "x", "b", now}};
    }
    EXPECT_EQ(Cells(*r), want) << i;
  }
}

TEST_P(StoreContractTest, DeleteColumnWithoutTimestampRemovesAllVersions) {
  SEG_ASSERT_OK(store()->Put(
      "t", {{R("r"), {C("a", "q", 1, "1"), C("a", "q", 2, "2"), C("a", "keep", 1, "k")}}}));
  DeleteColumn d;
  d.family = "a";
  d.qualifier = "q";
  SEG_ASSERT_OK(store()->Delete("t", {{R("r"), {d}}}));
  GetRequest g = G(R("r"));
  g.max_versions = 5;
  auto r = store()->Get("t", g);
  SEG_ASSERT_OK(r);
  EXPECT_EQ(Cells(*r), (std::vector<Got>{{"a", "keep", "k", 1}}));
}

TEST_P(StoreContractTest, DeleteSingleVersionAndFamilyAndRow) {
  SEG_ASSERT_OK(store()->Put(
      "t", {{R("r"), {C("a", "q", 1, "1"), C("a", "q", 2, "2"), C("a", "q", 3, "3")}}}));
  DeleteColumn one;
  one.family = "a";
  one.qualifier = "q";
  one.all_versions = false;
  one.timestamp = 2;
  SEG_ASSERT_OK(store()->Delete("t", {{R("r"), {one}}}));
  GetRequest g = G(R("r"));
  g.max_versions = 5;
  EXPECT_EQ(Cells(*store()->Get("t", g)),
            (std::vector<Got>{{"a", "q", "3", 3}, {"a", "q", "1", 1}}));
  one.timestamp = kLatestTimestamp;  // the newest version
  SEG_ASSERT_OK(store()->Delete("t", {{R("r"), {one}}}));
  EXPECT_EQ(Cells(*store()->Get("t", g)), (std::vector<Got>{{"a", "q", "1", 1}}));

  int64_t now = env_->NowMs();
  SEG_ASSERT_OK(store()->Put("t", {{R("r"), {C("b", "x", now, "b")}}}));
  DeleteColumn fam;
  fam.family = "a";
  SEG_ASSERT_OK(store()->Delete("t", {{R("r"), {fam}}}));
  EXPECT_EQ(Cells(*store()->Get("t", g)), (std::vector<Got>{{"b", "x", "b", now}}));
  SEG_ASSERT_OK(store()->Delete("t", {RowDelete{R("r"), {}}}));
  EXPECT_TRUE(store()->Get("t", g)->empty());
}

TEST_P(StoreContractTest, CheckAndMutateWithoutValueMeansMustNotExist) {
  Condition c{"s", "lock", CompareOp::kEqual, std::nullopt};
  RowMutations m{R("u"), {}, {C("s", "lock", 5, "owner1")}};
  auto applied = store()->CheckAndMutate("users", c, m);
  SEG_ASSERT_OK(applied);
  EXPECT_TRUE(*applied);
  m.puts[0].value = "owner2";
  applied = store()->CheckAndMutate("users", c, m);
  SEG_ASSERT_OK(applied);
  EXPECT_FALSE(*applied);
  auto r = store()->Get("users", G(R("u"), {"s"}));
  EXPECT_EQ(r->cell(0).value, "owner1");
}

TEST_P(StoreContractTest, CheckAndMutateComparesGivenAgainstStored) {
  SEG_ASSERT_OK(store()->Put("t", {{R("r"), {C("a", "v", 5, "m")}}}));
  RowMutations m{R("r"), {}, {C("a", "hit", 6, "1")}};
  auto run = [&](CompareOp op, std::string v) {
    auto a = store()->CheckAndMutate("t", Condition{"a", "v", op, v}, m);
    SEG_EXPECT_OK(a);
    return a.ok() && *a;
  };
  EXPECT_FALSE(run(CompareOp::kEqual, "x"));
  EXPECT_TRUE(run(CompareOp::kEqual, "m"));
  EXPECT_TRUE(run(CompareOp::kLess, "a"));      // "a" < "m"
  EXPECT_FALSE(run(CompareOp::kGreater, "a"));  // given OP stored
  EXPECT_TRUE(run(CompareOp::kNotEqual, "z"));
  // Deletes first, then puts.
  DeleteColumn d;
  d.family = "a";
  d.qualifier = "v";
  RowMutations swap{R("r"), {d}, {C("a", "w", 7, "new")}};
  auto a = store()->CheckAndMutate("t", Condition{"a", "v", CompareOp::kEqual, "m"}, swap);
  SEG_ASSERT_OK(a);
  EXPECT_TRUE(*a);
  EXPECT_EQ(Cells(*store()->Get("t", G(R("r"), {"a"}))),
            (std::vector<Got>{{"a", "hit", "1", 6}, {"a", "w", "new", 7}}));
}

TEST_P(StoreContractTest, UnknownTableIsNotFound) {
  EXPECT_EQ(store()->Get("nope", G(R("r"))).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store()->Put("nope", {{R("r"), {C("a", "q", 1, "v")}}}).code(), StatusCode::kNotFound);
  std::vector<RowResult> rs;
  EXPECT_EQ(store()->MultiGet("nope", {G(R("r"))}, &rs).code(), StatusCode::kNotFound);
  // HBase opens a scanner lazily: an unknown table may show only at the
  // first NextBatch (seg-store refuses it at once).
  auto scanner = store()->OpenScanner("nope", ScanRequest{});
  if (scanner.ok()) {
    std::vector<RowResult> rows;
    EXPECT_EQ((*scanner)->NextBatch(&rows).code(), StatusCode::kNotFound);
  } else {
    EXPECT_EQ(scanner.status().code(), StatusCode::kNotFound);
  }
  // An error reply leaves a pooled connection in sync for the next call.
  SEG_ASSERT_OK(store()->Put("t", {{R("r"), {C("a", "q", 1, "v")}}}));
  SEG_ASSERT_OK(store()->MultiGet("t", {G(R("r")), G(R("absent"))}, &rs));
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].size(), 1u);
  EXPECT_TRUE(rs[1].empty());
  EXPECT_EQ(rs[1].row(), R("absent"));
}

TEST_P(StoreContractTest, UnknownFamilyIsInvalidArgument) {
  EXPECT_EQ(store()->Put("t", {{R("r"), {C("zz", "q", 1, "v")}}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store()->Get("t", G(R("r"), {"zz"})).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreContractTest, EmptyAndOversizedRowKeysAreRejected) {
  EXPECT_EQ(store()->Put("t", {{"", {C("a", "q", 1, "v")}}}).code(), StatusCode::kInvalidArgument);
  std::string huge(kMaxRowBytes + 1, 'x');
  EXPECT_EQ(store()->Put("t", {{huge, {C("a", "q", 1, "v")}}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store()->Get("t", G("")).status().code(), StatusCode::kInvalidArgument);
  std::string max(kMaxRowBytes, 'y');
  SEG_EXPECT_OK(store()->Put("t", {{max, {C("a", "q", 1, "v")}}}));
  EXPECT_EQ(store()->Get("t", G(max))->size(), 1u);
  // The store still works after rejected requests.
  SEG_EXPECT_OK(store()->Put("t", {{R("after"), {C("a", "q", 1, "v")}}}));
}

TEST_P(StoreContractTest, ExistsMatchesGet) {
  SEG_ASSERT_OK(store()->Put("t", {{R("r"), {C("a", "q", 1, "v")}}}));
  EXPECT_TRUE(*store()->Exists("t", G(R("r"))));
  EXPECT_FALSE(*store()->Exists("t", G(R("absent"))));
}

void ExpectScanResumesAfterScannerExpiry(Store* store, const std::string& table,
                                         const std::string& family, const std::string& prefix,
                                         std::chrono::milliseconds idle) {
  std::vector<RowPut> puts;
  for (int i = 0; i < 5; ++i) {
    RowPut p;
    p.row = prefix + std::to_string(i);
    p.cells.push_back(Cell{family, "q", 1000 + i, "v" + std::to_string(i)});
    puts.push_back(std::move(p));
  }
  SEG_ASSERT_OK(store->Put(table, puts));
  ScanRequest scan;
  scan.start_row = prefix;
  scan.stop_row = prefix + "~";
  scan.families = {family};
  scan.batch_rows = 2;
  auto scanner = store->OpenScanner(table, scan);
  SEG_ASSERT_OK(scanner);
  std::vector<RowResult> batch;
  SEG_ASSERT_OK((*scanner)->NextBatch(&batch));
  std::vector<std::string> rows;
  for (const RowResult& r : batch) rows.push_back(r.row());
  ASSERT_EQ(rows, (std::vector<std::string>{prefix + "0", prefix + "1"}));
  const double reopens0 = metrics::GetCounter("seg_store_thrift_scanner_reopens_total", "").Value();
  std::this_thread::sleep_for(idle);
  while (true) {
    Status s = (*scanner)->NextBatch(&batch);
    SEG_ASSERT_OK(s) << "the scan did not survive its scanner's expiry";
    if (batch.empty()) break;
    for (const RowResult& r : batch) rows.push_back(r.row());
  }
  EXPECT_EQ(rows, (std::vector<std::string>{prefix + "0", prefix + "1", prefix + "2", prefix + "3",
                                            prefix + "4"}));
  EXPECT_EQ(metrics::GetCounter("seg_store_thrift_scanner_reopens_total", "").Value(), reopens0 + 1)
      << "the server still knew the scanner: the idle wait did not pass its lease";
}

}  // namespace seg::store::testing

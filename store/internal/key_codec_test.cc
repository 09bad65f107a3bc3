#include "store/internal/key_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <tuple>

#include "store/internal/thrift_convert.h"
#include "tests/harness/status_matchers.h"

namespace seg::store::internal {
namespace {

std::string RandomBytes(std::mt19937& rng) {
  // Small alphabet heavy in 0x00/0x01/0xFF, the bytes the escaping touches.
  static const char kAlphabet[] = {'\x00', '\x01', '\xff', 'a', '\x02'};
  std::uniform_int_distribution<int> len(0, 4), pick(0, 4);
  std::string s;
  for (int i = len(rng); i > 0; --i) s.push_back(kAlphabet[pick(rng)]);
  return s;
}

TEST(KeyCodecTest, EncodedOrderIsHBaseCellOrder) {
  std::mt19937 rng(42);
  struct K {
    std::string row, qualifier;
    int64_t ts;
    std::string key;
  };
  std::vector<K> keys;
  std::uniform_int_distribution<int64_t> ts(0, 5);
  for (int i = 0; i < 3000; ++i) {
    K k{RandomBytes(rng), RandomBytes(rng), ts(rng), ""};
    k.key = EncodeRowPrefix(k.row);
    AppendQualifierAndTimestamp(&k.key, k.qualifier, k.ts);
    keys.push_back(k);
  }
  auto by_key = keys;
  std::sort(by_key.begin(), by_key.end(), [](const K& a, const K& b) { return a.key < b.key; });
  auto by_cell = keys;
  std::sort(by_cell.begin(), by_cell.end(), [](const K& a, const K& b) {
    return std::tie(a.row, a.qualifier, b.ts) < std::tie(b.row, b.qualifier, a.ts);
  });
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_EQ(by_key[i].row, by_cell[i].row) << i;
    ASSERT_EQ(by_key[i].qualifier, by_cell[i].qualifier) << i;
    ASSERT_EQ(by_key[i].ts, by_cell[i].ts) << i;
  }
}

TEST(KeyCodecTest, DecodesWhatItEncodes) {
  std::mt19937 rng(7);
  for (int i = 0; i < 1000; ++i) {
    std::string row = RandomBytes(rng) + "r", qualifier = RandomBytes(rng);
    int64_t ts = static_cast<int64_t>(rng()) * 1000;
    std::string key = EncodeRowPrefix(row);
    AppendQualifierAndTimestamp(&key, qualifier, ts);
    DecodedKey d;
    std::string scratch, decoded_row;
    ASSERT_TRUE(DecodeCellKey(key, &d, &scratch));
    EXPECT_EQ(d.qualifier, qualifier);
    EXPECT_EQ(d.timestamp, ts);
    EXPECT_EQ(d.row_prefix, EncodeRowPrefix(row));
    ASSERT_TRUE(DecodeRow(key, &decoded_row));
    EXPECT_EQ(decoded_row, row);
    EXPECT_EQ(RowPrefixLength(key), EncodeRowPrefix(row).size());
  }
}

TEST(KeyCodecTest, WorkedExampleFromTheEssay) {
  std::string key = EncodeRowPrefix(std::string("u\x00", 2));
  AppendQualifierAndTimestamp(&key, "q", 5);
  EXPECT_EQ(key, std::string("u\x00\xff\x00\x01q\x00\x01\xff\xff\xff\xff\xff\xff\xff\xfa", 16));
  EXPECT_LT(EncodeRowPrefix("u"), EncodeRowPrefix(std::string("u\x00", 2)));
}

TEST(KeyCodecTest, RejectsMalformedKeys) {
  DecodedKey d;
  std::string scratch;
  EXPECT_FALSE(DecodeCellKey("abc", &d, &scratch));
  EXPECT_FALSE(DecodeCellKey(std::string("a\x00\x07", 3), &d, &scratch));
  EXPECT_EQ(RowPrefixLength(std::string("a\x00", 2)), 0u);
}

TEST(ThriftConvertTest, ColumnRangeFilterRoundTripsBinaryBounds) {
  std::string start("it's\x00", 5), stop("\xff'", 2), a, b;
  SEG_ASSERT_OK(ParseColumnRangeFilter(ColumnRangeFilterString(start, stop), &a, &b));
  EXPECT_EQ(a, start);
  EXPECT_EQ(b, stop);
  SEG_ASSERT_OK(ParseColumnRangeFilter("ColumnRangeFilter ('a', false, 'c', true)", &a, &b));
  EXPECT_EQ(a, std::string("a\x00", 2));
  EXPECT_EQ(b, std::string("c\x00", 2));
  EXPECT_FALSE(ParseColumnRangeFilter("PrefixFilter('a')", &a, &b).ok());
  EXPECT_FALSE(
      ParseColumnRangeFilter("ColumnRangeFilter('a', true, 'b', false) junk", &a, &b).ok());
}

TEST(ThriftConvertTest, ErrorMessagesKeepTheirCode) {
  Status s = DecodeErrorMessage(EncodeErrorMessage(NotFoundError("store: unknown table 'x'")));
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "store: unknown table 'x'");
  EXPECT_EQ(DecodeErrorMessage("org.apache.hadoop.hbase.TableNotFoundException: x").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(DecodeErrorMessage("java.io.IOException: boom").code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace seg::store::internal

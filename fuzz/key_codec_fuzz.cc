// The embedded store's key codec (store/internal/key_codec.h) and the event
// qualifier codec (common/event_codec.h). Three properties:
//   - decoding arbitrary bytes never reads out of bounds, and a key that
//     decodes re-encodes to the same bytes (the code is canonical);
//   - (row, qualifier, timestamp) -> key -> the same triple;
//   - the bytewise order of two keys is HBase's cell order of their triples
//     (row, then qualifier, bytewise; then timestamp, newest first).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>

#include "common/event_codec.h"
#include "fuzz/fuzz_support.h"
#include "store/internal/key_codec.h"

namespace {

using seg::fuzz::Require;

using namespace seg::store::internal;

std::string Key(const std::string& row, const std::string& qualifier, int64_t ts) {
  std::string key = EncodeRowPrefix(row);
  AppendQualifierAndTimestamp(&key, qualifier, ts);
  return key;
}

void DecodeArbitrary(std::string_view bytes) {
  DecodedKey decoded;
  std::string scratch;
  if (DecodeCellKey(bytes, &decoded, &scratch)) {
    std::string row;
    Require(DecodeRow(decoded.row_prefix, &row), "row of a decoded key");
    Require(RowPrefixLength(bytes) == decoded.row_prefix.size(), "row prefix length");
    std::string again = EncodeRowPrefix(row);
    AppendQualifierAndTimestamp(&again, decoded.qualifier, decoded.timestamp);
    Require(again == bytes, "decoded key does not re-encode to itself");
  }
  std::string out;
  size_t used = DecodeEscaped(bytes, &out);
  Require(used <= bytes.size(), "DecodeEscaped consumed more than it was given");
  if (used > 0) {
    std::string again;
    AppendEscaped(&again, out);
    Require(again == bytes.substr(0, used), "escaped bytes do not re-encode to themselves");
  }
  int64_t time_ms;
  uint64_t digest;
  int32_t type;
  if (seg::DecodeEventQualifier(bytes, &time_ms, &digest, &type).ok()) {
    std::string again;
    seg::EncodeEventQualifier(time_ms, digest, type, &again);
    Require(again == bytes, "event qualifier round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  DecodeArbitrary(std::string_view(reinterpret_cast<const char*>(data), size));

  FuzzedDataProvider in(data, size);
  std::string row1 = in.ConsumeRandomLengthString(64);
  std::string q1 = in.ConsumeRandomLengthString(64);
  int64_t ts1 = in.ConsumeIntegralInRange<int64_t>(0, INT64_MAX);
  std::string row2 = in.ConsumeRandomLengthString(64);
  std::string q2 = in.ConsumeRandomLengthString(64);
  int64_t ts2 = in.ConsumeIntegralInRange<int64_t>(0, INT64_MAX);

  std::string k1 = Key(row1, q1, ts1), k2 = Key(row2, q2, ts2);
  DecodedKey d;
  std::string scratch, row;
  Require(DecodeCellKey(k1, &d, &scratch), "encoded key does not decode");
  Require(DecodeRow(k1, &row) && row == row1, "row round trip");
  Require(d.qualifier == q1 && d.timestamp == ts1, "qualifier/timestamp round trip");
  Require(d.row_prefix == EncodeRowPrefix(row1), "row prefix");
  Require(k1.compare(0, d.row_prefix.size(), d.row_prefix) == 0, "key starts with its row prefix");
  Require(k1 < RowUpperBound(d.row_prefix), "key below its row's upper bound");
  if (row1 < row2) {
    // Every key of a smaller row sorts below that row's upper bound, which
    // is at most any key of a larger row: a row is one contiguous range.
    Require(RowUpperBound(EncodeRowPrefix(row1)) <= k2, "row ranges overlap");
  }
  // HBase order: row asc, qualifier asc, timestamp desc.
  auto hbase = [](const std::string& r, const std::string& q, int64_t ts) {
    return std::make_tuple(r, q, -ts);
  };
  auto a = hbase(row1, q1, ts1), b = hbase(row2, q2, ts2);
  Require((a < b) == (k1 < k2) && (a == b) == (k1 == k2), "key order is not HBase's cell order");
  return 0;
}

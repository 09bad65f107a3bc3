// Conversions between the store's request/result types and the Thrift2
// (THBaseService) structs, shared by the client (store -> Thrift) and the
// seg-store handler (Thrift -> store), so both ends agree by construction.
//
// Two store features have no first-class Thrift2 field:
//   - qualifier ranges travel as an HBase filter-language string,
//     "ColumnRangeFilter('start', true, 'stop', false)", which real HBase
//     evaluates natively and seg-store parses (only this filter);
//   - "newest N cells" travels as the TGet attribute "seg.newest_cells";
//     HBase ignores unknown attributes, so the client also trims the result
//     itself and gets the same answer from either server.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/hbase_types.h"
#include "store/store.h"

namespace seg::store::internal {

inline constexpr const char* kNewestCellsAttribute = "seg.newest_cells";

// The value of a Thrift enum field as the integer the client sent. The
// generated code stores any i32 from the wire in the (unscoped) C++ enum;
// reading an out-of-range enum as the enum is undefined behaviour (found by
// fuzz/store_wire_fuzz), so the server reads and checks it as an integer.
template <class Enum>
int32_t WireEnum(const Enum& value) {
  static_assert(sizeof(Enum) == sizeof(int32_t));
  int32_t raw;
  std::memcpy(&raw, &value, sizeof(raw));
  return raw;
}

// --- client side: store -> Thrift -------------------------------------------
Status ToTGet(const GetRequest& get, hbase::TGet* out);
void ToTPut(const RowPut& put, hbase::TPut* out);
// A RowDelete may need two TDeletes (one per delete type).
void ToTDeletes(const RowDelete& del, std::vector<hbase::TDelete>* out);
Status ToTScan(const ScanRequest& scan, hbase::TScan* out);
void FromTResult(const hbase::TResult& in, RowResult* out);

// "ColumnRangeFilter('a', true, 'b', false)" with quotes doubled.
std::string ColumnRangeFilterString(std::string_view start, std::string_view stop);

// --- server side: Thrift -> store -------------------------------------------
// A TGet whose columns select different qualifiers in different families
// becomes one GetRequest per family; results are concatenated in order.
Status FromTGet(const hbase::TGet& in, std::vector<GetRequest>* out);
// The "seg.newest_cells" attribute of a TGet, 0 when absent or malformed.
int32_t NewestCellsOf(const hbase::TGet& in);
Status FromTPut(const hbase::TPut& in, RowPut* out);
// The same, moving the strings out of `in`.
Status FromTPut(hbase::TPut&& in, RowPut* out);
Status FromTDelete(const hbase::TDelete& in, RowDelete* out);
Status FromTScan(const hbase::TScan& in, ScanRequest* out);
Status FromTRowMutations(const hbase::TRowMutations& in, RowMutations* out);
void ToTResult(const RowResult& in, hbase::TResult* out);

// Parses a ColumnRangeFilter expression into [start, stop) (empty =
// unbounded). Inclusive/exclusive bounds are mapped exactly by appending a
// 0x00 byte (the next qualifier in byte order). Any other filter:
// InvalidArgument.
Status ParseColumnRangeFilter(std::string_view filter, std::string* start, std::string* stop);

// "INVALID_ARGUMENT: msg" <-> Status, for TIOError messages between our own
// ends; foreign messages (HBase Java exceptions) map by exception name.
std::string EncodeErrorMessage(const Status& status);
Status DecodeErrorMessage(const std::string& message);

}  // namespace seg::store::internal

// Packed layout of the embedded engine (on-disk format "packed v1"): for a
// family with FamilyOptions.packed_prefix_bytes = K > 0, the cells of a row
// are grouped into chunks by the first K bytes of their qualifier, and each
// chunk is ONE RocksDB key whose value holds all its cells. A read of a
// 200-event row is then one or two RocksDB entries instead of 200, which is
// what makes multi-get of wide event rows cheap (see README "On-disk format").
//
//   chunk key   = esc(row) 00 01 | esc(qualifier[0, K)) 00 01     (key_codec.h)
//   chunk value = 0x01 (format v1) | cell*
//   cell        = varint32 qualifier_len | qualifier | fixed64 little-endian
//                 timestamp | varint32 value_len | value
//
// Cells in a value are in HBase order (qualifier bytewise ascending, then
// timestamp newest first), unique per (qualifier, timestamp). Truncating a
// qualifier to K bytes is monotone, so chunk keys sort like their cells and
// a row's chunks, read in key order, give the row's cells in HBase order.
//
// Writes never read: a put appends its cells (sorted, one run per chunk) as
// a RocksDB merge operand; PackedMergeOperator merges the runs (a later run
// wins on an equal (qualifier, timestamp), as an overwrite does) and drops
// versions beyond the family's max_versions. Deletes read the chunk and
// write it back whole under the row lock. PackedTtlFilter drops expired
// cells when compaction rewrites a chunk.
#pragma once

#include <rocksdb/compaction_filter.h>
#include <rocksdb/merge_operator.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace seg::store::internal {

inline constexpr char kPackedFormatV1 = 0x01;

struct PackedCell {
  std::string_view qualifier;
  int64_t timestamp = 0;
  std::string_view value;
};

// HBase order: qualifier ascending, then timestamp descending.
inline bool PackedBefore(const PackedCell& a, const PackedCell& b) {
  int c = a.qualifier.compare(b.qualifier);
  return c != 0 ? c < 0 : a.timestamp > b.timestamp;
}

// The chunk a qualifier belongs to.
inline std::string_view ChunkOf(std::string_view qualifier, int32_t prefix_bytes) {
  return qualifier.substr(0, static_cast<size_t>(prefix_bytes));
}

// Walks the cells of a chunk value. ok() turns false on a malformed value.
class PackedReader {
 public:
  explicit PackedReader(std::string_view value);
  bool Next(PackedCell* cell);
  bool ok() const { return ok_; }

 private:
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

// Appends one cell (the value must start with kPackedFormatV1).
void AppendPackedCell(std::string* out, std::string_view qualifier, int64_t timestamp,
                      std::string_view value);

// Sorts `cells` into HBase order and encodes them as one value; of equal
// (qualifier, timestamp) the one later in `cells` wins (an overwrite).
void EncodePackedRun(std::vector<PackedCell>* cells, std::string* out);

// Merges chunk values/runs given oldest first into `out`, keeping at most
// `max_versions` versions per qualifier (0 = all). False if one is malformed.
bool MergePackedRuns(const std::vector<std::string_view>& runs, int32_t max_versions,
                     std::string* out);

// Number of cells in a chunk value (-1 if malformed).
int64_t CountPackedCells(std::string_view value);

class PackedMergeOperator : public rocksdb::MergeOperator {
 public:
  explicit PackedMergeOperator(int32_t max_versions) : max_versions_(max_versions) {}
  const char* Name() const override { return "seg.PackedMergeOperator.v1"; }
  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override;

 private:
  int32_t max_versions_;
};

// Compaction: drops cells older than now - ttl from chunk values, the
// whole chunk when nothing is left. Merge operands are left to the merge.
class PackedTtlFilter : public rocksdb::CompactionFilter {
 public:
  explicit PackedTtlFilter(int64_t min_visible_ts) : min_ts_(min_visible_ts) {}
  const char* Name() const override { return "seg.PackedTtlFilter"; }
  Decision FilterV2(int level, const rocksdb::Slice& key, ValueType type,
                    const rocksdb::Slice& existing_value, std::string* new_value,
                    std::string* skip_until) const override;

 private:
  int64_t min_ts_;
};

}  // namespace seg::store::internal

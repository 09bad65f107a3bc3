// The hooks RocksDB calls back for every family of the embedded store: the
// row prefix extractor (the unit of the prefix bloom filter) and the
// compaction filters that enforce TTL and versions on disk.
#include <rocksdb/compaction_filter.h>
#include <rocksdb/slice_transform.h>

#include "store/internal/embedded_store_parts.h"
#include "store/internal/key_codec.h"
#include "store/internal/packed_cells.h"

namespace seg::store::internal {
namespace {

// The row prefix of a key (escaped row + terminator) is the unit of the
// prefix bloom filter: every point read of a row seeks within it.
class RowPrefixExtractor : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "seg.RowPrefixExtractor.v1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    size_t n = RowPrefixLength(std::string_view(key.data(), key.size()));
    return rocksdb::Slice(key.data(), n);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return RowPrefixLength(std::string_view(key.data(), key.size())) != 0;
  }
};

// Drops cells past the family TTL and versions beyond max_versions. Keys
// arrive in order, so the versions of a column are consecutive, newest
// first. A compaction may see only some files: its rank of a version is at
// most the true rank, so it never drops a version that reads would show.
class TtlVersionFilter : public rocksdb::CompactionFilter {
 public:
  TtlVersionFilter(const FamilyOptions& family, int64_t now_ms)
      : max_versions_(family.max_versions),
        min_ts_(family.ttl_ms > 0 ? now_ms - family.ttl_ms : INT64_MIN) {}
  const char* Name() const override { return "seg.TtlVersionFilter"; }
  bool Filter(int, const rocksdb::Slice& key, const rocksdb::Slice&, std::string*,
              bool*) const override {
    DecodedKey k;
    if (!DecodeCellKey(std::string_view(key.data(), key.size()), &k, &scratch_)) return false;
    if (k.row_prefix != current_row_ || k.escaped_qualifier != current_qualifier_) {
      current_row_.assign(k.row_prefix);
      current_qualifier_.assign(k.escaped_qualifier);
      versions_ = 0;
    }
    ++versions_;
    if (k.timestamp < min_ts_) return true;
    return max_versions_ > 0 && versions_ > max_versions_;
  }

 private:
  int32_t max_versions_;
  int64_t min_ts_;
  // Filter() is const in the RocksDB API; one filter serves one compaction
  // thread, so the running state is safe as mutable.
  mutable std::string current_row_;
  mutable std::string current_qualifier_;
  mutable std::string scratch_;
  mutable int32_t versions_ = 0;
};

class TtlVersionFilterFactory : public rocksdb::CompactionFilterFactory {
 public:
  TtlVersionFilterFactory(FamilyOptions family, const Clock* clock)
      : family_(std::move(family)), clock_(clock) {}
  const char* Name() const override { return "seg.TtlVersionFilterFactory"; }
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context&) override {
    return std::make_unique<TtlVersionFilter>(family_, clock_->NowMs());
  }

 private:
  FamilyOptions family_;
  const Clock* clock_;
};

class PackedTtlFilterFactory : public rocksdb::CompactionFilterFactory {
 public:
  PackedTtlFilterFactory(int64_t ttl_ms, const Clock* clock) : ttl_ms_(ttl_ms), clock_(clock) {}
  const char* Name() const override { return "seg.PackedTtlFilterFactory"; }
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context&) override {
    return std::make_unique<PackedTtlFilter>(clock_->NowMs() - ttl_ms_);
  }

 private:
  int64_t ttl_ms_;
  const Clock* clock_;
};

}  // namespace

std::shared_ptr<const rocksdb::SliceTransform> NewRowPrefixExtractor() {
  return std::shared_ptr<const rocksdb::SliceTransform>(new RowPrefixExtractor());
}

std::shared_ptr<rocksdb::CompactionFilterFactory> NewTtlVersionFilterFactory(
    const FamilyOptions& family, const Clock* clock) {
  return std::make_shared<TtlVersionFilterFactory>(family, clock);
}

std::shared_ptr<rocksdb::CompactionFilterFactory> NewPackedTtlFilterFactory(int64_t ttl_ms,
                                                                            const Clock* clock) {
  return std::make_shared<PackedTtlFilterFactory>(ttl_ms, clock);
}

}  // namespace seg::store::internal

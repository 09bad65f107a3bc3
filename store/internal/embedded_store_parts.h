// What the files of EmbeddedStore share. The store is split by what a call
// does: embedded_store.cc opens RocksDB and finds tables and families,
// embedded_store_filters.cc holds the hooks RocksDB calls back (row prefix,
// compaction filters), embedded_store_read.cc gets and scans,
// embedded_store_write.cc puts and checkAndMutate, embedded_store_delete.cc
// deletes.
#pragma once

#include <rocksdb/slice.h>
#include <rocksdb/status.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "store/internal/embedded_store.h"

namespace rocksdb {
class CompactionFilterFactory;
class SliceTransform;
}  // namespace rocksdb

namespace seg::store::internal {

// A RocksDB status as a Status; `what` names the operation.
Status FromRocks(const rocksdb::Status& s, std::string_view what);

inline bool StartsWith(const rocksdb::Slice& key, std::string_view prefix) {
  return key.size() >= prefix.size() && std::memcmp(key.data(), prefix.data(), prefix.size()) == 0;
}

// What a get reads, as ReadFamilyRow wants it (embedded_store_read.cc).
EmbeddedStore::ReadSpec SpecFrom(const GetRequest& get, int32_t);

// The prefix extractor of every column family (embedded_store_filters.cc).
std::shared_ptr<const rocksdb::SliceTransform> NewRowPrefixExtractor();
// Compaction filters: one-key-per-cell families drop expired cells and
// versions beyond max; packed families drop expired cells inside chunks.
std::shared_ptr<rocksdb::CompactionFilterFactory> NewTtlVersionFilterFactory(
    const FamilyOptions& family, const Clock* clock);
std::shared_ptr<rocksdb::CompactionFilterFactory> NewPackedTtlFilterFactory(int64_t ttl_ms,
                                                                            const Clock* clock);

}  // namespace seg::store::internal

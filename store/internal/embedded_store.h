// EmbeddedStore: the Store on RocksDB. One RocksDB column family per
// table:family ("users:e"), keys as in key_codec.h, the cell timestamp in
// the key, the value as the RocksDB value; or, for packed families, one key
// per row chunk holding many cells (packed_cells.h).
//
// Versions and TTL are enforced twice, as HBase does: on every read (so an
// expired cell is invisible at once, by the injected Clock) and by a
// compaction filter that drops expired cells and versions beyond the
// family's max (so disk use is bounded). Writes go through one WriteBatch
// per call: a batch of rows commits atomically, which is stronger than the
// per-row atomicity promised. Read-modify-write operations (deletes,
// checkAndMutate) and puts take per-row striped locks so a conditional
// mutation cannot interleave with another write to the same row.
//
// Deletes remove the matching versions physically (no HBase delete
// markers): a later put with an older timestamp is visible again, where
// HBase would mask it until a major compaction.
//
// Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "store/store.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Iterator;
class Cache;
class WriteBatch;
}  // namespace rocksdb

namespace seg::store::internal {

class EmbeddedStore final : public Store {
 public:
  static StatusOr<std::unique_ptr<EmbeddedStore>> Open(const EmbeddedOptions& options);
  ~EmbeddedStore() override;

  Status Put(std::string_view table, const std::vector<RowPut>& rows) override;
  StatusOr<RowResult> Get(std::string_view table, const GetRequest& get) override;
  Status MultiGet(std::string_view table, const std::vector<GetRequest>& gets,
                  std::vector<RowResult>* results) override;
  StatusOr<bool> Exists(std::string_view table, const GetRequest& get) override;
  Status Delete(std::string_view table, const std::vector<RowDelete>& rows) override;
  StatusOr<bool> CheckAndMutate(std::string_view table, const Condition& condition,
                                const RowMutations& mutations) override;
  StatusOr<std::unique_ptr<Scanner>> OpenScanner(std::string_view table,
                                                 const ScanRequest& scan) override;

  // Test hooks: force a full compaction (runs the TTL/version filter), and
  // count the raw cells of a family (including invisible ones; for packed
  // families the cells inside the chunk values).
  Status CompactAllForTest();
  // A memtable flush moved the merge operands out: fold counts start again.
  void ResetFoldCounts();
  StatusOr<int64_t> CountRawKeysForTest(std::string_view table, std::string_view family);

  struct Family {
    FamilyOptions options;
    rocksdb::ColumnFamilyHandle* handle = nullptr;
  };
  struct Table {
    std::string name;
    std::vector<Family> families;  // sorted by name: HBase's family order
    const Family* Find(std::string_view family) const;
  };

  // What a read selects inside a row of one family.
  struct ReadSpec {
    std::vector<std::string> qualifiers;  // sorted, unique; empty = range
    std::string qualifier_start;
    std::string qualifier_stop;
    TimeRange time_range;
    int32_t max_versions = 1;
    bool families_empty = false;
  };

  // Reads one row of one family from `it` (positioned anywhere) into `out`.
  // Leaves `it` somewhere inside or past the row.
  void ReadFamilyRow(rocksdb::Iterator* it, const Family& family, std::string_view row_prefix,
                     const ReadSpec& spec, int64_t now_ms, RowResult* out,
                     std::string* key_buf) const;

  const Clock* clock() const { return clock_; }
  rocksdb::DB* db() const { return db_.get(); }
  StatusOr<const Table*> FindTable(std::string_view table) const;
  Status ResolveFamilies(const Table& table, const std::vector<std::string>& names,
                         std::vector<const Family*>* out) const;

 private:
  explicit EmbeddedStore(const EmbeddedOptions& options);
  Status OpenDb();
  Status ValidateRow(std::string_view row) const;
  // Packed chunks a row operation rewrites: (family, chunk key) -> value.
  using PendingChunks = std::map<std::pair<rocksdb::ColumnFamilyHandle*, std::string>, std::string>;
  // Adds deletes for `col` in `row` to `batch` (packed families: edits
  // `pending`, see WritePending); reads under the row lock.
  // One iterator per family, reused across the rows of one delete call.
  using DeleteIterators =
      std::map<rocksdb::ColumnFamilyHandle*, std::unique_ptr<rocksdb::Iterator>>;
  rocksdb::Iterator* IteratorFor(rocksdb::ColumnFamilyHandle* handle, DeleteIterators* iterators);
  Status AddDeletes(const Table& table, std::string_view row, const DeleteColumn& col,
                    rocksdb::WriteBatch* batch, PendingChunks* pending, DeleteIterators* iterators);
  Status AddPackedDeletes(const Family& f, const std::string& row_prefix, const DeleteColumn& col,
                          PendingChunks* pending, DeleteIterators* iterators);
  // Writes the edited chunks whole (or deletes them when empty).
  Status WritePending(PendingChunks* pending, rocksdb::WriteBatch* batch);
  // A busy chunk's merge operand written as the merged chunk instead (see
  // AddPuts): read and merged under the row lock by ApplyFolds.
  struct Fold {
    const Family* family;
    std::string key;
    std::string run;
    size_t row;  // index into the Put's rows
  };
  // `folds` (nullptr: never fold) receives the operands of chunks that got
  // kFoldEvery merges since their last fold, instead of `batch`.
  Status AddPuts(const Table& table, std::string_view row, const std::vector<Cell>& cells,
                 int64_t now_ms, rocksdb::WriteBatch* batch, RowChange* change,
                 std::vector<Fold>* folds = nullptr, size_t row_index = 0);
  // Adds the folds to `batch`; the rows' locks are held.
  Status ApplyFolds(const std::vector<RowPut>& rows, std::vector<Fold>* folds,
                    rocksdb::WriteBatch* batch);
  Status Commit(rocksdb::WriteBatch* batch);
  void Notify(const std::vector<RowChange>& changes);
  std::mutex& RowLock(std::string_view row);

  EmbeddedOptions options_;
  const Clock* clock_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::map<std::string, Table, std::less<>> tables_;
  std::array<std::mutex, 256> row_locks_;
  // Merges per chunk (by key hash) since its last fold or the last memtable
  // flush. Bounds the operands a read merges from the memtable, as RocksDB's
  // max_successive_merges did, without its memtable seek on every merge.
  // Sized well above the chunks a memtable holds, so collisions (which
  // only fold early) stay rare.
  static constexpr size_t kFoldSlots = 1 << 20;
  static constexpr uint8_t kFoldEvery = 16;
  std::unique_ptr<std::atomic<uint8_t>[]> chunk_merges_;

  metrics::Counter put_cells_;
  metrics::Counter get_rows_;
  metrics::Counter folds_;
  metrics::Histogram write_latency_;
};

}  // namespace seg::store::internal

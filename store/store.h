// seg::store — the wide-row store behind the pipeline: HBase's data model
// (table -> row -> family -> qualifier -> versions by timestamp) with two
// backends behind one interface:
//   - the embedded engine on RocksDB (a directory on this machine), and
//   - a Thrift2 client for any THBaseService server: HBase's own Thrift2
//     gateway, or `seg-store`, which serves the embedded engine.
// Start here: OpenStore(StoreOptions) gives a Store.
//
// Semantics follow HBase: a read returns the newest version of each column
// unless more versions are asked for; versions come newest first; qualifiers
// sort bytewise; a time range is [min, max); a cell older than its family's
// TTL is invisible. Writes to one row are atomic; a batch across rows is not.
//
// Errors are Status values; no exception leaves this interface:
//   InvalidArgument  empty/oversized row, unknown family, bad request
//   NotFound         unknown table
//   Unavailable      server unreachable after retries (Thrift backend)
//   DeadlineExceeded a call timed out (Thrift backend)
//   Internal         storage failure
// Thread-safety: a Store is thread-safe; a Scanner is not (one reader).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace seg {
class Clock;
}

namespace seg::store {

// HBase's LATEST_TIMESTAMP: "now, by the server's clock" on writes.
inline constexpr int64_t kLatestTimestamp = std::numeric_limits<int64_t>::max();
// HBase's limit on row key length (Short.MAX_VALUE).
inline constexpr size_t kMaxRowBytes = 32767;

// One cell to write.
struct Cell {
  std::string family;
  std::string qualifier;
  int64_t timestamp = kLatestTimestamp;  // ms since epoch; kLatestTimestamp = now
  std::string value;
};

// Cells for one row, written atomically.
struct RowPut {
  std::string row;
  std::vector<Cell> cells;
};

// One cell read back; views into the RowResult that returned it.
struct CellView {
  std::string_view family;
  std::string_view qualifier;
  int64_t timestamp = 0;
  std::string_view value;
};

// The cells of one row in HBase order: family, qualifier (bytewise), then
// timestamp newest first. Cells live in one buffer (two allocations per row,
// none per cell). Empty (no cells) when the row does not exist.
class RowResult {
 public:
  RowResult() = default;
  explicit RowResult(std::string row) : row_(std::move(row)) {}

  const std::string& row() const { return row_; }
  void set_row(std::string row) { row_ = std::move(row); }
  bool empty() const { return refs_.empty(); }
  size_t size() const { return refs_.size(); }
  CellView cell(size_t i) const;
  // Bytes of cell data held (families, qualifiers, values).
  size_t data_bytes() const { return data_.size(); }

  // Appends a cell; callers append in HBase order.
  void Add(std::string_view family, std::string_view qualifier, int64_t timestamp,
           std::string_view value);
  void Reserve(size_t cells, size_t bytes);
  void Clear();
  // Keeps the `n` cells with the newest timestamps (ties: later in order),
  // preserving order. No-op when size() <= n.
  void KeepNewest(size_t n);

  class Iterator {
   public:
    Iterator(const RowResult* r, size_t i) : r_(r), i_(i) {}
    CellView operator*() const { return r_->cell(i_); }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator!=(const Iterator& o) const { return i_ != o.i_; }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }

   private:
    const RowResult* r_;
    size_t i_;
  };
  Iterator begin() const { return Iterator(this, 0); }
  Iterator end() const { return Iterator(this, refs_.size()); }

 private:
  // Family, qualifier and value sit back to back in data_ from `offset`.
  struct Ref {
    int64_t timestamp;
    uint32_t offset;
    uint32_t qualifier_size;
    uint32_t value_size;
    uint16_t family_size;
  };
  std::string row_;
  std::string data_;
  std::vector<Ref> refs_;
};

// Time range [min, max) of cell timestamps.
struct TimeRange {
  int64_t min = 0;
  int64_t max = kLatestTimestamp;
};

// A read of one row. Defaults: every family, newest version only.
struct GetRequest {
  std::string row;
  // Families to read; empty = all families of the table.
  std::vector<std::string> families;
  // Exact qualifiers to read in every family listed (needs `families`);
  // empty = all.
  std::vector<std::string> qualifiers;
  // Qualifier range [qualifier_start, qualifier_stop); empty = unbounded.
  // Ignored when `qualifiers` is set.
  std::string qualifier_start;
  std::string qualifier_stop;
  TimeRange time_range;
  int32_t max_versions = 1;  // versions per column, newest first
  // Keep only the N cells with the newest timestamps (0 = all), e.g. the
  // latest N events of a user. Applied after the other limits.
  int32_t newest_cells = 0;
};

// One column (or family) to delete. Timestamps are ms since epoch.
struct DeleteColumn {
  std::string family;
  // Absent: the whole family (versions <= timestamp).
  std::optional<std::string> qualifier;
  int64_t timestamp = kLatestTimestamp;
  // true: every version <= timestamp (HBase DELETE_COLUMNS, the default);
  // false: one version, exactly `timestamp` or the newest if kLatestTimestamp.
  bool all_versions = true;
};

// Deletes in one row, applied atomically. No columns = the whole row.
struct RowDelete {
  std::string row;
  std::vector<DeleteColumn> columns;
  // With no columns: removes versions <= timestamp in every family.
  int64_t timestamp = kLatestTimestamp;
};

// checkAndMutate's comparison: "given value OP stored value", as HBase.
enum class CompareOp { kLess, kLessOrEqual, kEqual, kNotEqual, kGreaterOrEqual, kGreater };

struct Condition {
  std::string family;
  std::string qualifier;
  CompareOp op = CompareOp::kEqual;
  // Absent or empty: the condition holds when the column has no visible
  // cell (or an empty value), as in HBase; kNotEqual inverts it.
  std::optional<std::string> value;
};

// Mutations for one row applied as a unit: deletes first, then puts.
struct RowMutations {
  std::string row;
  std::vector<DeleteColumn> deletes;
  std::vector<Cell> puts;
};

// A range read over rows [start_row, stop_row).
struct ScanRequest {
  std::string start_row;  // empty = first row
  std::string stop_row;   // empty = past the last row
  std::vector<std::string> families;
  std::string qualifier_start;
  std::string qualifier_stop;
  TimeRange time_range;
  int32_t max_versions = 1;
  int32_t batch_rows = 100;  // rows per NextBatch (and per round trip)
};

// Iterates a scan. Not thread-safe. Sees a consistent snapshot (embedded)
// or HBase scanner semantics (Thrift). Close() or destroy to free the
// server-side scanner.
class Scanner {
 public:
  virtual ~Scanner() = default;
  // Replaces *rows with up to batch_rows rows; OK with empty *rows = done.
  virtual Status NextBatch(std::vector<RowResult>* rows) = 0;
  virtual Status Close() = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Writes the rows; each row atomically. OK = every row is committed (and
  // durable per the sync policy). On error some rows may be written.
  virtual Status Put(std::string_view table, const std::vector<RowPut>& rows) = 0;

  // One row; an absent row is an OK, empty RowResult.
  virtual StatusOr<RowResult> Get(std::string_view table, const GetRequest& get) = 0;

  // results->at(i) answers gets[i]; absent rows are empty results.
  virtual Status MultiGet(std::string_view table, const std::vector<GetRequest>& gets,
                          std::vector<RowResult>* results) = 0;

  // True when Get would return at least one cell.
  virtual StatusOr<bool> Exists(std::string_view table, const GetRequest& get) = 0;

  // Each row's deletes atomically.
  virtual Status Delete(std::string_view table, const std::vector<RowDelete>& rows) = 0;

  // Atomically: if `condition` holds on mutations.row, applies `mutations`.
  // Returns whether they were applied.
  virtual StatusOr<bool> CheckAndMutate(std::string_view table, const Condition& condition,
                                        const RowMutations& mutations) = 0;

  virtual StatusOr<std::unique_ptr<Scanner>> OpenScanner(std::string_view table,
                                                         const ScanRequest& scan) = 0;

  // The scan's first batch_rows rows and nothing more: one round trip on
  // Thrift2 (getScannerResults) instead of open, read and close.
  virtual Status ScanFirst(std::string_view table, const ScanRequest& scan,
                           std::vector<RowResult>* rows) {
    SEG_ASSIGN_OR_RETURN(std::unique_ptr<Scanner> scanner, OpenScanner(table, scan));
    Status s = scanner->NextBatch(rows);
    scanner->Close().IgnoreError();
    return s;
  }
};

// Per-family settings, as HBase's column family descriptor.
struct FamilyOptions {
  std::string name;
  int32_t max_versions = 3;  // versions kept per column (reads and compaction)
  int64_t ttl_ms = 0;        // cells older than now - ttl_ms vanish; 0 = forever
  // Embedded engine layout. 0: one RocksDB key per cell. K > 0: a row's
  // cells are packed into one RocksDB value per K-byte qualifier prefix
  // (store/README.md "On-disk format"): wide rows read ~10x faster; for
  // time-prefixed qualifiers K picks the time bucket (8-byte ms time,
  // K = 5: ~4.7 h). Fixed when the family is created.
  int32_t packed_prefix_bytes = 0;
};

struct TableOptions {
  std::string name;
  std::vector<FamilyOptions> families;
};

// The default schema (docs ARCHITECTURE.md "Store schema"): table `users`,
// family `e` (events, 60-day TTL, packed by 5-byte qualifier prefix) and `s`
// (segmentation state), 3 versions; table `due` (family `d`: the segmenters'
// due times) and `segmeta` (family `m`: script set, backfill cursor).
std::vector<TableOptions> DefaultTables();

// What a committed write changed in one row (see WriteObserver).
struct RowChange {
  std::string table;
  std::string row;
  int64_t newest_timestamp = 0;  // newest cell timestamp written, ms
  int64_t cell_count = 0;        // cells written to the row
  // Families the put wrote, in first-written order, so an observer can
  // ignore writes to families it does not watch (no notice loops).
  std::vector<std::string> families;
};

// Told about writes after they are committed and durable, like an HBase
// RegionObserver's postPut: puts (Put, CheckAndMutate puts), not deletes.
// Called on the writing thread, so it must be quick and thread-safe; it
// cannot fail the write that is already committed.
class WriteObserver {
 public:
  virtual ~WriteObserver() = default;
  virtual void OnCommitted(const std::vector<RowChange>& changes) = 0;
};

// When an acknowledged write reaches the disk.
enum class SyncPolicy {
  // Write the WAL to the OS on every commit, fsync in the background: an
  // acknowledged write survives kill -9 of the process, not a power cut.
  kProcessCrashSafe,
  // fsync the WAL before acknowledging: survives a power cut; costs one
  // fsync per write batch (~0.1-10 ms depending on the disk).
  kFsyncEveryWrite,
};

struct EmbeddedOptions {
  std::string data_dir;  // created if missing
  std::vector<TableOptions> tables = DefaultTables();
  SyncPolicy sync = SyncPolicy::kProcessCrashSafe;
  int64_t block_cache_bytes = 256ll << 20;  // shared by all families
  int64_t write_buffer_bytes = 64ll << 20;  // per family memtable
  int32_t background_jobs = 2;              // flush + compaction threads
  // Time source for TTL and kLatestTimestamp; nullptr = the real clock.
  // Must outlive the store.
  const Clock* clock = nullptr;
  // Told about every committed put; registered before the store opens.
  std::vector<std::shared_ptr<WriteObserver>> observers;
};

enum class ThriftTransport { kBuffered, kFramed };
enum class ThriftProtocol { kBinary, kCompact };

// Defaults match HBase's Thrift2 gateway defaults (hbase.regionserver.thrift
// .framed=false, .compact=false, port 9090).
struct ThriftClientOptions {
  std::string host = "127.0.0.1";
  int32_t port = 9090;
  ThriftTransport transport = ThriftTransport::kBuffered;
  ThriftProtocol protocol = ThriftProtocol::kBinary;
  int32_t max_connections = 8;  // pooled connections; callers wait beyond
  int32_t connect_timeout_ms = 2000;
  int32_t call_timeout_ms = 30000;  // send/receive timeout per call
  int32_t max_attempts = 3;         // tries on transport errors (not for CheckAndMutate)
  int64_t backoff_initial_ms = 50;
  int64_t backoff_max_ms = 2000;
  int64_t max_message_bytes = 512ll << 20;  // largest reply accepted
};

struct StoreOptions {
  enum class Backend { kEmbedded, kThrift };
  Backend backend = Backend::kEmbedded;
  EmbeddedOptions embedded;
  ThriftClientOptions thrift;

  // Every store key under <prefix> (store/store_options.h lists them): what
  // every binary reads. Absent keys keep the fields' values.
  Status LoadFrom(Config& config, std::string_view prefix = "store");
};

// Opens the configured backend. Embedded: opens/creates the RocksDB
// directory (InvalidArgument for a bad schema, Internal if it cannot be
// opened, e.g. locked by another process). Thrift: connects lazily, so it
// succeeds even when the server is not up yet.
StatusOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options);

}  // namespace seg::store

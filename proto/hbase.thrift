// The part of HBase's Thrift2 gateway protocol (THBaseService) that the
// segmentation engine speaks: row reads, writes, deletes, conditional
// mutations and scanners. Nothing about admin (tables, namespaces, regions).
//
// Wire compatibility: every struct, field id, field type, enum value and
// exception below matches hbase-thrift/src/main/resources/org/apache/hadoop/
// hbase/thrift2/hbase.thrift of Apache HBase 2.x (checked against the 2.5
// line; the ids used here have not changed since 2.0). Thrift puts only
// method names, field ids and types on the wire, so a client generated from
// this file talks to a real HBase Thrift2 gateway, and HBase clients talk to
// seg-store. Fields we never set are still declared when HBase declares them
// as "required" or when skipping them would change the meaning of a message.
// Fields HBase has and we leave out (for example TGet.filterBytes) are simply
// skipped by the reader, as Thrift does with any unknown field id.
//
// Identifiers keep HBase's spelling so that people who know HBase find their
// way; the comments are ours.

namespace cpp seg.store.hbase

// A half-open interval of cell timestamps: minStamp <= ts < maxStamp.
struct TTimeRange {
  1: required i64 minStamp,
  2: required i64 maxStamp
}

// Names a column family, optionally one qualifier in it and one version.
struct TColumn {
  1: required binary family,
  2: optional binary qualifier,
  3: optional i64 timestamp
}

// One cell. A missing timestamp on write means "server time now".
struct TColumnValue {
  1: required binary family,
  2: required binary qualifier,
  3: required binary value,
  4: optional i64 timestamp,
  5: optional binary tags,
  6: optional i8 type
}

// The cells of one row. An absent row has no `row` and an empty list.
struct TResult {
  1: optional binary row,
  2: required list<TColumnValue> columnValues,
  3: optional bool stale = false,
  4: optional bool partial = false
}

// What a TColumn in a TDelete removes: one version (COLUMN) or every
// version up to a timestamp (COLUMNS); the FAMILY kinds act on a family.
enum TDeleteType {
  DELETE_COLUMN = 0,
  DELETE_COLUMNS = 1,
  DELETE_FAMILY = 2,
  DELETE_FAMILY_VERSION = 3
}

// Per-mutation write-ahead-log policy; USE_DEFAULT defers to the family.
enum TDurability {
  USE_DEFAULT = 0,
  SKIP_WAL = 1,
  ASYNC_WAL = 2,
  SYNC_WAL = 3,
  FSYNC_WAL = 4
}

// Visibility labels; accepted and ignored by seg-store.
struct TAuthorization {
  1: optional list<string> labels
}

struct TCellVisibility {
  1: optional string expression
}

// Region replica read consistency; seg-store has one replica.
enum TConsistency {
  STRONG = 1,
  TIMELINE = 2
}

// A read of one row. `columns` narrows it to families or single columns;
// `timestamp` (one version) wins over `timeRange`; `maxVersions` defaults
// to 1. `filterString` holds an HBase filter-language expression; seg-store
// understands ColumnRangeFilter (the qualifier ranges of the event family).
struct TGet {
  1: required binary row,
  2: optional list<TColumn> columns,
  3: optional i64 timestamp,
  4: optional TTimeRange timeRange,
  5: optional i32 maxVersions,
  6: optional binary filterString,
  7: optional map<binary, binary> attributes,
  8: optional TAuthorization authorizations,
  9: optional TConsistency consistency,
  10: optional i32 targetReplicaId,
  11: optional bool cacheBlocks,
  12: optional i32 storeLimit,
  13: optional i32 storeOffset,
  14: optional bool existence_only
}

// A write of cells to one row, applied atomically. `timestamp` is the
// default for cells that carry none.
struct TPut {
  1: required binary row,
  2: required list<TColumnValue> columnValues,
  3: optional i64 timestamp,
  5: optional map<binary, binary> attributes,
  6: optional TDurability durability,
  7: optional TCellVisibility cellVisibility
}

// A delete in one row. No columns: the whole row. A family alone: that
// family. Family + qualifier: that column, one version or all of them
// according to deleteType (default DELETE_COLUMNS: all versions).
struct TDelete {
  1: required binary row,
  2: optional list<TColumn> columns,
  3: optional i64 timestamp,
  4: optional TDeleteType deleteType = 1,
  6: optional map<binary, binary> attributes,
  7: optional TDurability durability
}

enum TReadType {
  DEFAULT = 1,
  STREAM = 2,
  PREAD = 3
}

// A range read: rows in [startRow, stopRow); `caching` rows per round
// trip, `batchSize` cells per result, `limit` rows in total.
struct TScan {
  1: optional binary startRow,
  2: optional binary stopRow,
  3: optional list<TColumn> columns,
  4: optional i32 caching,
  5: optional i32 maxVersions = 1,
  6: optional TTimeRange timeRange,
  7: optional binary filterString,
  8: optional i32 batchSize,
  9: optional map<binary, binary> attributes,
  10: optional TAuthorization authorizations,
  11: optional bool reversed,
  12: optional bool cacheBlocks,
  13: optional map<binary, TTimeRange> colFamTimeRangeMap,
  14: optional TReadType readType,
  15: optional i32 limit,
  16: optional TConsistency consistency,
  17: optional i32 targetReplicaId
}

// Exactly one of a put or a delete.
union TMutation {
  1: TPut put,
  2: TDelete deleteSingle
}

// Mutations applied to one row as a unit.
struct TRowMutations {
  1: required binary row,
  2: required list<TMutation> mutations
}

// How checkAndMutate compares: "given value OP stored value".
enum TCompareOperator {
  LESS = 0,
  LESS_OR_EQUAL = 1,
  EQUAL = 2,
  NOT_EQUAL = 3,
  GREATER_OR_EQUAL = 4,
  GREATER = 5,
  NO_OP = 6
}

// The request could not be served: unknown table, storage failure, ...
exception TIOError {
  1: optional string message
}

// The request itself is wrong, e.g. an unknown scanner id.
exception TIllegalArgument {
  1: optional string message
}

service THBaseService {
  // True when the get would return at least one cell.
  bool exists(1: required binary table, 2: required TGet tget) throws (1: TIOError io)

  // One row; an absent row gives an empty TResult.
  TResult get(1: required binary table, 2: required TGet tget) throws (1: TIOError io)

  // Many rows, results in request order; an absent row is an empty TResult.
  list<TResult> getMultiple(1: required binary table, 2: required list<TGet> tgets)
      throws (1: TIOError io)

  void put(1: required binary table, 2: required TPut tput) throws (1: TIOError io)

  void putMultiple(1: required binary table, 2: required list<TPut> tputs)
      throws (1: TIOError io)

  void deleteSingle(1: required binary table, 2: required TDelete tdelete)
      throws (1: TIOError io)

  // Returns an empty list (HBase keeps the return type for old clients).
  list<TDelete> deleteMultiple(1: required binary table, 2: required list<TDelete> tdeletes)
      throws (1: TIOError io)

  // Returns a scanner id for getScannerRows / closeScanner.
  i32 openScanner(1: required binary table, 2: required TScan tscan) throws (1: TIOError io)

  // Up to numRows rows; an empty list once the scanner is exhausted.
  list<TResult> getScannerRows(1: required i32 scannerId, 2: i32 numRows = 1)
      throws (1: TIOError io, 2: TIllegalArgument ia)

  void closeScanner(1: required i32 scannerId) throws (1: TIOError io, 2: TIllegalArgument ia)

  void mutateRow(1: required binary table, 2: required TRowMutations trowMutations)
      throws (1: TIOError io)

  // Open, read up to numRows, close: one round trip for small scans.
  list<TResult> getScannerResults(1: required binary table, 2: required TScan tscan,
                                  3: i32 numRows = 1) throws (1: TIOError io)

  // Applies rowMutations when "value compareOperator stored" holds for the
  // newest cell of row/family/qualifier; with no value, when that cell does
  // not exist. Returns whether the mutations were applied.
  bool checkAndMutate(1: required binary table, 2: required binary row,
                      3: required binary family, 4: required binary qualifier,
                      5: required TCompareOperator compareOperator, 6: binary value,
                      7: required TRowMutations rowMutations) throws (1: TIOError io)
}

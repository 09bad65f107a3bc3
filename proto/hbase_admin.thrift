// The table-admin part of HBase's Thrift2 gateway (THBaseService) that
// seg-store-admin uses to create the product's tables on a real HBase.
// A separate service so that seg-store's handler (proto/hbase.thrift) does
// not have to implement admin calls; on the wire only method names, field
// ids and types count, so this client talks to HBase's THBaseService.
// Field ids and types match hbase-thrift's thrift2/hbase.thrift (HBase 2.x);
// optional fields we never set are left out (the server skips nothing it
// needs: every one of them is optional there).

namespace cpp seg.store.hbase_admin

struct TTableName {
  1: optional binary ns,
  2: required binary qualifier
}

struct TColumnFamilyDescriptor {
  1: required binary name,
  10: optional i32 maxVersions,
  13: optional i32 timeToLive   // seconds
}

struct TTableDescriptor {
  1: required TTableName tableName,
  2: optional list<TColumnFamilyDescriptor> columns
}

exception TIOError {
  1: optional string message,
  2: optional bool canRetry
}

service THBaseAdmin {
  bool tableExists(1: TTableName tableName) throws (1: TIOError io)
  TTableDescriptor getTableDescriptor(1: required TTableName table) throws (1: TIOError io)
  list<TTableName> getTableNamesByPattern(1: optional string regex,
                                          2: required bool includeSysTables)
      throws (1: TIOError io)
  void createTable(1: required TTableDescriptor desc, 2: optional list<binary> splitKeys)
      throws (1: TIOError io)
  void disableTable(1: required TTableName tableName) throws (1: TIOError io)
  void deleteTable(1: required TTableName tableName) throws (1: TIOError io)
}

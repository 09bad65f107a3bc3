// seg::store admin on a real HBase through its Thrift2 gateway: create the
// product's tables (store.h DefaultTables()) with the right families,
// versions and TTL. seg-store takes its tables from config instead and
// answers these calls with an unknown-method error (Unimplemented here).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "store/store.h"

namespace seg::store {

struct AdminOptions {
  std::string host = "127.0.0.1";
  int32_t port = 9090;
  int32_t timeout_ms = 60000;  // connect/send/receive, per call
};

// Table names on the server (user tables; `regex` as HBase's Java regex).
StatusOr<std::vector<std::string>> ListTables(const AdminOptions& options,
                                              const std::string& regex = ".*");

// Creates each table that does not exist yet: families with max_versions and
// ttl_ms (rounded up to whole seconds, HBase's unit; 0 = forever).
// Existing tables are left as they are. Returns the names created.
StatusOr<std::vector<std::string>> CreateTables(const AdminOptions& options,
                                                const std::vector<TableOptions>& tables);

// Disables and deletes the tables that exist (tests).
Status DropTables(const AdminOptions& options, const std::vector<std::string>& names);

}  // namespace seg::store

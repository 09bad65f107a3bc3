// LocalRedisCluster: N redis-server masters (default 3) in cluster mode on
// 127.0.0.1, each a LocalRedis with its own TempDir and free ports, with the
// 16384 slots split evenly (CLUSTER ADDSLOTSRANGE + CLUSTER MEET).
//
// Start() returns once every node reports cluster_state:ok and knows all the
// others, bounded by a deadline. The destructor kills every node. Slot
// migration helpers let tests provoke MOVED and ASK redirections. Not
// thread-safe: drive it from one thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "tests/harness/redis_server.h"

namespace seg::testing {

struct LocalRedisClusterOptions {
  int masters = 3;
  std::string password;  // requirepass on every node
  std::chrono::milliseconds start_timeout{30000};
};

class LocalRedisCluster {
 public:
  static StatusOr<std::unique_ptr<LocalRedisCluster>> Start(LocalRedisClusterOptions options = {});
  ~LocalRedisCluster();
  LocalRedisCluster(const LocalRedisCluster&) = delete;
  LocalRedisCluster& operator=(const LocalRedisCluster&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  LocalRedis& node(int i) { return *nodes_[i]; }
  const std::string& node_id(int i) const { return ids_[i]; }
  std::vector<int> ports() const;
  // "127.0.0.1:p1,127.0.0.1:p2,..." (seed list for clients).
  std::string SeedList() const;

  // Index of the node that currently owns `slot` (asks node 0), or an error.
  StatusOr<int> SlotOwner(int slot);

  // Moves `slot` and its keys to node `to`: IMPORTING/MIGRATING, MIGRATE of
  // every key, then SETSLOT NODE on all masters; waits until every node agrees.
  Status MigrateSlot(int slot, int to);
  // First half of a migration only (IMPORTING on `to`, MIGRATING on the
  // owner), leaving keys in place: the owner answers ASK for missing keys.
  Status BeginSlotMigration(int slot, int to);
  // SETSLOT NODE `to` on every master (ends a migration begun above; keys
  // still on the old owner are not moved).
  Status FinishSlotMigration(int slot, int to);

  // Polls every node until cluster_state:ok and all nodes known.
  Status WaitUntilOk(std::chrono::milliseconds timeout);

 private:
  LocalRedisCluster(LocalRedisClusterOptions options) : options_(std::move(options)) {}
  StatusOr<std::string> Call(int node, const std::vector<std::string>& argv);
  Status WaitSlotOwner(int slot, int owner, std::chrono::milliseconds timeout);

  LocalRedisClusterOptions options_;
  std::vector<std::unique_ptr<LocalRedis>> nodes_;
  std::vector<std::string> ids_;
};

}  // namespace seg::testing

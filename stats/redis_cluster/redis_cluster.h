// RedisRouter: sends commands to the Redis server that owns their key, on a
// single Redis or on a Redis Cluster, through common/redis.h connections.
//
//   RedisRouterOptions opts;               // or opts.LoadFrom(config, "stats.redis")
//   opts.cluster = true;  opts.seeds = {"10.0.0.1:7000"};
//   SEG_ASSIGN_OR_RETURN(auto router, NewRedisRouter(opts));
//   SEG_ASSIGN_OR_RETURN(auto replies, router->Pipeline({
//       {"hll:{7}:42:20240101", {"PFADD", "hll:{7}:42:20240101", "user-1"}},
//       {"hll:{9}:42:20240101", {"PFADD", "hll:{9}:42:20240101", "user-2"}}}));
//
// Cluster mode: the slot map comes from CLUSTER SLOTS (any reachable seed or
// known node). A key's slot is CRC16-XMODEM of its hash tag (the text between
// the first '{' and the next '}', when non-empty; else the whole key) mod
// 16384, so keys sharing a tag land on one node and multi-key commands and
// FCALL over them work. Pipeline() groups commands by node, sends one
// pipeline per node and returns replies in input order. MOVED refreshes the
// slot map and retries on the new owner; ASK retries once on the target with
// ASKING; TRYAGAIN (multi-key command during a migration) is retried after a
// short backoff; after `max_redirects` rounds the last error reply is
// returned in place. Server errors stay in-band (RedisReply of type kError);
// a non-OK Status means some node could not be reached (the whole batch
// should be retried; replays of PFADD/FCALL-of-idempotent-functions are
// harmless, see common/redis.h on resends).
//
// Thread-safety: a RedisRouter is not thread-safe (it owns one connection per
// node); use one per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/redis.h"
#include "common/status.h"

namespace seg::stats {

inline constexpr int kRedisClusterSlots = 16384;

// CRC16-CCITT (XMODEM: poly 0x1021, init 0), as Redis Cluster uses.
uint16_t RedisCrc16(std::string_view data);
// The slot of a key, honouring the {hash tag}.
int RedisKeySlot(std::string_view key);

// A command and the key that decides where it goes (for multi-key commands
// any of its keys; they must share a hash tag). An empty key means "any
// node" (e.g. PING, FUNCTION LIST): sent to the first master.
struct RoutedCommand {
  std::string key;
  RedisArgv argv;
};

struct RedisRouterOptions {
  bool cluster = false;            // Redis Cluster (slot routing) or one server
  std::vector<std::string> seeds;  // cluster: "host:port" of some nodes; empty = node.host:port
  RedisOptions node;               // the single server, or per-node settings in cluster mode
  int max_redirects = 5;           // MOVED/ASK/TRYAGAIN rounds per call

  // Reads <prefix>.cluster, <prefix>.seeds, <prefix>.max_redirects and the
  // RedisOptions keys directly under <prefix> (host, port, password, ...).
  Status LoadFrom(Config& config, std::string_view prefix);
};

class RedisRouter {
 public:
  virtual ~RedisRouter() = default;

  // One command on the node owning `key`.
  virtual StatusOr<RedisReply> Command(std::string_view key, const RedisArgv& argv) = 0;
  // Replies in input order; one pipeline (one round trip) per node involved.
  virtual StatusOr<std::vector<RedisReply>> Pipeline(
      const std::vector<RoutedCommand>& commands) = 0;
  // Calls `fn` with a connection to every master (e.g. FUNCTION LOAD REPLACE
  // on each); stops at the first error. On a single server: once.
  virtual Status ForEachMaster(const std::function<Status(RedisConnection&)>& fn) = 0;
  // Masters currently known ("host:port"); refreshes the slot map first in cluster mode.
  virtual StatusOr<std::vector<std::string>> Masters() = 0;
  virtual bool is_cluster() const = 0;
};

// Connects according to `options` (cluster or single). Fails if no server /
// no seed is reachable or (cluster) the slot map cannot be read.
StatusOr<std::unique_ptr<RedisRouter>> NewRedisRouter(const RedisRouterOptions& options);

// Wraps one existing connection (single server).
std::unique_ptr<RedisRouter> NewSingleNodeRouter(std::unique_ptr<RedisConnection> connection);

}  // namespace seg::stats

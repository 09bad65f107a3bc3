// seg-stats: the analysts' gRPC service (proto/stats.proto, SegmentStats)
// over the per-shard, per-segment, per-day HyperLogLogs that StatsWriter
// fills. Start here: StartStatsServer().
//
// How an answer is computed (docs/stats.md has the details and figures):
//   - Keys hll:{<shard>}:<segment>:<yyyymmdd>; users are disjoint across
//     shards, so a size or a union is the sum over shards of per-shard
//     estimates, and the per-shard errors add in quadrature.
//   - Within a shard the raw HLL strings are fetched (one MGET per shard,
//     pipelined per node) and merged on the client with stats/hll/hll.h
//     (register max, then PFCOUNT's estimator, bit-exact). Setting
//     `server_side_merge` asks Redis instead (PFCOUNT k1..kn per shard);
//     intersections always need the registers. Sketches of days before
//     yesterday are kept in memory for `past_day_cache_ms` (60 s) after
//     they were read: answers about those days may lag late events by that.
//   - Intersections: per shard, each segment's days are merged, then Ertl's
//     joint MLE (2 segments) or inclusion-exclusion over joint-MLE terms
//     (3..12 segments); intervals are combined across shards.
//   - Segments are known from the registry hash `segments:registry`
//     (segment -> "script@version"), kept by StatsWriter; a segment absent
//     from it is NOT_FOUND.
//
// Errors (gRPC codes): INVALID_ARGUMENT bad day, from after to, a limit
// exceeded (the message names its key: stats.max_days,
// stats.max_union_segments, stats.max_intersection_segments,
// stats.server.max_request_bytes); RESOURCE_EXHAUSTED (from gRPC) a message
// over stats.server.max_message_bytes; NOT_FOUND unknown segment or user;
// UNAVAILABLE Redis (or the store) unreachable; DEADLINE_EXCEEDED/CANCELLED
// when the caller's deadline passed or it went away; UNAUTHENTICATED
// missing/wrong bearer token.
//
// Thread-safety: the server handles calls concurrently; each call borrows one
// RedisRouter from a pool. A UserStateLookup must be thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"
#include "proto/segmentation.pb.h"
#include "stats/redis_cluster/redis_cluster.h"

namespace grpc {
class Service;
}

namespace seg::store {
class Store;
}

namespace seg::stats {

struct StatsQueryOptions {
  RedisRouterOptions redis;  // single Redis or Cluster; AUTH/ACL under redis.node
  uint32_t shards = 1;       // S; must equal the writers' S
  std::string key_prefix = "hll";
  std::string registry_key = "segments:registry";
  // false: any segment name is accepted (absent keys count as empty).
  bool require_registered = true;
  int max_days = 366;                  // longest day range accepted
  int max_union_segments = 100;        // segments per Union request
  int max_intersection_segments = 12;  // 2^(k-1) joint-MLE terms per shard
  // Ask Redis to merge (PFCOUNT k1..kn per shard) for sizes and unions
  // instead of GET + client-side merge (kept for comparison; see docs).
  bool server_side_merge = false;
  // "joint-mle" (default) or "inclusion-exclusion" (for comparison only:
  // its error is 1.3x-4.6x larger, see docs/stats.md).
  std::string intersection_estimator = "joint-mle";
  int max_idle_connections = 16;  // routers kept in the pool between calls
  // Keep sketches of days before yesterday (UTC) this long after fetching
  // them (0 = off, every query reads every key): a query over the last 30
  // days then reads 2 days' keys from Redis. Late events for an old day show
  // up at most this much later; a query over old days only may be answered
  // from memory while Redis is down. docs/stats.md.
  int past_day_cache_ms = 60000;
  int past_day_cache_max_keys = 8192;  // <= 12 KB each (dense): ~100 MB
  Clock* clock = nullptr;              // null = Clock::Real() (tests: FakeClock)

  // Reads <prefix>.shards, .key_prefix, .registry_key, .require_registered,
  // .max_days, .max_union_segments, .max_intersection_segments,
  // .server_side_merge, .intersection_estimator, .max_idle_connections,
  // .past_day_cache_ms, .past_day_cache_max_keys and <prefix>.redis.*.
  Status LoadFrom(Config& config, std::string_view prefix);
};

// A user's current membership, read from family `s` of the store.
// Implementations must be thread-safe.
class UserStateLookup {
 public:
  virtual ~UserStateLookup() = default;
  // NotFound when the user has no state; Unavailable when the store is down.
  virtual StatusOr<SegmentState> Lookup(std::string_view user_id) = 0;
};

// Reads the newest cell of `family`:`qualifier` of the user's row in `table`
// (the segmenter's layout: family `s`, qualifier `m`, a SegmentState proto).
// `store` must outlive the lookup.
std::unique_ptr<UserStateLookup> NewStoreUserStateLookup(store::Store* store,
                                                         std::string table = "users",
                                                         std::string family = "s",
                                                         std::string qualifier = "m");

struct StatsServerOptions {
  std::string host = "127.0.0.1";  // bind address
  int port = 7710;                 // 0 = a free port (see StatsServer::port())
  // TLS when both are set (PEM files).
  std::string tls_cert_file;
  std::string tls_key_file;
  // When non-empty every call must carry `authorization: Bearer <token>`.
  std::string bearer_token;
  // Binding a non-loopback address without TLS and a token is refused
  // unless this is set (loopback needs neither by default).
  bool allow_insecure_remote = false;
  // gRPC's own cap on a message either way: a larger request is refused
  // by gRPC (RESOURCE_EXHAUSTED) before it is decoded.
  int max_message_bytes = 16 << 20;
  // Requests up to max_message_bytes but over this are answered with
  // INVALID_ARGUMENT naming stats.server.max_request_bytes (requests are a
  // few segment names and a day range: hundreds of bytes).
  int max_request_bytes = 1 << 20;

  // Reads <prefix>.host, .port, .tls_cert_file, .tls_key_file,
  // .bearer_token, .allow_insecure_remote, .max_message_bytes,
  // .max_request_bytes.
  Status LoadFrom(Config& config, std::string_view prefix);
};

// The gRPC service object alone (to add to your own grpc::ServerBuilder).
// `users` may be null: UserSegments then answers UNIMPLEMENTED.
std::unique_ptr<grpc::Service> NewStatsGrpcService(const StatsQueryOptions& options,
                                                   std::shared_ptr<UserStateLookup> users);

// A running server: SegmentStats + gRPC health checking + server reflection.
class StatsServer {
 public:
  virtual ~StatsServer() = default;
  virtual int port() const = 0;  // the bound port (useful with port 0)
  // Stops accepting calls, lets running ones finish (bounded by `grace_ms`).
  virtual void Shutdown(int grace_ms = 2000) = 0;
  // Blocks until Shutdown() completes.
  virtual void Wait() = 0;
};

// Seconds that seg-stats queries in this process spent fetching sketches
// from Redis and decoding/merging/estimating them, summed since start (also
// exported as seg_stats_query_phase_seconds_total{phase}); stats_bench
// splits latency with it.
struct QueryPhaseSeconds {
  double fetch = 0, merge = 0;
};
QueryPhaseSeconds QueryPhaseTotals();

// Binds and starts serving. InvalidArgument for bad options (unreadable TLS
// files, insecure remote bind), Unavailable if the port cannot be bound.
// Redis need not be up: calls answer UNAVAILABLE until it is.
StatusOr<std::unique_ptr<StatsServer>> StartStatsServer(const StatsServerOptions& server,
                                                        const StatsQueryOptions& query,
                                                        std::shared_ptr<UserStateLookup> users);

}  // namespace seg::stats

// Redis connection helper over hiredis: one blocking connection to one
// server, with pipelining, timeouts, AUTH/SELECT on every (re)connect and
// automatic reconnect with backoff. hiredis stays behind this header.
//
//   RedisOptions opts;                      // or opts.LoadFrom(config, "redis")
//   SEG_ASSIGN_OR_RETURN(auto conn, RedisConnection::Connect(opts));
//   SEG_ASSIGN_OR_RETURN(RedisReply r, conn->Command({"PFADD", key, user}));
//   SEG_ASSIGN_OR_RETURN(auto replies, conn->Pipeline({{"GET", "a"}, {"GET", "b"}}));
//
// Status vs reply: a non-OK Status means the request did not get an answer
// (UNAVAILABLE: cannot connect / connection lost; DEADLINE_EXCEEDED: no
// answer within command_timeout_ms; UNAUTHENTICATED: AUTH refused). A server
// error such as WRONGTYPE, NOSCRIPT, MOVED is an OK result holding a reply of
// type kError, because in a pipeline each command fails on its own;
// RedisReply::ToStatus() turns one into a Status.
//
// Reconnect: when the connection breaks (server restarted, idle connection
// dropped) the failed request is sent again once on a fresh connection if no
// reply of it had arrived yet; if the server is still down the result is
// UNAVAILABLE. After a failed reconnect further reconnects wait out an
// exponential backoff (common/backoff.h): requests inside that window fail
// fast with UNAVAILABLE instead of blocking on connect. The resend makes
// delivery at-least-once: meant for idempotent writes (PFADD, SET, FCALL of
// idempotent functions); a timed-out request is never resent (the server may
// still run it), the connection is dropped instead.
//
// Thread-safety: a RedisConnection is not thread-safe; use one per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace seg {

// One command: the command name and its arguments, binary-safe.
using RedisArgv = std::vector<std::string>;

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string username;  // ACL user; empty = AUTH <password> only
  std::string password;  // empty = no AUTH
  int db = 0;            // SELECT on connect when non-zero (not allowed on Redis Cluster)
  int connect_timeout_ms = 1000;
  int command_timeout_ms = 2000;  // per socket read/write; a pipeline may take longer overall
  int reconnect_initial_ms = 50;  // backoff between failed reconnects ...
  int reconnect_max_ms = 5000;    // ... capped here

  // Reads <prefix>.host, .port, .username, .password, .db,
  // .connect_timeout_ms, .command_timeout_ms, .reconnect_initial_ms,
  // .reconnect_max_ms; missing keys keep their defaults.
  Status LoadFrom(Config& config, std::string_view prefix);
  std::string Address() const { return host + ":" + std::to_string(port); }
};

// An owned reply (copied out of hiredis).
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };

  Type type = Type::kNil;
  int64_t integer = 0;               // kInteger
  std::string str;                   // kString, kStatus ("OK"), kError ("ERR ...")
  std::vector<RedisReply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  bool is_integer() const { return type == Type::kInteger; }
  bool is_string() const { return type == Type::kString; }
  bool is_status() const { return type == Type::kStatus; }
  bool is_array() const { return type == Type::kArray; }

  // OK unless kError; an error maps to a code by its prefix: WRONGPASS/NOAUTH
  // -> UNAUTHENTICATED, NOPERM -> PERMISSION_DENIED, NOSCRIPT -> NOT_FOUND,
  // LOADING/BUSY/MASTERDOWN/TRYAGAIN/CLUSTERDOWN -> UNAVAILABLE,
  // MOVED/ASK -> ABORTED, anything else -> FAILED_PRECONDITION.
  Status ToStatus() const;
  // Debug rendering: "OK", "(nil)", "(integer) 3", "\"abc\"", "(error) ERR x", "[a, b]".
  std::string DebugString() const;

  static RedisReply Nil() { return {}; }
  static RedisReply Integer(int64_t v);
  static RedisReply String(std::string s);
  static RedisReply Error(std::string s);
};

// Status for a server error text ("WRONGPASS invalid ..."), as in ToStatus().
Status RedisErrorToStatus(std::string_view error);

class RedisConnection {
 public:
  // Connects, AUTHs and SELECTs. UNAVAILABLE if the server cannot be reached,
  // DEADLINE_EXCEEDED if it does not answer in time, UNAUTHENTICATED if AUTH
  // is refused.
  static StatusOr<std::unique_ptr<RedisConnection>> Connect(const RedisOptions& options);

  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // One command, one round trip.
  StatusOr<RedisReply> Command(const RedisArgv& argv);
  // All commands written, then all replies read: one round trip. Replies are
  // in command order. On a transport failure the whole call fails (no partial
  // results are returned).
  StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<RedisArgv>& commands);
  // The same for commands kept elsewhere, without copying them (routers
  // that pick a node's share of a larger batch).
  StatusOr<std::vector<RedisReply>> PipelineRefs(std::span<const RedisArgv* const> commands);

  // True while the last operation left a usable socket.
  bool connected() const;
  // Drops the socket; the next request reconnects.
  void Close();
  const RedisOptions& options() const;
  // Successful reconnects since Connect (tests, logging).
  int64_t reconnects() const;

 private:
  struct Impl;
  explicit RedisConnection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace seg

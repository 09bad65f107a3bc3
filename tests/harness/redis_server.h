// LocalRedis: a real redis-server child process on 127.0.0.1 for integration
// tests, in its own TempDir, on a free port.
//
//   SEG_ASSIGN_OR_RETURN(auto redis, LocalRedis::Start());
//   RedisOptions opts;  opts.port = redis->port();
//   ...
//   redis->Restart();   // same port, data gone unless persistence was asked for
//
// Start() returns only once the server answers PING (after AUTH when a
// password is set), bounded by a deadline. The destructor kills the server and
// removes its directory. Not thread-safe: drive one LocalRedis from one thread.
//
// RedisCommandForTest() is a tiny RESP client independent of common/redis.h,
// so the harness never tests the Redis helper with itself.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "tests/harness/process.h"

namespace seg::testing {

struct LocalRedisOptions {
  std::string password;      // requirepass when non-empty
  bool persistence = false;  // AOF + RDB on shutdown when true; nothing on disk otherwise
  bool cluster = false;      // cluster-enabled yes (slots are assigned by LocalRedisCluster)
  int cluster_node_timeout_ms = 5000;
  // Extra redis.conf lines ("maxmemory 10mb").
  std::vector<std::string> extra_config;
  std::chrono::milliseconds start_timeout{10000};  // until PING answers
};

class LocalRedis {
 public:
  // Starts redis-server (SEG_REDIS_SERVER, else "redis-server" from PATH) and
  // waits for PING. Retries on a fresh port if the picked one was taken.
  static StatusOr<std::unique_ptr<LocalRedis>> Start(LocalRedisOptions options = {});

  ~LocalRedis();
  LocalRedis(const LocalRedis&) = delete;
  LocalRedis& operator=(const LocalRedis&) = delete;

  const std::string& host() const { return host_; }  // always "127.0.0.1"
  int port() const { return port_; }
  int cluster_bus_port() const { return bus_port_; }  // 0 unless cluster mode
  const std::string& dir() const { return dir_.path(); }
  const std::string& log_path() const { return log_path_; }
  const LocalRedisOptions& options() const { return options_; }

  bool running();
  // SIGTERM and wait (graceful shutdown; an RDB is written if persistence is on).
  Status Stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  // SIGKILL and reap: an abrupt crash.
  void Kill();
  // Stops if running, then starts again on the same port and waits for PING.
  Status Restart();
  // SIGSTOP / SIGCONT: the server keeps its sockets but answers nothing, which
  // is how tests provoke client timeouts.
  void Pause();
  void Resume();

  // The last lines of the server log, for failure messages.
  std::string LogTail(size_t max_bytes = 2000) const;

 private:
  LocalRedis(LocalRedisOptions options);
  Status Launch();  // writes redis.conf, starts the child, waits for PING
  Status WaitReady();

  LocalRedisOptions options_;
  TempDir dir_;
  std::string host_ = "127.0.0.1";
  std::string log_path_;
  int port_ = 0;
  int bus_port_ = 0;
  bool paused_ = false;
  ChildProcess child_;
};

// Sends one command over a fresh connection to 127.0.0.1:port (AUTH first when
// `password` is set) and renders the reply as text: strings and status as-is,
// integers in decimal, nil as "(nil)", arrays as their elements joined by "\n".
// An error reply is FailedPrecondition carrying the server's message.
StatusOr<std::string> RedisCommandForTest(
    int port, const std::vector<std::string>& argv, const std::string& password = "",
    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

}  // namespace seg::testing

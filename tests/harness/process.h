// Test-harness building blocks: temp dirs, free loopback ports, child
// processes with deadlines. Every wait has a timeout; destructors clean up
// (kill children, remove dirs) so a failing test leaves nothing behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace seg::testing {

// A fresh directory under $TMPDIR (or /tmp), removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it
// back, close). Racy by nature; servers that can bind port 0 themselves and
// report it should be preferred.
int PickFreePort();

// OK once a TCP connect to 127.0.0.1:port succeeds; DeadlineExceeded after `timeout`.
Status WaitForTcpPort(int port, std::chrono::milliseconds timeout);

// The local addresses on which something on this host listens on TCP
// `port` (IPv4 and IPv6, from /proc/net/tcp and tcp6), e.g. {"127.0.0.1"}
// or {"0.0.0.0"}; "::" and "::1" for IPv6 (an IPv4-mapped IPv6 address
// as its IPv4 form). Empty when nothing listens.
std::vector<std::string> ListeningAddresses(int port);

// The value of metric `name` (a sample line "name value", no labels) served
// on http://127.0.0.1:port/metrics; -1 when unreachable or absent.
double MetricValue(int port, std::string_view name);

// A numeric field of /proc/<pid>/status ("VmRSS" and "VmHWM" in kB,
// "Threads" as a count); NotFound when the process or field is gone.
StatusOr<int64_t> ProcStatusField(pid_t pid, std::string_view field);

// The directory holding built binaries (SEG_BINARY_DIR env, set by ctest) and
// the source tree (SEG_SOURCE_DIR).
std::string BinaryDir();
std::string SourceDir();

// A child process. The destructor sends SIGKILL if it still runs and reaps it.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;

  // Starts argv[0] (searched in PATH) with stdout/stderr to `log_path`
  // (appended) or inherited when empty. Extra env entries are "K=V".
  static StatusOr<ChildProcess> Start(const std::vector<std::string>& argv,
                                      const std::string& log_path = "",
                                      const std::vector<std::string>& env = {});

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `signal` (e.g. SIGTERM, SIGKILL).
  void Signal(int signal);
  // Waits for exit; returns the exit code (128+signal when killed), or
  // DeadlineExceeded (the child is left running).
  StatusOr<int> Wait(std::chrono::milliseconds timeout);
  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit code.
  int Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

}  // namespace seg::testing

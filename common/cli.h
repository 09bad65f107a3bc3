// What every binary's main() shares: one exit-code convention, the error
// exit, HOST:PORT flags, the port file tests wait for, the stop-signal wait
// and --check-config.
//
//   seg::cli::StopSignals stop;            // first thing in main(): before any thread
//   auto config = seg::LoadBinaryConfig(path, overrides);
//   if (!config.ok()) return seg::cli::Fail("seg-x", config.status(), seg::cli::kExitConfig);
//   ... options.LoadFrom(*config, ...); seg::CheckConfigKeys(*config) ...
//   if (check_config) return seg::cli::ConfigChecked("seg-x", status);
//   ... start ...
//   int sig = stop.Wait();
#pragma once

#include <signal.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace seg::cli {

// Exit codes of every binary. A binary may define more above 2 (segtool:
// test failures; segctl load: too many rejects) and documents them.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // started, then failed (runtime error)
inline constexpr int kExitConfig = 2;   // bad flags or config: nothing started

// Prints "<binary>: <status>" to stderr (and the log) and returns `code`.
int Fail(std::string_view binary, const Status& status, int code = kExitFailure);

// --check-config: prints "<binary>: config OK" to stdout or the error to
// stderr; returns kExitOk or kExitConfig.
int ConfigChecked(std::string_view binary, const Status& status);

// "host:port" or "[v6]:port" with port 1..65535; InvalidArgument naming
// `flag` otherwise.
Status SplitHostPort(std::string_view text, std::string_view flag, std::string* host,
                     int32_t* port);

// Writes "<port>\n" via a rename, so a reader never sees a partial file.
Status WritePortFile(const std::string& path, int port);

// SIGINT and SIGTERM (and SIGHUP when asked) blocked in every thread from
// construction on; one thread takes them with Wait() or Poll(). Construct
// before any thread starts (threads inherit the mask).
class StopSignals {
 public:
  explicit StopSignals(bool with_sighup = false);
  // Blocks until a signal arrives; returns it.
  int Wait();
  // A pending signal, or 0 at once if none.
  int Poll();
  // Interrupts a Wait() from another thread (sends SIGTERM to the process).
  static void Raise();

 private:
  sigset_t set_;
};

}  // namespace seg::cli

// CLI11_PARSE with the exit codes above: --help exits 0, a bad flag 2.
// (Expands where <CLI/CLI.hpp> is included; common does not link CLI11.)
#define SEG_CLI_PARSE(app, argc, argv)                                           \
  do {                                                                           \
    try {                                                                        \
      (app).parse((argc), (argv));                                               \
    } catch (const CLI::ParseError& e) {                                         \
      return (app).exit(e) == 0 ? ::seg::cli::kExitOk : ::seg::cli::kExitConfig; \
    }                                                                            \
  } while (0)

// CPU budget for untrusted Lua on LuaJIT: a source transform plus a
// countdown check.
//
// The problem. LuaJIT's debug hooks run only in the interpreter: a count
// hook never fires inside a JIT-compiled loop, so `for i = 1, 1e10 do end`
// runs to the end however the hook is set (also from another thread). A
// check therefore has to be part of the compiled code itself.
//
// The idea. When the host loads a script it tokenizes the source (strings,
// long brackets and comments are skipped, so `"do"` or `--[[ repeat ]]` are
// left alone) and inserts a call `__segK();` at every place where control can
// loop or recurse:
//   - after `do` (the body of `while`, numeric and generic `for`, bare blocks),
//   - after `repeat`,
//   - after the parameter list of every `function` (recursion, tail calls),
//   - after every label `::name::` (loops built with goto).
// The text is inserted on the same line, so error line numbers do not move.
// The chunk gets `local __segK = ...;` prepended on line 1 and the host
// passes the check function as the chunk's argument; names starting with
// `__seg` are reserved (a script using one is rejected).
//
// The check. `__segK` is a Lua closure over a countdown:
//     c = c - 1; if c <= 0 then c = slow(B); if c < 0 then error(...) end end
// `slow` is a C function called through the FFI (so the JIT compiles the
// call; a lua_CFunction would abort the trace). It reads the wall clock and,
// once the wall time of the call exceeds the budget, the thread's CPU clock
// (CLOCK_THREAD_CPUTIME_ID: time spent descheduled on a busy machine is not
// charged); it returns the next countdown, or -1 when the budget is spent.
// Arming a call reads only the vDSO wall clock (~20 ns); the CPU clock (a
// system call) is anchored lazily at the first slow check of a call, so
// short calls never pay for it. The countdown adapts so that the clock is
// read about every 100 us of script time (64 .. 16384 iterations). A plain flag written by
// a watchdog thread does not work: the JIT hoists the load out of the loop even through a
// `volatile` FFI pointer (measured: the loop ran to the end 17 s later). Once a call is over budget
// the state stays "aborting" until the call returns, and the sandbox's
// pcall/xpcall re-raise, so a script cannot swallow the abort. The count hook
// (every 10000 VM instructions) covers interpreted code with the same test.
//
// Worked example:
//     while true do x = x + 1 end
// becomes
//     local __segK = ...; while true do __segK(); x = x + 1 end
// and
//     local function f(n) return f(n + 1) end
// becomes
//     local function f(n) __segK(); return f(n + 1) end
//
// Measured cost (LuaJIT 2.1.0-beta3, Release, bench/script_host_bench.cc,
// CPU time, 2 busy cores, same run): a loop calling a small Lua function (two
// checks per iteration) goes from 4.1 to 5.6 ns per iteration; 20
// shipped-style scripts over 200-event users run at 16.0k vs 17.0k
// segmentations/s without vs with the checks: no difference beyond noise,
// because their time is spent in the helpers (C++), which are not
// instrumented. (A first standalone test: an empty `for` loop went from 1.0
// to 1.4 ns.) Runaway
// recursion is stopped by LuaJIT's own "stack overflow" error, memory by the state's
// allocator (lua_state.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace seg::segmenter::internal {

// The reserved prefix of identifiers the transform introduces.
inline constexpr std::string_view kReservedPrefix = "__seg";

// Returns `source` with budget checks inserted (see above). Errors:
// InvalidArgument "<chunk_name>:<line>: ..." for an unfinished string, long
// string or comment, or a reserved identifier.
StatusOr<std::string> InstrumentLuaSource(std::string_view source, std::string_view chunk_name);

// The budget of the call currently running in one Lua state. Owned by the
// state; only touched by the thread running that state.
struct CallBudget {
  bool armed = false;
  bool exceeded = false;  // sticky until Disarm()
  int64_t budget_ns = 0;
  int64_t wall_start_ns = 0;  // MonotonicNs() at Arm()
  int64_t cpu_start_ns = -1;  // ThreadCpuNs() anchor, set at the first check
  int64_t last_check_ns = 0;  // MonotonicNs() of the last check
  int32_t period = 1024;      // current countdown length
  int64_t slow_checks = 0;    // for tests and benchmarks

  // now_ns: MonotonicNs() of the caller, or < 0 to read it.
  void Arm(int64_t budget_ns_in, int64_t now_ns = -1);
  void Disarm();
  // True when the budget is spent (sets `exceeded`). Reads the clock.
  bool Check();
};

// The slow path called (via the FFI) by the injected check: returns the next
// countdown, or -1 when the budget is exceeded.
extern "C" int32_t seg_budget_slow(CallBudget* budget);

// CPU time of the calling thread: the budget counts what the script used,
// not time the thread spent descheduled on a busy machine. A system call
// (~0.3 us), so it is read only when the cheap wall clock (vDSO, ~20 ns)
// says the budget may be spent: CPU time never exceeds wall time.
int64_t ThreadCpuNs();
int64_t MonotonicNs();

}  // namespace seg::segmenter::internal

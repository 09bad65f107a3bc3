// Helper-call tracing for `segtool explain`, built on the script host's
// public API only: the script's source gets a one-line prelude (so line
// numbers stay put) that wraps segment_script{}. The wrapped evaluate() hands
// the script a proxy user whose helpers record (call-site line, helper,
// result), and ends by raising the record as the error message, which is how
// it leaves the sandbox (scripts cannot print). The real result and the
// matched events come from a normal run with EvaluateOptions::explain.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace seg::segtool::internal {

struct HelperCall {
  int line = 0;        // call site in the script (0 = unknown, e.g. a tail call)
  std::string helper;  // "count", "any", ...
  std::string result;  // "2", "true", "nil", "event@1700000000000", ...
};

struct ScriptTrace {
  std::vector<HelperCall> calls;
  std::vector<std::string> result;  // what evaluate() returned
};

// The script source with the tracing prelude on its first line.
std::string InstrumentForTrace(std::string_view source);

// Parses the error message of a traced call. NotFound when the message is
// not a trace (the script failed for its own reasons).
StatusOr<ScriptTrace> ParseTrace(std::string_view error_message);

// The condition that decided `segment` for this trace, found in the script
// source: the `if` guarding the return that emitted the segment (in), or the
// one that could have emitted it (out), with the helper values feeding it,
// e.g. "line 10: `n >= 3` is false; n <- count(CAT_PAGES) = 2,
// count(CAT_SEARCHES) = 0". Falls back to the last helper call.
std::string DecidingCondition(std::string_view source, const ScriptTrace& trace,
                              std::string_view segment, bool in_segment);

// The helper call as written on its source line ("user:count(CAT_PAGES)").
std::string CallText(std::string_view source, const HelperCall& call);

}  // namespace seg::segtool::internal

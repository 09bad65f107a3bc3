#include "tools/segtool/internal/trace.h"

#include <algorithm>
#include <cctype>
#include <regex>

namespace seg::segtool::internal {
namespace {

constexpr std::string_view kTraceMark = "\x01SEGTOOL_TRACE\x01";
constexpr std::string_view kResultMark = "\x01RESULT\x01";

// One line of Lua (no comments) so the script's line numbers do not move.
// where() walks up the stack with error(msg, level) until it leaves the
// prelude's own frames (all on line 1): that frame is the helper's caller.
constexpr std::string_view kPrelude = R"LUA(
local segment_script = (function(ss, err, pc, ts, ty, ip, pa, concat, find, match, gsub)
  local function where()
    for level = 3, 16 do
      local _, msg = pc(err, "", level)
      local line = match(ts(msg), "^[^:]*:(%d+): $")
      if line and line ~= "1" then return line end
    end
    return "0"
  end
  local function clean(s) return (gsub(ts(s), "%c", " ")) end
  local function show(v)
    if ty(v) ~= "table" then return clean(v) end
    if v.time_ms ~= nil then return "event@" .. ts(v.time_ms) end
    if ty(v[1]) == "table" then return "list of " .. #v .. " events" end
    local parts, n = {}, 0
    for k, x in pa(v) do
      n = n + 1
      if n <= 8 then parts[#parts + 1] = clean(k) .. "=" .. (ty(x) == "table" and "{..}" or clean(x)) end
    end
    if n > 8 then parts[#parts + 1] = "..." end
    return "{" .. concat(parts, ", ") .. "}"
  end
  local TRACED = { "count", "any", "first", "last", "events", "distinct", "attr", "attr_values", "days_since" }
  local PLAIN = { "now_ms", "id", "size" }
  return function(d)
    if ty(d) == "table" and ty(d.evaluate) == "function" then
      local evaluate = d.evaluate
      d.evaluate = function(user)
        local log, proxy = {}, {}
        for _, m in ip(TRACED) do
          proxy[m] = function(_, ...)
            local r = user[m](user, ...)
            log[#log + 1] = where() .. "\t" .. m .. "\t" .. show(r)
            return r
          end
        end
        for _, m in ip(PLAIN) do proxy[m] = function(_, ...) return user[m](user, ...) end end
        local out = evaluate(proxy)
        local names = {}
        if ty(out) == "table" then
          for i = 1, #out do names[i] = clean(out[i]) end
        elseif out ~= nil then
          names[1] = clean(out)
        end
        err("\1SEGTOOL_TRACE\1" .. concat(log, "\n") .. "\n\1RESULT\1" .. concat(names, "\t"), 0)
      end
    end
    return ss(d)
  end
end)(segment_script, error, pcall, tostring, type, ipairs, pairs, table.concat, string.find, string.match, string.gsub);
)LUA";

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string_view::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// The code part of a line (drops a trailing `--` comment outside strings,
// roughly: good enough for finding conditions).
std::string Code(std::string_view line) {
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote) {
      if (c == '\\')
        ++i;
      else if (c == quote)
        quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '-' && i + 1 < line.size() && line[i + 1] == '-') {
      return Trim(line.substr(0, i));
    }
  }
  return Trim(line);
}

bool HasWord(const std::string& text, const std::string& word) {
  if (word.empty()) return false;
  std::regex re("(^|[^A-Za-z0-9_])" + word + "([^A-Za-z0-9_]|$)");
  return std::regex_search(text, re);
}

bool ReturnsSegment(const std::string& code, std::string_view segment) {
  std::string s(segment);
  return code.find("\"" + s + "\"") != std::string::npos ||
         code.find("'" + s + "'") != std::string::npos;
}

// The condition between `if`/`elseif` and `then` on a line, or "".
std::string IfCondition(const std::string& code) {
  static const std::regex re(R"((?:^|[^A-Za-z0-9_])(?:else)?if\s+(.*?)\s+then(?:[^A-Za-z0-9_]|$))");
  std::smatch m;
  if (std::regex_search(code, m, re)) return m[1].str();
  return "";
}

// The first variable assigned on a line: `local x = ...`, `if a then x = ...`.
std::string AssignedVariable(const std::string& code) {
  static const std::regex re(R"(([A-Za-z_][A-Za-z0-9_]*)\s*=[^=])");
  std::smatch m;
  if (std::regex_search(code, m, re)) return m[1].str();
  return "";
}

}  // namespace

std::string InstrumentForTrace(std::string_view source) {
  std::string prelude;
  for (char c : kPrelude) prelude += (c == '\n' ? ' ' : c);
  return prelude + std::string(source);
}

StatusOr<ScriptTrace> ParseTrace(std::string_view message) {
  size_t at = message.find(kTraceMark);
  size_t result_at = message.find(kResultMark);
  if (at == std::string_view::npos || result_at == std::string_view::npos || result_at < at) {
    return NotFoundError("not a trace: " + std::string(message));
  }
  ScriptTrace trace;
  std::string_view body =
      message.substr(at + kTraceMark.size(), result_at - at - kTraceMark.size());
  for (std::string_view line : Split(body, '\n')) {
    std::vector<std::string_view> f = Split(line, '\t');
    if (f.size() < 3) continue;
    HelperCall& call = trace.calls.emplace_back();
    call.line = std::atoi(std::string(f[0]).c_str());
    call.helper = std::string(f[1]);
    call.result = std::string(f[2]);
  }
  std::string_view result = message.substr(result_at + kResultMark.size());
  if (!result.empty()) {
    for (std::string_view name : Split(result, '\t')) trace.result.emplace_back(name);
  }
  return trace;
}

std::string CallText(std::string_view source, const HelperCall& call) {
  std::vector<std::string_view> lines = Split(source, '\n');
  if (call.line <= 0 || call.line > static_cast<int>(lines.size())) return call.helper + "(...)";
  std::string code = Code(lines[call.line - 1]);
  size_t at = code.find(":" + call.helper + "(");
  if (at == std::string::npos) return call.helper + "(...)";
  size_t start = at;
  while (start > 0 &&
         (std::isalnum(static_cast<unsigned char>(code[start - 1])) || code[start - 1] == '_')) {
    --start;
  }
  size_t end = at + call.helper.size() + 1;
  int depth = 0;
  for (; end < code.size(); ++end) {
    if (code[end] == '(') ++depth;
    if (code[end] == ')' && --depth == 0) break;
  }
  return code.substr(start, std::min(end + 1, code.size()) - start);
}

std::string DecidingCondition(std::string_view source, const ScriptTrace& trace,
                              std::string_view segment, bool in_segment) {
  std::vector<std::string_view> lines = Split(source, '\n');
  const int n = static_cast<int>(lines.size());
  int last_line = 0;
  for (const HelperCall& c : trace.calls) {
    if (c.line > 0) last_line = c.line;
  }
  if (last_line == 0) {
    return trace.calls.empty()
               ? "the script returned without calling a helper"
               : "decided after " + trace.calls.back().helper + " = " + trace.calls.back().result;
  }
  // The return that produced the outcome: the first one after the last helper call.
  int ret = 0;
  for (int i = last_line; i <= n && ret == 0; ++i) {
    std::string code = Code(lines[i - 1]);
    if (!HasWord(code, "return")) continue;
    if (ReturnsSegment(code, segment) == in_segment) ret = i;
  }
  // The `if` that let it through (in) or that would have emitted the segment (out).
  int cond_line = 0;
  std::string cond;
  if (ret > 0) {
    for (int i = ret; i >= std::max(1, last_line - 3) && cond.empty(); --i) {
      std::string code = Code(lines[i - 1]);
      std::string c = IfCondition(code);
      if (c.empty()) continue;
      if (!in_segment && i != ret && !ReturnsSegment(code, segment)) continue;
      cond = c;
      cond_line = i;
    }
  }
  // Segments added without a literal return (`out[#out + 1] = "cat_owner"`):
  // the `if` on the line naming the segment.
  if (cond.empty()) {
    int first_line = n;
    for (const HelperCall& c : trace.calls)
      if (c.line > 0) first_line = std::min(first_line, c.line);
    for (int i = first_line; i <= n && cond.empty(); ++i) {
      std::string code = Code(lines[i - 1]);
      if (!ReturnsSegment(code, segment)) continue;
      cond = IfCondition(code);
      cond_line = i;
    }
  }
  auto value_of = [&](const HelperCall& c) { return CallText(source, c) + " = " + c.result; };
  if (cond.empty()) {
    const HelperCall* last = nullptr;
    for (const HelperCall& c : trace.calls)
      if (c.line == last_line) last = &c;
    std::string out = "line " + std::to_string(last_line) + ": " + value_of(*last);
    if (ret > 0) out += ", then line " + std::to_string(ret) + ": `" + Code(lines[ret - 1]) + "`";
    return out;
  }
  // The helper values feeding a condition: calls on its line, and calls
  // assigned to a variable the condition names.
  auto describe = [&](int line, const std::string& condition) {
    std::vector<std::string> feeding;
    for (const HelperCall& c : trace.calls) {
      if (c.line <= 0 || c.line > n) continue;
      std::string code = Code(lines[c.line - 1]);
      std::string var = AssignedVariable(code);
      if (c.line != line && !HasWord(condition, var)) continue;
      std::string item = (var.empty() || c.line == line ? "" : var + " <- ") + value_of(c);
      if (std::find(feeding.begin(), feeding.end(), item) == feeding.end()) feeding.push_back(item);
    }
    std::string out = "line " + std::to_string(line) + ": `" + condition + "` is " +
                      (in_segment ? "true" : "false");
    for (size_t i = 0; i < feeding.size(); ++i) out += (i ? ", " : " with ") + feeding[i];
    return out;
  };
  if (in_segment) return describe(cond_line, cond);
  // Out: every guard that could have emitted the segment was false.
  int first_line = n;
  for (const HelperCall& c : trace.calls)
    if (c.line > 0) first_line = std::min(first_line, c.line);
  std::string out;
  for (int i = first_line; i <= (ret > 0 ? ret : n); ++i) {
    if (i == cond_line) {
      out += (out.empty() ? "" : "; ") + describe(i, cond);
      continue;
    }
    std::string code = Code(lines[i - 1]);
    std::string c = IfCondition(code);
    if (c.empty() || !ReturnsSegment(code, segment)) continue;
    out += (out.empty() ? "" : "; ") + describe(i, c);
  }
  return out;
}

}  // namespace seg::segtool::internal

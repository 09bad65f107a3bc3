// Source transform and countdown check; the essay is in lua_budget.h.
#include "segmenter/script_host/internal/lua_budget.h"

#include <time.h>

#include <cctype>
#include <string>

namespace seg::segmenter::internal {
namespace {

constexpr std::string_view kCheck = " __segK();";
constexpr std::string_view kPrologue = "local __segK = ...; ";

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// If s[i] starts a long bracket `[`, `[=`, ... `[`, returns its level (number
// of '='), else -1.
int LongBracketLevel(std::string_view s, size_t i) {
  if (i >= s.size() || s[i] != '[') return -1;
  size_t j = i + 1;
  int level = 0;
  while (j < s.size() && s[j] == '=') {
    ++level;
    ++j;
  }
  return (j < s.size() && s[j] == '[') ? level : -1;
}

class Instrumenter {
 public:
  Instrumenter(std::string_view src, std::string_view chunk) : s_(src), chunk_(chunk) {}

  StatusOr<std::string> Run() {
    out_.reserve(s_.size() + s_.size() / 8 + kPrologue.size());
    out_.append(kPrologue);
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '\n') {
        ++line_;
        Copy(1);
      } else if (c == '-' && Peek(1) == '-') {
        SEG_RETURN_IF_ERROR(Comment());
      } else if (c == '"' || c == '\'') {
        SEG_RETURN_IF_ERROR(QuotedString(c));
      } else if (c == '[' && LongBracketLevel(s_, i_) >= 0) {
        SEG_RETURN_IF_ERROR(LongBracket(LongBracketLevel(s_, i_), "long string"));
      } else if (IsNameStart(c)) {
        SEG_RETURN_IF_ERROR(Name());
      } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                 (c == '.' && std::isdigit(static_cast<unsigned char>(Peek(1))))) {
        Number();
      } else if (c == ':' && Peek(1) == ':') {
        Label();
      } else if (c == '(' && pending_function_) {
        pending_function_ = false;
        in_params_ = true;
        Copy(1);
      } else if (c == ')' && in_params_) {
        Copy(1);
        out_.append(kCheck);
        in_params_ = false;
      } else {
        Copy(1);
      }
    }
    return std::move(out_);
  }

 private:
  char Peek(size_t k) const { return i_ + k < s_.size() ? s_[i_ + k] : '\0'; }
  void Copy(size_t n) {
    out_.append(s_.substr(i_, n));
    i_ += n;
  }
  Status Error(int line, std::string_view what) const {
    return InvalidArgumentError(std::string(chunk_) + ":" + std::to_string(line) + ": " +
                                std::string(what));
  }
  void CountLines(size_t from, size_t to) {
    for (size_t k = from; k < to; ++k) line_ += s_[k] == '\n';
  }

  Status Comment() {
    int level = LongBracketLevel(s_, i_ + 2);
    if (level >= 0) {
      Copy(2);
      return LongBracket(level, "long comment");
    }
    size_t end = s_.find('\n', i_);
    Copy((end == std::string_view::npos ? s_.size() : end) - i_);
    return Status::OK();
  }

  Status LongBracket(int level, std::string_view what) {
    int start_line = line_;
    std::string close = "]" + std::string(level, '=') + "]";
    size_t end = s_.find(close, i_ + level + 2);
    if (end == std::string_view::npos) return Error(start_line, "unfinished " + std::string(what));
    size_t stop = end + close.size();
    CountLines(i_, stop);
    Copy(stop - i_);
    return Status::OK();
  }

  Status QuotedString(char quote) {
    size_t j = i_ + 1;
    while (j < s_.size()) {
      char c = s_[j];
      if (c == '\\') {
        j += 2;  // skips an escaped quote or an escaped newline
        continue;
      }
      if (c == quote) break;
      if (c == '\n') return Error(line_, "unfinished string");
      ++j;
    }
    if (j >= s_.size()) return Error(line_, "unfinished string");
    CountLines(i_, j + 1);
    Copy(j + 1 - i_);
    return Status::OK();
  }

  Status Name() {
    size_t j = i_;
    while (j < s_.size() && IsNameChar(s_[j])) ++j;
    std::string_view name = s_.substr(i_, j - i_);
    if (name.substr(0, kReservedPrefix.size()) == kReservedPrefix) {
      return Error(line_, "identifier '" + std::string(name) + "' uses the reserved prefix __seg");
    }
    Copy(j - i_);
    if (name == "do" || name == "repeat") {
      out_.append(kCheck);
    } else if (name == "function") {
      // The next '(' at depth 0 opens its parameter list; parameter lists
      // hold no parentheses, so the next ')' closes it.
      pending_function_ = true;
    }
    return Status::OK();
  }

  void Number() {
    size_t j = i_;
    while (j < s_.size()) {
      char c = s_[j];
      if ((c == '+' || c == '-') && j > i_ &&
          (s_[j - 1] == 'e' || s_[j - 1] == 'E' || s_[j - 1] == 'p' || s_[j - 1] == 'P')) {
        // Exponent sign (hex floats use p). "0xe+1" is 0xe plus 1 in Lua, a
        // difference that does not matter here: both are copied verbatim.
        ++j;
        continue;
      }
      if (IsNameChar(c) || c == '.') {
        ++j;
        continue;
      }
      break;
    }
    Copy(j - i_);
  }

  void Label() {
    // `::name::` (whitespace allowed); anything else (method call syntax
    // does not use "::") is copied as is.
    size_t j = i_ + 2;
    while (j < s_.size() && (s_[j] == ' ' || s_[j] == '\t')) ++j;
    size_t name_start = j;
    while (j < s_.size() && IsNameChar(s_[j])) ++j;
    bool has_name = j > name_start;
    while (j < s_.size() && (s_[j] == ' ' || s_[j] == '\t')) ++j;
    if (has_name && j + 1 < s_.size() && s_[j] == ':' && s_[j + 1] == ':') {
      Copy(j + 2 - i_);
      out_.append(kCheck);
    } else {
      Copy(2);
    }
  }

  std::string_view s_;
  std::string_view chunk_;
  std::string out_;
  size_t i_ = 0;
  int line_ = 1;
  bool pending_function_ = false;
  bool in_params_ = false;
};

}  // namespace

StatusOr<std::string> InstrumentLuaSource(std::string_view source, std::string_view chunk_name) {
  return Instrumenter(source, chunk_name).Run();
}

int64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void CallBudget::Arm(int64_t budget_ns_in, int64_t now_ns) {
  budget_ns = budget_ns_in;
  wall_start_ns = now_ns >= 0 ? now_ns : MonotonicNs();
  last_check_ns = wall_start_ns;
  cpu_start_ns = -1;
  exceeded = false;
  armed = true;
}

void CallBudget::Disarm() {
  armed = false;
  exceeded = false;
}

bool CallBudget::Check() {
  if (!armed) return false;
  if (exceeded) return true;
  ++slow_checks;
  const int64_t wall = MonotonicNs();
  if (cpu_start_ns < 0) {
    // First slow check of this call: anchor the CPU clock, charging the
    // whole wall time since Arm() (at most one countdown) as CPU.
    cpu_start_ns = ThreadCpuNs() - (wall - wall_start_ns);
  }
  if (wall - wall_start_ns > budget_ns && ThreadCpuNs() - cpu_start_ns > budget_ns) {
    exceeded = true;
    return true;
  }
  // Aim at one clock read per ~100 us of script time.
  int64_t since = wall - last_check_ns;
  last_check_ns = wall;
  if (since < 50'000 && period < 16384) {
    period *= 2;
  } else if (since > 200'000 && period > 64) {
    period /= 2;
  }
  return false;
}

extern "C" int32_t seg_budget_slow(CallBudget* budget) {
  if (budget->Check()) return -1;
  return budget->armed ? budget->period : 16384;
}

}  // namespace seg::segmenter::internal

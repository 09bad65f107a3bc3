#include "segmenter/script_host/internal/lua_budget.h"
#include "tests/harness/status_matchers.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace seg::segmenter::internal {
namespace {

std::string Instrument(std::string_view src) {
  StatusOr<std::string> out = InstrumentLuaSource(src, "t.lua");
  SEG_EXPECT_OK(out);
  return out.ok() ? *out : "";
}

size_t CountChecks(std::string_view s) {
  size_t n = 0;
  for (size_t p = s.find("__segK();"); p != std::string_view::npos;
       p = s.find("__segK();", p + 1)) {
    ++n;
  }
  return n;
}

TEST(LuaBudgetTransformTest, InsertsChecksIntoLoopsFunctionsAndLabels) {
  EXPECT_EQ(Instrument("while true do end"), "local __segK = ...; while true do __segK(); end");
  EXPECT_EQ(Instrument("for i=1,1e10 do x=i end"),
            "local __segK = ...; for i=1,1e10 do __segK(); x=i end");
  EXPECT_EQ(Instrument("repeat until false"), "local __segK = ...; repeat __segK(); until false");
  EXPECT_EQ(Instrument("local function f(a, b) return f(a) end"),
            "local __segK = ...; local function f(a, b) __segK(); return f(a) end");
  EXPECT_EQ(Instrument("t.m = function(...) end"),
            "local __segK = ...; t.m = function(...) __segK(); end");
  EXPECT_EQ(Instrument("function a.b:c() end"),
            "local __segK = ...; function a.b:c() __segK(); end");
  EXPECT_EQ(Instrument("::top:: goto top"), "local __segK = ...; ::top:: __segK(); goto top");
  EXPECT_EQ(Instrument(":: spaced :: goto spaced"),
            "local __segK = ...; :: spaced :: __segK(); goto spaced");
}

TEST(LuaBudgetTransformTest, CallsAsArgumentsAndNestedFunctions) {
  std::string out = Instrument("f(function(x) return g(function() end) end, (1))");
  EXPECT_EQ(out,
            "local __segK = ...; f(function(x) __segK(); return g(function() __segK(); end) end, "
            "(1))");
}

TEST(LuaBudgetTransformTest, LeavesStringsCommentsAndNamesAlone) {
  const char* src =
      "local s = \"do repeat function() \\\" do\"\n"
      "local t = 'while x do end'\n"
      "-- do repeat\n"
      "--[[ function() do\n end ]]\n"
      "local u = [==[ do ]] repeat ]==]\n"
      "local undo, redo, doit = 1, 2, 3\n"
      "local n = 1e10 + 0x1p4 + 3.5e-2\n";
  std::string out = Instrument(src);
  EXPECT_EQ(CountChecks(out), 0u) << out;
  EXPECT_EQ(out, std::string("local __segK = ...; ") + src);
}

TEST(LuaBudgetTransformTest, KeepsLineNumbers) {
  const char* src = "local a = [[\nx\n]]\nwhile a do\n  --[[\n ]] break\nend\nerror('x')\n";
  std::string out = Instrument(src);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), std::count(src, src + strlen(src), '\n'));
  EXPECT_EQ(CountChecks(out), 1u);
}

TEST(LuaBudgetTransformTest, RejectsReservedIdentifiers) {
  StatusOr<std::string> out = InstrumentLuaSource("local x = 1\nlocal __segK = nil", "evil.lua");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("evil.lua:2:"), std::string_view::npos) << out.status();
}

TEST(LuaBudgetTransformTest, ReportsUnfinishedStringsWithLine) {
  for (const char* src : {"x = 1\ny = [==[ abc ]=]", "x = 1\n--[[ never closed", "x = 'abc\n"}) {
    StatusOr<std::string> out = InstrumentLuaSource(src, "bad.lua");
    ASSERT_FALSE(out.ok()) << src;
    EXPECT_NE(out.status().message().find("bad.lua:"), std::string_view::npos);
  }
}

TEST(CallBudgetTest, SlowPathStopsAfterDeadline) {
  CallBudget b;
  EXPECT_EQ(seg_budget_slow(&b), 16384);  // not armed: never fails
  b.Arm(1'000'000'000);
  EXPECT_GT(seg_budget_slow(&b), 0);
  b.Arm(1);  // 1 ns: spent by the time the slow path looks
  volatile double x = 0;
  for (int i = 0; i < 100000; ++i) x = x + i;
  EXPECT_EQ(seg_budget_slow(&b), -1);
  EXPECT_TRUE(b.exceeded);
  EXPECT_EQ(seg_budget_slow(&b), -1);  // sticky
  b.Disarm();
  EXPECT_FALSE(b.exceeded);
}

}  // namespace
}  // namespace seg::segmenter::internal

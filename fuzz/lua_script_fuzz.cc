// Script loading in the LuaJIT host: hostile Lua source as a segment
// script file. The host must instrument it (CPU budget checks inserted by a
// tokenizer, lua_budget.h), load it in the sandbox and, when it loads, run
// it for a small user, and come back with a Status or a per-script error:
// never a crash, a hang past the budget, or a segment the script did not
// declare.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/event.h"
#include "fuzz/fuzz_support.h"
#include "segmenter/script_host/script_host.h"

namespace {

using seg::fuzz::Require;

namespace fs = std::filesystem;
using seg::StatusCode;

const fs::path& Dir() {
  static const fs::path* dir = [] {
    char tmpl[] = "/tmp/seg-lua-fuzz-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) abort();
    auto* d = new fs::path(tmpl);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(Dir(), ec);
    });
    return d;
  }();
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(Dir() / "fuzz.lua", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  seg::segmenter::ScriptHostOptions options;
  options.scripts_dir = Dir().string();
  options.cpu_budget_ms = 20;
  options.memory_limit_mb = 16;
  options.reload_check_interval_ms = 0;
  auto host = seg::segmenter::ScriptHost::Create(options);
  if (!host.ok()) {
    Require(host.status().code() == StatusCode::kInvalidArgument, "load failed oddly",
            host.status().ToString());
    return 0;
  }
  std::vector<seg::EventView> events(3);
  events[0].time_ms = 1'749'000'000'000;
  events[0].type = 1;
  events[0].url = "https://example.com/cats";
  events[1].time_ms = 1'749'500'000'000;
  events[1].type = 2;
  events[1].search_query = "kia rio 2012";
  events[2].time_ms = 1'749'900'000'000;
  events[2].type = 3;
  events[2].attributes = {{"car_year", "2010"}};
  seg::segmenter::EvaluateOptions eval;
  eval.now_ms = 1'750'000'000'000;
  eval.explain = size > 0 && (data[0] & 1);
  seg::segmenter::EvaluationResult result;
  for (int i = 0; i < 2; ++i) {
    seg::Status s = (*host)->EvaluateUser("fuzz-user", events, eval, &result);
    Require(s.ok(), "EvaluateUser failed", s.ToString());
  }
  auto infos = (*host)->scripts();
  for (const auto& r : result.scripts) {
    if (r.error_kind != seg::segmenter::ScriptErrorKind::kNone) continue;
    for (const auto& info : infos) {
      if (info.name != r.name) continue;
      for (const auto& segment : r.segments) {
        bool declared = false;
        for (const auto& d : info.segments) declared |= d == segment;
        Require(declared, "undeclared segment returned", segment);
      }
    }
  }
  return 0;
}

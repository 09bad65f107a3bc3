// `segtool test`: runs script fixtures through the script host and prints
// each failure with the events the script's helpers matched, the helper
// calls and the deciding condition.
#include <algorithm>
#include <filesystem>

#include "segmenter/script_host/internal/script_host_fixtures.h"
#include "tools/segtool/internal/hosts.h"
#include "tools/segtool/internal/trace.h"
#include "tools/segtool/internal/user_rows.h"
#include "tools/segtool/segtool.h"

namespace seg::segtool {
namespace {

namespace fs = std::filesystem;
using segmenter::internal::FixtureCase;
using segmenter::internal::ScriptFixture;

std::string Join(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s + "]";
}

// Fixture files of script `name` in `dir`: tests/<name>.json, <name>.test.json.
std::vector<std::string> FixtureFiles(const std::string& dir, const std::string& name) {
  std::vector<std::string> out;
  for (std::string p : {dir + "/tests/" + name + ".json", dir + "/" + name + ".test.json"}) {
    if (fs::exists(p)) out.push_back(p);
  }
  return out;
}

StatusOr<ScriptFixture> LoadFixture(const std::string& path, const std::string& script) {
  SEG_ASSIGN_OR_RETURN(std::string text, internal::ReadFile(path));
  // Parsed under "<script>.json" so the default script name is the script's.
  auto fixture = segmenter::internal::ParseScriptFixture(text, script + ".json");
  if (!fixture.ok())
    return InvalidArgumentError(path + ": " + std::string(fixture.status().message()));
  fixture->file = path;
  return fixture;
}

// Re-runs a failed case with explain on (and traced) and prints what the
// script looked at.
void PrintFailure(segmenter::ScriptHost& host, internal::ScratchHost* traced,
                  const ScriptFixture& fixture, const FixtureCase& c, const std::string& detail,
                  std::ostream& out) {
  out << "  FAIL " << fixture.script << " / " << c.name << "\n";
  std::vector<EventView> views;
  for (const auto& e : c.events) views.push_back(e.View());
  segmenter::EvaluateOptions opts;
  opts.explain = true;
  opts.only_script = fixture.script;
  opts.now_ms = fixture.now_ms;
  segmenter::EvaluationResult result;
  Status st = host.EvaluateUser(c.user_id, views, opts, &result);
  if (!c.expect_error.empty())
    out << "    expected error containing: " << c.expect_error << "\n";
  else
    out << "    expected: " << Join(c.expect) << "\n";
  if (!st.ok() || result.scripts.size() != 1) {
    out << "    " << detail << "\n";
    return;
  }
  const segmenter::ScriptResult& r = result.scripts[0];
  if (r.error_kind != segmenter::ScriptErrorKind::kNone) {
    out << "    got error (" << segmenter::ScriptErrorKindName(r.error_kind) << "): " << r.error
        << "\n";
  } else {
    out << "    got:      " << Join(r.segments) << "\n";
  }
  out << "    events the helpers matched (" << r.matched_events.size() << " of " << views.size()
      << "):\n";
  for (int32_t pos : r.matched_events) {
    if (pos >= 0 && pos < static_cast<int32_t>(views.size()))
      out << "      #" << pos << " " << internal::DescribeEvent(views[pos]) << "\n";
  }
  if (traced == nullptr) return;
  segmenter::EvaluationResult traced_result;
  if (!traced->host().EvaluateUser(c.user_id, views, opts, &traced_result).ok() ||
      traced_result.scripts.size() != 1)
    return;
  auto trace = internal::ParseTrace(traced_result.scripts[0].error);
  if (!trace.ok()) return;
  out << "    helper calls:\n";
  for (const internal::HelperCall& call : trace->calls) {
    out << "      line " << call.line << ": " << internal::CallText(traced->source(), call) << " = "
        << call.result << "\n";
  }
  // The deciding condition of each segment that differs.
  std::vector<std::string> differ;
  std::set_symmetric_difference(c.expect.begin(), c.expect.end(), r.segments.begin(),
                                r.segments.end(), std::back_inserter(differ));
  for (const std::string& segment : differ) {
    bool in = std::binary_search(r.segments.begin(), r.segments.end(), segment);
    out << "    " << segment << " " << (in ? "in" : "out") << " because "
        << internal::DecidingCondition(traced->source(), *trace, segment, in) << "\n";
  }
}

}  // namespace

StatusOr<TestSummary> RunTests(const TestOptions& options, std::ostream& out) {
  std::string dir = options.scripts_dir;
  std::vector<std::string> names;
  for (const std::string& s : options.scripts) {
    fs::path p(s);
    if (p.extension() == ".lua" || s.find('/') != std::string::npos) {
      dir = p.parent_path().empty() ? "." : p.parent_path().string();
      names.push_back(p.stem().string());
    } else {
      names.push_back(s);
    }
  }
  if (!fs::is_directory(dir)) return NotFoundError(MissingScriptsDir(dir));
  segmenter::ScriptHostOptions host_options;
  host_options.scripts_dir = dir;
  host_options.reload_check_interval_ms = 0;
  host_options.quarantine_after_failures = 0;
  auto host = segmenter::ScriptHost::Create(host_options);
  if (!host.ok()) return host.status();
  if (names.empty()) {
    for (const auto& info : (*host)->scripts())
      names.push_back(fs::path(info.file).stem().string());
  }
  TestSummary summary;
  for (const std::string& name : names) {
    ++summary.scripts;
    const std::string script_file = dir + "/" + name + ".lua";
    if (!fs::exists(script_file)) return NotFoundError("no script " + script_file);
    std::vector<std::string> files = FixtureFiles(dir, name);
    if (files.empty()) {
      ++summary.failed;
      out << "FAIL " << name << ": no fixture (add " << dir << "/tests/" << name << ".json)\n";
      continue;
    }
    std::unique_ptr<internal::ScratchHost> traced;  // built on the first failure
    for (const std::string& file : files) {
      SEG_ASSIGN_OR_RETURN(ScriptFixture fixture, LoadFixture(file, name));
      auto outcomes = segmenter::internal::RunScriptFixture(**host, fixture);
      if (!outcomes.ok()) return Status(outcomes.status()).WithContext(file);
      int failed = 0;
      for (size_t i = 0; i < outcomes->size(); ++i) {
        const auto& o = (*outcomes)[i];
        ++summary.cases;
        if (o.passed) {
          if (options.verbose) out << "  ok   " << fixture.script << " / " << o.name << "\n";
          continue;
        }
        ++failed;
        if (!traced) {
          auto t = internal::LoadScratchHost(script_file, host_options, /*traced=*/true);
          if (t.ok()) traced = std::move(*t);
        }
        PrintFailure(**host, traced.get(), fixture, fixture.cases[i], o.detail, out);
      }
      summary.failed += failed;
      out << (failed ? "FAIL " : "ok   ") << name << ": " << outcomes->size() - failed << "/"
          << outcomes->size() << " cases passed (" << file << ")\n";
    }
  }
  out << "segtool test: " << summary.scripts << " scripts, " << summary.cases << " cases, "
      << summary.failed << " failed\n";
  return summary;
}

}  // namespace seg::segtool

// segtool: the segment-script developer kit (docs/sdk/README.md).
//
//   segtool test [SCRIPT...|--all] [--scripts DIR] [-v]
//   segtool run --user ID            [--config F] [--set k=v] [--store HOST:PORT]
//   segtool explain --user ID --segment S
//   segtool users [--limit N] [--segment S]
//   segtool shadow SCRIPT [--count N] [--duration S] [--offset-reset latest|earliest]
//   segtool preview SCRIPT [--sample-rate R] [--max-rows N] [--no-count]
//
// Config keys are seg-segmenter's: store.thrift.host/port, scripts.dir,
// scripts.cpu_budget_ms, scripts.memory_limit_mb, segmenter.* (table,
// families, history_days, max_events_per_user, notices_topic, group_id),
// kafka.*. Exit status: 0 ok, 1 test failures, 2 usage or runtime error.
#include <glog/logging.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "common/config.h"
#include "common/logging.h"
#include "tools/segtool/segtool.h"

namespace {

int Fail(const seg::Status& s) {
  std::cerr << "segtool: " << s << "\n";
  return 2;
}

bool SplitHostPort(const std::string& text, std::string* host, int32_t* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  *host = text.substr(0, colon);
  *port = std::atoi(text.c_str() + colon + 1);
  return *port > 0;
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"segtool: test, run, explain and dry-run segment scripts"};
  app.require_subcommand(1);
  std::string config_file, store_addr, bootstrap, scripts_dir;
  std::vector<std::string> overrides;
  int64_t now_ms = -1;
  app.add_option("--config", config_file, "YAML config file (seg-segmenter's keys)");
  app.add_option("--set", overrides, "Override a config key: key.path=value");
  app.add_option("--store", store_addr, "Thrift2 store HOST:PORT (store.thrift.host/port)");
  app.add_option("--bootstrap", bootstrap, "Kafka bootstrap servers (kafka.bootstrap_servers)");
  app.add_option("--scripts", scripts_dir, "Segment scripts directory (scripts.dir)");
  app.add_option("--now-ms", now_ms, "Evaluate as of this epoch ms (default: now)");

  seg::segtool::TestOptions test;
  bool all = false;
  auto* test_cmd = app.add_subcommand("test", "Run script fixtures; non-zero exit on failure");
  test_cmd->add_option("script", test.scripts, "Script names or .lua paths (default: all)");
  test_cmd->add_flag("--all", all, "Every script of the directory");
  test_cmd->add_option("--scripts", scripts_dir,
                       "Scripts directory (default: scripts.dir, else ./scripts)");
  test_cmd->add_flag("-v,--verbose", test.verbose, "List passing cases too");

  std::string user, segment;
  auto* run_cmd = app.add_subcommand("run", "Segments of one stored user, per script, timed");
  run_cmd->add_option("--user", user, "User id (row key)")->required();
  auto* explain_cmd = app.add_subcommand("explain", "Why a stored user is in or out of a segment");
  explain_cmd->add_option("--user", user, "User id (row key)")->required();
  explain_cmd->add_option("--segment", segment, "Segment name")->required();

  seg::segtool::UsersOptions users;
  auto* users_cmd = app.add_subcommand("users", "Stored user ids with their segments");
  users_cmd->add_option("--limit", users.limit, "At most N users (default 10)");
  users_cmd->add_option("--segment", users.segment, "Only users stored in this segment");

  seg::segtool::ShadowOptions shadow;
  double duration_s = 0;
  auto* shadow_cmd =
      app.add_subcommand("shadow", "Dry run of a script on live user-changes (writes nothing)");
  shadow_cmd->add_option("script", shadow.script_file, "Candidate script (.lua)")->required();
  shadow_cmd->add_option("--count", shadow.max_notices, "Stop after N notices");
  shadow_cmd->add_option("--duration", duration_s, "Stop after S seconds");
  shadow_cmd->add_option("--offset-reset", shadow.offset_reset, "latest (default) or earliest");
  shadow_cmd->add_option("--group", shadow.group_id, "Consumer group (default: random)");
  shadow_cmd->add_option("--report-every-ms", shadow.report_every_ms, "Totals line interval");
  shadow_cmd->add_flag("--list-users", shadow.list_users, "Print each would-enter/exit user");

  seg::segtool::PreviewOptions preview;
  bool no_count = false;
  auto* preview_cmd =
      app.add_subcommand("preview", "Dry run of a script over stored history (a store scan)");
  preview_cmd->add_option("script", preview.script_file, "Candidate script (.lua)")->required();
  preview_cmd->add_option("--sample-rate", preview.sample_rate, "Fraction of users (0, 1]");
  preview_cmd->add_option("--max-rows", preview.max_rows, "Stop after N rows");
  preview_cmd->add_flag("--no-count", no_count, "Skip the counting pass (no bar end)");
  preview_cmd->add_flag("--list-users", preview.list_users, "Print each would-enter/exit user");
  bool log_warnings = false;
  app.add_flag("--log-warnings", log_warnings, "Show glog warnings (script failures) on stderr");
  CLI11_PARSE(app, argc, argv);
  // The traced runs of explain/test fail on purpose; their warnings are noise.
  if (!log_warnings) FLAGS_minloglevel = google::GLOG_ERROR;

  auto config = seg::Config::Load(config_file, overrides);
  if (!config.ok()) return Fail(config.status());
  if (test_cmd->parsed()) {
    // --scripts, else the config's scripts.dir, else ./scripts.
    if (!scripts_dir.empty())
      test.scripts_dir = scripts_dir;
    else if (auto s = config->Get("scripts.dir", &test.scripts_dir); !s.ok())
      return Fail(s);
    if (all) test.scripts.clear();
    auto summary = seg::segtool::RunTests(test, std::cout);
    if (!summary.ok()) return Fail(summary.status());
    return summary->failed > 0 ? 1 : 0;
  }
  if (!bootstrap.empty()) (void)config->ApplyOverride("kafka.bootstrap_servers=" + bootstrap).ok();
  if (!scripts_dir.empty()) (void)config->ApplyOverride("scripts.dir=" + scripts_dir).ok();
  if (!store_addr.empty()) {
    std::string host;
    int32_t port = 0;
    if (!SplitHostPort(store_addr, &host, &port)) {
      return Fail(seg::InvalidArgumentError("--store expects HOST:PORT, got " + store_addr));
    }
    (void)config->ApplyOverride("store.thrift.host=" + host).ok();
    (void)config->ApplyOverride("store.thrift.port=" + std::to_string(port)).ok();
  }
  seg::segtool::ToolOptions options;
  if (auto s = seg::segtool::LoadToolOptions(*config, &options); !s.ok()) return Fail(s);
  options.now_ms = now_ms;

  if (run_cmd->parsed()) {
    seg::Status s = seg::segtool::RunUser(options, user, std::cout);
    return s.ok() ? 0 : Fail(s);
  }
  if (explain_cmd->parsed()) {
    auto r = seg::segtool::ExplainUser(options, user, segment, std::cout);
    return r.ok() ? 0 : Fail(r.status());
  }
  if (users_cmd->parsed()) {
    seg::Status s = seg::segtool::ListUsers(options, users, std::cout);
    return s.ok() ? 0 : Fail(s);
  }
  if (shadow_cmd->parsed()) {
    shadow.duration_ms = static_cast<int64_t>(duration_s * 1000);
    auto r = seg::segtool::Shadow(options, shadow, std::cout, std::cout);
    return r.ok() ? 0 : Fail(r.status());
  }
  if (preview_cmd->parsed()) {
    preview.count_first = !no_count;
    auto r = seg::segtool::Preview(options, preview, std::cout, std::cerr);
    return r.ok() ? 0 : Fail(r.status());
  }
  return 2;
}

// segtool: the segment-script developer kit (docs/sdk/README.md).
//
//   segtool test [SCRIPT...|--all] [--scripts DIR] [-v]
//   segtool run --user ID            [--config F] [--set k=v] [--store HOST:PORT]
//   segtool explain --user ID --segment S
//   segtool users [--limit N] [--segment S]
//   segtool shadow SCRIPT [--count N] [--duration S] [--offset-reset latest|earliest]
//   segtool preview SCRIPT [--sample-rate R] [--max-rows N] [--no-count]
//
// Config keys are seg-segmenter's (config/seg.example.yaml): store.*,
// scripts.*, segmenter.*, kafka.*; other binaries' keys are ignored, a key no
// binary knows is an error. --check-config validates and exits.
// Exit status: 0 ok, 1 test failures, 2 usage or runtime error.
#include <glog/logging.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "common/cli.h"
#include "common/config.h"
#include "common/config_keys.h"
#include "common/logging.h"
#include "tools/segtool/segtool.h"

namespace {

// segtool's own convention (documented above): runtime errors are 2 too,
// since 1 means "tests failed".
int Fail(const seg::Status& s) { return seg::cli::Fail("segtool", s, seg::cli::kExitConfig); }

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"segtool: test, run, explain and dry-run segment scripts"};
  bool check_config = false;
  app.add_flag("--check-config", check_config, "Load and validate the config, then exit");
  app.require_subcommand(0, 1);  // none only with --check-config
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
  SEG_CLI_PARSE(app, argc, argv);
  // The traced runs of explain/test fail on purpose; their warnings are
  // noise. (Set after the config loads, so a renamed key's warning shows.)
  auto quiet = [&] {
    if (!log_warnings) FLAGS_minloglevel = google::GLOG_ERROR;
  };

  if (app.get_subcommands().empty() && !check_config) {
    std::cerr << app.help() << "segtool: a subcommand is required\n";
    return seg::cli::kExitConfig;
  }
  if (test_cmd->parsed() && !check_config) {
    quiet();
    // --scripts, else the config's scripts.dir, else ./scripts.
    if (!scripts_dir.empty()) {
      test.scripts_dir = scripts_dir;
    } else {
      auto config = seg::LoadBinaryConfig(config_file, overrides);
      if (!config.ok()) return Fail(config.status());
      if (auto s = config->Get("scripts.dir", &test.scripts_dir); !s.ok()) return Fail(s);
    }
    if (all) test.scripts.clear();
    auto summary = seg::segtool::RunTests(test, std::cout);
    if (!summary.ok()) return Fail(summary.status());
    return summary->failed > 0 ? 1 : 0;
  }

  // Flags are the last overrides: they win over the file and --set.
  if (!bootstrap.empty()) overrides.push_back("kafka.bootstrap_servers=" + bootstrap);
  if (!scripts_dir.empty()) overrides.push_back("scripts.dir=" + scripts_dir);
  if (!store_addr.empty()) {
    std::string host;
    int32_t port = 0;
    if (auto s = seg::cli::SplitHostPort(store_addr, "--store", &host, &port); !s.ok()) {
      return Fail(s);
    }
    overrides.push_back("store.thrift.host=" + host);
    overrides.push_back("store.thrift.port=" + std::to_string(port));
    overrides.push_back("store.backend=thrift");
  }
  auto config = seg::LoadBinaryConfig(config_file, overrides);
  if (!config.ok())
    return check_config ? seg::cli::ConfigChecked("segtool", config.status())
                        : Fail(config.status());
  seg::segtool::ToolOptions options;
  seg::Status loaded = seg::segtool::LoadToolOptions(*config, &options);
  if (check_config) return seg::cli::ConfigChecked("segtool", loaded);
  if (!loaded.ok()) return Fail(loaded);
  quiet();
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

// `segctl scripts`: the cluster-wide segment-script set in the store
// (segmenter/script_set/script_set.h).
//
//   segctl scripts [--store HOST:PORT | --store-dir DIR] [--json] push DIR
//   segctl scripts [--store HOST:PORT | --store-dir DIR] [--json] status
//
// push validates DIR (every script must load), stores it as the new set and
// starts its backfill; the segmenters pick it up within
// scripts.sync_interval_ms. status shows the stored version and the
// backfill's progress. Exit status: 0 success, 1 error, 2 bad command line.
#include "tools/segctl/scripts.h"

#include <glog/logging.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <sstream>

#include "common/logging.h"
#include "segmenter/script_set/internal/backfill.h"
#include "segmenter/script_set/script_set.h"
#include "store/store.h"

namespace seg::tools {
namespace {

std::string IsoTime(int64_t ms) {
  if (ms <= 0) return "-";
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Minimal JSON string escaping (row keys and owner ids are arbitrary bytes).
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

int Fail(const Status& s) {
  std::cerr << "segctl: " << s << "\n";
  return 1;
}

}  // namespace

int ScriptsMain(int argc, char** argv) {
  // The store's and the push's INFO lines are for servers; a CLI prints its
  // own results (GLOG_minloglevel=0 brings them back).
  InitLogging("segctl");
  if (std::getenv("GLOG_minloglevel") == nullptr) FLAGS_minloglevel = google::WARNING;
  CLI::App app{"segctl scripts: the cluster-wide segment-script set in the store"};
  app.require_subcommand(1);
  std::string store_addr, store_dir, push_dir;
  bool json = false;
  app.add_option("--store", store_addr, "Thrift2 store (seg-store or HBase) HOST:PORT")
      ->default_str("127.0.0.1:9090");
  app.add_option("--store-dir", store_dir, "an embedded store directory instead of --store");
  app.add_flag("--json", json, "print JSON");
  auto* push = app.add_subcommand("push", "validate DIR and make it the cluster's script set");
  push->add_option("dir", push_dir)->required();
  auto* status = app.add_subcommand("status", "stored version and backfill progress");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  store::StoreOptions options;
  if (!store_dir.empty()) {
    options.backend = store::StoreOptions::Backend::kEmbedded;
    options.embedded.data_dir = store_dir;
  } else {
    options.backend = store::StoreOptions::Backend::kThrift;
    if (store_addr.empty()) store_addr = "127.0.0.1:9090";
    size_t colon = store_addr.rfind(':');
    if (colon == std::string::npos) {
      std::cerr << "segctl: --store expects HOST:PORT, got " << store_addr << "\n";
      return 2;
    }
    options.thrift.host = store_addr.substr(0, colon);
    options.thrift.port = std::atoi(store_addr.c_str() + colon + 1);
  }
  auto store = store::OpenStore(options);
  if (!store.ok()) return Fail(store.status());
  segmenter::ScriptSet set(store->get());

  if (push->parsed()) {
    auto pushed = set.Push(push_dir);
    if (!pushed.ok()) return Fail(pushed.status());
    if (json) {
      std::cout << "{\"version\":" << Quote(pushed->version)
                << ",\"changed\":" << (pushed->changed ? "true" : "false") << "}\n";
    } else if (pushed->changed) {
      std::cout << "pushed version " << pushed->version << "; backfill started\n";
    } else {
      std::cout << "version " << pushed->version << " is already the stored set\n";
    }
    return 0;
  }
  if (status->parsed()) {
    auto files = set.Fetch();
    if (!files.ok()) return Fail(files.status());
    auto job = segmenter::internal::ReadBackfillStatus(store->get(), {});
    if (!job.ok()) return Fail(job.status());
    const int64_t now = std::time(nullptr) * 1000ll;
    const bool leased = !job->lease_owner.empty() && job->lease_expiry_ms > now;
    if (json) {
      std::ostringstream o;
      o << "{\"version\":" << Quote(files->version) << ",\"pushed_at_ms\":" << files->pushed_at_ms
        << ",\"files\":[";
      bool first = true;
      for (const auto& [name, source] : files->files) {
        o << (first ? "" : ",") << Quote(name);
        first = false;
      }
      o << "],\"backfill\":{\"target\":" << Quote(job->target)
        << ",\"done\":" << (job->done ? "true" : "false") << ",\"published\":" << job->published
        << ",\"cursor\":" << Quote(job->cursor) << ",\"started_at_ms\":" << job->started_at_ms
        << ",\"finished_at_ms\":" << job->finished_at_ms
        << ",\"lease_owner\":" << Quote(leased ? job->lease_owner : "")
        << ",\"lease_expiry_ms\":" << (leased ? job->lease_expiry_ms : 0) << "}}\n";
      std::cout << o.str();
      return 0;
    }
    if (files->version.empty()) {
      std::cout << "no script set stored (the first segmenter up pushes its scripts.dir)\n";
      return 0;
    }
    std::cout << "version    " << files->version << "\n"
              << "pushed at  " << IsoTime(files->pushed_at_ms) << "\n"
              << "files      ";
    for (const auto& [name, source] : files->files) std::cout << name << " ";
    std::cout << "\nbackfill   ";
    if (job->target != files->version) {
      std::cout << "none for this version\n";
    } else if (job->done) {
      std::cout << "done: " << job->published << " users, " << IsoTime(job->started_at_ms) << " .. "
                << IsoTime(job->finished_at_ms) << "\n";
    } else {
      std::cout << (leased ? "running on " + job->lease_owner : std::string("waiting for a runner"))
                << ": " << job->published << " users sent since " << IsoTime(job->started_at_ms)
                << ", cursor '" << job->cursor << "'\n";
    }
    return 0;
  }
  return 2;
}

}  // namespace seg::tools

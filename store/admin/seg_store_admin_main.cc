// seg-store-admin: table admin on a real HBase through its Thrift2 gateway.
//
//   seg-store-admin create-tables --thrift HOST:PORT [--wait-s 120]
//       creates users (e: 60 d TTL, 3 versions; s: 3 versions), due (d: 1
//       version) and segmeta (m: 1 version) where missing; --wait-s retries
//       while the gateway or the master is not up yet.
//   seg-store-admin list --thrift HOST:PORT
//
// Exit codes: 0 ok, 1 failed, 2 bad usage.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "store/admin/hbase_admin.h"

namespace {

bool ParseHostPort(const std::string& s, seg::store::AdminOptions* o) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  o->host = s.substr(0, colon);
  try {
    o->port = std::stoi(s.substr(colon + 1));
  } catch (...) {
    return false;
  }
  return o->port > 0 && o->port < 65536;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"seg-store-admin: tables on HBase's Thrift2 gateway"};
  app.require_subcommand(1);
  std::string thrift = "127.0.0.1:9090";
  int wait_s = 0;
  auto* create = app.add_subcommand("create-tables", "create users, due, segmeta where missing");
  auto* list = app.add_subcommand("list", "list user tables");
  for (auto* sub : {create, list}) {
    sub->add_option("--thrift", thrift, "HOST:PORT of the Thrift2 gateway");
    sub->add_option("--wait-s", wait_s, "retry for this long while HBase is not ready");
  }
  CLI11_PARSE(app, argc, argv);
  seg::store::AdminOptions options;
  if (!ParseHostPort(thrift, &options)) {
    std::fprintf(stderr, "seg-store-admin: --thrift wants HOST:PORT, got '%s'\n", thrift.c_str());
    return 2;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  seg::Status last;
  do {
    if (create->parsed()) {
      auto created = seg::store::CreateTables(options, seg::store::DefaultTables());
      if (created.ok()) {
        for (const auto& t : *created) std::printf("created %s\n", t.c_str());
        if (created->empty()) std::printf("all tables exist\n");
        return 0;
      }
      last = created.status();
    } else {
      auto names = seg::store::ListTables(options);
      if (names.ok()) {
        for (const auto& t : *names) std::printf("%s\n", t.c_str());
        return 0;
      }
      last = names.status();
    }
    // Unimplemented (seg-store) will not change by waiting.
    if (last.code() == seg::StatusCode::kUnimplemented) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // next try of a remote server
  } while (std::chrono::steady_clock::now() < deadline);
  std::fprintf(stderr, "seg-store-admin: %s\n", last.ToString().c_str());
  return 1;
}

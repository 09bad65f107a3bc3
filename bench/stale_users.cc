// stale_users: after a pipeline run has drained, is every user's final
// result current? Scans the users table and compares, per row, the newest
// event cell (family e; cell timestamp = event time) with the data
// watermark of the membership state the segmenter stored (family s, "m").
//
//   stale_users --store HOST:PORT [--table users]
//
// Prints one JSON line: users (rows with events), current, stale (state
// older than the newest event), no_state (never segmented), bots (state
// says exited as a bot: no results while blacklisted, by design), lost =
// stale + no_state. Exit status 0 when it could scan, whatever it found.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "proto/segmentation.pb.h"
#include "store/store.h"

int main(int argc, char** argv) {
  std::string address, table = "users";
  for (int a = 1; a + 1 < argc; a += 2) {
    if (std::strcmp(argv[a], "--store") == 0) address = argv[a + 1];
    if (std::strcmp(argv[a], "--table") == 0) table = argv[a + 1];
  }
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "usage: stale_users --store HOST:PORT [--table users]\n");
    return 2;
  }
  seg::store::StoreOptions options;
  options.backend = seg::store::StoreOptions::Backend::kThrift;
  options.thrift.host = address.substr(0, colon);
  options.thrift.port = std::stoi(address.substr(colon + 1));
  auto store = seg::store::OpenStore(options);
  if (!store.ok()) {
    std::fprintf(stderr, "stale_users: %s\n", store.status().ToString().c_str());
    return 1;
  }
  seg::store::ScanRequest scan;
  scan.families = {"e", "s"};
  scan.batch_rows = 500;
  auto scanner = (*store)->OpenScanner(table, scan);
  if (!scanner.ok()) {
    std::fprintf(stderr, "stale_users: %s\n", scanner.status().ToString().c_str());
    return 1;
  }
  long long users = 0, current = 0, stale = 0, no_state = 0, bots = 0;
  std::vector<seg::store::RowResult> rows;
  seg::SegmentState state;
  while (true) {
    seg::Status s = (*scanner)->NextBatch(&rows);
    if (!s.ok()) {
      std::fprintf(stderr, "stale_users: %s\n", s.ToString().c_str());
      return 1;
    }
    if (rows.empty()) break;
    for (const seg::store::RowResult& row : rows) {
      int64_t newest_event = -1;
      bool has_state = false;
      for (size_t i = 0; i < row.size(); ++i) {
        seg::store::CellView c = row.cell(i);
        if (c.family == "e") {
          newest_event = std::max(newest_event, c.timestamp);
        } else if (c.family == "s" && c.qualifier == "m") {
          has_state = state.ParseFromArray(c.value.data(), static_cast<int>(c.value.size()));
        }
      }
      if (newest_event < 0) continue;  // no events (e.g. forgotten)
      ++users;
      if (!has_state) {
        ++no_state;
      } else if (state.bot()) {
        ++bots;
      } else if (state.data_watermark_ms() >= newest_event) {
        ++current;
      } else {
        ++stale;
      }
    }
  }
  std::printf(
      "{\"users\":%lld,\"current\":%lld,\"stale\":%lld,\"no_state\":%lld,\"bots\":%lld,"
      "\"lost\":%lld}\n",
      users, current, stale, no_state, bots, stale + no_state);
  return 0;
}

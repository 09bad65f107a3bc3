// `segctl stats rebuild`: counts users again from the `counted` marks of
// their segmentation state (family `s`, qualifier `m`) after Redis lost its
// HyperLogLogs (issue #17 part 3; docs/stats.md "Lost Redis data").
//
// The segmenters notice the loss themselves (stats epochs, stats/writer/stats_writer.h)
// and count every user they segment afterwards again. A user not segmented
// since keeps marks of the old epoch and is in no sketch: the rebuild scans
// the whole table and, for every state whose `counted_epoch` is not its
// shard's epoch now, PFADDs the user into the (segment, day) of each mark,
// through the same writer (batched calls). Users already counted under the
// current epoch are skipped (`all` re-adds them too). The states are not
// written (a segmenter may be writing them): a rebuilt user is counted again
// at its next segmentation, which PFADD makes harmless, as it makes running
// the rebuild twice harmless. What it cannot restore: days older than the
// marks (a state keeps the day of its last segmentation and the day before),
// and sketches of users whose state is gone.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"

namespace seg::store {
class Store;
}
namespace seg::stats {
class StatsWriter;
}

namespace seg::tools {

struct RebuildOptions {
  std::string table = "users";  // tables.users.name
  std::string family = "s";     // tables.users.state_family
  std::string start_row;        // resume: the scan starts here ("" = first row)
  int32_t scan_rows = 500;      // rows per scan round trip
  int32_t batch_users = 2000;   // users per WriteBatch
  bool all = false;             // also re-add users whose marks carry the current epoch
};

struct RebuildReport {
  int64_t rows = 0;           // rows with a state cell
  int64_t current = 0;        // skipped: marks of the current epoch (counted since the loss)
  int64_t users = 0;          // users re-added
  int64_t adds = 0;           // (user, segment-day) adds acknowledged
  int64_t bad_marks = 0;      // marks not "segment:yyyymmdd", or unreadable states
  int64_t epoch_changes = 0;  // Redis lost data again during the rebuild
  std::string last_row;       // the last row whose adds were acknowledged
};

// Scans `options.table` from `options.start_row`, re-adds as above; OK when
// the scan finished. `progress` (optional) is called after every batch.
// ABORTED when Redis lost data again during the scan (users skipped before
// that are void again: run it once more).
Status RebuildFromCountedMarks(store::Store* store, stats::StatsWriter* writer,
                               const RebuildOptions& options, RebuildReport* report,
                               const std::function<void(const RebuildReport&)>& progress = {});

}  // namespace seg::tools

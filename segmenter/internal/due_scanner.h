// DueScanner: which rows of the due table (membership.h DueRowKey) a node
// reads in each schedule round, and where each owned partition's next scan
// starts. The node turns the rows into SCHEDULE re-segmentations.
//
// Fired rows are deleted, but a store walks their delete markers until a
// compaction, so a partition's scan starts at its low-water mark (every row
// due before it was fired) less a margin for another writer's clock, or
// just after the last row it processed when a backlog is left; every
// kFullScanEveryMs it starts from 0 again.
//
// With a backlog the next round is scanned while the node processes this
// one (Prefetch): the scan's round trips leave the critical path. A
// prefetched round is used only when the node owns the same partitions and
// this round's outcome was applied; else it is dropped and scanned anew.
#ifndef SEG_SEGMENTER_INTERNAL_DUE_SCANNER_H_
#define SEG_SEGMENTER_INTERNAL_DUE_SCANNER_H_

#include <cstdint>
#include <future>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/store.h"

namespace seg::segmenter {

struct DueScanOptions {
  std::string table;
  std::string family;
  int32_t batch_users = 1000;  // rows per partition scan
  int32_t group_max = 2000;    // rows per round, all partitions together
};

// One round: per scanned partition, its rows due by `now`, in key order.
struct DueRound {
  struct Partition {
    int32_t partition = 0;
    Status status;
    std::vector<store::RowResult> rows;
    bool more = false;  // rows due by `now` remain past these
  };
  int64_t now = 0;
  std::vector<Partition> partitions;
  bool partitions_left = false;  // the round was full before every partition was scanned
};

// What the node did with a round: the partitions whose every due row was
// processed, and the last row processed of the others.
struct DueOutcome {
  std::vector<int32_t> complete;
  std::map<int32_t, std::string> last_processed;
};

class DueScanner {
 public:
  static constexpr int64_t kMarginMs = 60'000;
  static constexpr int64_t kFullScanEveryMs = 300'000;

  DueScanner(store::Store* store, DueScanOptions options);
  ~DueScanner() { DropPrefetch(); }

  // This round's rows of the owned partitions: the prefetched round if it
  // still applies, else scanned now. Starts one partition further each
  // round, so a long backlog does not keep the other partitions waiting.
  DueRound Next(int64_t now, const std::set<int32_t>& owned);

  // Records a processed round: the next scans start past what it processed.
  void Apply(int64_t round_now, const DueOutcome& outcome);

  // Starts scanning, for rows due by `scan_now`, the round after
  // `round_now`'s, as if Apply(round_now, outcome) were done. Next() uses it
  // only if that Apply happens.
  void Prefetch(int64_t round_now, const DueOutcome& outcome, const std::set<int32_t>& owned,
                int64_t scan_now);
  void DropPrefetch();

  // The partition left this node: another owner may fire and write meanwhile.
  void Forget(int32_t partition);

 private:
  struct Cursor {
    std::map<int32_t, int64_t> scanned_to;          // low-water mark per partition
    std::map<int32_t, std::string> resume_after;    // past the processed rows
    size_t round = 0;                               // rotation
    int64_t last_full_scan_ms = -kFullScanEveryMs;  // the first round is a full one
  };
  static void ApplyTo(Cursor* cursor, int64_t round_now, const DueOutcome& outcome);
  // Scans the partitions in rotated order while the round has room.
  DueRound Scan(int64_t now, const std::set<int32_t>& owned, Cursor* cursor) const;

  store::Store* store_;
  DueScanOptions options_;
  Cursor cursor_;
  // The prefetched round, the cursor it assumes, and the partitions it covers.
  std::future<DueRound> prefetch_;
  Cursor prefetch_cursor_;
  std::set<int32_t> prefetch_owned_;
  int64_t prefetch_after_ = 0;  // the round_now whose Apply it assumes
  bool prefetch_applied_ = false;
};

}  // namespace seg::segmenter

#endif  // SEG_SEGMENTER_INTERNAL_DUE_SCANNER_H_

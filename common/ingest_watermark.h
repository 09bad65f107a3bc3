// The ingest watermark: a time W, by an ingester's clock, such that every
// event appended to an events partition before W is stored. Ingesters
// publish one per partition they own as cells of one row of the due table;
// segmenters fire a due user only once every partition's W has passed its
// due time. Without it, a pipeline running more than a window behind sends
// exits ("the window lapsed") that an event already waiting in Kafka takes
// back a moment later: a false exit and a re-entry for partners.
//
// Row kIngestWatermarkRow, family = the due family:
//   "w:<topic>:<partition>" = W in ms (decimal; the cell timestamp is W too,
//                             so a late put of an older W never wins)
//   "n:<topic>"             = the topic's partition count
// A topic's horizon is its partitions' smallest W, and only once every
// partition has one; the horizon is the smallest over topics.
#ifndef SEG_COMMON_INGEST_WATERMARK_H_
#define SEG_COMMON_INGEST_WATERMARK_H_

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace seg {

// Outside every due-table partition's key range (those start 0x00-0x7f).
inline constexpr std::string_view kIngestWatermarkRow =
    "\xff"
    "ingest-watermark";

std::string IngestWatermarkQualifier(std::string_view topic, int32_t partition);
std::string IngestPartitionCountQualifier(std::string_view topic);

struct IngestHorizon {
  bool published = false;  // some ingester publishes watermarks
  // Every event appended before this is stored; the lowest int64 while a
  // partition has none yet.
  int64_t ms = std::numeric_limits<int64_t>::min();
  std::string missing;  // e.g. "events/3": why the horizon is not known
};

// From the row's (qualifier, value) cells; cells it does not know are ignored.
IngestHorizon ComputeIngestHorizon(
    const std::vector<std::pair<std::string_view, std::string_view>>& cells);

}  // namespace seg

#endif  // SEG_COMMON_INGEST_WATERMARK_H_

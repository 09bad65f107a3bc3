#include "common/ingest_watermark.h"

#include <charconv>
#include <map>

namespace seg {
namespace {

bool ParseInt(std::string_view s, int64_t* out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::string IngestWatermarkQualifier(std::string_view topic, int32_t partition) {
  std::string q = "w:";
  q.append(topic).append(":").append(std::to_string(partition));
  return q;
}

std::string IngestPartitionCountQualifier(std::string_view topic) {
  return "n:" + std::string(topic);
}

IngestHorizon ComputeIngestHorizon(
    const std::vector<std::pair<std::string_view, std::string_view>>& cells) {
  struct Topic {
    int64_t count = -1;
    std::map<int64_t, int64_t> watermarks;  // partition -> W
  };
  std::map<std::string_view, Topic> topics;
  for (const auto& [qualifier, value] : cells) {
    int64_t v = 0;
    if (!ParseInt(value, &v)) continue;
    if (qualifier.starts_with("n:")) {
      topics[qualifier.substr(2)].count = v;
    } else if (qualifier.starts_with("w:")) {
      std::string_view rest = qualifier.substr(2);
      size_t colon = rest.rfind(':');
      int64_t partition = 0;
      if (colon == std::string_view::npos || !ParseInt(rest.substr(colon + 1), &partition)) {
        continue;
      }
      topics[rest.substr(0, colon)].watermarks[partition] = v;
    }
  }
  IngestHorizon horizon;
  if (topics.empty()) return horizon;
  horizon.published = true;
  int64_t lowest = std::numeric_limits<int64_t>::max();
  for (const auto& [name, topic] : topics) {
    if (topic.count <= 0) {
      horizon.missing = std::string(name) + " (no partition count)";
      return horizon;
    }
    for (int64_t p = 0; p < topic.count; ++p) {
      auto it = topic.watermarks.find(p);
      if (it == topic.watermarks.end()) {
        horizon.missing = std::string(name) + "/" + std::to_string(p);
        return horizon;
      }
      lowest = std::min(lowest, it->second);
    }
  }
  horizon.ms = lowest;
  return horizon;
}

}  // namespace seg

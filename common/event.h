// EventView: one decoded event of a user's history, as the segmenter and the
// script host see it. Views point into the row buffer they were decoded
// from (no per-event allocation); they are valid while that buffer lives.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace seg {

struct EventView {
  int64_t time_ms = 0;  // event time, Unix epoch ms
  int32_t type = 0;     // seg::EventType code
  std::string_view url;
  std::string_view referrer;
  uint32_t ipv4 = 0;  // 0 when absent or IPv6
  std::string_view user_agent;
  std::string_view search_query;
  std::string_view event_id;
  std::string_view source;
  // Free attributes, in stored order.
  std::vector<std::pair<std::string_view, std::string_view>> attributes;
};

}  // namespace seg

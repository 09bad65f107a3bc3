#include "tools/chaos/direct_evaluation.h"

#include <vector>

#include "common/event_codec.h"
#include "proto/events.pb.h"

namespace seg::chaos {

Status ExpectedCell(std::string_view event_bytes, std::string* qualifier, std::string* value,
                    int64_t* time_ms) {
  Event event;
  if (!event.ParseFromArray(event_bytes.data(), static_cast<int>(event_bytes.size()))) {
    return InvalidArgumentError("not a serialized seg.Event");
  }
  EncodeEventQualifier(event.event_time_ms(), EventDigest(event), event.type(), qualifier);
  SEG_RETURN_IF_ERROR(EncodeEventValue(event, value));
  *time_ms = event.event_time_ms();
  return Status::OK();
}

Status DirectEvaluate(segmenter::ScriptHost* host, const std::string& user, const Cells& cells,
                      int64_t now_ms, const ReadWindow& window, segmenter::EvaluationResult* out,
                      int64_t* watermark) {
  constexpr int64_t kDayMs = 24 * 3600 * 1000LL;
  std::vector<EventView> views;
  for (const auto& [qualifier, value] : cells) {
    EventView view;
    SEG_RETURN_IF_ERROR(DecodeEventCell(qualifier, value, &view));
    if (view.time_ms >= now_ms - window.history_days * kDayMs) views.push_back(std::move(view));
  }
  if (views.size() > window.max_events_per_user) {
    views.erase(views.begin(), views.end() - static_cast<ptrdiff_t>(window.max_events_per_user));
  }
  *watermark = views.empty() ? 0 : views.back().time_ms;
  segmenter::EvaluateOptions options;
  options.now_ms = now_ms;
  return host->EvaluateUser(user, views, options, out);
}

}  // namespace seg::chaos

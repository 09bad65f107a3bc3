// The ground-truth side of the end-to-end checks (tests/e2e_test.cc and
// seg-chaos-check): what the store should hold for a message, and a direct
// evaluation of the scripts over a user's cells as a segmenter node reads
// them, to compare a published result with.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/status.h"
#include "segmenter/script_host/script_host.h"

namespace seg::chaos {

// One user's distinct valid events as the store keeps them: qualifier ->
// StoredEvent bytes (a duplicate lands on the same qualifier).
using Cells = std::map<std::string, std::string>;

// The cell a valid serialized seg.Event becomes in family `e`, and its time.
Status ExpectedCell(std::string_view event_bytes, std::string* qualifier, std::string* value,
                    int64_t* time_ms);

// How a node reads a user (segmenter.history_days, max_events_per_user).
struct ReadWindow {
  int32_t history_days = 60;
  size_t max_events_per_user = 2000;
};

// Evaluates `host`'s scripts over `cells` as a node would read them at
// `now_ms`: events older than the history window dropped, the newest
// max_events_per_user kept. *watermark: the newest event's time (0: none),
// what the result's data_watermark_ms must be.
Status DirectEvaluate(segmenter::ScriptHost* host, const std::string& user, const Cells& cells,
                      int64_t now_ms, const ReadWindow& window, segmenter::EvaluationResult* out,
                      int64_t* watermark);

}  // namespace seg::chaos

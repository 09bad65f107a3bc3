// Script fixtures: JSON files (scripts/tests/<script>.json) with a fixed
// "now", users' events and the segments one script must emit for each. Read
// by script_host_test (every shipped script runs in ctest) and meant for the
// `segtool test` runner.
//
// Format:
//   {
//     "script": "loves_cats",             // script name; default: file stem
//     "now_ms": 1700000000000,            // the clock for every case
//     "cases": [{
//       "name": "three cat pages this month",
//       "user_id": "u1",                  // optional
//       "events": [{
//         "type": "page_view",            // name (or numeric code)
//         "time_ms": 1699990000000,       // absolute, or relative to now_ms:
//         "ago_days": 3,                  //   ago_ms / ago_minutes / ago_hours / ago_days
//         "url": "...", "referrer": "...", "query": "...", "ip": "1.2.3.4",
//         "user_agent": "...", "source": "...", "event_id": "...",
//         "attributes": {"gender": "f"}
//       }],
//       "expect": ["loves_cats"],         // exactly these segments (any order)
//       "expect_error": "cpu budget"      // optional: the call must fail with
//                                         // an error containing this text
//     }]
//   }
// Unknown keys are errors, so a typo cannot silently weaken a test.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/event.h"
#include "common/status.h"
#include "segmenter/script_host/script_host.h"

namespace seg::segmenter::internal {

// An event that owns its strings (EventView points into it).
struct OwnedEvent {
  int64_t time_ms = 0;
  int32_t type = 0;
  std::string url, referrer, user_agent, query, event_id, source;
  uint32_t ipv4 = 0;
  std::vector<std::pair<std::string, std::string>> attributes;

  EventView View() const;
};

struct FixtureCase {
  std::string name;
  std::string user_id = "fixture-user";
  std::vector<OwnedEvent> events;
  std::vector<std::string> expect;  // sorted
  std::string expect_error;
};

struct ScriptFixture {
  std::string file;
  std::string script;
  int64_t now_ms = 0;
  std::vector<FixtureCase> cases;
};

// Errors: InvalidArgument "<name>: <json path>: ..." for malformed input.
StatusOr<ScriptFixture> ParseScriptFixture(std::string_view json, std::string_view name);
// Reads and parses a file; NotFound when it cannot be read.
StatusOr<ScriptFixture> LoadScriptFixture(const std::string& path);

// Event type code by name ("page_view" -> 1); -1 when unknown
// (common/event_codec.h: the names of proto/events.proto).
int32_t EventTypeFromName(std::string_view name);

struct CaseOutcome {
  std::string name;
  bool passed = false;
  std::string detail;  // what differed, when failed
};

// Runs every case of `fixture` on its script only, with "now" = now_ms.
// Returns NotFound when the host has no such script.
StatusOr<std::vector<CaseOutcome>> RunScriptFixture(ScriptHost& host, const ScriptFixture& fixture);

}  // namespace seg::segmenter::internal

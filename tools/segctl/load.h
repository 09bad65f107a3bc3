// `segctl load` (standalone: `seg-load FILE`): loads a partner file of
// events into the `events` topic.
//
// Formats: JSON lines (one seg.Event per line, proto3 JSON mapping; blank
// lines ignored) or protobuf-delimited (each record a varint length then a
// serialized seg.Event, as protobuf's writeDelimitedTo). Every record is
// decoded and validated with the same rules as seg-ingest
// (ingest::DecodeAndValidate); a rejected record is NOT produced — neither
// to `events` nor to the dead-letter topic — but counted per reason,
// reported with its line/record number, and optionally copied verbatim to a
// rejects file so it can be fixed and loaded again. Valid records are
// produced as protobuf Events, key = user id, and the call returns once
// Kafka acknowledged all of them.
//
// Progress goes to `progress_out`: a redrawn bar when it is a TTY, a plain
// line every progress_interval_ms otherwise.
//
// Thread-safety: LoadFile is reentrant (each call has its own producer).
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "common/kafka.h"
#include "common/status.h"
#include "ingest/ingest.h"

namespace seg {
class Clock;
}

namespace seg::tools {

enum class LoadFormat {
  kAuto,  // by extension (.jsonl/.json/.ndjson, .pb/.pbd/.bin), else sniffed
  kJsonLines,
  kProtoDelimited,
};

enum class ProgressMode {
  kAuto,  // bar on a TTY, lines otherwise
  kBar,
  kLines,
  kOff,
};

struct LoadOptions {
  kafka::KafkaOptions kafka;
  std::string topic = "events";
  LoadFormat format = LoadFormat::kAuto;
  ingest::ValidationOptions validation;
  ProgressMode progress = ProgressMode::kAuto;
  int64_t progress_interval_ms = 2000;  // plain-line mode: one line per interval
  // Waits at most this long at the end for Kafka to acknowledge everything.
  int64_t flush_timeout_ms = 120'000;
  // If set, rejected records are copied here verbatim, in the input format.
  std::string rejects_path;
  // How many rejected records are described in LoadReport::examples.
  int32_t max_examples = 20;
  // Validation time source; nullptr = the real clock. Must outlive the call.
  const Clock* clock = nullptr;
};

struct LoadReport {
  int64_t records = 0;            // records read (blank lines not counted)
  int64_t produced = 0;           // valid records handed to Kafka
  int64_t delivered = 0;          // acknowledged by Kafka
  int64_t delivery_failures = 0;  // finally failed deliveries
  int64_t rejected = 0;           // invalid records, not produced
  std::map<std::string, int64_t> rejected_by_reason;
  // "line 12: time_too_old: event_time_ms ... " (first max_examples).
  std::vector<std::string> examples;
  int64_t bytes = 0;
  double seconds = 0;
};

// Loads `path`. OK when the file was read to the end and every valid
// record was delivered (rejected records do not make it fail; see
// report.rejected). NotFound/InvalidArgument for an unreadable or
// malformed file (a truncated protobuf-delimited record), Unavailable /
// DeadlineExceeded when deliveries failed; *report is filled either way.
Status LoadFile(const std::string& path, const LoadOptions& options, LoadReport* report,
                std::FILE* progress_out = stderr);

// Writes the human summary of a report (counts, reasons, examples).
void PrintLoadReport(const LoadReport& report, std::FILE* out);

// The command line, for `seg-load` and `segctl load`:
//   FILE [--bootstrap HOST:PORT] [--topic T] [--format auto|json|proto]
//   [--config F] [--set k=v]... [--rejects FILE] [--max-rejected N]
//   [--progress auto|bar|lines|off]
// argv[0] is the command name. Exit codes: 0 done, 1 failure (file, Kafka),
// 2 usage/config error, 3 done but more than --max-rejected records were
// rejected (default: no limit).
int LoadMain(int argc, char** argv);

}  // namespace seg::tools

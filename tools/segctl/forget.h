// `segctl forget USER... | --file F`: asks the segmenters to delete
// everything about users (issue "Membership that stays true over time",
// part 5). Publishes one ChangeNotice{user_id, kind = NOTICE_FORGET,
// acked_at_ms = now} per user to the notices topic (`user-changes`,
// topics.changes), keyed by the user id with the Kafka adapter's
// murmur2_random partitioner, so the notice lands in the user's partition and
// is handled by its owner after every notice already queued for the user. The
// segmenter deletes the user's rows, due time and skip-cache entries and
// publishes a tombstone on `segmentation-results`.
//
// Also `segctl stats expire-sweep` (retention of HLL day keys, part 6):
// gives every hll:* key without a TTL the expiry the writer sets on new keys
// (stats::SweepHllExpiry).
//
// Both read their settings the way the other binaries do: --config F
// (kafka.*, topics.changes; stats.* for the sweep) and --set k=v;
// keys of the shared file that they do not use are ignored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/kafka.h"
#include "common/status.h"

namespace seg {
class Clock;
}

namespace seg::tools {

struct ForgetOptions {
  kafka::KafkaOptions kafka;
  std::string topic = "user-changes";  // topics.changes
  int64_t flush_timeout_ms = 60'000;   // wait at most this long for the acks
  const Clock* clock = nullptr;        // acked_at_ms; nullptr = the real clock
};

struct ForgetReport {
  int64_t requested = 0;  // distinct non-empty user ids
  int64_t sent = 0;       // notices acknowledged by Kafka
  int64_t failed = 0;     // notices that finally failed
};

// Publishes one NOTICE_FORGET per distinct user id (empty ids are
// InvalidArgument before anything is sent) and waits for every ack. OK only
// when all were acknowledged; Unavailable/DeadlineExceeded otherwise, with
// *report counting what got through.
Status ForgetUsers(const std::vector<std::string>& user_ids, const ForgetOptions& options,
                   ForgetReport* report);

// One user id per line (blank lines and lines starting with '#' skipped,
// surrounding blanks trimmed).
StatusOr<std::vector<std::string>> ReadUserIdFile(const std::string& path);

// The command lines. argv[0] is the subcommand name ("forget", "stats").
//   forget [USER...] [--file F] [--bootstrap HOST:PORT] [--topic T]
//          [--config F] [--set k=v]...
//   stats expire-sweep [--config F] [--set k=v]... [--retention-days N]
//          [--host H --port P | --set stats.redis.cluster=true ...] [--json]
// Exit: 0 done, 1 failure (Kafka, Redis), 2 usage/config error.
int ForgetMain(int argc, char** argv);
int StatsAdminMain(int argc, char** argv);
// `segctl topics create` (tools/segctl/internal/topics.cc).
int TopicsMain(int argc, char** argv);
// `segctl check-config --config F [--set k=v]`: loads every key a segctl
// subcommand reads (kafka.*, stats.*, store.*, tables.users.name and
// state_family, topics.changes and events), checks the file
// against the global key list, prints OK or the errors; exit 0 or 2.
int CheckConfigMain(int argc, char** argv);

}  // namespace seg::tools

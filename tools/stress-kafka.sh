#!/usr/bin/env bash
# Runs the Kafka consumer-group rebalance and close tests many times while
# CPU hogs compete for the cores, and counts aborts and failures per test.
#
#   tools/stress-kafka.sh [--build-dir DIR] [--runs N] [--hogs N]
#                         [--strategy NAME] [--write] [--keep-logs]
#
#   --build-dir DIR   built tree to test (default build/default)
#   --runs N          runs of each test (default 20)
#   --hogs N          busy loops (`yes > /dev/null`) running meanwhile (default 2)
#   --strategy NAME   partition.assignment.strategy for the tests' consumers
#                     (SEG_TEST_ASSIGNMENT_STRATEGY; default: the product's)
#   --write           put the figures into RELIABILITY.md (one block per strategy)
#   --keep-logs       keep the logs of passing runs too
#
# An abort is a run that died of a signal or printed an assertion (librdkafka's
# "assert: ..." or libc's "Assertion ... failed"); a failure is any other
# non-zero exit, a hang past the per-run timeout included. Exits 1 when any
# run aborted or failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build/default"
RUNS=20
HOGS=2
STRATEGY="${SEG_TEST_ASSIGNMENT_STRATEGY:-}"
WRITE=0
KEEP_LOGS=0
RUN_TIMEOUT_S=600

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD_DIR="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --hogs) HOGS="$2"; shift 2 ;;
    --strategy) STRATEGY="$2"; shift 2 ;;
    --write) WRITE=1; shift ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "stress-kafka: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "stress-kafka: --runs wants a positive number" >&2; exit 2; }
[[ "$HOGS" =~ ^[0-9]+$ ]] || { echo "stress-kafka: --hogs wants a number" >&2; exit 2; }
BUILD_DIR="$(cd "$BUILD_DIR" && pwd)"

# The tests, as "binary (relative to the build dir) gtest-name". Entries
# marked cooperative-only force cooperative-sticky themselves: they run only
# when the strategy under test is cooperative, so a default run measures the
# default alone.
TESTS=(
  "common/kafka_test KafkaTest.TwoConsumersSplitPartitions"
  "common/kafka_test KafkaTest.TwoConsumersCooperativeStickySplitPartitionsIncrementally cooperative-only"
  "common/kafka_test KafkaTest.CloseBeforeFirstAssignmentIsCleanAndBounded"
  "common/kafka_test KafkaTest.CloseBetweenJoinAndSyncIsCleanAndBounded"
  # Stores, commits, closes (revoke + commit) and resumes from the commit.
  "common/kafka_test KafkaTest.ProduceConsumeAndResumeFromCommittedOffsets"
  # Revocation drains the node's queue; the adapter commits after the callback.
  "tests/segmenter_node_test SegmenterNodeTest.RevocationProcessesTheQueueBeforePartitionsMove"
)

if [[ -n "$STRATEGY" ]]; then
  export SEG_TEST_ASSIGNMENT_STRATEGY="$STRATEGY"
  LABEL="$STRATEGY"
else
  unset SEG_TEST_ASSIGNMENT_STRATEGY
  LABEL="default (eager roundrobin)"
fi

selected=()
for entry in "${TESTS[@]}"; do
  read -r bin name flag <<<"$entry"
  if [[ "${flag:-}" == cooperative-only && "$STRATEGY" != *cooperative* ]]; then continue; fi
  if [[ ! -x "$BUILD_DIR/$bin" ]]; then
    echo "stress-kafka: $BUILD_DIR/$bin is not built (tools/dev build)" >&2
    exit 2
  fi
  selected+=("$bin $name")
done

LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/stress-kafka.XXXXXX")"
hog_pids=()
cleanup() {
  local pid
  for pid in "${hog_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${hog_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # Logs of passing runs go unless asked for; the others stay for reading.
  if [[ "$KEEP_LOGS" == 0 && -d "$LOG_DIR" ]]; then
    find "$LOG_DIR" -name '*.pass.log' -delete
    rmdir "$LOG_DIR" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for ((i = 0; i < HOGS; i++)); do
  yes >/dev/null &
  hog_pids+=("$!")
done

seconds() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }

declare -A passed aborts failures total_ms max_ms
for entry in "${selected[@]}"; do
  read -r bin name <<<"$entry"
  passed[$name]=0 aborts[$name]=0 failures[$name]=0 total_ms[$name]=0 max_ms[$name]=0
done

START_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')"
load_1min() { cut -d' ' -f1 /proc/loadavg; }
START_LOAD="$(load_1min)"
start_s=$SECONDS
echo "stress-kafka: ${#selected[@]} tests x $RUNS runs, $HOGS CPU hogs, strategy: $LABEL"
echo "stress-kafka: build $BUILD_DIR; logs $LOG_DIR"

# Round-robin over the tests, so an interrupted run still covers each test.
for ((run = 1; run <= RUNS; run++)); do
  for entry in "${selected[@]}"; do
    read -r bin name <<<"$entry"
    log="$LOG_DIR/$name.$run"
    t0=$(date +%s%N)
    rc=0
    (cd "$(dirname "$BUILD_DIR/$bin")" &&
      exec timeout --kill-after=10 "$RUN_TIMEOUT_S" "$BUILD_DIR/$bin" \
        --gtest_filter="$name" --gtest_color=no) >"$log.log" 2>&1 || rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    total_ms[$name]=$((total_ms[$name] + ms))
    if ((ms > max_ms[$name])); then max_ms[$name]=$ms; fi
    if ((rc > 128 && rc != 137)) || grep -qE 'Assertion|assert: ' "$log.log"; then
      verdict=ABORT
      aborts[$name]=$((aborts[$name] + 1))
      mv "$log.log" "$log.abort.log"
    elif ((rc != 0)); then
      verdict="FAIL (exit $rc$( ((rc == 124 || rc == 137)) && echo ', timed out'))"
      failures[$name]=$((failures[$name] + 1))
      mv "$log.log" "$log.fail.log"
    else
      verdict=ok
      passed[$name]=$((passed[$name] + 1))
      mv "$log.log" "$log.pass.log"
    fi
    printf '%3d/%d %-70s %6s s  %s\n' "$run" "$RUNS" "$name" "$(seconds "$ms")" "$verdict"
  done
done
elapsed_min=$(((SECONDS - start_s + 30) / 60))
END_LOAD="$(load_1min)"

table="| test | runs | passed | aborts | failures | mean s | max s |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
any=0
for entry in "${selected[@]}"; do
  read -r bin name <<<"$entry"
  mean=$(seconds $((total_ms[$name] / RUNS)))
  table+=$'\n'"| \`$name\` | $RUNS | ${passed[$name]} | ${aborts[$name]} | ${failures[$name]}"
  table+=" | $mean | $(seconds "${max_ms[$name]}") |"
  if ((aborts[$name] + failures[$name] > 0)); then any=1; fi
done
echo
echo "strategy: $LABEL; $RUNS runs per test; $HOGS CPU hogs; $elapsed_min min;" \
  "load average $START_LOAD at the start, $END_LOAD at the end"
echo "$table"
if ((any)); then echo "stress-kafka: logs of aborted/failed runs in $LOG_DIR"; fi

if [[ "$WRITE" == 1 ]]; then
  command="tools/stress-kafka.sh --runs $RUNS --hogs $HOGS${STRATEGY:+ --strategy $STRATEGY} --write"
  block="### Strategy: $LABEL

Measured $START_DATE on $(nproc) cores with $HOGS CPU hogs (\`yes > /dev/null\`),
$elapsed_min min in all (1-min load average $START_LOAD at the start, $END_LOAD at the
end), librdkafka $(pkg-config --modversion rdkafka 2>/dev/null || echo '?'):

    $command

$table"
  # Under a lock: runs for two strategies may finish together.
  flock "${TMPDIR:-/tmp}/stress-kafka-reliability.lock" \
    python3 - "$ROOT/RELIABILITY.md" "$LABEL" "$block" <<'EOF'
import re, sys
path, label, block = sys.argv[1], sys.argv[2], sys.argv[3]
section = "## Kafka consumers on librdkafka 2.0.2"
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Reliability\n\nHow the product holds up under stress, measured by the scripts named.\n"
if section not in text:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
begin = f"<!-- stress-kafka: {label} -->"
end = f"<!-- /stress-kafka: {label} -->"
new = f"{begin}\n{block}\n{end}"
if begin in text and end in text:
    text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: new, text, flags=re.S)
else:
    # Appended at the end of the section (before the next "## " heading).
    start = text.index(section)
    nxt = text.find("\n## ", start + len(section))
    at = len(text) if nxt < 0 else nxt + 1
    text = text[:at].rstrip("\n") + "\n\n" + new + "\n" + ("\n" + text[at:] if nxt >= 0 else "")
open(path, "w").write(text)
EOF
  echo "stress-kafka: figures written to RELIABILITY.md"
fi
exit "$any"

#!/usr/bin/env bash
# The local stack on one machine, everything on 127.0.0.1 with free ports:
# a 3-broker mock Kafka cluster (kafka-local), a redis-server, seg-store,
# seg-ingest, seg-segmenter x2, seg-stats and seg-loadgen. Started in order
# with readiness checks; a live status line from the processes' /metrics; at
# the end (Ctrl-C or --duration) the segment sizes over gRPC; then every
# process is stopped (newest first) and nothing is left running.
#
#   local-stack.sh --build-dir DIR [--duration S] [--config FILE] [--real]
#                  [--no-traffic] [--quiet] [--env-file FILE]
#
# --real starts a real Kafka 3.9.1 broker and a real HBase 2.6.1 with its
# Thrift2 gateway (tools/services, jars from Maven Central through the pinned
# poms) and runs the stack on them instead of kafka-local and seg-store; they
# are stopped and deleted with the stack.
#
# --config FILE (config/stack-local.yaml, config/stack-production-example.yaml) switches
# parts to real services: kafka.bootstrap_servers (no kafka-local), store.host
# (an HBase Thrift2 gateway; no seg-store), redis.host or redis.seeds (Redis
# or Redis Cluster; no redis-server); it also passes --set overrides to each
# process. --no-traffic starts no seg-loadgen; --quiet prints no status line;
# --env-file writes the addresses, /metrics ports and pids once everything is
# up (bench/pipeline.py drives the stack through it). RUN_DIR/seg.yaml is a
# config for segtool and segctl against the stack (its path is printed).
#
# Stopping: Ctrl-C (INT) or HUP prints the segment table, then stops every
# part; TERM stops at once. A script that starts the stack in the background
# (`local-stack.sh ... &` in a non-interactive shell) starts it with INT
# ignored, which bash cannot undo: stop it with HUP or TERM.
#
# Every server listens on a port chosen before it starts, and its command
# line is kept in RUN_DIR/NAME.cmd, so a part restarted from it (a chaos run,
# an operator) comes back on the address its clients know.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD=""
DURATION=0
CONFIG=""
TRAFFIC=1
QUIET=0
ENV_FILE=""
REAL=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --config) CONFIG="$2"; shift 2 ;;
    --no-traffic) TRAFFIC=0; shift ;;
    --quiet) QUIET=1; shift ;;
    --env-file) ENV_FILE="$2"; shift 2 ;;
    --real) REAL=1; shift ;;
    *) echo "local-stack: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$BUILD" ]] || { echo "local-stack: --build-dir required" >&2; exit 2; }
[[ "$DURATION" =~ ^[0-9]+$ ]] || { echo "local-stack: --duration takes whole seconds" >&2; exit 2; }

# What the config switches (tools/stack_config.py prints these assignments).
KAFKA_EXTERNAL="" STORE_EXTERNAL="" REDIS_EXTERNAL="" SEGMENTERS=2 STORE_METRICS=""
LOADGEN_USERS=5000 LOADGEN_RATE=3000 LOADGEN_SEED=1
INGEST_SETS=() SEGMENTER_SETS=() STATS_SETS=() LOADGEN_KAFKA_ARGS=()
if [[ -n "$CONFIG" ]]; then
  assignments="$(/usr/bin/python3 "$ROOT/tools/stack_config.py" "$CONFIG")" || exit 2
  eval "$assignments"
fi

for bin in tools/kafka-local store/seg-store ingest/seg-ingest segmenter/seg-segmenter \
  stats/seg-stats tools/seg-loadgen tools/segctl; do
  [[ -x "$BUILD/$bin" ]] || { echo "local-stack: $BUILD/$bin is not built" >&2; exit 2; }
done

RUN_DIR="$(mktemp -d /tmp/seg-local-XXXXXX)"
NAMES=()
PIDS=()
STOPPING=0
WAITER=""
cleanup() {
  local rc=$?
  trap - INT TERM
  [[ -z "$WAITER" ]] || kill -TERM "$WAITER" 2>/dev/null || true
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || continue
    for _ in $(seq 200); do kill -0 "${PIDS[$i]}" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
      echo "local-stack: ${NAMES[$i]} did not stop in 10 s; killing it" >&2
      kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    fi
  done
  wait "${PIDS[@]}" $WAITER 2>/dev/null || true
  if [[ "$REAL" == 1 ]]; then
    SEG_SERVICES_DIR="$RUN_DIR/services" "$ROOT/tools/services/services.sh" down kafka hbase \
      >/dev/null 2>&1 || echo "local-stack: stopping the real services failed" >&2
  fi
  if [[ "${SEG_STACK_KEEP_LOGS:-0}" == 1 ]]; then echo "local-stack: logs kept in $RUN_DIR" >&2
  else rm -rf "$RUN_DIR"; fi
  exit $rc
}
trap cleanup EXIT
# Ctrl-C or HUP ends the run normally (segment table, then cleanup); TERM just stops.
trap 'STOPPING=1' INT HUP
trap 'exit 143' TERM

# start NAME CMD...: runs CMD in its own session (so a terminal Ctrl-C reaches
# only this script, which then stops everything in order), log in RUN_DIR.
start() {
  local name="$1"
  shift
  printf '%q ' "$@" >"$RUN_DIR/$name.cmd"
  setsid "$@" >"$RUN_DIR/$name.log" 2>&1 &
  NAMES+=("$name")
  PIDS+=($!)
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

died() {
  echo "local-stack: $1 exited; last lines of its log:" >&2
  tail -n 30 "$RUN_DIR/$1.log" >&2
}

wait_port() {  # wait_port NAME HOST:PORT [PID]: up to 20 s
  local host="${2%:*}" port="${2##*:}"
  for _ in $(seq 400); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    if [[ -n "${3:-}" ]] && ! kill -0 "$3" 2>/dev/null; then died "$1"; return 1; fi
    sleep 0.05
  done
  echo "local-stack: $1 not reachable on $2" >&2
  return 1
}

wait_log() {  # wait_log NAME REGEX PID: up to 60 s for a line in NAME's log
  for _ in $(seq 1200); do
    grep -qE "$2" "$RUN_DIR/$1.log" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { died "$1"; return 1; }
    sleep 0.05
  done
  echo "local-stack: $1 never logged /$2/" >&2
  return 1
}

wait_file() {  # wait_file NAME FILE PID: up to 20 s
  for _ in $(seq 400); do
    [[ -s "$2" ]] && return 0
    kill -0 "$3" 2>/dev/null || { died "$1"; return 1; }
    sleep 0.05
  done
  echo "local-stack: $1 not ready" >&2
  return 1
}

# --real: a real broker and HBase of our own, used as external parts.
if [[ "$REAL" == 1 ]]; then
  [[ -z "$KAFKA_EXTERNAL$STORE_EXTERNAL" ]] || {
    echo "local-stack: --real and a config naming kafka or store exclude each other" >&2; exit 2; }
  echo "local-stack: starting real Kafka and HBase (tools/services; ~40 s)" >&2
  SEG_SERVICES_DIR="$RUN_DIR/services" SEG_BUILD_DIR="$BUILD" \
    "$ROOT/tools/services/services.sh" up kafka hbase >"$RUN_DIR/services.log" 2>&1 || {
    echo "local-stack: real services did not start:" >&2; tail -20 "$RUN_DIR/services.log" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$RUN_DIR/services/services.env"
  KAFKA_EXTERNAL="$KAFKA_BOOTSTRAP" STORE_EXTERNAL="$HBASE_THRIFT_HOST:$HBASE_THRIFT_PORT"
fi

# 1. Kafka: the librdkafka mock cluster as its own process, or a real cluster
#    (segctl topics create makes the topics it lacks). One list for both.
TOPICS=events:8,events-deadletter:2,user-changes:8,segmentation-results:8
if [[ -n "$KAFKA_EXTERNAL" ]]; then
  KAFKA="$KAFKA_EXTERNAL"
  wait_port kafka "${KAFKA%%,*}"
  # Topics that exist are left alone; a broker would auto-create the others
  # with one partition, and one segmenter would do all the work.
  "$BUILD/tools/segctl" topics create --bootstrap "$KAFKA" --topics "$TOPICS" >/dev/null
else
  start kafka "$BUILD/tools/kafka-local" --brokers 3 --topics "$TOPICS" \
    --port-file "$RUN_DIR/kafka.bootstrap" --control "$RUN_DIR/kafka.control"
  wait_file kafka "$RUN_DIR/kafka.bootstrap" "${PIDS[-1]}"
  KAFKA="$(cat "$RUN_DIR/kafka.bootstrap")"
  # The mock cluster rebalances a group only after about a session timeout
  # (45 s by default): keep it short so the second segmenter gets partitions.
  # It also holds an empty fetch for the whole fetch.wait.max.ms (500 ms by
  # default) even when messages arrive meanwhile, which a real broker answers
  # at once: that wait sat inside every event-to-result latency.
  for p in session.timeout.ms=6000 heartbeat.interval.ms=1000 fetch.wait.max.ms=20; do
    INGEST_SETS+=(--set "kafka.properties.$p")
    SEGMENTER_SETS+=(--set "kafka.properties.$p")
  done
fi

# 2. Redis: a local redis-server, or a real Redis / Redis Cluster seed.
if [[ -n "$REDIS_EXTERNAL" ]]; then
  REDIS="$REDIS_EXTERNAL"
  wait_port redis "$REDIS"
else
  REDIS="127.0.0.1:$(free_port)"
  start redis redis-server --bind 127.0.0.1 --port "${REDIS##*:}" --save '' --appendonly no \
    --dir "$RUN_DIR"
  wait_port redis "$REDIS" "${PIDS[-1]}"
fi

# 3. The wide-row store: seg-store (embedded RocksDB behind Thrift2), or an
#    HBase Thrift2 gateway.
if [[ -n "$STORE_EXTERNAL" ]]; then
  STORE="$STORE_EXTERNAL"
  wait_port store "$STORE"
else
  STORE_METRICS="127.0.0.1:$(free_port)"
  start store "$BUILD/store/seg-store" --data-dir "$RUN_DIR/store" --port "$(free_port)" \
    --port-file "$RUN_DIR/store.port" --metrics-port "${STORE_METRICS##*:}"
  wait_file store "$RUN_DIR/store.port" "${PIDS[-1]}"
  STORE="127.0.0.1:$(cat "$RUN_DIR/store.port")"
fi

# 4. Ingest, 5. the segmenters, 6. the stats service.
INGEST_METRICS="127.0.0.1:$(free_port)"
start ingest "$BUILD/ingest/seg-ingest" --metrics-host 127.0.0.1 \
  --metrics-port "${INGEST_METRICS##*:}" --set "kafka.bootstrap_servers=$KAFKA" \
  --set store.backend=thrift --set "store.thrift.host=${STORE%:*}" \
  --set "store.thrift.port=${STORE##*:}" "${INGEST_SETS[@]}"
wait_port ingest "$INGEST_METRICS" "${PIDS[-1]}"

SEG_METRICS=()
for ((i = 1; i <= SEGMENTERS; i++)); do
  SEG_METRICS+=("127.0.0.1:$(free_port)")
  start "segmenter$i" "$BUILD/segmenter/seg-segmenter" --bootstrap "$KAFKA" --store "$STORE" \
    --redis "$REDIS" --scripts "$ROOT/scripts" --metrics-port "${SEG_METRICS[-1]##*:}" \
    "${SEGMENTER_SETS[@]}"
  wait_port "segmenter$i" "${SEG_METRICS[-1]}" "${PIDS[-1]}"
done
# Ready = every segmenter owns partitions (closing a consumer before its first
# assignment also trips librdkafka#4312 in librdkafka < 2.3).
for ((i = 1; i <= SEGMENTERS; i++)); do
  wait_log "segmenter$i" "assigned [1-9][0-9]* partitions" "${PIDS[$((${#PIDS[@]} - SEGMENTERS + i - 1))]}"
done

STATS_METRICS="127.0.0.1:$(free_port)"
start stats "$BUILD/stats/seg-stats" --port "$(free_port)" --port-file "$RUN_DIR/stats.port" \
  --metrics-port "${STATS_METRICS##*:}" \
  --set "stats.redis.host=${REDIS%:*}" --set "stats.redis.port=${REDIS##*:}" \
  --set stats.user_lookup=true --set "store.thrift.host=${STORE%:*}" \
  --set "store.thrift.port=${STORE##*:}" "${STATS_SETS[@]}"
wait_file stats "$RUN_DIR/stats.port" "${PIDS[-1]}"
STATS="127.0.0.1:$(cat "$RUN_DIR/stats.port")"

# A config for segtool and segctl against this stack (docs/sdk/first-segment.md).
SEG_CONFIG="$RUN_DIR/seg.yaml"
{
  echo "# segtool and segctl against the local stack in $RUN_DIR (deleted with it)."
  echo "#   segtool --config $SEG_CONFIG users"
  echo "#   segctl --target $STATS segments"
  echo "kafka:"
  echo "  bootstrap_servers: \"$KAFKA\""
  if [[ -z "$KAFKA_EXTERNAL" ]]; then
    echo "  properties: {session.timeout.ms: 6000, heartbeat.interval.ms: 1000, fetch.wait.max.ms: 20}"
  fi
  echo "store:"
  echo "  thrift: {host: \"${STORE%:*}\", port: ${STORE##*:}}"
  echo "scripts:"
  echo "  dir: \"$ROOT/scripts\""
  if [[ -z "$REDIS_EXTERNAL" ]]; then
    echo "stats:"
    echo "  redis: {host: \"${REDIS%:*}\", port: ${REDIS##*:}}"
  fi
} >"$SEG_CONFIG"

# 7. Synthetic traffic.
if [[ "$TRAFFIC" == 1 ]]; then
  start loadgen "$BUILD/tools/seg-loadgen" --bootstrap "$KAFKA" --users "$LOADGEN_USERS" \
    --rate "$LOADGEN_RATE" --seed "$LOADGEN_SEED" --duration 0 "${LOADGEN_KAFKA_ARGS[@]}"
fi

if [[ -n "$ENV_FILE" ]]; then
  {
    echo "RUN_DIR=$RUN_DIR"
    echo "KAFKA=$KAFKA"
    echo "REDIS=$REDIS"
    echo "STORE=$STORE"
    echo "STATS=$STATS"
    echo "SEG_CONFIG=$SEG_CONFIG"
    echo "INGEST_METRICS=$INGEST_METRICS"
    echo "SEGMENTER_METRICS=${SEG_METRICS[*]}"
    echo "STORE_METRICS=$STORE_METRICS"
    echo "STATS_METRICS=$STATS_METRICS"
    for i in "${!PIDS[@]}"; do echo "PID_${NAMES[$i]}=${PIDS[$i]}"; done
    # --real: the JVMs too, so the pipeline benchmark's CPU shares cover them.
    if [[ "$REAL" == 1 ]]; then
      for jvm in kafka:kafka/node1 hbase:hbase/master hbase_thrift:hbase/thrift; do
        pidfile="$RUN_DIR/services/${jvm#*:}.pid"
        if [[ -s "$pidfile" ]]; then echo "PID_${jvm%%:*}=$(cat "$pidfile")"; fi
      done
    fi
  } >"$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
fi

local_or() { [[ -n "$2" ]] && echo "external" || echo "$1"; }
echo "local stack is up (logs in $RUN_DIR):"
echo "  kafka   $KAFKA ($(local_or kafka-local "$KAFKA_EXTERNAL"))"
echo "  redis   $REDIS ($(local_or redis-server "$REDIS_EXTERNAL"))   (try: redis-cli -h ${REDIS%:*} -p ${REDIS##*:} ping)"
echo "  store   $STORE ($(local_or seg-store "$STORE_EXTERNAL"), HBase Thrift2)"
echo "  ingest  /metrics on $INGEST_METRICS; segmenters x$SEGMENTERS: ${SEG_METRICS[*]}"
echo "  /metrics also: stats $STATS_METRICS${STORE_METRICS:+, store $STORE_METRICS} (docs/metrics.md)"
echo "  stats   gRPC on $STATS  (try: $BUILD/tools/segctl --target $STATS segments)"
echo "  config  $SEG_CONFIG  (try: $BUILD/tools/segtool --config $SEG_CONFIG users)"
[[ "$DURATION" -gt 0 ]] || echo "Ctrl-C to stop."

# The status line (or, --quiet, just the wait); `wait` returns at once on a signal.
STATUS_ARGS=(--ingest "$INGEST_METRICS")
for m in "${SEG_METRICS[@]}"; do STATUS_ARGS+=(--segmenter "$m"); done
if [[ "$QUIET" == 1 ]]; then
  if [[ "$DURATION" -gt 0 ]]; then sleep "$DURATION" & else sleep infinity & fi
else
  python3 "$ROOT/tools/stack_status.py" "${STATUS_ARGS[@]}" --duration "$DURATION" &
fi
WAITER=$!
while [[ "$STOPPING" == 0 ]] && kill -0 "$WAITER" 2>/dev/null; do wait "$WAITER" || true; done
kill -TERM "$WAITER" 2>/dev/null || true
wait "$WAITER" 2>/dev/null || true
echo

# Stop the traffic first so the table reflects what was sent.
for i in "${!NAMES[@]}"; do
  [[ "${NAMES[$i]}" == loadgen ]] && { kill -TERM "${PIDS[$i]}" 2>/dev/null || true; }
done
echo "segment sizes today (seg-stats over gRPC):"
"$BUILD/tools/segctl" --target "$STATS" segments || true

#!/usr/bin/env bash
# The local stack on one machine, everything on 127.0.0.1 with free ports:
# a 3-broker mock Kafka cluster (kafka-local), a redis-server, and - as the
# components exist - seg-store, seg-ingest, seg-segmenter x2, seg-stats and
# seg-loadgen. Started in order with readiness checks; stopped cleanly on
# Ctrl-C, on --duration, or on any failure. Leaves nothing running.
set -euo pipefail

BUILD=""
DURATION=0
CONFIG=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --config) CONFIG="$2"; shift 2 ;;
    *) echo "local-stack: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$BUILD" ]] || { echo "local-stack: --build-dir required" >&2; exit 2; }

RUN_DIR="$(mktemp -d /tmp/seg-local-XXXXXX)"
PIDS=()
cleanup() {
  local rc=$?
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$RUN_DIR"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {  # wait_port NAME PORT PID
  for _ in $(seq 200); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$2") 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || { echo "local-stack: $1 exited; log:" >&2; cat "$RUN_DIR/$1.log" >&2; return 1; }
    sleep 0.05
  done
  echo "local-stack: $1 not ready on port $2" >&2; return 1
}

wait_file() {  # wait_file NAME FILE PID
  for _ in $(seq 200); do
    [[ -s "$2" ]] && return 0
    kill -0 "$3" 2>/dev/null || { echo "local-stack: $1 exited; log:" >&2; cat "$RUN_DIR/$1.log" >&2; return 1; }
    sleep 0.05
  done
  echo "local-stack: $1 not ready" >&2; return 1
}

# 1. Kafka: the librdkafka mock cluster as its own process.
"$BUILD/tools/kafka-local" --brokers 3 \
  --topics events:8,events-deadletter:2,user-changes:8,segmentation-results:8 \
  --port-file "$RUN_DIR/kafka.bootstrap" >"$RUN_DIR/kafka.log" 2>&1 &
PIDS+=($!)
wait_file kafka "$RUN_DIR/kafka.bootstrap" "${PIDS[-1]}"
KAFKA="$(cat "$RUN_DIR/kafka.bootstrap")"

# 2. Redis.
REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
  --dir "$RUN_DIR" >"$RUN_DIR/redis.log" 2>&1 &
PIDS+=($!)
wait_port redis "$REDIS_PORT" "${PIDS[-1]}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
have() { [[ -x "$1" ]]; }

# 3. The wide-row store (embedded RocksDB engine behind its Thrift2 server).
STORE_PORT=""
if have "$BUILD/store/seg-store"; then
  "$BUILD/store/seg-store" --data-dir "$RUN_DIR/store" --port 0 --port-file "$RUN_DIR/store.port" \
    >"$RUN_DIR/store.log" 2>&1 &
  PIDS+=($!)
  wait_file store "$RUN_DIR/store.port" "${PIDS[-1]}"
  STORE_PORT="$(cat "$RUN_DIR/store.port")"
fi

# 4. Ingest, 5. two segmenters, 6. the stats service.
if [[ -n "$STORE_PORT" ]] && have "$BUILD/ingest/seg-ingest"; then
  "$BUILD/ingest/seg-ingest" --set "kafka.bootstrap_servers=$KAFKA" --set store.backend=thrift \
    --set "store.thrift.port=$STORE_PORT" >"$RUN_DIR/ingest.log" 2>&1 &
  PIDS+=($!)
fi
SEG_METRICS=()
if [[ -n "$STORE_PORT" ]] && have "$BUILD/segmenter/seg-segmenter"; then
  for i in 1 2; do
    port=$(free_port)
    SEG_METRICS+=("$port")
    "$BUILD/segmenter/seg-segmenter" --bootstrap "$KAFKA" --store "127.0.0.1:$STORE_PORT" \
      --redis "127.0.0.1:$REDIS_PORT" --scripts "$ROOT/scripts" --metrics-port "$port" \
      >"$RUN_DIR/segmenter$i.log" 2>&1 &
    PIDS+=($!)
    wait_port "segmenter$i" "$port" "${PIDS[-1]}"
  done
fi
STATS_PORT=""
if have "$BUILD/stats/seg-stats"; then
  "$BUILD/stats/seg-stats" --port 0 --port-file "$RUN_DIR/stats.port" \
    --set "stats.redis.port=$REDIS_PORT" --set stats.store.backend=thrift \
    --set "stats.store.thrift.port=${STORE_PORT:-9090}" >"$RUN_DIR/stats.log" 2>&1 &
  PIDS+=($!)
  wait_file stats "$RUN_DIR/stats.port" "${PIDS[-1]}"
  STATS_PORT="$(cat "$RUN_DIR/stats.port")"
fi

echo "local stack is up (logs in $RUN_DIR):"
echo "  kafka   bootstrap.servers=$KAFKA   (try: kcat -b $KAFKA -L)"
echo "  redis   127.0.0.1:$REDIS_PORT      (try: redis-cli -p $REDIS_PORT ping)"
[[ -n "$STORE_PORT" ]] && echo "  store   THBaseService on 127.0.0.1:$STORE_PORT"
[[ -n "$STATS_PORT" ]] && echo "  stats   gRPC on 127.0.0.1:$STATS_PORT  (try: $BUILD/tools/segctl --target 127.0.0.1:$STATS_PORT segments)"

# 7. Synthetic traffic, with a status line from the segmenters' /metrics.
LOADGEN_PID=""
if have "$BUILD/tools/seg-loadgen"; then
  "$BUILD/tools/seg-loadgen" --bootstrap "$KAFKA" --users 5000 --rate 3000 \
    --duration "${DURATION:-0}" >"$RUN_DIR/loadgen.log" 2>&1 &
  LOADGEN_PID=$!
  PIDS+=($LOADGEN_PID)
fi

status_line() {
  python3 - "${SEG_METRICS[@]}" <<'PY'
import sys, urllib.request, re
tot = {}
for port in sys.argv[1:]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
    except Exception:
        continue
    for m in re.finditer(r'^seg_segmenter_decisions_total\{decision="(\w+)"\} (\S+)', text, re.M):
        tot[m.group(1)] = tot.get(m.group(1), 0) + float(m.group(2))
print("segmented=%d skipped_by_cache=%d skipped_as_bot=%d" % (
    tot.get("segmented", 0), tot.get("skipped_by_cache", 0), tot.get("skipped_as_bot", 0)))
PY
}

END=$(( $(date +%s) + ${DURATION:-0} ))
[[ "$DURATION" -gt 0 ]] || echo "Ctrl-C to stop."
while [[ "$DURATION" -le 0 || $(date +%s) -lt $END ]]; do
  sleep 2
  if [[ ${#SEG_METRICS[@]} -gt 0 ]]; then printf '\r%s   ' "$(status_line)"; fi
done
echo
if [[ -n "$STATS_PORT" ]] && have "$BUILD/tools/segctl"; then
  echo "segment sizes today (seg-stats over gRPC):"
  "$BUILD/tools/segctl" --target "127.0.0.1:$STATS_PORT" segments || true
fi

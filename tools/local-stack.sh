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

echo "local stack is up (logs in $RUN_DIR):"
echo "  kafka  bootstrap.servers=$KAFKA   (try: kcat -b $KAFKA -L)"
echo "  redis  127.0.0.1:$REDIS_PORT      (try: redis-cli -p $REDIS_PORT ping)"

if [[ "$DURATION" -gt 0 ]]; then
  sleep "$DURATION"
else
  echo "Ctrl-C to stop."
  while true; do sleep 1; done
fi

#!/usr/bin/env bash
# Segment sizes after Redis is killed and restarted without persistence
# (issue #17 part 3), on the local stack (tools/local-stack.sh: kafka-local,
# seg-store, seg-ingest, 2 seg-segmenters, seg-stats) with this script's own
# redis-server, so that it can kill it: seg-loadgen sends the same seeded
# traffic (3,000 users, --events 45000, about 30,000 messages in 10 s);
# with --fault the redis-server is killed -9 KILL_AFTER s into the traffic
# and started empty on the same port. After the traffic the sizes are read
# until they stop changing (3 equal readings 5 s apart), then, with
# --fault, `segctl stats rebuild` runs and the sizes are read again.
#
#   bench/redis_loss.sh --build-dir build/default [--fault] [--kill-after S]
#                       [--epochs false] [--out DIR]
#
# --epochs false runs the segmenters with stats.epochs: false (the behaviour
# before the fix). Prints "drained: segment=size ..." (and "rebuilt: ...").
# About 2 minutes per run. Compare a run without --fault (the no-fault
# sizes) with one with it.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="" FAULT=0 KILL_AFTER=5 EPOCHS=true OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD="$(cd "$2" && pwd)"; shift 2 ;;
    --fault) FAULT=1; shift ;;
    --kill-after) KILL_AFTER="$2"; shift 2 ;;
    --epochs) EPOCHS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "redis_loss: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$BUILD" ]] || { echo "redis_loss: --build-dir required" >&2; exit 2; }
[[ -n "$OUT" ]] || OUT="$(mktemp -d /tmp/seg-redis-loss-XXXXXX)"
mkdir -p "$OUT" && cd "$OUT" || exit 2

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
STACK=""
cleanup() {
  [[ -z "$STACK" ]] || { kill -TERM "$STACK" 2>/dev/null; wait "$STACK" 2>/dev/null; }
  kill "$(cat redis.pid 2>/dev/null)" 2>/dev/null || true
}
trap cleanup EXIT
start_redis() {
  redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no >>redis.log 2>&1 &
  echo $! >redis.pid
  for _ in $(seq 100); do
    redis-cli -p "$PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1  # waiting for the server to listen
  done
  echo "redis_loss: redis-server did not start" >&2
  return 1
}
start_redis || exit 1

{
  printf 'kafka:\n  bootstrap_servers: ""\nstore:\n  host: ""\n'
  printf 'redis:\n  host: 127.0.0.1\n  port: %s\nsegmenters: 2\n' "$PORT"
  [[ "$EPOCHS" == true ]] || printf 'set:\n  segmenter:\n    stats:\n      epochs: false\n'
} >stack.yaml
"$ROOT/tools/local-stack.sh" --build-dir "$BUILD" --config stack.yaml --no-traffic --quiet \
  --env-file stack.env >stack.log 2>&1 &
STACK=$!
for _ in $(seq 600); do
  [[ -f stack.env ]] && break
  kill -0 "$STACK" 2>/dev/null || { echo "redis_loss: the stack died (stack.log)" >&2; exit 1; }
  sleep 0.5  # waiting for the stack to come up
done
env_of() { grep "^$1=" stack.env | cut -d= -f2; }
KAFKA=$(env_of KAFKA) STORE=$(env_of STORE) STATS=$(env_of STATS)

sizes() {
  "$BUILD/tools/segctl" --target "$STATS" --json segments | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join("%s=%d" % (s["segment"], round(float(s.get("today", {}).get("value", 0))))
               for s in sorted(d.get("segments", []), key=lambda s: s["segment"])))'
}

FAULT_PID=""
if [[ "$FAULT" == 1 ]]; then
  (
    sleep "$KILL_AFTER"  # the fault's moment in the traffic
    kill -9 "$(cat redis.pid)"
    while redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.05; done  # until it is gone
    start_redis && echo "redis-server killed and started empty at $(date +%T)"
  ) &
  FAULT_PID=$!
fi
"$BUILD/tools/seg-loadgen" --bootstrap "$KAFKA" --users 3000 --rate 3000 --seed 7 \
  --events 45000 --truth-out truth.jsonl >loadgen.log 2>&1
[[ -z "$FAULT_PID" ]] || wait "$FAULT_PID"
tail -1 loadgen.log

prev="" same=0
for _ in $(seq 120); do
  cur=$(sizes)
  if [[ -n "$cur" && "$cur" == "$prev" ]]; then same=$((same + 1)); else same=0; fi
  prev=$cur
  [[ $same -ge 2 ]] && break
  sleep 5  # sizes change while the segmenters drain
done
echo "drained: $prev"
if [[ "$FAULT" == 1 ]]; then
  "$BUILD/tools/segctl" stats rebuild --store "$STORE" --port "$PORT" --json 2>rebuild.log
  echo "rebuilt: $(sizes)"
fi

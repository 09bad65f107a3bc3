#!/usr/bin/env bash
# Why the chaos run injects no REQUEST_TIMED_OUT into produce requests: with
# librdkafka 2.0.2 (Debian 12) an idempotent producer on the mock cluster
# gets delivery reports of success for a few messages the topic never holds
# when produce requests fail with REQUEST_TIMED_OUT ("possibly persisted").
# No segengine code is involved: kafka-local, seg-loadgen (acknowledged
# messages in --messages-out) and kcat (what the topic holds).
#
#   tools/chaos/produce_timeout_repro.sh [BUILD_DIR] [ERRORS]
#
# Prints "acked N in-topic M"; M < N is the loss (RELIABILITY.md, "Chaos run").
set -euo pipefail
BUILD="${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/default}"
ERRORS="${2:-REQUEST_TIMED_OUT}"
DIR="$(mktemp -d /tmp/seg-repro-XXXXXX)"
KAFKA_PID=""
cleanup() {
  [[ -z "$KAFKA_PID" ]] || { kill "$KAFKA_PID" 2>/dev/null || true; wait "$KAFKA_PID" 2>/dev/null || true; }
  rm -rf "$DIR"
}
trap cleanup EXIT
"$BUILD/tools/kafka-local" --brokers 3 --topics events:8 --port-file "$DIR/port" \
  --control "$DIR/control" >"$DIR/kafka.log" 2>&1 &
KAFKA_PID=$!
for _ in $(seq 200); do [[ -s "$DIR/port" ]] && break; sleep 0.05; done
[[ -s "$DIR/port" ]] || { echo "kafka-local did not start" >&2; exit 1; }
KAFKA="$(cat "$DIR/port")"
"$BUILD/tools/seg-loadgen" --bootstrap "$KAFKA" --users 3000 --rate 1500 --duration 8 --seed 7 \
  --messages-out "$DIR/sent.tsv" >"$DIR/loadgen.log" 2>&1 &
LOADGEN=$!
sleep 2  # traffic flowing
for _ in 1 2 3 4; do
  echo "errors produce 40 $ERRORS" >"$DIR/control"
  sleep 1.2  # spread over the run
done
wait "$LOADGEN" || true
IN_TOPIC=$(kcat -b "$KAFKA" -C -t events -e -q -f '%o\n' 2>/dev/null | wc -l)
echo "$ERRORS: acked $(wc -l <"$DIR/sent.tsv") in-topic $IN_TOPIC"

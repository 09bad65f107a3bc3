#!/usr/bin/env bash
# tools/dev bench hbase_storage: bytes on disk per stored event on a real
# HBase 2.6.1, for the capacity model (tools/capacity.py, docs/capacity.md).
#
# A real Kafka broker and a standalone HBase (tools/services), seg-ingest
# writing seg-loadgen's events (no duplicates, no malformed messages) into
# users:e through the Thrift2 gateway. Then HBase is stopped with TERM, which
# flushes every memstore to one HFile per region and family (nothing was
# deleted or expired, so a major compaction would rewrite the same cells),
# and the HFiles of users/e are summed. The table is as seg-store-admin
# creates it: no compression, no data block encoding (HBase's defaults).
#
#   SEG_BENCH_BUILD_DIR=build/release tools/dev bench hbase_storage
#   (SEG_HBASE_STORAGE_EVENTS, default 200000)
set -euo pipefail
out="${1:?usage: hbase_storage.sh OUT.json}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SEG_BUILD_DIR:?}"
EVENTS="${SEG_HBASE_STORAGE_EVENTS:-200000}"
RUN="$(mktemp -d /tmp/seg-hbase-storage-XXXXXX)"
export SEG_SERVICES_DIR="$RUN/services" SEG_BUILD_DIR="$BUILD"
INGEST_PID=""

log() { echo "[hbase_storage $(date +%T)] $*" >&2; }
cleanup() {
  [[ -n "$INGEST_PID" ]] && kill -TERM "$INGEST_PID" 2>/dev/null && wait "$INGEST_PID" 2>/dev/null
  "$ROOT/tools/services/services.sh" down >/dev/null 2>&1 || log "services down failed"
  rm -rf "$RUN"
}
trap cleanup EXIT

log "starting Kafka and HBase"
"$ROOT/tools/services/services.sh" up kafka hbase >"$RUN/services.log" 2>&1 || {
  tail -20 "$RUN/services.log" >&2; exit 1; }
# shellcheck disable=SC1091
source "$RUN/services/services.env"
"$BUILD/tools/segctl" topics create --bootstrap "$KAFKA_BOOTSTRAP" \
  --topics events:4,events-deadletter:1,user-changes:4 >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BUILD/ingest/seg-ingest" --metrics-host 127.0.0.1 --metrics-port "$port" \
  --set "kafka.bootstrap_servers=$KAFKA_BOOTSTRAP" --set store.backend=thrift \
  --set "store.thrift.host=$HBASE_THRIFT_HOST" --set "store.thrift.port=$HBASE_THRIFT_PORT" \
  >"$RUN/ingest.log" 2>&1 &
INGEST_PID=$!

log "producing $EVENTS events"
"$BUILD/tools/seg-loadgen" --bootstrap "$KAFKA_BOOTSTRAP" --users 50000 --seed 1 --rate 0 \
  --events "$EVENTS" --duplicate-share 0 --malformed-share 0 >"$RUN/loadgen.out" 2>/dev/null

written() {
  curl -s "http://127.0.0.1:$port/metrics" |
    awk '$1 == "seg_ingest_events_written_total" { printf "%d", $2 }'
}
deadline=$((SECONDS + 600))
n=0
while ((SECONDS < deadline)); do
  n=$(written || echo 0)
  [[ -n "$n" ]] && ((n >= EVENTS)) && break
  sleep 1
done
((n >= EVENTS)) || { log "only ${n:-0} of $EVENTS events written in time"; exit 1; }
kill -TERM "$INGEST_PID"
wait "$INGEST_PID" || true
INGEST_PID=""

log "$n events written; stopping HBase (TERM flushes the memstores)"
master=$(cat "$RUN/services/hbase/master.pid")
kill -TERM "$master"
for _ in $(seq 600); do kill -0 "$master" 2>/dev/null || break; sleep 0.2; done
kill -0 "$master" 2>/dev/null && { log "HMaster did not stop in 120 s"; exit 1; }
hfiles=$(find "$RUN/services/hbase/root/data/default/users" -path '*/e/*' -type f \
           ! -name '.*' -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')
((hfiles > 0)) || { log "no HFiles under users/e"; exit 1; }
python3 - "$out" "$n" "$hfiles" <<'EOF'
import json, sys
out, n, hfiles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
json.dump({"figures": {
    "events_written": n,
    "hfile_bytes": hfiles,
    "hbase_hfile_bytes_per_event": round(hfiles / n, 1)},
  "notes": "Real HBase 2.6.1 standalone (tools/services), users:e as seg-store-admin creates it "
           "(no compression, no block encoding), seg-ingest writing seg-loadgen events "
           "(50000 users, no duplicates or malformed), HFiles after the shutdown flush "
           "(one per region and family; nothing to drop, so a major compaction keeps the same "
           "cells). Per-replica bytes: HDFS keeps 3 copies."}, open(out, "w"), indent=2)
print(json.dumps({"hbase_hfile_bytes_per_event": round(hfiles / n, 1)}))
EOF

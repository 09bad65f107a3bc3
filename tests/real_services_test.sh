#!/usr/bin/env bash
# The launcher itself (tools/services/services.sh), ctest label `real`:
# all three services come up on loopback and answer, a kafka3 broker stops
# and comes back, and `down` leaves no process and no data directory.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SVC="$ROOT/tools/services/services.sh"
export SEG_SERVICES_DIR="${SEG_SERVICES_DIR:?}"
rm -rf "$SEG_SERVICES_DIR/kafka" "$SEG_SERVICES_DIR/kafka3" "$SEG_SERVICES_DIR/hbase"
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() { "$SVC" down >/dev/null 2>&1 || true; }
trap cleanup EXIT

"$SVC" up kafka kafka3 hbase
# shellcheck disable=SC1091
. "$SEG_SERVICES_DIR/services.env"
[[ -n "${KAFKA_BOOTSTRAP:-}" && -n "${KAFKA3_BOOTSTRAP:-}" && -n "${HBASE_THRIFT_PORT:-}" ]] ||
  fail "env file incomplete: $(cat "$SEG_SERVICES_DIR/services.env")"
[[ "$KAFKA_BOOTSTRAP$KAFKA3_BOOTSTRAP" != *[!0-9.:,]* && "$KAFKA3_BOOTSTRAP" == 127.0.0.1:* ]] ||
  fail "not loopback: $KAFKA_BOOTSTRAP $KAFKA3_BOOTSTRAP"
kcat -b "$KAFKA3_BOOTSTRAP" -L -m 5 | grep -q " 3 brokers:" || fail "kafka3 has not 3 brokers"
if [[ -x "${SEG_BUILD_DIR:-}/store/seg-store-admin" ]]; then
  tables=$("$SEG_BUILD_DIR/store/seg-store-admin" list --thrift "127.0.0.1:$HBASE_THRIFT_PORT")
  for t in users due segmeta; do grep -qx "$t" <<<"$tables" || fail "table $t missing: $tables"; done
fi

"$SVC" node-stop kafka3 2
kcat -b "$KAFKA3_BOOTSTRAP" -L -m 5 | grep -q " 2 brokers:" || fail "node 2 still listed"
"$SVC" node-start kafka3 2
kcat -b "$KAFKA3_BOOTSTRAP" -L -m 5 | grep -q " 3 brokers:" || fail "node 2 not back"

pids=$(cat "$SEG_SERVICES_DIR"/*/*.pid)
"$SVC" down
for p in $pids; do ! kill -0 "$p" 2>/dev/null || fail "pid $p still running after down"; done
left=$(find "$SEG_SERVICES_DIR" -mindepth 2 -maxdepth 2 \( -name 'data*' -o -name root -o -name zk -o -name tmp -o -name '*.pid' \))
[[ -z "$left" ]] || fail "left behind: $left"
trap - EXIT
echo "1 passed, 0 failed"

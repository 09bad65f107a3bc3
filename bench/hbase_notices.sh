#!/usr/bin/env bash
# tools/dev bench hbase_notices [--puts N] [--runs R]: the HBase change-notice
# endpoint (coprocessor-bridge/hbase) on real HBase + Kafka.
#
# One HBase with the endpoint jar (SEG_HBASE_NOTICES=1, own run dir), warmed
# by two runs; then R runs with the peer on alternating with R runs with the
# peer removed (same JVM, so JIT and caches are alike). Each run: N single-row Puts one
# after the other through Thrift2 (the plain store client). Figures:
#   notice lag = client got the Put's ack -> the notice consumed from
#   user-changes (p50/p99 over all runs' notices, median of runs' p50/p99);
#   CPU of the HBase JVM (master + region server + ZooKeeper: standalone)
#   per 1000 puts, median over runs, peer on vs off.
# The runs are DISABLED_BenchLagAndCpu of hbase_notices_real_test (test
# build: SEG_NOTICES_TEST_BIN, else build/default's). Services are stopped
# at the end, also on failure.
set -euo pipefail
out="${1:?usage: hbase_notices.sh OUT.json [--puts N] [--runs R]}"
shift
puts=3000 runs=5
while [[ $# -gt 0 ]]; do
  case "$1" in --puts) puts="$2"; shift 2 ;; --runs) runs="$2"; shift 2 ;; *) echo "unknown $1" >&2; exit 2 ;; esac
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${SEG_NOTICES_TEST_BIN:-$ROOT/build/default/coprocessor-bridge/hbase_notices_real_test}"
[[ -x "$bin" ]] || { echo "hbase_notices: $bin not built (tools/dev build default)" >&2; exit 2; }
export SEG_SERVICES_DIR="${SEG_BENCH_SERVICES_DIR:-$ROOT/build/services-bench-notices}"
export SEG_BUILD_DIR="${SEG_ADMIN_BUILD_DIR:-$(dirname "$(dirname "$bin")")}"
svc="$ROOT/tools/services/services.sh"
trap '"$svc" down kafka hbase >/dev/null 2>&1 || true' EXIT
SEG_HBASE_NOTICES=1 "$svc" up kafka hbase >&2
log="$SEG_SERVICES_DIR/bench-notices.log"
: >"$log"
run() {  # run 1 (notices on) | 0 (peer removed) | 2 (peer on, dry run: nothing sent)
  SEG_BENCH_NOTICES="$(( $1 == 1 ))" SEG_BENCH_PUTS="$puts" "$bin" --gtest_also_run_disabled_tests \
    --gtest_filter='*BenchLagAndCpu*' 2>&1 | grep '^BENCH' | sed "s/^/run=$1 /" | tee -a "$log" >&2
}
cp="$(cat "$SEG_SERVICES_DIR/hbase.classpath"):$SEG_SERVICES_DIR/hbase-notices/seg-hbase-notices.jar"
# SEG_BENCH_NOTICES_SET="KEY=VALUE ...": extra peer settings for the notices-on
# runs, e.g. seg.store.notify.kafka.properties.linger.ms=0 to compare producer settings.
extra=()
for kv in ${SEG_BENCH_NOTICES_SET:-}; do extra+=(--set "$kv"); done
setup() { java -cp "$SEG_SERVICES_DIR/hbase/conf:$cp" org.segengine.notices.Setup "$@" >>"$SEG_SERVICES_DIR/bench-setup.log" 2>&1; }
bootstrap="$(cat "$SEG_SERVICES_DIR/hbase/notices_bootstrap")"
[[ ${#extra[@]} -gt 0 ]] && setup --bootstrap "$bootstrap" "${extra[@]}"
run 1 >/dev/null  # warm-up (JIT), not counted
run 1 >/dev/null
run 1 >/dev/null
: >"$log"
# On and off alternate (peer removed and added again), so that warm-up
# drifts hit both alike.
for ((i = 0; i < runs; i++)); do
  run 1
  # The same peer with the endpoint's dry run: HBase's replication source
  # reads and ships the WAL, the endpoint builds the notices and sends none.
  setup --bootstrap "$bootstrap" --set seg.store.notify.dry_run=true
  run 2
  setup --remove
  run 0
  setup --bootstrap "$bootstrap" "${extra[@]}"
done
python3 - "$log" "$out" "$puts" "$runs" <<'PY'
import json, re, statistics, sys, datetime, os
log, out, puts, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cpu = {"1": [], "0": [], "2": []}; p50 = []; p99 = []; rate = {"1": [], "0": [], "2": []}
for line in open(log):
    m = re.search(r"run=(\d) BENCH notices=\d puts=\d+ put_rate=(\d+)/s .*cpu_per_1000_puts=([\d.]+)s", line)
    if m:
        rate[m.group(1)].append(int(m.group(2))); cpu[m.group(1)].append(float(m.group(3)))
    m = re.search(r"notice_lag_ms p50=(\d+) p99=(\d+)", line)
    if m:
        p50.append(int(m.group(1))); p99.append(int(m.group(2)))
med = statistics.median
f = {
    "puts_per_run": puts, "runs_each": runs,
    "notice_lag_p50_ms": med(p50), "notice_lag_p99_ms": med(p99),
    "hbase_cpu_s_per_1000_puts_notices_on": round(med(cpu["1"]), 3),
    "hbase_cpu_s_per_1000_puts_notices_off": round(med(cpu["0"]), 3),
    # Peer on, endpoint in dry run: HBase's own replication cost.
    "hbase_cpu_s_per_1000_puts_replication_dry_run": round(med(cpu["2"]), 3),
    "put_rate_per_s_notices_on": med(rate["1"]), "put_rate_per_s_notices_off": med(rate["0"]),
    "put_rate_per_s_replication_dry_run": med(rate["2"]),
}
notes = os.environ.get("SEG_BENCH_NOTES", "")
json.dump({"name": "hbase_notices", "command": "tools/dev bench hbase_notices", "notes": notes,
           "date": datetime.date.today().isoformat(),
           "machine": f"{os.cpu_count()} cores, Linux", "figures": f}, open(out, "w"), indent=2)
print(json.dumps(f))
PY

#!/usr/bin/env bash
# tools/dev bench hbase_notices [--puts N] [--runs R] [--rate P]: the HBase change-notice
# endpoint (coprocessor-bridge/hbase) on real HBase + Kafka.
#
# One HBase with the endpoint jar (SEG_HBASE_NOTICES=1, own run dir), warmed
# by two runs; then R runs with the peer on alternating with R runs with the
# peer removed (same JVM, so JIT and caches are alike). Each run: N single-row Puts one
# after the other through Thrift2 (the plain store client), paced at P puts/s
# (default 1500; 0 = as fast as they go) so that every mode carries the same
# load. Figures:
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
puts=3000 runs=5 rate=1500
while [[ $# -gt 0 ]]; do
  case "$1" in
    --puts) puts="$2"; shift 2 ;; --runs) runs="$2"; shift 2 ;; --rate) rate="$2"; shift 2 ;;
    *) echo "unknown $1" >&2; exit 2 ;;
  esac
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
  SEG_BENCH_NOTICES="$(( $1 == 1 ))" SEG_BENCH_PUTS="$puts" SEG_BENCH_PUT_RATE="$rate" "$bin" --gtest_also_run_disabled_tests \
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
  # Rolled first: a new peer starts at the head of the current WAL and would
  # re-announce the runs before it inside the next measured run.
  setup --bootstrap "$bootstrap" --roll-wal "${extra[@]}"
done
python3 - "$log" "$out" "$puts" "$runs" "$rate" <<'PY'
import json, re, statistics, sys, datetime, os
log, out, puts, runs, offered = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
cpu = {"1": [], "0": [], "2": []}; threads = {"1": [], "0": [], "2": []}; p50 = []; p99 = []; rate = {"1": [], "0": [], "2": []}
for line in open(log):
    m = re.search(r"run=(\d) BENCH notices=\d puts=\d+ put_rate=(\d+)/s .*cpu_per_1000_puts=([\d.]+)s", line)
    if m:
        rate[m.group(1)].append(int(m.group(2))); cpu[m.group(1)].append(float(m.group(3)))
    m = re.search(r"run=(\d) BENCH threads_cpu_per_1000_puts (.*)", line)
    if m:
        threads[m.group(1)].append({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)s", m.group(2))})
    m = re.search(r"notice_lag_ms p50=(\d+) p99=(\d+)", line)
    if m:
        p50.append(int(m.group(1))); p99.append(int(m.group(2)))
med = statistics.median
f = {
    "puts_per_run": puts, "runs_each": runs, "offered_puts_per_s": offered,
    "notice_lag_p50_ms": med(p50), "notice_lag_p99_ms": med(p99),
    "hbase_cpu_s_per_1000_puts_notices_on": round(med(cpu["1"]), 3),
    "hbase_cpu_s_per_1000_puts_notices_off": round(med(cpu["0"]), 3),
    # Peer on, endpoint in dry run: HBase's own replication cost.
    "hbase_cpu_s_per_1000_puts_replication_dry_run": round(med(cpu["2"]), 3),
    "put_rate_per_s_notices_on": med(rate["1"]), "put_rate_per_s_notices_off": med(rate["0"]),
    "put_rate_per_s_replication_dry_run": med(rate["2"]),
}
# The notices' own threads in the notices-on runs (replication source reader
# and shipper, the endpoint's producer), per 1000 puts, and as a share of the
# JVM's other threads in the same runs: the direct cost, free of the run-to-run
# noise of two whole-process figures. GC and JIT are listed beside it.
for g in ("replication", "producer", "gc", "jit", "other"):
    for mode, name in (("1", "on"), ("0", "off")):
        vals = [t.get(g, 0.0) for t in threads[mode]]
        if vals:
            f[f"hbase_threads_cpu_s_per_1000_puts_{g}_{name}"] = round(med(vals), 4)
on_runs = threads["1"]
if on_runs:
    direct = [t.get("replication", 0) + t.get("producer", 0) for t in on_runs]
    rest = [sum(t.values()) - d for t, d in zip(on_runs, direct)]
    f["notice_threads_cpu_over_rest"] = round(med([d / r for d, r in zip(direct, rest) if r > 0]), 3)
notes = os.environ.get("SEG_BENCH_NOTES", "")
json.dump({"name": "hbase_notices", "command": "tools/dev bench hbase_notices", "notes": notes,
           "date": datetime.date.today().isoformat(),
           "machine": f"{os.cpu_count()} cores, Linux", "figures": f}, open(out, "w"), indent=2)
print(json.dumps(f))
PY

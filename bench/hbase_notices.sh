#!/usr/bin/env bash
# tools/dev bench hbase_notices [--puts N] [--runs R] [--rate P]: the HBase change-notice
# endpoint (coprocessor-bridge/hbase) on real HBase + Kafka.
#
# Three HBase JVMs, one per mode (notices on, the endpoint in dry run, no
# peer; see below), each warmed by W runs in its mode (--warmup, 6); then R rounds of
# one run per mode. Each run: N single-row Puts one
# after the other through Thrift2 (the plain store client), paced at P puts/s
# (default 1500; 0 = as fast as they go) so that every mode carries the same
# load. Figures:
#   notice lag = client got the Put's ack -> the notice consumed from
#   user-changes (p50/p99 over all runs' notices, median of runs' p50/p99);
#   CPU of the HBase JVM (master + region server + ZooKeeper: standalone)
#   per 1000 puts, median over runs, on vs off; the region server's (the
#   JVM less its ZooKeeper server's threads), and per thread group and name.
# The runs are DISABLED_BenchLagAndCpu of hbase_notices_real_test (test
# build: SEG_NOTICES_TEST_BIN, else build/default's). Services are stopped
# at the end, also on failure.
set -euo pipefail
out="${1:?usage: hbase_notices.sh OUT.json [--puts N] [--runs R] [--rate P] [--warmup W]}"
shift
puts=3000 runs=5 rate=1500 warmup=6
while [[ $# -gt 0 ]]; do
  case "$1" in
    --puts) puts="$2"; shift 2 ;; --runs) runs="$2"; shift 2 ;; --rate) rate="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    *) echo "unknown $1" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${SEG_NOTICES_TEST_BIN:-$ROOT/build/default/coprocessor-bridge/hbase_notices_real_test}"
[[ -x "$bin" ]] || { echo "hbase_notices: $bin not built (tools/dev build default)" >&2; exit 2; }
base="${SEG_BENCH_SERVICES_DIR:-$ROOT/build/services-bench-notices}"
export SEG_BUILD_DIR="${SEG_ADMIN_BUILD_DIR:-$(dirname "$(dirname "$bin")")}"
svc="$ROOT/tools/services/services.sh"
# Each mode in an HBase JVM of its own, each kept in its mode for the whole
# bench (as a production region server keeps its peer): toggling the peer
# inside one JVM made its JIT recompile the replication and producer paths
# after every switch, which no long-running server pays (one_jvm mode,
# SEG_BENCH_ONE_JVM=1, measures that way for comparison).
#   on:  peer with the endpoint (notices sent); also runs the Kafka broker
#   dry: the same peer with seg.store.notify.dry_run=true: HBase's
#        replication source reads and ships the WAL, the endpoint builds the
#        notices and sends none
#   off: no peer
one_jvm="${SEG_BENCH_ONE_JVM:-0}"
modes=(on dry off)
[[ "$one_jvm" == 1 ]] && modes=(on)
down_all() { for m in "${modes[@]}"; do SEG_SERVICES_DIR="$base/$m" "$svc" down kafka hbase >/dev/null 2>&1 || true; done; }
trap down_all EXIT
SEG_SERVICES_DIR="$base/on" SEG_HBASE_NOTICES=1 "$svc" up kafka hbase >&2
bootstrap="$(cat "$base/on/hbase/notices_bootstrap")"
if [[ "$one_jvm" != 1 ]]; then
  SEG_SERVICES_DIR="$base/dry" SEG_HBASE_NOTICES=1 SEG_HBASE_NOTICES_BOOTSTRAP="$bootstrap" "$svc" up hbase >&2
  SEG_SERVICES_DIR="$base/off" "$svc" up hbase >&2
  # The bench test reads the broker's address from its services.env.
  for m in dry off; do echo "export KAFKA_BOOTSTRAP=$bootstrap" >>"$base/$m/services.env"; done
fi
log="$base/bench-notices.log"
: >"$log"
dir_of() { if [[ "$one_jvm" == 1 ]]; then echo "$base/on"; else echo "$base/$1"; fi; }
run() {  # run 1 (notices on) | 0 (off) | 2 (dry run: nothing sent)
  local m; m=$(case $1 in 1) echo on ;; 0) echo off ;; 2) echo dry ;; esac)
  SEG_SERVICES_DIR="$(dir_of "$m")" SEG_BENCH_NOTICES="$(( $1 == 1 ))" SEG_BENCH_PUTS="$puts" \
    SEG_BENCH_PUT_RATE="$rate" "$bin" --gtest_also_run_disabled_tests \
    --gtest_filter='*BenchLagAndCpu*' 2>&1 | grep '^BENCH' | sed "s/^/run=$1 /" | tee -a "$log" >&2
}
cp="$(cat "$base/on/hbase.classpath"):$base/on/hbase-notices/seg-hbase-notices.jar"
# SEG_BENCH_NOTICES_SET="KEY=VALUE ...": extra peer settings for the notices-on
# runs, e.g. seg.store.notify.kafka.properties.linger.ms=0 to compare producer settings.
extra=()
for kv in ${SEG_BENCH_NOTICES_SET:-}; do extra+=(--set "$kv"); done
setup() {  # setup MODE ARGS...: Setup against that mode's HBase
  local d; d="$(dir_of "$1")"; shift
  java -cp "$d/hbase/conf:$cp" org.segengine.notices.Setup "$@" >>"$base/bench-setup.log" 2>&1
}
[[ ${#extra[@]} -gt 0 ]] && setup on --bootstrap "$bootstrap" "${extra[@]}"
[[ "$one_jvm" != 1 ]] && setup dry --bootstrap "$bootstrap" --set seg.store.notify.dry_run=true
# Warm-up, not counted: W runs of every JVM in its mode. With three, the
# notices JVM's compiler and collector were still busy in the measured runs
# (C2 0.003-0.055 s per 1000 puts run to run; young GCs in the first ones).
for ((w = 0; w < warmup; w++)); do
  run 1 >/dev/null
  [[ "$one_jvm" != 1 ]] && { run 2 >/dev/null; run 0 >/dev/null; }
done
: >"$log"
# The modes alternate run by run, so that drifts of the machine hit all alike.
for ((i = 0; i < runs; i++)); do
  run 1
  if [[ "$one_jvm" == 1 ]]; then
    setup on --bootstrap "$bootstrap" --set seg.store.notify.dry_run=true
    run 2
    setup on --remove
    run 0
    # Rolled first: a new peer starts at the head of the current WAL and
    # would re-announce the runs before it inside the next measured run.
    setup on --bootstrap "$bootstrap" --roll-wal "${extra[@]}"
  else
    run 2
    run 0
  fi
done
python3 - "$log" "$out" "$puts" "$runs" "$rate" <<'PY'
import json, re, statistics, sys, datetime, os
log, out, puts, runs, offered = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
cpu = {"1": [], "0": [], "2": []}; threads = {"1": [], "0": [], "2": []}; p50 = []; p99 = []; rate = {"1": [], "0": [], "2": []}
names = {"1": [], "0": [], "2": []}
first_tenth = []  # worst lag among each run's first tenth of puts (after ~30 s of quiet)
for line in open(log):
    m = re.search(r"run=(\d) BENCH notices=\d puts=\d+ put_rate=(\d+)/s .*cpu_per_1000_puts=([\d.]+)s", line)
    if m:
        rate[m.group(1)].append(int(m.group(2))); cpu[m.group(1)].append(float(m.group(3)))
    m = re.search(r"run=(\d) BENCH threads_cpu_per_1000_puts (.*)", line)
    if m:
        threads[m.group(1)].append({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)s", m.group(2))})
    m = re.search(r"run=(\d) BENCH thread_names_cpu_per_1000_puts (.*)", line)
    if m:
        names[m.group(1)].append({k: float(v) for k, v in re.findall(r"(\S+)=([\d.]+)s", m.group(2))})
    m = re.search(r"notice_lag_max_ms_by_tenth \(ack->read, ack->sent\) (\d+)/", line)
    if m:
        first_tenth.append(int(m.group(1)))
    m = re.search(r"notice_lag_ms p50=(\d+) p99=(\d+)", line)
    if m:
        p50.append(int(m.group(1))); p99.append(int(m.group(2)))
med = statistics.median
f = {
    "puts_per_run": puts, "runs_each": runs, "offered_puts_per_s": offered,
    "notice_lag_p50_ms": med(p50), "notice_lag_p99_ms": med(p99),
    "notice_lag_max_ms_first_tenth_after_quiet": med(first_tenth) if first_tenth else None,
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
for g in ("replication", "producer", "gc", "jit", "zookeeper", "other"):
    for mode, name in (("1", "on"), ("0", "off"), ("2", "dry_run")):
        vals = [t.get(g, 0.0) for t in threads[mode]]
        if vals:
            f[f"hbase_threads_cpu_s_per_1000_puts_{g}_{name}"] = round(med(vals), 4)
on_runs = threads["1"]
if on_runs:
    direct = [t.get("replication", 0) + t.get("producer", 0) for t in on_runs]
    rest = [sum(t.values()) - d for t, d in zip(on_runs, direct)]
    f["notice_threads_cpu_over_rest"] = round(med([d / r for d, r in zip(direct, rest) if r > 0]), 3)
# The region server's own CPU: the JVM less the ZooKeeper server that
# standalone HBase runs inside it (production runs ZooKeeper on machines of
# its own; the log-position update of every shipment is a ZooKeeper write).
def region_server(leave_out):
    """Median CPU per mode over the JVM's thread groups less `leave_out`."""
    out = {}
    for mode, name in (("1", "on"), ("0", "off"), ("2", "dry_run")):
        vals = [sum(v for g, v in t.items() if g not in leave_out) for t in threads[mode]]
        if vals:
            out[name] = med(vals)
    return out
def ratios_over_off(cpu_by_mode, suffix):
    if cpu_by_mode.get("on") and cpu_by_mode.get("off"):
        f[f"region_server_cpu_on_over_off{suffix}"] = round(cpu_by_mode["on"] / cpu_by_mode["off"], 3)
        if cpu_by_mode.get("dry_run"):
            f[f"region_server_cpu_dry_run_over_off{suffix}"] = round(
                cpu_by_mode["dry_run"] / cpu_by_mode["off"], 3)
rs = region_server({"zookeeper"})
for name, v in rs.items():
    f[f"region_server_cpu_s_per_1000_puts_{name}"] = round(v, 4)
# The same without the JIT compiler threads: in the bench's 10 minutes C2
# never settled in the notices JVM (0.003-0.125 s per 1000 puts run to run),
# which a region server running for days amortises; both figures are kept.
ratios_over_off(region_server({"zookeeper", "jit"}), "_without_jit")
ratios_over_off(rs, "")
detail = {}
# Where the difference is: thread names whose median CPU differs most on vs off.
if names["1"] and names["0"]:
    keys = set().union(*names["1"], *names["0"])
    diff = {k: med([n.get(k, 0.0) for n in names["1"]]) - med([n.get(k, 0.0) for n in names["0"]])
            for k in keys}
    top = sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:12]
    detail = {"thread_names_on_minus_off_s_per_1000_puts": {k: round(v, 4) for k, v in top}}
notes = os.environ.get("SEG_BENCH_NOTES", "")
json.dump({"name": "hbase_notices", "command": "tools/dev bench hbase_notices", "notes": notes,
           "date": datetime.date.today().isoformat(),
           "machine": f"{os.cpu_count()} cores, Linux", "figures": f, "detail": detail},
          open(out, "w"), indent=2)
print(json.dumps(f))
PY

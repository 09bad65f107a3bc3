#!/usr/bin/env python3
"""Component benchmarks of the pipeline's processes, as they run in it.

  bench/stages.py --build-dir build/release --out bench/results/stages.json
  (tools/dev bench stages)

The capacity model (tools/capacity.py) needs the CPU per event of every
process on the machine. Some of them no in-process benchmark sees as they
run in the pipeline: seg-loadgen (the traffic), kafka-local (the mock
brokers, which scan their log on every fetch), seg-segmenter's handling of
each notice and batch around the parts script_host, bot and segmenter
benchmarks measure; and ingest's store writes are costlier in a seg-store
that runs for minutes over seg-loadgen's users than in ingest_bench's short
in-process run. This runs the real binaries, with the local stack's flags
and seg-loadgen's 50,000 users, in three stages:

  produce: kafka-local (3 brokers, local-stack.sh's topics) + seg-loadgen;
  ingest:  the same + seg-store + seg-ingest (events in, rows written,
           notices out; nothing consumes the notices);
  segment: the two seg-segmenters in the local stack (local-stack.sh):
           their CPU with the notices, segmentations and cells read, and
           kafka-local's; tools/capacity.py takes from it only what the
           segmenters spend beyond the kernels other benchmarks measure
           (per notice and per second), and what kafka-local spends beyond
           the ingest stage's fit (serving the segmenters' group).

Each at several fixed rates; each process's CPU (utime + stime from /proc)
over the middle of each window. Batching by time (linger, batch windows,
fetch waits) makes part of the cost per second, not per event, so each
process is fitted as cores = a x rate + b: a is CPU per event, b the CPU
per second whatever the rate. Standard library only.
"""
import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
import stack_status as sm  # noqa: E402

TOPICS = "events:8,events-deadletter:2,user-changes:8,segmentation-results:8"  # local-stack.sh
# What local-stack.sh sets on kafka-local's consumers.
KAFKA_SETS = ["session.timeout.ms=6000", "heartbeat.interval.ms=1000", "fetch.wait.max.ms=20"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fit(points):
    """Least squares cores = a * rate + b over [(rate, cores)], a >= 0 (a
    process whose CPU falls as the rate rises is all per-second cost: kafka-
    local answers fetches sooner and fuller the busier it is)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    a = max(0.0, sum((x - mx) * (y - my) for x, y in points) / var)
    return a, my - a * mx


def wait_for(what, ready, procs, timeout=30):
    deadline = time.monotonic() + timeout
    while not ready():
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            sys.exit(f"stages bench: {what} did not start")
        time.sleep(0.1)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def run_stage(name, build, tmp, args, rates):
    """Starts the stage's servers, runs seg-loadgen at each rate; rows of CPU."""
    tmp = tmp / name
    tmp.mkdir()
    procs, logs = {}, []

    def start(proc, cmd):
        log = open(tmp / f"{proc}.log", "w")
        logs.append(log)
        procs[proc] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    try:
        port_file = tmp / "kafka.bootstrap"
        start("kafka", [str(build / "tools/kafka-local"), "--brokers", "3", "--topics", TOPICS,
                        "--port-file", str(port_file)])
        wait_for("kafka-local", lambda: port_file.exists() and port_file.read_text().strip(),
                 procs.values())
        bootstrap = port_file.read_text().strip()
        metrics = None
        if name == "ingest":
            store_port_file = tmp / "store.port"
            start("store", [str(build / "store/seg-store"), "--data-dir", str(tmp / "store"),
                            "--port", str(free_port()), "--port-file", str(store_port_file)])
            wait_for("seg-store", lambda: store_port_file.exists() and
                     store_port_file.read_text().strip(), procs.values())
            store_port = store_port_file.read_text().strip()
            mport = free_port()
            metrics = f"127.0.0.1:{mport}"
            cmd = [str(build / "ingest/seg-ingest"), "--metrics-host", "127.0.0.1",
                   "--metrics-port", str(mport), "--set", f"kafka.bootstrap_servers={bootstrap}",
                   "--set", "store.backend=thrift", "--set", "store.thrift.host=127.0.0.1",
                   "--set", f"store.thrift.port={store_port}"]
            for p in KAFKA_SETS:
                cmd += ["--set", f"kafka.properties.{p}"]
            start("ingest", cmd)
            wait_for("seg-ingest", lambda: port_open(mport), procs.values())
        rows = []
        for i, rate in enumerate([rates[0]] + rates):  # the first window warms up (group join)
            gen = subprocess.Popen(
                [str(build / "tools/seg-loadgen"), "--bootstrap", bootstrap, "--users",
                 str(args.users), "--seed", str(i + 2), "--rate", str(int(rate)),
                 "--duration", str(args.seconds)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            pids = dict({k: p.pid for k, p in procs.items()}, loadgen=gen.pid)
            time.sleep(args.seconds * 0.25)  # start, metadata, the first batches
            t0, c0 = time.monotonic(), {k: cpu_seconds(p) for k, p in pids.items()}
            m0 = sm.scrape(metrics) if metrics else None
            time.sleep(args.seconds * 0.6)
            t1, c1 = time.monotonic(), {k: cpu_seconds(p) for k, p in pids.items()}
            m1 = sm.scrape(metrics) if metrics else None
            out, _ = gen.communicate(timeout=120)
            if i == 0:
                continue
            sent = next((int(w[5:]) for w in out.split() if w.startswith("sent=")), 0)
            offered = sent / args.seconds
            wall = t1 - t0
            row = {"rate": rate, "offered": round(offered), "events_per_s": round(offered)}
            if m0 and m1:
                # What ingest took in the window: the events the stage's
                # processes after seg-loadgen worked on (on a busy machine it
                # can fall behind what was sent).
                row["events_per_s"] = round((sm.total(m1, "seg_ingest_events_in_total") -
                                             sm.total(m0, "seg_ingest_events_in_total")) / wall)
            for k in pids:
                events = row["offered"] if k == "loadgen" else row["events_per_s"]
                row[f"{k}_cores"] = round((c1[k] - c0[k]) / wall, 4)
                row[f"{k}_us_per_event"] = round((c1[k] - c0[k]) / wall / max(events, 1) * 1e6, 2)
            print(f"{name} {rate:.0f}: {row}", file=sys.stderr, flush=True)
            rows.append(row)
        return rows
    finally:
        for p in reversed(list(procs.values())):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


# The segment stage's configurations: the product's, and one whose read
# delay coalesces more notices per segmentation. At the stage's rates the
# product segments ~0.9 of its notices, at the pipeline's sustained rate
# ~0.4: with one ratio only, a per-segmentation cost cannot be told from a
# per-notice one (capacity.py fits both over both configurations).
SEGMENT_CONFIGS = {"product": {},
                   "coalescing": {"segmenter.read_policy": "delay",
                                  "segmenter.read_delay_ms": "1000"}}


def run_segment_stage(build, tmp, args, rates, config="product"):
    """The segmenters in the local stack (local-stack.sh, as bench/pipeline.py
    starts it): only seg-segmenter's own CPU (and redis-server's) is read."""
    import pipeline  # bench/pipeline.py: the Stack driver
    tmp = tmp / f"segment-{config}"
    tmp.mkdir()
    stack = pipeline.Stack(build, SEGMENT_CONFIGS[config], args.users, tmp)
    try:
        rows = []
        for i, rate in enumerate([rates[0]] + rates):
            gen = stack.loadgen(rate, duration=args.seconds)
            pids = {k: p for k, p in stack.pids.items() if k.startswith(("segmenter", "kafka"))}
            time.sleep(args.seconds * 0.25)
            t0, a = stack.snapshot()
            c0 = {k: cpu_seconds(p) for k, p in pids.items()}
            r0 = cpu_seconds(stack.pids["redis"])
            time.sleep(args.seconds * 0.6)
            t1, b = stack.snapshot()
            c1 = {k: cpu_seconds(p) for k, p in pids.items()}
            r1 = cpu_seconds(stack.pids["redis"])
            stack.finish_loadgen(gen)
            stack.wait_drained(timeout=60)
            if i == 0:
                continue
            wall = t1 - t0

            def per_s(name, **labels):
                return (sm.total(b, name, **labels) - sm.total(a, name, **labels)) / wall

            events = per_s("seg_ingest_events_in_total")
            row = {"config": config, "rate": rate, "events_per_s": round(events),
                   "notices_per_s": round(per_s("seg_segmenter_notices_total")),
                   "segmentations_per_s": round(per_s("seg_segmenter_decisions_total",
                                                      decision="segmented")),
                   "cells_read_per_s": round(per_s("seg_segmenter_event_cells_read_total")),
                   "segmenter_cores": round(sum(c1[k] - c0[k] for k in pids
                                                if k.startswith("segmenter")) / wall, 4),
                   # kafka-local whole: capacity.py takes only what the
                   # segmenters' group adds beyond the ingest stage's fit.
                   "kafka_cores": round((c1["kafka"] - c0["kafka"]) / wall, 4),
                   "redis_cores": round((r1 - r0) / wall, 4)}
            row["notices_per_event"] = round(row["notices_per_s"] / max(events, 1), 3)
            row["segmentations_per_event"] = round(row["segmentations_per_s"] / max(events, 1), 3)
            row["segmenter_us_per_event"] = round(row["segmenter_cores"] / max(events, 1) * 1e6, 2)
            print(f"segment {config} {rate:.0f}: {row}", file=sys.stderr, flush=True)
            rows.append(row)
        return rows
    finally:
        stack.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--users", type=int, default=50000)
    ap.add_argument("--rates", default="15000,30000,45000")
    # The whole local stack keeps up with less than ingest alone: on a busy
    # machine a rate it cannot take says nothing of a segmenter's cost.
    ap.add_argument("--segment-rates", default="5000,10000,15000")
    ap.add_argument("--seconds", type=float, default=16.0, help="window per rate")
    args = ap.parse_args()
    build = pathlib.Path(args.build_dir)
    rates = [float(r) for r in args.rates.split(",")]
    figures, steps = {}, {}
    with tempfile.TemporaryDirectory(prefix="seg-stages-bench-") as tmp:
        for stage, procs in (("produce", ("loadgen", "kafka")),
                             ("ingest", ("loadgen", "kafka", "store", "ingest"))):
            rows = run_stage(stage, build, pathlib.Path(tmp), args, rates)
            steps[stage] = rows
            for proc in procs:
                x = "offered" if proc == "loadgen" else "events_per_s"
                a, b = fit([(r[x], r[f"{proc}_cores"]) for r in rows])
                figures[f"{stage}_{proc}_cpu_us_per_event"] = round(a * 1e6, 3)
                figures[f"{stage}_{proc}_fixed_cores"] = round(b, 4)
            if stage == "ingest":
                figures["ingest_kept_up"] = int(all(
                    r["events_per_s"] >= 0.9 * r["offered"] for r in rows))
        seg_rates = [float(r) for r in args.segment_rates.split(",")]
        rows = run_segment_stage(build, pathlib.Path(tmp), args, seg_rates)
        steps["segment"] = rows
        # Only for capacity.py's split of the segmenters' cost between
        # notices and segmentations; the figures below are the product's.
        steps["segment"] += run_segment_stage(build, pathlib.Path(tmp), args, seg_rates[-2:],
                                              config="coalescing")
        for proc in ("segmenter", "redis"):
            a, b = fit([(r["events_per_s"], r[f"{proc}_cores"]) for r in rows
                        if r["config"] == "product"])
            figures[f"segment_{proc}_cpu_us_per_event"] = round(a * 1e6, 3)
            figures[f"segment_{proc}_fixed_cores"] = round(b, 4)
        for k in ("notices_per_event", "segmentations_per_event"):
            product = [r for r in rows if r["config"] == "product"]
            figures[f"segment_{k}"] = round(sum(r[k] for r in product) / len(product), 3)
    figures["users"] = args.users
    notes = (f"seg-loadgen ({args.users} users, its default linger) at {args.rates} events/s "
             f"(segment stage: {args.segment_rates}), "
             f"{args.seconds:.0f} s each after a warm-up window, CPU from /proc over the middle "
             "60% of each window. produce: kafka-local (3 brokers, local-stack.sh's topics) + "
             "seg-loadgen. ingest: the same + seg-store + seg-ingest (local-stack.sh's flags). "
             "segment: the local stack (local-stack.sh): the seg-segmenters', kafka-local's and "
             "redis-server's CPU with notices, segmentations and cells read per second (capacity.py "
             "takes only what is beyond other benchmarks' kernels and the ingest stage's fit), "
             "in the product configuration and, at the two top rates, with a 1000 ms read delay "
             "(fewer segmentations per notice: capacity.py tells per-notice from "
             "per-segmentation cost over both). "
             "STAGE_PROC_cpu_us_per_event and STAGE_PROC_fixed_cores: least-squares cores = a x "
             "rate + b over the rates (a per event, b per second whatever the rate).")
    pathlib.Path(args.out).write_text(json.dumps(
        {"figures": figures, "steps": steps, "notes": notes}, indent=2) + "\n")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

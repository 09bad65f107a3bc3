#!/usr/bin/env python3
"""The pipeline benchmark: the whole local stack on one machine.

  bench/pipeline.py --build-dir build/release --out bench/results/pipeline.json [--quick] [--real]
  (tools/dev bench pipeline [--real]; with --real the figures go to pipeline_real.json)

--real runs the stack on a real Kafka broker and a real HBase with its
Thrift2 gateway (their JVMs' CPU is in the CPU shares: kafka, hbase,
hbase_thrift).

For each configuration (the product as configured, then the baselines: skip
cache and bot blacklist off; one PFADD per segment-day; one store read per
user) it starts tools/local-stack.sh without traffic and:
  1. probe: seg-loadgen sends a burst as fast as it can; the events per second
     the pipeline needs to drain it (events consumed by ingest AND notices by
     the segmenters) is the first estimate of capacity C;
  2. steps: seg-loadgen at a fixed rate R (from 0.6 C) for a window; R is
     sustained when ingest keeps up with what was sent and neither consumer
     lag (ingest on `events`, segmenters on `user-changes`) grows over the
     window after its warm-up (least-squares slope above 10% of the rate
     while the lag exceeds what is normally in flight = growing). Up
     from a sustained R by x1.2, down from a failed one by x0.8, until the
     boundary is bracketed;
  3. (first configuration only) at half the sustained rate: event-to-result
     p50/p99 from the segmenters' seg_segmenter_event_to_result_seconds
     histogram over the window, and each process's CPU share (utime+stime
     from /proc/<pid>/stat over the wall time; 1.0 = one core).
Standard library only. Prints progress on stderr, writes the JSON result.
"""
import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import stack_status as sm  # noqa: E402  (scrape/total/buckets/quantile)

CONFIGS = [
    ("product", {}),
    # The defaults before issue #18: every batch waits 300 ms, ingest batches
    # fill for 100 ms, seg-loadgen lingers 50 ms. Sustained rate measured
    # like the product's, latency at the product's half rate.
    ("before", {"segmenter.read_policy": "delay", "segmenter.read_delay_ms": "300",
                "ingest.batch_idle_ms": "0", "loadgen.linger_ms": "50"}),
    # Not in the default run (--only): each half of the change alone.
    ("before_waits", {"ingest.batch_idle_ms": "0", "loadgen.linger_ms": "50"}),
    ("before_policy", {"segmenter.read_policy": "delay", "segmenter.read_delay_ms": "300"}),
    ("product_linger50", {"loadgen.linger_ms": "50"}),
    ("no_skips", {"segmenter.skip_cache.enabled": "false",
                  "segmenter.bot_blacklist.enabled": "false"}),
    ("pfadd", {"stats.mode": "pfadd"}),
    ("unbatched_reads", {"segmenter.unbatched_reads": "true"}),
    # Not a baseline the issue asks for: what the segmenters' read delay (the
    # wait for a page load's burst to settle, segmenter.read_delay_ms) costs.
    ("no_read_delay", {"segmenter.read_delay_ms": "0"}),
]
# Read policies (segmenter.read_policy): latency and skips at the product's
# half rate, one stack each. The product's own (leading edge, 150 ms) is
# measured on its stack.
POLICIES = [
    ("leading_edge_200ms", {"segmenter.read_delay_ms": "200"}),
    ("delay_300ms", {"segmenter.read_policy": "delay", "segmenter.read_delay_ms": "300"}),
    ("delay_500ms", {"segmenter.read_policy": "delay", "segmenter.read_delay_ms": "500"}),
    ("leading_edge_300ms", {"segmenter.read_delay_ms": "300"}),
    # Follow-ups read_delay_ms after their oldest notice's ack (read_policy.h).
    ("adaptive", {"segmenter.read_policy": "adaptive"}),
    ("adaptive_200ms", {"segmenter.read_policy": "adaptive", "segmenter.read_delay_ms": "200"}),
]
PRODUCT_POLICY = "leading_edge_150ms"
# Where an event's milliseconds go, in path order (histograms over the half-rate window).
PATH = [
    ("ingest_batch_fill", "seg_ingest_poll_latency_seconds"),
    ("ingest_decode", "seg_ingest_decode_latency_seconds"),
    ("ingest_store_put", "seg_ingest_store_latency_seconds"),
    ("ingest_notice_ack", "seg_ingest_produce_latency_seconds"),
    ("segmenter_dwell", "seg_segmenter_dwell_seconds"),
    ("segmenter_read", "seg_segmenter_store_seconds"),
    ("segmenter_stats", "seg_segmenter_stats_seconds"),
    ("segmenter_batch", "seg_segmenter_batch_seconds"),
    ("event_to_result", "seg_segmenter_event_to_result_seconds"),
]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[pipeline {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine_busy_seconds():
    """CPU-seconds the whole machine has spent busy (all cores, /proc/stat)."""
    fields = pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / CLK_TCK


def cpu_seconds(pid):
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


class Stack:
    """tools/local-stack.sh --no-traffic --quiet, driven through its env file."""

    def __init__(self, build, segmenter_sets, users, tmp, real=False):
        self.build, self.users, self.tmp = build, users, tmp
        cfg = tmp / "stack.yaml"
        # ingest.* keys go to seg-ingest, loadgen.linger_ms to seg-loadgen,
        # the rest to the segmenters (stats.mode included: they write the HLLs).
        parts = {"ingest": {}, "segmenter": {}}
        self.linger_ms = None
        for k, v in segmenter_sets.items():
            if k == "loadgen.linger_ms":
                self.linger_ms = v
            else:
                parts["ingest" if k.startswith("ingest.") else "segmenter"][k] = v
        lines = ["set:"]
        for part, sets in parts.items():
            if sets:
                lines += [f"  {part}:"] + [f"    {k}: {v}" for k, v in sets.items()]
        cfg.write_text("\n".join(lines if len(lines) > 1 else []) + "\n")
        self.env_file = tmp / "stack.env"
        self.env_file.unlink(missing_ok=True)
        self.log = open(tmp / "local-stack.log", "w")
        self.proc = subprocess.Popen(
            [str(ROOT / "tools/local-stack.sh"), "--build-dir", str(build), "--config", str(cfg),
             "--no-traffic", "--quiet", "--env-file", str(self.env_file)] +
            (["--real"] if real else []),
            stdout=self.log, stderr=subprocess.STDOUT)
        # --real first starts a Kafka broker and HBase (~40 s on 2 cores).
        deadline = time.monotonic() + (300 if real else 120)
        while not self.env_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("local stack did not start:\n" +
                                   (tmp / "local-stack.log").read_text()[-3000:])
            time.sleep(0.1)
        env = dict(line.split("=", 1) for line in self.env_file.read_text().splitlines())
        self.kafka = env["KAFKA"]
        self.store = env["STORE"]
        self.endpoints = [env["INGEST_METRICS"]] + env["SEGMENTER_METRICS"].split()
        self.pids = {k[4:]: int(v) for k, v in env.items() if k.startswith("PID_")}
        self.produced = 0
        self.seed = 1
        usage = subprocess.run([str(build / "tools/seg-loadgen"), "--help"], capture_output=True,
                               text=True, timeout=30).stdout
        # Late and back-dated events are minutes to days old by construction:
        # their "event-to-result latency" is their age, so the latency window
        # sends on-time traffic only (when this seg-loadgen can).
        self.on_time_flags = [f for f in ("--late-share", "--history-share") if f in usage]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                log("local-stack did not stop in 90 s")
        self.log.close()

    def snapshot(self):
        return time.monotonic(), sm.merge(sm.scrape(e) for e in self.endpoints)

    def loadgen(self, rate, duration=0.0, events=0, on_time=False):
        self.seed += 1
        cmd = [str(self.build / "tools/seg-loadgen"), "--bootstrap", self.kafka, "--users",
               str(self.users), "--seed", str(self.seed), "--rate", str(int(rate)),
               "--duration", str(duration), "--events", str(events)]
        if self.linger_ms is not None:
            cmd += ["--linger-ms", str(self.linger_ms)]
        if on_time:
            for flag in self.on_time_flags:
                cmd += [flag, "0"]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def finish_loadgen(self, proc):
        out, _ = proc.communicate(timeout=120)
        sent = 0
        for word in out.split():
            if word.startswith("sent="):
                sent = int(word[5:])
        self.produced += sent
        return sent

    def drained(self, samples):
        return (sm.total(samples, "seg_ingest_events_in_total") >= self.produced and
                sm.total(samples, "seg_ingest_consumer_lag_messages") == 0 and
                sm.total(samples, "seg_segmenter_consumer_lag") == 0)

    def wait_drained(self, timeout):
        """Seconds until everything sent was consumed by both stages (None: timeout)."""
        start = time.monotonic()
        quiet = 0
        while time.monotonic() - start < timeout:
            _, s = self.snapshot()
            quiet = quiet + 1 if self.drained(s) else 0
            if quiet >= 2:  # two polls in a row: the segmenters' lag gauge lags a batch
                return time.monotonic() - start
            time.sleep(0.25)
        return None


def slope(points):
    """Least-squares slope of [(t, y)]."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else 0.0


def keeps_up(r, rate, offered):
    """Whether a window's rate is sustained: ingest takes what is offered and
    neither consumer's lag grows. Lag "grows" when its slope is beyond gauge
    noise (2-3% of the flow) AND the lag is beyond what is normally in
    flight (a batch or two; the segmenters also hold notices for
    segmenter.read_delay_ms). Until 2026-12-05 a slope up to 10% of the flow
    passed: a step whose ingest backlog grew by 6,500 events/s counted as
    sustained."""
    ingest_grows = (r["ingest_lag_slope"] > 0.02 * offered + 200 and
                    r["ingest_lag_end"] > 0.5 * offered + 1000)
    notices = max(r["notices_per_s"], 1.0)
    notices_grow = (r["notice_lag_slope"] > 0.03 * notices + 200 and
                    r["notice_lag_end"] > 1.0 * notices + 500)
    # Segmenters that consume nothing while notices wait (a stalled group:
    # seen on real Kafka) show a flat lag, not a growing one.
    notices_stalled = r["notices_per_s"] < 1.0 and r["notice_lag_end"] > 1000
    return (offered >= 0.9 * rate and r["ingest_per_s"] >= 0.97 * offered and
            not ingest_grows and not notices_grow and not notices_stalled)


def window(stack, rate, seconds, warmup_share=0.3):
    """Runs seg-loadgen at `rate` for `seconds`; returns what the stages did."""
    gen = stack.loadgen(rate, duration=seconds)
    start = time.monotonic()
    polls = []
    pids = dict(stack.pids, loadgen=gen.pid)
    # What the machine spent beside the pipeline's processes (other work on
    # a shared machine) over the steady part, sampled with each poll.
    cpu_polls = []
    while gen.poll() is None:
        polls.append(stack.snapshot())
        cpu_polls.append((machine_busy_seconds(),
                          sum(cpu_seconds(p) or 0.0 for p in pids.values())))
        time.sleep(0.5)
    sent = stack.finish_loadgen(gen)
    steady_i = [i for i, p in enumerate(polls) if p[0] - start >= warmup_share * seconds]
    if len(steady_i) < 3:
        steady_i = list(range(max(0, len(polls) - 3), len(polls)))
    steady = [polls[i] for i in steady_i]
    (t0, a), (t1, b) = steady[0], steady[-1]
    dt = max(t1 - t0, 1e-3)
    (busy0, own0), (busy1, own1) = cpu_polls[steady_i[0]], cpu_polls[steady_i[-1]]

    def rate_of(name, **labels):
        return (sm.total(b, name, **labels) - sm.total(a, name, **labels)) / dt

    offered = sent / seconds  # elapsed also counts process start and the final flush
    r = {
        "rate": rate,
        "offered": offered,
        "ingest_per_s": rate_of("seg_ingest_events_in_total"),
        "notices_per_s": rate_of("seg_segmenter_notices_total"),
        "segmented_per_s": rate_of("seg_segmenter_decisions_total", decision="segmented"),
        "cache_per_s": rate_of("seg_segmenter_decisions_total", decision="skipped_by_cache"),
        "bot_per_s": rate_of("seg_segmenter_decisions_total", decision="skipped_as_bot"),
        "cells_read_per_s": rate_of("seg_segmenter_event_cells_read_total"),
        "ingest_lag_slope": slope([(t, sm.total(s, "seg_ingest_consumer_lag_messages"))
                                   for t, s in steady]),
        "notice_lag_slope": slope([(t, sm.total(s, "seg_segmenter_consumer_lag"))
                                   for t, s in steady]),
        "ingest_lag_end": sm.total(b, "seg_ingest_consumer_lag_messages"),
        "notice_lag_end": sm.total(b, "seg_segmenter_consumer_lag"),
        # Cores the pipeline's processes used, and the rest of the machine.
        "pipeline_cores": (own1 - own0) / dt,
        "neighbour_cores": max(0.0, (busy1 - busy0) - (own1 - own0)) / dt,
    }
    r["sustained"] = keeps_up(r, rate, offered)
    log(f"  rate {rate:>7.0f}: offered {offered:7.0f}/s, ingest {r['ingest_per_s']:7.0f}/s, "
        f"notices {r['notices_per_s']:6.0f}/s, segmented {r['segmented_per_s']:6.0f}/s, "
        f"lag {r['ingest_lag_end']:.0f} ({r['ingest_lag_slope']:+.0f}/s) "
        f"{r['notice_lag_end']:.0f} ({r['notice_lag_slope']:+.0f}/s), cores "
        f"{r['pipeline_cores']:.2f} + {r['neighbour_cores']:.2f} beside -> "
        f"{'sustained' if r['sustained'] else 'NOT sustained'}")
    return r


def find_sustained(stack, args, max_steps):
    burst = args.probe_events
    gen = stack.loadgen(0, duration=0, events=burst)
    start = time.monotonic()
    stack.finish_loadgen(gen)
    if stack.wait_drained(timeout=args.drain_timeout) is None:
        log("  probe backlog did not drain in time; capacity is a lower bound")
    took = time.monotonic() - start
    capacity = burst / max(took, 1e-3)
    log(f"  probe: {burst} events drained in {took:.1f} s -> capacity ~{capacity:.0f} events/s")
    rate = max(1000.0, 0.6 * capacity)  # a drain batches better than a steady stream
    best, tried = None, []
    for _ in range(max_steps):
        r = window(stack, rate, args.window)
        tried.append(r)
        if stack.wait_drained(timeout=args.drain_timeout) is None:
            log("  backlog did not drain; continuing")
        if r["sustained"]:
            best = r if best is None or r["rate"] > best["rate"] else best
            if any(not t["sustained"] and t["rate"] > rate for t in tried):
                break  # bracketed from above already
            rate *= 1.2
        else:
            if best is not None:
                break  # bracketed
            rate = max(500.0, rate * 0.8)
    return best, tried, capacity


def half_rate(stack, rate, seconds):
    """Latency and CPU at `rate`: histogram and /proc deltas after a warm-up."""
    gen = stack.loadgen(rate, duration=seconds, on_time=True)
    pids = dict(stack.pids, loadgen=gen.pid)
    time.sleep(min(3.0, seconds / 4))
    t0, a = stack.snapshot()
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    while gen.poll() is None and time.monotonic() - t0 < seconds:
        time.sleep(0.25)
        if time.monotonic() - t0 > seconds * 0.7:
            break
    t1, b = stack.snapshot()
    cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
    stack.finish_loadgen(gen)
    stack.wait_drained(timeout=30)
    e2e = sm.delta_buckets(b, a, "seg_segmenter_event_to_result_seconds")
    dwell = sm.delta_buckets(b, a, "seg_segmenter_dwell_seconds")
    wall = t1 - t0
    cpu = {}
    for k in pids:
        if cpu0.get(k) is not None and cpu1.get(k) is not None:
            name = "segmenter" if k.startswith("segmenter") else k
            cpu[name] = cpu.get(name, 0.0) + (cpu1[k] - cpu0[k]) / wall
    def ms(v):  # None also when beyond the histogram's last bucket (30 s)
        return None if v is None or v == float("inf") else round(v * 1e3, 1)

    notices = sm.total(b, "seg_segmenter_notices_total") - sm.total(a, "seg_segmenter_notices_total")

    def decided(decision):
        return (sm.total(b, "seg_segmenter_decisions_total", decision=decision) -
                sm.total(a, "seg_segmenter_decisions_total", decision=decision))

    path = {}
    for step, name in PATH:
        count = sm.total(b, name + "_count") - sm.total(a, name + "_count")
        if count <= 0:
            continue
        mean = (sm.total(b, name + "_sum") - sm.total(a, name + "_sum")) / count
        hist = sm.delta_buckets(b, a, name)
        path[step] = {"mean_ms": round(mean * 1e3, 1), "p50_ms": ms(sm.quantile(hist, 0.5)),
                      "p99_ms": ms(sm.quantile(hist, 0.99))}
    return {
        "e2e_p50_ms": ms(sm.quantile(e2e, 0.5)),
        "e2e_p99_ms": ms(sm.quantile(e2e, 0.99)),
        "dwell_p99_ms": ms(sm.quantile(dwell, 0.99)),
        "notices_per_segmentation": round(notices / max(decided("segmented"), 1.0), 2),
        "skipped_by_cache_ratio": round(decided("skipped_by_cache") / max(notices, 1.0), 3),
        "path": path,
        "cpu": {k: round(v, 3) for k, v in sorted(cpu.items())},
        "on_time_only": bool(stack.on_time_flags),
    }


def lags(samples):
    return (sm.total(samples, "seg_ingest_consumer_lag_messages"),
            sm.total(samples, "seg_segmenter_consumer_lag"))


def rss_mb(pid):
    """Peak resident set (VmHWM) of `pid` in MiB, None when gone."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return None


def overload(stack, sustained, args):
    """60 s at 1.5x the sustained rate, then half rate until lag is normal.

    Normal lag = the highest lag seen over a window at half rate before the
    burst (x2, at least a batch); drained = both lags at or below it for 3
    polls in a row. Lost = users whose stored state is older than their
    newest event once everything drained (bench/stale_users)."""
    half, burst = sustained / 2, sustained * 1.5
    log(f"overload: {args.overload_normal_s:.0f} s at {half:.0f}/s, {args.overload_burst_s:.0f} s "
        f"at {burst:.0f}/s, then {half:.0f}/s until lag is normal")

    def phase(rate, seconds, until=None):
        gen = stack.loadgen(rate, duration=seconds, on_time=True)  # latency = delay, not age
        start = time.monotonic()
        polls = []
        while gen.poll() is None:
            polls.append(stack.snapshot())
            if until is not None and until(polls, start):
                gen.send_signal(signal.SIGINT)
                break
            time.sleep(1.0)
        sent = stack.finish_loadgen(gen)
        polls.append(stack.snapshot())
        return polls, sent, time.monotonic() - start

    normal, _, _ = phase(half, args.overload_normal_s)
    steady = normal[len(normal) // 3:]
    normal_ingest = max(lags(s)[0] for _, s in steady)
    normal_notices = max(lags(s)[1] for _, s in steady)
    limit_ingest = max(2 * normal_ingest, 5000)
    limit_notices = max(2 * normal_notices, 2000)
    burst_polls, burst_sent, burst_s = phase(burst, args.overload_burst_s)
    burst_end = time.monotonic()
    drained_at = [None]

    def drained(polls, start):
        recent = polls[-3:]
        if len(recent) == 3 and all(lags(s)[0] <= limit_ingest and lags(s)[1] <= limit_notices
                                    for _, s in recent):
            drained_at[0] = drained_at[0] or recent[0][0]
            return polls[-1][0] - drained_at[0] >= args.overload_tail_s
        drained_at[0] = None
        return False

    after_polls, _, _ = phase(half, args.overload_max_after_s, until=drained)
    stack.wait_drained(timeout=60)
    pids = dict(stack.pids)
    alive = {k: rss_mb(p) is not None for k, p in pids.items()}
    rss = {k: rss_mb(p) for k, p in pids.items()}

    (t0, a), (t1, b) = burst_polls[0], burst_polls[-1]
    n0, n1 = normal[len(normal) // 3], normal[-1]

    def skip_ratio(x, y):
        notices = sm.total(y, "seg_segmenter_notices_total") - sm.total(x, "seg_segmenter_notices_total")
        seg = (sm.total(y, "seg_segmenter_decisions_total", decision="segmented") -
               sm.total(x, "seg_segmenter_decisions_total", decision="segmented"))
        return round(1 - seg / notices, 3) if notices > 0 else None

    def p99(x, y):
        v = sm.quantile(sm.delta_buckets(y, x, "seg_segmenter_event_to_result_seconds"), 0.99)
        return None if v is None or v == float("inf") else round(v * 1e3)

    after_end = after_polls[-1]
    lost = None
    try:
        out = subprocess.run([str(stack.build / "bench/stale_users"), "--store", stack.store],
                             capture_output=True, text=True, timeout=300).stdout
        lost = json.loads(out.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as e:
        log(f"  stale_users failed: {e}")
    all_polls = burst_polls + after_polls
    r = {
        "normal_lag": [normal_ingest, normal_notices],
        "lag_limit": [limit_ingest, limit_notices],
        "burst_rate": round(burst),
        "burst_offered": round(burst_sent / max(burst_s, 1e-3)),
        "peak_ingest_lag": max(lags(s)[0] for _, s in all_polls),
        "peak_notice_lag": max(lags(s)[1] for _, s in all_polls),
        "e2e_p99_ms_normal": p99(n0[1], n1[1]),
        "e2e_p99_ms_burst": p99(a, b),
        "e2e_p99_ms_burst_and_drain": p99(a, after_end[1]),
        "skip_ratio_normal": skip_ratio(n0[1], n1[1]),
        "skip_ratio_burst": skip_ratio(a, b),
        "overload_drain_s": (round(drained_at[0] - burst_end, 1) if drained_at[0] else None),
        "peak_rss_mb": rss,
        "processes_alive": all(alive.values()),
        "stale_users": lost,
        "overload_lost": lost["lost"] if lost else None,
        "lag_series": [[round(t - t0, 1), *lags(s)] for t, s in all_polls],
    }
    log(f"  overload: peak lag {r['peak_ingest_lag']:.0f} events / {r['peak_notice_lag']:.0f} "
        f"notices, p99 burst {r['e2e_p99_ms_burst']} ms, drain {r['overload_drain_s']} s, skip "
        f"{r['skip_ratio_normal']} -> {r['skip_ratio_burst']}, lost {r['overload_lost']}, "
        f"alive {r['processes_alive']}, rss {rss}")
    return r


def probe(stack, events, drain_timeout):
    """Events per second the stack needs to drain a burst of `events`."""
    gen = stack.loadgen(0, duration=0, events=events)
    start = time.monotonic()
    stack.finish_loadgen(gen)
    stack.wait_drained(timeout=drain_timeout)
    return events / max(time.monotonic() - start, 1e-3)


def ab(build, args, names):
    """Old against new under the same neighbours: rounds alternate the
    configurations, each round a fresh stack with two capacity probes and a
    window at a fixed rate (--ab-rate); medians per configuration."""
    sets = dict(CONFIGS)
    out = {n: {"probe": [], "window": []} for n in names}
    for rnd in range(args.ab_rounds):
        for name in names:
            log(f"a/b round {rnd + 1}: '{name}'")
            with tempfile.TemporaryDirectory(prefix="seg-pipeline-") as tmp:
                stack = Stack(build, sets[name], args.users, pathlib.Path(tmp), args.real)
                try:
                    caps = [probe(stack, args.probe_events, args.drain_timeout) for _ in range(2)]
                    out[name]["probe"] += caps
                    r = window(stack, args.ab_rate, args.window)
                    out[name]["window"].append(r)
                    log(f"  probes {[round(c) for c in caps]}/s")
                finally:
                    stack.stop()

    def median(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

    summary = {}
    for n, v in out.items():
        w = v["window"]
        summary[n] = {
            "probe_events_per_s": [round(x) for x in v["probe"]],
            "median_probe_events_per_s": round(median(v["probe"])),
            "windows_sustained": sum(1 for r in w if r["sustained"]),
            "windows": len(w),
            "median_window_ingest_per_s": round(median([r["ingest_per_s"] for r in w])),
            "median_window_notice_lag_end": round(median([r["notice_lag_end"] for r in w])),
        }
    return summary


def configs_for(args):
    names = args.only.split(",")
    known = dict(CONFIGS)
    known.update(POLICIES)  # --latency-rate also takes a read policy's name
    return [(n, known[n]) for n in names if n in known]


def sustained_of(results, name):
    b = (results.get(name) or {}).get("best")
    return b["offered"] if b else None


def main():
    # A TERM (timeout, an impatient operator) unwinds like an exception, so
    # the stacks' finally blocks stop their processes instead of orphaning them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="short windows, for trying it out")
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--only", default="", help="comma-separated configurations to run")
    ap.add_argument("--real", action="store_true",
                    help="on a real Kafka broker and HBase + Thrift2 (local-stack.sh --real)")
    ap.add_argument("--no-policies", action="store_true",
                    help="skip the read policies' latency runs")
    ap.add_argument("--overload", action="store_true",
                    help="also run the overload mode (1.5x for 60 s, then half rate)")
    ap.add_argument("--ab-rounds", type=int, default=0,
                    help="only the old/new capacity comparison: rounds of product, before")
    ap.add_argument("--ab-rate", type=float, default=20000.0)
    ap.add_argument("--latency-rate", type=float, default=0.0,
                    help="only latency at this rate for each --only configuration, fresh stacks")
    ap.add_argument("--overload-rate", type=float, default=0.0,
                    help="the sustained rate for --overload (default: the product's, measured)")
    args = ap.parse_args()
    args.overload_normal_s = 20.0
    args.overload_burst_s = 60.0
    args.overload_tail_s = 5.0
    args.overload_max_after_s = 240.0
    args.window = 6.0 if args.quick else 10.0
    args.half_window = 8.0 if args.quick else 20.0
    args.probe_events = 40_000 if args.quick else 100_000
    args.max_steps = 3 if args.quick else 4
    args.drain_timeout = 20.0 if args.quick else 30.0
    args.budget_s = 900.0  # start no configuration after 15 min
    build = pathlib.Path(args.build_dir).resolve()
    started = time.monotonic()

    results, half, before_half, by_policy, over = {}, None, None, {}, None
    if args.latency_rate:
        lat = {}
        for name, sets in configs_for(args):
            # A name given again (interleaved repeats) is measured again as NAME#2, ...
            if name in lat:
                name = next(f"{name}#{i}" for i in range(2, 99) if f"{name}#{i}" not in lat)
            log(f"latency of '{name}' at {args.latency_rate:.0f}/s")
            with tempfile.TemporaryDirectory(prefix="seg-pipeline-") as tmp:
                stack = Stack(build, sets, args.users, pathlib.Path(tmp), args.real)
                try:
                    stack.finish_loadgen(stack.loadgen(args.latency_rate, duration=5))
                    stack.wait_drained(timeout=args.drain_timeout)
                    lat[name] = half_rate(stack, args.latency_rate, args.half_window)
                    log(f"  p50 {lat[name]['e2e_p50_ms']} ms, p99 {lat[name]['e2e_p99_ms']} ms, "
                        f"cpu {lat[name]['cpu']}")
                finally:
                    stack.stop()
        figures = {f"{n}_e2e_{q}_ms": v[f"e2e_{q}_ms"] for n, v in lat.items() for q in ("p50", "p99")}
        # The read policies measured (the product's under its policy's name), side by side.
        policy_names = dict(POLICIES)
        by_policy = {(PRODUCT_POLICY + n[7:] if n.startswith("product") else n): v
                     for n, v in lat.items() if n.split("#")[0] in policy_names or
                     n.split("#")[0] == "product"}
        for key in ("e2e_p50_ms", "e2e_p99_ms", "notices_per_segmentation",
                    "skipped_by_cache_ratio"):
            if by_policy:
                figures[f"{key}_by_policy"] = {n: v[key] for n, v in by_policy.items()}
        pathlib.Path(args.out).write_text(json.dumps({"figures": figures, "latency": lat},
                                                     indent=2) + "\n")
        print(json.dumps(figures))
        return 0
    if args.ab_rounds:
        names = args.only.split(",") if args.only else ["product", "before"]
        summary = ab(build, args, names)
        base = summary[names[-1]]["median_probe_events_per_s"]
        figures = {f"{n}_{k}": v for n, d in summary.items() for k, v in d.items()
                   if not isinstance(v, list)}
        figures[f"probe_{names[0]}_over_{names[-1]}"] = round(
            summary[names[0]]["median_probe_events_per_s"] / max(base, 1), 3)
        pathlib.Path(args.out).write_text(json.dumps({"figures": figures, "ab": summary},
                                                     indent=2) + "\n")
        print(json.dumps(figures))
        return 0
    configs = [c for c in CONFIGS if (c[0] in args.only.split(",") if args.only
                                      else not c[0].startswith(("before_", "product_")))]
    skipped = []
    for name, sets in configs:
        if time.monotonic() - started > args.budget_s:
            skipped.append(name)  # keep the whole run within its time budget
            continue
        log(f"configuration '{name}' {sets or ''}")
        with tempfile.TemporaryDirectory(prefix="seg-pipeline-") as tmp:
            try:
                stack = Stack(build, sets, args.users, pathlib.Path(tmp), args.real)
            except RuntimeError as e:
                log(f"  {e}")
                skipped.append(name + " (did not start)")
                continue
            try:
                # The product gets two more steps: its figure is the headline.
                steps = args.max_steps + (2 if name == configs[0][0] else 0)
                best, tried, capacity = find_sustained(stack, args, steps)
                results[name] = {"best": best, "tried": tried, "capacity": capacity}
                if half is None and best is not None:
                    log(f"  latency and CPU at half of {best['rate']:.0f}/s")
                    half = half_rate(stack, best["rate"] / 2, args.half_window)
                    half["rate"] = best["rate"] / 2
                    log(f"  e2e p50 {half['e2e_p50_ms']} ms, p99 {half['e2e_p99_ms']} ms; "
                        f"cpu {half['cpu']}")
                elif name == "before" and half is not None:
                    log(f"  latency at the product's half rate {half['rate']:.0f}/s")
                    before_half = half_rate(stack, half["rate"], args.half_window)
                    log(f"  e2e p50 {before_half['e2e_p50_ms']} ms, "
                        f"p99 {before_half['e2e_p99_ms']} ms")
            finally:
                stack.stop()

    if half is not None and not args.no_policies:
        by_policy[PRODUCT_POLICY] = {k: half[k] for k in
                                     ("e2e_p50_ms", "e2e_p99_ms", "notices_per_segmentation",
                                      "skipped_by_cache_ratio")}
        for name, sets in POLICIES:
            log(f"policy '{name}' {sets}: latency at {half['rate']:.0f}/s")
            with tempfile.TemporaryDirectory(prefix="seg-pipeline-") as tmp:
                try:
                    stack = Stack(build, sets, args.users, pathlib.Path(tmp), args.real)
                except RuntimeError as e:
                    log(f"  {e}")
                    continue
                try:
                    stack.finish_loadgen(stack.loadgen(half["rate"], duration=5))  # warm-up
                    stack.wait_drained(timeout=args.drain_timeout)
                    h = half_rate(stack, half["rate"], args.half_window)
                    by_policy[name] = {k: h[k] for k in
                                       ("e2e_p50_ms", "e2e_p99_ms", "notices_per_segmentation",
                                        "skipped_by_cache_ratio")}
                    log(f"  {by_policy[name]}")
                finally:
                    stack.stop()
    if args.overload:
        rate = args.overload_rate or sustained_of(results, configs[0][0])
        if rate:
            with tempfile.TemporaryDirectory(prefix="seg-pipeline-") as tmp:
                stack = Stack(build, {}, args.users, pathlib.Path(tmp), args.real)
                try:
                    over = overload(stack, rate, args)
                finally:
                    stack.stop()

    if not configs:  # --overload with --overload-rate and no configuration to measure
        figures = {k if k.startswith("overload") else f"overload_{k}": over[k] for k in
                   ("overload_drain_s", "overload_lost", "peak_ingest_lag", "peak_notice_lag",
                    "e2e_p99_ms_burst", "skip_ratio_normal", "skip_ratio_burst",
                    "burst_offered", "processes_alive")} if over else {}
        pathlib.Path(args.out).write_text(json.dumps({"figures": figures, "overload": over},
                                                     indent=2) + "\n")
        print(json.dumps(figures))
        return 0 if over else 1

    def sustained(name):
        b = (results.get(name) or {}).get("best")
        return round(b["offered"]) if b else None

    main_best = (results.get(configs[0][0]) or {}).get("best") or {}
    notices = max(main_best.get("notices_per_s", 0.0), 1e-9)
    figures = {
        "sustained_events_per_s": sustained(configs[0][0]),
        "segmentations_per_s": round(main_best.get("segmented_per_s", 0.0)),
        "skipped_by_cache_ratio": round(main_best.get("cache_per_s", 0.0) / notices, 3),
        "skipped_as_bot_ratio": round(main_best.get("bot_per_s", 0.0) / notices, 3),
        "e2e_p50_ms": (half or {}).get("e2e_p50_ms"),
        "e2e_p99_ms": (half or {}).get("e2e_p99_ms"),
        "baseline_no_skips_sustained_events_per_s": sustained("no_skips"),
    }
    if "neighbour_cores" in main_best:
        # The cores other work on the machine took at the sustained step:
        # tools/capacity.py's check predicts for the cores left.
        figures["sustained_pipeline_cores"] = round(main_best["pipeline_cores"], 3)
        figures["sustained_neighbour_cores"] = round(main_best["neighbour_cores"], 3)
    b = (results.get("no_skips") or {}).get("best")
    if b:
        figures["baseline_no_skips_segmentations_per_s"] = round(b["segmented_per_s"])
    figures["baseline_pfadd_sustained_events_per_s"] = sustained("pfadd")
    figures["baseline_unbatched_reads_sustained_events_per_s"] = sustained("unbatched_reads")
    figures["no_read_delay_sustained_events_per_s"] = sustained("no_read_delay")
    figures["before_sustained_events_per_s"] = sustained("before")
    if before_half:
        figures["before_e2e_p50_ms"] = before_half["e2e_p50_ms"]
        figures["before_e2e_p99_ms"] = before_half["e2e_p99_ms"]
    if by_policy:
        figures["e2e_p99_ms_by_policy"] = {k: v["e2e_p99_ms"] for k, v in by_policy.items()}
    if over:
        for k in ("overload_drain_s", "overload_lost", "peak_ingest_lag", "peak_notice_lag",
                  "e2e_p99_ms_burst", "e2e_p99_ms_burst_and_drain", "skip_ratio_normal",
                  "skip_ratio_burst", "burst_offered", "processes_alive"):
            figures[k if k.startswith("overload") else f"overload_{k}"] = over[k]
    if half:
        figures["half_rate_events_per_s"] = round(half["rate"])
        figures["dwell_p99_ms"] = half["dwell_p99_ms"]
        for proc, share in half["cpu"].items():
            figures[f"cpu_share_{proc}"] = share
    ratios = {}
    for base in ("no_skips", "pfadd", "unbatched_reads", "before"):
        if figures["sustained_events_per_s"] and sustained(base):
            ratios[f"sustained_vs_{base}"] = round(figures["sustained_events_per_s"] /
                                                   sustained(base), 2)
    # A rate that never failed is only a lower bound on what is sustainable.
    unbracketed = [k for k, v in results.items()
                   if v["best"] and not any(not t["sustained"] for t in v["tried"])]
    s, p99 = figures["sustained_events_per_s"] or 0, figures["e2e_p99_ms"]
    traffic_note = (" on on-time traffic (no late or back-dated events)"
                    if (half or {}).get("on_time_only") else
                    " (traffic includes late events, whose latency is their age)")
    notes = (
        f"Whole local stack ({'real Kafka 3.9.1 (1 KRaft node), real HBase 2.6.1 standalone + Thrift2' if args.real else 'kafka-local 3 brokers, seg-store'}, redis-server, seg-ingest, 2 "
        f"seg-segmenters, seg-stats), seg-loadgen with {args.users} users. Sustained = highest "
        f"rate at which ingest keeps up and neither consumer lag grows ({args.window:.0f} s "
        f"windows); latency (event time to result, histogram-interpolated) and CPU (1.0 = one "
        f"core) at half that rate{traffic_note}. Targets: >=30k events/s sustained "
        f"({'met' if s >= 30000 else 'NOT met'}), p99 <= 300 ms at half rate (#18) "
        f"({'met' if p99 is not None and p99 <= 300 else 'NOT met'}). "
        f"{'QUICK MODE. ' if args.quick else ''}"
        f"{'Lower bounds (no rate failed): ' + ', '.join(unbracketed) + '. ' if unbracketed else ''}"
        f"{'Skipped: ' + ', '.join(skipped) + '. ' if skipped else ''}Run took {time.monotonic() - started:.0f} s.")
    out = {"figures": figures, "ratios": ratios, "notes": notes,
           "half_rate_path": {"product": (half or {}).get("path"),
                              "before": (before_half or {}).get("path")},
           "by_policy": by_policy, "overload": over,
           "detail": {k: {"capacity_probe_events_per_s": round(v["capacity"]),
                          "steps": [{k2: round(x, 1) if isinstance(x, float) else x
                                     for k2, x in t.items()} for t in v["tried"]]}
                      for k, v in results.items()}}
    pathlib.Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    log(f"done in {time.monotonic() - started:.0f} s")
    print(json.dumps(figures))  # the last line
    return 0 if figures["sustained_events_per_s"] else 1


if __name__ == "__main__":
    sys.exit(main())

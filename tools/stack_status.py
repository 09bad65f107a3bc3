#!/usr/bin/env python3
"""The local stack's live status line, from the processes' /metrics.

  stack_status.py --ingest 127.0.0.1:PORT --segmenter 127.0.0.1:P1 --segmenter ... \
      [--interval 2] [--duration S]

Every interval: events/s into ingest, segmentations/s, notices skipped by the
skip cache and as bots (per second and share of notices), the segmenters'
dwell p99 and event-to-result p50 over the interval, and consumer lag (ingest
on `events`, segmenters on `user-changes`). Rates are differences between two
polls. Standard library only; bench/pipeline.py imports the scraping helpers.
"""
import argparse
import math
import re
import sys
import time
import urllib.request

SAMPLE = re.compile(r'^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)', re.M)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(address, timeout=1.0):
    """{(name, frozenset(labels)): value} from one /metrics endpoint; None if down."""
    try:
        text = urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout).read().decode()
    except (OSError, ValueError):
        return None
    out = {}
    for m in SAMPLE.finditer(text):
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            pass
    return out


def total(samples, name, **labels):
    """Sum of `name` over every sample whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def buckets(samples, name):
    """{upper bound: cumulative count} of histogram `name`, summed over label sets."""
    out = {}
    for (n, ls), v in samples.items():
        if n == name + "_bucket":
            le = dict(ls).get("le")
            bound = math.inf if le == "+Inf" else float(le)
            out[bound] = out.get(bound, 0.0) + v
    return out


def quantile(cumulative, q):
    """Quantile from cumulative bucket counts (linear within a bucket), or None."""
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return None
    rank = q * cumulative[bounds[-1]]
    lower, below = 0.0, 0.0
    for b in bounds:
        c = cumulative[b]
        if c >= rank:
            if math.isinf(b):
                return math.inf  # beyond the last finite bucket
            return lower + (b - lower) * ((rank - below) / max(c - below, 1e-12))
        lower, below = b, c
    return lower


def merge(snapshots):
    """Several endpoints' samples as one (same keys summed)."""
    out = {}
    for s in snapshots:
        for k, v in (s or {}).items():
            out[k] = out.get(k, 0.0) + v
    return out


def delta_buckets(now, before, name):
    a, b = buckets(now, name), buckets(before, name)
    return {k: v - b.get(k, 0.0) for k, v in a.items()}


def status(now, before, seconds):
    """One status line from two merged snapshots `seconds` apart."""
    def rate(name, **labels):
        return (total(now, name, **labels) - total(before, name, **labels)) / seconds

    decision = "seg_segmenter_decisions_total"
    seg, cache, bot = (rate(decision, decision=d) for d in ("segmented", "skipped_by_cache",
                                                            "skipped_as_bot"))
    notices = max(rate("seg_segmenter_notices_total"), 1e-9)
    dwell = quantile(delta_buckets(now, before, "seg_segmenter_dwell_seconds"), 0.99)
    # p50: late and back-dated events (the traffic has some) put p99 at their age.
    e2e = quantile(delta_buckets(now, before, "seg_segmenter_event_to_result_seconds"), 0.5)

    def ms(v):
        if v is None:
            return "-"
        return ">30s" if math.isinf(v) else f"{v * 1e3:.0f}ms"

    return (f"in {rate('seg_ingest_events_in_total'):7.0f} ev/s | segmented {seg:6.0f}/s | "
            f"skipped: cache {cache:6.0f}/s ({100 * cache / notices:3.0f}%) "
            f"bot {bot:5.0f}/s ({100 * bot / notices:3.0f}%) | dwell p99 {ms(dwell)} "
            f"e2e p50 {ms(e2e)} | lag events {total(now, 'seg_ingest_consumer_lag_messages'):.0f} "
            f"notices {total(now, 'seg_segmenter_consumer_lag'):.0f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ingest", action="append", default=[])
    ap.add_argument("--segmenter", action="append", default=[])
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=0.0)
    args = ap.parse_args()
    endpoints = args.ingest + args.segmenter
    tty = sys.stdout.isatty()
    end = time.monotonic() + args.duration if args.duration > 0 else math.inf
    before, t_before = merge(scrape(a) for a in endpoints), time.monotonic()
    try:
        while time.monotonic() < end:
            time.sleep(max(0.0, min(args.interval, end - time.monotonic())))
            now, t_now = merge(scrape(a) for a in endpoints), time.monotonic()
            line = status(now, before, max(t_now - t_before, 1e-3))
            sys.stdout.write(("\r" + line + " ") if tty else (line + "\n"))
            sys.stdout.flush()
            before, t_before = now, t_now
    except KeyboardInterrupt:
        pass
    if tty:
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

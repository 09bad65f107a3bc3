#!/usr/bin/env python3
"""docs/metrics.md and tools/grafana/segengine.json against the code.

  metrics_doc_test.py [--build-dir BUILD]

1. Every metric the code registers (GetCounter/GetGauge/GetHistogram with a
   literal "seg_..." name, outside tests and benchmarks) has a row in
   docs/metrics.md, and every row names a registered metric.
2. The dashboard is tools/grafana/dashboard.py's output, its panel ids are
   unique, and every metric a panel queries is registered and documented
   (histograms through _bucket/_sum/_count only).
3. With --build-dir: tools/local-stack.sh with traffic, every binary's
   /metrics scraped: each seg_ metric served is documented, and every
   registered metric is served by some binary, except NOT_IN_LOCAL_STACK.
Standard library only; loopback, free ports, deadlines on every wait.
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests/harness"))
from checks import check, exit_code  # noqa: E402
SOURCES = ("common", "store", "ingest", "segmenter", "stats", "coprocessor-bridge", "tools")
REGISTRATION = re.compile(
    r'(?:Get|Make)(Counter|Gauge|Histogram)\(\s*"(seg_[a-z0-9_]+)"')
# Registered only once used: Redis Cluster (the local stack runs one
# redis-server), a connection the store server closes (labelled by reason).
NOT_IN_LOCAL_STACK = {"seg_redis_cluster_redirects_total", "seg_redis_cluster_slot_refreshes_total",
                      "seg_store_server_connections_closed_total"}
def registered():
    """name -> type, from the sources of every binary."""
    found = {}
    for top in SOURCES:
        for path in (ROOT / top).rglob("*.cc"):
            if "_test" in path.name or "bench" in path.name:
                continue
            for kind, name in REGISTRATION.findall(path.read_text(errors="replace")):
                found[name] = kind.lower()
    return found


def documented():
    text = (ROOT / "docs/metrics.md").read_text()
    return set(re.findall(r"^\| `(seg_[a-z0-9_]+)` \|", text, re.M))


def queried(expr, metrics):
    """Base metric names an expression reads; unknown names returned as-is."""
    names = set()
    for token in re.findall(r"\bseg_[a-z0-9_]+", expr):
        base = re.sub(r"_(bucket|sum|count)$", "", token)
        if token not in metrics and base in metrics and metrics[base] == "histogram":
            names.add(base)
        else:
            names.add(token)
    return names


def scrape(address):
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as reply:
        return reply.read().decode()


def served_names(text, metrics):
    names = set()
    for line in text.splitlines():
        m = re.match(r"(seg_[a-z0-9_]+)", line)
        if m:
            names |= queried(m.group(1), metrics)
    return names


def check_scrapes(build, metrics, docs):
    sys.path.insert(0, str(ROOT / "tests/harness"))
    from demo_stack import DemoStack
    with tempfile.TemporaryDirectory(prefix="seg-metrics-") as tmp:
        stack = DemoStack(build, tmp)
        try:
            env = stack.env
            endpoints = {"seg-ingest": env["INGEST_METRICS"], "seg-store": env["STORE_METRICS"],
                         "seg-stats": env["STATS_METRICS"]}
            for i, address in enumerate(env["SEGMENTER_METRICS"].split()):
                endpoints[f"seg-segmenter#{i + 1}"] = address
            # Results flowing means every stage ran at least once.
            deadline = time.monotonic() + 90
            while True:
                texts = {name: scrape(address) for name, address in endpoints.items()}
                results = sum(float(v) for t in texts.values()
                              for v in re.findall(r"^seg_segmenter_results_total (\S+)$", t, re.M))
                if results > 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            check(results > 0, f"the local stack publishes results ({results:.0f})")
            # seg-stats registers its call metrics on the first call.
            subprocess.run([str(build / "tools/segctl"), "--target", env["STATS"], "segments"],
                           capture_output=True, timeout=30)
            texts["seg-stats"] = scrape(endpoints["seg-stats"])
            served = {name: served_names(text, metrics) for name, text in texts.items()}
            for name, names in sorted(served.items()):
                undocumented = sorted(names - docs)
                check(names and not undocumented,
                      f"{name} serves {len(names)} seg_ metrics, all documented", undocumented)
            every = set().union(*served.values())
            unserved = sorted(set(metrics) - every - NOT_IN_LOCAL_STACK)
            check(not unserved, "every registered metric is served by some binary", unserved)
        finally:
            problems = stack.stop()
            check(not problems, "the stack stops cleanly", problems)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", type=pathlib.Path)
    args = parser.parse_args()
    metrics = registered()
    docs = documented()
    check(len(metrics) > 50, f"the code registers metrics ({len(metrics)} found)")
    missing = sorted(set(metrics) - docs)
    stale = sorted(docs - set(metrics))
    check(not missing, "every registered metric is in docs/metrics.md", missing)
    check(not stale, "every metric in docs/metrics.md is registered", stale)

    path = ROOT / "tools/grafana/segengine.json"
    dashboard = json.loads(path.read_text())
    generated = subprocess.run([sys.executable, str(ROOT / "tools/grafana/dashboard.py")],
                               capture_output=True, text=True, check=True, timeout=30).stdout
    check(path.read_text() == generated, "segengine.json is tools/grafana/dashboard.py's output")
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    check(len(ids) == len(set(ids)), "panel ids are unique")
    graphs = [p for p in panels if p["type"] != "row"]
    check(len(graphs) > 20, f"the dashboard has panels ({len(graphs)})")
    shown = set()
    for panel in graphs:
        targets = panel.get("targets", [])
        names = set().union(*(queried(t["expr"], metrics) for t in targets)) if targets else set()
        unknown = sorted(n for n in names if n not in metrics or n not in docs)
        check(targets and names and not unknown,
              f"panel '{panel['title']}': its metrics exist", unknown or "no metric queried")
        shown |= names
    print(f"info the dashboard shows {len(shown & set(metrics))} of {len(metrics)} metrics; "
          f"not shown: {sorted(set(metrics) - shown)}", flush=True)
    if args.build_dir:
        check_scrapes(args.build_dir.resolve(), metrics, docs)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())

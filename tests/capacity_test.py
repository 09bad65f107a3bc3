#!/usr/bin/env python3
"""tools/capacity.py on the committed bench/results/*.json.

1. Every workload and every resource is in the output (text and --json),
   with the local check's prediction and the pipeline's measured rate.
2. --check's exit code agrees with the printed predicted/measured ratio,
   and a pipeline figure moved outside 20% makes --check exit 1.
3. A missing result file, invalid JSON, and a figure that is missing or not
   a positive number each exit 2 with a message naming the file.
4. The segment stage's split of a cost between notices and segmentations
   recovers known coefficients, and drops one that comes out negative.
5. bench/pipeline.py's sustained-rate rule (keeps_up), on which the check's
   reference rate depends, on windows it measured on 2026-12-05: a step
   whose ingest backlog grew by 6,480 events/s is not sustained (it passed
   the looser rule before), the step below it is, and a growing notice
   backlog fails a step on its own.
Standard library only.
"""
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "capacity.py"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
import capacity  # noqa: E402
import pipeline  # noqa: E402

FAILURES = []


def expect(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def run(*args):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          timeout=30)


def copy_results(tmp):
    d = pathlib.Path(tmp) / "results"
    shutil.copytree(RESULTS, d)
    return d


def edit(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def check_fits():
    # cores = 4 us x notices + 9 us x segmentations + 0.05, at two ratios.
    pts = [(n, s, 4e-6 * n + 9e-6 * s + 0.05)
           for n, s in ((2000, 1800), (4000, 3600), (6000, 5400), (4000, 2000), (6000, 3000))]
    a_n, a_s, b = capacity.fit_notice_and_segmentation(pts)
    expect(abs(a_n - 4e-6) < 1e-9 and abs(a_s - 9e-6) < 1e-9 and abs(b - 0.05) < 1e-6,
           f"plane fit recovers 4 us, 9 us, 0.05: got {a_n}, {a_s}, {b}")
    # One ratio only: the two cannot be told apart, all goes per notice.
    one_ratio = [(n, 0.9 * n, 13e-6 * n + 0.05) for n in (2000, 4000, 6000, 8000)]
    a_n, a_s, _ = capacity.fit_notice_and_segmentation(one_ratio)
    expect(a_s == 0.0 and abs(a_n - 13e-6) < 1e-9, f"one ratio: per notice only, got {a_n}, {a_s}")
    # Cost falling with segmentations at fixed notices: no negative cost.
    neg = [(n, s, 10e-6 * n - 2e-6 * s + 0.05)
           for n, s in ((2000, 1800), (4000, 3600), (6000, 5400), (4000, 2000), (6000, 3000))]
    a_n, a_s, _ = capacity.fit_notice_and_segmentation(neg)
    expect(a_n >= 0 and a_s == 0.0, f"negative per-segmentation cost dropped, got {a_n}, {a_s}")


def step(rate, offered, ingest, notices, ingest_slope, ingest_end, notice_slope, notice_end):
    return rate, offered, {"ingest_per_s": ingest, "notices_per_s": notices,
                           "ingest_lag_slope": ingest_slope, "ingest_lag_end": ingest_end,
                           "notice_lag_slope": notice_slope, "notice_lag_end": notice_end}


def check_keeps_up():
    kept = step(61488, 61487, 61198, 27716, -10, 230, -264, 8225)
    expect(pipeline.keeps_up(kept[2], kept[0], kept[1]), "61.5k step (lags flat) is sustained")
    behind = step(73785, 73784, 66471, 25996, 6480, 50627, 2053, 17220)
    expect(not pipeline.keeps_up(behind[2], behind[0], behind[1]),
           "73.8k step (ingest backlog +6,480/s, ingest 90% of offered) is not sustained")
    # Ingest keeps up but the notice backlog grows past what is in flight.
    notices = step(50000, 50000, 49900, 20000, 1500, 0, 1500, 30000)
    notices[2]["ingest_lag_slope"] = 0
    expect(not pipeline.keeps_up(notices[2], notices[0], notices[1]),
           "a growing notice backlog fails the step")
    # Gauge noise on a small in-flight lag passes.
    noisy = step(30000, 30000, 29950, 12000, 400, 900, 300, 2000)
    expect(pipeline.keeps_up(noisy[2], noisy[0], noisy[1]), "noise on small lags passes")
    # Offered short of the asked rate (loadgen could not send it).
    short = step(90000, 70000, 70000, 25000, 0, 0, 0, 0)
    expect(not pipeline.keeps_up(short[2], short[0], short[1]), "loadgen short of the rate fails")


def main():
    check_fits()
    check_keeps_up()
    text = run()
    expect(text.returncode in (0,), f"plain run exits 0, got {text.returncode}: {text.stderr}")
    for name in capacity.WORKLOADS:
        expect(name in text.stdout, f"workload {name} in the table")
    for res in capacity.RESOURCES:
        expect(res in text.stdout, f"resource {res} in the table")
    expect("predicted" in text.stdout and "pipeline measured" in text.stdout,
           "the check's prediction and measured rate are printed")

    js = run("--json")
    expect(js.returncode == 0, f"--json exits 0: {js.stderr}")
    out = json.loads(js.stdout)
    expect(set(out["workloads"]) == set(capacity.WORKLOADS), "every workload in --json")
    for name, res in out["workloads"].items():
        for k in capacity.RESOURCES:
            v = res.get(k)
            expect(isinstance(v, (int, float)) and v > 0, f"{name}.{k} is a positive number: {v}")
    ratio = out["check"]["predicted_over_measured"]
    chk = run("--check")
    inside = abs(ratio - 1) <= capacity.TOLERANCE
    expect(chk.returncode == (0 if inside else 1),
           f"--check exit {chk.returncode} agrees with ratio {ratio}")
    # A bigger workload needs at least as much of what scales with the rate.
    a, b = out["workloads"]["follows_5.5B_per_day"], out["workloads"]["1M_events_per_s"]
    for k in ("segmenter_cores", "kafka_partitions", "network_gbit_s", "storage_tb"):
        expect(b[k] > a[k], f"1M events/s needs more {k} than 100k/s ({b[k]} vs {a[k]})")

    with tempfile.TemporaryDirectory(prefix="capacity-test-") as tmp:
        d = copy_results(tmp)
        # The measured rate moved to 2x the prediction: --check must fail.
        predicted = out["check"]["predicted_events_per_s"]
        edit(d / "pipeline.json",
             lambda x: x["figures"].__setitem__("sustained_events_per_s", predicted * 2))
        r = run("--results", str(d), "--check")
        expect(r.returncode == 1 and "off the measured" in r.stderr,
               f"--check outside 20% exits 1 with a message: {r.returncode} {r.stderr}")
        r = run("--results", str(d))
        expect(r.returncode == 0, "without --check a prediction off by 2x still prints, exit 0")

    bad_cases = [
        ("missing file", lambda d: (d / "store.json").unlink(), "store.json: missing"),
        ("invalid JSON", lambda d: (d / "ingest.json").write_text("{not json"),
         "ingest.json: not valid JSON"),
        ("no figures", lambda d: (d / "segmenter.json").write_text("[1, 2]"),
         "segmenter.json: no \"figures\""),
        ("missing figure", lambda d: edit(d / "ingest.json",
                                          lambda x: x["figures"].pop("produce_events_per_cpu_s")),
         "produce_events_per_cpu_s"),
        ("missing stages figure", lambda d: edit(d / "stages.json", lambda x: x["figures"].pop(
            "ingest_ingest_cpu_us_per_event")), "ingest_ingest_cpu_us_per_event"),
        ("zero figure", lambda d: edit(d / "store.json",
                                       lambda x: x["figures"].__setitem__("cells_per_row", 0)),
         "cells_per_row"),
        ("no segment stage", lambda d: edit(d / "stages.json",
                                            lambda x: x["steps"].pop("segment")),
         "no segment stage"),
        ("string figure", lambda d: edit(d / "pipeline.json", lambda x: x["figures"].__setitem__(
            "sustained_events_per_s", "fast")), "sustained_events_per_s"),
        ("no sustained step", lambda d: edit(d / "pipeline.json", lambda x: x.__setitem__(
            "detail", {"product": {"steps": []}})), "no sustained step"),
    ]
    for what, breaks, message in bad_cases:
        with tempfile.TemporaryDirectory(prefix="capacity-test-") as tmp:
            d = copy_results(tmp)
            breaks(d)
            r = run("--results", str(d), "--check")
            expect(r.returncode == 2, f"{what}: exit 2, got {r.returncode}")
            expect(message in r.stderr and "Traceback" not in r.stderr,
                   f"{what}: clear message with '{message}', got: {r.stderr.strip()}")
    print("capacity_test: ok" if not FAILURES else f"capacity_test: {len(FAILURES)} failures")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

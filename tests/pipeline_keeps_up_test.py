#!/usr/bin/env python3
"""bench/pipeline.py's sustained-rate criterion (keeps_up) on windows the
benchmark measured on 2026-12-05: a step whose ingest backlog grew by
6,480 events/s is not sustained (it passed the looser rule before), the
step below it is, and a growing notice backlog fails a step on its own.
Standard library only."""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))
import pipeline  # noqa: E402

FAILURES = []


def expect(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def step(rate, offered, ingest, notices, ingest_slope, ingest_end, notice_slope, notice_end):
    return rate, offered, {"ingest_per_s": ingest, "notices_per_s": notices,
                           "ingest_lag_slope": ingest_slope, "ingest_lag_end": ingest_end,
                           "notice_lag_slope": notice_slope, "notice_lag_end": notice_end}


def main():
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
    print("pipeline_keeps_up_test: ok" if not FAILURES else
          f"pipeline_keeps_up_test: {len(FAILURES)} failures")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

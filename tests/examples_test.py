#!/usr/bin/python3
"""examples/ against the local stack (tools/local-stack.sh).

  /usr/bin/python3 examples_test.py --build-dir BUILD

Runs under /usr/bin/python3, as the examples do: a missing Debian package
(python3-kafka, python3-grpcio, python3-protobuf, python3-grpc-tools) is a
failure naming it, never a skip.
1. analyst_client.py: `segments` lists sizes once traffic flowed; after the
   traffic stops, `size` agrees with segctl, `union` is at least and
   `overlap` at most each of its parts' sizes (within their intervals),
   `series --last 3` ends with today's size, `user` agrees with the partner
   consumer, an unknown segment exits 1 with NOT_FOUND.
2. partner_consumer.py: reads the results from the beginning, keeps the
   highest seq per user, exits after 3 s idle; each user's last segments
   equal UserSegments (the membership the segmenter stored).
Loopback, free ports, deadlines on every wait.
"""
import argparse
import importlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT / "tests/harness"))
from demo_stack import DemoStack  # noqa: E402
from checks import FAILURES, check, exit_code  # noqa: E402

PACKAGES = {"kafka": "python3-kafka", "grpc": "python3-grpcio",
            "google.protobuf": "python3-protobuf", "grpc_tools": "python3-grpc-tools"}
def example(name, *args, timeout=60):
    r = subprocess.run(["/usr/bin/python3", str(EXAMPLES / name), *args], capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def analyst(stats, *args):
    rc, out, err = example("analyst_client.py", "--target", stats, *args)
    return rc, (json.loads(out) if rc == 0 else None), err


def within(estimate, value, slack=0.0):
    """`value` inside the estimate's 95% interval widened by `slack`."""
    return estimate["ci95_low"] - slack <= value <= estimate["ci95_high"] + slack


def poll(fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def consume(kafka, group):
    rc, out, err = example("partner_consumer.py", "--bootstrap", kafka, "--group", group,
                           "--from-beginning", "--idle-exit", "3", timeout=120)
    lines = [json.loads(line) for line in out.splitlines()]
    summary = json.loads(err.strip().splitlines()[-1]) if rc == 0 and err.strip() else {}
    return rc, lines, summary, err


def test_analyst_and_consumer(build, stack):
    env = stack.env
    stats, kafka = env["STATS"], env["KAFKA"]

    def sized_segments():
        rc, reply, _ = analyst(stats, "segments")
        if rc != 0:
            return None
        sized = [s for s in reply["segments"] if s["today"]["value"] > 0]
        return sized if len(sized) >= 2 else None

    sized = poll(sized_segments, 90)
    check(bool(sized), "analyst `segments` lists sizes once traffic flowed")
    if not sized:
        return
    # Stop the traffic so the sizes and memberships hold still.
    os.kill(int(env["PID_loadgen"]), signal.SIGTERM)

    # Membership: the consumer's last result per user = UserSegments, once the
    # segmenters have drained (a fresh group each round, from the beginning).
    rounds = []

    def memberships_agree():
        rc, lines, summary, err = consume(kafka, f"examples-test-{len(rounds)}")
        rounds.append((rc, summary, err))
        if rc != 0 or not lines:
            return False
        last = {}
        for line in lines:
            if line.get("forgotten"):
                last.pop(line["user"], None)
            else:
                last[line["user"]] = line["segments"]
        members = sorted(u for u, segs in last.items() if segs)[:5]
        if not members:
            return False
        for user in members:
            rc, reply, _ = analyst(stats, "user", user)
            if rc != 0 or reply["segments"] != last[user]:
                return False
        return members

    agreed = poll(memberships_agree, 90)
    rc, summary, err = rounds[-1]
    check(rc == 0 and summary.get("results", 0) > 0 and summary.get("applied", 0) > 0,
          f"partner_consumer reads results and applies them ({summary})", err)
    check(bool(agreed), f"the consumer's last segments = UserSegments for {agreed}")

    # Sizes: today's, stable now.
    a, b = sized[0]["segment"], sized[1]["segment"]
    rc, size_a, err = analyst(stats, "size", a)
    check(rc == 0 and size_a["method"] == "hll" and within(size_a, size_a["value"]),
          f"size {a}: an hll estimate inside its interval", err or size_a)
    segctl = subprocess.run([str(build / "tools/segctl"), "--target", stats, "--json", "size", a],
                            capture_output=True, text=True, timeout=30)
    check(segctl.returncode == 0 and json.loads(segctl.stdout)["value"] == size_a["value"],
          f"size {a} = segctl's", segctl.stdout + segctl.stderr)
    rc, size_b, _ = analyst(stats, "size", b)
    rc, union, err = analyst(stats, "union", a, b)
    check(rc == 0 and union["method"] == "hll-union" and
          union["value"] >= max(size_a["value"], size_b["value"]) - 1e-6,
          f"union {a} {b} >= each part", err or union)
    rc, overlap, err = analyst(stats, "overlap", a, b)
    check(rc == 0 and overlap["method"] in ("joint-mle", "inclusion-exclusion") and
          0 <= overlap["value"] and
          overlap["ci95_low"] <= min(size_a["value"], size_b["value"]),
          f"overlap {a} {b} within [0, the smaller part]", err or overlap)
    rc, series, err = analyst(stats, "series", a, "--last", "3")
    points = series["points"] if rc == 0 else []
    check(len(points) == 3 and points[-1]["estimate"]["value"] == size_a["value"],
          f"series {a} --last 3: 3 days ending with today's size", err or series)
    rc, _, err = analyst(stats, "size", "no_such_segment")
    check(rc == 1 and err.startswith("NOT_FOUND:"), "an unknown segment: exit 1, NOT_FOUND", err)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", required=True, type=pathlib.Path)
    args = parser.parse_args()
    missing = []
    for module, package in PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    check(sys.executable == "/usr/bin/python3", f"runs under /usr/bin/python3 ({sys.executable})")
    check(not missing, "the examples' Debian packages are installed "
          f"(missing: {' '.join(missing)}; tools/setup-deps.sh installs them)")
    if not FAILURES:
        with tempfile.TemporaryDirectory(prefix="seg-examples-") as tmp:
            stack = DemoStack(args.build_dir.resolve(), tmp)
            try:
                test_analyst_and_consumer(args.build_dir.resolve(), stack)
            finally:
                problems = stack.stop()
                check(not problems, "the stack stops cleanly", "\n".join(problems))
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())

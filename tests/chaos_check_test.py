#!/usr/bin/env python3
"""seg-chaos-check finds what the chaos run must not miss.

  chaos_check_test.py --build-dir BUILD

kafka-local, seg-store and seg-ingest (no segmenter) under seg-loadgen
traffic; the checker is run against seg-loadgen's --messages-out files:
1. everything ingested: no event lost, none extra, none changed, every
   malformed message dead-lettered, no valid one; no results (no segmenter),
   so every user is missing a result and the pipeline is not quiet;
2. events sent while seg-ingest is stopped: each is lost, and each is found
   in the events topic (a loss in the pipeline, not before it);
3. events acknowledged on another topic (never on `events`): lost before
   the topic;
4. seg-ingest restarted: the events of (2) land, and checked against (1)'s
   file alone they are extra cells.
Standard library only; loopback, free ports, deadlines on every wait.
"""
import argparse
import json
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


class Run:
    def __init__(self, build, tmp):
        self.build = build
        self.tmp = tmp
        self.procs = []

    def start(self, name, argv):
        log = open(self.tmp / f"{name}.log", "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def loadgen(self, name, kafka, seed, events, topic="events"):
        out = self.tmp / f"{name}.tsv"
        r = subprocess.run([str(self.build / "tools/seg-loadgen"), "--bootstrap", kafka,
                            "--users", "40", "--rate", "0", "--events", str(events),
                            "--seed", str(seed), "--topic", topic, "--duration", "0",
                            "--malformed-share", "0.05", "--messages-out", str(out)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return out

    def checker(self, kafka, store, *messages):
        combined = self.tmp / "messages.tsv"
        combined.write_text("".join(m.read_text() for m in messages))
        r = subprocess.run([str(self.build / "tools/seg-chaos-check"), "--bootstrap", kafka,
                            "--store", store, "--scripts", str(ROOT / "scripts"), "--messages",
                            str(combined), "--quiet-timeout-s", "0"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(r.stdout.strip().splitlines()[-1])


def distinct_valid(path):
    """Distinct valid values in a messages file (duplicates share a cell)."""
    return {line.split("\t")[4] for line in path.read_text().splitlines()
            if line.split("\t")[2] == "-"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    build = pathlib.Path(args.build_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="seg-chaos-check-test-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        run = Run(build, tmp)
        try:
            port_file = tmp / "kafka.port"
            run.start("kafka", [str(build / "tools/kafka-local"), "--brokers", "1", "--topics",
                                "events:2,events-deadletter:1,user-changes:2,"
                                "segmentation-results:2,elsewhere:1",
                                "--port-file", str(port_file)])
            kafka = wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 20,
                             "kafka-local")
            store_port = free_port()
            run.start("store", [str(build / "store/seg-store"), "--data-dir",
                                str(tmp / "store"), "--port", str(store_port)])
            store = f"127.0.0.1:{store_port}"
            ingest_argv = [str(build / "ingest/seg-ingest"), "--set",
                           f"kafka.bootstrap_servers={kafka}", "--set",
                           f"store.thrift.port={store_port}", "--set",
                           "kafka.properties.session.timeout.ms=6000"]
            ingest = run.start("ingest", ingest_argv)

            # 1. Everything ingested.
            first = run.loadgen("first", kafka, 3, 400)
            found = wait_for(lambda: (lambda f: f if not f["lost_cells"] else None)(
                run.checker(kafka, store, first)), 90, "every event of the first batch stored")
            check(found["expected_cells"] == len(distinct_valid(first)),
                  f"expected cells are the distinct valid events ({found['expected_cells']})")
            check(found["extra_cells"] == 0 and found["changed_cells"] == 0,
                  "nothing extra, nothing changed")
            check(found["malformed_messages"] > 0, "the traffic has malformed messages")
            letters = wait_for(lambda: (lambda f: f if f["deadletters_missing"] == 0 else None)(
                run.checker(kafka, store, first)), 30, "every malformed message dead-lettered")
            check(letters["deadletters_unexpected"] == 0 and letters["valid_deadlettered"] == 0,
                  "no valid message dead-lettered")
            check(len(found["missing_results"]) == found["users"] and not found["quiet"],
                  "without a segmenter every user misses a result, the pipeline is not quiet")

            # 2. Sent while seg-ingest is stopped: lost in the pipeline.
            run.stop(ingest)
            second = run.loadgen("second", kafka, 4, 100)
            found = run.checker(kafka, store, first, second)
            new = distinct_valid(second) - distinct_valid(first)
            check(len(found["lost_cells"]) == len(new) and len(new) > 0,
                  f"every event sent while ingest was down is lost ({len(found['lost_cells'])} "
                  f"of {len(new)})")
            check(found["lost_not_in_topic"] == 0, "all of them are in the events topic")
            check(found["deadletters_missing"] > 0, "their malformed messages are not dead-lettered")

            # 3. Acknowledged elsewhere: lost before the topic.
            elsewhere = run.loadgen("elsewhere", kafka, 5, 50, topic="elsewhere")
            found = run.checker(kafka, store, first, elsewhere)
            lost = len(found["lost_cells"])
            check(lost > 0 and found["lost_not_in_topic"] == lost,
                  f"events never on the events topic are lost before it ({lost})")

            # 4. seg-ingest back: (2) lands; against (1) alone it is extra.
            run.start("ingest", ingest_argv)
            wait_for(lambda: not run.checker(kafka, store, first, second)["lost_cells"], 90,
                     "the second batch stored")
            found = run.checker(kafka, store, first)
            check(found["extra_cells"] >= len(new),
                  f"cells no message explains are extra ({found['extra_cells']})")
        finally:
            for p in reversed(run.procs):
                run.stop(p)
    print(f"{len(FAILURES)} failure(s)" + (": " + "; ".join(FAILURES) if FAILURES else ""))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The chaos run (issue #17): the local stack under seg-loadgen traffic, with
faults injected at seeded random points, then checked against the load
generator's ground truth.

  tools/dev chaos [--minutes N] [--real] [--seed S]
  tools/chaos.py --build-dir BUILD [--minutes N] [--seed S] [--real] [--no-write]

1. tools/local-stack.sh starts the stack (--no-traffic; kafka-local with its
   --control FIFO; every server on a fixed port, its command line in
   RUN_DIR/NAME.cmd so a killed part restarts on its old address).
2. seg-loadgen sends traffic for N minutes (--messages-out: every message the
   brokers acknowledged, the ground truth) while one fault after another is
   injected and healed, each at a seeded random point of its slot:
     broker outage     kafka-local: a broker down 3-6 s (--real: the real
                       broker stopped and started, data kept)
     request errors    kafka-local: the next 10-40 produce, fetch, commit,
                       heartbeat or metadata requests fail (retriable codes
                       and dropped connections); not with --real
     kill -9 seg-store, seg-ingest, segmenter1, segmenter2: restarted 0.5-3 s
                       later from their command lines (store: not with --real)
     Redis restart     killed and restarted without persistence: its data and
                       its functions are lost
     seg-stats restart killed -9 and restarted
     store slowdown    seg-store stopped (SIGSTOP) for 2-5 s, then continued
     clock skew        seg-ingest restarted with clock.offset_ms = +-2000
                       (its wall clock 2 s off the segmenters') for 8-15 s,
                       then restarted without
3. After the traffic every part runs again; seg-chaos-check waits for a quiet
   pipeline and checks every valid event stored exactly once, every user's
   final result against a direct evaluation at its segmented_at, the dead
   letters, and the day sizes against their 99.9% intervals (when they miss
   and `segctl stats rebuild` exists, it runs and the sizes are checked again).
4. A table: per fault, times injected, events lost and results wrong (each
   finding is put on the fault injected last before it: the lost event's send
   time, the wrong result's segmented_at); written to RELIABILITY.md unless
   --no-write. Exit 0 only when nothing was lost, wrong, missed or outside.
Standard library only; loopback; every wait has a deadline.
"""
import argparse
import datetime
import json
import os
import pathlib
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

KINDS = {
    "broker_outage": "Kafka broker outage",
    "request_errors": "Kafka request errors",
    "kill_store": "kill -9 seg-store",
    "kill_ingest": "kill -9 seg-ingest",
    "kill_segmenter1": "kill -9 segmenter1",
    "kill_segmenter2": "kill -9 segmenter2",
    "redis_restart": "Redis restart (data, functions lost)",
    "stats_restart": "kill -9 seg-stats",
    "store_slowdown": "store slowdown (SIGSTOP 2-5 s)",
    "clock_skew": "clock skew (ingest +-2 s)",
}
REAL_KINDS = [k for k in KINDS if k not in ("request_errors", "kill_store", "store_slowdown")]

# Retriable errors per API (librdkafka names); _TRANSPORT drops the connection.
# Not REQUEST_TIMED_OUT on produce: librdkafka 2.0.2's idempotent producer on
# the mock cluster then reports a few messages delivered that the topic never
# holds, with no segengine code involved (tools/chaos/produce_timeout_repro.sh).
REQUEST_ERRORS = {
    "produce": "NOT_LEADER_FOR_PARTITION,NOT_ENOUGH_REPLICAS,_TRANSPORT",
    "fetch": "NOT_LEADER_FOR_PARTITION,_TRANSPORT",
    "offset_commit": "REQUEST_TIMED_OUT,COORDINATOR_NOT_AVAILABLE,_TRANSPORT",
    "heartbeat": "COORDINATOR_NOT_AVAILABLE,_TRANSPORT",
    "metadata": "_TRANSPORT",
}


def now_ms():
    return int(time.time() * 1000)


def log(msg):
    print(f"chaos {datetime.datetime.utcnow():%H:%M:%S}: {msg}", flush=True)


def port_open(addr):
    host, port = addr.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=0.3).close()
        return True
    except OSError:
        return False


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def alive(pid):
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Part:
    """One server of the stack: started by local-stack.sh, restarted by us."""

    def __init__(self, name, run_dir, pid, addr):
        self.name = name
        self.run_dir = run_dir
        self.cmd = (run_dir / f"{name}.cmd").read_text().strip()
        self.pid = pid
        self.addr = addr  # what answers once it is up (a port), or None
        self.proc = None  # our Popen once we restarted it
        self.extra = ""  # extra arguments of the current command line

    def running(self):
        if self.proc is not None:
            return self.proc.poll() is None
        return alive(self.pid)

    def signal(self, sig):
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def wait_exit(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None:
                if self.proc.poll() is not None:
                    return True
            elif not alive(self.pid):
                return True
            time.sleep(0.02)
        return False

    def kill9(self):
        self.signal(signal.SIGKILL)
        if not self.wait_exit(10):
            raise RuntimeError(f"{self.name} survived SIGKILL")

    def stop(self, timeout=15):
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if not self.wait_exit(timeout):
            log(f"{self.name} did not stop in {timeout} s; SIGKILL")
            self.kill9()

    def start(self, extra=None):
        if extra is not None:
            self.extra = extra
        out = open(self.run_dir / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(["bash", "-c", f"exec {self.cmd} {self.extra}"],
                                     stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.pid = self.proc.pid
        if self.addr:
            wait_for(lambda: port_open(self.addr) or not self.running(), 60,
                     f"{self.name} on {self.addr}")
            if not self.running():
                raise RuntimeError(f"{self.name} exited on restart; see its log")


class Chaos:
    def __init__(self, args):
        self.args = args
        self.build = pathlib.Path(args.build_dir).resolve()
        self.rng = random.Random(args.seed)
        self.faults = []  # {"kind", "inject_ms", "heal_ms", "detail"}
        self.stack = None
        self.env = {}
        self.parts = {}
        self.run_dir = None
        self.skew_sign = 1

    # ------------------------------------------------------------ the stack
    def start_stack(self, work):
        env_file = work / "stack.env"
        cmd = [str(ROOT / "tools/local-stack.sh"), "--build-dir", str(self.build), "--no-traffic",
               "--quiet", "--env-file", str(env_file)]
        if self.args.real:
            cmd.append("--real")
        env = dict(os.environ, SEG_STACK_KEEP_LOGS="1")
        self.stack_log = work / "local-stack.log"
        with open(self.stack_log, "wb") as out:
            self.stack = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + (900 if self.args.real else 180)
        while not env_file.exists():
            if self.stack.poll() is not None:
                raise RuntimeError("local-stack.sh exited:\n" + self.stack_log.read_text()[-3000:])
            if time.monotonic() > deadline:
                raise RuntimeError("the local stack did not come up")
            time.sleep(0.1)
        self.env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        self.run_dir = pathlib.Path(self.env["RUN_DIR"])
        seg_metrics = self.env["SEGMENTER_METRICS"].split()
        addrs = {"store": self.env["STORE"], "redis": self.env["REDIS"],
                 "stats": self.env["STATS"], "ingest": self.env["INGEST_METRICS"]}
        for i, m in enumerate(seg_metrics, 1):
            addrs[f"segmenter{i}"] = m
        for key, value in self.env.items():
            if key.startswith("PID_"):
                name = key[4:]
                self.parts[name] = Part(name, self.run_dir, int(value), addrs.get(name))
        log(f"stack up in {self.run_dir}: kafka {self.env['KAFKA']}, store {self.env['STORE']}, "
            f"redis {self.env['REDIS']}, stats {self.env['STATS']}")

    def stop_stack(self):
        for part in self.parts.values():
            if part.proc is not None and part.running():
                part.stop()
        if self.stack is not None and self.stack.poll() is None:
            self.stack.send_signal(signal.SIGTERM)
            try:
                self.stack.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.stack.kill()
                self.stack.wait()

    def services(self, *words):
        env = dict(os.environ, SEG_SERVICES_DIR=str(self.run_dir / "services"),
                   SEG_BUILD_DIR=str(self.build))
        subprocess.run([str(ROOT / "tools/services/services.sh"), *words], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)

    def control(self, line):
        """One kafka-local --control command; returns once its log line shows."""
        log_path = self.run_dir / "kafka.log"
        taken = lambda: log_path.read_text(errors="replace").count(f"control: {line}\n")
        before = taken()
        with open(self.run_dir / "kafka.control", "w") as f:
            f.write(line + "\n")
        wait_for(lambda: taken() > before, 10, f"kafka-local to take '{line}'")

    # ---------------------------------------------------------------- faults
    def hold(self, lo, hi):
        time.sleep(self.rng.uniform(lo, hi))  # the fault window itself

    def kill_restart(self, name, lo, hi):
        part = self.parts[name]
        part.kill9()
        self.hold(lo, hi)
        part.start()
        return f"down {self.last_hold_s():.1f} s"

    def last_hold_s(self):
        return (now_ms() - self.current["inject_ms"]) / 1000

    def inject(self, kind):
        r = self.rng
        if kind == "broker_outage":
            if self.args.real:
                self.services("node-stop", "kafka", "1")
                self.hold(3, 6)
                self.services("node-start", "kafka", "1")
                return "the real broker stopped and started"
            broker = r.randint(1, 3)
            self.control(f"down {broker}")
            self.hold(3, 6)
            self.control(f"up {broker}")
            return f"broker {broker} down {self.last_hold_s():.1f} s"
        if kind == "request_errors":
            api = r.choice(sorted(REQUEST_ERRORS))
            count = r.randint(10, 40)
            self.control(f"errors {api} {count} {REQUEST_ERRORS[api]}")
            self.hold(2, 3)
            return f"{count} {api} requests"
        if kind == "kill_store":
            return self.kill_restart("store", 1, 3)
        if kind == "kill_ingest":
            return self.kill_restart("ingest", 0.5, 2)
        if kind.startswith("kill_segmenter"):
            return self.kill_restart(kind[5:], 0.5, 2)
        if kind == "redis_restart":
            return self.kill_restart("redis", 0.5, 1.5)
        if kind == "stats_restart":
            return self.kill_restart("stats", 0.5, 1.5)
        if kind == "store_slowdown":
            store = self.parts["store"]
            store.signal(signal.SIGSTOP)
            self.hold(2, 5)
            store.signal(signal.SIGCONT)
            return f"stopped {self.last_hold_s():.1f} s"
        if kind == "clock_skew":
            offset = 2000 * self.skew_sign
            self.skew_sign = -self.skew_sign
            ingest = self.parts["ingest"]
            ingest.stop()
            ingest.start(f"--set clock.offset_ms={offset}")
            self.hold(8, 15)
            ingest.stop()
            ingest.start("")
            return f"ingest {offset:+d} ms for {self.last_hold_s():.1f} s"
        raise ValueError(kind)

    def schedule(self, traffic_s):
        kinds = REAL_KINDS if self.args.real else list(KINDS)
        if self.args.faults:
            kinds = [k for k in self.args.faults.split(",") if k]
            unknown = [k for k in kinds if k not in KINDS]
            if unknown:
                raise SystemExit(f"chaos: unknown fault {unknown} (known: {', '.join(KINDS)})")
        n = max(len(kinds), int(traffic_s // self.args.slot_s))
        order = []
        while len(order) < n:
            round_ = list(kinds)
            self.rng.shuffle(round_)
            order += round_
        return order[:n]

    def run_faults(self, t0, traffic_s, loadgen):
        order = self.schedule(traffic_s)
        # The first and last few seconds stay quiet: traffic starts and ends.
        usable = traffic_s - 10
        slot = usable / len(order)
        log(f"{len(order)} faults over {traffic_s:.0f} s of traffic, one per {slot:.1f} s slot")
        for i, kind in enumerate(order):
            due = t0 + 5 + i * slot + self.rng.uniform(0, max(0.0, slot * 0.3))
            while time.monotonic() < due:
                time.sleep(0.05)
            if loadgen.poll() is not None:
                raise RuntimeError("seg-loadgen ended early; see loadgen.log")
            self.current = {"kind": kind, "inject_ms": now_ms()}
            detail = self.inject(kind)
            self.current.update(heal_ms=now_ms(), detail=detail)
            self.faults.append(self.current)
            log(f"{KINDS[kind]}: {detail}")
            for name, part in self.parts.items():
                if name != "loadgen" and not part.running():
                    raise RuntimeError(f"{name} is not running after {kind}")

    # ---------------------------------------------------------------- checks
    def check(self):
        cmd = [str(self.build / "tools/seg-chaos-check"), "--bootstrap", self.env["KAFKA"],
               "--store", self.env["STORE"], "--stats", self.env["STATS"],
               "--scripts", str(ROOT / "scripts"), "--messages", str(self.run_dir / "sent.tsv"),
               "--quiet-timeout-s", str(self.args.quiet_timeout_s)]
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=self.args.quiet_timeout_s + 300)
        (self.run_dir / "check.err").write_text(r.stderr)
        if r.returncode != 0:
            raise RuntimeError(f"seg-chaos-check failed ({r.returncode}):\n{r.stderr[-3000:]}")
        (self.run_dir / "check.json").write_text(r.stdout)
        found = json.loads(r.stdout.strip().splitlines()[-1])
        bots = set()
        for line in (self.run_dir / "truth.jsonl").read_text().splitlines():
            user = json.loads(line)
            if user["bot"]:
                bots.add(user["user"])
        found["humans_flagged"] = sum(1 for u in found["bot_flagged"] if u not in bots)
        return found

    def rebuild_stats(self):
        """`segctl stats rebuild` (Redis-loss recovery) when this tree has it."""
        segctl = str(self.build / "tools/segctl")
        probe = subprocess.run([segctl, "stats", "--help"], capture_output=True, text=True,
                               timeout=30)
        if not re.search(r"^\s+rebuild\b", probe.stdout, re.M):
            return None
        # The config keys every segctl stats command takes (--set), as expire-sweep.
        redis_host, redis_port = self.env["REDIS"].rsplit(":", 1)
        store_host, store_port = self.env["STORE"].rsplit(":", 1)
        r = subprocess.run([segctl, "stats", "rebuild",
                            "--set", f"stats.redis.host={redis_host}",
                            "--set", f"stats.redis.port={redis_port}",
                            "--set", f"store.thrift.host={store_host}",
                            "--set", f"store.thrift.port={store_port}"],
                           capture_output=True, text=True, timeout=600)
        return r.returncode == 0, (r.stdout + r.stderr)[-2000:]

    def attribute(self, t_ms):
        """The fault injected last at or before t_ms (1 s of slack), or None."""
        best = None
        for f in self.faults:
            if f["inject_ms"] - 1000 <= t_ms:
                best = f
        return best["kind"] if best else None

    def table(self, found):
        rows = {k: {"n": 0, "lost": 0, "wrong": 0} for k in
                (REAL_KINDS if self.args.real else KINDS)}
        for f in self.faults:
            rows.setdefault(f["kind"], {"n": 0, "lost": 0, "wrong": 0})["n"] += 1
        none = {"n": 0, "lost": 0, "wrong": 0}
        for t in found["lost_cells"]:
            (rows.get(self.attribute(t)) or none)["lost"] += 1
        for w in found["wrong_results"]:
            (rows.get(self.attribute(w["at_ms"])) or none)["wrong"] += 1
        for t in found["missing_results"]:
            (rows.get(self.attribute(t)) or none)["wrong"] += 1
        lines = ["| fault | times injected | events lost | results wrong |",
                 "|---|---:|---:|---:|"]
        for k, v in rows.items():
            lines.append(f"| {KINDS.get(k, k)} | {v['n']} | {v['lost']} | {v['wrong']} |")
        if none["lost"] or none["wrong"]:
            lines.append(f"| (before any fault) | - | {none['lost']} | {none['wrong']} |")
        total_lost = len(found["lost_cells"])
        total_wrong = len(found["wrong_results"]) + len(found["missing_results"])
        lines.append(f"| **all** | {len(self.faults)} | {total_lost} | {total_wrong} |")
        return lines


def summary_lines(found, sizes_note):
    dl_ok = found["deadletters_missing"] == 0 and found["deadletters_unexpected"] == 0 \
        and found["valid_deadlettered"] == 0
    return [
        f"- events: {found['valid_messages']} valid messages of {found['messages']} "
        f"({found['expected_cells']} distinct cells, {found['users']} users); "
        f"{len(found['lost_cells'])} lost ({found['lost_not_in_topic']} of them acknowledged "
        f"to seg-loadgen but not in the events topic), {found['extra_cells']} extra, "
        f"{found['changed_cells']} changed",
        f"- results: {found['compared']} users' final results compared with a direct "
        f"evaluation, {len(found['wrong_results'])} wrong, {len(found['missing_results'])} "
        f"users without a result, {len(found['bot_flagged'])} flagged as bots "
        f"({found['humans_flagged']} of them humans to the generator); the pipeline was "
        f"quiet {found['quiet_after_s']:.0f} s after the traffic",
        f"- dead letters: {found['deadletters_expected']} malformed messages, "
        f"{found['deadletters_missing']} not dead-lettered, {found['valid_deadlettered']} "
        f"valid ones dead-lettered, {found['deadletters_unexpected']} unexpected "
        f"({found['deadletters_repeated']} repeated by at-least-once re-reads) "
        + ("- ok" if dl_ok else "- FAILED"),
        f"- sizes: {found['sizes_checked']} segment-days checked, "
        f"{len(found['sizes_outside'])} outside their 99.9% interval{sizes_note}",
    ]


def write_reliability(lines, header):
    path = ROOT / "RELIABILITY.md"
    text = path.read_text()
    begin, end = "<!-- chaos-table:begin -->", "<!-- chaos-table:end -->"
    block = "\n".join([begin, header, "", *lines, end])
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n## Chaos run\n\n" + block + "\n"
    path.write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=str(ROOT / "build/default"))
    ap.add_argument("--minutes", type=float, default=5.0, help="traffic (and faults) duration")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--real", action="store_true", help="real Kafka and HBase (tools/services)")
    ap.add_argument("--users", type=int, default=3000)
    ap.add_argument("--rate", type=int, default=400, help="events per second")
    ap.add_argument("--slot-s", type=float, default=12.0, help="seconds per fault")
    ap.add_argument("--faults", default="", help="comma list of fault kinds (default: all)")
    ap.add_argument("--quiet-timeout-s", type=float, default=180)
    ap.add_argument("--no-write", action="store_true", help="do not update RELIABILITY.md")
    ap.add_argument("--keep-logs", action="store_true")
    args = ap.parse_args()
    for binary in ("tools/seg-chaos-check", "tools/seg-loadgen", "tools/segctl"):
        if not (pathlib.Path(args.build_dir) / binary).exists():
            print(f"chaos: {args.build_dir}/{binary} is not built", file=sys.stderr)
            return 2

    chaos = Chaos(args)
    work = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"seg-chaos-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    ok = False
    started = time.monotonic()
    try:
        chaos.start_stack(work)
        traffic_s = args.minutes * 60
        loadgen_out = open(chaos.run_dir / "loadgen-chaos.log", "wb")
        loadgen = subprocess.Popen(
            [str(chaos.build / "tools/seg-loadgen"), "--bootstrap", chaos.env["KAFKA"],
             "--users", str(args.users), "--rate", str(args.rate), "--seed", str(args.seed),
             "--duration", str(traffic_s), "--messages-out", str(chaos.run_dir / "sent.tsv"),
             "--truth-out", str(chaos.run_dir / "truth.jsonl")],
            stdout=loadgen_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        chaos.run_faults(t0, traffic_s, loadgen)
        rc = loadgen.wait(timeout=traffic_s + 120)
        loadgen_out.close()
        sent = (chaos.run_dir / "loadgen-chaos.log").read_text(errors="replace")
        summary = re.search(r"seg-loadgen: .*", sent)
        log(summary.group(0) if summary else "seg-loadgen printed no summary")
        if rc != 0:
            raise RuntimeError(f"seg-loadgen exited {rc}")
        dead = [name for name, part in chaos.parts.items() if not part.running()]
        if dead:
            raise RuntimeError(f"not running after the traffic: {', '.join(dead)} (see their logs)")
        log(f"traffic done after {time.monotonic() - t0:.0f} s; checking (waits for a quiet "
            "pipeline)")
        found = chaos.check()
        sizes_note = ""
        sizes_known_loss = False
        if found["sizes_outside"]:
            rebuilt = chaos.rebuild_stats()
            if rebuilt is None:
                redis = sum(1 for f in chaos.faults if f["kind"] == "redis_restart")
                if redis:
                    # Known: this tree has no Redis-loss recovery yet (issue
                    # #17 part 3). Once `segctl stats rebuild` exists, a miss fails.
                    sizes_known_loss = True
                    sizes_note = (f" (Redis lost its HyperLogLogs {redis} times and this tree "
                                  "has no Redis-loss recovery, `segctl stats rebuild`: a known "
                                  "gap, not counted as a failure)")
            else:
                before = len(found["sizes_outside"])
                found = chaos.check()
                sizes_note = (f" after `segctl stats rebuild` ({before} before it"
                              + ("" if rebuilt[0] else f"; the rebuild failed: {rebuilt[1]}")
                              + ")")
        lines = chaos.table(found)
        lines.append("")
        lines += summary_lines(found, sizes_note)
        for w in found["wrong_results"][:10]:
            lines.append(f"  - wrong: {w['user']} at {w['at_ms']}: {w['why']}")
        for s in found["sizes_outside"][:10]:
            lines.append(f"  - size: {s['segment']} on {s['day']}: {s['estimate']:.0f} vs "
                         f"{s['truth']:.0f} users (bound {s['bound']:.0f})")
        print("\n".join(lines), flush=True)
        ok = (found["quiet"] and not found["lost_cells"] and not found["wrong_results"]
              and not found["missing_results"] and found["extra_cells"] == 0
              and found["changed_cells"] == 0 and found["deadletters_missing"] == 0
              and found["deadletters_unexpected"] == 0 and found["valid_deadlettered"] == 0
              and (not found["sizes_outside"] or sizes_known_loss) and not found["size_error"])
        if not args.no_write:
            kinds_seen = {f["kind"] for f in chaos.faults}
            header = (f"`tools/dev chaos --minutes {args.minutes:g} --seed {args.seed}"
                      f"{' --real' if args.real else ''}` on {datetime.date.today()}: "
                      f"{args.users} users at {args.rate} events/s, {len(chaos.faults)} faults "
                      f"of {len(kinds_seen)} kinds, {time.monotonic() - started:.0f} s in all; "
                      + ("FAILED" if not ok else "passed, but for the sizes after Redis "
                         "restarts (a known gap, below)" if sizes_known_loss else "passed")
                      + ".")
            write_reliability(lines, header)
            log("table written to RELIABILITY.md")
    except Exception as e:  # report, stop everything, keep the logs
        log(f"FAILED: {e}")
        ok = False
    finally:
        chaos.stop_stack()
        if chaos.run_dir is not None:
            if ok and not args.keep_logs:
                shutil.rmtree(chaos.run_dir, ignore_errors=True)
                shutil.rmtree(work, ignore_errors=True)
            else:
                log(f"logs kept in {chaos.run_dir} and {work}")
    log(f"{'passed' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

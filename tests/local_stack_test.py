#!/usr/bin/env python3
"""tools/local-stack.sh end to end, and its config switches.

  local_stack_test.py --build-dir BUILD

1. config parsing: the shipped configs parse; a typo'd key, a bad section
   and a cluster without seeds are clear errors (exit 2), never a silent
   local part.
2. The demo with --config pointing at a seg-store and a redis-server started
   here (so "external" to the stack): it must start no seg-store/redis-server
   of its own, show a status line with traffic flowing, print the segment
   table over gRPC with non-zero sizes, leave our two servers running (and
   written to: HyperLogLog keys in our Redis), exit 0 and
   leave none of its own processes running.
3. Started in the background from a non-interactive shell (SIGINT ignored,
   as bash does for `cmd &`): seg-store killed -9 and restarted from its
   kept command line comes back on the same address; HUP stops the stack
   cleanly.
4. --real (ctest label `real`): the demo on a real Kafka broker and a real
   HBase with its Thrift2 gateway (local-stack.sh --real): traffic flows,
   the segment table has sizes, and no process of the stack or of the
   services is left.
Standard library only; loopback, free ports, deadlines on every wait.
"""
import argparse
import os
import pathlib
import re
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
        if cond():
            return True
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def stack_config(text, tmp):
    path = tmp / "c.yaml"
    path.write_text(text)
    return subprocess.run([sys.executable, str(ROOT / "tools/stack_config.py"), str(path)],
                          capture_output=True, text=True, timeout=30)


def test_config(tmp):
    for shipped in ("config/stack-local.yaml", "config/stack-production-example.yaml"):
        r = subprocess.run([sys.executable, str(ROOT / "tools/stack_config.py"),
                            str(ROOT / shipped)], capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, f"{shipped} parses")
    r = stack_config("store:\n  hots: db1\n", tmp)
    check(r.returncode == 2 and "store.hots" in r.stderr, "a typo'd key is an error naming it")
    r = stack_config("hbase:\n  host: x\n", tmp)
    check(r.returncode == 2 and "hbase" in r.stderr, "an unknown section is an error")
    r = stack_config("redis:\n  cluster: true\n", tmp)
    check(r.returncode == 2 and "seeds" in r.stderr, "a cluster without seeds is an error")
    r = stack_config("redis:\n  cluster: true\n  seeds: [a:1, b:2]\n  shards: 4\n", tmp)
    check(r.returncode == 0 and "stats.redis.cluster=true" in r.stdout and
          "'stats.redis.seeds=[a:1, b:2]'" in r.stdout and "REDIS_EXTERNAL=a:1" in r.stdout,
          "cluster seeds reach the segmenters and seg-stats")
    r = stack_config("kafka:\n  bootstrap_servers: k1:9092 # real\n", tmp)
    check(r.returncode == 0 and "KAFKA_EXTERNAL=k1:9092" in r.stdout, "kafka switch")
    r = stack_config("kafka:\n  properties:\n    security.protocol: SASL_SSL\n", tmp)
    check(r.returncode == 0 and "LOADGEN_KAFKA_ARGS=(-X security.protocol=SASL_SSL)" in r.stdout
          and "--set kafka.properties.security.protocol=SASL_SSL" in r.stdout,
          "kafka properties reach seg-loadgen (-X) as well as ingest and the segmenters")


def still_running(pids):
    out = []
    for pid in pids:
        try:
            state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(pid)
    return out


def test_demo(build, tmp):
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                              "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = subprocess.Popen([str(build / "store/seg-store"), "--data-dir", str(tmp / "store"),
                              "--port", "0", "--port-file", str(tmp / "store.port")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: port_open(redis_port), 20, "redis-server")
        port_file = tmp / "store.port"
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 20, "seg-store")
        store_port = int(port_file.read_text())
        cfg = tmp / "external.yaml"
        cfg.write_text(f"store:\n  host: 127.0.0.1\n  port: {store_port}\n"
                       f"redis:\n  host: 127.0.0.1\n  port: {redis_port}\n"
                       "loadgen:\n  users: 2000\n  rate: 2000\n")
        env_file = tmp / "stack.env"
        r = subprocess.run([str(ROOT / "tools/local-stack.sh"), "--build-dir", str(build),
                            "--config", str(cfg), "--duration", "10", "--env-file",
                            str(env_file)], capture_output=True, text=True, timeout=240)
        out = r.stdout
        print(out[-2500:], r.stderr[-2500:], sep="\n")
        check(r.returncode == 0, "demo exits 0")
        check(f"127.0.0.1:{store_port} (external" in out, "store switched to ours")
        check(f"127.0.0.1:{redis_port} (external" in out, "redis switched to ours")
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        started = {k[4:] for k in env if k.startswith("PID_")}
        check("store" not in started and "redis" not in started,
              f"no seg-store/redis-server of its own (started: {sorted(started)})")
        check({"kafka", "ingest", "segmenter1", "segmenter2", "stats", "loadgen"} <= started,
              "the other parts were started")
        rates = [float(m) for m in re.findall(r"^in\s+(\d+) ev/s", out, re.M)]
        check(any(x > 0 for x in rates), f"status line shows events flowing ({rates})")
        sizes = [int(m) for m in re.findall(r"^\w+\s+(\d+)\s+±", out, re.M)]
        check(len(sizes) >= 5 and sum(sizes) > 0, f"segment table with sizes ({sizes})")
        pids = [int(v) for k, v in env.items() if k.startswith("PID_")]
        check(not still_running(pids), "nothing of the stack left running")
        check(redis.poll() is None and store.poll() is None, "our redis and store still run")
        keys = subprocess.run(["redis-cli", "-p", str(redis_port), "--scan", "--pattern",
                               "hll:*"], capture_output=True, text=True, timeout=30).stdout
        sketches = [k for k in keys.split() if not k.endswith(":epoch")]  # not the stats epochs
        check(len(sketches) > 0, "HyperLogLogs were written to our Redis")
    finally:
        for p in (store, redis):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_background_hup_and_restart(build, tmp):
    env_file = tmp / "bg.env"
    log = tmp / "bg.log"
    shell = subprocess.Popen(
        ["bash", "-c", f'"$0" --build-dir "$1" --no-traffic --quiet --env-file "$2" >"$3" 2>&1 &'
         ' echo $!; wait', str(ROOT / "tools/local-stack.sh"), str(build), str(env_file),
         str(log)], stdout=subprocess.PIPE, text=True)
    stack_pid = int(shell.stdout.readline())
    restarted = None
    try:
        wait_for(env_file.exists, 120, "the stack's env file")
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        sig_ign = int(re.search(r"^SigIgn:\s*([0-9a-f]+)", pathlib.Path(
            f"/proc/{stack_pid}/status").read_text(), re.M).group(1), 16)
        check(sig_ign & (1 << (signal.SIGINT - 1)) != 0, "the background stack has SIGINT ignored")
        store_port = int(env["STORE"].rsplit(":", 1)[1])
        os.kill(int(env["PID_store"]), signal.SIGKILL)
        wait_for(lambda: not port_open(store_port), 20, "seg-store gone")
        cmd = (pathlib.Path(env["RUN_DIR"]) / "store.cmd").read_text()
        restarted = subprocess.Popen(["bash", "-c", "exec " + cmd],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open(store_port), 30, "seg-store back on its port")
        check(True, f"seg-store restarted from store.cmd listens on its old port {store_port}")
        os.kill(stack_pid, signal.SIGHUP)
        shell.wait(timeout=120)
        pids = [int(v) for k, v in env.items() if k.startswith("PID_")]
        check(not still_running(pids + [stack_pid]), "HUP stopped the background stack")
        check("segment sizes today" in log.read_text(), "HUP printed the segment table first")
    finally:
        for p in (restarted, shell):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if still_running([stack_pid]):
            os.kill(stack_pid, signal.SIGTERM)


def test_real(build, tmp):
    env_file = tmp / "real.env"
    r = subprocess.run([str(ROOT / "tools/local-stack.sh"), "--build-dir", str(build), "--real",
                        "--duration", "20", "--env-file", str(env_file)],
                       capture_output=True, text=True, timeout=540)
    out = r.stdout
    print(out[-2500:], r.stderr[-2500:], sep="\n")
    check(r.returncode == 0, "demo --real exits 0")
    check(re.search(r"^  kafka .*\(external\)", out, re.M) is not None, "kafka is the real broker")
    check(re.search(r"^  store .*\(external, HBase Thrift2\)", out, re.M) is not None,
          "store is the real HBase Thrift2 gateway")
    rates = [float(m) for m in re.findall(r"^in\s+(\d+) ev/s", out, re.M)]
    check(any(x > 0 for x in rates), f"status line shows events flowing ({rates})")
    segmented = [float(m) for m in re.findall(r"segmented\s+(\d+)/s", out)]
    check(any(x > 0 for x in segmented), f"users were segmented ({segmented})")
    sizes = [int(m) for m in re.findall(r"^\w+\s+(\d+)\s+±", out, re.M)]
    check(len(sizes) >= 5 and sum(sizes) > 0, f"segment table with sizes ({sizes})")
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    pids = [int(v) for k, v in env.items() if k.startswith("PID_")]
    check(not still_running(pids), "nothing of the stack left running")
    services_dir = env["RUN_DIR"] + "/services"
    java = subprocess.run(["pgrep", "-f", services_dir], capture_output=True, text=True).stdout
    check(java.strip() == "", "the real services were stopped")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--real", action="store_true", help="only the demo on real Kafka and HBase")
    args = ap.parse_args()
    build = pathlib.Path(args.build_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="seg-local-stack-test-") as tmp:
        if args.real:
            test_real(build, pathlib.Path(tmp))
            print(f"{len(FAILURES)} failure(s)" + (": " + "; ".join(FAILURES) if FAILURES else ""))
            return 1 if FAILURES else 0
        test_config(pathlib.Path(tmp))
        test_demo(build, pathlib.Path(tmp))
        test_background_hup_and_restart(build, pathlib.Path(tmp))
    print(f"{len(FAILURES)} failure(s)" + (": " + "; ".join(FAILURES) if FAILURES else ""))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

"""tools/local-stack.sh (the demo) for Python tests: start it, read the
addresses it writes with --env-file, stop it and check nothing is left.

  stack = DemoStack(build, tmp)      # returns once every part is up
  stack.env["STATS"], stack.env["SEG_CONFIG"], stack.env["PID_loadgen"]
  stack.stop()                       # returns the problems found ([] = clean)
"""
import os
import pathlib
import signal
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


class DemoStack:
    def __init__(self, build, tmp, extra_args=(), timeout=150):
        self.tmp = pathlib.Path(tmp)
        self.log_path = self.tmp / "stack.log"
        env_file = self.tmp / "stack.env"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [str(ROOT / "tools/local-stack.sh"), "--build-dir", str(build), "--quiet",
                 "--env-file", str(env_file), *extra_args],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not env_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise RuntimeError("local stack did not come up:\n" + self.log())
            time.sleep(0.1)
        self.env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())

    def log(self):
        return self.log_path.read_text()

    def stop(self):
        problems = []
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            problems.append("the stack did not stop within 60 s of TERM")
        pids = [int(v) for k, v in self.env.items() if k.startswith("PID_")]
        alive = [p for p in pids if os.path.exists(f"/proc/{p}")]
        if alive:
            problems.append(f"processes of the stack left running: {alive}")
        return problems

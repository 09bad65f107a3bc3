#!/usr/bin/python3
"""Every binary's --check-config on config/seg.example.yaml: it loads (exit 0,
"config OK"), a typo'd key fails with exit 2 naming the nearest known key, a
renamed key loads with a warning naming the new key, and two old names of
one setting with different values fail with exit 2 naming both.

  check_config_test.py SOURCE_DIR seg-ingest=PATH seg-segmenter=PATH ...
"""
import os
import subprocess
import sys
import tempfile

EXAMPLE = "config/seg.example.yaml"


def command(name, path, config, tmp):
    if name == "segctl":
        return [path, "check-config", "--config", config]
    cmd = [path, "--check-config", "--config", config]
    if name == "seg-store":
        cmd += ["--data-dir", os.path.join(tmp, "store")]
    return cmd


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def main():
    source_dir = sys.argv[1]
    binaries = dict(arg.split("=", 1) for arg in sys.argv[2:])
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        typo = os.path.join(tmp, "typo.yaml")
        with open(typo, "w") as f:
            f.write("kafka:\n  bootstrap_server: 127.0.0.1:9092\n")
        renamed = os.path.join(tmp, "renamed.yaml")
        with open(renamed, "w") as f:
            f.write("ingest:\n  family: e\n")
        conflict = os.path.join(tmp, "conflict.yaml")
        with open(conflict, "w") as f:
            f.write("ingest:\n  changes_topic: a\nsegmenter:\n  notices_topic: b\n")
        example = os.path.join(source_dir, EXAMPLE)
        for name, path in sorted(binaries.items()):
            r = run(command(name, path, example, tmp))
            if r.returncode != 0 or "config OK" not in r.stdout:
                failures.append(f"{name} on {EXAMPLE}: exit {r.returncode}\n{r.stdout}{r.stderr}")
            if os.path.exists(os.path.join(tmp, "store")):
                failures.append(f"{name}: --check-config created the store directory")
            r = run(command(name, path, typo, tmp))
            want = "unknown key 'kafka.bootstrap_server' (did you mean 'kafka.bootstrap_servers'?)"
            if r.returncode != 2 or want not in r.stderr:
                failures.append(f"{name} on a typo: exit {r.returncode}, want 2 and {want!r}\n"
                                f"{r.stdout}{r.stderr}")
            r = run(command(name, path, renamed, tmp))
            want = "ingest.family is renamed tables.users.events_family"
            if r.returncode != 0 or want not in r.stderr:
                failures.append(f"{name} on a renamed key: exit {r.returncode}, want 0 and "
                                f"{want!r}\n{r.stdout}{r.stderr}")
            r = run(command(name, path, conflict, tmp))
            want = ("segmenter.notices_topic is 'b' but topics.changes "
                    "(set as ingest.changes_topic) is 'a'")
            if r.returncode != 2 or want not in r.stderr:
                failures.append(f"{name} on conflicting old keys: exit {r.returncode}, want 2 "
                                f"and {want!r}\n{r.stdout}{r.stderr}")
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    print(f"{len(binaries)} binaries, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

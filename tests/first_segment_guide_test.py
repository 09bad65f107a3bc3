#!/usr/bin/env python3
"""docs/sdk/first-segment.md as written, against the local stack.

  first_segment_guide_test.py --build-dir BUILD

Takes the guide's script, fixture, failure example and every `segtool`
command from its code blocks, and runs them:
1. in a scratch copy of the repository's scripts/ with the guide's
   reads_recipes.lua and fixture added: `segtool test` passes, and with the
   one expectation flipped prints exactly the failure the guide shows;
2. against tools/local-stack.sh (the demo) through the seg.yaml it writes and
   prints: `users` lists demo ids shaped like the guide's example, `run` and
   `explain` work on one of them, `preview` and `shadow` of the new script
   evaluate users with no errors; `segtool --config seg.yaml test --all`
   works from a directory without scripts/.
Substitutions (each listed in SUBSTITUTIONS): the demo's config path for
$seg, a stored id for the guide's example id, a 4 s shadow for 300 s.
Standard library only; loopback, free ports, deadlines on every wait.
"""
import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests/harness"))
from demo_stack import DemoStack  # noqa: E402
from checks import check, exit_code  # noqa: E402
GUIDE = ROOT / "docs/sdk/first-segment.md"
EXAMPLE_USER = "u1-108"
ID_SHAPE = re.compile(r"^u\d+-\d+$")
USER_LINE = re.compile(r"^(u\d+-\d+)  events=(\d+)  segments=\[(.*)\]$")
def guide_blocks():
    """(section title, language, body) of every fenced block of the guide."""
    section, blocks, lines = "", [], GUIDE.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:]
        m = re.match(r"^```(\w*)$", lines[i])
        if m:
            j = i + 1
            while lines[j] != "```":
                j += 1
            blocks.append((section, m.group(1), "\n".join(lines[i + 1:j]) + "\n"))
            i = j
        i += 1
    return blocks


def segtool_commands(blocks):
    """The `segtool ...` lines of the sh blocks, trailing comments dropped."""
    commands = []
    for _, lang, body in blocks:
        if lang != "sh":
            continue
        for line in body.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith("segtool "):
                commands.append(line)
    return commands


def totals(output):
    m = re.search(r"^final: (.*)$", output, re.M)
    return dict(kv.split("=", 1) for kv in m.group(1).split()) if m else {}


class Segtool:
    def __init__(self, build, cwd):
        self.binary, self.cwd, self.substitutions = build / "tools/segtool", cwd, {}

    def run(self, command, timeout=60, cwd=None):
        for old, new in self.substitutions.items():
            command = command.replace(old, new)
        argv = [str(self.binary)] + command.split()[1:]
        r = subprocess.run(argv, cwd=cwd or self.cwd, capture_output=True, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout, r.stderr


def test_offline(blocks, tool, work):
    lua = next(b for _, lang, b in blocks if lang == "lua")
    fixture = next(b for _, lang, b in blocks if lang == "json")
    shown_failure = next(b for s, lang, b in blocks if lang == "" and "FAIL reads_recipes" in b)
    (work / "scripts/reads_recipes.lua").write_text(lua)
    (work / "scripts/tests/reads_recipes.json").write_text(fixture)

    rc, out, err = tool.run("segtool test reads_recipes")
    check(rc == 0 and "1 scripts, 4 cases, 0 failed" in out,
          "the guide's script passes the guide's fixture", out + err)

    # The guide's failure example: the one-day case expecting the segment.
    flipped = fixture.replace('"ago_hours": 3}],\n     "expect": []',
                              '"ago_hours": 3}],\n     "expect": ["reads_recipes"]')
    check(flipped != fixture, "the fixture has the case the failure example flips")
    (work / "scripts/tests/reads_recipes.json").write_text(flipped)
    rc, out, err = tool.run("segtool test reads_recipes")
    check(rc == 1, f"a failing case exits 1 (got {rc})", err)
    check(out == shown_failure, "the failure output is the guide's, line for line",
          "got:\n" + out + "guide:\n" + shown_failure)
    (work / "scripts/tests/reads_recipes.json").write_text(fixture)


def poll(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            check(bool(result), what)
            return result
        time.sleep(0.5)


def test_against_stack(blocks, tool, env, tmp):
    commands = segtool_commands(blocks)
    config = env["SEG_CONFIG"]
    tool.substitutions = {"$seg": config, "--duration 300": "--duration 4"}
    check(any(line.startswith("seg=") for _, lang, b in blocks if lang == "sh"
              for line in b.splitlines()), "the guide sets $seg to the printed config")
    check(ID_SHAPE.match(EXAMPLE_USER) is not None and
          any(EXAMPLE_USER in c for c in commands), "the guide's example id is a demo-shaped id")

    listing = next(c for c in commands if " users --limit" in c)
    in_segment = next(c for c in commands if " users --segment loves_cats" in c)

    def stored_cat_lovers():
        rc, out, _ = tool.run(in_segment)
        return out.splitlines() if rc == 0 else None

    lovers = poll(stored_cat_lovers, 90, "`users --segment loves_cats` lists users once "
                  "the segmenters stored some")
    if not lovers:
        return
    check(all(USER_LINE.match(l) and "loves_cats" in USER_LINE.match(l).group(3)
              for l in lovers), "every listed user is stored in loves_cats", "\n".join(lovers))
    user = USER_LINE.match(lovers[0]).group(1)
    tool.substitutions[EXAMPLE_USER] = user

    rc, out, err = tool.run(listing)
    rows = [USER_LINE.match(l) for l in out.splitlines()]
    check(rc == 0 and len(rows) == 5 and all(rows), "`users --limit 5` lists 5 demo ids",
          out + err)

    for command in commands:
        if " users " in command or command.startswith("segtool test"):
            continue
        rc, out, err = tool.run(command)
        check(rc == 0, f"exit 0: {command}", out + err)
        if " run " in command:
            check(f"user {user}:" in out and "loves_cats@" in out and "stored membership: [" in out,
                  "run shows the user, its stored membership and every script", out)
        elif " explain " in command:
            check(f"user {user} is IN segment loves_cats" in out and "deciding condition:" in out,
                  "explain says in, and why", out)
        elif " preview " in command or " shadow " in command:
            t = totals(out)
            seen = int(t.get("rows" if " preview " in command else "notices", 0))
            check(seen > 0 and t.get("errors") == "0" and t.get("in_segment") == "0",
                  f"{command.split()[3]}: users seen, no errors, nobody reads recipes", out)
        else:
            check(False, f"the test knows what to check for: {command}")

    # segtool test from a directory without scripts/, through the config.
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    rc, out, err = tool.run("segtool --config $seg test --all", cwd=elsewhere)
    check(rc == 0 and " 0 failed" in out, "`segtool --config seg.yaml test --all` works from "
          "any directory", out + err)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", required=True, type=pathlib.Path)
    args = parser.parse_args()
    build = args.build_dir.resolve()
    blocks = guide_blocks()
    with tempfile.TemporaryDirectory(prefix="seg-guide-") as tmp:
        tmp = pathlib.Path(tmp)
        work = tmp / "repo"
        work.mkdir()
        shutil.copytree(ROOT / "scripts", work / "scripts")
        tool = Segtool(build, work)
        # Step 0, before the guide's files exist.
        rc, out, err = tool.run("segtool test --all")
        check(rc == 0 and "segtool test --all" in segtool_commands(blocks),
              "step 0: `segtool test --all` passes", out + err)
        test_offline(blocks, tool, work)
        for command in segtool_commands(blocks):
            if command.startswith("segtool test"):
                rc, out, err = tool.run(command)
                check(rc == 0, f"with the guide's files in place, exit 0: {command}", out + err)
        stack = DemoStack(build, tmp)
        try:
            test_against_stack(blocks, tool, stack.env, tmp)
        finally:
            problems = stack.stop()
            check(not problems, "the stack stops cleanly", "\n".join(problems))
            check(f"config  {stack.env['SEG_CONFIG']}" in stack.log(),
                  "the demo prints the config's path")
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())

"""Named checks for the python tests that run docs and examples as written:
every check prints ok/FAIL with what it checked, and the test's exit code
says whether any failed (one failure does not hide the next)."""

FAILURES = []


def check(cond, what, detail=""):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
        if detail:
            print("     " + str(detail).replace("\n", "\n     "), flush=True)


def exit_code():
    """Prints the verdict; 1 if any check failed, else 0."""
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0

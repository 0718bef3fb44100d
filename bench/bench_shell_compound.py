"""What bots' compound lines cost the fake shell, and what its bounds cost at worst.

One JSON line per figure, each with its reference measured in the same run:

- `line`: each dropper-style line (globbing, for, if/test, while with arithmetic, echo -ne of
  an ELF header into a file, a script run), executed --runs times in a fresh session (median,
  microseconds); reference: the same line run by this machine's real bash (`bash -c` in a
  temporary directory, fork and exec included: what a real host pays for an exec request).
- `bound`: each line that would never end or would explode (`while true`, a fork bomb, deep
  globs, a script that runs itself), until the shell's bound stops it (median, milliseconds);
  reference: `uname -a` in the same shell (microseconds) (the cheapest thing a bot asks), to read the bound's
  cost as "so many ordinary commands".

    PYTHONPATH=src python bench/bench_shell_compound.py [--runs 50]

No network, no root: the shell is pure; the real bash only lists and writes in its own
temporary directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from dynapot.services.identity import identity_for
from dynapot.services.shell import FakeShell

LINES = (
    "ls -la *.sh; echo .*",
    "for f in /bin/busybox /bin/sh /bin/bash; do [ -f $f ] && echo $f; done",
    "if [ -d /tmp ] && [ ! -e /nonexistent ]; then echo yes; else echo no; fi",
    "cat /proc/cpuinfo | grep name | wc -l",
    "x=0; while [ $x -lt 100 ]; do x=$((x+1)); done; echo $x",
    "echo -ne '\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00' > .d; chmod +x .d; ls -l .d",
    "printf '#!/bin/sh\\necho $1\\n' > s; chmod +x s; ./s one; sh s two",
    "case $(uname -m) in x86_64) echo x86;; arm*) echo arm;; *) echo other;; esac",
)
BOUNDS = (
    "while true; do echo x; done | wc -l",
    ":(){ :|:& };:",
    "echo /*/*/*/* | wc -c",
    "printf 'sh ./r\\n' > r; sh ./r",
    "for i in 1 2 3 4 5 6 7 8 9 10; do for j in 1 2 3 4 5 6 7 8 9 10; do for k in 1 2 3 4 5 6 7 8 9 10; "
    "do echo $i$j$k; done; done; done | wc -l",
)


def median(samples: list[float], scale: float) -> float:
    return round(statistics.median(samples) * scale, 1)


def shell() -> FakeShell:
    identity = identity_for("198.18.9.9", "Linux 5.4", secret=b"bench", hint="OpenSSH 9.2p1 Debian 2+deb12u3")
    sh = FakeShell(identity, "root", clock=lambda: 1_700_000_000.0)
    sh.execute("cd /tmp && touch a.sh b.sh .h")
    return sh


def timed(sh: FakeShell, line: str) -> float:
    start = time.perf_counter()
    sh.execute(line)
    return time.perf_counter() - start


def bench_lines(runs: int) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-shell-") as directory:
        for name in ("a.sh", "b.sh", ".h"):
            (Path(directory) / name).write_text("")
        for line in LINES:
            ours = [timed(shell(), line) for _ in range(runs)]
            theirs = []
            for _ in range(max(5, runs // 5)):
                start = time.perf_counter()
                subprocess.run(["bash", "-c", line], capture_output=True, check=False, cwd=directory)
                theirs.append(time.perf_counter() - start)
            out.append(
                {
                    "bench": "shell-compound",
                    "figure": "line",
                    "line": line,
                    "fake_us": median(ours, 1e6),
                    "reference_real_bash_us": median(theirs, 1e6),
                }
            )
    return out


def bench_bounds(runs: int) -> list[dict]:
    out = []
    for line in BOUNDS:
        ours, sizes = [], []
        for _ in range(max(3, runs // 10)):
            sh = shell()
            ours.append(timed(sh, line))
            sizes.append(sh._steps)
        reference = [timed(shell(), "uname -a") for _ in range(runs)]
        out.append(
            {
                "bench": "shell-compound",
                "figure": "bound",
                "line": line,
                "fake_ms": median(ours, 1e3),
                "commands_run": max(sizes),
                "reference_uname_us": median(reference, 1e6),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    for line in [*bench_lines(args.runs), *bench_bounds(args.runs)]:
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

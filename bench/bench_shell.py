"""How much a fake shell session costs: a new host's machine, a session, the commands bots run first.

One JSON line per figure, each with its reference measured in the same run:

- `machine`: building one new host's machine and file tree (`machine_for` + `base_tree`, the
  first login's cost; later logins reuse them), over --hosts hosts; reference: a session on a
  host already built.
- `command`: each command attackers run first, executed --runs times in one session (median,
  microseconds); reference: the same command line run by the real bash of this machine
  (`bash -c`, fork and exec included: what a real host's sshd pays for an exec request).

    PYTHONPATH=src python bench/bench_shell.py [--hosts 200] [--runs 200]

No network, no root: the shell is pure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time

from dynapot.services.fakefs import base_tree
from dynapot.services.identity import identity_for
from dynapot.services.machine import machine_for
from dynapot.services.shell import FakeShell

COMMANDS = (
    "uname -a",
    "id",
    "cat /proc/cpuinfo | grep name | wc -l",
    "ls -la /",
    "ps aux",
    "free -m",
    "df -h",
    "w",
    "echo $HOME $PATH",
    "cd /tmp && mkdir .x && cd .x && touch a && chmod +x a && ls -la",
)


def median_us(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e6, 1)


def bench_machines(hosts: int) -> dict:
    built = []
    for n in range(hosts):
        identity = identity_for(f"198.18.{n // 250}.{n % 250 + 2}", "Linux 5.4", secret=b"bench")
        start = time.perf_counter()
        base_tree(machine_for(identity))
        built.append(time.perf_counter() - start)
    again = []
    for n in range(hosts):
        identity = identity_for(f"198.18.{n // 250}.{n % 250 + 2}", "Linux 5.4", secret=b"bench")
        start = time.perf_counter()
        FakeShell(identity, "root")
        again.append(time.perf_counter() - start)
    return {
        "bench": "shell",
        "figure": "machine",
        "hosts": hosts,
        "new_host_us": median_us(built),
        "reference_session_on_built_host_us": median_us(again),
    }


def bench_commands(runs: int) -> list[dict]:
    identity = identity_for("198.18.9.9", "Linux 5.4", secret=b"bench", hint="OpenSSH 9.2p1 Debian 2+deb12u3")
    out = []
    for command in COMMANDS:
        ours = []
        for _ in range(runs):
            shell = FakeShell(identity, "root")
            start = time.perf_counter()
            shell.execute(command)
            ours.append(time.perf_counter() - start)
        theirs = []
        for _ in range(max(5, runs // 10)):
            start = time.perf_counter()
            subprocess.run(
                ["bash", "-c", command.replace("/tmp", "/tmp/bench-shell-$$")],
                capture_output=True,
                check=False,
            )
            theirs.append(time.perf_counter() - start)
        out.append(
            {
                "bench": "shell",
                "figure": "command",
                "command": command,
                "fake_us": median_us(ours),
                "reference_real_bash_us": median_us(theirs),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(bench_machines(args.hosts)), flush=True)
    for line in bench_commands(args.runs):
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

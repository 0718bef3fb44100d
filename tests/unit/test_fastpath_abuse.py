"""The short version of bench/abuse_fastpath.py: fuzzed frames and API misuse against the C thread.

20,000 fuzzed frames (mutated ARP, IPv4, TCP and ICMP, truncations, bad lengths and checksums)
through the thread's decision with the address table churning, and every misuse case, each in
a child process: no crash, no hang, no damage (a descriptor it does not own closed, descriptors
leaked, a bad value accepted), bounded memory. As root, the same frames through the real thread
too (an AF_PACKET socket on the loopback of a private network namespace). The bench runs 10^6.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "abuse_fastpath.py"


def test_fuzzed_frames_and_misuse_never_crash_the_thread() -> None:
    argv = [sys.executable, str(BENCH), "--frames", "20000"]
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        argv.append("--no-thread")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    checks = {line["check"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert {"decisions", "misuse"} <= set(checks), result.stdout + result.stderr
    for name, check in checks.items():
        assert check["pass"], (name, check, result.stderr[-2000:])
    assert checks["decisions"]["frames_done"] == 20000 and checks["decisions"]["crashes"] == 0
    assert checks["misuse"]["cases"] >= 11 and checks["misuse"]["failures"] == {}
    if "thread" in checks:
        assert checks["thread"]["crashes"] == 0 and checks["thread"]["received"] > 0
    assert result.returncode == 0

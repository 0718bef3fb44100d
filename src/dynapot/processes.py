"""Ending our child processes the way an administrator would: SIGTERM, then SIGKILL if it hangs."""

from __future__ import annotations

import contextlib
import signal
import subprocess

KILL_WAIT = 10.0


def terminate(process: subprocess.Popen | None, timeout: float) -> int | None:
    """SIGTERM `process` and wait up to `timeout` s for it to flush and exit, else kill it; its status."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(KILL_WAIT)
    return process.returncode

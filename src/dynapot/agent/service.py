"""The agent's IO: bpftrace as a child process, its lines through `Recorder`, records over UDP.

`Agent.run` writes the program (`agent.program`) for the network namespace to record, starts
`bpftrace` in a private mount namespace where tracefs is mounted (this machine does not mount
it; nothing is left mounted outside), reads its output line by line (each line bounded) and
sends one datagram per record to the collector. It stops when bpftrace exits, when `stop()` is
called (a signal handler may call it) or after `seconds`; bpftrace is always terminated and
reaped. A send that fails (no collector yet: ICMP port unreachable) is counted, not retried:
the collector's counter check shows the gap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from dynapot.agent.events import MAX_LINE, AgentStats, Recorder
from dynapot.agent.program import STRLEN, program
from dynapot.sebek.records import DEFAULT_MAGIC, encode

__all__ = ["Agent", "AgentError", "netns_inode"]

log = logging.getLogger("dynapot.agent")
PERF_PAGES = 1024  # pages per CPU of bpftrace's event buffer (its default, 64, overflows at once)
STOP_TIMEOUT = 5.0  # seconds bpftrace has to exit after SIGTERM before it is killed
_SCRIPT = 'mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null; exec "$0" -B line "$1"'


class AgentError(Exception):
    """The agent cannot run here (no bpftrace, not root, a namespace that is not one)."""


def netns_inode(path: str = "/proc/self/ns/net") -> int:
    """The inode number of the network namespace at `path` (what the program filters on)."""
    try:
        return os.stat(path).st_ino
    except OSError as exc:
        raise AgentError(f"{path}: {exc.strerror}") from None


class Agent:
    """Records the processes of one network namespace and ships Sebek v3 records to `collector`."""

    def __init__(
        self,
        collector: tuple[str, int],
        *,
        magic: int = DEFAULT_MAGIC,
        netns: str = "/proc/self/ns/net",
        strlen: int = STRLEN,
    ) -> None:
        self.collector = collector
        self.recorder = Recorder(magic)
        self.netns = netns
        self.strlen = strlen
        self.attached = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._errors: Path | None = None
        self._stopping = threading.Event()

    @property
    def stats(self) -> AgentStats:
        return self.recorder.stats

    def stop(self) -> None:
        """Ask the agent to stop (safe from a signal handler or another thread)."""
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()

    def run(self, seconds: float | None = None) -> AgentStats:
        bpftrace = shutil.which("bpftrace")
        if bpftrace is None:
            raise AgentError("bpftrace is not installed (apt-get install bpftrace)")
        if os.geteuid() != 0:
            raise AgentError("the agent needs root (eBPF tracepoints)")
        source = program(netns_inode(self.netns), os.getpid(), self.strlen)
        family = socket.AF_INET6 if ":" in self.collector[0] else socket.AF_INET
        with (
            tempfile.TemporaryDirectory(prefix="dynapot-agent-") as tmp,
            socket.socket(family, socket.SOCK_DGRAM) as sock,
        ):
            path = Path(tmp) / "agent.bt"
            path.write_text(source)
            sock.connect(self.collector)
            env = dict(os.environ, BPFTRACE_STRLEN=str(self.strlen), BPFTRACE_PERF_RB_PAGES=str(PERF_PAGES))
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _SCRIPT]
            self._errors = Path(tmp) / "bpftrace.err"  # a file: a full stderr pipe would stall bpftrace
            with self._errors.open("wb") as errors:
                self._process = subprocess.Popen(
                    [*command, bpftrace, str(path)], stdout=subprocess.PIPE, stderr=errors, env=env
                )
            timer = threading.Timer(seconds, self.stop) if seconds is not None else None
            if timer is not None:
                timer.daemon = True
                timer.start()
            if self._stopping.is_set():
                self.stop()
            try:
                self._pump(sock)
            finally:
                if timer is not None:
                    timer.cancel()
                self._finish()
        return self.stats

    def _pump(self, sock: socket.socket) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout, send, feed = self._process.stdout, sock.send, self.recorder.feed
        stats = self.recorder.stats
        while True:
            raw = stdout.readline(MAX_LINE + 1)
            if not raw:
                return
            line = raw.decode("ascii", "replace")
            if not self.attached.is_set() and line.startswith("Attaching "):
                self.attached.set()
                log.info("agent attached: %s", line.strip())
                continue
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):  # the rest of it is garbage
                stdout.readline()
            elif not line.strip():  # bpftrace prints its (emptied) maps as blank lines when it exits
                continue
            record = feed(line, (time.time(), time.monotonic()))
            if record is None:
                continue
            try:
                send(encode(record))
                stats.sent += 1
            except OSError as exc:
                stats.send_errors += 1
                if stats.send_errors in (1, 10) or stats.send_errors % 1000 == 0:
                    log.warning(
                        "sending to %s:%d failed (%d so far): %s", *self.collector, stats.send_errors, exc
                    )

    def _finish(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        try:
            process.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        if not self._stopping.is_set() and process.returncode != 0:
            err = self._errors.read_bytes()[-8192:] if self._errors is not None else b""
            text = err.decode("utf-8", "replace").strip().splitlines()
            problems = [line for line in text if "RLIMIT_MEMLOCK" not in line and "WARNING" not in line]
            raise AgentError(f"bpftrace exited with {process.returncode}: {' | '.join(problems[-3:])}")

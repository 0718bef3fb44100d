"""The admin web interface as a child process of the daemon (`[web] enabled = true`).

`dynapot web` runs in a process of its own: the daemon keeps root for its raw socket, the web
child binds its address, reads its TLS key and opens the database as root, then drops to
`web.user` before it serves a request. It is restarted when it dies (with a growing pause, so
that an address already in use costs one line a minute, not a busy loop), its last words are
kept for `dynapot status`, and it is stopped with the daemon.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

from dynapot.config import Settings
from dynapot.daemon.settings_access import settings_access
from dynapot.logfiles import cap
from dynapot.processes import python_command, python_environment, spawn_logged, terminate
from dynapot.textsafe import for_display

__all__ = ["WebProcess"]

log = logging.getLogger(__name__)
STOP_TIMEOUT = 15.0
MAX_BACKOFF = 60.0
TAIL_BYTES = 4096  # of its output, read for the reason it stopped


class WebProcess:
    def __init__(self, settings: Settings, *, state_dir: Path, settings_path: Path | None) -> None:
        web = settings.web
        self.listen = web.listen
        self.output_path = state_dir / "web.out"
        self.command = [*python_command("-m", "dynapot"), "web", "--listen", web.listen, "--user", web.user]
        if not web.tls:
            self.command.append("--no-tls")
        elif web.cert is not None and web.key is not None:
            self.command += ["--cert", str(web.cert), "--key", str(web.key)]
        if settings_path is not None:
            # It only reads the file: its changes go to the daemon, which writes it as root.
            self.command += ["--config", str(settings_path), "--settings-by-daemon"]
            problem = settings_access(web.user, settings_path)
            if problem is not None:
                log.warning("web interface: %s", problem)
        # The database URL may hold a password: the environment, not the command line (ps shows that).
        self.environment = {**python_environment(), "DYNAPOT_DB": settings.database_url}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.last_error: str | None = None
        self._next_start = 0.0
        self._backoff = 1.0
        self._started_at = 0.0
        self._offset = 0  # where this start's output begins in output_path

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.process, self._offset = spawn_logged(self.command, self.environment, self.output_path)
        self.starts += 1
        self._started_at = time.monotonic()
        log.info("web interface started on %s (pid %d)", self.listen, self.process.pid)

    def check(self) -> None:
        """Restart a web interface that died, after a pause that doubles while it keeps dying."""
        if self.process is None or self.running:
            if self.running and time.monotonic() - self._started_at > MAX_BACKOFF:
                self._backoff = 1.0  # it has stayed up: the next failure is a new story
            return
        now = time.monotonic()
        if self._next_start == 0.0:
            self.last_error = f"exited with {self.process.returncode}: {self._last_words()}"
            log.error("web interface %s; restarting in %.0f s", self.last_error, self._backoff)
            self._next_start = now + self._backoff
            self._backoff = min(MAX_BACKOFF, self._backoff * 2)
        elif now >= self._next_start:
            self._next_start = 0.0
            self.start()

    def _last_words(self) -> str:
        """The last line it wrote (`Error: cannot listen on ...`), bounded and fit to print."""
        try:
            with self.output_path.open("rb") as out:
                out.seek(max(self._offset, out.seek(0, 2) - TAIL_BYTES))
                lines = out.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return "(no output)"
        return for_display(lines[-1][:300]) if lines else "(no output)"

    def status(self) -> dict[str, object]:
        return {
            "listen": self.listen,
            "running": self.running,
            "pid": self.process.pid if self.running and self.process else None,
            "starts": self.starts,
            "last_error": self.last_error,
        }

    def cap_logs(self, max_bytes: int) -> list[Path]:
        """Cut its output at `max_bytes` (`logfiles.cap`); the files cut."""
        if not cap(self.output_path, max_bytes):
            return []
        self._offset = 0  # this start's output now begins at the file's start
        return [self.output_path]

    def stop(self) -> None:
        terminate(self.process, STOP_TIMEOUT)

"""The sensor as a child process of the daemon: started, told to reload, restarted if it dies."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time
from pathlib import Path

from dynapot.logfiles import cap
from dynapot.processes import python_command, python_environment, spawn_logged, terminate

log = logging.getLogger(__name__)
STOP_TIMEOUT = 30.0
MAX_BACKOFF = 60.0


class SensorProcess:
    def __init__(
        self,
        *,
        interface: str,
        config_path: Path,
        state_dir: Path,
        db_url: str,
        user: str,
        settings_path: Path | None = None,
    ) -> None:
        self.config_path = config_path
        # Its own folder: the sensor, once unprivileged, may write there and nowhere else.
        self.status_path = state_dir / "sensor" / "status.json"
        self.output_path = state_dir / "sensor.out"
        self.log_path = state_dir / "honeyd.log"
        self.command = [
            *python_command("-m", "dynapot"),
            "sensor",
            "-i",
            interface,
            "--config",
            str(config_path),
            "--log",
            str(self.log_path),
            "--status",
            str(self.status_path),
            "--journal",
            str(state_dir / "sensor" / "journal"),
            "--user",
            user,
        ]
        # The database URL may hold a password: the environment, not the command line (ps shows that).
        self.environment = {**python_environment(), "DYNAPOT_DB": db_url}
        if settings_path is not None:
            self.command += ["--settings", str(settings_path)]
        self.process: subprocess.Popen[bytes] | None = None
        self._reload_pending = False
        self.starts = 0
        self._next_start = 0.0
        self._backoff = 1.0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self._reload_pending = False
        self.process, _ = spawn_logged(self.command, self.environment, self.output_path)
        self.starts += 1
        log.info("sensor started (pid %d)", self.process.pid)

    @property
    def ready(self) -> bool:
        """Running with its signal handlers in place: it has written its first status."""
        if not self.running:
            return False
        assert self.process is not None
        try:
            return json.loads(self.status_path.read_text()).get("pid") == self.process.pid
        except (OSError, ValueError):
            return False

    def check(self) -> None:
        """Send a reload that waited for the sensor to be ready; restart a sensor that died, with a
        growing pause so that a crash loop stays cheap."""
        if self._reload_pending and self.ready:
            self.reload()
        if self.process is None or self.running:
            return
        now = time.monotonic()
        if self._next_start == 0.0:
            log.error("sensor exited with %s; restarting in %.0f s", self.process.returncode, self._backoff)
            self._next_start = now + self._backoff
            self._backoff = min(MAX_BACKOFF, self._backoff * 2)
        elif now >= self._next_start:
            self._next_start = 0.0
            self.start()

    def reload(self) -> bool:
        """Ask the sensor to apply the configuration file again (SIGHUP), as soon as it can.

        Before its handler is installed SIGHUP would kill it, so the signal waits for `ready`; a
        sensor (re)started meanwhile reads the newest file anyway.
        """
        if not self.ready:
            self._reload_pending = self.running
            return False
        assert self.process is not None
        self._reload_pending = False
        self.process.send_signal(signal.SIGHUP)
        return True

    def cap_logs(self, max_bytes: int) -> list[Path]:
        """Cut its honeyd log and its output at `max_bytes` (`logfiles.cap`); the files cut."""
        return [path for path in (self.log_path, self.output_path) if cap(path, max_bytes)]

    def stop(self) -> None:
        terminate(self.process, STOP_TIMEOUT)

"""Health checks of the high-interaction backends: a TCP connect to one port, at most once an interval.

`BackendHealth.healthy()` is what the deployer asks before each plan: the names of the backends
whose last check connected. A check is due `health_interval` seconds after the previous one;
between checks the last answer stands, so that a re-plan every few seconds costs nothing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence

from dynapot.config import BackendSettings

CONNECT_TIMEOUT = 1.0  # seconds one check may take


def tcp_connects(address: str, port: int, timeout: float = CONNECT_TIMEOUT) -> bool:
    """Whether a TCP connection to `address`:`port` completes within `timeout`."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


class BackendHealth:
    def __init__(
        self,
        backends: Sequence[BackendSettings],
        *,
        check: Callable[[str, int], bool] = tcp_connects,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backends = tuple(backends)
        self.check, self.clock = check, clock
        self._due: dict[str, float] = {}
        self._up: dict[str, bool] = {}

    def healthy(self) -> set[str]:
        """Names of the backends up at their last check (the due checks made now)."""
        now = self.clock()
        for backend in self.backends:
            if now >= self._due.get(backend.name, now):
                self._up[backend.name] = self.check(str(backend.address), backend.checked_port)
                self._due[backend.name] = now + backend.health_interval
        return {name for name, up in self._up.items() if up}

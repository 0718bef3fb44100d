"""UDP services on virtual hosts: one bounded answer per datagram, within the source's budget.

A UDP service (SNMP, NetBIOS name service) is sans-IO: a datagram in, at most one out.
`UdpBudget` caps the replies per source in size and rate, so that no honeypot becomes an
amplifier for a spoofed source.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable

from dynapot.netstack.events import DatagramReceived
from dynapot.sensor.hosts import VirtualHost
from dynapot.services.contract import DatagramService, Report

log = logging.getLogger(__name__)

MAX_UDP_REPLY = 1472  # one Ethernet frame: never fragment, never amplify much
UDP_REPLIES_PER_SECOND = 20  # per source
# Datagrams per source and second a service is asked about (and may report): a flood of
# requests is noise folded by the observer, not a row per datagram.
UDP_SERVED_PER_SECOND = 2 * UDP_REPLIES_PER_SECOND
SOURCE_LIMIT = 65536


class UdpBudget:
    """Per-source cap on UDP replies: bounded size and rate, so no honeypot becomes an amplifier."""

    def __init__(self, per_second: int = UDP_REPLIES_PER_SECOND, max_reply: int = MAX_UDP_REPLY) -> None:
        self.per_second = per_second
        self.max_reply = max_reply
        self._windows: OrderedDict[int, list[float | int]] = OrderedDict()

    def allow(self, source: int, request_size: int, reply_size: int, now: float) -> bool:
        if reply_size > self.max_reply:
            return False
        window = self._windows.get(source)
        if window is None or now - window[0] >= 1.0:
            window = [now, 0]
            self._windows[source] = window
            self._windows.move_to_end(source)
            if len(self._windows) > SOURCE_LIMIT:
                self._windows.popitem(last=False)
        if window[1] >= self.per_second:
            return False
        window[1] += 1
        return True


class UdpServices:
    """Runs the UDP service of a datagram's port and decides whether its answer may leave."""

    def __init__(
        self,
        services: dict[str, DatagramService],
        counters: Counter[str],
        reporter: Callable[[str, DatagramReceived], Report],
        budget: UdpBudget | None = None,
    ) -> None:
        self.services = services
        self.counters = counters
        self.budget = budget or UdpBudget()
        self.served = UdpBudget(UDP_SERVED_PER_SECOND)
        self._reporter = reporter

    def answer(self, datagram: DatagramReceived, host: VirtualHost, now: float) -> bytes | None:
        """The reply to send for `datagram`, or None (no service, silence, or over budget)."""
        action = host.definition.udp.get(datagram.local_port)
        if action is None or action.kind != "service":
            return None
        service = self.services.get(action.target or "")
        if service is None:
            return None
        if not self.served.allow(datagram.peer_ip, 0, 0, now):
            self.counters["udp datagram not served (rate per source)"] += 1
            return None
        info = host.connection_info("udp", datagram.peer_ip, datagram.peer_port, datagram.local_port)
        report = self._reporter("udp", datagram)
        try:
            reply = service(datagram.data, info, report)
        except Exception:  # a broken emulator costs one datagram
            self.counters["udp service error"] += 1
            log.exception("UDP service %s failed", action.target)
            return None
        if not reply:
            return None
        if not self.budget.allow(datagram.peer_ip, len(datagram.data), len(reply), now):
            self.counters["udp reply refused (amplification budget)"] += 1
            return None
        return reply

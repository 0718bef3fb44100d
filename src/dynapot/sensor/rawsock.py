"""The sensor's one raw socket: AF_PACKET on the sensor interface, promiscuous, non-blocking.

Frames arrive at once (no pcap read time-out: honeyd's 30 ms buffering gives it away by
latency). PACKET_AUXDATA tells whether the kernel left a checksum unfinished
(TP_STATUS_CSUMNOTREADY: frames from another namespace on this machine with transmit
offload on); such frames are valid and must not be dropped for a "bad" checksum.
Our own outgoing frames are not looped back (PACKET_IGNORE_OUTGOING).

With `fast=True` (the sensor) a C thread (dynapot._fastpath) reads the socket instead of
Python: it answers ARP, pings and ordinary SYNs for the hosts the sensor registers there at
once, runs the checks of claimed addresses, and hands every frame on with the reply it sent and
its note; the event loop waits on its eventfd.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

try:
    from dynapot._fastpath import Responder
except ImportError:  # pragma: no cover - the set-up builds the extension
    Responder = None

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
TP_STATUS_CSUMNOTREADY = 0x8
_AUXDATA = struct.Struct("=IIIHHHH")
_MREQ = struct.Struct("=iHH8s")
MAX_FRAME = 65536
DRAIN_LIMIT = 256  # frames per wake-up before yielding to timers and services


class InterfaceError(OSError):
    """The sensor interface is missing or unusable."""


def interface_mac(ifname: str) -> bytes:
    try:
        text = Path(f"/sys/class/net/{ifname}/address").read_text().strip()
    except OSError:
        raise InterfaceError(f"network interface {ifname!r} does not exist") from None
    return bytes.fromhex(text.replace(":", ""))


def _ip_json(command: list[str], ifname: str) -> list[dict]:
    result = subprocess.run(
        ["ip", "-j", "-4", *command], capture_output=True, text=True, timeout=10, check=False
    )
    if result.returncode != 0:
        raise InterfaceError(f"network interface {ifname!r}: {result.stderr.strip()}")
    return json.loads(result.stdout or "[]")


def interface_addresses(ifname: str) -> list[str]:
    """The IPv4 addresses the kernel owns on `ifname` (never to be bound to a virtual host)."""
    entries = _ip_json(["addr", "show", "dev", ifname], ifname)
    return [a["local"] for entry in entries for a in entry.get("addr_info", [])]


def interface_networks(ifname: str) -> tuple[list[tuple[int, int]], int]:
    """The IPv4 networks on `ifname` as (address, prefix length), and its default gateway's
    address (0: none): what tells a router's traffic from a host's (sensor.claims)."""
    entries = _ip_json(["addr", "show", "dev", ifname], ifname)
    networks = [
        (int(ipaddress.IPv4Address(a["local"])), int(a["prefixlen"]))
        for entry in entries
        for a in entry.get("addr_info", [])
    ]
    routes = _ip_json(["route", "show", "default", "dev", ifname], ifname)
    gateways = [int(ipaddress.IPv4Address(r["gateway"])) for r in routes if r.get("gateway")]
    return networks[:16], gateways[0] if gateways else 0


class RawSocket:
    def __init__(
        self, ifname: str, *, rcvbuf: int = 8 << 20, sndbuf: int = 4 << 20, fast: bool = False
    ) -> None:
        self.ifname = ifname
        self.mac = interface_mac(ifname)
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise InterfaceError("opening a raw socket needs root or CAP_NET_RAW") from None
        try:
            sock.bind((ifname, 0))
            ifindex = socket.if_nametoindex(ifname)
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, _MREQ.pack(ifindex, PACKET_MR_PROMISC, 0, b""))
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise InterfaceError(f"cannot listen on {ifname!r}: {exc}") from None
        self._sock = sock
        self._anc_size = socket.CMSG_SPACE(_AUXDATA.size)
        self.sent = 0
        self.send_errors = 0
        self.responder = None
        if fast:
            if Responder is None:
                raise InterfaceError("dynapot._fastpath is not built: reinstall dynapot (make setup)")
            # The thread's reads block (it wakes every 0.1 s to check for stop); sends never do.
            sock.setblocking(True)
            self.responder = Responder(sock.fileno())

    def start(self) -> None:
        """Start the receive thread (fast mode); frames wait in the socket until then."""
        if self.responder is not None:
            self.responder.start()

    def fileno(self) -> int:
        """What the event loop waits on: the socket, or the receive thread's eventfd."""
        return self._sock.fileno() if self.responder is None else self.responder.event_fd()

    def frames(self) -> Iterator[tuple[bytes, bool, bytes | None, int | None]]:
        """Drain waiting frames: (frame, checksums_trustworthy, the reply the thread sent or None,
        the thread's note on it or None without the thread). Stops at EAGAIN or DRAIN_LIMIT."""
        if self.responder is not None:
            yield from self.responder.take(DRAIN_LIMIT)
            return
        recvmsg = self._sock.recvmsg
        anc_size = self._anc_size
        for _ in range(DRAIN_LIMIT):
            try:
                data, ancdata, _flags, _addr = recvmsg(MAX_FRAME, anc_size)
            except (BlockingIOError, InterruptedError):
                return
            checksums_ok = True
            for level, kind, value in ancdata:
                if (
                    level == SOL_PACKET
                    and kind == PACKET_AUXDATA
                    and len(value) >= _AUXDATA.size
                    and _AUXDATA.unpack_from(value)[0] & TP_STATUS_CSUMNOTREADY
                ):
                    checksums_ok = False
            yield data, checksums_ok, None, None

    def send(self, frame: bytes) -> None:
        try:
            self._sock.send(frame, socket.MSG_DONTWAIT)
            self.sent += 1
        except (BlockingIOError, OSError):
            # A full transmit queue drops this frame; TCP retransmits, and the count is reported.
            self.send_errors += 1

    def close(self) -> None:
        if self.responder is not None:
            self.responder.stop()
        self._sock.close()

"""Time a host's services as the wire shows them: one JSON line per connection.

Run inside the lab's attacker namespace (`python -m dynapot.lab.timing_run SPEC`), SPEC being a
JSON object {"ip": ..., "targets": [[label, protocol, port], ...], "n": connections per target,
"logins": connections per target that also try a wrong login}. Connections go one at a time,
so that one does not slow another.

How it measures (the method, so that the figures can be trusted):
- every TCP segment the target sends is read from a raw IPv4 socket (`SOCK_RAW`, `IPPROTO_TCP`:
  the kernel hands it a copy of each incoming segment, before TCP reassembles anything), with
  the kernel's receive time (`SO_TIMESTAMPNS`), so that neither the client's scheduling nor its
  reads merge or delay what is measured;
- `first_byte`: from the SYN/ACK to the first segment with data (the server's own time to speak:
  fork, reverse DNS, its start-up);
- `greeting_end`: from the SYN/ACK to the greeting's last segment, when it came in several;
- `segments`: the greeting's data segments, in order, each as its bytes (until the server is
  quiet for `QUIET` seconds), for the caller to normalise (`timing_stats.segment_pattern`), and
  `offsets`: when each arrived, from the SYN/ACK;
- `fail_delay`: from sending a wrong password (FTP, telnet) to the first segment of the
  refusal; SSH's is timed by an SSH client (asyncssh), from the password to the refusal.

Each line: {"label", "protocol", "first_byte", "greeting_end", "segments": [base64, ...],
"offsets", "fail_delay"}; a value the connection could not give is null.
"""

from __future__ import annotations

import base64
import json
import select
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from dynapot.lab.probe_run import run_spec

__all__ = ["Capture", "main"]

QUIET = 0.6  # the greeting is over after this long without a segment
GREETING_LIMIT = 5.0  # seconds to wait for a greeting at most
ANSWER_LIMIT = 8.0  # seconds to wait for a refusal (PAM waits 2-3.75 s)
CONNECT_TIMEOUT = 5.0
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_SYN, _ACK = 0x02, 0x10


@dataclass(slots=True)
class Segment:
    """One TCP segment from the target: when it arrived (kernel time), its flags and data."""

    at: float
    flags: int
    data: bytes


@dataclass
class Capture:
    """A raw-socket reader of the target's segments, per local port, on a thread of its own."""

    target: str
    _segments: dict[int, list[Segment]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        target = socket.inet_aton(self.target)
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.2)
            if not ready:
                continue
            packet, ancillary, _, _ = self._sock.recvmsg(65535, 64)
            at = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack(value[: _TIMESPEC.size])
                    at = sec + nsec / 1e9
            if len(packet) < 40 or packet[12:16] != target:
                continue
            ihl = (packet[0] & 0x0F) * 4
            total = struct.unpack_from(">H", packet, 2)[0]
            tcp = packet[ihl:total]
            if len(tcp) < 20:
                continue
            dport = struct.unpack_from(">H", tcp, 2)[0]
            offset = (tcp[12] >> 4) * 4
            with self._lock:
                self._segments.setdefault(dport, []).append(Segment(at, tcp[13], bytes(tcp[offset:])))

    def segments(self, port: int) -> list[Segment]:
        with self._lock:
            return list(self._segments.get(port, ()))

    def forget(self, port: int) -> None:
        with self._lock:
            self._segments.pop(port, None)

    def wait_for(self, port: int, count: int, limit: float, quiet: float = 0.0) -> list[Segment]:
        """The port's data segments once there are more than `count` and, with `quiet`, none came
        for that long (or `limit` seconds passed)."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            data = [s for s in self.segments(port) if s.data]
            if len(data) > count and (not quiet or time.time() - data[-1].at >= quiet):
                return data
            time.sleep(0.02)
        return [s for s in self.segments(port) if s.data]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self._sock.close()


def _drain(sock: socket.socket) -> bytes:
    """What the socket holds now (the client's own view; the timing comes from the capture)."""
    data = b""
    sock.setblocking(False)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (BlockingIOError, OSError):
        pass
    finally:
        sock.setblocking(True)
    return data


def _arrival(segments: list[Segment], marker: bytes) -> float | None:
    """When the segment that completes `marker` arrived (a line end echoed at once does not count)."""
    seen = b""
    for segment in segments:
        seen += segment.data
        if marker in seen:
            return segment.at
    return None


def _until(capture: Capture, sock: socket.socket, port: int, seen: int, marker: bytes, limit: float) -> int:
    """Wait until the target's data segments after the first `seen` hold `marker`; their count."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        data = [s for s in capture.segments(port) if s.data]
        if marker in b"".join(s.data for s in data[seen:]):
            _drain(sock)
            return len(data)
        time.sleep(0.02)
    _drain(sock)
    return len([s for s in capture.segments(port) if s.data])


# What to send for a wrong login, per protocol: (send, wait for this before sending) steps, then
# the marker of the refusal.
_LOGINS: dict[str, tuple[tuple[tuple[bytes, bytes], ...], bytes]] = {
    "ftp": (((b"USER timingprobe\r\n", b"331"),), b"530"),
    "telnet": (((b"timingprobe\r\n", b"assword"),), b"incorrect"),
}
_PASSWORDS = {"ftp": b"PASS wrong-timing-probe\r\n", "telnet": b"wrong-timing-probe\r\n"}


def _one(capture: Capture, ip: str, protocol: str, port: int, login: bool) -> dict[str, Any]:
    sock = socket.create_connection((ip, port), CONNECT_TIMEOUT)
    local = sock.getsockname()[1]
    result: dict[str, Any] = {"first_byte": None, "greeting_end": None, "segments": [], "fail_delay": None}
    try:
        greeting = capture.wait_for(local, 0, GREETING_LIMIT, QUIET)
        synack = next((s for s in capture.segments(local) if s.flags & (_SYN | _ACK) == _SYN | _ACK), None)
        if greeting and synack is not None:
            result["first_byte"] = greeting[0].at - synack.at
            if len(greeting) > 1:
                result["greeting_end"] = greeting[-1].at - synack.at
        result["segments"] = [base64.b64encode(s.data).decode() for s in greeting]
        if synack is not None:
            result["offsets"] = [s.at - synack.at for s in greeting]
        _drain(sock)
        if login and protocol in _LOGINS:
            steps, refusal = _LOGINS[protocol]
            seen = len(greeting)
            for payload, marker in steps:
                sock.sendall(payload)
                seen = _until(capture, sock, local, seen, marker, ANSWER_LIMIT)
            sent = time.time()
            sock.sendall(_PASSWORDS[protocol])
            end = time.monotonic() + ANSWER_LIMIT
            while time.monotonic() < end:
                later = [s for s in capture.segments(local) if s.data and s.at >= sent]
                at = _arrival(later, refusal)
                if at is not None:
                    result["fail_delay"] = at - sent
                    break
                time.sleep(0.02)
    finally:
        sock.close()
        time.sleep(0.05)
        capture.forget(local)
    return result


def _ssh_fail_delay(ip: str, port: int) -> float | None:
    import asyncio

    from dynapot.lab.probe_run import _one_delay

    return asyncio.run(_one_delay(ip, port)).get("delay")


def run(spec: dict[str, Any]) -> None:
    ip, n, logins = spec["ip"], int(spec.get("n", 10)), int(spec.get("logins", 3))
    capture = Capture(ip)
    try:
        for label, protocol, port in spec["targets"]:
            for i in range(n):
                try:
                    line = _one(capture, ip, protocol, int(port), login=i < logins)
                except OSError as exc:
                    line = {"first_byte": None, "segments": [], "fail_delay": None, "error": str(exc)}
                if protocol == "ssh" and i < logins:
                    line["fail_delay"] = _ssh_fail_delay(ip, int(port))
                sys.stdout.write(json.dumps({"label": label, "protocol": protocol, **line}) + "\n")
                sys.stdout.flush()
    finally:
        capture.close()


def main(argv: list[str] | None = None) -> int:
    return run_spec(argv, "dynapot.lab.timing_run", run)


if __name__ == "__main__":
    raise SystemExit(main())

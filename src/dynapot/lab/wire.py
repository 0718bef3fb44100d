"""Raw frames in a lab namespace: send forged ones, and watch ARP, for abuse tests and benchmarks.

An attacker on the link sends whatever frames it likes (any source MAC and address); these
helpers do it from inside a lab namespace with an AF_PACKET socket, and watch the answers:

- `inject(lab, host, frames)`: send the frames, in order, from `host`'s eth0;
- `ArpWatch(lab, host, seconds, ask=...)`: record every ARP frame `host` sees for `seconds`
  (monotonic time, opcode, sender and target), optionally asking who-has for an address every
  few milliseconds (how fast a claim changes hands, seen from the wire).

Both run `python -m dynapot.lab.wire` inside the namespace (the lab's only way in); frames
never leave the lab's bridge.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from dynapot.lab.network import HostInfo, Lab
from dynapot.netstack.packets import BROADCAST_MAC, build_arp_frame
from dynapot.processes import python_command

ETH_P_ALL = 0x0003


def inject(lab: Lab, host: HostInfo | str, frames: list[bytes], *, timeout: float = 60) -> None:
    """Send `frames` from `host`'s eth0, as fast as the socket takes them."""
    lines = "".join(frame.hex() + "\n" for frame in frames)
    argv = python_command("-m", "dynapot.lab.wire", "send", "eth0")
    done = lab.exec(host, argv, input=lines, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"sending frames failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class ArpSeen:
    """One ARP frame seen on the wire."""

    time: float  # time.monotonic(), the same clock across the machine's namespaces
    op: int
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str


class ArpWatch:
    """Record the ARP frames a namespace sees for `seconds` from when the constructor returns
    (it waits for the socket to be open); `result()` waits for the end."""

    def __init__(
        self,
        lab: Lab,
        host: HostInfo | str,
        seconds: float,
        *,
        ask: str | None = None,
        every: float = 0.01,
    ) -> None:
        info = lab.host(host)
        argv = python_command("-m", "dynapot.lab.wire", "watch", "eth0", str(seconds), str(every))
        if ask is not None:
            argv += [ask, info.mac, str(info.ip)]
        self.process = lab.popen(info, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.seconds = seconds
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "listening":  # its socket is open: nothing is missed
            self.process.kill()
            raise RuntimeError(f"watching ARP failed: {self.process.communicate()[1].strip()}")

    def result(self) -> list[ArpSeen]:
        out, err = self.process.communicate(timeout=self.seconds + 60)
        if self.process.returncode != 0:
            raise RuntimeError(f"watching ARP failed: {err.strip()}")
        return [ArpSeen(**entry) for entry in json.loads(out)]


# --------------------------------------------------------------------------- inside the namespace


def _mac(raw: bytes) -> str:
    return raw.hex(":")


def _ip(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


def _send(ifname: str) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, 0))
    for line in sys.stdin:
        if line.strip():
            sock.send(bytes.fromhex(line.strip()))


def _watch(ifname: str, seconds: float, every: float, ask: list[str]) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    sock.bind((ifname, 0))
    print("listening", flush=True)
    request = None
    if ask:
        target, mac, ip = ask
        request = build_arp_frame(
            BROADCAST_MAC,
            1,
            bytes.fromhex(mac.replace(":", "")),
            int.from_bytes(socket.inet_aton(ip), "big"),
            bytes(6),
            int.from_bytes(socket.inet_aton(target), "big"),
        )
    seen: list[dict[str, Any]] = []
    end = time.monotonic() + seconds
    next_ask = time.monotonic()
    while (now := time.monotonic()) < end:
        if request is not None and now >= next_ask:
            sock.send(request)
            next_ask = now + every
        wait = max(0.0, min(end, next_ask if request is not None else end) - time.monotonic())
        if not select.select([sock], [], [], wait)[0]:
            continue
        frame = sock.recv(2048)
        if len(frame) < 42:
            continue
        arp = frame[14:42]
        seen.append(
            {
                "time": time.monotonic(),
                "op": int.from_bytes(arp[6:8], "big"),
                "sender_mac": _mac(arp[8:14]),
                "sender_ip": _ip(arp[14:18]),
                "target_mac": _mac(arp[18:24]),
                "target_ip": _ip(arp[24:28]),
            }
        )
    print(json.dumps(seen))


def main(argv: list[str]) -> int:
    if argv[:1] == ["send"] and len(argv) == 2:
        _send(argv[1])
        return 0
    if argv[:1] == ["watch"] and len(argv) in (4, 7):
        _watch(argv[1], float(argv[2]), float(argv[3]), argv[4:])
        return 0
    sys.stderr.write(
        "usage: python -m dynapot.lab.wire send IFNAME | watch IFNAME SECONDS EVERY [IP MAC OWN_IP]\n"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

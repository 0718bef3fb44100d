"""Helpers for the netstack tests: scapy as the independent reference on both sides.

Client packets are built with scapy, fed to the stack as bytes, and every packet the
stack sends is dissected with scapy, whose recomputed checksums must agree.  `Client`
is a small scapy-driven TCP client (in-order receiver with a configurable window)
that can drop chosen server segments to simulate loss.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from scapy.compat import raw
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Packet, Raw

from dynapot.netstack.events import SendPacket
from dynapot.netstack.host import HostStack, Output, PortPolicy, StackContext, StackLimits
from dynapot.netstack.neutral import NeutralPersonality
from dynapot.netstack.packets import Malformed, parse_ipv4
from dynapot.netstack.tcp import ConnectionEstablished, DataReceived, TcpConfig, TcpConnection
from dynapot.netstack.types import IPv4

SERVER_IP = "198.18.0.10"
CLIENT_IP = "198.18.0.99"
SERVER_MAC = b"\x02\x00\x00\x00\x00\x0a"
CLIENT_MAC = b"\x02\x00\x00\x00\x00\x63"


def ip2int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


def make_host(
    *tcp_ports: int,
    udp: tuple[int, ...] = (),
    icmp_echo: bool = True,
    seed: int = 1,
    config: TcpConfig | None = None,
    limits: StackLimits | None = None,
    context: StackContext | None = None,
    ip: str = SERVER_IP,
    **personality_args: int,
) -> HostStack:
    if context is None:
        context = StackContext(limits, config or TcpConfig())
    return HostStack(
        ip2int(ip),
        SERVER_MAC,
        NeutralPersonality(seed, **personality_args),
        PortPolicy.open_tcp(*tcp_ports, udp=udp, icmp_echo=icmp_echo),
        context,
    )


def to_ipv4(pkt: Packet | bytes) -> IPv4:
    ip = parse_ipv4(pkt if isinstance(pkt, bytes) else raw(pkt))
    assert not isinstance(ip, Malformed), ip
    return ip


def feed(host: HostStack, pkt: Packet | bytes, now: float = 0.0, verify: bool = True) -> list[Output]:
    return host.receive(to_ipv4(pkt), now, verify)


def dissect(packet: bytes) -> IP:
    """Dissect one of our packets with scapy and check every checksum against scapy's own."""
    p = IP(packet)
    assert p.version == 4 and p.len == len(packet)
    fresh = p.copy()
    del fresh.chksum
    layer = None
    for cls in (TCP, UDP, ICMP):
        if cls in fresh:
            layer = cls
            del fresh[cls].chksum
            break
    rebuilt = IP(raw(fresh))
    assert rebuilt.chksum == p.chksum, "IP header checksum"
    if layer is not None and not (layer is ICMP and p[ICMP].type == 3):
        assert rebuilt[layer].chksum == p[layer].chksum, f"{layer.__name__} checksum"
    if layer is ICMP and p[ICMP].type == 3:  # scapy dissects the quote as IPerror: check by sum
        from dynapot.netstack.packets import checksum

        assert checksum(raw(p[ICMP])) == 0
    return p


def sent(outputs: list[Output]) -> list[IP]:
    return [dissect(o.packet) for o in outputs if isinstance(o, SendPacket)]


def of_type(outputs: list[Output], cls: type) -> list:
    return [o for o in outputs if isinstance(o, cls)]


class Client:
    """A scapy TCP client for one flow to `host`; `now` is advanced by the test."""

    def __init__(
        self,
        host: HostStack,
        dport: int = 80,
        sport: int = 40000,
        src: str = CLIENT_IP,
        isn: int = 1000,
        window: int = 65535,
        mss: int | None = 1460,
        wscale: int | None = None,
        ts: bool = False,
    ) -> None:
        self.host = host
        self.dport = dport
        self.sport = sport
        self.src = src
        self.dst = ipaddress.IPv4Address(host.ip).compressed
        self.snd_nxt = isn
        self.isn = isn
        self.window = window
        self.mss = mss
        self.wscale = wscale
        self.ts = ts
        self.rcv_nxt = 0
        self.received = bytearray()
        self.peer_fin = False
        self.peer_wnd = 0
        self.peer_ack = 0
        self.peer_wscale = 0
        self.now = 0.0
        self.events: list[Output] = []
        self.conn: TcpConnection | None = None
        self.server_data = bytearray()  # what the server's application received
        self.segments_seen: list[IP] = []
        self.ooo: dict[int, tuple[bytes, bool]] = {}

    # building and feeding -------------------------------------------------

    def packet(
        self, flags: str, payload: bytes = b"", seq: int | None = None, ack: int | None = None, **kw: object
    ) -> IP:
        opts = kw.pop("options", None)
        if opts is None:
            opts = []
            if "S" in flags:
                if self.mss is not None:
                    opts.append(("MSS", self.mss))
                if self.ts:
                    opts.append(("Timestamp", (int(self.now * 1000) + 1, 0)))
                if self.wscale is not None:
                    opts += [("NOP", None), ("WScale", self.wscale)]
            elif self.ts:
                opts.append(("NOP", None))
                opts.append(("NOP", None))
                opts.append(("Timestamp", (int(self.now * 1000) + 1, 77)))
        window = kw.pop("window", None)
        if window is None:
            window = self.window if "S" in flags else self.window >> (self.wscale or 0)
        tcp = TCP(
            sport=self.sport,
            dport=self.dport,
            flags=flags,
            seq=(self.snd_nxt if seq is None else seq) & 0xFFFFFFFF,
            ack=(self.rcv_nxt if ack is None else ack) & 0xFFFFFFFF,
            window=window,
            options=opts,
            **kw,
        )
        pkt = IP(src=self.src, dst=self.dst) / tcp
        if payload:
            pkt = pkt / Raw(payload)
        return pkt

    def feed(self, pkt: Packet) -> list[IP]:
        outputs = feed(self.host, pkt, self.now)
        return self._collect(outputs)

    def _collect(self, outputs: list[Output]) -> list[IP]:
        for o in outputs:
            if isinstance(o, SendPacket):
                continue
            self.events.append(o)
            if isinstance(o, ConnectionEstablished):
                self.conn = o.conn
            elif isinstance(o, DataReceived):
                self.server_data += o.data
        replies = sent(outputs)
        self.segments_seen += replies
        return replies

    def send(self, flags: str, payload: bytes = b"", **kw: object) -> list[IP]:
        pkt = self.packet(flags, payload, **kw)
        if kw.get("seq") is None:
            self.snd_nxt += len(payload) + ("S" in flags) + ("F" in flags)
        return self.feed(pkt)

    def timer(self, now: float) -> list[IP]:
        self.now = now
        return self._collect(self.host.on_timer(now))

    def app(self, call: Callable[[TcpConnection], list[Output]]) -> list[IP]:
        assert self.conn is not None
        return self._collect(call(self.conn))

    # the client side of TCP -----------------------------------------------

    def connect(self) -> IP:
        (synack,) = self.send("S")
        assert synack[TCP].flags == "SA"
        assert synack[TCP].ack == (self.isn + 1) & 0xFFFFFFFF
        self.rcv_nxt = synack[TCP].seq + 1
        self.peer_wnd = synack[TCP].window
        self.peer_ack = self.snd_nxt
        ws = [v for k, v in synack[TCP].options if k == "WScale"]
        self.peer_wscale = ws[0] if ws and self.wscale is not None else 0
        replies = self.send("A")
        assert replies == []
        assert self.conn is not None
        return synack

    def absorb(self, replies: list[IP], drop: Callable[[IP], bool] | None = None) -> bool:
        """Take the server's segments like an in-order receiver; True when an ACK is owed."""
        owe = False
        for p in replies:
            t = p[TCP]
            if drop is not None and drop(p):
                continue
            if t.flags & 0x10:
                ref = self.snd_nxt  # unwrap the 32-bit ack around what we sent
                self.peer_ack = ref + (((t.ack - ref + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
                self.peer_wnd = t.window << self.peer_wscale
            data = bytes(t.payload)
            if data or t.flags & 0x01:
                owe = True
            fin = bool(t.flags & 0x01)
            if t.seq != self.rcv_nxt & 0xFFFFFFFF:
                if data and ((t.seq - self.rcv_nxt) & 0xFFFFFFFF) < self.window:
                    self.ooo[t.seq] = (data[: self.window], fin)  # kept, like a real receiver
                continue
            self._take(data, fin)
            while (held := self.ooo.pop(self.rcv_nxt & 0xFFFFFFFF, None)) is not None:
                self._take(*held)
        return owe

    def _take(self, data: bytes, fin: bool) -> None:
        take = data[: self.window]  # the client's application consumes at once
        self.received += take
        self.rcv_nxt += len(take)
        if len(take) == len(data) and fin:
            self.rcv_nxt += 1
            self.peer_fin = True

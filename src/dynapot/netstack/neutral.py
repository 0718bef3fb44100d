"""A plain Linux-like personality for hosts that wear no fingerprint, and for tests.

TTL 64, DF on TCP, MSS/SACK-permitted/timestamps/window scale mirrored in Linux's
option order, incremental IP IDs from a random start, random ISNs, a millisecond
timestamp clock with a random offset.  Each instance owns a seeded `random.Random`
so two hosts never share counters (and tests are reproducible with a seed).
"""

from __future__ import annotations

import random
import struct

from dynapot.netstack.packets import build_icmp
from dynapot.netstack.personality import IpReply, SegmentShape, TcpReply
from dynapot.netstack.types import IPPROTO_ICMP, IcmpMessage, TcpFlags, TcpSegment, UdpDatagram

__all__ = ["NeutralPersonality"]

_MSS = struct.Struct("!BBH")
_TS = struct.Struct("!BBII")
_NOP_NOP_TS = struct.Struct("!BBBBII")
_SYN_ACK = int(TcpFlags.SYN | TcpFlags.ACK)
_RST = int(TcpFlags.RST)
_RST_ACK = int(TcpFlags.RST | TcpFlags.ACK)
_ACK = int(TcpFlags.ACK)
_SYN = int(TcpFlags.SYN)
_FIN = int(TcpFlags.FIN)


class NeutralPersonality:
    """A Linux-like host; `window` is the SYN/ACK window, `wscale` the shift we offer."""

    __slots__ = ("_ip_id", "_mss", "_rng", "_ts_offset", "_ttl", "_window", "_wscale", "name")

    connection_ip_ids = False  # one host-wide counter for everything

    def __init__(
        self,
        seed: int | None = None,
        *,
        window: int = 64240,
        mss: int = 1460,
        wscale: int = 7,
        ttl: int = 64,
        name: str = "dynapot neutral (Linux-like)",
    ) -> None:
        self.name = name
        self._rng = random.Random(seed)
        self._ip_id = self._rng.randrange(0x10000)
        self._ts_offset = self._rng.getrandbits(32)
        self._window = window
        self._mss = mss
        self._wscale = wscale
        self._ttl = ttl

    @property
    def ttl(self) -> int:
        return self._ttl

    def _next_id(self) -> int:
        self._ip_id = ident = (self._ip_id + 1) & 0xFFFF
        return ident

    def _tsval(self, now: float) -> int:
        return (int(now * 1000) + self._ts_offset) & 0xFFFFFFFF

    def isn(self, now: float) -> int:
        return self._rng.getrandbits(32)

    def syn_ack(self, syn: TcpSegment, isn: int, now: float) -> TcpReply | None:
        o = syn.options
        opts = _MSS.pack(2, 4, self._mss)
        if o.timestamp is not None:
            ts = _TS.pack(8, 10, self._tsval(now), o.timestamp[0])
            opts += (b"\x04\x02" + ts) if o.sack_permitted else (b"\x01\x01" + ts)
        elif o.sack_permitted:
            opts += b"\x01\x01\x04\x02"
        if o.wscale is not None:
            opts += bytes((1, 3, 3, self._wscale))
        return TcpReply(_SYN_ACK, self._window, opts, None, None, self._ttl, True, self._next_id())

    def closed_port(self, segment: TcpSegment, now: float) -> TcpReply | None:
        flags = segment.flags
        if flags & _RST:
            return None
        if flags & _ACK:
            return TcpReply(_RST, 0, b"", segment.ack, 0, self._ttl, True, self._next_id())
        ack = segment.seq + len(segment.payload) + (1 if flags & _SYN else 0) + (1 if flags & _FIN else 0)
        return TcpReply(_RST_ACK, 0, b"", 0, ack & 0xFFFFFFFF, self._ttl, True, self._next_id())

    def open_port_stray(self, segment: TcpSegment, now: float) -> TcpReply | None:
        # Linux in LISTEN: an ACK gets a RST, anything else without a clean SYN is dropped.
        flags = segment.flags
        if flags & _ACK and not flags & _RST:
            return TcpReply(_RST, 0, b"", segment.ack, 0, self._ttl, True, self._next_id())
        return None

    def segment_shape(self, now: float, peer_tsval: int | None) -> SegmentShape:
        if peer_tsval is None:
            return SegmentShape(True, self._next_id(), 0xFFFF, b"")
        opts = _NOP_NOP_TS.pack(1, 1, 8, 10, self._tsval(now), peer_tsval)
        return SegmentShape(True, self._next_id(), 0xFFFF, opts)

    def echo_reply(self, echo: IcmpMessage, now: float) -> IpReply | None:
        icmp = build_icmp(0, 0, echo.ident << 16 | echo.seq, echo.payload)
        return IpReply(IPPROTO_ICMP, icmp, self._ttl, False, self._next_id())

    def udp_closed(self, datagram: UdpDatagram, now: float) -> IpReply | None:
        ip = datagram.ip
        quote = ip.header + ip.payload[: max(0, 548 - len(ip.header))]  # reply fits in 576 bytes
        return IpReply(IPPROTO_ICMP, build_icmp(3, 3, 0, quote), self._ttl, False, self._next_id())

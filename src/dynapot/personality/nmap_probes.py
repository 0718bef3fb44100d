"""Recognising nmap's OS-detection probes (second generation, nmap 5.x to 7.9x).

nmap sends fixed probes (osscan2.cc: `prbOpts`, `prbWindowSz`, `send*Probe`): six SEQ
SYNs, an ECN SYN, T2..T7, a UDP datagram to a closed port (U1) and two ICMP echoes
(IE). Their option bytes and windows are constant, so one dict lookup tells them
apart. The personality engine uses this to pick the reply nmap expects for each probe
(O1..O6/W1..W6 differ per SEQ probe), and the sensor uses it to log "nmap OS scan".
"""

from __future__ import annotations

from typing import Final, Literal

from dynapot.netstack.types import IcmpMessage, TcpFlags, TcpSegment, UdpDatagram

_TS = b"\x08\x0a\xff\xff\xff\xff\x00\x00\x00\x00"  # TSval 0xFFFFFFFF, TSecr 0

# SEQ probes 1..6 (index 0..5), the ECN probe, and T2..T7: options and windows, verbatim.
SEQ_OPTIONS: Final = (
    b"\x03\x03\x0a\x01\x02\x04\x05\xb4" + _TS + b"\x04\x02",  # WS10 NOP MSS1460 TS SACK
    b"\x02\x04\x05\x78\x03\x03\x00\x04\x02" + _TS + b"\x00",  # MSS1400 WS0 SACK TS EOL
    _TS + b"\x01\x01\x03\x03\x05\x01\x02\x04\x02\x80",  # TS NOP NOP WS5 NOP MSS640
    b"\x04\x02" + _TS + b"\x03\x03\x0a\x00",  # SACK TS WS10 EOL
    b"\x02\x04\x02\x18\x04\x02" + _TS + b"\x03\x03\x0a\x00",  # MSS536 SACK TS WS10 EOL
    b"\x02\x04\x01\x09\x04\x02" + _TS,  # MSS265 SACK TS
)
SEQ_WINDOWS: Final = (1, 63, 4, 4, 16, 512)
ECN_OPTIONS: Final = b"\x03\x03\x0a\x01\x02\x04\x05\xb4\x04\x02\x01\x01"  # WS10 NOP MSS1460 SACK NOP NOP
ECN_WINDOW: Final = 3
ECN_URGENT: Final = 0xF7F5
T_OPTIONS: Final = b"\x03\x03\x0a\x01\x02\x04\x01\x09" + _TS + b"\x04\x02"  # WS10 NOP MSS265 TS SACK
T7_OPTIONS: Final = b"\x03\x03\x0f\x01\x02\x04\x01\x09" + _TS + b"\x04\x02"  # WS15 ...

_F = TcpFlags
T_PROBES: Final = {  # name: (flags, window, options, don't-fragment, to an open port)
    "T2": (0, 128, T_OPTIONS, True, True),
    "T3": (int(_F.SYN | _F.FIN | _F.URG | _F.PSH), 256, T_OPTIONS, False, True),
    "T4": (int(_F.ACK), 1024, T_OPTIONS, True, True),
    "T5": (int(_F.SYN), 31337, T_OPTIONS, False, False),
    "T6": (int(_F.ACK), 32768, T_OPTIONS, True, False),
    "T7": (int(_F.FIN | _F.PSH | _F.URG), 65535, T7_OPTIONS, False, False),
}
U1_PAYLOAD: Final = b"C" * 300
U1_IP_ID: Final = 0x1042
IE_PROBES: Final = {1: (9, 120, 0, True), 2: (0, 150, 4, False)}  # probe: (code, data length, tos, DF)

# Every window size nmap's OS probes use: a two-byte test before any parsing on the hot path.
PROBE_WINDOWS: Final = frozenset(SEQ_WINDOWS) | {ECN_WINDOW} | {w for _f, w, *_rest in T_PROBES.values()}

TName = Literal["T2", "T3", "T4", "T5", "T6", "T7"]

_SEQ_BY_SHAPE: Final = {(w, o): i + 1 for i, (w, o) in enumerate(zip(SEQ_WINDOWS, SEQ_OPTIONS, strict=True))}
_T_BY_SHAPE: Final = {(f, w, o): name for name, (f, w, o, _df, _open) in T_PROBES.items()}
_FLAG_MASK: Final = 0xFF
_SYN_ONLY: Final = int(_F.SYN)
_ECN_FLAGS: Final = int(_F.SYN | _F.ECE | _F.CWR)


def classify_syn(seg: TcpSegment) -> int | None:
    """Which of nmap's six SEQ probes (1..6) this SYN is, or None for any other segment.

    nmap re-sends probe 1 unchanged as T1 and the same shapes as its OPS/WIN probes, so
    those classify too: the answer must be the same.
    """
    if seg.flags & _FLAG_MASK != _SYN_ONLY:
        return None
    return _SEQ_BY_SHAPE.get((seg.window, seg.options_raw))


def is_ecn_probe(seg: TcpSegment) -> bool:
    """nmap's ECN probe: SYN+ECE+CWR, window 3, fixed options (urgent pointer 0xF7F5 without URG)."""
    return (
        seg.flags & _FLAG_MASK == _ECN_FLAGS and seg.window == ECN_WINDOW and seg.options_raw == ECN_OPTIONS
    )


def classify_t(seg: TcpSegment) -> TName | None:
    """Which of nmap's T2..T7 probes this segment is, or None."""
    return _T_BY_SHAPE.get((seg.flags & _FLAG_MASK, seg.window, seg.options_raw))  # type: ignore[return-value]


def is_u1_probe(datagram: UdpDatagram) -> bool:
    """nmap's U1 probe: 300 bytes of 'C' to a (hopefully) closed UDP port."""
    return datagram.payload == U1_PAYLOAD


def ie_probe(echo: IcmpMessage) -> Literal[1, 2] | None:
    """Which of nmap's two IE echo requests this is (1: code 9, 120 bytes; 2: code 0, 150 bytes, TOS 4)."""
    if echo.type != 8:
        return None
    if echo.code == 9 and len(echo.payload) == 120:
        return 1
    if echo.code == 0 and len(echo.payload) == 150 and echo.ip.tos == 4:
        return 2
    return None


def is_nmap_os_probe(seg: TcpSegment) -> bool:
    """Any of nmap's TCP OS-detection probes (for logging the scan tool)."""
    return classify_syn(seg) is not None or is_ecn_probe(seg) or classify_t(seg) is not None

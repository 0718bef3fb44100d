"""A small, fast reader for classic pcap files, for offline passive discovery.

`dynapot fingerprint --pcap FILE` and the p0f tests read captures with it; it needs no
scapy and no libpcap. It reads classic pcap in both byte orders, with microsecond or
nanosecond timestamps. pcapng is not supported: such a file raises `PcapError` saying so.

Link types: Ethernet (1, with 802.1Q/802.1ad tags skipped), Linux cooked capture v1 (113)
and v2 (276), raw IP (101; 228 IPv4; 229 IPv6) and BSD loopback (0). Any other link type
raises `PcapError` when the file is opened.

Damage is reported, never raised mid-stream: a truncated or corrupt record stops the
iteration, `reader.error` says what and where, and `reader.count` is the number of good
packets delivered before it.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "PcapError",
    "PcapPacket",
    "PcapReader",
    "write_pcap",
]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_LINK_NAMES = {
    LINKTYPE_NULL: "BSD loopback",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW: "raw IP",
    LINKTYPE_LINUX_SLL: "Linux cooked capture",
    LINKTYPE_IPV4: "raw IPv4",
    LINKTYPE_IPV6: "raw IPv6",
    LINKTYPE_LINUX_SLL2: "Linux cooked capture v2",
}

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_GLOBAL_HEADER = 24
_RECORD_HEADER = 16
# Larger than any real snaplen (262144 is libpcap's maximum); a bigger record length
# means the file is corrupt, not that a jumbo frame was captured.
_MAX_RECORD = 1 << 20

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
_BSD_AF_INET6 = (10, 24, 28, 30)  # AF_INET6 differs between Linux, the BSDs and macOS


class PcapError(Exception):
    """The file cannot be read as a classic pcap capture (bad magic, unknown link type...)."""


@dataclass(frozen=True, slots=True)
class PcapPacket:
    """One record: capture time in nanoseconds since the epoch, and the captured bytes."""

    index: int  # 0-based record number in the file
    ts_ns: int
    orig_len: int
    data: memoryview  # the captured frame, link header included

    @property
    def ts(self) -> float:
        return self.ts_ns / 1e9


class PcapReader:
    """Iterate over the records of a classic pcap file.

    ``PcapReader(path)`` maps the file and checks its header (raising `PcapError` if it
    is not a pcap file or its link type is unsupported); iterating yields `PcapPacket`s;
    `ip_packets()` yields the IP datagram inside each frame, link header stripped.
    Use it as a context manager, or call `close()`, to unmap the file.
    """

    def __init__(self, source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> None:
        self._mmap: mmap.mmap | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            buf = memoryview(source)
            self.name = "<memory>"
        else:
            path = Path(source)
            self.name = str(path)
            try:
                with path.open("rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    # mmap avoids copying a large capture into memory; it refuses empty files.
                    self._mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
            except OSError as exc:
                raise PcapError(f"{self.name}: cannot read: {exc.strerror or exc}") from exc
            buf = memoryview(self._mmap) if self._mmap is not None else memoryview(b"")
        self._buf = buf
        self.count = 0
        self.error: str | None = None
        self._parse_header()

    # -- header --------------------------------------------------------------------

    def _parse_header(self) -> None:
        buf = self._buf
        if len(buf) >= 4 and bytes(buf[:4]) == _PCAPNG_MAGIC:
            raise PcapError(f"{self.name}: pcapng files are not supported; convert with `editcap -F pcap`")
        if len(buf) < _GLOBAL_HEADER:
            raise PcapError(f"{self.name}: truncated pcap header ({len(buf)} of {_GLOBAL_HEADER} bytes)")
        for endian in ("<", ">"):
            (magic,) = struct.unpack_from(endian + "I", buf, 0)
            if magic in (_MAGIC_US, _MAGIC_NS):
                break
        else:
            raise PcapError(f"{self.name}: not a pcap file (magic {bytes(buf[:4]).hex()})")
        self.byte_order = "little" if endian == "<" else "big"
        self.nanosecond = magic == _MAGIC_NS
        _, self.version_major, self.version_minor, _, _, self.snaplen, network = struct.unpack_from(
            endian + "IHHiIII", buf, 0
        )
        # The upper bits of the link-type field carry FCS information (pcap spec, LinkType).
        self.linktype = network & 0x0FFFFFFF
        if self.linktype not in _LINK_NAMES:
            raise PcapError(
                f"{self.name}: unsupported link type {self.linktype} "
                f"(supported: {', '.join(f'{k} {v}' for k, v in sorted(_LINK_NAMES.items()))})"
            )
        self._record = struct.Struct(endian + "IIII")
        self._endian = endian

    # -- records -------------------------------------------------------------------

    def __iter__(self) -> Iterator[PcapPacket]:
        buf = self._buf
        size = len(buf)
        unpack_record = self._record.unpack_from
        scale = 1 if self.nanosecond else 1000
        frac_limit = 1_000_000_000 if self.nanosecond else 1_000_000
        pos = _GLOBAL_HEADER
        index = 0
        self.count = 0
        self.error = None
        while pos < size:
            if pos + _RECORD_HEADER > size:
                self.error = f"truncated record header at offset {pos} after {index} packets"
                return
            sec, frac, incl, orig = unpack_record(buf, pos)
            if incl > _MAX_RECORD or frac >= frac_limit:
                self.error = f"corrupt record header at offset {pos} after {index} packets"
                return
            start = pos + _RECORD_HEADER
            end = start + incl
            if end > size:
                self.error = f"truncated packet data at offset {start} after {index} packets"
                return
            yield PcapPacket(index, sec * 1_000_000_000 + frac * scale, orig, buf[start:end])
            index += 1
            self.count = index
            pos = end

    def ip_packets(self) -> Iterator[tuple[PcapPacket, memoryview]]:
        """Yield (record, IP datagram) for every frame that carries IPv4 or IPv6."""
        strip = self._stripper()
        for pkt in self:
            ip = strip(pkt.data)
            if ip is not None:
                yield pkt, ip

    def _stripper(self) -> Callable[[memoryview], memoryview | None]:
        lt = self.linktype
        if lt in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
            return _raw_ip
        if lt == LINKTYPE_ETHERNET:
            return _ethernet_ip
        if lt == LINKTYPE_LINUX_SLL:
            return _sll_ip
        if lt == LINKTYPE_LINUX_SLL2:
            return _sll2_ip
        return _null_ip_big if self._endian == ">" else _null_ip_little

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Unmap the file. Packet views still held elsewhere keep the mapping alive until freed."""
        try:
            self._buf.release()
            if self._mmap is not None:
                self._mmap.close()
                self._mmap = None
        except BufferError:
            # Some PcapPacket.data view is still referenced; the mapping goes with it.
            pass

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _raw_ip(frame: memoryview) -> memoryview | None:
    if frame and frame[0] >> 4 in (4, 6):
        return frame
    return None


def _ethernet_ip(frame: memoryview) -> memoryview | None:
    off = 12
    n = len(frame)
    while off + 2 <= n:
        ethertype = frame[off] << 8 | frame[off + 1]
        if ethertype in (_ETH_IPV4, _ETH_IPV6):
            return frame[off + 2 :]
        if ethertype not in _ETH_VLAN_TAGS:
            return None
        off += 4  # skip the 802.1Q tag (TCI + inner ethertype follows)
    return None


def _sll_ip(frame: memoryview) -> memoryview | None:
    if len(frame) < 16:
        return None
    proto = frame[14] << 8 | frame[15]
    return frame[16:] if proto in (_ETH_IPV4, _ETH_IPV6) else None


def _sll2_ip(frame: memoryview) -> memoryview | None:
    if len(frame) < 20:
        return None
    proto = frame[0] << 8 | frame[1]
    return frame[20:] if proto in (_ETH_IPV4, _ETH_IPV6) else None


def _null_ip(frame: memoryview, family: int) -> memoryview | None:
    if family == 2 or family in _BSD_AF_INET6:
        return frame[4:]
    return None


def _null_ip_little(frame: memoryview) -> memoryview | None:
    # The loopback header is the address family in the byte order of the capturing host,
    # which the file's own byte order reflects.
    if len(frame) < 4:
        return None
    return _null_ip(frame, int.from_bytes(frame[:4], "little"))


def _null_ip_big(frame: memoryview) -> memoryview | None:
    if len(frame) < 4:
        return None
    return _null_ip(frame, int.from_bytes(frame[:4], "big"))


def write_pcap(
    path: str | os.PathLike[str],
    frames: list[tuple[int, bytes]] | list[bytes],
    *,
    linktype: int = LINKTYPE_ETHERNET,
    nanosecond: bool = False,
    byte_order: str = "little",
    snaplen: int = 65535,
) -> None:
    """Write frames, either bytes or (timestamp in ns, bytes), as a classic pcap file."""
    endian = "<" if byte_order == "little" else ">"
    magic = _MAGIC_NS if nanosecond else _MAGIC_US
    record = struct.Struct(endian + "IIII")
    parts = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for i, item in enumerate(frames):
        ts_ns, data = item if isinstance(item, tuple) else (1_700_000_000 * 10**9 + i * 1000, item)
        sec, rem = divmod(ts_ns, 1_000_000_000)
        frac = rem if nanosecond else rem // 1000
        parts.append(record.pack(sec, frac, len(data), len(data)))
        parts.append(bytes(data))
    Path(path).write_bytes(b"".join(parts))

"""Sebek v3 records: round trips, hostile datagrams, and Wireshark's dissector as the referee."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynapot.sebek.records import (
    DEFAULT_PORT,
    HEADER,
    MAX_DATA,
    Malformed,
    Reason,
    Record,
    RecordType,
    SocketCall,
    decode,
    encode,
    socket_call,
    socket_data,
)

u32 = st.integers(0, 0xFFFFFFFF)
records = st.builds(
    Record,
    magic=u32,
    type=st.integers(0, 0xFFFF),
    counter=u32,
    time_sec=u32,
    time_usec=st.integers(0, 999_999),
    ppid=u32,
    pid=u32,
    uid=u32,
    fd=u32,
    inode=u32,
    command=st.binary(max_size=12).filter(lambda b: b"\x00" not in b),
    data=st.binary(max_size=2000),
)


def sample(**changes: object) -> Record:
    fields: dict[str, object] = dict(
        magic=0x00D0D0D0,
        type=0,
        counter=1,
        time_sec=1_700_000_000,
        time_usec=5,
        ppid=1,
        pid=2,
        uid=0,
        fd=0,
        inode=3,
        command=b"bash",
        data=b"ls\r",
    )
    fields.update(changes)
    return Record(**fields)  # type: ignore[arg-type]


@given(records)
def test_every_record_survives_a_round_trip(record: Record) -> None:
    assert decode(encode(record)) == record
    assert decode(encode(record), magic=record.magic) == record


@given(st.binary(max_size=300))
def test_any_datagram_decodes_to_a_record_or_says_why_not(datagram: bytes) -> None:
    result = decode(datagram)
    assert isinstance(result, Record | Malformed)
    if isinstance(result, Record):
        assert encode(result)[: HEADER.size - 16] == datagram[: HEADER.size - 16]


@given(records, st.integers(0, 2000))
def test_a_cut_datagram_is_malformed_never_an_exception(record: Record, cut: int) -> None:
    datagram = encode(record)
    result = decode(datagram[: max(0, len(datagram) - 1 - cut)])
    assert isinstance(result, Malformed)
    assert result.reason in (Reason.SHORT, Reason.LENGTH)


def test_each_kind_of_bad_datagram_is_named() -> None:
    good = encode(sample())
    assert decode(good[:10]) == Malformed(Reason.SHORT, 10, "10 bytes, a header is 56")
    assert decode(good[:4] + b"\x00\x02" + good[6:]).reason is Reason.VERSION
    assert decode(good, magic=0x1234).reason is Reason.MAGIC
    assert decode(good + b"x").reason is Reason.LENGTH
    huge = good[:52] + (0xFFFFFFFF).to_bytes(4, "big") + good[56:]
    assert decode(huge).reason is Reason.LENGTH
    late = good[:16] + (1_000_000).to_bytes(4, "big") + good[20:]
    assert decode(late).reason is Reason.TIME


def test_the_encoder_refuses_what_no_client_sends() -> None:
    for bad in (
        sample(command=b"a" * 13),
        sample(command=b"a\x00b"),
        sample(data=b"x" * (MAX_DATA + 1)),
        sample(time_usec=1_000_000),
        sample(pid=-1),
        sample(counter=1 << 32),
        sample(type=1 << 16),
    ):
        with pytest.raises(ValueError):
            encode(bad)


def test_socket_records_carry_both_ends_of_the_connection() -> None:
    call = SocketCall("198.18.1.2", 51000, "198.18.0.9", 22, 5, 6)
    record = sample(type=RecordType.SOCKET, data=socket_data(call))
    decoded = decode(encode(record))
    assert isinstance(decoded, Record)
    assert socket_call(decoded) == call
    assert socket_call(sample()) is None
    assert socket_call(sample(type=RecordType.SOCKET, data=b"short")) is None


def _pdml(path: Path) -> list[dict[str, str]]:
    """tshark's reading of every packet: sebek field -> raw hex; malformed marks under '!'."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "pdml", "-d", f"udp.port=={DEFAULT_PORT},sebek"],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    packets = []
    for packet in ET.fromstring(out).iter("packet"):
        fields: dict[str, str] = {}
        for proto in packet.iter("proto"):
            if proto.get("name") in ("_ws.malformed", "_ws.expert"):
                fields["!"] = proto.get("showname", "malformed")
        for field in packet.iter("field"):
            name = field.get("name", "")
            if name.startswith("sebek."):
                fields[name] = field.get("value", "")
            elif name.startswith(("_ws.malformed", "_ws.expert")):
                fields["!"] = field.get("showname", name)
        packets.append(fields)
    return packets


def _expected(record: Record) -> dict[str, str]:
    hexed = {
        "sebek.magic": f"{record.magic:08x}",
        "sebek.version": "0003",
        "sebek.type": f"{record.type:04x}",
        "sebek.counter": f"{record.counter:08x}",
        "sebek.time.sec": f"{record.time_sec:08x}{record.time_usec:08x}",
        "sebek.ppid": f"{record.ppid:08x}",
        "sebek.pid": f"{record.pid:08x}",
        "sebek.uid": f"{record.uid:08x}",
        "sebek.fd": f"{record.fd:08x}",
        "sebek.inode": f"{record.inode:08x}",
        "sebek.cmd": record.command.ljust(12, b"\x00").hex(),
        "sebek.len": f"{len(record.data):08x}",
    }
    call = socket_call(record)
    if call is not None:
        data = record.data
        hexed |= {
            "sebek.socket.dst_ip": data[0:4].hex(),
            "sebek.socket.dst_port": data[4:6].hex(),
            "sebek.socket.src_ip": data[6:10].hex(),
            "sebek.socket.src_port": data[10:12].hex(),
            "sebek.socket.call": data[12:14].hex(),
            "sebek.socket.ip_proto": data[14:15].hex(),
        }
    elif record.data:
        hexed["sebek.data"] = record.data.hex()
    return hexed


@pytest.mark.skipif(
    shutil.which("tshark") is None and not os.environ.get("CI"), reason="tshark is not installed"
)
def test_tshark_reads_our_records_as_sebek_v3_field_for_field(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    rng = random.Random(13)
    sent = [
        sample(),
        sample(command=b"abcdefghijkl", uid=0xFFFFFFFF, counter=0xFFFFFFFF),
        sample(
            type=RecordType.SOCKET, data=socket_data(SocketCall("198.18.1.2", 51000, "198.18.0.9", 22, 5, 6))
        ),
        sample(type=RecordType.WRITE, data=bytes(range(1, 256))),
        sample(type=RecordType.OPEN, data=b"/etc/shadow"),
    ]
    for _ in range(200):
        sent.append(
            sample(
                type=rng.choice((0, 1, 3)),
                counter=rng.getrandbits(32),
                time_sec=rng.getrandbits(31),
                time_usec=rng.randrange(1_000_000),
                ppid=rng.getrandbits(32),
                pid=rng.getrandbits(32),
                uid=rng.getrandbits(32),
                fd=rng.getrandbits(32),
                inode=rng.getrandbits(32),
                command=bytes(rng.randrange(1, 256) for _ in range(rng.randrange(13))),
                data=bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 1400))),
            )
        )
    frames = [
        Ether()
        / IP(src="198.18.0.5", dst="198.18.0.1")
        / UDP(sport=40000, dport=DEFAULT_PORT)
        / encode(record)
        for record in sent
    ]
    path = tmp_path / "sebek.pcap"
    wrpcap(str(path), frames)
    seen = _pdml(path)
    assert len(seen) == len(sent)
    for record, fields in zip(sent, seen, strict=True):
        assert "!" not in fields, fields["!"]
        assert fields == _expected(record)


@pytest.mark.skipif(
    shutil.which("tshark") is None and not os.environ.get("CI"), reason="tshark is not installed"
)
def test_tshark_flags_a_record_without_data_which_is_why_agents_send_none(tmp_path: Path) -> None:
    """Wireshark's dissector asks for the data as "the rest of the packet" and throws when there
    is none. v3 does not forbid such a record and `decode` accepts it; no client sends one."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    path = tmp_path / "empty.pcap"
    wrpcap(str(path), [Ether() / IP() / UDP(sport=4000, dport=DEFAULT_PORT) / encode(sample(data=b""))])
    (fields,) = _pdml(path)
    assert fields["sebek.len"] == "00000000"
    assert "!" in fields

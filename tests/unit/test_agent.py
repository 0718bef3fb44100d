"""The agent's sans-IO core: bpftrace's lines to Sebek v3 records, robust to anything.

The lines are those `agent.program` prints (the lab test runs the real bpftrace); the records
go through the Sebek codec and, where tshark is installed, Wireshark's dissector.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynapot.agent.events import FORK, MAX_LINE, Recorder
from dynapot.agent.program import program
from dynapot.sebek.records import DEFAULT_PORT, RecordType, decode, encode, socket_call

NOW = (1_800_000_000.25, 1000.0)  # wall clock, monotonic clock read together
NSEC = 999_500_000_000  # half a second before NOW's monotonic 1000 s


def hx(raw: bytes) -> str:
    return "".join(f"\\x{byte:02x}" for byte in raw)


def comm(name: bytes) -> str:
    return hx(name.ljust(16, b"\x00"))


def line(kind: str, *fields: object) -> str:
    return " ".join([kind, *(str(f) for f in fields)]) + "\n"


def test_a_read_on_standard_input_is_a_sebek_read_with_the_wall_time_and_the_counter():
    recorder = Recorder(magic=0xABCD)
    record = recorder.feed(line("R", NSEC, 4242, 4200, 1000, 0, 77, 1, comm(b"bash"), hx(b"l")), NOW)
    assert record is not None
    assert (record.type, record.pid, record.ppid, record.uid) == (0, 4242, 4200, 1000)
    assert (record.fd, record.inode, record.command, record.data) == (0, 77, b"bash", b"l")
    assert (record.magic, record.counter) == (0xABCD, 0)
    assert record.timestamp == pytest.approx(1_799_999_999.75, abs=1e-5)
    second = recorder.feed(line("W", NSEC, 4242, 4200, 1000, 1, 77, 1, comm(b"bash"), hx(b"l")), NOW)
    assert second is not None and second.type == RecordType.WRITE and second.counter == 1


def test_bytes_a_process_controls_cannot_forge_a_line():
    evil = b"x\nR 1 1 1 0 0 0 1 \\x41 \\x41\n\x1b]0;owned\x07"
    recorder = Recorder()
    record = recorder.feed(line("W", NSEC, 5, 4, 0, 2, 9, len(evil), comm(b"ev\nil"), hx(evil)), NOW)
    assert record is not None and record.data == evil and record.command == b"ev\nil"
    assert recorder.stats.unparsed == 0


def test_a_buffer_longer_than_what_was_printed_counts_the_clipped_bytes():
    recorder = Recorder()
    record = recorder.feed(line("W", NSEC, 5, 4, 0, 1, 9, 1000, comm(b"cat"), hx(b"a" * 128)), NOW)
    assert record is not None and len(record.data) == 128
    assert recorder.stats.clipped == 872
    # More bytes printed than the syscall moved: not a line the program prints.
    assert recorder.feed(line("W", NSEC, 5, 4, 0, 1, 9, 1, comm(b"cat"), hx(b"ab")), NOW) is None


def test_an_execve_is_an_open_record_with_the_file_and_its_first_arguments():
    recorder = Recorder()
    args = (hx(b"/usr/bin/ls\x00junk"), hx(b"-la\x00"), hx(b"\x00\x00/env=leak"))
    record = recorder.feed(line("X", NSEC, 7, 6, 0, 0, 0, 0, comm(b"ls"), *args), NOW)
    assert record is not None and record.type == RecordType.OPEN
    assert (record.command, record.data) == (b"ls", b"/usr/bin/ls -la")  # up to the first empty argument


def test_accept_and_connect_are_socket_records_the_linker_can_read():
    recorder = Recorder()
    # bpftrace prints the port as the u16 in network order read little-endian, the address as a u32.
    port_be = int.from_bytes((51000).to_bytes(2, "big"), "little")
    addr_le = int.from_bytes(bytes([198, 18, 0, 3]), "little")
    accepted = recorder.feed(line("A", NSEC, 10, 1, 0, 4, 0, 0, comm(b"sshd"), 2, port_be, addr_le), NOW)
    connected = recorder.feed(line("C", NSEC, 11, 10, 0, 3, 0, 0, comm(b"bash"), 2, port_be, addr_le), NOW)
    assert accepted is not None and connected is not None
    a, c = socket_call(accepted), socket_call(connected)
    assert a is not None and (a.remote_ip, a.remote_port, a.call, a.protocol) == ("198.18.0.3", 51000, 5, 6)
    assert c is not None and (c.remote_ip, c.call) == ("198.18.0.3", 3)


def test_a_new_process_is_a_fork_record():
    record = Recorder().feed(line("F", NSEC, 12, 11, 0, 0, 0, 0, comm(b"sshd")), NOW)
    assert record is not None and (record.type, record.pid, record.ppid, record.data) == (
        FORK,
        12,
        11,
        b"fork",
    )


def test_events_bpftrace_lost_are_counted():
    recorder = Recorder()
    assert recorder.feed("Lost 17 events\n", NOW) is None
    assert (recorder.stats.lost_events, recorder.stats.unparsed, recorder.counter) == (17, 0, 0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Attaching 12 probes...",
        "R 1 2 3",
        "R x 2 3 4 0 5 1 \\x41 \\x41",
        "R 1 2 3 4 0 5 1 \\x4 \\x41",
        "R 1 2 3 4 0 5 1 \\x41 \\x41 extra",
        "R 1 99999999999 3 4 0 5 1 \\x41 \\x41",
        "R -1 2 3 4 0 5 1 \\x41 \\x41",
        "Q 1 2 3 4 0 5 1 \\x41 \\x41",
        "A 1 2 3 4 0 0 0 \\x41 10 80 1",
        "A 1 2 3 4 0 0 0 \\x41 2 70000 1",
        "X 1 2 3 0 0 0 0 \\x41 \\x41",
        "F 1 2 3 0 0 0 0",
        "R 1 2 3 4 0 5 99 \\x41 " + "\\x41" * (MAX_LINE // 4),
    ],
)
def test_a_line_it_cannot_read_is_counted_and_makes_no_record(text: str):
    recorder = Recorder()
    assert recorder.feed(text, NOW) is None
    assert recorder.stats.unparsed == 1 and recorder.counter == 0


@given(st.text(max_size=300))
def test_any_text_at_all_never_raises(text: str):
    recorder = Recorder()
    record = recorder.feed(text, NOW)
    assert recorder.stats.unparsed == (record is None)
    if record is not None:
        assert decode(encode(record)) == record


def test_the_program_filters_every_probe_to_one_namespace_and_leaves_the_agent_out():
    source = program(4026532449, 31337)
    probes = [text for text in source.splitlines() if text.startswith("tracepoint:") and "/@" not in text]
    assert len(probes) == 6  # read, write, execve, accept, connect, fork (the exits follow their enters)
    for probe in probes:
        assert "ns.inum == 4026532449" in probe and "pid != 31337" in probe and "tgid != 31337" in probe
    for bad in ((0, 1), (1 << 32, 1), (1, 0)):
        with pytest.raises(ValueError):
            program(*bad)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_reads_the_agents_records_without_a_malformed_packet(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap
    from test_sebek_records import _pdml  # type: ignore[import-not-found]

    rng = random.Random(5)
    recorder = Recorder()
    port_be = int.from_bytes(b"\x00\x16", "little")
    addr_le = int.from_bytes(bytes([198, 18, 0, 9]), "little")
    noise = bytes(rng.randrange(1, 256) for _ in range(128))  # a NUL in the data: "undecoded" in tshark
    lines = [
        line("R", NSEC, 10, 9, 1000, 0, 5, 1, comm(b"bash"), hx(b"\r")),
        line("W", NSEC, 10, 9, 1000, 1, 5, 300, comm(b"bash"), hx(noise)),
        line("X", NSEC, 11, 10, 1000, 0, 0, 0, comm(b"uname"), hx(b"/usr/bin/uname"), hx(b"-a"), hx(b"")),
        line("A", NSEC, 12, 1, 0, 4, 0, 0, comm(b"sshd"), 2, port_be, addr_le),
        line("C", NSEC, 13, 10, 1000, 3, 0, 0, comm(b"bash"), 2, port_be, addr_le),
        line("F", NSEC, 14, 10, 1000, 0, 0, 0, comm(b"bash")),
    ]
    records = [recorder.feed(text, NOW) for text in lines]
    sent = [r for r in records if r is not None]
    assert len(sent) == len(lines)
    frames = [
        Ether() / IP(src="198.18.0.9", dst="198.18.0.2") / UDP(sport=40000, dport=DEFAULT_PORT) / encode(r)
        for r in sent
    ]
    wrpcap(str(tmp_path / "agent.pcap"), frames)
    packets = _pdml(tmp_path / "agent.pcap")
    assert len(packets) == len(sent)
    for packet, record in zip(packets, sent, strict=True):
        assert "!" not in packet, packet["!"]
        assert packet["sebek.version"] == "0003"
        assert int(packet["sebek.type"], 16) == record.type
        assert int(packet["sebek.counter"], 16) == record.counter

"""`dynapot import-p0f`: p0f 3 logs written by the real p0f binary, p0f 2 output, malformed input.

The p0f 3 test builds a capture with scapy, lets ``p0f -r FILE -o LOG`` write its log, imports
the log, and requires the same OS verdicts that `dynapot fingerprint --pcap` gives for the same
packets. Nothing is sent on any network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap
from sqlalchemy import select

from dynapot.cli import main
from dynapot.db import open_database
from dynapot.db.models import Host, HostOsGuess, OperatingSystem
from dynapot.discovery.p0f import DEFAULT_DATABASE
from dynapot.discovery.p0f_log import MAX_LINE, P0fLogError, P0fSightings, read_p0f_log

P0F_BINARY = shutil.which("p0f") or ("/usr/sbin/p0f" if Path("/usr/sbin/p0f").exists() else None)
T0 = 1_700_000_000  # the capture's first packet
LINUX_OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)), ("NOP", None), ("WScale", 7)]
WINDOWS_SYNACK_OPTS = [
    ("MSS", 1460),
    ("NOP", None),
    ("WScale", 8),
    ("SAckOK", b""),
    ("Timestamp", (9, 12345)),
]


def _need_p0f() -> None:
    if P0F_BINARY is None or not DEFAULT_DATABASE.exists():
        if os.environ.get("CI"):
            pytest.fail("the p0f binary and its database are needed (Debian package p0f)")
        pytest.skip("the p0f binary is not installed (Debian package p0f)")


def _frames() -> list[Packet]:
    """A Linux client and a Windows server, nmap's SYN scan, an unknown stack, an IPv6 client."""
    packets = [
        IP(src="198.18.0.7", dst="198.18.0.1", ttl=64, flags="DF", id=5)
        / TCP(sport=40000, dport=80, flags="S", seq=1000, window=29200, options=LINUX_OPTS),
        IP(src="198.18.0.1", dst="198.18.0.7", ttl=128, flags="DF", id=9)
        / TCP(
            sport=80, dport=40000, flags="SA", seq=5000, ack=1001, window=8192, options=WINDOWS_SYNACK_OPTS
        ),
        IP(src="198.18.0.7", dst="198.18.0.1", ttl=64, flags="DF", id=6)
        / TCP(
            sport=40000,
            dport=80,
            flags="PA",
            seq=1001,
            ack=5001,
            window=229,
            options=[("NOP", None), ("NOP", None), ("Timestamp", (12545, 9))],  # 100 Hz: p0f's uptime
        )
        / Raw(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7.68.0\r\nAccept: */*\r\n\r\n"),
        IP(src="198.18.0.9", dst="198.18.0.1", ttl=50, id=77)
        / TCP(sport=55555, dport=22, flags="S", seq=3, window=1024, options=[("MSS", 1460)]),
        IP(src="198.18.0.10", dst="198.18.0.1", ttl=64, id=78)
        / TCP(sport=5555, dport=22, flags="S", seq=3, window=333, options=[("MSS", 1400), ("NOP", None)]),
        IPv6(src="2001:db8::5", dst="2001:db8::1", hlim=64)
        / TCP(sport=40001, dport=443, flags="S", seq=1000, window=28800, options=LINUX_OPTS),
    ]
    frames = []
    for n, pkt in enumerate(packets):
        frame = Ether(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / pkt))
        frame.time = T0 + n
        frames.append(frame)
    return frames


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _hosts(db_url: str) -> dict[str, dict]:
    result = _invoke("hosts", "--json", "--db", db_url)
    assert result.exit_code == 0, result.output
    return {h["ip"]: h for h in json.loads(result.output)}


def test_a_real_p0f3_log_is_stored_as_dynapot_fingerprints_it(db_url: str, tmp_path: Path) -> None:
    _need_p0f()
    pcap, log = tmp_path / "seen.pcap", tmp_path / "p0f.log"
    wrpcap(str(pcap), _frames())
    assert P0F_BINARY is not None
    proc = subprocess.run(
        [P0F_BINARY, "-r", str(pcap), "-o", str(log)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    modules = {line.split("mod=", 1)[1].split("|", 1)[0] for line in log.read_text().splitlines()}
    assert {"syn", "syn+ack", "mtu", "uptime", "http request"} <= modules  # the log has every kind

    result = _invoke("import-p0f", str(log), "--db", db_url)
    assert result.exit_code == 0, result.output
    assert "stored 5 new and 0 known hosts, 3 OS guesses" in result.output
    hosts = _hosts(db_url)
    assert set(hosts) == {"198.18.0.1", "198.18.0.7", "198.18.0.9", "198.18.0.10", "2001:db8::5"}
    assert {ip: (h["os"], h["reliability"], h["tool"]) for ip, h in hosts.items()} == {
        "198.18.0.1": ("Windows 7 or 8", 90, "p0f"),
        "198.18.0.7": ("Linux 3.11 and newer", 90, "p0f"),
        "198.18.0.9": (None, None, "p0f"),  # nmap's SYN scan: app=, a tool and not an OS
        "198.18.0.10": (None, None, "p0f"),  # os=???: in use, OS unknown
        "2001:db8::5": ("Linux 3.11 and newer", 90, "p0f"),
    }
    # The last line about the Linux client (its HTTP request, 2 s in) dates it.
    assert datetime.fromisoformat(hosts["198.18.0.7"]["last_seen"]) == datetime.fromtimestamp(T0 + 2, UTC)
    database = open_database(db_url)
    try:
        with database.session() as session:
            rows = {
                r.name: (r.vendor, r.family, r.generation) for r in session.scalars(select(OperatingSystem))
            }
    finally:
        database.dispose()
    assert rows == {
        "Windows 7 or 8": ("Microsoft", "Windows", "7 or 8"),
        "Linux 3.11 and newer": (None, "Linux", "3.11 and newer"),
    }

    # dynapot's own p0f on the same packets gives the same verdicts (IPv4: passive discovery's scope).
    result = _invoke("fingerprint", "--pcap", str(pcap), "--json")
    ours = {h["ip"]: h["os"] for h in map(json.loads, result.output.splitlines())}
    assert {ip: os for ip, os in ours.items() if os} == {
        ip: h["os"] for ip, h in hosts.items() if h["os"] and ":" not in ip
    }


P0F2_LOG = """\
<Mon Jan 13 10:01:11 2003> 192.0.2.7:1234 - Linux 2.6 (newer, 1) (up: 23 hrs) -> 192.0.2.1:80 (distance 0, link: ethernet/modem)
<Mon Jan 13 10:01:12 2003> 192.0.2.8:1035 - Windows XP/2000 (RFC1323+, w+, tstamp+) [GENERIC]
  Signature: [S44:128:1:64:M1460,N,W0,N,N,T0,N,N,S:.:Windows:?]
  -> 192.0.2.1:80 (distance 1, link: ethernet/modem)
<Mon Jan 13 10:01:13 2003> 192.0.2.9:4000 - NMAP syn scan (1) *
<Mon Jan 13 10:01:14 2003> 192.0.2.10:2000 - UNKNOWN [S4:64:1:60:M1460,S,T,N,W7:.:?:?] (up: 1 hrs) -> 192.0.2.1:22 (link: ethernet/modem)
<Mon Jan 13 10:01:15 2003> >> Masquerade at 192.0.2.7: indicators at 52%.
<Mon Jan 13 10:01:16 2003> 192.0.2.11:3000 - FreeBSD 4.7-5.2 (or MacOS X 10.2-10.4) (1) (NAT!) (ECN) [tos 16] [FUZZY] -> 192.0.2.1:80 (link: pppoe (DSL))
<Mon  Jan  3 09:00:00 2003> 192.0.2.12:3001 - RISC OS 3.70-4.36 (inet 5.04) (up: 2 hrs) -> 192.0.2.1:80 (distance 3, link: ethernet/modem)

192.0.2.13:3002 - Windows 2000 SP4, XP SP1+ -> 192.0.2.1:80 (distance 0, link: ethernet/modem)
"""  # noqa: E501 (p0f 2's lines, as it prints them)


def _local(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").astimezone(UTC)  # p0f 2 writes local time


def test_p0f2_output(tmp_path: Path) -> None:
    log = tmp_path / "p0f2.log"
    log.write_text(P0F2_LOG)
    os.utime(log, (T0, T0))
    sightings = P0fSightings()
    read_p0f_log(log, sightings)
    obs = {o.ip: o for o in sightings.observations()}
    assert list(obs) == [f"192.0.2.{n}" for n in (7, 8, 9, 10, 11, 12, 13)]
    guesses = {ip: o.os and (o.os.name, o.os.accuracy, o.os.family, o.os.generation) for ip, o in obs.items()}
    assert guesses == {
        "192.0.2.7": ("Linux 2.6 (newer, 1)", 90, "Linux", "2.6 (newer, 1)"),
        "192.0.2.8": (
            "Windows XP/2000 (RFC1323+, w+, tstamp+)",
            50,
            "Windows",
            "XP/2000 (RFC1323+, w+, tstamp+)",
        ),
        "192.0.2.9": None,  # a no-detail signature: a scanner
        "192.0.2.10": None,  # UNKNOWN
        "192.0.2.11": (
            "FreeBSD 4.7-5.2 (or MacOS X 10.2-10.4) (1)",
            70,
            "FreeBSD",
            "4.7-5.2 (or MacOS X 10.2-10.4) (1)",
        ),
        "192.0.2.12": ("RISC OS 3.70-4.36 (inet 5.04)", 90, "RISC OS", "3.70-4.36 (inet 5.04)"),
        "192.0.2.13": ("Windows 2000 SP4, XP SP1+", 90, "Windows", "2000 SP4, XP SP1+"),
    }
    assert obs["192.0.2.8"].os is not None and obs["192.0.2.8"].os.vendor == "Microsoft"
    assert obs["192.0.2.7"].seen_at == _local("2003-01-13 10:01:11")
    assert obs["192.0.2.12"].seen_at == _local("2003-01-03 09:00:00")
    assert obs["192.0.2.13"].seen_at == datetime.fromtimestamp(T0, UTC)  # no time: the file's
    assert {o.tool for o in obs.values()} == {"p0f"} and sightings.lines == 7


def test_the_surest_guess_stays_and_the_latest_time_wins(db_url: str, tmp_path: Path) -> None:
    line = (
        "[2024/05/01 10:00:0{s}] mod=syn|cli=198.18.0.5/1000|srv=198.18.0.1/80|subj=cli|os={os}|dist=0"
        "|params={p}|raw_sig=x"
    )
    log = tmp_path / "p0f.log"
    log.write_text(
        "\n".join(
            [
                line.format(s=1, os="Linux 3.11 and newer", p="none"),
                line.format(s=2, os="Linux 2.2.x-3.x", p="generic"),  # less sure: ignored
                line.format(s=3, os="???", p="none"),
                line.format(s=0, os="Windows 7 or 8", p="fuzzy"),  # earlier and less sure
            ]
        )
        + "\n"
    )
    result = _invoke("import-p0f", str(log), "--db", db_url)
    assert result.exit_code == 0, result.output
    (host,) = _hosts(db_url).values()
    assert (host["os_detail"], host["reliability"]) == ("Linux 3.11 and newer", 90)
    assert datetime.fromisoformat(host["last_seen"]) == _local("2024-05-01 10:00:03")
    # Importing again (a later log) refreshes the same rows: one guess per host and tool.
    assert _invoke("import-p0f", str(log), "--db", db_url).exit_code == 0
    database = open_database(db_url)
    try:
        with database.session() as session:
            assert session.scalars(select(Host)).all()[0].tool == "p0f"
            assert len(session.scalars(select(HostOsGuess)).all()) == 1
    finally:
        database.dispose()


GOOD3 = (
    "[2024/05/01 10:00:00] mod=syn|cli=198.18.0.5/1000|srv=198.18.0.1/80|subj=cli|os=Linux 3.x|dist=0"
    "|params=none|raw_sig=4:64+0:0:1460:mss*20,7:mss,sok,ts,nop,ws:df,id+:0"
)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("hello world", "neither a p0f 3 log line nor p0f 2 output"),
        ("[2024/05/01 10:00:00] mod=syn", "subj= must be cli or srv"),
        ("[2024/13/01 10:00:00] " + GOOD3.split("] ", 1)[1], "bad time"),
        (GOOD3.replace("mod=syn", "mod=teleport"), "unknown p0f module 'teleport'"),
        (GOOD3.replace("cli=198.18.0.5/1000", "cli=198.18.0.500/1000"), "cli= is not address/port"),
        (GOOD3.replace("srv=198.18.0.1/80", "srv=198.18.0.1/99999"), "srv= has a bad port"),
        (GOOD3.replace("subj=cli", "subj=both"), "subj= must be cli or srv"),
        (GOOD3.replace("|os=Linux 3.x", ""), "a syn line without os= or app="),
        (GOOD3.replace("os=Linux 3.x", "os=Linux\x1b[2J"), "characters p0f never prints"),
        (GOOD3.replace("os=Linux 3.x", "os=" + "L" * 101), "OS label longer than 100"),
        (GOOD3.replace("dist=0", "dist=0|dist=1"), "dist= appears twice"),
        ("[2024/05/01 10:00:00] mod=syn|garbage|cli=198.18.0.5/1", "unknown p0f module 'syn|garbage'"),
        ("192.0.2.7:99999 - Linux 2.6", "bad port 99999"),
        ("192.0.2.7:1 - Linux 2.6 -> somewhere", "malformed '-> ADDR:PORT"),
        ("192.0.2.7:1 - Linux 2.6 Signature: [S4:64", "malformed 'Signature: [...]' part"),
        ("<Mon Foo 13 10:01:11 2003> 192.0.2.7:1 - Linux 2.6", "bad time"),
        ("192.0.2.7:1 -  (up: 3 hrs)", "no OS label"),
        ("  -> 192.0.2.1:80 (distance 0, link: ethernet/modem)", "an indented line, but no p0f 2 line"),
        ("192.0.2.7:1 - Linux\x00 2.6", "NUL byte"),
    ],
)
def test_a_malformed_line_is_named_and_nothing_is_stored(
    db_url: str, tmp_path: Path, line: str, reason: str
) -> None:
    good, bad = tmp_path / "good.log", tmp_path / "bad.log"
    good.write_text(GOOD3 + "\n")
    bad.write_bytes((GOOD3 + "\n\n" + line + "\n").encode())
    result = _invoke("import-p0f", str(good), str(bad), "--db", db_url)
    assert result.exit_code == 2, result.output
    (message,) = result.output.strip().splitlines()
    assert message.startswith(f"Error: {bad}:3: ") and reason in message, message
    # The good file was not stored either (all or nothing): not even a database was made.
    assert _invoke("hosts", "--db", db_url).exit_code == 2


def test_files_that_are_not_p0f_logs(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'd.db'}"
    missing = _invoke("import-p0f", str(tmp_path / "nope.log"), "--db", db)
    assert missing.exit_code == 2 and "does not exist" in missing.output
    pcap = tmp_path / "capture.pcap"
    wrpcap(str(pcap), _frames()[:1])
    result = _invoke("import-p0f", str(pcap), "--db", db)
    assert result.exit_code == 2 and f"{pcap}:1: " in result.output
    long = tmp_path / "long.log"
    long.write_text(GOOD3 + "\n" + "x" * (MAX_LINE + 10) + "\n")
    result = _invoke("import-p0f", str(long), "--db", db)
    assert result.exit_code == 2 and f"{long}:2: line longer than {MAX_LINE} bytes" in result.output
    bad_db = tmp_path / "p0f.fp"
    bad_db.write_text("[tcp:request]\nlabel = nonsense\n")
    result = _invoke("import-p0f", str(long), "--p0f-db", str(bad_db), "--db", db)
    assert result.exit_code == 2 and str(bad_db) in result.output and "Traceback" not in result.output
    with pytest.raises(P0fLogError, match=r"cannot read"):
        read_p0f_log(tmp_path, P0fSightings())  # a folder

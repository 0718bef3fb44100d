"""Tests for the nmap XML parser: hand-written documents shaped like nmap 7.93 output,
broken documents that must be refused, and one run of the real nmap against loopback."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from loopback import needs_nmap, tcp_server

from dynapot.discovery.nmap_xml import NmapRun, NmapXmlError, parse_nmap_xml
from dynapot.discovery.observation import OsGuess, PortObservation

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<?xml-stylesheet href="file:///usr/bin/../share/nmap/nmap.xsl" type="text/xsl"?>
<!-- Nmap 7.93 scan initiated Mon Nov 13 22:13:20 2023 as: nmap -n -sV -O -oX - 198.18.0.0/24 -->
<nmaprun scanner="nmap" args="nmap -n -sV -O -oX - 198.18.0.0/24" start="1700000000"
 startstr="Mon Nov 13 22:13:20 2023" version="7.93" xmloutputversion="1.05">
<scaninfo type="syn" protocol="tcp" numservices="1000" services="1-1000"/>
<verbose level="0"/>
<debugging level="0"/>
"""

TAIL = """<runstats><finished time="1700000100" timestr="Mon Nov 13 22:15:00 2023"
 summary="Nmap done" elapsed="100.00" exit="success"/><hosts up="2" down="1" total="3"/>
</runstats>
</nmaprun>
"""

WINDOWS_HOST = """<host starttime="1700000010" endtime="1700000042">
<status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="198.18.0.5" addrtype="ipv4"/>
<address addr="00:0C:29:3A:4B:5C" addrtype="mac" vendor="VMware"/>
<hostnames>
<hostname name="winbox.corp.example" type="PTR"/>
</hostnames>
<ports><extraports state="closed" count="996">
<extrareasons reason="resets" count="996" proto="tcp" ports="1-134,136-138"/>
</extraports>
<port protocol="tcp" portid="135"><state state="open" reason="syn-ack" reason_ttl="128"/>
<service name="msrpc" product="Microsoft Windows RPC" ostype="Windows" method="probed" conf="10">
<cpe>cpe:/o:microsoft:windows</cpe></service></port>
<port protocol="tcp" portid="139"><state state="open" reason="syn-ack" reason_ttl="128"/>
<service name="netbios-ssn" product="Microsoft Windows netbios-ssn" method="probed" conf="10"/></port>
<port protocol="tcp" portid="445"><state state="open" reason="syn-ack" reason_ttl="128"/>
<service name="microsoft-ds" product="Microsoft Windows 7 - 10 microsoft-ds"
 extrainfo="workgroup: WORKGROUP" version="" method="probed" conf="10"/></port>
<port protocol="tcp" portid="3389"><state state="filtered" reason="no-response" reason_ttl="0"/>
<service name="ms-wbt-server" method="table" conf="3"/></port>
</ports>
<os><portused state="open" proto="tcp" portid="135"/>
<portused state="closed" proto="tcp" portid="1"/>
<osmatch name="Microsoft Windows Server 2008 R2" accuracy="91" line="84512">
<osclass type="general purpose" vendor="Microsoft" osfamily="Windows" osgen="2008" accuracy="91">
<cpe>cpe:/o:microsoft:windows_server_2008:r2</cpe></osclass>
</osmatch>
<osmatch name="Microsoft Windows 7 SP1" accuracy="97" line="86123">
<osclass type="general purpose" vendor="Microsoft" osfamily="Windows" osgen="Vista" accuracy="90">
<cpe>cpe:/o:microsoft:windows_vista</cpe></osclass>
<osclass type="general purpose" vendor="Microsoft" osfamily="Windows" osgen="7" accuracy="97">
<cpe>cpe:/o:microsoft:windows_7::sp1</cpe><cpe>cpe:/o:microsoft:windows_7::sp1:professional</cpe></osclass>
</osmatch>
<osmatch name="Microsoft Windows 8.1" accuracy="97" line="87001">
<osclass type="general purpose" vendor="Microsoft" osfamily="Windows" osgen="8.1" accuracy="97">
<cpe>cpe:/o:microsoft:windows_8.1</cpe></osclass>
</osmatch>
</os>
<distance value="1"/>
<times srtt="402" rttvar="190" to="100000"/>
</host>
"""

LINUX_HOST_NO_OS = """<host starttime="1700000011">
<status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="198.18.0.7" addrtype="ipv4"/>
<hostnames>
</hostnames>
<ports><port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="64"/>
<service name="ssh" product="OpenSSH" version="8.9p1 Ubuntu 3" extrainfo="Ubuntu Linux; protocol 2.0"
 ostype="Linux" method="probed" conf="10"><cpe>cpe:/a:openbsd:openssh:8.9p1</cpe></service></port>
<port protocol="udp" portid="53"><state state="open|filtered" reason="no-response" reason_ttl="0"/>
<service name="domain" method="table" conf="3"/></port>
</ports>
<times srtt="300" rttvar="100" to="100000"/>
</host>
"""

DOWN_HOST = """<host><status state="down" reason="no-response" reason_ttl="0"/>
<address addr="198.18.0.9" addrtype="ipv4"/>
</host>
"""


def doc(*hosts: str, head: str = HEAD, tail: str = TAIL) -> str:
    return head + "".join(hosts) + tail


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# --- well-formed runs ------------------------------------------------------------------------


def test_run_metadata() -> None:
    run = parse_nmap_xml(doc())
    assert isinstance(run, NmapRun)
    assert run.args == "nmap -n -sV -O -oX - 198.18.0.0/24"
    assert run.started_at == utc(1700000000)
    assert run.finished_at == utc(1700000100)
    assert run.observations == ()
    assert run.timed_out == ()


def test_windows_host_best_osmatch_wins_and_first_wins_ties() -> None:
    (obs,) = parse_nmap_xml(doc(WINDOWS_HOST)).observations
    assert obs.ip == "198.18.0.5"
    assert obs.tool == "nmap"
    assert obs.alive is True
    assert obs.mac == "00:0C:29:3A:4B:5C"
    assert obs.mac_vendor == "VMware"
    assert obs.hostname == "winbox.corp.example"
    assert obs.seen_at == utc(1700000042)  # endtime
    assert obs.seen_at.tzinfo is not None
    # 97 beats 91; "Windows 7 SP1" and "Windows 8.1" tie at 97 and the first one wins.
    # Within it, the 97 % osclass beats the 90 % one listed before it.
    assert obs.os == OsGuess(
        name="Microsoft Windows 7 SP1",
        accuracy=97,
        vendor="Microsoft",
        family="Windows",
        generation="7",
        device_type="general purpose",
        cpe=("cpe:/o:microsoft:windows_7::sp1", "cpe:/o:microsoft:windows_7::sp1:professional"),
    )
    assert obs.os.group == "Windows 7"


def test_windows_host_ports() -> None:
    (obs,) = parse_nmap_xml(doc(WINDOWS_HOST)).observations
    # extraports is a summary, not ports: only the four <port> elements appear.
    assert obs.ports == (
        PortObservation("tcp", 135, "open", "msrpc", "Microsoft Windows RPC"),
        PortObservation("tcp", 139, "open", "netbios-ssn", "Microsoft Windows netbios-ssn"),
        PortObservation(
            "tcp",
            445,
            "open",
            "microsoft-ds",
            "Microsoft Windows 7 - 10 microsoft-ds",
            None,  # version="" means no version
            "workgroup: WORKGROUP",
        ),
        PortObservation("tcp", 3389, "filtered", "ms-wbt-server"),
    )


def test_host_without_os() -> None:
    (obs,) = parse_nmap_xml(doc(LINUX_HOST_NO_OS)).observations
    assert obs.os is None
    assert obs.mac is None
    assert obs.hostname is None
    assert obs.seen_at == utc(1700000011)  # starttime when there is no endtime
    assert obs.ports == (
        PortObservation("tcp", 22, "open", "ssh", "OpenSSH", "8.9p1 Ubuntu 3", "Ubuntu Linux; protocol 2.0"),
        PortObservation("udp", 53, "open|filtered", "domain"),
    )


def test_the_ttl_replies_started_with() -> None:
    windows, linux, down = parse_nmap_xml(doc(WINDOWS_HOST, LINUX_HOST_NO_OS, DOWN_HOST)).observations
    assert windows.initial_ttl == 128  # SYN/ACKs came with 128, one hop (<distance value="1"/>)
    assert linux.initial_ttl == 64  # no <distance>: as seen
    assert down.initial_ttl is None  # no port answered
    # Two routers on the way: 62 arrived, 64 it started with; a filtered port's 0 says nothing.
    far = LINUX_HOST_NO_OS.replace('reason_ttl="64"', 'reason_ttl="62"').replace(
        "<times ", '<distance value="3"/><times '
    )
    (obs,) = parse_nmap_xml(doc(far)).observations
    assert obs.initial_ttl == 64
    with pytest.raises(NmapXmlError, match="reason_ttl='x'"):
        parse_nmap_xml(doc(LINUX_HOST_NO_OS.replace('reason_ttl="64"', 'reason_ttl="x"')))


def test_down_host_uses_run_time() -> None:
    (obs,) = parse_nmap_xml(doc(DOWN_HOST)).observations
    assert obs.ip == "198.18.0.9"
    assert obs.alive is False
    assert obs.ports == ()
    assert obs.seen_at == utc(1700000100)  # the run's finish time


def test_several_hosts_in_document_order() -> None:
    run = parse_nmap_xml(doc(WINDOWS_HOST, LINUX_HOST_NO_OS, DOWN_HOST))
    assert [o.ip for o in run.observations] == ["198.18.0.5", "198.18.0.7", "198.18.0.9"]
    assert [o.alive for o in run.observations] == [True, True, False]


def test_bytes_and_str_give_the_same_run() -> None:
    text = doc(WINDOWS_HOST, LINUX_HOST_NO_OS)
    assert parse_nmap_xml(text.encode()) == parse_nmap_xml(text)


def test_ipv6_address_is_normalised() -> None:
    host = DOWN_HOST.replace('addr="198.18.0.9" addrtype="ipv4"', 'addr="2001:DB8:0:0::1" addrtype="ipv6"')
    (obs,) = parse_nmap_xml(doc(host)).observations
    assert obs.ip == "2001:db8::1"


def test_timed_out_host_is_listed() -> None:
    host = LINUX_HOST_NO_OS.replace('<host starttime="1700000011">', '<host starttime="1" timedout="true">')
    run = parse_nmap_xml(doc(host))
    assert run.timed_out == ("198.18.0.7",)
    assert [o.ip for o in run.observations] == ["198.18.0.7"]


def test_osmatch_without_osclass() -> None:
    host = LINUX_HOST_NO_OS.replace(
        "</ports>", '</ports><os><osmatch name="Linux 5.0 - 5.4" accuracy="88" line="1"/></os>'
    )
    (obs,) = parse_nmap_xml(doc(host)).observations
    assert obs.os == OsGuess(name="Linux 5.0 - 5.4", accuracy=88)


# --- documents that must be refused ----------------------------------------------------------


def test_malformed_xml_names_the_line() -> None:
    bad = doc(WINDOWS_HOST.replace("</hostnames>", "</hostname>"))
    with pytest.raises(NmapXmlError, match=r"malformed nmap XML: mismatched tag: line \d+"):
        parse_nmap_xml(bad)


def test_truncated_at_every_offset_is_refused() -> None:
    # nmap killed midway leaves a prefix of the document: no prefix may parse.
    full = doc(WINDOWS_HOST, LINUX_HOST_NO_OS).encode()
    complete = len(full.rstrip())
    for cut in range(complete):
        with pytest.raises(NmapXmlError):
            parse_nmap_xml(full[:cut])


def test_truncated_message_says_so() -> None:
    full = doc(WINDOWS_HOST)
    with pytest.raises(NmapXmlError, match="ends early"):
        parse_nmap_xml(full[: full.index("<ports>") + 3])
    with pytest.raises(NmapXmlError, match="ends early"):
        parse_nmap_xml(full[: full.index("</host>")])


def test_well_formed_but_unfinished_run_is_refused() -> None:
    # Everything closed but no <runstats>: not something a finished nmap writes.
    with pytest.raises(NmapXmlError, match="did not complete"):
        parse_nmap_xml(doc(WINDOWS_HOST, tail="</nmaprun>"))


def test_run_that_nmap_reports_as_failed_is_refused() -> None:
    tail = TAIL.replace('exit="success"', 'exit="error" errormsg="QUITTING!"')
    with pytest.raises(NmapXmlError, match="QUITTING!"):
        parse_nmap_xml(doc(WINDOWS_HOST, tail=tail))


@pytest.mark.parametrize("data", ["", b"", "   \n"])
def test_empty_document(data: str | bytes) -> None:
    with pytest.raises(NmapXmlError, match="empty"):
        parse_nmap_xml(data)


def test_wrong_root() -> None:
    with pytest.raises(NmapXmlError, match=r"root element is <scan>, expected <nmaprun> \(line 2\)"):
        parse_nmap_xml('<?xml version="1.0"?>\n<scan><host/></scan>')


@pytest.mark.parametrize(
    ("addr", "addrtype", "expected"),
    [
        ("999.1.2.3", "ipv4", "'999.1.2.3' is not an IP address"),
        ("not-an-ip", "ipv4", "'not-an-ip' is not an IP address"),
        ("::1", "ipv4", "'::1' is marked as ipv4"),
        ("198.18.0.9", "token-ring", "unknown addrtype 'token-ring'"),
    ],
)
def test_bad_address(addr: str, addrtype: str, expected: str) -> None:
    host = DOWN_HOST.replace('addr="198.18.0.9" addrtype="ipv4"', f'addr="{addr}" addrtype="{addrtype}"')
    text = doc(LINUX_HOST_NO_OS, host)
    line = text.splitlines().index(next(x for x in text.splitlines() if f'addr="{addr}"' in x)) + 1
    with pytest.raises(NmapXmlError) as info:
        parse_nmap_xml(text)
    assert expected in str(info.value)
    assert f"(line {line})" in str(info.value)


def test_bad_mac() -> None:
    host = WINDOWS_HOST.replace("00:0C:29:3A:4B:5C", "00:0C:29")
    with pytest.raises(NmapXmlError, match="MAC address '00:0C:29'"):
        parse_nmap_xml(doc(host))


def test_host_without_ip_address() -> None:
    host = (
        '<host><status state="up" reason="x" reason_ttl="0"/>'
        '<address addr="00:11:22:33:44:55" addrtype="mac"/></host>'
    )
    with pytest.raises(NmapXmlError, match="no IPv4 or IPv6 address"):
        parse_nmap_xml(doc(host))


@pytest.mark.parametrize(
    ("portid", "expected"),
    [
        ("70000", "portid=70000 is out of range"),
        ("-1", "out of range"),
        ("ssh", "portid='ssh' is not an integer"),
    ],
)
def test_bad_port_number(portid: str, expected: str) -> None:
    host = LINUX_HOST_NO_OS.replace('portid="22"', f'portid="{portid}"')
    with pytest.raises(NmapXmlError, match=expected):
        parse_nmap_xml(doc(host))


def test_port_without_state() -> None:
    host = LINUX_HOST_NO_OS.replace('<state state="open" reason="syn-ack" reason_ttl="64"/>', "")
    with pytest.raises(NmapXmlError, match="port tcp/22 has no <state"):
        parse_nmap_xml(doc(host))


def test_bad_accuracy() -> None:
    host = WINDOWS_HOST.replace('accuracy="91" line', 'accuracy="high" line')
    with pytest.raises(NmapXmlError, match="accuracy='high' is not an integer"):
        parse_nmap_xml(doc(host))


def test_host_without_status() -> None:
    host = DOWN_HOST.replace('<status state="down" reason="no-response" reason_ttl="0"/>', "")
    with pytest.raises(NmapXmlError, match="no <status"):
        parse_nmap_xml(doc(host))


def test_entities_are_refused() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE nmaprun [<!ENTITY a "aaaa">]><nmaprun args="&a;"/>'
    with pytest.raises(NmapXmlError, match="refused"):
        parse_nmap_xml(bomb)


# --- the real nmap ---------------------------------------------------------------------------

# Skip only on a developer machine without nmap; in CI a missing nmap must fail the test.


@pytest.fixture
def loopback_listener() -> Iterator[int]:
    with tcp_server(b"") as port:
        yield port


@needs_nmap
def test_real_nmap_output_parses(loopback_listener: int) -> None:
    port = loopback_listener
    # Loopback only: this test must never send a packet anywhere else.
    proc = subprocess.run(
        ["nmap", "-n", "-sT", "-p", str(port), "127.0.0.1", "-oX", "-"],
        capture_output=True,
        timeout=120,
        check=True,
    )
    run = parse_nmap_xml(proc.stdout)
    assert run.args.startswith("nmap -n -sT -p")
    assert run.started_at is not None and run.finished_at is not None
    assert run.started_at <= run.finished_at
    (obs,) = run.observations
    assert obs.ip == "127.0.0.1"
    assert obs.alive is True
    assert obs.seen_at.tzinfo is not None
    assert [(p.protocol, p.port, p.state) for p in obs.ports] == [("tcp", port, "open")]

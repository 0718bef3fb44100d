"""Passive discovery: frames built with scapy in, observations out; the fusion rule; `dynapot fingerprint`."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap

from dynapot.cli import main
from dynapot.discovery.fusion import FusionRule, ToolGuess, fuse
from dynapot.discovery.p0f import DEFAULT_DATABASE, P0fDatabase, P0fMatcher
from dynapot.discovery.passive import PassiveObserver, parse_banner

MAC_A = "02:00:00:00:00:0a"
MAC_R = "02:00:00:00:00:01"
CLIENT, SERVER = "198.18.0.10", "198.18.0.2"


@pytest.fixture(scope="module")
def matcher() -> P0fMatcher:
    if not DEFAULT_DATABASE.exists():
        pytest.skip("p0f is not installed")
    return P0fMatcher(P0fDatabase.load())


# --------------------------------------------------------------------------- frame builders

# Option layouts and windows of p0f.fp signatures (the line numbers of Debian's 3.09b file).
WIN7_SYN = dict(
    ttl=128,
    window=8192,
    options=[("MSS", 1460), ("NOP", None), ("WScale", 2), ("NOP", None), ("NOP", None), ("SAckOK", b"")],
)
LINUX_SYN = dict(
    ttl=64,
    window=29200,
    options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1000, 0)), ("NOP", None), ("WScale", 7)],
)
LINUX_SYNACK = dict(
    ttl=64,
    window=14600,
    ip_id=0,
    options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (5000, 1000)), ("NOP", None), ("WScale", 7)],
)
WIN_SYNACK = dict(
    ttl=128,
    window=8192,
    options=[("MSS", 1460), ("NOP", None), ("WScale", 8), ("SAckOK", b""), ("Timestamp", (7000, 1000))],
)


def tcp_frame(
    src, dst, sport, dport, flags, *, ttl=64, window=1024, options=(), seq=0, ack=0, ip_id=4321, payload=b""
):
    src_mac, dst_mac = (MAC_A, MAC_R) if src == CLIENT else (MAC_R, MAC_A)
    pkt = (
        Ether(src=src_mac, dst=dst_mac)
        / IP(src=src, dst=dst, ttl=ttl, flags="DF", id=ip_id)
        / TCP(sport=sport, dport=dport, flags=flags, window=window, options=list(options), seq=seq, ack=ack)
    )
    if payload:
        pkt = pkt / payload
    return bytes(pkt)


def handshake(sport: int, server: str = SERVER, *, syn=LINUX_SYN, synack=LINUX_SYNACK, banner=b""):
    """SYN, SYN+ACK and the server's first bytes of one connection."""
    frames = [
        tcp_frame(CLIENT, server, 40000 + sport, sport, "S", seq=1000, **syn),
        tcp_frame(server, CLIENT, sport, 40000 + sport, "SA", seq=5000, ack=1001, **synack),
    ]
    if banner:
        frames.append(
            tcp_frame(server, CLIENT, sport, 40000 + sport, "PA", seq=5001, ack=1001, ttl=64, payload=banner)
        )
    return frames


def arp_frame(op: int, ip: str, mac: str, target: str = "198.18.0.1") -> bytes:
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=op, hwsrc=mac, psrc=ip, pdst=target))


def dhcp_request(hostname: str, requested: str | None, mac: str = "02:00:00:00:00:33") -> bytes:
    options = [("message-type", "request")]
    if requested:
        options.append(("requested_addr", requested))
    options += [("hostname", hostname), "end"]
    return bytes(
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")) + b"\0" * 10, xid=7)
        / DHCP(options=options)
    )


def mdns_response(name: str, ip: str) -> bytes:
    return bytes(
        Ether(src="02:00:00:00:00:44", dst="01:00:5e:00:00:fb")
        / IP(src=ip, dst="224.0.0.251", ttl=255)
        / UDP(sport=5353, dport=5353)
        / DNS(qr=1, aa=1, qd=[], an=DNSRR(rrname=name, type="A", rdata=ip, ttl=120))
    )


def nbns_registration(name: str, ip: str) -> bytes:
    """A NetBIOS name registration (opcode 5) with the NB record in the additional section."""
    raw = name.upper().ljust(15).encode() + b"\x00"
    encoded = bytes(b for c in raw for b in (0x41 + (c >> 4), 0x41 + (c & 0x0F)))
    header = struct.pack("!HHHHHH", 0x1234, (5 << 11) | 0x0110, 1, 0, 0, 1)
    question = b"\x20" + encoded + b"\x00" + struct.pack("!HH", 0x20, 1)
    record = (
        b"\xc0\x0c" + struct.pack("!HHIH", 0x20, 1, 300000, 6) + b"\x00\x00" + bytes(map(int, ip.split(".")))
    )
    return bytes(
        Ether(src="02:00:00:00:00:55", dst="ff:ff:ff:ff:ff:ff")
        / IP(src=ip, dst="198.18.0.255")
        / UDP(sport=137, dport=137)
        / (header + question + record)
    )


def feed(observer: PassiveObserver, frames, t0: float = 1_700_000_000.0) -> None:
    for i, frame in enumerate(frames):
        observer.feed(frame, t0 + i * 0.001)


def by_tool(observations):
    return {(o.ip, o.tool): o for o in observations}


# --------------------------------------------------------------------------- observer


def test_arp_marks_sender_used_and_ignores_probes(matcher):
    obs = PassiveObserver(matcher)
    feed(
        obs,
        [
            arp_frame(1, "198.18.0.5", "02:00:00:00:00:05"),  # request
            arp_frame(2, "198.18.0.6", "02:00:00:00:00:06"),  # reply
            arp_frame(1, "0.0.0.0", "02:00:00:00:00:07", target="198.18.0.7"),  # RFC 5227 probe
        ],
    )
    got = by_tool(obs.observations())
    assert set(got) == {("198.18.0.5", "arp"), ("198.18.0.6", "arp")}
    assert got["198.18.0.5", "arp"].mac == "02:00:00:00:00:05"
    assert got["198.18.0.5", "arp"].seen_at == datetime.fromtimestamp(1_700_000_000.0, UTC)
    assert obs.observations() == []  # drained
    feed(obs, [arp_frame(1, "198.18.0.5", "02:00:00:00:00:05")], t0=1_700_000_060.0)
    again = obs.observations()
    assert [(o.ip, o.tool) for o in again] == [("198.18.0.5", "arp")]  # each ARP refreshes "used now"
    assert again[0].seen_at.timestamp() == 1_700_000_060.0


def test_p0f_client_and_server_guesses(matcher):
    obs = PassiveObserver(matcher)
    feed(obs, handshake(22, syn=WIN7_SYN, synack=LINUX_SYNACK))
    feed(obs, handshake(80, server="198.18.0.3", syn=WIN7_SYN, synack=WIN_SYNACK))
    got = by_tool(obs.observations())
    client = got[CLIENT, "p0f"].os
    assert client is not None
    assert (client.name, client.family, client.generation, client.vendor) == (
        "Windows 7 or 8",
        "Windows",
        "7 or 8",
        "Microsoft",
    )
    assert client.accuracy == 90  # exact
    linux = got[SERVER, "p0f"].os
    assert linux is not None and linux.family == "Linux" and linux.generation == "3.x"
    windows = got["198.18.0.3", "p0f"].os
    assert windows is not None and windows.family == "Windows"
    summary = {h.ip: h for h in obs.hosts()}
    assert summary[SERVER].match == "exact" and summary[SERVER].distance == 0
    # No ARP seen: the MAC comes from the frame, since TTL 64 says nothing routed it.
    assert summary[SERVER].mac == MAC_R


def test_unknown_and_userland_stay_unknown(matcher):
    obs = PassiveObserver(matcher)
    odd = dict(ttl=64, window=1234, options=[("NOP", None), ("MSS", 1400), ("NOP", None)])
    nmap_syn = dict(ttl=50, window=1024, ip_id=0, options=[("MSS", 1460)])
    feed(obs, [tcp_frame(CLIENT, SERVER, 40001, 22, "S", **odd)])
    feed(obs, [tcp_frame("198.18.0.11", SERVER, 40002, 22, "S", **nmap_syn)])
    got = obs.observations()
    assert all(o.os is None for o in got)
    assert not [o for o in got if o.tool == "p0f"]


@pytest.mark.parametrize(
    ("port", "banner", "expected"),
    [
        (22, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", ("ssh", "OpenSSH", "9.2p1", "Debian-2")),
        (2222, b"SSH-2.0-dropbear_2022.83\r\n", ("ssh", "dropbear", "2022.83", None)),
        (21, b"220 (vsFTPd 3.0.3)\r\n", ("ftp", "vsFTPd", "3.0.3", None)),
        (21, b"220 ProFTPD 1.3.8 Server (Debian) [::ffff:1.2.3.4]\r\n", ("ftp", "ProFTPD", "1.3.8", None)),
        (25, b"220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n", ("smtp", "Postfix", None, None)),
        (25, b"220 mx ESMTP Exim 4.96 Mon, 1 Jan 2024\r\n", ("smtp", "Exim", "4.96", None)),
        (
            80,
            b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\nDate: x\r\n\r\n",
            ("http", "SimpleHTTP", "0.6", "Python/3.11.2"),
        ),
        (
            8080,
            b"HTTP/1.1 404 Not Found\r\nServer: Apache/2.4.57 (Debian)\r\n\r\n",
            ("http", "Apache", "2.4.57", "Debian"),
        ),
    ],
)
def test_banners_name_services(matcher, port, banner, expected):
    obs = PassiveObserver(matcher)
    feed(obs, handshake(port, banner=banner))
    ports = by_tool(obs.observations())[SERVER, "passive"].ports
    assert len(ports) == 1
    p = ports[0]
    assert (p.protocol, p.port, p.state) == ("tcp", port, "open")
    assert (p.service, p.product, p.version, p.extra_info) == expected


def test_banner_split_over_segments_and_port_list_is_complete(matcher):
    obs = PassiveObserver(matcher)
    frames = handshake(80)
    head, tail = b"HTTP/1.0 200 OK\r\nServer: nginx/1.22", b".1\r\n\r\n"
    frames.append(tcp_frame(SERVER, CLIENT, 80, 40080, "PA", seq=5001, ack=1001, payload=head))
    frames.append(tcp_frame(SERVER, CLIENT, 80, 40080, "PA", seq=5001 + len(head), ack=1001, payload=tail))
    feed(obs, frames)
    first = by_tool(obs.observations())[SERVER, "passive"].ports
    assert [(p.port, p.product, p.version) for p in first] == [(80, "nginx", "1.22.1")]
    feed(obs, handshake(22, banner=b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"))
    # The inventory replaces a tool's ports with its latest list: every known port is sent again.
    second = by_tool(obs.observations())[SERVER, "passive"].ports
    assert [(p.port, p.service) for p in second] == [(22, "ssh"), (80, "http")]


def test_synack_without_banner_is_an_open_port(matcher):
    obs = PassiveObserver(matcher)
    feed(obs, handshake(3306)[1:])  # SYN not captured
    ports = by_tool(obs.observations())[SERVER, "passive"].ports
    assert [(p.port, p.state, p.service, p.product) for p in ports] == [(3306, "open", "mysql", None)]


def test_parse_banner_needs_more_or_gives_up():
    assert parse_banner(b"SSH-2.0-Open", 22) is False
    assert parse_banner(b"HTTP/1.1 200 OK\r\nDate: x\r\n", 80) is False
    assert parse_banner(b"220 hello there\r\n", 9999) is None
    assert parse_banner(b"\x00\x01binary\n", 9999) is None


def test_host_names_from_dhcp_mdns_and_netbios(matcher):
    obs = PassiveObserver(matcher)
    feed(
        obs,
        [
            dhcp_request("laptop-7", "198.18.0.60"),
            dhcp_request("phone", None, mac="02:00:00:00:00:34"),  # no address yet: kept by MAC
            mdns_response("printer.local", "198.18.0.50"),
            nbns_registration("WORKSTATION1", "198.18.0.70"),
            arp_frame(2, "198.18.0.61", "02:00:00:00:00:34"),  # the phone's address appears
        ],
    )
    names = {o.ip: o.hostname for o in obs.observations() if o.hostname}
    assert names == {
        "198.18.0.60": "laptop-7",
        "198.18.0.50": "printer.local",
        "198.18.0.70": "WORKSTATION1",
        "198.18.0.61": "phone",
    }


def test_malformed_frames_are_counted_never_raised(matcher):
    obs = PassiveObserver(matcher)
    good_syn = tcp_frame(CLIENT, SERVER, 40000, 22, "S", seq=1000, **LINUX_SYN)
    bad_csum = bytearray(good_syn)
    bad_csum[14 + 20 + 16] ^= 0xFF  # the TCP checksum field
    dns_loop = bytes(
        Ether()
        / IP(src="198.18.0.9", dst="224.0.0.251")
        / UDP(sport=5353, dport=5353)
        # a response whose answer name points at itself
        / (struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0) + b"\xc0\x0c" + b"\x00" * 10)
    )
    frames = [
        b"",
        b"\x00" * 10,
        bytes(Ether(type=0x0806) / b"\x00\x01"),  # ARP truncated
        bytes(Ether(type=0x0800) / b"\x45\x00\x00"),  # IP truncated
        bytes(Ether() / IP(src=CLIENT, dst=SERVER, proto=6) / (b"\x00" * 8)),  # TCP truncated
        bytes(bad_csum),
        bytes(Ether() / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) / (b"\x01" * 20)),
        dns_loop,
    ]
    for frame in frames:
        obs.feed(frame, 1.0)
    assert obs.malformed == {
        "eth: truncated": 2,
        "arp: truncated": 1,
        "ip: truncated": 1,
        "tcp: truncated": 1,
        "tcp: bad checksum": 1,
        "dhcp: truncated or no magic cookie": 1,
        "mdns: pointer loop": 1,
    }
    obs.feed(bytes(bad_csum), 2.0, checksums_ok=False)  # offload: checksum not finished yet
    assert obs.observations()


def test_memory_is_bounded(matcher):
    obs = PassiveObserver(matcher, max_hosts=50, max_flows=20, max_ports=5)
    for i in range(200):
        obs.feed(arp_frame(1, f"198.18.1.{i % 250}", "02:00:00:00:01:00"), float(i))
    assert len(obs.hosts()) == 50
    obs.observations()
    for i in range(100):  # SYNs that are never answered: a scan, or a flood
        obs.feed(tcp_frame(CLIENT, SERVER, 1000 + i, 80, "S", **LINUX_SYN), 300.0)
    assert obs.flow_count == 20
    for port in range(100, 120):
        feed(obs, handshake(port)[1:], t0=301.0)
    server = {h.ip: h for h in obs.hosts()}[SERVER]
    assert len(server.ports) == 5
    obs.observations(now=1000.0)
    assert obs.flow_count == 0  # unanswered flows time out


# --------------------------------------------------------------------------- fusion


T1, T2 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("guesses", "rule", "winner"),
    [
        ([("nmap", 96, "Linux 5.x"), ("p0f", 90, "Windows 7 or 8")], FusionRule(), "Linux 5.x"),
        ([("nmap", 60, "Linux 2.6"), ("p0f", 90, "Windows 7 or 8")], FusionRule(), "Windows 7 or 8"),
        ([("nmap", 85, "Linux 5.x"), ("p0f", 90, "FreeBSD")], FusionRule(), "Linux 5.x"),  # at threshold
        ([("nmap", 84, "Linux 5.x"), ("p0f", 90, "FreeBSD")], FusionRule(), "FreeBSD"),
        ([("nmap", 80, "Linux 5.x"), ("p0f", 50, "Linux 3.x")], FusionRule(), "Linux 5.x"),  # still the best
        ([("nmap", 96, "Linux 5.x"), ("p0f", 90, "FreeBSD")], FusionRule(nmap_threshold=100), "Linux 5.x"),
        ([("nmap", 90, "Linux"), ("p0f", 90, "FreeBSD")], FusionRule(nmap_threshold=95), "Linux"),  # order
        ([("nmap", 90, "Linux"), ("p0f", 90, "FreeBSD")], FusionRule(95, ("p0f", "nmap")), "FreeBSD"),
        ([("p0f", 0, "unknown")], FusionRule(), None),  # only unknown: stays unknown
        ([], FusionRule(), None),
    ],
)
def test_fusion_rule(guesses, rule, winner):
    chosen = fuse([ToolGuess(tool, conf, T1, name) for tool, conf, name in guesses], rule)
    assert (chosen.os if chosen else None) == winner


def test_fusion_newest_wins_a_full_tie():
    old, new = ToolGuess("p0f", 70, T1, "old"), ToolGuess("p0f", 70, T2.replace(tzinfo=None), "new")
    assert fuse([old, new], FusionRule()).os == "new"


def test_fusion_settings_are_validated():
    from dynapot.config import ConfigError, load_settings

    settings = load_settings(None, overrides={"discovery": {"fusion": {"nmap_threshold": 70}}})
    fusion = settings.discovery.fusion
    assert (fusion.nmap_threshold, fusion.tool_order) == (70, ("nmap", "p0f", "passive"))
    with pytest.raises(ConfigError):
        load_settings(None, overrides={"discovery": {"fusion": {"nmap_threshold": 101}}})
    with pytest.raises(ConfigError):
        load_settings(None, overrides={"discovery": {"fusion": {"tool_order": ["nmap", "nmap"]}}})


# --------------------------------------------------------------------------- dynapot fingerprint


def capture(tmp_path: Path) -> Path:
    frames = [arp_frame(2, SERVER, MAC_R)]
    frames += handshake(22, syn=WIN7_SYN, banner=b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    frames += handshake(21, syn=WIN7_SYN, banner=b"220 (vsFTPd 3.0.3)\r\n")
    frames += [mdns_response("r1.local", SERVER)]
    path = tmp_path / "cap.pcap"
    wrpcap(str(path), [Ether(f) for f in frames])
    return path


def test_fingerprint_json_and_store(matcher, tmp_path):
    db = f"sqlite:///{tmp_path / 'd.db'}"
    result = CliRunner().invoke(
        main, ["fingerprint", "--pcap", str(capture(tmp_path)), "--json", "--store", "--db", db]
    )
    assert result.exit_code == 0, result.output
    rows = {r["ip"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows[SERVER] == {
        "ip": SERVER,
        "mac": MAC_R,
        "os": "Linux 3.x",
        "match": "exact",
        "distance": 0,
        "hostname": "r1.local",
        "services": [
            {"proto": "tcp", "port": 21, "service": "ftp", "product": "vsFTPd", "version": "3.0.3"},
            {"proto": "tcp", "port": 22, "service": "ssh", "product": "OpenSSH", "version": "9.2p1"},
        ],
    }
    assert rows[CLIENT]["os"] == "Windows 7 or 8"
    hosts = {h["ip"]: h for h in json.loads(CliRunner().invoke(main, ["hosts", "--json", "--db", db]).output)}
    assert hosts[SERVER]["os"] == "Linux 3.x" and hosts[SERVER]["mac"] == MAC_R
    assert {(p["port"], p["product"]) for p in hosts[SERVER]["ports"]} == {(21, "vsFTPd"), (22, "OpenSSH")}
    table = CliRunner().invoke(main, ["fingerprint", "--pcap", str(capture(tmp_path)), "--db", db])
    assert table.exit_code == 0 and "OpenSSH" in table.output and "r1.local" in table.output


def test_fingerprint_truncated_and_unknown_link_type(matcher, tmp_path):
    good = capture(tmp_path).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(good[:-10])
    result = CliRunner().invoke(main, ["fingerprint", "--pcap", str(cut), "--json"])
    assert result.exit_code == 1
    assert "good packets read" in result.output and "truncated" in result.output
    assert "7 good packets read" in result.output  # 8 frames in the capture, the last one cut
    assert json.loads(result.stdout.splitlines()[0])["ip"]  # what was read is still reported

    odd = tmp_path / "odd.pcap"
    odd.write_bytes(good[:20] + struct.pack("<I", 147) + good[24:])  # LINKTYPE_USER0
    result = CliRunner().invoke(main, ["fingerprint", "--pcap", str(odd)])
    assert result.exit_code == 2 and "unsupported link type 147" in result.output

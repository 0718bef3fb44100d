"""HostStack: dispatch, port policy, personality replies, events, and the bounded flow table."""

from __future__ import annotations

import random

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.packet import Raw
from test_netstack_helpers import CLIENT_IP, SERVER_IP, Client, feed, ip2int, make_host, of_type, sent

from dynapot.netstack.events import (
    DatagramReceived,
    EchoRequest,
    IcmpReceived,
    PacketDropped,
    SendPacket,
    TcpProbe,
    UdpProbe,
)
from dynapot.netstack.host import HostStack, PortPolicy, StackContext, StackLimits, Verdict
from dynapot.netstack.packets import build_tcp_packet, parse_ipv4
from dynapot.netstack.tcp import ConnectionClosed, TcpState
from dynapot.netstack.types import IPPROTO_TCP, IPPROTO_UDP

SRV = ip2int(SERVER_IP)
CLI = ip2int(CLIENT_IP)


def syn(dport: int = 22, sport: int = 40000, src: str = CLIENT_IP, flags: str = "S", seq: int = 1000) -> IP:
    return IP(src=src, dst=SERVER_IP) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=555)


def test_syn_to_open_port_and_event() -> None:
    host = make_host(22)
    out = feed(host, syn())
    (synack,) = sent(out)
    assert synack[TCP].flags == "SA" and synack[TCP].ack == 1001 and synack.src == SERVER_IP
    (probe,) = of_type(out, TcpProbe)
    assert (probe.verdict, probe.replied, probe.local_port, probe.peer_ip) == ("open", True, 22, CLI)
    assert len(host.flows) == 1 and len(host.half_open) == 1 and host.context.connections == 1


def test_closed_port_rst_per_rfc() -> None:
    host = make_host(22)
    out = feed(host, syn(dport=23))
    (rst,) = sent(out)
    assert rst[TCP].flags == "RA" and rst[TCP].seq == 0 and rst[TCP].ack == 1001
    assert of_type(out, TcpProbe)[0].verdict == "closed"
    (rst,) = sent(feed(host, syn(dport=23, flags="A")))
    assert rst[TCP].flags == "R" and rst[TCP].seq == 555
    assert sent(feed(host, syn(dport=23, flags="R"))) == []  # never RST a RST
    assert host.flows == {}


def test_stray_segments_to_open_port() -> None:
    host = make_host(22)
    (rst,) = sent(feed(host, syn(flags="A")))
    assert rst[TCP].flags == "R" and rst[TCP].seq == 555
    for flags in ("", "F", "FPU", "SF"):
        out = feed(host, syn(flags=flags))
        assert sent(out) == [] and of_type(out, TcpProbe)[0].verdict == "stray"
    assert host.flows == {}


def test_blocked_port_is_silent_but_recorded() -> None:
    host = HostStack(SRV, b"\x02" * 6, None, PortPolicy({(IPPROTO_TCP, 25): Verdict.BLOCK}))
    out = feed(host, syn(dport=25))
    assert sent(out) == [] and of_type(out, TcpProbe)[0].verdict == "blocked"


def test_callable_policy() -> None:
    host = HostStack(SRV, b"\x02" * 6, policy=lambda proto, port: "open" if port % 2 else "closed")
    assert sent(feed(host, syn(dport=81)))[0][TCP].flags == "SA"
    assert sent(feed(host, syn(dport=80)))[0][TCP].flags == "RA"


def test_udp_open_closed_and_send_udp() -> None:
    host = make_host(udp=(53,))
    out = feed(host, IP(src=CLIENT_IP, dst=SERVER_IP) / UDP(sport=5353, dport=53) / Raw(b"query"))
    assert out == [DatagramReceived(SRV, 53, CLI, 5353, b"query")]
    (reply,) = sent(host.send_udp(CLI, 5353, 53, b"answer", 0.0))
    assert (reply[UDP].sport, reply[UDP].dport, bytes(reply[UDP].payload)) == (53, 5353, b"answer")
    out = feed(host, IP(src=CLIENT_IP, dst=SERVER_IP) / UDP(sport=5353, dport=54) / Raw(b"x" * 300))
    (unreach,) = sent(out)
    assert unreach[ICMP].type == 3 and unreach[ICMP].code == 3
    assert unreach[IPerror].src == CLIENT_IP and unreach[UDPerror].dport == 54
    assert of_type(out, UdpProbe)[0].verdict == "closed"
    blocked = HostStack(SRV, b"\x02" * 6, policy=PortPolicy({(IPPROTO_UDP, 9): Verdict.BLOCK}))
    out = feed(blocked, IP(src=CLIENT_IP, dst=SERVER_IP) / UDP(dport=9))
    assert sent(out) == [] and of_type(out, UdpProbe)[0].verdict == "block"


def test_echo_allowed_and_blocked() -> None:
    host = make_host()
    ping = IP(src=CLIENT_IP, dst=SERVER_IP) / ICMP(id=3, seq=4) / Raw(b"abcdefgh")
    out = feed(host, ping)
    (pong,) = sent(out)
    assert pong[ICMP].type == 0 and (pong[ICMP].id, pong[ICMP].seq) == (3, 4)
    assert bytes(pong[ICMP].payload) == b"abcdefgh" and pong.ttl == 64 and pong.dst == CLIENT_IP
    assert out[-1] == EchoRequest(SRV, CLI, 3, 4, True)
    quiet = make_host(icmp_echo=False)
    out = feed(quiet, ping)
    assert sent(out) == [] and out == [EchoRequest(SRV, CLI, 3, 4, False)]
    out = feed(host, IP(src=CLIENT_IP, dst=SERVER_IP) / ICMP(type=13))
    assert out == [IcmpReceived(SRV, CLI, 13, 0)]


def test_bad_sources_fragments_and_other_protocols_are_dropped() -> None:
    host = make_host(22)
    for src in ("0.0.0.1", "127.0.0.1", "224.0.0.1", "255.255.255.255", SERVER_IP):
        out = feed(host, syn(src=src))
        assert [type(o) for o in out] == [PacketDropped] and out[0].reason == "bad source"
    frag = IP(src=CLIENT_IP, dst=SERVER_IP, flags="MF") / TCP(dport=22, flags="S")
    assert feed(host, frag)[0].reason == "ip: fragment"
    out = feed(host, IP(src=CLIENT_IP, dst=SERVER_IP, proto=47) / Raw(b"gre"))
    assert out[0].reason == "unsupported protocol"
    bad = syn()
    bad[TCP].chksum = 1
    assert feed(host, bad)[0].reason == "tcp: bad checksum"
    assert [type(o) for o in feed(host, bad, verify=False)] == [SendPacket, TcpProbe]
    assert feed(host, IP(src=CLIENT_IP, dst="198.18.0.77") / TCP())[0].reason == "not for this host"


def test_syn_flood_keeps_the_table_bounded() -> None:
    limits = StackLimits(max_half_open_per_host=256, max_half_open=1000, max_connections=2000)
    ctx = StackContext(limits)
    hosts = [make_host(80, context=ctx, ip=f"198.18.1.{i}") for i in range(1, 5)]
    rng = random.Random(7)
    peak_heap = 0
    for n in range(100_000):
        host = hosts[n & 3]
        src = rng.getrandbits(32) & 0x00FFFFFF | 0x0A000000  # 10.x.y.z
        pkt = build_tcp_packet(
            src, host.ip, rng.randrange(1024, 65535), 80, n, 0, 2, 1024, 64, n & 0xFFFF, False
        )
        out = host.receive(parse_ipv4(pkt), n * 1e-5)
        assert any(isinstance(o, SendPacket) for o in out)
        assert len(host.half_open) <= 256 and len(host.flows) <= 256
        assert len(ctx.half_open) <= 1000 and ctx.connections <= 1000
        if n % 1000 == 0:
            peak_heap = max(peak_heap, len(ctx._heap))
    assert ctx.connections == sum(len(h.flows) for h in hosts) == len(ctx.half_open)
    assert peak_heap <= 2 * ctx.connections + 1025
    # time passes: SYN/ACKs are retransmitted, then every half-open connection times out
    out = []
    for t in (100.0, 200.0, 300.0):
        out += ctx.on_timer(t)
    evicted = len(of_type(out, ConnectionClosed))
    assert evicted == 1000 and ctx.connections == 0 and all(not h.flows for h in hosts)
    assert ctx.next_deadline() is None or len(ctx._heap) <= 1024
    assert len(ctx._heap) <= 1024  # stale timer entries are bounded too


def test_total_cap_evicts_time_wait_then_refuses() -> None:
    limits = StackLimits(max_half_open_per_host=10, max_half_open=10, max_connections=3)
    ctx = StackContext(limits)
    host = make_host(80, context=ctx)
    clients = []
    for port in (1001, 1002, 1003):
        c = Client(host, 80, sport=port)
        c.connect()
        clients.append(c)
    assert ctx.connections == 3
    out = feed(host, syn(dport=80, sport=2000))
    assert of_type(out, TcpProbe)[0].verdict == "full" and sent(out) == []
    # one connection goes to TIME_WAIT; the next SYN may take its slot
    c = clients[0]
    c.absorb(c.app(lambda conn: conn.close(0.0)))
    c.send("A")
    c.send("FA")
    assert c.conn is not None and c.conn.state is TcpState.TIME_WAIT and len(ctx.time_wait) == 1
    out = feed(host, syn(dport=80, sport=2001))
    assert of_type(out, TcpProbe)[0].verdict == "open" and not ctx.time_wait
    assert c.conn.state is TcpState.CLOSED and ctx.connections == 3


def test_new_syn_reuses_a_time_wait_flow() -> None:
    host = make_host(80)
    c = Client(host, 80)
    c.connect()
    c.absorb(c.app(lambda conn: conn.close(0.0)))
    c.send("A")
    c.send("FA")
    old = c.conn
    assert old is not None and old.state is TcpState.TIME_WAIT
    out = feed(host, syn(dport=80, seq=99999))
    assert sent(out)[0][TCP].flags == "SA" and old.state is TcpState.CLOSED
    assert host.context.connections == 1


def test_close_all() -> None:
    host = make_host(80)
    Client(host, 80).connect()
    feed(host, syn(dport=80, sport=5))
    out = host.close_all(0.0)
    assert {e.reason for e in of_type(out, ConnectionClosed)} == {"evicted"}
    assert host.flows == {} and host.context.connections == 0 and not host.context.half_open


def test_timers_across_hosts_share_one_queue() -> None:
    ctx = StackContext()
    a = make_host(80, context=ctx, ip="198.18.0.1")
    b = make_host(80, context=ctx, ip="198.18.0.2")
    feed(a, IP(src=CLIENT_IP, dst="198.18.0.1") / TCP(dport=80, flags="S"))
    feed(b, IP(src=CLIENT_IP, dst="198.18.0.2") / TCP(dport=80, flags="S"), now=0.5)
    assert ctx.next_deadline() == 1.0
    out = ctx.on_timer(1.0)
    assert [p.src for p in sent(out)] == ["198.18.0.1"]
    assert ctx.next_deadline() == 1.5
    assert a.on_timer(1.5) and b.next_deadline() == 3.0


def test_a_source_at_its_cap_loses_its_own_least_recent_connection() -> None:
    """One source cannot hold the table: its own least recently active connection makes room."""
    ctx = StackContext(StackLimits(max_connections_per_source=3))
    host = make_host(80, context=ctx)
    mine = [Client(host, 80, sport=port) for port in (1001, 1002, 1003)]
    for client in mine:
        client.connect()
    other = Client(host, 80, sport=1001, src="198.18.0.77")
    other.connect()
    mine[0].send("A")  # the first is active again: the second is now the least recent
    out = feed(host, syn(dport=80, sport=2000))
    assert of_type(out, TcpProbe)[-1].verdict == "open"
    assert [e.reason for e in of_type(out, ConnectionClosed)] == ["evicted"]
    assert mine[1].conn is not None and mine[1].conn.state is TcpState.CLOSED
    assert all(c.conn is not None and c.conn.state is TcpState.ESTABLISHED for c in (mine[0], mine[2], other))
    assert len(ctx.by_source[ip2int(CLIENT_IP)]) == 3 and ctx.connections == 4


def test_a_full_table_evicts_the_least_recent_idle_connection() -> None:
    ctx = StackContext(StackLimits(max_connections=2, min_idle_to_evict=10.0))
    host = make_host(80, context=ctx)
    first, second = Client(host, 80, sport=1001), Client(host, 80, sport=1002)
    first.connect()
    second.connect()
    assert of_type(feed(host, syn(dport=80, sport=3000), now=5.0), TcpProbe)[-1].verdict == "full"
    out = feed(host, syn(dport=80, sport=3001), now=11.0)  # both idle 11 s: the least recent goes
    assert of_type(out, TcpProbe)[-1].verdict == "open"
    assert first.conn is not None and first.conn.state is TcpState.CLOSED
    assert second.conn is not None and second.conn.state is TcpState.ESTABLISHED
    assert not ctx.recent.get(first.conn) and ctx.connections == 2


def test_a_tarpit_port_takes_five_bytes_at_a_time_and_sends_one() -> None:
    """honeyd's tarpit: window 5, MSS 64 and no window scaling announced; the peer's data is
    taken 5 bytes at a time, ours leaves 1 byte a segment, one segment in flight."""
    host = make_host(wscale=7)
    host.policy = PortPolicy({(IPPROTO_TCP, 80): Verdict.TARPIT})
    client = Client(host, dport=80, wscale=7)
    synack = client.connect()
    options = dict(synack[TCP].options)
    assert synack[TCP].window == 5 and options["MSS"] == 64 and "WScale" not in options
    (ack,) = client.send("PA", b"GET / HTTP/1.0\r\n\r\n")  # 18 bytes into a 5-byte window
    assert bytes(client.server_data) == b"GET /" and ack[TCP].ack == client.isn + 1 + 5
    client.snd_nxt = ack[TCP].ack  # the rest waits on the client's side, as a real sender's would
    replies = client.app(lambda conn: conn.send(b"HTTP/1.0 200 OK\r\n", client.now))
    assert [bytes(p[TCP].payload) for p in replies] == [b"H"]
    client.absorb(replies)
    assert [bytes(p[TCP].payload) for p in client.send("A")] == [b"T"]  # one more per ACK, never more
    # an open port of the same host is a normal one
    host.policy = PortPolicy({(IPPROTO_TCP, 80): Verdict.OPEN})
    normal = Client(host, dport=80, sport=40001, wscale=7).connect()
    assert normal[TCP].window > 5 and "WScale" in dict(normal[TCP].options)

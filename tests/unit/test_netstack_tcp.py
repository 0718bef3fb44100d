"""TCP dialogues between a scapy client and the sans-IO stack, driven through HostStack."""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import IP, TCP
from test_netstack_helpers import Client, make_host, of_type

from dynapot.netstack.events import SendPacket
from dynapot.netstack.tcp import (
    TRANSITIONS,
    ConnectionClosed,
    DataReceived,
    LocalProtocolError,
    PeerClosed,
    TcpConfig,
    TcpInput,
    TcpState,
    state_diagram,
)

PORT = 80
DATA = os.urandom(100_000)


def closed_reasons(c: Client) -> list[str]:
    return [e.reason for e in of_type(c.events, ConnectionClosed)]


def connected(**kw) -> Client:
    config = kw.pop("config", None)
    host = make_host(PORT, config=config, **kw.pop("personality", {}))
    c = Client(host, PORT, **kw)
    c.connect()
    return c


# ---------------------------------------------------------------- the table


def test_table_is_the_single_source_and_draws() -> None:
    dot = state_diagram()
    for state in TcpState:
        assert state.name in dot
    # every state but LISTEN/CLOSED can be aborted, every synchronised one can be reset
    for state in TcpState:
        if state not in (TcpState.LISTEN, TcpState.CLOSED):
            assert (state, TcpInput.APP_ABORT) in TRANSITIONS
    assert (TcpState.TIME_WAIT, TcpInput.RECV_RST) not in TRANSITIONS  # RFC 1337
    assert TRANSITIONS[(TcpState.LISTEN, TcpInput.RECV_SYN)][1] is TcpState.SYN_RCVD


# ---------------------------------------------------------------- handshake


def test_handshake_mirrors_options() -> None:
    host = make_host(PORT)
    c = Client(host, PORT, wscale=5, ts=True)
    c.now = 10.0
    synack = c.connect()
    t = synack[TCP]
    opts = dict(t.options)
    assert synack.ttl == 64 and synack.flags == "DF"
    assert opts["MSS"] == 1460 and "WScale" in opts and "Timestamp" in opts
    assert opts["Timestamp"][1] == 10001  # TSecr echoes the client's TSval
    assert c.conn is not None and c.conn.state is TcpState.ESTABLISHED
    assert c.conn.ts_ok and c.conn.snd_wscale == 5 and c.conn.rcv_wscale == 7


def test_no_options_means_none_negotiated() -> None:
    c = connected(mss=None)
    assert c.conn is not None and not c.conn.ts_ok and c.conn.snd_wscale == 0
    assert c.conn.seg_size == 536  # RFC 9293 default MSS


def test_tiny_mss_is_clamped() -> None:
    c = connected(mss=1)
    assert c.conn is not None and c.conn.seg_size == 48


# ---------------------------------------------------------------- data in both directions


def test_client_sends_100k_into_small_receive_window() -> None:
    config = TcpConfig(rcv_buffer=4096, auto_consume=False)
    c = connected(config=config, personality={"window": 4096}, isn=0xFFFFFFFF - 30_000)  # crosses 2**32
    conn = c.conn
    assert conn is not None
    base = c.snd_nxt
    pending = 0
    windows = []
    while c.snd_nxt - base < len(DATA):
        room = c.peer_ack + c.peer_wnd - c.snd_nxt
        assert room >= 0
        if room == 0:
            amount = pending
            replies = c.app(lambda conn, amount=amount: conn.consume(amount, c.now))
            pending = 0
            assert replies, "a window update must follow consumption"
        else:
            off = c.snd_nxt - base
            chunk = DATA[off : off + min(1460, room)]
            before = len(c.server_data)
            replies = c.send("PA", chunk)
            pending += len(c.server_data) - before
        windows += [p[TCP].window for p in replies]
        c.absorb(replies)
    assert bytes(c.server_data) == DATA
    assert max(windows) <= 4096 and 0 in windows


def test_data_beyond_window_is_cut_and_out_of_order_is_dropped() -> None:
    config = TcpConfig(rcv_buffer=4096, auto_consume=False)
    c = connected(config=config, personality={"window": 4096})
    start = c.snd_nxt
    (ack,) = c.feed(c.packet("PA", b"x" * 5000))
    assert ack[TCP].ack == start + 4096 and ack[TCP].window == 0
    assert len(c.server_data) == 4096
    # out of order: a gap before it, dropped with a duplicate ACK
    c2 = connected()
    s = c2.snd_nxt
    (dup,) = c2.feed(c2.packet("PA", b"later", seq=s + 100))
    assert dup[TCP].ack == s and c2.server_data == b""
    (ok,) = c2.feed(c2.packet("PA", b"first", seq=s))
    assert ok[TCP].ack == s + 5 and c2.server_data == b"first"
    # a retransmission overlapping delivered data delivers only the new part
    (ok,) = c2.feed(c2.packet("PA", b"firstsecond", seq=s))
    assert ok[TCP].ack == s + 11 and c2.server_data == b"firstsecond"


def server_sends(c: Client, data: bytes, drop_index: int | None = None) -> tuple[list[int], int]:
    """The server sends `data`; the client ACKs each batch. Returns (dropped seqs, timer rounds)."""
    seen = 0
    dropped: list[int] = []
    rounds = 0

    def drop(p: IP) -> bool:
        nonlocal seen
        if not bytes(p[TCP].payload):
            return False
        seen += 1
        if seen == drop_index:
            dropped.append(p[TCP].seq)
            return True
        return False

    queue = c.app(lambda conn: conn.send(data, c.now))
    start = c.rcv_nxt
    while len(c.received) < len(data):
        if not queue:
            deadline = c.host.next_deadline()
            assert deadline is not None
            rounds += 1
            queue = c.timer(max(deadline, c.now))
            assert rounds < 50
            continue
        p = queue.pop(0)
        if bytes(p[TCP].payload):  # never beyond the window the client offered
            edge = (c.rcv_nxt + c.window) & 0xFFFFFFFF
            assert (edge - p[TCP].seq - len(p[TCP].payload)) & 0xFFFFFFFF < 0x80000000
        if c.absorb([p], drop):  # the client ACKs every segment, as Linux does in quick-ack mode
            queue += c.send("A")
    assert bytes(c.received) == data and c.rcv_nxt - start == len(data)
    return dropped, rounds


def test_server_sends_100k_to_small_window_with_loss_and_rto() -> None:
    c = connected(window=2048)
    dropped, rounds = server_sends(c, DATA, drop_index=5)
    assert len(dropped) == 1 and rounds >= 1
    # the dropped segment was sent again, with the same sequence number
    resent = [p for p in c.segments_seen if p[TCP].seq == dropped[0] and bytes(p[TCP].payload)]
    assert len(resent) >= 2
    assert c.now >= 0.2  # it took a retransmission time-out


def test_fast_retransmit_with_a_large_window() -> None:
    c = connected(window=65535)
    dropped, rounds = server_sends(c, DATA, drop_index=3)
    assert dropped and rounds == 0  # three duplicate ACKs, no timer needed


def test_window_scaling_respected() -> None:
    c = connected(window=1024, wscale=2)  # 1024 << 2 = 4096 bytes
    dropped, _ = server_sends(c, DATA[:20_000])
    assert not dropped
    first = [p for p in c.segments_seen if bytes(p[TCP].payload)]
    assert first[0][TCP].seq + 4096 >= first[3][TCP].seq  # nothing beyond the first 4 KB at once


def test_timestamps_on_every_segment() -> None:
    c = connected(ts=True)
    c.now = 5.0
    replies = c.send("PA", b"hi")
    (ack,) = replies
    ts = dict(ack[TCP].options)["Timestamp"]
    assert ts[1] == 5001


# ---------------------------------------------------------------- closing


def test_active_close_server_first() -> None:
    c = connected()
    replies = c.app(lambda conn: conn.send(b"banner\r\n", c.now) + conn.close(c.now))
    assert c.conn is not None and c.conn.state is TcpState.FIN_WAIT_1
    assert any(p[TCP].flags & 0x01 for p in replies)
    c.absorb(replies)
    assert c.received == b"banner\r\n" and c.peer_fin
    assert c.send("A") == []
    assert c.conn.state is TcpState.FIN_WAIT_2
    (ack,) = c.send("FA")
    assert ack[TCP].flags == "A" and ack[TCP].ack == c.snd_nxt
    assert c.conn.state is TcpState.TIME_WAIT and closed_reasons(c) == ["closed"]
    assert of_type(c.events, PeerClosed)
    # a retransmitted FIN is re-acknowledged; a RST does not end TIME_WAIT (RFC 1337)
    (ack,) = c.feed(c.packet("FA", seq=c.snd_nxt - 1))
    assert ack[TCP].flags == "A"
    assert c.feed(c.packet("R")) == []
    assert c.conn.state is TcpState.TIME_WAIT
    c.timer(c.now + 10)
    assert c.conn.state is TcpState.CLOSED and c.host.flows == {} and c.host.context.connections == 0


def test_passive_close_client_first() -> None:
    c = connected()
    (ack,) = c.send("FA")
    assert ack[TCP].ack == c.snd_nxt and of_type(c.events, PeerClosed)
    assert c.conn is not None and c.conn.state is TcpState.CLOSE_WAIT
    replies = c.app(lambda conn: conn.send(b"bye", c.now) + conn.close(c.now))
    assert c.conn.state is TcpState.LAST_ACK
    c.absorb(replies)
    assert c.received == b"bye" and c.peer_fin
    assert c.send("A") == []
    assert c.conn.state is TcpState.CLOSED and closed_reasons(c) == ["closed"]
    assert c.host.flows == {}


def test_simultaneous_close() -> None:
    c = connected()
    replies = c.app(lambda conn: conn.close(c.now))
    (fin,) = replies
    # the client's FIN crosses ours: it does not acknowledge our FIN yet
    (ack,) = c.feed(c.packet("FA", ack=fin[TCP].seq))
    assert ack[TCP].flags == "A"
    c.snd_nxt += 1
    assert c.conn is not None and c.conn.state is TcpState.CLOSING
    c.absorb([fin])
    c.send("A")
    assert c.conn.state is TcpState.TIME_WAIT


def test_fin_is_retransmitted_then_gives_up() -> None:
    c = connected(config=TcpConfig(max_retries=2))
    (fin,) = c.app(lambda conn: conn.close(c.now))
    again = c.timer(c.host.next_deadline())
    assert again and again[0][TCP].flags & 0x01 and again[0][TCP].seq == fin[TCP].seq
    for _ in range(5):
        d = c.host.next_deadline()
        if d is None:
            break
        c.timer(d)
    assert closed_reasons(c) == ["timeout"] and c.host.flows == {}


# ---------------------------------------------------------------- resets


def test_rst_exact_sequence_resets() -> None:
    c = connected()
    assert c.feed(c.packet("R")) == []
    assert closed_reasons(c) == ["reset"] and c.host.flows == {}


def test_rst_in_window_gets_challenge_ack_and_out_of_window_is_ignored() -> None:
    c = connected()
    (challenge,) = c.feed(c.packet("R", seq=c.snd_nxt + 10))
    assert challenge[TCP].flags == "A" and challenge[TCP].ack == c.snd_nxt
    assert c.feed(c.packet("R", seq=c.snd_nxt + 10_000_000)) == []
    assert c.feed(c.packet("R", seq=c.snd_nxt - 1)) == []
    assert c.conn is not None and c.conn.state is TcpState.ESTABLISHED and closed_reasons(c) == []


def test_syn_on_established_gets_challenge_ack() -> None:
    c = connected()
    (challenge,) = c.feed(c.packet("S", seq=12345))
    assert challenge[TCP].flags == "A" and challenge[TCP].ack == c.snd_nxt
    assert c.conn is not None and c.conn.state is TcpState.ESTABLISHED


def test_abort_sends_rst_and_send_after_reset_is_dropped() -> None:
    c = connected()
    (rst,) = c.app(lambda conn: conn.abort(c.now))
    assert rst[TCP].flags == "RA" and rst[TCP].ack == c.snd_nxt
    assert closed_reasons(c) == ["aborted"] and c.host.flows == {}
    assert c.app(lambda conn: conn.send(b"late", c.now)) == []
    assert c.app(lambda conn: conn.abort(c.now)) == []


def test_send_after_close_is_a_local_error() -> None:
    c = connected()
    c.app(lambda conn: conn.close(c.now))
    with pytest.raises(LocalProtocolError):
        c.app(lambda conn: conn.send(b"x", c.now))
    assert c.app(lambda conn: conn.close(c.now)) == []  # idempotent


def test_nmap_style_half_open_scan() -> None:
    host = make_host(PORT)
    c = Client(host, PORT)
    assert len(c.send("S")) == 1
    assert c.feed(c.packet("R")) == []
    assert closed_reasons(c) == ["reset"] and host.flows == {}
    assert host.context.connections == 0 and not host.context.half_open


def test_bad_ack_in_syn_rcvd_gets_rst() -> None:
    host = make_host(PORT)
    c = Client(host, PORT)
    c.send("S")
    (rst,) = c.feed(c.packet("A", ack=999))
    assert rst[TCP].flags == "R" and rst[TCP].seq == 999
    assert next(iter(host.flows.values())).state is TcpState.SYN_RCVD


# ---------------------------------------------------------------- timers


def test_syn_rcvd_times_out_after_retries() -> None:
    host = make_host(PORT)
    c = Client(host, PORT)
    (synack,) = c.send("S")
    times = []
    while (d := host.next_deadline()) is not None:
        replies = c.timer(d)
        times.append(d)
        for p in replies:
            assert p[TCP].flags == "SA" and p[TCP].seq == synack[TCP].seq
    assert closed_reasons(c) == ["timeout"]
    assert times == [1.0, 3.0, 7.0]
    assert host.flows == {} and host.context.connections == 0 and not host.half_open


def test_retransmitted_syn_gets_the_same_syn_ack() -> None:
    host = make_host(PORT)
    c = Client(host, PORT)
    (first,) = c.send("S")
    (second,) = c.feed(c.packet("S", seq=c.isn))
    assert second[TCP].seq == first[TCP].seq and second[TCP].flags == "SA"


def test_idle_connection_is_reset() -> None:
    c = connected(config=TcpConfig(idle_timeout=60))
    replies = c.timer(61.0)
    assert [p[TCP].flags for p in replies] == ["RA"]
    assert closed_reasons(c) == ["idle"]


def test_zero_window_probes_then_abort() -> None:
    c = connected(window=0, config=TcpConfig(max_retries=3))
    assert c.app(lambda conn: conn.send(b"data", c.now)) == []
    probes = []
    for _ in range(10):
        d = c.host.next_deadline()
        if d is None:
            break
        probes += c.timer(d)
    assert probes and all(len(p[TCP].payload) == 1 for p in probes)
    assert closed_reasons(c) == ["timeout"]


def test_zero_window_reopens() -> None:
    c = connected(window=0)
    c.app(lambda conn: conn.send(b"data", c.now))
    (probe,) = c.timer(c.host.next_deadline())
    c.window = 1000
    c.absorb([probe])
    replies = c.send("A")
    c.absorb(replies)
    assert c.received == b"data"


def test_outputs_are_only_known_types() -> None:
    c = connected()
    outs = c.host.receive
    assert callable(outs)
    for e in c.events:
        assert not isinstance(e, SendPacket)
    assert of_type(c.events, DataReceived) == []

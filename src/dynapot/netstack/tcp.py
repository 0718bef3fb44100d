"""A small, correct server-side TCP, sans-IO: segments in, packets and events out.

One `TcpConnection` is one passive-open connection.  It never touches a socket or a
clock: every call takes `now` (monotonic seconds) and returns a list of outputs
(`events.SendPacket` and the TCP events of `events`).  Timers are a deadline the owner
polls: `conn.deadline` is the next time `conn.on_timer(now)` has work.

Rule 1 (from h11): every state change happens in `_fire`, through `TRANSITIONS`, one
table of ``(state, input) -> (side effects, next state)`` that `state_diagram()` draws.
The segment-processing code (RFC 9293 §3.10.7 order: RST, SYN, sequence check, ACK,
data, FIN) only decides *which inputs* happened; it never assigns `state` itself.
Remote inputs missing from the table are ignored (the peer cannot make us raise);
application misuse (`send` after `close`) raises `LocalProtocolError`.

What is implemented, and what deliberately is not:

* handshake with the personality's SYN/ACK, retransmitted with exponential back-off
  (`TcpConfig.synack_retries`), then silently dropped;
* window scaling, timestamps (TS.Recent echoed through the personality, no PAWS) and
  MSS as negotiated by the SYN and our SYN/ACK; SACK is never used (we drop
  out-of-order data, answering with a duplicate ACK, so the peer retransmits);
* a capped receive buffer: delivered bytes count against it until `consume` unless
  `TcpConfig.auto_consume`; the advertised window is what remains;
* sending in MSS-sized segments within min(peer window, cwnd); Reno-like slow start,
  fast retransmit on 3 duplicate ACKs, RTO per RFC 6298 with Karn's rule, go-back-N
  after a time-out, zero-window probes; bounded retries then abort ("timeout") --
  which also ends zero-window stalls, a classic resource-exhaustion trick;
* RFC 5961: a RST is honoured only at exactly RCV.NXT (in-window ones get a challenge
  ACK), a SYN on a synchronised connection gets a challenge ACK, ACKs far below
  SND.UNA get a challenge ACK; RFC 1337: TIME_WAIT ignores RST;
* an idle time-out (RST + "idle"), a FIN_WAIT_2 time-out and a short TIME_WAIT.

Sequence numbers are kept as unbounded ints internally (32-bit wire values are
unwrapped around the expected value), so comparisons are plain ``<``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Protocol, TypeAlias

from dynapot.netstack.events import SendPacket
from dynapot.netstack.packets import build_tcp_packet, parse_tcp_options
from dynapot.netstack.personality import Personality, TcpReply
from dynapot.netstack.types import TcpFlags, TcpSegment

__all__ = [
    "TRANSITIONS",
    "ConnectionClosed",
    "ConnectionEstablished",
    "DataReceived",
    "LocalProtocolError",
    "PeerClosed",
    "TcpConfig",
    "TcpConnection",
    "TcpEvent",
    "TcpInput",
    "TcpState",
    "state_diagram",
]

_FIN = int(TcpFlags.FIN)
_SYN = int(TcpFlags.SYN)
_RST = int(TcpFlags.RST)
_PSH = int(TcpFlags.PSH)
_ACK = int(TcpFlags.ACK)
_RST_ACK = _RST | _ACK
_FIN_ACK = _FIN | _ACK
_MASK = 0xFFFFFFFF
_HALF = 0x80000000
_MIN_MSS = 48  # like Linux's tcp_min_snd_mss: an MSS of 1 must not make us send 1-byte segments


# --------------------------------------------------------------- what a connection reports


@dataclass(slots=True)
class ConnectionEstablished:
    """The three-way handshake completed; the application may now `send` on `conn`."""

    conn: TcpConnection


@dataclass(slots=True)
class DataReceived:
    """In-order bytes from the peer."""

    conn: TcpConnection
    data: bytes


@dataclass(slots=True)
class PeerClosed:
    """The peer sent FIN: no more data will come (we may still send until we `close`)."""

    conn: TcpConnection


@dataclass(slots=True)
class ConnectionClosed:
    """The connection is over (reported once).

    `reason`: "closed" (orderly, both FINs), "reset" (peer RST), "aborted" (our `abort`),
    "timeout" (retransmissions exhausted, SYN/ACK unanswered included), "idle" (no
    traffic for the idle time-out; we sent RST), "evicted" (dropped to bound the flow table).
    `established` says whether the handshake had completed.
    """

    conn: TcpConnection
    reason: str
    established: bool


TcpEvent: TypeAlias = ConnectionEstablished | DataReceived | PeerClosed | ConnectionClosed
Output: TypeAlias = SendPacket | TcpEvent  # what a connection's methods return, in order


class _Owner(Protocol):
    def _track(self, conn: TcpConnection, old: TcpState, now: float) -> None: ...


class LocalProtocolError(Exception):
    """The application used the connection wrongly (e.g. `send` after `close`)."""


class TcpState(IntEnum):
    LISTEN = 0
    SYN_RCVD = 1
    ESTABLISHED = 2
    CLOSE_WAIT = 3
    LAST_ACK = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSING = 7
    TIME_WAIT = 8
    CLOSED = 9


class TcpInput(IntEnum):
    """What can happen to a connection; the segment processing turns segments into these."""

    RECV_SYN = 0  # a SYN for a listening port (the connection is created for it)
    RECV_ACK_OF_SYN = 1  # the handshake's final ACK
    RECV_FIN = 2  # the peer's FIN, in order
    RECV_ACK_OF_FIN = 3  # the peer acknowledged our FIN
    RECV_RST = 4  # an acceptable RST (exactly at RCV.NXT)
    APP_CLOSE = 5  # the application closes its side (FIN after buffered data)
    APP_ABORT = 6  # the application aborts (RST)
    TIMEOUT = 7  # retransmissions exhausted (SYN/ACK, data, FIN) or FIN_WAIT_2 too long
    IDLE_TIMEOUT = 8  # nothing heard for TcpConfig.idle_timeout
    TIME_WAIT_DONE = 9  # TIME_WAIT elapsed
    EVICT = 10  # the flow table needs the slot (quietly forgotten, no RST)


S = TcpState
I = TcpInput  # noqa: E741

# (state, input) -> (side effects, in order, after the state is set; next state)
TRANSITIONS: dict[tuple[TcpState, TcpInput], tuple[tuple[str, ...], TcpState]] = {
    (S.LISTEN, I.RECV_SYN): (("send_syn_ack",), S.SYN_RCVD),
    (S.SYN_RCVD, I.RECV_ACK_OF_SYN): (("established",), S.ESTABLISHED),
    (S.SYN_RCVD, I.APP_CLOSE): (("defer_close",), S.SYN_RCVD),
    (S.ESTABLISHED, I.APP_CLOSE): (("queue_fin",), S.FIN_WAIT_1),
    (S.ESTABLISHED, I.RECV_FIN): (("peer_closed",), S.CLOSE_WAIT),
    (S.CLOSE_WAIT, I.APP_CLOSE): (("queue_fin",), S.LAST_ACK),
    (S.LAST_ACK, I.RECV_ACK_OF_FIN): (("report_closed",), S.CLOSED),
    (S.FIN_WAIT_1, I.RECV_FIN): (("peer_closed",), S.CLOSING),
    (S.FIN_WAIT_1, I.RECV_ACK_OF_FIN): ((), S.FIN_WAIT_2),
    (S.FIN_WAIT_2, I.RECV_FIN): (("peer_closed", "time_wait", "report_closed"), S.TIME_WAIT),
    (S.CLOSING, I.RECV_ACK_OF_FIN): (("time_wait", "report_closed"), S.TIME_WAIT),
    (S.TIME_WAIT, I.TIME_WAIT_DONE): ((), S.CLOSED),
    (S.TIME_WAIT, I.APP_ABORT): ((), S.CLOSED),
    (S.TIME_WAIT, I.EVICT): ((), S.CLOSED),
    # RFC 1337: no (TIME_WAIT, RECV_RST) entry, so a RST cannot assassinate TIME_WAIT.
}
for _s in (S.SYN_RCVD, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSING):
    TRANSITIONS[(_s, I.RECV_RST)] = (("report_reset",), S.CLOSED)
    TRANSITIONS[(_s, I.APP_ABORT)] = (("send_rst", "report_aborted"), S.CLOSED)
    TRANSITIONS[(_s, I.TIMEOUT)] = (("report_timeout",), S.CLOSED)
    TRANSITIONS[(_s, I.EVICT)] = (("report_evicted",), S.CLOSED)
    if _s is not S.SYN_RCVD:
        TRANSITIONS[(_s, I.IDLE_TIMEOUT)] = (("send_rst", "report_idle"), S.CLOSED)
del _s

_SYNCHRONIZED = frozenset(
    (S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSING, S.TIME_WAIT)
)
_SEND_STATES = frozenset((S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK))
_DATA_STATES = frozenset((S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2))
_IDLE_STATES = frozenset((S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK))


def state_diagram() -> str:
    """The transition table as Graphviz DOT (``dot -Tsvg``), drawn from `TRANSITIONS` itself."""
    lines = ["digraph tcp {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for (state, event), (effects, nxt) in TRANSITIONS.items():
        label = event.name + (f" / {', '.join(effects)}" if effects else "")
        lines.append(f'  {state.name} -> {nxt.name} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """Tunables shared by many connections (one instance per sensor, typically)."""

    rcv_buffer: int = 65535  # receive buffer cap in bytes (at least the SYN/ACK's window)
    auto_consume: bool = True  # delivered data frees the window at once (else call `consume`)
    synack_retries: int = 2  # SYN/ACK sent at 0, 1, 3 s; given up at 7 s
    max_retries: int = 6  # data/FIN retransmissions before "timeout" (~1 min with back-off)
    rto_initial: float = 1.0
    rto_min: float = 0.2
    rto_max: float = 30.0
    idle_timeout: float = 300.0
    fin_wait2_timeout: float = 30.0
    time_wait: float = 2.0  # short: a honeypot must not hold thousands of dead flows
    initial_cwnd: int = 10  # segments (RFC 6928)
    default_mss: int = 536  # when the SYN has no MSS option
    max_mss: int = 1460  # Ethernet MTU 1500
    # honeyd's `tarpit`: a window of TARPIT_WINDOW bytes, and one byte a segment, one segment in
    # flight, so that a worm or a scanner on the port crawls (the SYN/ACK says so: `tarpit_reply`).
    tarpit: bool = False


TARPIT_WINDOW = 5  # honeyd's tarpit window
TARPIT_MSS = 64  # the MSS honeyd's tarpit announces


DEFAULT_CONFIG = TcpConfig()


def reply_packet(reply: TcpReply, src: int, dst: int, sport: int, dport: int, seq: int, ack: int) -> bytes:
    """The IPv4 + TCP packet a personality's reply describes, between the given endpoints."""
    return build_tcp_packet(
        src, dst, sport, dport, seq, ack, reply.flags, reply.window, reply.ttl, reply.ip_id, reply.df,
        reply.options, reply.payload, reply.urgent, reply.reserved,
    )  # fmt: skip


class TcpConnection:
    """One server-side connection, created by the host stack for an accepted SYN.

    Application API: `send(data, now)`, `close(now)`, `abort(now)`, `consume(n, now)`;
    owner API: `open(...)`, `receive_segment(seg, now)`, `on_timer(now)`, `deadline`.
    """

    __slots__ = (
        "_close_deferred",
        "_reported",
        "buf",
        "buf_seq",
        "config",
        "cwnd",
        "dupacks",
        "fin_queued",
        "ip_id",
        "irs",
        "iss",
        "last_rx",
        "local_ip",
        "local_port",
        "max_snd_wnd",
        "owner",
        "peer_ip",
        "peer_port",
        "personality",
        "rcv_cap",
        "rcv_nxt",
        "rcv_unconsumed",
        "rcv_wscale",
        "recover",
        "retries",
        "rto",
        "rto_at",
        "rtt_seq",
        "rtt_time",
        "rttvar",
        "sched",
        "seg_size",
        "snd_max",
        "snd_nxt",
        "snd_una",
        "snd_wl1",
        "snd_wl2",
        "snd_wnd",
        "snd_wscale",
        "srtt",
        "ssthresh",
        "state",
        "syn",
        "ts_ok",
        "ts_recent",
        "tw_at",
        "was_established",
        "window_sent",
    )

    def __init__(
        self,
        local_ip: int,
        local_port: int,
        peer_ip: int,
        peer_port: int,
        personality: Personality,
        config: TcpConfig = DEFAULT_CONFIG,
    ) -> None:
        self.local_ip = local_ip
        self.local_port = local_port
        self.peer_ip = peer_ip
        self.peer_port = peer_port
        self.personality = personality
        self.config = config
        self.state = S.LISTEN
        self.sched: float | None = None  # owned by the host's timer queue
        self.was_established = False
        self._reported = False
        self._close_deferred = False
        self.fin_queued = False
        self.buf = bytearray()
        self.rto_at: float | None = None
        self.tw_at = 0.0
        self.syn: TcpSegment | None = None
        self.rtt_seq: int | None = None
        self.rtt_time = 0.0
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = config.rto_initial
        self.retries = 0
        self.dupacks = 0
        self.recover = 0  # NewReno: SND.MAX when fast retransmit began, 0 outside recovery
        self.rcv_unconsumed = 0
        self.window_sent = 0
        # The connection's own IP ID counter where the personality numbers per connection, else -1.
        self.ip_id = random.getrandbits(16) if personality.connection_ip_ids else -1
        self.owner: _Owner | None = None  # told of changes made through the application API

    def __repr__(self) -> str:
        return (
            f"<TcpConnection {self.local_ip:#x}:{self.local_port} <- {self.peer_ip:#x}:{self.peer_port}"
            f" {self.state.name}>"
        )

    # ------------------------------------------------------------------ owner API

    def open(self, syn: TcpSegment, isn: int, reply: TcpReply, now: float) -> list[Output]:
        """Accept `syn` with our ISN and the personality's SYN/ACK `reply`; returns the SYN/ACK."""
        cfg = self.config
        self.syn = syn
        self.irs = syn.seq
        self.rcv_nxt = syn.seq + 1
        self.iss = isn
        self.snd_una = isn
        self.snd_nxt = self.snd_max = self.buf_seq = isn + 1
        peer = syn.options
        ours = parse_tcp_options(reply.options)
        if peer.wscale is not None and ours.wscale is not None:
            self.snd_wscale = min(peer.wscale, 14)
            self.rcv_wscale = min(ours.wscale, 14)
        else:
            self.snd_wscale = self.rcv_wscale = 0
        self.ts_ok = peer.timestamp is not None and ours.timestamp is not None
        self.ts_recent = peer.timestamp[0] if peer.timestamp is not None else 0
        mss = peer.mss or cfg.default_mss
        mss = min(max(mss, _MIN_MSS), cfg.max_mss)
        self.seg_size = mss - 12 if self.ts_ok else mss
        self.snd_wnd = self.max_snd_wnd = syn.window  # a SYN's window is never scaled
        self.snd_wl1 = syn.seq
        self.snd_wl2 = isn
        self.rcv_cap = max(cfg.rcv_buffer, reply.window)
        self.cwnd = cfg.initial_cwnd * self.seg_size
        if cfg.tarpit:
            self.rcv_cap, self.seg_size, self.cwnd = TARPIT_WINDOW, 1, 1
        self.ssthresh = 1 << 30
        self.last_rx = now
        out: list[Output] = []
        self._fire(I.RECV_SYN, now, out, reply)
        return out

    @property
    def deadline(self) -> float | None:
        """When `on_timer` next has work (None: never, e.g. CLOSED)."""
        state = self.state
        if state is S.TIME_WAIT:
            return self.tw_at
        if state is S.CLOSED or state is S.LISTEN:
            return None
        if state is S.FIN_WAIT_2:
            other = self.last_rx + self.config.fin_wait2_timeout
        elif state is S.SYN_RCVD:
            return self.rto_at
        else:
            other = self.last_rx + self.config.idle_timeout
        rto_at = self.rto_at
        return other if rto_at is None or other < rto_at else rto_at

    @property
    def closed(self) -> bool:
        return self.state is S.CLOSED

    @property
    def send_buffered(self) -> int:
        """Bytes given to `send` and not yet acknowledged by the peer (for back-pressure)."""
        return len(self.buf)

    def on_timer(self, now: float) -> list[Output]:
        """Run whatever timers are due at `now`: retransmission, idle, FIN_WAIT_2, TIME_WAIT."""
        out: list[Output] = []
        state = self.state
        if state is S.CLOSED or state is S.LISTEN:
            return out
        if state is S.TIME_WAIT:
            if now >= self.tw_at:
                self._fire(I.TIME_WAIT_DONE, now, out)
            return out
        if self.rto_at is not None and now >= self.rto_at:
            self._on_rto(now, out)
            state = self.state
        if state is S.FIN_WAIT_2:
            if now >= self.last_rx + self.config.fin_wait2_timeout:
                self._fire(I.TIMEOUT, now, out)
        elif state in _IDLE_STATES and now >= self.last_rx + self.config.idle_timeout:
            self._fire(I.IDLE_TIMEOUT, now, out)
        return out

    def evict(self, now: float) -> list[Output]:
        """Forget the connection quietly (no RST) to free its slot; reports "evicted"."""
        out: list[Output] = []
        self._fire(I.EVICT, now, out)
        return out

    # ------------------------------------------------------------------ application API

    def send(self, data: bytes, now: float) -> list[Output]:
        """Queue `data` and return the segments the windows allow now.

        Raises `LocalProtocolError` after our own `close`/`abort`; on a connection the
        peer ended (reset, time-out) the data is dropped and [] returned, as an asyncio
        transport does after connection_lost.
        """
        if self.fin_queued or self._close_deferred:
            raise LocalProtocolError("send() after close()")
        out: list[Output] = []
        state = self.state
        if state is not S.SYN_RCVD and state not in _SEND_STATES:
            return out
        if data:
            self.buf += data
            self._output(now, out, False)
            self._tell_owner(state, now)
        return out

    def close(self, now: float) -> list[Output]:
        """Send FIN after the buffered data (idempotent)."""
        out: list[Output] = []
        if self.fin_queued or self._close_deferred:
            return out
        old = self.state
        if self._fire(I.APP_CLOSE, now, out):
            self._output(now, out, False)
            self._tell_owner(old, now)
        return out

    def abort(self, now: float) -> list[Output]:
        """Reset the connection (RST to the peer unless it is only in TIME_WAIT)."""
        out: list[Output] = []
        old = self.state
        if self._fire(I.APP_ABORT, now, out):
            self._tell_owner(old, now)
        return out

    def consume(self, nbytes: int, now: float) -> list[Output]:
        """The application took `nbytes` of delivered data: reopen the window (maybe a window update)."""
        out: list[Output] = []
        if self.state is S.CLOSED or nbytes <= 0:
            return out
        before = self.window_sent
        self.rcv_unconsumed = max(0, self.rcv_unconsumed - nbytes)
        space = self.rcv_cap - self.rcv_unconsumed
        # Window update only when it matters (SWS avoidance, RFC 9293 §3.8.6.2.2).
        if (
            before < self.seg_size
            and space >= min(self.seg_size, self.rcv_cap // 2)
            and self.state in _SYNCHRONIZED
            and self.state is not S.TIME_WAIT
        ):
            self._send_ack(now, out)
            self._tell_owner(self.state, now)
        return out

    def _tell_owner(self, old: TcpState, now: float) -> None:
        """The application changed us outside the owner's calls: let it re-file state and timer."""
        if self.owner is not None:
            self.owner._track(self, old, now)

    # ------------------------------------------------------------------ segment processing

    def receive_segment(self, seg: TcpSegment, now: float) -> list[Output]:
        """Process one segment of this connection (addresses and checksum already checked).

        The steps of RFC 9293 §3.10.7.4: RST, SYN, sequence check, ACK, data, FIN (RST and
        SYN first: each ends the segment and makes its own RFC 5961 window check).  The
        rare branches are methods of their own; the in-order data and ACK path stays in
        this body, because on CPython every call costs on the per-segment hot path.
        """
        out: list[Output] = []
        state = self.state
        if state is S.CLOSED or state is S.LISTEN:
            return out
        flags = seg.flags
        rcv_nxt = self.rcv_nxt
        seq = rcv_nxt + (((seg.seq - rcv_nxt + _HALF) & _MASK) - _HALF)

        # 1. RST and 2. SYN: rare, and the segment ends there.
        if flags & _RST:
            self._on_rst(seq, state, now, out)
            return out
        if flags & _SYN:
            self._on_syn(seq, flags, state, now, out)
            return out

        # 3. Sequence acceptability.
        payload = seg.payload
        plen = len(payload)
        seg_len = plen + 1 if flags & _FIN else plen
        space = self.rcv_cap - self.rcv_unconsumed
        if seg_len == 0:
            acceptable = seq == rcv_nxt if space <= 0 else rcv_nxt <= seq < rcv_nxt + space
        else:
            end = seq + seg_len - 1
            acceptable = space > 0 and (rcv_nxt <= seq < rcv_nxt + space or rcv_nxt <= end < rcv_nxt + space)
        fin_ok = True
        if not acceptable:
            if not self._on_unacceptable(seq, flags, state, now, out):
                return out
            payload = b""  # a zero window: take the ACK, drop text and FIN
            plen = 0
            fin_ok = False
        elif state is S.TIME_WAIT:
            return out
        if not flags & _ACK:
            return out  # RFC 9293: a segment without ACK is dropped here
        self.last_rx = now
        if self.ts_ok and seq <= rcv_nxt:  # TS.Recent (RFC 7323 §4.3), echoed in our next segments
            ts = seg.options.timestamp
            if ts is not None:
                self.ts_recent = ts[0]

        # 4. ACK.
        snd_una = self.snd_una
        ack = snd_una + (((seg.ack - snd_una + _HALF) & _MASK) - _HALF)
        if state is S.SYN_RCVD:
            if not self._on_handshake_ack(seg, seq, ack, now, out):
                return out
        elif ack > self.snd_max or ack < snd_una - self.max_snd_wnd:
            # It acknowledges what we never sent, or far below SND.UNA (RFC 5961 §5 challenge ACK).
            self._send_ack(now, out)
            return out
        else:
            wnd = seg.window << self.snd_wscale
            if ack > snd_una:
                self._ack_advance(ack, now, out)
                if self.state is S.CLOSED:
                    return out
            elif ack == snd_una and seg_len == 0 and snd_una < self.snd_max:
                self._on_duplicate_ack(wnd, now, out)
            if self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack):
                self.snd_wnd = wnd
                if wnd > self.max_snd_wnd:
                    self.max_snd_wnd = wnd
                self.snd_wl1 = seq
                self.snd_wl2 = ack
        state = self.state

        # 5. Data, in order only (out-of-order data is dropped: the duplicate ACK asks again).
        need_ack = plen or flags & _FIN
        if need_ack:
            if seq > self.rcv_nxt:
                fin_ok = False
            elif plen and state in _DATA_STATES:
                skip = self.rcv_nxt - seq
                if skip:
                    payload = payload[skip:]
                if len(payload) > space:
                    payload = payload[:space]
                    fin_ok = False
                if payload:
                    self.rcv_nxt += len(payload)
                    if not self.config.auto_consume:
                        self.rcv_unconsumed += len(payload)
                    out.append(DataReceived(self, payload))

        # 6. FIN, when everything before it has arrived.
        if fin_ok and flags & _FIN and state in _DATA_STATES and seq + plen == self.rcv_nxt:
            self.rcv_nxt += 1
            self._fire(I.RECV_FIN, now, out)

        if not self._output(now, out, False) and need_ack:
            self._emit(_ACK, self.snd_nxt, b"", now, out)  # `_send_ack` written out: every data segment
        return out

    def _on_rst(self, seq: int, state: TcpState, now: float, out: list[Output]) -> None:
        """Step 1 (RFC 5961 §3): a RST exactly at RCV.NXT resets; elsewhere in the window, a challenge ACK."""
        rcv_nxt = self.rcv_nxt
        if seq == rcv_nxt:
            self._fire(I.RECV_RST, now, out)
        elif (
            rcv_nxt < seq < rcv_nxt + max(self.rcv_cap - self.rcv_unconsumed, 1) and state is not S.TIME_WAIT
        ):
            self._send_ack(now, out)

    def _on_syn(self, seq: int, flags: int, state: TcpState, now: float, out: list[Output]) -> None:
        """Step 2: a retransmitted SYN gets our SYN/ACK again; any other SYN a challenge ACK (RFC 5961 §4)."""
        if state is not S.SYN_RCVD:
            self._send_ack(now, out)
        elif seq == self.irs and not flags & _ACK:
            self._send_syn_ack(now, out)

    def _on_unacceptable(self, seq: int, flags: int, state: TcpState, now: float, out: list[Output]) -> bool:
        """Step 3 failed: the segment is outside the receive window, and is answered with an ACK.

        True when its ACK must still be processed: it sits at RCV.NXT but our window is
        zero, so RFC 9293 takes the ACK and drops only the text and FIN.
        """
        if state is S.TIME_WAIT:
            if flags & _FIN:  # the peer lost our last ACK: re-ACK, restart 2MSL
                self.tw_at = now + self.config.time_wait
                self._send_ack(now, out)
            return False
        if seq != self.rcv_nxt or not flags & _ACK:
            self._send_ack(now, out)
            return False
        return True

    def _on_duplicate_ack(self, wnd: int, now: float, out: list[Output]) -> None:
        """Step 4: a bare ACK that acknowledges nothing new while data is outstanding.

        It counts as a duplicate ACK only if it leaves the window as it was and our
        retransmission timer runs (RFC 5681); the third starts a fast retransmit.
        """
        if wnd == self.snd_wnd and self.rto_at is not None:
            self.dupacks += 1
            if self.dupacks == 3 and not self.recover:
                self._fast_retransmit(now, out)

    def _on_handshake_ack(self, seg: TcpSegment, seq: int, ack: int, now: float, out: list[Output]) -> bool:
        """Step 4 in SYN_RCVD: the ACK of our SYN completes the handshake; True while the connection lives on.

        Any other ACK gets <SEQ=SEG.ACK><CTL=RST> (RFC 9293).
        """
        if not self.snd_una < ack <= self.snd_max:
            self._send_rst_at(seg.ack, now, out)
            return False
        self._ack_advance(ack, now, out)
        self.snd_wnd = seg.window << self.snd_wscale
        self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
        self.snd_wl1 = seq
        self.snd_wl2 = ack
        self._fire(I.RECV_ACK_OF_SYN, now, out)
        return self.state is not S.CLOSED

    # ------------------------------------------------------------------ internals

    def _fire(self, event: TcpInput, now: float, out: list[Output], arg: object = None) -> bool:
        entry = TRANSITIONS.get((self.state, event))
        if entry is None:
            return False
        effects, nxt = entry
        self.state = nxt
        for name in effects:
            _EFFECTS[name](self, now, out, arg)
        if nxt is S.CLOSED:
            self.rto_at = None
            self.buf = bytearray()
            self.syn = None
        return True

    def _ack_advance(self, ack: int, now: float, out: list[Output]) -> None:
        buf_end = self.buf_seq + len(self.buf)
        n = min(ack, buf_end) - self.buf_seq
        if n > 0:
            del self.buf[:n]
            self.buf_seq += n
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        self.dupacks = 0
        self.retries = 0
        if self.rtt_seq is not None and ack >= self.rtt_seq:
            self._rtt_sample(now - self.rtt_time)
            self.rtt_seq = None
        if n > 0 and not self.recover and not self.config.tarpit:  # a tarpit never speeds up
            seg_size = self.seg_size
            if self.cwnd < self.ssthresh:
                self.cwnd += min(n, seg_size)  # slow start
            elif self.cwnd < 1 << 24:
                self.cwnd += max(1, seg_size * seg_size // self.cwnd)  # congestion avoidance
        self.rto_at = None if ack >= self.snd_max else now + self.rto
        if self.recover:
            if ack < self.recover:
                # NewReno partial ACK (RFC 6582): the next hole is lost too, resend it now
                self._retransmit_head(now, out)
            else:
                self.recover = 0
                self.cwnd = self.ssthresh
        if self.fin_queued and ack == buf_end + 1 and ack == self.snd_max:
            self._fire(I.RECV_ACK_OF_FIN, now, out)

    def _rtt_sample(self, r: float) -> None:
        # RFC 6298 §2.
        if self.srtt is None:
            self.srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        cfg = self.config
        self.rto = min(max(self.srtt + max(0.001, 4 * self.rttvar), cfg.rto_min), cfg.rto_max)

    def _on_rto(self, now: float, out: list[Output]) -> None:
        state = self.state
        if (
            state is not S.SYN_RCVD
            and self.snd_max == self.snd_una
            and self.snd_nxt >= self.buf_seq + len(self.buf)
            and not (self.fin_queued and self.snd_max == self.buf_seq + len(self.buf))
        ):
            self.rto_at = None  # nothing outstanding or waiting: a stale timer
            self.retries = 0
            return
        limit = self.config.synack_retries if state is S.SYN_RCVD else self.config.max_retries
        if self.retries >= limit:
            self._fire(I.TIMEOUT, now, out)
            return
        self.retries += 1
        self.rto = min(self.rto * 2, self.config.rto_max)
        self.rtt_seq = None  # Karn: no samples across a retransmission
        if state is S.SYN_RCVD:
            self.rto_at = now + self.rto
            self._send_syn_ack(now, out)
            return
        self.rto_at = None
        if self.snd_max > self.snd_una:
            self.ssthresh = max((self.snd_max - self.snd_una) // 2, 2 * self.seg_size)
            self.cwnd = self.seg_size
            self.dupacks = 0
            self.recover = 0
            self.snd_nxt = self.snd_una  # go-back-N: we keep no SACK scoreboard
        self._output(now, out, True)
        if self.rto_at is None:
            self.rto_at = now + self.rto

    def _fast_retransmit(self, now: float, out: list[Output]) -> None:
        self.ssthresh = max((self.snd_max - self.snd_una) // 2, 2 * self.seg_size)
        self.cwnd = self.ssthresh
        self.recover = self.snd_max
        self._retransmit_head(now, out)

    def _retransmit_head(self, now: float, out: list[Output]) -> None:
        self.rtt_seq = None
        buf_end = self.buf_seq + len(self.buf)
        una = self.snd_una
        if una < buf_end:
            n = min(self.seg_size, buf_end - una)
            off = una - self.buf_seq
            flags = _ACK | _PSH if una + n == buf_end else _ACK
            if self.fin_queued and una + n == buf_end and self.snd_max > buf_end:
                flags |= _FIN
            self._emit(flags, una, bytes(self.buf[off : off + n]), now, out)
        elif self.fin_queued and una == buf_end:
            self._emit(_FIN_ACK, una, b"", now, out)

    def _output(self, now: float, out: list[Output], force: bool) -> bool:
        """Send what the windows allow from SND.NXT; `force` sends one segment even into a closed window."""
        if self.state not in _SEND_STATES:
            return False
        buf = self.buf
        buf_seq = self.buf_seq
        buf_end = buf_seq + len(buf)
        wnd = self.snd_wnd if self.snd_wnd < self.cwnd else self.cwnd
        edge = self.snd_una + wnd
        seg_size = self.seg_size
        fin_queued = self.fin_queued
        sent = False
        while True:
            nxt = self.snd_nxt
            if nxt < buf_end:
                room = edge - nxt
                if room <= 0:
                    if not force:
                        break
                    room = 1
                n = min(seg_size, buf_end - nxt, room)
                end = nxt + n
                if n < seg_size and end < buf_end and self.snd_max > self.snd_una and not force:
                    break  # sender-side SWS avoidance: wait for room for a full segment
                flags = _ACK
                if end == buf_end:
                    flags |= _PSH
                    if fin_queued:
                        flags |= _FIN
                off = nxt - buf_seq
                self._emit(flags, nxt, bytes(buf[off : off + n]), now, out)
                self.snd_nxt = end + 1 if flags & _FIN else end
                if self.rtt_seq is None and end >= self.snd_max:
                    self.rtt_seq = end
                    self.rtt_time = now
            elif nxt == buf_end and fin_queued:
                self._emit(_FIN_ACK, nxt, b"", now, out)
                self.snd_nxt = nxt + 1
            else:
                break
            sent = True
            force = False
        if self.snd_nxt > self.snd_max:
            self.snd_max = self.snd_nxt
        if self.rto_at is None and (sent or buf_end > self.snd_nxt):
            # retransmission timer, or the persist timer for a zero window
            self.rto_at = now + self.rto
        return sent

    def _window_field(self, shape_window: int) -> int:
        w = (self.rcv_cap - self.rcv_unconsumed) >> self.rcv_wscale
        if w > 0xFFFF:
            w = 0xFFFF
        if shape_window and shape_window < w:
            w = shape_window
        return w

    def _emit(self, flags: int, seq: int, payload: bytes, now: float, out: list[Output]) -> None:
        p = self.personality
        shape = p.segment_shape(now, self.ts_recent if self.ts_ok else None)
        ip_id = shape.ip_id
        if self.ip_id >= 0:
            ip_id = self.ip_id
            self.ip_id = (ip_id + 1) & 0xFFFF
        w = self._window_field(shape.window)
        self.window_sent = w << self.rcv_wscale
        packet = build_tcp_packet(
            self.local_ip,
            self.peer_ip,
            self.local_port,
            self.peer_port,
            seq,
            self.rcv_nxt,
            flags,
            w,
            p.ttl,
            ip_id,
            shape.df,
            shape.options,
            payload,
        )
        out.append(SendPacket(self.local_ip, self.peer_ip, packet))

    def _send_ack(self, now: float, out: list[Output]) -> None:
        """A bare ACK of RCV.NXT: window updates, challenge ACKs, answers to unacceptable segments."""
        self._emit(_ACK, self.snd_nxt, b"", now, out)

    def _send_rst_at(self, seq: int, now: float, out: list[Output]) -> None:
        """A bare RST at `seq` (no ACK, no window, no options) with the personality's IP fields."""
        p = self.personality
        shape = p.segment_shape(now, None)
        self._send_reply(TcpReply(_RST, 0, b"", seq, 0, p.ttl, shape.df, shape.ip_id), out)

    def _send_syn_ack(self, now: float, out: list[Output], reply: TcpReply | None = None) -> None:
        if reply is None:
            syn = self.syn
            if syn is None:
                return
            reply = self.personality.syn_ack(syn, self.iss, now)
            if reply is None:
                return
        self._send_reply(reply, out)

    def _send_reply(self, reply: TcpReply, out: list[Output]) -> None:
        """Send a segment the personality shaped; an unset seq/ack is our ISN/RCV.NXT (the SYN/ACK's)."""
        seq = self.iss if reply.seq is None else reply.seq
        ack = self.rcv_nxt if reply.ack is None else reply.ack
        packet = reply_packet(reply, self.local_ip, self.peer_ip, self.local_port, self.peer_port, seq, ack)
        out.append(SendPacket(self.local_ip, self.peer_ip, packet))

    def _report(self, reason: str, out: list[Output]) -> None:
        if not self._reported:
            self._reported = True
            out.append(ConnectionClosed(self, reason, self.was_established))

    # side effects named in TRANSITIONS: (self, now, out, arg); the "report_<reason>" ones are `_reporter`s

    def _fx_send_syn_ack(self, now: float, out: list[Output], arg: object) -> None:
        self.rto_at = now + self.rto
        self.rtt_seq = self.iss + 1
        self.rtt_time = now
        self._send_syn_ack(now, out, arg if isinstance(arg, TcpReply) else None)

    def _fx_established(self, now: float, out: list[Output], arg: object) -> None:
        self.was_established = True
        self.syn = None
        out.append(ConnectionEstablished(self))
        if self._close_deferred:
            self._close_deferred = False
            self._fire(I.APP_CLOSE, now, out)

    def _fx_defer_close(self, now: float, out: list[Output], arg: object) -> None:
        self._close_deferred = True

    def _fx_queue_fin(self, now: float, out: list[Output], arg: object) -> None:
        self.fin_queued = True

    def _fx_peer_closed(self, now: float, out: list[Output], arg: object) -> None:
        out.append(PeerClosed(self))

    def _fx_time_wait(self, now: float, out: list[Output], arg: object) -> None:
        self.tw_at = now + self.config.time_wait
        self.rto_at = None
        self.buf = bytearray()

    def _fx_send_rst(self, now: float, out: list[Output], arg: object) -> None:
        self._emit(_RST_ACK, self.snd_max, b"", now, out)


_Effect: TypeAlias = Callable[[TcpConnection, float, list[Output], object], None]


def _reporter(reason: str) -> _Effect:
    """The side effect "report_<reason>": `ConnectionClosed` with that reason (once per connection)."""

    def report(conn: TcpConnection, now: float, out: list[Output], arg: object) -> None:
        conn._report(reason, out)

    return report


_EFFECTS: dict[str, _Effect] = {
    name[4:]: getattr(TcpConnection, name) for name in dir(TcpConnection) if name.startswith("_fx_")
}
_EFFECTS.update(
    (fx, _reporter(fx.removeprefix("report_")))
    for effects, _ in TRANSITIONS.values()
    for fx in effects
    if fx.startswith("report_")
)
assert all(fx in _EFFECTS for effects, _ in TRANSITIONS.values() for fx in effects)


def tarpit_reply(reply: TcpReply) -> TcpReply:
    """A SYN/ACK as honeyd's tarpit sends it: window 5, MSS 64, and no window scaling (its window
    is meant to be read as 5 bytes; the option's place is kept with NOPs)."""
    raw = bytearray(reply.options)
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2:
            break
        length = raw[i + 1]
        if kind == 2 and length == 4 and i + 4 <= len(raw):
            raw[i + 2 : i + 4] = TARPIT_MSS.to_bytes(2, "big")
        elif kind == 3 and length == 3 and i + 3 <= len(raw):
            raw[i : i + 3] = b"\x01\x01\x01"
        i += length
    return replace(reply, window=TARPIT_WINDOW, options=bytes(raw))

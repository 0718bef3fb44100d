"""Bounded memory and fairness in the sensor, without a network: frames in, windows and RSTs out.

A small TCP peer drives the sensor through `handle_frame` (the raw socket is a list, as in
test_sensor_runtime) and reads the window the sensor advertises: a service that does not read
must close it, as a kernel does, and nothing beyond it may be taken.
"""

from __future__ import annotations

import asyncio

from test_sensor_apply import config_of
from test_sensor_runtime import ATTACKER_IP, VIP, Events, FakeRaw, ip_frame

from dynapot.config import SensorSettings
from dynapot.netstack.packets import build_tcp_packet, parse_ipv4, parse_tcp
from dynapot.sensor.runtime import Sensor

CONFIG = """
create web
set web personality "Linux 5.4"
add web tcp port 22 "ssh"
add web tcp port 23 "telnet"
add web tcp port 80 open
bind 198.18.0.100 web
"""
MSS = 1400
ISN = 1000
SYN, RST, PSH, ACK = 0x02, 0x04, 0x08, 0x10


async def deaf(reader, writer, info, report):
    """A service that never reads (a hung emulator, or asyncssh once it hung up)."""
    await asyncio.sleep(3600)


async def closer(reader, writer, info, report):
    """A service that says one line and hangs up."""
    writer.write(b"bye\r\n")
    writer.close()


class Peer:
    """One TCP connection from a source to the virtual host, by hand."""

    def __init__(self, sensor: Sensor, raw: FakeRaw, dport: int, sport: int, src: int = ATTACKER_IP) -> None:
        self.sensor, self.raw, self.dport, self.sport, self.src = sensor, raw, dport, sport, src
        self.seq = ISN
        self.rcv_nxt = 0  # the sensor's next sequence number
        self.acked = ISN  # the highest of our sequence numbers the sensor acknowledged
        self.window = 0
        self.reset = False
        self.received = bytearray()

    def send(self, flags: int, payload: bytes = b"") -> None:
        options = b"\x02\x04\x05\x78" if flags & SYN else b""
        packet = build_tcp_packet(
            self.src, VIP, self.sport, self.dport, self.seq, self.rcv_nxt, flags, 64240, 64, 1, True,
            options, payload,
        )  # fmt: skip
        self.sensor.handle_frame(ip_frame(self.sensor, packet))
        self.seq += len(payload) + (1 if flags & SYN else 0)
        self.read()

    def read(self) -> None:
        rest = []
        for frame in self.raw.sent:
            seg = parse_tcp(parse_ipv4(frame[14:]))
            if seg.dport != self.sport or seg.ip.dst != self.src:
                rest.append(frame)
                continue
            if seg.flags & RST:
                self.reset = True
                continue
            if seg.flags & SYN:
                self.rcv_nxt = seg.seq + 1
            elif seg.payload and seg.seq == self.rcv_nxt:
                self.received += seg.payload
                self.rcv_nxt += len(seg.payload)
            if seg.flags & ACK:
                self.acked = max(self.acked, seg.ack)
                self.window = seg.window  # our SYN offers no window scaling: none is used
        self.raw.sent[:] = rest

    def connect(self) -> None:
        self.send(SYN)
        self.send(ACK)

    def stream(self, total: int) -> int:
        """Send up to `total` bytes as fast as the window allows; the bytes the sensor took."""
        start = self.acked
        while self.seq - ISN - 1 < total:
            room = self.acked + self.window - self.seq
            if room <= 0:
                self.send(ACK | PSH, b"z")  # a zero-window probe: one byte beyond the window
                if self.acked + self.window - self.seq < 0:
                    self.seq -= 1  # not taken: the probe is sent again later, as TCP does
                    break
                continue
            self.send(ACK | PSH, b"x" * min(MSS, room, total - (self.seq - ISN - 1)))
        return self.acked - start


def make_sensor(catalog, **limits):
    raw = FakeRaw()
    sensor = Sensor(
        config_of(CONFIG, catalog),
        raw,
        Events(),
        services={"ssh": deaf, "telnet": closer},  # stand-ins under the names the configuration uses
        limits=SensorSettings(**limits),
    )
    return sensor, raw


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_service_that_does_not_read_closes_the_window(catalog):
    async def main():
        sensor, raw = make_sensor(catalog)
        sensor._loop = asyncio.get_running_loop()
        peer = Peer(sensor, raw, 22, 40000)
        peer.connect()
        await settle()
        taken = peer.stream(10 << 20)
        # What a deaf service may cost: its reader's buffer (paused at 128 KiB) and a window more.
        assert 0 < taken <= 256 << 10
        assert peer.window == 0 and not peer.reset
        before = peer.acked
        peer.send(ACK | PSH, b"more")  # beyond the window: not taken, but answered
        assert peer.acked == before and peer.window == 0
        (flow,) = sensor.flows.flows.values()
        assert flow.transport is not None and flow.held > 0  # a service's flow, held back

    asyncio.run(main())


def test_a_port_with_no_service_keeps_its_limit_and_then_closes_the_window(catalog):
    async def main():
        sensor, raw = make_sensor(catalog)
        sensor._loop = asyncio.get_running_loop()
        peer = Peer(sensor, raw, 80, 40001)
        peer.connect()
        taken = peer.stream(1 << 20)
        assert 64 << 10 <= taken <= 160 << 10 and peer.window == 0
        assert sensor.flows.recorded_total == 64 << 10
        assert sensor.counters["tcp: bytes not recorded (record limit)"] > 0

    asyncio.run(main())


def test_all_ports_with_no_service_share_one_record_budget(catalog):
    async def main():
        sensor, raw = make_sensor(catalog, record_budget=1 << 20)
        sensor._loop = asyncio.get_running_loop()
        for n in range(24):  # 24 x 64 KiB would be 1.5 MiB
            peer = Peer(sensor, raw, 80, 41000 + n)
            peer.connect()
            peer.stream(128 << 10)
        assert sensor.flows.recorded_total == 1 << 20

    asyncio.run(main())


def test_data_after_the_service_hung_up_is_reset(catalog):
    async def main():
        sensor, raw = make_sensor(catalog)
        sensor._loop = asyncio.get_running_loop()
        peer = Peer(sensor, raw, 23, 40002)
        peer.connect()
        await settle()
        peer.read()
        assert bytes(peer.received) == b"bye\r\n" and not peer.reset
        peer.send(ACK | PSH, b"still talking")
        assert peer.reset
        assert sensor.counters["tcp: data after the service closed (reset)"] == 1

    asyncio.run(main())


def test_one_source_gets_a_bounded_number_of_sessions_and_others_still_get_theirs(catalog):
    async def main():
        sensor, raw = make_sensor(catalog, service_sessions_per_source=3, service_sessions=5)
        sensor._loop = asyncio.get_running_loop()
        mine = [Peer(sensor, raw, 22, 42000 + n) for n in range(6)]
        for peer in mine:
            peer.connect()
            await settle()
        assert sensor.flows.sessions_by_source[ATTACKER_IP] == 3
        assert sensor.counters["tcp: session refused (session limit)"] == 3
        other = Peer(sensor, raw, 22, 42000, src=ATTACKER_IP + 1)
        other.connect()
        await settle()
        assert sensor.flows.sessions == 4 and sensor.flows.sessions_by_source[ATTACKER_IP + 1] == 1

    asyncio.run(main())


def test_a_source_above_its_rate_is_held_back_and_released_later(catalog):
    async def main():
        sensor, raw = make_sensor(catalog, bytes_per_second_per_source=16 << 10, record_budget=1 << 20)
        sensor._loop = asyncio.get_running_loop()
        peer = Peer(sensor, raw, 22, 40003)
        peer.connect()
        await settle()
        assert peer.stream(48 << 10) == 48 << 10  # taken into the window ...
        held = sum(flow.held for flow in sensor.flows.flows.values())
        assert 31 << 10 <= held <= 33 << 10 and sensor.flows.throttled  # ... but one second's budget consumed
        closed_to = peer.window
        await asyncio.sleep(0.3)  # the budget refills: held bytes are consumed, the window reopens
        peer.send(ACK | PSH, b"y" * 100)
        assert peer.window > closed_to + 3000

    asyncio.run(main())

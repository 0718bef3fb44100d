"""What the sensor stores stays bounded: noise folded per source, target and window; the budgets.

Short versions of bench/abuse_disk.py's checks: a flood of datagrams to a closed port, of
connection attempts to a closed port and of pings each make two rows (the first at once, the
repeats when the window ends) instead of one each; a sweep is still one row per target, so
that correlation still sees the scan; past the database budget payloads and noise are only
counted, and the budget is announced once.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from test_sensor_runtime import ATTACKER_IP, VIP, Events, FakeRaw, fingerprints, ip_frame

from dynapot.analysis.correlate import CorrelationEvent, correlate
from dynapot.config import StorageSettings
from dynapot.honeyd import parse_config
from dynapot.netstack.packets import build_icmp, build_ipv4, build_tcp_packet, build_udp_packet
from dynapot.sensor.config import build_sensor_config
from dynapot.sensor.eventlog import Event
from dynapot.sensor.runtime import Sensor
from dynapot.sensor.storage import FULL, OVER, UNDER, NoiseFolder, StorageGuard
from dynapot.services.uploads import UploadStore

CONFIG = """
create noisy
set noisy personality "Linux 5.4"
set noisy default tcp action reset
set noisy default udp action reset
add noisy tcp port 80 open
add noisy udp port 9999 open
bind 198.18.0.100 noisy
bind 198.18.0.101 noisy
"""


def make_sensor(catalog, guard: StorageGuard | None = None) -> tuple[Sensor, Events]:
    config = build_sensor_config(
        parse_config(CONFIG), CONFIG, fingerprints=fingerprints(), mac_vendors=catalog.mac_vendors
    )
    events = Events()
    return Sensor(config, FakeRaw(), events, storage=guard), events


def udp(sensor: Sensor, dport: int, payload: bytes = b"noise", sport: int = 40000, dst: int = VIP) -> None:
    packet = build_udp_packet(ATTACKER_IP, dst, sport, dport, payload, 64, 1, False)
    sensor.handle_frame(ip_frame(sensor, packet, dst_mac=sensor.hosts[dst].definition.mac))


def rows(events: Events, kind: str) -> list[Event]:
    return [e for e in events.items if e.kind == kind]


def stands_for(events: list[Event]) -> int:
    """How many packets the rows stand for: a row's `count`, else one."""
    return sum((e.data or {}).get("count", 1) for e in events)


# ---------------------------------------------------------------------------- the folder alone


def folder(**kw) -> tuple[NoiseFolder, list[tuple]]:
    out: list[tuple] = []
    return NoiseFolder(lambda *args: out.append(args), **kw), out


def test_the_first_touch_is_a_row_the_repeats_one_more_when_the_window_ends() -> None:
    noise, out = folder(window=60)
    key = ("probe", "udp", 1, 2, 53, "closed")
    assert noise.admit(key, 1000, 120.0)
    assert [noise.admit(key, 1000 + i, 120.0 + i) for i in range(1, 5)] == [False] * 4
    noise.expire(179.9)
    assert out == []  # the window is not over
    noise.expire(180.0)
    assert out == [(key, 4, 121.0, 124.0, 1004)]
    assert noise.admit(key, 1, 181.0)  # a new window: a row at once again
    noise.flush()
    assert len(out) == 1  # no repeats in that window, nothing more


def test_a_source_gets_rows_for_so_many_targets_a_window_then_one() -> None:
    noise, out = folder(window=60, per_source=3)
    made = [noise.admit(("probe", "udp", 7, 2, port, "closed"), 1, 10.0) for port in range(10)]
    assert made == [True] * 3 + [False] * 7
    assert noise.admit(("probe", "udp", 8, 2, 99, "closed"), 1, 10.0)  # another source: its own allowance
    noise.flush()
    assert out == [(("probe", "udp", 7, 0, None, None), 7, 10.0, 10.0, 1)]


def test_all_sources_together_get_so_many_rows_a_window() -> None:
    noise, out = folder(window=60, rows=5)
    made = [noise.admit(("probe", "udp", src, 2, 53, "closed"), 1, 10.0) for src in range(1, 21)]
    assert made == [True] * 5 + [False] * 15
    noise.flush()
    assert out == [(("probe", "udp", 0, 0, None, None), 15, 10.0, 10.0, 1)]


def test_too_many_targets_send_the_tallies_out_early() -> None:
    noise, out = folder(window=60, limit=4)
    for port in range(4):
        noise.admit(("probe", "udp", 1, 2, port, "closed"), 1, 10.0)
        noise.admit(("probe", "udp", 1, 2, port, "closed"), 1, 10.0)
    assert noise.admit(("probe", "udp", 1, 2, 99, "closed"), 1, 10.0)
    assert len(out) == 4 and noise.early == 1


# ---------------------------------------------------------------------------- the sensor


def test_a_datagram_flood_to_a_closed_port_is_two_rows(catalog) -> None:
    sensor, events = make_sensor(catalog)
    for i in range(2000):
        udp(sensor, 5353, b"noise %d" % i, sport=40000 + i % 100)
    assert len(rows(events, "probe")) == 1  # at once: the first
    sensor.observer.stop()  # the sensor stops: the window's repeats go out
    probes = rows(events, "probe")
    assert len(probes) == 2 and stands_for(probes) == 2000
    repeats = probes[1]
    assert repeats.data["count"] == 1999 and repeats.data["first"] <= repeats.data["last"]
    assert repeats.detail.startswith("closed: 1999 more in ")
    assert (repeats.src, repeats.dst, repeats.dport) == (ATTACKER_IP, VIP, 5353)
    assert sensor.health()["storage"]["database"]["level"] == "under"


def test_datagrams_to_an_open_port_keep_their_first_excerpt(catalog) -> None:
    sensor, events = make_sensor(catalog)
    for i in range(50):
        udp(sensor, 9999, b"hello %d" % i)
    sensor.observer.stop()
    datagrams = rows(events, "datagram")
    assert len(datagrams) == 2 and stands_for(datagrams) == 50
    assert bytes.fromhex(datagrams[0].data["excerpt"]) == b"hello 0"


def test_connection_attempts_to_a_closed_port_and_pings_are_folded(catalog) -> None:
    sensor, events = make_sensor(catalog)
    for i in range(500):
        syn = build_tcp_packet(ATTACKER_IP, VIP, 30000 + i, 7, i, 0, 0x02, 64240, 64, i, True)
        sensor.handle_frame(ip_frame(sensor, syn))
        ping = build_ipv4(ATTACKER_IP, VIP, 1, build_icmp(8, 0, 0x12340000 | i, b"x"), ttl=64, ident=i)
        sensor.handle_frame(ip_frame(sensor, ping))
    sensor.observer.stop()
    probes, echoes = rows(events, "probe"), rows(events, "echo")
    assert [e.detail.split(":")[0] for e in probes] == ["S closed", "S closed"]
    assert len(echoes) == 2 and stands_for(probes) == stands_for(echoes) == 500


def test_a_sweep_is_still_one_row_per_target_and_correlation_sees_the_scan(catalog) -> None:
    sensor, events = make_sensor(catalog)
    for port in range(1, 101):
        for dst in (VIP, VIP + 1):
            for _ in range(3):  # each port three times: repeats folded, targets kept
                udp(sensor, port, dst=dst)
    sensor.observer.stop()
    probes = rows(events, "probe")
    assert len({(e.dst, e.dport) for e in probes}) == 200
    assert stands_for(probes) == 600 and len(probes) == 400
    findings = correlate([CorrelationEvent.from_sensor(e) for e in events.items])
    assert [f.kind for f in findings] == ["scan"]
    assert findings[0].details["port_count"] == 100 and findings[0].event_count == 600


def test_the_window_ends_on_the_loop(catalog) -> None:
    guard = StorageGuard(StorageSettings(noise_window=1))
    sensor, events = make_sensor(catalog, guard)

    async def main() -> None:
        sensor.observer.start(asyncio.get_running_loop())
        udp(sensor, 5353)
        udp(sensor, 5353)
        assert sensor.observer._flusher is not None  # armed for the end of the window
        while len(rows(events, "probe")) < 2:
            await asyncio.sleep(0.05)

    asyncio.run(asyncio.wait_for(main(), 10))
    assert rows(events, "probe")[1].data["count"] == 1


# ---------------------------------------------------------------------------- the budgets


def test_past_the_database_budget_payloads_and_noise_are_counted_not_stored(catalog) -> None:
    sizes = iter([100, 1000, 1050, 1200, 950, 800])
    guard = StorageGuard(StorageSettings(database_budget=1000), measure=lambda: next(sizes))
    sensor, events = make_sensor(catalog, guard)
    observer = sensor.observer
    observer.storage_news(guard.update(guard.measure()))  # 100 of 1000: under
    assert guard.level == UNDER and events.items == []
    observer.storage_news(guard.update(guard.measure()))  # 1000: the budget is reached
    assert guard.level == FULL
    assert [e.kind for e in events.items] == ["storage-full"]
    assert events.items[0].data == {"store": "database", "used": 1000, "budget": 1000}
    events.items.clear()
    udp(sensor, 9999, b"payload")
    udp(sensor, 5353)
    report = observer.reporter("tcp", sensor_flow())
    report("request", "GET / " + "x" * 1000, {"method": "GET", "excerpt": "secret bytes"})
    assert [e.kind for e in events.items] == ["request"]
    request = events.items[0]
    assert request.data == {"method": "GET"} and len(request.detail) == 256
    assert guard.counters["noise not stored"] == 2 and guard.counters["payloads dropped"] == 1
    observer.storage_news(guard.update(guard.measure()))  # 1050: still reached, said once only
    observer.storage_news(guard.update(guard.measure()))  # 1200: over by more than a tenth
    assert guard.level == OVER and [e.kind for e in events.items] == ["request"]
    report("login", "root:toor", {"user": "root"})
    assert guard.counters["events not stored"] == 1 and len(events.items) == 1
    observer.storage_news(guard.update(guard.measure()))  # 950: below the budget, not far enough
    assert guard.level == FULL
    observer.storage_news(guard.update(guard.measure()))  # 800: room again
    assert guard.level == UNDER
    health = sensor.health()["storage"]
    assert health["database"] == {"used": 800, "budget": 1000, "level": "under"}
    assert health["database budget reached"] == 1


def test_the_spool_budget_is_announced_once(tmp_path) -> None:
    store = UploadStore(tmp_path, budget=8192)
    guard = StorageGuard(StorageSettings(), uploads=store)
    incoming = store.begin("198.18.0.3")
    incoming.write(b"x" * 10_000)
    assert not incoming.finish().stored and store.full
    news = guard.update(None)
    assert [n[0] for n in news] == ["spool"] and guard.update(None) == []
    assert guard.health()["uploads"]["not kept: spool budget"] == 1


def sensor_flow():
    class Flow:
        peer_ip, peer_port, local_ip, local_port = ATTACKER_IP, 40000, VIP, 80

    return Flow()


@pytest.mark.parametrize("budget", [0])
def test_no_budget_means_never_measured(budget) -> None:
    guard = StorageGuard(StorageSettings(database_budget=budget), measure=lambda: 1 / 0)
    assert guard.measure is None and guard.budget is None


def test_the_counters_name_what_was_folded(catalog) -> None:
    sensor, _ = make_sensor(catalog)
    for _ in range(10):
        udp(sensor, 5353)
    assert sensor.observer.noise.folded == 9
    assert json.loads(json.dumps(sensor.health()))["storage"]["noise folded"] == 9


def test_a_request_flood_to_a_udp_service_is_not_a_row_per_datagram(catalog) -> None:
    calls = []

    def service(data, info, report):
        calls.append(data)
        report("request", "get 1.3.6.1.2.1.1.1.0", {"community": "public"})
        return None  # a wrong community: silence, so no reply budget is spent

    text = CONFIG.replace("bind 198.18.0.100", 'add noisy udp port 161 "snmp"\nbind 198.18.0.100')
    config = build_sensor_config(
        parse_config(text),
        text,
        fingerprints=fingerprints(),
        mac_vendors=catalog.mac_vendors,
    )
    events = Events()
    sensor = Sensor(config, FakeRaw(), events, udp_services={"snmp": service})
    for i in range(1000):
        udp(sensor, 161, b"guess %d" % i)
    sensor.observer.stop()
    assert len(calls) == len(rows(events, "request")) == 40  # a second's worth, per source
    assert sensor.counters["udp datagram not served (rate per source)"] == 960
    assert len(rows(events, "datagram")) == 2 and stands_for(rows(events, "datagram")) == 1000


def test_no_upload_is_kept_while_the_database_is_at_its_budget(tmp_path) -> None:
    store = UploadStore(tmp_path)
    sizes = iter([1000, 10])
    guard = StorageGuard(StorageSettings(database_budget=1000), measure=lambda: next(sizes), uploads=store)
    guard.update(guard.measure())
    incoming = store.begin("198.18.0.3")
    incoming.write(b"dropper")
    held = incoming.finish()
    assert not held.stored and held.dropped == "database budget" and len(held.sha256) == 64
    guard.update(guard.measure())  # room again
    incoming = store.begin("198.18.0.3")
    incoming.write(b"dropper")
    assert incoming.finish().stored


def test_dynapot_status_shows_the_sensors_storage(catalog) -> None:
    from dynapot.cli.daemon import _storage_line

    sizes = iter([3 << 30])
    guard = StorageGuard(StorageSettings(database_budget=2 << 30), measure=lambda: next(sizes))
    sensor, _ = make_sensor(catalog, guard)
    sensor.observer.storage_news(guard.update(guard.measure()))
    udp(sensor, 5353)
    line = _storage_line(json.loads(json.dumps(sensor.health()))["storage"])
    assert line.startswith("database 3.0 GiB of 2.0 GiB (over)") and "noise not stored 1" in line

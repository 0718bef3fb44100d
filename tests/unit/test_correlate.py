"""Correlation: scans, brute force, worms and nmap OS scans from synthetic event streams.

Each stream is what the sensor writes (kinds "probe", "connect", "login", "os-scan"...),
built here as `CorrelationEvent`s; the database path is checked on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from dynapot.analysis.correlate import BRUTE_FORCE, SCAN, WORM, CorrelationEvent, Correlator, correlate
from dynapot.analysis.findings import finding_ids, store_findings
from dynapot.analysis.stored import correlate_stored, events_after, stored_events
from dynapot.config import CorrelationSettings
from dynapot.db.models import Finding as FindingRow
from dynapot.db.models import HoneypotEvent

T0 = 1_800_000_000.0  # a fixed epoch: keys depend on time buckets
HOSTS = [f"198.18.0.{i}" for i in range(10, 30)]  # 20 virtual hosts
ATTACKER = "203.0.113.66"
WORMS = [f"192.0.2.{i}" for i in range(1, 5)]
_ids = itertools.count(1)


def ev(t, src, dst, port, kind="probe", proto="tcp", **extra):
    return CorrelationEvent(T0 + t, src, dst, port, kind, proto, id=next(_ids), **extra)


def nmap_scan(start=0.0, src=ATTACKER, hosts=HOSTS, ports=range(1, 101), os_scan=True):
    """nmap -O: a SYN probe per host and port, then the OS probes (one os-scan event per source)."""
    events, t = [], start
    for host in hosts:
        for port in ports:
            t += 0.001
            events.append(ev(t, src, host, port, "connect" if port in (22, 445) else "probe", detail="S"))
    if os_scan:
        t += 0.5
        events.append(ev(t, src, "0.0.0.0", None, "os-scan", scan_tool="nmap OS scan"))
        for host in hosts[:3]:
            t += 0.01
            events.append(ev(t, src, host, 22, "connect", scan_tool="nmap OS scan"))
    return events


def ssh_guessing(start=0.0, src=ATTACKER, dst=HOSTS[0], tries=30, accepted_at=None, port=22, kind="login"):
    events, t = [], start
    for i in range(tries):
        t += 0.5
        events.append(ev(t, src, dst, port, "connect"))
        data = {"user": "root", "password": f"pw{i}", "accepted": i == accepted_at}
        events.append(ev(t + 0.1, src, dst, port, kind, data=data))
        events.append(ev(t + 0.2, src, dst, port, "close"))
    return events


def worm_sweep(start=0.0, sources=WORMS, hosts=HOSTS, port=445):
    """Infected machines working in parallel: each host is hit by every source in turn."""
    events, t = [], start
    for host in hosts:
        for src in sources:
            t += 0.05
            events.append(ev(t, src, host, port, "connect"))
            events.append(ev(t + 0.01, src, host, port, "data", data={"bytes": 72}))
    return events


def benign(start=0.0):
    """A few visitors: one page each, a mistyped password, a ping."""
    events, t = [], start
    for i in range(30):
        t += 3
        src = f"100.64.0.{i}"
        dst = HOSTS[i % len(HOSTS)]
        events.append(ev(t, src, dst, 80, "connect"))
        events.append(ev(t + 0.1, src, dst, 80, "request", detail="GET /"))
        events.append(ev(t + 0.2, src, dst, None, "echo", proto="icmp"))
    events.append(ev(t + 1, "100.64.0.1", HOSTS[1], 22, "login", data={"user": "bob", "accepted": False}))
    events.append(ev(t + 2, "100.64.0.1", HOSTS[1], 22, "login", data={"user": "bob", "accepted": False}))
    return events


def feed_all(correlator, events):
    found = []
    for event in events:
        found.extend(correlator.feed(event))
    return found


def kinds(findings):
    return sorted(f.kind for f in findings)


def test_nmap_os_scan_is_one_scan_finding_with_os_detection():
    correlator = Correlator()
    found = feed_all(correlator, nmap_scan())
    # Raised once on the thresholds, announced again (same key) when OS detection shows.
    assert kinds(found) == [SCAN, SCAN]
    assert found[0].key == found[1].key == f"scan:{ATTACKER}:{int((T0 + 0.001) // 300)}"
    first, escalated = found
    assert first.risk == "low" and not first.details["os_scan"]
    assert escalated.risk == "medium" and escalated.details["os_scan"]
    assert escalated.details["tools"] == ["nmap OS scan"]
    assert "nmap OS detection" in escalated.summary
    final = correlator.updates()
    assert len(final) == 1
    scan = final[0]
    assert scan.sources == (ATTACKER,)
    assert scan.targets == tuple(HOSTS) and scan.details["host_count"] == 20
    assert scan.details["port_count"] == 100 and scan.ports[:3] == ("1/tcp", "2/tcp", "3/tcp")
    assert scan.event_count == 20 * 100 + 1 + 3
    assert len(scan.event_ids) == 100 and scan.event_ids == tuple(sorted(scan.event_ids))


def test_vertical_and_horizontal_scans_meet_their_own_thresholds():
    settings = CorrelationSettings(scan={"hosts": 5, "ports": 10})
    # 9 ports of one host: below; the 10th port: a scan.
    vertical = [ev(i, "203.0.113.1", HOSTS[0], 1000 + i) for i in range(10)]
    correlator = Correlator(settings)
    assert feed_all(correlator, vertical[:9]) == []
    assert kinds(correlator.feed(vertical[9])) == [SCAN]
    # A ping sweep: hosts without ports.
    sweep = [ev(i, "203.0.113.2", host, None, "echo", proto="icmp") for i, host in enumerate(HOSTS[:5])]
    assert kinds(feed_all(Correlator(settings), sweep)) == [SCAN]
    # Slow: 5 hosts, but never more than 2 within one window.
    slow = [ev(i * 200.0, "203.0.113.3", host, None, "echo", proto="icmp") for i, host in enumerate(HOSTS)]
    assert feed_all(Correlator(settings), slow) == []


def test_os_detection_alone_raises_a_scan_unless_configured_off():
    events = [
        ev(0, ATTACKER, HOSTS[0], 22, "connect"),
        ev(1, ATTACKER, "0.0.0.0", None, "os-scan", scan_tool="nmap OS scan"),
    ]
    found = feed_all(Correlator(), events)
    assert kinds(found) == [SCAN] and found[0].risk == "medium" and found[0].details["os_scan"]
    quiet = CorrelationSettings(scan={"os_scan_alone": False})
    assert feed_all(Correlator(quiet), events) == []


def test_brute_force_needs_the_threshold_within_the_window():
    settings = CorrelationSettings(brute_force={"logins": 10})
    correlator = Correlator(settings)
    found = feed_all(correlator, ssh_guessing(tries=9))
    assert found == []
    found = feed_all(correlator, ssh_guessing(start=10, tries=1))
    assert kinds(found) == [BRUTE_FORCE]
    finding = found[0]
    assert finding.risk == "medium"
    assert finding.sources == (ATTACKER,) and finding.targets == (HOSTS[0],) and finding.ports == ("22/tcp",)
    assert finding.details == {"logins": 10, "accepted": 0, "users": ["root"]}
    assert len(finding.event_ids) == 10
    # Ten logins spread over hours are not a brute force.
    slow = [
        ev(i * 100.0, ATTACKER, HOSTS[1], 21, "login", data={"user": "ftp", "accepted": False})
        for i in range(20)
    ]
    assert feed_all(Correlator(settings), slow) == []


def test_accepted_login_escalates_to_critical_once():
    correlator = Correlator()
    events = ssh_guessing(tries=40, accepted_at=25)
    # A second success later is not news.
    events += ssh_guessing(start=30, tries=2, accepted_at=0)
    found = feed_all(correlator, events)
    assert [(f.kind, f.risk) for f in found] == [(BRUTE_FORCE, "medium"), (BRUTE_FORCE, "critical")]
    assert found[0].key == found[1].key
    assert found[1].details["accepted"] == 1 and "accepted" in found[1].summary
    # Accepted before the threshold: critical from the start. Key logins count as well.
    found = feed_all(Correlator(), ssh_guessing(tries=12, accepted_at=3, kind="login-key"))
    assert [(f.kind, f.risk) for f in found] == [(BRUTE_FORCE, "critical")]


def test_worm_sweep_is_one_worm_finding_and_no_scans():
    correlator = Correlator()
    found = feed_all(correlator, worm_sweep())
    assert kinds(found) == [WORM]
    assert found[0].risk == "high" and found[0].ports == ("445/tcp",)
    final = correlator.updates()
    assert kinds(final) == [WORM]
    worm = final[0]
    assert worm.sources == tuple(WORMS) and worm.targets == tuple(HOSTS)
    assert worm.details == {"source_count": 4, "host_count": 20}
    assert worm.key == f"worm:445/tcp:{int((T0 + 0.05) // 300)}"


def test_worm_needs_several_sources_and_worm_like_ones():
    # One source sweeping one port is a scan, not a worm.
    single = worm_sweep(sources=WORMS[:1])
    assert kinds(feed_all(Correlator(), single)) == [SCAN]
    # Two sources: below the worm's three; each alone crosses the scan threshold.
    assert kinds(feed_all(Correlator(), worm_sweep(sources=WORMS[:2]))) == [SCAN, SCAN]
    # Three full port scanners all touch 445 on every host: scans, not a worm.
    scanners = []
    for i, src in enumerate(["203.0.113.1", "203.0.113.2", "203.0.113.3"]):
        scanners += nmap_scan(
            start=i * 10, src=src, hosts=HOSTS[:6], ports=[445, *range(1, 30)], os_scan=False
        )
    assert kinds(feed_all(Correlator(), scanners)) == [SCAN, SCAN, SCAN]


def test_the_three_attacks_together_give_exactly_three_findings():
    events = nmap_scan(start=0) + ssh_guessing(start=100) + worm_sweep(start=50) + benign(start=0)
    events.sort(key=lambda e: e.time)
    correlator = Correlator()
    announced = feed_all(correlator, events)
    by_key = {f.key: f for f in announced}
    assert sorted(f.kind for f in by_key.values()) == [BRUTE_FORCE, SCAN, WORM]
    final = {f.kind: f for f in correlator.updates()}
    assert set(final) == {SCAN, BRUTE_FORCE, WORM}
    assert final[SCAN].details["os_scan"] and final[SCAN].risk == "medium"
    assert final[BRUTE_FORCE].sources == (ATTACKER,) and final[BRUTE_FORCE].details["logins"] == 30
    assert final[WORM].sources == tuple(WORMS)  # the scanner hit 445 too, but is no worm instance
    # The batch function agrees, and is deterministic.
    batch = correlate(events)
    assert [f.key for f in batch] == [f.key for f in correlate(events)]
    assert {f.key for f in batch} == set(by_key)


def test_benign_traffic_gives_nothing():
    assert feed_all(Correlator(), benign()) == []
    assert correlate(benign()) == []


def test_second_identical_scan_within_the_window_is_no_new_finding():
    correlator = Correlator()
    first = feed_all(correlator, nmap_scan(start=0, os_scan=False))
    again = feed_all(correlator, nmap_scan(start=120, os_scan=False))  # 2 minutes later
    assert kinds(first) == [SCAN] and again == []
    # After a quiet window the same attacker's next scan is a new finding with a new key.
    later = feed_all(correlator, nmap_scan(start=1000, os_scan=False))
    assert kinds(later) == [SCAN] and later[0].key != first[0].key
    # Keys are stable: a fresh correlator given the same events names them the same.
    replay = feed_all(Correlator(), nmap_scan(start=0, os_scan=False))
    assert replay[0].key == first[0].key


def test_finished_findings_close_and_report_their_final_state():
    correlator = Correlator()
    feed_all(correlator, worm_sweep())
    assert len(correlator.open_findings()) == 1
    correlator.updates()
    assert correlator.updates() == []  # nothing changed since
    correlator.expire(T0 + 10_000)
    assert correlator.open_findings() == []
    closed = correlator.updates()
    assert len(closed) == 1 and closed[0].closed and closed[0].kind == WORM
    assert correlator.tracked == {"sources": 0, "logins": 0, "ports": 0, "open_findings": 0}


def test_memory_stays_bounded_under_a_flood_of_sources():
    settings = CorrelationSettings(max_sources=1000)
    correlator = Correlator(settings)
    rng = random.Random(5)
    for i in range(20_000):
        src = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        correlator.feed(ev(i * 0.001, src, rng.choice(HOSTS), rng.randrange(1, 65536)))
        correlator.feed(ev(i * 0.001, src, HOSTS[0], 22, "login", data={"user": "x" * 10_000}))
    tracked = correlator.tracked
    assert tracked["sources"] <= 1000 and tracked["logins"] <= 1000 and tracked["ports"] <= 1000
    # One source touching a whole /16 is counted up to the cap, not remembered without end.
    small = CorrelationSettings(max_distinct=64)
    correlator = Correlator(small)
    for i in range(5000):
        correlator.feed(ev(i * 0.001, ATTACKER, f"198.18.{i >> 8}.{i & 255}", i + 1))
    (scan,) = correlator.updates()
    assert scan.details["host_count"] == 64 and scan.details["port_count"] == 64
    assert scan.event_count == 5000 and len(scan.targets) == 64


def test_garbage_events_are_ignored_not_raised():
    correlator = Correlator()
    junk = [
        CorrelationEvent(None, ATTACKER, HOSTS[0], 22, "probe"),  # type: ignore[arg-type]
        CorrelationEvent("yesterday", ATTACKER, HOSTS[0], 22, "probe"),  # type: ignore[arg-type]
        CorrelationEvent(T0, "0.0.0.0", "0.0.0.0", None, "events-lost"),
        CorrelationEvent(T0, ATTACKER, HOSTS[0], 70_000, "probe"),  # no such port
        CorrelationEvent(T0, ATTACKER, HOSTS[0], 22, "login", data="not a dict"),  # type: ignore[arg-type]
        CorrelationEvent(T0, ATTACKER, HOSTS[0], 22, "login", data={"user": 5, "accepted": "yes"}),
        CorrelationEvent(T0, ATTACKER, "198.18.0.5", None, "conflict", protocol="arp"),
        CorrelationEvent(datetime(2027, 1, 1), ATTACKER, HOSTS[0], 22, "probe"),  # naive: taken as UTC
    ]
    assert feed_all(correlator, junk) == []
    assert correlator.ignored == 4 and correlator.events == 4


def test_settings_are_validated():
    with pytest.raises(ValidationError):
        CorrelationSettings(window=0)
    with pytest.raises(ValidationError):
        CorrelationSettings(scan={"hosts": 10, "typo": 1})
    with pytest.raises(ValidationError):
        CorrelationSettings(worm={"risk": "extreme"})
    with pytest.raises(ValidationError):
        CorrelationSettings(max_distinct=16, scan={"ports": 100})


def test_sensor_events_convert():
    from dynapot.sensor.eventlog import Event

    raw = Event(T0, "tcp", 0xCB007142, 40000, 0xC612000A, 22, "login", "root:x", data={"accepted": True})
    event = CorrelationEvent.from_sensor(raw, 7)
    assert (event.src_ip, event.dst_ip, event.dst_port, event.kind, event.id) == (
        "203.0.113.66",
        "198.18.0.10",
        22,
        "login",
        7,
    )


def _rows(events):
    rows = []
    for e in events:
        rows.append(
            HoneypotEvent(
                time=datetime.fromtimestamp(e.time, UTC),
                protocol=e.protocol,
                src_ip=e.src_ip,
                src_port=40000,
                dst_ip=e.dst_ip,
                dst_port=e.dst_port,
                kind=e.kind,
                detail=e.detail,
                scan_tool=e.scan_tool,
                data=e.data,
            )
        )
    return rows


def test_the_daemon_reads_by_id_what_a_batch_run_reads_by_time(db):
    events = nmap_scan(start=0, hosts=HOSTS[:2], ports=range(1, 4)) + ssh_guessing(start=10, tries=3)
    with db.session() as session:
        session.add_all(_rows(events))  # in time order: ids and times agree
    batch = list(stored_events(db))
    assert [row.kind for row in batch] == [e.kind for e in events]
    rounds, after = [], 0
    while chunk := events_after(db, after, 4):  # the daemon's rounds, 4 events each
        rounds += chunk
        after = chunk[-1].id
    assert [tuple(row) for row in rounds] == [tuple(row) for row in batch]
    logins = [row.data for row in batch if row.kind == "login"]
    assert len(logins) == 3 and all(data["user"] == "root" for data in logins)
    assert all(row.data is None for row in batch if row.kind != "login")  # only logins' JSON is read


def test_finding_ids_by_key(db):
    (finding,) = correlate(ssh_guessing(tries=30))
    assert finding_ids(db, [finding.key]) == {}
    store_findings(db, [finding])
    with db.session() as session:
        (row_id,) = session.scalars(select(FindingRow.id)).all()
    assert finding_ids(db, [finding.key, finding.key, "scan:none:0"]) == {finding.key: row_id}


def test_stored_events_correlate_and_findings_upsert_by_key(db):
    from sqlalchemy import func, select

    events = nmap_scan(start=0) + ssh_guessing(start=100, accepted_at=20) + worm_sweep(start=50)
    events.sort(key=lambda e: e.time)
    with db.session() as session:
        session.add_all(_rows(events))
    findings = correlate_stored(db)
    assert sorted(f.kind for f in findings) == [BRUTE_FORCE, SCAN, WORM]
    brute = next(f for f in findings if f.kind == BRUTE_FORCE)
    assert brute.risk == "critical"  # the accepted flag survives the JSON round trip
    assert store_findings(db, findings) == {"added": 3, "updated": 0}
    # Running it again (the daemon and a manual re-run) merges into the same rows.
    assert store_findings(db, correlate_stored(db)) == {"added": 0, "updated": 3}
    since = datetime.fromtimestamp(T0 + 60, UTC)  # a later start: the scan is seen only in part
    partial = correlate_stored(db, since=since)
    store_findings(db, partial)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(FindingRow)) == 3
        rows = {row.kind: row for row in session.scalars(select(FindingRow))}
        scan = rows[SCAN]
        assert scan.risk == "medium" and scan.details["os_scan"] is True
        assert scan.sources == [ATTACKER] and len(scan.targets) == 20
        assert scan.event_count == 2004 + 90 and len(scan.event_ids) == 100  # with its logins
        assert scan.first_seen == datetime.fromtimestamp(T0 + 0.001, UTC)
        assert rows[WORM].ports == ["445/tcp"] and rows[WORM].sources == sorted(WORMS)
        assert rows[BRUTE_FORCE].risk == "critical"


def test_the_lab_scenario_with_a_two_minute_window():
    """What tests/lab/test_daemon.py does to the daemon, as the sensor would log it."""
    settings = CorrelationSettings(window=120)
    web = HOSTS[:12]

    def scan(start):
        # nmap -O -p 21,22,80,443 of twelve hosts, then the OS probes (closed ports, a UDP port).
        events, t = [], start
        for port in (21, 22, 80, 443):
            for host in web:
                t += 0.01
                events.append(ev(t, ATTACKER, host, port, "connect" if port in (22, 80) else "probe"))
        events.append(ev(t + 1, ATTACKER, "0.0.0.0", None, "os-scan", scan_tool="nmap OS scan"))
        for host in web:
            t += 0.05
            events.append(ev(t + 1, ATTACKER, host, 1, "probe", scan_tool="nmap OS scan"))
            events.append(ev(t + 1, ATTACKER, host, 40125, "probe", proto="udp", scan_tool="nmap OS scan"))
        return events

    events = scan(0)
    events += ssh_guessing(start=20, dst=web[0], tries=12)
    sweep = [
        ev(40 + i * 0.1, src, host, 80, "connect")
        for i, (host, src) in enumerate((host, src) for host in web[-8:] for src in WORMS[:3])
    ]
    events += sweep
    correlator = Correlator(settings)
    announced = feed_all(correlator, events)
    assert sorted({f.key: f.kind for f in announced}.values()) == [BRUTE_FORCE, SCAN, WORM]
    # Alerting at "medium" and up sees each once: the scan when OS detection escalates it.
    medium = [f for f in announced if f.risk in ("medium", "high", "critical")]
    assert sorted(f.kind for f in medium) == [BRUTE_FORCE, SCAN, WORM]
    # The same scan again a minute later: nothing new.
    assert feed_all(correlator, scan(100)) == []

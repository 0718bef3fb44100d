"""The daemon's decisions without a network: policy reloads, correlation rounds, restarts.

The daemon is built on the loopback interface (nothing is opened or sent until `run`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_active_scan import detail_xml_shell, fake_nmap, hanging_detail, pids_in, sweep_shell, wait_all_dead

from dynapot.config import ConfigError, load_settings
from dynapot.daemon.engine import Daemon
from dynapot.db.models import Finding, HoneypotEvent, Host
from dynapot.discovery.observation import Observation, OsGuess, PortObservation
from dynapot.inventory import record_observations, release_outside

SETTINGS = """
[[networks]]
cidr = "198.18.0.0/24"

[discovery]
mode = "{mode}"

[planner]
fill_ratio = 1.0

[daemon]
interface = "lo"
state_dir = "{state}"
warmup = 30

[correlation]
window = 300
"""


@pytest.fixture
def make_daemon(tmp_path, db):
    def make(mode: str = "hybrid") -> Daemon:
        path = tmp_path / "dynapot.toml"
        if not path.exists():
            path.write_text(SETTINGS.format(mode=mode, state=tmp_path / "state"))
        return Daemon(load_settings(path, environ={}), db, settings_path=path)

    return make


def scan_events(db, source: str = "198.18.0.3", hosts: int = 12) -> None:
    start = datetime.now(UTC) - timedelta(seconds=30)
    with db.session() as session:
        for i in range(hosts):
            session.add(
                HoneypotEvent(
                    time=start + timedelta(seconds=i),
                    protocol="tcp",
                    src_ip=source,
                    src_port=40000 + i,
                    dst_ip=f"198.18.0.{100 + i}",
                    dst_port=22,
                    kind="probe",
                    detail="S open",
                )
            )


def test_a_changed_settings_file_changes_the_policy_and_a_bad_one_changes_nothing(make_daemon, tmp_path):
    daemon = make_daemon()
    path = tmp_path / "dynapot.toml"
    assert daemon.reload_policy() is False  # unchanged file
    path.write_text(path.read_text().replace("fill_ratio = 1.0", "fill_ratio = 0.5"))
    assert daemon.reload_policy(force=True) is True
    assert daemon.deployer.planner.fill_ratio == 0.5 and daemon._replan.is_set()
    path.write_text(path.read_text().replace("fill_ratio = 0.5", "fill_ratio = 7"))
    assert daemon.reload_policy(force=True) is False
    assert daemon.deployer.planner.fill_ratio == 0.5
    assert "fill_ratio" in daemon.status.errors[-1]


def test_scanning_expiry_and_mode_settings_apply_without_a_restart(make_daemon, tmp_path):
    daemon = make_daemon()
    path = tmp_path / "dynapot.toml"
    text = path.read_text().replace('mode = "hybrid"', 'mode = "passive"')
    path.write_text(
        text + "\n[discovery.active]\nparallel = 3\ninterval = 5\npolite = true\n\n[expiry]\nhosts = 2\n"
    )
    assert daemon.reload_policy(force=True) is True
    active = daemon.settings.discovery.active
    assert (active.parallel, active.interval, active.polite) == (3, 5.0, True)
    assert daemon.settings.expiry.hosts == 2
    assert daemon.mode == daemon.status.mode == daemon.settings.discovery.mode == "passive"


def test_the_first_plan_waits_for_a_full_picture(make_daemon):
    hybrid = make_daemon("hybrid")
    assert not hybrid._may_plan()
    hybrid.status.last_scan = 1.0
    assert hybrid._may_plan()


def test_passive_mode_plans_after_the_warm_up(make_daemon):
    passive = make_daemon("passive")
    assert not passive._may_plan()
    passive.status.started -= 31
    assert passive._may_plan()


def test_correlation_rounds_store_findings_and_a_restart_resumes_after_the_last_event(make_daemon, db):
    daemon = make_daemon()
    daemon.status.last_event_id = daemon._load_cursor()  # as run() does: a fresh start skips the past
    scan_events(db)
    assert daemon.correlate_once() is False  # one batch, not full
    assert [f.kind for f, _ in daemon._found] == ["scan"]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Finding)) == 1
    again = make_daemon()
    assert again._load_cursor() == daemon.status.last_event_id == 12
    again.status.last_event_id = again._load_cursor()
    assert again.correlate_once() is False and not again._found  # nothing is correlated twice


def test_only_another_mac_on_a_deployed_address_is_a_real_host(make_daemon):
    daemon = make_daemon()
    daemon.virtual = {"198.18.0.50": "00:20:7b:00:00:01"}
    assert daemon._is_real("198.18.0.51", None)
    assert not daemon._is_real("198.18.0.50", "00:20:7B:00:00:01")
    assert not daemon._is_real("198.18.0.50", None)
    assert daemon._is_real("198.18.0.50", "02:00:00:00:00:09")


def test_the_sensor_gets_the_database_url_outside_its_command_line(make_daemon):
    daemon = make_daemon()
    sensor = daemon.sensor
    assert daemon.settings.database_url not in " ".join(sensor.command)
    assert sensor.environment["DYNAPOT_DB"] == daemon.settings.database_url


def test_the_sensor_is_unprivileged_and_never_imports_from_the_current_folder(make_daemon):
    sensor = make_daemon().sensor
    assert sensor.command[1:4] == ["-P", "-m", "dynapot"]
    assert sensor.command[sensor.command.index("--user") + 1] == "dynapot"


def test_the_sensor_may_have_a_database_role_of_its_own(make_daemon, tmp_path):
    sensor_url = "postgresql+psycopg://dynapot_sensor:s3cret@db.example/dynapot"
    settings = SETTINGS.format(mode="hybrid", state=tmp_path / "state")
    settings = settings.replace("warmup = 30\n", f'warmup = 30\nsensor_database_url = "{sensor_url}"\n')
    (tmp_path / "dynapot.toml").write_text(settings)
    daemon = make_daemon()
    assert daemon.sensor.environment["DYNAPOT_DB"] == sensor_url
    assert sensor_url not in " ".join(daemon.sensor.command)
    assert "s3cret" not in daemon.settings.describe("daemon.sensor_database_url")


def test_an_existing_state_folder_is_left_as_it_is(make_daemon, tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o711)
    state.chmod(0o711)
    make_daemon()
    assert state.stat().st_mode & 0o777 == 0o711


def test_a_storage_budget_reached_alerts_once(make_daemon, db):
    daemon = make_daemon()
    daemon.status.last_event_id = daemon._load_cursor()
    with db.session() as session:
        for used in (1000, 1010):  # said again by a restarted sensor: one alert all the same
            session.add(
                HoneypotEvent(
                    time=datetime.now(UTC),
                    protocol="tcp",
                    src_ip="0.0.0.0",
                    dst_ip="0.0.0.0",
                    kind="storage-full",
                    detail=f"database budget reached: {used} of 1000 bytes",
                    data={"store": "database", "used": used, "budget": 1000},
                )
            )
    daemon.correlate_once()
    assert [title for _, title, _ in daemon._notices] == ["dynapot: database budget reached"] * 2
    daemon.alerter.channels = []
    daemon._alert_found()
    assert daemon.alerter.counts["suppressed"] == 1
    assert daemon.alerter._queue is not None and daemon.alerter._queue.qsize() == 1
    message = daemon.alerter._queue.get_nowait()
    assert "1000 of 1000 bytes" in message.body and "dynapot status" in message.body


def test_the_collector_runs_in_the_daemon_only_when_enabled(make_daemon, tmp_path):
    import json

    assert make_daemon().collector is None
    path = tmp_path / "dynapot.toml"
    path.write_text(
        path.read_text() + '\n[collector]\nenabled = true\nlisten = "127.0.0.1:0"\nmagic = 0xD0D0D0\n'
    )
    daemon = make_daemon()
    assert daemon.collector is not None and daemon.collector.settings.magic == 0xD0D0D0
    daemon._write_status()
    status = json.loads((tmp_path / "state" / "daemon-status.json").read_text())
    assert status["collector"]["received"] == 0 and status["collector"]["lost"] == 0


def test_commands_typed_on_a_backend_are_a_compromise_finding_alerted_once(make_daemon, db):
    from sqlalchemy import insert
    from test_sessions import ATTACKER, story

    from dynapot.db.models import Session

    daemon = make_daemon()
    daemon.status.last_event_id = daemon._load_cursor()
    daemon.correlate_once()  # a fresh start: Sebek rows stored before it are not news
    with db.session() as session:
        session.execute(insert(Session), story())
    daemon.correlate_once()
    (finding, finding_id), *others = daemon._found
    assert finding.kind == "compromise" and finding.risk == "high" and finding_id is not None
    assert finding.sources == (ATTACKER,) and finding.details["first_commands"] == [
        "uname -a",
        "cat /etc/passwd",
    ]
    assert "interactive compromise of high-interaction honeypot 198.18.0.5" in finding.summary
    assert [f.sources for f, _ in others] == [()]  # the unlinked session typed a command too
    daemon._found.clear()
    with db.session() as session:
        more = story()[-3]  # the same session goes on: its finding is updated, not alerted again
        session.execute(insert(Session), [{**more, "counter": 99}])
    daemon.correlate_once()
    assert not daemon._found
    with db.session() as session:
        assert (
            session.scalar(select(func.count()).select_from(Finding).where(Finding.kind == "compromise")) == 2
        )


def test_a_collector_address_in_use_stops_the_daemon_before_anything_starts(make_daemon, tmp_path):
    import asyncio
    import socket

    from dynapot.config import ConfigError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        make_daemon()  # writes the settings file
        path = tmp_path / "dynapot.toml"
        path.write_text(path.read_text() + f'\n[collector]\nenabled = true\nlisten = "127.0.0.1:{port}"\n')
        daemon = make_daemon()
        with pytest.raises(ConfigError, match=f'collector.listen = "127.0.0.1:{port}" in .*: cannot listen'):
            asyncio.run(daemon.run(asyncio.Event()))
    assert daemon._raw is None and not daemon.sensor.running


def linux_host(db, ip: str = "198.18.0.2") -> None:
    linux = OsGuess("Linux 5.4", 98, "Linux", "Linux", "5.X", "general purpose")
    ssh = PortObservation("tcp", 22, "open", "ssh", "OpenSSH", "8.9p1")
    observed = Observation(ip=ip, seen_at=datetime.now(UTC), tool="nmap", alive=True, os=linux, ports=(ssh,))
    record_observations(db, [observed])


def virtual_ips(db) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Host.ip).where(Host.is_virtual.is_(True))))


def test_a_new_mode_starts_or_stops_the_scan_loops_of_the_running_daemon(make_daemon, tmp_path):
    daemon = make_daemon("passive")
    path = tmp_path / "dynapot.toml"
    started: list[str] = []

    async def loop(name: str, stop: asyncio.Event) -> None:
        started.append(name)
        await stop.wait()

    daemon._scan_loop = lambda stop: loop("scan", stop)  # no nmap here: only what is started
    daemon._liveness_loop = lambda stop: loop("liveness", stop)

    async def scenario() -> list[str]:
        daemon._stop = stop = asyncio.Event()
        daemon._apply_mode()
        assert daemon._discovery == []  # passive: no scanning
        path.write_text(path.read_text().replace('mode = "passive"', 'mode = "hybrid"'))
        assert daemon.reload_policy(force=True) is True
        await asyncio.sleep(0)
        running = list(daemon._discovery)
        assert [t.get_name() for t in running] == ["scan", "liveness"] and not any(t.done() for t in running)
        assert daemon.reload_policy(force=True) is False  # the same mode again: nothing more started
        path.write_text(path.read_text().replace('mode = "hybrid"', 'mode = "passive"'))
        assert daemon.reload_policy(force=True) is True
        await asyncio.gather(*running, return_exceptions=True)
        assert all(t.cancelled() for t in running) and daemon._discovery == []
        stop.set()
        return started

    assert asyncio.run(scenario()) == ["scan", "liveness"]
    assert daemon.mode == "passive" and daemon.status.mode == "passive"


def test_new_exclusions_release_virtual_hosts_at_the_next_plan_and_never_claim_them(
    make_daemon, db, tmp_path
):
    path = tmp_path / "dynapot.toml"
    path.write_text(
        SETTINGS.format(mode="hybrid", state=tmp_path / "state").replace("198.18.0.0/24", "198.18.0.0/28")
    )
    daemon = make_daemon()
    linux_host(db)
    first = daemon.deployer.deploy(daemon.config_path)
    deployed = {vh.ip for vh in first.plan.virtual_hosts}
    assert {"198.18.0.5", "198.18.0.6"} <= deployed
    path.write_text(
        path.read_text().replace(
            'cidr = "198.18.0.0/28"', 'cidr = "198.18.0.0/28"\nexclude = ["198.18.0.5-198.18.0.6"]'
        )
    )
    assert daemon.reload_policy(force=True) is True
    assert daemon.deployer.network.exclude[:1] == ("198.18.0.5-198.18.0.6",)
    second = daemon.deployer.deploy(daemon.config_path)
    assert {"198.18.0.5", "198.18.0.6"} <= set(second.plan.removed)
    assert not {"198.18.0.5", "198.18.0.6"} & virtual_ips(db)
    third = daemon.deployer.deploy(daemon.config_path)
    assert not {"198.18.0.5", "198.18.0.6"} & {vh.ip for vh in third.plan.virtual_hosts}
    assert "198.18.0.5 " not in daemon.config_path.read_text()


def test_a_new_network_is_planned_and_the_old_ones_hosts_released(make_daemon, db, tmp_path):
    path = tmp_path / "dynapot.toml"
    path.write_text(
        SETTINGS.format(mode="hybrid", state=tmp_path / "state").replace("198.18.0.0/24", "198.18.0.0/28")
    )
    daemon = make_daemon()
    linux_host(db)
    linux_host(db, "198.18.1.2")
    daemon.deployer.deploy(daemon.config_path)
    assert virtual_ips(db) and all(ip.startswith("198.18.0.") for ip in virtual_ips(db))
    path.write_text(path.read_text().replace("198.18.0.0/28", "198.18.1.0/28"))
    assert daemon.reload_policy(force=True) is True
    assert str(daemon.network.cidr) == daemon.status.network == "198.18.1.0/28"
    assert daemon._redeploy and daemon._replan.is_set()
    assert release_outside(db, daemon.network.cidr) > 0
    deployment = daemon.deployer.deploy(daemon.config_path, force=True)
    assert deployment.plan.virtual_hosts and all(ip.startswith("198.18.1.") for ip in virtual_ips(db))
    assert "198.18.0." not in daemon.config_path.read_text().split("\n", 1)[1]


def test_a_settings_file_with_two_networks_is_refused_and_the_running_network_stays(make_daemon, tmp_path):
    daemon = make_daemon()
    path = tmp_path / "dynapot.toml"
    path.write_text(path.read_text() + '\n[[networks]]\ncidr = "198.18.5.0/24"\n')
    assert daemon.reload_policy(force=True) is False
    assert str(daemon.network.cidr) == "198.18.0.0/24" and "exactly one network" in daemon.status.errors[-1]


def test_the_web_child_is_started_only_when_enabled_unprivileged_and_without_secrets_in_argv(
    make_daemon, tmp_path
):
    assert make_daemon().web is None  # off by default
    path = tmp_path / "dynapot.toml"
    path.write_text(
        path.read_text()
        + '\n[web]\nenabled = true\nlisten = "127.0.0.1:9443"\nuser = "nobody"\n'
        + '\n[database]\nurl = "postgresql+psycopg://dynapot:s3cret@127.0.0.1/dynapot"\n'
    )
    web = make_daemon().web
    assert web is not None
    command = " ".join(web.command)
    assert "-P" in web.command and "web --listen 127.0.0.1:9443 --user nobody" in command
    assert f"--config {path}" in command and "s3cret" not in command
    assert "s3cret" in web.environment["DYNAPOT_DB"]


def test_a_bad_web_listen_address_is_refused_with_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[web]\nlisten = "example.com:8443"\n')
    with pytest.raises(ConfigError, match=r"web\.listen.*not an IP address"):
        load_settings(path, environ={})


def test_a_daemon_turned_passive_after_a_scan_plans_without_a_warm_up(make_daemon, tmp_path):
    daemon = make_daemon("hybrid")
    daemon.status.last_scan = 1.0
    path = tmp_path / "dynapot.toml"
    path.write_text(path.read_text().replace('mode = "hybrid"', 'mode = "passive"'))
    assert daemon.reload_policy(force=True) and daemon.mode == "passive"
    assert daemon._may_plan()


# --- a scan under way when the mode, the network or the daemon says stop -----------------------


def slow_scan_settings(tmp_path, nmap: str, cidr: str = "198.18.0.0/24") -> None:
    """Hybrid mode over a fake nmap (nothing leaves this machine); no liveness sweeps (no socket)."""
    text = SETTINGS.format(mode="hybrid", state=tmp_path / "state").replace("198.18.0.0/24", cidr)
    text = text.replace("warmup = 30", "warmup = 30\nliveness_interval = 0")
    text += f'\n[discovery.active]\nnmap_path = "{nmap}"\nhost_timeout = 1000\nparallel = 2\n'
    (tmp_path / "dynapot.toml").write_text(text)


def half_done_nmap(tmp_path):
    """A fake nmap: the sweep finds .10 and .11; .10's detailed scan ends at once (port 22 open),
    .11's never does (with a child that ignores SIGTERM). Every command line goes to `calls`."""
    pidfile, calls = tmp_path / "pids", tmp_path / "calls"
    hang = f'if [ "$ip" = 198.18.0.11 ]; then\n{hanging_detail(pidfile)}fi\n'
    nmap = fake_nmap(tmp_path, sweep_shell("198.18.0.10", "198.18.0.11"), hang + detail_xml_shell())
    script = Path(nmap)
    script.write_text(script.read_text().replace("#!/bin/sh\n", f'#!/bin/sh\necho "$*" >> "{calls}"\n', 1))
    return nmap, pidfile, calls


def hosts_in(db) -> dict[str, int]:
    with db.session() as session:
        return {host.ip: len(host.ports) for host in session.scalars(select(Host))}


async def until(predicate, timeout: float = 30.0) -> bool:
    """Poll `predicate` in the event loop until it holds or `timeout` passes (bounded)."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return bool(predicate())


def test_passive_mode_ends_the_nmaps_of_a_scan_under_way_and_keeps_the_hosts_scanned_to_the_end(
    make_daemon, db, tmp_path
):
    nmap, pidfile, _ = half_done_nmap(tmp_path)
    slow_scan_settings(tmp_path, nmap)
    daemon = make_daemon()
    path = tmp_path / "dynapot.toml"

    async def scenario() -> list[int]:
        daemon._stop = stop = asyncio.Event()
        daemon._apply_mode()
        assert await until(lambda: len(pids_in(pidfile)) >= 2)  # .11's nmap and its child run
        path.write_text(path.read_text().replace('mode = "hybrid"', 'mode = "passive"'))
        assert daemon.reload_policy(force=True) is True
        await daemon.scans_ended()
        stop.set()
        return pids_in(pidfile)

    pids = asyncio.run(scenario())
    assert len(pids) == 2 and wait_all_dead(pids, within=1.0) == []  # ended and reaped when it returns
    stopped = daemon.status.scan_stopped
    assert stopped["reason"] == "the discovery mode turned passive"
    assert stopped["nmaps_ended"] == 1 and stopped["hosts_kept"] == 1 and stopped["hosts_dropped"] == 1
    assert hosts_in(db) == {"198.18.0.10": 1}  # whole results only: .11's killed scan is not kept
    assert daemon.status.last_scan is None  # the scan did not finish


def test_a_new_network_drops_the_old_networks_scan_and_scans_the_new_one(make_daemon, db, tmp_path):
    nmap, pidfile, calls = half_done_nmap(tmp_path)
    slow_scan_settings(tmp_path, nmap)
    daemon = make_daemon()
    path = tmp_path / "dynapot.toml"

    async def scenario() -> None:
        daemon._stop = stop = asyncio.Event()
        daemon._apply_mode()
        assert await until(lambda: len(pids_in(pidfile)) >= 2)
        first = list(daemon._discovery)
        path.write_text(path.read_text().replace("198.18.0.0/24", "198.18.1.0/28"))
        assert daemon.reload_policy(force=True) is True
        await daemon.scans_ended()
        assert all(t.done() for t in first) and wait_all_dead(pids_in(pidfile), within=1.0) == []
        stopped = daemon.status.scan_stopped
        assert stopped["reason"] == "the network changed to 198.18.1.0/28" and stopped["hosts_kept"] == 0
        assert hosts_in(db) == {}  # the old network's result is unwanted: .10's, whole, is dropped too
        assert daemon._discovery and not set(daemon._discovery) & set(first)  # a new scan loop
        assert await until(lambda: "198.18.1.0/28" in calls.read_text())  # ... of the new network
        daemon._stop_discovery("the test is over")
        await daemon.scans_ended()
        stop.set()

    asyncio.run(scenario())
    assert wait_all_dead(pids_in(pidfile), within=1.0) == []
    assert "-sn -n -T3 -e lo -oX - 198.18.0.0/24" in calls.read_text()


def test_exclusions_alone_do_not_stop_a_scan(make_daemon, tmp_path):
    nmap, pidfile, _ = half_done_nmap(tmp_path)
    slow_scan_settings(tmp_path, nmap)
    daemon = make_daemon()
    path = tmp_path / "dynapot.toml"

    async def scenario() -> None:
        daemon._stop = stop = asyncio.Event()
        daemon._apply_mode()
        assert await until(lambda: len(pids_in(pidfile)) >= 2)
        running = list(daemon._discovery)
        path.write_text(
            path.read_text().replace(
                'cidr = "198.18.0.0/24"', 'cidr = "198.18.0.0/24"\nexclude = ["198.18.0.11"]'
            )
        )
        assert daemon.reload_policy(force=True) is True
        await asyncio.sleep(0.2)
        assert daemon._discovery == running and not any(t.done() for t in running)
        assert daemon.status.scan_stopped is None
        daemon._stop_discovery("the test is over")
        await daemon.scans_ended()
        stop.set()

    asyncio.run(scenario())
    assert daemon.status.scan_stopped["reason"] == "the test is over"
    assert wait_all_dead(pids_in(pidfile), within=1.0) == []


def test_a_new_nmap_program_takes_a_restart_and_root_runs_none_another_account_could_change(
    make_daemon, tmp_path
):
    daemon = make_daemon()
    path = tmp_path / "dynapot.toml"
    path.write_text(path.read_text() + '\n[discovery.active]\nnmap_path = "/tmp/evil"\nparallel = 3\n')
    assert daemon.reload_policy(force=True) is True
    active = daemon.settings.discovery.active
    assert active.parallel == 3 and active.nmap_path == "nmap"  # the policy taken, the program not


def test_a_scan_refuses_an_nmap_another_account_could_change(make_daemon, db, tmp_path):
    import os
    import pwd

    if os.geteuid() != 0:
        pytest.skip("the check is root's")
    nmap, pidfile, _ = half_done_nmap(tmp_path)
    os.chown(nmap, pwd.getpwnam("nobody").pw_uid, -1)
    slow_scan_settings(tmp_path, nmap)
    daemon = make_daemon()

    async def scenario() -> None:
        daemon._stop = stop = asyncio.Event()
        daemon._apply_mode()
        assert await until(lambda: daemon.status.errors)
        daemon._stop_discovery("the test is over")
        await daemon.scans_ended()
        stop.set()

    asyncio.run(scenario())
    assert "nmap_path" in daemon.status.errors[-1] and "other than root" in daemon.status.errors[-1]
    assert not pidfile.exists() and hosts_in(db) == {}  # it never ran


def test_a_settings_file_others_may_write_may_not_make_a_child_root(make_daemon, tmp_path):
    import os
    import pwd

    path = tmp_path / "dynapot.toml"
    path.write_text(
        SETTINGS.format(mode="passive", state=tmp_path / "state").replace(
            'interface = "lo"', 'interface = "lo"\nsensor_user = "root"'
        )
    )
    assert make_daemon().settings.daemon.sensor_user == "root"  # root's file: the admin's choice
    if os.geteuid() != 0:
        pytest.skip("giving the file to another group takes root")
    os.chown(path, 0, pwd.getpwnam("nobody").pw_gid)
    path.chmod(0o664)  # as after `dynapot admin settings-access --grant`
    with pytest.raises(ConfigError, match=r"daemon\.sensor_user.*root, and .* is writable by the group"):
        make_daemon()
    path.write_text(
        path.read_text().replace('sensor_user = "root"', 'sensor_user = "nobody"')
        + '\n[web]\nenabled = true\nuser = "root"\n'
    )
    with pytest.raises(ConfigError, match=r"web\.user.*root"):
        make_daemon()

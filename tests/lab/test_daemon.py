"""`dynapot run` on the lab: discovery, re-planning, address conflicts, findings and alerts.

The daemon runs in the sensor namespace (as an administrator would run it on the sensor
machine), with its own SQLite database and state folder; an SMTP server (aiosmtpd) and a
webhook receiver run beside it on that namespace's loopback. Machines join and leave the lab
network while it runs; the attacker namespace scans, guesses passwords and sweeps a port.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynapot.honeyd import parse_config
from dynapot.lab.procs import wait_for
from dynapot.processes import python_command, terminate

pytestmark = pytest.mark.lab

RECEIVERS = Path(__file__).parent.parent / "receivers.py"
WEB_PROBE = Path(__file__).parent / "web_probe.py"
WORM_SOURCES = ("198.18.0.5", "198.18.0.6", "198.18.0.7")
HOLD_OFF = 10.0


class Running:
    def __init__(self, lab, workdir: Path, mailbox: Path) -> None:
        self.lab, self.workdir, self.mailbox = lab, workdir, mailbox
        self.process: subprocess.Popen | None = None
        self.state = workdir / "state"
        self.db = workdir / "dynapot.db"

    def start(self) -> None:
        settings = self.workdir / "dynapot.toml"
        with (self.workdir / "daemon.out").open("a") as out:
            self.process = self.lab.popen(
                self.lab.sensor,
                [*python_command(), "-m", "dynapot", "run", "--config", str(settings)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        stop(self.process)

    def query(self, sql: str, *args) -> list[tuple]:
        with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as conn:
            return conn.execute(sql, args).fetchall()

    def status(self, name: str = "daemon") -> dict:
        try:
            path = self.state / ("sensor/status.json" if name == "sensor" else "daemon-status.json")
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def plan(self) -> dict[str, dict]:
        """The deployed honeyd configuration: address -> its ports."""
        config = parse_config((self.state / "honeyd.conf").read_text())
        return {ip: config.templates[ip].ports for ip in config.bound_addresses()}

    def real(self, ip: str) -> bool:
        return bool(self.query("SELECT 1 FROM hosts WHERE ip = ? AND is_virtual = 0", ip))

    def mails(self) -> list[str]:
        return sorted(p.read_text(errors="replace") for p in self.mailbox.glob("mail-*.eml"))

    def hooks(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.mailbox.glob("hook-*.json"))]

    def output(self) -> str:
        return (self.workdir / "daemon.out").read_text(errors="replace")[-4000:]


def settings_text(workdir: Path, urls: dict) -> str:
    return f"""
[database]
url = "sqlite:///{workdir / "dynapot.db"}"

[[networks]]
cidr = "198.18.0.0/24"
gateway = "198.18.0.1"
exclude = ["198.18.0.3-198.18.0.9"]  # the attacker's addresses

[discovery]
mode = "hybrid"

[discovery.active]
ports = "21,22,80"
host_timeout = 60

[planner]
hold_off = {HOLD_OFF}

[daemon]
interface = "eth0"
state_dir = "{workdir / "state"}"
replan_interval = 1
liveness_interval = 2
scan_interval = 3600

[alerts]
urls = ["{urls["smtp"]}", "{urls["webhook"]}"]
min_risk = "medium"
retry_delay = 0.5

[correlation]
window = 120

[web]
enabled = true
listen = "127.0.0.1:8089"
data_dir = "{workdir / "web"}"
"""


@pytest.fixture(scope="module")
def running(lab, tmp_path_factory) -> Iterator[Running]:
    workdir = tmp_path_factory.mktemp("daemon")
    workdir.chmod(0o755)  # the sensor reads its state folder after dropping root
    mailbox = workdir / "mailbox"
    mailbox.mkdir()
    receivers = lab.popen(
        lab.sensor,
        [*python_command(), str(RECEIVERS), str(mailbox), "900"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    handle = Running(lab, workdir, mailbox)
    try:
        urls = json.loads(receivers.stdout.readline())
        (workdir / "dynapot.toml").write_text(settings_text(workdir, urls))
        handle.start()
        # Deployed: the first scan is done and the sensor answers for the planned hosts.
        ready = wait_for(
            lambda: (
                handle.status().get("last_scan")
                and handle.status("sensor").get("hosts", 0) > 200
                and handle.status("sensor").get("pending") == 0
            ),
            timeout=180,
        )
        assert ready, handle.output()
        yield handle
    finally:
        handle.stop()
        stop(receivers)


def stop(process: subprocess.Popen | None) -> None:
    terminate(process, 60)


def test_the_free_addresses_are_filled_and_real_ones_left_alone(running, lab):
    plan = running.plan()
    real = {str(h.ip) for h in lab.real_hosts}
    assert real and not real & set(plan)
    assert not {"198.18.0.1", "198.18.0.2", *WORM_SOURCES} & set(plan)
    assert all(running.real(ip) for ip in real)
    # 254 addresses - gateway - sensor - 7 reserved for the attacker - the real hosts
    assert len(plan) == 254 - 2 - 7 - len(real)
    status = subprocess.run(
        [
            *python_command(),
            "-m",
            "dynapot",
            "status",
            "--json",
            "--config",
            str(running.workdir / "dynapot.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shown = json.loads(status.stdout)
    assert len(shown["virtual_hosts"]) == len(plan) and shown["sensor"]["hosts"] == len(plan)
    assert shown["daemon"]["last_scan"]


def test_a_machine_on_a_virtual_address_gets_it_back_and_leaving_frees_it_again(running, lab):
    plan = running.plan()
    address = sorted(plan, key=lambda ip: int(ip.rsplit(".", 1)[1]))[-1]
    offset = int(address.rsplit(".", 1)[1])
    replans = running.status().get("replans", 0)
    joined = lab.join("joiner", offset)
    try:
        # Its first ARP (to reach the sensor's address) is a conflict: the sensor lets go.
        lab.exec(joined, ["ping", "-c", "2", "-i", "0.2", "-W", "1", "198.18.0.2"], timeout=30)
        assert wait_for(lambda: address in running.status("sensor").get("released", {}), 10)
        assert wait_for(lambda: running.real(address) and address not in running.plan(), 15), running.output()
        assert wait_for(lambda: running.status().get("replans", 0) > replans, 10)
        # From now on only the machine answers for the address.
        capture = lab.popen(
            lab.attacker,
            ["timeout", "8", "tcpdump", "-i", "eth0", "-e", "-n", "-l", f"src host {address} or arp"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(1.0)
        lab.exec(lab.attacker, ["ip", "neigh", "flush", "dev", "eth0"])
        pinged = lab.exec(lab.attacker, ["ping", "-c", "3", "-i", "0.2", "-W", "1", address], timeout=30)
        assert pinged.returncode == 0
        lines, _ = capture.communicate(timeout=30)
        answers = [
            line
            for line in lines.splitlines()
            if f"{address} " in line and ("is-at" in line or "ICMP" in line)
        ]
        assert answers, lines
        assert all(joined.mac in line.split(">")[0] for line in answers), lines
    finally:
        lab.leave("joiner")
    # Gone: after the hold-off its address is free again and a virtual host takes it.
    assert wait_for(lambda: address in running.plan(), HOLD_OFF + 30), running.output()
    # ... and the sensor answers ARP for it again (a silent unknown-OS host does not answer ping).
    joined_mac = joined.mac

    def answered_by_sensor() -> bool:
        lab.exec(lab.attacker, ["ip", "neigh", "flush", "to", address])
        lab.exec(lab.attacker, ["ping", "-c", "1", "-W", "1", address], timeout=10)
        shown = lab.exec(lab.attacker, ["ip", "neigh", "show", "to", address]).stdout
        return "lladdr" in shown and joined_mac not in shown

    assert wait_for(answered_by_sensor, 20)


def test_scan_brute_force_and_worm_raise_three_findings_and_alerts(running, lab):
    plan = running.plan()
    ssh_hosts = sorted(ip for ip, ports in plan.items() if ("tcp", 22) in ports)
    web_hosts = sorted(ip for ip, ports in plan.items() if ("tcp", 80) in ports)
    assert ssh_hosts and len(web_hosts) >= 8
    findings_before = running.query("SELECT count(*) FROM findings")[0][0]
    # 1. An nmap scan with OS detection of twelve honeypots.
    scan = ["nmap", "-n", "-Pn", "-O", "--max-os-tries", "1", "-p", "21,22,80,443", *web_hosts[:12]]
    assert lab.exec(lab.attacker, scan, timeout=300).returncode == 0
    # 2. Twelve SSH password guesses against one honeypot.
    for attempt in range(12):
        lab.exec(
            lab.attacker,
            [
                "sshpass", "-p", f"guess-{attempt}", "ssh", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no",
                "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=5", f"root@{ssh_hosts[0]}", "true",
            ],
            timeout=30,
        )  # fmt: skip
    # 3. A worm: three sources, one port, the same honeypots.
    for source in WORM_SOURCES:
        lab.exec(lab.attacker, ["ip", "addr", "add", f"{source}/24", "dev", "eth0"], check=True)
    try:
        sweep = (
            "import socket, sys\n"
            "for target in sys.argv[2:]:\n"
            "    for source in sys.argv[1].split(','):\n"
            "        s = socket.socket(); s.settimeout(2); s.bind((source, 0))\n"
            "        try: s.connect((target, 80))\n"
            "        except OSError: pass\n"
            "        s.close()\n"
        )
        worm = [*python_command(), "-c", sweep, ",".join(WORM_SOURCES), *web_hosts[-8:]]
        assert lab.exec(lab.attacker, worm, timeout=120).returncode == 0
    finally:
        for source in WORM_SOURCES:
            lab.exec(lab.attacker, ["ip", "addr", "del", f"{source}/24", "dev", "eth0"])

    def kinds() -> list[str]:
        rows = running.query("SELECT kind FROM findings ORDER BY kind")
        return [kind for (kind,) in rows]

    assert findings_before == 0
    assert wait_for(lambda: len(kinds()) >= 3, 30), (kinds(), running.output())
    time.sleep(3)  # nothing more may come
    assert kinds() == ["brute-force", "scan", "worm"]
    assert wait_for(lambda: len(running.mails()) >= 3 and len(running.hooks()) >= 3, 30), running.output()
    mails = running.mails()
    assert len(mails) == 3 and len(running.hooks()) == 3
    assert any("scan from 198.18.0.3" in m for m in mails)
    assert any("brute-force from 198.18.0.3" in m for m in mails)
    assert any("worm from" in m for m in mails)
    # The same scan again, within the window: the finding grows, nobody is told twice.
    assert lab.exec(lab.attacker, scan, timeout=300).returncode == 0
    time.sleep(4)
    assert kinds() == ["brute-force", "scan", "worm"]
    assert len(running.mails()) == 3 and len(running.hooks()) == 3
    sent = running.query("SELECT status, count(*) FROM alerts GROUP BY status")
    assert dict(sent) == {"sent": 6}
    # The daemon sums the events into the hourly roll-up the reports read: each flow event once.
    summed = (
        "SELECT (SELECT coalesce(sum(rows), 0) FROM event_rollup), (SELECT count(*) FROM honeypot_events"
        " WHERE src_ip != '0.0.0.0' AND id <= (SELECT last_event_id FROM event_rollup_mark)),"
        " (SELECT last_event_id FROM event_rollup_mark)"
    )
    assert wait_for(lambda: (running.query(summed)[0][2] or 0) > 0, 30), running.output()
    rolled, stored, _ = running.query(summed)[0]
    assert rolled == stored > 0


def test_a_new_policy_is_applied_to_the_running_sensor(running):
    settings = running.workdir / "dynapot.toml"
    before = len(running.plan())
    pid = running.status("sensor")["pid"]
    text = settings.read_text()
    settings.write_text(text.replace(f"hold_off = {HOLD_OFF}", f"hold_off = {HOLD_OFF}\nfill_ratio = 0.5"))
    try:
        assert wait_for(lambda: abs(len(running.plan()) - before / 2) <= 1, 20), running.output()
        assert wait_for(lambda: running.status("sensor").get("hosts") == len(running.plan()), 20)
        assert running.status("sensor")["pid"] == pid  # applied by the running sensor, not a new one
    finally:
        settings.write_text(text)
    assert wait_for(lambda: len(running.plan()) == before, 20)


def test_new_exclusions_and_mode_reach_the_running_daemon(running):
    """Addresses excluded on the fly are released at the next re-plan and never claimed; passive
    mode stops the scan loop, hybrid starts it again (a new scan); no restart."""
    settings = running.workdir / "dynapot.toml"
    text = settings.read_text()
    pid, before = running.process.pid, len(running.plan())
    fenced = {f"198.18.0.{n}" for n in range(100, 120)}
    assert fenced & set(running.plan())  # some of them are honeypots now
    settings.write_text(
        text.replace(
            '"198.18.0.3-198.18.0.9"', '"198.18.0.3-198.18.0.9", "198.18.0.100-198.18.0.119"'
        ).replace('mode = "hybrid"', 'mode = "passive"')
    )
    try:
        assert wait_for(lambda: not fenced & set(running.plan()), 30), running.output()
        assert wait_for(lambda: running.status().get("mode") == "passive", 10)
        assert not running.query(
            "SELECT ip FROM hosts WHERE is_virtual = 1 AND ip BETWEEN '198.18.0.100' AND '198.18.0.119'"
        )
        scanned = running.status()["last_scan"]
    finally:
        settings.write_text(text)
    assert wait_for(lambda: running.status().get("mode") == "hybrid", 10)
    assert wait_for(lambda: running.status().get("last_scan", 0) > scanned, 240), running.output()
    assert wait_for(lambda: len(running.plan()) == before, 30)
    assert running.process.poll() is None and running.process.pid == pid


def test_dynapot_run_serves_the_web_interface_as_an_unprivileged_child(running, lab):
    """[web] enabled: `dynapot run` starts `dynapot web` (TLS, self-signed), which answers /health
    and the login page, runs as the dynapot-web user (not the sensor's), and comes back when it is killed."""
    import os
    import pwd
    import re

    def web() -> dict:
        return running.status().get("web") or {}

    def answers(path: str, expect: str) -> bool:
        got = lab.exec(lab.sensor, ["curl", "-sk", "--max-time", "5", f"https://127.0.0.1:8089{path}"])
        return got.returncode == 0 and expect in got.stdout

    assert wait_for(lambda: web().get("running") and answers("/health", '"ok"'), 60), running.output()
    assert answers("/login", 'name="login_csrf"')
    first = web()["pid"]
    status = Path(f"/proc/{first}/status").read_text()
    uids = {int(x) for x in re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()}
    assert uids == {pwd.getpwnam("dynapot-web").pw_uid}
    os.kill(first, 9)
    assert wait_for(lambda: web().get("pid") not in (None, first) and answers("/health", '"ok"'), 60)
    assert web()["starts"] == 2 and web()["last_error"].startswith("exited with -9")


def test_the_web_childs_settings_change_is_written_by_the_daemon_as_root(running, lab):
    """The web child (dynapot-web) may not write the settings file, and need not: a change through
    its API is handed to the daemon, which validates it, writes the file as root, audits it and
    takes it up; a setting the page does not edit is refused, the file untouched."""
    import os

    from dynapot.db import open_database
    from dynapot.web.accounts import create_user

    database = open_database(f"sqlite:///{running.db}")
    try:
        create_user(database, "labapi", "lab api password!", "admin")
    finally:
        database.dispose()
    settings = running.workdir / "dynapot.toml"
    text = settings.read_text()
    os.chown(settings, 0, 0)
    settings.chmod(0o644)  # root's: the web account reads it and cannot write it

    def api(*argv: str) -> dict:
        got = lab.exec(lab.sensor, ["curl", "-sk", "--max-time", "20", *argv])
        return json.loads(got.stdout or "{}")

    base = "https://127.0.0.1:8089/api/v1"
    assert wait_for(lambda: (running.status().get("web") or {}).get("running"), 60), running.output()
    assert wait_for(
        lambda: "access_token" in api("-d", "username=labapi&password=lab api password!", f"{base}/token"), 60
    )
    token = api("-d", "username=labapi&password=lab api password!", f"{base}/token")["access_token"]
    auth = ["-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json"]
    try:
        changed = api("-X", "PATCH", *auth, "-d", '{"expiry.alerts": 12}', f"{base}/settings")
        assert changed.get("changed") == [{"setting": "expiry.alerts", "old": "365", "new": "12.0"}], changed
        assert "alerts = 12" in settings.read_text() and settings.stat().st_uid == 0
        assert running.query("SELECT actor, new_value FROM audit_log WHERE target = 'expiry.alerts'") == [
            ("labapi", "12.0")
        ]
        refused = api("-X", "PATCH", *auth, "-d", '{"daemon.sensor_user": "root"}', f"{base}/settings")
        assert "daemon.sensor_user" in refused.get("errors", {}), refused
        assert "sensor_user" not in settings.read_text()
    finally:
        settings.write_text(text)


def test_the_web_interface_shows_a_live_probe_and_its_setting_reaches_the_running_daemon(running, lab):
    """Chromium (in the sensor's namespace) on `dynapot web`: an attacker's connection to a virtual
    host appears in the live feed without a reload; the fill ratio changed on the settings page is
    stored, audited, and halves the running daemon's deployment."""
    from dynapot.db import open_database
    from dynapot.web.accounts import create_user

    database = open_database(f"sqlite:///{running.db}")
    try:
        create_user(database, "labadmin", "lab admin password", "admin")
    finally:
        database.dispose()
    settings = running.workdir / "dynapot.toml"
    text = settings.read_text()
    before = len(running.plan())
    target, port = next(
        (ip, number)
        for ip, ports in sorted(running.plan().items())
        for (proto, number), action in sorted(ports.items())
        if proto == "tcp" and action.kind in ("open", "service")
    )
    shots = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
    with (running.workdir / "web.out").open("w") as out:
        web = lab.popen(
            lab.sensor,
            [
                *python_command(),
                "-m",
                "dynapot",
                "web",
                "--no-tls",
                "--listen",
                "127.0.0.1:8088",
                "--config",
                str(settings),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    probe = None
    try:
        assert wait_for(
            lambda: lab.exec(lab.sensor, ["curl", "-sf", "http://127.0.0.1:8088/health"]).returncode == 0, 30
        ), (running.workdir / "web.out").read_text()
        probe = lab.popen(
            lab.sensor,
            [
                *python_command(),
                str(WEB_PROBE),
                "http://127.0.0.1:8088",
                "labadmin",
                "lab admin password",
                f"{lab.attacker.ip}:",
                str(shots),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert probe.stdout.readline().strip() == "ready", probe.stdout.read()
        connect = f"import socket; socket.create_connection(({target!r}, {int(port)}), 5).close()"
        assert lab.exec(lab.attacker, [*python_command(), "-c", connect], timeout=30).returncode == 0
        assert probe.stdout.readline().strip() == "seen", probe.stdout.read()
        assert probe.stdout.readline().strip() == "saved", probe.stdout.read()
        assert "fill_ratio = 0.5" in settings.read_text()
        assert running.query(
            "SELECT actor, old_value, new_value FROM audit_log WHERE target = 'planner.fill_ratio'"
        ) == [("labadmin", "1.0", "0.5")]
        assert wait_for(lambda: abs(len(running.plan()) - before / 2) <= 1, 30), running.output()
    finally:
        stop(probe)
        stop(web)
        settings.write_text(text)
    assert wait_for(lambda: len(running.plan()) == before, 30)


def test_a_restart_resumes_the_same_deployment(running):
    before = running.plan()
    old_sensor = running.status("sensor")["pid"]
    running.stop()
    assert running.process.returncode == 0, running.output()
    running.start()
    assert wait_for(
        lambda: (
            running.status("sensor").get("pid") not in (None, old_sensor)
            and running.status("sensor").get("hosts") == len(before)
            and running.status("sensor").get("pending") == 0
        ),
        60,
    ), running.output()
    assert running.plan() == before  # the same addresses and ports

"""The command line: clear errors, exit statuses, nothing half-stored."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from dynapot.cli import main

NMAP_XML_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -O -sV 198.18.0.0/28" start="{t0}" version="7.93">
<host starttime="{t0}" endtime="{t0}"><status state="up" reason="arp-response"/>
<address addr="198.18.0.2" addrtype="ipv4"/><address addr="00:0C:29:11:22:33" addrtype="mac" vendor="VMware"/>
<hostnames/>
<ports>
<port protocol="tcp" portid="445"><state state="open" reason="syn-ack"/>
<service name="microsoft-ds" product="Microsoft Windows XP microsoft-ds" method="probed" conf="10"/></port>
<port protocol="tcp" portid="139"><state state="open" reason="syn-ack"/>
<service name="netbios-ssn" method="probed" conf="10"/></port>
</ports>
<os><osmatch name="Microsoft Windows XP SP3" accuracy="96" line="1">
<osclass type="general purpose" vendor="Microsoft" osfamily="Windows" osgen="XP" accuracy="96">
<cpe>cpe:/o:microsoft:windows_xp::sp3</cpe></osclass>
</osmatch></os>
</host>
<runstats><finished time="{t0}" timestr="x" elapsed="10" summary="x" exit="success"/>
<hosts up="1" down="0" total="1"/></runstats>
</nmaprun>
"""
NMAP_XML = NMAP_XML_TEMPLATE.replace("{t0}", str(int(time.time())))  # recent: within the hold-off


@pytest.fixture
def run(db_url):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [*args, "--db", db_url], catch_exceptions=False)

    return invoke


def test_import_then_plan_json(run, tmp_path):
    scan = tmp_path / "scan.xml"
    scan.write_text(NMAP_XML)
    result = run("import-nmap", str(scan))
    assert result.exit_code == 0, result.output
    assert "stored 1 new" in result.output
    result = run("plan", "--network", "198.18.0.0/28", "--gateway", "198.18.0.1", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["real_hosts"] == 1 and plan["free_ips"] == 12
    assert len(plan["virtual_hosts"]) == 12
    for vh in plan["virtual_hosts"]:
        assert set(vh) == {"ip", "mac", "os", "personality", "services", "why"}
        assert vh["os"] == "Windows XP"  # the operating_systems row: family + generation
        assert vh["why"].startswith("mirrors the OS of 198.18.0.2 (nmap")
        assert vh["personality"] == "Microsoft Windows XP SP3"
        assert {(s["proto"], s["port"], s["service"]) for s in vh["services"]} == {
            ("tcp", 139, "smb"),
            ("tcp", 445, "smb"),
        }


def test_truncated_xml_is_refused_and_nothing_is_stored(run, tmp_path):
    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    good.write_text(NMAP_XML)
    bad.write_text(NMAP_XML[: len(NMAP_XML) // 2])
    result = run("import-nmap", str(good), str(bad))
    assert result.exit_code == 2
    assert "bad.xml" in result.output
    # The good file was not stored either (all or nothing): not even a database was made.
    result = run("hosts", "--json")
    assert result.exit_code == 2
    assert "no database file" in result.output or "no dynapot tables" in result.output


@pytest.mark.parametrize("network", ["198.18.0.5/24", "banana", "198.18.0.0/33"])
def test_bad_network_is_a_clear_error(run, network):
    result = run("plan", "--network", network)
    assert result.exit_code == 2
    assert "is not an IPv4 network" in result.output


def test_database_that_does_not_answer(tmp_path):
    url = f"postgresql+psycopg://nobody@/dynapot?host={tmp_path}"  # no server on this socket folder
    result = CliRunner().invoke(main, ["hosts", "--db", url])
    assert result.exit_code == 1
    assert "does not answer" in result.output


def test_bad_database_url():
    result = CliRunner().invoke(main, ["hosts", "--db", "not a url"])
    assert result.exit_code == 2
    assert "not a database URL" in result.output


def test_password_in_url_is_never_printed(tmp_path):
    url = f"postgresql+psycopg://user:s3cret-pw@/dynapot?host={tmp_path}"
    result = CliRunner().invoke(main, ["hosts", "--db", url])
    assert result.exit_code == 1
    assert "s3cret-pw" not in result.output


def test_every_subcommand_accepts_db():
    def walk(group, prefix=()):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, (*prefix, name))
            else:
                yield (*prefix, name), command

    for path, command in walk(main):
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert "--db" in options, f"dynapot {' '.join(path)} lacks --db"


def test_expire_reports_counts(run):
    assert run("db", "upgrade").exit_code == 0
    result = run("expire")
    assert result.exit_code == 0
    assert "honeypot_events: 0 expired" in result.output


def test_run_refuses_settings_it_cannot_run_with(tmp_path):
    db = f"sqlite:///{tmp_path / 'd.db'}"
    settings = tmp_path / "dynapot.toml"
    settings.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n')
    result = CliRunner().invoke(main, ["run", "--db", db, "--config", str(settings)])
    assert result.exit_code == 2 and "daemon.interface" in result.output
    settings.write_text(
        f'[[networks]]\ncidr = "198.18.0.0/24"\n[daemon]\ninterface = "nosuchif0"\nstate_dir = "{tmp_path}"\n'
    )
    result = CliRunner().invoke(main, ["run", "--db", db, "--config", str(settings)])
    assert result.exit_code == 2 and "nosuchif0" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d.db").exists()  # refused before the database was made


def test_status_without_a_running_daemon(tmp_path):
    settings = tmp_path / "dynapot.toml"
    settings.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n')
    db = f"sqlite:///{tmp_path / 'd.db'}"
    assert CliRunner().invoke(main, ["db", "upgrade", "--db", db]).exit_code == 0
    result = CliRunner().invoke(main, ["status", "--json", "--db", db, "--config", str(settings)])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["daemon"] is None and status["sensor"] is None and status["virtual_hosts"] == []


def test_status_shows_the_sensors_drop_counters_like_a_kernel(tmp_path):
    """One line per drop counter that is not zero, from the packet path, the C receive thread and
    the event path; --json has them too; an attacker-chosen name cannot drive the terminal."""
    state = tmp_path / "state"
    (state / "sensor").mkdir(parents=True)
    health = {
        "time": time.time(), "pid": 4242, "hosts": 3, "pending": 0, "released": [], "flows": 0,
        "counters": {"ethernet: malformed": 7, "send: no neighbour": 0, "bad\x1b[2J": 1},
        "fastpath": {"received": 900, "answered_syn": 12, "dropped": 5, "send_errors": 0, "recv_errors": 2},
        "events_written": 10, "events_lost": 4,
        "events": {
            "accepted": 10, "written": 10, "stored": 6, "replayed": 2, "queued": 0,
            "lag_ms": {"p50": 1.0, "p99": 2.5, "max": 3.0},
            "journal": {"bytes": 0, "segments": 1, "full": 0, "write_errors": 0, "damaged_segments": 0},
            "drops": {"events: queue full (lost)": 4, "events: quarantined (refused by the database)": 1},
        },
    }  # fmt: skip
    (state / "sensor" / "status.json").write_text(json.dumps(health))
    settings = tmp_path / "dynapot.toml"
    settings.write_text(f'[daemon]\nstate_dir = "{state}"\n')
    db = f"sqlite:///{tmp_path / 'd.db'}"
    assert CliRunner().invoke(main, ["db", "upgrade", "--db", db]).exit_code == 0
    result = CliRunner().invoke(main, ["status", "--db", db, "--config", str(settings)])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert "7  ethernet: malformed" in lines
    assert "5  fastpath: dropped" in lines and "2  fastpath: recv errors" in lines
    assert "4  events: queue full (lost)" in lines
    assert "1  events: quarantined (refused by the database)" in lines
    assert "1  bad\\x1b[2J" in lines and "\x1b" not in result.output
    assert not any("no neighbour" in line or "send errors" in line for line in lines)  # zero: not shown
    assert any("lag p50 1.0 ms, p99 2.5 ms" in line for line in lines)
    as_json = json.loads(
        CliRunner().invoke(main, ["status", "--json", "--db", db, "--config", str(settings)]).output
    )
    assert as_json["sensor"]["drops"]["fastpath: dropped"] == 5
    assert "send: no neighbour" not in as_json["sensor"]["drops"]


def test_status_says_when_a_scan_was_stopped_and_how_long_its_nmaps_took_to_end(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    stopped = {
        "reason": "the discovery mode turned passive", "time": time.time(), "network": "198.18.0.0/24",
        "nmaps_ended": 3, "seconds": 0.42, "hosts_kept": 2, "hosts_dropped": 5,
    }  # fmt: skip
    daemon = {"time": time.time(), "mode": "passive", "network": "198.18.0.0/24", "replans": 0}
    (state / "daemon-status.json").write_text(json.dumps({**daemon, "scan_stopped": stopped}))
    settings = tmp_path / "dynapot.toml"
    settings.write_text(f'[daemon]\nstate_dir = "{state}"\n')
    db = f"sqlite:///{tmp_path / 'd.db'}"
    assert CliRunner().invoke(main, ["db", "upgrade", "--db", db]).exit_code == 0
    result = CliRunner().invoke(main, ["status", "--db", db, "--config", str(settings)])
    assert result.exit_code == 0, result.output
    assert (
        "(the discovery mode turned passive): 3 nmap(s) ended in 0.42 s; "
        "2 host(s) scanned to the end kept, 5 dropped"
    ) in result.output

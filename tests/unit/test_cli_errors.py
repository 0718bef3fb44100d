"""Every subcommand, given bad values: one clear line, exit status 2, no traceback, nothing written.

`CASES` has bad invocations for each command of the `dynapot` group; the commands are read from
the group itself, so a new command without cases fails `test_every_command_has_bad_value_cases`.
Each case runs twice: against an existing SQLite database, whose bytes must not change, and
against a database path that does not exist, which must not appear. Nothing is mocked: the
real command runs in-process (click's CliRunner) on real files in tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap
from sqlalchemy import text
from test_cli import NMAP_XML_TEMPLATE as NMAP_XML

from dynapot.cli import main
from dynapot.db import Access, DatabaseMissing, open_database

P0F_LINE = (
    "[2024/05/01 10:00:00] mod=syn|cli=198.18.0.5/1000|srv=198.18.0.1/80|subj=cli|os=Linux 3.x|dist=0"
    "|params=none|raw_sig=4:64+0:0:1460:mss*20,7:mss,sok,ts,nop,ws:df,id+:0"
)
LONG_AGO = 1_262_304_000  # 2010-01-01: far older than expiry.hosts
MISSING = "no database file"


@dataclass(frozen=True)
class Case:
    """A bad invocation and what its one error line must say ({tmp} is the test's folder)."""

    args: tuple[str, ...]
    says: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    own_db: bool = False  # the case names its own --db
    states: tuple[str, ...] = ("existing", "missing")  # the databases it runs against


TO = ("--collector", "127.0.0.1:1101")  # the agent's one required option


def common(*base: str, settings: str = "--config") -> list[Case]:
    """Bad values every command with --db and a settings file takes."""
    return [
        Case(
            (*base, "--db", "not a url"), ("--db not a url: not a database URL", "sqlite:////"), own_db=True
        ),
        Case((*base, settings, "{tmp}/nope.toml"), (f"'{settings}'", "nope.toml", "does not exist")),
        Case(
            base,
            ("DYNAPOT_PLANNER__FILL_RATIO=2 (planner.fill_ratio): must be less than or equal to 1",),
            env={"DYNAPOT_PLANNER__FILL_RATIO": "2"},
        ),
        Case(
            base,
            ("DYNAPOT_PLANER__FILL_RATIO=0.5 (planer): not a setting (known: database, planner",),
            env={"DYNAPOT_PLANER__FILL_RATIO": "0.5"},
        ),
        Case(
            base,
            ("DYNAPOT_ALERTS__URLS (alerts.urls): entry 1 is not a mailto:// URL that apprise can use",),
            env={"DYNAPOT_ALERTS__URLS": '["mailto://user:hunter2@"]'},
        ),
        Case(
            (*base, settings, "{tmp}/wide.toml"),
            ("networks in {tmp}/wide.toml", "131,072 addresses", "planner.max_network_size allows (65,536)"),
        ),
    ]


def missing_database(*base: str) -> Case:
    """A command that needs an existing database, run where there is none."""
    return Case(
        base,
        ("--db sqlite:///{tmp}/none.db: no database file {tmp}/none.db", "`dynapot db upgrade` creates"),
        states=("missing",),
    )


PLAN = ("--network", "198.18.0.0/28")

CASES: dict[str, list[Case]] = {
    "db upgrade": common(),
    "expire": [*common(), missing_database()],
    "scan": [
        *common("198.18.0.1"),
        Case(("banana",), ("'TARGETS...'", "'banana' is not an IPv4/IPv6 address or CIDR network")),
        Case(("198.18.0.0/15",), ("131072 addresses, more than the limit of 65536",)),
        Case(("198.18.0.1", "-N", "0"), ("--parallel 0: must be greater than or equal to 1",)),
        Case(("198.18.0.1", "--host-timeout", "0"), ("--host-timeout 0.0: must be greater than 0",)),
        Case(("198.18.0.1", "--ports", "99999"), ("'--ports'", "'99999'", "beyond port 65535")),
        Case(("198.18.0.1", "--nmap", "{tmp}/no-nmap"), ("--nmap {tmp}/no-nmap: no such program",)),
    ],
    "import-nmap": [
        *common("{xml}"),
        Case(("{tmp}/nope.xml",), ("'FILES...'", "nope.xml", "does not exist")),
        Case(("{xml}", "{bad_xml}"), ("{bad_xml}",)),  # all or nothing: the good file is not stored
    ],
    "import-p0f": [
        *common("{p0f}"),
        Case(("{p0f}", "{bad_p0f}"), ("{bad_p0f}:1: neither a p0f 3 log line nor p0f 2 output",)),
        Case(("{p0f}", "--p0f-db", "{bad_fp}"), ("{bad_fp}",)),
    ],
    "hosts": [*common(), missing_database()],
    "fingerprint": [
        *common("--pcap", "{pcap}"),
        Case(("--pcap", "{tmp}/nope.pcap"), ("'--pcap'", "nope.pcap", "does not exist")),
        Case(("--pcap", "{xml}"), ("{xml}:", "pcap")),
        Case(("--pcap", "{pcap}", "--p0f-db", "{tmp}/nope.fp"), ("'--p0f-db'", "nope.fp", "does not exist")),
    ],
    "watch": [
        *common("-i", "lo", "--seconds", "0.1"),
        Case(("-i", "nosuchif0"), ("'--interface' / '-i'", "no network interface 'nosuchif0' here", "lo")),
        Case(("-i", "lo", "--seconds", "0"), ("'--seconds'", "0")),
    ],
    "plan": [
        *common(*PLAN),
        missing_database(*PLAN),
        missing_database(*PLAN, "--apply"),
        Case(("--network", "198.18.0.5/24"), ("'--network'", "'198.18.0.5/24' is not an IPv4 network")),
        Case(
            ("--network", "198.18.0.0/15"),
            (
                "--network 198.18.0.0/15: 198.18.0.0/15 has 131,072 addresses",
                "max_network_size allows (65,536)",
            ),
        ),
        Case((*PLAN, "--gateway", "banana"), ("'--gateway'", "'banana' is not an IPv4 address")),
        Case(
            (*PLAN, "--gateway", "198.18.1.1"),
            ("--gateway 198.18.1.1: 198.18.1.1 is outside the network 198.18.0.0/28",),
        ),
        Case((*PLAN, "--exclude", "1.2.3"), ("'--exclude'", "'1.2.3' is not an address, range or network")),
        Case((*PLAN, "--fill-ratio", "2"), ("--fill-ratio 2.0: must be less than or equal to 1",)),
        Case((*PLAN, "--hold-off", "-1"), ("--hold-off -1.0: must be greater than or equal to 0",)),
        Case((*PLAN, "--unknown-os", "maybe"), ("'--unknown-os'", "'maybe'", "'infer'", "'exclude'")),
    ],
    "honeyd-config": [
        *common(*PLAN),
        missing_database(*PLAN),
        missing_database(*PLAN, "--apply", "-o", "{tmp}/honeyd.conf"),
        Case(
            (*PLAN, "--apply", "-o", "{tmp}/nodir/honeyd.conf"),
            ("'-o' / '--output'", "'{tmp}/nodir/honeyd.conf'", "the folder '{tmp}/nodir' does not exist"),
        ),
        Case((*PLAN, "-o", "{tmp}"), ("'-o' / '--output'", "is a folder")),
        Case(("--network", "198.18.0.0/15", "--apply"), ("--network 198.18.0.0/15:", "max_network_size")),
    ],
    "honeyd-check": [
        *common("{bad_honeyd}"),
        Case(("{tmp}/nope.conf",), ("'FILE'", "nope.conf", "does not exist")),
        Case(("{bad_honeyd}",), ("{bad_honeyd}:2: bind 198.18.0.95 nosuch: unknown template 'nosuch'",)),
    ],
    "sensor": [
        # --no-db, and a configuration the sensor refuses: were a case ever accepted, it fails fast.
        *common("-i", "lo", "--config", "{bad_honeyd}", "--no-db", settings="--settings"),
        Case(("-i", "nosuchif0", "--config", "{bad_honeyd}"), ("'--interface' / '-i'", "'nosuchif0'")),
        Case(("-i", "lo", "--config", "{tmp}/nope.conf"), ("'--config'", "nope.conf", "does not exist")),
        missing_database("-i", "lo", "--config", "{bad_honeyd}"),  # it logs into an existing one
    ],
    "run": [
        *common("--seconds", "0.1"),
        Case(("--seconds", "0.1"), ("daemon.interface: required",)),
        Case(("--config", "{daemon_toml}", "--seconds", "0"), ("'--seconds'",)),
        Case(
            ("--config", "{daemon_toml}", "--interface", "nosuchif0"),
            ("--interface nosuchif0: no network interface 'nosuchif0' here",),
        ),
        Case(("--config", "{two_networks}"), ("exactly one network", "not 2")),
    ],
    "status": [*common(), missing_database()],
    "report": [
        *common(),
        missing_database(),
        Case(("--since", "banana"), ("'--since'", "'banana' is neither a duration")),
        Case(("--since", "1h", "--until", "2h"), ("--until", "is not later than --since", "period is empty")),
        Case(("--format", "pdf"), ("'--format'", "'pdf'", "'html'")),
        Case(("--limit", "0"), ("'--limit'", "0")),
        Case(("-o", "{tmp}/nodir/report.html"), ("'-o' / '--output'", "does not exist")),
    ],
    "findings": [
        *common(),
        missing_database(),
        missing_database("--store"),
        Case(("--since", "banana"), ("'--since'", "'banana' is neither a duration")),
        Case(("--since", "1h", "--until", "2h", "--store"), ("is not later than --since",)),
    ],
    "collector": [
        *common("--seconds", "0.1"),
        Case(("--listen", "localhost:1101"), ("--listen localhost:1101", "'localhost' is not an IP address")),
        Case(("--listen", "127.0.0.1"), ("--listen 127.0.0.1", "is not ADDR:PORT")),
        Case(("--listen", "127.0.0.1:70000"), ("--listen 127.0.0.1:70000", "is not ADDR:PORT")),
        Case(("--magic", "0xZZ"), ("--magic 0xZZ", "'0xZZ' is not a number")),
        Case(("--magic", "0x1FFFFFFFF"), ("--magic 0x1FFFFFFFF: must be 0 to 0xFFFFFFFF",)),
        Case(("--seconds", "0"), ("'--seconds'", "0")),
    ],
    "agent": [
        *common(*TO, "--seconds", "0.1"),
        Case(("--collector", "localhost:1101"), ("--collector localhost:1101", "not an IP")),
        Case(("--collector", "127.0.0.1"), ("--collector 127.0.0.1", "is not ADDR:PORT")),
        Case(("--collector", "127.0.0.1:0"), ("--collector 127.0.0.1:0", "port 0")),
        Case((*TO, "--magic", "0xZZ"), ("--magic 0xZZ", "'0xZZ' is not a number")),
        Case((*TO, "--magic", "0x1FFFFFFFF"), ("--magic 0x1FFFFFFFF: must be 0 to 0xFFFFFFFF",)),
        Case((*TO, "--netns", "{tmp}/nope"), ("--netns {tmp}/nope: No such file",)),
        Case((*TO, "--seconds", "0"), ("'--seconds'", "0")),
        Case((), ("Missing option '--collector'",)),
    ],
    "sessions": [
        *common(),
        missing_database(),
        Case(("--honeypot", "banana"), ("--honeypot banana: not an IP address",)),
        Case(("--since", "banana"), ("'--since'", "'banana' is neither a duration")),
    ],
    "sessions replay": [
        *common("1"),
        missing_database("1"),
        Case(("0",), ("'ID'", "0")),
        Case(("1", "--speed", "0"), ("'--speed'", "0")),
        Case(("1", "--max-delay", "-1"), ("'--max-delay'", "-1")),
    ],
    "lab up": [Case(("--run-id", "XYZ"), ("'--run-id'", "'XYZ' is not a run id (6 lowercase hex digits"))],
    "lab down": [
        Case(("zz",), ("'[RUN_ID]'", "'zz' is not a run id")),
        Case((), ("give either RUN_ID or --all",)),
    ],
    "lab list": [Case(("extra",), ("unexpected extra argument (extra)",))],
    "demo": [*common("--out", "{tmp}/demo"), Case(("--out", "{xml}"), ("'--out'", "is a file"))],
    "admin create-user": [
        *common("alice", "--role", "admin"),
        Case(("alice", "--role", "root"), ("'--role'", "'root'", "'viewer'")),
        Case(("alice",), ("--role is required: admin",)),
        Case(("alice", "--role", "admin"), ("no password on standard input",)),  # before any database
    ],
    "admin list-users": [*common(), missing_database()],
    "admin set-password": [
        *common("alice"),
        Case(("alice",), ("no password on standard input",)),  # before any database
    ],
    "admin delete-user": [
        *common("alice"),
        missing_database("alice"),
        Case(("nobody",), ("there is no user 'nobody'",), states=("existing",)),
    ],
    "admin unlock-user": [
        *common("alice"),
        missing_database("alice"),
        Case(("nobody",), ("there is no user 'nobody'",), states=("existing",)),
    ],
    "admin disable-user": [
        *common("alice"),
        missing_database("alice"),
        Case(("nobody",), ("there is no user 'nobody'",), states=("existing",)),
    ],
    "admin enable-user": [
        *common("alice"),
        missing_database("alice"),
        Case(("nobody",), ("there is no user 'nobody'",), states=("existing",)),
    ],
    "admin create-token": [
        *common("ci", "--user", "alice"),
        missing_database("ci", "--user", "alice"),
        Case(("ci", "--user", "nobody"), ("there is no user 'nobody'",), states=("existing",)),
        Case(("ci", "--user", "alice", "--days", "0"), ("'--days'", "0")),
        Case(("c i", "--user", "alice"), ("'c i' is not a user name",), states=("existing",)),
    ],
    "admin list-tokens": [*common(), missing_database()],
    "admin revoke-token": [
        *common("1"),
        missing_database("1"),
        Case(("x",), ("'TOKEN_ID'", "'x'")),
        Case(("99",), ("there is no API token 99",), states=("existing",)),
    ],
    "admin held-plan": [*common(), missing_database()],
    "admin apply-plan": [
        *common("0" * 64),
        missing_database("0" * 64),
        Case(("nonsense",), ("that is not a plan's digest", "admin held-plan"), states=("existing",)),
        Case(("0" * 64,), ("no longer the one pending", "admin held-plan"), states=("existing",)),
    ],
    "admin audit": [*common(), missing_database(), Case(("--limit", "0"), ("'--limit'", "0"))],
    "admin settings-access": [
        *common(),
        Case((), ("no settings file: give --config FILE",)),
        # A folder shared with other files (this test's) is never handed to the web account.
        Case(
            ("--config", "{daemon_toml}", "--write", "--grant"),
            ("settings access not granted:", "other files"),
        ),
        # Nor is the file when the account cannot reach its folder (pytest's is closed to others).
        Case(("--config", "{daemon_toml}", "--grant"), ("settings access not granted:", "cannot enter")),
    ],
    # Every case fails before a socket is opened: were one ever accepted, the server would start.
    "web": [
        *common("--no-tls", "--listen", "127.0.0.1:1"),
        missing_database("--no-tls", "--listen", "127.0.0.1:1"),
        Case(("--listen", "banana"), ("'--listen'", "'banana' is not HOST:PORT")),
        Case(("--listen", "127.0.0.1:0"), ("'--listen'", "the port must be 1-65535")),
        Case(("--listen", "example.org:8443"), ("'--listen'", "is not an IP address")),
        Case(("--cert", "{xml}"), ("--cert and --key go together",)),
        Case(("--no-tls", "--cert", "{xml}", "--key", "{xml}"), ("--no-tls and --cert contradict",)),
        Case(("--cert", "{tmp}/no.pem", "--key", "{xml}"), ("'--cert'", "no.pem", "does not exist")),
    ],
}


def command_names(group: click.Group = main, prefix: tuple[str, ...] = ()) -> list[str]:
    names = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            if command.invoke_without_command:  # a group that is a command too (`sessions`)
                names.append(" ".join((*prefix, name)))
            names += command_names(command, (*prefix, name))
        else:
            names.append(" ".join((*prefix, name)))
    return names


def test_every_command_has_bad_value_cases():
    assert set(command_names()) == set(CASES), "give each command bad-value cases in CASES"


@pytest.fixture(scope="session")
def existing_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inventory with one host, made once and copied into each test."""
    folder = tmp_path_factory.mktemp("template")
    scan = folder / "scan.xml"
    scan.write_text(NMAP_XML.replace("{t0}", str(int(time.time()))))
    url = f"sqlite:///{folder / 'd.db'}"
    result = CliRunner().invoke(main, ["import-nmap", str(scan), "--db", url])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["d.db", "scan.xml"]  # no WAL left over
    return folder / "d.db"


def files(tmp: Path) -> dict[str, str]:
    """Every file under `tmp` with a digest of its bytes: a write anywhere changes this."""
    return {
        str(path.relative_to(tmp)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(tmp.rglob("*"))
    }


def inputs(tmp: Path, existing: Path) -> dict[str, str]:
    """The files the cases name: good and bad inputs, settings files."""
    made = {
        "tmp": tmp,
        "xml": tmp / "scan.xml",
        "bad_xml": tmp / "bad.xml",
        "p0f": tmp / "p0f.log",
        "bad_p0f": tmp / "bad.log",
        "bad_fp": tmp / "p0f.fp",
        "pcap": tmp / "cap.pcap",
        "bad_honeyd": tmp / "honeyd.conf",
        "wide": tmp / "wide.toml",
        "daemon_toml": tmp / "daemon.toml",
        "two_networks": tmp / "two.toml",
    }
    xml = NMAP_XML.replace("{t0}", str(int(time.time())))
    made["xml"].write_text(xml)
    made["bad_xml"].write_text(xml[: len(xml) // 2])
    made["p0f"].write_text(P0F_LINE + "\n")
    made["bad_p0f"].write_text("hello world\n")
    made["bad_fp"].write_text("[tcp:request]\nlabel = nonsense\n")
    wrpcap(str(made["pcap"]), [])
    made["bad_honeyd"].write_text("create a\nbind 198.18.0.95 nosuch\n")
    made["wide"].write_text('[[networks]]\ncidr = "198.18.0.0/15"\n')
    made["daemon_toml"].write_text(
        f'[[networks]]\ncidr = "198.18.0.0/28"\n[daemon]\ninterface = "lo"\nstate_dir = "{tmp}/state"\n'
    )
    made["two_networks"].write_text(
        '[[networks]]\ncidr = "198.18.0.0/28"\n[[networks]]\ncidr = "198.18.1.0/28"\n'
        '[daemon]\ninterface = "lo"\n'
    )
    shutil.copy(existing, tmp / "d.db")
    return {name: str(path) for name, path in made.items()}


def the_error(result: Result) -> str:
    """The one error line of a refused command (click's usage lines may come before it)."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # nothing else escaped
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("command", "case", "state"),
    [
        pytest.param(command, case, state, id=f"{command}-{number}-{state}")
        for command, cases in CASES.items()
        for number, case in enumerate(cases)
        for state in case.states
    ],
)
def test_bad_values_are_one_line_status_2_and_write_nothing(
    command: str, case: Case, state: str, tmp_path: Path, existing_database: Path, monkeypatch
) -> None:
    values = inputs(tmp_path, existing_database)
    monkeypatch.chdir(tmp_path)  # anything written relative to the working directory shows too
    args = [*command.split(), *(arg.format(**values) for arg in case.args)]
    if not case.own_db:
        args += ["--db", f"sqlite:///{tmp_path / ('d.db' if state == 'existing' else 'none.db')}"]
    env = {"DYNAPOT_DB": None, "DYNAPOT_CONFIG": None, **case.env}
    before = files(tmp_path)
    result = CliRunner().invoke(main, args, env=env)
    line = the_error(result)
    for fragment in case.says:
        assert fragment.format(**values) in line, line
    assert "hunter2" not in result.output  # a URL's password is never echoed
    assert files(tmp_path) == before  # nothing written: the database untouched, none made


def test_help_shows_every_default():
    def commands(group: click.Group = main):
        for command in group.commands.values():
            yield from commands(command) if isinstance(command, click.Group) else [command]

    for command in commands():
        for param in command.params:
            if not isinstance(param, click.Option) or (param.is_flag and not param.secondary_opts):
                continue
            if param.required or param.hidden:
                continue
            shown = isinstance(param.show_default, str) or param.default is not None
            assert shown, f"{command.name} {param.opts} shows no default in --help"
    result = CliRunner().invoke(main, ["plan", "--help"])
    assert "[default: (setting planner.hold_off, 3600.0)]" in " ".join(result.output.split())


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"DYNAPOT_DB": None, "DYNAPOT_CONFIG": None})


def test_a_new_database_is_made_only_on_purpose_and_said(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    for reader in (["hosts"], ["status"], ["expire"], ["report"], ["findings"], ["plan", *PLAN]):
        assert invoke(*reader, "--db", url).exit_code == 2
    assert not (tmp_path / "new.db").exists()
    made = invoke("db", "upgrade", "--db", url)
    assert made.exit_code == 0 and f"created a new database: {url}" in made.stderr
    again = invoke("db", "upgrade", "--db", url)
    assert again.exit_code == 0 and "created" not in again.stderr


def test_a_mistyped_relative_path_says_how_to_write_the_absolute_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("hosts", "--db", "sqlite:///var/lib/dynapot/dynapot.db")
    line = the_error(result)
    assert f"a relative path, from {tmp_path}" in line
    assert "for /var/lib/dynapot/dynapot.db write four slashes: sqlite:////var/lib/dynapot/dynapot.db" in line
    assert list(tmp_path.iterdir()) == []


def test_read_only_commands_never_write(tmp_path: Path, existing_database: Path) -> None:
    shutil.copy(existing_database, tmp_path / "d.db")
    url = f"sqlite:///{tmp_path / 'd.db'}"
    before = files(tmp_path)
    for reader in (
        ["hosts"],
        ["status"],
        ["report"],
        ["findings"],
        ["plan", *PLAN],
        ["honeyd-config", *PLAN],
        ["admin", "held-plan"],
    ):
        result = invoke(*reader, "--db", url)
        assert result.exit_code == 0, (reader, result.output)
    assert files(tmp_path) == before
    assert "stored: 0 findings added" in invoke("findings", "--store", "--db", url).stderr  # asked to


def test_a_reader_cannot_write(db_url: str) -> None:
    with pytest.raises(DatabaseMissing):
        open_database(db_url, access=Access.READ)  # an empty database: no dynapot tables to read
    open_database(db_url).dispose()
    reader = open_database(db_url, access=Access.READ)
    try:
        with pytest.raises(Exception, match=r"(?i)read.?only"), reader.session() as session:
            session.execute(text("DELETE FROM hosts"))
    finally:
        reader.dispose()


def test_honeyd_config_records_the_deployment_only_once_the_file_is_written(
    tmp_path: Path, existing_database: Path
) -> None:
    shutil.copy(existing_database, tmp_path / "d.db")
    url = f"sqlite:///{tmp_path / 'd.db'}"
    unwritable = Path("/proc/dynapot-honeyd.conf")  # a folder that exists where not even root writes
    result = invoke("honeyd-config", *PLAN, "--apply", "-o", str(unwritable), "--db", url)
    assert result.exit_code == 1 and "cannot write" in result.stderr and "nothing recorded" in result.stderr
    hosts = json.loads(invoke("hosts", "--json", "--db", url).stdout)
    assert [h for h in hosts if h["virtual"]] == [] and not unwritable.exists()
    output = tmp_path / "honeyd.conf"
    assert invoke("honeyd-config", *PLAN, "--apply", "-o", str(output), "--db", url).exit_code == 0
    hosts = json.loads(invoke("hosts", "--json", "--db", url).stdout)
    assert len([h for h in hosts if h["virtual"]]) == 13 and output.exists()  # a /28 less one real host


def test_storing_hosts_that_expiry_deletes_at_once_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    capture = tmp_path / "old.pcap"
    frame = Ether(src="02:00:00:00:00:05", dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=2, hwsrc="02:00:00:00:00:05", psrc="198.18.0.5", pdst="198.18.0.1"
    )
    frame.time = LONG_AGO
    wrpcap(str(capture), [frame])
    result = invoke("fingerprint", "--pcap", str(capture), "--store", "--db", url)
    assert result.exit_code == 0, result.output
    assert (
        f"warning: {capture}: 1 of the 1 hosts stored were last seen longer ago than expiry.hosts "
        "(30 days; the latest on 2010-01-01): the next expiry deletes them"
    ) in result.stderr, result.stderr
    fresh, old = tmp_path / "fresh.xml", tmp_path / "old.xml"
    fresh.write_text(NMAP_XML.replace("{t0}", str(int(time.time()))))
    old.write_text(NMAP_XML.replace("{t0}", str(LONG_AGO)))
    assert "warning" not in invoke("import-nmap", str(fresh), "--db", url).stderr
    # The same host seen long ago: its later sighting stands, so expiry keeps it.
    assert "warning" not in invoke("import-nmap", str(old), "--db", url).stderr
    result = invoke("import-nmap", str(old), "--db", f"sqlite:///{tmp_path / 'other.db'}")
    assert result.exit_code == 0 and f"warning: {old}: 1 of the 1 hosts stored" in result.stderr


def test_status_without_a_network_says_so(tmp_path: Path, existing_database: Path) -> None:
    shutil.copy(existing_database, tmp_path / "d.db")
    settings = tmp_path / "s.toml"
    settings.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n')
    result = invoke("status", "--db", f"sqlite:///{tmp_path / 'd.db'}", "--config", str(settings))
    assert result.exit_code == 0, result.output
    assert "None" not in result.stdout
    assert result.stdout.startswith("1 real hosts, 0 virtual hosts, no network configured; 0 events")

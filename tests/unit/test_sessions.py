"""`dynapot sessions`: grouping Sebek rows into sessions, the commands typed, a safe replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import insert

from dynapot.analysis.sessions import group_sessions, replay_steps, typed_commands
from dynapot.cli import main
from dynapot.collector.rows import session_row
from dynapot.db import Database
from dynapot.db.models import HoneypotEvent, Session
from dynapot.sebek.records import Record, RecordType, SocketCall, socket_data

T0 = 1_800_000_000
HP, ATTACKER = "198.18.0.5", "198.18.1.9"


def rec(
    counter: int, data: bytes, *, pid: int = 70, ppid: int = 60, kind: int = 0, fd: int = 0, at: float = 0
) -> Record:
    return Record(
        magic=0xD0D0D0, type=kind, counter=counter, time_sec=T0 + int(at), time_usec=int(at % 1 * 1e6),
        ppid=ppid, pid=pid, uid=1000, fd=fd, inode=5, command=b"bash", data=data,
    )  # fmt: skip


def story() -> list[dict]:
    """An attacker logs in (sshd accepts), types two commands with a typo, and one runs."""
    accept = socket_data(SocketCall(ATTACKER, 50123, HP, 22, 5, 6))
    records = [
        (rec(0, accept, pid=60, ppid=1, kind=RecordType.SOCKET, fd=3), ATTACKER),
        *((rec(1 + i, bytes([c]), at=1 + i * 0.2), ATTACKER) for i, c in enumerate(b"unamx\x7fe -a\r")),
        (rec(20, b"Linux backend 6.1\r\n", pid=71, ppid=70, kind=RecordType.WRITE, fd=1, at=4), ATTACKER),
        (rec(21, b"\x1b[Acat /etc/passwd\r", at=10), ATTACKER),
        (rec(22, b"\x1b]0;owned\x07\x1b[2J", pid=72, ppid=70, kind=RecordType.WRITE, fd=1, at=11), ATTACKER),
        (rec(23, b"id\r", pid=500, ppid=1, at=12), None),  # someone else, unlinked
    ]
    return [session_row(r, HP, who) for r, who in records]


def rows_of(dicts: list[dict]) -> list[Session]:
    return [Session(id=i + 1, **d) for i, d in enumerate(dicts)]


def test_rows_group_into_one_session_per_attacker_and_process_tree() -> None:
    linked, unlinked = group_sessions(rows_of(story()))
    assert (linked.src_ip, linked.root_pid, linked.id, len(linked.rows)) == (ATTACKER, 60, 1, 15)
    assert linked.commands == ["uname -a", "cat /etc/passwd"]
    assert (unlinked.src_ip, unlinked.commands) == (None, ["id"])
    assert linked.as_dict()["commands"] == linked.commands


def test_typed_commands_are_edited_bounded_and_escaped() -> None:
    rows = rows_of(
        [session_row(rec(0, b"rm -rf /\x15ls\r\xc2\x9b\xe2\x80\xaeevil\r" + b"x" * 10_000 + b"\n"), HP, None)]
    )
    commands = typed_commands(rows)
    assert commands[0] == "ls"
    assert commands[1] == "\\x9b\\u202eevil"  # C1 and a bidi override shown, never obeyed
    assert len(commands[2]) == 4096


def test_a_replay_keeps_timing_and_newlines_and_shows_every_other_control() -> None:
    rows = group_sessions(rows_of(story()))[0].rows
    typed = replay_steps(rows)
    assert "".join(step.text for step in typed) == "unamx\\x7fe -a\ncat /etc/passwd\n".replace(
        "cat", "\\x1b[Acat"
    )
    assert [round(step.delay, 3) for step in typed[:3]] == [0.0, 0.2, 0.2]
    assert typed[-1].delay == 2.0  # 7 s recorded, capped
    fast = replay_steps(rows, speed=4, max_delay=60)
    assert round(fast[-1].delay, 3) == round((10 - 3.0) / 4, 3)
    shown = "".join(step.text for step in replay_steps(rows, output=True))
    assert "Linux backend 6.1\n" in shown and "\\x1b]0;owned\\x07\\x1b[2J" in shown
    assert "\x1b" not in shown and "\r" not in shown and "\x07" not in shown


def test_the_cli_lists_and_replays_sessions(db: Database) -> None:
    with db.session() as session:
        session.execute(insert(Session), story())
    runner = CliRunner()
    listed = runner.invoke(main, ["sessions", "--json", "--db", db.url], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    first, second = (json.loads(line) for line in listed.output.splitlines())
    assert first["attacker"] == ATTACKER and first["commands"] == ["uname -a", "cat /etc/passwd"]
    assert second["attacker"] is None and second["records"] == 1
    only = runner.invoke(main, ["sessions", "--json", "--honeypot", "198.18.0.6", "--db", db.url])
    assert only.exit_code == 0 and only.output == ""
    table = runner.invoke(main, ["sessions", "--db", db.url])
    assert "uname -a; cat /etc/passwd" in table.output
    replay = runner.invoke(
        main, ["sessions", "replay", str(first["id"]), "--speed", "1000", "--output", "--db", db.url]
    )
    assert replay.exit_code == 0, replay.output
    assert "Linux backend 6.1" in replay.output and "\x1b" not in replay.output
    missing = runner.invoke(main, ["sessions", "replay", "999", "--db", db.url])
    assert missing.exit_code == 2 and "no such session" in missing.output
    bad = runner.invoke(main, ["sessions", "--honeypot", "not-an-ip", "--db", db.url])
    assert bad.exit_code == 2 and "--honeypot" in bad.output


def test_since_filters_by_the_honeypots_clock(db: Database) -> None:
    with db.session() as session:
        session.execute(insert(Session), story())
    later = datetime.fromtimestamp(T0, UTC) + timedelta(seconds=11.5)
    result = CliRunner().invoke(main, ["sessions", "--json", "--since", later.isoformat(), "--db", db.url])
    assert [json.loads(line)["commands"] for line in result.output.splitlines()] == [["id"]]


def test_reports_show_the_commands_typed_per_attacker(db: Database) -> None:
    from dynapot.analysis.report import build_report, render

    rows = story()
    rows.append(
        session_row(rec(30, b"wget http://x/\x1b[31mevil\r", pid=80, ppid=1, at=20), HP, "198.18.1.3")
    )
    probe = datetime.fromtimestamp(T0, UTC) - timedelta(
        minutes=5
    )  # the attacker scanned a virtual host first
    with db.session() as session:
        session.execute(insert(Session), rows)
        for port in (22, 80):
            event = dict(protocol="tcp", src_ip=ATTACKER, src_port=4000, dst_ip="198.18.0.50", kind="probe")
            session.add(HoneypotEvent(time=probe, dst_port=port, detail="S", **event))
    since = datetime.fromtimestamp(T0, UTC) - timedelta(hours=1)
    data = build_report(db, since, since + timedelta(hours=2))
    section = data.sections["high_interaction"]
    assert [(r["src"], r["commands"]) for r in section] == [
        ("198.18.1.3", ["wget http://x/evil"]),  # the escape sequence was a terminal's, not typed text
        (ATTACKER, ["uname -a", "cat /etc/passwd"]),
        (None, ["id"]),
    ]
    story_row = json.loads(render(data, "json"))["high_interaction"][1]
    assert story_row["command"] == "uname -a; cat /etc/passwd"
    assert (story_row["first_event"], story_row["event_count"]) == (probe.isoformat(), 2)
    assert section[0]["first_event"] is None and section[0]["event_count"] == 0
    text = render(data, "text")
    assert "Commands typed on high-interaction honeypots" in text and "(unlinked)" in text
    html = render(data, "html")
    assert "uname -a; cat /etc/passwd" in html and "\x1b" not in html
    assert "high_interaction" in render(data, "csv")

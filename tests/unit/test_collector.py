"""The Sebek collector: real UDP on loopback, a real database, every record stored or counted."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from dynapot.cli import main
from dynapot.collector import Collector, SocketLinker
from dynapot.collector.rows import DATA_LIMIT, session_row
from dynapot.collector.service import kernel_drops
from dynapot.config import CollectorSettings
from dynapot.db import Database
from dynapot.db.models import Session
from dynapot.sebek.records import Record, RecordType, SocketCall, encode, socket_data

MAGIC = 0x00D0D0D0
SETTINGS = CollectorSettings(listen="127.0.0.1:0", magic=MAGIC)


def record(counter: int, **changes: Any) -> Record:
    fields: dict[str, Any] = dict(
        magic=MAGIC, type=RecordType.READ, counter=counter, time_sec=1_800_000_000 + counter // 10,
        time_usec=counter % 10 * 1000, ppid=100, pid=101, uid=0, fd=0, inode=7, command=b"bash", data=b"l",
    )  # fmt: skip
    fields.update(changes)
    return Record(**fields)


class Rows:
    """A writer that keeps the rows (and can be told to fail)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.fail = False

    def __call__(self, rows: list[dict[str, Any]]) -> None:
        if self.fail:
            raise OSError("database down")
        self.rows.extend(rows)


def test_each_datagram_is_stored_or_counted_by_reason() -> None:
    rows = Rows()
    collector = Collector(None, SETTINGS, writer=rows)
    collector.receive(encode(record(0)), "198.18.0.5")
    collector.receive(encode(record(1, magic=0x1234)), "198.18.0.5")
    collector.receive(encode(record(2))[:20], "198.18.0.5")
    collector.receive(encode(record(3)) + b"x", "198.18.0.5")
    collector.receive(b"\x00\xd0\xd0\xd0\x00\x02" + bytes(60), "198.18.0.5")
    collector.receive(encode(record(5)), "198.18.0.5")  # 1..4 never arrived as records
    collector.receive(encode(record(3)), "198.18.0.5")  # late after all
    status = collector.status()
    assert status["received"] == 7 and status["records"] == 3
    assert status["malformed"] == {"length": 1, "magic": 1, "short": 1, "version": 1}
    assert (status["lost"], status["late"], status["senders"], status["pending"]) == (3, 1, 1, 3)


def test_rows_carry_every_field_and_the_data_made_storable() -> None:
    hostile = b"\x1b]0;pwned\x07\x00\xff\xfe" + b"A" * (DATA_LIMIT * 2)
    row = session_row(
        record(9, command=b"b\xffash", data=hostile, uid=0xFFFFFFFF), "198.18.0.5", "198.18.1.9", 4
    )
    assert row["command"] == "b\\xffash"
    assert row["data"].startswith("\x1b]0;pwned\x07\\x00\\xff\\xfe")  # controls kept: escaped when shown
    assert len(row["data"]) == DATA_LIMIT
    assert (row["uid"], row["counter"], row["lost_before"], row["src_ip"]) == (0xFFFFFFFF, 9, 4, "198.18.1.9")
    assert row["time"].isoformat() == "2027-01-15T08:00:00.009000+00:00"


def test_the_socket_linker_follows_an_accept_down_the_process_tree() -> None:
    linker = SocketLinker()
    accept = SocketCall("198.18.1.9", 50123, "198.18.0.5", 22, 5, 6)
    connect = SocketCall("203.0.113.7", 80, "198.18.0.5", 40000, 3, 6)
    hp = "198.18.0.5"
    assert linker.attacker(hp, record(0, pid=50, ppid=1)) is None
    assert linker.attacker(hp, record(1, type=2, pid=50, ppid=1, data=socket_data(accept))) == "198.18.1.9"
    assert linker.attacker(hp, record(2, pid=60, ppid=50)) == "198.18.1.9"  # sshd's child
    assert linker.attacker(hp, record(3, pid=70, ppid=60)) == "198.18.1.9"  # the shell
    assert linker.attacker(hp, record(4, type=2, pid=70, ppid=60, data=socket_data(connect))) == "198.18.1.9"
    assert linker.attacker("198.18.0.6", record(5, pid=70, ppid=60)) is None  # another honeypot
    small = SocketLinker(limit=2)
    small.attacker(hp, record(0, type=2, pid=1, data=socket_data(accept)))
    small.attacker(hp, record(1, pid=2, ppid=1))
    small.attacker(hp, record(2, pid=3, ppid=2))
    assert small.attacker(hp, record(3, pid=1, ppid=0)) is None  # the oldest was forgotten


def test_a_process_is_linked_through_ancestors_whose_records_came_before_the_accept() -> None:
    linker = SocketLinker()
    hp = "198.18.0.5"
    accept = SocketCall("198.18.1.9", 50123, hp, 22, 5, 6)
    # An agent's per-CPU buffers: sshd's child and grandchild are seen before the listener's accept.
    assert linker.attacker(hp, record(0, type=4, pid=60, ppid=50, data=b"fork")) is None
    assert linker.attacker(hp, record(1, type=4, pid=61, ppid=60, data=b"fork")) is None
    assert linker.attacker(hp, record(2, type=2, pid=50, ppid=1, data=socket_data(accept))) == "198.18.1.9"
    assert linker.attacker(hp, record(3, pid=70, ppid=61)) == "198.18.1.9"  # the shell, two generations down
    assert linker.attacker("198.18.0.6", record(4, pid=71, ppid=61)) is None  # another honeypot's pids


def test_an_accept_from_the_sensor_itself_links_nobody() -> None:
    sensor = "198.18.0.2"  # its health checks connect to the backends' ports
    linker = Collector(None, SETTINGS.model_copy(update={"listen": f"{sensor}:1101"})).linker
    hp = "198.18.0.5"
    attacker = SocketCall("198.18.1.9", 50123, hp, 22, 5, 6)
    check = SocketCall(sensor, 40000, hp, 22, 5, 6)
    assert linker.attacker(hp, record(0, type=2, pid=50, ppid=1, data=socket_data(attacker))) == "198.18.1.9"
    assert linker.attacker(hp, record(1, type=2, pid=50, ppid=1, data=socket_data(check))) is None
    assert linker.attacker(hp, record(2, pid=61, ppid=50)) is None  # the child serving the health check


def test_a_database_that_fails_keeps_the_rows_until_it_works() -> None:
    rows = Rows()
    collector = Collector(None, SETTINGS, writer=rows)

    async def scenario() -> None:
        for n in range(5):
            collector.receive(encode(record(n)), "198.18.0.5")
        rows.fail = True
        assert not await collector.flush()
        rows.fail = False
        assert await collector.flush()

    asyncio.run(scenario())
    assert [row["counter"] for row in rows.rows] == [0, 1, 2, 3, 4]
    assert collector.stats.write_failures == 1 and collector.stats.stored == 5


def _send(port: int, datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for datagram in datagrams:
            sender.sendto(datagram, ("127.0.0.1", port))


async def _collect(collector: Collector, datagrams: list[bytes]) -> dict[str, Any]:
    stop = asyncio.Event()
    _host, port = await collector.start()
    task = asyncio.create_task(collector.run(stop))
    await asyncio.to_thread(_send, port, datagrams)
    for _ in range(500):  # until every datagram is accounted for (stored, or dropped by the kernel)
        status = collector.status()
        if status["received"] + (status["dropped_kernel"] or 0) >= len(datagrams) and not status["pending"]:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    return collector.status()


def test_500_records_over_loopback_are_all_stored_or_counted(db: Database) -> None:
    skipped = {17, 18, 300}  # never sent: the counter shows them lost
    sent = [encode(record(n, pid=101 + n % 3)) for n in range(503) if n not in skipped]
    collector = Collector(db, SETTINGS)
    status = asyncio.run(_collect(collector, sent))
    with db.session() as session:
        stored = session.scalar(select(func.count()).select_from(Session))
        lost_in_rows = session.scalar(select(func.sum(Session.lost_before)))
        uid = session.scalar(select(Session.uid).where(Session.counter == 0))
    assert stored == status["stored"] == status["records"]
    assert len(sent) == stored + status["dropped_kernel"] + status["dropped_queue"]
    if status["dropped_kernel"] == 0:
        assert status["lost"] == lost_in_rows == len(skipped)
    assert uid == 0


def test_uid_and_counter_use_all_32_bits_in_the_database(db: Database) -> None:
    collector = Collector(db, SETTINGS)
    status = asyncio.run(_collect(collector, [encode(record(0xFFFFFFFF, uid=0xFFFFFFFF, inode=0xFFFFFFFF))]))
    assert status["stored"] == 1
    with db.session() as session:
        row = session.scalars(select(Session)).one()
    assert (row.uid, row.counter, row.inode, row.type) == (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)


def test_kernel_drops_are_read_for_this_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        assert kernel_drops(sock) == 0


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--listen", "localhost:1101", "--listen"),
        ("--listen", "127.0.0.1", "--listen"),
        ("--magic", "0xZZ", "--magic"),
    ],
)
def test_the_command_names_a_bad_option_and_exits_2(tmp_path, option: str, value: str, named: str) -> None:
    result = CliRunner().invoke(main, ["collector", option, value, "--db", f"sqlite:///{tmp_path}/d.db"])
    assert result.exit_code == 2, result.output
    assert named in result.output and len(result.output.strip().splitlines()) == 1


def test_the_command_says_when_it_cannot_listen(tmp_path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main,
            [
                "collector",
                "--listen",
                f"127.0.0.1:{port}",
                "--db",
                f"sqlite:///{tmp_path}/d.db",
                "--seconds",
                "5",
            ],
        )
    assert result.exit_code == 2, result.output
    assert f"--listen 127.0.0.1:{port}" in result.output and "cannot listen" in result.output
    assert not (tmp_path / "d.db").exists()  # refused before the database was made


def test_the_bench_accounts_for_every_record_it_sends() -> None:
    """bench/bench_sebek.py, short: `dynapot collector` as its own process, 500 records."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "bench_sebek.py"), "--records", "500"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["sent"] == 500 and result["accounted"] is True
    assert result["stored"] == result["collector_stored"]

"""Bounded logs: cut at a size, the part before kept as NAME.1, and no locked writer's line lost."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from dynapot.daemon.sensor_process import SensorProcess
from dynapot.daemon.web_process import WebProcess
from dynapot.logfiles import append_locked, cap


def test_a_small_file_is_left_alone_and_a_large_one_cut_with_its_past_kept(tmp_path: Path) -> None:
    log = tmp_path / "honeyd.log"
    log.write_text("a\n" * 10)
    log.chmod(0o640)
    assert cap(log, 20) is False and log.read_text() == "a\n" * 10
    with log.open("a") as writer:  # the writer keeps its file open, as the event writer does
        writer.write("b\n")
        writer.flush()
        assert cap(log, 20) is True
        assert (tmp_path / "honeyd.log.1").read_text() == "a\n" * 10 + "b\n"
        assert log.read_text() == ""
        writer.write("c\n")
        writer.flush()
    assert log.read_text() == "c\n"  # appended at the new start, no hole of zeros
    assert oct((tmp_path / "honeyd.log.1").stat().st_mode & 0o777) == "0o640"
    log.write_text("d\n" * 20)
    assert (
        cap(log, 20) is True and (tmp_path / "honeyd.log.1").read_text() == "d\n" * 20
    )  # the older .1 replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["honeyd.log", "honeyd.log.1"]  # no temporary left


def test_a_link_and_a_missing_file_are_never_cut(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("x" * 100)
    (tmp_path / "honeyd.log").symlink_to(target)
    assert cap(tmp_path / "honeyd.log", 10) is False and target.read_text() == "x" * 100
    assert cap(tmp_path / "nothing.log", 10) is False


def test_the_cut_waits_for_a_writers_lock_and_then_loses_no_line(tmp_path: Path) -> None:
    log = tmp_path / "honeyd.log"
    log.write_text("old\n" * 10)
    with log.open("a") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)  # a writer in the middle of a batch
        assert cap(log, 10, wait=0.2) is False and log.read_text() == "old\n" * 10
        fcntl.flock(writer.fileno(), fcntl.LOCK_UN)

        lines = 20_000
        started = threading.Event()

        def write() -> None:
            for n in range(lines):
                append_locked(writer, f"line {n}\n")
                if n == 100:
                    started.set()

        thread = threading.Thread(target=write)
        thread.start()
        started.wait(10)
        cuts = 0
        while thread.is_alive() and cuts == 0:
            cuts += cap(log, 1000)
        thread.join(30)
    kept = (tmp_path / "honeyd.log.1").read_text().splitlines() + log.read_text().splitlines()
    assert cuts == 1
    assert kept == ["old"] * 10 + [f"line {n}" for n in range(lines)]


def test_the_daemons_children_cut_their_own_files(tmp_path: Path, monkeypatch) -> None:
    from dynapot.config import Settings

    sensor = SensorProcess(
        interface="lo", config_path=tmp_path / "h.conf", state_dir=tmp_path, db_url="sqlite://", user="nobody"
    )
    sensor.log_path.write_bytes(b"e" * 300)
    sensor.output_path.write_bytes(b"o" * 100)
    assert sensor.cap_logs(200) == [sensor.log_path]
    web = WebProcess(Settings(), state_dir=tmp_path, settings_path=None)
    web.output_path.write_bytes(b"w" * 300)
    web._offset = 250  # where its current start's output began
    assert web.cap_logs(200) == [web.output_path] and web._offset == 0
    assert os.path.getsize(tmp_path / "web.out.1") == 300

"""The daemon's web child, a real process on loopback: it serves over TLS as an unprivileged user,
is restarted when it dies, and says clearly why it could not listen."""

from __future__ import annotations

import os
import pwd
import re
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from web_fixtures import ADMIN, PASSWORD, make_database

from dynapot.config import load_settings
from dynapot.daemon.web_process import WebProcess
from dynapot.lab.procs import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not any(e.pw_name == "dynapot-web" for e in pwd.getpwall()),
    reason="needs root and the dynapot-web system account (make setup)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def uids(pid: int) -> list[int]:
    """The real, effective, saved and filesystem uids of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    return [int(x) for x in re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()]


@pytest.fixture
def child(tmp_path):
    """A WebProcess over a seeded SQLite database (root's, 0600), TLS with a self-signed certificate."""
    tmp_path.chmod(0o755)
    db, settings_path = make_database(tmp_path)
    db.dispose()
    (tmp_path / "web.db").chmod(0o600)  # root's alone: the child must open it before dropping root
    port = free_port()
    settings_path.write_text(
        settings_path.read_text()
        + f'enabled = true\nlisten = "127.0.0.1:{port}"\ndata_dir = "{tmp_path / "cert"}"\n'
        + f'\n[database]\nurl = "sqlite:///{tmp_path / "web.db"}"\n'
    )
    process = WebProcess(
        load_settings(settings_path, environ={}), state_dir=tmp_path, settings_path=settings_path
    )
    yield process, port
    process.stop()


def test_the_web_child_serves_tls_as_an_unprivileged_user_and_is_restarted(child, tmp_path):
    process, port = child
    process.start()
    base = f"https://127.0.0.1:{port}"
    cert = tmp_path / "cert" / "web-cert.pem"
    assert wait_for(cert.exists, 60), process.output_path.read_text()  # made by the child, as root
    context = ssl.create_default_context(cafile=str(cert))

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/health", verify=context, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_for(healthy, 60), process.output_path.read_text()
    assert set(uids(process.process.pid)) == {pwd.getpwnam("dynapot-web").pw_uid}
    with httpx.Client(base_url=base, verify=context, timeout=10) as browser:
        form = browser.get("/login")
        assert form.status_code == 200 and 'name="login_csrf"' in form.text
        token = re.search(r'name="login_csrf" value="([^"]+)"', form.text).group(1)
        done = browser.post("/login", data={"login_csrf": token, "username": ADMIN, "password": PASSWORD})
        assert done.status_code == 303, done.text
        for page in ("/", "/inventory", "/settings"):  # the database and templates, after the drop
            assert browser.get(page).status_code == 200, page
        assert browser.get("/health", headers={"Host": "rebind.example"}).status_code == 400
    first = process.process.pid
    process.process.kill()
    process.process.wait()
    process.check()  # notices, waits a second
    assert process.last_error is not None and not process.running
    assert wait_for(lambda: process.check() or process.running, 10)
    assert process.process.pid != first and process.starts == 2
    assert wait_for(healthy, 60), process.output_path.read_text()


def test_an_address_in_use_is_reported_in_one_line(child):
    process, port = child
    with socket.create_server(("127.0.0.1", port)):
        process.start()
        assert wait_for(lambda: process.process.poll() is not None, 60)
        process.check()
    assert process.last_error.startswith("exited with 1: Error: cannot listen on 127.0.0.1:")
    assert "Address already in use" in process.last_error
    assert process.status()["running"] is False

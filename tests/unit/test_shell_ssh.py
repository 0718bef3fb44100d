"""The fake shell behind the real SSH service (loopback, asyncssh's client): a password typed at
sudo's prompt is neither echoed nor recorded as a command, but as a login attempt; a file the
session wrote and never ran is kept in the upload store when the connection ends.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import asyncssh
import pytest
from test_service_ssh import CLIENT, NAME, run, serve

from dynapot.services.ssh import SSHConfig
from dynapot.services.uploads import UploadStore

pytestmark = pytest.mark.timeout(30)


def test_sudo_password_and_a_written_file_over_ssh(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "uploads")
    config = SSHConfig(key_dir=tmp_path, accept="all", uploads=store)

    async def main() -> tuple[list, str, str]:
        async with (
            serve(config) as (port, reports),
            asyncssh.connect("127.0.0.1", port, username="guest", password="pw", **CLIENT) as conn,
        ):
            missing = await conn.run("nope; sudo id", timeout=5)  # sshd's `bash -c`: no terminal
            tty = await conn.create_process(term_type="xterm")
            prompt = f"guest@{NAME}:~$ "
            seen = await asyncio.wait_for(tty.stdout.readuntil(prompt), 5)
            tty.stdin.write("echo -ne '\\x7fELF' > /tmp/.k\r")
            seen += await asyncio.wait_for(tty.stdout.readuntil(prompt), 5)
            tty.stdin.write("sudo -l\r")
            seen += await asyncio.wait_for(tty.stdout.readuntil("[sudo] password for guest: "), 5)
            tty.stdin.write("hunter2\r")
            seen += await asyncio.wait_for(tty.stdout.readuntil("[sudo] password for guest: "), 5)
            tty.stdin.write("\x03")  # ^C at the password prompt: a new prompt
            seen += await asyncio.wait_for(tty.stdout.readuntil(prompt), 5)
            tty.stdin.write("nope\r")  # a command again, not a password
            seen += await asyncio.wait_for(tty.stdout.readuntil(prompt), 5)
            tty.close()  # gone without `exit`: the file it wrote is still recorded
        return reports, seen, missing.stdout

    reports, seen, missing = run(main())
    assert missing.startswith("bash: line 1: nope: command not found\nsudo: a terminal is required")
    assert "-bash: nope: command not found" in seen  # a login shell names itself -bash
    assert "hunter2" not in seen and "guest: \r\nSorry, try again.\r" in seen  # not echoed, Enter is
    commands = [r[1] for r in reports if r[0] == "command"]
    assert commands == ["nope; sudo id", "echo -ne '\\x7fELF' > /tmp/.k", "sudo -l", "nope"]
    logins = [r[2] for r in reports if r[0] == "login"]
    assert logins[-1] == {"user": "guest", "password": "hunter2", "accepted": False, "mechanism": "sudo"}
    [upload] = [r[2] for r in reports if r[0] == "upload"]
    digest = hashlib.sha256(b"\x7fELF").hexdigest()
    assert upload["sha256"] == digest and upload["stored"] and upload["path"] == "/tmp/.k"
    assert (tmp_path / "uploads" / digest).read_bytes() == b"\x7fELF"

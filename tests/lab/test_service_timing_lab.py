"""The services' writes on the wire: each one a segment, as the real daemons cut their greetings.

A sensor serves one virtual host imitating the lab's real daemons (BusyBox telnetd, vsftpd);
`dynapot.lab.timing_run` reads every segment the host sends from a raw socket in the attacker
namespace. BusyBox telnetd's requests, issue and login prompt must leave as segments of their
own (the prompt now and then in the issue's), and vsftpd's greeting in one, with no pause
lost between the service and the wire. No timing is asserted (bench/bench_service_timing.py
compares the delays with the real daemons').
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dynapot.lab.sensor import running_sensor
from dynapot.processes import python_command
from dynapot.services.telnet_busybox import OPENING

pytestmark = pytest.mark.lab

VIRTUAL = "198.18.0.72"
CONFIG = f"""
create imitation
set imitation personality "Linux 5.4"
set imitation default tcp action reset
add imitation tcp port 21 "ftp vsftpd|3.0.3"
add imitation tcp port 23 "telnet"
bind {VIRTUAL} imitation
"""


def test_greetings_leave_in_the_real_daemons_segments(lab, tmp_path: Path) -> None:
    spec = json.dumps(
        {"ip": VIRTUAL, "targets": [["telnet", "telnet", 23], ["ftp", "ftp", 21]], "n": 8, "logins": 0}
    )
    with running_sensor(lab, CONFIG, tmp_path, database=False):
        result = lab.exec(lab.attacker, python_command("-m", "dynapot.lab.timing_run", spec), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    telnet = [[base64.b64decode(s) for s in line["segments"]] for line in lines if line["label"] == "telnet"]
    ftp = [[base64.b64decode(s) for s in line["segments"]] for line in lines if line["label"] == "ftp"]
    assert len(telnet) == len(ftp) == 8
    for segments in telnet:
        assert segments[0] == OPENING  # the requests alone, at once
        assert segments[-1].endswith(b" login: ") and b"\r\r\n" in segments[1]
        assert len(segments) in (2, 3)
    assert any(len(segments) == 3 for segments in telnet)  # the prompt in a segment of its own
    assert all(segments == [b"220 (vsFTPd 3.0.3)\r\n"] for segments in ftp)
    assert all(line["first_byte"] is not None for line in lines)

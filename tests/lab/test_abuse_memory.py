"""Short versions of bench/abuse_memory.py's checks, on the lab: the sensor's memory, files and
sessions stay bounded while one attacker pushes, and another source is still served."""

from __future__ import annotations

import time

import pytest

from dynapot.lab import attacks
from dynapot.lab.sensor import running_sensor

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

VIRTUAL = "198.18.0.100"
CONFIG = f"""
create box
set box personality "Linux 5.4"
set box default tcp action reset
add box tcp port 22 "ssh"
add box tcp port 8080 "sleep 3600"
bind {VIRTUAL} box
"""


def test_streams_that_nobody_reads_cost_the_sensor_little(lab, tmp_path):
    with running_sensor(lab, CONFIG, tmp_path) as sensor:
        pid = sensor.process.pid
        for port in (22, 8080):  # asyncssh hangs up on garbage; the script never reads its stdin
            before = attacks.rss_mb(pid)
            client = attacks.stream(lab, VIRTUAL, port, seconds=4.0)
            sent = attacks.taken(client, timeout=60)
            assert sent < 2 << 20, f"port {port}: the sensor took {sent} bytes nobody reads"
            assert attacks.rss_mb(pid) - before < 10, f"port {port}: the sensor grew"


def test_another_source_logs_in_while_one_holds_many_connections(lab, tmp_path):
    with running_sensor(lab, CONFIG, tmp_path):
        holder = attacks.hold(lab, VIRTUAL, 22, count=1500, seconds=60)
        other = lab.join("other", 180)
        try:
            time.sleep(3)  # the held connections' handshakes and sessions have begun
            assert attacks.ssh_login(lab, other, VIRTUAL)
        finally:
            holder.kill()
            lab.leave(other)

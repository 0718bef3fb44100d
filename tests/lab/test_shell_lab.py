"""A bot's dropper line over real SSH to a virtual host in the lab: what it writes becomes an
upload the sensor keeps (its store, by SHA-256), and the line runs as bash would run it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from dynapot.lab.sensor import running_sensor

pytestmark = pytest.mark.lab

HOST = "198.18.0.74"
CONFIG = f"""
create linux
set linux personality "Linux 5.4"
set linux default tcp action reset
add linux tcp port 22 "ssh OpenSSH|8.9p1 Ubuntu 3ubuntu0.10"
bind {HOST} linux
"""
# The first bytes of an x86-64 ELF executable (the host's own architecture: it "runs").
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00\x3e\x00"
SSH = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10"]
SSH += ["-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1"]


@pytest.fixture(scope="module")
def sensor(lab, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("shell")
    # where the sensor, once it has dropped root, can reach (pytest's own folders are root's only)
    top = Path(tempfile.mkdtemp(prefix="dynapot-shell-lab-"))
    top.chmod(0o755)  # the sensor makes its upload folder in there, its own
    uploads = top / "uploads"
    settings = workdir / "dynapot.toml"
    settings.write_text(f'[storage]\nupload_dir = "{uploads}"\n')
    try:
        with running_sensor(lab, CONFIG, workdir, extra_args=("--settings", str(settings))) as running:
            yield running, uploads
    finally:
        shutil.rmtree(top, ignore_errors=True)


def uploads_of(sensor, name: str, timeout: float = 10.0) -> list[dict]:
    """The data of the upload events named `name`, once the sensor's writer has stored them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e["data"] for e in sensor.events("upload") if e["detail"] == name]
        if found or time.monotonic() > deadline:
            return [json.loads(d) if isinstance(d, str) else d for d in found]
        time.sleep(0.2)


def test_a_dropper_line_is_run_and_its_file_kept(lab, sensor):
    running, upload_dir = sensor
    escaped = "".join(f"\\x{b:02x}" for b in ELF)
    line = (
        "cd /tmp || cd /var/run || cd /; "
        f"for f in .d; do echo -ne '{escaped}' > $f; chmod +x $f; ./$f; done; "
        "if [ -x .d ]; then echo ran=$?; fi; ls -a /tmp/.*"
    )
    command = ["sshpass", "-p", "123456", "ssh", *SSH, f"root@{HOST}", line]
    result = lab.exec(lab.attacker, command, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ran=0", "/tmp/.d"]
    digest = hashlib.sha256(ELF).hexdigest()
    [upload] = uploads_of(running, ".d")
    assert upload["sha256"] == digest and upload["size"] == len(ELF), upload
    assert upload["stored"] is True, json.dumps(upload)
    assert (upload_dir / digest).read_bytes() == ELF

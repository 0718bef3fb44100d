"""[services] reaches the services the sensor runs: relaying for SMTP, the login policy for FTP."""

from __future__ import annotations

import ftplib
import smtplib

import pytest
from loopback import ServiceServer

from dynapot.config import ServiceSettings, StorageSettings
from dynapot.sensor.main import _services
from dynapot.services.contract import ConnectionInfo
from dynapot.services.uploads import UploadStore

pytestmark = pytest.mark.timeout(30)


def info(port: int) -> ConnectionInfo:
    return ConnectionInfo("tcp", "127.0.0.1", 40000, "198.18.0.40", port, "Linux 5.4", "t")


def handlers(tmp_path, **settings):
    store = UploadStore(tmp_path, max_file=1000)
    return _services(StorageSettings(upload_dir=tmp_path), store, ServiceSettings(**settings))


@pytest.mark.parametrize("relay", [False, True])
def test_smtp_relays_only_when_told(tmp_path, relay):
    with (
        ServiceServer(handlers(tmp_path, smtp_relay=relay)["smtp"], info(25)) as server,
        smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client,
    ):
        client.ehlo("x")
        code, _ = client.mail("a@b.example")
        assert code == 250
        code, text = client.rcpt("c@d.example")
    assert (code, text) == (
        (250, b"2.1.5 Ok") if relay else (454, b"4.7.1 <c@d.example>: Relay access denied")
    )


@pytest.mark.parametrize(("logins", "anonymous"), [("any", False), ("weak", True)])
def test_ftp_login_policy_and_anonymous_come_from_the_settings(tmp_path, logins, anonymous):
    handler = handlers(tmp_path, ftp_logins=logins, ftp_anonymous=anonymous)["ftp"]
    with ServiceServer(handler, info(21)) as server:
        client = ftplib.FTP()
        client.connect("127.0.0.1", server.port, timeout=5)
        try:
            if anonymous:
                assert client.login().startswith("230")
            else:
                assert client.login("Kx7qU2", "v9!Lw2pQ").startswith("230")  # "any"
        finally:
            client.close()

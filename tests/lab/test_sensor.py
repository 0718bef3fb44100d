"""The sensor on the wire: attacker namespace -> bridge -> sensor namespace, real nmap and p0f.

Each test starts `dynapot sensor` in the lab's sensor namespace with its own honeyd
configuration and stops it with SIGTERM (the same way an administrator would).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from dynapot.lab.sensor import running_sensor
from dynapot.lab.wire import ArpWatch, inject
from dynapot.netstack.packets import BROADCAST_MAC, build_arp_frame, build_udp_packet
from dynapot.personality.osdb import fingerprints_by_name, load_osdb
from dynapot.processes import python_command

pytestmark = pytest.mark.lab

PANEL = [
    "Microsoft Windows XP SP3",
    "Microsoft Windows 7 SP1",
    "Microsoft Windows 10 1607",
    "Microsoft Windows Server 2016",
    "Linux 2.6.32",
    "Linux 5.4",
    "FreeBSD 11.2-RELEASE",
    "OpenBSD 6.0",
    "Cisco 1900-series router (IOS 15.4)",
    "HP LaserJet 1320 printer",
]
FIRST = 60  # the panel lives on .60 - .69


def attacker(lab, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return lab.exec(lab.attacker, list(argv), timeout=timeout)


def panel_config() -> str:
    lines = []
    for i, name in enumerate(PANEL):
        template = f"p{i}"
        lines += [
            f"create {template}",
            f'set {template} personality "{name}"',
            f"set {template} default tcp action reset",
            f"add {template} tcp port 80 open",
            f"bind 198.18.0.{FIRST + i} {template}",
        ]
    return "\n".join(lines) + "\n"


def test_nmap_names_the_configured_os(lab, tmp_path):
    by_name = fingerprints_by_name(load_osdb())
    with running_sensor(lab, panel_config(), tmp_path) as sensor:
        targets = [f"198.18.0.{FIRST + i}" for i in range(len(PANEL))]
        result = attacker(lab, "nmap", "-n", "-O", "-p", "80,1", "--max-os-tries", "2", "-oX", "-", *targets)
        assert result.returncode == 0, result.stderr
    root = ET.fromstring(result.stdout)
    named = 0
    report = {}
    for host in root.iter("host"):
        ip = host.find("address[@addrtype='ipv4']").get("addr")
        configured = PANEL[int(ip.rsplit(".", 1)[1]) - FIRST]
        matches = [(m.get("name"), int(m.get("accuracy")), m) for m in host.iter("osmatch")]
        assert matches, f"{ip} ({configured}): nmap names no OS"
        top_accuracy = matches[0][1]
        # "OS details" lists every perfect match; else nmap's top guess counts.
        details = {n for n, a, _ in matches if a == 100} or {matches[0][0]}
        report[configured] = [f"{n} {a}%" for n, a, _ in matches[:3]]
        if configured in details or matches[0][0] == configured:
            named += 1
        families = {c.family for c in by_name[configured].classes}
        best_families = {c.get("osfamily") for c in matches[0][2].iter("osclass")}
        if top_accuracy == 100:
            best_families |= {c.get("osfamily") for _, a, m in matches if a == 100 for c in m.iter("osclass")}
        assert families & best_families, (
            f"{ip}: configured {configured} {families}, nmap says {report[configured]}"
        )
    print(json.dumps(report, indent=1))
    assert named >= 9, report
    # nmap's OS detection was recognised as such.
    assert sensor.events("os-scan")
    assert any(e["scan_tool"] == "nmap OS scan" for e in sensor.events("probe"))


def test_p0f_sees_the_configured_family_in_syn_acks(lab, tmp_path):
    """p0f 3 in the attacker namespace labels the sensor's SYN+ACKs (where its database can)."""
    expected = {  # p0f has SYN+ACK signatures for these families only
        "Microsoft Windows XP SP3": "Windows",
        "Microsoft Windows 7 SP1": "Windows",
        "Linux 2.6.32": "Linux",
        "FreeBSD 11.2-RELEASE": "FreeBSD",
        "OpenBSD 6.0": "OpenBSD",
    }
    p0f_log = tmp_path / "p0f.log"
    with running_sensor(lab, panel_config(), tmp_path):
        p0f = lab.popen(lab.attacker, ["p0f", "-i", "eth0", "-o", str(p0f_log)], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            time.sleep(1.0)
            for i, name in enumerate(PANEL):
                if name in expected:
                    script = (
                        f"import socket; socket.create_connection(('198.18.0.{FIRST + i}', 80), 3).close()"
                    )
                    assert attacker(lab, *python_command(), "-c", script, timeout=20).returncode == 0
            time.sleep(1.0)
        finally:
            p0f.terminate()
            p0f.wait(10)
    seen: dict[str, str] = {}
    for line in p0f_log.read_text().splitlines():
        if "subj=srv" in line and "mod=syn+ack" in line:
            fields = dict(part.split("=", 1) for part in line.split("|")[1:] if "=" in part)
            server = fields["srv"].split("/")[0]
            seen[server] = fields.get("os", "???")
    for i, name in enumerate(PANEL):
        if name in expected:
            label = seen.get(f"198.18.0.{FIRST + i}")
            assert label is not None, f"p0f saw no SYN+ACK from {name}"
            if label != "???":  # p0f matched something: it must be the right family
                assert expected[name] in label, f"{name}: p0f says {label}"
    labelled = [seen.get(f"198.18.0.{FIRST + i}") for i, n in enumerate(PANEL) if n in expected]
    assert sum(1 for label in labelled if label and label != "???") >= 3, seen


def test_hosts_with_one_personality_are_not_clones(lab, tmp_path):
    # Windows 7: incremental IP IDs and a 100 Hz timestamp clock (Linux sends IP ID 0 everywhere).
    config = """
create twin
set twin personality "Microsoft Windows 7 SP1"
add twin tcp port 22 open
bind 198.18.0.80 twin
bind 198.18.0.81 twin
"""
    probe = r"""
import json
from scapy.all import IP, TCP, RandShort, conf, sr1
conf.verb = 0
out = {}
for ip in ("198.18.0.80", "198.18.0.81"):
    answers = []
    for _ in range(3):
        syn = TCP(sport=RandShort(), dport=22, flags="S", options=[("Timestamp", (1, 0))])
        r = sr1(IP(dst=ip) / syn, timeout=2)
        answers.append({"id": r[IP].id, "ts": dict(r[TCP].options)["Timestamp"][0], "seq": r[TCP].seq})
    out[ip] = answers
print(json.dumps(out))
"""
    with running_sensor(lab, config, tmp_path):
        result = attacker(lab, *python_command(), "-c", probe, timeout=60)
        assert result.returncode == 0, result.stderr
        neigh = attacker(lab, "ip", "-j", "neigh", "show", "dev", "eth0").stdout
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    a, b = answers["198.18.0.80"], answers["198.18.0.81"]
    macs = {n["dst"]: n.get("lladdr") for n in json.loads(neigh)}
    assert macs["198.18.0.80"] != macs["198.18.0.81"]
    # Timestamp clocks: each host's own uptime, so the values differ by far more than the probe spacing.
    assert abs(a[0]["ts"] - b[0]["ts"]) > 1000
    assert a[1]["ts"] >= a[0]["ts"] and b[1]["ts"] >= b[0]["ts"]  # and each clock runs forward
    # IP ID sequences: not one shared counter.
    ids_a, ids_b = [x["id"] for x in a], [x["id"] for x in b]
    assert ids_a != ids_b
    assert {x["seq"] for x in a}.isdisjoint({x["seq"] for x in b})


def test_a_real_host_claiming_an_address_gets_it_back(lab, tmp_path):
    config = """
create box
set box personality "Linux 2.6.32"
add box tcp port 22 open
bind 198.18.0.90 box
bind 198.18.0.91 box
"""
    real = lab.real_hosts[0]
    with running_sensor(lab, config, tmp_path) as sensor:
        assert attacker(lab, "busybox", "ping", "-c", "1", "-W", "2", "198.18.0.90").returncode == 0
        lab.exec(real, ["ip", "addr", "add", "198.18.0.90/24", "dev", "eth0"], check=True)
        try:
            # The real host announces itself (gratuitous ARP), as a machine joining a network does.
            lab.exec(
                real, ["busybox", "arping", "-U", "-c", "2", "-I", "eth0", "-s", "198.18.0.90", "198.18.0.90"]
            )
            deadline = time.monotonic() + 10
            while not sensor.events("conflict") and time.monotonic() < deadline:
                time.sleep(0.1)
            conflicts = sensor.events("conflict")
            assert conflicts and conflicts[0]["dst_ip"] == "198.18.0.90"
            # From now on only the real host answers: its MAC, its kernel's TTL.
            attacker(lab, "ip", "neigh", "flush", "dev", "eth0")
            ping = attacker(lab, "busybox", "ping", "-c", "3", "-W", "2", "198.18.0.90")
            assert ping.returncode == 0
            neigh = json.loads(attacker(lab, "ip", "-j", "neigh", "show", "198.18.0.90").stdout)
            assert neigh[0]["lladdr"] == real.mac
            # The other address is still served.
            assert attacker(lab, "busybox", "ping", "-c", "1", "-W", "2", "198.18.0.91").returncode == 0
        finally:
            lab.exec(real, ["ip", "addr", "del", "198.18.0.90/24", "dev", "eth0"])
    log = sensor.log.read_text()
    assert "conflict" in log


@pytest.mark.parametrize("mode", ["fastpath", "python"])
def test_one_spoofed_packet_does_not_take_an_address(lab, tmp_path, mode):
    """A gratuitous ARP, and a UDP datagram, from virtual hosts' addresses under the attacker's
    MAC: the sensor checks each address (an ARP probe nobody answers) and keeps both, with the
    C thread and without it (bench/abuse_claims.py holds them 145 s, floods and times a real
    machine taking one)."""
    config = """
create box
set box personality "Linux 5.4"
add box tcp port 22 open
bind 198.18.0.92 box
bind 198.18.0.93 box
"""
    me = lab.attacker
    mac = bytes.fromhex(me.mac.replace(":", ""))
    garp, udp = ("198.18.0.92", 0xC612005C), ("198.18.0.93", 0xC612005D)
    extra = () if mode == "fastpath" else ("--no-fastpath",)
    with running_sensor(lab, config, tmp_path, extra_args=extra) as sensor:
        owners = {ip: arp_owners(lab, ip) for ip, _ in (garp, udp)}
        assert all(len(macs) == 1 for macs in owners.values()), owners
        watch = ArpWatch(lab, me, 1.5)
        spoofed = build_udp_packet(udp[1], 0xC61200FF, 137, 137, b"spoofed", 64, 1, False)  # broadcast
        announcement = build_arp_frame(BROADCAST_MAC, 1, mac, garp[1], bytes(6), garp[1])
        inject(lab, me, [announcement, BROADCAST_MAC + mac + b"\x08\x00" + spoofed])
        probes = {a.target_ip for a in watch.result() if a.op == 1 and a.sender_ip == "0.0.0.0"}
        assert probes == {garp[0], udp[0]}  # checked ...
        deadline = time.monotonic() + 15
        while len(sensor.events("conflict-unconfirmed")) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert {e["dst_ip"] for e in sensor.events("conflict-unconfirmed")} == {garp[0], udp[0]}
        for ip, _ in (garp, udp):  # ... and kept
            assert arp_owners(lab, ip) == owners[ip]
            assert attacker(lab, "busybox", "ping", "-c", "1", "-W", "2", ip).returncode == 0
        assert sensor.events("conflict") == []


def arp_owners(lab, ip: str) -> set[str]:
    """The MACs that answer who-has `ip`, asked from the attacker."""
    seen = ArpWatch(lab, lab.attacker, 0.3, ask=ip, every=0.1).result()
    return {a.sender_mac for a in seen if a.op == 2 and a.sender_ip == ip}


def test_an_address_a_real_host_uses_is_never_claimed(lab, tmp_path):
    """A stale plan binds a real host's address: the start-up ARP probe finds it, so we keep off."""
    real = lab.real_hosts[0]
    config = f"""
create box
set box personality "Linux 5.4"
add box tcp port 22 open
bind {real.ip} box
bind 198.18.0.97 box
"""
    with running_sensor(lab, config, tmp_path) as sensor:
        assert "claimed 1 of 2 addresses" in sensor.output.read_text()
        conflicts = sensor.events("conflict")
        assert [c["dst_ip"] for c in conflicts] == [str(real.ip)]
        replies = attacker(lab, "busybox", "arping", "-c", "3", "-I", "eth0", str(real.ip)).stdout.lower()
        assert real.mac.lower() in replies
        assert str(real.ip) in replies and all(
            real.mac.lower() in line for line in replies.splitlines() if "reply" in line
        ), replies
        assert attacker(lab, "busybox", "ping", "-c", "1", "-W", "2", "198.18.0.97").returncode == 0


def test_a_service_answers_over_the_sensors_own_tcp(lab, tmp_path):
    """curl against the HTTP emulator on a virtual Windows host: IIS headers, the request logged."""
    config = """
create win
set win personality "Microsoft Windows Server 2016"
add win tcp port 80 "http"
bind 198.18.0.98 win
"""
    with running_sensor(lab, config, tmp_path) as sensor:
        result = attacker(lab, "python3", "-c", (
            "import urllib.request as u; r = u.urlopen('http://198.18.0.98/', timeout=5);"
            "print(r.headers['Server']); print(r.read().decode())"
        ), timeout=30)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Microsoft-IIS/10.0")
        assert "IIS Windows Server" in result.stdout
        deadline = time.monotonic() + 5
        while not sensor.events("request") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sensor.events("request")[0]["detail"] == "GET /"


def test_ssh_keyscan_sees_a_key_per_virtual_host(lab, tmp_path):
    config = """
create box
set box personality "Linux 5.4"
add box tcp port 22 "ssh"
bind 198.18.0.110 box
bind 198.18.0.111 box
"""
    with running_sensor(lab, config, tmp_path):
        result = attacker(
            lab, "ssh-keyscan", "-T", "10", "-t", "ed25519", "198.18.0.110", "198.18.0.111", timeout=60
        )
    keys = {line.split()[0]: line.split()[2] for line in result.stdout.splitlines() if "ssh-ed25519" in line}
    assert set(keys) == {"198.18.0.110", "198.18.0.111"}, result.stdout + result.stderr
    assert keys["198.18.0.110"] != keys["198.18.0.111"]
    assert "OpenSSH_8.9p1 Ubuntu" in result.stdout + result.stderr


def test_bad_configurations_are_refused_with_line_and_reason(lab, tmp_path):
    cases = {
        'create a\nset a personality "Frobnitz OS 9000"\nbind 198.18.0.95 a\n': "not in the installed",
        "create a\nbind 198.18.0.2 a\n": "belongs to the sensor interface",
        "create a\nbind 198.18.0.95 nosuch\n": "nosuch",
        "create a\nbind 198.18.0.95 a\nbind 198.18.0.95 a\n": "198.18.0.95",
    }
    for text, reason in cases.items():
        conf = tmp_path / "bad.conf"
        conf.write_text(text)
        result = lab.exec(
            lab.sensor,
            [*python_command(), "-m", "dynapot", "sensor", "-i", "eth0", "--config", str(conf), "--no-db"],
            timeout=60,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert reason in result.stderr and "bad.conf:" in result.stderr, result.stderr


def test_every_touch_is_logged_and_flushed_at_shutdown(lab, tmp_path):
    config = """
create web
set web personality "Linux 5.4"
add web tcp port 80 open
add web udp port 161 open
bind 198.18.0.96 web
"""
    script = (
        "import socket\n"
        "for _ in range(20):\n"
        "    s = socket.create_connection(('198.18.0.96', 80), 3); s.sendall(b'hello'); s.close()\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'public', ('198.18.0.96', 161))\n"
        "u.sendto(b'x', ('198.18.0.96', 9999))\n"
    )
    with running_sensor(lab, config, tmp_path) as sensor:
        assert attacker(lab, *python_command(), "-c", script, timeout=60).returncode == 0
        attacker(lab, "busybox", "ping", "-c", "2", "198.18.0.96")
        time.sleep(1)
    # after SIGTERM: everything written, in the database and in honeyd's log format
    assert sensor.process.returncode == 0
    assert len(sensor.events("connect")) == 20
    assert len(sensor.events("close")) == 20
    assert len(sensor.events("datagram")) == 1
    assert len(sensor.events("echo")) == 2
    assert any(e["detail"] == "closed" for e in sensor.events("probe") if e["protocol"] == "udp")
    lines = sensor.log.read_text().splitlines()
    assert sum(1 for line in lines if " tcp(6) S 198.18.0.3 " in line) == 20
    assert sum(1 for line in lines if " tcp(6) E 198.18.0.3 " in line and ": 5 0" in line) == 20


def test_a_busy_polling_sensor_answers_the_same(lab, tmp_path):
    config = 'create t\nset t personality "Linux 5.4"\nadd t tcp port 80 open\nbind 198.18.0.140 t\n'
    with running_sensor(lab, config, tmp_path, extra_args=("--busy-poll",)) as sensor:
        assert attacker(lab, "ping", "-c", "3", "-i", "0.2", "-W", "2", "198.18.0.140").returncode == 0
        scan = attacker(lab, "nmap", "-n", "-Pn", "-p", "80,81", "-oX", "-", "198.18.0.140")
        states = {
            p.get("portid"): p.find("state").get("state") for p in ET.fromstring(scan.stdout).iter("port")
        }
        assert states == {"80": "open", "81": "closed"}
    assert sensor.process.returncode == 0


@pytest.mark.parametrize("fastpath", [True, False], ids=["receive-thread", "python-only"])
def test_pings_share_the_ip_id_counter_and_are_logged(lab, tmp_path, fastpath):
    # Windows 7 numbers ICMP and TCP replies from one incremental counter (nmap's SS=S). Whether the
    # C receive thread or Python answers the pings and the SYN, the wire must show one sequence.
    config = """
create win
set win personality "Microsoft Windows 7 SP1"
add win tcp port 445 open
bind 198.18.0.150 win
"""
    probe = r"""
import json
from scapy.all import ICMP, IP, TCP, conf, sr1
conf.verb = 0
ids = []
for i in range(4):
    ids.append(sr1(IP(dst="198.18.0.150") / ICMP(id=7, seq=i), timeout=2)[IP].id)
ids.append(sr1(IP(dst="198.18.0.150") / TCP(sport=40000, dport=445, flags="S"), timeout=2)[IP].id)
ids.append(sr1(IP(dst="198.18.0.150") / ICMP(id=7, seq=9), timeout=2)[IP].id)
print(json.dumps(ids))
"""
    status = tmp_path / "status.json"
    extra = ("--status", str(status)) + (() if fastpath else ("--no-fastpath",))
    with running_sensor(lab, config, tmp_path, extra_args=extra) as sensor:
        # Repeated pings fold into one row per 60 s window aligned to the clock: start the pings
        # well inside a window, or they straddle two and make one row more.
        if (left := 60 - time.time() % 60) < 15:
            time.sleep(left + 0.5)
        result = attacker(lab, *python_command(), "-c", probe, timeout=60)
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 15  # the status file is rewritten every 5 s
        while time.monotonic() < deadline:
            fast = json.loads(status.read_text()).get("fastpath") if status.exists() else None
            if not fastpath or (fast and fast["answered_echo"] >= 4 and fast["answered_syn"] >= 1):
                break
            time.sleep(0.5)
    ids = json.loads(result.stdout.strip().splitlines()[-1])
    steps = [(b - a) % 65536 for a, b in itertools.pairwise(ids)]
    assert all(1 <= step <= 5 for step in steps), ids  # one counter, whoever answered
    echoes = sensor.events("echo")
    # Repeated pings are one more row, whose count says how many (the sensor folds noise).
    pings = sum(json.loads(e["data"] or "{}").get("count", 1) for e in echoes)
    assert pings == 5 and len(echoes) == 2 and all("replied" in e["detail"] for e in echoes)
    if fastpath:
        # the first ping builds the host's stack in Python; the thread answers the rest, and the SYN
        assert fast is not None and fast["answered_echo"] == 4 and fast["answered_syn"] == 1, fast
        assert fast["dropped"] == 0, fast
    else:
        assert json.loads(status.read_text())["fastpath"] is None

"""One virtual host tells one story: its name, its uptime and its system agree wherever they show.

An attacker can ask a host for its uptime three ways without logging in (the TCP timestamp clock,
SNMP's sysUpTime, SMB's boot time) and a fourth once in (`uptime`, /proc/uptime); its name shows
in SSH and telnet prompts, SNMP's sysName, the SMB and NetBIOS names. Any two that disagree
betray a fake. These tests take the host from the real sensor (its public surface only: the
constructor, `handle_frame`, `hosts`), ask it over its own wire where it answers without a
service session (the SYN/ACK, an SNMP datagram), and build the login services from the very
`ConnectionInfo` identity the sensor hands them.
"""

from __future__ import annotations

import re
import struct
import time

import pytest
from test_sensor_runtime import ATTACKER_IP, ATTACKER_MAC, Events, FakeRaw, fingerprints
from test_service_smb import (
    Recorder,
    ntlm_negotiate,
    one,
    parse_challenge,
    smb2_negotiate,
    smb2_setup,
    spnego_init_token,
)

import dynapot.services as services
from dynapot.honeyd import parse_config
from dynapot.netstack.packets import build_tcp_packet, build_udp_packet, parse_ipv4, parse_tcp, parse_udp
from dynapot.sensor.config import build_sensor_config
from dynapot.sensor.runtime import Sensor
from dynapot.services import smb_messages as m
from dynapot.services import snmp
from dynapot.services.contract import ConnectionInfo
from dynapot.services.shell import shell_for
from dynapot.services.smb import SmbConnection
from dynapot.services.telnet import TelnetConfig, TelnetSession

SECRET = b"agreement-test-secret"
LINUX, WINDOWS = 0xC6120064, 0xC6120070  # 198.18.0.100 and .112
CONFIG = """
create linux
set linux personality "Linux 5.4"
add linux tcp port 22 "ssh"
add linux tcp port 23 "telnet"
add linux tcp port 445 "smb"
add linux udp port 161 "snmp"
bind 198.18.0.100 linux
bind 198.18.0.101 linux
create win7
set win7 personality "Microsoft Windows 7 SP1"
add win7 tcp port 23 "telnet"
add win7 tcp port 445 "microsoft-ds"
add win7 udp port 161 "snmp"
bind 198.18.0.112 win7
"""
# nmap's SEQ.TS classes and the timestamp clock rates they stand for (nmap's osdetect docs).
TS_HZ = {"1": 2.0, "7": 100.0, "8": 250.0, "A": 1000.0}
SYS_UPTIME, SYS_NAME, SYS_DESCR = (
    (1, 3, 6, 1, 2, 1, 1, 3, 0),
    (1, 3, 6, 1, 2, 1, 1, 5, 0),
    (1, 3, 6, 1, 2, 1, 1, 1, 0),
)


@pytest.fixture
def sensor(catalog) -> tuple[Sensor, FakeRaw]:
    config = build_sensor_config(
        parse_config(CONFIG), CONFIG, fingerprints=fingerprints(), mac_vendors=catalog.mac_vendors
    )
    raw = FakeRaw()
    return Sensor(config, raw, Events(), udp_services=dict(services.UDP_REGISTRY), secret=SECRET), raw


def frame_to(sensor: Sensor, ip: int, packet: bytes) -> bytes:
    return sensor.hosts[ip].definition.mac + ATTACKER_MAC + b"\x08\x00" + packet


def tcp_clock_uptime(sensor: Sensor, raw: FakeRaw, ip: int) -> float:
    """Seconds the host's TCP timestamp clock has counted: a SYN/ACK's TSval over the clock's rate."""
    ts_option = b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + struct.pack(">II", 12345, 0)  # MSS, SACK, TS
    syn = build_tcp_packet(ATTACKER_IP, ip, 40001, 445, 1000, 0, 0x02, 64240, 64, 7, True, ts_option)
    sensor.handle_frame(frame_to(sensor, ip, syn))
    synack = parse_tcp(parse_ipv4(raw.sent[-1][14:]))
    assert synack.flags == 0x12 and synack.options.timestamp is not None
    ts = sensor.hosts[ip].definition.personality.tests["SEQ"]["TS"]
    assert ts in TS_HZ, f"pick a personality whose clock rate nmap pins down, not TS={ts}"
    return synack.options.timestamp[0] / TS_HZ[ts]


def snmp_get(sensor: Sensor, raw: FakeRaw, ip: int, *oids: tuple[int, ...]) -> dict[tuple[int, ...], bytes]:
    """An SNMP v2c GET over UDP to the host, through the sensor; the values of the response."""
    bindings = b"".join(
        snmp.tlv(snmp.SEQUENCE, snmp.encode_oid(oid) + snmp.tlv(snmp.NULL, b"")) for oid in oids
    )
    pdu = snmp.encode_int(7) + snmp.encode_int(0) + snmp.encode_int(0) + snmp.tlv(snmp.SEQUENCE, bindings)
    message = snmp.encode_int(1) + snmp.tlv(snmp.OCTET_STRING, b"public") + snmp.tlv(snmp.GET, pdu)
    request = snmp.tlv(snmp.SEQUENCE, message)
    sensor.handle_frame(
        frame_to(sensor, ip, build_udp_packet(ATTACKER_IP, ip, 50161, 161, request, 64, 9, False))
    )
    answer = parse_udp(parse_ipv4(raw.sent[-1][14:])).payload
    top = snmp.read_tlv(answer, 0, len(answer))
    response = snmp.read_items(answer, top.start, top.end)[2]
    fields = snmp.read_items(answer, response.start, response.end)
    values = {}
    for binding in snmp.read_items(answer, fields[3].start, fields[3].end):
        oid, value = snmp.read_items(answer, binding.start, binding.end)
        values[snmp.decode_oid(answer[oid.start : oid.end])] = answer[value.begin : value.end]
    return values


def timeticks(value: bytes) -> int:
    assert value[0] == snmp.TIMETICKS
    return snmp.decode_int(b"\0" + value[2:])


def octets(value: bytes) -> str:
    assert value[0] == snmp.OCTET_STRING
    return value[2:].decode()


def connection(sensor: Sensor, ip: int, port: int) -> ConnectionInfo:
    """What the sensor tells a service about a connection to this host: its identity, above all."""
    host = sensor.hosts[ip]
    personality = host.definition.personality.name
    return ConnectionInfo(
        "tcp", "198.18.0.3", 40002, host.definition.address, port, personality, "t", identity=host.identity
    )


def smb_names(info: ConnectionInfo) -> tuple[str, str]:
    """The NetBIOS and DNS computer names an SMB2 logon's NTLM challenge carries."""
    conn = SmbConnection(info, Recorder())
    conn.receive(smb2_negotiate(0x0202, 0x0210))
    reply = one(conn.receive(smb2_setup(spnego_init_token(ntlm_negotiate()), message_id=1)))
    offset, length = struct.unpack_from("<HH", reply, 64 + 4)
    challenge = m.find_ntlmssp(reply[offset : offset + length])
    assert challenge is not None
    _, _, pairs, _ = parse_challenge(challenge)
    return pairs[1].decode("utf-16-le"), pairs[3].decode("utf-16-le")


def telnet_shell(info: ConnectionInfo, *commands: str) -> list[str]:
    """Log in over telnet as the telnet service does (sans-IO), run commands, return their outputs."""
    session = TelnetSession(info, TelnetConfig(accept="all", fail_delay=0, negotiation_wait=0))
    session.start()
    session.receive(b"root\r\n")  # a bot that types before negotiating
    login = session.receive(b"root\r\n")
    assert session.authenticated, login
    outputs = []
    for command in commands:
        sent = session.receive(command.encode() + b"\r\n")
        out = (sent.send + sent.later).decode("utf-8", "replace")  # `later`: after the program's run time
        echoed, _, rest = out.replace("\r\n", "\n").partition("\n")
        assert echoed == command
        outputs.append(rest.rpartition("\n")[0] + "\n")  # without the next prompt
    return outputs


def test_the_tcp_clock_snmp_and_the_shells_tell_one_uptime(sensor) -> None:
    sensor, raw = sensor
    tcp = tcp_clock_uptime(sensor, raw, LINUX)
    ticks = timeticks(snmp_get(sensor, raw, LINUX, SYS_UPTIME)[SYS_UPTIME])
    info = connection(sensor, LINUX, 23)
    proc_uptime, since = telnet_shell(info, "cat /proc/uptime", "uptime -s")
    shell_seconds = float(proc_uptime.split()[0])
    booted = time.mktime(time.strptime(since.strip() + " UTC", "%Y-%m-%d %H:%M:%S %Z")) - time.timezone
    ssh_shell = shell_for(info.identity.system.family, info.identity, "root")  # as the SSH service builds it
    ssh_seconds = float(ssh_shell.execute("cat /proc/uptime").split()[0])

    assert tcp > 3 * 3600  # a host that has been up a while
    assert abs(ticks / 100 - tcp) < 1.0
    assert abs(shell_seconds - tcp) < 1.0 and abs(ssh_seconds - tcp) < 1.0
    assert abs((time.time() - booted) - tcp) < 2.0  # `uptime -s` is to the second
    assert re.fullmatch(
        r" \d\d:\d\d:\d\d up .*, +1 user, +load average: .*", telnet_shell(info, "uptime")[0].rstrip("\n")
    )


def test_a_windows_host_tells_smb_snmp_and_tcp_the_same_boot(sensor) -> None:
    sensor, raw = sensor
    tcp = tcp_clock_uptime(sensor, raw, WINDOWS)
    ticks = timeticks(snmp_get(sensor, raw, WINDOWS, SYS_UPTIME)[SYS_UPTIME])
    conn = SmbConnection(connection(sensor, WINDOWS, 445), Recorder())
    answer = one(conn.receive(smb2_negotiate(0x0202, 0x0210)))
    system_time, start_time = struct.unpack_from("<QQ", answer, 64 + 40)  # Windows 7 tells its boot
    smb_uptime = (system_time - start_time) / 10**7
    assert abs(ticks / 100 - tcp) < 1.0 and abs(smb_uptime - tcp) < 1.0


def test_one_host_has_one_name_across_ssh_telnet_snmp_and_smb(sensor) -> None:
    sensor, raw = sensor
    for ip in (LINUX, WINDOWS):
        identity = sensor.hosts[ip].identity
        values = snmp_get(sensor, raw, ip, SYS_NAME, SYS_DESCR)
        name = octets(values[SYS_NAME])
        info = connection(sensor, ip, 23)
        telnet_hostname = telnet_shell(info, "hostname")[0].strip()
        ssh = shell_for(identity.system.family, identity, "admin")
        ssh_hostname = ssh.execute("hostname").strip()
        netbios, dns = smb_names(connection(sensor, ip, 445))
        assert name == identity.hostname == telnet_hostname == ssh_hostname
        assert netbios == name.upper()[:15] and dns.split(".")[0] == name
        if ip == LINUX:
            # The system too: SNMP's sysDescr is uname's first five fields, in SSH and telnet alike.
            uname = ssh.execute("uname -a").strip()
            assert uname == telnet_shell(info, "uname -a")[0].strip()
            assert uname.startswith(octets(values[SYS_DESCR]) + " ")
            assert "22.04" in ssh.execute("cat /etc/os-release") and "22.04" in identity.motd(time.time())


def test_hosts_of_one_personality_are_not_clones(sensor) -> None:
    sensor, raw = sensor
    a, b = (sensor.hosts[ip].identity for ip in (LINUX, LINUX + 1))
    now = time.time()
    assert a.personality == b.personality and a.system == b.system
    assert a.hostname != b.hostname and a.computer != b.computer and a.server_guid != b.server_guid
    assert abs(a.boot_time - b.boot_time) > 60
    motd = [i.motd(now).replace(i.address, "ADDRESS") for i in (a, b)]
    assert motd[0].startswith("Welcome to Ubuntu 22.04") and motd[0] != motd[1]
    assert a.last_login(now) != b.last_login(now)
    # Over SNMP too: the names and uptimes an attacker reads differ.
    first, second = (snmp_get(sensor, raw, ip, SYS_NAME, SYS_UPTIME) for ip in (LINUX, LINUX + 1))
    assert first[SYS_NAME] != second[SYS_NAME] and first[SYS_UPTIME] != second[SYS_UPTIME]


def test_the_identity_is_the_deployments(catalog) -> None:
    """Another deployment secret, other hosts: names and boots are not predictable across deployments."""
    config = build_sensor_config(
        parse_config(CONFIG), CONFIG, fingerprints=fingerprints(), mac_vendors=catalog.mac_vendors
    )
    ours = Sensor(config, FakeRaw(), Events(), secret=SECRET).hosts[LINUX].identity
    theirs = Sensor(config, FakeRaw(), Events(), secret=b"another deployment").hosts[LINUX].identity
    again = Sensor(config, FakeRaw(), Events(), secret=SECRET).hosts[LINUX].identity
    assert (ours.hostname, ours.boot_time) == (again.hostname, again.boot_time)
    assert ours.seed != theirs.seed and ours.boot_time != theirs.boot_time

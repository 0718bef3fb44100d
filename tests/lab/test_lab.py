"""The lab network: namespaces, links, real services, teardown."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynapot.cli.lab import lab as lab_cli
from dynapot.lab import SERVICES, HostInfo, HostSpec, Lab, LabError, LabSpec, lab_down, lab_up, list_labs
from dynapot.lab import network as labnet
from dynapot.processes import python_command

# Talks to host:port from inside a namespace; prints what the server said first.
_CLIENT = r"""
import socket, sys
ip, port, send = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode().decode("unicode_escape").encode()
with socket.create_connection((ip, port), timeout=5) as sock:
    if send:
        sock.sendall(send)
    data = b""
    while len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if not send:
            break
sys.stdout.write(data.decode("latin-1"))
"""


def _talk(lab: Lab, host: HostInfo, port: int, send: str = "") -> str:
    result = lab.exec(
        lab.attacker, [*python_command(), "-c", _CLIENT, str(host.ip), str(port), send], timeout=20
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=15, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def _lab_namespaces(run_id: str) -> list[str]:
    return [ns for ns in _namespaces() if ns.startswith(f"dp-{run_id}-")]


def _with(lab: Lab, service: str) -> list[HostInfo]:
    hosts = [h for h in lab.real_hosts if service in h.services]
    assert hosts, f"default lab has no {service} host"
    return hosts


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


SMALL = LabSpec(hosts=(HostSpec("h1", ("ssh", "http")),), network=ipaddress.IPv4Network("198.18.1.0/24"))


# --------------------------------------------------------------------------- the session lab


@pytest.mark.lab
def test_lab_comes_up(lab: Lab) -> None:
    net = lab.network
    assert net.subnet_of(ipaddress.IPv4Network("198.18.0.0/15"))
    assert lab.gateway == net.network_address + 1
    assert lab.sensor.ip == net.network_address + 2
    assert lab.attacker.ip == net.network_address + 3
    assert [h.ip for h in lab.real_hosts] == [net.network_address + 10 + i for i in range(4)]
    assert sorted(_lab_namespaces(lab.run_id)) == sorted(lab.namespaces)
    # Every name fits the kernel's limit and the run id makes it unique.
    for host in lab.hosts:
        assert host.netns == f"dp-{lab.run_id}-{host.name}"
        assert len(host.peer_ifname) <= 15
        assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", host.mac)
    state = json.loads(Path(f"/run/dynapot/labs/{lab.run_id}.json").read_text())
    assert state["status"] == "up"
    assert any(entry["run_id"] == lab.run_id for entry in list_labs())


@pytest.mark.lab
def test_gateway_address_is_unused(lab: Lab) -> None:
    # The switch has no address at all; .1 stays free for planners to treat as the gateway.
    addrs = json.loads(lab.exec("sw", ["ip", "-j", "addr", "show"], check=True).stdout)
    assert not [
        a
        for link in addrs
        for a in link.get("addr_info", [])
        if a["family"] == "inet" and a["local"] != "127.0.0.1"
    ]
    ping = lab.exec(lab.attacker, ["busybox", "ping", "-c", "1", "-W", "1", str(lab.gateway)])
    assert ping.returncode != 0


@pytest.mark.lab
def test_attacker_pings_every_real_host(lab: Lab) -> None:
    for host in [*lab.real_hosts, lab.sensor]:
        ping = lab.exec(lab.attacker, ["busybox", "ping", "-c", "1", "-W", "2", str(host.ip)])
        assert ping.returncode == 0, (host.name, ping.stdout, ping.stderr)


@pytest.mark.lab
def test_ssh_banner(lab: Lab) -> None:
    for host in _with(lab, "ssh"):
        assert _talk(lab, host, 22).startswith("SSH-2.0-OpenSSH"), host.name


@pytest.mark.lab
def test_http_index_page(lab: Lab) -> None:
    for host in _with(lab, "http"):
        reply = _talk(lab, host, 80, "GET / HTTP/1.0\\r\\nHost: lab\\r\\n\\r\\n")
        assert reply.startswith("HTTP/1.0 200"), reply[:200]
        assert f"Welcome to {host.name}" in reply


@pytest.mark.lab
def test_ftp_banner(lab: Lab) -> None:
    for host in _with(lab, "ftp"):
        assert _talk(lab, host, 21).startswith("220 "), host.name


@pytest.mark.lab
def test_services_only_where_configured(lab: Lab) -> None:
    r3 = lab.host("r3")
    assert r3.services == ("http",)
    refused = lab.exec(lab.attacker, [*python_command(), "-c", _CLIENT, str(r3.ip), "22", ""])
    assert refused.returncode != 0
    assert "ConnectionRefused" in refused.stderr


@pytest.mark.lab
def test_tx_checksum_offload_off_on_both_ends(lab: Lab) -> None:
    for host in lab.hosts:
        for netns, ifname in ((host, host.ifname), ("sw", host.peer_ifname)):
            features = lab.exec(netns, ["ethtool", "-k", ifname], check=True).stdout
            assert re.search(r"^tx-checksumming: off", features, re.M), (host.name, ifname)


@pytest.mark.lab
def test_sysctl_varied_hosts_answer_with_ttl_128(lab: Lab) -> None:
    for host in lab.real_hosts:
        ping = lab.exec(lab.attacker, ["busybox", "ping", "-c", "1", "-W", "2", str(host.ip)])
        expected = "ttl=128" if host.sysctls.get("net.ipv4.ip_default_ttl") == "128" else "ttl=64"
        assert expected in ping.stdout, (host.name, ping.stdout)
    assert lab.host("r2").sysctls["net.ipv4.ip_default_ttl"] == "128"
    ts = lab.exec("r2", ["sysctl", "-n", "net.ipv4.tcp_timestamps"], check=True).stdout.strip()
    assert ts == "0"


@pytest.mark.lab
def test_exec_accepts_names_and_always_has_a_timeout(lab: Lab) -> None:
    assert lab.exec("attacker", ["true"]).returncode == 0
    assert lab.exec(lab.attacker.netns, ["true"], timeout=None).returncode == 0
    with pytest.raises(subprocess.TimeoutExpired):
        lab.exec("r1", ["sleep", "5"], timeout=0.2)
    with pytest.raises(LabError):
        lab.host("nope")


# --------------------------------------------------------------------------- own labs


@pytest.mark.lab
def test_down_removes_namespaces_processes_and_files(lab_env: None) -> None:
    built = lab_up(SMALL)
    try:
        pids = [p.pid for p in built.processes.values()]
        pids += [pid for ns in built.namespaces for pid in labnet._netns_pids(ns)]
        assert pids and all(_pid_alive(pid) for pid in pids)
        tmpdir = built.tmpdir
        lab_down(built.run_id)
    finally:
        built.down()
    assert _lab_namespaces(built.run_id) == []
    assert not [pid for pid in pids if _pid_alive(pid)]
    assert not tmpdir.exists()
    assert not Path(f"/run/dynapot/labs/{built.run_id}.json").exists()


@pytest.mark.lab
def test_down_from_another_process(lab_env: None) -> None:
    built = lab_up(SMALL)
    try:
        pids = [p.pid for p in built.processes.values()]
        code = f"from dynapot.lab import lab_down; lab_down({built.run_id!r})"
        subprocess.run([*python_command(), "-c", code], check=True, timeout=60)
        assert _lab_namespaces(built.run_id) == []
        assert not [pid for pid in pids if _pid_alive(pid)]
    finally:
        built.down()


@pytest.mark.lab
def test_context_manager_tears_down_on_error(lab_env: None) -> None:
    with pytest.raises(RuntimeError, match="boom"), lab_up(SMALL) as built:
        run_id = built.run_id
        raise RuntimeError("boom")
    assert _lab_namespaces(run_id) == []


@pytest.mark.lab
def test_unknown_service_raises_and_leaves_nothing(lab_env: None) -> None:
    before = set(labnet.started_run_ids())
    with pytest.raises(LabError, match="gopher"):
        lab_up(LabSpec(hosts=(HostSpec("h1", ("gopher",)),)), run_id="0badc0")
    assert _lab_namespaces("0badc0") == []
    assert labnet.started_run_ids() - before <= {"0badc0"}


@pytest.mark.lab
def test_failing_service_tears_everything_down(lab_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str, ip: ipaddress.IPv4Address, workdir: Path) -> labnet.ServiceCommand:
        return labnet.ServiceCommand(["sh", "-c", "echo boom-on-stderr >&2; exit 3"], 9)

    monkeypatch.setitem(SERVICES, "broken", broken)
    spec = LabSpec(hosts=(HostSpec("h1", ("ssh",)), HostSpec("h2", ("broken",))))
    with pytest.raises(LabError, match="boom-on-stderr"):
        lab_up(spec, run_id="0badc1")
    assert _lab_namespaces("0badc1") == []
    assert not Path("/run/dynapot/labs/0badc1.json").exists()
    assert not list(Path("/tmp").glob("dynapot-lab-0badc1-*"))
    # sshd of h1 was already running: it must be gone too.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, timeout=15, check=True)
    assert "dynapot-lab-0badc1-" not in ps.stdout


@pytest.mark.lab
def test_bad_sysctl_tears_everything_down(lab_env: None) -> None:
    spec = LabSpec(hosts=(HostSpec("h1", ("http",), {"net.ipv4.no_such_knob": "1"}),))
    with pytest.raises(LabError, match="no_such_knob"):
        lab_up(spec, run_id="0badc2")
    assert _lab_namespaces("0badc2") == []


@pytest.mark.lab
def test_cli_up_list_down(lab_env: None) -> None:
    runner = CliRunner()
    run_id = os.urandom(3).hex()
    try:
        result = runner.invoke(lab_cli, ["up", "--run-id", run_id, "--json", "--db", "sqlite://"])
        assert result.exit_code == 0, result.output
        info = json.loads(result.output)
        assert info["attacker"]["netns"] == f"dp-{run_id}-attacker"
        listed = runner.invoke(lab_cli, ["list", "--db", "x"])
        assert run_id in listed.output
        result = runner.invoke(lab_cli, ["down", run_id, "--db", "x"])
        assert result.exit_code == 0, result.output
        assert _lab_namespaces(run_id) == []
    finally:
        lab_down(run_id)
    assert runner.invoke(lab_cli, ["down"]).exit_code != 0


# --------------------------------------------------------------------------- pure helpers


def test_invalid_specs_are_rejected_before_anything_exists() -> None:
    with pytest.raises(LabError, match="outside"):
        labnet._validate(LabSpec(network=ipaddress.IPv4Network("192.0.2.0/24")), "abc123")
    with pytest.raises(LabError, match="run id"):
        labnet._validate(LabSpec(), "ABC")
    with pytest.raises(LabError, match="invalid host name"):
        labnet._validate(LabSpec(hosts=(HostSpec("attacker"),)), "abc123")
    with pytest.raises(LabError, match="duplicate"):
        labnet._validate(LabSpec(hosts=(HostSpec("a"), HostSpec("a"))), "abc123")
    labnet._validate(
        LabSpec(
            hosts=tuple(HostSpec(f"h{i}") for i in range(5)), network=ipaddress.IPv4Network("198.18.0.0/28")
        ),
        "abc123",
    )
    with pytest.raises(LabError, match="too small"):
        labnet._validate(
            LabSpec(
                hosts=tuple(HostSpec(f"h{i}") for i in range(6)),
                network=ipaddress.IPv4Network("198.18.0.0/28"),
            ),
            "abc123",
        )


def test_stray_run_ids_only_match_the_lab_pattern() -> None:
    names = [
        "dp-abc123-r1",
        "dp-abc123-sw",
        "dp-def456-sensor",
        "dp-xyz-r1",
        "dp-ABC123-r1",
        "other",
        "dp-0011223-r1",
    ]
    assert labnet._stray_run_ids(names, {"def456"}) == ["abc123"]


def test_a_process_killed_with_sigterm_takes_its_lab_down(tmp_path: Path) -> None:
    script = (
        "import time\n"
        "from dynapot.lab import LabSpec, lab_up\n"
        "with lab_up(LabSpec(hosts=())) as lab:\n"
        "    print(lab.run_id, flush=True)\n"
        "    time.sleep(300)\n"
    )
    process = subprocess.Popen([*python_command(), "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        run_id = process.stdout.readline().strip()
        assert re.fullmatch(r"[0-9a-f]{6}", run_id)
        assert any(ns.startswith(f"dp-{run_id}-") for ns in labnet._list_netns())
        process.terminate()
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert not [ns for ns in labnet._list_netns() if ns.startswith(f"dp-{run_id}-")]
    assert run_id not in {entry["run_id"] for entry in list_labs()}

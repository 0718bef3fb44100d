"""Backends in the plan: a port goes to a healthy backend of the host's OS, or stays emulated and says why."""

from __future__ import annotations

import pytest

from dynapot.config import BackendSettings, PlannerSettings
from dynapot.deploy.health import BackendHealth, tcp_connects
from dynapot.deploy.honeyd_export import plan_to_honeyd
from dynapot.honeyd.config import Action
from dynapot.honeyd.parser import parse_config
from dynapot.honeyd.render import render_config
from dynapot.planner import Plan, ServiceSpec, VirtualHost
from dynapot.redirects import Backend, assign_backends

LINUX_FP = "Linux 5.4"
WINDOWS_FP = "Microsoft Windows 10 1607"
NAMES = {LINUX_FP: frozenset({"linux", "linux 5.x"}), WINDOWS_FP: frozenset({"windows", "windows 10"})}


def os_names(fingerprint: str) -> frozenset[str]:
    return NAMES.get(fingerprint, frozenset())


def host(ip: str, group: str, fp: str, *ports: int) -> VirtualHost:
    services = tuple(ServiceSpec("tcp", port, "ssh" if port == 22 else "open") for port in ports)
    return VirtualHost(ip, "00:11:22:33:44:55", group, fp, services)


def plan_of(*hosts: VirtualHost) -> Plan:
    return Plan(hosts, 0, 0, {}, (), (), (), explanations={vh.ip: "mirrors something" for vh in hosts})


LIN = Backend("lin1", "198.18.0.50", "Linux", (22, 23))
WIN = Backend("win1", "198.18.0.51", "Windows", (22, 3389))


def test_a_port_goes_to_a_healthy_backend_of_the_same_os() -> None:
    plan = plan_of(
        host("198.18.0.20", "Linux 5.X", LINUX_FP, 22, 80),
        host("198.18.0.21", "Windows 10", WINDOWS_FP, 22, 3389),
    )
    result = assign_backends(plan, [LIN, WIN], {"lin1", "win1"}, os_names)
    assert result.redirects == {
        "198.18.0.20": {22: "198.18.0.50"},
        "198.18.0.21": {22: "198.18.0.51", 3389: "198.18.0.51"},
    }
    assert "22/tcp redirected to backend lin1" in result.explanations["198.18.0.20"]
    assert result.explanations["198.18.0.20"].startswith("mirrors something; ")


def test_a_windows_decoy_never_lands_on_a_linux_box() -> None:
    plan = plan_of(host("198.18.0.21", "Windows 10", WINDOWS_FP, 22))
    result = assign_backends(plan, [LIN], {"lin1"}, os_names)
    assert result.redirects == {}
    assert (
        "22/tcp stays emulated: no backend of this OS (Windows 10) serves it (backends for it: Linux)"
        in (result.explanations["198.18.0.21"])
    )


def test_an_unhealthy_backend_leaves_the_port_emulated_and_says_so() -> None:
    plan = plan_of(host("198.18.0.20", "Linux 5.X", LINUX_FP, 22))
    result = assign_backends(plan, [LIN], set(), os_names)
    assert result.redirects == {}
    assert (
        "22/tcp stays emulated: its backend(s) of this OS are down: lin1"
        in result.explanations["198.18.0.20"]
    )


def test_the_os_group_name_matches_too_and_ports_not_served_stay() -> None:
    backend = Backend("g", "198.18.0.52", "linux 5.x", (23,))
    plan = plan_of(host("198.18.0.20", "Linux 5.X", "unknown fp", 22, 23))
    result = assign_backends(plan, [backend], {"g"}, os_names)
    assert result.redirects == {"198.18.0.20": {23: "198.18.0.52"}}
    assert "22/tcp" not in result.explanations["198.18.0.20"]


def test_the_assignment_is_stable_and_spreads_hosts() -> None:
    backends = [Backend(f"l{i}", f"198.18.0.{50 + i}", "Linux", (22,)) for i in range(4)]
    hosts = [host(f"198.18.0.{100 + i}", "Linux 5.X", LINUX_FP, 22) for i in range(40)]
    first = assign_backends(plan_of(*hosts), backends, {b.name for b in backends}, os_names)
    again = assign_backends(plan_of(*hosts), backends, {b.name for b in backends}, os_names)
    assert first.redirects == again.redirects
    assert len({ports[22] for ports in first.redirects.values()}) == 4


def test_no_backends_leaves_the_plan_untouched() -> None:
    plan = plan_of(host("198.18.0.20", "Linux 5.X", LINUX_FP, 22))
    assert assign_backends(plan, [], set(), os_names) is plan


def test_a_redirect_is_written_as_honeyds_proxy_and_reads_back() -> None:
    plan = assign_backends(
        plan_of(host("198.18.0.20", "Linux 5.X", LINUX_FP, 22, 80)), [LIN], {"lin1"}, os_names
    )
    config = plan_to_honeyd(plan, PlannerSettings())
    assert config.templates["198.18.0.20"].ports[("tcp", 22)] == Action("proxy", "198.18.0.50:22")
    assert config.templates["198.18.0.20"].ports[("tcp", 80)] == Action("open")
    assert parse_config(render_config(config)).templates["198.18.0.20"].ports[("tcp", 22)].kind == "proxy"
    assert plan.as_json()["redirects"] == {"198.18.0.20": {"22": "198.18.0.50"}}


def test_health_checks_connect_once_an_interval() -> None:
    calls: list[tuple[str, int]] = []
    clock = [0.0]
    up = {"198.18.0.50"}

    def check(address: str, port: int) -> bool:
        calls.append((address, port))
        return address in up

    backends = [
        BackendSettings(name="lin1", address="198.18.0.50", os="Linux", ports=(22,), health_interval=30),
        BackendSettings(name="win1", address="198.18.0.51", os="Windows", ports=(3389,), health_port=445),
    ]
    health = BackendHealth(backends, check=check, clock=lambda: clock[0])
    assert health.healthy() == {"lin1"}
    assert calls == [("198.18.0.50", 22), ("198.18.0.51", 445)]
    clock[0] = 10.0
    up.clear()
    assert health.healthy() == {"lin1"}  # not due yet: the last answer stands
    clock[0] = 31.0
    assert health.healthy() == set()
    assert len(calls) == 4


def test_tcp_connects_to_a_real_listener() -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert tcp_connects("127.0.0.1", port)
    assert not tcp_connects("127.0.0.1", port, timeout=0.5)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"address": "198.18.0.500"}, "not an IPv4 address"),
        ({"ports": (22, 22)}, "distinct"),
        ({"mac": "02:00:00"}, "not a MAC address"),
    ],
)
def test_backend_settings_refuse_nonsense(values: dict, reason: str) -> None:
    base = {"name": "lin1", "address": "198.18.0.50", "os": "Linux"}
    with pytest.raises(ValueError, match=reason):
        BackendSettings(**{**base, **values})


def test_the_catalog_names_a_fingerprints_os() -> None:
    from dynapot.personality.catalog import MacVendors, PersonalityCatalog
    from dynapot.personality.osdb import load_osdb

    catalog = PersonalityCatalog(load_osdb(), MacVendors({}))
    assert "linux" in catalog.os_names(LINUX_FP)
    assert "windows" in catalog.os_names(WINDOWS_FP) and "linux" not in catalog.os_names(WINDOWS_FP)
    assert catalog.os_names("no such fingerprint") == frozenset()


def test_the_deployer_redirects_to_a_healthy_backend_and_rewrites_when_it_goes_down(
    db, catalog, tmp_path
) -> None:
    from datetime import UTC, datetime

    from dynapot.config import NetworkSettings
    from dynapot.deploy.deployer import Deployer
    from dynapot.discovery.observation import Observation, OsGuess, PortObservation
    from dynapot.inventory import record_observations

    linux = OsGuess("Linux 5.4", 98, "Linux", "Linux", "5.X", "general purpose")
    ssh = PortObservation("tcp", 22, "open", "ssh", "OpenSSH", "8.9p1")
    now = datetime.now(UTC)
    record_observations(
        db, [Observation(ip="198.18.0.2", seen_at=now, tool="nmap", alive=True, os=linux, ports=(ssh,))]
    )
    up = [True]
    backends = [
        BackendSettings(name="lin1", address="198.18.0.14", os="Linux", ports=(22,), health_interval=1)
    ]
    clock = [0.0]
    health = BackendHealth(backends, check=lambda address, port: up[0], clock=lambda: clock[0])
    network = NetworkSettings(cidr="198.18.0.0/28", gateway="198.18.0.1")
    deployer = Deployer(db, network, PlannerSettings(), catalog, backends=backends, health=health)
    path = tmp_path / "honeyd.conf"
    first = deployer.deploy(path)
    hosts = first.plan.virtual_hosts
    assert hosts and "198.18.0.14" not in {vh.ip for vh in hosts}  # the backend's address is never free
    assert set(first.plan.redirects) == {vh.ip for vh in hosts}
    assert path.read_text().count("proxy 198.18.0.14:22") == len(hosts)
    up[0], clock[0] = False, 5.0
    second = deployer.deploy(path)
    assert not second.moved and second.plan.redirects == {}
    assert "proxy" not in path.read_text()  # the hosts stay, their port 22 is emulated again
    assert (
        "22/tcp stays emulated: its backend(s) of this OS are down: lin1"
        in second.plan.explanations[hosts[0].ip]
    )

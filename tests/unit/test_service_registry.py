"""How the services are described and gathered: one `Service` description per name, two registries."""

from __future__ import annotations

from dataclasses import replace

import pytest

import dynapot.services as services
from dynapot.services.contract import Service


def test_every_module_describes_its_services_the_same_way() -> None:
    for module in services.MODULES:
        assert module.SERVICES and all(isinstance(s, Service) for s in module.SERVICES), module


def test_registries_hold_each_name_once_by_transport() -> None:
    tcp = {name for s in services.SERVICES if s.transport == "tcp" for name in s.names}
    udp = {name for s in services.SERVICES if s.transport == "udp" for name in s.names}
    assert set(services.REGISTRY) == tcp and set(services.UDP_REGISTRY) == udp
    assert {"ftp", "ssh", "telnet", "http", "smtp", "smb", "netbios-ssn", "microsoft-ds", "rdp"} <= tcp
    assert {"mysql", "banner", "ms-wbt-server"} <= tcp
    assert udp == {"snmp", "netbios-ns", "nbns"}
    for service in services.SERVICES:
        registry = services.REGISTRY if service.transport == "tcp" else services.UDP_REGISTRY
        assert all(registry[name] is service.handler for name in service.names)


def test_a_description_needs_names_and_a_known_transport() -> None:
    with pytest.raises(ValueError, match="transport"):
        Service(("x",), "sctp", lambda *a: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="names"):
        Service((), "tcp", lambda *a: None)


def test_preload_loads_what_services_import_late(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[str] = []
    watched = tuple(
        replace(s, preload=lambda name=s.names[0]: called.append(name)) if s.preload else s
        for s in services.SERVICES
    )
    monkeypatch.setattr(services, "SERVICES", watched)
    services.preload()
    assert sorted(called) == ["rdp", "ssh"]  # asyncssh's algorithms, RDP's thread pool and TLS

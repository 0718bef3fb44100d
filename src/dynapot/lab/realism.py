"""The realism comparison: a real host's daemons against the dynapot virtual host imitating them.

`real_spec()` is a lab host running the real daemons (`dynapot.lab.daemons`); `imitation_config`
writes the honeyd configuration of a virtual host from nmap -sV's view of the real one, as the
planner would (`add T tcp port 22 "ssh OpenSSH|9.2p1 Debian 2+deb12u10"`); `probe_host` runs the
probe table (`dynapot.lab.probes`) from the attacker namespace; `compare` pairs the answers,
normalised (`dynapot.lab.probe_norm`), into rows {service, probe, real, dynapot, differs}.
Used by bench/realism_probes.py and the lab test.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Collection
from typing import Any

from defusedxml import ElementTree

from dynapot.lab.daemons import NGINX_PORT, register
from dynapot.lab.network import HostSpec, Lab
from dynapot.lab.probe_norm import describe, host_names
from dynapot.processes import python_command

__all__ = [
    "TARGETS",
    "compare",
    "imitation_config",
    "nmap_services",
    "probe_host",
    "real_spec",
    "summary",
    "targets",
    "time_host",
]

#: (label, protocol, port) of each daemon the real host runs.
TARGETS: tuple[tuple[str, str, int], ...] = (
    ("ssh", "ssh", 22),
    ("ftp", "ftp", 21),
    ("telnet", "telnet", 23),
    ("smtp", "smtp", 25),
    ("apache", "http", 80),
    ("nginx", "http", NGINX_PORT),
    ("mysql", "mysql", 3306),
)
#: The protocols whose timing is measured (`time_host`): those that speak first or ask for a login.
TIMED_PROTOCOLS = frozenset({"ssh", "ftp", "telnet", "smtp"})
REAL_SERVICES = ("ssh-debian", "ftp-debian", "telnet", "smtp", "apache", "nginx", "mysql")
#: nmap's service names that dynapot's services answer to.
_DYNAPOT_SERVICES = {"ssh", "ftp", "telnet", "smtp", "http", "mysql"}


def real_spec(name: str = "real") -> HostSpec:
    """The lab host that runs every real daemon (registers the daemons with the lab)."""
    register()
    return HostSpec(name, REAL_SERVICES)


def nmap_services(lab: Lab, ip: str, ports: list[int]) -> dict[int, dict[str, str]]:
    """nmap -sV's view of `ip`: per open port its service name, product, version and extrainfo."""
    argv = ["nmap", "-n", "-Pn", "-sV", "-p", ",".join(map(str, ports)), "-oX", "-", ip]
    result = lab.exec(lab.attacker, argv, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"nmap failed: {result.stderr.strip()}")
    found = {}
    for port in ElementTree.fromstring(result.stdout).iter("port"):
        state, service = port.find("state"), port.find("service")
        if state is None or state.get("state") != "open":
            continue
        attrs = service.attrib if service is not None else {}
        found[int(port.get("portid", "0"))] = {
            k: attrs.get(k, "") for k in ("name", "product", "version", "extrainfo")
        }
    return found


def imitation_config(template: str, ip: str, services: dict[int, dict[str, str]], personality: str) -> str:
    """A honeyd configuration for one virtual host imitating `services` (nmap_services' answer)."""
    lines = [f"create {template}", f'set {template} personality "{personality}"']
    lines.append(f"set {template} default tcp action reset")
    for port, svc in sorted(services.items()):
        name = svc["name"] if svc["name"] in _DYNAPOT_SERVICES else ""
        if not name:
            continue
        text = name
        version = svc["version"]
        if name == "http" and version and svc["extrainfo"].startswith("("):
            version += f" {svc['extrainfo']}"  # Apache's OS comment, "(Debian)": its Server header says it
        if svc["product"]:
            text += f" {svc['product']}" + (f"|{version}" if version else "")
        lines.append(f'add {template} tcp port {port} "{text}"')
    lines.append(f"bind {ip} {template}")
    return "\n".join(lines) + "\n"


def targets(labels: Collection[str] = ()) -> list[tuple[str, str, int]]:
    """The TARGETS named by `labels` (all of them when none are named); an unknown label is refused."""
    unknown = set(labels) - {label for label, _, _ in TARGETS}
    if unknown:
        raise ValueError(
            f"no such service: {', '.join(sorted(unknown))} (known: {', '.join(t[0] for t in TARGETS)})"
        )
    return [t for t in TARGETS if not labels or t[0] in labels]


def probe_host(
    lab: Lab, ip: str, *, short: bool = False, labels: Collection[str] = (), timeout: float = 900
) -> list[dict[str, Any]]:
    """Every probe's raw result against `ip` (of the services named by `labels`, or all), sent
    from the attacker namespace."""
    spec = {"ip": ip, "targets": [list(t) for t in targets(labels)], "short": short}
    return _run_on_attacker(lab, "dynapot.lab.probe_run", spec, timeout, "probe run")


def time_host(
    lab: Lab, ip: str, *, labels: Collection[str] = (), n: int = 10, logins: int = 3, timeout: float = 1800
) -> list[dict[str, Any]]:
    """`dynapot.lab.timing_run`'s lines for `ip`: `n` connections to each service named by
    `labels` (HTTP and MySQL are not timed), `logins` of them with a wrong password."""
    chosen = [list(t) for t in targets(labels) if t[1] in TIMED_PROTOCOLS]
    spec = {"ip": ip, "targets": chosen, "n": n, "logins": logins}
    return _run_on_attacker(lab, "dynapot.lab.timing_run", spec, timeout, "timing run")


def _run_on_attacker(
    lab: Lab, module: str, spec: dict[str, Any], timeout: float, what: str
) -> list[dict[str, Any]]:
    """Run a runner module (`run_spec`) in the attacker namespace with `spec`; its JSON lines."""
    result = lab.exec(lab.attacker, python_command("-m", module, json.dumps(spec)), timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed: {result.stderr.strip()[-2000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def compare(
    real: list[dict[str, Any]],
    imitation: list[dict[str, Any]],
    real_ip: str,
    imitation_ip: str,
) -> list[dict[str, Any]]:
    """One row per probe: both answers normalised, and whether they differ."""
    real_names = (*host_names(real), "real", socket.gethostname())
    imitation_names = host_names(imitation)
    theirs = {(r["label"], r["probe"]): r for r in imitation}
    rows = []
    for result in real:
        key = (result["label"], result["probe"])
        other = theirs.get(key)
        a = describe(result, real_ip, real_names)
        b = describe(other, imitation_ip, imitation_names) if other else "(not run)"
        rows.append({"service": key[0], "probe": key[1], "real": a, "dynapot": b, "differs": a != b})
    return rows


def nmap_rows(real: dict[int, dict[str, str]], imitation: dict[int, dict[str, str]]) -> list[dict[str, Any]]:
    """nmap -sV's product, version and extrainfo per port, as probe rows."""
    labels = {port: label for label, _, port in TARGETS}
    rows = []
    for port, svc in sorted(real.items()):
        a = "{name} | {product} | {version} | {extrainfo}".format(**svc)
        other = imitation.get(port)
        b = "{name} | {product} | {version} | {extrainfo}".format(**other) if other else "(closed)"
        rows.append(
            {
                "service": labels.get(port, str(port)),
                "probe": "nmap-sV",
                "real": a,
                "dynapot": b,
                "differs": a != b,
            }
        )
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per service: probes and tells (probes whose answers differ)."""
    probes, tells = Counter(), Counter()
    for row in rows:
        probes[row["service"]] += 1
        tells[row["service"]] += bool(row["differs"])
    return {s: {"probes": probes[s], "tells": tells[s]} for s in probes}

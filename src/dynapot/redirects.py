"""Which ports of which virtual hosts go to a real high-interaction backend: pure, beside the planner.

The planner decides what each virtual host wears; this decides, for the ports the backends
serve, whether the port is emulated or redirected to a real machine. A port is redirected to a
healthy backend that serves it and whose OS matches the host's personality: the backend's
`os` names the host's OS group ("Linux 2.6.X") or one of its fingerprint's families or
family-and-generation ("Linux", "Linux 5.X"). A Windows decoy never lands on a Linux box: in
packet mode the attacker meets the backend's own TCP stack, whose fingerprint must agree with
the one the virtual host showed to nmap. Without a matching healthy backend the port stays
emulated, and the plan's explanation says why.

Of several matching backends a host takes the one that serves most of its redirectable ports,
ties broken by a hash of its address (stable: the same picture gives the same assignment).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from dynapot.planner import Plan, VirtualHost


@dataclass(frozen=True, slots=True)
class Backend:
    """One real high-interaction honeypot, as the settings' [[backends]] describe it."""

    name: str
    address: str
    os: str
    ports: tuple[int, ...]


def _matches(backend: Backend, vh: VirtualHost, os_names: Callable[[str], frozenset[str]]) -> bool:
    wanted = backend.os.strip().lower()
    return wanted == vh.os.lower() or (vh.personality is not None and wanted in os_names(vh.personality))


def _rank(backend: Backend, vh: VirtualHost, ports: set[int]) -> tuple[int, bytes]:
    spread = hashlib.blake2b(f"{vh.ip}\0{backend.name}".encode(), digest_size=8).digest()
    return (-len(ports & set(backend.ports)), spread)


def assign_backends(
    plan: Plan,
    backends: Sequence[Backend],
    healthy: Collection[str],
    os_names: Callable[[str], frozenset[str]],
) -> Plan:
    """`plan` with `redirects` filled in and each affected host's explanation extended.

    `healthy` names the backends that answered their last health check; `os_names(fingerprint)`
    is what a fingerprint's OS is called (`PersonalityCatalog.os_names`).
    """
    if not backends:
        return plan
    served = {port for backend in backends for port in backend.ports}
    redirects: dict[str, dict[int, str]] = {}
    explanations = dict(plan.explanations)
    for vh in plan.virtual_hosts:
        ports = {s.port for s in vh.services if s.proto == "tcp" and s.port in served}
        if not ports:
            continue
        fitting = [b for b in backends if _matches(b, vh, os_names)]
        usable = sorted((b for b in fitting if b.name in healthy), key=lambda b: _rank(b, vh, ports))
        notes: list[str] = []
        chosen: dict[int, Backend] = {}
        for port in sorted(ports):
            backend = next((b for b in usable if port in b.ports), None)
            if backend is not None:
                chosen[port] = backend
                notes.append(
                    f"{port}/tcp redirected to backend {backend.name} ({backend.address}, {backend.os})"
                )
                continue
            down = [b.name for b in fitting if port in b.ports and b.name not in healthy]
            if down:
                why = f"its backend(s) of this OS are down: {', '.join(down)}"
            else:
                others = sorted({b.os for b in backends if port in b.ports})
                why = f"no backend of this OS ({vh.os}) serves it" + (
                    f" (backends for it: {', '.join(others)})" if others else ""
                )
            notes.append(f"{port}/tcp stays emulated: {why}")
        if chosen:
            redirects[vh.ip] = {port: backend.address for port, backend in chosen.items()}
        previous = explanations.get(vh.ip)
        explanations[vh.ip] = "; ".join([*([previous] if previous else []), *notes])
    return dataclasses.replace(plan, redirects=redirects, explanations=explanations)

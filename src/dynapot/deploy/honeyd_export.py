"""A plan as a honeyd configuration.

One named template per (OS group, personality) carries the personality and the
default actions; each virtual host is a host template on top of it (honeyd's
`bind IP T` followed by `set IP ...` / `add IP ...`) with its own MAC and ports. The
same text drives a real honeyd or dynapot's own sensor. No uptime is written: dynapot's
sensor takes each host's boot time from its identity (`dynapot.services.identity`), so that
it keeps growing across restarts and agrees with what the host's services say.
"""

from __future__ import annotations

import re

from dynapot.config import PlannerSettings
from dynapot.honeyd.config import BUILTIN_SERVICES, Action, HoneydConfig, Template
from dynapot.planner import OPEN, Plan, ServiceSpec


def _template_name(group: str, index: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", group.lower()).strip("-") or "host"
    return f"dp-{slug}" if index == 0 else f"dp-{slug}-{index + 1}"


def _clean(text: str | None, limit: int = 120) -> str | None:
    """nmap's product words are what a remote host said: keep them printable, short and '|'-free."""
    if not text:
        return None
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text).replace("|", "/")
    return " ".join(cleaned.split())[:limit].strip() or None


def _action(spec: ServiceSpec) -> Action:
    if spec.service == OPEN:
        return Action("open")
    if spec.service in BUILTIN_SERVICES:
        product = _clean(spec.product)
        return Action("service", spec.service, product, _clean(spec.version) if product else None)
    return Action("command", spec.service)  # an admin's honeyd script from service_scripts


def plan_to_honeyd(plan: Plan, policy: PlannerSettings) -> HoneydConfig:
    config = HoneydConfig()
    names: dict[tuple[str, str | None], str] = {}
    per_group: dict[str, int] = {}
    for vh in plan.virtual_hosts:
        key = (vh.os, vh.personality)
        if key not in names:
            index = per_group.get(vh.os, 0)
            per_group[vh.os] = index + 1
            name = names[key] = _template_name(vh.os, index)
            base = Template(name=name, personality=vh.personality)
            # Unknown OS: nmap could not fingerprint the real ones; silence is the closest match.
            base.defaults["tcp"] = Action(policy.default_tcp_action if vh.personality else "block")
            base.defaults["udp"] = Action(policy.default_udp_action if vh.personality else "block")
            config.templates[name] = base
        host = config.templates[names[key]].copy(vh.ip, base=names[key])
        host.ethernet = vh.mac
        redirected = plan.redirects.get(vh.ip, {})
        for spec in vh.services:
            if spec.proto in ("tcp", "udp"):
                host.ports[(spec.proto, spec.port)] = _action(spec)  # type: ignore[index]
            if spec.proto == "tcp" and spec.port in redirected:
                # honeyd's own word for it: a real honeyd proxies; dynapot's sensor relays packets
                # with the attacker's address when the target is a configured backend (packet mode).
                host.ports[("tcp", spec.port)] = Action("proxy", f"{redirected[spec.port]}:{spec.port}")
        config.templates[vh.ip] = host
        config.binds[vh.ip] = vh.ip
    return config

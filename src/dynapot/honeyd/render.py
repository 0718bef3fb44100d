"""Render a `HoneydConfig` as canonical honeyd configuration text.

Layout: the header as `#` comments, then each named template (`default` first, then by name) as
`create` followed by its `set` and `add` lines, then `annotate` lines, then the binds in address
order. A host template (see `Template.base`) is written as `bind IP BASE` followed by only the
statements that turn BASE into it, which is exactly what honeyd does with such lines. (A host
template identical to its base therefore renders as a plain bind and reads back as one.)

The output reads back through `parse_config` to an equal model. Strings are quoted with the
minimum of escaping so that honeyd, which knows no escapes, reads the same text; only a string
that contains a double quote cannot be expressed for honeyd itself.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from dynapot.honeyd.config import (
    BUILTIN_SERVICES,
    PROTOS,
    SIMPLE_ACTIONS,
    Action,
    HoneydConfig,
    Subsystem,
    Template,
    Topology,
    canonical_mac,
    ethernet_problem,
    is_ipv4,
    name_problem,
)


def quote(text: str) -> str:
    """Double-quote `text`, escaping quotes and only the backslashes the parser would consume."""
    if not text:
        raise ValueError("cannot render an empty string")
    if text.splitlines() != [text]:  # the parser reads one statement per (splitlines) line
        raise ValueError(f"cannot render a string containing a line break: {text!r}")
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch == '"':
            out.append('\\"')
        elif ch == "\\" and (i + 1 == len(text) or text[i + 1] in '"\\'):
            out.append("\\\\")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def render_action(action: Action, builtin_services: Collection[str] = BUILTIN_SERVICES) -> str:
    """The honeyd text of one action."""
    if action.tarpit:
        return "tarpit " + render_action(replace(action, tarpit=False), builtin_services)
    if action.kind in SIMPLE_ACTIONS:
        return action.kind
    target = action.target or ""
    if action.kind == "proxy":
        return f"proxy {target}"
    if action.kind == "command" and target.strip().partition(" ")[0] in builtin_services:
        raise ValueError(f"command {target!r} would read back as the built-in service of that name")
    if action.kind == "service":
        if target not in builtin_services:
            raise ValueError(f"service {target!r} is not a built-in service and would read back as a command")
        imitation = action.imitation()
        return quote(f"{target} {imitation}" if imitation else target)
    return quote(target)


def _subsystem_line(name: str, sub: Subsystem) -> str:
    flags = "".join(f" {flag}" for flag, on in (("shared", sub.shared), ("restart", sub.restart)) if on)
    return f"add {name} subsystem {quote(sub.command)}{flags}"


def _template_lines(
    name: str, template: Template, base: Template | None, services: Collection[str]
) -> list[str]:
    """The set/add lines that make `template` out of `base` (out of an empty template if None)."""

    def changed(attr: str) -> bool:
        mine = getattr(template, attr)
        theirs = getattr(base, attr) if base is not None else None
        if mine is None and theirs is not None:
            raise ValueError(f"host template {name}: {attr} cannot be unset from its base")
        return mine is not None and mine != theirs

    lines: list[str] = []
    if template.dynamic is not None:
        for rule in template.dynamic:
            if rule.condition is None:
                lines.append(f"add {name} otherwise use {rule.template}")
            else:
                lines.append(f"add {name} use {rule.template} if {rule.condition.render()}")
        return lines
    if template.random_personality and not (base is not None and base.random_personality):
        lines.append(f"set {name} personality random")
    elif changed("personality"):
        lines.append(f"set {name} personality {quote(template.personality or '')}")
    if changed("ethernet"):
        ethernet = template.ethernet or ""
        if problem := ethernet_problem(ethernet):
            raise ValueError(f"template {name}: {problem}")
        lines.append(f"set {name} ethernet {quote(canonical_mac(ethernet) or ethernet)}")
    if changed("uptime"):
        lines.append(f"set {name} uptime {_number(template.uptime, 'uptime', 0)}")
    if changed("droprate"):
        lines.append(f"set {name} droprate in {_number(template.droprate, 'droprate', 0, 100)}")
    if changed("droprate_syn"):
        lines.append(f"set {name} droprate syn {_number(template.droprate_syn, 'droprate', 0, 100)}")
    uid_changed, gid_changed = changed("uid"), changed("gid")
    if uid_changed or gid_changed:
        if template.uid is None:
            raise ValueError(f"template {name}: gid needs a uid (honeyd sets them together)")
        line = f"set {name} uid {_number(template.uid, 'uid', 1)}"
        if template.gid is not None:
            line += f" gid {_number(template.gid, 'gid', 1)}"
        lines.append(line)
    if changed("maxfds"):
        lines.append(f"set {name} maxfds {_number(template.maxfds, 'maxfds', 4)}")

    base_defaults = base.defaults if base is not None else {}
    for proto in PROTOS:
        action = template.defaults.get(proto)
        if action is None:
            if proto in base_defaults:
                raise ValueError(f"host template {name}: {proto} default cannot be unset from its base")
            continue
        if base_defaults.get(proto) == action:
            continue
        if proto == "icmp" and action.kind not in SIMPLE_ACTIONS:
            raise ValueError(f"template {name}: icmp default must be a simple action, not {action.kind}")
        lines.append(f"set {name} default {proto} action {render_action(action, services)}")

    base_ports = base.ports if base is not None else {}
    for key, action in base_ports.items():
        if template.ports.get(key) != action:
            # honeyd cannot re-add a port, so a host cannot differ from its base on one.
            raise ValueError(f"host template {name}: {key[0]} port {key[1]} differs from its base")
    for rule in template.port_rules():
        if (rule.proto, rule.port) in base_ports:
            continue
        if not 1 <= rule.port <= 65535:
            raise ValueError(f"template {name}: port {rule.port} out of range 1..65535")
        lines.append(f"add {name} {rule.proto} port {rule.port} {render_action(rule.action, services)}")

    if template.spoof is not None and (base is None or base.spoof != template.spoof):
        spoof = template.spoof
        parts = [
            f"from {spoof.source}" if spoof.source else "",
            f"to {spoof.destination}" if spoof.destination else "",
        ]
        lines.append(f"set {name} spoof " + " ".join(p for p in parts if p))

    base_subs = base.subsystems if base is not None else []
    if template.subsystems[: len(base_subs)] != base_subs:
        raise ValueError(f"host template {name}: subsystems must extend those of its base")
    lines.extend(_subsystem_line(name, sub) for sub in template.subsystems[len(base_subs) :])
    return lines


def _number(value: int | None, what: str, low: int, high: int | None = None) -> int:
    if value is None or value < low or (high is not None and value > high):
        raise ValueError(f"{what} {value} out of range")
    return value


def render_config(
    config: HoneydConfig,
    *,
    header: str | None = None,
    builtin_services: Collection[str] = BUILTIN_SERVICES,
) -> str:
    """Canonical honeyd text for `config`; raises ValueError if the model cannot be expressed.

    `builtin_services` must be the set the reader will parse with, so that service and command
    actions read back as what they are.
    """
    out: list[str] = []
    if header:
        out.extend(f"# {line}".rstrip() for line in header.splitlines())
        out.append("")

    named = [t for t in config.named_templates() if not is_ipv4(t.name)]  # IP-named: conditional binds
    # Dynamic templates name others, so they come after every template they may use.
    for template in sorted(named, key=lambda t: t.dynamic is not None):
        if problem := name_problem(template.name):
            raise ValueError(problem)
        out.append(f"{'dynamic' if template.dynamic is not None else 'create'} {template.name}")
        out.extend(_template_lines(template.name, template, None, builtin_services))
        out.append("")

    if config.annotations:
        out.extend(f"annotate {quote(a.personality)} {a.setting}" for a in config.annotations)
        out.append("")

    for ip in config.bound_addresses():
        if not is_ipv4(ip):
            raise ValueError(f"bind address {ip!r} is not a canonical IPv4 address")
        template = config.templates.get(config.binds[ip])
        if template is None:
            raise ValueError(f"{ip} is bound to unknown template {config.binds[ip]!r}")
        if template.name == ip and template.dynamic is not None:  # `bind CONDITION IP TEMPLATE`
            for rule in template.dynamic:
                condition = rule.condition.render() if rule.condition else "otherwise"
                out.append(f"bind {condition} {ip} {rule.template}")
            continue
        if not template.is_host_template:
            out.append(f"bind {ip} {template.name}")
            continue
        base = config.templates.get(template.base or "")
        if template.name != ip or base is None or base.is_host_template:
            raise ValueError(f"host template {template.name!r} must be bound to its own address")
        out.append(f"bind {ip} {base.name}")
        out.extend(_template_lines(ip, template, base, builtin_services))

    for ip, interface in sorted(config.interfaces.items()):
        out.append(f"bind {ip} to {interface}")
    for name, (interface, mac) in sorted(config.dhcp.items()):
        out.append(f"dhcp {name} on {interface}" + (f" ethernet {quote(mac)}" if mac else ""))
    out.extend(f"option {plugin} {key} {value}" for plugin, key, value in config.options)
    if config.topology:
        out.append("")
        out.extend(render_topology(config.topology))

    orphans = [t.name for t in config.templates.values() if t.is_host_template and t.name not in config.binds]
    if orphans:
        raise ValueError(f"host templates without a bind: {', '.join(sorted(orphans))}")

    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def render_topology(topology: Topology) -> list[str]:
    """honeyd's `route` lines: entry points first, then each router's links, routes and the rest."""
    lines = [
        f"route entry {router}" + (f" network {network}" if network is not None else "")
        for router, network in topology.entries.items()
    ]
    for router in topology.routers.values():
        lines.extend(f"route {router.address} link {network}" for network in router.links)
        for net in router.nets:
            line = f"route {router.address} add net {net.network} {net.gateway}"
            if net.latency_ms:
                line += f" latency {net.latency_ms}ms"
            if net.loss:
                line += f" loss {net.loss:g}"
            if net.bandwidth:
                line += f" bandwidth {net.bandwidth}"
            if net.drop_between:
                line += f" drop between {net.drop_between[0]}ms - {net.drop_between[1]}ms"
            lines.append(line)
        lines.extend(f"route {router.address} unreach {network}" for network in router.unreachable)
        lines.extend(
            f"route {router.address} add net {t.network} tunnel {t.source} {t.destination}"
            for t in router.tunnels
        )
    return lines

"""honeyd's configuration language: a typed model, a parser and a renderer.

dynapot's planner writes this language (`dynapot honeyd-config`), the sensor reads it, and honeyd
users can bring their existing files. The supported statements are honeyd's everyday ones::

    create windows
    set windows personality "Microsoft Windows XP Professional SP1"
    set windows ethernet "intel"
    set windows default tcp action reset
    add windows tcp port 21 "sh scripts/ftp.sh $ipsrc $sport"
    add windows tcp port 22 "ssh"             # one of BUILTIN_SERVICES: our emulated service
    add windows tcp port 8080 proxy 198.18.0.9:80
    clone xp2 windows
    bind 198.18.0.20 windows
    set 198.18.0.20 ethernet "00:0c:29:12:34:56"   # only this host: a host template

The rest of honeyd's grammar is read too: `route` topologies (`HoneydConfig.topology`), `tarpit`,
`dynamic` templates and conditional binds, `delete`, `spoof`, `dhcp`, `bind IP to IFACE`,
`option`, `include`, `personality random`, `internal`; what the sensor does not act on is kept
as a `Note` (`HoneydConfig.notes`, printed by `dynapot honeyd-check`). `annotate` is parsed and
kept (`HoneydConfig.annotations`) and rendered back.

    parse_config(text, *, builtin_services=BUILTIN_SERVICES, source="<string>") -> HoneydConfig
    load_config(path, *, builtin_services=BUILTIN_SERVICES) -> HoneydConfig
    render_config(config, *, header=None, builtin_services=BUILTIN_SERVICES) -> str
"""

from dynapot.honeyd.config import (
    BUILTIN_SERVICES,
    Action,
    Annotation,
    HoneydConfig,
    PortRule,
    Subsystem,
    Template,
)
from dynapot.honeyd.parser import HoneydConfigError, load_config, parse_config
from dynapot.honeyd.render import render_config

__all__ = [
    "BUILTIN_SERVICES",
    "Action",
    "Annotation",
    "HoneydConfig",
    "HoneydConfigError",
    "PortRule",
    "Subsystem",
    "Template",
    "load_config",
    "parse_config",
    "render_config",
]

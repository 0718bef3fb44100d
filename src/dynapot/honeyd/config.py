"""The typed model of a honeyd configuration: templates, their port actions, and address bindings.

The model holds what a configuration *means*, not how it was written: `clone` is expanded into a
full copy, and `set`/`add` on a bound address become a *host template* (named by the address, with
`base` naming the template that was bound). That is honeyd's own semantics: `bind` copies the
template, and later statements addressed to the IP change only that copy.

Line numbers are kept for error messages but never take part in equality, so a parsed file and
its rendered-then-reparsed form compare equal.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal, get_args

Proto = Literal["tcp", "udp", "icmp"]
PortProto = Literal["tcp", "udp"]
ActionKind = Literal["open", "closed", "reset", "block", "filtered", "proxy", "service", "command"]
AnnotationSetting = Literal["finscan", "no finscan", "fragment drop", "fragment old", "fragment new"]

PROTOS: tuple[Proto, ...] = get_args(Proto)
PORT_PROTOS: tuple[PortProto, ...] = get_args(PortProto)
ANNOTATION_SETTINGS: tuple[AnnotationSetting, ...] = get_args(AnnotationSetting)

# Actions that are a bare keyword. honeyd 1.5 knows open/block/reset; DataSoft's honeyd 1.6 adds
# closed/filtered as synonyms. We keep the word as written so a rendered file says what its author said.
SIMPLE_ACTIONS: frozenset[str] = frozenset({"open", "closed", "reset", "block", "filtered"})

# Quoted port actions that name one of our emulated services instead of a honeyd script. The
# sensor may pass a larger set to the parser; this is only the default.
BUILTIN_SERVICES: frozenset[str] = frozenset(
    {"banner", "ftp", "http", "mysql", "rdp", "smb", "smtp", "snmp", "ssh", "telnet"}
)

# Words honeyd's lexer turns into tokens, so they can never be a template name (lex.l).
# `default` and `template` are tokens too, but the grammar accepts them as names.
# fmt: off
HONEYD_KEYWORDS: frozenset[str] = frozenset({
    "create", "add", "port", "bind", "clone", "filtered", "open", "closed", "block", "reset",
    "default", "action", "set", "personality", "random", "annotate", "no", "finscan", "fragment",
    "drop", "old", "new", "proxy", "broadcast", "uptime", "droprate", "in", "syn", "uid", "gid",
    "route", "entry", "net", "link", "unreach", "latency", "bandwidth", "Kbps", "Mbps", "ms",
    "loss", "subsystem", "template", "option", "to", "on", "dhcp", "shared", "restart", "network",
    "tunnel", "tarpit", "spoof", "from", "delete", "tcp", "udp", "icmp", "dynamic", "source",
    "list", "ip", "os", "use", "if", "otherwise", "between", "time", "internal", "maxfds",
    "ethernet", "debug", "include",
})
# fmt: on
SPECIAL_NAMES: frozenset[str] = frozenset({"default", "template"})

# honeyd's STRING token, minus the leading `$` (that form only means something inside `proxy`).
_NAME_RE = re.compile(r"[A-Za-z][.()/A-Za-z_\-0-9*]*")
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
_SERVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_HOSTNAME_RE = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)*"
)
_VAR_RE = re.compile(r"\$[A-Za-z_][A-Za-z_0-9]*")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a template name in honeyd syntax, or None if it can."""
    if not _NAME_RE.fullmatch(name):
        return f"{name!r} is not a valid template name (a letter, then letters, digits or ._-()/*)"
    if name in HONEYD_KEYWORDS and name not in SPECIAL_NAMES:
        return f"{name!r} is a honeyd keyword and cannot name a template"
    return None


def is_ipv4(text: str) -> bool:
    """True for a canonical dotted-quad IPv4 address (no leading zeros)."""
    try:
        return str(ipaddress.IPv4Address(text)) == text
    except ValueError:
        return False


def canonical_mac(text: str) -> str | None:
    """The lower-case form of a colon-separated MAC address, or None if `text` is not one."""
    return text.lower() if _MAC_RE.fullmatch(text) else None


def ethernet_problem(value: str) -> str | None:
    """Why `value` is neither a MAC address nor a vendor name, or None if it is fine."""
    if not value.strip():
        return "empty ethernet value"
    # A colon means the author meant an address; a vendor name never contains one.
    if ":" in value and canonical_mac(value) is None:
        return f"{value!r} is not a MAC address (expected six hex pairs like 00:0c:29:12:34:56)"
    return None


def proxy_target_problem(target: str) -> str | None:
    """Why `target` is not a honeyd proxy HOST:PORT, or None if it is fine."""
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port:
        return f"proxy target {target!r} is not HOST:PORT"
    if not (is_ipv4(host) or _VAR_RE.fullmatch(host) or _HOSTNAME_RE.fullmatch(host)):
        return f"proxy host {host!r} is not an IPv4 address, a host name or a $variable"
    if _VAR_RE.fullmatch(port):
        return None
    if not port.isdigit() or not 1 <= int(port) <= 65535 or port != str(int(port)):
        return f"proxy port {port!r} is not a port number 1..65535 or a $variable"
    return None


@dataclass(frozen=True, slots=True)
class Action:
    """What a template does with traffic to a port (or by default for a protocol).

    `target` is the HOST:PORT for `proxy`, the service name for `service`, the command line for
    `command` (a honeyd script such as ``sh scripts/ftp.sh $ipsrc $sport``), and None otherwise.
    A service may imitate a `product` and `version` (nmap -sV's words); in the configuration they
    follow the name: ``"ssh OpenSSH|8.9p1 Ubuntu 3ubuntu0.10"``.
    """

    kind: ActionKind
    target: str | None = None
    product: str | None = None
    version: str | None = None
    tarpit: bool = False  # honeyd's `tarpit` flag: the connection is slowed to a crawl

    def __post_init__(self) -> None:
        if self.tarpit and self.kind in ("closed", "reset", "block", "filtered"):
            raise ValueError(f"action {self.kind!r} cannot be tarpitted (only open, proxy or a script)")
        if self.kind != "service" and (self.product or self.version):
            raise ValueError(f"action {self.kind!r} takes no product or version")
        if self.kind in SIMPLE_ACTIONS:
            if self.target is not None:
                raise ValueError(f"action {self.kind!r} takes no target")
            return
        if self.kind not in ("proxy", "service", "command"):
            raise ValueError(f"unknown action kind {self.kind!r}")
        if not self.target:
            raise ValueError(f"action {self.kind!r} needs a target")
        if self.kind == "proxy" and (problem := proxy_target_problem(self.target)):
            raise ValueError(problem)
        if self.kind == "service" and not _SERVICE_RE.fullmatch(self.target):
            raise ValueError(f"service name {self.target!r} must be a single word")
        if self.version and not self.product:
            raise ValueError("a service version needs a product")
        for label, text in (("product", self.product), ("version", self.version)):
            if text is not None and (not text.strip() or not text.isprintable() or text != text.strip()):
                raise ValueError(f"service {label} {text!r} must be printable text without outer spaces")
        if self.product and "|" in self.product:
            raise ValueError(f"service product {self.product!r} must not contain '|'")

    def imitation(self) -> str:
        """The text after a service's name in the configuration: PRODUCT or PRODUCT|VERSION."""
        if not self.product:
            return ""
        return f"{self.product}|{self.version}" if self.version else self.product


def service_action(text: str, services: frozenset[str] | set[str]) -> Action | None:
    """The service action a quoted honeyd action names (`NAME [PRODUCT[|VERSION]]`), or None."""
    name, _, rest = text.strip().partition(" ")
    if name not in services:
        return None
    product, _, version = rest.strip().partition("|")
    return Action("service", name, product.strip() or None, version.strip() or None)


@dataclass(frozen=True, slots=True)
class PortRule:
    """One `add T PROTO port N ACTION` line, as a value."""

    proto: PortProto
    port: int
    action: Action


@dataclass(frozen=True, slots=True)
class Subsystem:
    """An `add T subsystem "CMD" [shared] [restart]` entry: a program honeyd runs for the host."""

    command: str
    shared: bool = False
    restart: bool = False


@dataclass(frozen=True, slots=True)
class Spoof:
    """`set T spoof from IP [to IP]` / `set T spoof to IP`: honeyd rewrites the host's addresses."""

    source: str | None = None
    destination: str | None = None


@dataclass(frozen=True, slots=True)
class TimeOfDay:
    """A clock time in a `time between` condition (honeyd keeps hours and minutes, and seconds
    when written as "hh:mm:ss")."""

    hour: int
    minute: int
    second: int = 0

    def render(self) -> str:
        return f'"{self.hour:02d}:{self.minute:02d}:{self.second:02d}"'


@dataclass(frozen=True, slots=True)
class Condition:
    """When a dynamic template uses one of its templates (honeyd's `condition`).

    kind: "os" (the source's passive OS fingerprint names `value`, a p0f class such as
    "windows"), "ip" (the source is the address or network `value`), "time" (the local time is
    within `between`), "proto" (the packet's protocol is `value`), or "otherwise".
    """

    kind: Literal["os", "ip", "time", "proto", "otherwise"]
    value: str | None = None
    between: tuple[TimeOfDay, TimeOfDay] | None = None

    def render(self) -> str:
        if self.kind == "os":
            return f'source os = "{self.value}"'
        if self.kind == "ip":
            return f"source ip = {self.value}"
        if self.kind == "time" and self.between is not None:
            return f"time between {self.between[0].render()} - {self.between[1].render()}"
        if self.kind == "proto":
            return str(self.value)
        return "otherwise"


@dataclass(frozen=True, slots=True)
class DynamicRule:
    """`add DYN use T if CONDITION` (or `add DYN otherwise use T`: condition None)."""

    template: str
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class RouteNet:
    """`route R add net NET GW [latency N ms] [loss P] [bandwidth B] [drop between L ms - H ms]`.

    `loss` is a percentage, `bandwidth` bits per second (0: unlimited), `drop_between` the queue
    delays in milliseconds between which honeyd drops packets at random (its RED).
    """

    network: ipaddress.IPv4Network
    gateway: str
    latency_ms: int = 0
    loss: float = 0.0
    bandwidth: int = 0
    drop_between: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Tunnel:
    """`route R add net NET tunnel SRC DST`: NET lies behind a GRE tunnel from SRC to DST."""

    network: ipaddress.IPv4Network
    source: str
    destination: str


@dataclass(slots=True)
class Router:
    """One router of honeyd's simulated topology: the networks it reaches and how."""

    address: str
    links: list[ipaddress.IPv4Network] = field(default_factory=list)  # directly attached
    nets: list[RouteNet] = field(default_factory=list)  # reached through another router
    unreachable: list[ipaddress.IPv4Network] = field(default_factory=list)
    tunnels: list[Tunnel] = field(default_factory=list)


@dataclass(slots=True)
class Topology:
    """honeyd's routed network (`route ...` statements): where packets enter, and the routers.

    `entries` maps each entry router's address to the network it is the entry for (None: every
    address it can route). Empty when the configuration has no `route` statement: every host is
    then on the sensor's own link.
    """

    entries: dict[str, ipaddress.IPv4Network | None] = field(default_factory=dict)
    routers: dict[str, Router] = field(default_factory=dict)

    def router(self, address: str) -> Router:
        """The router at `address`, made on first mention (honeyd's forward references)."""
        if address not in self.routers:
            self.routers[address] = Router(address)
        return self.routers[address]

    def __bool__(self) -> bool:
        return bool(self.entries or self.routers)


@dataclass(frozen=True, slots=True)
class Note:
    """Something a configuration says that the sensor accepts but does not act on, or that was
    corrected; `dynapot honeyd-check` prints them."""

    line: int
    text: str


@dataclass(frozen=True, slots=True)
class Annotation:
    """An `annotate "FINGERPRINT" SETTING` line: tweaks to a personality, not to a template."""

    personality: str
    setting: AnnotationSetting
    line: int | None = field(default=None, compare=False)


@dataclass(slots=True)
class Template:
    """A honeyd template: how a virtual host looks (personality, MAC, uptime) and what it answers.

    `base` is set only on host templates (those named by an IPv4 address): the named template
    that was bound to the address, of which this template is a modified copy.
    """

    name: str
    personality: str | None = None
    random_personality: bool = False  # `set T personality random`: a fingerprint drawn per host
    ethernet: str | None = None
    uptime: int | None = None
    droprate: int | None = None
    droprate_syn: int | None = None
    uid: int | None = None
    gid: int | None = None
    maxfds: int | None = None
    defaults: dict[Proto, Action] = field(default_factory=dict)
    ports: dict[tuple[PortProto, int], Action] = field(default_factory=dict)
    subsystems: list[Subsystem] = field(default_factory=list)
    spoof: Spoof | None = None
    # honeyd's `dynamic` templates: the first rule whose condition matches picks the template.
    dynamic: list[DynamicRule] | None = None
    base: str | None = None
    line: int | None = field(default=None, compare=False)

    @property
    def is_host_template(self) -> bool:
        """True for the per-address copy honeyd makes when a bound address is modified."""
        return self.base is not None

    def copy(self, name: str, *, base: str | None = None, line: int | None = None) -> Template:
        """A deep copy under a new name, as `clone` and `bind` make it."""
        new = copy.deepcopy(self)
        new.name, new.base, new.line = name, base, line
        return new

    def port_rules(self) -> list[PortRule]:
        """The port actions as rules, sorted by protocol and port."""
        return [PortRule(proto, port, self.ports[proto, port]) for proto, port in sorted(self.ports)]

    def action_for(self, proto: PortProto, port: int) -> Action | None:
        """The action for a port: its own rule, else the protocol default, else None (honeyd's own)."""
        return self.ports.get((proto, port)) or self.defaults.get(proto)


@dataclass(slots=True)
class HoneydConfig:
    """A whole configuration: templates by name, and which template answers for each address."""

    templates: dict[str, Template] = field(default_factory=dict)
    binds: dict[str, str] = field(default_factory=dict)  # IPv4 address -> template name
    annotations: list[Annotation] = field(default_factory=list)
    topology: Topology = field(default_factory=Topology)
    interfaces: dict[str, str] = field(default_factory=dict)  # `bind IP to IFACE`: external addresses
    dhcp: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # template -> (iface, MAC)
    options: list[tuple[str, str, str]] = field(default_factory=list)  # `option PLUGIN KEY VALUE`
    bind_lines: dict[str, int] = field(default_factory=dict, compare=False)
    notes: list[Note] = field(default_factory=list, compare=False)

    def template_for(self, ip: str) -> Template | None:
        """The template answering for `ip`: its bound template, else `default` if created, else None."""
        name = self.binds.get(ip)
        if name is not None:
            return self.templates[name]
        return self.templates.get("default")

    def bound_addresses(self) -> list[str]:
        """All bound addresses in numeric order."""
        return sorted(self.binds, key=ipaddress.IPv4Address)

    def named_templates(self) -> list[Template]:
        """The templates a `create` defines (not host templates): `default` first, then by name."""
        named = [t for t in self.templates.values() if not t.is_host_template]
        return sorted(named, key=lambda t: (t.name != "default", t.name))

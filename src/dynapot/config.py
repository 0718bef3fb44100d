"""Settings: one TOML file, validated with pydantic, overridable by environment and CLI.

Precedence, highest first: CLI options (applied by the caller as `overrides`), the
environment (`DYNAPOT_DB` for the database URL, `DYNAPOT_<SECTION>__<FIELD>` for the
rest), the TOML file, the defaults below. An invalid value is refused with a one-line
`ConfigError` that names the value the way the user gave it (the option, the environment
variable, or the key and file), the value unless it may hold a secret, and what is allowed.
Each loaded `Settings` remembers where its values came from (`Settings.origin`), so that
later checks can name them the same way.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

DEFAULT_DB_PATH = Path("/var/lib/dynapot/dynapot.db")
ENV_PREFIX = "DYNAPOT_"

Risk = Literal["low", "medium", "high", "critical"]
RISKS: tuple[str, ...] = ("low", "medium", "high", "critical")
RISK_RANK = {name: rank for rank, name in enumerate(RISKS)}


class ConfigError(ValueError):
    """Settings that cannot be used; the one-line message names the value, its source and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkSettings(_Section):
    """One network dynapot looks after."""

    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None = None
    # Addresses or ranges never handed to honeypots: "198.18.0.200-198.18.0.254", a CIDR, or one address.
    exclude: tuple[str, ...] = ()

    @field_validator("cidr", mode="before")
    @classmethod
    def _strict_network(cls, value: Any) -> Any:
        # "198.18.0.5/24" has host bits set: almost always a typo for the network, so refuse it.
        return parse_network(str(value))

    @field_validator("gateway", mode="before")
    @classmethod
    def _an_address(cls, value: Any) -> Any:
        if value is None or isinstance(value, ipaddress.IPv4Address):
            return value
        try:
            return ipaddress.IPv4Address(str(value))
        except ValueError:
            raise ValueError(f"{str(value)!r} is not an IPv4 address") from None

    @field_validator("gateway")
    @classmethod
    def _gateway_inside(cls, value: ipaddress.IPv4Address | None, info: ValidationInfo) -> Any:
        cidr = info.data.get("cidr")  # absent when the network itself was refused
        if value is not None and cidr is not None and value not in cidr:
            raise ValueError(f"{value} is outside the network {cidr}")
        return value

    @field_validator("exclude")
    @classmethod
    def _valid_ranges(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            parse_address_range(item)
        return value


class ActiveDiscoverySettings(_Section):
    """The original design's knobs for nmap: N scans in parallel, D seconds between batches."""

    parallel: int = Field(8, ge=1, le=256, description="N: nmap scans run at once")
    interval: float = Field(0.0, ge=0, le=86_400, description="D: seconds to wait between batches")
    polite: bool = Field(False, description="nmap's polite timing: probes serialised, 0.4 s apart")
    host_timeout: float = Field(300.0, gt=0, le=86_400, description="give up on one host after this")
    ports: str | None = Field(None, description="nmap -p syntax; default: nmap's top 100 ports")
    os_detection: bool = True
    version_detection: bool = True
    nmap_path: str = "nmap"


class FusionSettings(_Section):
    """[discovery.fusion]: whose OS answer a host gets when tools disagree (see discovery.fusion)."""

    nmap_threshold: int = Field(85, ge=0, le=100, description="nmap's answer wins outright at this accuracy")
    tool_order: tuple[str, ...] = Field(("nmap", "p0f", "passive"), description="tie-break order of tools")

    @field_validator("tool_order")
    @classmethod
    def _distinct_tools(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not tool for tool in value) or len(set(value)) != len(value):
            raise ValueError("tool_order must list distinct, non-empty tool names")
        return value


class DiscoverySettings(_Section):
    mode: Literal["active", "passive", "hybrid"] = "active"
    active: ActiveDiscoverySettings = ActiveDiscoverySettings()
    fusion: FusionSettings = FusionSettings()


class PlannerSettings(_Section):
    """Policy for filling free addresses."""

    hold_off: float = Field(
        3600.0,
        ge=0,
        le=3_153_600_000,  # a hundred years: beyond any use, well inside the dates a database keeps
        description="seconds since an address was last seen before it counts as free",
    )
    fill_ratio: float = Field(1.0, ge=0, le=1, description="share of free addresses to fill (1 = all)")
    unknown_os: Literal["infer", "exclude"] = Field(
        "infer",
        description="a host no OS tool named takes the family its services, TTL or MAC vendor point "
        'to ("infer"), or is left out of the ratio at once ("exclude"); "group", the old default, '
        "reads as infer: a honeypot without a personality is never planned",
    )
    min_os_accuracy: int = Field(
        0, ge=0, le=100, description="OS answers below this accuracy count as unknown"
    )
    apply: Literal["auto", "hold"] = Field(
        "auto",
        description='"auto": the daemon deploys each new plan itself; "hold": it stores the plan as '
        "pending and deploys it only when an admin applies it (the web interface's plan page)",
    )

    @field_validator("unknown_os", mode="before")
    @classmethod
    def _group_is_infer(cls, value: Any) -> Any:
        return "infer" if value == "group" else value

    default_tcp_action: Literal["reset", "block", "closed", "filtered"] = "reset"
    default_udp_action: Literal["reset", "block", "closed", "filtered"] = "reset"
    max_network_size: int = Field(
        65_536,
        ge=4,
        description="addresses in the widest network dynapot plans (65,536: a /16); wider ones are "
        "refused, since planning looks at every address",
    )

    def check_network_size(self, network: ipaddress.IPv4Network) -> None:
        """Raise ValueError, naming the setting, when `network` is wider than this policy plans."""
        if network.num_addresses > self.max_network_size:
            raise ValueError(
                f"{network} has {network.num_addresses:,} addresses, more than "
                f"planner.max_network_size allows ({self.max_network_size:,})"
            )


class ExpirySettings(_Section):
    """Age in days after which rows are deleted, per table; 0 keeps them forever."""

    hosts: float = Field(30, ge=0)
    ports: float = Field(30, ge=0)
    honeypot_events: float = Field(90, ge=0)
    sessions: float = Field(90, ge=0)
    findings: float = Field(365, ge=0)
    alerts: float = Field(365, ge=0)

    def cutoff(self, table: str, now: datetime) -> datetime | None:
        """Rows of `table` older than this are deleted by expiry; None when the table is kept forever."""
        days: float = getattr(self, table)
        return now - timedelta(days=days) if days else None


class SensorSettings(_Section):
    """[sensor]: the sensor's bounds against the attacker it faces (memory, fairness)."""

    record_budget: int = Field(
        64 << 20, ge=1 << 20, description="bytes kept in total by ports with no service; then windows close"
    )
    service_sessions: int = Field(
        2048, ge=1, le=1 << 20, description="connections served by emulated services at once, in total"
    )
    service_sessions_per_source: int = Field(
        64, ge=1, description="connections one source may have served by emulated services at once"
    )
    connections_per_source: int = Field(
        16384, ge=16, description="TCP connections of one source; its longest idle goes first"
    )
    bytes_per_second_per_source: int = Field(
        4 << 20, ge=1024, description="bytes a second one source may send; above it, its windows close"
    )


class DaemonSettings(_Section):
    """`dynapot run`: how the daemon keeps the honeypots in step with the network."""

    interface: str | None = Field(None, description="the interface the sensor and the sniffer use")
    state_dir: Path = Field(Path("/var/lib/dynapot/run"), description="honeyd.conf, sensor status, logs")
    sensor_user: str = Field(
        "dynapot",
        description="the sensor drops root to this user: a system account of its own (no login shell, "
        "no home), which the set-up creates",
    )
    sensor_database_url: str | None = Field(
        None,
        description="the sensor's own database URL, for a role that may only insert events "
        "(PostgreSQL); default: the daemon's",
    )
    replan_interval: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="seconds between looks at the network picture (a re-plan when it moved)",
    )
    scan_interval: float = Field(3600.0, gt=0, description="seconds between active scans (active, hybrid)")
    liveness_interval: float = Field(
        30.0,
        ge=0,
        description="seconds between ARP sweeps of the known real hosts (active, hybrid); 0 = never",
    )
    liveness_rate: float = Field(200.0, gt=0, le=10000, description="ARP requests per second in a sweep")
    expire_interval: float = Field(3600.0, gt=0, description="seconds between expiry runs")
    correlate_interval: float = Field(1.0, gt=0, le=60, description="seconds between reads of new events")
    warmup: float = Field(
        60.0,
        ge=0,
        description="passive mode: seconds of listening before the first plan (active and hybrid wait "
        "for the first scan); a plan made on half a picture would move most honeypots soon after",
    )
    log_max_mb: float = Field(
        64.0,
        ge=1,
        le=1_000_000,
        description="the logs in state_dir that attackers make grow (honeyd.log, sensor.out, web.out) "
        "are cut at this size, the part before kept as NAME.1",
    )


def split_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:8443`, `[::1]:8443` or `localhost:8443` as (host, port); ValueError says what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8443)")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"{text!r}: the port must be 1-65535")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IP address (or localhost)") from None
    return host, port


class WebSettings(_Section):
    """[web]: the admin interface (`dynapot web`): sessions, login limits, where its certificate lives."""

    data_dir: Path = Field(
        Path("/var/lib/dynapot/web"),
        description="the self-signed TLS certificate and key made at first start",
    )
    lockout_failures: int = Field(
        5, ge=1, le=1000, description="failed logins in a row after which an account is locked"
    )
    lockout_seconds: float = Field(
        900.0, gt=0, le=86_400 * 30, description="how long a locked account stays locked"
    )
    login_attempts_per_minute: int = Field(
        10, ge=1, le=10_000, description="login attempts one client address may make a minute (any account)"
    )
    session_hours: float = Field(8.0, gt=0, le=24 * 30, description="a login lasts this long")
    allowed_hosts: tuple[str, ...] = Field(
        (),
        description="Host header names the interface answers (DNS rebinding protection); empty: the "
        "listen address, localhost, 127.0.0.1, ::1 and the certificate's names",
    )
    enabled: bool = Field(False, description="`dynapot run` also serves the interface, in a child process")
    listen: str = Field("127.0.0.1:8443", description="HOST:PORT `dynapot run` serves the interface on")
    tls: bool = Field(True, description="HTTPS (false: plain HTTP, behind a TLS proxy)")
    cert: Path | None = Field(None, description="PEM certificate (with key); none: a self-signed one")
    key: Path | None = Field(None, description="PEM private key of cert")
    user: str = Field(
        "dynapot-web",
        description=(
            "the web child of `dynapot run` drops root to this user once it listens (not the sensor's)"
        ),
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(name.strip().lower().rstrip(".") for name in value)
        for name in names:
            if not name or len(name) > 253 or not re.fullmatch(r"[a-z0-9.:_-]+", name):
                raise ValueError(f"{name!r} is not a host name or address")
        return names

    @model_validator(mode="after")
    def _pair(self) -> WebSettings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        if not self.tls and self.cert is not None:
            raise ValueError("tls = false and a cert contradict each other")
        return self


MIB = 1 << 20
GIB = 1 << 30


class StorageSettings(_Section):
    """[storage]: what the sensor may put on disk, so that no attacker can fill it.

    Noise (probes to closed ports, datagrams, pings, ICMP) is stored as one row per source,
    target and `noise_window`, with how many there were and over which span. Uploads are kept
    once per SHA-256, within a quota per source and the `spool_budget` in all. Past the
    `database_budget` the sensor keeps counting but stores neither payloads (excerpts, uploads)
    nor noise, and alerts once; past it by a tenth it stores nothing but its own news.
    """

    database_budget: int = Field(
        4 * GIB,
        ge=0,
        description="bytes the database may hold before payloads and noise are dropped; 0: no budget",
    )
    spool_budget: int = Field(
        1 * GIB, ge=0, description="bytes of uploaded files kept on disk, all sources together; 0: no budget"
    )
    upload_dir: Path = Field(Path("/var/lib/dynapot/uploads"), description="where uploads are kept")
    max_upload: int = Field(
        10 * MIB, ge=0, description="bytes kept of one uploaded file (the rest is refused)"
    )
    upload_per_source: int = Field(
        20 * MIB, ge=0, description="bytes of new files one source may leave per `upload_period`"
    )
    upload_period: float = Field(86_400.0, gt=0, description="seconds over which a source's uploads count")
    noise_window: float = Field(
        60.0, ge=1, le=3600, description="seconds over which repeated probes, datagrams and pings are one row"
    )
    noise_targets: int = Field(
        1000,
        ge=1,
        description="distinct hosts and ports one source gets rows for per window; the rest is one row",
    )
    noise_rows: int = Field(
        20_000,
        ge=1,
        description="first rows of noise per window from all sources together (a spoofed flood); "
        "the rest is one row per kind",
    )


class ServiceSettings(_Section):
    """[services]: what the emulated services let attackers do, beyond what the imitated server would.

    The defaults answer as the imitated daemons do out of the box (vsftpd as Debian ships it:
    no anonymous FTP; Postfix: no relaying), so one probe does not tell a honeypot. Each
    option trades some of that for what the honeypot captures.
    """

    ftp_logins: Literal["any", "weak", "none"] = Field(
        "weak",
        description="FTP logins that succeed: weak (a few common user/password pairs, different on "
        "each host, keyed with the deployment's secret), any (every login: shows what comes next, "
        "but a probe with random credentials sees a honeypot), none",
    )
    ftp_anonymous: bool = Field(
        False,
        description="anonymous FTP (USER anonymous or ftp, any password) with a writable incoming/ "
        "for catching uploads; off as in Debian's and Ubuntu's vsftpd.conf",
    )
    smtp_relay: bool = Field(
        False,
        description="an open mail relay that takes mail for any recipient, to capture whole spam "
        "runs; off: local users only, others refused as Postfix does (454 Relay access denied)",
    )


class BackendSettings(_Section):
    """[[backends]]: one real high-interaction honeypot the sensor may send attackers to.

    A virtual host's port listed in `ports` is redirected to a healthy backend whose `os`
    matches the host's personality (its OS group, e.g. "Linux 2.6.X", or its family, e.g.
    "Linux"); without one the port stays emulated. In packet mode the sensor is the backend's
    gateway and relays with the attacker's own address, so the backend's MAC is needed.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$", description="a short unique name")
    address: ipaddress.IPv4Address
    os: str = Field(min_length=1, max_length=64, description='OS group or family it may stand for ("Linux")')
    ports: tuple[int, ...] = Field((22,), min_length=1, description="TCP ports it serves for virtual hosts")
    health_port: int | None = Field(
        None, ge=1, le=65535, description="TCP port whose connect says it is up; default: its first port"
    )
    health_interval: float = Field(30.0, gt=0, le=86_400, description="seconds between health checks")
    mac: str | None = Field(None, description="its MAC (packet mode: frames to it are sent there)")

    @field_validator("address", mode="before")
    @classmethod
    def _an_address(cls, value: Any) -> Any:
        if isinstance(value, ipaddress.IPv4Address):
            return value
        try:
            return ipaddress.IPv4Address(str(value))
        except ValueError:
            raise ValueError(f"{str(value)!r} is not an IPv4 address") from None

    @field_validator("ports")
    @classmethod
    def _port_numbers(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= port <= 65535 for port in value) or len(set(value)) != len(value):
            raise ValueError("ports must be distinct TCP ports 1..65535")
        return value

    @field_validator("mac")
    @classmethod
    def _a_mac(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", value):
            raise ValueError(f"{value!r} is not a MAC address (six hex pairs like 02:00:00:00:00:01)")
        return value.lower() if value else value

    @property
    def checked_port(self) -> int:
        return self.health_port or self.ports[0]


class RedirectSettings(_Section):
    """[redirect]: how the sensor sends attackers to the backends, and what a backend may do."""

    mode: Literal["packet", "proxy"] = Field(
        "packet",
        description="packet: relay frames with the attacker's own address (the sensor is the backend's "
        "gateway); proxy: honeyd's TCP proxy from the sensor's address",
    )
    sticky_seconds: float = Field(
        3600.0,
        ge=0,
        le=30 * 86_400,
        description="one attacker keeps its backend this long after its last packet",
    )
    max_flows: int = Field(
        65_536, ge=16, le=1 << 22, description="relayed connections at once; the idlest go first"
    )
    flows_per_attacker: int = Field(
        256, ge=1, le=1 << 22, description="relayed connections one attacker may have at once"
    )
    max_attackers: int = Field(65_536, ge=16, le=1 << 22, description="attackers remembered for stickiness")
    idle_timeout: float = Field(
        900.0, gt=0, le=86_400, description="seconds a silent relayed connection is kept"
    )
    outbound_per_hour: int = Field(
        10,
        ge=0,
        le=100_000,
        description="connections a backend may start per hour that the sinkhole answers; beyond: refused",
    )
    sinkhole_bytes: int = Field(
        4096, ge=0, le=1 << 20, description="bytes of a backend's outbound request kept"
    )


class ScanRule(_Section):
    """[correlation.scan]: one source touching many hosts or many ports."""

    hosts: int = Field(10, ge=2, description="distinct virtual hosts one source touches within the window")
    ports: int = Field(20, ge=2, description="distinct ports one source touches within the window")
    risk: Risk = "low"
    os_scan_risk: Risk = Field("medium", description="risk of a scan that includes nmap OS detection")
    os_scan_alone: bool = Field(True, description="OS detection raises a scan even below the thresholds")


class BruteForceRule(_Section):
    """[correlation.brute_force]: many logins from one source to one service."""

    logins: int = Field(10, ge=2, description="login attempts to one host and port within the window")
    risk: Risk = "medium"
    accepted_risk: Risk = Field("critical", description="risk once one of the attempts was accepted")


class WormRule(_Section):
    """[correlation.worm]: the same port hit on many virtual hosts from several sources."""

    hosts: int = Field(5, ge=2, description="distinct virtual hosts hit on the port within the window")
    sources: int = Field(3, ge=2, description="distinct worm-like sources hitting the port")
    max_ports: int = Field(2, ge=1, description="a source touching more ports is a scanner, not a worm")
    min_hosts_per_source: int = Field(
        2, ge=1, description="a source on fewer hosts is a visitor: it does not sweep, it does not count"
    )
    risk: Risk = "high"


class CompromiseRule(_Section):
    """[correlation.compromise]: commands typed in a session on a high-interaction honeypot."""

    commands: int = Field(1, ge=1, description="commands typed in one session that make it a compromise")
    risk: Risk = "high"


class CorrelationSettings(_Section):
    """[correlation]: the window, the rules' thresholds and risks, and memory bounds."""

    window: float = Field(300.0, gt=0, le=7 * 86_400, description="seconds of the sliding window")
    scan: ScanRule = ScanRule()
    brute_force: BruteForceRule = BruteForceRule()
    worm: WormRule = WormRule()
    compromise: CompromiseRule = CompromiseRule()
    max_sources: int = Field(65_536, ge=16, description="states kept per table; the oldest go first")
    max_distinct: int = Field(4096, ge=16, description="hosts, ports or sources counted per state")
    max_event_ids: int = Field(100, ge=1, le=10_000, description="event ids kept per finding")

    @model_validator(mode="after")
    def _thresholds_countable(self) -> CorrelationSettings:
        # A threshold above the distinct cap could never be reached.
        highest = max(self.scan.hosts, self.scan.ports, self.worm.hosts, self.worm.sources)
        if highest > self.max_distinct:
            raise ValueError(f"max_distinct ({self.max_distinct}) is below a threshold ({highest})")
        return self


def parse_listen(text: str) -> tuple[str, int]:
    """`ADDR:PORT` (an IPv6 address in brackets: `[::1]:1101`) -> (address, port); ValueError says why."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{text!r} is not ADDR:PORT (e.g. 127.0.0.1:1101, [::1]:1101; port 0: any free one)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    return str(address), int(port)


class CollectorSettings(_Section):
    """[collector]: the Sebek v3 collector (`dynapot collector`; in `dynapot run` when enabled)."""

    enabled: bool = Field(False, description="run the collector inside dynapot run")
    listen: str = Field(
        "127.0.0.1:1101", description="ADDR:PORT of the UDP listener; 0.0.0.0:1101 to hear honeypots"
    )
    magic: int = Field(
        0x00D0D0D0,
        ge=0,
        le=0xFFFFFFFF,
        description="the magic value the Sebek clients were built with; records with another are "
        "counted and dropped",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("magic", mode="before")
    @classmethod
    def _magic(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                number = int(value, 16 if value.lower().startswith("0x") else 10)
            except ValueError:
                raise ValueError(f"{value!r} is not a number (e.g. 0xD0D0D0)") from None
            if not 0 <= number <= 0xFFFFFFFF:
                raise ValueError("must be 0 to 0xFFFFFFFF (32 bits)")
            return number
        return value


class AlertSettings(_Section):
    """Where findings are sent. `urls` are apprise URLs (mailto://, slack://, json://, syslog://, ...)."""

    urls: tuple[str, ...] = ()
    min_risk: Risk = "high"
    window: float = Field(600.0, gt=0, description="seconds in which one finding key alerts once")
    max_per_window: int = Field(10, ge=1, description="messages per window; the rest go into a digest")
    retries: int = Field(3, ge=0, le=20, description="delivery attempts after the first")
    retry_delay: float = Field(5.0, ge=0, description="seconds before the first retry (doubles each time)")
    timeout: float = Field(20.0, gt=0, le=300, description="seconds one delivery may take")

    @field_validator("urls")
    @classmethod
    def _apprise_can_use_them(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Checked here, when the settings are loaded, not when the daemon first sends an alert.
        for number, url in enumerate(value, start=1):
            problem = alert_url_problem(url)
            if problem:
                raise ValueError(f"entry {number} {problem}")
        return value


@contextlib.contextmanager
def _apprise_silenced() -> Iterator[None]:
    # apprise logs a URL it cannot parse, password and all; while we only check, it says nothing.
    logger = logging.getLogger("apprise")
    before, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = before


def alert_url_problem(url: str) -> str | None:
    """Why apprise cannot use `url`, in words that never repeat the URL (it may hold a password)."""
    scheme, sep, _ = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return "is not an apprise URL (scheme://..., e.g. mailto://, json://, syslog://)"
    import apprise  # only when there are URLs: it takes a while to load
    from apprise.manager_plugins import NotificationManager

    if scheme.lower() not in NotificationManager():
        return f"has a scheme apprise does not know: {scheme}:// (`apprise --details` lists them)"
    with _apprise_silenced():
        if apprise.Apprise.instantiate(url, suppress_exceptions=True) is None:
            return f"is not a {scheme}:// URL that apprise can use"
    return None


@dataclass(frozen=True)
class Origin:
    """Where a setting's value came from, to name it in a message the way the user gave it."""

    kind: Literal["default", "file", "environment", "option"]
    name: str = ""  # the settings file, the environment variable or the option
    text: str | None = None  # the variable's text, as written

    def describe(self, dotted: str, value: Any = None, *, secret: bool = False) -> str:
        """`--db URL`, `DYNAPOT_X=text (x)`, `x = value in FILE` or `x = value (default)`."""
        if self.kind == "option":  # as typed on the command line
            return self.name if secret or value is None else f"{self.name} {value}"
        shown = None if secret else _shown(value)
        if self.kind == "environment":
            if secret or self.text is None:
                return f"{self.name} ({dotted})"
            return f"{self.name}={self.text} ({dotted})"
        assigned = dotted if shown is None else f"{dotted} = {shown}"
        return f"{assigned} in {self.name}" if self.kind == "file" else f"{assigned} (default)"


_DEFAULT = Origin("default")
#: Settings whose values are never echoed whole: URLs that may carry passwords.
_SECRET = {("alerts", "urls"), ("daemon", "sensor_database_url")}
#: How the settings file spells a setting that the model keeps under another name.
_FILE_NAMES = {"database_url": "database.url"}


class Settings(_Section):
    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{DEFAULT_DB_PATH}",
        description="SQLAlchemy URL; DYNAPOT_DB or --db override it",
    )
    # Before `networks`: their validator checks each network against the planner's size limit.
    planner: PlannerSettings = PlannerSettings()
    networks: tuple[NetworkSettings, ...] = ()
    discovery: DiscoverySettings = DiscoverySettings()
    expiry: ExpirySettings = ExpirySettings()
    daemon: DaemonSettings = DaemonSettings()
    sensor: SensorSettings = SensorSettings()
    alerts: AlertSettings = AlertSettings()
    correlation: CorrelationSettings = CorrelationSettings()
    storage: StorageSettings = StorageSettings()
    services: ServiceSettings = ServiceSettings()
    backends: tuple[BackendSettings, ...] = ()
    redirect: RedirectSettings = RedirectSettings()
    collector: CollectorSettings = CollectorSettings()
    web: WebSettings = WebSettings()
    nmap_os_db: Path = Path("/usr/share/nmap/nmap-os-db")
    nmap_mac_prefixes: Path = Path("/usr/share/nmap/nmap-mac-prefixes")

    # Where each value given (not defaulted) came from; filled by load_settings.
    _origins: dict[tuple[str, ...], Origin] = PrivateAttr(default_factory=dict)

    @field_validator("networks")
    @classmethod
    def _plannable(cls, value: tuple[NetworkSettings, ...], info: ValidationInfo) -> Any:
        planner = info.data.get("planner")
        if planner is not None:
            for network in value:
                planner.check_network_size(network.cidr)
        return value

    @field_validator("backends")
    @classmethod
    def _distinct_backends(cls, value: tuple[BackendSettings, ...]) -> tuple[BackendSettings, ...]:
        for attribute in ("name", "address"):
            seen = [getattr(backend, attribute) for backend in value]
            if len(set(seen)) != len(seen):
                raise ValueError(f"two backends have the same {attribute}")
        return value

    def network_for(self, cidr: str) -> NetworkSettings:
        """The configured network `cidr`, or a bare one when the config does not list it."""
        wanted = parse_network(cidr)
        for net in self.networks:
            if net.cidr == wanted:
                return net
        return NetworkSettings(cidr=wanted)

    def origin(self, dotted: str) -> Origin:
        """Where the setting `dotted` (e.g. "daemon.interface") came from."""
        return _origin_of(tuple(dotted.split(".")), self._origins)

    def value(self, dotted: str) -> Any:
        """The value of the setting `dotted` (e.g. "daemon.interface")."""
        value: Any = self
        for part in dotted.split("."):
            value = getattr(value, part)
        return value

    def describe(self, dotted: str) -> str:
        """The setting `dotted` and its value, named as the user gave it (for messages)."""
        value = self.value(dotted)
        if dotted == "database_url":
            value = redact_url(value)
        origin = self.origin(dotted)
        shown = _FILE_NAMES.get(dotted, dotted) if origin.kind == "file" else dotted
        return origin.describe(shown, value, secret=tuple(dotted.split(".")) in _SECRET)


def parse_network(text: str) -> ipaddress.IPv4Network:
    """A strict IPv4 network from user input, with an error that says what is wrong."""
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not an IPv4 network: {exc}") from None


def parse_address_range(text: str) -> tuple[int, int]:
    """`a.b.c.d`, `a.b.c.d-e.f.g.h` or a CIDR as an inclusive (first, last) integer pair."""
    try:
        if "-" in text:
            first_text, last_text = text.split("-", 1)
            first = int(ipaddress.IPv4Address(first_text.strip()))
            last = int(ipaddress.IPv4Address(last_text.strip()))
        elif "/" in text:
            net = ipaddress.IPv4Network(text, strict=False)
            first, last = int(net.network_address), int(net.broadcast_address)
        else:
            first = last = int(ipaddress.IPv4Address(text.strip()))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an address, range or network: {exc}") from None
    if last < first:
        raise ValueError(f"range {text!r} ends before it starts")
    return first, last


def redact_url(url: str) -> str:
    """`url` with the password of its user part replaced by ***."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _shown(value: Any) -> str | None:
    """A value as a message shows it (TOML-like); None for what is not worth echoing."""
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, str | int | float | bool):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        scalars = all(isinstance(v, str | int | float) for v in value)
        return json.dumps(list(value)) if scalars else None
    return str(value)


def _leaves(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The paths of the values in a nested mapping (a list is one value)."""
    for key, value in data.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _origin_of(loc: tuple[str | int, ...], origins: Mapping[tuple[str, ...], Origin]) -> Origin:
    """The origin of the value at `loc`: the longest given path that leads to it, else what lies under it."""
    path = tuple(str(p) for p in loc)
    for end in range(len(path), 0, -1):
        if path[:end] in origins:
            return origins[path[:end]]
    below = [origin for given, origin in origins.items() if given[: len(path)] == path]
    return below[0] if len(below) == 1 else _DEFAULT


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], Origin]]:
    """DYNAPOT_SECTION__FIELD=value pairs as a nested dict (values parsed as TOML scalars)."""
    result: dict[str, Any] = {}
    origins: dict[tuple[str, ...], Origin] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key == "DYNAPOT_DB" or "__" not in key:
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word: keep it as a string
        node = result
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # DYNAPOT_A=1 and DYNAPOT_A__B=2 at once
                raise ConfigError(f"{key}: {'.'.join(path[:-1])} is a value, not a section")
            node = child
        node[path[-1]] = value
        origins[tuple(path)] = Origin("environment", key, raw)
    return result, origins


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _section_fields(path: tuple[str | int, ...]) -> list[str] | None:
    """The settings a section at `path` has, for "not a setting" messages."""
    model: type[BaseModel] = Settings
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not models:
            return None
        model = models[0]
    return [_FILE_NAMES.get(name, name).split(".")[0] for name in model.model_fields]


def _reason(item: Any) -> str:
    """pydantic's complaint as the end of a sentence that names the value."""
    if item["type"] == "extra_forbidden":
        fields = _section_fields(item["loc"][:-1])
        section = ".".join(str(p) for p in item["loc"][:-1] if not isinstance(p, int))
        known = f"{section} has" if section else "known"
        return f"not a setting ({known}: {', '.join(fields)})" if fields else "not a setting"
    if item["type"] == "missing":
        return "required"
    reason: str = item["msg"].removeprefix("Value error, ")
    return reason.replace("Input should be", "must be")


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


def describe_errors(error: ValidationError, origins: Mapping[tuple[str, ...], Origin]) -> str:
    """One line: each invalid value named as the user gave it, with the reason."""
    problems = []
    for item in error.errors():
        loc = item["loc"]
        origin = _origin_of(loc, origins)
        dotted = _dotted(loc)
        if origin.kind == "file":
            dotted = _FILE_NAMES.get(dotted, dotted)
        secret = any(tuple(str(p) for p in loc)[: len(s)] == s for s in _SECRET)
        value = item.get("input")
        if loc == ("database_url",) and isinstance(value, str):
            value = redact_url(value)
        problems.append(f"{origin.describe(dotted or 'settings', value, secret=secret)}: {_reason(item)}")
    return "; ".join(problems)


def _read_file(config_path: str | Path, named: str) -> dict[str, Any]:
    """The settings file as the model's nested dict; `named` is how the user gave its path."""
    try:
        data = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{named}: no such settings file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{named}: cannot read the settings file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{named}: not valid TOML: {exc}") from None
    # The file says [database] url = ...; the model keeps it flat.
    database = data.pop("database", None)
    if isinstance(database, dict):
        if "url" in database:
            data["database_url"] = database.pop("url")
        if database:
            unknown = ", ".join(f"database.{key}" for key in sorted(database))
            raise ConfigError(f"{unknown} in {config_path}: not a setting (database has: url)")
    elif database is not None:
        raise ConfigError(f"database in {config_path}: must be a table with a url")
    return data


def load_settings(
    path: Path | str | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    override_names: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read, merge and validate the settings; raise a one-line ConfigError naming the bad value.

    `override_names` says how the user gave each override ({"database_url": "--db"}), so that
    a message can name the option; unnamed overrides are "the command line".
    """
    environ = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], Origin] = {}
    config_path = path if path is not None else environ.get("DYNAPOT_CONFIG")
    if config_path:
        named = str(config_path) if path is not None else f"DYNAPOT_CONFIG={config_path}"
        data = _read_file(config_path, named)
        origins.update(dict.fromkeys(_leaves(data), Origin("file", str(config_path))))
    from_env, env_origins = _env_overrides(environ)
    data = _merge(data, from_env)
    origins.update(env_origins)
    if environ.get("DYNAPOT_DB"):
        data["database_url"] = environ["DYNAPOT_DB"]
        origins[("database_url",)] = Origin("environment", "DYNAPOT_DB", redact_url(environ["DYNAPOT_DB"]))
    overrides = overrides or {}
    data = _merge(data, overrides)
    names = override_names or {}
    for leaf in _leaves(overrides):
        origins[leaf] = Origin("option", names.get(".".join(leaf), "the command line"))
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, origins)) from None
    settings._origins = origins
    return settings

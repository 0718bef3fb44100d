"""Settings: one TOML file, validated with pydantic, overridable by environment and CLI.

Precedence, highest first: CLI options (applied by the caller as `overrides`), the
environment (`DYNAPOT_DB` for the database URL, `DYNAPOT_<SECTION>__<FIELD>` for the
rest), the TOML file, the defaults below. An invalid value is refused with a
`ConfigError` whose message names the field and the reason.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_DB_PATH = Path("/var/lib/dynapot/dynapot.db")
ENV_PREFIX = "DYNAPOT_"

Risk = Literal["low", "medium", "high", "critical"]
RISKS: tuple[str, ...] = ("low", "medium", "high", "critical")
RISK_RANK = {name: rank for rank, name in enumerate(RISKS)}


class ConfigError(ValueError):
    """Settings that cannot be used; the message names the field and why."""


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
        try:
            return ipaddress.IPv4Network(str(value), strict=True)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IPv4 network ({exc})") from None

    @field_validator("exclude")
    @classmethod
    def _valid_ranges(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            parse_address_range(item)
        return value

    @model_validator(mode="after")
    def _gateway_inside(self) -> NetworkSettings:
        if self.gateway is not None and self.gateway not in self.cidr:
            raise ValueError(f"gateway {self.gateway} is outside {self.cidr}")
        return self


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
        3600.0, ge=0, description="seconds since an address was last seen before it counts as free"
    )
    fill_ratio: float = Field(1.0, ge=0, le=1, description="share of free addresses to fill (1 = all)")
    unknown_os: Literal["group", "exclude"] = Field(
        "group", description="hosts of unknown OS form their own group, or are left out of the ratio"
    )
    min_os_accuracy: int = Field(
        0, ge=0, le=100, description="OS answers below this accuracy count as unknown"
    )
    default_tcp_action: Literal["reset", "block", "closed", "filtered"] = "reset"
    default_udp_action: Literal["reset", "block", "closed", "filtered"] = "reset"


class ExpirySettings(_Section):
    """Age in days after which rows are deleted, per table; 0 keeps them forever."""

    hosts: float = Field(30, ge=0)
    ports: float = Field(30, ge=0)
    honeypot_events: float = Field(90, ge=0)
    sessions: float = Field(90, ge=0)
    findings: float = Field(365, ge=0)
    alerts: float = Field(365, ge=0)


class DaemonSettings(_Section):
    """`dynapot run`: how the daemon keeps the honeypots in step with the network."""

    interface: str | None = Field(None, description="the interface the sensor and the sniffer use")
    state_dir: Path = Field(Path("/var/lib/dynapot/run"), description="honeyd.conf, sensor status, logs")
    sensor_user: str = Field("nobody", description="the sensor drops root to this user")
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


class CorrelationSettings(_Section):
    """[correlation]: the window, the rules' thresholds and risks, and memory bounds."""

    window: float = Field(300.0, gt=0, le=7 * 86_400, description="seconds of the sliding window")
    scan: ScanRule = ScanRule()
    brute_force: BruteForceRule = BruteForceRule()
    worm: WormRule = WormRule()
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
    def _known_schemes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for number, url in enumerate(value, start=1):
            if "://" not in url:  # the URL itself is not echoed: it may hold a password
                raise ValueError(f"entry {number} is not an apprise URL (scheme://...)")
        return value


class Settings(_Section):
    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{DEFAULT_DB_PATH}",
        description="SQLAlchemy URL; DYNAPOT_DB or --db override it",
    )
    networks: tuple[NetworkSettings, ...] = ()
    discovery: DiscoverySettings = DiscoverySettings()
    planner: PlannerSettings = PlannerSettings()
    expiry: ExpirySettings = ExpirySettings()
    daemon: DaemonSettings = DaemonSettings()
    alerts: AlertSettings = AlertSettings()
    correlation: CorrelationSettings = CorrelationSettings()
    nmap_os_db: Path = Path("/usr/share/nmap/nmap-os-db")
    nmap_mac_prefixes: Path = Path("/usr/share/nmap/nmap-mac-prefixes")

    def network_for(self, cidr: str) -> NetworkSettings:
        """The configured network `cidr`, or a bare one when the config does not list it."""
        wanted = parse_network(cidr)
        for net in self.networks:
            if net.cidr == wanted:
                return net
        return NetworkSettings(cidr=wanted)


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


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """DYNAPOT_SECTION__FIELD=value pairs as a nested dict (values parsed as TOML scalars)."""
    result: dict[str, Any] = {}
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
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return result


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid settings in {source}:"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        reason = item["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {reason}")
    return "\n".join(lines)


def load_settings(
    path: Path | str | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Read, merge and validate the settings; raise ConfigError naming the bad field."""
    environ = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    source = "defaults"
    config_path = path if path is not None else environ.get("DYNAPOT_CONFIG")
    if config_path:
        source = str(config_path)
        try:
            data = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"settings file {config_path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {config_path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path} is not valid TOML: {exc}") from None
        # The file says [database] url = ...; the model keeps it flat.
        database = data.pop("database", None)
        if isinstance(database, dict) and "url" in database:
            data["database_url"] = database.pop("url")
            if database:
                raise ConfigError(f"{config_path}: database: unknown keys {sorted(database)}")
    data = _merge(data, _env_overrides(environ))
    if environ.get("DYNAPOT_DB"):
        data["database_url"] = environ["DYNAPOT_DB"]
    data = _merge(data, overrides or {})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None

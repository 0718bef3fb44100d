"""Build and tear down the lab network: namespaces, a bridge, real services.

Layout of one lab with run id ``abc123``::

    dp-abc123-sw        switch namespace holding bridge ``br0`` and the switch-side veth ends
    dp-abc123-sensor    eth0 = .2 (the sensor listens here)
    dp-abc123-attacker  eth0 = .3 (scanners run here)
    dp-abc123-r1 ...    eth0 = .10, .11, ... real hosts running sshd / HTTP / FTP

Nothing is created in the root namespace: the bridge lives in its own namespace and every
veth pair is created inside the switch namespace with its peer placed directly into the
host namespace. Address ``.1`` stays unused so that planners treat it as the gateway.

A JSON state file under ``/run/dynapot/labs/<id>.json`` is written *before* anything is
created and updated as the lab grows, so that ``lab_down(id)`` (or ``lab_down_all()``)
from another process can always remove what exists, even after a crash half-way.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from dynapot.files import write_atomically
from dynapot.processes import python_command

__all__ = [
    "DEFAULT_NETWORK",
    "SERVICES",
    "HostInfo",
    "HostSpec",
    "Lab",
    "LabError",
    "LabSpec",
    "default_spec",
    "lab_down",
    "lab_down_all",
    "lab_up",
    "list_labs",
    "started_run_ids",
]

#: Every lab address must lie inside this benchmarking range (RFC 2544); never anything else.
ALLOWED_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
DEFAULT_NETWORK = ipaddress.IPv4Network("198.18.0.0/24")
STATE_DIR = Path("/run/dynapot/labs")

#: Host offsets inside the lab network.
GATEWAY_OFFSET = 1
SENSOR_OFFSET = 2
ATTACKER_OFFSET = 3
FIRST_REAL_OFFSET = 10

BRIDGE = "br0"
HOST_IFNAME = "eth0"
SWITCH = "sw"
SENSOR = "sensor"
ATTACKER = "attacker"
_RESERVED_NAMES = frozenset({SWITCH, SENSOR, ATTACKER})

_RUN_ID_RE = re.compile(r"^[0-9a-f]{6}$")
#: Only namespaces matching this pattern are ever considered ours.
_NETNS_RE = re.compile(r"^dp-([0-9a-f]{6})-([a-z][a-z0-9]*)$")
_HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")

SSHD = "/usr/sbin/sshd"  # sshd refuses to re-exec itself unless started by absolute path
VSFTPD = "/usr/sbin/vsftpd"
VSFTPD_CHROOT = Path("/var/run/vsftpd/empty")

#: Default timeout for one helper command (ip, ethtool, sysctl ...).
CMD_TIMEOUT = 15.0
#: Default timeout for ``Lab.exec``.
EXEC_TIMEOUT = 60.0


class LabError(RuntimeError):
    """The lab could not be built, queried or torn down."""


# --------------------------------------------------------------------------- specs and infos


@dataclass(frozen=True)
class HostSpec:
    """One real host of the lab.

    ``services`` are names from :data:`SERVICES` (``ssh``, ``http``, ``ftp``); ``sysctls``
    are per-network-namespace sysctls (e.g. ``net.ipv4.ip_default_ttl``) that change what
    the host's TCP/IP stack looks like to nmap.
    """

    name: str
    services: tuple[str, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LabSpec:
    """What to build: the lab network and its real hosts."""

    hosts: tuple[HostSpec, ...] = ()
    network: ipaddress.IPv4Network = DEFAULT_NETWORK
    #: Seconds to wait for every service to accept connections.
    service_timeout: float = 10.0
    #: IPv6 off keeps router solicitations and DAD out of the sensor's view.
    disable_ipv6: bool = True


# Windows-like stack: TTL 128 and no TCP timestamps, so nmap -O sees a second OS group.
_WINDOWS_LOOK = {"net.ipv4.ip_default_ttl": "128", "net.ipv4.tcp_timestamps": "0"}


def default_spec() -> LabSpec:
    """Four real hosts with different service mixes and two stack "looks"."""
    return LabSpec(
        hosts=(
            HostSpec("r1", ("ssh", "http")),
            HostSpec("r2", ("ssh", "ftp"), dict(_WINDOWS_LOOK)),
            HostSpec("r3", ("http",)),
            HostSpec("r4", ("ssh", "http", "ftp"), dict(_WINDOWS_LOOK)),
        )
    )


@dataclass(frozen=True)
class HostInfo:
    """A namespace of a running lab, as seen by its users."""

    name: str
    netns: str
    ip: ipaddress.IPv4Address
    mac: str
    ifname: str = HOST_IFNAME
    #: Name of the other veth end, inside the switch namespace.
    peer_ifname: str = ""
    services: tuple[str, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "name": self.name,
            "netns": self.netns,
            "ip": str(self.ip),
            "mac": self.mac,
            "ifname": self.ifname,
            "peer_ifname": self.peer_ifname,
            "services": list(self.services),
            "sysctls": dict(self.sysctls),
        }


# --------------------------------------------------------------------------- services


@dataclass(frozen=True)
class ServiceCommand:
    """How to run one service: argv (run inside the host namespace) and the TCP port it serves."""

    argv: list[str]
    port: int


#: Builds a service's command; gets the host's name, address and private directory.
ServiceBuilder = Callable[[str, ipaddress.IPv4Address, Path], ServiceCommand]


def _ssh_service(name: str, ip: ipaddress.IPv4Address, workdir: Path) -> ServiceCommand:
    keys = []
    procs = []
    # Fresh host keys per host, generated in parallel (RSA takes a moment).
    for kind, bits in (("ed25519", None), ("ecdsa", None), ("rsa", "2048")):
        key = workdir / f"ssh_host_{kind}_key"
        argv = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{name}", "-f", str(key)]
        if bits:
            argv[4:4] = ["-b", bits]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        keys.append(key)
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=CMD_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise LabError("ssh-keygen timed out") from None
        if proc.returncode != 0:
            raise LabError(f"ssh-keygen failed: {err.decode(errors='replace').strip()}")
    config = workdir / "sshd_config"
    lines = [
        "Port 22",
        f"ListenAddress {ip}",
        *(f"HostKey {key}" for key in keys),
        "PidFile none",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        # A banner service, not a way in: no password logins, no authorized keys.
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AuthorizedKeysFile none",
        "X11Forwarding no",
        "PrintMotd no",
        "LogLevel INFO",
    ]
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    # Debian's sshd insists on its privilege separation directory.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    return ServiceCommand([SSHD, "-D", "-e", "-f", str(config)], 22)


def _http_service(name: str, ip: ipaddress.IPv4Address, workdir: Path) -> ServiceCommand:
    root = workdir / "www"
    root.mkdir(mode=0o755, exist_ok=True)
    (root / "index.html").write_text(
        f"<!DOCTYPE html>\n<html><head><title>{name}</title></head>"
        f"<body><h1>Welcome to {name}</h1><p>dynapot lab host</p></body></html>\n"
    )
    argv = python_command("-m", "http.server", "80", "--bind", str(ip), "--directory", str(root))
    return ServiceCommand(argv, 80)


def _ftp_service(name: str, ip: ipaddress.IPv4Address, workdir: Path) -> ServiceCommand:
    root = workdir / "ftp"
    root.mkdir(mode=0o755, exist_ok=True)
    (root / "README").write_text(f"{name}: anonymous read-only FTP of the dynapot lab\n")
    # vsftpd exits at the first connection without its chroot directory.
    VSFTPD_CHROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    config = workdir / "vsftpd.conf"
    lines = [
        "listen=YES",
        "listen_ipv6=NO",
        f"listen_address={ip}",
        "listen_port=21",
        "background=NO",
        "anonymous_enable=YES",
        "no_anon_password=YES",
        f"anon_root={root}",
        "local_enable=NO",
        "write_enable=NO",
        "anon_upload_enable=NO",
        "anon_mkdir_write_enable=NO",
        "dirmessage_enable=NO",
        "xferlog_enable=NO",
        "connect_from_port_20=NO",
        f"secure_chroot_dir={VSFTPD_CHROOT}",
        "pasv_enable=YES",
        "pasv_min_port=30000",
        "pasv_max_port=30100",
    ]
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)  # vsftpd wants its config owned by, and private to, the runner
    return ServiceCommand([VSFTPD, str(config)], 21)


#: Known service names and how to start them; tests may register extra ones.
SERVICES: dict[str, ServiceBuilder] = {
    "ssh": _ssh_service,
    "http": _http_service,
    "ftp": _ftp_service,
}


# --------------------------------------------------------------------------- helpers


def _run(argv: Sequence[str], *, timeout: float = CMD_TIMEOUT, check: bool = True) -> str:
    """Run a helper command with a bounded timeout; raise LabError with its stderr on failure."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LabError(f"timed out after {timeout}s: {' '.join(argv)}") from None
    except OSError as exc:
        raise LabError(f"cannot run {argv[0]}: {exc}") from exc
    if check and proc.returncode != 0:
        raise LabError(f"command failed ({proc.returncode}): {' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def _plug(switch: str, ns: str, name: str, ip: ipaddress.IPv4Address, prefixlen: int) -> HostInfo:
    """Cable namespace `ns` to the lab's bridge as `eth0` with address `ip`."""
    peer = f"v-{name}"[:15]
    # Created inside the switch namespace, the peer goes straight into the host namespace:
    # nothing ever appears in the root namespace.
    veth = ["type", "veth", "peer", "name", HOST_IFNAME, "netns", ns]
    _run(["ip", "-n", switch, "link", "add", peer, *veth])
    _run(["ip", "-n", switch, "link", "set", peer, "master", BRIDGE])
    # Finished checksums on the wire, as a raw-socket sensor expects from a real link.
    _run(["ip", "netns", "exec", switch, "ethtool", "-K", peer, "tx", "off"])
    _run(["ip", "netns", "exec", ns, "ethtool", "-K", HOST_IFNAME, "tx", "off"])
    _run(["ip", "-n", ns, "addr", "add", f"{ip}/{prefixlen}", "dev", HOST_IFNAME])
    _run(["ip", "-n", switch, "link", "set", peer, "up"])
    _run(["ip", "-n", ns, "link", "set", HOST_IFNAME, "up"])
    link = json.loads(_run(["ip", "-n", ns, "-j", "link", "show", HOST_IFNAME]))
    return HostInfo(name=name, netns=ns, ip=ip, mac=link[0]["address"], peer_ifname=peer)


def _netns(run_id: str, name: str) -> str:
    return f"dp-{run_id}-{name}"


def _list_netns() -> list[str]:
    """Names of all network namespaces known to iproute2."""
    out = _run(["ip", "netns", "list"], check=False)
    # Lines look like "dp-abc123-r1 (id: 3)" or just "dp-abc123-r1".
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _netns_pids(netns: str) -> list[int]:
    out = _run(["ip", "netns", "pids", netns], check=False)
    return [int(tok) for tok in out.split() if tok.isdigit()]


def _pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name.
    return stat.rpartition(")")[2].split()[0] != "Z"


def _state_path(run_id: str) -> Path:
    return STATE_DIR / f"{run_id}.json"


def _write_state(state: dict[str, Any]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = _state_path(state["run_id"])
    write_atomically(path, json.dumps(state, indent=2, sort_keys=True))


def _read_state(run_id: str) -> dict[str, Any] | None:
    try:
        return json.loads(_state_path(run_id).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"unreadable lab state {_state_path(run_id)}: {exc}") from exc


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces)")
    for tool in ("ip", "ethtool", "sysctl"):
        if shutil.which(tool) is None:
            raise LabError(f"the lab needs {tool!r} on PATH")


def _validate(spec: LabSpec, run_id: str) -> None:
    if not _RUN_ID_RE.match(run_id):
        raise LabError(f"run id must be 6 lowercase hex digits, got {run_id!r}")
    net = spec.network
    if not net.subnet_of(ALLOWED_RANGE):
        raise LabError(f"lab network {net} is outside {ALLOWED_RANGE}")
    last_offset = FIRST_REAL_OFFSET + len(spec.hosts) - 1 if spec.hosts else ATTACKER_OFFSET
    if last_offset >= net.num_addresses - 1:
        raise LabError(f"{net} is too small for {len(spec.hosts)} real hosts")
    seen: set[str] = set()
    for host in spec.hosts:
        if not _HOST_NAME_RE.match(host.name) or host.name in _RESERVED_NAMES:
            raise LabError(f"invalid host name {host.name!r} (lowercase, ≤12 chars, not sw/sensor/attacker)")
        if host.name in seen:
            raise LabError(f"duplicate host name {host.name!r}")
        seen.add(host.name)
        unknown = [svc for svc in host.services if svc not in SERVICES]
        if unknown:
            raise LabError(f"host {host.name}: unknown service(s) {unknown}; known: {sorted(SERVICES)}")


def _stray_run_ids(netns_names: Sequence[str], state_ids: set[str]) -> list[str]:
    """Run ids that own ``dp-<6hex>-*`` namespaces but have no state file any more."""
    ids = set()
    for name in netns_names:
        match = _NETNS_RE.match(name)
        if match and match.group(1) not in state_ids:
            ids.add(match.group(1))
    return sorted(ids)


# --------------------------------------------------------------------------- teardown


def _kill_pids(pids: Sequence[int], grace: float = 3.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL what is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _teardown(run_id: str, state: dict[str, Any] | None) -> None:
    """Remove everything a lab owns: processes, namespaces, temp dir, state file.

    Works from the state file and, as a safety net, from namespace names: a crash between
    creating a namespace and recording it must not leak it.
    """
    prefix = f"dp-{run_id}-"
    existing = [ns for ns in _list_netns() if ns.startswith(prefix) and _NETNS_RE.match(ns)]
    # Only processes inside our own namespaces are killed: they were all started by the lab
    # (or by its users, inside it), and the namespaces are about to vanish.
    pids = sorted({pid for ns in existing for pid in _netns_pids(ns)} - {os.getpid()})
    _kill_pids(pids)
    errors = []
    # Host namespaces first, the switch last (deleting a host ns removes its veth pair too).
    for ns in sorted(existing, key=lambda n: n.endswith(f"-{SWITCH}")):
        try:
            _run(["ip", "netns", "delete", ns])
        except LabError as exc:
            errors.append(str(exc))
    if state:
        tmpdir = state.get("tmpdir")
        # Guard against a corrupted state file pointing somewhere else.
        if tmpdir and Path(tmpdir).name.startswith(f"dynapot-lab-{run_id}-"):
            shutil.rmtree(tmpdir, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        _state_path(run_id).unlink()
    if errors:
        raise LabError("teardown incomplete: " + "; ".join(errors))


# --------------------------------------------------------------------------- the Lab


_LIVE_LABS: dict[str, Lab] = {}
_STARTED: set[str] = set()
_LOCK = threading.Lock()


def started_run_ids() -> set[str]:
    """Run ids that ``lab_up`` was called with in this process (tests check for leftovers)."""
    with _LOCK:
        return set(_STARTED)


class Lab:
    """A running lab. Use as a context manager; ``down()`` is idempotent."""

    def __init__(
        self,
        run_id: str,
        network: ipaddress.IPv4Network,
        switch_netns: str,
        sensor: HostInfo,
        attacker: HostInfo,
        real_hosts: list[HostInfo],
        tmpdir: Path,
        processes: dict[str, subprocess.Popen[bytes]],
    ) -> None:
        self.run_id = run_id
        self.network = network
        self.gateway = network.network_address + GATEWAY_OFFSET
        self.switch_netns = switch_netns
        self.sensor = sensor
        self.attacker = attacker
        self.real_hosts = real_hosts
        self.tmpdir = tmpdir
        #: "host/service" -> the service's process (only in the process that built the lab).
        self.processes = processes
        self._down = False
        self._lock = threading.Lock()
        atexit.register(self.down)

    # ----- lookup

    @property
    def hosts(self) -> list[HostInfo]:
        """Sensor, attacker and the real hosts."""
        return [self.sensor, self.attacker, *self.real_hosts]

    @property
    def namespaces(self) -> list[str]:
        """Every namespace of the lab, switch included."""
        return [self.switch_netns, *(h.netns for h in self.hosts)]

    def host(self, host: HostInfo | str) -> HostInfo:
        """Find a host by HostInfo, short name ("r1", "attacker") or namespace name."""
        if isinstance(host, HostInfo):
            return host
        for info in self.hosts:
            if host in (info.name, info.netns):
                return info
        raise LabError(f"lab {self.run_id} has no host {host!r}")

    def _netns_of(self, host: HostInfo | str) -> str:
        if isinstance(host, str) and host in (SWITCH, self.switch_netns):
            return self.switch_netns
        return self.host(host).netns

    # ----- running commands

    def exec(
        self, host: HostInfo | str, argv: Sequence[str], **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside a host's namespace ("sw" for the switch) and wait for it.

        Defaults: ``capture_output=True, text=True, check=False, timeout=60``; a timeout is
        always applied (``timeout=None`` is replaced by the default).
        """
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("check", False)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = EXEC_TIMEOUT
        return subprocess.run(["ip", "netns", "exec", self._netns_of(host), *argv], **kwargs)

    def popen(self, host: HostInfo | str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside a host's namespace without waiting.

        The caller owns the process; anything still running in the lab's namespaces is
        killed by ``down()`` anyway.
        """
        return subprocess.Popen(["ip", "netns", "exec", self._netns_of(host), *argv], **kwargs)

    # ----- machines joining and leaving

    def join(self, name: str, offset: int) -> HostInfo:
        """Plug a new bare machine (no services) into the running lab at network address + `offset`."""
        ip = self.network.network_address + offset
        if (
            not _HOST_NAME_RE.match(name)
            or name in _RESERVED_NAMES
            or any(h.name == name for h in self.hosts)
        ):
            raise LabError(f"bad or taken host name {name!r}")
        if ip not in self.network or ip in (self.gateway, *(h.ip for h in self.hosts)):
            raise LabError(f"address {ip} is not free in {self.network}")
        ns = _netns(self.run_id, name)
        state = _read_state(self.run_id) or {"run_id": self.run_id, "namespaces": [], "hosts": []}
        state["namespaces"].append(ns)  # recorded first: teardown finds it even if plugging fails
        _write_state(state)
        _run(["ip", "netns", "add", ns])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
        info = _plug(self.switch_netns, ns, name, ip, self.network.prefixlen)
        state["hosts"].append(info.to_dict())
        _write_state(state)
        self.real_hosts.append(info)
        return info

    def leave(self, host: HostInfo | str) -> None:
        """Unplug a machine: kill what runs in it and delete its namespace (the veth goes with it)."""
        info = self.host(host)
        if info in (self.sensor, self.attacker):
            raise LabError("the sensor and the attacker stay")
        _kill_pids(sorted(set(_netns_pids(info.netns)) - {os.getpid()}))
        _run(["ip", "netns", "del", info.netns], check=False)
        self.real_hosts.remove(info)
        state = _read_state(self.run_id)
        if state is not None:
            state["namespaces"] = [ns for ns in state.get("namespaces", []) if ns != info.netns]
            state["hosts"] = [h for h in state.get("hosts", []) if h.get("netns") != info.netns]
            _write_state(state)

    # ----- description

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description of the lab."""
        return {
            "run_id": self.run_id,
            "network": str(self.network),
            "gateway": str(self.gateway),
            "switch_netns": self.switch_netns,
            "tmpdir": str(self.tmpdir),
            "sensor": self.sensor.to_dict(),
            "attacker": self.attacker.to_dict(),
            "real_hosts": [h.to_dict() for h in self.real_hosts],
            "pids": {key: proc.pid for key, proc in self.processes.items()},
        }

    def describe(self) -> str:
        """Human-readable description: addresses, namespaces, services and how to use it."""
        lines = [
            f"dynapot lab {self.run_id}: network {self.network}, gateway {self.gateway} (reserved, unused)",
            f"  switch   {self.switch_netns:<22} bridge {BRIDGE}",
        ]
        for role, info in (("sensor", self.sensor), ("attacker", self.attacker)):
            lines.append(f"  {role:<8} {info.netns:<22} {info.ip!s:<15} {info.mac}")
        for info in self.real_hosts:
            extra = " ".join(f"{k}={v}" for k, v in info.sysctls.items())
            services = ",".join(info.services) or "-"
            lines.append(f"  {info.name:<8} {info.netns:<22} {info.ip!s:<15} {info.mac}  {services}  {extra}")
        target = str(self.network)
        if self.real_hosts:
            first, last = self.real_hosts[0].ip, self.real_hosts[-1].ip
            target = f"{first}-{str(last).rsplit('.', 1)[1]}" if first != last else str(first)
        lines += [
            "",
            "Run commands inside it, e.g.:",
            f"  ip netns exec {self.attacker.netns} nmap -n -O -sV {target}",
            f"  ip netns exec {self.sensor.netns} tcpdump -ni {HOST_IFNAME}",
            f"Tear it down with: dynapot lab down {self.run_id}",
        ]
        return "\n".join(lines)

    # ----- lifetime

    def detach(self) -> None:
        """Keep the lab up after this process exits (the CLI's ``lab up``)."""
        atexit.unregister(self.down)
        with _LOCK:
            _LIVE_LABS.pop(self.run_id, None)

    def down(self) -> None:
        """Tear the lab down: kill its processes, delete its namespaces and files."""
        with self._lock:
            if self._down:
                return
            self._down = True
        atexit.unregister(self.down)
        with _LOCK:
            _LIVE_LABS.pop(self.run_id, None)
        try:
            _teardown(self.run_id, _read_state(self.run_id) or {"tmpdir": str(self.tmpdir)})
        finally:
            _reap(self.processes.values())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def __repr__(self) -> str:
        return f"<Lab {self.run_id} {self.network} hosts={[h.name for h in self.real_hosts]}>"


def _reap(processes: Iterable[subprocess.Popen[Any]]) -> None:
    """Collect exit statuses so no zombie keeps a pid alive."""
    for proc in processes:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


# --------------------------------------------------------------------------- building


_PROBE = r"""
import socket, sys, time
ip, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
pending = [int(p) for p in sys.argv[3:]]
while pending and time.monotonic() < deadline:
    for port in list(pending):
        try:
            socket.create_connection((ip, port), timeout=0.5).close()
            pending.remove(port)
        except OSError:
            pass
    if pending:
        time.sleep(0.05)
print(" ".join(map(str, pending)))
sys.exit(1 if pending else 0)
"""


class _Builder:
    """Builds one lab step by step, recording each step in the state file."""

    def __init__(self, spec: LabSpec, run_id: str) -> None:
        self.spec = spec
        self.run_id = run_id
        self.net = spec.network
        self.switch = _netns(run_id, SWITCH)
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"dynapot-lab-{run_id}-"))
        self.tmpdir.chmod(0o755)  # vsftpd serves from here after dropping privileges
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.state: dict[str, Any] = {
            "run_id": run_id,
            "status": "building",
            "created": time.time(),
            "owner_pid": os.getpid(),
            "network": str(self.net),
            "gateway": str(self.net.network_address + GATEWAY_OFFSET),
            "switch_netns": self.switch,
            "namespaces": [],
            "tmpdir": str(self.tmpdir),
            "hosts": [],
            "pids": {},
        }
        _write_state(self.state)

    def _add_netns(self, name: str) -> str:
        ns = _netns(self.run_id, name)
        # Record first: if "ip netns add" half-succeeds, teardown still finds it.
        self.state["namespaces"].append(ns)
        _write_state(self.state)
        _run(["ip", "netns", "add", ns])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        if self.spec.disable_ipv6:
            self._sysctl(
                ns, {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
            )
        return ns

    @staticmethod
    def _sysctl(ns: str, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}"])

    def build_switch(self) -> None:
        self._add_netns(SWITCH)
        _run(["ip", "-n", self.switch, "link", "add", BRIDGE, "type", "bridge", "forward_delay", "0"])
        _run(["ip", "-n", self.switch, "link", "set", BRIDGE, "up"])

    def add_host(
        self,
        name: str,
        offset: int,
        services: tuple[str, ...] = (),
        sysctls: Mapping[str, str] | None = None,
    ) -> HostInfo:
        ns = self._add_netns(name)
        sysctls = dict(sysctls or {})
        # Before any socket exists, so every service inherits the stack's look.
        self._sysctl(ns, sysctls)
        info = _plug(self.switch, ns, name, self.net.network_address + offset, self.net.prefixlen)
        info = dataclasses.replace(info, services=services, sysctls=sysctls)
        self.state["hosts"].append(info.to_dict())
        _write_state(self.state)
        return info

    def start_services(self, host: HostInfo) -> list[int]:
        """Start a host's services; return the TCP ports to wait for."""
        ports = []
        hostdir = self.tmpdir / host.name
        hostdir.mkdir(mode=0o755, exist_ok=True)
        for svc in host.services:
            command = SERVICES[svc](host.name, host.ip, hostdir)
            key = f"{host.name}/{svc}"
            log = hostdir / f"{svc}.log"
            self.logs[key] = log
            with log.open("wb") as out:
                # Own session: the service survives the CLI's exit and ignores its Ctrl-C.
                proc = subprocess.Popen(
                    ["ip", "netns", "exec", host.netns, *command.argv],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=hostdir,
                )
            self.processes[key] = proc
            self.state["pids"][key] = proc.pid
            _write_state(self.state)
            ports.append(command.port)
        return ports

    def _log_tail(self, key: str, limit: int = 2000) -> str:
        try:
            text = self.logs[key].read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:].strip()

    def wait_ready(self, waits: list[tuple[HostInfo, list[int]]]) -> None:
        """Poll until every service accepts TCP connections, or fail with its output."""
        timeout = self.spec.service_timeout
        probes = []
        for host, ports in waits:
            if not ports:
                continue
            argv = ["ip", "netns", "exec", host.netns, *python_command("-c", _PROBE)]
            argv += [str(host.ip), str(timeout), *map(str, ports)]
            probes.append((host, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
        hard_deadline = time.monotonic() + timeout + 10
        try:
            while True:
                # A service that died is reported at once, with its own words.
                for key, proc in self.processes.items():
                    if proc.poll() is not None:
                        raise LabError(
                            f"service {key} exited with status {proc.returncode}: "
                            f"{self._log_tail(key) or '(no output)'}"
                        )
                if all(p.poll() is not None for _, p in probes):
                    break
                if time.monotonic() > hard_deadline:
                    raise LabError("readiness probes did not finish in time")
                time.sleep(0.05)
            for host, probe in probes:
                out, err = probe.communicate(timeout=5)
                if probe.returncode != 0:
                    ports = out.decode().split()
                    logs = "; ".join(
                        f"{key}: {self._log_tail(key) or '(no output)'}"
                        for key in self.processes
                        if key.startswith(f"{host.name}/")
                    )
                    raise LabError(
                        f"{host.name}: port(s) {ports or '?'} not accepting after {timeout}s "
                        f"{err.decode(errors='replace').strip()} | {logs}"
                    )
        finally:
            _reap(p for _, p in probes if p.poll() is None)


def _exit_on_sigterm() -> None:
    """A SIGTERM (a killed benchmark, `timeout`) must unwind like an exception, so that `with`
    blocks and atexit take the lab down; the default action would exit with namespaces left."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def on_sigterm(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, on_sigterm)


def lab_up(spec: LabSpec | None = None, *, run_id: str | None = None) -> Lab:
    """Build a lab and return it once every service accepts connections.

    On any failure everything created so far is torn down and :class:`LabError` is raised.
    """
    spec = spec if spec is not None else default_spec()
    run_id = run_id or secrets.token_hex(3)
    _check_prerequisites()
    _exit_on_sigterm()
    _validate(spec, run_id)
    prefix = f"dp-{run_id}-"
    if _state_path(run_id).exists() or any(ns.startswith(prefix) for ns in _list_netns()):
        raise LabError(f"lab {run_id} already exists")
    with _LOCK:
        _STARTED.add(run_id)
    builder: _Builder | None = None
    try:
        builder = _Builder(spec, run_id)
        builder.build_switch()
        net = spec.network
        sensor = builder.add_host(SENSOR, SENSOR_OFFSET)
        attacker = builder.add_host(ATTACKER, ATTACKER_OFFSET)
        real = [
            builder.add_host(h.name, FIRST_REAL_OFFSET + i, tuple(h.services), h.sysctls)
            for i, h in enumerate(spec.hosts)
        ]
        waits = [(host, builder.start_services(host)) for host in real]
        builder.wait_ready(waits)
        builder.state["status"] = "up"
        _write_state(builder.state)
        lab = Lab(run_id, net, builder.switch, sensor, attacker, real, builder.tmpdir, builder.processes)
    except BaseException as exc:
        # Including KeyboardInterrupt: a half-built lab must never stay behind.
        try:
            _teardown(run_id, builder.state if builder else None)
        except LabError as cleanup_error:
            # Report the cause, not the cleanup trouble, but keep both visible.
            exc.add_note(f"teardown after failure: {cleanup_error}")
        finally:
            if builder:
                _reap(builder.processes.values())
                shutil.rmtree(builder.tmpdir, ignore_errors=True)
        if isinstance(exc, LabError | KeyboardInterrupt | SystemExit):
            raise
        raise LabError(f"lab {run_id} failed to start: {exc}") from exc
    with _LOCK:
        _LIVE_LABS[run_id] = lab
    return lab


def lab_down(run_id: str) -> None:
    """Tear down the lab ``run_id`` (built by this or any other process). Idempotent."""
    if not _RUN_ID_RE.match(run_id):
        raise LabError(f"run id must be 6 lowercase hex digits, got {run_id!r}")
    with _LOCK:
        lab = _LIVE_LABS.get(run_id)
    if lab is not None:
        lab.down()  # also reaps the service processes this process started
        return
    _check_prerequisites()
    _teardown(run_id, _read_state(run_id))


def list_labs() -> list[dict[str, Any]]:
    """State of every lab that has a state file, plus whether its namespaces still exist."""
    if not STATE_DIR.is_dir():
        return []
    present = set(_list_netns())
    labs = []
    for path in sorted(STATE_DIR.glob("*.json")):
        run_id = path.stem
        if not _RUN_ID_RE.match(run_id):
            continue
        try:
            state = _read_state(run_id)
        except LabError:
            continue
        if state is None:
            continue
        state["namespaces_present"] = sorted(ns for ns in state.get("namespaces", []) if ns in present)
        labs.append(state)
    return labs


def lab_down_all() -> list[str]:
    """Tear down every lab with a state file and every stray ``dp-<6hex>-*`` namespace.

    Returns the run ids removed.
    """
    _check_prerequisites()
    state_ids = {path.stem for path in STATE_DIR.glob("*.json")} if STATE_DIR.is_dir() else set()
    state_ids = {rid for rid in state_ids if _RUN_ID_RE.match(rid)}
    removed = []
    for run_id in sorted(state_ids):
        lab_down(run_id)
        removed.append(run_id)
    for run_id in _stray_run_ids(_list_netns(), state_ids):
        _teardown(run_id, None)
        removed.append(run_id)
    return removed

"""Active discovery: drive the real nmap binary and turn what it finds into `Observation`s.

This follows the original paper's scanner. A ping sweep (`nmap -sn`) finds the live
hosts first; then every live host gets its own detailed nmap (ports, service versions,
OS), N processes at a time, with a pause of D seconds between batches. Polite mode uses
nmap's -T2 template, which serialises probes with a 0.4 s gap; normal mode uses -T3.

Every nmap runs in its own process group with a hard deadline of our own on top of
nmap's `--host-timeout`, so a stuck scan, a timeout or a Ctrl-C never leaves an nmap
running. The XML nmap prints on stdout (`-oX -`) is parsed by `nmap_xml`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from dynapot.discovery.nmap_xml import NmapRun, NmapXmlError, parse_nmap_xml
from dynapot.discovery.observation import Observation

__all__ = [
    "MAX_ADDRESSES",
    "ActiveScanError",
    "NmapFailedError",
    "NmapNotFoundError",
    "NmapOutputError",
    "ScanCancel",
    "ScanCancelledError",
    "ScanOptions",
    "ScanProgress",
    "ScanResult",
    "SweepTimeoutError",
    "build_nmap_command",
    "build_sweep_command",
    "parse_targets",
    "run_scan",
]

MAX_ADDRESSES = 65_536  # a /16: beyond that a sweep takes hours and is more likely a typo
MAX_PARALLEL = 256
_KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a process group
_STDERR_LIMIT = 2000  # characters of nmap's stderr kept in an error
# Per-address allowance for the sweep's own deadline (nmap has no total timeout for -sn).
# Generous on purpose: it only exists so that a wedged nmap cannot block forever.
_SWEEP_SECONDS_PER_ADDRESS = {False: 0.1, True: 1.0}

# Options that would change what nmap scans or where it writes: targets and output are ours.
_FORBIDDEN_EXTRA = ("-iL", "-iR", "--resume", "--append-output", "--excludefile")
_PORT_ITEM_RE = re.compile(r"^(?:[TUSP]:)?(?P<lo>\d*)(?P<dash>-?)(?P<hi>\d*)$")
_INTERFACE_RE = re.compile(r"^[A-Za-z0-9_.:@][A-Za-z0-9_.:@-]{0,14}$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ActiveScanError(Exception):
    """Base class of every error the active scanner raises or reports."""


class NmapNotFoundError(ActiveScanError):
    """The nmap binary could not be found or executed."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"nmap not found or not executable at {path!r}: install nmap "
            "(Debian/Ubuntu: apt-get install nmap) or set ScanOptions.nmap_path"
        )
        self.path = path


class NmapFailedError(ActiveScanError):
    """nmap exited with a non-zero status."""

    def __init__(self, command: Sequence[str], returncode: int, stderr: str) -> None:
        self.command = tuple(command)
        self.returncode = returncode
        self.stderr = _trim(stderr)
        super().__init__(
            f"nmap exited with status {returncode}: {self.stderr or '(no error output)'}"
            f" [command: {' '.join(command)}]"
        )


class NmapOutputError(ActiveScanError):
    """nmap succeeded but its XML output was unusable."""


class SweepTimeoutError(ActiveScanError):
    """The ping sweep did not finish within its deadline and was killed."""


class ScanCancelledError(ActiveScanError):
    """The scan was stopped through its `ScanCancel` before it finished.

    `partial` holds only what finished before the stop: the hosts whose detailed nmap ran to
    its end (each a whole result). A host whose nmap was killed, or never started, is left out
    of `partial.observations` and named in `unscanned`; `live_hosts` is what the sweep found
    (empty when the sweep itself was stopped).
    """

    def __init__(self, reason: str, partial: ScanResult, unscanned: tuple[str, ...]) -> None:
        super().__init__(f"scan stopped: {reason}")
        self.reason = reason
        self.partial = partial
        self.unscanned = unscanned


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """How to scan. Validated on construction; a bad value raises ValueError naming it.

    `ports` uses nmap's -p syntax ("22,80,8000-8100", "T:22,U:53"); None means nmap's
    100 most common ports. `extra_args` go verbatim to the detailed scans (not the sweep),
    before the target. `interface` is passed as `-e` to every nmap.
    """

    parallel: int = 8
    interval: float = 0.0
    polite: bool = False
    host_timeout: float = 300.0
    ports: str | None = None
    os_detection: bool = True
    version_detection: bool = True
    nmap_path: str = "nmap"
    max_retries: int | None = None
    extra_args: tuple[str, ...] = ()
    interface: str | None = None
    max_addresses: int = MAX_ADDRESSES
    # Our own virtual hosts: address -> MAC. The sweep finds them alive, but only an answer from
    # another MAC (a real machine that took the address) is kept; none is scanned in detail.
    virtual: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _is_int(self.parallel) or not 1 <= self.parallel <= MAX_PARALLEL:
            raise ValueError(f"parallel must be an integer from 1 to {MAX_PARALLEL}, got {self.parallel!r}")
        if not _is_seconds(self.interval):
            raise ValueError(f"interval must be a finite number of seconds >= 0, got {self.interval!r}")
        if not _is_seconds(self.host_timeout) or self.host_timeout == 0:
            raise ValueError(
                f"host_timeout must be a finite number of seconds > 0, got {self.host_timeout!r}"
            )
        for name in ("polite", "os_detection", "version_detection"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.ports is not None:
            _validate_ports(self.ports)
        if not isinstance(self.nmap_path, str) or not self.nmap_path.strip():
            raise ValueError("nmap_path must be a non-empty path or command name")
        if self.max_retries is not None and (not _is_int(self.max_retries) or self.max_retries < 0):
            raise ValueError(f"max_retries must be None or an integer >= 0, got {self.max_retries!r}")
        if self.interface is not None and (
            not isinstance(self.interface, str) or not _INTERFACE_RE.match(self.interface)
        ):
            raise ValueError(f"interface must be a network interface name, got {self.interface!r}")
        if not _is_int(self.max_addresses) or self.max_addresses < 1:
            raise ValueError(f"max_addresses must be an integer >= 1, got {self.max_addresses!r}")
        if isinstance(self.extra_args, str) or not all(isinstance(a, str) for a in self.extra_args):
            raise ValueError(f"extra_args must be a sequence of strings, got {self.extra_args!r}")
        # Accept a list for convenience but store a tuple, so the options stay hashable.
        object.__setattr__(self, "extra_args", tuple(self.extra_args))
        for arg in self.extra_args:
            if arg.startswith(_FORBIDDEN_EXTRA) or (arg.startswith("-o") and not arg.startswith("--")):
                raise ValueError(
                    f"extra_args may not contain {arg!r}: the scanner chooses targets and output itself"
                )

    @property
    def timing_template(self) -> str:
        """nmap's timing template: -T2 ("polite") or -T3 ("normal")."""
        return "-T2" if self.polite else "-T3"

    @property
    def process_timeout(self) -> float:
        """Our own deadline for one detailed nmap: its --host-timeout plus a margin.

        nmap checks its host timeout only between probe rounds, so it can overrun a little;
        the margin lets it finish and report what it has before we kill it.
        """
        return self.host_timeout + max(5.0, min(60.0, 0.2 * self.host_timeout))


Phase = Literal["sweep", "detail"]


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """A progress report: `done` of `total` steps of `phase` finished; `current` just finished."""

    phase: Phase
    done: int
    total: int
    current: str | None = None


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one run_scan learned.

    `observations` has one entry per live host, sorted by address: the detailed scan's
    result, or the sweep's when the detailed scan timed out or failed. `timed_out` and
    `errors` say which hosts lack detail and why.
    """

    observations: tuple[Observation, ...]
    live_hosts: tuple[str, ...] = ()
    timed_out: tuple[str, ...] = ()
    errors: Mapping[str, ActiveScanError] = field(default_factory=lambda: MappingProxyType({}))
    # The hosts whose detailed nmap ran to its end, by address (what a stopped scan keeps).
    finished: Mapping[str, Observation] = field(default_factory=lambda: MappingProxyType({}), repr=False)


class ScanCancel:
    """Stops a running `run_scan` from another thread, promptly and bounded.

    `cancel` SIGTERMs the process group of every nmap the scan has running, SIGKILLs each group
    after a grace of a few seconds, and keeps the scan from starting another (nor pausing its D
    seconds); the threads that started them reap them. `run_scan` then raises
    `ScanCancelledError`. Cancelling before the scan starts stops it before its first nmap.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._children: _Children | None = None
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str) -> int:
        """Stop the scan (blocks for at most the kill grace); the number of nmaps signalled."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            self._event.set()
            children = self._children
        return children.kill_all() if children is not None else 0

    def _attach(self, children: _Children) -> None:
        with self._lock:
            self._children = children
            cancelled = self._event.is_set()
        if cancelled:
            children.kill_all()

    def _pause(self, seconds: float) -> None:
        """Sleep `seconds` (the D pause), cut short by `cancel`."""
        self._event.wait(seconds)


def scan_options(active: Any, **extra: Any) -> ScanOptions:
    """ScanOptions from the `[discovery.active]` settings (N, D, polite, ...) plus `extra` fields."""
    knobs = ("parallel", "interval", "polite", "host_timeout", "ports", "os_detection", "version_detection")
    return ScanOptions(**{name: getattr(active, name) for name in (*knobs, "nmap_path")}, **extra)


def parse_targets(targets: Sequence[str], max_addresses: int = MAX_ADDRESSES) -> tuple[Network, ...]:
    """Validate scan targets: IPv4/IPv6 addresses and CIDR networks only.

    Returns the networks, duplicates and overlaps merged, IPv4 first. Raises ValueError
    naming the first bad token, or when the targets cover more than `max_addresses`.
    """
    if isinstance(targets, str | bytes):
        raise TypeError("targets must be a sequence of address strings, not a single string")
    networks: list[Network] = []
    for token in targets:
        if not isinstance(token, str):
            raise ValueError(f"target {token!r} is not a string")
        text = token.strip()
        try:
            # strict=False: like nmap, 10.0.0.7/24 means the whole 10.0.0.0/24.
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(
                f"target {token!r} is not an IPv4/IPv6 address or CIDR network "
                "(host names and nmap ranges like 10.0.0.1-5 are not accepted)"
            ) from None
    if not networks:
        raise ValueError("no targets given")
    merged: list[Network] = [
        *ipaddress.collapse_addresses(n for n in networks if n.version == 4),
        *ipaddress.collapse_addresses(n for n in networks if n.version == 6),
    ]
    count = sum(n.num_addresses for n in merged)
    if count > max_addresses:
        raise ValueError(
            f"targets cover {count} addresses, more than the limit of {max_addresses}; "
            "split the scan or raise ScanOptions.max_addresses"
        )
    return tuple(merged)


def build_sweep_command(targets: Sequence[str], options: ScanOptions) -> list[str]:
    """The ping-sweep command line for targets of one IP version (see `parse_targets`)."""
    networks = parse_targets(targets, options.max_addresses)
    versions = {n.version for n in networks}
    if len(versions) != 1:
        raise ValueError("a sweep takes targets of one IP version; sweep IPv4 and IPv6 apart")
    cmd = [options.nmap_path, "-sn", "-n", options.timing_template]
    if versions == {6}:
        cmd.append("-6")
    if options.interface:
        cmd += ["-e", options.interface]
    cmd += ["-oX", "-"]
    # A single address goes as itself, a network in CIDR form.
    cmd += [str(n.network_address) if n.num_addresses == 1 else str(n) for n in networks]
    return cmd


def build_nmap_command(target: str, options: ScanOptions) -> list[str]:
    """The detailed-scan command line for one live host (a single IP address)."""
    try:
        address = ipaddress.ip_address(target.strip())
    except ValueError:
        raise ValueError(f"target {target!r} is not a single IPv4/IPv6 address") from None
    # -Pn: the sweep already found the host alive; pinging again only adds probes.
    cmd = [options.nmap_path, "-n", "-Pn", options.timing_template]
    if address.version == 6:
        cmd.append("-6")
    if options.version_detection:
        cmd.append("-sV")
    if options.os_detection:
        # Without --osscan-guess nmap names no OS at all when no fingerprint matches exactly;
        # its guesses carry an accuracy, which is kept as the answer's reliability.
        cmd += ["-O", "--osscan-guess"]
    cmd += ["-p", options.ports] if options.ports is not None else ["--top-ports", "100"]
    cmd += ["--host-timeout", _nmap_duration(options.host_timeout)]
    if options.max_retries is not None:
        cmd += ["--max-retries", str(options.max_retries)]
    if options.interface:
        cmd += ["-e", options.interface]
    cmd += [*options.extra_args, "-oX", "-", str(address)]
    return cmd


def run_scan(
    targets: Sequence[str],
    options: ScanOptions,
    progress: Callable[[ScanProgress], None] | None = None,
    *,
    cancel: ScanCancel | None = None,
) -> ScanResult:
    """Sweep `targets` for live hosts, then scan each live host in detail.

    Blocks until done. Raises ValueError for bad targets, NmapNotFoundError when nmap is
    missing, and NmapFailedError / NmapOutputError / SweepTimeoutError when the sweep
    fails; failures of single hosts go into ScanResult.errors, timeouts into
    ScanResult.timed_out. On any exception, KeyboardInterrupt included, every nmap
    started here is killed before the exception propagates. `cancel` stops it from another
    thread: ScanCancelledError, with what finished before (see there).
    """
    networks = parse_targets(targets, options.max_addresses)
    if shutil.which(options.nmap_path) is None:
        raise NmapNotFoundError(options.nmap_path)
    report = progress or (lambda _p: None)
    cancel = cancel or ScanCancel()
    children = _Children()
    cancel._attach(children)
    sweep: dict[str, Observation] = {}
    try:
        sweep = _sweep(networks, options, children, report)
        result = _detail(sweep, options, children, report, cancel)
    except BaseException as exc:
        children.kill_all()
        if cancel.cancelled and isinstance(exc, ActiveScanError):
            raise _cancelled(cancel, sweep, {}) from None
        raise
    if cancel.cancelled:
        raise _cancelled(cancel, sweep, result.finished)
    return result


def _cancelled(
    cancel: ScanCancel, sweep: dict[str, Observation], finished: Mapping[str, Observation]
) -> ScanCancelledError:
    """The error for a stopped scan: only the hosts whose detailed nmap ran to its end."""
    hosts = sorted(sweep, key=_address_key)
    done = [ip for ip in hosts if ip in finished]
    partial = ScanResult(observations=tuple(finished[ip] for ip in done), live_hosts=tuple(hosts))
    return ScanCancelledError(
        cancel.reason or "cancelled", partial, tuple(ip for ip in hosts if ip not in finished)
    )


# --- internals ---------------------------------------------------------------------------


def _sweep(
    networks: Sequence[Network],
    options: ScanOptions,
    children: _Children,
    report: Callable[[ScanProgress], None],
) -> dict[str, Observation]:
    """Run one ping sweep per IP version; return the live hosts' observations by address."""
    groups = [[str(n) for n in networks if n.version == v] for v in (4, 6)]
    groups = [g for g in groups if g]
    live: dict[str, Observation] = {}
    report(ScanProgress("sweep", 0, len(groups)))
    for done, group in enumerate(groups, start=1):
        cmd = build_sweep_command(group, options)
        count = sum(ipaddress.ip_network(t).num_addresses for t in group)
        deadline = options.process_timeout + count * _SWEEP_SECONDS_PER_ADDRESS[options.polite]
        outcome = _run_nmap(cmd, deadline, children)
        if outcome.timed_out:
            raise SweepTimeoutError(f"the ping sweep took longer than {deadline:.0f} s and was killed")
        for obs in _parse_output(outcome, cmd).observations:
            ours = options.virtual.get(obs.ip)
            if obs.alive and not (ours is not None and (obs.mac or "").lower() in (ours.lower(), "")):
                live[obs.ip] = obs
        report(ScanProgress("sweep", done, len(groups)))
    return live


def _detail(
    sweep: dict[str, Observation],
    options: ScanOptions,
    children: _Children,
    report: Callable[[ScanProgress], None],
    cancel: ScanCancel,
) -> ScanResult:
    hosts = sorted(sweep, key=_address_key)
    results: dict[str, Observation] = dict(sweep)
    finished: dict[str, Observation] = {}
    timed_out: list[str] = []
    errors: dict[str, ActiveScanError] = {}
    done = 0
    report(ScanProgress("detail", 0, len(hosts)))
    pool = ThreadPoolExecutor(max_workers=options.parallel, thread_name_prefix="nmap")
    try:
        for start in range(0, len(hosts), options.parallel):
            # The paper's batches: N scans at once, then a pause of D seconds.
            if start and options.interval:
                cancel._pause(options.interval)
            if cancel.cancelled:
                break
            batch = hosts[start : start + options.parallel]
            futures = {pool.submit(_scan_host, ip, options, children): ip for ip in batch}
            # Progress is reported from this thread only, so callbacks need no locking.
            for future in as_completed(futures):
                ip = futures[future]
                try:
                    obs, host_timed_out = future.result()
                except ActiveScanError as exc:
                    errors[ip] = exc
                else:
                    if host_timed_out:
                        timed_out.append(ip)
                    if obs is not None:
                        results[ip] = finished[ip] = _merge(sweep[ip], obs)
                done += 1
                report(ScanProgress("detail", done, len(hosts), ip))
    except BaseException:
        # Kill before the pool's shutdown waits for its workers, or a Ctrl-C would wait
        # for every running nmap to reach its timeout.
        children.kill_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return ScanResult(
        observations=tuple(results[ip] for ip in hosts),
        live_hosts=tuple(hosts),
        timed_out=tuple(sorted(timed_out, key=_address_key)),
        errors=MappingProxyType(dict(sorted(errors.items(), key=lambda kv: _address_key(kv[0])))),
        finished=MappingProxyType(finished),
    )


def _scan_host(ip: str, options: ScanOptions, children: _Children) -> tuple[Observation | None, bool]:
    """Scan one host. Returns (observation or None if it timed out, whether it timed out)."""
    cmd = build_nmap_command(ip, options)
    outcome = _run_nmap(cmd, options.process_timeout, children)
    if outcome.timed_out:
        return None, True
    run = _parse_output(outcome, cmd)
    if ip in run.timed_out:
        # nmap's own --host-timeout fired: what it printed is incomplete, keep the sweep's.
        return None, True
    obs = next((o for o in run.observations if o.ip == ip), None)
    if obs is None:
        raise NmapOutputError(f"nmap's output has no result for {ip} [command: {' '.join(cmd)}]")
    return obs, False


def _merge(swept: Observation, detailed: Observation) -> Observation:
    """The detailed scan wins, but a sweep on the local link may have seen the MAC it lacks."""
    if detailed.mac is None and swept.mac is not None:
        detailed = dataclasses.replace(detailed, mac=swept.mac, mac_vendor=swept.mac_vendor)
    if detailed.hostname is None and swept.hostname is not None:
        detailed = dataclasses.replace(detailed, hostname=swept.hostname)
    return detailed


@dataclass(frozen=True, slots=True)
class _Outcome:
    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool


def _parse_output(outcome: _Outcome, cmd: Sequence[str]) -> NmapRun:
    if outcome.returncode != 0:
        raise NmapFailedError(cmd, outcome.returncode or -1, outcome.stderr.decode("utf-8", "replace"))
    try:
        return parse_nmap_xml(outcome.stdout)
    except NmapXmlError as exc:
        raise NmapOutputError(f"could not read nmap's XML output: {exc} [command: {' '.join(cmd)}]") from exc


class _Cancelled(ActiveScanError):
    """Raised in a worker asked to start an nmap after the scan was cancelled."""


class _Children:
    """The nmap processes running now, so that an interrupt can kill every one of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    def spawn(self, cmd: Sequence[str]) -> subprocess.Popen[bytes]:
        # Spawning under the lock: kill_all either sees the process or stops it being born.
        with self._lock:
            if self._closed:
                raise _Cancelled("scan cancelled")
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,  # own process group: we can kill nmap and its children
                )
            except (FileNotFoundError, PermissionError) as exc:
                raise NmapNotFoundError(cmd[0]) from exc
            self._procs.add(proc)
            return proc

    def release(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> int:
        """Kill every running nmap and refuse new ones; how many were running."""
        with self._lock:
            self._closed = True
            procs = list(self._procs)
        _kill_groups(procs)
        return len(procs)


def _run_nmap(cmd: Sequence[str], timeout: float, children: _Children) -> _Outcome:
    proc = children.spawn(cmd)
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_groups([proc])
            out, err = _drain(proc)
            return _Outcome(proc.returncode, out, err, timed_out=True)
        return _Outcome(proc.returncode, out, err, timed_out=False)
    finally:
        if proc.poll() is None:  # we are leaving through an exception: leave nothing behind
            _kill_groups([proc])
            _drain(proc)
        children.release(proc)


def _drain(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Collect what a killed process wrote, without hanging on a pipe someone else holds."""
    try:
        return proc.communicate(timeout=_KILL_GRACE)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return b"", b""


def _kill_groups(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group (nmap then cleans up), SIGKILL whatever is left."""
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + _KILL_GRACE
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    # Always SIGKILL the group too: children of nmap (or of a wrapper script) may outlive it.
    for proc in procs:
        _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # start_new_session made the pid the group id; a missing group has already exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _nmap_duration(seconds: float) -> str:
    """Seconds in nmap's time syntax: whole seconds as "300s", otherwise milliseconds."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def _address_key(ip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    return addr.version, int(addr)


def _trim(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _STDERR_LIMIT else "..." + text[-_STDERR_LIMIT:]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_seconds(value: object) -> bool:
    """A finite, non-negative int or float (bool is an int, but never a duration)."""
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )


def _validate_ports(spec: str) -> None:
    """Check an nmap -p specification made of port numbers and ranges."""
    if not isinstance(spec, str) or not spec or any(c.isspace() for c in spec):
        raise ValueError(f"ports must be an nmap -p list such as '22,80,1000-2000', got {spec!r}")
    for item in spec.split(","):
        m = _PORT_ITEM_RE.match(item)
        if m is None or not (m["lo"] or m["dash"]):
            raise ValueError(f"ports: {item!r} in {spec!r} is not a port or a range like 1000-2000")
        lo = int(m["lo"]) if m["lo"] else 0
        hi = int(m["hi"]) if m["hi"] else (65535 if m["dash"] else lo)
        if lo > 65535 or hi > 65535:
            raise ValueError(f"ports: {item!r} in {spec!r} is beyond port 65535")
        if lo > hi:
            raise ValueError(f"ports: range {item!r} in {spec!r} is backwards")
